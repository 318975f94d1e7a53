//! The part of a connection's shell that needs no socket and no runtime: registration, the
//! outgoing queue (stall and delay faults), the connection lifetime (`goAway`, then the end),
//! test-side controls, and how the connection ended.
//!
//! Two shells drive it: the WebSocket shell (`connection.rs`), which waits on the socket, the
//! control channel and [`LinkCore::next_wake`], and the simulator (`sim.rs`), which calls the
//! same methods on virtual time. Both execute the [`Action`] each call returns; what a shell adds
//! is only IO (writing frames, the close handshake, the TCP reset).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gemini_transport::wire::ServerMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::conversation::{Conversation, Step};
use crate::load::{self, LoadStream};
use crate::outbound;
use crate::session::{ConnectionEnd, ConnectionId, ConnectionRecord};
use crate::shared::{Control, Shared};

/// The reason the service gives for a bad key.
const BAD_KEY: &str = "API key not valid. Please pass a valid API key.";

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outgoing {
    /// A server message (encoded by the shell).
    Message(ServerMessage),
    /// A payload sent as it is (`Faults::send_raw`).
    Raw { payload: Vec<u8>, binary: bool },
    /// A server message encoded once and shared (load mode's model audio), sent in the
    /// configured frame kind.
    Encoded(tokio_tungstenite::tungstenite::Bytes),
}

/// An outgoing frame and when it may leave.
#[derive(Debug)]
struct Queued {
    due: Instant,
    frame: Outgoing,
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send the frames that are due ([`LinkCore::take_due`]) and keep serving.
    Continue,
    /// Send the frames that are due, record the close ([`LinkCore::record_server_close`]), then
    /// close with this code and reason (already cut to what a close frame carries).
    Close(u16, String),
    /// Send the frames that are due, then drop the connection without a close frame.
    Drop,
}

impl Action {
    fn close(code: u16, reason: &str) -> Action {
        Action::Close(code, truncate_reason(reason).to_owned())
    }
}

/// A close reason cut to the 123 bytes a close frame can carry (at a character boundary).
fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Consumes one `refuse_upgrades` fault: the HTTP status to refuse this upgrade with, if any.
pub(crate) fn refused_upgrade(shared: &Shared) -> Option<u16> {
    shared.update(|state| {
        let (remaining, status) = state.faults.refuse_upgrades.as_mut()?;
        let status = *status;
        *remaining -= 1;
        if *remaining == 0 {
            state.faults.refuse_upgrades = None;
        }
        Some(status)
    })
}

/// Checks the credentials presented: an ephemeral token the test side issued is spent (one
/// use per connection) or refused when used up (1011) or expired (1007); otherwise the
/// configured key must be among them (any will do when none is set), else 1007.
pub(crate) fn check_credentials<'a>(
    shared: &Shared,
    presented: impl Iterator<Item = &'a str>,
) -> Result<(), (u16, &'static str)> {
    let presented: Vec<&str> = presented.collect();
    let now = shared.now();
    shared.update(|state| {
        let name = presented
            .iter()
            .find(|p| state.faults.tokens.contains_key(**p));
        if let Some(token) = name.and_then(|name| state.faults.tokens.get_mut(*name)) {
            if now >= token.expires_at {
                return Err((1007, TOKEN_EXPIRED));
            }
            if token.uses_left == 0 {
                return Err((1011, TOKEN_USED_UP));
            }
            token.uses_left -= 1;
            return Ok(());
        }
        match &shared.config.api_key {
            Some(key) if !presented.iter().any(|p| p == key) => Err((1007, BAD_KEY)),
            _ => Ok(()),
        }
    })
}

/// The reason for an ephemeral token past its uses (docs/protocol.md section 7.9).
const TOKEN_USED_UP: &str = "Token has been used too many times";
/// The reason for an ephemeral token past its expiry.
const TOKEN_EXPIRED: &str = "Token has expired.";
/// The reason for the hard close at a connection's age (docs/protocol.md section 10.1).
const HARD_CLOSE: &str = "Deadline expired before operation could complete.";

/// A ping arriving while the connection sent a data frame this recently is answered late under
/// [`Faults::delay_pongs`](crate::Faults::delay_pongs) ("while data flows").
pub(crate) const DATA_FLOW_WINDOW: Duration = Duration::from_secs(1);

/// When a connection last sent a data frame, shared with the socket's pong delay.
#[derive(Debug, Default)]
pub(crate) struct DataFlow {
    last_sent: std::sync::Mutex<Option<Instant>>,
}

impl DataFlow {
    fn sent(&self, now: Instant) {
        if let Ok(mut last) = self.last_sent.lock() {
            *last = Some(now);
        }
    }

    /// How late a ping arriving now is answered.
    pub(crate) fn pong_delay(&self, shared: &Shared) -> Duration {
        let delay = shared.read(|state| state.faults.pong_delay);
        let now = shared.now();
        let flowing = self
            .last_sent
            .lock()
            .ok()
            .and_then(|last| *last)
            .is_some_and(|last| now.saturating_duration_since(last) <= DATA_FLOW_WINDOW);
        if flowing { delay } else { Duration::ZERO }
    }
}

/// One connection's state outside the conversation.
pub(crate) struct LinkCore {
    conversation: Conversation,
    shared: Arc<Shared>,
    id: ConnectionId,
    queue: VecDeque<Queued>,
    control: mpsc::UnboundedReceiver<Control>,
    go_away_at: Option<Instant>,
    end_at: Option<Instant>,
    /// When the connection reaches its hard-close age (1011, no `goAway`).
    hard_close_at: Option<Instant>,
    opened_at: Instant,
    /// Whether the lifetime timers were armed (once the setup named the family).
    armed: bool,
    flow: Arc<DataFlow>,
    /// Load mode's model audio stream (`None` when load mode is off).
    load: Option<LoadStream>,
}

impl LinkCore {
    /// Registers an accepted connection (its record and its control channel); its lifetime
    /// starts now and is armed once its `setup` names the family. The action is the first
    /// thing to do: close when the credentials were refused (the upgrade succeeds and the
    /// server closes at once, as the service does).
    pub(crate) fn open(
        shared: Arc<Shared>,
        route_version: String,
        credentials: Result<(), (u16, &'static str)>,
        flow: Arc<DataFlow>,
    ) -> (LinkCore, Action) {
        let (control_tx, control) = mpsc::unbounded_channel();
        let now = shared.now();
        let id = shared.update(|state| {
            state.next_connection += 1;
            let id = ConnectionId(state.next_connection);
            state.unattached.push(ConnectionRecord {
                id,
                session: None,
                frames: Vec::new(),
                resumed_from: None,
                opened_at: now,
                end: None,
            });
            state.live.insert(id, control_tx);
            id
        });
        let load = shared.config.audio_load.then(LoadStream::default);
        let core = LinkCore {
            conversation: Conversation::new(Arc::clone(&shared), id, route_version),
            shared,
            id,
            queue: VecDeque::new(),
            control,
            go_away_at: None,
            end_at: None,
            hard_close_at: None,
            opened_at: now,
            armed: false,
            flow,
            load,
        };
        let first = match credentials {
            Ok(()) => Action::Continue,
            Err((code, reason)) => Action::close(code, reason),
        };
        (core, first)
    }

    /// How late a ping arriving now would be answered ([`Faults::delay_pongs`](crate::Faults::delay_pongs)).
    pub(crate) fn pong_delay(&self) -> Duration {
        self.flow.pong_delay(&self.shared)
    }

    /// Arms the family's lifetime (`goAway`, then the end) and hard close, counted from the
    /// upgrade, once the setup named the family.
    fn arm(&mut self) {
        if self.armed || !self.conversation.is_set_up() {
            return;
        }
        self.armed = true;
        let family = self.conversation.family();
        if let Some(lifetime) = self.shared.config.lifetime_of(family) {
            let end = self.opened_at + lifetime;
            let go_away = self.opened_at + lifetime.saturating_sub(self.shared.config.go_away_lead);
            self.go_away_at = Some(self.go_away_at.map_or(go_away, |at| at.min(go_away)));
            self.end_at = Some(self.end_at.map_or(end, |at| at.min(end)));
        }
        self.rearm_hard_close();
    }

    /// The hard close in force: a fault's age, else the configuration's for the family.
    fn rearm_hard_close(&mut self) {
        if !self.armed {
            return;
        }
        let family = self.conversation.family();
        let config = &self.shared.config;
        let age = self
            .shared
            .read(|state| state.faults.hard_close)
            .unwrap_or_else(|| config.hard_close_of(family));
        self.hard_close_at = age.map(|age| self.opened_at + age);
    }

    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// One client frame.
    pub(crate) fn on_frame(&mut self, raw: &[u8], binary: bool) -> Action {
        if let Some(stream) = self.load.as_mut() {
            if self.conversation.is_set_up() && load::is_client_audio(raw) {
                stream.on_client_audio(self.shared.now());
                self.shared.load_counters.took_audio();
                return Action::Continue;
            }
        }
        let step = self.conversation.on_frame(raw, binary);
        self.after(step)
    }

    /// The control channel, for a shell that waits on it.
    pub(crate) fn controls(&mut self) -> &mut mpsc::UnboundedReceiver<Control> {
        &mut self.control
    }

    /// A control already waiting, if any.
    pub(crate) fn try_control(&mut self) -> Option<Control> {
        self.control.try_recv().ok()
    }

    /// Whether a control is waiting.
    pub(crate) fn has_control(&self) -> bool {
        !self.control.is_empty()
    }

    /// One control from the test side.
    pub(crate) fn on_control(&mut self, control: Control) -> Action {
        let step = match control {
            Control::Drop => Step::Drop,
            Control::Close(code, reason) => Step::Close(code, reason),
            Control::SendRaw(payload, binary) => {
                self.enqueue(Outgoing::Raw { payload, binary });
                Step::Continue
            }
            Control::GoAway(time_left) => Step::GoAway(time_left),
            Control::HardClose => {
                self.mark_hard_closed();
                Step::Close(1011, HARD_CLOSE.to_owned())
            }
            Control::Wake => {
                self.rearm_hard_close();
                Step::Continue
            }
        };
        self.after(step)
    }

    /// When this connection next has something to do on its own: a frame to send (none while
    /// stalled), a generation chunk, the lifetime's `goAway` or its end.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let (stalled, _) = self.sending_conditions();
        let send = if stalled {
            None
        } else {
            self.queue.front().map(|q| q.due)
        };
        [
            send,
            self.conversation.next_tick(),
            self.load.as_ref().and_then(LoadStream::next_tick),
            self.go_away_at,
            self.end_at,
            self.hard_close_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every timer that is due now, in this order: the generation's chunk, load mode's
    /// audio chunk, the lifetime's `goAway`, the end of the connection. Sending due frames is the shell's part.
    pub(crate) fn on_timers(&mut self) -> Action {
        let now = self.shared.now();
        if self.conversation.next_tick().is_some_and(|at| at <= now) {
            self.conversation.on_tick(now);
            self.take_conversation_out();
            if let Some(step) = self.conversation.take_close() {
                return self.after(step);
            }
        }
        if self.load.as_mut().is_some_and(|stream| stream.on_tick(now)) {
            if let Some(frame) = self.shared.load_frame.clone() {
                self.enqueue(Outgoing::Encoded(frame));
                self.shared.load_counters.sent_audio();
            }
        }
        if self.go_away_at.is_some_and(|at| at <= now) {
            self.go_away_at = None;
            let left = self
                .end_at
                .map_or(Duration::ZERO, |end| end.saturating_duration_since(now));
            self.enqueue(Outgoing::Message(outbound::go_away(left)));
        }
        let step = if self.hard_close_at.is_some_and(|at| at <= now) {
            self.mark_hard_closed();
            Step::Close(1011, HARD_CLOSE.to_owned())
        } else if self.end_at.is_some_and(|at| at <= now) {
            let (code, reason) = self.shared.config.lifetime_end.close();
            Step::Close(code, reason.to_owned())
        } else {
            Step::Continue
        };
        self.after(step)
    }

    /// Notes on the session that its connection ended with a hard close.
    fn mark_hard_closed(&self) {
        if let Some(id) = self.conversation.session() {
            self.shared.update(|state| {
                if let Some(session) = state.sessions.get_mut(&id) {
                    session.hard_closed = true;
                }
            });
        }
    }

    /// Queues what the conversation produced and turns its step into an action.
    pub(crate) fn after(&mut self, step: Step) -> Action {
        self.take_conversation_out();
        self.arm();
        match step {
            Step::Continue => Action::Continue,
            Step::GoAway(time_left) => {
                self.go_away(time_left);
                Action::Continue
            }
            Step::Close(code, reason) => Action::close(code, &reason),
            Step::Drop => Action::Drop,
        }
    }

    /// The frames due now, in order, removed from the queue (none while stalled). Before a
    /// close or drop, what is not due yet (delayed or held) is lost.
    pub(crate) fn take_due(&mut self) -> impl Iterator<Item = Outgoing> + '_ {
        let (stalled, _) = self.sending_conditions();
        let now = self.shared.now();
        let due = if stalled {
            0
        } else {
            self.queue.iter().take_while(|q| q.due <= now).count()
        };
        if due > 0 {
            self.flow.sent(now);
        }
        self.queue.drain(..due).map(|q| q.frame)
    }

    /// Records how the connection ended (the first record wins) and when its session was last
    /// left.
    pub(crate) fn record_end(&self, end: &ConnectionEnd) {
        let now = self.shared.now();
        self.shared.update(|state| {
            let mut session = None;
            if let Some(record) = state.connection_mut(self.id) {
                if record.end.is_none() {
                    record.end = Some((end.clone(), now));
                }
                session = record.session;
            }
            if let Some(s) = session.and_then(|sid| state.sessions.get_mut(&sid)) {
                s.last_ended = Some(now);
            }
        });
    }

    /// Records a server close, before the client can see the close frame and dial again (an
    /// overlap is counted against this record), and returns it.
    pub(crate) fn record_server_close(&self, code: u16, reason: &str) -> ConnectionEnd {
        let end = ConnectionEnd::ServerClose {
            code,
            reason: reason.to_owned(),
        };
        self.record_end(&end);
        end
    }

    /// The connection is over: records the end (again: the first record wins, but the
    /// session's `last_ended` moves to now) and unregisters its control channel.
    pub(crate) fn finish(self, end: &ConnectionEnd) {
        self.record_end(end);
        let shared = Arc::clone(&self.shared);
        let id = self.id;
        drop(self);
        shared.update(|state| state.live.remove(&id));
    }

    fn take_conversation_out(&mut self) {
        for message in self.conversation.take_out() {
            self.enqueue(Outgoing::Message(message));
        }
    }

    /// Queues `goAway` and moves the end of the connection to its deadline.
    fn go_away(&mut self, time_left: Duration) {
        self.enqueue(Outgoing::Message(outbound::go_away(time_left)));
        let deadline = self.shared.now() + time_left;
        self.go_away_at = None;
        self.end_at = Some(self.end_at.map_or(deadline, |end| end.min(deadline)));
    }

    fn sending_conditions(&self) -> (bool, Duration) {
        self.shared
            .read(|state| (state.faults.stalled, state.faults.delay))
    }

    fn enqueue(&mut self, frame: Outgoing) {
        let due = self.shared.now() + self.sending_conditions().1;
        self.queue.push_back(Queued { due, frame });
    }
}
