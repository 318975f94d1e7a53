//! The sans-IO session core: one deterministic state machine that owns all session state and
//! makes every session decision (docs/design.md section 9).
//!
//! **Architecture invariant:** this module imports no tokio, no socket, no clock and no
//! randomness of its own. Time comes in as [`Millis`] with every input, randomness as the
//! jitter seed given to [`LiveSessionBuilder::into_core`](crate::LiveSessionBuilder::into_core).
//! The same inputs give the same outputs, so the simulator (`crates/session-sim`) can run it
//! against an in-memory server on virtual time, and the async shell
//! ([`LiveSession`](crate::LiveSession)) only moves frames and timers.
//!
//! Modelled on quinn-proto's `Connection`:
//!
//! | input | |
//! |---|---|
//! | [`SessionCore::command`] | what the application asks (returns the ids it created) |
//! | [`SessionCore::handle_setup_complete`] | `setupComplete` arrived on connection `N` |
//! | [`SessionCore::handle_message`] | any other decoded server message on connection `N` |
//! | [`SessionCore::handle_closed`] | connection `N` ended (or could not be opened), with its [`CloseInfo`](gemini_transport::CloseInfo) and the transport error behind it, if any |
//! | [`SessionCore::handle_timeout`] | the time the core asked for has come |
//! | [`SessionCore::audio_sent`] | the shell wrote `n` audio frames on connection `N` (counted, not inspected) |
//!
//! | output, polled | |
//! |---|---|
//! | [`SessionCore::poll_transmit`] | a client message to write on connection `N`, in order |
//! | [`SessionCore::poll_action`] | open connection `N` with this `setup` / close connection `N` |
//! | [`SessionCore::poll_event`] | the next [`SessionEvent`] for the application |
//! | [`SessionCore::poll_timeout`] | when to call [`SessionCore::handle_timeout`] next |
//!
//! Every end the core decides (a refused key, a spent quota, a rejected first `setup`, a
//! first connect that cannot succeed) goes through the policy as
//! [`Trigger::Fatal`](resume_policy::Trigger::Fatal): the plan's divergences report what was
//! owed, then [`SessionEvent::Closed`] carries the failure; the end is final whatever the plan
//! says. A ledger step that fails is [`SessionEvent::InvariantBroken`], never ignored.
//!
//! A shell must execute actions in order and must finish a `Close` before it dials the next
//! `Open` (never two sockets). Transmits of a connection go out in the order polled, and audio
//! frames between them are reported with [`SessionCore::audio_sent`] before the next input, so
//! the core's message indices are the server's.
//!
//! # `L`'s order
//!
//! `L` ([`SessionCore::chat_ctx`]) holds items in the order the server session holds them.
//! Items the application adds go to the end when it adds them. Model output and tool calls of
//! a turn are placed where the server put them: after every item carried by a message the
//! server had processed when it produced them (the message the turn answers and those before
//! it), before every item carried by a later message (which interrupted the turn, or came after
//! it) and before items not sent yet. So a tool call issued before a second user turn
//! interrupted it sits before that turn, as on the server.

mod connect;
mod edits;
mod end;
mod inbound;
mod outbound;
mod persist;
#[cfg(test)]
mod tests;
mod turn;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ctx_model::{ChatContext, Item, ItemId};
use gemini_transport::wire::{ClientMessage, FunctionDeclaration};
use resume_policy::{
    Attempts, ConnectionId, Millis, ModelCapabilities, OpId, OpKind, ResumePolicy,
};

use self::connect::{Ageing, Link, Pending, Restart, Rotation};
pub use self::persist::{PersistMark, Persisted};
use self::turn::ModelTurn;
use crate::config::SessionConfig;
use crate::events::SessionEvent;
use crate::ledger::Ledger;
use crate::{Error, SessionError};

/// The application's requests, as the core takes them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// A typed user turn (answered by the model).
    Text(String),
    /// Items appended to `L` as history (no answer asked).
    Append(Vec<Item>),
    /// Replace `L` with this context, if `L` is still at version `based_on`.
    UpdateContext {
        /// The new context.
        context: ChatContext,
        /// The version of `L` it was derived from ([`SessionCore::version`]).
        based_on: u64,
    },
    /// A new system instruction.
    UpdateInstructions(String),
    /// A new tool set.
    UpdateTools(Vec<FunctionDeclaration>),
    /// The result (or error) of a tool call.
    ToolResult {
        /// The call answered.
        call_id: String,
        /// The output.
        output: serde_json::Value,
        /// Whether it is an error.
        is_error: bool,
        /// When the model takes it up, for a call it did not wait for (`None`: when idle).
        /// Ignored for a call the model waits for.
        scheduling: Option<ctx_model::Scheduling>,
        /// An interim result of a non-blocking call: more follow (an error for a call the
        /// model waits for).
        will_continue: bool,
    },
    /// Ask the model to answer now, optionally with instructions (a user turn).
    GenerateReply(Option<String>),
    /// Stop delivering the current model turn to the application.
    Interrupt,
    /// The microphone closed (automatic activity detection).
    AudioStreamEnd,
    /// The user started speaking (manual activity detection).
    ActivityStart,
    /// The user stopped speaking (manual activity detection).
    ActivityEnd,
    /// One video frame or image (`realtimeInput.video`).
    Video {
        /// The encoded image.
        frame: bytes::Bytes,
        /// Its MIME type (`image/jpeg`, `image/png`).
        mime_type: String,
    },
    /// End the session.
    Close,
}

/// What a command created: the items it put into `L` and the operation it queued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// Items added to `L`, in order.
    pub items: Vec<ItemId>,
    /// The outbox operation queued, if any.
    pub op: Option<OpId>,
    /// The version of `L` after the command.
    pub version: u64,
}

/// A client message to write on a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// The connection it belongs to (drop it if that connection is gone).
    pub connection: ConnectionId,
    /// The message.
    pub message: ClientMessage,
}

/// A connection-level request to the shell.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Dial, send `setup` as the first frame, and report `setupComplete`
    /// ([`SessionCore::handle_setup_complete`]) or the failure ([`SessionCore::handle_closed`]).
    Open {
        /// The new connection's id.
        connection: ConnectionId,
        /// The `setup` message.
        setup: ClientMessage,
    },
    /// Close the connection (close frame with this code) and wait for it to end before the
    /// next `Open`. The core has already forgotten it: report nothing more about it.
    Close {
        /// The connection.
        connection: ConnectionId,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
}

/// What the core needs to know of the session's configuration: the builder's settings and
/// the seed of the backoff jitter. Made by
/// [`LiveSessionBuilder::into_core`](crate::LiveSessionBuilder::into_core).
#[derive(Clone)]
pub(crate) struct CoreConfig {
    /// Shared with the shell (one copy per session).
    pub(crate) session: Arc<SessionConfig>,
    pub(crate) jitter_seed: u64,
}

/// The deterministic session state machine: the application's commands, decoded server
/// messages, connection ends and the time go in ([`command`](Self::command),
/// [`handle_message`](Self::handle_message), [`handle_closed`](Self::handle_closed),
/// [`handle_timeout`](Self::handle_timeout)); client messages, actions, events and the next
/// timer come out ([`poll_transmit`](Self::poll_transmit), [`poll_action`](Self::poll_action),
/// [`poll_event`](Self::poll_event), [`poll_timeout`](Self::poll_timeout)). No tokio, no
/// socket, no clock, no randomness of its own. The [`Conduit`](crate::conduit::Conduit) owns
/// one and makes the socket-side decisions around it.
pub struct SessionCore {
    config: CoreConfig,
    policy: Arc<dyn ResumePolicy>,
    caps: ModelCapabilities,
    ledger: Ledger,
    link: Link,
    turn: ModelTurn,
    rotation: Option<Rotation>,
    restart: Option<Restart>,
    /// The open connection's age limit, if the session has one.
    age: Option<Ageing>,
    pending: Option<Pending>,
    attempts: Attempts,
    next_connection: u64,
    jitter_state: u64,
    /// The tool calls of the current model turn still awaiting a result.
    tools_owed: bool,
    /// The last `turnComplete` said `interactionStatus: IN_PROGRESS`: the model is still
    /// working on the request (until one says `IDLE`).
    interaction_busy: bool,
    /// Extended thinking: where the results of the pending calls were last sent on the open
    /// connection (and their first item), until a turn completes `IDLE`.
    results_sent: Option<(resume_policy::MessagePosition, ItemId)>,
    /// Extended thinking: results a turn proved processed while answering something else;
    /// their own answer may still come (until a resumable handle, a turn or the deadline).
    results_answer: Option<(resume_policy::MessagePosition, Millis)>,
    /// Extended thinking: the messages of the open connection that carried results.
    result_messages: std::collections::BTreeSet<resume_policy::ClientMessageIndex>,
    /// Extended thinking: the turn that completed `IDLE` after the results, taken to answer
    /// them, until the next turn shows whether it did (see `inbound.rs`).
    settling: Option<self::turn::Settling>,
    /// Extended thinking: a turn was placed by a guess since the interaction was last idle
    /// with nothing awaiting an answer, so the tracker's count of what the server processed
    /// may run ahead of it, and a spoken turn placed against that count is a guess too.
    guessed: bool,
    /// When the last video frame was sent.
    video_at: Option<Millis>,
    /// Operations the policy deferred to the next fresh session (reported as divergences).
    deferred: std::collections::HashSet<OpId>,
    /// Results of non-blocking calls to be taken up when the model is idle, held until it is
    /// (see `SessionCore::release_held`), oldest first.
    held: VecDeque<OpId>,
    version: u64,
    closed: Option<Option<SessionError>>,
    /// The failure of the last connection that ended (the cause a give-up reports).
    last_failure: Option<SessionError>,
    /// A ledger step failed ([`SessionEvent::InvariantBroken`]): the next plan is made without
    /// the handle (a fresh session from `L`), and this is cleared once one is set up.
    handle_distrusted: bool,
    connected_once: bool,
    transmits: VecDeque<Transmit>,
    actions: VecDeque<Action>,
    events: VecDeque<SessionEvent>,
}

impl std::fmt::Debug for SessionCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live: Vec<(OpId, &'static str, String)> = self
            .ledger
            .outbox
            .live()
            .map(|op| (op.id, op.kind.name(), format!("{:?}", op.state)))
            .collect();
        f.debug_struct("SessionCore")
            .field("link", &self.link.id())
            .field("version", &self.version)
            .field("closed", &self.closed)
            .field("pending", &self.pending)
            .field("rotation", &self.rotation)
            .field("restart", &self.restart)
            .field("age", &self.age)
            .field("turn_active", &self.turn.active)
            .field("tools_owed", &self.tools_owed)
            .field("interaction_busy", &self.interaction_busy)
            .field("settling", &self.settling)
            .field("results_sent", &self.results_sent)
            .field("live_ops", &live)
            .field("deferred", &self.deferred)
            .field("held", &self.held)
            .field("handle", &self.ledger.tracker.handle().map(|h| h.serial))
            .finish_non_exhaustive()
    }
}

impl SessionCore {
    /// A core for a session that starts with `initial` as its context, or takes over a
    /// session another process saved (`stored`: see `persist.rs`); the first connection is
    /// requested at once (poll [`SessionCore::poll_action`]).
    pub(crate) fn new(
        config: CoreConfig,
        policy: Arc<dyn ResumePolicy>,
        caps: ModelCapabilities,
        initial: ChatContext,
        stored: Option<Persisted>,
        now: Millis,
    ) -> Self {
        let session = &config.session;
        let mut ledger = Ledger::new(
            initial,
            session.transparent && caps.transparent_resumption,
            session.instructions.clone(),
            session.tools.clone(),
        );
        // With input transcription on, every spoken turn is announced before it is answered.
        ledger.tracker = std::mem::replace(
            &mut ledger.tracker,
            resume_policy::CoverageTracker::new(false),
        )
        .with_transcripts(session.transcription)
        .with_manual_activity(!session.automatic_activity_detection)
        .with_end_of_speech_silence(session.end_of_speech_silence);
        let items: Vec<Item> = ledger.desired.items().to_vec();
        // A call without its output came from a process that is gone: nobody will answer it
        // (scenario S16; the policy answers or reports it).
        for call in ledger.desired.pending_calls() {
            ledger.tracker.on_inherited_call(&call.call_id, &call.name);
        }
        if !items.is_empty() {
            ledger.outbox.push(OpKind::Append {
                items,
                turn_complete: false,
            });
        }
        let jitter_state = config.jitter_seed | 1;
        let mut core = Self {
            config,
            policy,
            caps,
            ledger,
            link: Link::None,
            turn: ModelTurn::default(),
            rotation: None,
            restart: None,
            age: None,
            pending: None,
            attempts: Attempts::default(),
            next_connection: 0,
            jitter_state,
            tools_owed: false,
            interaction_busy: false,
            settling: None,
            results_sent: None,
            results_answer: None,
            guessed: false,
            result_messages: std::collections::BTreeSet::new(),
            deferred: std::collections::HashSet::new(),
            held: VecDeque::new(),
            video_at: None,
            version: 0,
            closed: None,
            last_failure: None,
            handle_distrusted: false,
            connected_once: false,
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        let trigger = match stored {
            Some(stored) => core.restore(stored),
            None => resume_policy::Trigger::FirstConnect,
        };
        core.pending = Some(Pending::new(trigger, now));
        core.step_pending(now);
        core
    }

    /// The session's configuration (the shell shares it).
    pub(crate) fn session_config(&self) -> &Arc<SessionConfig> {
        &self.config.session
    }

    /// `L`: the application's context, in the server's order.
    pub fn chat_ctx(&self) -> &ChatContext {
        &self.ledger.desired
    }

    /// The version of `L`: it changes whenever `L` changes (an application edit or model
    /// output). [`Command::UpdateContext`] is refused unless it names the current version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The model's capability row.
    pub fn capabilities(&self) -> &ModelCapabilities {
        &self.caps
    }

    /// The open connection on which audio may be written now (the plan has been sent on it).
    pub fn audio_target(&self) -> Option<ConnectionId> {
        match self.link {
            Link::Open { id } if self.closed.is_none() => Some(id),
            _ => None,
        }
    }

    /// Whether the first connection has completed its setup.
    pub fn has_connected(&self) -> bool {
        self.connected_once
    }

    /// Whether a video frame pushed at `now` is sent: a connection is up and the video
    /// interval has passed since the last frame sent.
    pub fn video_due(&self, now: Millis) -> bool {
        let interval = millis(self.config.session.video_interval);
        self.link.open_id().is_some()
            && self
                .video_at
                .is_none_or(|at| now.0.saturating_sub(at.0) >= interval)
    }

    /// `Some(error)` once the session has ended (`None` inside: closed by the application).
    pub fn closed(&self) -> Option<&Option<SessionError>> {
        self.closed.as_ref()
    }

    /// Whether the session has settled: connected, nothing queued or being sent, no reconnect,
    /// rotation or restart pending, the model not in a turn, nothing left to poll. Operations
    /// sent and not yet covered by a handle are allowed (a silent append is covered only by a
    /// later turn), and so are operations deferred to the next fresh session (reported by a
    /// divergence event when deferred).
    pub fn is_settled(&self) -> bool {
        let open = matches!(self.link, Link::Open { .. });
        open && self.closed.is_none()
            && self.pending.is_none()
            && self.rotation.is_none()
            && self.restart.is_none()
            && !self.turn.active
            && self.transmits.is_empty()
            && self.actions.is_empty()
            && self
                .ledger
                .outbox
                .live()
                .all(|op| op.state.sent_at().is_some() || self.deferred.contains(&op.id))
    }

    /// A tool call of the current server session awaits the application's (final) result: a
    /// non-blocking call may run on after its turn completed, with the session settled.
    pub fn tools_running(&self) -> bool {
        self.ledger
            .tracker
            .tool_calls()
            .iter()
            .any(|call| call.in_session && call.status == resume_policy::ToolCallStatus::Running)
    }

    /// The next client message to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next connection-level request.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`SessionCore::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.closed.is_some() {
            return None;
        }
        let pending = match (&self.pending, &self.link) {
            (Some(pending), Link::None) => Some(pending.at),
            _ => None,
        };
        [
            pending,
            self.rotation.as_ref().map(|r| r.deadline),
            self.restart.as_ref().and_then(|r| r.deadline),
            self.age.as_ref().map(Ageing::deadline),
            self.settling.as_ref().map(|s| s.deadline),
            self.results_answer.map(|(_, deadline)| deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.closed.is_some() {
            return;
        }
        if self.settling.as_ref().is_some_and(|s| s.deadline <= now) {
            // No turn came after the one taken to answer the results: it did.
            self.settling = None;
            self.release_held(now);
        }
        if self
            .results_answer
            .is_some_and(|(_, deadline)| deadline <= now)
        {
            // The answer owed may still come, after turns released now reach the server:
            // where it lands among them is a guess (`session-sim/tests/seeds.rs`).
            self.results_answer = None;
            self.guessed = true;
            self.release_held(now);
        }
        if let (Some(pending), Link::None) = (&self.pending, &self.link) {
            if pending.at <= now {
                self.step_pending(now);
            }
        }
        if self
            .restart
            .as_ref()
            .and_then(|r| r.deadline)
            .is_some_and(|d| d <= now)
        {
            self.maybe_rotate(now);
        }
        if self.age.as_ref().is_some_and(|a| a.deadline() <= now) {
            if self.age.as_ref().is_some_and(|a| a.forced(now)) {
                self.rotate_for_age(now, true);
            } else {
                self.maybe_rotate(now);
            }
        }
        if self.rotation.as_ref().is_some_and(|r| r.deadline <= now) {
            if let Some(rotation) = self.rotation.take() {
                self.force_turn_boundary();
                self.reconnect(
                    now,
                    resume_policy::Trigger::GoAway {
                        time_left: rotation.time_left,
                    },
                    crate::ReconnectReason::GoAway {
                        time_left: rotation.time_left,
                    },
                );
            }
        }
    }

    /// The shell wrote `frames` audio messages of `duration` in all on `connection` (after
    /// every transmit polled so far), frames of one length; `voiced`: some sample of each was
    /// loud enough to be speech, or none of any (see
    /// [`MessageKind::QuietAudio`](resume_policy::MessageKind::QuietAudio)). Counted for
    /// message indices and where speech may end; nothing else is done per frame.
    pub fn audio_sent(
        &mut self,
        connection: ConnectionId,
        frames: u32,
        duration: Duration,
        voiced: bool,
    ) {
        if frames == 0 || self.link.open_id() != Some(connection) {
            return;
        }
        let counted = self.ledger.tracker.on_audio(frames, duration, voiced);
        self.checked("counting audio frames", counted);
    }

    /// An application command at `now`.
    pub fn command(&mut self, now: Millis, command: Command) -> Result<Receipt, Error> {
        if self.closed.is_some() {
            return Err(Error::Closed);
        }
        let mut receipt = match command {
            Command::Close => {
                self.shutdown(None);
                Receipt::default()
            }
            Command::Text(text) => self.text(now, text)?,
            Command::Append(items) => self.append(now, items)?,
            Command::UpdateContext { context, based_on } => {
                self.update_context(now, context, based_on)?
            }
            Command::UpdateInstructions(text) => {
                let version = resume_policy::ConfigVersion(self.ledger.instructions.0.0 + 1);
                self.ledger.instructions = (version, Some(text));
                let op = self
                    .ledger
                    .outbox
                    .push(OpKind::InstructionChange { version });
                self.route(now, op);
                Receipt {
                    op: Some(op),
                    ..Receipt::default()
                }
            }
            Command::UpdateTools(tools) => {
                crate::config::check_tools(&self.config.session.model, &tools, &self.caps)?;
                let version = resume_policy::ConfigVersion(self.ledger.tools.0.0 + 1);
                self.ledger.tools = (version, tools);
                let op = self.ledger.outbox.push(OpKind::ToolSetChange { version });
                self.route(now, op);
                Receipt {
                    op: Some(op),
                    ..Receipt::default()
                }
            }
            Command::ToolResult {
                call_id,
                output,
                is_error,
                scheduling,
                will_continue,
            } => self.tool_result(now, call_id, output, is_error, (scheduling, will_continue))?,
            Command::GenerateReply(instructions) => self.generate_reply(now, instructions)?,
            Command::Interrupt => {
                self.turn.mute(&mut self.events);
                Receipt::default()
            }
            Command::AudioStreamEnd => {
                self.realtime(
                    ClientMessage::audio_stream_end(),
                    resume_policy::MessageKind::AudioStreamEnd,
                );
                Receipt::default()
            }
            Command::ActivityStart | Command::ActivityEnd
                if self.config.session.automatic_activity_detection =>
            {
                // The service closes the connection with 1007 on these while its own detection
                // is on: refused before anything is sent.
                return Err(Error::ActivityDetectionOn {
                    signal: if matches!(command, Command::ActivityStart) {
                        "activityStart"
                    } else {
                        "activityEnd"
                    },
                });
            }
            Command::Video { frame, mime_type } => {
                // Realtime input, not context: provokes no reaction of its own, and is dropped
                // while no connection is up (the next frame replaces it) or sooner than the
                // video interval after the last one sent.
                if self.video_due(now) {
                    self.realtime(
                        ClientMessage::video(&frame, mime_type),
                        resume_policy::MessageKind::Silent,
                    );
                    self.video_at = Some(now);
                }
                Receipt::default()
            }
            Command::ActivityStart => {
                self.realtime(
                    ClientMessage::activity_start(),
                    resume_policy::MessageKind::ActivityStart,
                );
                Receipt::default()
            }
            // The end of the user's activity ends the spoken turn, which the model answers.
            Command::ActivityEnd => {
                self.realtime(
                    ClientMessage::activity_end(),
                    resume_policy::MessageKind::ActivityEnd,
                );
                Receipt::default()
            }
        };
        receipt.version = self.version;
        Ok(receipt)
    }

    fn shutdown(&mut self, error: Option<SessionError>) {
        if self.closed.is_some() {
            return;
        }
        if let Some(id) = self.link.id() {
            self.actions.push_back(Action::Close {
                connection: id,
                code: 1000,
                reason: "session closed",
            });
        }
        self.link = Link::None;
        self.pending = None;
        self.rotation = None;
        self.restart = None;
        self.age = None;
        self.events.push_back(SessionEvent::Closed {
            error: error.clone(),
        });
        self.closed = Some(error);
    }

    fn jitter(&mut self) -> u64 {
        // xorshift64*: deterministic per seed, enough to spread reconnects.
        let mut x = self.jitter_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.jitter_state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn emit(&mut self, event: SessionEvent) {
        self.events.push_back(event);
    }

    /// The value of the ledger step `step`, or `None` once its failure is reported as
    /// [`SessionEvent::InvariantBroken`] (which says why the session goes on) and the handle
    /// is distrusted. Never ignore a ledger `Result`: pass it here.
    fn checked<T, E: std::fmt::Display>(
        &mut self,
        step: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                let what = format!("{step}: {error}");
                tracing::error!(%what, "session ledger invariant broken");
                self.handle_distrusted = true;
                self.emit(SessionEvent::InvariantBroken { what });
                None
            }
        }
    }

    fn bump(&mut self) {
        self.version += 1;
    }

    /// A transmit on the open connection (or on the connection being set up).
    fn transmit(&mut self, connection: ConnectionId, message: ClientMessage) {
        self.transmits.push_back(Transmit {
            connection,
            message,
        });
    }
}

/// `Duration` to whole milliseconds.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
