//! The session executes exactly the plan it is given.
//!
//! A `MockResumePolicy` hands the session hand-built plans and routes; the fake server records
//! every frame per connection. Each test checks the frames that arrived (kind, content, order,
//! connection) against the plan: the setup (handle, `historyConfig`, the current instructions
//! and tools), then the seed, then each step on its channel; divergences as events and nothing
//! on the wire; backoff waited before the dial; a give-up plan ends the session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_glue::{
    Error, LiveSession, LiveSessionBuilder, ReconnectStrategy, SessionEvent, SessionEvents,
};
use common::{WAIT, endpoint, until, weather_tool};
use ctx_model::{ChatContext, Item, Message};
use gemini_fake::{ConnectionEnd, ConnectionRecord, FakeConfig, FakeServer, Family};
use gemini_transport::wire::{FunctionDeclaration, Modality};
use mockall::Sequence;
use resume_policy::{
    Channel, ConfigVersion, Divergence, DivergenceReason, GiveUpReason, MockResumePolicy, OpId,
    OpKind, Operation, Payload, PlannedSend, ResumeContext, ResumePlan, Route, Seed, Strategy,
    Trigger,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// What the session asked the policy for a plan with.
#[derive(Debug, Clone, PartialEq)]
struct Asked {
    trigger: Trigger,
    /// The handle token offered in the context.
    handle: Option<String>,
    /// The live operations of the outbox.
    live: Vec<OpId>,
}

/// A mock policy that hands out plans in order and logs what it was asked.
struct Script {
    mock: MockResumePolicy,
    seq: Sequence,
    log: Arc<Mutex<Vec<Asked>>>,
}

impl Script {
    fn new() -> Self {
        Self {
            mock: MockResumePolicy::new(),
            seq: Sequence::new(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The next plan the policy gives.
    fn plan(mut self, make: impl Fn(&ResumeContext<'_>) -> ResumePlan + Send + 'static) -> Self {
        let log = Arc::clone(&self.log);
        self.mock
            .expect_plan()
            .times(1)
            .in_sequence(&mut self.seq)
            .returning(move |ctx| {
                log.lock().unwrap().push(Asked {
                    trigger: ctx.trigger,
                    handle: ctx.handle.map(|h| h.token.expose().to_owned()),
                    live: ctx.outbox.live().map(|op| op.id).collect(),
                });
                make(ctx)
            });
        self
    }

    /// How every operation queued while a connection is up is routed.
    fn route(mut self, decide: impl Fn(&Operation) -> Route + Send + 'static) -> Self {
        self.mock.expect_route().returning(move |_, op| decide(op));
        self
    }
}

/// A fake server for `family`.
async fn server(family: Family) -> FakeServer {
    FakeServer::start(FakeConfig::new().with_family(family))
        .await
        .expect("fake server starts")
}

/// A TEXT session with instructions and the weather tool, driven by `script`.
fn builder(server: &FakeServer, script: Script) -> (LiveSessionBuilder, Arc<Mutex<Vec<Asked>>>) {
    let builder = LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .instructions("Be brief.")
        .tools(vec![weather_tool()])
        .policy(Box::new(script.mock));
    (builder, script.log)
}

/// A user message item.
fn user(id: &str, text: &str) -> Item {
    Item::from(Message::user(id, text))
}

/// A route that sends appends as `clientContent` (with their `turnComplete`) and tool results
/// as `toolResponse`.
fn send_as_asked(op: &Operation) -> Route {
    match &op.kind {
        OpKind::Append {
            items,
            turn_complete,
        } => Route::Send(PlannedSend {
            ops: vec![op.id],
            channel: Channel::ClientContent {
                turn_complete: *turn_complete,
            },
            payload: Payload::Items(items.clone()),
        }),
        OpKind::ToolResponse { output } => Route::Send(PlannedSend {
            ops: vec![op.id],
            channel: Channel::ToolResponse,
            payload: Payload::ToolResponses(vec![output.clone()]),
        }),
        other => panic!("unexpected operation {other:?}"),
    }
}

/// The text of the user turn an `Append` operation carries.
fn append_text(op: &Operation) -> String {
    match &op.kind {
        OpKind::Append { items, .. } => items
            .iter()
            .filter_map(|i| i.as_message())
            .map(|m| m.text())
            .collect(),
        _ => String::new(),
    }
}

/// A plan that resumes with the offered handle (fresh without one) and sends `steps`.
fn resume_with(ctx: &ResumeContext<'_>, steps: Vec<PlannedSend>) -> ResumePlan {
    let strategy = match ctx.handle {
        Some(record) => Strategy::Resume {
            handle: record.token.clone(),
        },
        None => Strategy::Fresh,
    };
    let mut plan = ResumePlan::new(strategy);
    plan.steps = steps;
    plan
}

/// Closes the session and waits until the fake saw every connection end, so that every frame
/// the session sent has been recorded.
async fn quiesce(server: &FakeServer, session: &LiveSession) {
    session.close().await.unwrap();
    server
        .wait_for(WAIT, "every connection ended", |view| {
            view.connections().iter().all(|c| !c.is_open())
        })
        .await
        .unwrap();
}

/// Waits until the fake has issued `issued` handles in its latest session, then until the
/// session has read every frame sent before a marker frame (a bare `usageMetadata`): the
/// handle has then reached the session, with nothing sent after it.
async fn settle_handle(server: &FakeServer, events: &mut SessionEvents, issued: usize) {
    server
        .wait_for(WAIT, &format!("{issued} handles issued"), |view| {
            view.latest_session()
                .is_some_and(|s| s.handles_issued().len() >= issued)
        })
        .await
        .unwrap();
    server.faults().send_raw(
        br#"{"usageMetadata":{"totalTokenCount":424242}}"#.to_vec(),
        false,
    );
    until(
        events,
        "marker frame",
        |e| matches!(e, SessionEvent::Usage(u) if u.total_tokens == Some(424_242)),
    )
    .await;
}

/// Waits until connection number `n` (0-based) has received `frames` frames.
async fn wait_frames(server: &FakeServer, n: usize, frames: usize) -> ConnectionRecord {
    server
        .wait_for(
            WAIT,
            &format!("{frames} frames on connection {n}"),
            |view| {
                view.connections()
                    .get(n)
                    .is_some_and(|c| c.frames.len() >= frames)
            },
        )
        .await
        .unwrap();
    server.connections()[n].clone()
}

/// The kinds of the frames of `conn`, in order.
fn kinds(conn: &ConnectionRecord) -> Vec<&'static str> {
    conn.frames.iter().map(|f| f.kind).collect()
}

/// The `setup` object of `conn`'s first frame.
fn setup_of(conn: &ConnectionRecord) -> Value {
    conn.frames[0].json()["setup"].clone()
}

/// Frame `i` of `conn` as JSON.
fn frame(conn: &ConnectionRecord, i: usize) -> Value {
    conn.frames[i].json()
}

/// A `clientContent` frame as `(role, text)` turns and its `turnComplete` (absent = false).
fn client_content(frame: &Value) -> (Vec<(String, String)>, bool) {
    let content = &frame["clientContent"];
    let turns = content["turns"]
        .as_array()
        .map(|turns| {
            turns
                .iter()
                .map(|t| {
                    let text: String = t["parts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["text"].as_str())
                        .collect();
                    (t["role"].as_str().unwrap_or("").to_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    (turns, content["turnComplete"].as_bool().unwrap_or(false))
}

fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(r, t)| ((*r).to_owned(), (*t).to_owned()))
        .collect()
}

/// The setup's handle (`None` without one) and whether it carries `historyConfig`.
fn handle_and_history(setup: &Value) -> (Option<String>, bool) {
    assert!(
        setup["sessionResumption"].is_object(),
        "resumption is always requested: {setup}"
    );
    let handle = setup["sessionResumption"]["handle"]
        .as_str()
        .map(str::to_owned);
    let history = setup.get("historyConfig").is_some();
    if history {
        assert_eq!(
            setup["historyConfig"]["initialHistoryInClientContent"],
            json!(true)
        );
    }
    (handle, history)
}

/// The system instruction text and declared function names of a setup (or contextUpdate).
fn instructions_and_tools(config: &Value) -> (Option<String>, Vec<String>) {
    let text = config["systemInstruction"]["parts"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect());
    let tools = config["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["functionDeclarations"].as_array().into_iter().flatten())
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    (text, tools)
}

fn triggers(log: &Arc<Mutex<Vec<Asked>>>) -> Vec<Trigger> {
    log.lock().unwrap().iter().map(|a| a.trigger).collect()
}

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
                    PlannedSend {
                        ops: Vec::new(),
                        channel: Channel::ClientContent {
                            turn_complete: false,
                        },
                        payload: Payload::Items(vec![user("note-1", "remember the code 42")]),
                    },
                    PlannedSend {
                        ops: Vec::new(),
                        channel: Channel::RealtimeText,
                        payload: Payload::Text("what is the code".to_owned()),
                    },
                ],
            )
        })
        .route(send_as_asked);
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    // A turn, its answer and the handle after it: the resume plan gets that handle.
    session.send_text("hello").unwrap();
    until(&mut events, "first answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;

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
                why: DivergenceReason::SeedTrimmed,
            },
            SessionEvent::Divergence {
                operations: Vec::new(),
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
            why: DivergenceReason::GaveUp,
        }),
        "the give-up plan's divergences are reported: {seen:#?}"
    );
    assert!(
        matches!(seen.last(), Some(SessionEvent::Closed { error: Some(_) })),
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
    assert!(matches!(result, Err(Error::GaveUp(_))), "{result:?}");
    assert!(server.connections().is_empty(), "nothing was dialed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
async fn routes_send_defer_report_and_supersede() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| {
            // The deferred operation is still queued: send it now.
            let deferred = ctx.outbox.get(OpId(0)).unwrap();
            let Route::Send(step) = send_as_asked(deferred) else {
                unreachable!()
            };
            resume_with(ctx, vec![step])
        })
        .route(|op| match append_text(op).as_str() {
            "defer me" => Route::Defer {
                why: DivergenceReason::ClientContentForbidden,
            },
            "report me" => Route::Report(DivergenceReason::EditOfDeliveredItem),
            "supersede me" => Route::Supersede,
            _ => send_as_asked(op),
        });
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    for text in ["defer me", "report me", "supersede me", "send me"] {
        session.send_text(text).unwrap();
    }
    let seen = until(&mut events, "answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    let divergences: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, SessionEvent::Divergence { .. }))
        .cloned()
        .collect();
    assert_eq!(
        divergences,
        [
            SessionEvent::Divergence {
                operations: vec![OpId(0)],
                why: DivergenceReason::ClientContentForbidden,
            },
            SessionEvent::Divergence {
                operations: vec![OpId(1)],
                why: DivergenceReason::EditOfDeliveredItem,
            },
        ]
    );
    let first = wait_frames(&server, 0, 2).await;
    assert_eq!(kinds(&first), ["setup", "clientContent"]);
    assert_eq!(
        client_content(&frame(&first, 1)),
        (turns(&[("user", "send me")]), true)
    );

    settle_handle(&server, &mut events, 2).await;
    server.faults().drop_connections();
    until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    until(&mut events, "answer to the deferred turn", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    quiesce(&server, &session).await;

    let asked = log.lock().unwrap().clone();
    assert!(asked[1].live.contains(&OpId(0)), "deferred stays queued");
    assert!(!asked[1].live.contains(&OpId(1)), "reported is done");
    assert!(!asked[1].live.contains(&OpId(2)), "superseded is done");
    let conns = server.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(kinds(&conns[0]), ["setup", "clientContent"]);
    assert_eq!(kinds(&conns[1]), ["setup", "clientContent"]);
    assert_eq!(handle_and_history(&setup_of(&conns[1])).0, asked[1].handle);
    assert!(asked[1].handle.is_some());
    assert_eq!(
        client_content(&frame(&conns[1], 1)),
        (turns(&[("user", "defer me")]), true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_result_routed_as_tool_response() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .route(send_as_asked);
    let (builder, _log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    session.send_text("what does get_weather say").unwrap();
    let seen = until(&mut events, "tool call", |e| {
        matches!(e, SessionEvent::ToolCall { .. })
    })
    .await;
    let Some(SessionEvent::ToolCall { call_id, .. }) = seen.last() else {
        unreachable!()
    };
    session
        .send_tool_result(call_id.clone(), json!({"temp_c": 18}))
        .await
        .unwrap();
    until(&mut events, "answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    quiesce(&server, &session).await;

    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(kinds(&conns[0]), ["setup", "clientContent", "toolResponse"]);
    assert_eq!(
        frame(&conns[0], 2)["toolResponse"]["functionResponses"],
        json!([{"id": call_id, "name": "get_weather", "response": {"temp_c": 18}}])
    );
    let responses = server.latest_session().unwrap().tool_responses().to_vec();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].id, *call_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_update_on_3_8_and_setup_field_after_a_config_reconnect() {
    let server = server(Family::Gemini38).await;
    let lookup = FunctionDeclaration::new("lookup_order", "Finds an order");
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| {
            let op = ctx
                .outbox
                .live()
                .find(|op| matches!(op.kind, OpKind::ToolSetChange { .. }))
                .map(|op| op.id);
            resume_with(
                ctx,
                vec![PlannedSend {
                    ops: op.into_iter().collect(),
                    channel: Channel::SetupField,
                    payload: Payload::Config {
                        instructions: None,
                        tools: Some(ConfigVersion(1)),
                    },
                }],
            )
        })
        .route(|op| match &op.kind {
            OpKind::InstructionChange { version } => Route::Send(PlannedSend {
                ops: vec![op.id],
                channel: Channel::ContextUpdate,
                payload: Payload::Config {
                    instructions: Some(*version),
                    tools: None,
                },
            }),
            OpKind::ToolSetChange { .. } => Route::Reconnect(Trigger::ConfigChange {
                instructions: false,
                tools: true,
            }),
            _ => send_as_asked(op),
        });
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    session.send_text("hello").unwrap();
    until(&mut events, "answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    settle_handle(&server, &mut events, 2).await;
    session.update_instructions("Speak French.").unwrap();
    let first = wait_frames(&server, 0, 3).await;
    assert_eq!(kinds(&first), ["setup", "clientContent", "contextUpdate"]);
    let update = frame(&first, 2)["contextUpdate"].clone();
    assert_eq!(
        instructions_and_tools(&update),
        (Some("Speak French.".to_owned()), Vec::new())
    );
    assert!(update.get("tools").is_none(), "tools unchanged: {update}");

    session
        .update_tools(vec![weather_tool(), lookup.clone()])
        .unwrap();
    until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    wait_frames(&server, 1, 1).await;
    quiesce(&server, &session).await;

    let asked = log.lock().unwrap().clone();
    assert_eq!(
        asked[1].trigger,
        Trigger::ConfigChange {
            instructions: false,
            tools: true
        }
    );
    let conns = server.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        kinds(&conns[0]),
        ["setup", "clientContent", "contextUpdate"]
    );
    assert!(
        matches!(conns[0].end, Some((ConnectionEnd::ClientClose { .. }, _))),
        "the old socket is closed by the client"
    );
    // A setup field: nothing after the setup, which carries the current configuration.
    assert_eq!(kinds(&conns[1]), ["setup"]);
    let setup = setup_of(&conns[1]);
    assert_eq!(handle_and_history(&setup), (asked[1].handle.clone(), false));
    assert!(asked[1].handle.is_some());
    assert_eq!(
        instructions_and_tools(&setup),
        (
            Some("Speak French.".to_owned()),
            vec!["get_weather".to_owned(), "lookup_order".to_owned()]
        )
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
                vec![PlannedSend {
                    ops: Vec::new(),
                    channel: Channel::ClientContent {
                        turn_complete: false,
                    },
                    payload: Payload::Items(vec![user("n1", "after rotation")]),
                }],
            )
        })
        .route(send_as_asked);
    let (builder, log) = builder(&server, script);
    let builder = builder.go_away_margin(Duration::from_millis(50));
    let (session, mut events) = builder.connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    session.send_text("hello").unwrap();
    until(&mut events, "answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
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
