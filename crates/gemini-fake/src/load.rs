//! Load mode ([`FakeConfig::with_audio_load`](crate::FakeConfig::with_audio_load)): model audio
//! streamed back at real time for as long as client audio keeps arriving, at a cost small
//! enough that the fake is not what limits a load benchmark.
//!
//! Off by default. When on, a client audio frame after `setupComplete` is only noticed (not
//! decoded, recorded, counted as a client message, or fed to the VAD), and each connection sends
//! one pre-encoded 40 ms chunk of 24 kHz model audio every 40 ms while the stream runs. The
//! decisions are here, with time as an argument; the connection core (`link.rs`) calls them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Bytes;

use crate::outbound;
use crate::script::{self, CHUNK_AUDIO_MS};

/// Time between two chunks of streamed model audio: the 40 ms each chunk holds (25 a second).
pub(crate) const INTERVAL: Duration = Duration::from_millis(CHUNK_AUDIO_MS as u64);

/// The stream stops when no client audio arrived for this long (five 20 ms microphone chunks).
pub(crate) const IDLE_AFTER: Duration = Duration::from_millis(100);

/// How every audio frame that `gemini-transport` writes begins (its canonical encoding). Frames
/// spelled otherwise take the normal, fully checked path.
const CLIENT_AUDIO_PREFIX: &[u8] = br#"{"realtimeInput":{"audio":"#;

/// Whether a client frame is an audio frame in the canonical encoding.
pub(crate) fn is_client_audio(raw: &[u8]) -> bool {
    raw.starts_with(CLIENT_AUDIO_PREFIX)
}

/// The model audio frame every tick sends: one 40 ms chunk of the answers' 440 Hz tone at
/// 24 kHz in `serverContent.modelTurn.inlineData`, encoded once per server.
pub(crate) fn model_audio_frame() -> Bytes {
    let message = outbound::audio_chunk(script::chunk_audio(0));
    Bytes::from(message.to_json().into_bytes())
}

/// The audio chunks a server in load mode took in and sent out, over all its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadCounts {
    /// Client audio frames noticed after `setupComplete`.
    pub audio_in: u64,
    /// Model audio chunks queued for sending.
    pub audio_out: u64,
}

/// The server-wide counters behind [`LoadCounts`].
#[derive(Debug, Default)]
pub(crate) struct LoadCounters {
    audio_in: AtomicU64,
    audio_out: AtomicU64,
}

impl LoadCounters {
    pub(crate) fn took_audio(&self) {
        self.audio_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sent_audio(&self) {
        self.audio_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> LoadCounts {
        LoadCounts {
            audio_in: self.audio_in.load(Ordering::Relaxed),
            audio_out: self.audio_out.load(Ordering::Relaxed),
        }
    }
}

/// One connection's model audio stream.
#[derive(Debug, Default)]
pub(crate) struct LoadStream {
    /// When the next chunk is due; `None` while the stream is stopped.
    next_at: Option<Instant>,
    /// When the last client audio frame arrived.
    last_audio: Option<Instant>,
}

impl LoadStream {
    /// Client audio arrived at `now`: the stream starts (its first chunk one interval later) or
    /// goes on.
    pub(crate) fn on_client_audio(&mut self, now: Instant) {
        self.last_audio = Some(now);
        if self.next_at.is_none() {
            self.next_at = Some(now + INTERVAL);
        }
    }

    /// When the stream next wants to act.
    pub(crate) fn next_tick(&self) -> Option<Instant> {
        self.next_at
    }

    /// Runs a due tick: `true` when a chunk goes out now. The schedule stays on its 40 ms grid;
    /// a tick found more than one interval late is skipped rather than made up, so a server
    /// that falls behind sends fewer chunks (and a benchmark sees it). With no client audio for
    /// [`IDLE_AFTER`] the stream stops.
    pub(crate) fn on_tick(&mut self, now: Instant) -> bool {
        let Some(at) = self.next_at.filter(|at| *at <= now) else {
            return false;
        };
        let listening = self
            .last_audio
            .is_some_and(|last| now.saturating_duration_since(last) <= IDLE_AFTER);
        if !listening {
            self.next_at = None;
            return false;
        }
        let next = at + INTERVAL;
        self.next_at = Some(if next <= now { now + INTERVAL } else { next });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn streams_every_40ms_while_audio_arrives_then_stops() {
        let t0 = Instant::now();
        let mut stream = LoadStream::default();
        assert_eq!(stream.next_tick(), None);
        assert!(!stream.on_tick(t0));
        stream.on_client_audio(t0);
        assert_eq!(stream.next_tick(), Some(t0 + ms(40)));
        assert!(!stream.on_tick(t0 + ms(39)), "not due yet");
        stream.on_client_audio(t0 + ms(20));
        assert!(stream.on_tick(t0 + ms(41)));
        // A tick a little late keeps the grid.
        assert_eq!(stream.next_tick(), Some(t0 + ms(80)));
        stream.on_client_audio(t0 + ms(60));
        assert!(stream.on_tick(t0 + ms(80)));
        // Last audio at 60 ms: still listening at 160, not after.
        assert!(stream.on_tick(t0 + ms(120)));
        assert!(stream.on_tick(t0 + ms(160)));
        assert!(!stream.on_tick(t0 + ms(200)));
        assert_eq!(stream.next_tick(), None);
        // Audio again restarts it.
        stream.on_client_audio(t0 + ms(500));
        assert_eq!(stream.next_tick(), Some(t0 + ms(540)));
    }

    #[test]
    fn a_tick_more_than_an_interval_late_is_skipped() {
        let t0 = Instant::now();
        let mut stream = LoadStream::default();
        stream.on_client_audio(t0);
        stream.on_client_audio(t0 + ms(95));
        assert!(stream.on_tick(t0 + ms(95)));
        assert_eq!(stream.next_tick(), Some(t0 + ms(135)));
    }

    #[test]
    fn only_canonical_audio_frames_take_the_fast_path() {
        let mut buf = Vec::new();
        gemini_transport::wire::ClientMessage::write_audio_json(&mut buf, &[1, 2, 3, 4], 16_000);
        assert!(is_client_audio(&buf));
        assert!(!is_client_audio(br#"{"realtimeInput":{"text":"hi"}}"#));
        assert!(!is_client_audio(br#"{"realtime_input":{"audio":{}}}"#));
        let frame = model_audio_frame();
        let decoded = gemini_transport::wire::ServerMessage::from_json(&frame);
        assert!(decoded.is_ok(), "{decoded:?}");
    }
}
