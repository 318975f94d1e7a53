//! Small value types: points in time, connections, client message indices, operation ids.

use std::fmt;
use std::time::Duration;

/// A point in time: milliseconds since an epoch the caller chooses.
///
/// The crate never reads a clock. The session layer passes `now` in, usually as the time elapsed
/// since the session started (a monotonic clock), so plans are reproducible in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Millis(pub u64);

impl Millis {
    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `self` moved forward by `span` (saturating).
    #[must_use]
    pub fn after(self, span: Duration) -> Millis {
        let span = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(span))
    }
}

/// One WebSocket connection of a session, numbered by the session layer in dial order.
///
/// Later connections have larger ids; the planner relies on that order only to find the most
/// recently sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// The position of a client message on its connection.
///
/// **Numbering convention** (the one place it is defined): indices count per connection and
/// restart on every connection; the `setup` frame is [`ClientMessageIndex::SETUP`] (0) and the
/// first message after it is `SETUP.next()` (1). This is the convention of
/// `lastConsumedClientMessageIndex` in transparent mode as the one public replay implementation
/// reads it (Google does not document it), and the session layer numbers every message it sends
/// the same way, so a transparent index and a sent index can be compared directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClientMessageIndex(pub u64);

impl ClientMessageIndex {
    /// The index of the `setup` frame on every connection; the first message after it is
    /// `SETUP.next()`.
    pub const SETUP: ClientMessageIndex = ClientMessageIndex(0);

    /// The index of the message sent after this one.
    #[must_use]
    pub fn next(self) -> ClientMessageIndex {
        ClientMessageIndex(self.0.saturating_add(1))
    }
}

impl fmt::Display for ClientMessageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Client message `index` on `connection`: where an operation was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessagePosition {
    /// The connection the message went out on.
    pub connection: ConnectionId,
    /// Its index on that connection.
    pub index: ClientMessageIndex,
}

impl MessagePosition {
    /// Client message `index` on `connection`.
    pub fn new(connection: ConnectionId, index: ClientMessageIndex) -> Self {
        Self { connection, index }
    }
}

impl fmt::Display for MessagePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.connection, self.index)
    }
}

/// The id of an [`Operation`](crate::Operation) in the [`Outbox`](crate::Outbox); ids grow in
/// the order operations were queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.0)
    }
}

/// A version of the session configuration (system instruction or tool set). The session layer
/// holds the content; operations and plans refer to it by version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConfigVersion(pub u64);

/// A version of the mirror (what the server holds), persisted next to a handle so that another
/// process can tell whether the handle still matches the context it has (scenario S31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MirrorVersion(pub u64);
