//! Audio the session can take without a copy: [`IntoPcm`].

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
