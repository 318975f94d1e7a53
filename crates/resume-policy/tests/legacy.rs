//! `ReplayAlways` and `SkipReplay` produce their characteristic wrong plans, visible on the
//! independent server model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use resume_policy::{Channel, ReplayAlways, ResumePolicy, SkipReplay, Strategy};

fn settled(model: &str) -> Sim {
    let mut sim = Sim::new(model);
    let first = sim.plan(resume_policy::Trigger::FirstConnect);
    sim.execute(&first);
    sim.user_turn("u1", "Hello");
    sim.model_turn("m1", "Hi");
    sim.handle("h1");
    sim
}

#[test]
fn replay_always_resumes_and_replays_everything_duplicating_history() {
    let mut sim = settled(M25);
    sim.drop_connection();
    let plan = sim.plan_with(&ReplayAlways::default(), go_away());
    assert!(plan.is_resume(), "it resumes with the handle…");
    assert_eq!(
        seed_ids(&plan),
        ["u1", "m1"],
        "…and re-sends the whole context"
    );
    sim.execute(&plan);
    assert_eq!(sim.server.duplicates(), ["u1", "m1"]);
}

#[test]
fn replay_always_sets_history_config_on_a_resumed_connection_on_3_1() {
    let mut sim = settled(M31);
    sim.drop_connection();
    let plan = sim.plan_with(&ReplayAlways::default(), go_away());
    assert!(plan.is_resume());
    assert!(
        plan.history_config,
        "the flag docs/design.md section 5 forbids on a resumed connection"
    );
    assert!(plan.seed.is_some());
}

#[test]
fn replay_always_answers_calls_the_session_never_saw() {
    let mut sim = settled(M25);
    sim.user_turn("u2", "Book it");
    sim.tool_call("c2", "call-2", "book");
    sim.not_resumable();
    sim.drop_connection();
    sim.tool_result("o2", "call-2", "book");
    let plan = sim.plan_with(&ReplayAlways::default(), dropped());
    // The output is in `L`, so it is re-sent inside the seed; a late result outside `L`
    // would go as a toolResponse. Either way the server gets history twice.
    sim.execute(&plan);
    assert!(!sim.server.duplicates().is_empty());
}

#[test]
fn skip_replay_loses_the_message_a_lagging_handle_does_not_cover() {
    let mut sim = settled(M25);
    sim.user_turn("u2", "Are you there?");
    sim.handle("h2");
    // The server issued h2 before it processed u2 (S12).
    sim.server.snapshot_lagging("h2", 1);
    sim.drop_connection();
    let skip = sim.plan_with(&SkipReplay::default(), dropped());
    assert!(skip.is_resume());
    assert!(
        skip.steps.is_empty(),
        "u2 was 'sent' before, so it is never sent again"
    );
    let default = sim.plan(dropped());
    assert_eq!(
        client_content_ids(&default),
        ["u2"],
        "the default policy replays it"
    );

    let mut lost = sim.clone_for_test();
    lost.execute(&skip);
    assert!(!lost.server.session.contains(&"u2".to_owned()));
    sim.execute(&default);
    assert_eq!(sim.server.session, ["u1", "m1", "u2"]);
}

#[test]
fn skip_replay_sends_an_orphan_tool_response() {
    let mut sim = settled(M25);
    sim.user_turn("u2", "Book it");
    sim.tool_call("c2", "call-2", "book");
    sim.not_resumable();
    sim.drop_connection();
    sim.tool_result("o2", "call-2", "book");
    let plan = sim.plan_with(&SkipReplay::default(), dropped());
    assert!(plan.is_resume());
    assert_eq!(channels(&plan), [Channel::ToolResponse]);
    sim.execute(&plan);
    assert_eq!(sim.server.violations, ["orphan toolResponse for call-2"]);
    // …and the user turn before the call is lost for good.
    assert!(!sim.server.session.contains(&"u2".to_owned()));
}

#[test]
fn skip_replay_sends_client_content_mid_session_on_3_1() {
    let mut sim = settled(M31);
    sim.drop_connection();
    sim.silent_append("a2", "(offline note)");
    let plan = sim.plan_with(&SkipReplay::default(), dropped());
    assert!(plan.is_resume());
    assert_eq!(
        channels(&plan),
        [Channel::ClientContent {
            turn_complete: false
        }]
    );
}

#[test]
fn both_legacy_policies_seed_when_no_handle_exists() {
    let mut sim = Sim::new(M25);
    sim.history(vec![ctx_model::Message::user("h1", "hi").into()]);
    for policy in [
        &ReplayAlways::default() as &dyn ResumePolicy,
        &SkipReplay::default(),
    ] {
        let plan = sim.plan_with(policy, resume_policy::Trigger::FirstConnect);
        assert_eq!(plan.strategy, Strategy::Fresh);
        assert_eq!(seed_ids(&plan), ["h1"]);
    }
    let _ = &mut sim;
}
