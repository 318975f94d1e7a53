//! Where every byte of microphone audio went, as the simulated network saw it: which bytes of
//! what the application pushed each frame written on a connection carried, which of them the
//! client was given a receipt for (a pong to a ping written after them), what the session
//! reported lost. At the end, the server's own records say which frames it received; the
//! checks compare ([`AudioTally`]).
//!
//! Each pushed sample carries a small stamp (a pseudo-random offset of at most ±128, far below
//! the fake's voice threshold of RMS 500, so silence stays silence), so a frame of the server's
//! records matches only the bytes written in its place.

use std::collections::BTreeMap;
use std::ops::Range;

use agent_glue::conduit::AudioLoss;
use bytes::Bytes;
use resume_policy::ConnectionId;

use crate::checks::AudioTally;

/// What was written on one connection.
#[derive(Debug, Default)]
struct Written {
    /// The audio frames the socket took, in order, as byte ranges of what was pushed.
    frames: Vec<Range<u64>>,
    /// Audio bytes the socket took.
    total: u64,
    /// Audio bytes written before each ping, in order.
    pings: Vec<u64>,
    /// Pongs the client received.
    pongs: usize,
}

impl Written {
    /// Audio bytes written before the newest ping the client has the pong of.
    fn confirmed(&self) -> u64 {
        self.pongs
            .checked_sub(1)
            .and_then(|k| self.pings.get(k))
            .copied()
            .unwrap_or(0)
    }

    /// The last `bytes` bytes written, as ranges.
    fn last(&self, mut bytes: u64) -> Vec<Range<u64>> {
        let mut ranges = Vec::new();
        for frame in self.frames.iter().rev() {
            if bytes == 0 {
                break;
            }
            let take = bytes.min(frame.end - frame.start);
            ranges.push(frame.end - take..frame.end);
            bytes -= take;
        }
        ranges
    }
}

/// The trail of one schedule's microphone audio.
#[derive(Debug, Default)]
pub(crate) struct AudioTrail {
    /// Everything pushed, in order.
    pushed: Vec<u8>,
    /// Each push's allocation (start address → length, offset in `pushed`): a frame is a slice
    /// of a push, so its address says which bytes it carries.
    pushes: BTreeMap<usize, (usize, u64)>,
    /// The pushes themselves, kept so that no address is reused.
    kept: Vec<Bytes>,
    written: BTreeMap<ConnectionId, Written>,
    dropped: Vec<Range<u64>>,
    unconfirmed: Vec<Range<u64>>,
    over_reported: Vec<String>,
    mismatches: Vec<String>,
    reports: u64,
    reported_bytes: u64,
    audited_bytes: u64,
}

/// The stamp of sample `n`: -128..=127.
fn stamp(n: u64) -> i16 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    i16::from((z >> 56) as u8) - 128
}

impl AudioTrail {
    /// `pcm` (PCM16 little-endian), stamped, as the application pushes it.
    pub(crate) fn push(&mut self, mut pcm: Vec<u8>) -> Bytes {
        let offset = self.pushed.len() as u64;
        for (k, sample) in pcm.chunks_exact_mut(2).enumerate() {
            let value = i16::from_le_bytes([sample[0], sample[1]]);
            let stamped = value.saturating_add(stamp(offset / 2 + k as u64));
            sample.copy_from_slice(&stamped.to_le_bytes());
        }
        self.pushed.extend_from_slice(&pcm);
        let bytes = Bytes::from(pcm);
        self.pushes
            .insert(bytes.as_ptr() as usize, (bytes.len(), offset));
        self.kept.push(bytes.clone());
        bytes
    }

    /// Which bytes of what was pushed `slice` is.
    pub(crate) fn locate(&self, slice: &[u8]) -> Option<Range<u64>> {
        let at = slice.as_ptr() as usize;
        let (&start, &(len, offset)) = self.pushes.range(..=at).next_back()?;
        let from = at - start;
        (from + slice.len() <= len)
            .then(|| offset + from as u64..offset + (from + slice.len()) as u64)
    }

    /// The socket of `connection` took an audio frame: these bytes of what was pushed ([`locate`](Self::locate)), or a frame of this many bytes that is no slice of it.
    pub(crate) fn wrote_audio(
        &mut self,
        connection: ConnectionId,
        frame: Result<Range<u64>, usize>,
    ) {
        match frame {
            Ok(range) => {
                let written = self.written.entry(connection).or_default();
                written.total += range.end - range.start;
                written.frames.push(range);
            }
            Err(len) => self.mismatches.push(format!(
                "an audio frame of {len} bytes on connection {} is no slice of what was pushed",
                connection.0
            )),
        }
    }

    /// The socket of `connection` took a ping.
    pub(crate) fn wrote_ping(&mut self, connection: ConnectionId) {
        let written = self.written.entry(connection).or_default();
        written.pings.push(written.total);
    }

    /// The client received a pong on `connection`.
    pub(crate) fn pong(&mut self, connection: ConnectionId) {
        self.written.entry(connection).or_default().pongs += 1;
    }

    /// An `AudioDropped` event of `bytes` (rounded).
    pub(crate) fn reported(&mut self, bytes: u64) {
        self.reports += 1;
        self.reported_bytes += bytes;
    }

    /// What the session says an `AudioDropped` was about.
    pub(crate) fn loss(&mut self, loss: AudioLoss) {
        match loss {
            AudioLoss::Dropped(chunks) => {
                for chunk in chunks {
                    self.audited_bytes += chunk.len() as u64;
                    match self.locate(&chunk) {
                        Some(range) => self.dropped.push(range),
                        None => self.mismatches.push(format!(
                            "{} bytes reported dropped are no slice of what was pushed",
                            chunk.len()
                        )),
                    }
                }
            }
            AudioLoss::Unconfirmed { connection, bytes } => {
                self.audited_bytes += bytes;
                let written = self.written.entry(connection).or_default();
                let horizon = written.total - written.confirmed();
                if bytes > horizon {
                    self.over_reported.push(format!(
                        "connection {}: {bytes} bytes reported unconfirmed, {horizon} written since its last receipt",
                        connection.0
                    ));
                }
                let covered = written.last(bytes);
                self.unconfirmed.extend(covered);
            }
            other => self.mismatches.push(format!(
                "an audio loss the simulator does not know: {other:?}"
            )),
        }
    }

    /// The tally, given the audio frames the server's records show on each connection (in
    /// order) and the bytes the session still holds.
    pub(crate) fn tally(
        &self,
        received: &BTreeMap<ConnectionId, Vec<Vec<u8>>>,
        waiting: u64,
    ) -> AudioTally {
        let mut tally = AudioTally {
            pushed: self.pushed.len() as u64,
            unconfirmed: self.unconfirmed.clone(),
            dropped: self.dropped.clone(),
            waiting,
            over_reported: self.over_reported.clone(),
            mismatches: self.mismatches.clone(),
            reports: self.reports,
            reported_bytes: self.reported_bytes,
            audited_bytes: self.audited_bytes,
            ..AudioTally::default()
        };
        let none = Vec::new();
        let connections = self.written.keys().chain(received.keys());
        let mut seen = std::collections::BTreeSet::new();
        for &connection in connections {
            if !seen.insert(connection) {
                continue;
            }
            let frames = self
                .written
                .get(&connection)
                .map_or(&[][..], |w| &w.frames[..]);
            let records = received.get(&connection).unwrap_or(&none);
            for (k, record) in records.iter().enumerate() {
                let Some(frame) = frames.get(k) else {
                    tally.mismatches.push(format!(
                        "connection {}: the server received audio frame {k}, only {} were written",
                        connection.0,
                        frames.len()
                    ));
                    break;
                };
                let written = usize::try_from(frame.start)
                    .ok()
                    .zip(usize::try_from(frame.end).ok())
                    .and_then(|(a, b)| self.pushed.get(a..b));
                if written != Some(&record[..]) {
                    tally.mismatches.push(format!(
                        "connection {}: audio frame {k} as received is not bytes {frame:?} as written",
                        connection.0
                    ));
                }
                tally.received.push(frame.clone());
            }
            tally
                .lost
                .extend(frames.iter().skip(records.len()).cloned());
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_stay_far_below_the_voice_threshold() {
        let mut trail = AudioTrail::default();
        let silence = trail.push(vec![0; 32_000]);
        let samples: Vec<f64> = silence
            .chunks_exact(2)
            .map(|s| f64::from(i16::from_le_bytes([s[0], s[1]])))
            .collect();
        let rms = (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt();
        assert!(rms < 100.0, "{rms}");
        assert!(samples.iter().any(|&s| s != 0.0));
    }

    #[test]
    fn a_frame_is_located_in_what_was_pushed_and_reports_cover_the_last_bytes_written() {
        let mut trail = AudioTrail::default();
        let first = trail.push(vec![0; 100]);
        let second = trail.push(vec![0; 100]);
        let c = ConnectionId(1);
        let located = |pcm: &[u8]| trail.locate(pcm).ok_or(pcm.len());
        let frames = [
            located(&first[..40]),
            located(&first[40..]),
            located(&second[..30]),
        ];
        let [a, b, c2] = frames;
        trail.wrote_audio(c, a);
        trail.wrote_ping(c);
        trail.wrote_audio(c, b);
        trail.wrote_audio(c, c2);
        trail.pong(c);
        trail.loss(AudioLoss::Unconfirmed {
            connection: c,
            bytes: 90,
        });
        assert!(trail.over_reported.is_empty(), "{:?}", trail.over_reported);
        assert_eq!(trail.unconfirmed, vec![100..130, 40..100]);
        trail.loss(AudioLoss::Unconfirmed {
            connection: c,
            bytes: 91,
        });
        assert_eq!(trail.over_reported.len(), 1);
        let received = BTreeMap::from([(c, vec![first[..40].to_vec()])]);
        let tally = trail.tally(&received, 70);
        assert_eq!(tally.received, vec![0..40]);
        assert_eq!(tally.lost, vec![40..100, 100..130]);
        assert!(tally.mismatches.is_empty(), "{:?}", tally.mismatches);
    }
}
