//! The session executes exactly the plan it is given.
//!
//! A `MockResumePolicy` hands the session hand-built plans and routes; the fake server records
//! every frame per connection. Each test checks the frames that arrived (kind, content, order,
//! connection) against the plan: the setup (handle, `historyConfig`, the current instructions
//! and tools), then the seed, then each step on its channel; divergences as events and nothing
//! on the wire; backoff waited before the dial; a give-up plan ends the session. Routes of
//! operations queued while a connection is up are in `plan_execution/routes.rs`, the helpers
//! in `plan_execution/support.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
#[path = "plan_execution/routes.rs"]
mod routes;
#[path = "plan_execution/support.rs"]
mod support;

use std::time::Duration;

use agent_glue::{Error, ReconnectStrategy, SessionError, SessionEvent};
use common::{WAIT, barrier, until};
use ctx_model::{ChatContext, Item, Message};
use gemini_fake::{ConnectionEnd, FakeConfig, FakeServer, Family};
use resume_policy::{
    Divergence, DivergenceReason, GiveUpReason, OpId, PlannedMessage, PlannedSend, ResumeContext,
    ResumePlan, Route, Seed, Strategy, Trigger,
};
use serde_json::json;
use support::*;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_plan_with_seed_and_history_config_on_3_1() {
    let server = server(Family::Gemini31).await;
    let script = Script::new().plan(|_| {
        let mut plan = ResumePlan::new(Strategy::Fresh);
        plan.history_config = true;
        plan.seed = Some(Seed {
            items: vec![
                user("u1", "I live in Paris"),
                Item::from(Message::model("m1", "Noted.")),
            ],
            turn_complete: true,
            ops: Vec::new(),
        });
        plan
    });
    let (builder, log) = builder(&server, script);
    let (session, _events) = builder.connect().await.unwrap();
    quiesce(&server, &session).await;

    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    let conn = &conns[0];
    assert_eq!(kinds(conn), ["setup", "clientContent"]);
    let setup = setup_of(conn);
    assert_eq!(setup["model"], json!(server.config().setup_model()));
    assert_eq!(handle_and_history(&setup), (None, true));
    assert_eq!(
        instructions_and_tools(&setup),
        (Some("Be brief.".to_owned()), vec!["get_weather".to_owned()])
    );
    assert_eq!(
        client_content(&frame(conn, 1)),
        (
            turns(&[("user", "I live in Paris"), ("model", "Noted.")]),
            true
        )
    );
    // 3.1 accepted it as history: no answer, no close for a rule violation.
    let session_state = server.latest_session().unwrap();
    assert_eq!(session_state.context_texts(), ["I live in Paris", "Noted."]);
    assert_eq!(session_state.generations(), 0);
    assert!(matches!(
        conn.end,
        Some((ConnectionEnd::ClientClose { code: 1000, .. }, _))
    ));
    assert_eq!(triggers(&log), [Trigger::FirstConnect]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_plan_after_a_drop_goes_to_the_second_connection() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| {
            resume_with(
                ctx,
                vec![
                    PlannedSend::new(
                        Vec::new(),
                        PlannedMessage::client_content(
                            vec![user("note-1", "remember the code 42")],
                            false,
                        ),
                    ),
                    PlannedSend::new(
                        Vec::new(),
                        PlannedMessage::RealtimeText {
                            text: "what is the code".to_owned(),
                        },
                    ),
                ],
            )
        })
        .route(send_as_asked);
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    // A turn, its answer and the handle after it: the resume plan gets that handle.
    barrier(&session, &mut events, "hello").await;

    settle_handle(&server, &mut events, 2).await;
    server.faults().drop_connections();
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    assert!(matches!(
        seen.first(),
        Some(SessionEvent::Reconnecting { .. })
    ));
    let Some(SessionEvent::Reconnected(done)) = seen.last() else {
        unreachable!()
    };
    assert_eq!(done.strategy, ReconnectStrategy::Resumed);
    until(&mut events, "answer on the new connection", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    quiesce(&server, &session).await;

    let conns = server.connections();
    assert_eq!(conns.len(), 2);
    let (first, second) = (&conns[0], &conns[1]);
    assert_eq!(kinds(first), ["setup", "clientContent"]);
    assert_eq!(handle_and_history(&setup_of(first)), (None, false));
    assert_eq!(
        client_content(&frame(first, 1)),
        (turns(&[("user", "hello")]), true)
    );
    assert!(matches!(first.end, Some((ConnectionEnd::Dropped, _))));

    let asked = log.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert!(matches!(asked[1].trigger, Trigger::AbnormalClose { .. }));
    let token = asked[1].handle.clone().expect("a handle was offered");
    let issued = server.latest_session().unwrap();
    assert!(
        issued.handles_issued().iter().any(|h| h.handle == token),
        "the handle comes from the fake"
    );
    assert_eq!(kinds(second), ["setup", "clientContent", "realtimeInput"]);
    assert_eq!(
        handle_and_history(&setup_of(second)),
        (Some(token.clone()), false)
    );
    assert_eq!(second.resumed_from.as_deref(), Some(token.as_str()));
    assert_eq!(
        instructions_and_tools(&setup_of(second)),
        (Some("Be brief.".to_owned()), vec!["get_weather".to_owned()])
    );
    assert_eq!(
        client_content(&frame(second, 1)),
        (turns(&[("user", "remember the code 42")]), false)
    );
    assert_eq!(
        frame(second, 2)["realtimeInput"],
        json!({"text": "what is the code"})
    );
    let texts = server.latest_session().unwrap().context_texts();
    assert!(
        texts.ends_with(&[
            "remember the code 42".to_owned(),
            "what is the code".to_owned(),
            "echo: what is the code".to_owned(),
        ]),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_operations_are_events_and_never_reach_the_wire() {
    let server = server(Family::Gemini25).await;
    let script = Script::new().plan(|ctx| {
        let mut plan = ResumePlan::new(Strategy::Fresh);
        plan.undeliverable = vec![
            Divergence {
                ops: ctx.outbox.live().map(|op| op.id).collect(),
                items: vec!["old-1".into()],
                calls: Vec::new(),
                why: DivergenceReason::SeedTrimmed,
            },
            Divergence {
                ops: Vec::new(),
                items: Vec::new(),
                calls: vec!["call-9".to_owned()],
                why: DivergenceReason::UnknownToolCall,
            },
        ];
        plan
    });
    let (builder, log) = builder(&server, script);
    let initial = ChatContext::from_items([user("old-1", "an old remark")]).unwrap();
    let (session, mut events) = builder.initial_context(initial).connect().await.unwrap();
    quiesce(&server, &session).await;

    let mut seen = Vec::new();
    while let Some(event) = events.recv().await {
        seen.push(event);
    }
    assert_eq!(
        seen,
        [
            SessionEvent::Divergence {
                operations: vec![OpId(0)],
                items: vec!["old-1".into()],
                calls: Vec::new(),
                why: DivergenceReason::SeedTrimmed,
            },
            SessionEvent::Divergence {
                operations: Vec::new(),
                items: Vec::new(),
                calls: vec!["call-9".to_owned()],
                why: DivergenceReason::UnknownToolCall,
            },
            SessionEvent::Closed { error: None },
        ]
    );
    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(kinds(&conns[0]), ["setup"]);
    assert!(server.latest_session().unwrap().context().is_empty());
    assert_eq!(log.lock().unwrap()[0].live, [OpId(0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn give_up_plan_after_a_drop_ends_the_session() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| {
            let mut plan = ResumePlan::new(Strategy::GiveUp {
                reason: GiveUpReason::AttemptsExhausted { attempts: 3 },
            });
            plan.undeliverable = vec![Divergence {
                ops: ctx.outbox.live().map(|op| op.id).collect(),
                items: Vec::new(),
                calls: Vec::new(),
                why: DivergenceReason::GaveUp,
            }];
            plan
        });
    let (builder, log) = builder(&server, script);
    // Not seeded by the first plan: still live when the policy gives up.
    let initial = ChatContext::from_items([user("old-1", "an old remark")]).unwrap();
    let (session, mut events) = builder.initial_context(initial).connect().await.unwrap();
    server
        .wait_for(WAIT, "setup received", |view| {
            view.connections()
                .first()
                .is_some_and(|c| !c.frames.is_empty())
        })
        .await
        .unwrap();
    server.faults().drop_connections();

    let mut seen = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            seen.push(event);
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream ends; saw {seen:#?}");
    assert!(
        matches!(seen.first(), Some(SessionEvent::Reconnecting { .. })),
        "{seen:#?}"
    );
    assert!(
        seen.contains(&SessionEvent::Divergence {
            operations: vec![OpId(0)],
            items: Vec::new(),
            calls: Vec::new(),
            why: DivergenceReason::GaveUp,
        }),
        "the give-up plan's divergences are reported: {seen:#?}"
    );
    // The policy's reason, with the drop that led to it as the last failure.
    assert!(
        matches!(
            seen.last(),
            Some(SessionEvent::Closed {
                error: Some(SessionError::GaveUp {
                    reason: GiveUpReason::AttemptsExhausted { attempts: 3 },
                    last: Some(last),
                    ..
                }),
            }) if matches!(**last, SessionError::ConnectionLost { .. })
        ),
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, SessionEvent::Reconnected(_))),
        "{seen:#?}"
    );
    assert!(matches!(session.send_text("anyone?"), Err(Error::Closed)));
    assert_eq!(server.connections().len(), 1, "no dial after giving up");
    assert_eq!(triggers(&log).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn give_up_plan_on_the_first_connect_fails_connect() {
    let server = server(Family::Gemini25).await;
    let script = Script::new().plan(|_| {
        ResumePlan::new(Strategy::GiveUp {
            reason: GiveUpReason::Fatal { code: 1008 },
        })
    });
    let (builder, _log) = builder(&server, script);
    let result = builder.connect().await;
    assert!(
        matches!(
            result,
            Err(Error::Session(SessionError::GaveUp {
                reason: GiveUpReason::Fatal { code: 1008 },
                last: None,
                ..
            }))
        ),
        "{result:?}"
    );
    assert!(server.connections().is_empty(), "nothing was dialed");
}

/// On paused tokio time: the backoff elapses on virtual time, and the wait is measured on it
/// (the fake's record of the dial and the test's clock are both tokio's).
#[tokio::test(start_paused = true)]
async fn backoff_is_waited_before_the_dial() {
    const BACKOFF: Duration = Duration::from_millis(200);
    let server = server(Family::Gemini25).await;
    let seeded = |text: &'static str| {
        move |_: &ResumeContext<'_>| {
            let mut plan = ResumePlan::new(Strategy::Fresh);
            plan.backoff = BACKOFF;
            plan.seed = Some(Seed {
                items: vec![user("seed", text)],
                turn_complete: false,
                ops: Vec::new(),
            });
            plan
        }
    };
    // The session waits the first plan's backoff, then plans again (with what was queued
    // meanwhile) and executes that plan at once.
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(seeded("plan made before the wait"))
        .plan(seeded("plan made after the wait"));
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    server
        .wait_for(WAIT, "setup received", |view| {
            view.connections()
                .first()
                .is_some_and(|c| !c.frames.is_empty())
        })
        .await
        .unwrap();
    let dropped = Instant::now();
    server.faults().drop_connections();
    until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let second = wait_frames(&server, 1, 2).await;
    quiesce(&server, &session).await;

    let waited = second.opened_at.duration_since(dropped);
    assert!(waited >= BACKOFF, "dialed after {waited:?}");
    assert!(waited < Duration::from_secs(2), "dialed after {waited:?}");
    let conns = server.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(kinds(&conns[1]), ["setup", "clientContent"]);
    assert_eq!(
        client_content(&frame(&conns[1], 1)),
        (turns(&[("user", "plan made after the wait")]), false)
    );
    let triggers = triggers(&log);
    assert_eq!(triggers.len(), 3);
    assert!(
        triggers[1..]
            .iter()
            .all(|t| matches!(t, Trigger::AbnormalClose { .. })),
        "{triggers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_away_rotation_gets_the_second_plan() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| {
            resume_with(
                ctx,
                vec![PlannedSend::new(
                    Vec::new(),
                    PlannedMessage::client_content(vec![user("n1", "after rotation")], false),
                )],
            )
        })
        .route(send_as_asked);
    let (builder, log) = builder(&server, script);
    let builder = builder.go_away_margin(Duration::from_millis(50));
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    barrier(&session, &mut events, "hello").await;
    settle_handle(&server, &mut events, 2).await;
    server.faults().go_away(Duration::from_secs(1));
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    assert!(seen.iter().any(|e| matches!(
        e,
        SessionEvent::Reconnecting {
            reason: agent_glue::ReconnectReason::GoAway { .. }
        }
    )));
    let second = wait_frames(&server, 1, 2).await;
    quiesce(&server, &session).await;

    let asked = log.lock().unwrap().clone();
    assert_eq!(
        asked[1].trigger,
        Trigger::GoAway {
            time_left: Duration::from_secs(1)
        }
    );
    let conns = server.connections();
    assert_eq!(conns.len(), 2);
    let first = &conns[0];
    assert_eq!(kinds(first), ["setup", "clientContent"]);
    let Some((ConnectionEnd::ClientClose { .. }, closed_at)) = &first.end else {
        panic!("the client closes the old socket: {:?}", first.end)
    };
    assert!(*closed_at <= second.opened_at, "never two sockets");
    assert_eq!(kinds(&conns[1]), ["setup", "clientContent"]);
    let token = asked[1].handle.clone().expect("a handle was offered");
    assert_eq!(
        handle_and_history(&setup_of(&conns[1])),
        (Some(token.clone()), false)
    );
    assert_eq!(conns[1].resumed_from.as_deref(), Some(token.as_str()));
    assert_eq!(
        client_content(&frame(&conns[1], 1)),
        (turns(&[("user", "after rotation")]), false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_flag_of_the_plan_goes_into_the_setup() {
    let config = FakeConfig::new()
        .with_family(Family::Gemini25)
        .with_transparent_on_developer_api(true);
    let server = FakeServer::start(config).await.unwrap();
    let script = Script::new().plan(|_| {
        let mut plan = ResumePlan::new(Strategy::Fresh);
        plan.transparent = true;
        plan
    });
    let (builder, _log) = builder(&server, script);
    let (session, _events) = builder.connect().await.unwrap();
    quiesce(&server, &session).await;

    let conns = server.connections();
    assert_eq!(kinds(&conns[0]), ["setup"]);
    assert_eq!(
        setup_of(&conns[0])["sessionResumption"],
        json!({"transparent": true})
    );
}

/// On paused tokio time: the second plan's 300 ms backoff elapses on virtual time.
#[tokio::test(start_paused = true)]
async fn operations_a_plan_delivers_are_sent_once_and_then_covered() {
    let server = server(Family::Gemini25).await;
    // No route expectation: the mock panics if the session routes while disconnected.
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|_| {
            let mut plan = ResumePlan::new(Strategy::Fresh);
            plan.backoff = Duration::from_millis(300);
            plan
        })
        .plan(|ctx| {
            let queued = ctx.outbox.get(OpId(0)).unwrap();
            let Route::Send(step) = send_as_asked(queued) else {
                unreachable!()
            };
            let mut plan = resume_with(ctx, vec![step]);
            plan.uncertain = vec![OpId(0)];
            plan
        })
        .plan(|_| {
            ResumePlan::new(Strategy::GiveUp {
                reason: GiveUpReason::AttemptsExhausted { attempts: 1 },
            })
        });
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    server.faults().drop_connections();
    until(&mut events, "reconnecting", |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await;
    session.send_text("said while down").unwrap();
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let Some(SessionEvent::Reconnected(done)) = seen.last() else {
        unreachable!()
    };
    assert_eq!(done.strategy, ReconnectStrategy::Resumed);
    assert_eq!(done.replayed, [OpId(0)]);
    assert_eq!(done.uncertain, [OpId(0)]);
    assert!(done.lost.is_empty());
    until(&mut events, "answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    // Handles: after the first setup, after the resumed setup, after the answer.
    settle_handle(&server, &mut events, 3).await;
    server.faults().drop_connections();
    until(&mut events, "closed", |e| {
        matches!(e, SessionEvent::Closed { .. })
    })
    .await;

    let asked = log.lock().unwrap().clone();
    assert_eq!(asked.len(), 4);
    assert_eq!(asked[2].live, [OpId(0)], "queued while down");
    assert!(
        asked[3].live.is_empty(),
        "delivered and covered: {:?}",
        asked[3].live
    );
    let conns = server.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(kinds(&conns[0]), ["setup"]);
    assert_eq!(kinds(&conns[1]), ["setup", "clientContent"]);
    assert_eq!(
        client_content(&frame(&conns[1], 1)),
        (turns(&[("user", "said while down")]), true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_resume_asks_for_a_new_plan_without_the_handle() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| resume_with(ctx, Vec::new()))
        .plan(|_| {
            let mut plan = ResumePlan::new(Strategy::Fresh);
            plan.seed = Some(Seed {
                items: vec![user("u1", "seeded after the refusal")],
                turn_complete: false,
                ops: Vec::new(),
            });
            plan
        });
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    server
        .faults()
        .refuse_next_resume(1007, "Request contains an invalid argument.");
    server.faults().drop_connections();
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let Some(SessionEvent::Reconnected(done)) = seen.last() else {
        unreachable!()
    };
    assert_eq!(done.strategy, ReconnectStrategy::Fresh);
    assert_eq!(done.attempts, 2);
    wait_frames(&server, 2, 2).await;
    quiesce(&server, &session).await;

    let asked = log.lock().unwrap().clone();
    assert_eq!(asked.len(), 3);
    let token = asked[1].handle.clone().expect("a handle was offered");
    assert_eq!(asked[2].trigger, Trigger::RefusedResume { code: 1007 });
    assert_eq!(asked[2].handle, None, "the refused handle is dead");
    let conns = server.connections();
    assert_eq!(conns.len(), 3);
    assert_eq!(kinds(&conns[1]), ["setup"]);
    assert_eq!(
        handle_and_history(&setup_of(&conns[1])),
        (Some(token), false)
    );
    assert_eq!(conns[1].resumed_from, None);
    assert_eq!(conns[1].closed_with().map(|(code, _)| code), Some(1007));
    assert_eq!(kinds(&conns[2]), ["setup", "clientContent"]);
    assert_eq!(handle_and_history(&setup_of(&conns[2])), (None, false));
    assert_eq!(
        client_content(&frame(&conns[2], 1)),
        (turns(&[("user", "seeded after the refusal")]), false)
    );
}
