//! Audio the session can take without a copy ([`IntoPcm`]), and model audio as samples
//! ([`pcm16_to_i16`], [`pcm16_to_f32`]).

use bytes::Bytes;

/// Audio the session can take: [`Bytes`] (and what converts into it without a copy: `Vec<u8>`,
/// `Box<[u8]>`) is shared as it is; a borrowed slice or array is copied once.
pub trait IntoPcm {
    /// The samples as [`Bytes`].
    fn into_pcm(self) -> Bytes;
}

impl IntoPcm for Bytes {
    fn into_pcm(self) -> Bytes {
        self
    }
}

impl IntoPcm for &Bytes {
    fn into_pcm(self) -> Bytes {
        self.clone()
    }
}

impl IntoPcm for Vec<u8> {
    fn into_pcm(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoPcm for Box<[u8]> {
    fn into_pcm(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoPcm for &[u8] {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoPcm for &Vec<u8> {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoPcm for [u8; N] {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl<const N: usize> IntoPcm for &[u8; N] {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

/// PCM16 little-endian bytes (model audio: [`SessionEvent::Audio`](crate::SessionEvent::Audio))
/// as `i16` samples; a trailing odd byte (half a sample) is left out.
#[must_use]
pub fn pcm16_to_i16(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// PCM16 little-endian bytes as `f32` samples, full scale ±1.0 (what audio output APIs such
/// as cpal's take); a trailing odd byte is left out.
#[must_use]
pub fn pcm16_to_f32(pcm: &[u8]) -> Vec<f32> {
    pcm.chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_audio_as_samples() {
        let pcm = [0x00, 0x40, 0xff, 0xff, 0x00, 0x80, 0x01];
        assert_eq!(super::pcm16_to_i16(&pcm), [16_384, -1, -32_768]);
        assert_eq!(super::pcm16_to_f32(&pcm), [0.5, -1.0 / 32_768.0, -1.0]);
    }
}
