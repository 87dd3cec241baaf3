//! [`IdHasher`]: a one-multiply hasher for maps keyed by small integer ids (group ids,
//! node ids, peer ids) on per-request paths, where std's SipHash costs more than the
//! rest of the lookup. The ids are chosen by the process or its configuration, not by
//! a remote peer, so the flooding resistance SipHash buys is not needed there.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplies by the 64-bit golden ratio, so that the high bits (which the map uses
/// to filter candidates) differ for consecutive ids.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A hasher for integer ids: one multiply per written integer.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(MIX);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(MIX);
    }
    fn write_i32(&mut self, v: i32) {
        self.write_u32(v as u32);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(MIX);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
}

/// A `HashMap` keyed by integer ids, hashed with [`IdHasher`].
///
/// ```
/// use dt_common::IdHashMap;
///
/// let mut groups: IdHashMap<i32, &str> = IdHashMap::default();
/// groups.insert(0, "group 0");
/// assert_eq!(groups.get(&0), Some(&"group 0"));
/// ```
pub type IdHashMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(v: T) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(v)
    }

    #[test]
    fn consecutive_ids_differ_in_their_high_bits() {
        let tops: std::collections::HashSet<u64> = (0..64i32).map(|i| hash(i) >> 57).collect();
        // 64 ids over 128 possible 7-bit tags: most must be distinct
        assert!(tops.len() > 40, "only {} distinct tags", tops.len());
    }

    #[test]
    fn a_map_keyed_by_ids_finds_every_id() {
        let mut m: IdHashMap<i32, i32> = IdHashMap::default();
        for i in -1000..1000 {
            m.insert(i, i * 2);
        }
        assert!((-1000..1000).all(|i| m.get(&i) == Some(&(i * 2))));
        assert_eq!(m.get(&1000), None);
    }
}
