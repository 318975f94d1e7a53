//! State shared by the accept loop, the connections and the test-facing handles.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::FakeConfig;
use crate::faults::{FaultAction, Trigger};
use crate::handles::HandleBook;
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
    /// Sending conditions (stall, delay) changed: re-check the outgoing queue.
    Wake,
}

/// Faults that are not addressed to one connection.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    /// The next resumed setup is closed with this code and reason.
    pub(crate) refuse_next_resume: Option<(u16, String)>,
    /// Remaining upgrades to refuse, and the HTTP status to refuse them with.
    pub(crate) refuse_upgrades: Option<(u32, u16)>,
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
        self.sessions
            .values_mut()
            .find_map(|session| session.connection_mut(id))
    }

    /// Sends a control to every live connection.
    pub(crate) fn broadcast(&self, control: &Control) {
        for sender in self.live.values() {
            // A connection that is ending has dropped its receiver: nothing to do.
            let _ = sender.send(control.clone());
        }
    }
}

/// The shared core of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: FakeConfig,
    state: Mutex<ServerState>,
    version: watch::Sender<u64>,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(config: FakeConfig) -> Self {
        Shared {
            config,
            state: Mutex::new(ServerState::default()),
            version: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Reads the state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ServerState) -> T) -> T {
        f(&self.lock())
    }

    /// Changes the state and wakes every waiter.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut ServerState) -> T) -> T {
        let result = f(&mut self.lock());
        self.version.send_modify(|v| *v = v.wrapping_add(1));
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
