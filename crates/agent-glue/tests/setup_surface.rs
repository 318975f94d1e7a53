//! The setup surface over loopback to `gemini-fake`, checked on the frames the server
//! received: manual activity signals are refused before anything is sent while the server's
//! detection is on, and work with it off; video frames reach the server; a tool change on 3.8
//! keeps the built-in tools the session was built with.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use agent_glue::{
    Error, FunctionDeclaration, ImageFormat, LiveSession, Modality, ReconnectReason, SessionEvent,
};
use common::{endpoint, server, until};
use gemini_fake::{FakeServer, Family};
use gemini_transport::wire::{ClientMessage, RealtimeInput};

/// The kinds of every frame the server received on its first connection.
fn kinds(server: &FakeServer) -> Vec<String> {
    server.connections()[0]
        .frames
        .iter()
        .map(|f| match f.decode() {
            Ok(ClientMessage::RealtimeInput(RealtimeInput::ActivityStart)) => {
                "activityStart".to_owned()
            }
            Ok(ClientMessage::RealtimeInput(RealtimeInput::ActivityEnd)) => {
                "activityEnd".to_owned()
            }
            Ok(ClientMessage::RealtimeInput(RealtimeInput::Video(blob))) => {
                format!("video {} {}", blob.mime_type, blob.data.len())
            }
            _ => f.kind.to_string(),
        })
        .collect()
}

/// Waits (paused time) until the server has received `n` frames on its first connection.
async fn frames(server: &FakeServer, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let k = kinds(server);
        if k.len() >= n {
            return k;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kinds(server)
}

#[tokio::test(start_paused = true)]
async fn activity_signals_are_refused_while_the_servers_detection_is_on() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .connect()
            .await
            .expect("connects");
    let start = session.activity_start();
    assert!(
        matches!(
            start,
            Err(Error::ActivityDetectionOn {
                signal: "activityStart"
            })
        ),
        "{start:?}"
    );
    let end = session.activity_end();
    assert!(
        matches!(
            end,
            Err(Error::ActivityDetectionOn {
                signal: "activityEnd"
            })
        ),
        "{end:?}"
    );
    // Nothing was sent and the connection lives: a typed turn is answered on it.
    session.send_text("still there?").expect("sent");
    let seen = until(&mut events, "the answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, SessionEvent::Reconnecting { .. })),
        "{seen:?}"
    );
    assert_eq!(kinds(&server), ["setup", "clientContent"]);
    assert_eq!(server.connections().len(), 1);
    session.close().await.expect("closed");
}

#[tokio::test(start_paused = true)]
async fn with_detection_off_the_application_brackets_speech_and_video_reaches_the_server() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .automatic_activity_detection(false)
            .connect()
            .await
            .expect("connects");
    let jpeg = [0xff_u8, 0xd8, 0xff, 0xe0, 1, 2, 3];
    assert!(
        session
            .push_video_frame(&jpeg[..], ImageFormat::Jpeg)
            .expect("taken")
    );
    assert!(matches!(
        session.send_image(Vec::new(), ImageFormat::Png),
        Err(Error::InvalidArgument(_))
    ));
    session.activity_start().expect("legal with detection off");
    // Half a second of speech, then the end of the activity: a spoken turn, answered.
    let speech: Vec<i16> = (0..8_000)
        .map(|i| ((i as f32 * 0.2).sin() * 12_000.0) as i16)
        .collect();
    session
        .push_samples(&speech, agent_glue::AudioFormat::mono(16_000))
        .expect("pushed");
    session.activity_end().expect("legal with detection off");
    let seen = until(&mut events, "the answer to the spoken turn", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            SessionEvent::Reconnecting {
                reason: ReconnectReason::ConnectionLost { .. }
            }
        )),
        "{seen:?}"
    );
    let k = frames(&server, 4).await;
    assert_eq!(k[0], "setup");
    assert_eq!(k[1], "video image/jpeg 7");
    assert_eq!(k[2], "activityStart");
    assert_eq!(k.last().map(String::as_str), Some("activityEnd"));
    assert_eq!(server.connections().len(), 1);
    session.close().await.expect("closed");
}

#[tokio::test(start_paused = true)]
async fn a_tool_change_on_3_8_keeps_the_built_in_tools() {
    let server = server(Family::Gemini38, |c| c).await;
    let (session, _events) = LiveSession::builder(endpoint(&server), server.config().setup_model())
        .google_search(true)
        .connect()
        .await
        .expect("connects");
    session
        .update_tools(vec![FunctionDeclaration::new("book", "Books a table")])
        .expect("queued");
    tokio::time::timeout(Duration::from_secs(10), session.settled())
        .await
        .expect("settles")
        .expect("open");
    let k = frames(&server, 2).await;
    assert_eq!(k, ["setup", "contextUpdate"]);
    let update = server.connections()[0].frames[1].decode();
    let Ok(ClientMessage::ContextUpdate(update)) = update else {
        panic!("{update:?}");
    };
    let tools = update.tools.expect("a tool list");
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!(tools[0].function_declarations[0].name, "book");
    assert!(tools[1].google_search.is_some());
    session.close().await.expect("closed");
}
