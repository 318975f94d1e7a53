//! What is persisted for a session, and its stored form.

use ctx_model::ChatContext;
use resume_policy::{HandleRecord, MirrorVersion, Operation, Outbox};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Epoch, Error, SessionKey};

/// What another process needs to resume a session (docs/design.md section 8).
///
/// - `handle`: the newest adopted handle with its coverage, if any (`None`: the next
///   connection starts a fresh server session and seeds it from `desired`).
/// - `mirror_version` and `held`: the version of the mirror and what the handle provably
///   holds ([`resume_policy::Mirror::restore`] takes `held`); a new process compares the
///   version with its own context's (`Trigger::ProcessRestart`) to resume without a seed or to
///   start fresh.
/// - `outbox`: the live operations (queued, or sent and not covered), which the handle does not
///   hold and the next connection must deliver.
/// - `desired`: `L`, the context the application wants the model to have.
///
/// Times in the handle record (`received_at`, a stale handle's `since`) are on the writing
/// process's session clock; another process reads them as history, not as its own time. The
/// handle's token is a bearer credential for the session for about two hours: the stored form
/// holds it in clear, so protect the store as a credential store (`Debug` shows only its head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredSession {
    /// The newest adopted handle with its coverage.
    pub handle: Option<HandleRecord>,
    /// The mirror's version stored with the handle.
    pub mirror_version: MirrorVersion,
    /// What the handle provably holds.
    pub held: ChatContext,
    /// The live operations, in queue order.
    pub outbox: Vec<Operation>,
    /// The desired context `L`.
    pub desired: ChatContext,
    /// The calls of `desired` without a result that a session resumed from `handle` knows as
    /// calls (takes a `toolResponse` for); `None` in data written without it (then: the
    /// calls `held` holds). A call the handle holds only as history (seeded) is not one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_calls: Option<Vec<String>>,
    /// The calls of `desired` the server cancelled: never to be answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancelled_calls: Vec<String>,
}

impl StoredSession {
    /// A stored session from the ledger's parts; only the live operations of `outbox` are
    /// kept (covered, superseded and reported ones are settled and need no delivery).
    pub fn new(
        handle: Option<HandleRecord>,
        mirror_version: MirrorVersion,
        held: ChatContext,
        outbox: &Outbox,
        desired: ChatContext,
    ) -> Self {
        Self {
            handle,
            mirror_version,
            held,
            outbox: outbox.live().cloned().collect(),
            desired,
            known_calls: None,
            cancelled_calls: Vec::new(),
        }
    }

    /// The same session with what it knows of its calls without a result: the ones its
    /// handle knows as calls, and the ones the server cancelled.
    #[must_use]
    pub fn with_calls(mut self, known: Option<Vec<String>>, cancelled: Vec<String>) -> Self {
        self.known_calls = known;
        self.cancelled_calls = cancelled;
        self
    }
}

/// A stored session with the epoch of the lease that wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// The epoch of the lease whose [`save`](crate::SessionStore::save) wrote it.
    pub epoch: Epoch,
    /// The session.
    pub session: StoredSession,
}

/// The format marker of a stored session (`format` in the stored JSON).
pub(crate) const SESSION_FORMAT: &str = "gemini-live-rs/session";
/// The format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// The stored form of a [`Saved`] session.
#[derive(Serialize, Deserialize)]
struct SavedRepr {
    format: String,
    version: u64,
    epoch: u64,
    session: StoredSession,
}

/// Encodes `session` as written by `epoch`.
pub(crate) fn encode_saved(epoch: Epoch, session: &StoredSession) -> Result<Vec<u8>, Error> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        format: &'static str,
        version: u64,
        epoch: u64,
        session: &'a StoredSession,
    }
    serde_json::to_vec(&Borrowed {
        format: SESSION_FORMAT,
        version: FORMAT_VERSION,
        epoch: epoch.0,
        session,
    })
    .map_err(Error::Encode)
}

/// Decodes a stored session of `key`: not JSON, or a JSON of the wrong shape, is
/// [`Error::Corrupt`]; a JSON object without this library's marker is [`Error::Foreign`]; a
/// newer format version is [`Error::UnsupportedVersion`].
pub(crate) fn decode_saved(key: &SessionKey, bytes: &[u8]) -> Result<Saved, Error> {
    let value = check_envelope(key, bytes, SESSION_FORMAT)?;
    let repr: SavedRepr = serde_json::from_value(value).map_err(|err| Error::Corrupt {
        key: key.clone(),
        reason: err.to_string(),
    })?;
    Ok(Saved {
        epoch: Epoch(repr.epoch),
        session: repr.session,
    })
}

/// Parses `bytes` as JSON and checks its `format` and `version` fields.
pub(crate) fn check_envelope(key: &SessionKey, bytes: &[u8], format: &str) -> Result<Value, Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| Error::Corrupt {
        key: key.clone(),
        reason: err.to_string(),
    })?;
    let found = value.get("format").map(|f| f.as_str().map(str::to_owned));
    match found {
        Some(Some(found)) if found == format => {}
        Some(Some(found)) => {
            return Err(Error::Foreign {
                key: key.clone(),
                found: Some(found),
            });
        }
        _ => {
            return Err(Error::Foreign {
                key: key.clone(),
                found: None,
            });
        }
    }
    match value.get("version").and_then(Value::as_u64) {
        Some(FORMAT_VERSION) => Ok(value),
        Some(version) => Err(Error::UnsupportedVersion {
            key: key.clone(),
            version,
            supported: FORMAT_VERSION,
        }),
        None => Err(Error::Corrupt {
            key: key.clone(),
            reason: "no format version".to_owned(),
        }),
    }
}
