//! The default policy's resume plan: replay exactly what the handle does not cover.
//!
//! [`plan`] is the rules below, applied in order; each rule is one function whose doc comment
//! states it and why. A rule that finds something resuming cannot deliver under the model's
//! rules returns the reason, and [`DefaultPolicy`](super::DefaultPolicy) starts fresh instead.

use std::collections::{HashMap, HashSet};

use ctx_model::{ChatContext, DiffKind, DiffOp, FunctionOutput, Item, ItemId, Role};

use super::EditHandling;
use super::shared::{
    answered_turns, ask_once, client_content, excluded_items, generate_reply, is_moot,
    lost_call_answers, merge_client_content, output_item, realtime_text, report_rejected,
    single_user_text, text_item, tool_response,
};
use crate::{
    DeliveryState, Divergence, DivergenceReason, Freshness, HandleRecord, OpId, OpKind, Operation,
    PlanNote, PlannedSend, ResumeContext, ResumePlan, Strategy, ToolCallStatus,
};

/// A piece of what the resumed session lacks, in delivery order.
#[derive(Clone, Copy)]
enum Unit<'a> {
    /// An owed operation.
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
    let mut excluded = excluded_items(ctx);
    let rejected = report_rejected(ctx, Some(handle), &mut plan, &mut excluded);
    let owed = uncovered_operations(ctx, handle, rejected, &mut plan);
    edits_of_delivered_items(edits, edited_after_sending(ctx, &owed), &mut plan)?;
    let lost = lost_after_handle(ctx, handle, &excluded, edits, &mut plan)?;
    let Order {
        units,
        config,
        within,
    } = delivery_order(ctx, &owed, &lost);
    plan.setup_ops = super::setup_ops(&config);

    let mut replay = Replay::new(ctx, handle, &excluded, within);
    replay.answer_lost_calls(&owed, &mut plan);
    for (at, unit) in units.iter().enumerate() {
        let answered_later = replay.answered_later(*unit, &units[at + 1..]);
        match *unit {
            Unit::Lost(item) => replay.restore(item)?,
            Unit::Op(op) => replay.operation(op, answered_later, &mut plan)?,
        }
    }
    plan.steps = replay.finish();
    plan.uncertain = uncertain(ctx, handle, &plan);
    if let Freshness::StaleSince(since) = handle.freshness {
        plan.notes.push(PlanNote::ResumedFromStale { since });
    }
    plan.strategy = Strategy::Resume {
        handle: handle.token.clone(),
    };
    Ok(plan)
}

/// **Replay what the handle does not cover.** Every live operation the handle does not
/// provably hold (queued, or sent and uncertain) is owed to the resumed session; what the
/// handle covers is there already and would be duplicated. The payload the server rejected is
/// never owed again, and an operation that became moot (a result for a cancelled call, an
/// append whose items left `L`) is superseded instead of sent.
fn uncovered_operations<'a>(
    ctx: &ResumeContext<'a>,
    handle: &HandleRecord,
    rejected: Option<OpId>,
    plan: &mut ResumePlan,
) -> Vec<&'a Operation> {
    let mut owed = Vec::new();
    for op in ctx.outbox.live() {
        if op.is_covered_by(handle) || Some(op.id) == rejected {
            continue;
        }
        if is_moot(ctx, op) {
            plan.superseded.push(op.id);
        } else {
            owed.push(op);
        }
    }
    owed
}

/// Items of owed operations already sent that `L` has edited since: the session may hold
/// them unedited, so replaying the edit would hold the item twice, and not replaying it would
/// lose the edit.
fn edited_after_sending(ctx: &ResumeContext<'_>, owed: &[&Operation]) -> Vec<ItemId> {
    owed.iter()
        .filter(|op| op.state.sent_at().is_some())
        .filter_map(|op| match &op.kind {
            OpKind::Append { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .filter(|item| ctx.desired.get(item.id()).is_some_and(|now| now != *item))
        .map(|item| item.id().clone())
        .collect()
}

/// **Report edits of delivered items, or start fresh for them.** No Gemini message edits,
/// removes, or inserts before, items a session holds. With [`EditHandling::Reseed`] resuming
/// is infeasible (a fresh session seeded from `L` applies the edit); with
/// [`EditHandling::Report`] the session is kept and the edit reported as a divergence.
fn edits_of_delivered_items(
    edits: EditHandling,
    items: Vec<ItemId>,
    plan: &mut ResumePlan,
) -> Result<(), DivergenceReason> {
    if items.is_empty() {
        return Ok(());
    }
    match edits {
        EditHandling::Reseed => Err(DivergenceReason::EditOfDeliveredItem),
        EditHandling::Report => {
            plan.undeliverable.push(Divergence {
                ops: Vec::new(),
                items,
                calls: Vec::new(),
                why: DivergenceReason::EditOfDeliveredItem,
            });
            Ok(())
        }
    }
}

/// **Restore what the server lost after the handle.** A handle is a snapshot: model turns and
/// tool calls that came after it are in `L` but not in the resumed session. `S` and `L` are
/// compared without the items of live operations (the outbox delivers those, in queue order,
/// wherever the application put them in `L`); the items `L` has beyond what the handle holds
/// are restored, except calls the resumed session knows. Edits found on the way go to
/// [`edits_of_delivered_items`].
fn lost_after_handle<'a>(
    ctx: &ResumeContext<'a>,
    handle: &HandleRecord,
    excluded: &HashSet<&ItemId>,
    edits: EditHandling,
    plan: &mut ResumePlan,
) -> Result<HashSet<&'a ItemId>, DivergenceReason> {
    // What the handle holds according to the ledger.
    let held: HashSet<&ItemId> = ctx
        .outbox
        .iter()
        .filter(|op| op.is_covered_by(handle))
        .flat_map(|op| op.kind.item_ids())
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
    let (edited, missing) = compare(&view(ctx.mirror), &view(ctx.desired));
    edits_of_delivered_items(edits, edited, plan)?;
    Ok(missing
        .iter()
        .filter(|id| !held.contains(id))
        .filter_map(|id| ctx.desired.get(id))
        .filter(|item| {
            !matches!(item, Item::FunctionCall(call) if ctx.tool_calls.known_to(&call.call_id, handle))
        })
        .map(Item::id)
        .collect())
}

/// What the resumed session lacks, in delivery order.
struct Order<'a> {
    units: Vec<Unit<'a>>,
    /// Instruction and tool-set changes: they ride in `setup`.
    config: Vec<&'a Operation>,
    /// Lost items `L` holds between the first and the last item of an owed append: they go
    /// inside that append's message, where `L` has them.
    within: HashMap<OpId, Vec<&'a Item>>,
}

/// **Deliver in `L`'s order.** Lost items and owed operations go in the order `L` holds them
/// (an operation at its first item), each once, so the resumed session ends up in `L`'s
/// order. A lost item `L` holds among an owed append's items (the answer a fresh seed gave a
/// lost call, say) goes inside that append, not after it. Operations without items in `L`
/// (reply requests, realtime text without an item) go in queue order among them. Instruction
/// and tool-set changes are returned apart: they ride in `setup`, which carries the latest
/// versions.
fn delivery_order<'a>(
    ctx: &ResumeContext<'a>,
    owed: &[&'a Operation],
    lost: &HashSet<&ItemId>,
) -> Order<'a> {
    let owner: HashMap<&ItemId, usize> = owed
        .iter()
        .enumerate()
        .flat_map(|(k, op)| op.kind.item_ids().into_iter().map(move |id| (id, k)))
        .collect();
    // How many of each operation's items `L` holds that the walk has not reached yet.
    let mut ahead = vec![0_usize; owed.len()];
    for item in ctx.desired.iter() {
        if let Some(&k) = owner.get(item.id()) {
            ahead[k] += 1;
        }
    }
    let mut placed = vec![false; owed.len()];
    let mut in_context: Vec<Unit<'a>> = Vec::new();
    let mut within: HashMap<OpId, Vec<&'a Item>> = HashMap::new();
    // The append whose items the walk is among (placed, with items still ahead).
    let mut open: Option<usize> = None;
    for item in ctx.desired.iter() {
        let id = item.id();
        if let Some(&k) = owner.get(id) {
            if !placed[k] {
                placed[k] = true;
                in_context.push(Unit::Op(owed[k]));
            }
            ahead[k] -= 1;
            open = (ahead[k] > 0 && matches!(owed[k].kind, OpKind::Append { .. }))
                .then_some(k)
                .or(open.filter(|&j| ahead[j] > 0));
        } else if lost.contains(id) {
            match open {
                Some(k) => within.entry(owed[k].id).or_default().push(item),
                None => in_context.push(Unit::Lost(item)),
            }
        }
    }
    let mut config: Vec<&Operation> = Vec::new();
    let mut itemless: Vec<&Operation> = Vec::new();
    for (op, _) in owed.iter().zip(&placed).filter(|(_, placed)| !**placed) {
        match op.kind {
            OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => config.push(op),
            _ => itemless.push(op),
        }
    }
    let mut units: Vec<Unit<'a>> = Vec::with_capacity(in_context.len() + itemless.len());
    let mut itemless = itemless.into_iter().peekable();
    for unit in in_context {
        if let Unit::Op(op) = unit {
            while let Some(earlier) = itemless.next_if(|earlier| earlier.id < op.id) {
                units.push(Unit::Op(earlier));
            }
        }
        units.push(unit);
    }
    units.extend(itemless.map(Unit::Op));
    Order {
        units,
        config,
        within,
    }
}

/// **Name what is replayed without proof.** Without exact coverage, an operation sent before
/// and replayed now may or may not have reached the old session: the `Reconnected` event
/// lists it as uncertain.
fn uncertain(ctx: &ResumeContext<'_>, handle: &HandleRecord, plan: &ResumePlan) -> Vec<OpId> {
    if handle.coverage.exact {
        return Vec::new();
    }
    plan.delivered_ops()
        .filter(|id| {
            ctx.outbox
                .get(*id)
                .is_some_and(|op| matches!(op.state, DeliveryState::Sent { .. }))
        })
        .collect()
}

/// The messages of a resume plan, built unit by unit by the rules below, and what they share.
struct Replay<'c, 'a> {
    ctx: &'c ResumeContext<'a>,
    handle: &'c HandleRecord,
    /// Items never to send (see [`excluded_items`]).
    excluded: &'c HashSet<&'a ItemId>,
    /// The turn operations `L` shows answered.
    answered: HashSet<OpId>,
    /// Calls whose `FunctionCall` the resumed session holds as history (in `S`, or restored).
    history_calls: HashSet<&'a str>,
    steps: Vec<PlannedSend>,
    /// A replayed turn has no answer in `L`: the replay asks for one reply, at its end.
    reply_owed: bool,
    /// Lost items that go inside an append ([`Order::within`]).
    within: HashMap<OpId, Vec<&'a Item>>,
}

impl<'c, 'a> Replay<'c, 'a> {
    fn new(
        ctx: &'c ResumeContext<'a>,
        handle: &'c HandleRecord,
        excluded: &'c HashSet<&'a ItemId>,
        within: HashMap<OpId, Vec<&'a Item>>,
    ) -> Self {
        let history_calls = ctx
            .mirror
            .iter()
            .filter_map(Item::as_function_call)
            .map(|call| call.call_id.as_str())
            .collect();
        Self {
            ctx,
            handle,
            excluded,
            answered: answered_turns(ctx, excluded),
            history_calls,
            steps: Vec::new(),
            reply_owed: false,
            within,
        }
    }

    /// Whether `L` shows the turn `unit` starts answered: by an answer to its operation, or by
    /// a model item restored after it (on its own or inside a later append) (answers pair with turns in order, see
    /// [`answered_turns`]).
    fn answered_later(&self, unit: Unit<'_>, later: &[Unit<'_>]) -> bool {
        let model = |item: &Item| item.role() == Role::Model;
        matches!(unit, Unit::Op(op) if self.answered.contains(&op.id))
            || later.iter().any(|u| match u {
                Unit::Lost(item) => model(item),
                Unit::Op(op) => self
                    .within
                    .get(&op.id)
                    .is_some_and(|lost| lost.iter().any(|item| model(item))),
            })
    }

    /// **Answer or report calls whose execution was lost (S16).** Nobody will produce the
    /// result of a call whose process is gone. A model that needs every call answered (3.8)
    /// waits for it, so it gets an error answer first; either way the call is reported.
    fn answer_lost_calls(&mut self, owed: &[&Operation], plan: &mut ResumePlan) {
        let calls = self.ctx.tool_calls;
        let answered: HashSet<&str> = owed.iter().filter_map(|op| op.kind.call_id()).collect();
        let lost: Vec<(&str, &str, bool)> = calls
            .iter()
            .filter(|call| call.status == ToolCallStatus::Lost)
            .filter(|call| calls.known_to(&call.call_id, self.handle))
            .filter(|call| !answered.contains(call.call_id.as_str()))
            .map(|call| (call.call_id.as_str(), call.name.as_str(), call.blocking))
            .collect();
        if lost.is_empty() {
            return;
        }
        if self.ctx.capabilities.tool_call_needs_answer {
            self.steps.push(lost_call_answers(&lost));
        }
        plan.undeliverable.push(Divergence {
            ops: Vec::new(),
            items: Vec::new(),
            calls: lost.iter().map(|(call, ..)| (*call).to_owned()).collect(),
            why: DivergenceReason::ToolCallLost,
        });
    }

    /// **Restore lost server state as history.** A model turn or tool call the handle lost
    /// goes back as `clientContent` history that asks for nothing. A model without
    /// mid-session `clientContent` cannot take it: resuming is infeasible.
    fn restore(&mut self, item: &'a Item) -> Result<(), DivergenceReason> {
        if !self.ctx.capabilities.client_content_mid_session {
            return Err(DivergenceReason::ClientContentForbidden);
        }
        if let Item::FunctionCall(call) = item {
            self.history_calls.insert(call.call_id.as_str());
        }
        self.steps
            .push(client_content(Vec::new(), vec![item.clone()], false));
        Ok(())
    }

    /// An owed operation, by the rule for its kind. Instruction and tool-set changes are not
    /// among the units: they ride in `setup` ([`delivery_order`]).
    fn operation(
        &mut self,
        op: &Operation,
        answered_later: bool,
        plan: &mut ResumePlan,
    ) -> Result<(), DivergenceReason> {
        match &op.kind {
            OpKind::Append {
                items,
                turn_complete,
            } => self.append(op, items, *turn_complete && !answered_later),
            OpKind::RealtimeText { text, item } => {
                self.realtime_text(op, text, item.as_ref(), answered_later)
            }
            OpKind::ToolResponse { output } => self.tool_response(op, output, answered_later, plan),
            OpKind::GenerateReply { instructions } => {
                if answered_later {
                    plan.superseded.push(op.id);
                } else {
                    self.steps
                        .push(generate_reply(self.ctx.capabilities, op, instructions));
                }
                Ok(())
            }
            OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => Ok(()),
        }
    }

    /// **Replay an append on the channel the model allows.** Its items go as `L` holds them
    /// now. On models with mid-session `clientContent` they go as history, and a turn `L`
    /// shows unanswered (`asks`) makes the replay ask for one reply at its end
    /// ([`ask_once`]). Otherwise only a typed user turn still to be answered can go, as
    /// realtime text; anything else makes resuming infeasible.
    fn append(
        &mut self,
        op: &Operation,
        items: &[Item],
        asks: bool,
    ) -> Result<(), DivergenceReason> {
        let lost = self.within.remove(&op.id).unwrap_or_default();
        let items: Vec<Item> = if lost.is_empty() {
            items
                .iter()
                .filter(|item| !self.excluded.contains(item.id()))
                .filter_map(|item| self.ctx.desired.get(item.id()).cloned())
                .collect()
        } else {
            // Lost items restored among the append's own, all in `L`'s order.
            if !self.ctx.capabilities.client_content_mid_session {
                return Err(DivergenceReason::ClientContentForbidden);
            }
            for item in &lost {
                if let Item::FunctionCall(call) = item {
                    self.history_calls.insert(call.call_id.as_str());
                }
            }
            let ids: HashSet<&ItemId> = items
                .iter()
                .map(Item::id)
                .chain(lost.iter().map(|item| item.id()))
                .collect();
            self.ctx
                .desired
                .iter()
                .filter(|item| ids.contains(item.id()) && !self.excluded.contains(item.id()))
                .cloned()
                .collect()
        };
        if self.ctx.capabilities.client_content_mid_session {
            self.reply_owed |= asks;
            self.steps.push(client_content(vec![op.id], items, false));
            return Ok(());
        }
        match single_user_text(&items) {
            Some(text) if asks => {
                self.steps.push(realtime_text(op, text));
                Ok(())
            }
            _ => Err(DivergenceReason::ClientContentForbidden),
        }
    }

    /// **Ask a realtime-text question once.** Unanswered in `L`, it is sent again as realtime
    /// text. Answered, its answer is restored as history, so the question goes as history too
    /// (its item in `L`, or one made from the text); asking again would answer it twice, and a
    /// model without mid-session `clientContent` cannot take history: resuming is infeasible.
    fn realtime_text(
        &mut self,
        op: &Operation,
        text: &str,
        item: Option<&ItemId>,
        answered_later: bool,
    ) -> Result<(), DivergenceReason> {
        if !answered_later {
            self.steps.push(realtime_text(op, text.to_owned()));
            return Ok(());
        }
        if !self.ctx.capabilities.client_content_mid_session {
            return Err(DivergenceReason::ClientContentForbidden);
        }
        let item = item
            .and_then(|id| self.ctx.desired.get(id).cloned())
            .unwrap_or_else(|| text_item(op, text));
        self.steps
            .push(client_content(vec![op.id], vec![item], false));
        Ok(())
    }

    /// **Answer a call only where the session knows it.** A resumed session rejects a result
    /// for a call it never issued. The result goes as `toolResponse` when the session knows
    /// the call (or the model accepts unknown results); as history when the session holds the
    /// call only as history (S13: the model is then asked to continue); it is reported when
    /// `L` holds no such call. A call `L` holds that the session cannot know makes resuming
    /// infeasible: a fresh seed carries the call and its result together.
    fn tool_response(
        &mut self,
        op: &Operation,
        output: &FunctionOutput,
        answered_later: bool,
        plan: &mut ResumePlan,
    ) -> Result<(), DivergenceReason> {
        let caps = self.ctx.capabilities;
        let call = output.call_id.as_str();
        if self.ctx.tool_calls.known_to(call, self.handle)
            || caps.resumed_session_accepts_unknown_call_result
        {
            if answered_later && output.delivery.answered_by_own_turn() {
                // **A non-blocking result `L` shows answered goes `SILENT`:** the model
                // took it up before the connection ended, and that answer is in `L`; asked
                // again, it would answer twice.
                let mut delivery = output.delivery;
                delivery.scheduling = Some(ctx_model::Scheduling::Silent);
                let silent = output.clone().with_delivery(delivery);
                self.steps.push(tool_response(op, &silent));
            } else {
                self.steps.push(tool_response(op, output));
            }
        } else if caps.client_content_mid_session && self.history_calls.contains(call) {
            self.reply_owed |= !answered_later;
            self.steps.push(client_content(
                vec![op.id],
                vec![output_item(self.ctx, output)],
                false,
            ));
        } else if !desired_has_call(self.ctx, call) {
            plan.undeliverable.push(Divergence {
                ops: vec![op.id],
                items: vec![output.id.clone()],
                calls: vec![call.to_owned()],
                why: DivergenceReason::UnknownToolCall,
            });
        } else {
            return Err(DivergenceReason::UnknownToolCall);
        }
        Ok(())
    }

    /// The plan's steps: one reply asked for at most, at the end ([`ask_once`]), and
    /// consecutive history joined into one message.
    fn finish(mut self) -> Vec<PlannedSend> {
        ask_once(&mut self.steps, self.reply_owed);
        merge_client_content(self.steps)
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
