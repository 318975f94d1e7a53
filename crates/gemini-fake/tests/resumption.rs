//! Handles: when they come, what they capture, resuming, expiry, transparent indices, lag,
//! connection lifetime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Event, model_text, resumable_setup, resumption, shape, with_functions};
use gemini_fake::{FakeConfig, FakeServer, Family, IndexConvention, LifetimeEnd};
use gemini_transport::wire::{
    ClientMessage, Content, FunctionResponse, ServerPayload, SessionResumptionConfig, Setup,
};

async fn serve(config: FakeConfig) -> FakeServer {
    FakeServer::start(config).await.unwrap()
}

fn resume_setup(server: &FakeServer, handle: &str) -> Setup {
    common::text_setup(server).with_session_resumption(SessionResumptionConfig::resume(handle))
}

fn append(text: &str) -> ClientMessage {
    ClientMessage::client_content(vec![Content::user_text(text)], false)
}

#[tokio::test]
async fn no_updates_unless_asked() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, common::text_setup(&server)).await;
    client.send(&ClientMessage::text("a")).await;
    let turn = client.turn().await;
    assert!(turn.iter().all(|m| resumption(m).is_none()));
    client.send(&append("b")).await;
    client.send(&ClientMessage::text("c")).await;
    let turn = client.turn().await;
    assert!(
        turn.iter().all(|m| resumption(m).is_none()),
        "{:?}",
        shape(&turn)
    );
    assert!(server.latest_session().unwrap().handles_issued().is_empty());
}

#[tokio::test]
async fn not_resumable_while_generating_or_awaiting_a_tool() {
    let server = serve(FakeConfig::new()).await;
    let setup = with_functions(resumable_setup(&server), &["lookup"]);
    let mut client = Client::start(&server, setup).await;
    assert_eq!(shape(&[client.message().await]), ["handle"]);
    client.send(&ClientMessage::text("hi")).await;
    let mut turn = client.turn().await;
    turn.push(client.message().await);
    assert_eq!(
        shape(&turn),
        [
            "notResumable",
            "modelTurn",
            "modelTurn",
            "generationComplete",
            "turnComplete",
            "handle"
        ]
    );
    assert_eq!(turn[0].to_json(), r#"{"sessionResumptionUpdate":{}}"#);

    client.send(&ClientMessage::text("lookup x")).await;
    let frames = client
        .until(|m| matches!(m.payload, Some(ServerPayload::ToolCall(_))))
        .await;
    assert_eq!(shape(&frames), ["notResumable", "toolCall"]);
    // Appending while the call is pending is an interruption, so use the tool response.
    client
        .send(&ClientMessage::tool_response(vec![FunctionResponse::new(
            "call-1-1",
            "lookup",
            serde_json::Map::new(),
        )]))
        .await;
    let mut turn = client.turn().await;
    turn.push(client.message().await);
    assert_eq!(shape(&turn)[0], "notResumable");
    assert_eq!(shape(&turn).last().unwrap(), "handle");
    assert_eq!(model_text(&turn), "lookup returned {}");
}

#[tokio::test]
async fn resuming_restores_exactly_the_snapshot() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, resumable_setup(&server)).await;
    client.next_handle().await;
    client.send(&ClientMessage::text("first")).await;
    let h1 = client.next_handle().await;
    client.send(&ClientMessage::text("second")).await;
    let h2 = client.next_handle().await;
    client.ws.close(None).await.unwrap();
    let session = server.latest_session().unwrap();
    assert_eq!(
        session.context_texts(),
        ["first", "echo: first", "second", "echo: second"]
    );
    let issued: Vec<_> = session
        .handles_issued()
        .iter()
        .map(|h| h.handle.clone())
        .collect();
    assert_eq!(issued.len(), 3);
    assert_eq!(issued[1..], [h1.clone(), h2.clone()]);
    assert_eq!(session.handles_issued()[1].context_len, 2);

    // Resuming from the older handle loses the second turn.
    let mut client = Client::start(&server, resume_setup(&server, &h1)).await;
    let h3 = client.next_handle().await;
    let session = server.latest_session().unwrap();
    assert_eq!(server.sessions().len(), 1, "a resume continues the session");
    assert_eq!(session.context_texts(), ["first", "echo: first"]);
    assert_eq!(session.restores(), std::slice::from_ref(&h1));
    assert_eq!(
        session.connections()[1].resumed_from.as_deref(),
        Some(h1.as_str())
    );
    client.send(&ClientMessage::text("third")).await;
    client.turn().await;
    client.ws.close(None).await.unwrap();

    // The newer handle still works and restores its own snapshot; so does h3.
    let _client = Client::start(&server, resume_setup(&server, &h2)).await;
    let session = server
        .wait_for_session(common::STEP, "resumed from h2", |s| s.restores().len() == 2)
        .await
        .unwrap();
    assert_eq!(
        session.context_texts(),
        ["first", "echo: first", "second", "echo: second"]
    );
    assert_eq!(session.generations(), 3, "the journal is never rolled back");
    assert_eq!(session.overlaps(), 0);
    drop(_client);
    let _client = Client::start(&server, resume_setup(&server, &h3)).await;
    let session = server.latest_session().unwrap();
    assert_eq!(session.context_texts(), ["first", "echo: first"]);
}

/// On paused tokio time: the handle's expiry and the wait past it are virtual time, and so is
/// the server's close grace for the refused client (which never answers the close frame).
#[tokio::test(start_paused = true)]
async fn unknown_and_expired_handles_close_1007() {
    let server = serve(FakeConfig::new().with_handle_expiry(Duration::from_millis(300))).await;
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(resume_setup(&server, "nonsense")))
        .await;
    assert_eq!(
        client.expect_close().await,
        (1007, "Request contains an invalid argument.".to_owned())
    );

    let mut client = Client::start(&server, resumable_setup(&server)).await;
    let handle = client.next_handle().await;
    client.ws.close(None).await.unwrap();
    server
        .wait_for(common::STEP, "connection closed", |v| {
            v.open_connections() == 0
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(resume_setup(&server, &handle)))
        .await;
    assert_eq!(client.expect_close().await.0, 1007);
    let refused = server.connections().pop().unwrap();
    assert_eq!(refused.session, None);
    assert_eq!(refused.resumed_from, None);
}

#[tokio::test]
async fn transparent_indices_per_connection_setup_is_zero() {
    let server = serve(FakeConfig::new().with_vertex(true)).await;
    let transparent = SessionResumptionConfig::default().with_transparent(true);
    let setup = common::text_setup(&server).with_session_resumption(transparent.clone());
    let mut client = Client::start(&server, setup).await;
    assert_eq!(resumption(&client.message().await).unwrap().1, Some(0));
    client.send(&append("a")).await;
    let (handle, index) = resumption(&client.message().await).unwrap();
    assert_eq!(index, Some(1));
    client
        .send(&ClientMessage::video(b"jpeg", "image/jpeg"))
        .await;
    assert_eq!(resumption(&client.message().await).unwrap().1, Some(2));
    client.send(&ClientMessage::realtime_text("b")).await;
    let turn = client.turn().await;
    assert_eq!(
        resumption(&turn[0]),
        Some((None, Some(3))),
        "not resumable, index still given"
    );
    let (_, index) = resumption(&client.message().await).unwrap();
    assert_eq!(index, Some(3));
    client.ws.close(None).await.unwrap();

    let setup = common::text_setup(&server)
        .with_session_resumption(transparent.with_transparent(true).clone());
    let mut setup = setup;
    setup.session_resumption.as_mut().unwrap().handle = handle;
    let mut client = Client::start(&server, setup).await;
    assert_eq!(
        resumption(&client.message().await).unwrap().1,
        Some(0),
        "numbering restarts"
    );
    assert_eq!(server.latest_session().unwrap().context_texts(), ["a"]);
}

#[tokio::test]
async fn first_message_is_zero_convention() {
    let server = serve(
        FakeConfig::new()
            .with_vertex(true)
            .with_index_convention(IndexConvention::FirstMessageIsZero),
    )
    .await;
    let setup = common::text_setup(&server)
        .with_session_resumption(SessionResumptionConfig::default().with_transparent(true));
    let mut client = Client::start(&server, setup).await;
    assert_eq!(resumption(&client.message().await).unwrap().1, None);
    client.send(&append("a")).await;
    assert_eq!(resumption(&client.message().await).unwrap().1, Some(0));
}

#[tokio::test]
async fn lagging_handles_cover_earlier_messages() {
    let server = serve(FakeConfig::new().with_vertex(true).with_handle_lag(1)).await;
    let setup = common::text_setup(&server)
        .with_session_resumption(SessionResumptionConfig::default().with_transparent(true));
    let mut client = Client::start(&server, setup).await;
    client.message().await;
    client.send(&append("a")).await;
    let (_, index) = resumption(&client.message().await).unwrap();
    assert_eq!(index, Some(0), "the handle lags one message behind");
    client.send(&append("b")).await;
    let (handle, index) = resumption(&client.message().await).unwrap();
    assert_eq!(index, Some(1));
    // A visible answer is always covered.
    client.send(&ClientMessage::realtime_text("c")).await;
    client.turn().await;
    let (_, index) = resumption(&client.message().await).unwrap();
    assert_eq!(index, Some(3));
    let session = server.latest_session().unwrap();
    let covers: Vec<_> = session
        .handles_issued()
        .iter()
        .map(|h| (h.covers_index, h.context_len))
        .collect();
    assert_eq!(covers, [(0, 0), (0, 0), (1, 1), (3, 4)]);
    client.ws.close(None).await.unwrap();

    let mut setup = common::text_setup(&server)
        .with_session_resumption(SessionResumptionConfig::default().with_transparent(true));
    setup.session_resumption.as_mut().unwrap().handle = handle;
    let _client = Client::start(&server, setup).await;
    assert_eq!(
        server.latest_session().unwrap().context_texts(),
        ["a"],
        "b was not covered"
    );
}

#[tokio::test]
async fn resumed_setup_with_history_flag_swallows_the_next_turn() {
    let server = serve(FakeConfig::new().with_family(Family::Gemini25)).await;
    let mut client = Client::start(&server, resumable_setup(&server)).await;
    let handle = client.next_handle().await;
    client.ws.close(None).await.unwrap();
    let setup = resume_setup(&server, &handle).with_initial_history_in_client_content(true);
    let mut client = Client::start(&server, setup).await;
    client.send(&ClientMessage::text("are you there?")).await;
    client.send(&ClientMessage::realtime_text("hello")).await;
    let turn = client.turn().await;
    assert_eq!(model_text(&turn), "echo: hello");
    let session = server.latest_session().unwrap();
    assert_eq!(session.generations(), 1);
    assert_eq!(
        session.context_texts(),
        ["are you there?", "hello", "echo: hello"]
    );
}

#[tokio::test(start_paused = true)]
async fn go_away_then_close_at_the_end_of_the_lifetime() {
    let server = serve(
        FakeConfig::new()
            .with_lifetime(Some(Duration::from_secs(600)))
            .with_go_away_lead(Duration::from_secs(50))
            .with_lifetime_end(LifetimeEnd::DeadlineExpired),
    )
    .await;
    let start = tokio::time::Instant::now();
    let mut client = Client::connect(&server).await;
    client.step = None;
    client
        .send(&ClientMessage::setup(common::text_setup(&server)))
        .await;
    let mut go_away_at = None;
    let close = loop {
        match client.next().await {
            Event::Message(message, _) => {
                if let Some(ServerPayload::GoAway(go_away)) = &message.payload {
                    assert_eq!(go_away.time_left, Duration::from_secs(50));
                    assert_eq!(message.to_json(), r#"{"goAway":{"timeLeft":"50s"}}"#);
                    go_away_at = Some(start.elapsed());
                }
            }
            Event::Closed(code, reason) => break (code, reason, start.elapsed()),
            other => panic!("{other:?}"),
        }
    };
    let go_away_at = go_away_at.expect("goAway before the close");
    assert!(go_away_at >= Duration::from_secs(550) && go_away_at < Duration::from_secs(551));
    assert_eq!(close.0, 1011);
    assert_eq!(close.1, "Deadline expired before operation could complete.");
    assert!(close.2 >= Duration::from_secs(600) && close.2 < Duration::from_secs(601));
}

/// "Never two sockets" is measured by the fake: a connection the client closed must count as
/// ended by the time the client has the close reply in hand, even when the server task that
/// answered is slow to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_recorded_before_the_client_can_dial_again() {
    use futures_util::StreamExt;
    let server = serve(FakeConfig::new()).await;
    for _ in 0..30 {
        let mut client = Client::start(&server, resumable_setup(&server)).await;
        let handle = client.next_handle().await;
        client.ws.close(None).await.unwrap();
        // The close handshake is complete once the reply has arrived and the stream ends.
        while let Some(Ok(_)) = client.ws.next().await {}
        let mut next = Client::start(&server, resume_setup(&server, &handle)).await;
        assert_eq!(server.latest_session().unwrap().overlaps(), 0);
        next.ws.close(None).await.unwrap();
        while let Some(Ok(_)) = next.ws.next().await {}
    }
}
