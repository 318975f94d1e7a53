//! Whole-process load benchmark for `LiveSession`.
//!
//! # The domain
//!
//! A voice agent holds one Gemini Live session per caller. A microphone delivers 20 ms of
//! 16 kHz PCM16 (640 bytes) every 20 ms and the model's 24 kHz audio comes back in 40 ms
//! chunks, 25 a second. The question a deployment asks is how many such sessions one machine
//! carries in real time, and what each costs next to the least a client can do: a bare
//! tokio-tungstenite socket that encodes each chunk and writes it.
//!
//! Two binaries, two processes, so that the client's CPU time is its own:
//! - `load-server`: [`gemini_fake`] in load mode ([`gemini_fake::FakeConfig::with_audio_load`]),
//!   streaming model audio at real time back to every session that sends audio.
//! - `load-client`: N concurrent sessions of one kind ([`Kind`]) at one pace ([`Pace`]) on a
//!   multi-thread runtime; it prints one JSON line ([`Report`]) with its CPU time, wall time,
//!   memory, chunks sent and received, and whether real time held.
//!
//! `cargo xtask load` builds both in release, runs every kind against one server process and
//! prints the table (see this crate's `README.md`).
//!
//! ```
//! use std::time::Duration;
//! use load::Lateness;
//!
//! let mut lateness = Lateness::default();
//! lateness.record(Duration::from_micros(400));
//! lateness.record(Duration::from_millis(3));
//! // The p99 lies below the upper edge of its 1 ms bucket.
//! assert_eq!(lateness.quantile_ms(0.99), Some(4));
//! ```

mod args;
mod audio;
mod bare;
mod lateness;
mod live;
pub mod procfs;
mod report;
mod run;

pub use args::{ClientArgs, Kind, Pace, USAGE};
pub use audio::{
    CHUNK, CHUNK_BYTES, MODEL_CHUNKS_PER_SECOND, live_setup_json, model_audio_chunks, setup_json,
};
pub use lateness::Lateness;
pub use report::Report;
pub use run::{run_client, run_connect, run_idle};
