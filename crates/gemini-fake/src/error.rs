//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong when starting, driving or inspecting the fake server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A `wait_for` condition did not become true in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// How long the caller waited.
        waited: Duration,
        /// What was awaited, for the test's failure message.
        what: String,
    },
    /// A command-line argument or configuration value is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument or field that is wrong (for example `--family`).
        field: String,
        /// Why it is wrong.
        reason: String,
    },
    /// The server has been shut down.
    #[error("the fake server has shut down")]
    ShutDown,
}
