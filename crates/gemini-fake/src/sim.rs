//! The fake server without sockets, without a runtime, on virtual time: the same conversation,
//! state, handles, faults and inspection as [`FakeServer`](crate::FakeServer), driven by calls.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use gemini_transport::wire::ServerMessage;
use tokio::time::Instant;

use crate::FakeConfig;
use crate::endpoint;
use crate::faults::Faults;
use crate::inspect::ServerView;
use crate::link::{self, Action, LinkCore, Outgoing};
use crate::session::{ConnectionEnd, ConnectionId, ConnectionRecord, SessionId, SessionSnapshot};
use crate::shared::Shared;

/// What the server does on one connection, in the order it does it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SimOutput {
    /// A server message, decoded (the socket server would send `message.to_json()` in a binary
    /// frame, or a text frame with [`FrameKind::Text`](crate::FrameKind::Text)).
    Frame(ServerMessage),
    /// A frame sent as it is by [`Faults::send_raw`] or [`Faults::send_malformed`].
    Raw {
        /// The payload.
        payload: Vec<u8>,
        /// Whether it goes in a binary frame.
        binary: bool,
    },
    /// The server sends a close frame; the connection has ended.
    Close {
        /// Close code.
        code: u16,
        /// Close reason (at most 123 bytes).
        reason: String,
    },
    /// The server drops the connection without a close frame (a TCP reset: the client sees
    /// 1006); the connection has ended.
    Drop,
}

impl From<Outgoing> for SimOutput {
    fn from(frame: Outgoing) -> Self {
        match frame {
            Outgoing::Message(message) => SimOutput::Frame(message),
            Outgoing::Raw { payload, binary } => SimOutput::Raw { payload, binary },
            // Load mode's pre-encoded audio: the fake encoded it from a `ServerMessage`.
            Outgoing::Encoded(payload) => match ServerMessage::from_json(&payload) {
                Ok(message) => SimOutput::Frame(message),
                Err(_) => SimOutput::Raw {
                    payload: payload.to_vec(),
                    binary: true,
                },
            },
        }
    }
}

/// The fake server driven by calls on virtual time, for deterministic simulation.
///
/// Time is a [`Duration`] since the server was created. Every call that takes `now` first
/// advances the clock to it (running every timer due at or before `now`, as
/// [`SimServer::advance`] does), then acts at `now`. Time never goes back: a `now` earlier than
/// [`SimServer::now`] means "now". Outputs are collected in production order and taken with
/// [`SimServer::poll_output`]. Controls sent by [`SimServer::faults`] (drop, close, `goAway`,
/// raw frames, stall changes) take effect at the current virtual time on the next call.
///
/// Creating one is cheap (no thread, socket or runtime), and two servers given the same calls
/// produce the same outputs and the same records. Without a connection lifetime and hard close
/// (by default the family's: `FakeConfig::with_lifetime(None)` and
/// `FakeConfig::with_hard_close(None)` turn them off), an idle connection has no timer:
/// [`SimServer::next_timer`] is `None` once every answer is out (on extended thinking, once its
/// fillers for a pending call are spoken).
pub struct SimServer {
    shared: Arc<Shared>,
    origin: Instant,
    now: Duration,
    version: String,
    links: BTreeMap<ConnectionId, LinkCore>,
    output: VecDeque<(ConnectionId, SimOutput)>,
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("now", &self.now)
            .field("open", &self.links.keys().collect::<Vec<_>>())
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// A server with this configuration, at virtual time 0, with no connection. The listen
    /// address is ignored.
    pub fn new(config: FakeConfig) -> SimServer {
        let route = endpoint::route(endpoint::default_path(config.vertex));
        let shared = Arc::new(Shared::new_virtual(config));
        SimServer {
            origin: shared.now(),
            shared,
            now: Duration::ZERO,
            version: route.map(|r| r.version).unwrap_or_default(),
            links: BTreeMap::new(),
            output: VecDeque::new(),
        }
    }

    /// The configuration it serves.
    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// The virtual time: how long since the server was created.
    #[must_use]
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The virtual time of an `Instant` found in a record ([`ConnectionRecord::opened_at`],
    /// [`ConnectionRecord::end`], [`IssuedHandle::issued_at`](crate::IssuedHandle::issued_at)).
    #[must_use]
    pub fn time_of(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.origin)
    }

    /// A client dials the default path at `now`, presenting the configured API key (if any).
    /// `Ok` with the new connection's id if the upgrade succeeds; `Err` with the HTTP status if
    /// a [`Faults::refuse_upgrades`] fault refuses it (no connection is recorded then).
    pub fn connect(&mut self, now: Duration) -> Result<ConnectionId, u16> {
        let key = self.shared.config.api_key.clone();
        self.dial(key.as_deref(), now)
    }

    /// Like [`SimServer::connect`], presenting `key` (or nothing): an API key or an ephemeral
    /// token ([`Faults::issue_token`]). When a key is configured and `key` is not it, the
    /// upgrade succeeds and the server closes at once with 1007 `API key not valid. Please
    /// pass a valid API key.`, as the socket server does; a token past its uses or expiry is
    /// closed as [`Faults::issue_token`] says.
    pub fn connect_with_key(
        &mut self,
        key: Option<&str>,
        now: Duration,
    ) -> Result<ConnectionId, u16> {
        self.dial(key, now)
    }

    /// How late the server's WebSocket would answer a ping arriving on `conn` now
    /// ([`Faults::delay_pongs`]: the delay while the connection sent data within the last
    /// second, else zero). The simulation has no pings: a simulator that models them answers
    /// each one this late. Zero for a connection that is not open.
    #[must_use]
    pub fn pong_delay(&self, conn: ConnectionId) -> Duration {
        self.links
            .get(&conn)
            .map_or(Duration::ZERO, LinkCore::pong_delay)
    }

    /// A client frame arrives on `conn` at `now`: JSON bytes as the client sends them on the
    /// wire, in a text frame (decoded strictly; an undecodable frame closes with 1007). Ignored
    /// if `conn` is not open.
    pub fn receive(&mut self, conn: ConnectionId, frame: &[u8], now: Duration) {
        self.advance(now);
        if let Some(link) = self.links.get_mut(&conn) {
            let action = link.on_frame(frame, false);
            self.execute(conn, action);
        }
    }

    /// The client ends `conn` at `now`: with a close frame carrying `code` (recorded as
    /// [`ConnectionEnd::ClientClose`] with an empty reason), or by vanishing (`None`: recorded
    /// as [`ConnectionEnd::Vanished`]). Frames the server has not sent yet are lost; those
    /// already produced stay in the output. Ignored if `conn` is not open.
    pub fn client_closed(&mut self, conn: ConnectionId, code: Option<u16>, now: Duration) {
        self.advance(now);
        if let Some(link) = self.links.remove(&conn) {
            let end = match code {
                Some(code) => ConnectionEnd::ClientClose {
                    code,
                    reason: String::new(),
                },
                None => ConnectionEnd::Vanished,
            };
            link.finish(&end);
        }
    }

    /// Advances virtual time to `now`, running every timer due at or before it, in time order
    /// (ties: lower connection id first), each at its own time: generation chunks, frames held
    /// back by [`Faults::delay_frames`], the lifetime's `goAway` and end, the deadline of a
    /// `goAway` fault. Within one connection at one instant: the chunk, then `goAway`, then the
    /// end.
    pub fn advance(&mut self, now: Duration) {
        let target = now.max(self.now);
        self.pump();
        while let Some((at, id)) = self.earliest() {
            if at > target {
                break;
            }
            self.set_time(at);
            if let Some(link) = self.links.get_mut(&id) {
                let action = link.on_timers();
                self.execute(id, action);
            }
        }
        self.set_time(target);
        self.pump();
    }

    /// The earliest time an open connection wants to be woken (`None`: nothing is pending). It
    /// is never before [`SimServer::now`]; it is `now` when a fault's control is waiting.
    #[must_use]
    pub fn next_timer(&self) -> Option<Duration> {
        if self.links.values().any(LinkCore::has_control) {
            return Some(self.now);
        }
        self.earliest().map(|(at, _)| at)
    }

    /// Takes the next output of any connection, in the order they were produced (after acting
    /// on waiting fault controls at the current time).
    pub fn poll_output(&mut self) -> Option<(ConnectionId, SimOutput)> {
        self.pump();
        self.output.pop_front()
    }

    /// Fault injection, as [`FakeServer::faults`](crate::FakeServer::faults): the controls
    /// addressed to connections (drop, close, raw frames, `goAway`, stall, delay) act on every
    /// open connection of this server.
    #[must_use]
    pub fn faults(&self) -> Faults {
        Faults {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Reads the state through a borrowed view.
    pub fn inspect<T>(&self, f: impl FnOnce(&ServerView<'_>) -> T) -> T {
        self.shared.inspect(f)
    }

    /// A copy of one session's state.
    #[must_use]
    pub fn session(&self, id: SessionId) -> Option<SessionSnapshot> {
        self.shared.session_copy(id)
    }

    /// A copy of the most recently created session.
    #[must_use]
    pub fn latest_session(&self) -> Option<SessionSnapshot> {
        self.shared.latest_session_copy()
    }

    /// Session ids in creation order.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionId> {
        self.shared.session_ids()
    }

    /// Copies of every connection ever accepted, in accept order.
    #[must_use]
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.connection_copies()
    }

    /// The connections open now, in id order.
    #[must_use]
    pub fn open_connections(&self) -> Vec<ConnectionId> {
        self.links.keys().copied().collect()
    }

    fn dial(&mut self, key: Option<&str>, now: Duration) -> Result<ConnectionId, u16> {
        self.advance(now);
        if let Some(status) = link::refused_upgrade(&self.shared) {
            return Err(status);
        }
        let credentials = link::check_credentials(&self.shared, key.into_iter());
        let (link, first) = LinkCore::open(
            Arc::clone(&self.shared),
            self.version.clone(),
            credentials,
            Arc::default(),
        );
        let id = link.id();
        self.links.insert(id, link);
        self.execute(id, first);
        Ok(id)
    }

    fn set_time(&mut self, now: Duration) {
        self.now = now.max(self.now);
        self.shared.set_elapsed(self.now);
    }

    /// The earliest wake of any open connection (never before now), and whose it is.
    fn earliest(&self) -> Option<(Duration, ConnectionId)> {
        self.links
            .iter()
            .filter_map(|(id, link)| {
                let at = link.next_wake()?;
                Some((self.time_of(at).max(self.now), *id))
            })
            .min()
    }

    /// Acts on every waiting control, connection by connection in id order.
    fn pump(&mut self) {
        let mut next = self.links.keys().next().copied();
        while let Some(id) = next {
            while let Some(control) = self.links.get_mut(&id).and_then(LinkCore::try_control) {
                if let Some(link) = self.links.get_mut(&id) {
                    let action = link.on_control(control);
                    self.execute(id, action);
                }
            }
            next = self
                .links
                .range((Bound::Excluded(id), Bound::Unbounded))
                .next()
                .map(|(id, _)| *id);
        }
    }

    /// Executes an action as the socket shell does: due frames first, then the close or drop.
    fn execute(&mut self, id: ConnectionId, action: Action) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        self.output
            .extend(link.take_due().map(|frame| (id, SimOutput::from(frame))));
        let (output, end) = match action {
            Action::Continue => return,
            Action::Close(code, reason) => {
                let end = link.record_server_close(code, &reason);
                (SimOutput::Close { code, reason }, end)
            }
            Action::Drop => (SimOutput::Drop, ConnectionEnd::Dropped),
        };
        self.output.push_back((id, output));
        if let Some(link) = self.links.remove(&id) {
            link.finish(&end);
        }
    }
}
