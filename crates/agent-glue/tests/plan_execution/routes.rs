//! Operations queued while a connection is up go out as the policy routes them: sent on the
//! channel it names, deferred or reported as events, superseded, or carried by a reconnect.

use agent_glue::SessionEvent;
use gemini_fake::{ConnectionEnd, Family};
use gemini_transport::wire::{Behavior, FunctionDeclaration};
use resume_policy::{
    DivergenceReason, ModelCapabilities, OpId, OpKind, PlannedMessage, PlannedSend, ResumePlan,
    Route, Strategy, Trigger,
};
use serde_json::json;

use crate::common::{barrier, until, weather_round, weather_tool};
use crate::support::*;

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
    let ids: Vec<_> = ["defer me", "report me", "supersede me", "send me"]
        .into_iter()
        .map(|text| session.send_text(text).unwrap())
        .collect();
    let (defer_me, report_me) = (ids[0].clone(), ids[1].clone());
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
                items: vec![defer_me],
                calls: Vec::new(),
                why: DivergenceReason::ClientContentForbidden,
            },
            SessionEvent::Divergence {
                operations: vec![OpId(1)],
                items: vec![report_me],
                calls: Vec::new(),
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
    let (call_id, _) = weather_round(&session, &mut events, json!({"temp_c": 18})).await;
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
    assert_eq!(responses[0].id, call_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_update_on_3_8_and_setup_field_after_a_config_reconnect() {
    let server = server(Family::Gemini38).await;
    let lookup = FunctionDeclaration::new("lookup_order", "Finds an order")
        .with_behavior(Behavior::Blocking);
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .plan(|ctx| {
            let op = ctx
                .outbox
                .live()
                .find(|op| matches!(op.kind, OpKind::ToolSetChange { .. }))
                .map(|op| op.id);
            let mut plan = resume_with(ctx, Vec::new());
            plan.setup_ops = op.into_iter().collect();
            plan
        })
        .route(|op| match &op.kind {
            OpKind::InstructionChange { version } => Route::Send(PlannedSend::new(
                vec![op.id],
                PlannedMessage::ContextUpdate {
                    instructions: Some(*version),
                    tools: None,
                },
            )),
            OpKind::ToolSetChange { .. } => Route::Reconnect(Trigger::ConfigChange {
                instructions: false,
                tools: true,
            }),
            _ => send_as_asked(op),
        });
    // 3.8 answers in audio only; this test reads the fake's text answers, so the capability
    // row is overridden to let the session ask for TEXT.
    let mut caps = ModelCapabilities::for_model(&server.config().setup_model()).unwrap();
    caps.text_responses = true;
    let (builder, log) = builder(&server, script);
    let (session, mut events) = builder.capabilities(caps).connect().await.unwrap();
    settle_handle(&server, &mut events, 1).await;
    barrier(&session, &mut events, "hello").await;
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
async fn generate_reply_routed_on_either_channel() {
    let server = server(Family::Gemini25).await;
    let script = Script::new()
        .plan(|_| ResumePlan::new(Strategy::Fresh))
        .route(|op| match &op.kind {
            // A reply request with instructions is a user turn carrying them.
            OpKind::Append {
                items,
                turn_complete: true,
            } => Route::Send(PlannedSend::new(
                vec![op.id],
                PlannedMessage::client_content(items.clone(), true),
            )),
            OpKind::GenerateReply { instructions } => Route::Send(PlannedSend::new(
                vec![op.id],
                PlannedMessage::RealtimeReplyRequest {
                    instructions: instructions.clone(),
                },
            )),
            other => panic!("unexpected operation {other:?}"),
        });
    let (builder, _log) = builder(&server, script);
    let (session, _events) = builder.connect().await.unwrap();
    session
        .generate_reply(Some("Greet the user.".to_owned()))
        .unwrap();
    session.generate_reply(None).unwrap();
    wait_frames(&server, 0, 3).await;
    quiesce(&server, &session).await;

    let conns = server.connections();
    assert_eq!(
        kinds(&conns[0]),
        ["setup", "clientContent", "realtimeInput"]
    );
    assert_eq!(
        client_content(&frame(&conns[0], 1)),
        (turns(&[("user", "Greet the user.")]), true)
    );
    let nudge = frame(&conns[0], 2)["realtimeInput"]["text"].clone();
    assert!(
        nudge.as_str().is_some_and(|t| !t.is_empty()),
        "a realtime text nudge: {nudge}"
    );
    // Both user turns are in `L` once, as on the server.
    let texts: Vec<String> = session
        .chat_ctx()
        .iter()
        .filter_map(|i| i.as_message())
        .filter(|m| m.role == ctx_model::Role::User)
        .map(|m| m.text())
        .collect();
    assert_eq!(
        texts,
        ["Greet the user.", nudge.as_str().unwrap_or_default()]
    );
}
