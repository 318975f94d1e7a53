//! State shared by the accept loop, the connections and the test-facing handles.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::FakeConfig;
use crate::faults::{FaultAction, Trigger};
use crate::handles::HandleBook;
use crate::load::{self, LoadCounters};
use crate::session::{ConnectionId, ConnectionRecord, SessionId, SessionSnapshot};

/// A command from the test side to one live connection.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Send a close frame.
    Close(u16, String),
    /// Send this payload as one frame, unchecked.
    SendRaw(Vec<u8>, bool),
    /// Send `goAway` now with this `timeLeft`.
    GoAway(Duration),
    /// Close now as the hard close at a connection's age does (1011 `Deadline expired …`,
    /// and the session marked for [`Faults::refuse_resumes_after_hard_close`]).
    HardClose,
    /// Sending conditions (stall, delay) changed: re-check the outgoing queue.
    Wake,
}

/// Faults that are not addressed to one connection.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    /// The next resumed setup is closed with this code and reason.
    pub(crate) refuse_next_resume: Option<(u16, String)>,
    /// Client messages containing this text are refused with this code and reason.
    pub(crate) reject_containing: Option<(String, u16, String)>,
    /// Remaining upgrades to refuse, and the HTTP status to refuse them with.
    pub(crate) refuse_upgrades: Option<(u32, u16)>,
    /// Remaining `setup`s to leave unanswered.
    pub(crate) ignore_setups: u32,
    /// No resumable update (no new handle) is issued while set.
    pub(crate) withhold_handles: bool,
    /// No data frame leaves the server while set.
    pub(crate) stalled: bool,
    /// Every data frame leaves this long after it was produced.
    pub(crate) delay: Duration,
    /// Scheduled faults; only the head is armed.
    pub(crate) scheduled: VecDeque<(Trigger, FaultAction)>,
    /// Client messages seen by the armed `Trigger::ClientMessages` head.
    pub(crate) counted: u32,
    /// The hard-close age in force (`None`: the configuration's, by family).
    pub(crate) hard_close: Option<Option<Duration>>,
    /// Resumes still to refuse with 1007 after a hard close.
    pub(crate) refuse_after_hard_close: u32,
    /// How late pings are answered while data flows.
    pub(crate) pong_delay: Duration,
    /// Ephemeral tokens, by token.
    pub(crate) tokens: HashMap<String, EphemeralToken>,
}

/// An ephemeral token the test side issued (`Faults::issue_token`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EphemeralToken {
    /// Connections it may still open (each connection spends one: a resume too).
    pub(crate) uses_left: u32,
    /// When it stops working.
    pub(crate) expires_at: Instant,
}

impl FaultState {
    /// Pops the head if this event fires it.
    pub(crate) fn fire(&mut self, event: Trigger) -> Option<FaultAction> {
        let (trigger, _) = self.scheduled.front()?;
        let fires = match (trigger, event) {
            (Trigger::ClientMessages(n), Trigger::ClientMessages(_)) => {
                self.counted += 1;
                self.counted >= *n
            }
            (armed, event) => *armed == event,
        };
        if fires {
            self.counted = 0;
            self.scheduled.pop_front().map(|(_, action)| action)
        } else {
            None
        }
    }
}

/// Everything the server knows.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    pub(crate) sessions: BTreeMap<SessionId, SessionSnapshot>,
    /// Connections that never joined a session (refused setups, failed first frames).
    pub(crate) unattached: Vec<ConnectionRecord>,
    /// The session each attached connection's record lives in (every frame received looks its
    /// record up: constant work however many sessions the server has seen).
    pub(crate) attached: HashMap<ConnectionId, SessionId>,
    pub(crate) handles: HandleBook,
    pub(crate) live: BTreeMap<ConnectionId, mpsc::UnboundedSender<Control>>,
    pub(crate) faults: FaultState,
    pub(crate) next_connection: u64,
    pub(crate) next_session: u64,
}

impl ServerState {
    /// The record of a connection, wherever it lives.
    pub(crate) fn connection_mut(&mut self, id: ConnectionId) -> Option<&mut ConnectionRecord> {
        if let Some(record) = self.unattached.iter_mut().find(|c| c.id == id) {
            return Some(record);
        }
        let session = *self.attached.get(&id)?;
        self.sessions.get_mut(&session)?.connection_mut(id)
    }

    /// Moves connection `id`'s record from the unattached ones into `session` (with the handle
    /// its setup resumed from, if it resumed).
    pub(crate) fn attach(&mut self, id: ConnectionId, session: SessionId, resumed: Option<&str>) {
        let Some(target) = self.sessions.get_mut(&session) else {
            return;
        };
        if let Some(at) = self.unattached.iter().position(|c| c.id == id) {
            let mut record = self.unattached.remove(at);
            record.session = Some(session);
            record.resumed_from = resumed.map(str::to_owned);
            target.connections.push(record);
            self.attached.insert(id, session);
        }
    }

    /// Sends a control to every live connection.
    pub(crate) fn broadcast(&self, control: &Control) {
        for sender in self.live.values() {
            // A connection that is ending has dropped its receiver: nothing to do.
            let _ = sender.send(control.clone());
        }
    }
}

/// Where the server logic reads the time.
#[derive(Debug)]
enum Clock {
    /// `tokio::time::Instant::now()`: real time, or tokio's paused time in tests.
    Real,
    /// Virtual time set by the simulator: `base` plus the nanoseconds in `elapsed`.
    Virtual { base: Instant, elapsed: AtomicU64 },
}

/// The origin of every virtual clock in this process, captured once: the only time the virtual
/// path reads a real clock. Shared by all simulated servers, so that the same calls give the same
/// `Instant`s in their records too.
fn virtual_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The shared core of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: FakeConfig,
    state: Mutex<ServerState>,
    version: watch::Sender<u64>,
    pub(crate) shutdown: watch::Sender<bool>,
    clock: Clock,
    /// Load mode's model audio frame, encoded once (`None` when load mode is off).
    pub(crate) load_frame: Option<tokio_tungstenite::tungstenite::Bytes>,
    /// Load mode's chunk counters (outside the state lock: they change on every chunk).
    pub(crate) load_counters: LoadCounters,
}

impl Shared {
    /// A server on real (tokio) time.
    pub(crate) fn new(config: FakeConfig) -> Self {
        Self::with_clock(config, Clock::Real)
    }

    /// A server on virtual time, starting at 0 (see [`Shared::set_elapsed`]).
    pub(crate) fn new_virtual(config: FakeConfig) -> Self {
        let clock = Clock::Virtual {
            base: virtual_base(),
            elapsed: AtomicU64::new(0),
        };
        Self::with_clock(config, clock)
    }

    fn with_clock(config: FakeConfig, clock: Clock) -> Self {
        let load_frame = config.audio_load.then(load::model_audio_frame);
        Shared {
            config,
            load_frame,
            load_counters: LoadCounters::default(),
            state: Mutex::new(ServerState::default()),
            version: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            clock,
        }
    }

    /// The time every piece of server logic uses.
    pub(crate) fn now(&self) -> Instant {
        match &self.clock {
            Clock::Real => Instant::now(),
            Clock::Virtual { base, elapsed } => {
                *base + Duration::from_nanos(elapsed.load(Ordering::Relaxed))
            }
        }
    }

    /// Sets the virtual clock to `elapsed` after its origin (no effect on real time).
    pub(crate) fn set_elapsed(&self, elapsed: Duration) {
        if let Clock::Virtual {
            elapsed: stored, ..
        } = &self.clock
        {
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            stored.store(nanos, Ordering::Relaxed);
        }
    }

    /// Reads the state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ServerState) -> T) -> T {
        f(&self.lock())
    }

    /// Changes the state and wakes every waiter.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut ServerState) -> T) -> T {
        let result = f(&mut self.lock());
        // Nobody subscribed (the simulator; no `wait_for` under way): nobody to wake. A
        // subscriber checks the state after subscribing, so it misses no change.
        if self.version.receiver_count() > 0 {
            self.version.send_modify(|v| *v = v.wrapping_add(1));
        }
        result
    }

    /// A receiver that sees every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, ServerState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
