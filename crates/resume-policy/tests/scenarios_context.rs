//! One pure test of `DefaultPolicy`'s plan per scenario of docs/scenarios.md whose decision is the
//! planner's, part 2: tool calls, context changes, modes, limits, restarts (S13-S31).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ctx_model::{Item, Message};
use resume_policy::{
    Channel, CloseClass, ConfigVersion, DefaultPolicy, DeliveryState, DivergenceReason,
    EditHandling, HandleRecord, Millis, MirrorVersion, OpKind, PlanNote, PlannedMessage, Route,
    Strategy, ToolCallStatus, Trigger,
};

#[test]
fn s13_tool_result_while_disconnected_plans_single_response() {
    // The handle knows the call (3.8, non-blocking: handles keep coming): one toolResponse.
    let mut sim = settled(M38);
    sim.user_turn("u2", "Book a table");
    sim.tool_call("c2", "call-2", "book");
    sim.handle("h2");
    sim.drop_connection();
    let o2 = sim.tool_result("o2", "call-2", "book");
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h2"));
    assert_eq!(channels(&plan), [Channel::ToolResponse]);
    assert_eq!(step_ops(&plan), [o2]);
}

#[test]
fn s13_tool_result_for_a_call_after_the_handle_is_never_an_orphan() {
    // 2.5, blocking call: the handle predates the call. The call and its result come back as
    // history and the model continues; no toolResponse, the tool is not run again.
    let mut sim = settled(M25);
    let u2 = sim.user_turn("u2", "Book a table");
    sim.tool_call("c2", "call-2", "book");
    sim.not_resumable();
    sim.drop_connection();
    let o2 = sim.tool_result("o2", "call-2", "book");
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert!(!channels(&plan).contains(&Channel::ToolResponse));
    assert_eq!(client_content_ids(&plan), ["u2", "c2", "o2"]);
    assert_eq!(
        channels(&plan),
        [Channel::ClientContent {
            turn_complete: true
        }]
    );
    assert_eq!(step_ops(&plan), [u2, o2]);

    // 3.1: fresh + seed with call and result, then a nudge so the model does not hang.
    let mut sim = settled(M31);
    sim.user_turn("u2", "Book a table");
    sim.tool_call("c2", "call-2", "book");
    sim.not_resumable();
    sim.drop_connection();
    let o2 = sim.tool_result("o2", "call-2", "book");
    let plan = sim.plan(dropped());
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert_eq!(seed_ids(&plan), ["u1", "m1", "u2", "c2", "o2"]);
    assert!(plan.seed.as_ref().unwrap().ops.contains(&o2));
    assert_eq!(channels(&plan), [Channel::RealtimeText]);
    assert!(matches!(
        plan.steps[0].message,
        PlannedMessage::RealtimeReplyRequest { .. }
    ));
}

#[test]
fn s15_cancelled_tool_call_result_is_never_sent() {
    for model in [M25, M31] {
        let mut sim = settled(model);
        sim.user_turn("u2", "Order pizza");
        sim.tool_call("c2", "call-2", "order");
        sim.cancel_call("call-2");
        sim.not_resumable();
        sim.drop_connection();
        let o2 = sim.tool_result("o2", "call-2", "order");
        for trigger in [dropped(), Trigger::RefusedResume { code: 1011 }] {
            let plan = sim.plan(trigger);
            assert_eq!(plan.superseded, [o2], "{model}");
            assert!(!plan.delivered_ops().any(|op| op == o2), "{model}");
            let sent: Vec<&Item> = plan
                .seed
                .iter()
                .flat_map(|seed| seed.items.iter())
                .chain(plan.steps.iter().flat_map(|s| match &s.message {
                    PlannedMessage::ClientContent { items, .. } => items.iter().collect::<Vec<_>>(),
                    _ => Vec::new(),
                }))
                .filter(|item| item.call_id() == Some("call-2"))
                .collect();
            // The call is restored (the server held it when it cancelled it, and `L` keeps
            // it); its answer never goes out, on any channel.
            assert!(
                sent.iter()
                    .all(|item| matches!(item, Item::FunctionCall(_))),
                "{model}: {sent:?}"
            );
            assert_eq!(sent.len(), 1, "{model}: {sent:?}");
            assert!(!channels(&plan).contains(&Channel::ToolResponse), "{model}");
        }
    }
}

#[test]
fn s16_lost_tool_call_on_a_model_that_needs_an_answer_is_answered_first() {
    let mut sim = settled(M38);
    sim.user_turn("u2", "Check the stock");
    sim.tool_call("c2", "call-2", "stock");
    sim.handle("h2");
    sim.tracker.set_tool_status("call-2", ToolCallStatus::Lost);
    sim.drop_connection();
    let u3 = sim.user_turn("u3", "Hello?");
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
    match &plan.steps[0].message {
        PlannedMessage::ToolResponse { responses: outputs } => {
            assert_eq!(outputs.len(), 1);
            assert_eq!(outputs[0].call_id, "call-2");
            assert!(outputs[0].is_error);
        }
        other => panic!("unexpected payload {other:?}"),
    }
    assert_eq!(step_ops(&plan), [u3]);
    let lost = &plan.undeliverable[0];
    assert_eq!(lost.why, DivergenceReason::ToolCallLost);
    assert_eq!(lost.calls, ["call-2"]);
}

#[test]
fn s16_lost_tool_call_in_a_fresh_seed_is_answered_right_after_the_call() {
    let mut sim = settled(M38);
    sim.user_turn("u2", "Check the stock");
    sim.tool_call("c2", "call-2", "stock");
    sim.tracker.set_tool_status("call-2", ToolCallStatus::Lost);
    sim.drop_connection();
    let plan = sim.plan(Trigger::RefusedResume { code: 1011 });
    let seed = plan.seed.as_ref().expect("a fresh seed");
    let at = seed
        .items
        .iter()
        .position(|item| matches!(item, Item::FunctionCall(c) if c.call_id == "call-2"))
        .expect("the call is seeded");
    match seed.items.get(at + 1) {
        Some(Item::FunctionOutput(output)) => {
            assert_eq!(output.call_id, "call-2");
            assert!(output.is_error);
        }
        other => panic!("no error answer after the call: {other:?}"),
    }
    assert!(!seed.turn_complete);
    let lost = plan
        .undeliverable
        .iter()
        .find(|d| d.why == DivergenceReason::ToolCallLost)
        .expect("the lost call is reported");
    assert_eq!(lost.calls, ["call-2"]);

    // A model that does not need an answer only reports it.
    let mut sim = settled(M25);
    sim.user_turn("u2", "Check the stock");
    sim.tool_call("c2", "call-2", "stock");
    sim.tracker.set_tool_status("call-2", ToolCallStatus::Lost);
    sim.drop_connection();
    let plan = sim.plan(Trigger::RefusedResume { code: 1011 });
    let seed = plan.seed.as_ref().expect("a fresh seed");
    assert!(
        !seed
            .items
            .iter()
            .any(|item| matches!(item, Item::FunctionOutput(_)))
    );
    assert!(
        plan.undeliverable
            .iter()
            .any(|d| d.why == DivergenceReason::ToolCallLost)
    );
}

/// The answer a fresh seed gave a lost call sits in `L` right after the call, among the items
/// of the append that carried the restored context; when the handle the next connection
/// resumes from holds none of that seed, the replay keeps the answer there, not after the
/// append's last item.
#[test]
fn s16_a_lost_calls_answer_inside_a_replayed_append_keeps_its_place() {
    let mut sim = Sim::new(M38);
    sim.connect_fresh();
    sim.handle("h1");
    let turn: Item = Message::user("u1", "Check the stock").into();
    let call: Item = ctx_model::FunctionCall::new("c1", "call-1", "stock", "{}".into()).into();
    let later: Item = Message::user("u2", "And the price?").into();
    for item in [&turn, &call, &later] {
        sim.desired.push(item.clone()).unwrap();
    }
    let (append, _) = sim.op(OpKind::Append {
        items: vec![turn, call, later],
        turn_complete: false,
    });
    // The answer the seed carried (the session puts it in `L` after the call): no operation.
    let answer = ctx_model::FunctionOutput::new("a1", "call-1", "stock", "lost".into());
    sim.desired
        .insert_after(Some(&ctx_model::ItemId::from("c1")), answer)
        .unwrap();
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert_eq!(step_ops(&plan), [append]);
    assert_eq!(client_content_ids(&plan), ["u1", "c1", "a1", "u2"]);
    sim.execute(&plan);
    assert_eq!(sim.server.session, ["u1", "c1", "a1", "u2"]);
}

#[test]
fn s17_online_append_on_2_5_is_sent_once_and_never_again() {
    let mut sim = settled(M25);
    let (a2, route) = sim.op(OpKind::Append {
        items: vec![Message::user("a2", "(context)").into()],
        turn_complete: false,
    });
    sim.desired.push(Message::user("a2", "(context)")).unwrap();
    match route {
        Some(Route::Send(step)) => {
            assert_eq!(
                step.channel(),
                Channel::ClientContent {
                    turn_complete: false
                }
            );
            assert_eq!(step.ops, [a2]);
        }
        other => panic!("unexpected route {other:?}"),
    }
    assert!(matches!(
        sim.outbox.get(a2).unwrap().state,
        DeliveryState::Sent { .. }
    ));
    sim.user_turn("u3", "Thanks");
    sim.model_turn("m3", "You're welcome");
    sim.handle("h3");
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h3"));
    assert!(plan.steps.is_empty());
}

#[test]
fn s18_online_append_on_3_1_is_never_client_content() {
    let mut sim = settled(M31);
    let item: Item = Message::user("a2", "(context)").into();
    sim.desired.push(item.clone()).unwrap();
    let (a2, route) = sim.op(OpKind::Append {
        items: vec![item],
        turn_complete: false,
    });
    assert_eq!(
        route,
        Some(Route::Defer {
            why: DivergenceReason::ClientContentForbidden
        })
    );
    // A typed user turn goes as realtime text.
    let (_, route) = sim.op(OpKind::Append {
        items: vec![Message::user("u3", "Hi").into()],
        turn_complete: true,
    });
    match route {
        Some(Route::Send(step)) => {
            assert_eq!(
                step.message,
                PlannedMessage::RealtimeText { text: "Hi".into() }
            );
        }
        other => panic!("unexpected route {other:?}"),
    }
    // The deferred append reaches the model through the next seed.
    let plan = sim.plan(go_away());
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert!(plan.seed.as_ref().unwrap().ops.contains(&a2));
    assert!(seed_ids(&plan).contains(&"a2".to_owned()));
}

#[test]
fn s19_offline_append_is_delivered_once_after_resume() {
    let mut sim = settled(M25);
    sim.drop_connection();
    let a2 = sim.silent_append("a2", "(offline note)");
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert_eq!(client_content_ids(&plan), ["a2"]);
    assert_eq!(step_ops(&plan), [a2]);
    assert!(plan.uncertain.is_empty());

    let mut sim = settled(M31);
    sim.drop_connection();
    let a2 = sim.silent_append("a2", "(offline note)");
    let plan = sim.plan(dropped());
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert_eq!(seed_ids(&plan), ["u1", "m1", "a2"]);
    assert_eq!(plan.seed.as_ref().unwrap().ops, [a2]);
}

#[test]
fn s20_edit_of_a_delivered_item_reseeds_or_is_reported() {
    let mut sim = settled(M25);
    sim.drop_connection();
    sim.desired
        .replace(Message::user("u1", "Hello (edited)"))
        .unwrap();
    let plan = sim.plan(dropped());
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert!(plan.notes.contains(&PlanNote::EditsReseeded));
    let seed = plan.seed.as_ref().unwrap();
    assert_eq!(
        seed.items[0],
        Item::from(Message::user("u1", "Hello (edited)"))
    );

    let policy = DefaultPolicy::new(Default::default(), EditHandling::Report);
    let plan = sim.plan_with(&policy, dropped());
    assert!(resumed_with(&plan, "h1"));
    assert_eq!(plan.undeliverable.len(), 1);
    assert_eq!(
        plan.undeliverable[0].why,
        DivergenceReason::EditOfDeliveredItem
    );
    assert_eq!(plan.undeliverable[0].items, [ctx_model::ItemId::new("u1")]);
    assert!(plan.steps.is_empty());
}

#[test]
fn s21_instruction_change_rides_in_setup_without_history_replay() {
    let mut sim = settled(M25);
    let (v2, route) = sim.op(OpKind::InstructionChange {
        version: ConfigVersion(2),
    });
    assert_eq!(
        route,
        Some(Route::Reconnect(Trigger::ConfigChange {
            instructions: true,
            tools: false
        }))
    );
    let (v3, _) = sim.op(OpKind::InstructionChange {
        version: ConfigVersion(3),
    });
    let plan = sim.plan(Trigger::ConfigChange {
        instructions: true,
        tools: false,
    });
    assert!(resumed_with(&plan, "h1"));
    assert!(plan.steps.is_empty());
    assert_eq!(plan.setup_ops, [v2, v3]);
    assert!(plan.seed.is_none());

    // 3.8 applies it in place.
    let mut sim = settled(M38);
    let (_, route) = sim.op(OpKind::InstructionChange {
        version: ConfigVersion(2),
    });
    assert!(matches!(route, Some(Route::Send(step)) if step.channel() == Channel::ContextUpdate));
}

#[test]
fn s22_tool_set_change_mid_call_keeps_the_handle_and_the_pending_response() {
    let mut sim = settled(M25);
    sim.user_turn("u2", "Find flights");
    sim.tool_call("c2", "call-2", "flights");
    sim.handle("h2");
    sim.op(OpKind::ToolSetChange {
        version: ConfigVersion(2),
    });
    sim.drop_connection();
    let o2 = sim.tool_result("o2", "call-2", "flights");
    let plan = sim.plan(Trigger::ConfigChange {
        instructions: false,
        tools: true,
    });
    assert!(resumed_with(&plan, "h2"));
    assert_eq!(plan.setup_ops.len(), 1);
    assert_eq!(channels(&plan), [Channel::ToolResponse]);
    assert_eq!(plan.steps[0].ops, [o2]);
}

#[test]
fn s23_transparent_mode_replays_after_the_exact_index() {
    let caps = resume_policy::ModelCapabilities::for_model(V25).unwrap();
    assert!(caps.transparent_resumption);
    let mut sim = Sim::with_caps(caps, true);
    sim.connect_fresh();
    sim.user_turn("u1", "Hello"); // #1
    let a2 = sim.silent_append("a2", "(note)"); // #2
    sim.handle_with_index("h1", Some(1));
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert!(plan.transparent && plan.replay_transparent_buffer);
    assert_eq!(step_ops(&plan), [a2]);
    assert!(
        plan.uncertain.is_empty(),
        "exact coverage: nothing is uncertain"
    );
}

#[test]
fn s24_transparent_requested_on_the_developer_api_warns_once() {
    let caps = resume_policy::ModelCapabilities::for_model(M25).unwrap();
    let mut sim = Sim::with_caps(caps, true);
    let first = sim.plan(Trigger::FirstConnect);
    assert!(!first.transparent);
    assert_eq!(first.notes, [PlanNote::TransparentUnavailable]);
    sim.execute(&first);
    sim.user_turn("u1", "Hi");
    sim.model_turn("m1", "Hello");
    sim.handle("h1");
    sim.drop_connection();
    let plan = sim.plan(dropped());
    assert!(resumed_with(&plan, "h1"));
    assert!(!plan.transparent && !plan.replay_transparent_buffer);
    assert!(plan.notes.is_empty());
}

#[test]
fn s26_generate_reply_pending_across_a_restart_is_issued_once() {
    for (model, channel) in [
        (
            M25,
            Channel::ClientContent {
                turn_complete: true,
            },
        ),
        (M31, Channel::RealtimeText),
    ] {
        let mut sim = settled(model);
        sim.drop_connection();
        let tools = sim
            .op(OpKind::ToolSetChange {
                version: ConfigVersion(2),
            })
            .0;
        let reply = sim.op(OpKind::GenerateReply { instructions: None }).0;
        let plan = sim.plan(Trigger::ConfigChange {
            instructions: false,
            tools: true,
        });
        assert!(resumed_with(&plan, "h1"), "{model}");
        assert_eq!(plan.setup_ops, [tools], "{model}");
        assert_eq!(channels(&plan), [channel], "{model}");
        assert_eq!(step_ops(&plan), [reply], "{model}");
    }
}

#[test]
fn s27_fresh_seed_triggers_no_reply_unless_asked() {
    let mut sim = settled(M25);
    sim.drop_connection();
    let plan = sim.plan(Trigger::RefusedResume { code: 1011 });
    assert_eq!(plan.strategy, Strategy::Fresh);
    assert!(!plan.seed.as_ref().unwrap().turn_complete);
    assert!(plan.steps.is_empty());

    // A question asked while disconnected is asked live after the seed: one answer.
    let u2 = sim.user_turn("u2", "Are you back?");
    let plan = sim.plan(Trigger::RefusedResume { code: 1011 });
    assert_eq!(seed_ids(&plan), ["u1", "m1"]);
    assert!(!plan.seed.as_ref().unwrap().turn_complete);
    assert_eq!(
        channels(&plan),
        [Channel::ClientContent {
            turn_complete: true
        }]
    );
    assert_eq!(step_ops(&plan), [u2]);
}

#[test]
fn s28_seed_respects_the_model_size_limit() {
    let mut caps = resume_policy::ModelCapabilities::for_model(M25).unwrap();
    caps.seed_limit.max_items = 4;
    let mut sim = Sim::with_caps(caps, false);
    sim.connect_fresh();
    for i in 0..5 {
        sim.user_turn(&format!("u{i}"), "question");
        sim.model_turn(&format!("m{i}"), "answer");
    }
    sim.handle("h1");
    sim.drop_connection();
    let plan = sim.plan(Trigger::RefusedResume { code: 1007 });
    assert_eq!(seed_ids(&plan), ["u3", "m3", "u4", "m4"]);
    let trimmed = &plan.undeliverable[0];
    assert_eq!(trimmed.why, DivergenceReason::SeedTrimmed);
    assert_eq!(trimmed.items.len(), 6);
}

#[test]
fn s29_rejected_payload_is_reported_and_never_replayed() {
    let mut sim = settled(M25);
    let a2 = sim.silent_append("a2", "fine");
    let bad = sim.user_turn("u3", "a payload the server rejects");
    sim.drop_connection();
    let close = Trigger::AbnormalClose {
        code: 1007,
        class: CloseClass::InvalidPayload,
    };
    let plan = sim.plan(close);
    assert!(resumed_with(&plan, "h1"));
    assert_eq!(step_ops(&plan), [a2]);
    assert_eq!(plan.undeliverable[0].ops, [bad]);
    assert_eq!(
        plan.undeliverable[0].why,
        DivergenceReason::RejectedByServer { code: 1007 }
    );
    assert!(!client_content_ids(&plan).contains(&"u3".to_owned()));
    // The next plans never carry it again, fresh or not.
    sim.execute(&plan);
    sim.drop_connection();
    for trigger in [dropped(), Trigger::RefusedResume { code: 1007 }] {
        let next = sim.plan(trigger);
        assert!(!next.delivered_ops().any(|op| op == bad));
        assert!(!seed_ids(&next).contains(&"u3".to_owned()));
        assert!(!client_content_ids(&next).contains(&"u3".to_owned()));
    }
}

#[test]
fn s31_restart_with_a_persisted_handle_resumes_or_reseeds_by_version() {
    let sim = settled(M25);
    let stored: HandleRecord = sim.tracker.handle().unwrap().clone();
    // A new process: the same context, an empty outbox, the stored handle.
    let mut next = Sim::new(M25);
    next.desired = sim.desired.clone();
    next.mirror = resume_policy::Mirror::restore(sim.desired.clone());
    next.tracker = resume_policy::CoverageTracker::restore(stored, false);
    next.now = 60_000;
    let same = next.plan(Trigger::ProcessRestart {
        stored: MirrorVersion(7),
        current: MirrorVersion(7),
    });
    assert!(resumed_with(&same, "h1"));
    assert!(same.seed.is_none() && same.steps.is_empty());

    let stale = next.plan(Trigger::ProcessRestart {
        stored: MirrorVersion(6),
        current: MirrorVersion(7),
    });
    assert_eq!(stale.strategy, Strategy::Fresh);
    assert_eq!(stale.notes, [PlanNote::MirrorVersionMismatch]);
    assert_eq!(seed_ids(&stale), ["u1", "m1"]);

    // Past the documented validity the handle is not tried.
    next.now = Millis(3 * 60 * 60 * 1000).0;
    let expired = next.plan(Trigger::ProcessRestart {
        stored: MirrorVersion(7),
        current: MirrorVersion(7),
    });
    assert_eq!(expired.strategy, Strategy::Fresh);
    assert_eq!(expired.notes, [PlanNote::HandleExpired]);
}

/// A context of 10,000 items: the resume replays only what the handle lacks, and the fresh seed
/// keeps within the default limit. (How long planning takes is a benchmark's question, not a
/// timed test's.)
#[test]
fn a_large_context_plans_its_replay_and_a_bounded_seed() {
    let mut sim = Sim::new(M25);
    sim.connect_fresh();
    for i in 0..5_000 {
        sim.user_turn(&format!("u{i}"), "question");
        sim.model_turn(&format!("m{i}"), "answer");
    }
    sim.handle("h1");
    sim.drop_connection();
    let note = sim.silent_append("late", "offline note");
    let resumed = sim.plan(dropped());
    let fresh = sim.plan(Trigger::RefusedResume { code: 1007 });
    assert_eq!(step_ops(&resumed), [note]);
    // The 2,000 most recent items, cut at the start of a user turn.
    let seed = &fresh.seed.as_ref().unwrap().items;
    assert_eq!(seed.len(), 1_999);
    assert_eq!(seed[0].id().as_str(), "u4001");
}
