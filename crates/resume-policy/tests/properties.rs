//! Property tests over random ledgers: random sessions are played through the miniature
//! session layer (connections, drops, replays, handles, tool calls, offline changes), then the
//! default policy plans one more connection and the plan is checked against the invariants
//! of docs/design.md sections 2 and 5.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::*;
use ctx_model::{Item, Message};
use proptest::prelude::{
    Just, ProptestConfig, TestCaseError, any, prop, prop_assert, prop_assert_eq, prop_assume,
    prop_oneof, proptest,
};
use proptest::strategy::Strategy as _;
use resume_policy::{
    Channel, CloseClass, ConfigVersion, DefaultPolicy, OpKind, Payload, PlanNote, ResumePlan,
    ResumePolicy, Strategy, ToolCallStatus, Trigger,
};

#[derive(Debug, Clone)]
enum Event {
    UserTurn,
    SilentAppend,
    ModelTurn,
    ModelPartial,
    ToolCall,
    ToolResult(usize),
    Cancel(usize),
    LoseCall(usize),
    Handle,
    LaggingHandle(usize),
    NotResumable,
    Drop,
    Reconnect(u8),
    Instruction,
    GenerateReply,
    EditOld(usize),
    RemoveLast,
}

fn event() -> impl proptest::strategy::Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::UserTurn),
        2 => Just(Event::SilentAppend),
        3 => Just(Event::ModelTurn),
        1 => Just(Event::ModelPartial),
        2 => Just(Event::ToolCall),
        2 => any::<usize>().prop_map(Event::ToolResult),
        1 => any::<usize>().prop_map(Event::Cancel),
        1 => any::<usize>().prop_map(Event::LoseCall),
        2 => Just(Event::Handle),
        2 => any::<usize>().prop_map(Event::LaggingHandle),
        1 => Just(Event::NotResumable),
        2 => Just(Event::Drop),
        2 => any::<u8>().prop_map(Event::Reconnect),
        1 => Just(Event::Instruction),
        1 => Just(Event::GenerateReply),
        1 => any::<usize>().prop_map(Event::EditOld),
        1 => Just(Event::RemoveLast),
    ]
}

fn trigger(pick: u8) -> Trigger {
    match pick % 6 {
        0 => dropped(),
        1 => go_away(),
        2 => Trigger::RefusedResume { code: 1007 },
        3 => Trigger::AbnormalClose {
            code: 1007,
            class: CloseClass::InvalidPayload,
        },
        4 => Trigger::ConfigChange {
            instructions: true,
            tools: false,
        },
        _ => Trigger::AbnormalClose {
            code: 1011,
            class: CloseClass::Transient,
        },
    }
}

const MODELS: [&str; 4] = [M25, M31, M38, V25];

/// Plays `events` and returns the session, ready for one more plan.
fn play(model: &str, events: &[Event]) -> Sim {
    let mut sim = Sim::new(model);
    let first = sim.plan(Trigger::FirstConnect);
    sim.execute(&first);
    replay_on(sim, events)
}

/// Plays `events` on a connected session.
fn replay_on(mut sim: Sim, events: &[Event]) -> Sim {
    let n = std::cell::Cell::new(0u64);
    let mut calls: Vec<String> = Vec::new();
    let next = |prefix: &str| {
        n.set(n.get() + 1);
        format!("{prefix}{}", n.get())
    };
    for event in events {
        let online = sim.tracker.connection().is_some();
        match event {
            Event::UserTurn => {
                sim.user_turn(&next("u"), "question");
            }
            Event::SilentAppend => {
                sim.silent_append(&next("a"), "note");
            }
            Event::ModelTurn if online => sim.model_turn(&next("m"), "answer"),
            Event::ModelPartial if online => sim.model_says(&next("m"), "partial"),
            Event::ToolCall if online => {
                let call = next("call-");
                sim.tool_call(&next("c"), &call, "tool");
                calls.push(call);
            }
            Event::ToolResult(i) => {
                let running: Vec<String> = calls
                    .iter()
                    .filter(|c| {
                        sim.tracker.tool_calls().get(c).unwrap().status != ToolCallStatus::Answered
                    })
                    .cloned()
                    .collect();
                if !running.is_empty() {
                    let call = running[i % running.len()].clone();
                    sim.tool_result(&next("o"), &call, "tool");
                }
            }
            Event::Cancel(i) if !calls.is_empty() => {
                let call = calls[i % calls.len()].clone();
                sim.cancel_call(&call);
            }
            Event::LoseCall(i) if !calls.is_empty() => {
                let call = calls[i % calls.len()].clone();
                let status = sim.tracker.tool_calls().get(&call).unwrap().status;
                if status == ToolCallStatus::Running {
                    sim.tracker.set_tool_status(&call, ToolCallStatus::Lost);
                }
            }
            Event::Handle if online => sim.handle(&next("h")),
            Event::LaggingHandle(lag) if online && !sim.transparent => {
                sim.lagging_handle(&next("h"), *lag)
            }
            Event::NotResumable if online => sim.not_resumable(),
            Event::Drop if online => sim.drop_connection(),
            Event::Reconnect(pick) if !online => {
                let plan = sim.plan(trigger(*pick));
                if !plan.is_give_up() {
                    sim.execute(&plan);
                }
            }
            Event::Instruction => {
                n.set(n.get() + 1);
                let version = ConfigVersion(n.get());
                let (op, _) = sim.op(OpKind::InstructionChange { version });
                // On models without contextUpdate the route asks for a reconnect: do it.
                if online && !sim.caps.context_update {
                    sim.drop_connection();
                    let plan = sim.plan(Trigger::ConfigChange {
                        instructions: true,
                        tools: false,
                    });
                    sim.execute(&plan);
                }
                let _ = op;
            }
            Event::GenerateReply => {
                sim.op(OpKind::GenerateReply { instructions: None });
            }
            Event::EditOld(i) => {
                let messages: Vec<_> = sim
                    .desired
                    .iter()
                    .filter_map(Item::as_message)
                    .map(|m| (m.id.clone(), m.role))
                    .collect();
                if !messages.is_empty() {
                    let (id, role) = messages[i % messages.len()].clone();
                    let edited = Message::new(id, role, vec!["edited".into()]);
                    sim.desired.replace(edited).unwrap();
                }
            }
            Event::RemoveLast => {
                if let Some(last) = sim.desired.last().map(|item| item.id().clone()) {
                    sim.desired.remove(&last).unwrap();
                }
            }
            _ => {}
        }
    }
    sim
}

/// Turn operations `L` shows answered: each run of model items answers the oldest waiting turn
/// (consecutive history user items without an operation wait as one turn).
fn answered_in_l(sim: &Sim) -> HashSet<resume_policy::OpId> {
    let calls = sim.tracker.tool_calls();
    let mut waiting: std::collections::VecDeque<Option<resume_policy::OpId>> = Default::default();
    let mut answered = HashSet::new();
    let mut previous: Option<&str> = None; // "model", "history" or "op"
    for item in sim.desired.iter() {
        if item.call_id().is_some_and(|call| calls.is_cancelled(call)) {
            continue;
        }
        let owner = sim
            .outbox
            .iter()
            .find(|op| op.kind.item_ids().contains(&item.id()));
        let kind = if item.role() == ctx_model::Role::Model {
            if previous != Some("model") {
                if let Some(Some(op)) = waiting.pop_front() {
                    answered.insert(op);
                }
            }
            "model"
        } else if let Some(op) = owner {
            if op.kind.starts_turn() && op.kind.item_ids().last() == Some(&item.id()) {
                waiting.push_back(Some(op.id));
            }
            "op"
        } else {
            if previous != Some("history") {
                waiting.push_back(None);
            }
            "history"
        };
        previous = Some(kind);
    }
    answered
}

fn check(sim: &Sim, trigger: Trigger, plan: &ResumePlan) -> Result<(), TestCaseError> {
    let ctx = sim.ctx(trigger);
    let caps = &sim.caps;
    let delivered: Vec<_> = plan.delivered_ops().collect();
    let delivered_set: HashSet<_> = delivered.iter().copied().collect();
    prop_assert_eq!(
        delivered.len(),
        delivered_set.len(),
        "an operation planned twice"
    );
    let superseded: HashSet<_> = plan.superseded.iter().copied().collect();
    let reported: HashSet<_> = plan.reported_ops().collect();
    let handle = match &plan.strategy {
        Strategy::Resume { handle } => {
            let record = ctx.handle.expect("resume without a handle");
            prop_assert_eq!(&record.token, handle);
            Some(record)
        }
        _ => None,
    };

    // Never silently dropped.
    for op in sim.outbox.live() {
        let covered = handle.is_some_and(|h| op.is_covered_by(h));
        prop_assert!(
            covered
                || delivered_set.contains(&op.id)
                || superseded.contains(&op.id)
                || reported.contains(&op.id),
            "operation {} ({}) is neither planned, covered nor reported: {:#?}",
            op.id,
            op.kind.name(),
            plan
        );
    }
    // historyConfig only on a fresh connection that sends a seed ending the history.
    if plan.history_config {
        prop_assert_eq!(&plan.strategy, &Strategy::Fresh);
        let seed = plan.seed.as_ref();
        prop_assert!(seed.is_some_and(|s| !s.items.is_empty() && s.turn_complete));
    }
    if let Some(h) = handle {
        // A resumed plan sends no seed and nothing the handle covers.
        prop_assert!(plan.seed.is_none());
        for id in &delivered {
            let op = sim.outbox.get(*id).unwrap();
            prop_assert!(!op.is_covered_by(h), "{} is covered by the handle", id);
        }
    }
    for step in &plan.steps {
        // No tool response for a call the session cannot know.
        if let (Channel::ToolResponse, Payload::ToolResponses(outputs)) =
            (&step.channel, &step.payload)
        {
            for output in outputs {
                let known = handle.is_some_and(|h| ctx.tool_calls.known_to(&output.call_id, h));
                prop_assert!(
                    known || caps.resumed_session_accepts_unknown_call_result,
                    "orphan toolResponse for {}",
                    output.call_id
                );
            }
        }
        // No clientContent mid-session where the family forbids it.
        if !caps.client_content_mid_session {
            prop_assert!(
                !matches!(step.channel, Channel::ClientContent { .. }),
                "clientContent planned on {:?}",
                caps.family
            );
        }
    }
    // No answer is asked for twice: the last operation of an asking message is a turn that `L`
    // does not show answered (answers pair with waiting turns in order).
    let answered = answered_in_l(sim);
    for step in &plan.steps {
        let asks = matches!(
            step.channel,
            Channel::RealtimeText
                | Channel::ClientContent {
                    turn_complete: true
                }
        );
        if let Some(id) = step.ops.last() {
            prop_assert!(
                !(asks && answered.contains(id)),
                "{} is asked again: {:#?}",
                id,
                plan
            );
        }
    }
    // A cancelled call is never answered.
    for id in &delivered {
        if let Some(call) = sim.outbox.get(*id).unwrap().kind.call_id() {
            prop_assert!(!ctx.tool_calls.is_cancelled(call));
        }
    }
    // Deterministic.
    prop_assert_eq!(plan, &DefaultPolicy::default().plan(&ctx));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn default_plans_keep_the_invariants(
        model in 0usize..4,
        events in prop::collection::vec(event(), 0..40),
        pick in any::<u8>(),
    ) {
        let sim = play(MODELS[model], &events);
        let trigger = trigger(pick);
        let plan = sim.plan(trigger);
        check(&sim, trigger, &plan)?;
    }

    #[test]
    fn executing_default_plans_never_resends_a_covered_operation(
        model in 0usize..4,
        events in prop::collection::vec(event(), 0..40),
    ) {
        // After any history, a settled session (answered, covered) plans nothing on goAway.
        let mut sim = play(MODELS[model], &events);
        if sim.tracker.connection().is_none() {
            let plan = sim.plan(dropped());
            sim.execute(&plan);
        }
        sim.user_turn("final-u", "last question");
        sim.model_turn("final-m", "last answer");
        sim.handle("final-h");
        let plan = sim.plan(go_away());
        let h = sim.tracker.handle().unwrap();
        for id in plan.delivered_ops() {
            prop_assert!(!sim.outbox.get(id).unwrap().is_covered_by(h));
        }
        // Resumes, unless edits of delivered items or the model's rules ask for a new seed.
        let reseeds = plan.notes.iter().any(|note| {
            matches!(note, PlanNote::EditsReseeded | PlanNote::ResumeInfeasible { .. })
        });
        prop_assert!(plan.is_resume() || reseeds, "{:#?}", plan);
        prop_assert!(sim.outbox.live().all(|op| !op.is_covered_by(h)));
    }
}

/// One more planned rotation (delivers whatever was deferred), then an answered turn and a
/// handle.
fn settle(sim: &mut Sim) -> bool {
    if sim.tracker.connection().is_some() {
        sim.drop_connection();
    }
    let plan = sim.plan(go_away());
    if plan.is_give_up() {
        return false;
    }
    sim.execute(&plan);
    sim.user_turn("settle-u", "anything else?");
    sim.model_turn("settle-m", "no");
    sim.handle("settle-h");
    true
}

/// The ids of `L` that must have reached the server: all but those reported, superseded, or
/// belonging to cancelled calls.
fn owed_ids(sim: &Sim) -> Vec<String> {
    let excused: HashSet<String> = sim
        .outbox
        .iter()
        .filter(|op| {
            matches!(
                op.state,
                resume_policy::DeliveryState::Superseded
                    | resume_policy::DeliveryState::Reported(_)
            )
        })
        .flat_map(|op| op.kind.item_ids())
        .map(|id| id.to_string())
        .collect();
    sim.desired
        .iter()
        .filter(|item| !excused.contains(item.id().as_str()))
        .filter(|item| {
            !item
                .call_id()
                .is_some_and(|call| sim.tracker.tool_calls().is_cancelled(call))
        })
        .map(|item| item.id().to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    /// Against an independent server model: nothing the application put in `L` is lost, and
    /// no tool response is ever an orphan.
    #[test]
    fn server_receives_every_item_and_no_orphan(
        model in 0usize..4,
        events in prop::collection::vec(event(), 0..40),
    ) {
        let mut sim = play(MODELS[model], &events);
        prop_assume!(settle(&mut sim));
        prop_assert!(sim.server.violations.is_empty(), "{:?}", sim.server.violations);
        let held: HashSet<&str> = sim.server.session.iter().map(String::as_str).collect();
        for id in owed_ids(&sim) {
            prop_assert!(held.contains(id.as_str()), "{} never reached the server: {:?}", id, sim.server.session);
        }
    }

    /// With exact coverage (transparent mode, Vertex), every item reaches the server exactly
    /// once.
    #[test]
    fn transparent_mode_delivers_exactly_once(
        events in prop::collection::vec(event(), 0..40),
    ) {
        let caps = resume_policy::ModelCapabilities::for_model(V25).unwrap();
        let mut sim = Sim::with_caps(caps, true);
        let first = sim.plan(Trigger::FirstConnect);
        sim.execute(&first);
        let mut sim = replay_on(sim, &events);
        prop_assume!(settle(&mut sim));
        prop_assert!(sim.server.violations.is_empty(), "{:?}", sim.server.violations);
        prop_assert!(sim.server.duplicates().is_empty(), "duplicates {:?} in {:?}", sim.server.duplicates(), sim.server.session);
        let held: HashSet<&str> = sim.server.session.iter().map(String::as_str).collect();
        for id in owed_ids(&sim) {
            prop_assert!(held.contains(id.as_str()), "{} never reached the server", id);
        }
    }
}
