//! Automatic activity detection by signal energy, and the deterministic transcript of speech.

use std::time::Duration;

/// What a chunk of audio changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VadEvent {
    /// Speech began (barge-in point).
    SpeechStarted,
    /// Speech ended after this many seconds of speech (first to last voiced chunk).
    SpeechEnded {
        /// Seconds of speech.
        seconds: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Speech {
    /// Seconds from the first voiced chunk to the end of the last voiced one.
    voiced_span: f64,
    /// Seconds of silence since the last voiced chunk.
    trailing_silence: f64,
}

/// Energy-based voice activity detector over 16-bit little-endian PCM.
#[derive(Debug, Clone)]
pub(crate) struct Vad {
    threshold: f64,
    silence: Duration,
    speech: Option<Speech>,
}

impl Vad {
    pub(crate) fn new(threshold: f64, silence: Duration) -> Self {
        Vad {
            threshold,
            silence,
            speech: None,
        }
    }

    /// Feeds one chunk; a chunk is speech when its RMS exceeds the threshold.
    pub(crate) fn feed(&mut self, pcm: &[u8], rate: u32) -> Option<VadEvent> {
        let seconds = duration_of(pcm, rate);
        let voiced = rms(pcm) > self.threshold;
        match (self.speech.as_mut(), voiced) {
            (None, true) => {
                self.speech = Some(Speech {
                    voiced_span: seconds,
                    trailing_silence: 0.0,
                });
                Some(VadEvent::SpeechStarted)
            }
            (None, false) => None,
            (Some(speech), true) => {
                speech.voiced_span += speech.trailing_silence + seconds;
                speech.trailing_silence = 0.0;
                None
            }
            (Some(speech), false) => {
                speech.trailing_silence += seconds;
                if speech.trailing_silence + 1e-9 >= self.silence.as_secs_f64() {
                    self.flush()
                } else {
                    None
                }
            }
        }
    }

    /// Ends speech in progress now (`audioStreamEnd`).
    pub(crate) fn flush(&mut self) -> Option<VadEvent> {
        self.speech.take().map(|speech| VadEvent::SpeechEnded {
            seconds: speech.voiced_span,
        })
    }
}

/// Seconds of 16-bit mono PCM at `rate`.
pub(crate) fn duration_of(pcm: &[u8], rate: u32) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let samples = (pcm.len() / 2) as f64;
    samples / f64::from(rate.max(1))
}

/// Root mean square of 16-bit little-endian samples.
fn rms(pcm: &[u8]) -> f64 {
    let mut sum = 0.0;
    let mut count = 0u32;
    for pair in pcm.chunks_exact(2) {
        let sample = f64::from(i16::from_le_bytes([pair[0], pair[1]]));
        sum += sample * sample;
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        (sum / f64::from(count)).sqrt()
    }
}

/// The deterministic transcript of `seconds` of speech: `[audio 1.20s]`.
pub(crate) fn transcript(seconds: f64) -> String {
    format!("[audio {seconds:.2}s]")
}

/// The sample rate stated in an audio MIME type (`audio/pcm;rate=16000`), 16 kHz if absent.
pub(crate) fn rate_of(mime_type: &str) -> u32 {
    mime_type
        .split(';')
        .filter_map(|param| param.trim().strip_prefix("rate="))
        .find_map(|rate| rate.trim().parse().ok())
        .unwrap_or(16_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u32, amplitude: i16) -> Vec<u8> {
        (0..16 * ms)
            .flat_map(|i| (if i % 2 == 0 { amplitude } else { -amplitude }).to_le_bytes())
            .collect()
    }

    #[test]
    fn speech_then_silence_makes_a_turn() {
        let mut vad = Vad::new(500.0, Duration::from_millis(300));
        assert_eq!(vad.feed(&tone(100, 0), 16_000), None);
        assert_eq!(
            vad.feed(&tone(100, 3000), 16_000),
            Some(VadEvent::SpeechStarted)
        );
        assert_eq!(vad.feed(&tone(100, 10), 16_000), None);
        assert_eq!(vad.feed(&tone(100, 3000), 16_000), None);
        assert_eq!(vad.feed(&tone(200, 0), 16_000), None);
        let Some(VadEvent::SpeechEnded { seconds }) = vad.feed(&tone(100, 0), 16_000) else {
            panic!("speech should have ended");
        };
        assert_eq!(transcript(seconds), "[audio 0.30s]");
        assert_eq!(vad.flush(), None);
    }

    #[test]
    fn flush_ends_speech_and_rates_parse() {
        let mut vad = Vad::new(500.0, Duration::from_millis(300));
        vad.feed(&tone(1200, 3000), 16_000);
        let Some(VadEvent::SpeechEnded { seconds }) = vad.flush() else {
            panic!("speech should have ended");
        };
        assert_eq!(transcript(seconds), "[audio 1.20s]");
        assert_eq!(vad.flush(), None);
        assert_eq!(rate_of("audio/pcm;rate=24000"), 24_000);
        assert_eq!(rate_of("audio/pcm"), 16_000);
    }
}
