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
}

/// The wire message a planned send uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `clientContent` with these turns and this `turnComplete`.
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
    /// Carried by the new connection's `setup` (system instruction, tools): nothing is sent
    /// after `setupComplete`; the listed operations are delivered with the setup (index 0).
    SetupField,
}

/// What a planned send carries. Pairs with [`Channel`]: `Items` or `GenerateReply` on
/// `ClientContent`; `Text` or `GenerateReply` on `RealtimeText`; `ToolResponses` on
/// `ToolResponse`; `Config` on `ContextUpdate` and `SetupField`.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Turns to append, in order (messages, function calls, function outputs).
    Items(Vec<Item>),
    /// Realtime text.
    Text(String),
    /// Function responses.
    ToolResponses(Vec<FunctionOutput>),
    /// Configuration versions to apply (`None`: unchanged).
    Config {
        /// System instruction version.
        instructions: Option<ConfigVersion>,
        /// Tool-set version.
        tools: Option<ConfigVersion>,
    },
    /// Ask the model to answer now (on `ClientContent`: `turnComplete: true`, no turns, or
    /// the instructions as a user turn; on `RealtimeText`: a short nudge with the
    /// instructions).
    GenerateReply {
        /// Extra instructions, if any.
        instructions: Option<String>,
    },
}

/// One client message of a plan, and the operations it delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedSend {
    /// The operations delivered by this message (empty for restored server-side items and
    /// synthetic answers); mark them sent at the message's position.
    pub ops: Vec<OpId>,
    /// The wire message to use.
    pub channel: Channel,
    /// Its content.
    pub payload: Payload,
}

impl PlannedSend {
    /// How the [`CoverageTracker`](crate::CoverageTracker) should count the message; `None`
    /// for [`Channel::SetupField`] (nothing is sent: mark the operations sent at the new
    /// connection's [`ClientMessageIndex::SETUP`](crate::ClientMessageIndex::SETUP)).
    /// Tool responses count as [`MessageKind::ToolResponse`]; send a non-blocking one with
    /// `SILENT` scheduling as [`MessageKind::Silent`] instead.
    pub fn message_kind(&self) -> Option<MessageKind> {
        match self.channel {
            Channel::ClientContent {
                turn_complete: true,
            }
            | Channel::RealtimeText => Some(MessageKind::TurnStart),
            Channel::ClientContent {
                turn_complete: false,
            }
            | Channel::ContextUpdate => Some(MessageKind::Silent),
            Channel::ToolResponse => Some(MessageKind::ToolResponse),
            Channel::SetupField => None,
        }
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
/// `transparent`, the current instructions and tools); after `setupComplete` send `seed`, then
/// replay the transparent buffer if `replay_transparent_buffer`, then `steps` in order; mark
/// `superseded` and `undeliverable` in the outbox and report the divergences.
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

    /// Every operation the plan delivers (seed first, then steps), in order.
    pub fn delivered_ops(&self) -> impl Iterator<Item = OpId> + '_ {
        self.seed
            .iter()
            .flat_map(|seed| seed.ops.iter().copied())
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
