//! The crate's error type.

use crate::{ClientMessageIndex, ConnectionId, OpId};

/// What went wrong when feeding the ledger types. Every variant names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message was reported sent, or a reaction observed, while no connection was open.
    #[error("no connection is open (call `CoverageTracker::on_connected` first)")]
    NotConnected,
    /// A resumed connection was announced but the tracker holds no handle.
    #[error("connection {connection} was announced as resumed, but no handle is held")]
    NoHandleToResume {
        /// The connection announced.
        connection: ConnectionId,
    },
    /// A `resumable: true` update carried no `newHandle`.
    #[error("`newHandle` is missing or empty in a resumable update")]
    MissingHandleToken,
    /// `lastConsumedClientMessageIndex` names a message that was never sent on the connection.
    #[error(
        "`lastConsumedClientMessageIndex` {index} is beyond the last message sent on {connection} ({last_sent})"
    )]
    IndexBeyondSent {
        /// The connection the update arrived on.
        connection: ConnectionId,
        /// The index the server reported.
        index: ClientMessageIndex,
        /// The last index actually sent there.
        last_sent: ClientMessageIndex,
    },
    /// An operation id the outbox does not hold.
    #[error("operation {op} is not in the outbox")]
    UnknownOperation {
        /// The id given.
        op: OpId,
    },
    /// An operation was moved to a state its current state does not allow (for example
    /// marking a superseded operation sent).
    #[error("operation {op} cannot move from {from} to {to}")]
    InvalidTransition {
        /// The operation.
        op: OpId,
        /// Its current state, by name.
        from: &'static str,
        /// The requested state, by name.
        to: &'static str,
    },
    /// A model name from which no family can be derived.
    #[error("model `{model}` matches no known model family (2.5, 3.1, 3.8, 3.8 extended thinking)")]
    UnknownModel {
        /// The name given.
        model: String,
    },
}
