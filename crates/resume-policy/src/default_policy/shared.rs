//! Pieces every policy uses: the prologue (backoff, give up), exclusions, message shaping.

use std::collections::{HashMap, HashSet};

use ctx_model::{FunctionOutput, Item, ItemId, Message, Role};

use crate::{
    Backoff, CloseClass, DeliveryState, Divergence, DivergenceReason, GiveUpReason, HandleRecord,
    MessageKind, ModelCapabilities, OpId, OpKind, Operation, PlannedMessage, PlannedSend,
    ResumeContext, ResumePlan, Strategy, Trigger,
};

/// **Give up, or wait.** Gives up (a complete plan: check [`ResumePlan::is_give_up`]) when
/// the session layer reports a failure no other attempt can fix ([`Trigger::Fatal`], or a
/// close classified [`CloseClass::Fatal`]: retrying a refused key or a spent quota fails the
/// same way) or the bounded attempts are spent; otherwise returns the plan skeleton
/// with the backoff to wait, the attempt and the transparent flag. A failure behind the
/// trigger is never retried at once, not even on the first attempt; a planned trigger's first
/// attempt waits nothing.
pub(crate) fn prologue(ctx: &ResumeContext<'_>, backoff: &Backoff) -> ResumePlan {
    let give_up = match ctx.trigger {
        Trigger::Fatal { cause } => Some(GiveUpReason::Unrecoverable { cause }),
        Trigger::AbnormalClose {
            code,
            class: CloseClass::Fatal,
        } => Some(GiveUpReason::Fatal { code }),
        _ if backoff.exhausted(ctx.attempt) => Some(GiveUpReason::AttemptsExhausted {
            attempts: ctx.attempt,
        }),
        _ => None,
    };
    if let Some(reason) = give_up {
        return give_up_plan(ctx, reason);
    }
    let mut plan = ResumePlan::new(Strategy::Fresh);
    plan.attempt = ctx.attempt;
    let attempt =
        if ctx.trigger.is_planned() || matches!(ctx.trigger, Trigger::RefusedResume { .. }) {
            ctx.attempt
        } else {
            ctx.attempt.saturating_add(1)
        };
    plan.backoff = backoff.delay(attempt, ctx.jitter);
    plan.transparent = ctx.transparent_requested && ctx.capabilities.transparent_resumption;
    plan
}

/// **Report everything still owed when giving up.** The session ends, so every live operation
/// is reported with its items and calls ([`DivergenceReason::GaveUp`]): nothing is dropped
/// silently.
pub(crate) fn give_up_plan(ctx: &ResumeContext<'_>, reason: GiveUpReason) -> ResumePlan {
    let mut plan = ResumePlan::new(Strategy::GiveUp { reason });
    plan.attempt = ctx.attempt;
    let live: Vec<&Operation> = ctx.outbox.live().collect();
    if !live.is_empty() {
        plan.undeliverable.push(Divergence {
            ops: live.iter().map(|op| op.id).collect(),
            items: live
                .iter()
                .flat_map(|op| op.kind.item_ids())
                .cloned()
                .collect(),
            calls: live
                .iter()
                .filter_map(|op| op.kind.call_id())
                .map(str::to_owned)
                .collect(),
            why: DivergenceReason::GaveUp,
        });
    }
    plan
}

/// After a 1007/1008 on a payload: the live operation sent last (on the connection that
/// closed), which the server refused. `handle`: operations it covers are not suspects.
pub(crate) fn rejected_suspect<'a>(
    ctx: &ResumeContext<'a>,
    handle: Option<&HandleRecord>,
) -> Option<(&'a Operation, u16)> {
    let Trigger::AbnormalClose { code, class } = ctx.trigger else {
        return None;
    };
    if !matches!(class, CloseClass::InvalidPayload | CloseClass::Unsupported) {
        return None;
    }
    ctx.outbox
        .live()
        .filter(|op| !handle.is_some_and(|h| op.is_covered_by(h)))
        .filter_map(|op| op.state.sent_at().map(|at| (at, op)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, op)| (op, code))
}

/// **Never send a rejected payload again.** After the server closed the connection on a
/// payload (1007 / 1008), the operation sent last (see [`rejected_suspect`]) is reported
/// ([`DivergenceReason::RejectedByServer`]): sending it again would fail the same way. Its
/// items join `excluded`; returns its id, which must not be planned again.
pub(crate) fn report_rejected<'a>(
    ctx: &ResumeContext<'a>,
    handle: Option<&HandleRecord>,
    plan: &mut ResumePlan,
    excluded: &mut HashSet<&'a ItemId>,
) -> Option<OpId> {
    let (op, code) = rejected_suspect(ctx, handle)?;
    excluded.extend(op.kind.item_ids());
    plan.undeliverable.push(Divergence {
        ops: vec![op.id],
        items: op.kind.item_ids().into_iter().cloned().collect(),
        calls: Vec::new(),
        why: DivergenceReason::RejectedByServer { code },
    });
    Some(op.id)
}

/// **Never send what was withdrawn.** Items of superseded operations and of operations the
/// server rejected, and answers to cancelled tool calls (the server ignores them, and a fresh
/// session would hold an answer the model never got), are left out of every plan.
pub(crate) fn excluded_items<'a>(ctx: &ResumeContext<'a>) -> HashSet<&'a ItemId> {
    let mut excluded = HashSet::new();
    for op in ctx.outbox.iter() {
        if matches!(
            op.state,
            DeliveryState::Superseded
                | DeliveryState::Reported(DivergenceReason::RejectedByServer { .. })
        ) {
            excluded.extend(op.kind.item_ids());
        }
    }
    // The call itself stays: the server held it when it cancelled it, so a restored or
    // seeded session holds it too (and `L` keeps it); only an answer must never go out.
    for item in ctx.desired.iter() {
        if let Item::FunctionOutput(output) = item {
            if ctx.tool_calls.is_cancelled(&output.call_id) {
                excluded.insert(item.id());
            }
        }
    }
    excluded
}

/// Whether an operation can no longer matter: a response to a cancelled call, or an append
/// whose items the application removed from `L` before they were delivered.
pub(crate) fn is_moot(ctx: &ResumeContext<'_>, op: &Operation) -> bool {
    match &op.kind {
        OpKind::ToolResponse { output } => ctx.tool_calls.is_cancelled(&output.call_id),
        OpKind::Append { items, .. } => {
            !items.is_empty() && items.iter().all(|item| !ctx.desired.contains(item.id()))
        }
        _ => false,
    }
}

/// The text of `items` when they are exactly one typed user text message (sendable as
/// `realtimeInput.text`).
pub(crate) fn single_user_text(items: &[Item]) -> Option<String> {
    match items {
        [Item::Message(message)] if message.role == Role::User => Some(message.text()),
        _ => None,
    }
}

/// A user message standing for realtime text that has no item in `L`.
pub(crate) fn text_item(op: &Operation, text: &str) -> Item {
    Item::Message(Message::user(format!("realtime-text-{}", op.id.0), text))
}

/// The output item of a tool response, as `L` holds it (or the operation's copy).
pub(crate) fn output_item(ctx: &ResumeContext<'_>, output: &FunctionOutput) -> Item {
    ctx.desired
        .get(&output.id)
        .cloned()
        .unwrap_or_else(|| Item::FunctionOutput(output.clone()))
}

/// A `generate_reply` on the channel the model allows.
pub(crate) fn generate_reply(
    caps: &ModelCapabilities,
    op: &Operation,
    instructions: &Option<String>,
) -> PlannedSend {
    let instructions = instructions.clone();
    let message = if caps.client_content_mid_session {
        PlannedMessage::ReplyRequest { instructions }
    } else {
        PlannedMessage::RealtimeReplyRequest { instructions }
    };
    PlannedSend::new(vec![op.id], message)
}

/// `clientContent` carrying `items`.
pub(crate) fn client_content(ops: Vec<OpId>, items: Vec<Item>, turn_complete: bool) -> PlannedSend {
    PlannedSend::new(ops, PlannedMessage::client_content(items, turn_complete))
}

/// Realtime text delivering `op`.
pub(crate) fn realtime_text(op: &Operation, text: String) -> PlannedSend {
    PlannedSend::new(vec![op.id], PlannedMessage::RealtimeText { text })
}

/// A tool response delivering `op`.
pub(crate) fn tool_response(op: &Operation, output: &FunctionOutput) -> PlannedSend {
    PlannedSend::new(
        vec![op.id],
        PlannedMessage::ToolResponse {
            responses: vec![output.clone()],
        },
    )
}

/// Joins consecutive `clientContent` item messages when the earlier one does not complete the
/// turn: fewer messages, same order, same final `turnComplete`.
pub(crate) fn merge_client_content(steps: Vec<PlannedSend>) -> Vec<PlannedSend> {
    let mut merged: Vec<PlannedSend> = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(last) = merged.last_mut() {
            if let (
                PlannedMessage::ClientContent {
                    items,
                    turn_complete: joined,
                },
                PlannedMessage::ClientContent {
                    items: more,
                    turn_complete,
                },
            ) = (&mut last.message, &step.message)
            {
                if !*joined {
                    items.extend(more.iter().cloned());
                    last.ops.extend(step.ops.iter().copied());
                    *joined = *turn_complete;
                    continue;
                }
            }
        }
        merged.push(step);
    }
    merged
}

/// A rough size of an item for the seed limit: its text and JSON characters.
pub(crate) fn item_chars(item: &Item) -> usize {
    match item {
        Item::Message(message) => message.text().chars().count(),
        Item::FunctionCall(call) => call.name.len() + call.arguments.to_string().len(),
        Item::FunctionOutput(output) => output.name.len() + output.output.to_string().len(),
    }
}

/// The synthetic error answer for a tool call whose execution was lost (of a non-blocking
/// call: delivered as the service's default scheduling says).
pub(crate) fn lost_call_output(call_id: &str, name: &str, blocking: bool) -> FunctionOutput {
    let output = FunctionOutput::error(
        format!("lost-call-{call_id}"),
        call_id,
        name,
        "the tool call was lost when the connection was replaced".into(),
    );
    if blocking {
        output
    } else {
        output.with_delivery(ctx_model::Delivery::non_blocking(None, false))
    }
}

/// Synthetic error answers for tool calls whose execution was lost (models that need one).
pub(crate) fn lost_call_answers(calls: &[(&str, &str, bool)]) -> PlannedSend {
    let responses = calls
        .iter()
        .map(|(call_id, name, blocking)| lost_call_output(call_id, name, *blocking))
        .collect();
    PlannedSend::new(Vec::new(), PlannedMessage::ToolResponse { responses })
}

/// The turn-starting operations that `L` shows answered. The server answers the latest input
/// it has: a model item answers every turn before it, since a turn followed by another before
/// any output was cut off by it (the server holds both and owes nothing for the first). Only
/// turns after the last model item can be unanswered. A turn answered in `L` is replayed as
/// history, never asked again.
pub(crate) fn answered_turns(
    ctx: &ResumeContext<'_>,
    excluded: &HashSet<&ItemId>,
) -> HashSet<OpId> {
    let owner: HashMap<&ItemId, &Operation> = ctx
        .outbox
        .iter()
        .flat_map(|op| op.kind.item_ids().into_iter().map(move |id| (id, op)))
        .collect();
    let mut waiting: Vec<OpId> = Vec::new();
    let mut answered = HashSet::new();
    for item in ctx.desired.iter() {
        if excluded.contains(item.id()) {
            continue;
        }
        if item.role() == Role::Model {
            answered.extend(waiting.drain(..));
            continue;
        }
        if let Some(op) = owner.get(item.id()) {
            let last = op.kind.item_ids().last().copied();
            if op.kind.starts_turn() && last == Some(item.id()) {
                waiting.push(op.id);
            }
        }
    }
    answered
}

/// **Ask for one reply at most, at the end.** Replayed history is not a question: every
/// `clientContent` item message completes no turn except the last one, which does when a
/// reply is `owed` and no later message asks on its own (realtime text, a tool response, a
/// reply request). Two `turnComplete`s would be answered twice.
pub(crate) fn ask_once(steps: &mut [PlannedSend], owed: bool) {
    let last_items = steps
        .iter()
        .rposition(|step| matches!(step.message, PlannedMessage::ClientContent { .. }));
    for step in steps.iter_mut() {
        if let PlannedMessage::ClientContent { turn_complete, .. } = &mut step.message {
            *turn_complete = false;
        }
    }
    let Some(last) = last_items else {
        return;
    };
    if owed && !asks(&steps[last + 1..]) {
        if let PlannedMessage::ClientContent { turn_complete, .. } = &mut steps[last].message {
            *turn_complete = true;
        }
    }
}

/// Whether one of `steps` asks the model for an answer on its own (a turn start or a tool
/// response the model continues from).
pub(crate) fn asks(steps: &[PlannedSend]) -> bool {
    steps.iter().any(|step| {
        matches!(
            step.message_kind(),
            MessageKind::TurnStart | MessageKind::ToolResponse
        )
    })
}
