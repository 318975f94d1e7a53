//! Read access to the server's state for tests, and waiting for conditions without sleeps.

use crate::session::{ConnectionRecord, SessionId, SessionSnapshot};
use crate::shared::{ServerState, Shared};

/// A borrowed view of everything the server knows, passed to `FakeServer::inspect`,
/// `FakeServer::wait_for` and `SimServer::inspect` predicates.
#[derive(Debug, Clone, Copy)]
pub struct ServerView<'a> {
    pub(crate) state: &'a ServerState,
}

impl<'a> ServerView<'a> {
    /// Session ids in creation order.
    #[must_use]
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.state.sessions.keys().copied().collect()
    }

    /// One session.
    #[must_use]
    pub fn session(&self, id: SessionId) -> Option<&'a SessionSnapshot> {
        self.state.sessions.get(&id)
    }

    /// The most recently created session.
    #[must_use]
    pub fn latest_session(&self) -> Option<&'a SessionSnapshot> {
        self.state.sessions.values().next_back()
    }

    /// Every connection ever accepted (joined a session or not), in accept order.
    #[must_use]
    pub fn connections(&self) -> Vec<&'a ConnectionRecord> {
        let mut all: Vec<&ConnectionRecord> = self
            .state
            .sessions
            .values()
            .flat_map(|s| s.connections.iter())
            .chain(self.state.unattached.iter())
            .collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// The most recently accepted connection.
    #[must_use]
    pub fn latest_connection(&self) -> Option<&'a ConnectionRecord> {
        self.connections().pop()
    }

    /// Number of connections open now.
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.state.live.len()
    }
}

/// The inspection calls `FakeServer` and `SimServer` both offer, written once.
impl Shared {
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(&ServerView<'_>) -> T) -> T {
        self.read(|state| f(&ServerView { state }))
    }

    pub(crate) fn session_ids(&self) -> Vec<SessionId> {
        self.inspect(|view| view.session_ids())
    }

    pub(crate) fn session_copy(&self, id: SessionId) -> Option<SessionSnapshot> {
        self.inspect(|view| view.session(id).cloned())
    }

    pub(crate) fn latest_session_copy(&self) -> Option<SessionSnapshot> {
        self.inspect(|view| view.latest_session().cloned())
    }

    pub(crate) fn connection_copies(&self) -> Vec<ConnectionRecord> {
        self.inspect(|view| view.connections().into_iter().cloned().collect())
    }
}
