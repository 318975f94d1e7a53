//! The default policy's fresh plan: one seed from `L` that triggers no reply unless one is
//! owed, then the pending turns.

use std::collections::{HashMap, HashSet};

use ctx_model::{Item, ItemId, Role};

use super::resume::is_moot;
use super::shared::{
    answered_turns, ask_once, asks, client_content, excluded_items, generate_reply, item_chars,
    lost_call_output, merge_client_content, realtime_text, report_rejected, single_user_text,
    tool_response,
};
use crate::{
    Divergence, DivergenceReason, ModelCapabilities, OpKind, Operation, PlannedMessage,
    PlannedSend, ResumeContext, ResumePlan, Seed, SeedLimit, Strategy, ToolCallStatus,
};

/// Completes `plan` as a fresh session seeded from `L`.
pub(super) fn plan(ctx: &ResumeContext<'_>, mut plan: ResumePlan) -> ResumePlan {
    let caps = ctx.capabilities;
    let mut excluded = excluded_items(ctx);
    let suspect_id = report_rejected(ctx, None, &mut plan, &mut excluded);

    let mut deliver: Vec<&Operation> = Vec::new();
    for op in ctx.outbox.live() {
        if Some(op.id) == suspect_id {
            continue;
        }
        let empty_append = matches!(&op.kind, OpKind::Append { items, .. } if items.is_empty());
        if empty_append || is_moot(ctx, op) {
            plan.superseded.push(op.id);
        } else {
            deliver.push(op);
        }
    }

    let base: Vec<&Item> = ctx
        .desired
        .iter()
        .filter(|item| !excluded.contains(item.id()))
        .collect();
    let owner: HashMap<&ItemId, usize> = deliver
        .iter()
        .enumerate()
        .flat_map(|(k, op)| op.kind.item_ids().into_iter().map(move |id| (id, k)))
        .collect();

    // Pending turns at the very end of `L` go live after the seed, so the model answers them.
    let (tail_start, tail) = trailing_turns(ctx, &base, &owner, &deliver);
    let tail_ids: HashSet<_> = tail.iter().map(|op| op.id).collect();

    let mut seed_items: Vec<Item> = base[..tail_start]
        .iter()
        .map(|item| (*item).clone())
        .collect();
    // Tool results the application did not put in `L`: right after their call.
    for op in &deliver {
        let OpKind::ToolResponse { output } = &op.kind else {
            continue;
        };
        if tail_ids.contains(&op.id) || ctx.desired.contains(&output.id) {
            continue;
        }
        let call_at = seed_items.iter().position(
            |item| matches!(item, Item::FunctionCall(call) if call.call_id == output.call_id),
        );
        match call_at {
            Some(at) => seed_items.insert(at + 1, Item::FunctionOutput(output.clone())),
            None => plan.undeliverable.push(Divergence {
                ops: vec![op.id],
                items: vec![output.id.clone()],
                calls: vec![output.call_id.clone()],
                why: DivergenceReason::UnknownToolCall,
            }),
        }
    }
    // Scenario S16: a lost call the seed holds is known to the new session; a model that
    // needs an answer before new input gets an error answer right after the call.
    if caps.tool_call_needs_answer {
        for call in ctx.tool_calls.iter() {
            if call.status != ToolCallStatus::Lost
                || seed_items.iter().any(
                    |item| matches!(item, Item::FunctionOutput(o) if o.call_id == call.call_id),
                )
            {
                continue;
            }
            let call_at = seed_items.iter().position(
                |item| matches!(item, Item::FunctionCall(c) if c.call_id == call.call_id),
            );
            if let Some(at) = call_at {
                let answer = lost_call_output(&call.call_id, &call.name);
                seed_items.insert(at + 1, Item::FunctionOutput(answer));
            }
        }
    }
    let dropped = trim(&mut seed_items, caps.seed_limit);
    let in_seed: HashSet<&ItemId> = seed_items.iter().map(Item::id).collect();
    let dropped_set: HashSet<&ItemId> = dropped.iter().collect();

    let mut seed_ops = Vec::new();
    let mut trimmed_ops = Vec::new();
    let mut config = Vec::new();
    let mut live_steps: Vec<&Operation> = Vec::new();
    let reported: HashSet<_> = plan.reported_ops().collect();
    for op in &deliver {
        if reported.contains(&op.id) {
            continue;
        }
        let ids = op.kind.item_ids();
        match &op.kind {
            OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => config.push(*op),
            _ if tail_ids.contains(&op.id) => live_steps.push(op),
            _ if ids.iter().any(|id| in_seed.contains(id)) => seed_ops.push(op.id),
            _ if !ids.is_empty() && ids.iter().all(|id| dropped_set.contains(id)) => {
                trimmed_ops.push(op.id);
            }
            // Realtime text without an item in `L`, reply requests: sent live.
            _ => live_steps.push(op),
        }
    }
    if !dropped.is_empty() {
        plan.undeliverable.push(Divergence {
            ops: trimmed_ops,
            items: dropped,
            calls: Vec::new(),
            why: DivergenceReason::SeedTrimmed,
        });
    }

    plan.setup_ops = super::setup_ops(&config);
    live_steps.sort_by_key(|op| op.id);
    let mut steps: Vec<PlannedSend> = live_steps
        .iter()
        .filter_map(|op| live_send(ctx, op))
        .collect();

    // Calls whose execution was lost: the new session does not know them; report.
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

    // A reply is owed when a turn the seed carries has no answer in `L`, or a turn is sent
    // live; it is asked for once, by the last message.
    let answered = answered_turns(ctx, &excluded);
    let seed_owes = seed_ops
        .iter()
        .filter_map(|id| ctx.outbox.get(*id))
        .any(|op| op.kind.starts_turn() && !answered.contains(&op.id));
    let steps_owe = live_steps.iter().any(|op| op.kind.starts_turn());
    ask_once(&mut steps, seed_owes || steps_owe);
    let owed = seed_owes && !asks(&steps);
    plan.history_config = caps.initial_history_flag_required && !seed_items.is_empty();
    if !seed_items.is_empty() {
        plan.seed = Some(Seed {
            items: seed_items,
            turn_complete: plan.history_config || owed,
            ops: seed_ops,
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
    plan.strategy = Strategy::Fresh;
    plan
}

/// The pending turns at the end of `L` that can be sent live on a fresh connection (at least
/// one of them asking for a reply): where they start in `base`, and the operations.
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

/// Drops the oldest items until the seed fits `limit`, cutting at the start of a user
/// message; returns the dropped ids.
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
