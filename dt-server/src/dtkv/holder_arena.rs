//! The tree's holder arena: holders in one vector, addressed by [`HolderId`], with the
//! ids of freed slots reused last-freed first.
//!
//! Unlike a `Slab`, whose entries are an enum whose tag the compiler may place in any
//! field of the holder (and so in any of its cache lines), a slot here is a plain
//! [`Holder`]: reading `arena[h]` touches only the fields the caller reads, so a put to
//! an existing key reads one cache line of its holder. A free slot holds a vacant
//! holder (marked vacant, nothing allocated).

use std::ops::{Index, IndexMut};

use super::tree::{Holder, HolderId};

/// Holders by id; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct HolderArena {
    slots: Vec<Holder>,
    /// Free slots, the last freed last.
    free: Vec<HolderId>,
}

impl HolderArena {
    /// An arena with room for `capacity` holders before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        HolderArena {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
        }
    }

    /// Stores `holder` (not a vacant one) and returns its id.
    pub(crate) fn insert(&mut self, holder: Holder) -> HolderId {
        debug_assert!(!holder.is_vacant());
        match self.free.pop() {
            Some(h) => {
                self.slots[h] = holder;
                h
            }
            None => {
                self.slots.push(holder);
                self.slots.len() - 1
            }
        }
    }

    /// Takes the holder `h` out; its id will be reused.
    ///
    /// # Panics
    /// When `h` holds no holder (a bug of the tree).
    pub(crate) fn remove(&mut self, h: HolderId) -> Holder {
        assert!(!self.slots[h].is_vacant(), "holder {h} is not in the arena");
        self.free.push(h);
        std::mem::replace(&mut self.slots[h], Holder::vacant())
    }

    /// The holder `h`, if there is one.
    pub(crate) fn get(&self, h: HolderId) -> Option<&Holder> {
        self.slots.get(h).filter(|x| !x.is_vacant())
    }

    /// Where slot `h` is, computed without reading it (for a prefetch); any `h` is
    /// accepted, the pointer is only valid to read for ids in the arena.
    pub(crate) fn slot_ptr(&self, h: HolderId) -> *const Holder {
        self.slots.as_ptr().wrapping_add(h)
    }

    /// Every holder with its id, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (HolderId, &Holder)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, x)| !x.is_vacant())
    }

    /// How many holders there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

impl Index<HolderId> for HolderArena {
    type Output = Holder;

    /// The holder `h`. Only ids of holders in the arena are valid (checked in debug
    /// builds: a vacant slot's mark is on another cache line than a put reads).
    #[inline]
    fn index(&self, h: HolderId) -> &Holder {
        let x = &self.slots[h];
        debug_assert!(!x.is_vacant(), "holder {h} is not in the arena");
        x
    }
}

impl IndexMut<HolderId> for HolderArena {
    #[inline]
    fn index_mut(&mut self, h: HolderId) -> &mut Holder {
        let x = &mut self.slots[h];
        debug_assert!(!x.is_vacant(), "holder {h} is not in the arena");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtkv::tree::empty_dir;
    use bytes::Bytes;

    fn holder(key: &str) -> Holder {
        Holder::new(Bytes::from(key.to_string()), None, empty_dir())
    }

    #[test]
    fn freed_ids_are_reused_last_freed_first_and_vacant_slots_are_not_seen() {
        let mut a = HolderArena::with_capacity(2);
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|k| a.insert(holder(k)))
            .collect();
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(&a.remove(1).key[..], b"b");
        assert_eq!(&a.remove(0).key[..], b"a");
        assert!(a.get(0).is_none() && a.get(1).is_none() && a.get(3).is_none());
        assert_eq!(a.len(), 1);
        let keys: Vec<_> = a.iter().map(|(h, x)| (h, x.key.clone())).collect();
        assert_eq!(keys, vec![(2, Bytes::from("c"))]);
        let d = holder("d");
        assert_eq!(a.insert(d), 0, "the last freed first");
        let e = holder("e");
        assert_eq!(a.insert(e), 1);
        let f = holder("f");
        assert_eq!(a.insert(f), 3);
        assert_eq!(&a[1].key[..], b"e");
        assert_eq!(a.len(), 4);
    }

    #[test]
    #[should_panic(expected = "not in the arena")]
    fn removing_a_vacant_slot_is_a_bug() {
        let mut a = HolderArena::default();
        let x = holder("a");
        let h = a.insert(x);
        a.remove(h);
        a.remove(h);
    }
}
