//! The scripted model on one connection: setup, turns, tool calls, interruptions and handles.
//!
//! Synchronous: the async shell (`connection.rs`) feeds it frames and clock ticks, sends the
//! messages it queues and executes the [`Step`] it returns. Split by concern: `setup_phase`
//! (setup, new and resumed sessions), `input` (client messages), `model` (generations, tool calls,
//! interruptions), `checkpoints` (resumption updates and handle snapshots).

mod checkpoints;
mod input;
mod model;
mod rules;
mod setup_phase;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gemini_transport::wire::{
    ClientContent, ClientMessage, Content, ContextUpdate, FunctionCall, FunctionResponse,
    InteractionStatus, PartData, RealtimeInput, Scheduling, ServerMessage,
};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::context::{ModelState, Part, PendingCall, Role, Turn};
use crate::family::{Capabilities, Family, SetupRule, bare_model_id};
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
    /// Where the answer goes in the context when content was added while it streamed (on 3.8
    /// `clientContent` without `turnComplete`, a tool response): right after the input it
    /// answers, before what came during it. `None`: at the end.
    insert_at: Option<usize>,
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
    /// The family of this connection's model (the default family until `setup` names one).
    family: Family,
    /// Its capabilities as configured ([`FakeConfig::capabilities_of`](crate::FakeConfig::capabilities_of)).
    caps: Capabilities,
    /// Answers to non-blocking tool responses waiting for the model to be idle (`WHEN_IDLE`).
    deferred_answers: Vec<String>,
    /// Extended thinking: when the next filler is due while a call is pending.
    filler_at: Option<Instant>,
    /// Fillers spoken since calls were last all answered.
    fillers_spoken: u32,
    /// A close decided while acting (a session limit), for the shell to carry out.
    close: Option<Step>,
    index: u64,
    history_phase: bool,
    turn: TurnState,
    vad: Vad,
    activity: Option<f64>,
    deferred_turn: bool,
    /// Its `setup` is left unanswered ([`Faults::ignore_setups`](crate::Faults::ignore_setups)):
    /// nothing that arrives is acted on.
    ignoring: bool,
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
        let family = shared.config.family;
        let caps = shared.config.capabilities_of(family);
        Conversation {
            shared,
            connection,
            route_version,
            session: None,
            setup: None,
            family,
            caps,
            deferred_answers: Vec::new(),
            filler_at: None,
            fillers_spoken: 0,
            close: None,
            index: 0,
            history_phase: false,
            turn: TurnState::Idle,
            vad,
            activity: None,
            deferred_turn: false,
            ignoring: false,
            ring: VecDeque::new(),
            last_reacted: 0,
            out: Vec::new(),
        }
    }

    /// Messages queued since the last call.
    pub(crate) fn take_out(&mut self) -> Vec<ServerMessage> {
        std::mem::take(&mut self.out)
    }

    /// Whether `setup` was accepted on this connection.
    pub(crate) fn is_set_up(&self) -> bool {
        self.setup.is_some()
    }

    /// The family of the model this connection's `setup` named (the default family before).
    pub(crate) fn family(&self) -> Family {
        self.family
    }

    /// The session this connection joined, once its setup was accepted.
    pub(crate) fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// A close decided while acting on a tick (a session limit), taken once.
    pub(crate) fn take_close(&mut self) -> Option<Step> {
        self.close.take()
    }

    /// When the generation wants its next tick (or, idle, the next filler).
    pub(crate) fn next_tick(&self) -> Option<Instant> {
        match &self.turn {
            TurnState::Generating(generation) => Some(generation.next_at),
            TurnState::Idle => self.filler_at,
            TurnState::AwaitingTools => None,
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
        if self.ignoring {
            return Step::Continue;
        }
        if self.setup.is_none() {
            return match message {
                ClientMessage::Setup(_) if self.take_ignored_setup() => {
                    self.ignoring = true;
                    Step::Continue
                }
                ClientMessage::Setup(setup) => self.on_setup(&SetupRequest::from_wire(&setup)),
                _ => Step::invalid(),
            };
        }
        if let Some((code, reason)) = self.refused_payload(raw) {
            return Step::Close(code, reason);
        }
        let (step, changed) = self.on_message(message);
        if step != Step::Continue {
            return step;
        }
        if let Some(step) = self.close.take() {
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

    /// Advances a generation whose tick is due (or speaks a filler that is due).
    pub(crate) fn on_tick(&mut self, now: Instant) {
        if matches!(self.turn, TurnState::Idle) && self.filler_at.is_some_and(|at| at <= now) {
            self.speak_filler();
            return;
        }
        let interval = self.shared.config.chunk_interval;
        let audio = self.response_kind() == ResponseKind::Audio;
        let packs = self.caps.packs_server_content;
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

    pub(super) fn response_kind(&self) -> ResponseKind {
        self.setup
            .as_ref()
            .map_or(ResponseKind::Audio, |s| s.modality)
    }

    pub(super) fn with_session<T>(&self, f: impl FnOnce(&mut SessionSnapshot) -> T) -> Option<T> {
        let id = self.session?;
        self.shared
            .update(|state| state.sessions.get_mut(&id).map(f))
    }

    /// Consumes one [`Faults::ignore_setups`](crate::Faults::ignore_setups) fault, if any.
    fn take_ignored_setup(&self) -> bool {
        self.shared.update(|state| {
            let left = &mut state.faults.ignore_setups;
            let ignore = *left > 0;
            *left = left.saturating_sub(1);
            ignore
        })
    }

    /// The close for a message [`Faults::reject_messages_containing`](crate::Faults::reject_messages_containing) refuses.
    fn refused_payload(&self, raw: &[u8]) -> Option<(u16, String)> {
        self.shared.read(|state| {
            let (needle, code, reason) = state.faults.reject_containing.as_ref()?;
            let text = String::from_utf8_lossy(raw);
            text.contains(needle.as_str())
                .then(|| (*code, reason.clone()))
        })
    }

    pub(super) fn fire(&self, event: Trigger) -> Option<FaultAction> {
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
