//! One pure test of `DefaultPolicy`'s plan per scenario of docs/scenarios.md whose decision is the
//! planner's, part 1: rotation, drops, stale and refused handles (S01-S12). Each builds the
//! ledger the way the session layer would (tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use ctx_model::Message;
use resume_policy::{
    Channel, DefaultPolicy, DivergenceReason, PlanNote, ResumePolicy, Strategy, Trigger,
};

#[test]
fn s01_go_away_while_idle_resumes_without_sending_anything() {
    let sim = settled(M25);
    let plan = sim.plan(go_away());
    assert!(resumed_with(&plan, "h1"));
    assert!(plan.steps.is_empty());
    assert_eq!(plan.seed, None);
    assert!(!plan.history_config);
    assert_eq!(plan.backoff, Duration::ZERO);
    assert!(plan.uncertain.is_empty() && plan.undeliverable.is_empty());
}

#[test]
fn s02_forced_rotation_during_a_model_turn_keeps_the_user_turn_once() {
    let mut sim = settled(M25);
    let u2 = sim.user_turn("u2", "Tell me a story");
    sim.not_resumable();
    sim.model_says("m2", "Once upon a"); // cut off by the forced rotation
    let plan = sim.plan(go_away());
    assert!(resumed_with(&plan, "h1"));
    assert!(matches!(
        plan.notes[..],
        [PlanNote::ResumedFromStale { .. }]
    ));
    // The turn and its (interrupted) answer come back as history, in one message, without
    // asking the model to answer again.
    assert_eq!(client_content_ids(&plan), ["u2", "m2"]);
    assert_eq!(
        channels(&plan),
        [Channel::ClientContent {
            turn_complete: false
        }]
    );
    assert_eq!(step_ops(&plan), [u2]);
    assert_eq!(plan.uncertain, [u2]);

    // On 3.1 the same cannot be restored mid-session: fresh session, one seed.
    let mut sim = settled(M31);
    sim.user_turn("u2", "Tell me a story");
    sim.not_resumable();
    sim.model_says("m2", "Once upon a");
    let plan = sim.plan(go_away());
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert_eq!(seed_ids(&plan), ["u1", "m1", "u2", "m2"]);
    assert!(plan.history_config && plan.seed.as_ref().unwrap().turn_complete);
    assert!(plan.steps.is_empty());
}

#[test]
fn s04_abnormal_close_while_idle_resumes_with_backoff() {
    let sim = settled(M25);
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert!(plan.steps.is_empty() && plan.seed.is_none());
    assert!(plan.backoff >= Duration::from_millis(125));
    assert!(plan.backoff <= Duration::from_millis(250));
}

#[test]
fn s05_drop_before_any_handle_seeds_everything_once_without_a_reply() {
    for (model, flag) in [(M25, false), (M31, true), (M38, false)] {
        let mut sim = Sim::new(model);
        sim.history(vec![
            Message::user("h1", "My name is Ada").into(),
            Message::model("h2", "Nice to meet you, Ada").into(),
        ]);
        let first = sim.plan(Trigger::FirstConnect);
        assert_eq!(first.strategy, Strategy::Fresh);
        assert_eq!(seed_ids(&first), ["h1", "h2"]);
        assert_eq!(first.history_config, flag, "{model}");
        sim.execute(&first);
        let u = sim.user_turn("u1", "What is my name?");
        sim.model_turn("m1", "Ada");
        sim.drop_connection();

        let plan = sim.plan(dropped());
        assert_eq!(plan.strategy, Strategy::Fresh, "{model}");
        let seed = plan.seed.as_ref().unwrap();
        assert_eq!(seed_ids(&plan), ["h1", "h2", "u1", "m1"], "{model}");
        assert_eq!(seed.ops, [u], "{model}");
        assert_eq!(plan.history_config, flag, "{model}");
        // Ends the history phase where the flag is used; asks for nothing otherwise.
        assert_eq!(seed.turn_complete, flag, "{model}");
        assert!(plan.steps.is_empty(), "{model}");
    }
}

#[test]
fn s06_failed_redials_back_off_and_keep_the_plan() {
    let mut sim = settled(M25);
    sim.drop_connection();
    sim.user_turn("u2", "Still there?");
    let policy = DefaultPolicy::default();
    let plans: Vec<_> = (0..3)
        .map(|attempt| policy.plan(&sim.ctx(dropped()).with_attempt(attempt)))
        .collect();
    assert!(plans[0].backoff < plans[1].backoff && plans[1].backoff < plans[2].backoff);
    for plan in &plans {
        assert!(resumed_with(plan, "h1"));
        assert_eq!(plan.steps, plans[0].steps);
        assert_eq!(client_content_ids(plan), ["u2"]);
    }
    // Bounded: the last attempt gives up, reporting what is still owed.
    let last = policy.plan(&sim.ctx(dropped()).with_attempt(policy.backoff.max_attempts));
    assert!(last.is_give_up());
    assert_eq!(last.undeliverable[0].why, DivergenceReason::GaveUp);
    assert_eq!(last.undeliverable[0].ops.len(), 1);
}

#[test]
fn s07_flapping_delivers_every_operation_once_in_total() {
    let mut sim = settled(M25);
    sim.drop_connection();
    let a2 = sim.silent_append("a2", "(the user opened the map)");
    let u3 = sim.user_turn("u3", "Where am I?");
    // Drop during the handshake: nothing sent; the next attempt plans the same.
    let plan = sim.plan(dropped());
    assert_eq!(step_ops(&plan), [a2, u3]);
    let again = DefaultPolicy::default().plan(&sim.ctx(dropped()).with_attempt(1));
    assert_eq!(again.steps, plan.steps);
    // Drop during the replay: sent on connection 2, never covered: replayed, as uncertain.
    sim.execute(&again);
    sim.drop_connection();
    let third = sim.plan(dropped());
    assert!(resumed_with(&third, "h1"));
    assert_eq!(step_ops(&third), [a2, u3]);
    assert_eq!(third.uncertain, [a2, u3]);
    // This time it works: the answer and a handle cover both, nothing is owed any more.
    sim.execute(&third);
    sim.model_turn("m3", "In Paris");
    sim.handle("h3");
    assert!(sim.outbox.live().next().is_none());
    let after = sim.plan(go_away());
    assert!(resumed_with(&after, "h3") && after.steps.is_empty());
    assert_eq!(sim.mirror.held(), &sim.desired);
}

#[test]
fn s08_handle_mid_replay_then_drop_replays_only_the_uncovered_part() {
    // 3.8: a tool result and a user turn, both made offline, replay as two messages.
    let mut sim = settled(M38);
    sim.user_turn("u2", "Book a table");
    sim.tool_call("c2", "call-2", "book");
    sim.handle("h2"); // knows the call
    sim.drop_connection();
    let o2 = sim.tool_result("o2", "call-2", "book");
    let u3 = sim.user_turn("u3", "And a taxi");
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h2"));
    assert_eq!(
        channels(&plan),
        [
            Channel::ToolResponse,
            Channel::ClientContent {
                turn_complete: true
            }
        ]
    );
    assert_eq!(step_ops(&plan), [o2, u3]);
    sim.execute(&plan);
    sim.model_turn_before("m3", "Booked.", "u3"); // the server answered the tool response…
    sim.handle("h3"); // …so this handle covers it, not the turn sent after it
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h3"));
    assert_eq!(step_ops(&plan), [u3]);
    assert_eq!(plan.uncertain, [u3]);
    assert_eq!(
        channels(&plan),
        [Channel::ClientContent {
            turn_complete: true
        }]
    );
}

#[test]
fn s10_stale_handle_then_drop_replays_the_uncovered_suffix_or_starts_fresh() {
    let mut sim = settled(M25);
    let u2 = sim.user_turn("u2", "Weather in Rome?");
    sim.not_resumable();
    sim.model_says("m2", "Let me check");
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert!(matches!(
        plan.notes[..],
        [PlanNote::ResumedFromStale { .. }]
    ));
    assert_eq!(client_content_ids(&plan), ["u2", "m2"]);
    assert_eq!(plan.uncertain, [u2]);
    assert!(plan.state_restored());

    let mut sim = settled(M31);
    sim.user_turn("u2", "Weather in Rome?");
    sim.not_resumable();
    sim.model_says("m2", "Let me check");
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert!(plan.notes.contains(&PlanNote::ResumeInfeasible {
        why: DivergenceReason::ClientContentForbidden
    }));
    assert_eq!(seed_ids(&plan), ["u1", "m1", "u2", "m2"]);
}

#[test]
fn s11_refused_resume_starts_fresh_with_one_full_seed() {
    let mut sim = settled(M31);
    sim.drop_connection();
    let plan = sim.plan(Trigger::RefusedResume { code: 1007 });
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert_eq!(plan.notes, [PlanNote::HandleRefused]);
    assert_eq!(seed_ids(&plan), ["u1", "m1"]);
    assert!(plan.history_config && plan.seed.as_ref().unwrap().turn_complete);
    assert!(plan.steps.is_empty());
}

#[test]
fn s12_handle_lag_does_not_count_the_sent_message_as_covered() {
    let mut sim = settled(M25);
    let u2 = sim.user_turn("u2", "Are you there?");
    sim.handle("h2"); // issued before the server processed u2
    assert!(sim.outbox.get(u2).unwrap().state.is_live());
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h2"));
    assert_eq!(client_content_ids(&plan), ["u2"]);
    assert_eq!(plan.uncertain, [u2]);
}
