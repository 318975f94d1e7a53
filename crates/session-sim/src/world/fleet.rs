//! Two workers and a session store on virtual time (`Profile::fleet`): the session's owner
//! holds a lease of its key in a [`MemoryStore`] whose clock is the world's ([`ManualClock`],
//! moved to virtual time before every call), and its lease keeper is agent-glue's own
//! sans-IO [`Keeper`], the machine the tokio shell (`ownership.rs`) drives, here driven on the
//! worker's clock (which drifts against the store's by the profile's parts per million).
//!
//! The world carries out the keeper's orders as store calls with a latency each way (a
//! partition makes them fail at once, or go unanswered until the keeper's bound, as the
//! shell's time limits do), hands the answers back, and closes the session when the keeper
//! says the lease is lost. A schedule kills the owner (its conduit and keeper vanish, its
//! sockets reset at the server), drains it (`hand_off`: the session settles or
//! `HAND_OFF_DRAIN` passes, closes; the keeper saves the final state and releases), or
//! partitions it from the store; meanwhile the other worker tries to acquire the lease every
//! `poll` ms, and once it has it builds a session as an application restarting from the store
//! does: its context is the last saved `L` (what the application persisted), resumed from the
//! saved state (`LiveSessionBuilder::resume_from`), with the application's instructions and
//! tools. The application's steps wait while no worker acts for the session.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use agent_glue::conduit::Command;
use agent_glue::keeper::{Keeper, KeeperOrder, Renewed, SaveOutcome, from_stored, to_stored};
use agent_glue::{HAND_OFF_DRAIN, SessionEvent};
use resume_policy::Millis;
use session_store::{
    Error as StoreError, Lease, ManualClock, MemoryStore, OwnerId, Saved, SessionKey, SessionStore,
    StoredSession,
};

use super::{Ev, World, session_builder};
use crate::checks::Violation;
use crate::schedule::{self, Op};

/// A worker's call on its way to the store.
#[derive(Debug)]
pub(crate) enum StoreCall {
    Acquire,
    Renew(Lease),
    Save(Lease, Box<StoredSession>),
    Release(Lease),
}

/// The store's answer on its way back.
#[derive(Debug)]
pub(crate) enum StoreReply {
    Acquired(Box<Result<(Lease, Option<Saved>), StoreError>>),
    Renewed(Result<(), StoreError>),
    Saved(Result<(), StoreError>),
    Released(Result<(), StoreError>),
}

/// Who acts for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The current worker owns it.
    Running,
    /// The current worker hands it off (`hand_off` drains it).
    Draining,
    /// The current worker is gone (killed), or its session closed for a takeover (drained,
    /// lease lost): the next one tries to acquire the lease.
    Leaving,
}

/// The workers and the store.
pub(crate) struct Fleet {
    config: schedule::Fleet,
    model: String,
    store: MemoryStore,
    clock: ManualClock,
    /// Where `clock` stands (virtual ms).
    clock_at: u64,
    key: SessionKey,
    /// The current worker (0 first; the next one is `generation + 1`, on the other worker).
    generation: u64,
    /// When the current worker's keeper clock started (virtual ms).
    started: u64,
    keeper: Option<Keeper>,
    lease: Option<Lease>,
    phase: Phase,
    /// The current worker cannot reach the store until then; `true`: calls go unanswered.
    partition: Option<(u64, bool)>,
    /// The application's step that waits for the next owner.
    deferred: Option<usize>,
    keeper_wake: Option<u64>,
    /// When the waiting worker sent its acquire (virtual ms).
    acquire_sent: u64,
    /// The current worker's session ends without its final save (killed, or its lease lost).
    unclean: bool,
    /// Takeovers completed, and leases lost (the keeper closed the session).
    pub(crate) takeovers: u64,
    pub(crate) lost: u64,
}

impl Fleet {
    pub(crate) fn new(config: schedule::Fleet, model: String) -> Self {
        let clock = ManualClock::new(0);
        Self {
            config,
            model,
            store: MemoryStore::new().with_clock(Arc::new(clock.clone())),
            clock,
            clock_at: 0,
            key: SessionKey::new("sim-session").unwrap_or_else(|_| unreachable!()),
            generation: 0,
            started: 0,
            keeper: None,
            lease: None,
            phase: Phase::Running,
            partition: None,
            deferred: None,
            keeper_wake: None,
            acquire_sent: 0,
            unclean: false,
            takeovers: 0,
            lost: 0,
        }
    }

    /// Whether the session is changing hands (no worker acts for it now).
    pub(crate) fn changing_hands(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Holds step `k` back while the session changes hands; `true` if it was.
    pub(crate) fn defer(&mut self, k: usize) -> bool {
        if self.phase == Phase::Running {
            return false;
        }
        self.deferred.get_or_insert(k);
        true
    }

    /// Worker `generation`'s drift, in parts per million.
    fn drift(&self, generation: u64) -> i64 {
        i64::from(self.config.drift_ppm[usize::from(generation % 2 == 1)])
    }

    /// The current worker's clock at virtual `now`.
    fn clock_of(&self, now: u64) -> Duration {
        let elapsed = i128::from(now.saturating_sub(self.started)) * 1_000;
        let us = elapsed * i128::from(1_000_000 + self.drift(self.generation)) / 1_000_000;
        Duration::from_micros(u64::try_from(us).unwrap_or(0))
    }

    /// The virtual ms at which the current worker's clock shows `at` (rounded up).
    fn virtual_of(&self, at: Duration) -> u64 {
        let us = u128::from(u64::try_from(at.as_micros()).unwrap_or(u64::MAX / 4));
        let rate = u128::try_from(1_000_000 + self.drift(self.generation)).unwrap_or(1_000_000);
        let real = (us * 1_000_000).div_ceil(rate);
        self.started + u64::try_from(real.div_ceil(1_000)).unwrap_or(u64::MAX / 2)
    }

    /// The store's clock to `now`.
    fn tick(&mut self, now: u64) {
        if now > self.clock_at {
            self.clock
                .advance(Duration::from_millis(now - self.clock_at));
            self.clock_at = now;
        }
    }

    fn owner(generation: u64) -> OwnerId {
        OwnerId::new(format!("worker-{}-run-{generation}", generation % 2))
            .unwrap_or_else(|_| unreachable!())
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.config.ttl)
    }
}

/// Runs a store future that is ready at once (`MemoryStore` never waits).
fn now_or_never<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("a MemoryStore call waited"),
    }
}

impl World<'_> {
    /// The first worker takes the lease before anything else (as `connect` does).
    pub(super) fn fleet_start(&mut self) {
        let Some(mut fleet) = self.fleet.take() else {
            return;
        };
        let ttl = fleet.ttl();
        match now_or_never(fleet.store.acquire(&fleet.key, &Fleet::owner(0), ttl)) {
            Ok(lease) => {
                fleet.lease = Some(lease);
                fleet.keeper = Some(Keeper::new(ttl, Duration::ZERO));
            }
            Err(e) => self
                .violations
                .push(Violation::new("setup", format!("first acquire: {e}"))),
        }
        self.fleet = Some(fleet);
        self.keep_lease();
    }

    /// A schedule's kill, drain or partition; `true` if `op` was one.
    pub(super) fn fleet_op(&mut self, op: Op) -> bool {
        if !matches!(op, Op::Kill | Op::Drain | Op::Partition(..)) {
            return false;
        }
        let Some(mut fleet) = self.fleet.take() else {
            return true;
        };
        let now = self.now;
        let open = self.conduit.core().closed().is_none() && !self.dead;
        match op {
            Op::Kill if fleet.phase == Phase::Running && open => {
                self.note(format!("fault: worker {} killed", fleet.generation % 2));
                self.killed = true;
                self.dead = true;
                self.conduit_timer = None;
                self.socket = None;
                let lat = self.latency();
                let mut vanish = Vec::new();
                for (&conn, link) in self.links.iter_mut().filter(|(_, l)| l.client_open) {
                    link.client_open = false;
                    link.ended_at.get_or_insert(now);
                    // Its kernel resets the socket: frames on the wire arrive, then the end.
                    let at = (now + lat).max(link.c2s_at);
                    link.c2s_at = at;
                    vanish.push((at, conn));
                }
                for (at, conn) in vanish {
                    self.at(at, Ev::VanishAtServer(conn));
                }
                fleet.keeper = None;
                fleet.lease = None;
                fleet.unclean = true;
                self.changing_hands(&mut fleet);
            }
            Op::Drain if fleet.phase == Phase::Running && open => {
                self.note(format!(
                    "app hands off worker {}'s session",
                    fleet.generation % 2
                ));
                fleet.phase = Phase::Draining;
                let over = now + u64::try_from(HAND_OFF_DRAIN.as_millis()).unwrap_or(5_000);
                self.at(over, Ev::DrainOver(fleet.generation));
                self.changing_hands(&mut fleet);
            }
            Op::Partition(tenths, unanswered) => {
                let until = now + u64::from(tenths) * 100;
                self.note(format!(
                    "fault: worker {} cut off from the store until {until} ms ({})",
                    fleet.generation % 2,
                    if unanswered { "unanswered" } else { "failing" }
                ));
                fleet.partition = Some((until, unanswered));
            }
            _ => {}
        }
        self.fleet = Some(fleet);
        true
    }

    /// The session leaves its worker: the application waits, the next worker starts trying to
    /// acquire the lease.
    fn changing_hands(&mut self, fleet: &mut Fleet) {
        if fleet.phase == Phase::Running {
            fleet.phase = Phase::Leaving;
        }
        if let Some(waiting) = self.app.waiting.take() {
            fleet.deferred.get_or_insert(waiting.next);
        }
        self.app.held_answers.clear();
        let at = self.now + fleet.config.poll;
        self.at(at, Ev::TryAcquire(fleet.generation + 1));
    }

    /// Drives the current worker's keeper: carries out its orders, re-arms its wake.
    /// Returns whether the session was closed (the world pumps again).
    pub(super) fn keep_lease(&mut self) -> bool {
        let Some(mut fleet) = self.fleet.take() else {
            return false;
        };
        let open = self.conduit.core().closed().is_none();
        if !self.dead {
            if fleet.phase == Phase::Draining
                && (self.conduit.is_drained() || self.conduit.core().closed().is_some())
            {
                self.drained(&mut fleet);
            }
            self.keeper_orders(&mut fleet);
        }
        self.fleet = Some(fleet);
        open && self.conduit.core().closed().is_some()
    }

    fn keeper_orders(&mut self, fleet: &mut Fleet) {
        let now = self.now;
        for _ in 0..16 {
            let clock = fleet.clock_of(now);
            let Some(keeper) = fleet.keeper.as_mut() else {
                return;
            };
            let state = (
                self.conduit.core().persist_mark(),
                self.conduit.is_finished(),
            );
            let Some(order) = keeper.poll(clock, Some(state)) else {
                break;
            };
            let Some(lease) = fleet.lease.clone() else {
                return;
            };
            match order {
                KeeperOrder::Renew => self.store_call(fleet, StoreCall::Renew(lease)),
                KeeperOrder::Save(_) => {
                    let stored = to_stored(self.conduit.core().persisted());
                    self.store_call(fleet, StoreCall::Save(lease, Box::new(stored)));
                }
                KeeperOrder::Lose(why) => self.lose(fleet, why),
                KeeperOrder::Release => {
                    self.store_call(fleet, StoreCall::Release(lease));
                    fleet.keeper = None;
                }
            }
        }
        let wake = fleet
            .keeper
            .as_ref()
            .and_then(Keeper::wake)
            // Never now: the keeper's clock at the rounded-up ms may still be a hair short.
            .map(|at| fleet.virtual_of(at).max(now + 1));
        if let Some(at) = wake {
            if fleet.keeper_wake != Some(at) {
                fleet.keeper_wake = Some(at);
                self.at(at, Ev::KeeperWake(fleet.generation, at));
            }
        }
    }

    /// The keeper says the lease is lost: the session closes now (as `ownership.rs` does),
    /// and the other worker takes it over.
    fn lose(&mut self, fleet: &mut Fleet, why: String) {
        let line = format!("closing the session: {why}");
        self.note(format!("worker {} keeper: {line}", fleet.generation % 2));
        fleet.keeper = None;
        fleet.lost += 1;
        fleet.unclean = true;
        self.app
            .events
            .push((self.now, SessionEvent::Warning(line)));
        self.conduit.close_at_once(Millis(self.now));
        if fleet.phase == Phase::Running {
            self.changing_hands(fleet);
        } else {
            fleet.phase = Phase::Leaving;
        }
    }

    /// The drain is over (settled, or `HAND_OFF_DRAIN` passed): `hand_off` closes.
    fn drained(&mut self, fleet: &mut Fleet) {
        fleet.phase = Phase::Leaving;
        if self.conduit.core().closed().is_none() {
            self.note("hand_off closes the session".to_owned());
            let _ = self.conduit.command(Millis(self.now), Command::Close);
        }
    }

    pub(super) fn drain_over(&mut self, generation: u64) {
        let Some(mut fleet) = self.fleet.take() else {
            return;
        };
        if fleet.generation == generation && fleet.phase == Phase::Draining && !self.dead {
            self.drained(&mut fleet);
        }
        self.fleet = Some(fleet);
        // (`handle` pumps after every event: the close goes out.)
    }

    pub(super) fn keeper_wake(&mut self, generation: u64, at: u64) {
        if let Some(fleet) = self.fleet.as_mut() {
            if fleet.generation == generation && fleet.keeper_wake == Some(at) {
                fleet.keeper_wake = None;
            }
        }
    }

    /// Sends the current worker's `call` to the store (or not, across a partition).
    fn store_call(&mut self, fleet: &Fleet, call: StoreCall) {
        let now = self.now;
        let lat = fleet.config.store_latency;
        let generation = fleet.generation;
        match fleet.partition.filter(|(until, _)| now < *until) {
            None => self.at(now + lat, Ev::AtStore(generation, call)),
            Some((_, false)) => {
                // Refused at once (connection refused): a transient failure.
                let err = || StoreError::Timeout {
                    limit: Duration::from_millis(lat),
                };
                let reply = match call {
                    StoreCall::Renew(_) => StoreReply::Renewed(Err(err())),
                    StoreCall::Save(..) => StoreReply::Saved(Err(err())),
                    StoreCall::Release(_) => StoreReply::Released(Err(err())),
                    StoreCall::Acquire => StoreReply::Acquired(Box::new(Err(err()))),
                };
                self.at(now + 2 * lat, Ev::FromStore(generation, reply));
            }
            Some((_, true)) => {
                // Never answered: a save's time limit (the keeper's bound) ends it; a renewal
                // is lost at that bound by the keeper itself.
                if let (StoreCall::Save(..), Some(keeper)) = (&call, &fleet.keeper) {
                    let at = fleet.virtual_of(keeper.close_by());
                    let reply = StoreReply::Saved(Err(StoreError::Timeout { limit: fleet.ttl() }));
                    self.at(at, Ev::FromStore(generation, reply));
                }
            }
        }
    }

    /// A call reaches the store: the store (on virtual time) answers it.
    pub(super) fn at_store(&mut self, generation: u64, call: StoreCall) {
        let Some(mut fleet) = self.fleet.take() else {
            return;
        };
        fleet.tick(self.now);
        let store = &fleet.store;
        let reply = match call {
            StoreCall::Acquire => StoreReply::Acquired(Box::new(
                now_or_never(store.acquire(&fleet.key, &Fleet::owner(generation), fleet.ttl()))
                    .and_then(|lease| {
                        let saved = now_or_never(store.load(&fleet.key))?;
                        Ok((lease, saved))
                    }),
            )),
            StoreCall::Renew(lease) => StoreReply::Renewed(now_or_never(store.renew(&lease))),
            StoreCall::Save(lease, stored) => {
                StoreReply::Saved(now_or_never(store.save(&lease, &stored)))
            }
            StoreCall::Release(lease) => StoreReply::Released(now_or_never(store.release(&lease))),
        };
        let at = self.now + fleet.config.store_latency;
        self.fleet = Some(fleet);
        self.at(at, Ev::FromStore(generation, reply));
    }

    /// The store's answer reaches worker `generation`.
    pub(super) fn on_store_reply(&mut self, generation: u64, reply: StoreReply) {
        let Some(mut fleet) = self.fleet.take() else {
            return;
        };
        let now = self.now;
        if let StoreReply::Acquired(result) = reply {
            if generation == fleet.generation + 1 && fleet.phase == Phase::Leaving {
                match *result {
                    Ok((lease, saved)) => self.take_over(&mut fleet, lease, saved),
                    Err(_) => {
                        let at = now + fleet.config.poll;
                        self.at(at, Ev::TryAcquire(generation));
                    }
                }
            }
            self.fleet = Some(fleet);
            return;
        }
        if generation != fleet.generation || self.dead {
            // A dead worker's answer, or an earlier worker's.
            self.fleet = Some(fleet);
            return;
        }
        let clock = fleet.clock_of(now);
        if let Some(keeper) = fleet.keeper.as_mut() {
            // The shell bounds every call by the keeper's `close_by`: a later answer is a
            // time limit.
            let late = clock > keeper.close_by();
            let bounded = |result: Result<(), StoreError>, ttl| {
                if late {
                    Err(StoreError::Timeout { limit: ttl })
                } else {
                    result
                }
            };
            let ttl = keeper.ttl();
            match reply {
                StoreReply::Renewed(result) if !late => match keeper.on_renewal(clock, result) {
                    Renewed::Kept => {}
                    Renewed::Retry(why) => self.note(format!("lease renewal retried: {why}")),
                    Renewed::Lost(why, _) => self.lose(&mut fleet, why),
                },
                StoreReply::Saved(result) => match keeper.on_saved(bounded(result, ttl)) {
                    SaveOutcome::Lost(why, _) => self.lose(&mut fleet, why),
                    SaveOutcome::Failed { err, .. } => {
                        self.note(format!("save failed: {err}"));
                    }
                    SaveOutcome::Final(Err(err)) => {
                        // The next owner resumes from an earlier save.
                        self.note(format!("final save failed: {err}"));
                        fleet.unclean = true;
                    }
                    SaveOutcome::Saved | SaveOutcome::Final(Ok(())) => {}
                },
                StoreReply::Released(result) => {
                    self.note(format!("lease released: {result:?}"));
                }
                _ => {}
            }
        }
        self.fleet = Some(fleet);
    }

    /// The waiting worker tries to acquire the lease.
    pub(super) fn try_acquire(&mut self, generation: u64) {
        let Some(mut fleet) = self.fleet.take() else {
            return;
        };
        if generation == fleet.generation + 1 && fleet.phase == Phase::Leaving {
            fleet.acquire_sent = self.now;
            let at = self.now + fleet.config.store_latency;
            self.at(at, Ev::AtStore(generation, StoreCall::Acquire));
        } else if generation == fleet.generation + 1 && fleet.phase == Phase::Draining {
            // Not handed off yet: try again later.
            let at = self.now + fleet.config.poll;
            self.at(at, Ev::TryAcquire(generation));
        }
        self.fleet = Some(fleet);
    }

    /// The next worker holds the lease: it builds the session from what was last saved, as
    /// an application restarting from the store does.
    fn take_over(&mut self, fleet: &mut Fleet, lease: Lease, saved: Option<Saved>) {
        let now = self.now;
        let generation = fleet.generation + 1;
        // Break before make: the previous owner holds no socket now. (One it has let go of
        // may still be open at the server for its end's one-way latency: the next owner's dial
        // arriving before that end is what `dial` counts as two sockets.)
        let open: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, l)| l.server_open && l.client_open)
            .map(|(c, _)| c.0)
            .collect();
        if !open.is_empty() {
            self.violations.push(Violation::new(
                "two sockets",
                format!(
                    "worker {} took the lease (epoch {}) while connections {open:?} of the \
                     previous owner were open at the server",
                    generation % 2,
                    lease.epoch()
                ),
            ));
        }
        // Whatever the previous worker's process still held is gone with its session.
        let lat = self.latency();
        let mut vanish = Vec::new();
        for (&conn, link) in self.links.iter_mut().filter(|(_, l)| l.client_open) {
            link.client_open = false;
            link.ended_at.get_or_insert(now);
            vanish.push(((now + lat).max(link.c2s_at), conn));
        }
        for (at, conn) in vanish {
            self.at(at, Ev::VanishAtServer(conn));
        }
        let (instructions, tools) = self.app.state.config();
        let given = saved
            .as_ref()
            .map(|s| s.session.desired.clone())
            .unwrap_or_default();
        // Until it completes a setup, the new owner's server session is the one its restored
        // handle names (what the previous owner did after its last save is not its concern).
        self.current = saved
            .as_ref()
            .and_then(|s| s.session.handle.as_ref())
            .and_then(|h| self.handle_conns.get(h.token.expose()).copied());
        let built = session_builder(&self.schedule.profile, &fleet.model).map(|builder| {
            let mut builder = builder.tools(tools).initial_context(given);
            if let Some(text) = instructions {
                builder = builder.instructions(text);
            }
            if let Some(saved) = saved {
                builder = builder.resume_from(from_stored(saved.session));
            }
            builder
        });
        let conduit = built.and_then(|b| {
            b.into_sans_io(Millis(now), self.schedule.seed ^ generation)
                .map_err(|e| e.to_string())
        });
        let mut conduit = match conduit {
            Ok(conduit) => conduit,
            Err(e) => {
                self.violations.push(Violation::new(
                    "takeover",
                    format!("building the session: {e}"),
                ));
                return;
            }
        };
        conduit.audit_audio();
        if !self.dead {
            // Pushed into a session that closed (hand-off, lost lease) and never written: it
            // stays with that session, unwritten, as in any closed session.
            self.audio_left += self.conduit.waiting_audio_bytes() as u64;
        }
        if std::mem::take(&mut fleet.unclean) {
            self.lineage += 1;
        }
        self.note(format!(
            "worker {} takes the session over (epoch {})",
            generation % 2,
            lease.epoch()
        ));
        self.conduit = conduit;
        self.dead = false;
        self.conduit_timer = None;
        self.socket = None;
        self.last_opened = None;
        self.must_end = None;
        self.conn_base = generation * 1_000_000;
        debug_assert!(self.links.keys().all(|c| c.0 < self.conn_base));
        fleet.generation = generation;
        fleet.started = fleet.acquire_sent;
        fleet.keeper = Some(Keeper::new(fleet.ttl(), Duration::ZERO));
        fleet.lease = Some(lease);
        fleet.phase = Phase::Running;
        fleet.partition = None;
        fleet.keeper_wake = None;
        fleet.takeovers += 1;
        self.owners.push(self.app.events.len());
        // The previous worker's tool runs ended with it.
        let calls = self.app.calls.clone();
        self.app.answered.extend(calls);
        self.app.mic.connection_ended();
        self.app.answering = false;
        let core = self.conduit.core();
        let (version, context) = (core.version(), core.chat_ctx().clone());
        self.app.state.restarted(version, context);
        if let Some(k) = fleet.deferred.take() {
            self.schedule_step(k, now, now);
        }
    }
}
