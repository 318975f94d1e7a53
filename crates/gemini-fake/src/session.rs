//! Server-side records of sessions and connections, as the inspection API shows them.

use std::fmt;

use serde_json::Value;
use tokio::time::Instant;

use crate::Family;
use crate::context::{ModelState, PendingCall, Turn};

/// Identifies a session: the model's conversation state, spanning connections through handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one WebSocket connection (numbered from 1 in accept order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One client frame as received.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Per-connection index: the `setup` frame is 0, the next message 1, and so on.
    pub index: u64,
    /// The frame's text (binary frames are decoded as UTF-8 lossily).
    pub raw: String,
    /// Whether it came in a binary frame.
    pub binary: bool,
    /// The message kind: `setup`, `clientContent`, `realtimeInput`, `toolResponse`,
    /// `contextUpdate`, or `invalid` when it did not decode.
    pub kind: &'static str,
}

impl ReceivedFrame {
    /// Decodes the frame again with the transport's strict parser.
    pub fn decode(&self) -> Result<gemini_transport::wire::ClientMessage, gemini_transport::Error> {
        gemini_transport::wire::ClientMessage::from_json(self.raw.as_bytes())
    }

    /// The frame as a JSON value (`Value::Null` if it is not JSON).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.raw).unwrap_or(Value::Null)
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// The server sent a close frame.
    ServerClose {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The client sent a close frame.
    ClientClose {
        /// Close code (1005 when the frame had none).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The server dropped the TCP connection without a close frame (a fault).
    Dropped,
    /// The client went away without a close frame.
    Vanished,
}

/// One WebSocket connection and everything received on it.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    /// Its id.
    pub id: ConnectionId,
    /// The session it joined (none if its setup was refused).
    pub session: Option<SessionId>,
    /// Every frame received, in order.
    pub frames: Vec<ReceivedFrame>,
    /// The handle it resumed from, if its setup resumed successfully.
    pub resumed_from: Option<String>,
    /// When the upgrade completed.
    pub opened_at: Instant,
    /// How and when it ended (`None` while open).
    pub end: Option<(ConnectionEnd, Instant)>,
}

impl ConnectionRecord {
    /// The close code and reason, if a close frame was sent by either side.
    #[must_use]
    pub fn closed_with(&self) -> Option<(u16, &str)> {
        match &self.end {
            Some((ConnectionEnd::ServerClose { code, reason }, _))
            | Some((ConnectionEnd::ClientClose { code, reason }, _)) => Some((*code, reason)),
            _ => None,
        }
    }

    /// Whether the connection is still open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.end.is_none()
    }

    /// Frames of one kind (`clientContent`, `toolResponse`, ...).
    pub fn frames_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a ReceivedFrame> + 'a {
        self.frames.iter().filter(move |f| f.kind == kind)
    }
}

/// A function call the model issued.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRecord {
    /// Call id, `call-<session>-<n>` with n counting from 1 per session.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments sent (always `{}` for the scripted model).
    pub args: Value,
    /// The connection it was issued on.
    pub connection: ConnectionId,
    /// The user text the model was answering when it called (the turn that asked).
    pub prompt: String,
}

/// What the session did with a function response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseFate {
    /// It answered a pending call and entered the context.
    Accepted,
    /// Its call had been cancelled; ignored.
    Cancelled,
    /// Its call was already answered; ignored.
    Duplicate,
    /// The session never issued (or, after a resume, no longer knows) its call; ignored.
    Unknown,
    /// An interim result (`willContinue: true`) of a pending call: it entered the context and
    /// the call stays open until a final response.
    Interim,
}

/// A function response received.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResponseRecord {
    /// The call id it names.
    pub id: String,
    /// Function name.
    pub name: String,
    /// The response object.
    pub response: Value,
    /// The connection it arrived on.
    pub connection: ConnectionId,
    /// What happened to it.
    pub fate: ResponseFate,
}

/// One answer the model produced (or started producing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    /// The text produced (the part before the cut for interrupted answers).
    pub text: String,
    /// Whether it was interrupted.
    pub interrupted: bool,
    /// The connection it was produced on.
    pub connection: ConnectionId,
}

/// A handle the server issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedHandle {
    /// The opaque token (`fake-handle-<session>-<n>`).
    pub handle: String,
    /// The connection it was issued on.
    pub connection: ConnectionId,
    /// Internal index (setup = 0) of the last client message its snapshot includes.
    pub covers_index: u64,
    /// Number of context turns in its snapshot.
    pub context_len: usize,
    /// When it was issued.
    pub issued_at: Instant,
}

/// Turns the sliding window removed from a session's context (`contextWindowCompression`,
/// docs/protocol.md section 7.7).
#[derive(Debug, Clone, PartialEq)]
pub struct TrimRecord {
    /// The connection whose user turn started the trim.
    pub connection: ConnectionId,
    /// Context tokens before the trim (the fake's count, [`SessionSnapshot::context_tokens`]).
    pub tokens_before: u64,
    /// Context tokens after it.
    pub tokens_after: u64,
    /// The turns removed, oldest first.
    pub removed: Vec<Turn>,
}

/// Everything the fake knows about one session. Returned by value from the inspection API.
///
/// Two kinds of data live here: the model state (context and pending calls), which resuming from
/// a handle replaces with the handle's snapshot, and the journal (generations, calls, responses,
/// answers, handles, connections), which only grows.
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub(crate) id: SessionId,
    pub(crate) model: String,
    pub(crate) family: Family,
    pub(crate) state: ModelState,
    /// Names of the declared functions whose calls do not block (the family's default applied).
    pub(crate) non_blocking: Vec<String>,
    pub(crate) trims: Vec<TrimRecord>,
    /// Seconds of client audio received over the session's connections.
    pub(crate) audio_seconds: f64,
    /// Whether the client has sent video.
    pub(crate) video: bool,
    /// Its last connection ended with a hard close (a fault may refuse the next resume).
    pub(crate) hard_closed: bool,
    pub(crate) system_instruction: Option<String>,
    pub(crate) tools: Vec<String>,
    pub(crate) generations: u32,
    pub(crate) tool_calls: Vec<ToolCallRecord>,
    pub(crate) tool_responses: Vec<ToolResponseRecord>,
    pub(crate) cancelled_calls: Vec<String>,
    pub(crate) answers: Vec<AnswerRecord>,
    pub(crate) handles_issued: Vec<IssuedHandle>,
    pub(crate) connections: Vec<ConnectionRecord>,
    pub(crate) restores: Vec<String>,
    pub(crate) overlaps: u32,
    pub(crate) last_ended: Option<Instant>,
}

impl SessionSnapshot {
    pub(crate) fn new(id: SessionId, model: String, family: Family) -> Self {
        SessionSnapshot {
            id,
            model,
            family,
            state: ModelState::default(),
            non_blocking: Vec::new(),
            trims: Vec::new(),
            audio_seconds: 0.0,
            video: false,
            hard_closed: false,
            system_instruction: None,
            tools: Vec::new(),
            generations: 0,
            tool_calls: Vec::new(),
            tool_responses: Vec::new(),
            cancelled_calls: Vec::new(),
            answers: Vec::new(),
            handles_issued: Vec::new(),
            connections: Vec::new(),
            restores: Vec::new(),
            overlaps: 0,
            last_ended: None,
        }
    }

    /// The session id.
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The `setup.model` string that created the session.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The family its model belongs to (chosen by the model id of its first `setup`).
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// The context the model holds now, in order.
    #[must_use]
    pub fn context(&self) -> &[Turn] {
        &self.state.context
    }

    /// The text of every context turn (`Turn::text`), handy for assertions.
    #[must_use]
    pub fn context_texts(&self) -> Vec<String> {
        self.state.context.iter().map(Turn::text).collect()
    }

    /// The context's size in the fake's tokens: a word of text (or of a model answer) is a
    /// token, a second of user speech 25 tokens, a function call or response one token plus the
    /// words of its JSON, an inline blob 258 (docs/protocol.md section 8).
    #[must_use]
    pub fn context_tokens(&self) -> u64 {
        crate::limits::context_tokens(&self.state.context)
    }

    /// What the sliding window removed, in order (`contextWindowCompression`).
    #[must_use]
    pub fn trims(&self) -> &[TrimRecord] {
        &self.trims
    }

    /// Seconds of client audio received over all the session's connections.
    #[must_use]
    pub fn audio_seconds(&self) -> f64 {
        self.audio_seconds
    }

    /// Calls issued and neither answered nor cancelled.
    #[must_use]
    pub fn pending_calls(&self) -> &[PendingCall] {
        &self.state.pending_calls
    }

    /// The system instruction in force (from the last setup or `contextUpdate`).
    #[must_use]
    pub fn system_instruction(&self) -> Option<&str> {
        self.system_instruction.as_deref()
    }

    /// Names of the declared functions in force.
    #[must_use]
    pub fn tools(&self) -> &[String] {
        &self.tools
    }

    /// Generations started: one per model answer or tool call, including the continuation after
    /// a tool response.
    #[must_use]
    pub fn generations(&self) -> u32 {
        self.generations
    }

    /// Every function call issued, in order.
    #[must_use]
    pub fn tool_calls(&self) -> &[ToolCallRecord] {
        &self.tool_calls
    }

    /// Every function response received, in order, with what happened to it.
    #[must_use]
    pub fn tool_responses(&self) -> &[ToolResponseRecord] {
        &self.tool_responses
    }

    /// Ids of calls cancelled with `toolCallCancellation`.
    #[must_use]
    pub fn cancelled_calls(&self) -> &[String] {
        &self.cancelled_calls
    }

    /// Every answer produced, in order (interrupted ones included).
    #[must_use]
    pub fn answers(&self) -> &[AnswerRecord] {
        &self.answers
    }

    /// Every handle issued, in order.
    #[must_use]
    pub fn handles_issued(&self) -> &[IssuedHandle] {
        &self.handles_issued
    }

    /// Handles this session was restored from, in order.
    #[must_use]
    pub fn restores(&self) -> &[String] {
        &self.restores
    }

    /// Connections of this session, in order.
    #[must_use]
    pub fn connections(&self) -> &[ConnectionRecord] {
        &self.connections
    }

    /// How many times a resume of this session arrived while another one of its connections
    /// was still open (refused with 1011 unless
    /// [`FakeConfig::with_concurrent_connections`](crate::FakeConfig::with_concurrent_connections);
    /// never two sockets: this should stay 0).
    #[must_use]
    pub fn overlaps(&self) -> u32 {
        self.overlaps
    }

    /// The connection currently open, if any.
    #[must_use]
    pub fn active_connection(&self) -> Option<ConnectionId> {
        self.connections
            .iter()
            .rev()
            .find(|c| c.is_open())
            .map(|c| c.id)
    }

    pub(crate) fn connection_mut(&mut self, id: ConnectionId) -> Option<&mut ConnectionRecord> {
        self.connections.iter_mut().find(|c| c.id == id)
    }
}
