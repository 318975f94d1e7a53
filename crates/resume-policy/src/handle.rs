//! Handle records: a resumption token plus what it provably contains.

use std::fmt;

use crate::{ClientMessageIndex, ConnectionId, MessagePosition, Millis};

/// An opaque resumption token (`sessionResumptionUpdate.newHandle`).
///
/// Never parsed. `Debug` and `Display` show only its length and first characters: it is a
/// bearer credential for the session for about two hours.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HandleToken(String);

impl HandleToken {
    /// Wraps a token as received from the server.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the `setup` frame and for persistence.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HandleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.0.chars().take(4).collect();
        write!(f, "HandleToken({head}…, {} chars)", self.0.chars().count())
    }
}

impl fmt::Display for HandleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The serial number of a handle record, counting every resumable update a
/// [`CoverageTracker`](crate::CoverageTracker) accepted, across connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HandleSerial(pub u64);

/// Counts server sessions: a fresh connection (no handle) starts a new epoch, a resumed one
/// continues the epoch of its handle. A handle only knows tool calls of its own epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SessionEpoch(pub u64);

/// The client messages a handle provably includes: every message sent on `connection` with an
/// index up to and including `through`, plus whatever earlier handles of the same session
/// covered (those operations are already `Covered` in the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Coverage {
    /// The connection the handle was issued on.
    pub connection: ConnectionId,
    /// The last client message on `connection` the handle includes; `None` when it provably
    /// includes none of them (only `setup`).
    pub through: Option<ClientMessageIndex>,
    /// `true` when `through` is exact (transparent mode's `lastConsumedClientMessageIndex`);
    /// `false` when it is the sound lower bound from the last server reaction, in which case
    /// later messages are *uncertain*: possibly included, not provably.
    pub exact: bool,
    /// The last client message on `connection` whose turn the model had finished answering (a
    /// `toolCall`, or a `turnComplete` that was not cut off) before the server issued the
    /// handle. The server issues a handle once the model is done, so the handle holds that
    /// turn, the spoken turns before it and what the model produced for them, even where an
    /// exact `through` is lower (the client places a spoken turn at the last chunk it may
    /// have ended on, which the server may not have consumed).
    pub answered: Option<ClientMessageIndex>,
}

impl Coverage {
    /// Whether the handle holds what the server produced (model output, tool calls, a spoken
    /// user turn) for the turn completed by the message at `position`: it covers that message,
    /// or the turn was answered before the handle was issued.
    pub fn holds_output_for(&self, position: MessagePosition) -> bool {
        self.covers(position)
            || (position.connection == self.connection
                && self
                    .answered
                    .is_some_and(|answered| position.index <= answered))
    }

    /// Whether the handle includes the message at `position`. The `setup` of its own
    /// connection is always included (what `setup` carries, instructions and tools, is part
    /// of the session the handle snapshots).
    pub fn covers(&self, position: MessagePosition) -> bool {
        position.connection == self.connection
            && (position.index == ClientMessageIndex::SETUP
                || self
                    .through
                    .is_some_and(|through| position.index <= through))
    }
}

/// Whether newer server state exists that the handle does not include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Freshness {
    /// No `resumable: false` update arrived since the handle: it is the newest checkpoint.
    Fresh,
    /// A `resumable: false` update arrived at this time: the server has moved on (a model turn
    /// or a tool call in progress) and resuming from the handle loses what came after it.
    StaleSince(Millis),
}

/// A resumption handle and what it provably contains (docs/design.md section 4).
///
/// Built by [`CoverageTracker`](crate::CoverageTracker) from resumption updates; restored from
/// a handle store with [`HandleRecord::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        from = "crate::persist::HandleRecordRepr",
        into = "crate::persist::HandleRecordRepr"
    )
)]
pub struct HandleRecord {
    /// The token to put in `setup.sessionResumption.handle`.
    pub token: HandleToken,
    /// The connection the update arrived on.
    pub connection: ConnectionId,
    /// The client messages it provably includes.
    pub coverage: Coverage,
    /// Fresh, or stale since a known time.
    pub freshness: Freshness,
    /// When the update arrived.
    pub received_at: Millis,
    /// Serial number among the tracker's handles.
    pub serial: HandleSerial,
    /// The server session it belongs to.
    pub epoch: SessionEpoch,
}

impl HandleRecord {
    /// A record with every field given (for restoring a persisted handle).
    pub fn new(
        token: HandleToken,
        coverage: Coverage,
        freshness: Freshness,
        received_at: Millis,
        serial: HandleSerial,
        epoch: SessionEpoch,
    ) -> Self {
        Self {
            token,
            connection: coverage.connection,
            coverage,
            freshness,
            received_at,
            serial,
            epoch,
        }
    }

    /// Whether the handle includes the message at `position`.
    pub fn covers(&self, position: MessagePosition) -> bool {
        self.coverage.covers(position)
    }

    /// Whether a `resumable: false` update arrived after it.
    pub fn is_stale(&self) -> bool {
        matches!(self.freshness, Freshness::StaleSince(_))
    }
}
