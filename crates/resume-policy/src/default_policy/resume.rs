//! The default policy's resume plan: replay exactly what the handle does not cover.

use std::collections::{HashMap, HashSet};

use ctx_model::{ChatContext, DiffKind, DiffOp, Item, ItemId, Role};

use super::EditHandling;
use super::shared::{
    answered_turns, ask_once, client_content, excluded_items, generate_reply, lost_call_answers,
    merge_client_content, output_item, realtime_text, report_rejected, single_user_text, text_item,
    tool_response,
};
use crate::{
    DeliveryState, Divergence, DivergenceReason, HandleRecord, OpKind, Operation, PlanNote,
    PlannedSend, ResumeContext, ResumePlan, Strategy, ToolCallStatus,
};

/// A piece of the suffix to deliver, in order.
enum Unit<'a> {
    /// A live operation.
    Op(&'a Operation),
    /// An item of `L` the server lost (a model turn, a call) with no operation behind it.
    Lost(&'a Item),
}

/// Completes `plan` as a resume from `handle`, or says why resuming cannot deliver
/// everything under the model's rules (the caller then starts fresh).
pub(super) fn plan(
    ctx: &ResumeContext<'_>,
    handle: &HandleRecord,
    edits: EditHandling,
    mut plan: ResumePlan,
) -> Result<ResumePlan, DivergenceReason> {
    let caps = ctx.capabilities;
    let calls = ctx.tool_calls;
    let mut excluded = excluded_items(ctx);
    let suspect_id = report_rejected(ctx, Some(handle), &mut plan, &mut excluded);

    // What the handle holds according to the ledger.
    let held: HashSet<&ItemId> = ctx
        .outbox
        .iter()
        .filter(|op| op.is_covered_by(handle))
        .flat_map(|op| op.kind.item_ids())
        .collect();

    // Live operations not covered, minus those that became moot.
    let mut deliver: Vec<&Operation> = Vec::new();
    for op in ctx.outbox.live() {
        if op.is_covered_by(handle) || Some(op.id) == suspect_id {
            continue;
        }
        if is_moot(ctx, op) {
            plan.superseded.push(op.id);
        } else {
            deliver.push(op);
        }
    }

    // An item edited in `L` after it was sent may be in the session already, unedited:
    // replaying the edit would hold it twice, replaying the original would lose the edit.
    let edited_in_flight: Vec<ItemId> = deliver
        .iter()
        .filter(|op| op.state.sent_at().is_some())
        .filter_map(|op| match &op.kind {
            OpKind::Append { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .filter(|item| ctx.desired.get(item.id()).is_some_and(|now| now != *item))
        .map(|item| item.id().clone())
        .collect();
    if !edited_in_flight.is_empty() {
        match edits {
            EditHandling::Reseed => return Err(DivergenceReason::EditOfDeliveredItem),
            EditHandling::Report => plan.undeliverable.push(Divergence {
                ops: Vec::new(),
                items: edited_in_flight,
                calls: Vec::new(),
                why: DivergenceReason::EditOfDeliveredItem,
            }),
        }
    }

    // What the server lost beyond the handle: compare `S` and `L` without the items of live
    // operations (the outbox delivers those, in queue order, wherever the application put
    // them in `L`).
    let owner: HashMap<&ItemId, usize> = deliver
        .iter()
        .enumerate()
        .flat_map(|(k, op)| op.kind.item_ids().into_iter().map(move |id| (id, k)))
        .collect();
    let in_flight: HashSet<&ItemId> = ctx
        .outbox
        .live()
        .filter(|op| !op.is_covered_by(handle))
        .flat_map(|op| op.kind.item_ids())
        .collect();
    let view = |context: &ChatContext| -> ChatContext {
        let items = context
            .iter()
            .filter(|item| !in_flight.contains(item.id()) && !excluded.contains(item.id()))
            .cloned();
        // Ids are unique in the source, so they are unique in the view.
        ChatContext::from_items(items).unwrap_or_default()
    };
    let held_view = view(ctx.mirror);
    let desired_view = view(ctx.desired);
    let (edited, missing) = compare(&held_view, &desired_view);
    if !edited.is_empty() {
        match edits {
            EditHandling::Reseed => return Err(DivergenceReason::EditOfDeliveredItem),
            EditHandling::Report => plan.undeliverable.push(Divergence {
                ops: Vec::new(),
                items: edited,
                calls: Vec::new(),
                why: DivergenceReason::EditOfDeliveredItem,
            }),
        }
    }
    let lost: HashSet<&ItemId> = missing
        .iter()
        .filter(|id| !held.contains(id))
        .filter_map(|id| ctx.desired.get(id))
        .filter(|item| {
            !matches!(item, Item::FunctionCall(call) if calls.known_to(&call.call_id, handle))
        })
        .map(Item::id)
        .collect();

    // Walk `L` in order: lost items and live operations, each once.
    let mut placed = vec![false; deliver.len()];
    let mut from_suffix: Vec<Unit<'_>> = Vec::new();
    for item in ctx.desired.iter() {
        let id = item.id();
        if let Some(&k) = owner.get(id) {
            if !placed[k] {
                placed[k] = true;
                from_suffix.push(Unit::Op(deliver[k]));
            }
        } else if lost.contains(id) {
            from_suffix.push(Unit::Lost(item));
        }
    }

    // Operations without items in the suffix go in queue order among the others; changes of
    // instructions and tools ride in `setup`.
    let mut config: Vec<&Operation> = Vec::new();
    let mut extras: Vec<&Operation> = Vec::new();
    for (k, op) in deliver.iter().enumerate() {
        if placed[k] {
            continue;
        }
        match op.kind {
            OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => config.push(op),
            _ => extras.push(op),
        }
    }
    let mut units: Vec<Unit<'_>> = Vec::with_capacity(from_suffix.len() + extras.len());
    let mut extras = extras.into_iter().peekable();
    for unit in from_suffix {
        if let Unit::Op(op) = unit {
            while let Some(extra) = extras.next_if(|extra| extra.id < op.id) {
                units.push(Unit::Op(extra));
            }
        }
        units.push(unit);
    }
    units.extend(extras.map(Unit::Op));

    plan.setup_ops = super::setup_ops(&config);
    let mut steps: Vec<PlannedSend> = Vec::new();

    // Scenario S16: calls the session knows whose execution was lost.
    let answered: HashSet<&str> = deliver.iter().filter_map(|op| op.kind.call_id()).collect();
    let lost: Vec<(&str, &str)> = calls
        .iter()
        .filter(|call| call.status == ToolCallStatus::Lost)
        .filter(|call| calls.known_to(&call.call_id, handle))
        .filter(|call| !answered.contains(call.call_id.as_str()))
        .map(|call| (call.call_id.as_str(), call.name.as_str()))
        .collect();
    if !lost.is_empty() {
        if caps.tool_call_needs_answer {
            steps.push(lost_call_answers(&lost));
        }
        plan.undeliverable.push(Divergence {
            ops: Vec::new(),
            items: Vec::new(),
            calls: lost.iter().map(|(call, _)| (*call).to_owned()).collect(),
            why: DivergenceReason::ToolCallLost,
        });
    }

    // Calls whose `FunctionCall` the resumed server holds as history.
    let mut history_calls: HashSet<&str> = ctx
        .mirror
        .iter()
        .filter_map(Item::as_function_call)
        .map(|call| call.call_id.as_str())
        .collect();

    let answered = answered_turns(ctx, &excluded);
    // A reply is owed when a replayed turn has no answer in `L`.
    let mut owed = false;
    for (i, unit) in units.iter().enumerate() {
        let answered_later = match unit {
            Unit::Op(op) => answered.contains(&op.id),
            Unit::Lost(_) => false,
        } || units[i + 1..]
            .iter()
            .any(|u| matches!(u, Unit::Lost(item) if item.role() == Role::Model));
        match unit {
            Unit::Lost(item) => {
                if !caps.client_content_mid_session {
                    return Err(DivergenceReason::ClientContentForbidden);
                }
                if let Item::FunctionCall(call) = item {
                    history_calls.insert(call.call_id.as_str());
                }
                steps.push(client_content(Vec::new(), vec![(*item).clone()], false));
            }
            Unit::Op(op) => match &op.kind {
                OpKind::Append {
                    items,
                    turn_complete,
                } => {
                    let items: Vec<Item> = items
                        .iter()
                        .filter(|item| !excluded.contains(item.id()))
                        .filter_map(|item| ctx.desired.get(item.id()).cloned())
                        .collect();
                    let turn_complete = *turn_complete && !answered_later;
                    if caps.client_content_mid_session {
                        owed |= turn_complete;
                        steps.push(client_content(vec![op.id], items, false));
                    } else {
                        match single_user_text(&items) {
                            Some(text) if turn_complete => steps.push(realtime_text(op, text)),
                            _ => return Err(DivergenceReason::ClientContentForbidden),
                        }
                    }
                }
                OpKind::RealtimeText { text, item } => {
                    if answered_later && !caps.client_content_mid_session {
                        // Asking again would answer twice; history needs clientContent.
                        return Err(DivergenceReason::ClientContentForbidden);
                    }
                    if answered_later {
                        // The answer is restored as history: restore the question the same way.
                        let item = item
                            .as_ref()
                            .and_then(|id| ctx.desired.get(id).cloned())
                            .unwrap_or_else(|| text_item(op, text));
                        steps.push(client_content(vec![op.id], vec![item], false));
                    } else {
                        steps.push(realtime_text(op, text.clone()));
                    }
                }
                OpKind::ToolResponse { output } => {
                    let call = output.call_id.as_str();
                    if calls.known_to(call, handle)
                        || caps.resumed_session_accepts_unknown_call_result
                    {
                        steps.push(tool_response(op, output));
                    } else if caps.client_content_mid_session && history_calls.contains(call) {
                        // Scenario S13: the session lost the call; it now holds it as history,
                        // so the result goes as history too, and the model continues.
                        owed |= !answered_later;
                        steps.push(client_content(
                            vec![op.id],
                            vec![output_item(ctx, output)],
                            false,
                        ));
                    } else if !desired_has_call(ctx, call) {
                        plan.undeliverable.push(Divergence {
                            ops: vec![op.id],
                            items: vec![output.id.clone()],
                            calls: vec![call.to_owned()],
                            why: DivergenceReason::UnknownToolCall,
                        });
                    } else {
                        return Err(DivergenceReason::UnknownToolCall);
                    }
                }
                OpKind::GenerateReply { instructions } => {
                    if answered_later {
                        plan.superseded.push(op.id);
                    } else {
                        steps.push(generate_reply(caps, op, instructions));
                    }
                }
                OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => {}
            },
        }
    }

    ask_once(&mut steps, owed);
    plan.steps = merge_client_content(steps);
    if !handle.coverage.exact {
        plan.uncertain = plan
            .delivered_ops()
            .filter(|id| {
                ctx.outbox
                    .get(*id)
                    .is_some_and(|op| matches!(op.state, DeliveryState::Sent { .. }))
            })
            .collect();
    }
    if let crate::Freshness::StaleSince(since) = handle.freshness {
        plan.notes.push(PlanNote::ResumedFromStale { since });
    }
    plan.strategy = Strategy::Resume {
        handle: handle.token.clone(),
    };
    Ok(plan)
}

/// Whether an operation can no longer matter: a response to a cancelled call, or an append
/// whose items the application removed from `L` before they were delivered.
pub(super) fn is_moot(ctx: &ResumeContext<'_>, op: &Operation) -> bool {
    match &op.kind {
        OpKind::ToolResponse { output } => ctx.tool_calls.is_cancelled(&output.call_id),
        OpKind::Append { items, .. } => {
            !items.is_empty() && items.iter().all(|item| !ctx.desired.contains(item.id()))
        }
        _ => false,
    }
}

fn desired_has_call(ctx: &ResumeContext<'_>, call_id: &str) -> bool {
    ctx.desired
        .iter()
        .filter_map(Item::as_function_call)
        .any(|call| call.call_id == call_id)
}

/// Compares what the server holds with `L` (both without in-flight items): the ids of
/// delivered items `L` edits, removes or inserts new user items before (what Gemini cannot
/// apply), and the ids of items `L` has that the server lost (to restore, in `L` order).
///
/// Order differences among items both sides hold are not edits: a replay after a drop puts
/// an uncertain message after items that `L` lists after it, and no message can reorder a
/// session.
fn compare(held: &ChatContext, desired: &ChatContext) -> (Vec<ItemId>, Vec<ItemId>) {
    let diff = ctx_model::diff(held, desired);
    if diff.classify() == DiffKind::AppendOnly {
        return (
            Vec::new(),
            diff.appended()
                .iter()
                .map(|item| item.id().clone())
                .collect(),
        );
    }
    let mut edited = Vec::new();
    let mut missing = Vec::new();
    for op in diff.ops() {
        match op {
            DiffOp::Replace { id, .. } => edited.push(id.clone()),
            DiffOp::Remove { id } if !desired.contains(id) => edited.push(id.clone()),
            DiffOp::Remove { .. } => {}
            DiffOp::InsertAfter { item, .. } => match held.get(item.id()) {
                // Moved: an edit only if its content changed too.
                Some(before) if before == item => {}
                Some(_) => edited.push(item.id().clone()),
                // New, before delivered items: server output the handle lost is restored at
                // the end; a user item the application inserted there is an edit.
                None if item.role() == Role::Model => missing.push(item.id().clone()),
                None => edited.push(item.id().clone()),
            },
            // Moved and unchanged: a reorder of held items, not an edit.
            DiffOp::MoveAfter { .. } => {}
            DiffOp::Append { items } => missing.extend(items.iter().map(|item| item.id().clone())),
        }
    }
    (edited, missing)
}
