//! Load mode (`FakeConfig::with_audio_load`): model audio at real time while client audio
//! arrives, the audio frames neither recorded nor made into turns; off by default.
//!
//! On paused tokio time (a current-thread runtime): the client's 20 ms between chunks, the
//! drain and the server's real-time model audio all run on virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, resumable_setup};
use futures_util::{SinkExt, StreamExt};
use gemini_fake::{FakeConfig, FakeServer, LoadCounts};
use gemini_transport::wire::{ClientMessage, PartData, ServerMessage, ServerPayload};
use tokio_tungstenite::tungstenite::Message;

/// 20 ms of a loud 16 kHz square wave: speech to the VAD.
fn loud_chunk() -> Vec<u8> {
    (0..320)
        .flat_map(|i| (if i % 2 == 0 { 3000i16 } else { -3000 }).to_le_bytes())
        .collect()
}

fn is_model_audio(message: &ServerMessage) -> bool {
    let Some(ServerPayload::ServerContent(content)) = &message.payload else {
        return false;
    };
    content.model_turn.as_ref().is_some_and(|turn| {
        turn.parts.iter().any(|part| match &part.data {
            PartData::InlineData(blob) => {
                blob.mime_type == "audio/pcm;rate=24000" && blob.data.len() == 1920
            }
            _ => false,
        })
    })
}

/// Sends `chunks` audio frames 20 ms apart, then reads for `drain`; returns every server
/// message after `setupComplete`.
async fn stream(client: &mut Client, chunks: usize, drain: Duration) -> Vec<ServerMessage> {
    let mut buf = Vec::new();
    ClientMessage::write_audio_json(&mut buf, &loud_chunk(), 16_000);
    let frame = String::from_utf8(buf).unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let mut received = Vec::new();
    let mut sent = 0;
    let end = tokio::time::sleep(Duration::from_millis(20) * chunks as u32 + drain);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = ticks.tick(), if sent < chunks => {
                client.ws.send(Message::Text(frame.clone().into())).await.unwrap();
                sent += 1;
            }
            incoming = client.ws.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    received.push(ServerMessage::from_json(&bytes).unwrap());
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            },
            () = &mut end => return received,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn streams_model_audio_while_client_audio_arrives() {
    let server = FakeServer::start(FakeConfig::new().with_audio_load(true))
        .await
        .unwrap();
    let mut client = Client::start(&server, resumable_setup(&server)).await;
    // The handle offered after setupComplete.
    let first = client.message().await;
    assert!(matches!(
        first.payload,
        Some(ServerPayload::SessionResumptionUpdate(_))
    ));
    // 25 chunks (500 ms) in: about 12 back, then nothing once the audio has stopped.
    let received = stream(&mut client, 25, Duration::from_millis(400)).await;
    assert!(received.iter().all(is_model_audio), "{received:?}");
    assert!(
        (8..=16).contains(&received.len()),
        "{} chunks back",
        received.len()
    );
    let counts = server.load_counts();
    assert_eq!(counts.audio_in, 25);
    assert_eq!(counts.audio_out, received.len() as u64);
    // The audio made no turn and was not recorded: the session saw only the setup.
    let session = server.latest_session().unwrap();
    assert!(session.context().is_empty());
    assert_eq!(session.generations(), 0);
    let frames = &session.connections()[0].frames;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].kind, "setup");
}

#[tokio::test(start_paused = true)]
async fn off_by_default_audio_is_speech_again() {
    let server = FakeServer::start(FakeConfig::new().with_vad_silence(Duration::from_millis(100)))
        .await
        .unwrap();
    assert!(!server.config().audio_load());
    let mut client = Client::start(&server, resumable_setup(&server)).await;
    let _handle = client.message().await;
    let _ = stream(&mut client, 5, Duration::from_millis(10)).await;
    let session = server
        .wait_for_session(Duration::from_secs(10), "five frames recorded", |s| {
            s.connections()[0].frames.len() == 6
        })
        .await
        .unwrap();
    let frames = &session.connections()[0].frames;
    assert!(frames[1..].iter().all(|f| f.kind == "realtimeInput"));
    assert_eq!(server.load_counts(), LoadCounts::default());
}
