//! # `resume-policy`: what to send when a Gemini Live connection is replaced
//!
//! ## The domain
//!
//! A Gemini Live *connection* lasts minutes; the *session* (the model's conversation state)
//! outlives it through **resumption handles**. A handle is a **snapshot**: the server state at
//! the moment it issued the handle, nothing later. Resuming from it restores exactly that
//! state, so three questions decide whether a reconnect keeps the chat context exactly once:
//!
//! 1. **What does the handle contain?** Its *coverage*: the last client message it provably
//!    includes. In transparent mode (Vertex) `lastConsumedClientMessageIndex` says so exactly.
//!    Otherwise only a sound lower bound is known: the server processes a connection's messages
//!    in order, so a handle received after the server visibly *reacted* to message *m* (the
//!    `turnComplete` of the turn *m* started, a `toolCall` answering it) covers *m* and all
//!    before it. Arrival time proves nothing: a server may issue a handle before it processed
//!    a message the client already sent (handle lag). Messages after the last reaction are
//!    *uncertain*. A `resumable: false` update makes the held handle *stale*: the server moved
//!    on (a model turn, a pending tool call) and resuming loses what came after.
//!    [`CoverageTracker`] computes this and yields [`HandleRecord`]s.
//! 2. **What has not provably reached the session?** Every context-affecting operation
//!    (appends, tool responses, instruction and tool-set changes, reply requests) lives in the
//!    [`Outbox`] with a delivery state `Queued → Sent(connection, index) → Covered(handle)`.
//!    Nothing leaves it except by being covered, superseded or reported.
//! 3. **What may be sent, and how?** The model family decides ([`ModelCapabilities`]): 3.1
//!    accepts `clientContent` only as initial history (1007 otherwise), 3.8 needs tool calls
//!    answered, a resumed session rejects a result for a call it never issued.
//!
//! **Why replaying is dangerous.** Re-sending history on a resumed connection duplicates it,
//! or gets the socket closed (1007) on models that accept `clientContent` only as initial
//! history; `historyConfig` on a resumed connection makes the server swallow the next turn as
//! history; a tool response replayed to a session that never saw the call is an orphan. Not
//! replaying is just as wrong: a change made while disconnected, or a message the stale
//! handle does not cover, is silently lost. The planner steers between the two with the
//! ledger above.
//!
//! ## The API
//!
//! On every (re)connect the session layer builds a [`ResumeContext`] (handle record, outbox,
//! desired context `L` and mirror `S`, capabilities, [`Trigger`], attempt, time, jitter) and
//! asks a [`ResumePolicy`] for a [`ResumePlan`]: resume or fresh (or give up), whether `setup`
//! carries `historyConfig`, the operations `setup` itself delivers (instruction and tool
//! changes), the seed of a fresh session, the ordered [`PlannedSend`]s (each one
//! [`PlannedMessage`]: the wire message with its content), the uncertain operations replayed,
//! the superseded ones, the [`Divergence`]s to report, and the backoff. While connected, [`ResumePolicy::route`] says
//! how to deliver a new operation. Three policies ship: [`DefaultPolicy`] (correct),
//! [`ReplayAlways`] and [`SkipReplay`] (the two classic mistakes, for comparison).
//!
//! Everything is pure and deterministic: no IO, no clock, no randomness, no wire names.
//!
//! ## Feeding the ledger (the session layer's side)
//!
//! | event | call |
//! |---|---|
//! | `setup` sent on connection `c` | [`CoverageTracker::on_connected`], [`Mirror::on_connected`] (`Fresh` or `Resumed`) |
//! | a client message written | `let at = tracker.on_sent(kind)?`, then [`Outbox::mark_sent`]`(ops, at)` and [`Mirror::on_sent`]`(items, at)` |
//! | `turnComplete` / `toolCall` | [`CoverageTracker::on_reaction`]; calls: [`CoverageTracker::on_tool_call`]; model output: [`Mirror::on_server_items`] |
//! | `toolCallCancellation`, a result queued, an execution lost | [`CoverageTracker::set_tool_status`] |
//! | `sessionResumptionUpdate` | [`CoverageTracker::on_handle_update`]; if it returns a record: [`Outbox::cover`] and [`Mirror::on_handle`] |
//! | the connection closed | [`CoverageTracker::on_disconnected`] (the mirror's [`held`](Mirror::held) part stays) |
//! | the application changes the context | append to `L`, then [`Outbox::push`]; while connected, deliver as [`ResumePolicy::route`] says |
//!
//! ## Executing a plan
//!
//! [`Outbox::record_plan`]; wait [`ResumePlan::backoff`]; dial; send `setup` with the handle of
//! [`Strategy::Resume`] (none for [`Strategy::Fresh`]), `historyConfig` iff
//! [`ResumePlan::history_config`], `transparent` iff [`ResumePlan::transparent`], and the
//! current instructions and tools; mark [`ResumePlan::setup_ops`] sent at index
//! [`ClientMessageIndex::SETUP`]. After `setupComplete`: the [`Seed`] as one `clientContent`
//! (counted as [`Seed::message_kind`]); the transparent buffer if
//! [`ResumePlan::replay_transparent_buffer`]; then each [`PlannedSend`] in order, written as
//! its [`PlannedMessage`] (every variant is one wire message, so a session layer matches them
//! exhaustively), counted as [`PlannedSend::message_kind`], its operations marked sent at the
//! returned position. Report
//! [`ResumePlan::undeliverable`] as divergence events and [`ResumePlan::uncertain`] in the
//! `Reconnected` event. A [`Strategy::GiveUp`] ends the session with a terminal error; so does
//! every [`Trigger::Fatal`] plan, whatever its strategy (a policy cannot retry a refused key).
//!
//! ```
//! use ctx_model::ChatContext;
//! use resume_policy::{
//!     ConnectMode, ConnectionId, CoverageTracker, DefaultPolicy, HandleUpdate, MessageKind,
//!     Millis, Mirror, ModelCapabilities, OpKind, Outbox, ResumeContext, ResumePolicy,
//!     ServerReaction, Strategy, Trigger,
//! };
//!
//! let caps = ModelCapabilities::for_model("gemini-2.5-flash-native-audio-preview-12-2025")?;
//! let (mut tracker, mut mirror, mut outbox) = (CoverageTracker::new(false), Mirror::new(), Outbox::new());
//! let mut desired = ChatContext::new();
//!
//! // Connection 1: the user asks, the model answers, a handle arrives.
//! tracker.on_connected(ConnectionId(1), ConnectMode::Fresh)?;
//! mirror.on_connected(ConnectionId(1), ConnectMode::Fresh);
//! desired.push_user("u1", "What is the weather?")?;
//! let question = vec![desired.items()[0].clone()];
//! let ask = outbox.push(OpKind::Append { items: question.clone(), turn_complete: true });
//! let at = tracker.on_sent(MessageKind::TurnStart)?;
//! outbox.mark_sent(&[ask], at)?;
//! mirror.on_sent(&question, at);
//! desired.push_model("m1", "Sunny.")?;
//! mirror.on_server_items(&desired.items()[1..]);
//! tracker.on_reaction(ServerReaction::TurnComplete);
//! let update = HandleUpdate { new_handle: Some("h-1".into()), resumable: true, last_consumed: None };
//! let handle = tracker.on_handle_update(&update, Millis(5_000))?.expect("resumable");
//! assert_eq!(outbox.cover(&handle), vec![ask]);
//! mirror.on_handle(&handle);
//! assert_eq!(mirror.held(), &desired);
//!
//! // Offline, the user adds a note. On goAway the plan resumes and sends only the note.
//! tracker.on_disconnected();
//! desired.push_user("u2", "(I am in Rome)")?;
//! let note = outbox.push(OpKind::Append { items: desired.items()[2..].to_vec(), turn_complete: false });
//! let ctx = ResumeContext::new(
//!     Trigger::GoAway { time_left: std::time::Duration::from_secs(50) },
//!     &outbox, &desired, mirror.held(), &caps, tracker.tool_calls(),
//! )
//! .with_handle(tracker.handle())
//! .with_now(Millis(6_000));
//! let plan = DefaultPolicy::default().plan(&ctx);
//! assert!(matches!(plan.strategy, Strategy::Resume { .. }));
//! assert!(plan.seed.is_none() && !plan.history_config);
//! assert_eq!(plan.steps.len(), 1);
//! assert_eq!(plan.steps[0].ops, [note]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Feature `serde`
//!
//! Off by default. `Serialize`/`Deserialize` for what a session store persists so that
//! another process can resume the session (docs/design.md section 8): [`HandleRecord`] and
//! its [`Coverage`] and [`Freshness`], [`MirrorVersion`], [`Operation`] with its [`OpKind`]
//! and [`DeliveryState`], and the small ids they hold; it turns on `ctx-model/serde` for the
//! items. A storage format under the Rust names, not a wire format. A stored record holds the
//! handle's token, a bearer credential for the session for about two hours.

mod backoff;
mod capabilities;
mod coverage;
mod default_policy;
mod error;
mod handle;
mod ids;
mod legacy;
mod mirror;
mod outbox;
#[cfg(feature = "serde")]
mod persist;
mod plan;
mod policy;
mod tools;
mod trigger;

pub use backoff::{Attempts, Backoff};
pub use capabilities::{ModelCapabilities, ModelFamily, SeedLimit, SetupRule};
pub use coverage::{
    ConnectMode, CoverageTracker, HandleUpdate, MessageKind, ServerReaction, SpokenTurnEnd,
};
pub use default_policy::{DefaultPolicy, EditHandling, UNDELIVERABLE};
pub use error::Error;
pub use handle::{Coverage, Freshness, HandleRecord, HandleSerial, HandleToken, SessionEpoch};
pub use ids::{
    ClientMessageIndex, ConfigVersion, ConnectionId, MessagePosition, Millis, MirrorVersion, OpId,
};
pub use legacy::{ReplayAlways, SkipReplay};
pub use mirror::Mirror;
pub use outbox::{DeliveryState, OpKind, Operation, Outbox};
pub use plan::{
    Channel, Divergence, DivergenceReason, GiveUpReason, PlanNote, PlannedMessage, PlannedSend,
    ResumeContext, ResumePlan, Seed, Strategy,
};
#[cfg(feature = "mock")]
pub use policy::MockResumePolicy;
pub use policy::{ResumePolicy, Route, RouteContext};
pub use tools::{ToolCallRecord, ToolCallStatus, ToolCalls};
pub use trigger::{CloseClass, FatalCause, Trigger};
