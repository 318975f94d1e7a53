//! Owning a persisted session (feature `store`): the session holds the lease of its key in a
//! [`SessionStore`] while it runs, so that no other worker acts for the same session.
//!
//! [`LiveSessionBuilder::store`] names the store and the key. [`connect`] takes the lease
//! before it dials (another live owner: [`Error::Store`] with
//! [`session_store::Error::Held`], and nothing is dialed), then a task of the session renews
//! it every third of its time-to-live, from then on (while `connect` runs too). The owner's deadline is the TTL after it *sent* its
//! last successful acquire or renew, on its own clock (the store's clock cannot be read): a
//! renewal refused ([`session_store::Error::Fenced`]: a newer owner holds the session), or
//! none succeeding by a quarter of the TTL before that deadline (the store unreachable),
//! closes the session at once, with a [`SessionEvent::Warning`] saying why, so that its
//! socket is closed before the lease can pass to anyone else (a lease lost while `connect`
//! runs closes the session as soon as it exists). When the session is closed for any other
//! reason, or `connect` fails, the task releases the lease.
//!
//! Not yet: saving the session's state into the store, resuming from it, and a hand-off
//! (issue 18).
//!
//! [`connect`]: LiveSessionBuilder::connect
//! [`Error::Store`]: crate::Error::Store

use std::sync::Arc;
use std::time::Duration;

use session_store::{Lease, OwnerId, SessionKey, SessionStore};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::conduit::Command;
use crate::session::Shared;
use crate::{Error, LiveSessionBuilder, SessionEvent};

/// The shortest lease a session takes: renewals every third of it, and a close that must be
/// written (within a quarter of a second) before the last quarter of it runs out.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// The lease's time-to-live unless [`LiveSessionBuilder::lease_ttl`] says otherwise: what
/// another worker waits, at most, to take the session over after this one dies.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Where the session's lease is held.
#[derive(Clone, Debug)]
pub(crate) struct Ownership {
    store: Arc<dyn SessionStore>,
    key: SessionKey,
    owner: Option<OwnerId>,
    ttl: Duration,
}

impl LiveSessionBuilder {
    /// Holds the lease of `key` in `store` while the session runs (feature `store`; see the
    /// `ownership` notes in the crate's architecture): [`connect`](Self::connect) fails with
    /// [`Error::Store`] when another live owner holds it, and the session closes itself when
    /// it cannot keep it. Default: no store, no lease.
    pub fn store(mut self, store: Arc<dyn SessionStore>, key: SessionKey) -> Self {
        let (owner, ttl) = self
            .ownership
            .take()
            .map_or((None, DEFAULT_LEASE_TTL), |o| (o.owner, o.ttl));
        self.ownership = Some(Ownership {
            store,
            key,
            owner,
            ttl,
        });
        self
    }

    /// Who holds the lease (default: an id made of this process's id and a random number,
    /// different for every session). Needs [`store`](Self::store) first; ignored otherwise.
    pub fn lease_owner(mut self, owner: OwnerId) -> Self {
        if let Some(ownership) = self.ownership.as_mut() {
            ownership.owner = Some(owner);
        }
        self
    }

    /// The lease's time-to-live (default [`DEFAULT_LEASE_TTL`], at least [`MIN_LEASE_TTL`]).
    /// Needs [`store`](Self::store) first; ignored otherwise.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        if let Some(ownership) = self.ownership.as_mut() {
            ownership.ttl = ttl;
        }
        self
    }
}

/// A lease the session holds, the deadline by which it must have renewed it, and when it
/// renews next.
pub(crate) struct Held {
    store: Arc<dyn SessionStore>,
    lease: Lease,
    deadline: Instant,
    next: Instant,
}

/// What one renewal came to.
enum Renewal {
    Kept,
    /// A transient failure: tried again soon, until the deadline.
    Retry(String),
    /// Lost: the session must close.
    Lost(String),
}

impl Ownership {
    /// Takes the lease (before any dial).
    pub(crate) async fn acquire(&self, random: u64) -> Result<Held, Error> {
        if self.ttl < MIN_LEASE_TTL {
            return Err(Error::Config(format!(
                "lease_ttl {:?} is below the minimum {MIN_LEASE_TTL:?}",
                self.ttl
            )));
        }
        let owner = match &self.owner {
            Some(owner) => owner.clone(),
            None => OwnerId::new(format!("pid{}-{random:016x}", std::process::id()))
                .map_err(Error::Store)?,
        };
        let sent = Instant::now();
        let lease = self
            .store
            .acquire(&self.key, &owner, self.ttl)
            .await
            .map_err(Error::Store)?;
        Ok(Held {
            store: Arc::clone(&self.store),
            lease,
            deadline: sent + self.ttl,
            next: sent + self.ttl / 3,
        })
    }
}

impl Held {
    /// The last moment the session may still be writing: a quarter of the TTL before the
    /// deadline, room for the close frame.
    fn close_by(&self) -> Instant {
        self.deadline - self.lease.ttl() / 4
    }

    /// Renews once.
    async fn renew(&mut self) -> Renewal {
        let close_by = self.close_by();
        let ttl = self.lease.ttl();
        let sent = Instant::now();
        if sent >= close_by {
            return Renewal::Lost("the lease could not be renewed in time".to_owned());
        }
        match tokio::time::timeout_at(close_by, self.store.renew(&self.lease)).await {
            Ok(Ok(())) => {
                self.deadline = sent + ttl;
                self.next = sent + ttl / 3;
                Renewal::Kept
            }
            Ok(Err(err)) if err.is_transient() => {
                self.next = Instant::now() + ttl / 10;
                Renewal::Retry(err.to_string())
            }
            Ok(Err(err)) => Renewal::Lost(format!("the lease was lost: {err}")),
            Err(_) => Renewal::Lost("the lease could not be renewed in time".to_owned()),
        }
    }

    /// The session's lease keeper, spawned as soon as the lease is taken: renews it while
    /// `connect` runs, then while the session runs; closes the session when it is lost;
    /// releases it when the connect fails (`None`) or the session ends otherwise.
    pub(crate) async fn keep(mut self, session: oneshot::Receiver<Option<Arc<Shared>>>) {
        tokio::pin!(session);
        let shared = loop {
            let wake = self.next.min(self.close_by());
            tokio::select! {
                connected = &mut session => match connected {
                    Ok(Some(shared)) => break shared,
                    _ => {
                        let _ = self.store.release(&self.lease).await;
                        return;
                    }
                },
                () = tokio::time::sleep_until(wake) => {}
            }
            if let Renewal::Lost(why) = self.renew().await {
                // Lost while connecting: the session closes the moment it exists.
                if let Ok(Some(shared)) = session.await {
                    lose(&shared, why);
                }
                return;
            }
        };
        let mut changed = shared.changed.subscribe();
        loop {
            let wake = self.next.min(self.close_by());
            // Wait for the next renewal, or for the session to end.
            let ended = loop {
                if shared.lock().conduit.core().closed().is_some() {
                    break true;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => break false,
                    changed = changed.changed() => if changed.is_err() { break true },
                }
            };
            if ended {
                let _ = self.store.release(&self.lease).await;
                return;
            }
            match self.renew().await {
                Renewal::Kept => {}
                Renewal::Retry(why) => shared.events.push(SessionEvent::Warning(format!(
                    "could not renew the session's lease, retrying: {why}"
                ))),
                Renewal::Lost(why) => {
                    lose(&shared, why);
                    return;
                }
            }
        }
    }
}

/// Closes the session: another owner may hold it, or soon will.
fn lose(shared: &Shared, why: String) {
    shared
        .events
        .push(SessionEvent::Warning(format!("closing the session: {why}")));
    shared.with(|state, now| {
        let _ = state.conduit.command(now, Command::Close);
    });
}
