//! `DefaultPolicy`: the correct policy of docs/design.md section 5.

mod fresh;
mod resume;
pub(crate) mod shared;

use ctx_model::Item;

use crate::{
    Backoff, Channel, ConfigVersion, DivergenceReason, OpKind, Operation, Payload, PlanNote,
    PlannedSend, ResumeContext, ResumePlan, ResumePolicy, Route, RouteContext, Trigger,
};
use shared::{generate_reply, prologue, single_user_text};

/// What to do, at a reconnect, with edits and removals of items the server already holds
/// (scenario S20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EditHandling {
    /// Start a fresh session seeded from `L`, so the edit takes effect. The default.
    #[default]
    Reseed,
    /// Keep the session, report the edit as a divergence, deliver what can be appended.
    Report,
}

/// The correct policy: resume from a usable handle and send exactly what it does not cover,
/// on the channels the model allows; otherwise start fresh with one seed from `L` that
/// triggers no reply unless one is owed. Anything that cannot be delivered is reported.
///
/// Decisions, in order:
/// - give up on a fatal close or after [`Backoff::max_attempts`]; otherwise wait the backoff
///   (none for the first attempt of a planned trigger);
/// - the handle is unusable when the server refused it, it is older than the model's handle
///   validity, or a restarted process holds a context of another version: fresh;
/// - resume: live operations the handle does not cover (queued, or sent and uncertain) are
///   sent in queue order; items of `L` the server lost after the handle (a model turn, a tool
///   call) are restored as `clientContent` history; replayed history asks for one reply at
///   most, at its end, and only for a turn `L` shows unanswered (answers pair with turns in
///   order); a tool result goes as `toolResponse` when the session knows the call, as
///   history when the call itself had to be restored; cancelled calls are never answered;
///   a lost call the session knows is answered with an error first on models that need it;
///   instruction and tool changes ride in `setup`; after a 1007/1008 on a payload, the last
///   message sent is reported and never re-sent;
/// - if resuming would need something the model forbids (`clientContent` mid-session on 3.1,
///   a result for a call the session cannot know), or `L` edits delivered items: fresh;
/// - fresh: one seed from `L` (without cancelled calls and refused payloads, trimmed to the
///   model's limits at a user turn), `historyConfig` and `turnComplete: true` where the model
///   needs the flag; pending turns at the very end of `L` are sent live after it so they are
///   answered once; otherwise the seed triggers no reply unless one is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DefaultPolicy {
    /// Backoff and attempt bounds.
    pub backoff: Backoff,
    /// Edits of delivered items.
    pub edits: EditHandling,
}

impl DefaultPolicy {
    /// The default policy with these bounds.
    pub fn new(backoff: Backoff, edits: EditHandling) -> Self {
        Self { backoff, edits }
    }
}

impl ResumePolicy for DefaultPolicy {
    fn plan(&self, ctx: &ResumeContext<'_>) -> ResumePlan {
        let mut plan = prologue(ctx, &self.backoff);
        if plan.is_give_up() {
            return plan;
        }
        let first = matches!(
            ctx.trigger,
            Trigger::FirstConnect | Trigger::ProcessRestart { .. }
        );
        if first && ctx.transparent_requested && !ctx.capabilities.transparent_resumption {
            plan.notes.push(PlanNote::TransparentUnavailable);
        }
        let handle = ctx.handle.filter(|handle| {
            let refused = matches!(ctx.trigger, Trigger::RefusedResume { .. });
            let expired = ctx.now.since(handle.received_at) > ctx.capabilities.handle_validity;
            let mismatch = matches!(
                ctx.trigger,
                Trigger::ProcessRestart { stored, current } if stored != current
            );
            let note = if refused {
                Some(PlanNote::HandleRefused)
            } else if expired {
                Some(PlanNote::HandleExpired)
            } else if mismatch {
                Some(PlanNote::MirrorVersionMismatch)
            } else {
                None
            };
            match note {
                Some(note) => {
                    plan.notes.push(note);
                    false
                }
                None => true,
            }
        });
        if let Some(handle) = handle {
            match resume::plan(ctx, handle, self.edits, plan.clone()) {
                Ok(mut resumed) => {
                    resumed.replay_transparent_buffer =
                        resumed.transparent && ctx.transparent_buffer && handle.coverage.exact;
                    return resumed;
                }
                Err(DivergenceReason::EditOfDeliveredItem) => {
                    plan.notes.push(PlanNote::EditsReseeded);
                }
                Err(why) => plan.notes.push(PlanNote::ResumeInfeasible { why }),
            }
        }
        fresh::plan(ctx, plan)
    }

    fn backoff(&self) -> Backoff {
        self.backoff
    }

    fn route(&self, ctx: &RouteContext<'_>, op: &Operation) -> Route {
        let caps = ctx.capabilities;
        match &op.kind {
            OpKind::Append {
                items,
                turn_complete,
            } => {
                if caps.client_content_mid_session {
                    return Route::Send(shared::client_content(
                        vec![op.id],
                        items.clone(),
                        *turn_complete,
                    ));
                }
                match single_user_text(items) {
                    Some(text) if *turn_complete => Route::Send(PlannedSend {
                        ops: vec![op.id],
                        channel: Channel::RealtimeText,
                        payload: Payload::Text(text),
                    }),
                    _ => Route::Defer {
                        why: DivergenceReason::ClientContentForbidden,
                    },
                }
            }
            OpKind::ToolResponse { output } => {
                let call = output.call_id.as_str();
                let calls = ctx.tool_calls;
                if calls.is_cancelled(call) {
                    Route::Supersede
                } else if calls.in_session(call) || caps.resumed_session_accepts_unknown_call_result
                {
                    Route::Send(PlannedSend {
                        ops: vec![op.id],
                        channel: Channel::ToolResponse,
                        payload: Payload::ToolResponses(vec![output.clone()]),
                    })
                } else if calls.get(call).is_none() {
                    Route::Report(DivergenceReason::UnknownToolCall)
                } else if caps.client_content_mid_session {
                    // The session holds the call only as seeded history: answer as history.
                    Route::Send(shared::client_content(
                        vec![op.id],
                        vec![Item::FunctionOutput(output.clone())],
                        true,
                    ))
                } else {
                    Route::Defer {
                        why: DivergenceReason::UnknownToolCall,
                    }
                }
            }
            OpKind::RealtimeText { text, .. } => Route::Send(PlannedSend {
                ops: vec![op.id],
                channel: Channel::RealtimeText,
                payload: Payload::Text(text.clone()),
            }),
            OpKind::InstructionChange { version } => config_route(caps, op, Some(*version), None),
            OpKind::ToolSetChange { version } => config_route(caps, op, None, Some(*version)),
            OpKind::GenerateReply { instructions } => {
                Route::Send(generate_reply(caps, op, instructions))
            }
        }
    }
}

fn config_route(
    caps: &crate::ModelCapabilities,
    op: &Operation,
    instructions: Option<ConfigVersion>,
    tools: Option<ConfigVersion>,
) -> Route {
    if caps.context_update {
        Route::Send(PlannedSend {
            ops: vec![op.id],
            channel: Channel::ContextUpdate,
            payload: Payload::Config {
                instructions,
                tools,
            },
        })
    } else {
        Route::Reconnect(Trigger::ConfigChange {
            instructions: instructions.is_some(),
            tools: tools.is_some(),
        })
    }
}

/// One `SetupField` step for instruction and tool-set changes: the new `setup` carries the
/// latest versions, which delivers every one of them (no pile-up of instruction turns).
pub(crate) fn setup_step(config: &[&Operation]) -> Option<PlannedSend> {
    if config.is_empty() {
        return None;
    }
    let mut instructions = None;
    let mut tools = None;
    for op in config {
        match op.kind {
            OpKind::InstructionChange { version } => {
                instructions = instructions.max(Some(version));
            }
            OpKind::ToolSetChange { version } => tools = tools.max(Some(version)),
            _ => {}
        }
    }
    Some(PlannedSend {
        ops: config.iter().map(|op| op.id).collect(),
        channel: Channel::SetupField,
        payload: Payload::Config {
            instructions,
            tools,
        },
    })
}

/// The reasons for which [`DefaultPolicy`] reports something as undeliverable, each because
/// the protocol offers no way to deliver it; a divergence it reports for any other reason is a
/// defect (the simulator checks this under the default policy):
///
/// - [`DivergenceReason::ClientContentForbidden`]: on a model that takes `clientContent`
///   only as initial history (3.1), an item that is not a single user text (a model turn, a
///   note the application appends) has no message that adds it to the session after its
///   first turn; it waits for the next fresh session's seed.
/// - [`DivergenceReason::UnknownToolCall`]: a result for a call no session issued; the server
///   takes a `toolResponse` only for a call it issued, and nothing makes it issue one.
/// - [`DivergenceReason::ToolCallLost`]: a call whose server state was lost (the handle
///   resumed predates it, or the session started fresh); no message makes a session issue a
///   call again or wait for its result.
/// - [`DivergenceReason::EditOfDeliveredItem`] (with [`EditHandling::Report`] only): no
///   message edits, moves or removes content a session holds.
/// - [`DivergenceReason::SeedTrimmed`]: the model's limits cap what a seed may carry.
/// - [`DivergenceReason::RejectedByServer`] with 1007, 1008 or 1009: the server closed the
///   connection on this payload (invalid argument, not supported, too big); sending it again
///   gets the same close.
/// - [`DivergenceReason::GaveUp`]: the session ended (authentication, quota, a refused
///   `setup`, or the policy's attempts used up): no connection is left to deliver on.
pub const UNDELIVERABLE: &[DivergenceReason] = &[
    DivergenceReason::ClientContentForbidden,
    DivergenceReason::UnknownToolCall,
    DivergenceReason::ToolCallLost,
    DivergenceReason::EditOfDeliveredItem,
    DivergenceReason::SeedTrimmed,
    DivergenceReason::RejectedByServer { code: 1007 },
    DivergenceReason::RejectedByServer { code: 1008 },
    DivergenceReason::RejectedByServer { code: 1009 },
    DivergenceReason::GaveUp,
];
