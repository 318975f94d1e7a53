//! # `session-store`: a Gemini Live session that outlives its process
//!
//! ## The domain
//!
//! A Gemini Live session outlives any one connection through resumption handles, and a handle
//! stays usable for about two hours. A fleet of workers can therefore carry a session from a
//! worker that is drained, crashes or is rescheduled to another one, if the other one knows
//! what the first knew: the newest handle and what it provably holds, the operations not yet
//! delivered, and the context the application wants (docs/design.md sections 4 and 8). This
//! crate persists exactly that, a [`StoredSession`], under a **lease**.
//!
//! The service cannot check who is entitled to a session: it refuses a resume only while
//! another socket of the session is open. So ownership is the store's job, and a hand-off
//! is break-before-make: the old owner stops writing and closes its socket, saves the final
//! state and releases the lease; only then can the new owner acquire it and resume. An owner
//! that cannot renew its lease before it runs out must close its socket on its own.
//!
//! Every grant of a session's lease carries a **fencing epoch** higher than all before it,
//! and every write is conditional on it: an owner that was paused past its lease (a long
//! garbage-collection pause, a partition) and wakes up holding an old [`Lease`] gets
//! [`Error::Fenced`] and writes nothing, so it can never overwrite its successor's state.
//!
//! ## The API
//!
//! [`SessionStore`] (async, object safe): [`acquire`](SessionStore::acquire),
//! [`renew`](SessionStore::renew), [`load`](SessionStore::load), [`save`](SessionStore::save),
//! [`release`](SessionStore::release). Three implementations keep the same rules, and one
//! conformance suite (`tests/conformance/`) checks each of them:
//!
//! - [`MemoryStore`]: in this process, for tests and single-process applications;
//! - [`FileStore`]: files in one local directory, atomic replacement, `flock` between
//!   processes, leases on an injectable [`Clock`];
//! - `RedisStore` (feature `redis`, off by default): Redis through redis-rs, each operation one
//!   Lua script, the lease a key with a TTL; the store for fleets.
//!
//! Data a store cannot read (truncated, another program's, a newer format) is a typed
//! [`Error`], never a panic. The stored form is JSON under the Rust names of the types
//! (`ctx-model` and `resume-policy` with their `serde` feature), with a format marker and
//! version.
//!
//! ```
//! use std::time::Duration;
//! use session_store::{Error, MemoryStore, OwnerId, SessionKey, SessionStore, StoredSession};
//! use resume_policy::{MirrorVersion, Outbox};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let store = MemoryStore::new();
//! let key = SessionKey::new("call-42")?;
//! let (a, b) = (OwnerId::new("worker-a")?, OwnerId::new("worker-b")?);
//!
//! let lease = store.acquire(&key, &a, Duration::from_secs(10)).await?;
//! let desired = ctx_model::ChatContext::builder().user("u1", "Hi").build().expect("ids");
//! let state = StoredSession::new(None, MirrorVersion(1), Default::default(), &Outbox::new(), desired);
//! store.save(&lease, &state).await?;
//!
//! // While worker A holds the session, worker B is refused.
//! assert!(matches!(store.acquire(&key, &b, Duration::from_secs(10)).await, Err(Error::Held { .. })));
//!
//! // A hands off: B acquires with a higher epoch and finds A's state.
//! store.release(&lease).await?;
//! let next = store.acquire(&key, &b, Duration::from_secs(10)).await?;
//! assert!(next.epoch() > lease.epoch());
//! let saved = store.load(&key).await?.expect("saved");
//! assert_eq!(saved.session, state);
//!
//! // A's old lease can no longer write.
//! assert!(matches!(store.save(&lease, &state).await, Err(Error::Fenced { .. })));
//! # Ok(())
//! # }
//! ```

mod clock;
mod error;
mod file;
mod lease;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis_store;
mod store;
mod stored;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use file::FileStore;
pub use lease::{Epoch, Lease, MAX_TTL, OwnerId, SessionKey};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis_store::{REDIS_TIMEOUT, RedisStore};
pub use store::SessionStore;
pub use stored::{Saved, StoredSession};
