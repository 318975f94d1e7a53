//! Microphone audio in any format, over loopback to `gemini-fake`, checked against the frames
//! the server received: 48 kHz stereo `f32` arrives as 16 kHz mono PCM16 of the same tone, or,
//! with `input_sample_rate(48_000)`, as 48 kHz frames the service resamples itself; a format
//! the session cannot take is refused before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use agent_glue::{AudioFormat, Error, LiveSession, LiveSessionBuilder, Modality};
use common::{endpoint, server};
use gemini_fake::{FakeServer, Family};
use gemini_transport::wire::{ClientMessage, RealtimeInput};

/// One second of a 440 Hz tone at half scale, 48 kHz interleaved stereo.
fn tone_48k_stereo() -> Vec<f32> {
    (0..48_000)
        .flat_map(|i| {
            let v = (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin() * 0.5;
            [v, v]
        })
        .collect()
}

/// Every audio frame the server received: its MIME type and its samples.
fn received(server: &FakeServer) -> Vec<(String, Vec<i16>)> {
    server
        .connections()
        .iter()
        .flat_map(|c| c.frames.iter())
        .filter_map(|f| match f.decode() {
            Ok(ClientMessage::RealtimeInput(RealtimeInput::Audio(blob))) => {
                Some((blob.mime_type.clone(), agent_glue::pcm16_to_i16(&blob.data)))
            }
            _ => None,
        })
        .collect()
}

fn builder(server: &FakeServer) -> LiveSessionBuilder {
    LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
}

/// Pushes the tone in 20 ms pieces, at real time on paused time, and waits until it is out.
async fn push_tone(session: &LiveSession) {
    for piece in tone_48k_stereo().chunks(2 * 960) {
        session
            .push_samples(piece, AudioFormat::stereo(48_000))
            .expect("pushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), session.settled())
        .await
        .expect("settles")
        .expect("open");
    // And until the server's reader has taken the last frames (paused time).
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(start_paused = true)]
async fn f32_stereo_at_48_khz_reaches_the_server_as_16_khz_mono_of_the_same_tone() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, _events) = builder(&server).connect().await.expect("connects");
    push_tone(&session).await;
    let frames = received(&server);
    assert!(
        frames
            .iter()
            .all(|(mime, _)| mime == "audio/pcm;rate=16000")
    );
    let samples: Vec<i16> = frames.into_iter().flat_map(|(_, s)| s).collect();
    // A second at 16 kHz, less at most one 10 ms chunk still waiting in the resampler.
    assert!(
        (16_000 - 160..=16_000).contains(&samples.len()),
        "{} samples",
        samples.len()
    );
    let steady = &samples[2_000..14_000];
    let crossings = steady
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    assert!(
        (655..=665).contains(&crossings),
        "a 440 Hz tone crosses zero 660 times in 0.75 s, this one {crossings}"
    );
    session.close().await.expect("closed");
}

#[tokio::test(start_paused = true)]
async fn at_its_own_rate_the_audio_goes_out_as_48_khz_frames() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, _events) = builder(&server)
        .input_sample_rate(48_000)
        .connect()
        .await
        .expect("connects");
    push_tone(&session).await;
    let frames = received(&server);
    assert!(!frames.is_empty());
    assert!(
        frames
            .iter()
            .all(|(mime, _)| mime == "audio/pcm;rate=48000")
    );
    // 40 ms frames at 48 kHz: 1,920 samples each, none resampled away.
    assert!(frames.iter().all(|(_, s)| s.len() <= 1_920));
    let total: usize = frames.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(total, 48_000);
    session.close().await.expect("closed");
}

#[tokio::test(start_paused = true)]
async fn a_format_the_session_cannot_take_is_refused_before_anything_is_sent() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, _events) = builder(&server).connect().await.expect("connects");
    let refused = [
        session.push_samples(&[0.1_f32; 3], AudioFormat::stereo(48_000)),
        session.push_samples(&[0_i16; 4], AudioFormat::mono(2)),
        session.push_samples(&[0_i16; 4], AudioFormat::new(16_000, 0)),
        session.push_pcm16(&[1, 2, 3], AudioFormat::mono(16_000)),
    ];
    for result in refused {
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{result:?}"
        );
    }
    // Then a good push goes through as it is.
    session
        .push_pcm16(&[1, 0, 2, 0], AudioFormat::mono(16_000))
        .expect("pushed");
    tokio::time::timeout(Duration::from_secs(10), session.settled())
        .await
        .expect("settles")
        .expect("open");
    // The server's records, on paused time: until its reader has taken the frame.
    let mut frames = received(&server);
    for _ in 0..100 {
        if !frames.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        frames = received(&server);
    }
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1, [1, 2]);
    session.close().await.expect("closed");
}
