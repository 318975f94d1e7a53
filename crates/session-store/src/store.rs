//! The `SessionStore` trait.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Error, Lease, OwnerId, Saved, SessionKey, StoredSession};

/// Persists sessions under fenced leases, so that one process at a time acts for a session
/// and a stale owner can never overwrite a newer owner's state.
///
/// Every implementation keeps the same rules (the crate's conformance tests run each against
/// them):
///
/// - [`acquire`](Self::acquire) grants the session's lease when no live lease exists (never
///   held, released, or expired), with an [`Epoch`](crate::Epoch) higher than every earlier
///   grant's; while a live lease exists it fails with [`Error::Held`], whoever asks.
/// - [`renew`](Self::renew), [`save`](Self::save) and [`release`](Self::release) succeed only
///   with the current lease: same owner, same epoch, not expired. Otherwise they change
///   nothing and fail with [`Error::Fenced`]. The check and the write are one atomic step.
/// - [`load`](Self::load) needs no lease; it returns the last saved state and the epoch that
///   wrote it. Data the store cannot read is a typed error ([`Error::Corrupt`],
///   [`Error::Foreign`], [`Error::UnsupportedVersion`]), never a panic, and is left in place.
///
/// The trait is object safe: a session builder takes an `Arc<dyn SessionStore>`.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Takes the lease of `key` for `owner`, for `ttl` from now on the store's clock.
    ///
    /// # Errors
    /// [`Error::Held`] while another live lease exists; [`Error::InvalidTtl`]; the store's own
    /// failures.
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, Error>;

    /// Extends `lease` to its `ttl` from now.
    ///
    /// # Errors
    /// [`Error::Fenced`] when it is no longer current; the store's own failures.
    async fn renew(&self, lease: &Lease) -> Result<(), Error>;

    /// The last state saved for `key`, if any.
    ///
    /// # Errors
    /// Unreadable data, and the store's own failures.
    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, Error>;

    /// Replaces the state of `lease`'s session with `session`, if `lease` is current.
    ///
    /// # Errors
    /// [`Error::Fenced`] when it is not (nothing is written); [`Error::Encode`]; the store's
    /// own failures.
    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), Error>;

    /// Gives the lease up, so that another owner can acquire the session at once. The saved
    /// state stays.
    ///
    /// # Errors
    /// [`Error::Fenced`] when it is no longer current; the store's own failures.
    async fn release(&self, lease: &Lease) -> Result<(), Error>;
}

/// `SessionStore` must stay object safe.
const _: Option<&dyn SessionStore> = None;
