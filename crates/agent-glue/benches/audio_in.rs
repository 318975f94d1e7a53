//! The cost of one 20 ms chunk of microphone audio through `LiveSession`, by the form it comes
//! in: PCM16 at 16 kHz through `push_audio` (the baseline: the bytes are shared, never
//! copied, and written to the socket before the call returns), `i16` at 16 kHz through
//! `push_samples` (one copy), and `f32` 48 kHz stereo either resampled to 16 kHz (rubato) or
//! sent at its own rate (`input_sample_rate(48_000)`: averaged and converted only, three times
//! the bytes on the wire, which the service resamples). Each sample is one push, socket write
//! included, to an in-process `gemini-fake` over loopback on one current-thread runtime;
//! between samples the runtime runs untimed so that the server reads what was written (the
//! socket never fills). Compare the lines of one run:
//! `cargo bench -p agent-glue --bench audio_in`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::{AudioFormat, Endpoint, LiveSession, Modality, SecretString};
use divan::Bencher;
use gemini_fake::{FakeConfig, FakeServer};
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

/// A connected session at `rate` on a current-thread runtime, with its server.
fn bed(rate: u32) -> (Runtime, FakeServer, LiveSession) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(FakeServer::start(FakeConfig::new()))
        .unwrap();
    let endpoint = Endpoint::api_key(SecretString::from("bench"))
        .with_base_url(&server.url())
        .unwrap();
    let (session, events) = runtime
        .block_on(
            LiveSession::builder(endpoint, server.config().setup_model())
                .modality(Modality::Text)
                .transcription(false)
                .input_sample_rate(rate)
                .audio_chunk(std::time::Duration::from_millis(20))
                .connect(),
        )
        .unwrap();
    // Nobody reads events in this benchmark: the stream is dropped, and the session never
    // holds back its reader for it.
    drop(events);
    (runtime, server, session)
}

/// Untimed: lets the server read what the last push wrote.
fn drain(runtime: &Runtime) {
    runtime.block_on(async { tokio::time::sleep(std::time::Duration::from_micros(200)).await });
}

/// 20 ms of quiet noise (far below the fake's voice threshold, so no turn starts) as
/// interleaved `f32` at 48 kHz, stereo.
fn f32_48k_stereo() -> Vec<f32> {
    (0..960 * 2)
        .map(|i| ((i * 7919 % 200) as f32 - 100.0) / 100_000.0)
        .collect()
}

#[divan::bench(sample_count = 2_000)]
fn pcm16_16k_push_audio(bencher: Bencher<'_, '_>) {
    let (runtime, _server, session) = bed(16_000);
    let chunk = bytes::Bytes::from(vec![1_u8; 640]);
    bencher
        .with_inputs(|| {
            drain(&runtime);
            chunk.clone()
        })
        .bench_local_values(|pcm| {
            let _guard = runtime.enter();
            session.push_audio(pcm).unwrap();
        });
}

#[divan::bench(sample_count = 2_000)]
fn i16_16k_push_samples(bencher: Bencher<'_, '_>) {
    let (runtime, _server, session) = bed(16_000);
    let chunk = vec![1_i16; 320];
    bencher
        .with_inputs(|| drain(&runtime))
        .bench_local_values(|()| {
            let _guard = runtime.enter();
            session
                .push_samples(&chunk, AudioFormat::mono(16_000))
                .unwrap();
        });
}

#[divan::bench(sample_count = 2_000)]
fn f32_48k_stereo_resampled_to_16k(bencher: Bencher<'_, '_>) {
    let (runtime, _server, session) = bed(16_000);
    let chunk = f32_48k_stereo();
    bencher
        .with_inputs(|| drain(&runtime))
        .bench_local_values(|()| {
            let _guard = runtime.enter();
            session
                .push_samples(&chunk, AudioFormat::stereo(48_000))
                .unwrap();
        });
}

#[divan::bench(sample_count = 2_000)]
fn f32_48k_stereo_sent_at_48k(bencher: Bencher<'_, '_>) {
    let (runtime, _server, session) = bed(48_000);
    let chunk = f32_48k_stereo();
    bencher
        .with_inputs(|| drain(&runtime))
        .bench_local_values(|()| {
            let _guard = runtime.enter();
            session
                .push_samples(&chunk, AudioFormat::stereo(48_000))
                .unwrap();
        });
}
