//! The two classic policies, kept to show in tests what they get wrong.

use std::collections::HashSet;

use ctx_model::{Item, ItemId};

use crate::default_policy::shared::{client_content, prologue, realtime_text, tool_response};
use crate::{
    Backoff, DeliveryState, HandleRecord, OpKind, Operation, PlannedMessage, PlannedSend,
    ResumeContext, ResumePlan, ResumePolicy, Route, RouteContext, Seed, Strategy, Trigger,
};

/// Re-sends the whole context on every connect, as older integrations do: it resumes with the
/// handle *and* replays everything, with `historyConfig` whenever the model family uses it.
/// Duplicates history on 2.5, gets closed with 1007 on 3.1, answers calls the session never
/// saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayAlways {
    /// Backoff and attempt bounds.
    pub backoff: Backoff,
}

/// The naive fix: skips the seed whenever a handle exists and sends nothing from the outbox
/// that was sent before. Loses what a stale or lagging handle does not cover and anything
/// changed while disconnected that was "sent" on the dead connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkipReplay {
    /// Backoff and attempt bounds.
    pub backoff: Backoff,
}

fn usable_handle<'a>(ctx: &ResumeContext<'a>) -> Option<&'a HandleRecord> {
    ctx.handle
        .filter(|_| !matches!(ctx.trigger, Trigger::RefusedResume { .. }))
}

/// Sends everything the obvious way, whatever the model or the session knows; `None` for
/// instruction and tool-set changes, which only a new `setup` carries.
fn naive_send(op: &Operation) -> Option<PlannedSend> {
    Some(match &op.kind {
        OpKind::Append {
            items,
            turn_complete,
        } => client_content(vec![op.id], items.clone(), *turn_complete),
        OpKind::ToolResponse { output } => tool_response(op, output),
        OpKind::RealtimeText { text, .. } => realtime_text(op, text.clone()),
        OpKind::GenerateReply { instructions } => PlannedSend::new(
            vec![op.id],
            PlannedMessage::ReplyRequest {
                instructions: instructions.clone(),
            },
        ),
        OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => return None,
    })
}

/// Adds `op` to `plan` the obvious way: as its message, or carried by `setup`.
fn naive_step(plan: &mut ResumePlan, op: &Operation) {
    match naive_send(op) {
        Some(step) => plan.steps.push(step),
        None => plan.setup_ops.push(op.id),
    }
}

/// Sends `op` on the open connection, or reconnects for a configuration change (a new
/// `setup` carries it).
fn naive_route(op: &Operation) -> Route {
    match naive_send(op) {
        Some(step) => Route::Send(step),
        None => Route::Reconnect(Trigger::ConfigChange {
            instructions: matches!(op.kind, OpKind::InstructionChange { .. }),
            tools: matches!(op.kind, OpKind::ToolSetChange { .. }),
        }),
    }
}

/// A seed of all of `L`; the live operations it carries, and the others as naive steps.
fn seed_everything(ctx: &ResumeContext<'_>, plan: &mut ResumePlan, history_config: bool) {
    let in_desired: HashSet<&ItemId> = ctx.desired.ids().collect();
    let mut seed_ops = Vec::new();
    for op in ctx.outbox.live() {
        let ids = op.kind.item_ids();
        if !ids.is_empty() && ids.iter().all(|id| in_desired.contains(id)) {
            seed_ops.push(op.id);
        } else {
            naive_step(plan, op);
        }
    }
    if !ctx.desired.is_empty() {
        plan.seed = Some(Seed {
            items: ctx.desired.iter().cloned().collect::<Vec<Item>>(),
            turn_complete: history_config,
            ops: seed_ops,
        });
    }
    plan.history_config = history_config && !ctx.desired.is_empty();
}

impl ResumePolicy for ReplayAlways {
    fn plan(&self, ctx: &ResumeContext<'_>) -> ResumePlan {
        let mut plan = prologue(ctx, &self.backoff);
        if plan.is_give_up() {
            return plan;
        }
        plan.strategy = match usable_handle(ctx) {
            Some(handle) => Strategy::Resume {
                handle: handle.token.clone(),
            },
            None => Strategy::Fresh,
        };
        seed_everything(
            ctx,
            &mut plan,
            ctx.capabilities.initial_history_flag_required,
        );
        plan
    }

    fn route(&self, _ctx: &RouteContext<'_>, op: &Operation) -> Route {
        naive_route(op)
    }

    fn backoff(&self) -> Backoff {
        self.backoff
    }
}

impl ResumePolicy for SkipReplay {
    fn plan(&self, ctx: &ResumeContext<'_>) -> ResumePlan {
        let mut plan = prologue(ctx, &self.backoff);
        if plan.is_give_up() {
            return plan;
        }
        match usable_handle(ctx) {
            Some(handle) => {
                plan.strategy = Strategy::Resume {
                    handle: handle.token.clone(),
                };
                for op in ctx.outbox.live() {
                    if op.state == DeliveryState::Queued {
                        naive_step(&mut plan, op);
                    }
                }
            }
            None => {
                plan.strategy = Strategy::Fresh;
                seed_everything(
                    ctx,
                    &mut plan,
                    ctx.capabilities.initial_history_flag_required,
                );
            }
        }
        plan
    }

    fn route(&self, _ctx: &RouteContext<'_>, op: &Operation) -> Route {
        naive_route(op)
    }

    fn backoff(&self) -> Backoff {
        self.backoff
    }
}
