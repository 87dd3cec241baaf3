//! Requests awaiting their response on one connection, keyed by seq.
//!
//! Seqs are handed out consecutively, so a ring indexed by `seq & mask` finds almost
//! every entry without hashing; an entry whose slot is still taken by an older request
//! (more than `RING` requests apart, e.g. a slow one) goes to an overflow map.

use dt_common::IdHashMap;

const RING: usize = 4096;

/// A map from seq to `V`, tuned for consecutive keys.
pub(crate) struct PendingMap<V> {
    ring: Vec<Option<(i32, V)>>,
    overflow: IdHashMap<i32, V>,
    len: usize,
}

impl<V> PendingMap<V> {
    pub fn new() -> Self {
        PendingMap {
            ring: Vec::new(),
            overflow: IdHashMap::default(),
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    fn idx(seq: i32) -> usize {
        (seq as u32 as usize) & (RING - 1)
    }

    /// Inserts; an existing entry with the same seq is replaced (and returned).
    pub fn insert(&mut self, seq: i32, v: V) -> Option<V> {
        if self.ring.is_empty() {
            self.ring.resize_with(RING, || None);
        }
        let old = self.remove(seq);
        let slot = &mut self.ring[Self::idx(seq)];
        if slot.is_none() {
            *slot = Some((seq, v));
        } else {
            self.overflow.insert(seq, v);
        }
        self.len += 1;
        old
    }

    pub fn remove(&mut self, seq: i32) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let slot = &mut self.ring[Self::idx(seq)];
        if matches!(slot, Some((s, _)) if *s == seq) {
            self.len -= 1;
            return slot.take().map(|e| e.1);
        }
        // Almost always empty: then there is nothing to hash (every insert of a new seq
        // comes through here).
        if self.overflow.is_empty() {
            return None;
        }
        let r = self.overflow.remove(&seq);
        if r.is_some() {
            self.len -= 1;
        }
        r
    }

    /// Seqs of the entries for which `pred` holds, appended to `out`.
    pub fn collect_keys(&self, out: &mut Vec<i32>, mut pred: impl FnMut(&V) -> bool) {
        if self.len == 0 {
            return;
        }
        for (s, v) in self.ring.iter().flatten() {
            if pred(v) {
                out.push(*s);
            }
        }
        for (s, v) in &self.overflow {
            if pred(v) {
                out.push(*s);
            }
        }
    }

    /// Removes and returns every entry.
    pub fn drain_all(&mut self) -> Vec<V> {
        let mut v: Vec<V> = self
            .ring
            .iter_mut()
            .filter_map(|e| e.take().map(|x| x.1))
            .collect();
        v.extend(self.overflow.drain().map(|e| e.1));
        self.len = 0;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_and_overflow() {
        let mut m = PendingMap::new();
        assert!(m.remove(1).is_none());
        for s in 1..=10_000 {
            m.insert(s, s);
        }
        assert_eq!(m.len(), 10_000);
        // 1 and 1 + RING share a slot: the later one overflowed
        assert_eq!(m.remove(1 + RING as i32), Some(1 + RING as i32));
        assert_eq!(m.remove(1), Some(1));
        assert_eq!(m.remove(1), None);
        let mut keys = Vec::new();
        m.collect_keys(&mut keys, |v| *v % 1000 == 0);
        keys.sort();
        assert_eq!(keys, (1..=10).map(|k| k * 1000).collect::<Vec<_>>());
        assert_eq!(m.insert(5, 50), Some(5));
        assert_eq!(m.remove(5), Some(50));
        assert_eq!(m.drain_all().len(), 9_997);
        assert!(m.is_empty());
        // wrap-around seqs near i32::MAX
        m.insert(i32::MAX, 1);
        m.insert(1, 2);
        assert_eq!(m.remove(i32::MAX), Some(1));
        assert_eq!(m.remove(1), Some(2));
    }
}
