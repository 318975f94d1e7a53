//! The service answers pings late while it is busy (pongs have been seen to take 8–30 s). A
//! session whose pongs come 25 s late while data flows keeps its connection: ten minutes of
//! microphone audio, model audio streaming back, and no reconnect.
//!
//! Time is tokio's paused clock: the ten minutes take a few seconds of CPU. The fake runs in
//! its load mode (model audio streams back while client audio arrives), so data flows all
//! along and every pong is held back 25 s by the fake's WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use agent_glue::{LiveSession, SessionEvent};
use gemini_fake::{FakeConfig, FakeServer, Family};
use gemini_transport::{Endpoint, SecretString};

const TEN_MINUTES: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn pongs_25_s_late_keep_the_connection_for_ten_minutes() {
    let config = FakeConfig::new()
        .with_family(Family::Gemini38)
        .with_audio_load(true);
    let server = FakeServer::start(config).await.unwrap();
    server.faults().delay_pongs(Duration::from_secs(25));
    let endpoint = Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url(&server.url())
        .unwrap();
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .transcription(false)
        .audio_chunk(Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let silence = vec![0u8; 640];
    let mut reconnects = Vec::new();
    let mut model_audio = 0usize;
    while started.elapsed() < TEN_MINUTES {
        tick.tick().await;
        session.push_audio(&silence[..]).unwrap();
        while let Some(event) = events.try_recv() {
            match event {
                SessionEvent::Reconnecting { reason } => reconnects.push(reason),
                SessionEvent::Audio { .. } => model_audio += 1,
                _ => {}
            }
        }
    }
    assert!(reconnects.is_empty(), "reconnected: {reconnects:?}");
    assert_eq!(server.connections().len(), 1, "one connection all along");
    // The model's audio streamed back all along: the pongs were held back by a busy server.
    assert!(model_audio > 10_000, "{model_audio} chunks of model audio");
    assert_eq!(server.faults().pong_delay(), Duration::from_secs(25));
    session.close().await.unwrap();
}
