//! A fast hash for the id index of a [`ChatContext`](crate::ChatContext).
//!
//! The index is hashed once per item on every diff, so the hash function is most of a diff's
//! cost. The standard library's SipHash resists attackers who choose keys to collide; item ids
//! are chosen by the application, not by an attacker, so the index uses a multiply-rotate hash
//! over 8-byte words instead (the scheme of rustc's `FxHasher`) with a splitmix64 finaliser
//! so that ids differing only in a few characters still land in different buckets. An application that lets untrusted peers choose item ids directly should prefix them with
//! its own counter.

use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap` hasher state for [`IdHasher`]: what [`ChatContext`](crate::ChatContext) hashes its
/// id index with, for other maps keyed by [`ItemId`](crate::ItemId) (the session's mirror of
/// the server's context).
pub type IdHashState = BuildHasherDefault<IdHasher>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Multiply-rotate hasher over 8-byte words, for item ids (not for keys an attacker chooses).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher {
    hash: u64,
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // The length first, so that ids differing only by trailing zero bytes still differ.
        self.add(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply-rotate steps leave the low bits, which pick the bucket, depending on few
        // input bits; the splitmix64 finaliser spreads every input bit over all of them.
        let mut z = self.hash;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash(s: &str) -> u64 {
        IdHashState::default().hash_one(s)
    }

    #[test]
    fn distinguishes_ids_that_differ_in_any_byte_or_length() {
        let ids = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "a\0",
            "item-000001",
            "item-000002",
            "item-0000010",
        ];
        let mut hashes: Vec<u64> = ids.iter().map(|s| hash(s)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), ids.len());
        assert_eq!(hash("item-000001"), hash("item-000001"));
    }

    #[test]
    fn sequential_ids_spread_over_the_low_bits() {
        // The bucket of a 16,384-slot table is the low 14 bits of the hash.
        let mut buckets: Vec<u64> = (0..10_000)
            .map(|i| hash(&format!("item-{i:06}")) & 0x3fff)
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        // A uniform hash fills about 16384 * (1 - e^(-10000/16384)) = 7,500 of them.
        assert!(buckets.len() > 7_000, "{} buckets used", buckets.len());
    }
}
