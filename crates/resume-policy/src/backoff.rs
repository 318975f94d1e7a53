//! Backoff before a connection attempt: exponential, jittered by an injected value, bounded.

use std::time::Duration;

use crate::Millis;

/// Exponential backoff with jitter and a bounded number of attempts.
///
/// The crate has no randomness of its own: the caller passes `jitter`, any `u64` (random bits
/// from its own generator, or a constant in tests). The delay of attempt `n ≥ 1` is drawn from
/// `[d/2, d]` with `d = min(max, base · 2^(n-1))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Backoff {
    /// The nominal delay of the first retry. Default 250 ms.
    pub base: Duration,
    /// The largest delay. Default 10 s.
    pub max: Duration,
    /// Attempts after which the session gives up. Default 8.
    pub max_attempts: u32,
    /// A connection that stayed up this long resets the attempt count. Default 30 s.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
            max_attempts: 8,
            stable_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 = the first try: no delay).
    pub fn delay(&self, attempt: u32, jitter: u64) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let shift = (attempt - 1).min(31);
        let nominal = self.base.saturating_mul(1u32 << shift).min(self.max);
        let nominal_ms = u64::try_from(nominal.as_millis()).unwrap_or(u64::MAX);
        let half = nominal_ms / 2;
        let spread = nominal_ms - half;
        let extra = if spread == 0 {
            0
        } else {
            jitter % (spread + 1)
        };
        Duration::from_millis(half + extra)
    }

    /// Whether attempt `attempt` is beyond the bound.
    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }
}

/// Counts consecutive connection attempts that did not lead to a stable connection; the
/// session layer feeds it and passes [`attempt`](Self::attempt) in the
/// [`ResumeContext`](crate::ResumeContext).
///
/// ```
/// use std::time::Duration;
/// use resume_policy::{Attempts, Backoff, Millis};
///
/// let backoff = Backoff::default();
/// let mut attempts = Attempts::default();
/// attempts.on_failed(); // a dial failed
/// attempts.on_connected(Millis(1_000));
/// attempts.on_lost(Millis(1_500), &backoff); // dropped after 0.5 s: flapping
/// assert_eq!(attempts.attempt(), 2);
/// attempts.on_connected(Millis(2_000));
/// attempts.on_lost(Millis(60_000), &backoff); // stable for 58 s
/// assert_eq!(attempts.attempt(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    failures: u32,
    connected_at: Option<Millis>,
}

impl Attempts {
    /// The attempt number of the next connection attempt (0 = first try).
    pub fn attempt(&self) -> u32 {
        self.failures
    }

    /// A dial or a setup failed.
    pub fn on_failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.connected_at = None;
    }

    /// `setupComplete` arrived at `now`.
    pub fn on_connected(&mut self, now: Millis) {
        self.connected_at = Some(now);
    }

    /// The connection ended at `now`: the count resets if it had been stable.
    pub fn on_lost(&mut self, now: Millis, backoff: &Backoff) {
        match self.connected_at.take() {
            Some(at) if now.since(at) >= backoff.stable_after => self.failures = 0,
            _ => self.failures = self.failures.saturating_add(1),
        }
    }

    /// A planned rotation (goAway, config change) ended the connection: no failure.
    pub fn on_rotated(&mut self) {
        self.connected_at = None;
        self.failures = 0;
    }
}
