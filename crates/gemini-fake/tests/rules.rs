//! Serving and the rules the fake enforces: paths, keys, setup order, families, close codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Event, text_setup};
use gemini_fake::{FakeConfig, FakeServer, Family, FrameKind};
use gemini_transport::wire::{
    ClientMessage, Content, ContextUpdate, SessionResumptionConfig, Setup,
};

const INVALID: &str = "Request contains an invalid argument.";

async fn serve(config: FakeConfig) -> FakeServer {
    FakeServer::start(config).await.unwrap()
}

#[tokio::test]
async fn setup_then_setup_complete_in_a_binary_frame() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    match client.next().await {
        Event::Message(message, binary) => {
            assert!(binary, "server JSON travels in binary frames by default");
            assert_eq!(message.to_json(), r#"{"setupComplete":{}}"#);
        }
        other => panic!("{other:?}"),
    }
    let session = server
        .wait_for_session(common::STEP, "one session", |s| s.connections().len() == 1)
        .await
        .unwrap();
    let frames = &session.connections()[0].frames;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].index, 0);
    assert_eq!(frames[0].kind, "setup");
    assert!(matches!(
        frames[0].decode().unwrap(),
        ClientMessage::Setup(_)
    ));
}

#[tokio::test]
async fn text_frames_when_configured() {
    let server = serve(FakeConfig::new().with_frame_kind(FrameKind::Text)).await;
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    assert!(matches!(client.next().await, Event::Message(_, false)));
}

#[tokio::test]
async fn non_setup_first_frame_closes_1007() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::connect(&server).await;
    client.send(&ClientMessage::realtime_text("hi")).await;
    assert_eq!(client.expect_close().await, (1007, INVALID.to_owned()));
    let connections = server.connections();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].session, None);
    assert_eq!(connections[0].closed_with(), Some((1007, INVALID)));
    assert!(server.sessions().is_empty());
}

#[tokio::test]
async fn second_setup_and_garbage_close_1007() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    assert_eq!(client.expect_close().await.0, 1007);

    let mut client = Client::start(&server, text_setup(&server)).await;
    client
        .send_raw(r#"{"clientContent": {"turns": [], "bogusField": 1}}"#)
        .await;
    assert_eq!(client.expect_close().await.0, 1007);
    let frames = server.latest_session().unwrap().connections()[0]
        .frames
        .clone();
    assert_eq!(frames[1].kind, "invalid");
}

#[tokio::test]
async fn unknown_model_closes_1008() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::connect(&server).await;
    client
        .send(&ClientMessage::setup(Setup::new(
            "models/gemini-2.0-flash-live-001",
        )))
        .await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1008);
    assert!(
        reason.starts_with("models/gemini-2.0-flash-live-001 is not found for API version v1beta"),
        "{reason}"
    );
}

#[tokio::test]
async fn python_sdk_frames_are_accepted() {
    // The literal Python SDK setup (snake_case nested keys) for 3.1, minus its resumption handle.
    let server = serve(FakeConfig::new().with_family(Family::Gemini31)).await;
    let mut client = Client::connect(&server).await;
    let vector = include_str!("../../../docs/protocol/vectors/client_setup_python_sdk_form.json");
    let mut json: serde_json::Value = serde_json::from_str(vector).unwrap();
    json["setup"]["sessionResumption"] = serde_json::json!({});
    client.send_raw(&json.to_string()).await;
    client.expect_setup_complete().await;
    let audio =
        include_str!("../../../docs/protocol/vectors/client_realtime_audio_python_sdk_form.json");
    client.send_raw(audio).await;
    server
        .wait_for_session(common::STEP, "audio frame recorded", |s| {
            s.connections()[0].frames.len() == 2
        })
        .await
        .unwrap();
    let session = server.latest_session().unwrap();
    assert_eq!(session.connections()[0].frames[1].kind, "realtimeInput");
    assert!(session.connections()[0].is_open());
    assert_eq!(
        session.system_instruction(),
        Some("You are a concise, friendly voice assistant.")
    );
}

#[tokio::test]
async fn paths_versions_and_doubled_slash() {
    let server = serve(FakeConfig::new()).await;
    for path in [
        "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
        "//ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained",
    ] {
        let mut client = Client::connect_url(&format!("{}{path}", server.url()))
            .await
            .unwrap();
        client
            .send(&ClientMessage::setup(text_setup(&server)))
            .await;
        client.expect_setup_complete().await;
    }
    let wrong = format!("{}/ws/other", server.url());
    assert!(Client::connect_url(&wrong).await.is_err());
    let vertex = format!(
        "{}/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent",
        server.url()
    );
    assert!(
        Client::connect_url(&vertex).await.is_err(),
        "Developer API server has no Vertex path"
    );
}

#[tokio::test]
async fn api_key_in_query_header_or_refused() {
    let server = serve(FakeConfig::new().with_api_key("sekret")).await;
    let mut client = Client::connect_url(&format!("{}?key=sekret", server.endpoint_url()))
        .await
        .unwrap();
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    client.expect_setup_complete().await;

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.endpoint_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-goog-api-key", "sekret".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut client = Client {
        ws,
        step: Some(common::STEP),
    };
    client
        .send(&ClientMessage::setup(text_setup(&server)))
        .await;
    client.expect_setup_complete().await;

    let mut client = Client::connect_url(&format!("{}?key=wrong", server.endpoint_url()))
        .await
        .unwrap();
    assert_eq!(
        client.expect_close().await,
        (
            1007,
            "API key not valid. Please pass a valid API key.".to_owned()
        )
    );
}

#[tokio::test]
async fn client_content_on_3_1_only_as_initial_history() {
    let server = serve(FakeConfig::new().with_family(Family::Gemini31)).await;
    // Without historyConfig: any clientContent closes.
    let mut client = Client::start(&server, text_setup(&server)).await;
    client.send(&ClientMessage::text("hello")).await;
    assert_eq!(client.expect_close().await, (1007, INVALID.to_owned()));

    // With it: history is taken, then realtime text works, then clientContent closes.
    let setup = text_setup(&server).with_initial_history_in_client_content(true);
    let mut client = Client::start(&server, setup).await;
    client
        .send(&ClientMessage::client_content(
            vec![Content::user_text("earlier"), Content::model_text("reply")],
            true,
        ))
        .await;
    client.send(&ClientMessage::realtime_text("now")).await;
    assert_eq!(common::model_text(&client.turn().await), "echo: now");
    client.send(&ClientMessage::text("typed")).await;
    assert_eq!(client.expect_close().await.0, 1007);
    let session = server.latest_session().unwrap();
    assert_eq!(
        session.context_texts(),
        ["earlier", "reply", "now", "echo: now"]
    );
    assert_eq!(session.generations(), 1);
}

#[tokio::test]
async fn context_update_only_on_3_8() {
    let update = ClientMessage::context_update(ContextUpdate {
        system_instruction: Some(Content::system_instruction("Answer in French.")),
        tools: Some(Vec::new()),
    });
    for family in [Family::Gemini25, Family::Gemini31] {
        let server = serve(FakeConfig::new().with_family(family)).await;
        let mut client = Client::start(&server, text_setup(&server)).await;
        client.send(&update).await;
        assert_eq!(client.expect_close().await.0, 1007, "{family}");
    }
    let server = serve(
        FakeConfig::new()
            .with_family(Family::Gemini38)
            .with_text_on_3_8(true),
    )
    .await;
    let setup = common::with_functions(text_setup(&server), &["lookup"]);
    let mut client = Client::start(&server, setup).await;
    client.send(&update).await;
    client.send(&ClientMessage::text("lookup please")).await;
    // The tool list was cleared: no call, an echo.
    assert_eq!(
        common::model_text(&client.turn().await),
        "echo: lookup please"
    );
    let session = server.latest_session().unwrap();
    assert_eq!(session.system_instruction(), Some("Answer in French."));
    assert!(session.tools().is_empty());
}

#[tokio::test]
async fn transparent_is_vertex_only() {
    let server = serve(FakeConfig::new()).await;
    let setup = text_setup(&server)
        .with_session_resumption(SessionResumptionConfig::default().with_transparent(true));
    let mut client = Client::connect(&server).await;
    client.send(&ClientMessage::setup(setup)).await;
    assert_eq!(client.expect_close().await, (1007, INVALID.to_owned()));

    let server = serve(FakeConfig::new().with_vertex(true)).await;
    assert!(server.endpoint_url().contains("LlmBidiService"));
    let setup = text_setup(&server)
        .with_session_resumption(SessionResumptionConfig::default().with_transparent(true));
    let mut client = Client::start(&server, setup).await;
    let (handle, index) = common::resumption(&client.message().await).unwrap();
    assert!(handle.is_some());
    assert_eq!(index, Some(0), "setup counts as index 0");
}

#[tokio::test]
async fn activity_markers_need_manual_detection() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client.send(&ClientMessage::activity_start()).await;
    assert_eq!(client.expect_close().await.0, 1007);
}

/// On paused tokio time: the server's grace for a client that never answers its close frame
/// (this one reads the close and nothing after) elapses on virtual time.
#[tokio::test(start_paused = true)]
async fn shutdown_closes_with_1001() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(client.expect_close().await.0, 1001);
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn pings_are_answered() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client
        .ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(common::STEP, client.ws.next())
        .await
        .unwrap();
    assert!(matches!(pong, Some(Ok(Message::Pong(p))) if &p[..] == b"are you there"));
}
