//! Microphone audio that waits: pushed while no connection is up (the gap), or while the
//! socket is slower than the microphone (the backlog). Neither is counted by the core until it
//! is handed to a connection, so it can be dropped without disturbing the ledger's numbering.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::config::AudioGapPolicy;

/// A bounded buffer of PCM16 mono chunks (oldest dropped first), or nothing at all.
#[derive(Debug)]
pub(crate) struct AudioGap {
    max_bytes: usize,
    bytes_per_second: usize,
    chunks: VecDeque<Bytes>,
    held: usize,
}

impl AudioGap {
    pub(crate) fn new(policy: AudioGapPolicy, sample_rate: u32) -> Self {
        let max = match policy {
            AudioGapPolicy::Buffer { max } => max,
            AudioGapPolicy::Drop => Duration::ZERO,
        };
        Self::bounded(max, sample_rate)
    }

    /// A buffer of at most `max` of audio at `sample_rate`.
    pub(crate) fn bounded(max: Duration, sample_rate: u32) -> Self {
        let bytes_per_second = sample_rate as usize * 2;
        Self {
            max_bytes: (max.as_secs_f64() * bytes_per_second as f64) as usize,
            bytes_per_second: bytes_per_second.max(1),
            chunks: VecDeque::new(),
            held: 0,
        }
    }

    /// Whether `bytes` more fit within the bound (always, when the buffer is empty and the
    /// bound is not zero: one push of any length is taken whole).
    pub(crate) fn has_room(&self, bytes: usize) -> bool {
        self.max_bytes > 0 && (self.held == 0 || self.held + bytes <= self.max_bytes)
    }

    /// Whether the buffer keeps any audio at all (not `AudioGapPolicy::Drop`, not a zero bound).
    pub(crate) fn keeps_audio(&self) -> bool {
        self.max_bytes > 0
    }

    /// How much audio is held.
    pub(crate) fn held(&self) -> Duration {
        self.duration(self.held)
    }

    /// How many bytes are held.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn duration(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64)
    }

    /// How much audio `chunks` hold (`None` for none).
    #[cfg(test)]
    fn dropped(&self, chunks: &[Bytes]) -> Option<Duration> {
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        (bytes > 0).then(|| self.duration(bytes))
    }

    /// Keeps `pcm`; returns the chunks dropped (oldest first) to stay within the bound: none
    /// (and no allocation) most of the time.
    pub(crate) fn push(&mut self, pcm: Bytes) -> Vec<Bytes> {
        let mut dropped = Vec::new();
        self.held += pcm.len();
        self.chunks.push_back(pcm);
        while self.held > self.max_bytes {
            match self.chunks.pop_front() {
                Some(old) => {
                    self.held -= old.len();
                    dropped.push(old);
                }
                None => break,
            }
        }
        dropped
    }

    /// Everything held, oldest first.
    pub(crate) fn take(&mut self) -> VecDeque<Bytes> {
        self.held = 0;
        std::mem::take(&mut self.chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_the_bound_and_reports_what_it_drops() {
        // 100 ms at 16 kHz = 3,200 bytes.
        let mut gap = AudioGap::new(
            AudioGapPolicy::Buffer {
                max: Duration::from_millis(100),
            },
            16_000,
        );
        assert!(gap.push(vec![1; 1_600].into()).is_empty());
        assert!(gap.has_room(1_600));
        assert!(gap.push(vec![2; 1_600].into()).is_empty());
        assert!(!gap.has_room(2));
        assert_eq!(gap.held(), Duration::from_millis(100));
        let dropped = gap.push(vec![3; 640].into());
        assert_eq!(dropped, vec![Bytes::from(vec![1; 1_600])]);
        assert_eq!(gap.dropped(&dropped), Some(Duration::from_millis(50)));
        assert_eq!(
            gap.take(),
            vec![Bytes::from(vec![2; 1_600]), Bytes::from(vec![3; 640])]
        );
        assert!(gap.take().is_empty());
    }

    #[test]
    fn drop_policy_keeps_nothing() {
        let mut gap = AudioGap::new(AudioGapPolicy::Drop, 16_000);
        assert!(!gap.has_room(640));
        let dropped = gap.push(vec![0; 640].into());
        assert_eq!(gap.dropped(&dropped), Some(Duration::from_millis(20)));
        assert!(gap.take().is_empty());
    }
}
