//! The tree's key map: full key → [`HolderId`], with short keys stored in the map's own
//! slot.
//!
//! A lookup reads the hash table's control bytes and then the slot whose tag matches;
//! with the key only behind a pointer (a `Bytes` slot), comparing it reads a third cache
//! line, in whatever buffer the key was first decoded from. Here a slot is one
//! 64-byte-aligned cache line holding the holder id and, for keys of up to
//! [`INLINE_KEY`] bytes, the key itself; longer keys are kept as `Bytes` (compared
//! behind their pointer, as before).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

use super::key_hash::KeyHashBuilder;
use super::tree::HolderId;

/// The longest key a map slot stores inline.
pub(crate) const INLINE_KEY: usize = 46;

/// A key as a map slot stores it.
#[derive(Debug, Clone)]
enum SlotKey {
    Inline(u8, [u8; INLINE_KEY]),
    Shared(Bytes),
}

/// One slot: a key and its holder; hashed and compared as the key's bytes alone, so
/// the set can be searched with a `&[u8]`.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Slot {
    key: SlotKey,
    holder: HolderId,
}

impl Slot {
    #[inline]
    fn key(&self) -> &[u8] {
        match &self.key {
            SlotKey::Inline(n, b) => &b[..usize::from(*n)],
            SlotKey::Shared(b) => b,
        }
    }
}

impl Borrow<[u8]> for Slot {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl Hash for Slot {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, so a `&[u8]` finds the slot (`Borrow`'s contract).
        self.key().hash(state)
    }
}

impl PartialEq for Slot {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Slot {}

/// Keys → holders; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap {
    slots: HashSet<Slot, KeyHashBuilder>,
}

impl KeyMap {
    /// An empty map with room for `capacity` keys before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        KeyMap {
            slots: HashSet::with_capacity_and_hasher(capacity, KeyHashBuilder::default()),
        }
    }

    /// The holder of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<HolderId> {
        self.slots.get(key).map(|s| s.holder)
    }

    /// Maps `key` (not in the map) to `holder`.
    pub(crate) fn insert(&mut self, key: &Bytes, holder: HolderId) {
        let key = if key.len() <= INLINE_KEY {
            let mut b = [0u8; INLINE_KEY];
            b[..key.len()].copy_from_slice(key);
            SlotKey::Inline(key.len() as u8, b)
        } else {
            SlotKey::Shared(key.clone())
        };
        let fresh = self.slots.insert(Slot { key, holder });
        debug_assert!(fresh, "a key is mapped once");
    }

    /// Unmaps `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.slots.remove(key);
    }

    /// How many keys are mapped.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
    }

    #[test]
    fn keys_up_to_the_inline_length_and_longer_ones_map_and_unmap() {
        let mut m = KeyMap::with_capacity(0);
        // Lengths around the inline limit, and keys that differ only in the last byte
        // or only in length (an inline buffer's zero padding must not match).
        let mut keys = Vec::new();
        for len in [0, 1, INLINE_KEY - 1, INLINE_KEY, INLINE_KEY + 1, 300] {
            keys.push(Bytes::from(vec![b'k'; len]));
            let mut k = vec![b'k'; len];
            if let Some(last) = k.last_mut() {
                *last = b'z';
            }
            keys.push(Bytes::from(k));
            let mut k = vec![b'k'; len];
            k.push(0);
            keys.push(Bytes::from(k));
        }
        keys.sort();
        keys.dedup();
        for (i, k) in keys.iter().enumerate() {
            m.insert(k, i);
        }
        assert_eq!(m.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k), Some(i), "{} bytes", k.len());
        }
        assert_eq!(m.get(&[b'k'; 2]), None);
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            m.remove(k);
            assert_eq!(m.get(k), None, "{i}");
        }
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            assert_eq!(m.get(k), Some(i));
        }
        assert_eq!(m.len(), keys.len() / 2);
    }
}
