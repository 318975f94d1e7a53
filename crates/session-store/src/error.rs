//! The one error type of the crate.

use std::time::Duration;

use crate::{Epoch, OwnerId, SessionKey};

/// Why a store operation failed.
///
/// Each `Display` says this layer's fact only; the cause (an IO or Redis error) is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A session key that no store accepts (see [`SessionKey::new`]).
    #[error("invalid session key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An owner id that no store accepts (see [`OwnerId::new`]).
    #[error("invalid owner id: {reason}")]
    InvalidOwner {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A lease time-to-live out of range (at least 1 ms, at most
    /// [`MAX_TTL`](crate::MAX_TTL)).
    #[error("invalid lease time-to-live {ttl:?}")]
    InvalidTtl {
        /// The time-to-live asked for.
        ttl: Duration,
    },
    /// Another owner holds a live lease on the session: it may still be writing to the
    /// session's socket. Try again after `expires_in`, or give up.
    #[error("session {key} is held by {owner} (epoch {epoch})")]
    Held {
        /// The session.
        key: SessionKey,
        /// The owner holding it.
        owner: OwnerId,
        /// The epoch of its lease.
        epoch: Epoch,
        /// How long its lease runs if it is not renewed, when the store can tell.
        expires_in: Option<Duration>,
    },
    /// The lease is no longer the session's current one: it expired, was released, or a newer
    /// owner acquired the session (a higher epoch). Nothing was written; the holder must stop
    /// acting for the session (close its socket, write nothing more).
    #[error("lease epoch {epoch} on session {key} is no longer current")]
    Fenced {
        /// The session.
        key: SessionKey,
        /// The epoch of the lease that was refused.
        epoch: Epoch,
        /// The epoch of the lease now live, if any.
        current: Option<Epoch>,
    },
    /// The stored bytes are not readable as this library's data (truncated, not JSON, a
    /// missing field, a context with a repeated id, ...). The store leaves them as they are.
    #[error("stored data of session {key} is corrupt: {reason}")]
    Corrupt {
        /// The session.
        key: SessionKey,
        /// What could not be read.
        reason: String,
    },
    /// The stored data is JSON of some other program or format, not a session of this library.
    /// The store leaves it as it is.
    #[error("stored data of session {key} is not a session of this library (format {found:?})")]
    Foreign {
        /// The session.
        key: SessionKey,
        /// The format marker found, if any.
        found: Option<String>,
    },
    /// The stored data was written by a newer version of this library, in a format version
    /// this build does not read.
    #[error(
        "stored data of session {key} has format version {version}; this build reads {supported}"
    )]
    UnsupportedVersion {
        /// The session.
        key: SessionKey,
        /// The version found.
        version: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// A file operation failed.
    #[error("could not {action}")]
    Io {
        /// What was being done, naming the path.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stored session could not be encoded (a JSON value that serde_json refuses).
    #[error("could not encode the stored session")]
    Encode(#[source] serde_json::Error),
    /// The store did not answer within its time limit.
    #[error("the store did not answer within {limit:?}")]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// A Redis command failed (connection refused or lost, a server error, ...).
    #[cfg(feature = "redis")]
    #[error("a Redis command failed")]
    Redis(#[source] redis::RedisError),
}

impl Error {
    /// Whether the same call may succeed later: the store could not be reached or did not
    /// answer (IO, Redis connection errors, a time limit). A lease holder keeps renewing
    /// after such an error, but only until its own deadline; a [`Error::Fenced`] or
    /// [`Error::Held`] is never transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Timeout { .. } => true,
            #[cfg(feature = "redis")]
            Error::Redis(err) => {
                err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
            }
            _ => false,
        }
    }
}
