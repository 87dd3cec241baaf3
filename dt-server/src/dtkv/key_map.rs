//! The tree's key map: full key → [`HolderId`], an open-addressing hash table whose
//! slots hold short keys themselves, and which can say where a key's slot is without
//! reading it (so that it can be prefetched).
//!
//! A lookup reads the table's tag bytes (one per bucket, dense: a 10 000-key map's fit
//! in 16 KiB and stay in the cache) and then the slot whose tag matches. A slot is one
//! 64-byte-aligned cache line holding the holder id and, for keys of up to
//! [`INLINE_KEY`] bytes, the key itself; longer keys are kept as `Bytes` (compared
//! behind their pointer).
//!
//! Buckets are probed linearly from the key's home bucket (the hash's low bits); a tag
//! is the hash's top 7 bits with the high bit set, so a slot is read only when 7 more
//! bits of its hash agree. A removed key leaves a tombstone unless nothing probes past
//! it; tombstones count towards the load, and the table is rebuilt when live keys and
//! tombstones fill three quarters of it.
//!
//! [`KeyMap::slot_hint`] finds the bucket a key most likely sits in from the tags
//! alone, for a prefetch of its slot ahead of the real lookup (`StateMachine::prepare`).

use bytes::Bytes;
use std::hash::{BuildHasher, Hasher};

use super::key_hash::KeyHashBuilder;
use super::tree::HolderId;

/// The longest key a map slot stores inline.
pub(crate) const INLINE_KEY: usize = 46;

/// A bucket that never held a key: a probe stops here.
const EMPTY: u8 = 0;
/// A bucket whose key was removed: a probe goes on past it.
const DELETED: u8 = 1;
/// The fewest buckets a table has.
const MIN_BUCKETS: usize = 8;

/// A key as a map slot stores it.
#[derive(Debug, Clone)]
enum SlotKey {
    Inline(u8, [u8; INLINE_KEY]),
    Shared(Bytes),
}

/// One bucket's slot: a key and its holder (meaningful only when the bucket's tag says
/// it is full).
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Slot {
    key: SlotKey,
    holder: HolderId,
}

impl Slot {
    const VACANT: Slot = Slot {
        key: SlotKey::Inline(0, [0; INLINE_KEY]),
        holder: 0,
    };

    #[inline]
    fn key(&self) -> &[u8] {
        match &self.key {
            SlotKey::Inline(n, b) => &b[..usize::from(*n)],
            SlotKey::Shared(b) => b,
        }
    }
}

/// The tag of a full bucket for `hash`: its top 7 bits, high bit set.
#[inline]
fn tag(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

/// Whether a bucket with tag `t` holds a key (neither [`EMPTY`] nor [`DELETED`]).
#[inline]
fn is_full(t: u8) -> bool {
    t >= 0x80
}

/// Keys → holders; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap {
    /// Per bucket: [`EMPTY`], [`DELETED`], or the tag of the key in its slot.
    tags: Box<[u8]>,
    slots: Box<[Slot]>,
    /// Keys mapped.
    len: usize,
    /// Buckets whose tag is [`DELETED`].
    deleted: usize,
    hasher: KeyHashBuilder,
}

impl KeyMap {
    /// An empty map with room for `capacity` keys before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self::with_hasher(capacity, KeyHashBuilder::default())
    }

    fn with_hasher(capacity: usize, hasher: KeyHashBuilder) -> Self {
        let buckets = buckets_for(capacity);
        KeyMap {
            tags: vec![EMPTY; buckets].into_boxed_slice(),
            slots: vec![Slot::VACANT; buckets].into_boxed_slice(),
            len: 0,
            deleted: 0,
            hasher,
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        h.finish()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.tags.len() - 1
    }

    /// The first bucket of `key`'s probe whose tag is `key`'s and that `accept`s, or
    /// `None` at an empty bucket.
    #[inline]
    fn probe(&self, key: &[u8], accept: impl Fn(usize) -> bool) -> Option<usize> {
        let hash = self.hash(key);
        let t = tag(hash);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let x = self.tags[i];
            if x == EMPTY {
                return None;
            }
            if x == t && accept(i) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The bucket holding `key`.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        self.probe(key, |i| self.slots[i].key() == key)
    }

    /// The holder of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<HolderId> {
        self.find(key).map(|i| self.slots[i].holder)
    }

    /// The bucket whose slot most likely holds `key`, from the tags alone (the first
    /// whose tag matches; no slot is read), for a prefetch of [`KeyMap::slot_ptr`].
    /// `None` when no tag matches (the key is not in the map).
    #[inline]
    pub(crate) fn slot_hint(&self, key: &[u8]) -> Option<usize> {
        self.probe(key, |_| true)
    }

    /// Where bucket `i`'s slot is, computed without reading it (for a prefetch); only
    /// valid to read for a bucket of this table.
    #[inline]
    pub(crate) fn slot_ptr(&self, i: usize) -> *const u8 {
        self.slots.as_ptr().wrapping_add(i).cast()
    }

    /// The holder in bucket `i` (as [`KeyMap::slot_hint`] gave it), if the bucket is
    /// still full: whichever key it holds now.
    #[inline]
    pub(crate) fn holder_at(&self, i: usize) -> Option<HolderId> {
        is_full(*self.tags.get(i)?).then(|| self.slots[i].holder)
    }

    /// Maps `key` (not in the map) to `holder`.
    pub(crate) fn insert(&mut self, key: &Bytes, holder: HolderId) {
        debug_assert!(self.find(key).is_none(), "a key is mapped once");
        if (self.len + self.deleted + 1) * 4 > self.tags.len() * 3 {
            self.rebuild(self.len + 1);
        }
        let hash = self.hash(key);
        let key = if key.len() <= INLINE_KEY {
            let mut b = [0u8; INLINE_KEY];
            b[..key.len()].copy_from_slice(key);
            SlotKey::Inline(key.len() as u8, b)
        } else {
            SlotKey::Shared(key.clone())
        };
        self.place(hash, Slot { key, holder });
        self.len += 1;
    }

    /// Puts `slot` into the first free bucket of `hash`'s probe (a tombstone or an
    /// empty bucket); there is always one, the load being under three quarters.
    fn place(&mut self, hash: u64, slot: Slot) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while is_full(self.tags[i]) {
            i = (i + 1) & mask;
        }
        if self.tags[i] == DELETED {
            self.deleted -= 1;
        }
        self.tags[i] = tag(hash);
        self.slots[i] = slot;
    }

    /// Rebuilds the table for `want` keys with its tombstones dropped: half full at
    /// most afterwards.
    fn rebuild(&mut self, want: usize) {
        // room for 1.5 × `want` under three quarters: `want` fill half
        let buckets = buckets_for(want.saturating_mul(3) / 2 + 1);
        let tags = std::mem::replace(&mut self.tags, vec![EMPTY; buckets].into_boxed_slice());
        let slots = std::mem::replace(
            &mut self.slots,
            vec![Slot::VACANT; buckets].into_boxed_slice(),
        );
        self.deleted = 0;
        for (t, slot) in tags.iter().zip(Vec::from(slots)) {
            if is_full(*t) {
                let hash = self.hash(slot.key());
                self.place(hash, slot);
            }
        }
    }

    /// Unmaps `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        let Some(i) = self.find(key) else {
            return;
        };
        // A probe for another key passes this bucket only if the next one is in use.
        if self.tags[(i + 1) & self.mask()] == EMPTY {
            self.tags[i] = EMPTY;
        } else {
            self.tags[i] = DELETED;
            self.deleted += 1;
        }
        self.slots[i] = Slot::VACANT;
        self.len -= 1;
    }

    /// How many keys are mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The bucket count for `capacity` keys under three quarters full: a power of two, at
/// least [`MIN_BUCKETS`].
fn buckets_for(capacity: usize) -> usize {
    (capacity.saturating_mul(4) / 3 + 1)
        .checked_next_power_of_two()
        .expect("a key map of that many keys does not fit in memory")
        .max(MIN_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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

    /// Keys that all share one home bucket (a table of 8 buckets, keys picked by their
    /// hash): probes run past tombstones, a removal in the middle of a run keeps the
    /// keys after it reachable, and freed buckets are used again.
    #[test]
    fn colliding_keys_probe_past_removed_ones() {
        let mut m = KeyMap::with_hasher(4, KeyHashBuilder::with_seed([3, 4]));
        assert_eq!(m.tags.len(), 8);
        let home = |m: &KeyMap, k: &[u8]| m.hash(k) as usize & 7;
        let keys: Vec<Bytes> = (0..10_000)
            .map(|i| Bytes::from(format!("c{i}")))
            .filter(|k| home(&m, k) == 5)
            .take(5)
            .collect();
        assert_eq!(keys.len(), 5);
        for (i, k) in keys.iter().enumerate() {
            m.insert(k, i);
        }
        // up to six keys fit in eight buckets (three quarters)
        assert_eq!(m.tags.len(), 8, "no rebuild");
        assert_eq!(m.len(), 5);
        m.remove(&keys[1]);
        m.remove(&keys[3]);
        assert_eq!(m.deleted, 2, "removed inside a run: tombstones");
        for i in [0, 2, 4] {
            assert_eq!(m.get(&keys[i]), Some(i), "key {i} past the tombstones");
        }
        assert_eq!(m.get(&keys[1]), None);
        m.insert(&keys[3], 33);
        assert_eq!(m.deleted, 1, "the first tombstone of the probe is reused");
        assert_eq!(m.get(&keys[3]), Some(33));
        // The last key of the run is followed by an empty bucket: no tombstone.
        m.remove(&keys[4]);
        assert_eq!(m.deleted, 1);
        assert_eq!(m.get(&keys[2]), Some(2));
    }

    /// Random inserts and removes against a `HashMap`, through several rebuilds (growth
    /// and tombstone sweeps), with `slot_hint` and `holder_at` agreeing with `get`.
    #[test]
    fn agrees_with_a_hash_map_through_rebuilds() {
        let mut rng = dt_fiber::DetRng::new(7);
        let mut m = KeyMap::with_hasher(0, KeyHashBuilder::with_seed([11, 12]));
        let mut model: HashMap<Bytes, HolderId> = HashMap::new();
        let mut sizes = std::collections::BTreeSet::new();
        for step in 0..60_000u64 {
            let k = rng.below(3_000);
            let key = if k.is_multiple_of(10) {
                Bytes::from(format!("{k:0>60}"))
            } else {
                Bytes::from(format!("k{k}"))
            };
            // Grow to ~3 000 keys, then shrink to a few hundred, then grow again.
            let insert_pct = if (20_000..40_000).contains(&step) {
                20
            } else {
                70
            };
            if rng.below(100) < insert_pct {
                if let std::collections::hash_map::Entry::Vacant(e) = model.entry(key) {
                    m.insert(e.key(), step as usize);
                    e.insert(step as usize);
                }
            } else if model.remove(&key).is_some() {
                m.remove(&key);
            }
            sizes.insert(m.tags.len());
            if step % 997 == 0 {
                assert_eq!(m.len(), model.len());
                for (k, h) in &model {
                    assert_eq!(m.get(k), Some(*h));
                    let i = m.slot_hint(k).expect("a mapped key has a matching tag");
                    // the hint is the key's bucket unless an earlier tag matched too
                    if m.slots[i].key() == &k[..] {
                        assert_eq!(m.holder_at(i), Some(*h));
                    }
                }
                assert!((m.len + m.deleted) * 4 <= m.tags.len() * 3);
            }
        }
        assert!(
            sizes.len() >= 3,
            "the table was rebuilt at several sizes: {sizes:?}"
        );
        for k in (0..3_000).map(|k| Bytes::from(format!("k{k}"))) {
            assert_eq!(m.get(&k), model.get(&k).copied());
        }
        assert_eq!(m.holder_at(usize::MAX), None, "a bucket past the table");
    }
}
