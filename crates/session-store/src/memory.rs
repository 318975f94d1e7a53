//! `MemoryStore`: sessions in this process's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::record::LeaseState;
use crate::{
    Clock, Error, Lease, OwnerId, Saved, SessionKey, SessionStore, StoredSession, SystemClock,
};

#[derive(Debug, Default)]
struct Entry {
    lease: LeaseState,
    saved: Option<Saved>,
}

/// Sessions kept in memory, shared by the clones of one store: several sessions of one
/// process, and tests. Nothing survives the process. Lease expiry is decided on a
/// [`Clock`] ([`SystemClock`] unless [`with_clock`](Self::with_clock) says otherwise).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<SessionKey, Entry>>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self {
            entries: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same store deciding expiry on `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<SessionKey, Entry>> {
        // A panic while the lock was held cannot leave an entry half-written: every change
        // below is one assignment after its checks.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        let now = self.clock.now_ms();
        let mut entries = self.entries();
        entries
            .entry(key.clone())
            .or_default()
            .lease
            .acquire(key, owner, ttl, now)
    }

    async fn renew(&self, lease: &Lease) -> Result<(), Error> {
        let now = self.clock.now_ms();
        let mut entries = self.entries();
        entries
            .entry(lease.key().clone())
            .or_default()
            .lease
            .renew(lease, now)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, Error> {
        Ok(self
            .entries()
            .get(key)
            .and_then(|entry| entry.saved.clone()))
    }

    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), Error> {
        let now = self.clock.now_ms();
        let mut entries = self.entries();
        let entry = entries.entry(lease.key().clone()).or_default();
        entry.lease.check_current(lease, now)?;
        entry.saved = Some(Saved {
            epoch: lease.epoch(),
            session: session.clone(),
        });
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), Error> {
        let now = self.clock.now_ms();
        let mut entries = self.entries();
        entries
            .entry(lease.key().clone())
            .or_default()
            .lease
            .release(lease, now)
    }
}
