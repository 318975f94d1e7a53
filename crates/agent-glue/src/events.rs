//! What the application sees: the session's event stream.

use std::time::Duration;

use bytes::Bytes;

use ctx_model::ItemId;
use gemini_transport::wire::{GroundingMetadata, ModalityTokenCount, UsageMetadata};
use resume_policy::{DivergenceReason, OpId};
use serde_json::Value;

/// The most function calls the session takes from one `toolCall` frame; a frame with more is
/// refused whole ([`SessionEvent::ToolCallsRefused`]). With it, one server frame adds a bounded
/// number of events to the queue, however large the frame.
pub const MAX_TOOL_CALLS_PER_FRAME: usize = 128;

/// One event of a [`LiveSession`](crate::LiveSession), in the order the session observed it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A chunk of model audio (PCM16 little-endian mono at `sample_rate`, 24 kHz from Gemini).
    Audio {
        /// The samples, as decoded from the frame (shared, never copied on the way).
        pcm: Bytes,
        /// Samples per second.
        sample_rate: u32,
    },
    /// A piece of model text (TEXT modality).
    Text(String),
    /// A fragment of the transcript of the user's audio.
    InputTranscript {
        /// The text.
        text: String,
        /// The server marked the transcript finished.
        finished: bool,
    },
    /// A fragment of the transcript of the model's audio.
    OutputTranscript {
        /// The text.
        text: String,
        /// The server marked the transcript finished.
        finished: bool,
    },
    /// The model asks the application to run a function. Answer with
    /// [`LiveSession::send_tool_result`](crate::LiveSession::send_tool_result); the session
    /// delivers the answer exactly once, across reconnects.
    ToolCall {
        /// The call id to echo in the result.
        call_id: String,
        /// The function's name.
        name: String,
        /// The arguments, as the model produced them.
        arguments: Value,
    },
    /// A `toolCall` frame carried more calls than the session takes from one frame
    /// ([`MAX_TOOL_CALLS_PER_FRAME`]): a server that misbehaves, since the model calls a few
    /// functions at a time. The frame was refused whole, not expanded: none of its calls was
    /// delivered or put into the context, so none can be answered; the server may still wait
    /// for answers, so send a new turn or end the session.
    ToolCallsRefused {
        /// How many calls the frame carried.
        count: usize,
        /// The most the session takes from one frame.
        max: usize,
    },
    /// The model withdrew calls (the user interrupted): do not answer them; results sent for
    /// them are dropped by the session.
    ToolCallCancelled {
        /// The withdrawn call ids.
        call_ids: Vec<String>,
    },
    /// The model has produced everything for its turn (playback may still be running).
    GenerationComplete,
    /// The model's turn is over; it waits for input.
    TurnComplete,
    /// Why the turn that just completed ended, when the server says (`turnCompleteReason`:
    /// the model needs more input, or the response was blocked, rejected or a malformed call).
    /// Comes right after its [`TurnComplete`](Self::TurnComplete).
    TurnCompleteReason(gemini_transport::wire::TurnCompleteReason),
    /// The interaction is over: the model finished its turn and is not still working on
    /// the request (no call it talks on from is pending, on models that say so with
    /// `interactionStatus`: gemini-3.8-live-extended-thinking completes turns while the
    /// interaction is in progress). Comes right after the [`TurnComplete`](Self::TurnComplete)
    /// that ends it; on models without `interactionStatus`, after every one.
    Idle,
    /// The user (or new input) cut the model off: discard unplayed audio.
    Interrupted,
    /// Token usage reported by the server.
    Usage(Usage),
    /// The server's activity detection heard the user start speaking (`voiceActivity`, on
    /// models that send it): stop playing the model's audio here for the fastest barge-in.
    VoiceActivityStart,
    /// The server's activity detection heard the user stop speaking.
    VoiceActivityEnd,
    /// A low-latency partial transcript of the user's audio
    /// (`interimInputTranscription`), superseded by later ones and by the final
    /// [`InputTranscript`](Self::InputTranscript); not kept in the context.
    InterimInputTranscript {
        /// The text so far.
        text: String,
    },
    /// Where the model's answer came from (Google Search grounding: sources, the queries it
    /// ran, the search chip to render).
    Grounding(GroundingMetadata),
    /// The server's id for the session (`setupComplete.sessionId`, sent by Vertex AI): once
    /// per connection that carries it, after the connection is set up.
    ServerSessionId(String),
    /// The connection is being replaced. Exactly one per reconnect, followed by one
    /// [`SessionEvent::Reconnected`] or a terminal [`SessionEvent::Closed`].
    Reconnecting {
        /// Why.
        reason: ReconnectReason,
    },
    /// A new connection is up and the policy's plan has been sent on it.
    Reconnected(Reconnected),
    /// Context operations that cannot reach the model as the application asked; nothing is
    /// dropped silently.
    Divergence {
        /// The operations concerned.
        operations: Vec<OpId>,
        /// The items of the application's context concerned.
        items: Vec<ItemId>,
        /// The tool call ids concerned.
        calls: Vec<String>,
        /// Why.
        why: DivergenceReason,
    },
    /// Microphone audio that may not have reached the model: audio dropped at a bound (the
    /// gap buffer while disconnected, by configuration or because it was full; the backlog
    /// behind a busy socket), or audio a connection took that the server had not proven to
    /// have read when the connection ended. TCP gives no receipt: the session pings behind
    /// the audio at most once a second ([`RECEIPT_INTERVAL`](crate::conduit::RECEIPT_INTERVAL)),
    /// and a pong proves the server read what was written before its ping; the server's answer
    /// to this side's close frame proves everything. Any other end (a reset, a close the
    /// server started, whatever its code, a write deadline, a keepalive verdict, a close of
    /// ours left unanswered) reports what was written since the last proof: some of it may
    /// have arrived. Audio the session could not write at all goes out on the next connection
    /// instead.
    AudioDropped {
        /// How much audio was dropped.
        duration: Duration,
    },
    /// The application did not read its events in time: this much model audio was dropped
    /// instead of queued (one event per run of drops). Model audio is the only thing the
    /// session ever drops from its event queue; every other event waits, and the session stops
    /// reading the server's frames until the application catches up.
    ModelAudioDropped {
        /// How much model audio was dropped.
        duration: Duration,
    },
    /// The server sent a resumption handle longer than
    /// [`max_handle_bytes`](crate::LiveSessionBuilder::max_handle_bytes): it was refused (not
    /// kept, never sent back) and the session keeps its previous handle.
    HandleTooLarge {
        /// The handle's length in bytes.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// A recoverable problem worth knowing about (the session goes on).
    Warning(String),
    /// The session's own bookkeeping refused a step: a bug in this library, or a custom
    /// [`ResumePolicy`](resume_policy::ResumePolicy) naming an operation that is not live. An
    /// operation marked sent, superseded or reported that the outbox does not hold or that
    /// already left it, a message counted while no connection is open, an item `L` could not
    /// take where the server put it. One event per occurrence, in release builds as in debug
    /// ones; `what` names the step and the error, for a bug report.
    ///
    /// The session goes on, and stops trusting its resumption handle until it has started a
    /// fresh server session. Why: a refused step leaves the ledger as it was (each transition
    /// is all or nothing), and the open connection is unaffected (the server holds what was
    /// written); what may now be wrong is what the ledger claims the server holds, which only
    /// matters at the next reconnect. That reconnect therefore starts a fresh server session
    /// seeded from `L` (the application's context, which the break does not touch), and
    /// delivers `L` exactly once whatever the ledger got wrong. Ending the session instead
    /// would cut the live conversation and give up everything owed for a bookkeeping error;
    /// an application that prefers to stop calls [`close`](crate::LiveSession::close).
    InvariantBroken {
        /// The step that failed and why.
        what: String,
    },
    /// The session ended; no more events follow.
    Closed {
        /// Why it ended; `None` when the application closed it.
        error: Option<crate::SessionError>,
    },
}

/// Token counts from a `usageMetadata` frame (Developer API and Vertex names merged), in all
/// and by modality. Whether the service counts per turn or cumulatively is not documented.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: Option<u32>,
    /// Of the prompt, tokens served from the cache.
    pub cached_tokens: Option<u32>,
    /// Response tokens.
    pub response_tokens: Option<u32>,
    /// Tokens of tool-use prompts.
    pub tool_use_prompt_tokens: Option<u32>,
    /// Thinking tokens.
    pub thoughts_tokens: Option<u32>,
    /// Total tokens.
    pub total_tokens: Option<u32>,
    /// Prompt tokens by modality (text, audio, video…).
    pub prompt_by_modality: Vec<ModalityTokenCount>,
    /// Cached tokens by modality.
    pub cached_by_modality: Vec<ModalityTokenCount>,
    /// Response tokens by modality.
    pub response_by_modality: Vec<ModalityTokenCount>,
    /// Tool-use prompt tokens by modality.
    pub tool_use_by_modality: Vec<ModalityTokenCount>,
}

impl From<&UsageMetadata> for Usage {
    fn from(usage: &UsageMetadata) -> Self {
        let response_by_modality = if usage.response_tokens_details.is_empty() {
            usage.candidates_tokens_details.clone()
        } else {
            usage.response_tokens_details.clone()
        };
        Self {
            prompt_tokens: usage.prompt_token_count,
            cached_tokens: usage.cached_content_token_count,
            response_tokens: usage.response_tokens(),
            tool_use_prompt_tokens: usage.tool_use_prompt_token_count,
            thoughts_tokens: usage.thoughts_token_count,
            total_tokens: usage.total_token_count,
            prompt_by_modality: usage.prompt_tokens_details.clone(),
            cached_by_modality: usage.cache_tokens_details.clone(),
            response_by_modality,
            tool_use_by_modality: usage.tool_use_prompt_tokens_details.clone(),
        }
    }
}

/// Why a session reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectReason {
    /// The server announced the end of the connection.
    GoAway {
        /// The time the server said was left.
        time_left: Duration,
    },
    /// The connection ended without notice (`code` 1006 when there was no close frame).
    ConnectionLost {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A server message was larger than this client's own limit
    /// ([`ConnectConfig::max_message_size`](gemini_transport::ConnectConfig::max_message_size)),
    /// so the client closed the connection (1009). The application's input is not at fault:
    /// nothing is reported rejected, and what was uncertain is replayed. Raise the limit if
    /// this repeats.
    MessageTooLarge {
        /// The size of the message, as far as it was read.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The connection reached the session's age limit
    /// ([`LiveSessionBuilder::connection_age`](crate::LiveSessionBuilder::connection_age)):
    /// the session replaces it before the service ends it without notice (3.8 connections are
    /// closed at 58:00 with 1011, docs/protocol.md section 10.1). At an idle point (the model
    /// not in a turn, no tool response owed, a fresh handle) once it is older than
    /// [`ConnectionAge::rotate_after`](crate::ConnectionAge::rotate_after), or at
    /// [`ConnectionAge::max`](crate::ConnectionAge::max) in any case (`forced`: a turn under way
    /// is closed locally as interrupted, as at a `goAway` deadline).
    ConnectionAge {
        /// How old the connection was.
        age: Duration,
        /// The maximum age forced the rotation (the session was not idle with a fresh handle
        /// before it).
        forced: bool,
    },
    /// The configuration changed (instructions, tools, or an edit of delivered items) and the
    /// model only accepts it in `setup` or a fresh session. A resume the server refuses
    /// during any reconnect is reported as a [`SessionEvent::Warning`] and does not start
    /// another `Reconnecting`.
    ConfigChange,
}

/// How a reconnect went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnected {
    /// Resumed from a handle, or started a fresh server session.
    pub strategy: ReconnectStrategy,
    /// Whether the server's context is exactly what the application's context says it should
    /// be (nothing lost, nothing still owed).
    pub state_restored: bool,
    /// Operations (re)sent by the plan on the new connection.
    pub replayed: Vec<OpId>,
    /// Of those, the ones whose earlier delivery was uncertain (sent, never provably
    /// covered by a handle).
    pub uncertain: Vec<OpId>,
    /// Operations that could not be delivered (also reported as [`SessionEvent::Divergence`]).
    pub lost: Vec<OpId>,
    /// Time from the end of the old connection (or the decision to rotate) until the plan
    /// was sent on the new one.
    pub gap: Duration,
    /// Connection attempts this reconnect took.
    pub attempts: u32,
}

/// How a connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectStrategy {
    /// `setup` carried a resumption handle.
    Resumed,
    /// A fresh server session, seeded from the application's context.
    Fresh,
}
