//! Microphone audio pushed while no connection is up.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::AudioGapPolicy;

/// A bounded buffer of PCM16 mono chunks (oldest dropped first), or nothing at all.
#[derive(Debug)]
pub(crate) struct AudioGap {
    max_bytes: usize,
    bytes_per_second: usize,
    chunks: VecDeque<Vec<u8>>,
    held: usize,
}

impl AudioGap {
    pub(crate) fn new(policy: AudioGapPolicy, sample_rate: u32) -> Self {
        let bytes_per_second = sample_rate as usize * 2;
        let max_bytes = match policy {
            AudioGapPolicy::Buffer { max } => {
                (max.as_secs_f64() * bytes_per_second as f64) as usize
            }
            AudioGapPolicy::Drop => 0,
        };
        Self {
            max_bytes,
            bytes_per_second: bytes_per_second.max(1),
            chunks: VecDeque::new(),
            held: 0,
        }
    }

    /// Keeps `pcm`; returns how much audio was dropped to stay within the bound, if any.
    pub(crate) fn push(&mut self, pcm: Vec<u8>) -> Option<Duration> {
        let mut dropped = 0usize;
        self.held += pcm.len();
        self.chunks.push_back(pcm);
        while self.held > self.max_bytes {
            match self.chunks.pop_front() {
                Some(old) => {
                    self.held -= old.len();
                    dropped += old.len();
                }
                None => break,
            }
        }
        (dropped > 0)
            .then(|| Duration::from_secs_f64(dropped as f64 / self.bytes_per_second as f64))
    }

    /// Everything held, oldest first.
    pub(crate) fn take(&mut self) -> Vec<Vec<u8>> {
        self.held = 0;
        self.chunks.drain(..).collect()
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
        assert_eq!(gap.push(vec![1; 1_600]), None);
        assert_eq!(gap.push(vec![2; 1_600]), None);
        assert_eq!(gap.push(vec![3; 640]), Some(Duration::from_millis(50)));
        assert_eq!(gap.take(), vec![vec![2; 1_600], vec![3; 640]]);
        assert!(gap.take().is_empty());
    }

    #[test]
    fn drop_policy_keeps_nothing() {
        let mut gap = AudioGap::new(AudioGapPolicy::Drop, 16_000);
        assert_eq!(gap.push(vec![0; 640]), Some(Duration::from_millis(20)));
        assert!(gap.take().is_empty());
    }
}
