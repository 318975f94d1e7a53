//! Fault injection from the test's side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Event, model_text, resumable_setup, text_setup};
use gemini_fake::{ConnectionEnd, FakeConfig, FakeServer, FaultAction, Trigger};
use gemini_transport::wire::{ClientMessage, Content, ServerPayload, SessionResumptionConfig};
use tokio::time::Instant;

async fn serve() -> FakeServer {
    FakeServer::start(FakeConfig::new()).await.unwrap()
}

async fn ended(server: &FakeServer) -> ConnectionEnd {
    server
        .wait_for(common::STEP, "connection ended", |v| {
            v.latest_connection().is_some_and(|c| c.end.is_some())
        })
        .await
        .unwrap();
    server.connections().pop().unwrap().end.unwrap().0
}

#[tokio::test]
async fn drop_without_close_frame() {
    let server = serve().await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    server.faults().drop_connections();
    assert!(matches!(client.next().await, Event::Dropped));
    assert_eq!(ended(&server).await, ConnectionEnd::Dropped);
}

#[tokio::test]
async fn close_with_a_code() {
    let server = serve().await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    server
        .faults()
        .close_connections(1011, "Internal error encountered.");
    assert_eq!(
        client.expect_close().await,
        (1011, "Internal error encountered.".to_owned())
    );
    assert_eq!(
        ended(&server).await,
        ConnectionEnd::ServerClose {
            code: 1011,
            reason: "Internal error encountered.".into()
        }
    );
}

#[tokio::test]
async fn refuse_next_resume_then_expire_all_handles() {
    let server = serve().await;
    let mut client = Client::start(&server, resumable_setup(&server)).await;
    let handle = client.next_handle().await;
    client.ws.close(None).await.unwrap();
    let resume =
        text_setup(&server).with_session_resumption(SessionResumptionConfig::resume(&handle));

    server
        .faults()
        .refuse_next_resume(1011, "The service is currently unavailable.");
    let mut client = Client::connect(&server).await;
    client.send(&ClientMessage::setup(resume.clone())).await;
    assert_eq!(client.expect_close().await.0, 1011);

    // Only the next one: the handle still works.
    let mut client = Client::start(&server, resume.clone()).await;
    client.ws.close(None).await.unwrap();

    server.faults().expire_all_handles();
    let mut client = Client::connect(&server).await;
    client.send(&ClientMessage::setup(resume)).await;
    assert_eq!(client.expect_close().await.0, 1007);
}

#[tokio::test]
async fn refused_upgrades_are_dial_failures() {
    let server = serve().await;
    server.faults().refuse_upgrades(2, 503);
    for _ in 0..2 {
        let error = Client::connect_url(&server.endpoint_url())
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("503"), "{error}");
    }
    let _client = Client::start(&server, text_setup(&server)).await;
}

/// On paused tokio time: the 300 ms of quiet are virtual; they end only once the runtime has
/// nothing left to run, so a frame the stall let through would have arrived first.
#[tokio::test(start_paused = true)]
async fn stall_holds_frames_until_unstalled() {
    let server = serve().await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    server.faults().stall();
    client.send(&ClientMessage::text("quiet")).await;
    server
        .wait_for(common::STEP, "answer produced", |v| {
            v.latest_session().is_some_and(|s| s.answers().len() == 1)
        })
        .await
        .unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
    assert!(quiet.is_err(), "nothing is sent while stalled");
    server.faults().unstall();
    assert_eq!(model_text(&client.turn().await), "echo: quiet");
}

/// On paused tokio time: the delay elapses, and is measured, on virtual time.
#[tokio::test(start_paused = true)]
async fn delayed_frames_keep_their_order() {
    let server = serve().await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    server.faults().delay_frames(Duration::from_millis(300));
    let sent = Instant::now();
    client.send(&ClientMessage::text("late")).await;
    let turn = client.turn().await;
    assert!(sent.elapsed() >= Duration::from_millis(300));
    assert_eq!(model_text(&turn), "echo: late");
}

#[tokio::test]
async fn malformed_frame() {
    let server = serve().await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    server.faults().send_malformed();
    match client.next().await {
        Event::Garbage(text) => assert_eq!(text, r#"{"serverContent": "#),
        other => panic!("{other:?}"),
    }
}

/// On paused tokio time: the 200 ms to the close are virtual.
#[tokio::test(start_paused = true)]
async fn go_away_now_then_the_lifetime_close() {
    let server = serve().await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    server.faults().go_away(Duration::from_millis(200));
    let message = client.message().await;
    assert!(matches!(message.payload, Some(ServerPayload::GoAway(_))));
    assert_eq!(message.to_json(), r#"{"goAway":{"timeLeft":"0.200s"}}"#);
    assert_eq!(client.expect_close().await.0, 1008);
}

#[tokio::test]
async fn scheduled_faults_fire_in_order() {
    let server = serve().await;
    let faults = server.faults();
    faults.schedule(Trigger::SetupCompleteSent, FaultAction::Drop);
    faults.schedule(
        Trigger::ClientMessages(2),
        FaultAction::Close(1011, "flap".into()),
    );
    faults.schedule(
        Trigger::SetupReceived,
        FaultAction::Close(1011, "busy".into()),
    );

    // 1: dropped right after setupComplete.
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    client.expect_setup_complete().await;
    assert!(matches!(client.next().await, Event::Dropped));

    // 2: closed after the second client message has been processed.
    let mut client = Client::start(&server, text_setup(&server)).await;
    for text in ["a", "b", "c"] {
        client
            .send(&ClientMessage::client_content(
                vec![Content::user_text(text)],
                false,
            ))
            .await;
    }
    assert_eq!(client.expect_close().await, (1011, "flap".to_owned()));
    assert_eq!(server.latest_session().unwrap().context_texts(), ["a", "b"]);

    // 3: closed on setup, before setupComplete.
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    assert!(matches!(client.next().await, Event::Closed(1011, _)));

    // Queue empty: a normal connection.
    let _client = Client::start(&server, text_setup(&server)).await;
}

#[tokio::test]
async fn withheld_handles() {
    let server = serve().await;
    server.faults().withhold_handles();
    let mut client = Client::start(&server, resumable_setup(&server)).await;
    client.send(&ClientMessage::text("a")).await;
    let turn = client.turn().await;
    assert!(
        turn.iter()
            .all(|m| common::resumption(m).is_none_or(|(h, _)| h.is_none()))
    );
    assert!(server.latest_session().unwrap().handles_issued().is_empty());
    server.faults().release_handles();
    client.send(&ClientMessage::text("b")).await;
    client.next_handle().await;
    assert_eq!(
        server.latest_session().unwrap().handles_issued()[0].context_len,
        4
    );
}

#[tokio::test]
async fn messages_with_a_refused_payload_close_the_connection_unprocessed() {
    let server = serve().await;
    server.faults().reject_messages_containing(
        "forbidden",
        1007,
        "Request contains an invalid argument.",
    );
    let mut client = Client::start(&server, text_setup(&server)).await;
    client.send(&ClientMessage::text("fine")).await;
    client.turn().await;
    client.send(&ClientMessage::text("a forbidden word")).await;
    assert_eq!(
        client.expect_close().await,
        (1007, "Request contains an invalid argument.".to_owned())
    );
    // Received, never processed.
    let connection = server.connections().pop().unwrap();
    assert!(connection.frames.last().unwrap().raw.contains("forbidden"));
    assert_eq!(
        server.latest_session().unwrap().context_texts(),
        ["fine", "echo: fine"]
    );
    // Until the fault ends.
    server.faults().reject_messages_containing("", 0, "");
    let mut client = Client::start(&server, text_setup(&server)).await;
    client.send(&ClientMessage::text("a forbidden word")).await;
    assert!(model_text(&client.turn().await).contains("forbidden"));
}

#[tokio::test]
async fn the_socket_answers_pings_late_while_data_flows() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = serve().await;
    let delay = Duration::from_millis(400);
    server.faults().delay_pongs(delay);
    let mut client = Client::start(&server, text_setup(&server)).await;
    // setupComplete just went out and an answer streams: data flows.
    client
        .send(&ClientMessage::text("one two three four five six"))
        .await;
    let sent = Instant::now();
    client
        .ws
        .send(Message::Ping(b"late".to_vec().into()))
        .await
        .unwrap();
    let mut data_first = 0;
    loop {
        let frame = tokio::time::timeout(common::STEP, client.ws.next())
            .await
            .unwrap();
        match frame {
            Some(Ok(Message::Pong(payload))) => {
                assert_eq!(&payload[..], b"late");
                break;
            }
            Some(Ok(Message::Binary(_))) => data_first += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        sent.elapsed() >= delay,
        "answered after {:?}",
        sent.elapsed()
    );
    assert!(data_first > 0, "the data went on meanwhile");
}
