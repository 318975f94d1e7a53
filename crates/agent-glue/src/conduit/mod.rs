//! The sans-IO layer between the session core and the sockets: every protocol decision that is
//! not the session's own (docs/design.md section 9), so that the shell ([`LiveSession`]) only moves
//! bytes and timers and the simulator runs the very same decisions on virtual time.
//!
//! A [`Conduit`] owns the [`SessionCore`] and the microphone's path, and decides
//!
//! - what is written on which connection, in which order: the core's messages as polled, the
//!   microphone's audio in runs cut into frames as the socket takes them (partial writes leave
//!   the rest at the front; a frame for a connection that failed or is gone goes back to the
//!   gap buffer); what waited goes out after a setup (behind the plan's messages), before an
//!   application command (so the core numbers the audio pushed before it first), and when the
//!   writer is idle again;
//! - when a connection is lost: a write with no progress for the write timeout, a ping
//!   unanswered past the keepalive timeout (no verdict while reading is paused because the
//!   application's event queue is full) end it as lost (1006), and the core reconnects;
//! - which audio a connection took unconfirmed: written, and not proven read by a pong or by
//!   the server's answer to our close frame ([`RECEIPT_INTERVAL`]). It is reported as
//!   [`SessionEvent::AudioDropped`] on every end of a connection, unless the close handshake
//!   this side started completed: a reset, a close the server started (whatever its code), a
//!   write deadline, a keepalive verdict, an abandoned close all report it;
//! - how a connection is closed: its close frame behind nothing else of it, written within
//!   [`CLOSE_FRAME_BUDGET`], the server's answer awaited up to the close timeout, and the next
//!   connection dialed only once the socket is gone (never two sockets).
//!
//! It imports no tokio, no socket, no clock and no randomness: time comes in as [`Millis`], the
//! socket as a [`FrameSink`] its driver implements.
//!
//! | input | |
//! |---|---|
//! | [`Conduit::command`] | an application command (what waited is handed to the connection first) |
//! | [`Conduit::push_audio`] | microphone audio |
//! | [`Conduit::handle_setup_complete`] / [`Conduit::handle_dial_failed`] | the dial of an [`Order::Dial`] ended |
//! | [`Conduit::handle_message`] | a decoded server message on connection `N` |
//! | [`Conduit::handle_pongs`] | connection `N` has received this many pongs |
//! | [`Conduit::handle_closed`] | connection `N` ended (its reader saw a close frame or the socket end) |
//! | [`Conduit::set_reading_paused`] | the reader stopped (or resumed) reading for the application |
//! | [`Conduit::handle_timeout`] | the time [`Conduit::poll_timeout`] asked for has come |
//! | [`Conduit::write`] | the socket of connection `N` may take frames: write what is queued |
//!
//! | output, polled | |
//! |---|---|
//! | [`Conduit::poll_order`] | dial connection `N` with this `setup` / release connection `N`'s socket |
//! | [`Conduit::poll_event`] | the next [`SessionEvent`] for the application |
//! | [`Conduit::poll_timeout`] | when to call [`Conduit::handle_timeout`] next |
//! | [`Conduit::writer_blocked`] | the socket said it cannot take more: call [`Conduit::write`] when it can |
//!
//! [`LiveSession`]: crate::LiveSession

mod lifecycle;
mod line;
mod outgoing;
mod writing;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use gemini_transport::wire::ServerPayload;

use self::lifecycle::End;
pub use self::line::{CLOSE_FRAME_BUDGET, RECEIPT_INTERVAL};
use self::line::{Due, Line, Timing};
pub use self::outgoing::{BURST_FRAMES, BURST_LEAD, BURST_WINDOW, Frame, FrameSink, SinkFailed};
use self::outgoing::{Outgoing, Producer};
pub use crate::audio_path::AtBound;
use crate::audio_path::AudioPath;
use crate::config::SessionConfig;
/// The session core the conduit owns, and its vocabulary: the deterministic state machine
/// that makes every session decision (commands in, client messages, actions, events and timers
/// out), for a runtime other than tokio or a simulator. [`LiveSessionBuilder::into_core`]
/// makes one alone.
///
/// [`LiveSessionBuilder::into_core`]: crate::LiveSessionBuilder::into_core
pub use crate::core::{Action, Command, PersistMark, Persisted, Receipt, SessionCore, Transmit};
use crate::{Error, SessionEvent, TransportCause};
/// The types in the conduit's and the core's signatures, so that a runtime drives them naming
/// this crate alone.
pub use gemini_transport::wire::{ClientMessage, ServerMessage};
pub use gemini_transport::{CloseClass, CloseInfo, CloseInitiator};
pub use resume_policy::{ConnectionId, Millis};

/// The earlier of two optional deadlines.
fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What the conduit asks of the IO side.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Order {
    /// Dial connection `N`, send `setup` as its first frame, and report `setupComplete`
    /// ([`Conduit::handle_setup_complete`]) or the failure ([`Conduit::handle_dial_failed`]).
    Dial {
        /// The new connection.
        connection: ConnectionId,
        /// Its `setup` message.
        setup: ClientMessage,
    },
    /// Drop connection `N`'s socket (stop reading it), or stop dialing it: the conduit is done
    /// with it and is told nothing more about it.
    Release {
        /// The connection.
        connection: ConnectionId,
    },
}

/// Microphone audio that may not reach the model, as reported to the application: what a
/// driver that checks where audio went (the simulator) reads with
/// [`Conduit::poll_audio_loss`] once [`Conduit::audit_audio`] is on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioLoss {
    /// Dropped at a buffer's bound before it was framed (oldest first): never written.
    Dropped(Vec<Bytes>),
    /// The last `bytes` of audio written on `connection`, not proven received when it ended.
    Unconfirmed {
        /// The connection.
        connection: ConnectionId,
        /// How many bytes (the last ones written on it).
        bytes: u64,
    },
}

/// The sans-IO layer of one session. See the [module docs](self).
pub struct Conduit {
    core: SessionCore,
    audio: AudioPath,
    out: Outgoing,
    /// The connection with a socket (open, or closing): never more than one.
    line: Option<Line>,
    /// The connection being dialed.
    dialing: Option<ConnectionId>,
    /// When the dial under way is given up ([`Timing::setup_timeout`] after its order).
    dial_deadline: Option<Millis>,
    /// The core's actions not started yet (an `Open` waits for the previous socket to go).
    actions: VecDeque<Action>,
    orders: VecDeque<Order>,
    events: VecDeque<SessionEvent>,
    /// The core's `Closed`, held until the last socket is gone (its report comes first).
    /// Boxed: held once, at the end, and not carried by every live session.
    closed_event: Option<Box<SessionEvent>>,
    finished: bool,
    reading_paused: bool,
    timing: Timing,
    bytes_per_second: u64,
    /// How far the audio pushed runs ahead of the clock (a burst's flush may be held).
    producer: Producer,
    /// The core's next deadline ([`SessionCore::poll_timeout`]) as of the last
    /// [`drain`](Self::drain): every input that changes the core's timers is followed by one,
    /// and audio (the only thing that reaches the core without one) changes none, so the
    /// timeout asked after every push does not walk the core's timers again.
    core_deadline: Option<Millis>,
    audit: Option<VecDeque<AudioLoss>>,
}

impl std::fmt::Debug for Conduit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conduit")
            .field("core", &self.core)
            .field("queued", &self.out.frames())
            .field("backlog", &self.audio.backlog())
            .field("gap", &self.audio.gap())
            .field("line", &self.line)
            .field("dialing", &self.dialing)
            .field("actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

impl Conduit {
    /// The conduit of a session whose core was just made (its first `Open` is an
    /// [`Order::Dial`] at once).
    pub(crate) fn new(core: SessionCore, config: &SessionConfig, now: Millis) -> Self {
        let mut conduit = Self {
            core,
            audio: AudioPath::from_config(config),
            out: Outgoing::default(),
            line: None,
            dialing: None,
            dial_deadline: None,
            actions: VecDeque::new(),
            orders: VecDeque::new(),
            events: VecDeque::new(),
            closed_event: None,
            finished: false,
            reading_paused: false,
            timing: Timing {
                write_timeout: config.write_timeout,
                keepalive: config.keepalive,
                close_timeout: config.connect.close_timeout,
                setup_timeout: config.connect.setup_timeout,
            },
            bytes_per_second: u64::from(config.input_sample_rate).max(1) * 2,
            producer: Producer::default(),
            audit: None,
            core_deadline: None,
        };
        conduit.drain(now);
        conduit
    }

    /// The session core: `L`, its version, whether the session ended.
    pub fn core(&self) -> &SessionCore {
        &self.core
    }

    /// Records every report of lost audio for [`poll_audio_loss`](Self::poll_audio_loss)
    /// from now on (off by default: a session that nobody audits keeps nothing).
    pub fn audit_audio(&mut self) {
        self.audit.get_or_insert_with(VecDeque::new);
    }

    /// The next report of lost audio, once [`audit_audio`](Self::audit_audio) is on: each is
    /// also an [`SessionEvent::AudioDropped`] of the same length.
    pub fn poll_audio_loss(&mut self) -> Option<AudioLoss> {
        self.audit.as_mut()?.pop_front()
    }

    /// The next order for the IO side.
    pub fn poll_order(&mut self) -> Option<Order> {
        self.orders.pop_front()
    }

    /// The next event for the application. `Closed` is the last one, once no socket is left.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let line = self
            .line
            .as_ref()
            .and_then(|l| l.deadline(&self.timing, self.reading_paused));
        debug_assert_eq!(
            self.core_deadline,
            self.core.poll_timeout(),
            "the core's timers changed without a drain"
        );
        earliest(earliest(self.core_deadline, line), self.dial_deadline)
    }

    /// The socket said it cannot take more ([`FrameSink`] returned `Pending`): call
    /// [`write`](Self::write) again when it can.
    pub fn writer_blocked(&self) -> bool {
        self.line.as_ref().is_some_and(|l| l.blocked)
    }

    /// Settled: the core is ([`SessionCore::is_settled`]), nothing is queued, waiting or
    /// being written, no dial or close under way.
    pub fn is_settled(&self) -> bool {
        self.core.is_settled()
            && self.out.is_empty()
            && self.actions.is_empty()
            && self.orders.is_empty()
            && self.audio.is_empty()
            && self.dialing.is_none()
            && self.line.as_ref().is_some_and(Line::idle)
    }

    /// Settled, and no tool call awaits the application's result: what `hand_off` waits for
    /// (at most `HAND_OFF_DRAIN`) before it closes, so that a tool still running delivers its
    /// result to this session rather than being lost with it.
    pub fn is_drained(&self) -> bool {
        self.is_settled() && !self.core.tools_running()
    }

    /// The session has ended, its `Closed` event is out, and no socket or dial is left.
    pub fn is_finished(&self) -> bool {
        self.finished && self.line.is_none() && self.dialing.is_none() && self.orders.is_empty()
    }

    /// The session has ended and no close frame still waits for its socket (written, or
    /// abandoned after [`CLOSE_FRAME_BUDGET`]); the closing handshake may go on.
    pub fn socket_released(&self) -> bool {
        self.core.closed().is_some()
            && self
                .line
                .as_ref()
                .is_none_or(|l| !l.close_frame_pending() && l.closing.is_some())
    }

    /// Frames queued for the socket.
    pub fn queued_frames(&self) -> usize {
        self.out.frames()
    }

    /// Audio waiting behind a busy writer.
    pub fn backlog(&self) -> Duration {
        self.audio.backlog()
    }

    /// Audio held while no connection takes audio.
    pub fn gap(&self) -> Duration {
        self.audio.gap()
    }

    /// Bytes of audio in the backlog and the gap buffer.
    pub fn held_audio_bytes(&self) -> usize {
        self.audio.held_bytes()
    }

    /// Bytes of audio not written yet: queued, in the backlog or in the gap buffer.
    pub fn waiting_audio_bytes(&self) -> usize {
        self.audio.held_bytes() + self.out.audio_bytes()
    }

    /// An application command at `now`. What waited is handed to the connection first, so that
    /// the core numbers the audio pushed before the command before it.
    ///
    /// # Errors
    /// As [`SessionCore::command`].
    pub fn command(&mut self, now: Millis, command: Command) -> Result<Receipt, Error> {
        self.flush_waiting();
        let result = self.core.command(now, command);
        self.drain(now);
        result
    }

    /// Closes the session as [`Command::Close`] does, without awaiting the server's answer
    /// to the close frame or a socket that does not take it: the timer is due at once, and
    /// releases the socket (with the close frame if the IO side wrote it meanwhile), whatever
    /// the server does. For a session that lost its lease (`ownership.rs`): its socket must be
    /// gone before the lease passes on, and a closing handshake (up to the close timeout) or a
    /// blocked socket (up to [`CLOSE_FRAME_BUDGET`]) could outlast the lease's margin.
    pub fn close_at_once(&mut self, now: Millis) {
        let _ = self.command(now, Command::Close);
        if let Some(line) = self.line.as_mut() {
            line.hurry();
        }
    }

    /// Microphone audio (PCM16 mono at the input rate) pushed at `now`: framed for the
    /// connection at once when its writer is idle, else kept in the backlog, or in the gap
    /// buffer while no connection takes audio, within their bounds. `now` tells a producer
    /// at real time from a burst, whose flush may be held ([`BURST_LEAD`]).
    ///
    /// # Errors
    /// [`Error::Closed`] once the session ended; [`Error::InvalidArgument`] for an odd number of
    /// bytes; [`Error::Full`] with [`AtBound::Refuse`] at the bound (nothing is taken).
    pub fn push_audio(&mut self, now: Millis, pcm: Bytes, at_bound: AtBound) -> Result<(), Error> {
        self.push_audio_or_return(now, pcm, at_bound)
            .map_err(|(error, _)| error)
    }

    /// [`push_audio`](Self::push_audio), handing the audio back with the error when it is
    /// refused (nothing taken), so that a caller that waits for room tries again with the same
    /// chunk without keeping a second reference to it for every attempt.
    pub(crate) fn push_audio_or_return(
        &mut self,
        now: Millis,
        pcm: Bytes,
        at_bound: AtBound,
    ) -> Result<(), (Error, Bytes)> {
        if !pcm.len().is_multiple_of(2) {
            let error = Error::InvalidArgument(format!(
                "PCM16 audio must have an even number of bytes, got {}",
                pcm.len()
            ));
            return Err((error, pcm));
        }
        if self.core.closed().is_some() {
            return Err((Error::Closed, pcm));
        }
        if pcm.is_empty() {
            return Ok(());
        }
        self.producer.pushed(now, pcm.len(), self.bytes_per_second);
        let target = self.core.audio_target();
        let idle = self.out.is_empty()
            && self
                .line
                .as_ref()
                .is_some_and(|l| Some(l.id) == target && l.idle());
        let (audio, core, mut staging) = self.audio_parts();
        audio.push(core, pcm, idle, at_bound, &mut staging)
    }

    /// The dial of `connection` completed its setup: the plan's messages are queued on it,
    /// then the audio that waited.
    pub fn handle_setup_complete(&mut self, now: Millis, connection: ConnectionId) {
        if self.dialing != Some(connection) {
            // Abandoned meanwhile.
            self.orders.push_back(Order::Release { connection });
            return;
        }
        self.dialing = None;
        self.dial_deadline = None;
        self.line = Some(Line::new(connection, now));
        self.core.handle_setup_complete(now, connection);
        self.drain(now);
        let open = self
            .line
            .as_ref()
            .is_some_and(|l| l.id == connection && l.healthy());
        if open && self.core.audio_target() != Some(connection) {
            // The core did not take it (nor close it): nobody wants this socket.
            self.end_line(now, End::Abandoned);
            self.drain(now);
        }
        self.flush_waiting();
    }

    /// The dial of `connection` failed (before or during its setup).
    pub fn handle_dial_failed(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        info: CloseInfo,
        cause: Option<TransportCause>,
    ) {
        if self.dialing != Some(connection) {
            return;
        }
        self.dialing = None;
        self.dial_deadline = None;
        self.core.handle_closed(now, connection, info, cause);
        self.drain(now);
    }

    /// A dial that has not completed its setup by its deadline is given up: its socket
    /// released, the core told of a setup timeout.
    fn dial_overdue(&mut self, now: Millis) {
        let Some(connection) = self
            .dialing
            .filter(|_| self.dial_deadline.is_some_and(|deadline| deadline <= now))
        else {
            return;
        };
        self.orders.push_back(Order::Release { connection });
        let cause = gemini_transport::Error::SetupTimeout {
            after: self.timing.setup_timeout,
        };
        let mut info = CloseInfo::abnormal(cause.to_string(), false);
        info.class = cause.class();
        tracing::debug!(
            connection = connection.0,
            "no setupComplete: the dial is given up"
        );
        self.handle_dial_failed(now, connection, info, Some(std::sync::Arc::new(cause)));
    }

    /// A decoded server message on `connection` (`setupComplete` is
    /// [`handle_setup_complete`](Self::handle_setup_complete)).
    pub fn handle_message(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        message: ServerMessage,
    ) {
        if let Some(ServerPayload::SetupComplete(done)) = &message.payload {
            let session_id = done.session_id.clone();
            self.handle_setup_complete(now, connection);
            if session_id.is_some() {
                // The core reports the server's session id of a connection it set up.
                self.core.handle_message(now, connection, message);
                self.drain(now);
            }
            return;
        }
        if let Some(line) = self.line.as_mut().filter(|l| l.id == connection) {
            line.inbound(now);
        }
        self.core.handle_message(now, connection, message);
        self.drain(now);
    }

    /// `connection` has received `count` pongs in all: an answered ping confirms the audio
    /// written before it.
    pub fn handle_pongs(&mut self, connection: ConnectionId, count: u64) {
        if let Some(line) = self.line.as_mut().filter(|l| l.id == connection) {
            line.pongs(count);
        }
    }

    /// `connection` ended as `info` says (its reader saw the server's close frame, the answer
    /// to ours, or the socket end), with the transport error behind it. Its unconfirmed audio is
    /// reported unless this is the server's answer to our close frame.
    pub fn handle_closed(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        info: CloseInfo,
        cause: Option<TransportCause>,
    ) {
        if self.line.as_ref().is_some_and(|l| l.id == connection) {
            self.end_line(now, End::Closed(info, cause));
            self.drain(now);
        }
    }

    /// The reader stopped reading because the application's event queue is full (`true`), or
    /// resumed: no keepalive verdict meanwhile (the pong may wait, unread, behind frames).
    pub fn set_reading_paused(&mut self, now: Millis, paused: bool) {
        self.reading_paused = paused;
        if !paused {
            if let Some(line) = self.line.as_mut() {
                line.reading_resumed(now);
            }
        }
    }

    /// Runs every timer due at `now`: the core's, the write deadline, the keepalive, the
    /// closing handshake's.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.dial_overdue(now);
        self.core.handle_timeout(now);
        self.drain(now);
        let due = self
            .line
            .as_ref()
            .and_then(|l| l.due(now, &self.timing, self.reading_paused));
        match due {
            Some(Due::Ping) => {
                if let Some(line) = self.line.as_mut() {
                    line.ping_queued(now);
                    self.out.ping(line.id);
                }
            }
            Some(Due::Lost(reason)) => self.end_line(now, End::Lost(reason)),
            Some(Due::Abandon) => self.end_line(now, End::Abandoned),
            None => {}
        }
        self.drain(now);
    }
}
