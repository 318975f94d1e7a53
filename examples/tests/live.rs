//! The `live` example's session against `gemini-fake`, reached the way the example reaches the
//! real service (`GEMINI_API_KEY`, with `GEMINI_BASE_URL` pointing at the fake): a 48 kHz
//! stereo float WAV file in, a 24 kHz mono PCM16 WAV file of the model's reply out. On paused
//! time, so the real-time streaming costs nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gemini_fake::{FakeConfig, FakeServer, Family};
use gemini_live_examples::live_agent::{DEFAULT_MODEL, endpoint_from_env, talk};
use gemini_live_examples::wav::{Samples, read_wav, write_wav_f32};

/// A second of a 440 Hz tone (loud enough for the fake's activity detection), then half a
/// second of silence, as 48 kHz interleaved stereo floats.
fn spoken_48k_stereo() -> Vec<u8> {
    let samples: Vec<f32> = (0..72_000)
        .flat_map(|i| {
            let v = if i < 48_000 {
                (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin() * 0.3
            } else {
                0.0
            };
            [v, v]
        })
        .collect();
    write_wav_f32(&samples, 48_000, 2)
}

#[tokio::test(start_paused = true)]
async fn a_48_khz_stereo_file_in_gives_a_24_khz_mono_reply_out() {
    let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini38))
        .await
        .unwrap();
    let url = server.url();
    let env = |name: &str| match name {
        "GEMINI_API_KEY" => Some("fake-key".to_owned()),
        "GEMINI_BASE_URL" => Some(url.clone()),
        _ => None,
    };
    let (endpoint, model) = endpoint_from_env(env, DEFAULT_MODEL).unwrap();
    assert_eq!(model, "models/gemini-3.8-live");
    let mut lines = Vec::new();
    let outcome = talk(
        endpoint,
        model,
        &spoken_48k_stereo(),
        Duration::from_secs(30),
        |line| lines.push(line),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {lines:#?}"));
    let reply = read_wav(&outcome.wav).unwrap();
    assert_eq!((reply.sample_rate, reply.channels), (24_000, 1));
    let Samples::I16(samples) = &reply.samples else {
        panic!("PCM16 out");
    };
    assert!(
        samples.len() > 2_400,
        "{} samples: {lines:#?}",
        samples.len()
    );
    assert!(
        samples.iter().any(|s| s.unsigned_abs() > 1_000),
        "the fake's tone"
    );
    assert!(lines.iter().any(|l| l.starts_with("model: ")), "{lines:#?}");
    // The server heard the file as 16 kHz audio: 1.5 s of it, less what the resampler held.
    let heard: usize = server
        .connections()
        .iter()
        .flat_map(|c| c.frames.iter())
        .filter(|f| f.kind == "realtimeInput")
        .count();
    assert!(heard > 30, "{heard} realtime frames");
}

#[test]
fn without_a_key_it_says_which_variable_is_missing() {
    let error = endpoint_from_env(|_| None, DEFAULT_MODEL).unwrap_err();
    assert!(error.contains("GEMINI_API_KEY"), "{error}");
    let vertex = endpoint_from_env(
        |name| (name == "GOOGLE_CLOUD_PROJECT").then(|| "p".to_owned()),
        DEFAULT_MODEL,
    )
    .unwrap_err();
    assert!(vertex.contains("GOOGLE_ACCESS_TOKEN"), "{vertex}");
    let (_, model) = endpoint_from_env(
        |name| match name {
            "GOOGLE_CLOUD_PROJECT" => Some("p".to_owned()),
            "GOOGLE_ACCESS_TOKEN" => Some("t".to_owned()),
            _ => None,
        },
        DEFAULT_MODEL,
    )
    .unwrap();
    assert_eq!(
        model,
        "projects/p/locations/us-central1/publishers/google/models/gemini-3.8-live"
    );
}
