//! A small WAV (RIFF) reader and writer, enough for the `live` example: PCM16 and 32-bit float
//! input at any rate and channel count (also in `WAVE_FORMAT_EXTENSIBLE` files), PCM16 output.
//! Written here rather than taken from `hound` because the example needs forty lines of it,
//! and a malformed file must give an error, never a panic.

use std::fmt;

/// The samples of a WAV file.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// 16-bit integer PCM, interleaved.
    I16(Vec<i16>),
    /// 32-bit float, interleaved.
    F32(Vec<f32>),
}

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The samples.
    pub samples: Samples,
}

impl Wav {
    /// How long the audio lasts, in seconds.
    pub fn seconds(&self) -> f64 {
        let samples = match &self.samples {
            Samples::I16(s) => s.len(),
            Samples::F32(s) => s.len(),
        };
        samples as f64 / f64::from(self.channels.max(1)) / f64::from(self.sample_rate.max(1))
    }
}

/// Why a file is not a WAV file this reader takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavError(pub String);

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a usable WAV file: {}", self.0)
    }
}

impl std::error::Error for WavError {}

fn bad(what: impl Into<String>) -> WavError {
    WavError(what.into())
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, WavError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| bad("truncated header"))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, WavError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("truncated header"))
}

/// Reads a WAV file: PCM16 (format 1) or 32-bit float (format 3), plain or extensible.
pub fn read_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(bad("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = usize::try_from(u32_at(bytes, at + 4)?).map_err(|_| bad("chunk too large"))?;
        let body = at + 8;
        let end = body
            .checked_add(size)
            .ok_or_else(|| bad("chunk too large"))?;
        match id {
            b"fmt " => {
                let mut tag = u16_at(bytes, body)?;
                let channels = u16_at(bytes, body + 2)?;
                let rate = u32_at(bytes, body + 4)?;
                let bits = u16_at(bytes, body + 14)?;
                if tag == 0xFFFE {
                    // WAVE_FORMAT_EXTENSIBLE: the real format is the sub-format GUID's first
                    // two bytes.
                    tag = u16_at(bytes, body + 24)?;
                }
                format = Some((tag, channels, rate, bits));
            }
            b"data" => {
                let (tag, channels, sample_rate, bits) =
                    format.ok_or_else(|| bad("data before fmt"))?;
                if channels == 0 || sample_rate == 0 {
                    return Err(bad("zero channels or zero rate"));
                }
                // A data chunk cut short (a recording still being written) is read as far as
                // it goes.
                let data = &bytes[body..end.min(bytes.len())];
                let samples = match (tag, bits) {
                    (1, 16) => Samples::I16(
                        data.chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]]))
                            .collect(),
                    ),
                    (3, 32) => Samples::F32(
                        data.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    ),
                    (tag, bits) => {
                        return Err(bad(format!(
                            "format {tag} with {bits} bits (taken: 16-bit PCM, 32-bit float)"
                        )));
                    }
                };
                return Ok(Wav {
                    sample_rate,
                    channels,
                    samples,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = end
            .checked_add(size % 2)
            .ok_or_else(|| bad("chunk too large"))?;
    }
    Err(bad("no data chunk"))
}

/// A PCM16 WAV file of `pcm` (little-endian samples, interleaved `channels`) at `sample_rate`.
pub fn write_wav_pcm16(pcm: &[u8], sample_rate: u32, channels: u16) -> Vec<u8> {
    let data_len = u32::try_from(pcm.len()).unwrap_or(u32::MAX - 36) & !1;
    let mut out = wav_header(1, 16, sample_rate, channels, data_len);
    out.extend_from_slice(&pcm[..data_len as usize]);
    out
}

/// A float WAV file (format 3) of interleaved `samples`: what a 48 kHz stereo recorder writes.
pub fn write_wav_f32(samples: &[f32], sample_rate: u32, channels: u16) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 4).unwrap_or(u32::MAX - 36);
    let mut out = wav_header(3, 32, sample_rate, channels, data_len);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The 44-byte header of a WAV file in `format` (1 PCM, 3 float) with `bits` per sample and
/// `data_len` bytes of samples, with room reserved for them.
fn wav_header(format: u16, bits: u16, sample_rate: u32, channels: u16, data_len: u32) -> Vec<u8> {
    let block_align = channels.saturating_mul(bits / 8);
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16_u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(
        &sample_rate
            .saturating_mul(u32::from(block_align))
            .to_le_bytes(),
    );
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::{Samples, read_wav, write_wav_f32, write_wav_pcm16};

    #[test]
    fn what_is_written_reads_back() {
        let pcm: Vec<u8> = [1_i16, -2, 300, -32768]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let wav = read_wav(&write_wav_pcm16(&pcm, 24_000, 1)).unwrap();
        assert_eq!((wav.sample_rate, wav.channels), (24_000, 1));
        assert_eq!(wav.samples, Samples::I16(vec![1, -2, 300, -32768]));
        let wav = read_wav(&write_wav_f32(&[0.5, -0.25], 48_000, 2)).unwrap();
        assert_eq!((wav.sample_rate, wav.channels), (48_000, 2));
        assert_eq!(wav.samples, Samples::F32(vec![0.5, -0.25]));
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let good = write_wav_pcm16(&[0; 8], 16_000, 1);
        for cut in 0..good.len() {
            // Every truncation either reads what is there or says why not.
            let _ = read_wav(&good[..cut]);
        }
        assert!(read_wav(b"RIFF\0\0\0\0WAVE").is_err());
        let mut eight_bit = good.clone();
        eight_bit[34] = 8;
        assert!(read_wav(&eight_bit).is_err());
        let mut huge = good;
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_wav(&huge).is_err());
    }
}
