//! Session keys, owners, fencing epochs and leases.

use std::fmt;
use std::time::Duration;

use crate::Error;

/// The longest lease a store grants: one day. A lease is meant to be renewed every few
/// seconds; a longer one would only keep a dead owner's session locked.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest key or owner id, in bytes.
const MAX_NAME: usize = 128;

/// Checks `ttl` against the range every store accepts.
pub(crate) fn check_ttl(ttl: Duration) -> Result<u64, Error> {
    if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
        return Err(Error::InvalidTtl { ttl });
    }
    u64::try_from(ttl.as_millis()).map_err(|_| Error::InvalidTtl { ttl })
}

/// Which characters a name may hold: ASCII letters, digits and `_ - . : @`, not starting with
/// `.` (a key names a file in [`FileStore`](crate::FileStore) and part of a Redis key).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_NAME {
        return Err("longer than 128 bytes");
    }
    if name.starts_with('.') {
        return Err("starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
    {
        return Err("holds a character other than ASCII letters, digits and _ - . : @");
    }
    Ok(())
}

/// The name of a persisted session: 1 to 128 bytes of ASCII letters, digits and `_ - . : @`,
/// not starting with `.`. The same key names the same session in every store, so that a
/// session saved by one worker is found by another.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(String);

impl SessionKey {
    /// Checks and wraps a key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an empty, too long or badly spelled key.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        check_name(&key).map_err(|reason| Error::InvalidKey { reason })?;
        Ok(Self(key))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who holds a lease: one worker process (or one session within it). Spelled as a
/// [`SessionKey`] is. Give every process instance its own (host, process id, start time): a
/// lease is refused to everyone, its own owner included, while it is live.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OwnerId(String);

impl OwnerId {
    /// Checks and wraps an owner id.
    ///
    /// # Errors
    /// [`Error::InvalidOwner`] for an empty, too long or badly spelled id.
    pub fn new(owner: impl Into<String>) -> Result<Self, Error> {
        let owner = owner.into();
        check_name(&owner).map_err(|reason| Error::InvalidOwner { reason })?;
        Ok(Self(owner))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fencing epoch: every grant of a session's lease has a higher one than all grants before
/// it, so a write carrying an older epoch can be refused ([`Error::Fenced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The right to act for a session (hold its socket, write its state) until the lease expires.
///
/// Granted by [`SessionStore::acquire`](crate::SessionStore::acquire). The store's clock
/// decides expiry; the holder cannot read it, so it keeps its own deadline: `ttl` after it
/// *sent* the acquire or the last successful renew, on its own monotonic clock. Past that
/// deadline it must act as if the lease were gone (close the socket, write nothing), because
/// another owner may hold the session by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    key: SessionKey,
    owner: OwnerId,
    epoch: Epoch,
    ttl: Duration,
}

impl Lease {
    pub(crate) fn new(key: SessionKey, owner: OwnerId, epoch: Epoch, ttl: Duration) -> Self {
        Self {
            key,
            owner,
            epoch,
            ttl,
        }
    }

    /// The session.
    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    /// Its holder.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// Its fencing epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// How long it runs after a grant or renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(SessionKey::new("call-42:eu@worker_1.a").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", "a b", "é", &"k".repeat(129)] {
            assert!(
                matches!(SessionKey::new(bad), Err(Error::InvalidKey { .. })),
                "accepted {bad:?}"
            );
            assert!(matches!(OwnerId::new(bad), Err(Error::InvalidOwner { .. })));
        }
        assert!(SessionKey::new("k".repeat(128)).is_ok());
    }

    #[test]
    fn ttls_are_checked() {
        assert_eq!(check_ttl(Duration::from_millis(25)).ok(), Some(25));
        assert!(check_ttl(Duration::ZERO).is_err());
        assert!(check_ttl(Duration::from_micros(999)).is_err());
        assert!(check_ttl(MAX_TTL + Duration::from_millis(1)).is_err());
        assert!(check_ttl(Duration::MAX).is_err());
    }
}
