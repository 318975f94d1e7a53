//! Microphone audio in any form ([`LiveSession::push_samples`](crate::LiveSession::push_samples)):
//! `i16` or `f32` samples (or PCM16 bytes) at any rate, mono or interleaved, turned into the
//! PCM16 mono frames the session sends at its input rate
//! ([`LiveSessionBuilder::input_sample_rate`](crate::LiveSessionBuilder::input_sample_rate),
//! 16 kHz by default). Channels are averaged; a rate that differs from the session's is
//! resampled by rubato's FFT resampler, whose state carries from one push to the next so that
//! the stream has no seams. Pure: no IO, no clock.

use bytes::{BufMut, Bytes, BytesMut};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use crate::Error;

/// The lowest and highest input rates taken (telephony's 8 kHz to studio 384 kHz).
const RATES: std::ops::RangeInclusive<u32> = 8_000..=384_000;

/// How samples handed to [`LiveSession::push_samples`](crate::LiveSession::push_samples) are
/// laid out: their rate and how many interleaved channels (frames of `channels` samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AudioFormat {
    /// Samples per second, per channel (8 kHz to 384 kHz).
    pub sample_rate: u32,
    /// Interleaved channels (1 to 8); they are averaged into the mono the service takes.
    pub channels: u16,
}

impl AudioFormat {
    /// Mono at `sample_rate`.
    #[must_use]
    pub const fn mono(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            channels: 1,
        }
    }

    /// Interleaved stereo (left, right, left, …) at `sample_rate`.
    #[must_use]
    pub const fn stereo(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            channels: 2,
        }
    }

    /// `channels` interleaved channels at `sample_rate` (checked when audio is pushed).
    #[must_use]
    pub const fn new(sample_rate: u32, channels: u16) -> Self {
        Self {
            sample_rate,
            channels,
        }
    }

    fn check(self, samples: usize) -> Result<(), Error> {
        if !RATES.contains(&self.sample_rate) {
            return Err(Error::InvalidArgument(format!(
                "an audio sample rate of {} Hz (taken: 8,000 to 384,000)",
                self.sample_rate
            )));
        }
        if !(1..=8).contains(&self.channels) {
            return Err(Error::InvalidArgument(format!(
                "{} audio channels (taken: 1 to 8)",
                self.channels
            )));
        }
        if !samples.is_multiple_of(usize::from(self.channels)) {
            return Err(Error::InvalidArgument(format!(
                "{samples} samples are not whole frames of {} channels",
                self.channels
            )));
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for f32 {}
}

/// A sample type [`LiveSession::push_samples`](crate::LiveSession::push_samples) takes: `i16`
/// (full scale ±32,767) or `f32` (full scale ±1.0; beyond it is clipped, NaN is silence).
pub trait Sample: Copy + sealed::Sealed {
    /// As `f32`, full scale ±1.0.
    fn to_f32(self) -> f32;
    /// As a PCM16 sample.
    fn to_i16(self) -> i16;
}

impl Sample for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 32_768.0
    }

    fn to_i16(self) -> i16 {
        self
    }
}

impl Sample for f32 {
    fn to_f32(self) -> f32 {
        self
    }

    #[allow(clippy::cast_possible_truncation)]
    fn to_i16(self) -> i16 {
        // `as` saturates and maps NaN to 0.
        (self.clamp(-1.0, 1.0) * 32_767.0).round() as i16
    }
}

/// The average of one frame's channels.
fn mono_f32<S: Sample>(frame: &[S]) -> f32 {
    let sum: f32 = frame.iter().map(|s| s.to_f32()).sum();
    #[allow(clippy::cast_precision_loss)]
    let n = frame.len() as f32;
    sum / n
}

/// Turns pushed samples into PCM16 mono at the session's input rate; one per session.
pub(crate) struct InputConverter {
    rate: u32,
    /// Boxed: a resampler's state is some 400 bytes, which a session that only ever pushes
    /// PCM16 at its own rate (the usual case) does not carry.
    stream: Option<Box<Stream>>,
}

impl std::fmt::Debug for InputConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputConverter")
            .field("rate", &self.rate)
            .field("resampling_from", &self.stream.as_ref().map(|s| s.from))
            .finish()
    }
}

/// A resampler from one input rate, with the input it has not consumed yet.
struct Stream {
    from: u32,
    resampler: Fft<f32>,
    /// Mono input not yet resampled (less than one chunk between pushes).
    pending: Vec<f32>,
    /// The resampler's output buffer, reused.
    out: Vec<f32>,
}

impl InputConverter {
    /// A converter to PCM16 mono at `rate`.
    pub(crate) fn new(rate: u32) -> Self {
        Self { rate, stream: None }
    }

    /// `samples` in `format` as PCM16 mono bytes at the session's rate. Resampled input is
    /// processed in chunks of 10 ms: what does not fill one waits for the next push, so a
    /// push may give fewer bytes than its length (or none); nothing is lost. A change of input
    /// rate first flushes what waited at the old rate.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a rate or channel count out of range or samples that are
    /// not whole frames (nothing is taken).
    pub(crate) fn convert<S: Sample>(
        &mut self,
        samples: &[S],
        format: AudioFormat,
    ) -> Result<Bytes, Error> {
        format.check(samples.len())?;
        let channels = usize::from(format.channels);
        let frames = samples.len() / channels;
        let mut out = BytesMut::new();
        if self
            .stream
            .as_ref()
            .is_some_and(|s| s.from != format.sample_rate)
        {
            if let Some(mut old) = self.stream.take() {
                old.flush(&mut out)?;
            }
        }
        if format.sample_rate == self.rate {
            out.reserve(frames * 2);
            if channels == 1 {
                for s in samples {
                    out.put_i16_le(s.to_i16());
                }
            } else {
                for frame in samples.chunks_exact(channels) {
                    out.put_i16_le(mono_f32(frame).to_i16());
                }
            }
            return Ok(out.freeze());
        }
        if self.stream.is_none() {
            self.stream = Some(Box::new(Stream::new(format.sample_rate, self.rate)?));
        }
        if let Some(stream) = self.stream.as_mut() {
            stream
                .pending
                .extend(samples.chunks_exact(channels).map(mono_f32));
            stream.run(&mut out)?;
        }
        Ok(out.freeze())
    }
}

impl Stream {
    fn new(from: u32, to: u32) -> Result<Self, Error> {
        let chunk = usize::try_from(from / 100).unwrap_or(1).max(1);
        let resampler = Fft::<f32>::new(
            usize::try_from(from).unwrap_or(usize::MAX),
            usize::try_from(to).unwrap_or(usize::MAX),
            chunk,
            1,
            FixedSync::Input,
        )
        .map_err(|e| {
            Error::InvalidArgument(format!("cannot resample {from} Hz to {to} Hz: {e}"))
        })?;
        let out = vec![0.0; resampler.output_frames_max()];
        Ok(Self {
            from,
            resampler,
            pending: Vec::new(),
            out,
        })
    }

    /// Resamples every whole chunk that waits, appending PCM16 to `out`.
    fn run(&mut self, out: &mut BytesMut) -> Result<(), Error> {
        let mut start = 0;
        loop {
            let need = self.resampler.input_frames_next();
            if self.pending.len() - start < need {
                break;
            }
            self.process(start, need, None, out)?;
            start += need;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Resamples what waits, padding the last chunk with silence (the input rate changed).
    fn flush(&mut self, out: &mut BytesMut) -> Result<(), Error> {
        self.run(out)?;
        let left = self.pending.len();
        if left > 0 {
            let need = self.resampler.input_frames_next();
            self.pending.resize(need, 0.0);
            self.process(0, need, Some(left), out)?;
            self.pending.clear();
        }
        Ok(())
    }

    fn process(
        &mut self,
        start: usize,
        frames: usize,
        partial: Option<usize>,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        let failed = |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("resampling: {e}"));
        let input = InterleavedSlice::new(&self.pending[start..start + frames], 1, frames)
            .map_err(|e| failed(&e))?;
        let capacity = self.out.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.out, 1, capacity).map_err(|e| failed(&e))?;
        let indexing = partial.map(|n| Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: Some(n),
            active_channels_mask: None,
        });
        let (_, written) = self
            .resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| failed(&e))?;
        out.reserve(written * 2);
        for s in &self.out[..written] {
            out.put_i16_le(s.to_i16());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{AudioFormat, InputConverter};
    use crate::Error;

    fn samples(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    #[test]
    fn pcm16_at_the_session_rate_passes_unchanged_and_stereo_is_averaged() {
        let mut c = InputConverter::new(16_000);
        let mono = c
            .convert(&[1_i16, -2, 300], AudioFormat::mono(16_000))
            .unwrap();
        assert_eq!(samples(&mono), [1, -2, 300]);
        let stereo = c
            .convert(&[100_i16, 300, -1000, 1000], AudioFormat::stereo(16_000))
            .unwrap();
        assert_eq!(samples(&stereo), [200, 0]);
        let floats = c
            .convert(&[0.5_f32, 2.0, -7.0, f32::NAN], AudioFormat::mono(16_000))
            .unwrap();
        assert_eq!(samples(&floats), [16_384, 32_767, -32_767, 0]);
    }

    #[test]
    fn bad_formats_are_refused_and_nothing_is_taken() {
        let mut c = InputConverter::new(16_000);
        for (samples, format) in [
            (&[0_i16; 3][..], AudioFormat::stereo(48_000)),
            (&[0_i16; 2][..], AudioFormat::mono(0)),
            (&[0_i16; 2][..], AudioFormat::mono(1_000_000)),
            (&[0_i16; 2][..], AudioFormat::new(16_000, 0)),
            (&[0_i16; 18][..], AudioFormat::new(16_000, 9)),
        ] {
            let result = c.convert(samples, format);
            assert!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "{format:?}"
            );
        }
        assert!(c.stream.is_none());
    }

    /// A 48 kHz stereo sine at 440 Hz, pushed in uneven pieces, comes out as 16 kHz mono: a
    /// third of the frames (less what still waits), and the same tone (zero crossings at 880
    /// a second).
    #[test]
    fn resampling_48k_stereo_gives_16k_mono_of_the_same_tone() {
        let mut c = InputConverter::new(16_000);
        let second: Vec<f32> = (0..48_000)
            .flat_map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let v = (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin() * 0.5;
                [v, v]
            })
            .collect();
        let mut out = Vec::new();
        for piece in second.chunks(2 * 777) {
            let bytes = c.convert(piece, AudioFormat::stereo(48_000)).unwrap();
            out.extend(samples(&bytes));
        }
        // Whole 10 ms chunks only: at most one chunk (160 output samples) waits.
        assert!(
            (16_000 - 160..=16_000).contains(&out.len()),
            "{}",
            out.len()
        );
        // Past the resampler's delay, the tone: 880 crossings a second, within a few.
        let steady = &out[2_000..14_000];
        let crossings = steady
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!(
            (655..=665).contains(&crossings),
            "{crossings} crossings in 0.75 s"
        );
        let peak = steady.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((15_500..=17_200).contains(&peak), "peak {peak}");
    }

    #[test]
    fn a_change_of_rate_flushes_what_waited() {
        let mut c = InputConverter::new(16_000);
        // 5 ms at 48 kHz: less than one chunk, so nothing yet.
        let first = c
            .convert(&[0.25_f32; 240], AudioFormat::mono(48_000))
            .unwrap();
        assert!(first.is_empty());
        // At the session's rate: the waiting 5 ms come out first (a padded chunk: 160
        // samples), then the new samples as they are.
        let second = c.convert(&[7_i16; 10], AudioFormat::mono(16_000)).unwrap();
        let out = samples(&second);
        assert_eq!(out.len(), 160 + 10);
        assert_eq!(&out[160..], [7; 10]);
    }
}
