//! `IdxFileQueue`: the index files (`docs/storage-format.md` §3), mapping a Raft index to the absolute
//! log position of its item.
//!
//! Entries live first in an in-memory cache; only committed entries are written to the
//! files (big-endian u64 at `index × 8` of the index address space). A flush encodes the
//! due entries into one buffer per file on the owner's thread ([`IdxFileQueue::write_upto`])
//! and an IO thread writes and fsyncs them ([`IdxWrite::run`]); lookups of entries no
//! longer cached read 8 bytes with `pread` ([`PosAt::resolve`]). The files are not
//! memory mapped: a store into or a load from a mapping can fault and wait for the disk
//! on whatever thread touches it, which must never be a dispatcher thread. Flushes are
//! rare (every `idx_flush_threshold` committed entries), so a `pwrite` each costs
//! nothing measurable.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::error::{StoreError, StoreResult};
use super::faults::Faults;
use super::file_queue::{DtFile, FileMaker, FileQueue};

/// The index files of one group plus the cache of not-yet-flushed entries.
pub struct IdxFileQueue {
    queue: FileQueue,
    items_per_file: u64,
    sync: bool,
    cache: VecDeque<u64>,
    cache_first: u64,
    next_flush: u64,
    cache_limit: usize,
}

impl std::fmt::Debug for IdxFileQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdxFileQueue")
            .field("cache_first", &self.cache_first)
            .field("cache_len", &self.cache.len())
            .field("next_flush", &self.next_flush)
            .finish()
    }
}

impl IdxFileQueue {
    /// Opens the index directory; `items_per_file` must be a power of two.
    pub fn open(
        dir: &Path,
        items_per_file: u64,
        cache_limit: usize,
        sync: bool,
        faults: Faults,
    ) -> StoreResult<IdxFileQueue> {
        if !items_per_file.is_power_of_two() {
            return Err(StoreError::InvalidArgument(format!(
                "idxItemsPerFile {items_per_file} is not a power of two"
            )));
        }
        let queue = FileQueue::open_allocated(dir, items_per_file * 8, sync, faults)?;
        Ok(IdxFileQueue {
            queue,
            items_per_file,
            sync,
            cache: VecDeque::new(),
            cache_first: 1,
            next_flush: 1,
            cache_limit,
        })
    }

    /// The first Raft index covered by the first index file.
    pub fn first_index_covered(&self) -> Option<u64> {
        self.queue.first_start().map(|s| s / 8)
    }

    /// Number of index files.
    pub fn file_count(&self) -> usize {
        self.queue.len()
    }

    /// Reads the entry of `index` from the files (no cache). `None` if no file covers it.
    /// (A `pread` on the calling thread: for recovery and the blocking API.)
    pub fn read_file_entry(&mut self, index: u64) -> StoreResult<Option<u64>> {
        let Some(pos) = index.checked_mul(8) else {
            return Ok(None);
        };
        let Some(file) = self.queue.get(pos) else {
            return Ok(None);
        };
        read_entry(&file, index).map(Some)
    }

    /// Restarts the cache so that the next pushed entry is `first_index`; entries
    /// before it are flushed (or not needed). `next_flush` becomes `first_index`.
    pub fn reset(&mut self, first_index: u64) {
        self.cache.clear();
        self.cache_first = first_index;
        self.next_flush = first_index;
    }

    /// Records the position of `index`, which must follow the last cached entry.
    pub fn push(&mut self, index: u64, pos: u64) {
        debug_assert_eq!(index, self.cache_first + self.cache.len() as u64);
        self.cache.push_back(pos);
    }

    /// The last index with a known position (cached), or `cache_first - 1`.
    pub fn last_index(&self) -> u64 {
        self.cache_first + self.cache.len() as u64 - 1
    }

    /// The next index that a flush will write.
    pub fn next_flush(&self) -> u64 {
        self.next_flush
    }

    /// Drops the cached entries ≥ `index` (tail truncation). Entries already flushed
    /// are committed and cannot be truncated.
    pub fn truncate(&mut self, index: u64) -> StoreResult<()> {
        if index < self.next_flush || index < self.cache_first {
            return Err(StoreError::InvalidArgument(format!(
                "cannot truncate at {index}: entries up to {} are committed and flushed",
                self.next_flush - 1
            )));
        }
        let keep = (index - self.cache_first) as usize;
        self.cache.truncate(keep);
        Ok(())
    }

    /// The log position of `index` (cache first, then the files for flushed entries).
    pub fn pos(&mut self, index: u64) -> StoreResult<u64> {
        self.pos_and_source(index).map(|(p, _)| p)
    }

    /// [`IdxFileQueue::pos`], and where the position was read from when it came from an
    /// index file (a position from the cache was computed by this process and cannot be
    /// damaged on disk).
    pub fn pos_and_source(&mut self, index: u64) -> StoreResult<(u64, Option<IndexEntryRef>)> {
        if index >= self.cache_first && index <= self.last_index() {
            return Ok((self.cache[(index - self.cache_first) as usize], None));
        }
        if index > 0 && index < self.next_flush {
            if let Some(p) = self.read_file_entry(index)? {
                let at = self.entry_ref(index, p);
                return Ok((p, at));
            }
        }
        Err(StoreError::NotFound {
            index,
            reason: "no index entry (truncated, deleted or never written)".into(),
        })
    }

    /// The position of `index` if the cache holds it (no file access).
    pub fn cached_pos(&self, index: u64) -> Option<u64> {
        (index >= self.cache_first && index <= self.last_index())
            .then(|| self.cache[(index - self.cache_first) as usize])
    }

    /// Where the position of `index` is, without reading a file: in the cache, or in
    /// an index file, to be read by [`PosAt::resolve`] wherever file IO may block (the
    /// owner of the queue reads no file for it).
    pub fn locate(&self, index: u64) -> StoreResult<PosAt> {
        if let Some(p) = self.cached_pos(index) {
            return Ok(PosAt::Known(p));
        }
        if index > 0 && index < self.next_flush {
            if let Some(file) = index.checked_mul(8).and_then(|p| self.queue.get(p)) {
                let prev = match index - 1 {
                    0 => PrevAt::None,
                    p => match self.cached_pos(p) {
                        Some(pp) => PrevAt::Known(pp),
                        None => self.queue.get(p * 8).map_or(PrevAt::None, PrevAt::File),
                    },
                };
                return Ok(PosAt::File(IdxEntryRead { file, index, prev }));
            }
        }
        Err(StoreError::NotFound {
            index,
            reason: "no index entry (truncated, deleted or never written)".into(),
        })
    }

    /// Where the index entry of `index` (holding position `pos`) lives, with the
    /// position of entry `index - 1` when it is known, for diagnosing a bad position.
    pub fn entry_ref(&mut self, index: u64, pos: u64) -> Option<IndexEntryRef> {
        if index == 0 {
            return None;
        }
        let file = self.queue.get(index.checked_mul(8)?)?;
        // From the cache, else from the file (at recovery nothing is cached yet).
        let prev_pos = match index - 1 {
            0 => None,
            p if p >= self.cache_first && p <= self.last_index() => {
                Some(self.cache[(p - self.cache_first) as usize])
            }
            p => self.read_file_entry(p).ok().flatten(),
        };
        Some(IndexEntryRef {
            file: file.path.clone(),
            offset: index * 8 - file.start,
            index,
            pos,
            prev_pos,
        })
    }

    /// Writes the cached entries from the next unflushed one up to `min(upto, last
    /// cached)` into the files and syncs them (unless sync is off), on the calling
    /// thread. Returns the last index now durable in the files, if anything was written.
    pub fn flush(&mut self, upto: u64) -> StoreResult<Option<u64>> {
        match self.write_upto(upto)? {
            Some(w) => {
                w.run()?;
                self.written(w.end);
                Ok(Some(w.end))
            }
            None => Ok(None),
        }
    }

    /// The first half of [`IdxFileQueue::flush`]: encodes the entries (memory only,
    /// cheap on the owner's thread, as long as the files they go to exist; see
    /// [`IdxFileQueue::files_missing_for_flush`]) and returns the write, which
    /// [`IdxWrite::run`] does without needing this queue. Until
    /// [`IdxFileQueue::written`] reports it done, the entries stay cached, so lookups
    /// never read a file that does not hold them yet.
    pub fn write_upto(&mut self, upto: u64) -> StoreResult<Option<IdxWrite>> {
        let end = upto.min(self.last_index());
        if end < self.next_flush {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut i = self.next_flush;
        while i <= end {
            // Made beforehand by an IO job in `DefaultRaftLog`; here only for the
            // blocking API.
            let file = self.queue.ensure(i * 8)?;
            let file_last = (file.start + self.queue.file_size()) / 8 - 1;
            let stop = end.min(file_last);
            let first = (i - self.cache_first) as usize;
            let n = (stop - i + 1) as usize;
            let mut data = Vec::with_capacity(n * 8);
            for k in 0..n {
                data.extend_from_slice(&self.cache[first + k].to_be_bytes());
            }
            parts.push(IdxPart {
                offset: i * 8 - file.start,
                file,
                data,
            });
            i = stop + 1;
        }
        self.next_flush = end + 1;
        Ok(Some(IdxWrite {
            end,
            parts,
            sync: self.sync,
        }))
    }

    /// Records that a write from [`IdxFileQueue::write_upto`] up to `end` is in the
    /// files: flushed entries beyond the cache budget leave the cache (lookups read
    /// them from the files now).
    pub fn written(&mut self, end: u64) {
        let upto = end.saturating_add(1).min(self.next_flush);
        while self.cache.len() > self.cache_limit && self.cache_first < upto {
            self.cache.pop_front();
            self.cache_first += 1;
        }
    }

    /// Deletes leading index files that only cover indexes below `first_log_index`
    /// (never the last file, never entries not yet flushed).
    pub fn delete_before(&mut self, first_log_index: u64) -> StoreResult<usize> {
        let mut n = 0;
        while self.queue.len() > 1 {
            let next_first = self.queue.first_start().expect("non-empty") / 8 + self.items_per_file;
            if first_log_index >= next_first
                && self.next_flush > next_first
                && !self.queue.first_in_use()
            {
                self.queue.delete_first()?;
                n += 1;
            } else {
                break;
            }
        }
        Ok(n)
    }

    /// [`IdxFileQueue::delete_before`] without the deletion: the files are taken out of
    /// the queue, for the caller to delete elsewhere (an IO thread) with
    /// [`FileQueue::delete_file`].
    pub fn take_before(&mut self, first_log_index: u64) -> Vec<Arc<DtFile>> {
        let mut out = Vec::new();
        while self.queue.len() > 1 {
            let next_first = self.queue.first_start().expect("non-empty") / 8 + self.items_per_file;
            if first_log_index >= next_first
                && self.next_flush > next_first
                && !self.queue.first_in_use()
            {
                out.extend(self.queue.pop_first());
            } else {
                break;
            }
        }
        out
    }

    /// The starts of the index files a flush up to `upto` would have to create (in
    /// order), so that they can be made elsewhere first ([`IdxFileQueue::maker`],
    /// [`IdxFileQueue::push_created`]).
    pub fn files_missing_for_flush(&self, upto: u64) -> Vec<u64> {
        let end = upto.min(self.last_index());
        if end < self.next_flush {
            return Vec::new();
        }
        let size = self.queue.file_size();
        let last = self.queue.file_start_of(end * 8);
        let mut next = self
            .queue
            .end()
            .unwrap_or_else(|| self.queue.file_start_of(self.next_flush * 8));
        let mut v = Vec::new();
        while next <= last {
            v.push(next);
            next += size;
        }
        v
    }

    /// Makes index files off this queue's owner (see [`FileQueue::maker`]).
    pub fn maker(&self) -> FileMaker {
        self.queue.maker()
    }

    /// Adds an index file made by [`IdxFileQueue::maker`].
    pub fn push_created(&mut self, f: Arc<DtFile>) -> StoreResult<()> {
        self.queue.push_created(f)
    }

    /// Deletes every index file (install begin) and clears the cache.
    pub fn delete_all(&mut self) -> StoreResult<()> {
        self.queue.delete_all()?;
        self.cache.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries being flushed stay cached until the write is done: a lookup never goes
    /// to a file that does not hold them yet. Afterwards they come from the file.
    #[test]
    fn flushed_entries_leave_the_cache_only_once_written() {
        let d = tempfile::tempdir().unwrap();
        let mut q = IdxFileQueue::open(d.path(), 256, 2, true, None).unwrap();
        q.reset(1);
        for i in 1..=10u64 {
            q.push(i, i * 100);
        }
        let w = q.write_upto(8).unwrap().unwrap();
        assert_eq!((w.end, q.next_flush()), (8, 9));
        assert!(matches!(q.locate(3).unwrap(), PosAt::Known(300)));
        assert!(q.truncate(8).is_err(), "flushed entries are not truncated");
        w.run().unwrap();
        q.written(w.end);
        match q.locate(3).unwrap() {
            PosAt::File(r) => {
                let (pos, at) = r.run().unwrap();
                assert_eq!(
                    (pos, at.index, at.offset, at.prev_pos),
                    (300, 3, 24, Some(200))
                );
            }
            other => panic!("entry 3 should be read from its file: {other:?}"),
        }
        assert_eq!(q.cached_pos(9), Some(900));
        assert_eq!(q.locate(9).unwrap().resolve().unwrap(), (900, None));
    }

    #[test]
    fn push_flush_read_truncate() {
        let d = tempfile::tempdir().unwrap();
        let mut q = IdxFileQueue::open(d.path(), 4, 2, true, None).unwrap();
        q.reset(1);
        for i in 1..=10u64 {
            q.push(i, i * 100);
        }
        assert_eq!(q.pos(7).unwrap(), 700);
        assert_eq!(q.flush(6).unwrap(), Some(6));
        assert_eq!(q.file_count(), 2); // indexes 0..4 and 4..8
        assert!(q.truncate(5).is_err());
        q.truncate(8).unwrap();
        assert_eq!(q.last_index(), 7);
        assert_eq!(q.pos(2).unwrap(), 200);
        assert!(q.pos(9).is_err());
        drop(q);
        let raw = std::fs::read(d.path().join("00000000000000000000")).unwrap();
        assert_eq!(&raw[0..8], &[0u8; 8]);
        assert_eq!(&raw[8..16], &100u64.to_be_bytes());
        let mut q = IdxFileQueue::open(d.path(), 4, 2, true, None).unwrap();
        assert_eq!(q.first_index_covered(), Some(0));
        assert_eq!(q.read_file_entry(6).unwrap(), Some(600));
        assert_eq!(q.read_file_entry(9).unwrap(), None);
        q.reset(7);
        q.push(7, 700);
        q.push(8, 800);
        q.flush(8).unwrap();
        assert_eq!(q.delete_before(5).unwrap(), 1);
        assert_eq!(q.first_index_covered(), Some(4));
    }
}

/// One entry of an index file, for errors: which file, where in it, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntryRef {
    /// The index file.
    pub file: PathBuf,
    /// Offset of the entry inside `file`.
    pub offset: u64,
    /// The Raft index the entry is for.
    pub index: u64,
    /// The log position the entry holds.
    pub pos: u64,
    /// The position of entry `index - 1` (cache or index file), if known.
    pub prev_pos: Option<u64>,
}

impl IndexEntryRef {
    /// The error for this entry when it is known to be wrong.
    pub fn corrupt(&self, why: impl std::fmt::Display) -> StoreError {
        StoreError::corrupt(
            &self.file,
            self.offset,
            format!(
                "the index entry of entry {} holds log position {}, but {why}; the index \
                 file is damaged (restore it, or reinstall this node from a snapshot)",
                self.index, self.pos
            ),
        )
    }
}

/// Where a log position is: see [`IdxFileQueue::locate`].
#[derive(Clone, Debug)]
pub enum PosAt {
    /// Known in memory (computed by this process; it cannot be damaged on disk).
    Known(u64),
    /// In an index file.
    File(IdxEntryRead),
}

impl PosAt {
    /// The position, reading the index file if needed (an 8-byte `pread`, run on an
    /// IO thread), and where it came from when it came from a
    /// file (for blaming a damaged entry).
    pub fn resolve(&self) -> StoreResult<(u64, Option<IndexEntryRef>)> {
        match self {
            PosAt::Known(p) => Ok((*p, None)),
            PosAt::File(r) => r.run().map(|(p, at)| (p, Some(at))),
        }
    }

    /// The position if it is known without a read.
    pub fn known(&self) -> Option<u64> {
        match self {
            PosAt::Known(p) => Some(*p),
            PosAt::File(_) => None,
        }
    }
}

/// Where the position of the entry before an index-file entry is (for diagnostics).
#[derive(Clone, Debug)]
enum PrevAt {
    None,
    Known(u64),
    File(Arc<DtFile>),
}

/// One index-file entry to read: the file handle and the index (the offset follows
/// from it). Holding the file keeps it from being deleted until the read is done.
#[derive(Clone, Debug)]
pub struct IdxEntryRead {
    file: Arc<DtFile>,
    index: u64,
    prev: PrevAt,
}

fn read_entry(file: &DtFile, index: u64) -> StoreResult<u64> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, index * 8 - file.start)?;
    Ok(u64::from_be_bytes(b))
}

impl IdxEntryRead {
    /// Reads the entry (and, best effort, the one before it): the position and the
    /// entry's reference.
    pub fn run(&self) -> StoreResult<(u64, IndexEntryRef)> {
        let pos = read_entry(&self.file, self.index)?;
        let prev_pos = match &self.prev {
            PrevAt::None => None,
            PrevAt::Known(p) => Some(*p),
            PrevAt::File(f) => read_entry(f, self.index - 1).ok(),
        };
        Ok((
            pos,
            IndexEntryRef {
                file: self.file.path.clone(),
                offset: self.index * 8 - self.file.start,
                index: self.index,
                pos,
                prev_pos,
            },
        ))
    }
}

/// Index entries encoded by [`IdxFileQueue::write_upto`], to be written and made
/// durable: buffers and file handles only, so it runs on an IO thread without the
/// queue.
#[derive(Debug)]
pub struct IdxWrite {
    /// The last index written.
    pub end: u64,
    parts: Vec<IdxPart>,
    sync: bool,
}

/// The entries of one index file in one write.
#[derive(Debug)]
struct IdxPart {
    file: Arc<DtFile>,
    offset: u64,
    data: Vec<u8>,
}

impl IdxWrite {
    /// Writes the entries (one `pwrite` per file) and fsyncs the files (unless sync is
    /// off).
    pub fn run(&self) -> StoreResult<()> {
        for p in &self.parts {
            p.file.write_all_at(&p.data, p.offset)?;
        }
        if self.sync {
            for p in &self.parts {
                p.file.sync_data()?;
            }
        }
        Ok(())
    }
}
