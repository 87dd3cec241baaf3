//! The driver's tail cache: the newest entries of the log in memory, with the callers
//! of the leader's own entries (raft.md §6.3 "tail cache").

use std::collections::VecDeque;

use crate::core::Index;
use crate::sm::SubmitCallback;
use crate::store::LogItem;

/// One cached entry.
pub(crate) struct TailEntry<O> {
    pub(crate) item: LogItem,
    /// The caller waiting for this entry (leader-created entries only).
    pub(crate) cb: Option<SubmitCallback<O>>,
    /// Monotonic nanos when this process created or received the entry.
    pub(crate) local_nanos: i64,
}

/// Consecutive entries `first ..= first + len - 1`.
pub(crate) struct TailCache<O> {
    entries: VecDeque<TailEntry<O>>,
    bytes: usize,
    /// Callbacks held (unapplied leader entries): flow control.
    pub(crate) pending_tasks: usize,
    /// Their body + header bytes.
    pub(crate) pending_bytes: usize,
}

impl<O> TailCache<O> {
    pub(crate) fn new() -> Self {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
            pending_tasks: 0,
            pending_bytes: 0,
        }
    }

    pub(crate) fn first_index(&self) -> Option<Index> {
        self.entries.front().map(|e| e.item.index)
    }

    pub(crate) fn last_index(&self) -> Option<Index> {
        self.entries.back().map(|e| e.item.index)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn pos(&self, index: Index) -> Option<usize> {
        let first = self.first_index()?;
        if index < first {
            return None;
        }
        let p = (index - first) as usize;
        (p < self.entries.len()).then_some(p)
    }

    pub(crate) fn get(&self, index: Index) -> Option<&TailEntry<O>> {
        self.pos(index).map(|p| &self.entries[p])
    }

    pub(crate) fn get_mut(&mut self, index: Index) -> Option<&mut TailEntry<O>> {
        self.pos(index).map(|p| &mut self.entries[p])
    }

    /// True when every index of `first .. first + count` is cached.
    pub(crate) fn covers(&self, first: Index, count: u64) -> bool {
        count == 0 || (self.pos(first).is_some() && self.pos(first + count - 1).is_some())
    }

    /// Appends an entry; it must continue the cache (an entry that does not replaces
    /// the whole cache: the log moved on without it).
    pub(crate) fn push(&mut self, e: TailEntry<O>) {
        if let Some(last) = self.last_index() {
            if e.item.index != last + 1 {
                debug_assert!(false, "tail cache gap: {} after {}", e.item.index, last);
                self.clear_silently();
            }
        }
        self.bytes += e.item.header.len() + e.item.body.len();
        if e.cb.is_some() {
            self.pending_tasks += 1;
            self.pending_bytes += e.item.header.len() + e.item.body.len();
        }
        self.entries.push_back(e);
    }

    fn clear_silently(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Removes entries with index > `index`, returning their callbacks.
    pub(crate) fn truncate_after(&mut self, index: Index, out: &mut Vec<SubmitCallback<O>>) {
        while let Some(e) = self.entries.back() {
            if e.item.index <= index {
                break;
            }
            let e = self.entries.pop_back().expect("checked");
            self.forget(&e);
            if let Some(cb) = e.cb {
                out.push(cb);
            }
        }
    }

    /// Takes every callback still held (a leader stepped down).
    pub(crate) fn take_callbacks(&mut self, out: &mut Vec<SubmitCallback<O>>) {
        for e in self.entries.iter_mut() {
            if let Some(cb) = e.cb.take() {
                out.push(cb);
            }
        }
        self.pending_tasks = 0;
        self.pending_bytes = 0;
    }

    /// The callback of entry `index` was taken for its completion.
    pub(crate) fn take_callback(&mut self, index: Index) -> Option<SubmitCallback<O>> {
        let e = self.get_mut(index)?;
        let cb = e.cb.take()?;
        let size = e.item.header.len() + e.item.body.len();
        self.pending_tasks = self.pending_tasks.saturating_sub(1);
        self.pending_bytes = self.pending_bytes.saturating_sub(size);
        Some(cb)
    }

    fn forget(&mut self, e: &TailEntry<O>) {
        let size = e.item.header.len() + e.item.body.len();
        self.bytes = self.bytes.saturating_sub(size);
        if e.cb.is_some() {
            self.pending_tasks = self.pending_tasks.saturating_sub(1);
            self.pending_bytes = self.pending_bytes.saturating_sub(size);
        }
    }

    /// Drops applied entries (index ≤ `applied`) older than `min_nanos`, or while the
    /// cache is above its bounds, or that nobody will ask for again (index ≤
    /// `droppable`: every peer holds them, or this node is not the leader; keeping
    /// them only costs memory).
    pub(crate) fn evict(
        &mut self,
        applied: Index,
        droppable: Index,
        min_nanos: i64,
        max_items: usize,
        max_bytes: usize,
    ) {
        while let Some(e) = self.entries.front() {
            if e.item.index > applied || e.cb.is_some() {
                break;
            }
            let over = self.entries.len() > max_items || self.bytes > max_bytes;
            if !over && e.local_nanos >= min_nanos && e.item.index > droppable {
                break;
            }
            let e = self.entries.pop_front().expect("checked");
            self.forget(&e);
        }
        self.release_room();
    }

    /// Gives back the room of a queue that once held far more entries than it does
    /// now (a burst, a lagging follower): a `VecDeque` never shrinks by itself, and
    /// 100 000 slots are about 11 MiB.
    fn release_room(&mut self) {
        let (len, cap) = (self.entries.len(), self.entries.capacity());
        if cap > SHRINK_MIN_SLOTS && cap / 4 > len {
            self.entries.shrink_to((len * 2).max(SHRINK_MIN_SLOTS));
        }
    }
}

/// The queue keeps at least this many slots once it had them (a shrink below would
/// only grow again in the next burst).
const SHRINK_MIN_SLOTS: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: Index, with_cb: bool) -> TailEntry<()> {
        TailEntry {
            item: LogItem {
                index,
                term: 1,
                body: bytes::Bytes::from_static(b"abcd"),
                ..Default::default()
            },
            cb: with_cb.then(|| SubmitCallback::Boxed(Box::new(|_| {}))),
            local_nanos: index as i64,
        }
    }

    #[test]
    fn truncate_returns_callbacks_and_counts() {
        let mut t = TailCache::new();
        for i in 5..10 {
            t.push(entry(i, i >= 7));
        }
        assert_eq!((t.first_index(), t.last_index()), (Some(5), Some(9)));
        assert!(t.covers(6, 4) && !t.covers(6, 5) && !t.covers(4, 1));
        assert_eq!((t.pending_tasks, t.pending_bytes), (3, 12));
        let mut out = Vec::new();
        t.truncate_after(7, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(t.last_index(), Some(7));
        assert_eq!((t.pending_tasks, t.pending_bytes), (1, 4));
        assert!(t.take_callback(7).is_some());
        assert_eq!(t.pending_tasks, 0);
    }

    #[test]
    fn evicts_only_applied_old_entries() {
        let mut t = TailCache::new();
        for i in 1..=10 {
            t.push(entry(i, false));
        }
        t.evict(4, 0, 3, 100, usize::MAX);
        assert_eq!(t.first_index(), Some(3));
        t.evict(6, 0, 0, 5, usize::MAX);
        assert_eq!(t.first_index(), Some(6));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn gives_back_the_room_of_a_burst_once_it_is_evicted() {
        let mut t = TailCache::new();
        for i in 1..=100_000 {
            t.push(entry(i, false));
        }
        assert!(t.entries.capacity() >= 100_000);
        t.evict(99_990, 99_990, 0, 100_000, usize::MAX);
        assert_eq!(t.len(), 10);
        assert!(
            t.entries.capacity() <= 2 * SHRINK_MIN_SLOTS,
            "capacity {} kept for 10 entries",
            t.entries.capacity()
        );
        // the entries left are intact
        assert_eq!(
            (t.first_index(), t.last_index()),
            (Some(99_991), Some(100_000))
        );
        assert_eq!(t.get(99_995).map(|e| e.item.index), Some(99_995));
    }

    #[test]
    fn evicts_entries_every_peer_holds_at_once_but_not_unapplied_ones() {
        let mut t = TailCache::new();
        for i in 1..=10 {
            t.push(entry(i, i == 9));
        }
        // young entries (min_nanos 0), replicated up to 7, applied up to 5
        t.evict(5, 7, 0, 100, usize::MAX);
        assert_eq!(t.first_index(), Some(6));
        // applied up to 10, replicated up to 10: stops at the entry with a caller
        t.evict(10, 10, 0, 100, usize::MAX);
        assert_eq!(t.first_index(), Some(9));
        assert!(t.take_callback(9).is_some());
        t.evict(10, 8, 0, 100, usize::MAX);
        assert_eq!(t.first_index(), Some(9), "9 is not held by every peer");
    }
}
