//! Why a connection is being opened.

use std::time::Duration;

use crate::MirrorVersion;

/// How the transport classified a close frame (codes in docs/protocol.md section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseClass {
    /// 1006 (no close frame), 1011 "internal error" / "unavailable" / "deadline expired",
    /// 1000 without a goAway: reconnect with the handle, with backoff.
    Transient,
    /// 1007 on a payload (not on `setup`): the last message sent was refused. Never re-send it.
    InvalidPayload,
    /// 1008 "not implemented/supported" on a payload: like `InvalidPayload`.
    Unsupported,
    /// Quota exhausted, spent token, bad key, unknown model: retrying cannot help.
    /// (`agent-glue` reports such an end as [`Trigger::Fatal`].)
    Fatal,
}

/// Why the session layer ends a session ([`Trigger::Fatal`]): a failure no other attempt can
/// fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FatalCause {
    /// Authentication, permission or location refused: HTTP 401 or 403 on the upgrade, or a
    /// close whose reason names the key, the token, a permission or the location.
    Auth,
    /// Quota or rate limit: HTTP 429 on the upgrade, or a close whose reason names the quota.
    Quota,
    /// The first request of a new session was refused: its `setup` was closed with 1007 or
    /// 1008, or the upgrade was refused with an HTTP 4xx. The session's configuration (model,
    /// endpoint, setup fields) is wrong, and the same request fails the same way.
    SetupRejected,
    /// The session never connected, and another attempt would not either: the failure cannot
    /// change (TLS), it is the one the previous attempt failed with, or the first-connect
    /// budget is spent. (A wrong URL, key or server is more likely than an outage.)
    FirstConnectFailed,
}

/// What made the session open a connection; it shapes the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trigger {
    /// The session's first connection.
    FirstConnect,
    /// Planned rotation after `goAway`, with the time the server announced.
    GoAway {
        /// `goAway.timeLeft`.
        time_left: Duration,
    },
    /// Planned rotation of a connection that reached the session's age limit, before the
    /// service ends it without notice (3.8 connections are closed at 58:00 with 1011:
    /// docs/protocol.md section 10.1).
    AgeLimit {
        /// How old the connection was.
        age: Duration,
    },
    /// The connection closed without a `goAway` (or failed to open).
    AbnormalClose {
        /// The close code (1006 when there was no close frame).
        code: u16,
        /// Its classification.
        class: CloseClass,
    },
    /// The server closed a resumed `setup` (expired or unknown handle, 1007 / 1011 during
    /// setup): the handle is dead.
    RefusedResume {
        /// The close code.
        code: u16,
    },
    /// The system instruction and/or the tool set changed on a model without `contextUpdate`:
    /// a reconnect whose `setup` carries the new configuration.
    ConfigChange {
        /// The instruction changed.
        instructions: bool,
        /// The tool set changed.
        tools: bool,
    },
    /// The session layer ends the session: the failure behind the end (`cause`) is one no
    /// other attempt can fix.
    ///
    /// The plan's job is to say what is not delivered: a give-up plan
    /// ([`Strategy::GiveUp`](crate::Strategy::GiveUp)) whose divergences report the live
    /// operations ([`DivergenceReason::GaveUp`](crate::DivergenceReason::GaveUp)), as
    /// [`DefaultPolicy`](crate::DefaultPolicy) plans it. A policy cannot retry such a failure:
    /// the session layer ends the session whatever strategy the plan names (`agent-glue`
    /// warns, reports the plan's divergences and anything still live, and closes with the
    /// failure). Within a session the credential, the place, the quota and the configuration
    /// do not change, so another attempt would fail the same way, and retrying a refused key
    /// or a spent quota in a loop only adds load (and can lock an account). To try again
    /// later, the application starts a new session from its context.
    Fatal {
        /// Why.
        cause: FatalCause,
    },
    /// A new process resumes a session from a persisted handle (scenario S31).
    ProcessRestart {
        /// The mirror version stored with the handle.
        stored: MirrorVersion,
        /// The version of the context this process holds.
        current: MirrorVersion,
    },
}

impl Trigger {
    /// Whether the connection is replaced on purpose (no failure behind it).
    pub fn is_planned(&self) -> bool {
        matches!(
            self,
            Self::FirstConnect
                | Self::GoAway { .. }
                | Self::AgeLimit { .. }
                | Self::ConfigChange { .. }
                | Self::ProcessRestart { .. }
        )
    }
}
