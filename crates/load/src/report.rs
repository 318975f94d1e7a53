//! The one machine-readable line `load-client` prints at the end.

use std::time::Duration;

use serde_json::json;

use crate::procfs::CpuTime;
use crate::{Kind, Lateness, Pace};

/// A send loop waking later than this at the 99th percentile has lost real time.
pub(crate) const LATENESS_LIMIT_MS: u64 = 20;

/// At least this share of the model audio due must have arrived.
pub(crate) const RECEIVED_SHARE: f64 = 0.95;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Client kind.
    pub kind: Kind,
    /// `realtime`, `afap`, `idle` or `connect`.
    pub mode: &'static str,
    /// Sessions asked for.
    pub sessions: usize,
    /// Sessions that connected.
    pub connected: usize,
    /// Sessions that failed (connect, send or an unexpected end); the first error is kept.
    pub errors: usize,
    /// The first error seen.
    pub first_error: Option<String>,
    /// Runtime worker threads.
    pub threads: usize,
    /// Time to connect every session.
    pub connect_wall: Duration,
    /// The measured window: from the common start to the last session closed.
    pub wall: Duration,
    /// Client CPU time in that window.
    pub cpu: CpuTime,
    /// Resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Chunks handed to the session or socket.
    pub chunks: u64,
    /// Chunks the schedule called for (real time only).
    pub chunks_due: u64,
    /// Model audio chunks received.
    pub received: u64,
    /// Model audio chunks due: 25 a second per session over the streaming time.
    pub expected: u64,
    /// How late the send loops woke (real time only).
    pub lateness: Lateness,
    /// Idle mode: memory per connected session, KiB.
    pub idle_kib_per_session: Option<f64>,
    /// Connect mode: how long one `LiveSession::connect` took (to `setupComplete`), µs: the
    /// 10th percentile, the median and the 90th percentile.
    pub connect_us: Option<[f64; 3]>,
    /// Connect mode: the same for the bare connections interleaved with them.
    pub bare_connect_us: Option<[f64; 3]>,
}

impl Report {
    /// Whether real time held: no session failed, the send loops' p99 lateness stayed under
    /// 20 ms, 95 % of the scheduled chunks went out and 95 % of the model audio due came back.
    /// `None` when the run was not at real time.
    #[must_use]
    pub fn held(&self) -> Option<bool> {
        if self.mode != Pace::Realtime.name() {
            return None;
        }
        let p99_ok = self
            .lateness
            .quantile_ms(0.99)
            .is_some_and(|p99| p99 <= LATENESS_LIMIT_MS);
        Some(
            self.errors == 0
                && self.connected == self.sessions
                && p99_ok
                && share(self.chunks, self.chunks_due) >= RECEIVED_SHARE
                && share(self.received, self.expected) >= RECEIVED_SHARE,
        )
    }

    /// Client CPU per session per second of the window, in ms.
    #[must_use]
    pub fn cpu_ms_per_session_second(&self) -> f64 {
        let session_seconds = self.wall.as_secs_f64() * count(self.connected);
        if session_seconds > 0.0 {
            self.cpu.total().as_secs_f64() * 1e3 / session_seconds
        } else {
            0.0
        }
    }

    /// Client CPU per chunk sent, in µs (everything the client did in the window, reading the
    /// model audio included, over the chunks it sent).
    #[must_use]
    pub fn cpu_us_per_chunk(&self) -> f64 {
        if self.chunks > 0 {
            self.cpu.total().as_secs_f64() * 1e6 / count(self.chunks)
        } else {
            0.0
        }
    }

    /// The report as one JSON line.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        json!({
            "kind": self.kind.name(),
            "mode": self.mode,
            "sessions": self.sessions,
            "connected": self.connected,
            "errors": self.errors,
            "first_error": self.first_error,
            "threads": self.threads,
            "connect_s": self.connect_wall.as_secs_f64(),
            "wall_s": self.wall.as_secs_f64(),
            "cpu_s": self.cpu.total().as_secs_f64(),
            "cpu_user_s": self.cpu.user.as_secs_f64(),
            "cpu_sys_s": self.cpu.sys.as_secs_f64(),
            "rss_kib": self.rss_kib,
            "chunks": self.chunks,
            "chunks_due": self.chunks_due,
            "received": self.received,
            "expected": self.expected,
            "received_share": share(self.received, self.expected),
            "lateness_p99_ms": self.lateness.quantile_ms(0.99),
            "lateness_max_ms": self.lateness.max().as_secs_f64() * 1e3,
            "held": self.held(),
            "cpu_ms_per_session_s": self.cpu_ms_per_session_second(),
            "cpu_us_per_chunk": self.cpu_us_per_chunk(),
            "idle_kib_per_session": self.idle_kib_per_session,
            "connect_p10_us": self.connect_us.map(|c| c[0]),
            "connect_median_us": self.connect_us.map(|c| c[1]),
            "connect_p90_us": self.connect_us.map(|c| c[2]),
            "bare_connect_p10_us": self.bare_connect_us.map(|c| c[0]),
            "bare_connect_median_us": self.bare_connect_us.map(|c| c[1]),
            "bare_connect_p90_us": self.bare_connect_us.map(|c| c[2]),
        })
        .to_string()
    }
}

#[allow(clippy::cast_precision_loss)]
fn count<T: TryInto<u64>>(n: T) -> f64 {
    n.try_into().unwrap_or(u64::MAX) as f64
}

/// `part / whole`, 1 when nothing was due.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        count(part) / count(whole)
    }
}
