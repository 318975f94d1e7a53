//! The microphone's path from `push_audio` to audio frames, without IO: which connection a
//! chunk goes to, when it waits (in the gap buffer while no connection takes audio, in the
//! backlog while the writer is busy), when what waited goes out, and what is dropped at the
//! bounds. The [`Conduit`](crate::conduit::Conduit) drives it, so the shell and the simulator
//! run the same code.
//!
//! Audio that waits is not counted by the core until it is handed to a connection, so it can
//! be dropped without disturbing the ledger's numbering; audio handed to a connection is
//! counted at once ([`SessionCore::audio_sent`]), in the order the frames are given to
//! [`AudioOut::audio`].

use std::time::Duration;

use bytes::Bytes;
use resume_policy::ConnectionId;

use crate::Error;
use crate::config::SessionConfig;
use crate::core::SessionCore;
use crate::gap::AudioGap;

/// Where the path puts what it produces.
pub(crate) trait AudioOut {
    /// A run of audio for `connection`, to be written as frames of `frame_len` bytes (the last
    /// one may be shorter), in this order, after whatever was queued before.
    /// The core has counted its frames already. One call per run, not per frame: the frames
    /// are cut as they are written, without a reference count per frame.
    fn audio(&mut self, connection: ConnectionId, pcm: Bytes, frame_len: usize);
    /// Audio dropped at a bound, oldest first: report it
    /// ([`SessionEvent::AudioDropped`](crate::SessionEvent::AudioDropped)).
    fn dropped(&mut self, chunks: Vec<Bytes>);
}

/// What a full buffer does with the next push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtBound {
    /// Drop the oldest audio and report it.
    DropOldest,
    /// Refuse with [`Error::Full`], taking nothing.
    Refuse,
}

/// The microphone path of one session.
#[derive(Debug)]
pub(crate) struct AudioPath {
    gap: AudioGap,
    backlog: AudioGap,
    /// Frame length in bytes.
    chunk: usize,
    /// Bytes of audio per second (16-bit samples at the input rate).
    bytes_per_second: u64,
}

impl AudioPath {
    /// The path `config` asks for: its gap policy, backlog bound, frame length and rate.
    pub(crate) fn from_config(config: &SessionConfig) -> Self {
        let rate = config.input_sample_rate;
        Self {
            gap: AudioGap::new(config.audio_gap, rate),
            backlog: AudioGap::bounded(config.audio_backlog, rate),
            chunk: config.audio_chunk_bytes(),
            bytes_per_second: u64::from(rate).max(1) * 2,
        }
    }

    /// Audio pushed by the application. `writer_idle`: the connection that takes audio can
    /// take a frame now, with nothing queued before it.
    ///
    /// # Errors
    /// [`Error::Full`] with [`AtBound::Refuse`] when the buffer the audio would wait in is at
    /// its bound: nothing is taken, and the audio is handed back (for a caller that waits for
    /// room and tries again, without a reference count per attempt).
    pub(crate) fn push(
        &mut self,
        core: &mut SessionCore,
        pcm: Bytes,
        writer_idle: bool,
        at_bound: AtBound,
        out: &mut impl AudioOut,
    ) -> Result<(), (Error, Bytes)> {
        let Some(target) = core.audio_target() else {
            // A gap that keeps nothing (`AudioGapPolicy::Drop`) drops and reports, never refuses.
            if self.gap.keeps_audio()
                && !self.gap.has_room(pcm.len())
                && at_bound == AtBound::Refuse
            {
                let held = self.gap.held();
                return Err((Error::Full { held }, pcm));
            }
            self.hold_in_gap(pcm, out);
            return Ok(());
        };
        if writer_idle && self.backlog.is_empty() && self.gap.is_empty() {
            self.frames(core, target, pcm, out);
            return Ok(());
        }
        if !self.backlog.has_room(pcm.len()) && at_bound == AtBound::Refuse {
            let held = self.backlog.held();
            return Err((Error::Full { held }, pcm));
        }
        let dropped = self.backlog.push(pcm);
        if !dropped.is_empty() {
            out.dropped(dropped);
        }
        Ok(())
    }

    /// Hands what waits (the gap first, then the backlog) to the connection that takes audio,
    /// counted from now: after a setup (once its plan is queued), before an application
    /// command (so that the core numbers the audio pushed before it first), and whenever the
    /// writer is idle again. Nothing happens while no connection takes audio.
    pub(crate) fn flush(&mut self, core: &mut SessionCore, out: &mut impl AudioOut) {
        if core.audio_target().is_none() {
            return;
        }
        let held: Vec<Bytes> = self
            .gap
            .take()
            .into_iter()
            .chain(self.backlog.take())
            .collect();
        for pcm in held {
            self.audio(core, pcm, out);
        }
    }

    /// Audio framed for a connection that did not write it (the connection failed, ended or
    /// is closing): it waits in the gap buffer, in its order, for the next connection's setup,
    /// and so does the backlog behind it when the connection `ended` (with a failed connection
    /// the backlog stays: the connection may not take audio, and the core does not know yet).
    /// Never back to the connection it was meant for: the writer would loop on it.
    pub(crate) fn unwritten(
        &mut self,
        pcm: impl IntoIterator<Item = Bytes>,
        ended: bool,
        out: &mut impl AudioOut,
    ) {
        for pcm in pcm {
            self.hold_in_gap(pcm, out);
        }
        if ended {
            for pcm in self.backlog.take() {
                self.hold_in_gap(pcm, out);
            }
        }
    }

    /// Bytes waiting in the backlog and the gap.
    pub(crate) fn held_bytes(&self) -> usize {
        self.backlog.held_bytes() + self.gap.held_bytes()
    }

    /// Audio waiting behind a busy writer.
    pub(crate) fn backlog(&self) -> Duration {
        self.backlog.held()
    }

    /// Audio held while no connection takes audio.
    pub(crate) fn gap(&self) -> Duration {
        self.gap.held()
    }

    /// Whether nothing waits at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.backlog.is_empty() && self.gap.is_empty()
    }

    /// Audio for the connection that takes audio now, or into the gap buffer.
    fn audio(&mut self, core: &mut SessionCore, pcm: Bytes, out: &mut impl AudioOut) {
        match core.audio_target() {
            Some(connection) => self.frames(core, connection, pcm, out),
            None => self.hold_in_gap(pcm, out),
        }
    }

    /// `pcm` as frames on `connection`, counted by the core.
    fn frames(
        &self,
        core: &mut SessionCore,
        connection: ConnectionId,
        pcm: Bytes,
        out: &mut impl AudioOut,
    ) {
        if pcm.is_empty() {
            return;
        }
        // Counted in stretches of frames of one length, all voiced or all quiet (where speech
        // may end is a matter of frames and their durations).
        let chunk = self.chunk.max(1);
        let mut stretch: Option<(bool, usize, u32, usize)> = None;
        for frame in pcm.chunks(chunk) {
            let voiced = may_be_speech(frame);
            match stretch.as_mut() {
                Some((v, len, count, bytes)) if *v == voiced && *len == frame.len() => {
                    *count += 1;
                    *bytes += frame.len();
                }
                _ => {
                    if let Some((v, _, count, bytes)) = stretch.take() {
                        core.audio_sent(connection, count, self.duration(bytes), v);
                    }
                    stretch = Some((voiced, frame.len(), 1, frame.len()));
                }
            }
        }
        if let Some((v, _, count, bytes)) = stretch {
            core.audio_sent(connection, count, self.duration(bytes), v);
        }
        out.audio(connection, pcm, chunk);
    }

    /// How long `bytes` of audio last.
    fn duration(&self, bytes: usize) -> Duration {
        Duration::from_nanos(
            u64::try_from(bytes)
                .unwrap_or(u64::MAX)
                .saturating_mul(1_000_000_000)
                / self.bytes_per_second,
        )
    }

    /// Keeps `pcm` in the gap buffer, reporting what the bound made it drop.
    fn hold_in_gap(&mut self, pcm: Bytes, out: &mut impl AudioOut) {
        let dropped = self.gap.push(pcm);
        if !dropped.is_empty() {
            out.dropped(dropped);
        }
    }
}

/// The peak below which 16-bit PCM is taken for silence: about -42 dBFS. No voice detector
/// takes audio that never reaches it for speech (the fake's needs an RMS of 500, about
/// -36 dBFS), and room noise on a live microphone usually does reach it, which only makes the
/// audio count as possible speech, as all audio did before.
pub(crate) const SPEECH_FLOOR: u16 = 256;

/// Lanes of the voice floor's scan: 16 samples, two SSE2 registers of minima and two of
/// maxima.
const FLOOR_LANES: usize = 16;

/// Bytes per block of the voice floor's scan: 64 samples (4 ms at 16 kHz), four rows of lanes.
const FLOOR_BLOCK: usize = FLOOR_LANES * 2 * 4;

/// Whether some sample of `pcm` (16-bit little-endian) reaches [`SPEECH_FLOOR`]: audio that
/// does not cannot be speech, so an `audioStreamEnd` after nothing else ends no spoken turn.
/// Stops at the first block of 64 samples with a loud one, so speech costs next to nothing;
/// silence is read once, without a branch per sample: 16 lanes each keep the lowest and highest
/// sample they saw (fixed-size rows read as whole samples, which the compiler turns into
/// vector loads and `pminsw`/`pmaxsw` even at baseline SSE2), then one comparison per block.
/// Every quiet chunk of a real-time microphone is read whole, so this is on every push (about
/// 270 instructions for a 20 ms chunk at 16 kHz, where one sample at a time took 740).
pub(crate) fn may_be_speech(pcm: &[u8]) -> bool {
    // |s| >= SPEECH_FLOOR, for a stretch: its maximum reaches the floor or its minimum reaches
    // minus the floor (the floor is at most i16::MAX + 1, so both bounds fit a wider type).
    let floor = i32::from(SPEECH_FLOOR);
    let reached = |low: i16, high: i16| i32::from(high) >= floor || i32::from(low) <= -floor;
    let mut blocks = pcm.chunks_exact(FLOOR_BLOCK);
    for block in &mut blocks {
        let mut low = [i16::MAX; FLOOR_LANES];
        let mut high = [i16::MIN; FLOOR_LANES];
        for row in block.chunks_exact(FLOOR_LANES * 2) {
            for lane in 0..FLOOR_LANES {
                let bytes = <&[u8; 2]>::try_from(&row[2 * lane..2 * lane + 2]).unwrap_or(&[0, 0]);
                let sample = i16::from_le_bytes(*bytes);
                low[lane] = low[lane].min(sample);
                high[lane] = high[lane].max(sample);
            }
        }
        let low = low.into_iter().fold(i16::MAX, i16::min);
        let high = high.into_iter().fold(i16::MIN, i16::max);
        if reached(low, high) {
            return true;
        }
    }
    let (low, high) = blocks
        .remainder()
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .fold((i16::MAX, i16::MIN), |(low, high), s| {
            (low.min(s), high.max(s))
        });
    reached(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
        samples.into_iter().flat_map(i16::to_le_bytes).collect()
    }

    #[test]
    fn only_audio_reaching_the_floor_may_be_speech() {
        assert!(!may_be_speech(&pcm([0; 320])));
        // Low-level noise (the simulator stamps its samples with up to 128).
        assert!(!may_be_speech(&pcm(
            (0..320).map(|n| (n % 256) as i16 - 128)
        )));
        assert!(may_be_speech(&pcm([0, 0, 300, 0])));
        assert!(may_be_speech(&pcm([0, -300])));
        // An odd trailing byte is not a sample.
        assert!(!may_be_speech(&[0xff]));
        // The floor itself, either sign, in any block of a chunk.
        assert!(!may_be_speech(&pcm([255, -255, 0, 1, -1])));
        assert!(may_be_speech(&pcm([256])));
        assert!(may_be_speech(&pcm([-256])));
        assert!(may_be_speech(&pcm([i16::MIN])));
        assert!(may_be_speech(&pcm([i16::MAX])));
        let mut late = vec![0i16; 320];
        late[319] = -256;
        assert!(may_be_speech(&pcm(late.clone())));
        late[319] = -255;
        assert!(!may_be_speech(&pcm(late)));
    }

    #[test]
    fn the_block_scan_agrees_with_one_sample_at_a_time() {
        let reference = |pcm: &[u8]| {
            pcm.chunks_exact(2)
                .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                .any(|s| s.abs() >= i32::from(SPEECH_FLOOR))
        };
        for len in 0..300 {
            for at in 0..len {
                for loud in [255, 256, -255, -256, i16::MIN, i16::MAX] {
                    let mut samples = vec![3i16; len];
                    samples[at] = loud;
                    let mut bytes = pcm(samples);
                    assert_eq!(
                        may_be_speech(&bytes),
                        reference(&bytes),
                        "{len} {at} {loud}"
                    );
                    bytes.push(0xff);
                    assert_eq!(
                        may_be_speech(&bytes),
                        reference(&bytes),
                        "{len} {at} {loud}"
                    );
                }
            }
        }
    }
}
