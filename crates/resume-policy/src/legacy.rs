//! The two classic policies, kept to show in tests what they get wrong.

use std::collections::HashSet;

use ctx_model::{Item, ItemId};

use crate::default_policy::setup_step;
use crate::default_policy::shared::{client_content, prologue};
use crate::{
    Backoff, Channel, DeliveryState, HandleRecord, OpKind, Operation, Payload, PlannedSend,
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

/// Sends everything the obvious way, whatever the model or the session knows.
fn naive_send(op: &Operation) -> PlannedSend {
    match &op.kind {
        OpKind::Append {
            items,
            turn_complete,
        } => client_content(vec![op.id], items.clone(), *turn_complete),
        OpKind::ToolResponse { output } => PlannedSend {
            ops: vec![op.id],
            channel: Channel::ToolResponse,
            payload: Payload::ToolResponses(vec![output.clone()]),
        },
        OpKind::RealtimeText { text, .. } => PlannedSend {
            ops: vec![op.id],
            channel: Channel::RealtimeText,
            payload: Payload::Text(text.clone()),
        },
        OpKind::GenerateReply { instructions } => PlannedSend {
            ops: vec![op.id],
            channel: Channel::ClientContent {
                turn_complete: true,
            },
            payload: Payload::GenerateReply {
                instructions: instructions.clone(),
            },
        },
        OpKind::InstructionChange { .. } | OpKind::ToolSetChange { .. } => {
            setup_step(&[op]).unwrap_or_else(|| client_content(vec![op.id], Vec::new(), false))
        }
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
            plan.steps.push(naive_send(op));
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
        Route::Send(naive_send(op))
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
                plan.steps = ctx
                    .outbox
                    .live()
                    .filter(|op| op.state == DeliveryState::Queued)
                    .map(naive_send)
                    .collect();
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
        Route::Send(naive_send(op))
    }

    fn backoff(&self) -> Backoff {
        self.backoff
    }
}
