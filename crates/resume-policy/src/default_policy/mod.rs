//! `DefaultPolicy`: the correct policy of docs/design.md section 5.

mod fresh;
mod resume;
pub(crate) mod shared;

use ctx_model::{FunctionOutput, Item};

use crate::{
    Backoff, ConfigVersion, DivergenceReason, HandleRecord, ModelCapabilities, OpId, OpKind,
    Operation, PlanNote, PlannedMessage, PlannedSend, ResumeContext, ResumePlan, ResumePolicy,
    Route, RouteContext, Trigger,
};
use shared::{generate_reply, prologue, realtime_text, single_user_text, tool_response};

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
/// Read it before writing a [`ResumePolicy`] of your own: its source (`src/default_policy/`)
/// is a sequence of named rules, one function each, whose doc comment says the rule and why.
/// A plan applies them in this order:
///
/// 1. **Give up, or wait** (`shared::prologue`): give up when the session layer reports a
///    fatal failure or after [`Backoff::max_attempts`], reporting every live operation
///    ([`DivergenceReason::GaveUp`]); otherwise wait the backoff (none for the first attempt
///    of a planned trigger).
/// 2. **Resume only from a handle the server takes back and that holds this context**
///    (`usable_handle`): not one the server refused, not one older than the model's handle
///    validity, not one a restarted process stored with another version of `L`.
/// 3. **Resume** (`resume.rs`, when a handle is usable): report the payload the server
///    rejected (1007/1008) and never send it again; replay what the handle does not cover
///    (queued, or sent and uncertain), superseding what became moot; report edits of
///    delivered items or start fresh for them ([`EditHandling`]); restore what the server
///    lost after the handle (model turns, tool calls) as `clientContent` history; deliver in
///    `L`'s order, with instruction and tool changes in `setup`; answer or report calls whose
///    execution was lost; replay each operation on the channel the model allows (an append
///    as history or realtime text, a realtime-text question once, a tool result only where
///    the session knows the call, a reply request once); ask for one reply at most, at the
///    end; name what is replayed without proof (uncertain).
/// 4. **Start fresh when resuming cannot deliver everything** (`fresh_instead`): a model that
///    forbids `clientContent` mid-session (3.1), a result for a call the session cannot know,
///    or an edit of delivered items under [`EditHandling::Reseed`].
/// 5. **Fresh** (`fresh.rs`): one seed from `L` (without cancelled calls' answers and refused
///    payloads, tool results placed after their calls, lost calls answered where the model
///    needs it, trimmed to the model's limits at a user turn), `historyConfig` and
///    `turnComplete: true` where the model needs the flag; pending turns at the very end of
///    `L` go live after it so that they are answered once; otherwise the seed triggers no
///    reply unless one is owed.
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
        note_transparent_unavailable(ctx, &mut plan);
        if let Some(handle) = usable_handle(ctx, &mut plan) {
            match resume::plan(ctx, handle, self.edits, plan.clone()) {
                Ok(mut resumed) => {
                    resumed.replay_transparent_buffer = replays_buffer(ctx, handle, &resumed);
                    return resumed;
                }
                Err(why) => plan.notes.push(fresh_instead(why)),
            }
        }
        fresh::plan(ctx, plan)
    }

    fn backoff(&self) -> Backoff {
        self.backoff
    }

    fn route(&self, ctx: &RouteContext<'_>, op: &Operation) -> Route {
        match &op.kind {
            OpKind::Append {
                items,
                turn_complete,
            } => append_route(ctx.capabilities, op, items, *turn_complete),
            OpKind::ToolResponse { output } => tool_response_route(ctx, op, output),
            OpKind::RealtimeText { text, .. } => Route::Send(realtime_text(op, text.clone())),
            OpKind::InstructionChange { version } => {
                config_route(ctx.capabilities, op, Some(*version), None)
            }
            OpKind::ToolSetChange { version } => {
                config_route(ctx.capabilities, op, None, Some(*version))
            }
            OpKind::GenerateReply { instructions } => {
                Route::Send(generate_reply(ctx.capabilities, op, instructions))
            }
        }
    }
}

/// **Say when transparent resumption is unavailable.** An application that asked for it on a
/// model that does not offer it (the Developer API) gets basic resumption, and is told so
/// once, on the first connection.
fn note_transparent_unavailable(ctx: &ResumeContext<'_>, plan: &mut ResumePlan) {
    let first = matches!(
        ctx.trigger,
        Trigger::FirstConnect | Trigger::ProcessRestart { .. }
    );
    if first && ctx.transparent_requested && !ctx.capabilities.transparent_resumption {
        plan.notes.push(PlanNote::TransparentUnavailable);
    }
}

/// **Resume only from a handle the server takes back and that holds this context.** A handle
/// the server refused is dead; one older than the model's handle validity has expired; one a
/// restarted process stored with another version of `L` holds a context this process does
/// not know. Each is noted, and the plan starts fresh.
fn usable_handle<'a>(ctx: &ResumeContext<'a>, plan: &mut ResumePlan) -> Option<&'a HandleRecord> {
    let handle = ctx.handle?;
    let refused = matches!(ctx.trigger, Trigger::RefusedResume { .. });
    let expired = ctx.now.since(handle.received_at) > ctx.capabilities.handle_validity;
    let mismatch = matches!(
        ctx.trigger,
        Trigger::ProcessRestart { stored, current } if stored != current
    );
    let unusable = if refused {
        PlanNote::HandleRefused
    } else if expired {
        PlanNote::HandleExpired
    } else if mismatch {
        PlanNote::MirrorVersionMismatch
    } else {
        return Some(handle);
    };
    plan.notes.push(unusable);
    None
}

/// **Start fresh when resuming cannot deliver everything.** The resumed session would lack
/// something the model's rules forbid sending it (`why`); a fresh session seeded from `L`
/// holds it. Edits of delivered items are the expected case ([`EditHandling::Reseed`]).
fn fresh_instead(why: DivergenceReason) -> PlanNote {
    match why {
        DivergenceReason::EditOfDeliveredItem => PlanNote::EditsReseeded,
        why => PlanNote::ResumeInfeasible { why },
    }
}

/// **Replay the transparent buffer only from exact coverage.** Realtime media after the
/// handle is replayed only when the server said exactly which message the handle holds
/// (transparent mode); otherwise the buffer's start is unknown.
fn replays_buffer(ctx: &ResumeContext<'_>, handle: &HandleRecord, plan: &ResumePlan) -> bool {
    plan.transparent && ctx.transparent_buffer && handle.coverage.exact
}

/// **Send an append on the channel the model allows, or defer it to a fresh seed.** With
/// mid-session `clientContent` it goes as it is; otherwise only a typed user turn can go, as
/// realtime text, and anything else waits for the next fresh seed (reported as deferred).
fn append_route(
    caps: &ModelCapabilities,
    op: &Operation,
    items: &[Item],
    turn_complete: bool,
) -> Route {
    if caps.client_content_mid_session {
        return Route::Send(shared::client_content(
            vec![op.id],
            items.to_vec(),
            turn_complete,
        ));
    }
    match single_user_text(items) {
        Some(text) if turn_complete => Route::Send(realtime_text(op, text)),
        _ => Route::Defer {
            why: DivergenceReason::ClientContentForbidden,
        },
    }
}

/// **Answer a call only where the session knows it; never a cancelled one.** A result for a
/// cancelled call is superseded. It goes as `toolResponse` when the session issued the call
/// (or the model accepts unknown results); for a call nobody saw it is reported. When the
/// session holds the call only as seeded history, the result goes as history on models that
/// allow it, and otherwise waits for the next fresh seed.
fn tool_response_route(ctx: &RouteContext<'_>, op: &Operation, output: &FunctionOutput) -> Route {
    let caps = ctx.capabilities;
    let call = output.call_id.as_str();
    let calls = ctx.tool_calls;
    if calls.is_cancelled(call) {
        Route::Supersede
    } else if calls.in_session(call) || caps.resumed_session_accepts_unknown_call_result {
        Route::Send(tool_response(op, output))
    } else if calls.get(call).is_none() {
        Route::Report(DivergenceReason::UnknownToolCall)
    } else if caps.client_content_mid_session {
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

/// **Change instructions and tools in place where the model can, else through `setup`.** A
/// model with `contextUpdate` takes the change on the open connection; any other needs a new
/// connection whose `setup` carries it.
fn config_route(
    caps: &ModelCapabilities,
    op: &Operation,
    instructions: Option<ConfigVersion>,
    tools: Option<ConfigVersion>,
) -> Route {
    if caps.context_update {
        Route::Send(PlannedSend::new(
            vec![op.id],
            PlannedMessage::ContextUpdate {
                instructions,
                tools,
            },
        ))
    } else {
        Route::Reconnect(Trigger::ConfigChange {
            instructions: instructions.is_some(),
            tools: tools.is_some(),
        })
    }
}

/// Instruction and tool-set changes ride in the new connection's `setup`, which carries the
/// latest versions and so delivers every one of them (no pile-up of instruction turns).
pub(crate) fn setup_ops(config: &[&Operation]) -> Vec<OpId> {
    config.iter().map(|op| op.id).collect()
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
/// - [`DivergenceReason::TurnOrderUnknown`]: the protocol does not say where a turn no
///   message asked for went relative to content the server had not yet confirmed.
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
    DivergenceReason::TurnOrderUnknown,
];
