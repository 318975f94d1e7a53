//! Codec benchmarks: the two frames on the audio hot path.
//!
//! - encode one 20 ms chunk of 16 kHz mono PCM (640 bytes) into a `realtimeInput` frame, into a
//!   reused buffer, three ways: the borrowed fast path (`ClientMessage::write_audio_json`), a
//!   prebuilt `ClientMessage` through `write_json` (same fast path), and constructing the message
//!   first; against two baselines in the same run: this crate's serde path (`serde_json` over the
//!   derived `Serialize`, no fast path) and a plain serde frame that base64-encodes into a `String`
//!   first, as most clients do.
//! - decode one 40 ms chunk of 24 kHz server audio (1,920 bytes in
//!   `serverContent.modelTurn.parts[0].inlineData`), against parsing the same frame into a
//!   `serde_json::Value` alone (the first step of any decoder).
//!
//! Run with `cargo bench -p gemini-transport --bench codec`; the allocation columns come from
//! divan's `AllocProfiler`.
// Benchmarks run on fixed, known-good frames.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use divan::{AllocProfiler, Bencher, black_box};
use gemini_transport::wire::{ClientMessage, Content, Part, Role, ServerContent, ServerMessage};
use serde::Serialize;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// 20 ms of 16 kHz mono 16-bit PCM.
fn mic_chunk() -> Vec<u8> {
    (0..320u32)
        .flat_map(|i| ((i * 97 % 65_536) as u16).to_le_bytes())
        .collect()
}

/// A `serverContent` frame carrying 40 ms of 24 kHz mono 16-bit PCM.
fn model_audio_frame() -> Vec<u8> {
    let pcm: Vec<u8> = (0..960u32)
        .flat_map(|i| ((i * 31 % 65_536) as u16).to_le_bytes())
        .collect();
    let content = ServerContent {
        model_turn: Some(Content::new(
            Role::Model,
            vec![Part::inline_data("audio/pcm;rate=24000", pcm)],
        )),
        ..ServerContent::default()
    };
    ServerMessage::server_content(content)
        .to_json()
        .into_bytes()
}

#[divan::bench_group(name = "encode_20ms_16khz_audio")]
mod encode {
    use super::*;

    #[divan::bench]
    fn write_audio_json_borrowed(bencher: Bencher<'_, '_>) {
        let pcm = mic_chunk();
        let mut buf = Vec::new();
        bencher.bench_local(|| {
            ClientMessage::write_audio_json(&mut buf, black_box(&pcm), 16_000);
            black_box(buf.len())
        });
    }

    #[divan::bench]
    fn write_json_prebuilt_message(bencher: Bencher<'_, '_>) {
        let msg = ClientMessage::audio(&mic_chunk(), 16_000);
        let mut buf = Vec::new();
        bencher.bench_local(|| {
            black_box(&msg).write_json(&mut buf);
            black_box(buf.len())
        });
    }

    #[divan::bench]
    fn build_message_then_write_json(bencher: Bencher<'_, '_>) {
        let pcm = mic_chunk();
        let mut buf = Vec::new();
        bencher.bench_local(|| {
            ClientMessage::audio(black_box(&pcm), 16_000).write_json(&mut buf);
            black_box(buf.len())
        });
    }

    /// Baseline 1: this crate's types through serde_json, without the fast path.
    #[divan::bench]
    fn baseline_crate_serde_path(bencher: Bencher<'_, '_>) {
        let msg = ClientMessage::audio(&mic_chunk(), 16_000);
        let mut buf = Vec::new();
        bencher.bench_local(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&msg)).unwrap();
            black_box(buf.len())
        });
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame<'a> {
        realtime_input: Input<'a>,
    }

    #[derive(Serialize)]
    struct Input<'a> {
        audio: Blob<'a>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Blob<'a> {
        data: String,
        mime_type: &'a str,
    }

    /// Baseline 2: plain serde, base64 into a `String` first (what most clients do).
    #[divan::bench]
    fn baseline_plain_serde(bencher: Bencher<'_, '_>) {
        let pcm = mic_chunk();
        let mut buf = Vec::new();
        bencher.bench_local(|| {
            let frame = Frame {
                realtime_input: Input {
                    audio: Blob {
                        data: STANDARD.encode(black_box(&pcm)),
                        mime_type: "audio/pcm;rate=16000",
                    },
                },
            };
            buf.clear();
            serde_json::to_writer(&mut buf, &frame).unwrap();
            black_box(buf.len())
        });
    }
}

#[divan::bench_group(name = "decode_40ms_24khz_audio")]
mod decode {
    use super::*;

    #[divan::bench]
    fn server_message_from_json(bencher: Bencher<'_, '_>) {
        let frame = model_audio_frame();
        bencher.bench_local(|| ServerMessage::from_json(black_box(&frame)).unwrap());
    }

    /// Baseline: the unavoidable work, parsing into a `serde_json::Value` and base64-decoding
    /// the audio, with nothing else.
    #[divan::bench]
    fn baseline_value_parse_and_base64(bencher: Bencher<'_, '_>) {
        let frame = model_audio_frame();
        bencher.bench_local(|| {
            let v = serde_json::from_slice::<serde_json::Value>(black_box(&frame)).unwrap();
            let data = v
                .pointer("/serverContent/modelTurn/parts/0/inlineData/data")
                .unwrap();
            STANDARD.decode(data.as_str().unwrap()).unwrap()
        });
    }

    /// Baseline: parsing the frame into a `serde_json::Value`, nothing else.
    #[divan::bench]
    fn baseline_value_parse_only(bencher: Bencher<'_, '_>) {
        let frame = model_audio_frame();
        bencher.bench_local(|| {
            serde_json::from_slice::<serde_json::Value>(black_box(&frame)).unwrap()
        });
    }
}
