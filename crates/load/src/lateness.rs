//! How late the send loop woke for each 20 ms chunk: a histogram with 1 ms buckets.

use std::time::Duration;

/// Buckets of 1 ms, `[0, 1)`, `[1, 2)`, …; the last one holds everything later.
const BUCKETS: usize = 256;

/// Lateness of scheduled sends (how long after its tick a chunk was handed over).
#[derive(Debug, Clone)]
pub struct Lateness {
    counts: Vec<u64>,
    max: Duration,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            counts: vec![0; BUCKETS],
            max: Duration::ZERO,
        }
    }
}

impl Lateness {
    /// Records one send that happened `late` after its tick.
    pub fn record(&mut self, late: Duration) {
        let bucket =
            usize::try_from(late.as_millis()).map_or(BUCKETS - 1, |ms| ms.min(BUCKETS - 1));
        self.counts[bucket] += 1;
        self.max = self.max.max(late);
    }

    /// Adds another session's record.
    pub fn merge(&mut self, other: &Lateness) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    /// Sends recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper edge, in ms, of the bucket holding the `q` quantile (`0.99` for p99): the
    /// p99 is below this. `None` when nothing was recorded.
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based, rounded up.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return u64::try_from(ms + 1).ok();
            }
        }
        u64::try_from(BUCKETS).ok()
    }

    /// The latest send.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_edges() {
        let mut a = Lateness::default();
        assert_eq!(a.quantile_ms(0.99), None);
        for _ in 0..98 {
            a.record(Duration::from_micros(300));
        }
        a.record(Duration::from_millis(5));
        let mut b = Lateness::default();
        b.record(Duration::from_secs(3));
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.quantile_ms(0.5), Some(1));
        assert_eq!(a.quantile_ms(0.99), Some(6));
        assert_eq!(a.quantile_ms(1.0), Some(256));
        assert_eq!(a.max(), Duration::from_secs(3));
    }
}
