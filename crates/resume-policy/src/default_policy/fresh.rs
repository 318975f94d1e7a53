//! The default policy's fresh plan: one seed from `L` that triggers no reply unless one is
//! owed, then the pending turns.
//!
//! [`plan`] is the rules below, applied in order; each rule is one function whose doc comment
//! states it and why.

use std::collections::{HashMap, HashSet};

use ctx_model::{Item, ItemId, Role};

use super::shared::{
    answered_turns, ask_once, asks, client_content, excluded_items, generate_reply, is_moot,
    item_chars, lost_call_output, merge_client_content, realtime_text, report_rejected,
    single_user_text, tool_response,
};
use crate::{
    Divergence, DivergenceReason, ModelCapabilities, OpId, OpKind, Operation, PlannedMessage,
    PlannedSend, ResumeContext, ResumePlan, Seed, SeedLimit, Strategy, ToolCallStatus,
};

/// Completes `plan` as a fresh session seeded from `L`.
pub(super) fn plan(ctx: &ResumeContext<'_>, mut plan: ResumePlan) -> ResumePlan {
    let mut excluded = excluded_items(ctx);
    let rejected = report_rejected(ctx, None, &mut plan, &mut excluded);
    let owed = owed_operations(ctx, rejected, &mut plan);
    let base: Vec<&Item> = ctx
        .desired
        .iter()
        .filter(|item| !excluded.contains(item.id()))
        .collect();
    let owner: HashMap<&ItemId, usize> = owed
        .iter()
        .enumerate()
        .flat_map(|(k, op)| op.kind.item_ids().into_iter().map(move |id| (id, k)))
        .collect();
    let (tail_start, tail) = trailing_turns(ctx, &base, &owner, &owed);
    let tail: HashSet<OpId> = tail.iter().map(|op| op.id).collect();

    let mut seed: Vec<Item> = base[..tail_start]
        .iter()
        .map(|item| (*item).clone())
        .collect();
    seed_results_after_their_calls(ctx, &owed, &tail, &mut seed, &mut plan);
    answer_lost_calls_in_seed(ctx, &mut seed);
    let dropped = trim(&mut seed, ctx.capabilities.seed_limit);
    let delivery = Delivery::sort(&owed, &tail, &seed, dropped, &mut plan);
    plan.setup_ops = super::setup_ops(&delivery.config);
    let steps: Vec<PlannedSend> = delivery
        .live
        .iter()
        .filter_map(|op| live_send(ctx, op))
        .collect();
    report_lost_calls(ctx, &mut plan);
    ask_once_if_owed(ctx, &excluded, seed, &delivery, steps, &mut plan);
    plan.strategy = Strategy::Fresh;
    plan
}

/// **A fresh session is owed every live operation.** It holds nothing of the old session, so
/// whatever was queued or sent goes again, except the payload the server rejected (reported
/// already); an append left with no item and an operation that became moot are superseded.
fn owed_operations<'a>(
    ctx: &ResumeContext<'a>,
    rejected: Option<OpId>,
    plan: &mut ResumePlan,
) -> Vec<&'a Operation> {
    let mut owed = Vec::new();
    for op in ctx.outbox.live() {
        if Some(op.id) == rejected {
            continue;
        }
        let empty_append = matches!(&op.kind, OpKind::Append { items, .. } if items.is_empty());
        if empty_append || is_moot(ctx, op) {
            plan.superseded.push(op.id);
        } else {
            owed.push(op);
        }
    }
    owed
}

/// **Seed a tool result right after its call.** A result the application did not put in `L`
/// (only the operation holds it) goes into the seed right after its call, where the model
/// expects it; a result whose call the seed does not hold would be an orphan, and is
/// reported. Results of the trailing turns go live instead.
fn seed_results_after_their_calls(
    ctx: &ResumeContext<'_>,
    owed: &[&Operation],
    tail: &HashSet<OpId>,
    seed: &mut Vec<Item>,
    plan: &mut ResumePlan,
) {
    for op in owed {
        let OpKind::ToolResponse { output } = &op.kind else {
            continue;
        };
        if tail.contains(&op.id) || ctx.desired.contains(&output.id) {
            continue;
        }
        let call_at = seed.iter().position(
            |item| matches!(item, Item::FunctionCall(call) if call.call_id == output.call_id),
        );
        match call_at {
            Some(at) => seed.insert(at + 1, Item::FunctionOutput(output.clone())),
            None => plan.undeliverable.push(Divergence {
                ops: vec![op.id],
                items: vec![output.id.clone()],
                calls: vec![output.call_id.clone()],
                why: DivergenceReason::UnknownToolCall,
            }),
        }
    }
}

/// **Answer lost calls in the seed where the model needs it (S16).** A call whose execution
/// was lost is in the seed, so the new session knows it; a model that needs every call
/// answered before new input (3.8) gets an error answer right after the call.
fn answer_lost_calls_in_seed(ctx: &ResumeContext<'_>, seed: &mut Vec<Item>) {
    if !ctx.capabilities.tool_call_needs_answer {
        return;
    }
    for call in ctx.tool_calls.iter() {
        let answered = seed
            .iter()
            .any(|item| matches!(item, Item::FunctionOutput(o) if o.call_id == call.call_id));
        if call.status != ToolCallStatus::Lost || answered {
            continue;
        }
        let call_at = seed
            .iter()
            .position(|item| matches!(item, Item::FunctionCall(c) if c.call_id == call.call_id));
        if let Some(at) = call_at {
            let answer = lost_call_output(&call.call_id, &call.name, call.blocking);
            seed.insert(at + 1, Item::FunctionOutput(answer));
        }
    }
}

/// How each owed operation reaches the fresh session.
struct Delivery<'a> {
    /// Carried by the seed.
    seed_ops: Vec<OpId>,
    /// Instruction and tool-set changes: carried by `setup`.
    config: Vec<&'a Operation>,
    /// Sent after the seed, in queue order.
    live: Vec<&'a Operation>,
}

impl<'a> Delivery<'a> {
    /// **Deliver each owed operation once: by `setup`, by the seed, or live after it.**
    /// Configuration changes ride in `setup`; the trailing turns and operations without items
    /// in the seed (realtime text without an item, reply requests) go live; an operation whose
    /// items the seed carries is delivered by it; one whose items were all trimmed away is
    /// reported with them ([`DivergenceReason::SeedTrimmed`]). Operations already reported
    /// are left out.
    fn sort(
        owed: &[&'a Operation],
        tail: &HashSet<OpId>,
        seed: &[Item],
        dropped: Vec<ItemId>,
        plan: &mut ResumePlan,
    ) -> Self {
        let in_seed: HashSet<&ItemId> = seed.iter().map(Item::id).collect();
        let dropped_set: HashSet<&ItemId> = dropped.iter().collect();
        let reported: HashSet<OpId> = plan.reported_ops().collect();
        let mut delivery = Self {
            seed_ops: Vec::new(),
            config: Vec::new(),
            live: Vec::new(),
        };
        let mut trimmed = Vec::new();
        for op in owed.iter().filter(|op| !reported.contains(&op.id)) {
            let ids = op.kind.item_ids();
            match &op.kind {
                OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => {
                    delivery.config.push(op);
                }
                _ if tail.contains(&op.id) => delivery.live.push(op),
                _ if ids.iter().any(|id| in_seed.contains(id)) => delivery.seed_ops.push(op.id),
                _ if !ids.is_empty() && ids.iter().all(|id| dropped_set.contains(id)) => {
                    trimmed.push(op.id);
                }
                // Realtime text without an item in `L`, reply requests: sent live.
                _ => delivery.live.push(op),
            }
        }
        delivery.live.sort_by_key(|op| op.id);
        if !dropped.is_empty() {
            plan.undeliverable.push(Divergence {
                ops: trimmed,
                items: dropped,
                calls: Vec::new(),
                why: DivergenceReason::SeedTrimmed,
            });
        }
        delivery
    }
}

/// **Report calls whose execution was lost.** Nobody will produce their results, and a fresh
/// session cannot be asked about them later: each is reported
/// ([`DivergenceReason::ToolCallLost`]).
fn report_lost_calls(ctx: &ResumeContext<'_>, plan: &mut ResumePlan) {
    let lost: Vec<String> = ctx
        .tool_calls
        .iter()
        .filter(|call| call.status == ToolCallStatus::Lost)
        .map(|call| call.call_id.clone())
        .collect();
    if !lost.is_empty() {
        plan.undeliverable.push(Divergence {
            ops: Vec::new(),
            items: Vec::new(),
            calls: lost,
            why: DivergenceReason::ToolCallLost,
        });
    }
}

/// **Ask for a reply only when one is owed, once, by the last message.** A reply is owed when
/// a turn the seed carries has no answer in `L`, or a turn goes live. The seed triggers no
/// reply otherwise (history is not a question); on models that need `historyConfig` the seed
/// completes the history phase with `turnComplete: true` without a reply, so an owed answer
/// is asked for by a realtime-text nudge after it.
fn ask_once_if_owed(
    ctx: &ResumeContext<'_>,
    excluded: &HashSet<&ItemId>,
    seed: Vec<Item>,
    delivery: &Delivery<'_>,
    mut steps: Vec<PlannedSend>,
    plan: &mut ResumePlan,
) {
    let answered = answered_turns(ctx, excluded);
    let seed_owes = delivery
        .seed_ops
        .iter()
        .filter_map(|id| ctx.outbox.get(*id))
        .any(|op| op.kind.starts_turn() && !answered.contains(&op.id));
    let steps_owe = delivery.live.iter().any(|op| op.kind.starts_turn());
    ask_once(&mut steps, seed_owes || steps_owe);
    let owed = seed_owes && !asks(&steps);
    plan.history_config = ctx.capabilities.initial_history_flag_required && !seed.is_empty();
    if !seed.is_empty() {
        plan.seed = Some(Seed {
            items: seed,
            turn_complete: plan.history_config || owed,
            ops: delivery.seed_ops.clone(),
        });
        if owed && plan.history_config {
            // History does not trigger generation on these models: nudge with realtime text.
            steps.push(PlannedSend::new(
                Vec::new(),
                PlannedMessage::RealtimeReplyRequest { instructions: None },
            ));
        }
    }
    plan.steps = merge_client_content(steps);
}

/// **Send the pending turns at the very end of `L` live, after the seed.** A turn still
/// waiting for its answer is a question, not history: sent live after the seed, it is
/// answered once, as on the connection it was first sent on (on a model without mid-session
/// `clientContent`, a typed turn goes as realtime text). These are the owed operations whose
/// items end `L`, contiguous and sendable live on this model, at least one of them asking for
/// a reply. Returns where they start in `base`, and the operations.
fn trailing_turns<'a>(
    ctx: &ResumeContext<'_>,
    base: &[&Item],
    owner: &HashMap<&ItemId, usize>,
    deliver: &[&'a Operation],
) -> (usize, Vec<&'a Operation>) {
    let mut start = base.len();
    let mut tail = Vec::new();
    while let Some(last) = start.checked_sub(1).map(|at| base[at]) {
        let Some(&k) = owner.get(last.id()) else {
            break;
        };
        let op = deliver[k];
        if !routable_live(ctx.capabilities, op, base) {
            break;
        }
        let count = op
            .kind
            .item_ids()
            .iter()
            .filter(|id| base.iter().any(|item| item.id() == **id))
            .count();
        if count == 0 || count > start {
            break;
        }
        let contiguous = base[start - count..start]
            .iter()
            .all(|item| owner.get(item.id()) == Some(&k));
        if !contiguous {
            break;
        }
        start -= count;
        tail.push(op);
    }
    if !tail.iter().any(|op| op.kind.starts_turn()) {
        return (base.len(), Vec::new());
    }
    tail.reverse();
    (start, tail)
}

/// Whether `op` can be sent live on a fresh connection of this model.
fn routable_live(caps: &ModelCapabilities, op: &Operation, base: &[&Item]) -> bool {
    match &op.kind {
        OpKind::Append {
            items,
            turn_complete,
        } => {
            caps.client_content_mid_session
                || (*turn_complete && single_user_text(&present(items, base)).is_some())
        }
        OpKind::RealtimeText { .. } => true,
        OpKind::ToolResponse { .. } => caps.resumed_session_accepts_unknown_call_result,
        _ => false,
    }
}

fn present(items: &[Item], base: &[&Item]) -> Vec<Item> {
    items
        .iter()
        .filter_map(|item| {
            base.iter()
                .find(|b| b.id() == item.id())
                .map(|b| (*b).clone())
        })
        .collect()
}

/// The live message for an operation sent after the seed; `None` for instruction and tool-set
/// changes, which ride in `setup` (never among the live operations).
fn live_send(ctx: &ResumeContext<'_>, op: &Operation) -> Option<PlannedSend> {
    let caps = ctx.capabilities;
    Some(match &op.kind {
        OpKind::Append {
            items,
            turn_complete,
        } => {
            let items: Vec<Item> = items
                .iter()
                .filter_map(|item| ctx.desired.get(item.id()).cloned())
                .collect();
            match single_user_text(&items) {
                Some(text) if !caps.client_content_mid_session => realtime_text(op, text),
                _ => client_content(vec![op.id], items, *turn_complete),
            }
        }
        OpKind::ToolResponse { output } => tool_response(op, output),
        OpKind::GenerateReply { instructions } => generate_reply(caps, op, instructions),
        OpKind::RealtimeText { text, .. } => realtime_text(op, text.clone()),
        OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => return None,
    })
}

/// **Trim the seed to the model's limits, at a user turn.** The oldest items go first (the
/// model's recent context matters most), and the cut moves forward to the start of a user
/// message so that the seed never opens with an answer or a tool result. Returns the dropped
/// ids (reported by [`Delivery::sort`]).
fn trim(items: &mut Vec<Item>, limit: SeedLimit) -> Vec<ItemId> {
    let sizes: Vec<usize> = items.iter().map(item_chars).collect();
    let mut chars: usize = sizes.iter().sum();
    let mut start = 0;
    while start < items.len() && (items.len() - start > limit.max_items || chars > limit.max_chars)
    {
        chars -= sizes[start];
        start += 1;
    }
    if start == 0 {
        return Vec::new();
    }
    while start < items.len()
        && !matches!(&items[start], Item::Message(message) if message.role == Role::User)
    {
        start += 1;
    }
    items.drain(..start).map(|item| item.id().clone()).collect()
}
