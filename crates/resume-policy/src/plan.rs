//! The planner's input (`ResumeContext`) and output (`ResumePlan`).

use std::time::Duration;

use ctx_model::{ChatContext, FunctionOutput, Item, ItemId};

use crate::{
    ConfigVersion, HandleRecord, HandleToken, MessageKind, Millis, ModelCapabilities, OpId, Outbox,
    ToolCalls, Trigger,
};

/// Everything the planner may look at, by reference; built by the session layer on every
/// (re)connect. No clock, no randomness: `now` and `jitter` are inputs.
#[derive(Debug, Clone, Copy)]
pub struct ResumeContext<'a> {
    /// Why the connection is opened.
    pub trigger: Trigger,
    /// Consecutive unsuccessful attempts before this one (see [`Attempts`](crate::Attempts)).
    pub attempt: u32,
    /// The current time.
    pub now: Millis,
    /// Random bits for backoff jitter, drawn by the caller.
    pub jitter: u64,
    /// The newest resumable handle, if any (fresh or stale).
    pub handle: Option<&'a HandleRecord>,
    /// The ledger of operations.
    pub outbox: &'a Outbox,
    /// `L`: the context the application wants the model to have.
    pub desired: &'a ChatContext,
    /// `S`: what the server session provably holds at `handle`'s coverage (the session layer
    /// rolls its mirror back to the covered point when a connection is lost). Items carried
    /// by live operations may or may not be in it: the outbox decides for those.
    pub mirror: &'a ChatContext,
    /// The model's capability row.
    pub capabilities: &'a ModelCapabilities,
    /// The tool calls seen and which session knows them.
    pub tool_calls: &'a ToolCalls,
    /// The application asked for transparent resumption.
    pub transparent_requested: bool,
    /// A transparent-mode replay buffer of realtime media (not ledger operations) exists.
    pub transparent_buffer: bool,
}

impl<'a> ResumeContext<'a> {
    /// A context for `trigger` with attempt 0, time 0, jitter 0, no handle and transparent
    /// mode off; adjust with the `with_*` methods.
    pub fn new(
        trigger: Trigger,
        outbox: &'a Outbox,
        desired: &'a ChatContext,
        mirror: &'a ChatContext,
        capabilities: &'a ModelCapabilities,
        tool_calls: &'a ToolCalls,
    ) -> Self {
        Self {
            trigger,
            attempt: 0,
            now: Millis(0),
            jitter: 0,
            handle: None,
            outbox,
            desired,
            mirror,
            capabilities,
            tool_calls,
            transparent_requested: false,
            transparent_buffer: false,
        }
    }

    /// Sets the handle.
    #[must_use]
    pub fn with_handle(mut self, handle: Option<&'a HandleRecord>) -> Self {
        self.handle = handle;
        self
    }

    /// Sets the attempt number.
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets the current time.
    #[must_use]
    pub fn with_now(mut self, now: Millis) -> Self {
        self.now = now;
        self
    }

    /// Sets the jitter bits.
    #[must_use]
    pub fn with_jitter(mut self, jitter: u64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets whether transparent mode is requested and whether a replay buffer exists.
    #[must_use]
    pub fn with_transparent(mut self, requested: bool, buffer: bool) -> Self {
        self.transparent_requested = requested;
        self.transparent_buffer = buffer;
        self
    }
}

/// How to open the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// `setup.sessionResumption.handle = handle`: continue the server session.
    Resume {
        /// The handle to put in `setup`.
        handle: HandleToken,
    },
    /// No handle: a new server session (seeded from `L` by [`ResumePlan::seed`]).
    Fresh,
    /// Do not connect again; end the session with a terminal error.
    GiveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

/// Why the policy stopped reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The bounded number of attempts was reached.
    AttemptsExhausted {
        /// The attempts made.
        attempts: u32,
    },
    /// The close was classified fatal (quota, spent token, bad key, unknown model).
    Fatal {
        /// The close code.
        code: u16,
    },
    /// The session layer ended the session for a failure no other attempt can fix
    /// ([`Trigger::Fatal`]).
    Unrecoverable {
        /// Why.
        cause: crate::FatalCause,
    },
}

/// The wire message a planned send uses, without its content: what the model's rules speak
/// about (which messages a family accepts mid-session) and what a test or a log line compares.
/// [`PlannedMessage::channel`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `clientContent` with this `turnComplete`.
    ClientContent {
        /// `turnComplete`: whether the model answers after it.
        turn_complete: bool,
    },
    /// `realtimeInput.text` (starts a turn).
    RealtimeText,
    /// `toolResponse`.
    ToolResponse,
    /// `contextUpdate` (models with [`context_update`](ModelCapabilities::context_update)).
    ContextUpdate,
}

impl Channel {
    /// How the [`CoverageTracker`](crate::CoverageTracker) counts a message on this channel:
    /// `clientContent` with `turnComplete` and realtime text start a turn, a tool response is
    /// [`MessageKind::ToolResponse`], history and context updates provoke nothing. (Non-blocking
    /// results count as [`PlannedMessage::message_kind`] says.)
    pub fn message_kind(self) -> MessageKind {
        match self {
            Self::ClientContent {
                turn_complete: true,
            }
            | Self::RealtimeText => MessageKind::TurnStart,
            Self::ClientContent {
                turn_complete: false,
            }
            | Self::ContextUpdate => MessageKind::Silent,
            Self::ToolResponse => MessageKind::ToolResponse,
        }
    }
}

/// One client message of a plan or a route, with its content. Every variant is a message the
/// session layer writes after `setupComplete` as it stands: there is no pairing of a channel
/// with a payload to get wrong, so executing a plan needs no fallback, and the reaction a
/// message provokes ([`message_kind`](Self::message_kind)) is defined for every one.
///
/// Changes that ride in `setup` are not messages: a plan lists them in
/// [`ResumePlan::setup_ops`], a route asks for [`Route::Reconnect`](crate::Route::Reconnect).
///
/// Deliberately not `#[non_exhaustive]`: session layers match it exhaustively, so a new kind
/// of message is a breaking change they cannot miss.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedMessage {
    /// `clientContent` with these turns, in order (messages, function calls, function
    /// outputs), and this `turnComplete`.
    ClientContent {
        /// The turns.
        items: Vec<Item>,
        /// `turnComplete`: whether the model answers after them.
        turn_complete: bool,
    },
    /// `clientContent` asking the model to answer now: `turnComplete: true`, with the
    /// instructions as a user turn, or no turn at all.
    ReplyRequest {
        /// Extra instructions, if any.
        instructions: Option<String>,
    },
    /// `realtimeInput.text`: typed user text (starts a turn).
    RealtimeText {
        /// The text.
        text: String,
    },
    /// `realtimeInput.text` asking the model to answer now, for models without mid-session
    /// `clientContent`: the instructions, or a short nudge without them.
    RealtimeReplyRequest {
        /// Extra instructions, if any.
        instructions: Option<String>,
    },
    /// `toolResponse` with these function responses.
    ToolResponse {
        /// The responses, in order.
        responses: Vec<FunctionOutput>,
    },
    /// `contextUpdate` carrying the session's current system instruction and/or tool set
    /// (`Some`: include it; the version is the one it brings).
    ContextUpdate {
        /// System instruction version.
        instructions: Option<ConfigVersion>,
        /// Tool-set version.
        tools: Option<ConfigVersion>,
    },
}

impl PlannedMessage {
    /// `clientContent` carrying `items`.
    pub fn client_content(items: Vec<Item>, turn_complete: bool) -> Self {
        Self::ClientContent {
            items,
            turn_complete,
        }
    }

    /// The wire message it is.
    pub fn channel(&self) -> Channel {
        match self {
            Self::ClientContent { turn_complete, .. } => Channel::ClientContent {
                turn_complete: *turn_complete,
            },
            Self::ReplyRequest { .. } => Channel::ClientContent {
                turn_complete: true,
            },
            Self::RealtimeText { .. } | Self::RealtimeReplyRequest { .. } => Channel::RealtimeText,
            Self::ToolResponse { .. } => Channel::ToolResponse,
            Self::ContextUpdate { .. } => Channel::ContextUpdate,
        }
    }

    /// How the [`CoverageTracker`](crate::CoverageTracker) should count it (see
    /// [`Channel::message_kind`]). Tool responses depend on how they are delivered
    /// ([`ctx_model::Delivery`]): results the model waits for are
    /// [`MessageKind::ToolResponse`]; results of calls the model talked on from are answered
    /// by a model turn of their own ([`MessageKind::TurnStart`]) unless every one is
    /// `SILENT` ([`MessageKind::Silent`]).
    pub fn message_kind(&self) -> MessageKind {
        match self {
            Self::ToolResponse { responses }
                if !responses.is_empty() && responses.iter().all(|r| r.delivery.non_blocking) =>
            {
                if responses.iter().any(|r| r.delivery.answered_by_own_turn()) {
                    MessageKind::TurnStart
                } else {
                    MessageKind::Silent
                }
            }
            _ => self.channel().message_kind(),
        }
    }
}

/// One client message of a plan, and the operations it delivers.
///
/// ```
/// use resume_policy::{Channel, MessageKind, OpId, PlannedMessage, PlannedSend};
///
/// // A typed user turn on a model without mid-session `clientContent`.
/// let turn = PlannedSend::new(vec![OpId(3)], PlannedMessage::RealtimeText { text: "Hi".into() });
/// assert_eq!(turn.channel(), Channel::RealtimeText);
/// assert_eq!(turn.message_kind(), MessageKind::TurnStart);
/// // History that asks for nothing.
/// let note = PlannedSend::new(vec![OpId(4)], PlannedMessage::client_content(Vec::new(), false));
/// assert_eq!(note.message_kind(), MessageKind::Silent);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedSend {
    /// The operations delivered by this message (empty for restored server-side items and
    /// synthetic answers); mark them sent at the message's position.
    pub ops: Vec<OpId>,
    /// The message.
    pub message: PlannedMessage,
}

impl PlannedSend {
    /// `message`, delivering `ops`.
    pub fn new(ops: Vec<OpId>, message: PlannedMessage) -> Self {
        Self { ops, message }
    }

    /// The wire message it uses.
    pub fn channel(&self) -> Channel {
        self.message.channel()
    }

    /// How the [`CoverageTracker`](crate::CoverageTracker) should count the message.
    pub fn message_kind(&self) -> MessageKind {
        self.message.message_kind()
    }
}

/// The history a fresh session starts from: one `clientContent` right after `setupComplete`.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    /// The turns, in order.
    pub items: Vec<Item>,
    /// `turnComplete` of the seed message. With `historyConfig` it is `true` (it ends the
    /// history phase without a reply); otherwise `true` only when a reply is owed.
    pub turn_complete: bool,
    /// The live operations whose content the seed carries; mark them sent at its position.
    pub ops: Vec<OpId>,
}

impl Seed {
    /// How the [`CoverageTracker`](crate::CoverageTracker) should count the seed message:
    /// history (with `historyConfig`, or without `turnComplete`) provokes no reply.
    pub fn message_kind(&self, history_config: bool) -> MessageKind {
        if self.turn_complete && !history_config {
            MessageKind::TurnStart
        } else {
            MessageKind::Silent
        }
    }
}

/// Why something cannot reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DivergenceReason {
    /// The model forbids `clientContent` mid-session and the policy did not start afresh.
    ClientContentForbidden,
    /// A tool response for a call the session does not know, and no way to restore the call.
    UnknownToolCall,
    /// A tool call the session knows lost its execution; answered with an error (models that
    /// need an answer) or left unanswered.
    ToolCallLost,
    /// An edit, insertion or removal of items the server already holds (Gemini cannot apply
    /// it).
    EditOfDeliveredItem,
    /// The seed exceeded the model's size limits; the oldest items were left out.
    SeedTrimmed,
    /// The server closed the connection on this payload (1007 / 1008): it is never re-sent.
    RejectedByServer {
        /// The close code.
        code: u16,
    },
    /// Server-side state after the handle (a model turn) that could not be restored.
    LostServerState,
    /// The session gave up reconnecting.
    GaveUp,
    /// A model turn no client message asked for (a filler of
    /// gemini-3.8-live-extended-thinking while a call is pending) completed while content the
    /// client had sent was not yet known processed: where the server put the turn relative to
    /// that content is not observable. `L` puts it after what was known processed.
    TurnOrderUnknown,
    /// A process resuming a stored session (scenario S31) was given another context than the
    /// one stored with the handle: it started a fresh session from its own context, and the
    /// stored items it does not hold (and the stored operations not yet delivered) are not
    /// carried over.
    StoredContextMismatch,
}

/// Something the plan cannot deliver, reported as an event (never dropped silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The operations concerned (mark them reported).
    pub ops: Vec<OpId>,
    /// The items of `L` concerned.
    pub items: Vec<ItemId>,
    /// The tool call ids concerned.
    pub calls: Vec<String>,
    /// Why.
    pub why: DivergenceReason,
}

/// Facts about the plan worth an event or a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanNote {
    /// The held handle is stale: resuming loses what came after it (restored where legal).
    ResumedFromStale {
        /// When it went stale.
        since: Millis,
    },
    /// The server refused the handle; starting fresh.
    HandleRefused,
    /// The handle is older than the documented validity; starting fresh.
    HandleExpired,
    /// The persisted mirror version does not match the context; starting fresh.
    MirrorVersionMismatch,
    /// Resuming could not deliver everything under the model's rules; starting fresh instead.
    ResumeInfeasible {
        /// What made it infeasible.
        why: DivergenceReason,
    },
    /// Edits of delivered items are applied by starting fresh from `L`.
    EditsReseeded,
    /// Transparent resumption was requested but the model does not offer it (Developer API):
    /// basic resumption is used.
    TransparentUnavailable,
}

/// The policy's decision for one connection attempt. The session layer executes it in this
/// order: wait `backoff`; dial; send `setup` (with `strategy`'s handle, `history_config`,
/// `transparent`, the current instructions and tools, which deliver `setup_ops`); after
/// `setupComplete` send `seed`, then replay the transparent buffer if
/// `replay_transparent_buffer`, then `steps` in order; mark `superseded` and `undeliverable`
/// in the outbox and report the divergences.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePlan {
    /// Resume, fresh, or give up.
    pub strategy: Strategy,
    /// Set `historyConfig.initialHistoryInClientContent` in `setup`.
    pub history_config: bool,
    /// Request transparent resumption in `setup`.
    pub transparent: bool,
    /// Replay the transparent buffer (realtime media after the handle's exact coverage).
    pub replay_transparent_buffer: bool,
    /// Operations the new connection's `setup` delivers: instruction and tool-set changes
    /// (`setup` carries the session's current system instruction and tools, so it delivers
    /// every one of them). Mark them sent at the new connection's
    /// [`ClientMessageIndex::SETUP`](crate::ClientMessageIndex::SETUP).
    pub setup_ops: Vec<OpId>,
    /// The initial history, sent right after `setupComplete` (`None`: send none). The
    /// default policy sets it only on fresh connections; `ReplayAlways` sets it always.
    pub seed: Option<Seed>,
    /// The messages to send after the seed, in order.
    pub steps: Vec<PlannedSend>,
    /// Operations in `steps` that were sent before but are not provably covered: replayed as
    /// uncertain (the `Reconnected` event lists them).
    pub uncertain: Vec<OpId>,
    /// Operations never to send (cancelled tool calls, removed items).
    pub superseded: Vec<OpId>,
    /// What cannot be delivered, with the reason.
    pub undeliverable: Vec<Divergence>,
    /// Facts worth reporting.
    pub notes: Vec<PlanNote>,
    /// Wait this long before dialing. A session layer may ask for a new plan once the wait is
    /// over (`agent-glue` does, so that operations queued during the wait are planned too) and
    /// then executes that plan at once, without waiting its backoff again.
    pub backoff: Duration,
    /// The attempt number the plan was made for.
    pub attempt: u32,
}

impl ResumePlan {
    /// An empty plan with `strategy`: no seed, no steps, no backoff.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            history_config: false,
            transparent: false,
            replay_transparent_buffer: false,
            setup_ops: Vec::new(),
            seed: None,
            steps: Vec::new(),
            uncertain: Vec::new(),
            superseded: Vec::new(),
            undeliverable: Vec::new(),
            notes: Vec::new(),
            backoff: Duration::ZERO,
            attempt: 0,
        }
    }

    /// Whether the plan resumes with a handle.
    pub fn is_resume(&self) -> bool {
        matches!(self.strategy, Strategy::Resume { .. })
    }

    /// Whether the plan gives up.
    pub fn is_give_up(&self) -> bool {
        matches!(self.strategy, Strategy::GiveUp { .. })
    }

    /// Every operation the plan delivers, in wire order: `setup` first, then the seed, then
    /// the steps.
    pub fn delivered_ops(&self) -> impl Iterator<Item = OpId> + '_ {
        self.setup_ops
            .iter()
            .copied()
            .chain(self.seed.iter().flat_map(|seed| seed.ops.iter().copied()))
            .chain(self.steps.iter().flat_map(|step| step.ops.iter().copied()))
    }

    /// Every operation reported undeliverable.
    pub fn reported_ops(&self) -> impl Iterator<Item = OpId> + '_ {
        self.undeliverable
            .iter()
            .flat_map(|d| d.ops.iter().copied())
    }

    /// Whether the server state is restored completely (nothing reported lost).
    pub fn state_restored(&self) -> bool {
        self.undeliverable.is_empty()
    }
}
