//! The scripted model on one connection: setup, turns, tool calls, interruptions and handles.
//!
//! Synchronous: the async shell (`connection.rs`) feeds it frames and clock ticks, sends the
//! messages it queues and executes the [`Step`] it returns.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gemini_transport::wire::{
    ClientContent, ClientMessage, Content, ContextUpdate, FunctionCall, FunctionResponse, PartData,
    RealtimeInput, Scheduling, ServerMessage,
};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::context::{ModelState, Part, PendingCall, Role, Turn};
use crate::family::bare_model_id;
use crate::faults::{FaultAction, Trigger};
use crate::handles::HandleRefusal;
use crate::outbound::{self, Usage};
use crate::script::{self, Reply};
use crate::session::{
    AnswerRecord, ConnectionId, IssuedHandle, ResponseFate, SessionId, SessionSnapshot,
    ToolCallRecord, ToolResponseRecord,
};
use crate::setup::{ResponseKind, SetupRequest, content_text, function_names};
use crate::shared::Shared;
use crate::vad::{self, Vad, VadEvent};

/// The reason the service gives with 1007.
pub(crate) const INVALID_ARGUMENT: &str = "Request contains an invalid argument.";

/// What the shell must do after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep serving.
    Continue,
    /// Send the queued messages, then close with this code and reason.
    Close(u16, String),
    /// Send the queued messages, then drop the TCP connection.
    Drop,
    /// Send the queued messages, then a `goAway` with this `timeLeft` (already queued).
    GoAway(Duration),
}

impl Step {
    fn invalid() -> Step {
        Step::Close(1007, INVALID_ARGUMENT.to_owned())
    }

    fn from_fault(action: FaultAction) -> Step {
        match action {
            FaultAction::Drop => Step::Drop,
            FaultAction::Close(code, reason) => Step::Close(code, reason),
            FaultAction::GoAway(time_left) => Step::GoAway(time_left),
        }
    }
}

/// An answer being streamed.
#[derive(Debug)]
struct Generation {
    answer: String,
    chunks: VecDeque<String>,
    produced: String,
    chunk_number: u64,
    next_at: Instant,
    trigger_index: u64,
}

/// Where the model is in its turn.
#[derive(Debug)]
enum TurnState {
    Idle,
    Generating(Generation),
    AwaitingTools,
}

/// The model's side of one connection.
pub(crate) struct Conversation {
    shared: Arc<Shared>,
    connection: ConnectionId,
    route_version: String,
    session: Option<SessionId>,
    setup: Option<SetupRequest>,
    index: u64,
    history_phase: bool,
    turn: TurnState,
    vad: Vad,
    activity: Option<f64>,
    deferred_turn: bool,
    ring: VecDeque<(u64, ModelState)>,
    last_reacted: u64,
    out: Vec<ServerMessage>,
}

impl Conversation {
    pub(crate) fn new(
        shared: Arc<Shared>,
        connection: ConnectionId,
        route_version: String,
    ) -> Self {
        let vad = Vad::new(shared.config.vad_threshold, shared.config.vad_silence);
        Conversation {
            shared,
            connection,
            route_version,
            session: None,
            setup: None,
            index: 0,
            history_phase: false,
            turn: TurnState::Idle,
            vad,
            activity: None,
            deferred_turn: false,
            ring: VecDeque::new(),
            last_reacted: 0,
            out: Vec::new(),
        }
    }

    /// Messages queued since the last call.
    pub(crate) fn take_out(&mut self) -> Vec<ServerMessage> {
        std::mem::take(&mut self.out)
    }

    /// When the generation wants its next tick.
    pub(crate) fn next_tick(&self) -> Option<Instant> {
        match &self.turn {
            TurnState::Generating(generation) => Some(generation.next_at),
            _ => None,
        }
    }

    /// One client frame.
    pub(crate) fn on_frame(&mut self, raw: &[u8], binary: bool) -> Step {
        let decoded = ClientMessage::from_json(raw);
        let kind = decoded
            .as_ref()
            .map_or("invalid", ClientMessage::member_name);
        let index = if self.setup.is_some() {
            self.index + 1
        } else {
            0
        };
        self.index = index;
        let frame = crate::session::ReceivedFrame {
            index,
            raw: String::from_utf8_lossy(raw).into_owned(),
            binary,
            kind,
        };
        let connection = self.connection;
        self.shared.update(|state| {
            if let Some(record) = state.connection_mut(connection) {
                record.frames.push(frame);
            }
        });
        let message = match decoded {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(connection = %self.connection, %error, "undecodable client frame");
                return Step::invalid();
            }
        };
        if self.setup.is_none() {
            return match message {
                ClientMessage::Setup(setup) => self.on_setup(&SetupRequest::from_wire(&setup)),
                _ => Step::invalid(),
            };
        }
        let (step, changed) = self.on_message(message);
        if step != Step::Continue {
            return step;
        }
        self.record_ring();
        if changed || self.transparent() {
            self.offer_handle();
        }
        match self.fire(Trigger::ClientMessages(0)) {
            Some(action) => Step::from_fault(action),
            None => Step::Continue,
        }
    }

    /// Advances a generation whose tick is due.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        let interval = self.shared.config.chunk_interval;
        let audio = self.response_kind() == ResponseKind::Audio;
        let packs = self
            .shared
            .config
            .family
            .capabilities()
            .packs_server_content;
        let transcribe = self.setup.as_ref().is_some_and(|s| s.output_transcription);
        let TurnState::Generating(generation) = &mut self.turn else {
            return;
        };
        if generation.next_at > now {
            return;
        }
        if let Some(chunk) = generation.chunks.pop_front() {
            if audio {
                let pcm = script::chunk_audio(generation.chunk_number);
                if packs && transcribe {
                    self.out.push(outbound::packed_audio_chunk(pcm, &chunk));
                } else {
                    self.out.push(outbound::audio_chunk(pcm));
                    if transcribe {
                        self.out.push(outbound::output_transcription(&chunk));
                    }
                }
            } else {
                self.out.push(outbound::text_chunk(&chunk));
            }
            generation.produced.push_str(&chunk);
            generation.chunk_number += 1;
            generation.next_at = now + interval;
        }
        if generation.chunks.is_empty() {
            self.finish_generation();
        }
    }

    // ---- setup ----

    fn on_setup(&mut self, request: &SetupRequest) -> Step {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let model_id = bare_model_id(&request.model);
        if !config.accepts_model(model_id) {
            return Step::Close(
                1008,
                format!(
                    "models/{model_id} is not found for API version {}, or is not supported for \
                     bidiGenerateContent. Call ListModels to see the list of available models \
                     and their supported methods.",
                    self.route_version
                ),
            );
        }
        let transparent = request.resumption.as_ref().is_some_and(|r| r.transparent);
        if transparent && !config.vertex && !config.transparent_on_developer_api {
            return Step::invalid();
        }
        if let Some(action) = self.fire(Trigger::SetupReceived) {
            return Step::from_fault(action);
        }
        let handle = request.resumption.as_ref().and_then(|r| r.handle.clone());
        let joined = match handle {
            Some(handle) => self.resume(&handle, request),
            None => Ok(self.create_session(request)),
        };
        let (session, state) = match joined {
            Ok(joined) => joined,
            Err(step) => return step,
        };
        self.session = Some(session);
        self.history_phase = request.initial_history;
        if let Some(ms) = request.silence_ms {
            self.vad = Vad::new(config.vad_threshold, Duration::from_millis(ms));
        }
        self.turn = if state.pending_calls.is_empty() {
            TurnState::Idle
        } else {
            TurnState::AwaitingTools
        };
        self.ring.push_back((0, state));
        self.setup = Some(request.clone());
        self.out.push(outbound::setup_complete());
        if let Some(action) = self.fire(Trigger::SetupCompleteSent) {
            return Step::from_fault(action);
        }
        self.offer_handle();
        Step::Continue
    }

    fn create_session(&mut self, request: &SetupRequest) -> (SessionId, ModelState) {
        let connection = self.connection;
        self.shared.update(|state| {
            state.next_session += 1;
            let id = SessionId(state.next_session);
            let mut session = SessionSnapshot::new(id, request.model.clone());
            session.system_instruction = request.system_instruction.clone();
            session.tools = request.functions.clone();
            if let Some(at) = state.unattached.iter().position(|c| c.id == connection) {
                let mut record = state.unattached.remove(at);
                record.session = Some(id);
                session.connections.push(record);
            }
            state.sessions.insert(id, session);
            (id, ModelState::default())
        })
    }

    fn resume(
        &mut self,
        handle: &str,
        request: &SetupRequest,
    ) -> Result<(SessionId, ModelState), Step> {
        let connection = self.connection;
        let expiry = self.shared.config.handle_expiry;
        let now = Instant::now();
        self.shared.update(|state| {
            if let Some((code, reason)) = state.faults.refuse_next_resume.take() {
                return Err(Step::Close(code, reason));
            }
            let sessions = &state.sessions;
            let found = state.handles.resume(handle, now, expiry, |id| {
                sessions.get(&id).map_or((false, None), |s| {
                    (s.active_connection().is_some(), s.last_ended)
                })
            });
            let (id, snapshot) = found.map_err(|refusal| {
                tracing::debug!(?refusal, "resume refused");
                match refusal {
                    HandleRefusal::Unknown | HandleRefusal::Expired => Step::invalid(),
                }
            })?;
            let Some(session) = state.sessions.get_mut(&id) else {
                return Err(Step::invalid());
            };
            if bare_model_id(&session.model) != bare_model_id(&request.model) {
                return Err(Step::invalid());
            }
            if session.active_connection().is_some() {
                session.overlaps += 1;
            }
            session.state = snapshot.clone();
            session.restores.push(handle.to_owned());
            session.system_instruction = request.system_instruction.clone();
            session.tools = request.functions.clone();
            if let Some(at) = state.unattached.iter().position(|c| c.id == connection) {
                let mut record = state.unattached.remove(at);
                record.session = Some(id);
                record.resumed_from = Some(handle.to_owned());
                session.connections.push(record);
            }
            Ok((id, snapshot))
        })
    }

    // ---- client messages ----

    /// Returns the step and whether the session state changed.
    fn on_message(&mut self, message: ClientMessage) -> (Step, bool) {
        match message {
            ClientMessage::Setup(_) => (Step::invalid(), false),
            ClientMessage::ClientContent(content) => self.on_client_content(content),
            ClientMessage::RealtimeInput(input) => self.on_realtime(input),
            ClientMessage::ToolResponse(response) => (
                Step::Continue,
                self.on_tool_response(response.function_responses),
            ),
            ClientMessage::ContextUpdate(update) => self.on_context_update(update),
        }
    }

    fn on_client_content(&mut self, content: ClientContent) -> (Step, bool) {
        let turns: Vec<Turn> = content.turns.iter().map(turn_from_wire).collect();
        if self.history_phase {
            self.with_session(|s| s.state.context.extend(turns));
            if content.turn_complete {
                self.history_phase = false;
            }
            // Seeded history is never answered.
            self.with_session(|s| s.state.answered_upto = s.state.context.len());
            return (Step::Continue, true);
        }
        if !self
            .shared
            .config
            .family
            .capabilities()
            .client_content_mid_session
        {
            return (Step::invalid(), false);
        }
        self.interrupt();
        self.with_session(|s| s.state.context.extend(turns));
        if content.turn_complete {
            self.start_generation();
        }
        (Step::Continue, true)
    }

    fn on_realtime(&mut self, input: RealtimeInput) -> (Step, bool) {
        let manual = self.setup.as_ref().is_some_and(|s| s.manual_activity);
        match input {
            RealtimeInput::Text(text) => {
                self.interrupt();
                self.with_session(|s| s.state.context.push(Turn::user_text(text)));
                self.start_generation();
                (Step::Continue, true)
            }
            RealtimeInput::Audio(blob) => {
                (Step::Continue, self.on_audio(&blob.data, &blob.mime_type))
            }
            RealtimeInput::MediaChunks(chunks) => match chunks.first() {
                Some(blob) if blob.mime_type.starts_with("audio/") => {
                    (Step::Continue, self.on_audio(&blob.data, &blob.mime_type))
                }
                _ => (Step::Continue, false),
            },
            RealtimeInput::Video(_) => (Step::Continue, false),
            RealtimeInput::ActivityStart | RealtimeInput::ActivityEnd if !manual => {
                (Step::invalid(), false)
            }
            RealtimeInput::ActivityStart => {
                self.barge_in();
                self.activity = Some(0.0);
                (Step::Continue, false)
            }
            RealtimeInput::ActivityEnd => match self.activity.take() {
                Some(seconds) => {
                    self.user_spoke(seconds);
                    (Step::Continue, true)
                }
                None => (Step::Continue, false),
            },
            RealtimeInput::AudioStreamEnd => match self.vad.flush() {
                Some(VadEvent::SpeechEnded { seconds }) if !manual => {
                    self.user_spoke(seconds);
                    (Step::Continue, true)
                }
                _ => (Step::Continue, false),
            },
        }
    }

    fn on_audio(&mut self, pcm: &[u8], mime_type: &str) -> bool {
        let rate = vad::rate_of(mime_type);
        if self.setup.as_ref().is_some_and(|s| s.manual_activity) {
            if let Some(seconds) = self.activity.as_mut() {
                *seconds += vad::duration_of(pcm, rate);
            }
            return false;
        }
        match self.vad.feed(pcm, rate) {
            Some(VadEvent::SpeechStarted) => {
                self.barge_in();
                false
            }
            Some(VadEvent::SpeechEnded { seconds }) => {
                self.user_spoke(seconds);
                true
            }
            None => false,
        }
    }

    /// Start of user activity: interrupts unless the setup asked for `NO_INTERRUPTION`.
    fn barge_in(&mut self) {
        if !self.setup.as_ref().is_some_and(|s| s.no_interruption) {
            self.interrupt();
        }
    }

    /// A spoken user turn ended.
    fn user_spoke(&mut self, seconds: f64) {
        let text = vad::transcript(seconds);
        if self.setup.as_ref().is_some_and(|s| s.input_transcription) {
            self.out.push(outbound::input_transcription(&text));
        }
        self.with_session(|s| {
            s.state.context.push(Turn {
                role: Role::User,
                parts: vec![Part::AudioTranscript(text)],
            });
        });
        if matches!(self.turn, TurnState::Idle) {
            self.start_generation();
        } else {
            self.deferred_turn = true;
        }
    }

    fn on_tool_response(&mut self, responses: Vec<FunctionResponse>) -> bool {
        let connection = self.connection;
        let mut accepted = Vec::new();
        let mut silent = true;
        self.with_session(|s| {
            for response in responses {
                let pending = s
                    .state
                    .pending_calls
                    .iter()
                    .position(|c| c.id == response.id);
                let fate = if let Some(at) = pending {
                    s.state.pending_calls.remove(at);
                    ResponseFate::Accepted
                } else if s.cancelled_calls.contains(&response.id) {
                    ResponseFate::Cancelled
                } else if s
                    .tool_responses
                    .iter()
                    .any(|r| r.id == response.id && r.fate == ResponseFate::Accepted)
                {
                    ResponseFate::Duplicate
                } else {
                    ResponseFate::Unknown
                };
                let value = Value::Object(response.response.clone());
                s.tool_responses.push(ToolResponseRecord {
                    id: response.id.clone(),
                    name: response.name.clone(),
                    response: value.clone(),
                    connection,
                    fate,
                });
                if fate == ResponseFate::Accepted {
                    silent &= response.scheduling == Some(Scheduling::Silent);
                    accepted.push(Part::FunctionResponse {
                        id: response.id,
                        name: response.name,
                        response: value,
                    });
                }
            }
            if !accepted.is_empty() {
                s.state.context.push(Turn {
                    role: Role::User,
                    parts: accepted.clone(),
                });
            }
        });
        if accepted.is_empty() {
            return false;
        }
        let all_answered = self
            .with_session(|s| s.state.pending_calls.is_empty())
            .unwrap_or(true);
        if all_answered && matches!(self.turn, TurnState::AwaitingTools) {
            self.turn = TurnState::Idle;
            if !silent {
                let answer = accepted
                    .iter()
                    .filter_map(|part| match part {
                        Part::FunctionResponse { name, response, .. } => {
                            Some(script::tool_answer(name, response))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                self.begin_answer(answer);
            }
        }
        true
    }

    fn on_context_update(&mut self, update: ContextUpdate) -> (Step, bool) {
        if !self.shared.config.family.capabilities().context_update {
            return (Step::invalid(), false);
        }
        self.with_session(|s| {
            if let Some(instruction) = &update.system_instruction {
                s.system_instruction = Some(content_text(instruction));
            }
            if let Some(tools) = &update.tools {
                s.tools = function_names(tools);
            }
        });
        (Step::Continue, true)
    }

    // ---- the scripted model ----

    /// Answers the new user input: a tool call or an echo.
    fn start_generation(&mut self) {
        let session = self.session.unwrap_or(SessionId(0));
        let connection = self.connection;
        let index = self.index;
        let reply = self.with_session(|s| {
            s.generations += 1;
            let text = s.state.new_user_text();
            s.state.answered_upto = s.state.context.len();
            match script::reply_to(&text, &s.tools) {
                Reply::Call(name) => {
                    let id = format!("call-{session}-{}", s.tool_calls.len() + 1);
                    s.state.context.push(Turn {
                        role: Role::Model,
                        parts: vec![Part::FunctionCall {
                            id: id.clone(),
                            name: name.clone(),
                            args: Value::Object(Map::new()),
                        }],
                    });
                    s.state.pending_calls.push(PendingCall {
                        id: id.clone(),
                        name: name.clone(),
                    });
                    s.tool_calls.push(ToolCallRecord {
                        id: id.clone(),
                        name: name.clone(),
                        args: Value::Object(Map::new()),
                        connection,
                    });
                    Reply::Call(id)
                }
                say => say,
            }
        });
        match reply {
            Some(Reply::Call(id)) => {
                let name = self
                    .with_session(|s| s.state.pending_calls.last().map(|c| c.name.clone()))
                    .flatten()
                    .unwrap_or_default();
                self.not_resumable();
                self.out.push(outbound::tool_call(vec![FunctionCall::new(
                    id,
                    name,
                    Map::new(),
                )]));
                self.turn = TurnState::AwaitingTools;
                self.last_reacted = index;
                self.record_ring();
            }
            Some(Reply::Say(answer)) => self.stream(answer),
            None => {}
        }
    }

    /// Starts streaming an answer that counts as a new generation (after tool responses).
    fn begin_answer(&mut self, answer: String) {
        self.with_session(|s| {
            s.generations += 1;
            s.state.answered_upto = s.state.context.len();
        });
        self.stream(answer);
    }

    fn stream(&mut self, answer: String) {
        self.not_resumable();
        self.turn = TurnState::Generating(Generation {
            chunks: script::chunks(&answer).into(),
            answer,
            produced: String::new(),
            chunk_number: 0,
            next_at: Instant::now() + self.shared.config.chunk_interval,
            trigger_index: self.index,
        });
    }

    fn finish_generation(&mut self) {
        let TurnState::Generating(generation) = std::mem::replace(&mut self.turn, TurnState::Idle)
        else {
            return;
        };
        self.out.push(outbound::generation_complete());
        let usage = self.usage(&generation.answer);
        self.out.push(outbound::turn_complete(usage));
        self.record_answer(generation.answer, false);
        self.last_reacted = generation.trigger_index;
        self.record_ring();
        if std::mem::take(&mut self.deferred_turn) {
            self.start_generation();
        } else {
            self.offer_handle();
        }
    }

    /// Cuts off whatever the model is doing: `interrupted` then `turnComplete`, with a
    /// `toolCallCancellation` first for pending calls.
    fn interrupt(&mut self) {
        match std::mem::replace(&mut self.turn, TurnState::Idle) {
            TurnState::Idle => {}
            TurnState::Generating(generation) => {
                self.out.push(outbound::interrupted());
                let usage = self.usage(&generation.produced);
                self.out.push(outbound::turn_complete(usage));
                self.record_answer(generation.produced, true);
            }
            TurnState::AwaitingTools => {
                let ids = self
                    .with_session(|s| {
                        let ids: Vec<String> =
                            s.state.pending_calls.drain(..).map(|c| c.id).collect();
                        s.cancelled_calls.extend(ids.iter().cloned());
                        ids
                    })
                    .unwrap_or_default();
                if !ids.is_empty() {
                    self.out.push(outbound::tool_call_cancellation(ids));
                }
                self.out.push(outbound::interrupted());
                self.out.push(outbound::turn_complete(self.usage("")));
            }
        }
    }

    fn record_answer(&mut self, text: String, interrupted: bool) {
        let audio = self.response_kind() == ResponseKind::Audio;
        let connection = self.connection;
        self.with_session(|s| {
            if !text.is_empty() {
                let part = if audio {
                    Part::AudioTranscript(text.clone())
                } else {
                    Part::Text(text.clone())
                };
                s.state.context.push(Turn {
                    role: Role::Model,
                    parts: vec![part],
                });
            }
            s.answers.push(AnswerRecord {
                text,
                interrupted,
                connection,
            });
        });
    }

    fn usage(&self, answer: &str) -> Usage {
        let prompt = self
            .shared
            .read(|state| {
                self.session
                    .and_then(|id| state.sessions.get(&id))
                    .map(|s| {
                        s.state
                            .context
                            .iter()
                            .map(|t| script::tokens(&t.text()))
                            .sum()
                    })
            })
            .unwrap_or(0);
        Usage {
            prompt,
            response: script::tokens(answer),
            audio: self.response_kind() == ResponseKind::Audio,
            vertex: self.shared.config.vertex,
        }
    }

    // ---- resumption updates ----

    fn resumption_on(&self) -> bool {
        self.setup.as_ref().is_some_and(|s| s.resumption.is_some())
    }

    fn transparent(&self) -> bool {
        self.setup
            .as_ref()
            .and_then(|s| s.resumption.as_ref())
            .is_some_and(|r| r.transparent)
    }

    /// Remembers the model state as of the current message (for lagging handles).
    fn record_ring(&mut self) {
        let Some(state) = self.with_session(|s| s.state.clone()) else {
            return;
        };
        match self.ring.back_mut() {
            Some((index, stored)) if *index == self.index => *stored = state,
            _ => self.ring.push_back((self.index, state)),
        }
        let keep = usize::try_from(self.shared.config.handle_lag)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        while self.ring.len() > keep {
            self.ring.pop_front();
        }
    }

    /// The message index a handle issued now covers, with the configured lag.
    fn covered_index(&self) -> u64 {
        self.index
            .saturating_sub(self.shared.config.handle_lag)
            .max(self.last_reacted)
    }

    fn reported_index(&self, covered: u64) -> Option<u64> {
        if self.transparent() {
            self.shared.config.index_convention.report(covered)
        } else {
            None
        }
    }

    fn not_resumable(&mut self) {
        if self.resumption_on() {
            let reported = self.reported_index(self.covered_index());
            self.out.push(outbound::resumption_update(None, reported));
        }
    }

    /// Issues a resumable update with a new handle when the session is idle.
    fn offer_handle(&mut self) {
        if !self.resumption_on() || !matches!(self.turn, TurnState::Idle) {
            return;
        }
        let Some(session) = self.session else {
            return;
        };
        let covered = self.covered_index();
        let snapshot = self
            .ring
            .iter()
            .rev()
            .find(|(index, _)| *index <= covered)
            .or(self.ring.front())
            .map(|(index, state)| (*index, state.clone()));
        let Some((covered, snapshot)) = snapshot else {
            return;
        };
        let connection = self.connection;
        let now = Instant::now();
        let handle = self.shared.update(|state| {
            let context_len = snapshot.context.len();
            let handle = state.handles.issue(session, snapshot, now);
            if let Some(s) = state.sessions.get_mut(&session) {
                s.handles_issued.push(IssuedHandle {
                    handle: handle.clone(),
                    connection,
                    covers_index: covered,
                    context_len,
                    issued_at: now,
                });
            }
            handle
        });
        let reported = self.reported_index(covered);
        self.out
            .push(outbound::resumption_update(Some(handle), reported));
    }

    // ---- plumbing ----

    fn response_kind(&self) -> ResponseKind {
        self.setup
            .as_ref()
            .map_or(ResponseKind::Audio, |s| s.modality)
    }

    fn with_session<T>(&self, f: impl FnOnce(&mut SessionSnapshot) -> T) -> Option<T> {
        let id = self.session?;
        self.shared
            .update(|state| state.sessions.get_mut(&id).map(f))
    }

    fn fire(&self, event: Trigger) -> Option<FaultAction> {
        self.shared.update(|state| state.faults.fire(event))
    }
}

/// A wire `Content` as a context turn.
fn turn_from_wire(content: &Content) -> Turn {
    let role = Role::from_wire(content.role.as_ref().map(|r| r.as_str()));
    let parts = content
        .parts
        .iter()
        .map(|part| match &part.data {
            PartData::Text(text) => Part::Text(text.clone()),
            PartData::InlineData(blob) => Part::InlineData {
                mime_type: blob.mime_type.clone(),
            },
            PartData::FunctionCall(call) => Part::FunctionCall {
                id: call.id.clone(),
                name: call.name.clone(),
                args: Value::Object(call.args.clone()),
            },
            PartData::FunctionResponse(response) => Part::FunctionResponse {
                id: response.id.clone(),
                name: response.name.clone(),
                response: Value::Object(response.response.clone()),
            },
            PartData::ExecutableCode(_) => Part::Other("executableCode".to_owned()),
            PartData::CodeExecutionResult(_) => Part::Other("codeExecutionResult".to_owned()),
            PartData::FileData(_) => Part::Other("fileData".to_owned()),
            PartData::Unknown(name) => Part::Other(name.clone()),
        })
        .collect();
    Turn { role, parts }
}
