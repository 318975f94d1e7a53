//! Owning a persisted session (feature `store`): the session holds the lease of its key in a
//! [`SessionStore`] while it runs, so that no other worker acts for the same session, and
//! keeps in the store what another worker needs to resume it (docs/design.md section 8).
//!
//! [`LiveSessionBuilder::store`] names the store and the key. [`connect`] takes the lease
//! before it dials (another live owner: [`Error::Store`] with
//! [`session_store::Error::Held`], and nothing is dialed), then loads what the key's last
//! owner saved: a saved session whose context equals the
//! [`initial_context`](LiveSessionBuilder::initial_context) is resumed without a seed, one
//! with another context is not carried over (the session starts fresh from the initial
//! context and a [`SessionEvent::Divergence`] names what was left behind; see
//! [`LiveSessionBuilder::resume_from`]).
//!
//! A task of the session (the keeper) then renews the lease every third of its
//! time-to-live, from then on (while `connect` runs too). The owner's deadline is the TTL
//! after it *sent* its last successful acquire or renew, on its own clock (the store's clock
//! cannot be read): a renewal or save refused ([`session_store::Error::Fenced`]: a newer
//! owner holds the session), or no renewal succeeding by a quarter of the TTL before that
//! deadline (the store unreachable), closes the session at once, with a
//! [`SessionEvent::Warning`] saying why, so that its socket is closed before the lease can
//! pass to anyone else (a lease lost while `connect` runs closes the session as soon as it
//! exists).
//!
//! **Saving.** The keeper saves the session's persisted state (the newest adopted handle with
//! its coverage, the version of `L`, what the handle holds, the live outbox and `L`: a
//! [`StoredSession`]) whenever it changes in a way a resume depends on (a handle adopted or
//! gone stale, an operation queued, delivered, superseded or reported, `L` changed), each
//! write conditional on the lease's fencing epoch. Saves are coalesced: at most one is in
//! flight, and the next one takes the state as it is then, so the application's calls never
//! wait on the store. A save that fails for another reason than a lost lease is reported as a
//! warning and tried again at the next change or renewal.
//!
//! **Ending.** When the session ends for any reason but a lost lease (closed, dropped,
//! [`hand_off`](crate::LiveSession::hand_off), or ended by a failure), the keeper waits until
//! its socket is gone, saves the final state and releases the lease: break-before-make, so
//! that the next owner, which can acquire the lease only then, never resumes while this
//! socket is open. `hand_off` first drains the session (waits, at most [`HAND_OFF_DRAIN`],
//! until nothing is queued or in flight and the model is not in a turn), and returns once
//! the lease is released, or with the store's error.
//!
//! [`connect`]: LiveSessionBuilder::connect
//! [`Error::Store`]: crate::Error::Store

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use session_store::{Lease, OwnerId, SessionKey, SessionStore};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::conduit::Persisted;
use crate::keeper::{Keeper, KeeperOrder, Renewed, SaveOutcome, from_stored, to_stored};
use crate::session::Shared;
use crate::{Error, LiveSession, LiveSessionBuilder, SessionEvent};

/// A store call bounded in time (`None`: not answered in time).
type StoreCall = Pin<Box<dyn Future<Output = Option<Result<(), session_store::Error>>> + Send>>;

/// The shortest lease a session takes: renewals every third of it, and a close that must be
/// written (within a quarter of a second) before the last quarter of it runs out.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// The lease's time-to-live unless [`LiveSessionBuilder::lease_ttl`] says otherwise: what
/// another worker waits, at most, to take the session over after this one dies.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The longest [`LiveSession::hand_off`] waits for the session to drain (nothing queued or
/// in flight, the model not in a turn, no tool call awaiting its result) before it closes it
/// anyway: what was not delivered is saved as live operations, which the next owner
/// delivers, and a call still running is the next owner's to report as lost.
pub const HAND_OFF_DRAIN: Duration = Duration::from_secs(5);

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

/// What a session with a store shares with [`LiveSession::hand_off`]: whether it owns a
/// lease, and who waits for the keeper's last word.
#[derive(Debug, Default)]
pub(crate) struct HandOff {
    owned: AtomicBool,
    waiter: Mutex<Option<oneshot::Sender<Result<(), session_store::Error>>>>,
}

impl HandOff {
    /// The keeper's outcome goes to the waiter, if any.
    fn tell(&self, outcome: Result<(), session_store::Error>) {
        let waiter = self
            .waiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waiter) = waiter {
            let _ = waiter.send(outcome);
        }
    }
}

impl LiveSession {
    /// Hands the session over to another worker (feature `store`): drains it (waits, at most
    /// [`HAND_OFF_DRAIN`], until nothing is queued or in flight, the model is not in a turn and
    /// no tool call awaits its result, so that a tool still running, a non-blocking one among
    /// them, answers this session instead of being lost with it), closes it (its socket is gone before anything else happens), saves its final
    /// state and releases its lease, then returns. The next owner, built with the same store
    /// and key and the same context, resumes the server session without a seed.
    ///
    /// # Errors
    /// [`Error::Config`] when the session has no [`store`](LiveSessionBuilder::store);
    /// [`Error::Closed`] when it had already ended (it saved and released on its own);
    /// [`Error::Store`] when the final save or the release failed (a
    /// [`Fenced`](session_store::Error::Fenced) lease: another owner holds the session, and
    /// its state is that owner's; a release the store does not answer within the lease's TTL
    /// is a [`Timeout`](session_store::Error::Timeout)).
    pub async fn hand_off(&self) -> Result<(), Error> {
        let shared = self.shared();
        if !shared.hand_off.owned.load(Ordering::Acquire) {
            return Err(Error::Config(
                "hand_off needs a session store (LiveSessionBuilder::store)".to_owned(),
            ));
        }
        let (waiter, outcome) = oneshot::channel();
        *shared
            .hand_off
            .waiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(waiter);
        if shared.lock().conduit.core().closed().is_some() {
            return Err(Error::Closed);
        }
        // Drained (settled, no tool awaiting its result), or as drained as it gets: what is
        // still owed is saved as live operations.
        let _ = tokio::time::timeout(HAND_OFF_DRAIN, self.drained()).await;
        // Closed meanwhile (a lost lease among others): the keeper's word says how it ended.
        let _ = self.close().await;
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::Store(err)),
            Err(_) => Err(Error::Closed),
        }
    }
}

/// A lease the session holds, and its keeper's decisions ([`Keeper`]) on the shell's clock
/// (durations since `epoch`).
pub(crate) struct Held {
    store: Arc<dyn SessionStore>,
    lease: Lease,
    keeper: Keeper,
    epoch: Instant,
}

/// A store call under way: a renewal or a save, with its answer.
type Call = Pin<Box<dyn Future<Output = Result<(), session_store::Error>> + Send>>;

impl Ownership {
    /// Takes the lease (before any dial) and loads what the key's last owner saved; on a
    /// failed load the lease is given back.
    pub(crate) async fn acquire(&self, random: u64) -> Result<(Held, Option<Persisted>), Error> {
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
        let held = Held {
            store: Arc::clone(&self.store),
            lease,
            keeper: Keeper::new(self.ttl, Duration::ZERO),
            epoch: sent,
        };
        let loaded =
            match tokio::time::timeout_at(held.close_by(), self.store.load(&self.key)).await {
                Ok(Ok(saved)) => saved.map(|saved| from_stored(saved.session)),
                Ok(Err(err)) => {
                    let _ = release(self.store.as_ref(), &held.lease).await;
                    return Err(Error::Store(err));
                }
                Err(_) => {
                    let _ = release(self.store.as_ref(), &held.lease).await;
                    return Err(Error::Store(session_store::Error::Timeout {
                        limit: self.ttl,
                    }));
                }
            };
        Ok((held, loaded))
    }
}

/// Whether the session state has reached its end: closed, and its socket gone.
fn finished(shared: &Shared) -> bool {
    shared.lock().conduit.is_finished()
}

impl Held {
    /// The last moment the session may still be writing (the keeper's `close_by`).
    fn close_by(&self) -> Instant {
        self.epoch + self.keeper.close_by()
    }

    /// Now on the keeper's clock.
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// When the keeper must be polled next, if ever.
    fn wake(&self) -> Option<Instant> {
        self.keeper.wake().map(|at| self.epoch + at)
    }

    /// A renewal now, bounded by the time the session may still write (`None`: not answered
    /// in time; the keeper then loses the lease).
    fn renew(&self) -> StoreCall {
        let store = Arc::clone(&self.store);
        let lease = self.lease.clone();
        let limit = self.close_by();
        Box::pin(async move {
            tokio::time::timeout_at(limit, store.renew(&lease))
                .await
                .ok()
        })
    }

    /// A save of the session's state now, conditional on the lease (bounded by the time the
    /// session may still write).
    fn save(&self, shared: &Shared) -> Call {
        let state = shared.lock().conduit.core().persisted();
        let stored = to_stored(state);
        let store = Arc::clone(&self.store);
        let lease = self.lease.clone();
        let limit = self.close_by();
        let ttl = self.lease.ttl();
        Box::pin(async move {
            match tokio::time::timeout_at(limit, store.save(&lease, &stored)).await {
                Ok(result) => result,
                Err(_) => Err(session_store::Error::Timeout { limit: ttl }),
            }
        })
    }

    /// The session's lease keeper, spawned as soon as the lease is taken: drives the
    /// [`Keeper`] (renewals while `connect` runs, then while the session runs, saves of the
    /// session's state as it changes, the final save and the release once the session has
    /// ended and its socket is gone); closes the session when the lease is lost; releases it
    /// when the connect fails (`None`).
    pub(crate) async fn keep(mut self, session: oneshot::Receiver<Option<Arc<Shared>>>) {
        tokio::pin!(session);
        let mut renewing: Option<Renewing> = None;
        let shared = loop {
            while let Some(order) = self.keeper.poll(self.now(), None) {
                match order {
                    KeeperOrder::Renew => renewing = Some(self.renew()),
                    KeeperOrder::Lose(why) => {
                        // Lost while connecting: the session closes the moment it exists.
                        if let Ok(Some(shared)) = session.await {
                            lose(&shared, why, lost_in_time(&self.keeper));
                        }
                        return;
                    }
                    // Neither comes without a session.
                    KeeperOrder::Save(_) | KeeperOrder::Release => {}
                }
            }
            let wake = self.wake().unwrap_or_else(|| self.close_by());
            tokio::select! {
                connected = &mut session => match connected {
                    Ok(Some(shared)) => break shared,
                    _ => {
                        let _ = release(self.store.as_ref(), &self.lease).await;
                        return;
                    }
                },
                () = tokio::time::sleep_until(wake) => {}
                answer = answered(&mut renewing) => {
                    renewing = None;
                    if let Some(result) = answer {
                        if let Renewed::Lost(why, err) = self.keeper.on_renewal(self.now(), result) {
                            if let Ok(Some(shared)) = session.await {
                                lose(&shared, why, err);
                            }
                            return;
                        }
                    }
                }
            }
        };
        // Woken when the persist mark or the end changes, not by every frame.
        let mut changed = shared.persist.subscribe();
        let mut saving: Option<Call> = None;
        // The error of the final save, if it failed.
        let mut last: Option<session_store::Error> = None;
        let mut ended = false;
        loop {
            loop {
                let mark = shared.lock().conduit.core().persist_mark();
                let state = (mark, ended || finished(&shared));
                let Some(order) = self.keeper.poll(self.now(), Some(state)) else {
                    break;
                };
                match order {
                    KeeperOrder::Renew => renewing = Some(self.renew()),
                    KeeperOrder::Save(_) => saving = Some(self.save(&shared)),
                    KeeperOrder::Lose(why) => {
                        lose(&shared, why, lost_in_time(&self.keeper));
                        return;
                    }
                    KeeperOrder::Release => {
                        // Break before make: the socket is gone and the final state saved (or
                        // its save failed: the lease is given back all the same).
                        let released = release(self.store.as_ref(), &self.lease).await;
                        let outcome = match last {
                            Some(err) => Err(err),
                            None => released,
                        };
                        shared.hand_off.tell(outcome);
                        return;
                    }
                }
            }
            let wake = self.wake();
            tokio::select! {
                () = sleep_until(wake) => {}
                changed = changed.changed(), if !ended => {
                    shared.keeper_wakeups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if changed.is_err() {
                        // Every handle of the session is gone: it is over.
                        ended = true;
                    }
                }
                answer = answered(&mut renewing) => {
                    renewing = None;
                    // Not answered in time (`None`): the keeper's next poll loses the lease.
                    if let Some(result) = answer {
                        match self.keeper.on_renewal(self.now(), result) {
                            Renewed::Kept => {}
                            Renewed::Retry(why) => shared.events.push(SessionEvent::Warning(
                                format!("could not renew the session's lease, retrying: {why}"),
                            )),
                            Renewed::Lost(why, err) => {
                                lose(&shared, why, err);
                                return;
                            }
                        }
                    }
                },
                result = in_flight(&mut saving) => {
                    saving = None;
                    match self.keeper.on_saved(result) {
                        SaveOutcome::Saved => {}
                        SaveOutcome::Final(result) => last = result.err(),
                        SaveOutcome::Lost(why, err) => {
                            lose(&shared, why, err);
                            return;
                        }
                        SaveOutcome::Failed { warn, err } => {
                            if warn {
                                shared.events.push(SessionEvent::Warning(format!(
                                    "could not save the session's state, retrying at the \
                                     next change or renewal: {err}"
                                )));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A renewal under way (its answer, or `None` when it timed out).
type Renewing = Pin<Box<dyn Future<Output = Option<Result<(), session_store::Error>>> + Send>>;

/// The renewal under way's answer, or never.
async fn answered(renewing: &mut Option<Renewing>) -> Option<Result<(), session_store::Error>> {
    match renewing.as_mut() {
        Some(renewing) => renewing.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The error a lease not renewed in time is reported with.
fn lost_in_time(keeper: &Keeper) -> session_store::Error {
    session_store::Error::Timeout {
        limit: keeper.ttl(),
    }
}

/// The save under way's answer, or never.
async fn in_flight(saving: &mut Option<Call>) -> Result<(), session_store::Error> {
    match saving.as_mut() {
        Some(saving) => saving.await,
        None => std::future::pending().await,
    }
}

/// Closes the session: another owner may hold it, or soon will.
fn lose(shared: &Shared, why: String, err: session_store::Error) {
    shared
        .events
        .push(SessionEvent::Warning(format!("closing the session: {why}")));
    // Without awaiting the server's answer: the socket must be gone before the lease passes.
    shared.with(|state, now| state.conduit.close_at_once(now));
    shared.hand_off.tell(Err(err));
}

/// Marks `shared` as owning a lease (before `connect` returns it).
pub(crate) fn owned(shared: &Shared) {
    shared.hand_off.owned.store(true, Ordering::Release);
}

/// Gives `lease` back, waiting at most its TTL (by then it has run out anyway): a store that
/// never answers cannot hang `hand_off` or a failed `connect`.
async fn release(store: &dyn SessionStore, lease: &Lease) -> Result<(), session_store::Error> {
    let limit = lease.ttl();
    tokio::time::timeout(limit, store.release(lease))
        .await
        .unwrap_or(Err(session_store::Error::Timeout { limit }))
}
