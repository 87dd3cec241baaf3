//! The key map's hash: a keyed multiply-fold hash of the key bytes, seeded per tree from
//! the standard library's random keys.
//!
//! The std default (SipHash-1-3) costs about as much per put as the rest of the key
//! lookup; this one reads the key 8 bytes at a time with one 64×64→128-bit multiply per
//! 16 bytes. A client picks the keys, so the seed is secret and random per process (as
//! with [`std::collections::hash_map::RandomState`]): keys that collide cannot be
//! computed in advance. Nothing depends on the map's iteration order (snapshots follow
//! the insertion-order list), so the per-process seed changes no replica's state.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const M0: u64 = 0xa076_1d64_78bd_642f;
const M1: u64 = 0xe703_7ed1_a0b4_28db;
const M2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// The full 128-bit product of `a` and `b`, its halves xor-ed together.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn read8(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Up to 8 bytes read as a little-endian integer (shorter tails read in two overlapping
/// or byte-wise parts so every byte counts).
#[inline(always)]
fn read_tail(b: &[u8]) -> (u64, u64) {
    let n = b.len();
    if n >= 4 {
        let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let hi = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes"));
        (u64::from(lo), u64::from(hi))
    } else if n > 0 {
        (
            u64::from(b[0]) << 16 | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]),
            0,
        )
    } else {
        (0, 0)
    }
}

/// Builds [`KeyHasher`]s with one random seed (one per key map).
#[derive(Debug, Clone)]
pub(crate) struct KeyHashBuilder {
    seed: [u64; 2],
}

impl Default for KeyHashBuilder {
    fn default() -> Self {
        let rs = RandomState::new();
        let mut a = rs.build_hasher();
        a.write_u64(M0);
        let mut b = rs.build_hasher();
        b.write_u64(M1);
        KeyHashBuilder {
            seed: [a.finish(), b.finish()],
        }
    }
}

impl KeyHashBuilder {
    /// A builder with a fixed seed (tests).
    #[cfg(test)]
    pub(crate) fn with_seed(seed: [u64; 2]) -> Self {
        KeyHashBuilder { seed }
    }
}

impl BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;

    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            acc: self.seed[0],
            seed1: self.seed[1],
        }
    }
}

/// The hasher of [`KeyHashBuilder`]: each `write` folds its bytes (and their length)
/// into the state; `finish` mixes once more.
#[derive(Debug, Clone)]
pub(crate) struct KeyHasher {
    acc: u64,
    seed1: u64,
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let s1 = self.seed1;
        let mut acc = self.acc ^ (bytes.len() as u64).wrapping_mul(M2);
        let mut b = bytes;
        while b.len() > 16 {
            acc = fold_mul(read8(b) ^ acc ^ M0, read8(&b[8..]) ^ s1);
            b = &b[16..];
        }
        let (x, y) = if b.len() > 8 {
            (read8(b), read8(&b[b.len() - 8..]))
        } else {
            read_tail(b)
        };
        self.acc = fold_mul(x ^ acc ^ M1, y ^ s1 ^ M2);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.acc = fold_mul(n ^ self.acc ^ M0, self.seed1 ^ M1);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.acc ^ M2, self.seed1 ^ M0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn h(b: &KeyHashBuilder, key: &[u8]) -> u64 {
        b.hash_one(key)
    }

    #[test]
    fn every_byte_and_the_length_change_the_hash() {
        let b = KeyHashBuilder::with_seed([1, 2]);
        // Every length across the 4/8/16-byte read boundaries, every byte position.
        let mut seen = HashSet::new();
        for len in 0..40usize {
            let base = vec![b'a'; len];
            assert!(seen.insert(h(&b, &base)), "length {len}");
            for i in 0..len {
                let mut k = base.clone();
                k[i] = b'b';
                assert!(seen.insert(h(&b, &k)), "len {len} byte {i}");
            }
        }
        // Zero bytes of different lengths differ too.
        assert_ne!(h(&b, &[0; 3]), h(&b, &[0; 4]));
        assert_ne!(h(&b, &[]), h(&b, &[0]));
    }

    #[test]
    fn equal_keys_hash_equal_and_seeds_differ() {
        let b = KeyHashBuilder::with_seed([5, 6]);
        assert_eq!(h(&b, b"benchmark.key1"), h(&b, b"benchmark.key1"));
        let c = KeyHashBuilder::with_seed([5, 7]);
        assert_ne!(h(&b, b"benchmark.key1"), h(&c, b"benchmark.key1"));
        let r1 = KeyHashBuilder::default();
        let r2 = KeyHashBuilder::default();
        assert_ne!(r1.seed, r2.seed, "random seeds");
    }

    #[test]
    fn similar_keys_spread_over_buckets() {
        // 100 000 keys differing in a decimal suffix: the low 16 bits (what a table
        // of that size uses) take close to the expected number of distinct values.
        let b = KeyHashBuilder::with_seed([9, 10]);
        let mut low = HashSet::new();
        for i in 0..100_000 {
            low.insert(h(&b, format!("benchmark.key{i}").as_bytes()) & 0xffff);
        }
        // Uniform: 65536 * (1 - e^(-100000/65536)) ≈ 51 600.
        assert!(low.len() > 50_000, "{}", low.len());
        // The top 7 bits (hashbrown's tag) vary as well.
        let mut top = HashSet::new();
        for i in 0..1000 {
            top.insert(h(&b, format!("k{i}").as_bytes()) >> 57);
        }
        assert!(top.len() > 120, "{}", top.len());
    }
}
