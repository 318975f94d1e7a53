//! Scenario S39: microphone audio around an abnormal close. Every chunk pushed reaches the
//! server or is reported by `AudioDropped`: audio the session could not write goes to the gap
//! buffer and out on the next connection; audio written since the last receipt (a pong to a
//! ping written after it, at most a second apart) when the connection broke is reported.
//!
//! The microphone's real time is tokio's paused clock (a current-thread runtime): each 20 ms
//! between chunks ends once the runtime has nothing left to run, and the session's receipts,
//! backoff and keepalive run on the same virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use agent_glue::{LiveSession, SessionEvent};
use common::{endpoint, server};
use gemini_fake::Family;
use gemini_transport::wire::{ClientMessage, Modality, RealtimeInput};

/// 20 ms of 16 kHz PCM16: 640 bytes.
const CHUNK: usize = 640;

#[tokio::test(start_paused = true)]
async fn s39_audio_around_an_abnormal_close() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .transcription(false)
            .audio_chunk(Duration::from_millis(20))
            .jitter_seed(7)
            .connect()
            .await
            .expect("session connects");
    // Quiet audio (below the voice threshold): a real-time microphone, 20 ms a chunk.
    let pushed = 100;
    for n in 0..pushed {
        if n == 40 {
            server.faults().drop_connections();
        }
        session.push_audio([1u8; CHUNK]).expect("pushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), session.settled())
        .await
        .expect("settles")
        .expect("open");
    let mut dropped = Duration::ZERO;
    let mut reconnected = false;
    while let Some(event) = events.try_recv() {
        match event {
            SessionEvent::AudioDropped { duration } => dropped += duration,
            SessionEvent::Reconnected(_) => reconnected = true,
            _ => {}
        }
    }
    assert!(reconnected, "the drop was noticed and repaired");
    let received: usize = server
        .connections()
        .iter()
        .flat_map(|c| c.frames.iter())
        .filter_map(|f| match f.decode() {
            Ok(ClientMessage::RealtimeInput(RealtimeInput::Audio(blob))) => Some(blob.data.len()),
            _ => None,
        })
        .sum();
    let dropped_bytes = (dropped.as_secs_f64() * 32_000.0).round() as usize;
    let total = pushed * CHUNK;
    assert!(
        received + dropped_bytes >= total,
        "pushed {total} bytes; the server received {received}, {dropped_bytes} were reported dropped"
    );
    assert!(
        dropped <= Duration::from_millis(1_100),
        "only what was written since the last receipt is unconfirmed: {dropped:?}"
    );
    assert!(
        received <= total,
        "no audio was sent twice: {received} > {total}"
    );
    session.close().await.expect("closed");
}
