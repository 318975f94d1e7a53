//! The lease rules over one session's record, shared by the stores that keep the record
//! themselves (memory, file); the Redis store runs the same rules as Lua scripts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Epoch, Error, Lease, OwnerId, SessionKey};

/// A granted lease as a store records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseEntry {
    pub(crate) owner: String,
    pub(crate) epoch: u64,
    /// On the store's clock, milliseconds since the Unix epoch.
    pub(crate) expires_at_ms: u64,
}

/// One session's lease state: the highest epoch ever granted and the live lease, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseState {
    pub(crate) last_epoch: u64,
    pub(crate) lease: Option<LeaseEntry>,
}

impl LeaseState {
    /// The lease, if it is live at `now`.
    fn live(&self, now: u64) -> Option<&LeaseEntry> {
        self.lease
            .as_ref()
            .filter(|lease| now < lease.expires_at_ms)
    }

    /// Grants the lease to `owner` unless a live one exists.
    pub(crate) fn acquire(
        &mut self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
        now: u64,
    ) -> Result<Lease, Error> {
        let ttl_ms = crate::lease::check_ttl(ttl)?;
        if let Some(held) = self.live(now) {
            return Err(Error::Held {
                key: key.clone(),
                owner: OwnerId::new(held.owner.clone()).map_err(|_| Error::Corrupt {
                    key: key.clone(),
                    reason: "the lease's owner is not a valid owner id".to_owned(),
                })?,
                epoch: Epoch(held.epoch),
                expires_in: Some(Duration::from_millis(held.expires_at_ms - now)),
            });
        }
        let epoch = self
            .last_epoch
            .checked_add(1)
            .ok_or_else(|| Error::Corrupt {
                key: key.clone(),
                reason: "the epoch counter is exhausted".to_owned(),
            })?;
        self.last_epoch = epoch;
        self.lease = Some(LeaseEntry {
            owner: owner.as_str().to_owned(),
            epoch,
            expires_at_ms: now.saturating_add(ttl_ms),
        });
        Ok(Lease::new(key.clone(), owner.clone(), Epoch(epoch), ttl))
    }

    /// `Ok` when `lease` is the live lease at `now`, else [`Error::Fenced`].
    pub(crate) fn check_current(&self, lease: &Lease, now: u64) -> Result<(), Error> {
        match self.live(now) {
            Some(live) if live.epoch == lease.epoch().0 && live.owner == lease.owner().as_str() => {
                Ok(())
            }
            live => Err(Error::Fenced {
                key: lease.key().clone(),
                epoch: lease.epoch(),
                current: live.map(|live| Epoch(live.epoch)),
            }),
        }
    }

    /// Extends the current lease to its ttl from `now`.
    pub(crate) fn renew(&mut self, lease: &Lease, now: u64) -> Result<(), Error> {
        self.check_current(lease, now)?;
        let ttl_ms = crate::lease::check_ttl(lease.ttl())?;
        if let Some(entry) = self.lease.as_mut() {
            entry.expires_at_ms = now.saturating_add(ttl_ms);
        }
        Ok(())
    }

    /// Removes the current lease.
    pub(crate) fn release(&mut self, lease: &Lease, now: u64) -> Result<(), Error> {
        self.check_current(lease, now)?;
        self.lease = None;
        Ok(())
    }
}
