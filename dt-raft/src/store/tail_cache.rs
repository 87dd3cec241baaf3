//! `TailCache`: the most recent log entries kept in memory, so that replication and
//! apply of fresh entries never touch the disk. Entries not yet written to a file are
//! never evicted (reads of them must be served from here).

use std::collections::VecDeque;

use super::log_item::LogItem;

/// Recent entries, consecutive by index.
#[derive(Debug, Default)]
pub struct TailCache {
    items: VecDeque<LogItem>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl TailCache {
    /// An empty cache with the given bounds.
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        TailCache {
            items: VecDeque::new(),
            bytes: 0,
            max_items,
            max_bytes,
        }
    }

    /// Index of the first cached entry.
    pub fn first_index(&self) -> Option<u64> {
        self.items.front().map(|i| i.index)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The cached entry `index`.
    pub fn get(&self, index: u64) -> Option<&LogItem> {
        let f = self.first_index()?;
        if index < f {
            return None;
        }
        self.items.get((index - f) as usize)
    }

    /// Appends an entry (it must follow the last one; otherwise the cache restarts).
    pub fn push(&mut self, item: LogItem) {
        if let Some(b) = self.items.back() {
            if b.index + 1 != item.index {
                self.clear();
            }
        }
        self.bytes += item.encoded_len();
        self.items.push_back(item);
    }

    /// Evicts the oldest entries over the bounds, but none with index > `written`.
    pub fn evict(&mut self, written: u64) {
        while (self.items.len() > self.max_items || self.bytes > self.max_bytes)
            && self.items.front().is_some_and(|i| i.index <= written)
        {
            let i = self.items.pop_front().expect("non-empty");
            self.bytes -= i.encoded_len();
        }
    }

    /// Drops entries ≥ `index`.
    pub fn truncate(&mut self, index: u64) {
        while self.items.back().is_some_and(|i| i.index >= index) {
            let i = self.items.pop_back().expect("non-empty");
            self.bytes -= i.encoded_len();
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// Up to `max` entries from `index` whose encoded sizes fit `bytes_limit` (at least
    /// one), cloned (cheap: payloads are `Bytes`).
    pub fn read(&self, index: u64, max: usize, bytes_limit: usize) -> Vec<LogItem> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = index;
        while out.len() < max {
            let Some(it) = self.get(i) else { break };
            let l = it.encoded_len();
            if !out.is_empty() && bytes + l > bytes_limit {
                break;
            }
            bytes += l;
            out.push(it.clone());
            i += 1;
        }
        out
    }
}
