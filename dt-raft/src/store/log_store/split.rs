//! The store's work split between its owner and IO threads.
//!
//! The owner (the thread of the group, see `DefaultRaftLog`) keeps every piece of
//! bookkeeping: positions, segments, the tail cache, the index cache, watermarks. It
//! *plans* each piece of file work here, in memory, and gets back a job that holds
//! only what the syscalls need: buffers and open file handles (by value: `Arc<DtFile>`
//! handles or a snapshot of the segment list, never the store's own list). The job
//! runs anywhere (an IO thread), and its result comes back to the owner, which records
//! it. No job holds a reference into the store.
//!
//! Planning reads no file: a position that only an index file holds travels in the job
//! as the file handle and entry to read ([`PosAt`]), and is read by the job (an 8-byte
//! `pread`).

use std::cell::Cell;

use super::*;
use crate::store::file_queue::FileMaker;
use crate::store::fsync_batcher::FsyncBatcher;
use dt_common::{PerfHook, PerfType};

/// Writes of prepared batches (and the creation of the segments they start), then,
/// with `sync`, one `fdatasync` per segment touched: plain IO, planned by
/// [`LogStore::plan_write`].
#[derive(Debug)]
pub struct WriteJob {
    creates: Vec<u64>,
    maker: FileMaker,
    files: Vec<Arc<DtFile>>,
    seg_size: u64,
    batches: Vec<WriteBatch>,
    sync: bool,
    perf: PerfHook,
}

/// What a [`WriteJob`] did, for [`LogStore::write_done`].
#[derive(Debug)]
pub struct WriteDone {
    /// The batches written (their buffers go back for reuse).
    pub batches: Vec<WriteBatch>,
    /// Segments the job created, in order.
    pub created: Vec<Arc<DtFile>>,
    /// Segments written, to fsync later when the job did not.
    pub touched: Vec<Arc<DtFile>>,
    /// Whether the job fsynced what it wrote.
    pub synced: bool,
}

impl WriteJob {
    /// Whether the job also fsyncs.
    pub fn syncs(&self) -> bool {
        self.sync
    }

    /// Creates the planned segments, writes every chunk in order, and fsyncs the
    /// segments touched when the plan says so.
    pub fn run(self) -> StoreResult<WriteDone> {
        let sync = self.sync;
        let (perf, (items, bytes)) = self.perf_and_size();
        let done = self.write(&perf, (items, bytes))?;
        if sync {
            let t = perf.start(PerfType::RaftLogSync);
            for f in &done.touched {
                f.sync_data()?;
            }
            perf.end(PerfType::RaftLogSync, t, items, bytes);
        }
        Ok(WriteDone {
            synced: sync,
            ..done
        })
    }

    /// [`WriteJob::run`] with the fsync through `batcher` (shared with other logs):
    /// creates and writes, then hands the segments touched to the batcher when the
    /// plan says to fsync; `done` gets the outcome (on this thread or the batcher's).
    /// Inside [`defer_syncs`](crate::store::fsync_batcher::defer_syncs) the fsync
    /// request waits for the deferral's end, to share a round with the other jobs run
    /// there.
    pub fn run_batched(
        self,
        batcher: &Arc<FsyncBatcher>,
        done: impl FnOnce(StoreResult<WriteDone>) + Send + 'static,
    ) {
        let sync = self.sync;
        let (perf, (items, bytes)) = self.perf_and_size();
        match self.write(&perf, (items, bytes)) {
            Ok(mut w) if sync && !w.touched.is_empty() => {
                // A synced write's segments need no later fsync: the batcher takes them.
                let files = std::mem::take(&mut w.touched);
                let t = perf.start(PerfType::RaftLogSync);
                batcher.sync_deferred(
                    files,
                    Box::new(move |r| {
                        perf.end(PerfType::RaftLogSync, t, items, bytes);
                        done(r.map(|()| WriteDone { synced: true, ..w }));
                    }),
                );
            }
            Ok(w) => done(Ok(WriteDone { synced: sync, ..w })),
            Err(e) => done(Err(e)),
        }
    }

    /// The job's perf hook and, when the hook times its write or its fsync, the entries
    /// and bytes it writes (counted once for both; (0, 0) when nothing is timed).
    fn perf_and_size(&self) -> (PerfHook, (u64, u64)) {
        let perf = self.perf.clone();
        let timed = perf.accept(PerfType::RaftLogWrite1)
            || (self.sync && perf.accept(PerfType::RaftLogSync));
        let size = if timed { self.size() } else { (0, 0) };
        (perf, size)
    }

    /// The entries and bytes the job writes.
    fn size(&self) -> (u64, u64) {
        self.batches.iter().fold((0, 0), |(n, b), x| {
            let bytes: usize = x.chunks.iter().map(|c| c.data.len()).sum();
            (
                n + (x.last_index + 1).saturating_sub(x.first_index),
                b + bytes as u64,
            )
        })
    }

    /// Creates the planned segments and writes every chunk in order (no fsync); the
    /// writes are timed through `perf`, as `size` (entries, bytes).
    fn write(self, perf: &PerfHook, size: (u64, u64)) -> StoreResult<WriteDone> {
        let t = perf.start(PerfType::RaftLogWrite1);
        // the IO thread's join buffer, kept between jobs (a join of many small batches,
        // the common case with many groups, would otherwise allocate and fault in a
        // new buffer for each job)
        let mut joined = JOINED.take();
        let r = self.write_joining(&mut joined);
        if r.is_ok() {
            perf.end(PerfType::RaftLogWrite1, t, size.0, size.1);
        }
        if joined.capacity() <= MAX_KEPT_JOIN_BUF {
            joined.clear();
            JOINED.set(joined);
        }
        r
    }

    /// [`WriteJob::write`] with `joined` (empty: the buffer is kept cleared) to copy
    /// continuing chunks into.
    fn write_joining(mut self, joined: &mut Vec<u8>) -> StoreResult<WriteDone> {
        let mut created = Vec::with_capacity(self.creates.len());
        for &start in &self.creates {
            created.push(self.maker.create(start)?);
        }
        // The planned open files are each written (the plan names a file only for a
        // chunk in it), so the list of them starts the list of files touched; created
        // segments join it when a chunk goes there.
        let mut touched: Vec<Arc<DtFile>> = std::mem::take(&mut self.files);
        // Chunks that continue each other in one segment (the batches queued behind one
        // write job) go out as one pwrite: the syscalls of a job stay one per segment
        // however many appends it carries. `run` holds the pending stretch: its file,
        // its position and either the one chunk (no copy) or the chunks copied.
        let mut run: Option<(Arc<DtFile>, u64, &[u8])> = None;
        for b in &self.batches {
            for c in &b.chunks {
                let start = c.pos & !(self.seg_size - 1);
                if let Some((f, pos, first)) = &run {
                    let len = if joined.is_empty() {
                        first.len()
                    } else {
                        joined.len()
                    };
                    if f.start == start && pos + len as u64 == c.pos {
                        if joined.is_empty() {
                            joined.reserve(first.len() + c.data.len());
                            joined.extend_from_slice(first);
                        }
                        joined.extend_from_slice(&c.data);
                        continue;
                    }
                }
                if let Some((f, pos, first)) = run.take() {
                    let data = if joined.is_empty() {
                        first
                    } else {
                        &joined[..]
                    };
                    f.write_all_at(data, pos - f.start)?;
                    f.note_appended(pos - f.start + data.len() as u64);
                    joined.clear();
                }
                let f = match touched.iter().find(|t| t.start == start) {
                    Some(f) => f.clone(),
                    None => {
                        let f = created
                            .iter()
                            .find(|f| f.start == start)
                            .cloned()
                            .ok_or_else(|| {
                                StoreError::InvalidArgument(format!(
                                    "no segment planned for position {}",
                                    c.pos
                                ))
                            })?;
                        touched.push(f.clone());
                        f
                    }
                };
                run = Some((f, c.pos, &c.data[..]));
            }
        }
        if let Some((f, pos, first)) = run.take() {
            let data = if joined.is_empty() {
                first
            } else {
                &joined[..]
            };
            f.write_all_at(data, pos - f.start)?;
            f.note_appended(pos - f.start + data.len() as u64);
        }
        Ok(WriteDone {
            batches: self.batches,
            created,
            touched,
            synced: false,
        })
    }
}

/// fsyncs of segments written earlier (by a job that did not fsync).
pub fn sync_files(files: &[Arc<DtFile>]) -> StoreResult<()> {
    for f in files {
        f.sync_data()?;
    }
    Ok(())
}

/// Deletion of old segments and index files, planned by
/// [`LogStore::plan_delete_expired`]: the files are already out of the store.
#[derive(Debug, Default)]
pub struct DeleteJob {
    log: Vec<Arc<DtFile>>,
    idx: Vec<Arc<DtFile>>,
    sync: bool,
}

impl DeleteJob {
    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() && self.idx.is_empty()
    }

    /// Deletes the files; returns the number of log segments deleted. A segment's
    /// blocks are then freed a step at a time before it is closed
    /// ([`DtFile::release_blocks`]), so that freeing a whole segment at once does not
    /// stall the fsyncs of the appends going on meanwhile.
    pub fn run(self) -> StoreResult<usize> {
        for f in self.log.iter().chain(self.idx.iter()) {
            FileQueue::delete_file(f, self.sync)?;
        }
        let n = self.log.len();
        for f in self.log {
            f.release_blocks();
        }
        Ok(n)
    }
}

/// Creation of the index files an index flush will need, planned by
/// [`LogStore::plan_index_files`] so that planning the flush itself (encoding on the
/// owner) never creates and allocates a file there.
#[derive(Debug)]
pub struct IndexFilesJob {
    maker: FileMaker,
    starts: Vec<u64>,
}

impl IndexFilesJob {
    /// Creates (allocates, fsyncs) the files, in order.
    pub fn run(self) -> StoreResult<Vec<Arc<DtFile>>> {
        self.starts.iter().map(|&s| self.maker.create(s)).collect()
    }
}

/// A segment header to read (see [`LogStore::plan_term_at`]): the entry's position
/// (known, or an index-file entry to read first) and the open segment files.
#[derive(Debug)]
pub struct HeaderRead {
    files: FileQueue,
    at: PosAt,
    index: u64,
}

impl HeaderRead {
    /// Reads the position if it is in an index file, then the header of the entry;
    /// returns its term and the position just after it.
    pub fn run(self) -> StoreResult<(u32, u64)> {
        let (pos, at) = self.at.resolve()?;
        read_header_at(&self.files, pos, self.index)
            .map(|h| (h.term, pos + h.total_len as u64))
            .map_err(|e| blame(&self.files, at.as_ref(), e))
    }
}

/// What [`LogStore::plan_truncate_tail`] left to do.
#[derive(Debug)]
pub enum TruncatePlan {
    /// The truncation is applied (or there was nothing to truncate).
    Done,
    /// The entry before the cut must be read first ([`TruncateRead::run`], on an IO
    /// thread), then the result handed to [`LogStore::finish_truncate_tail`].
    Read(TruncateRead),
}

/// The read a tail truncation needs: the header of entry `index - 1` (its term becomes
/// the last term, its end the next position when the cut is at a segment start).
#[derive(Debug)]
pub struct TruncateRead {
    index: u64,
    epoch: u64,
    header: HeaderRead,
}

impl TruncateRead {
    /// Reads the header (and its index-file entry when needed).
    pub fn run(self) -> StoreResult<PrevEntry> {
        let (term, end) = self.header.run()?;
        Ok(PrevEntry {
            index: self.index,
            epoch: self.epoch,
            term,
            end,
        })
    }
}

/// The result of a [`TruncateRead`].
#[derive(Debug, Clone, Copy)]
pub struct PrevEntry {
    index: u64,
    epoch: u64,
    term: u32,
    end: u64,
}

/// A value known at once, or a header to read first.
#[derive(Debug)]
pub enum Lookup<T> {
    /// Known from memory.
    Known(T),
    /// Read this header ([`HeaderRead::run`]).
    Read(HeaderRead),
}

thread_local! {
    /// See [`WriteJob::write`].
    static JOINED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest join buffer an IO thread keeps between jobs.
const MAX_KEPT_JOIN_BUF: usize = 1 << 20;

impl LogStore {
    /// Plans the write of `batches` (prepared by [`LogStore::prepare_append`], in
    /// order): which segments to create and which open files to write. With `sync`
    /// the job fsyncs each segment it touched.
    pub fn plan_write(&self, batches: Vec<WriteBatch>, sync: bool) -> WriteJob {
        let q = &self.files;
        let seg_size = q.file_size();
        let mut creates: Vec<u64> = Vec::new();
        let mut files: Vec<Arc<DtFile>> = Vec::new();
        let mut planned_end = q.end();
        for b in &batches {
            for c in &b.chunks {
                let start = q.file_start_of(c.pos);
                if files.iter().any(|f| f.start == start) || creates.contains(&start) {
                    continue;
                }
                match q.get(c.pos) {
                    Some(f) => files.push(f),
                    None => {
                        let mut next = planned_end.unwrap_or(start);
                        while next <= start {
                            creates.push(next);
                            next += seg_size;
                        }
                        planned_end = Some(next);
                    }
                }
            }
        }
        WriteJob {
            creates,
            maker: q.maker(),
            files,
            seg_size,
            batches,
            sync: sync && self.cfg.sync,
            perf: self.cfg.perf.clone(),
        }
    }

    /// Whether writing `batches` now would create a segment: some chunk lies past the
    /// segments the queue holds (one that a write job in flight may be creating).
    pub fn write_needs_new_segment(&self, batches: &[WriteBatch]) -> bool {
        // The queue's segments are contiguous: one range covers them all.
        let held = self.files.first_start().zip(self.files.end());
        batches
            .iter()
            .flat_map(|b| b.chunks.iter())
            .any(|c| !held.is_some_and(|(start, end)| (start..end).contains(&c.pos)))
    }

    /// Records a finished [`WriteJob`]: the segments it created join the queue, the
    /// written watermark moves (batches of an older truncation epoch excepted), and
    /// the fsynced one too when the job fsynced. The batches' buffers are kept for
    /// reuse. Returns the segments written, for a later [`sync_files`] when the job
    /// did not fsync.
    pub fn write_done(&mut self, done: WriteDone) -> StoreResult<Vec<Arc<DtFile>>> {
        for f in done.created {
            self.files.push_created(f)?;
        }
        let mut batches = done.batches;
        for b in batches.drain(..) {
            self.on_written(b.last_index, b.epoch, Vec::new());
            self.recycle(b);
        }
        if batches.capacity() > self.spare_batches.capacity() {
            self.spare_batches = batches;
        }
        if done.synced || !self.cfg.sync {
            self.on_forced(self.last_write_index);
        }
        Ok(done.touched)
    }

    /// Plans the deletion of the segments (and index files) that
    /// [`LogStore::delete_expired`] would delete now; they leave the store at once.
    pub fn plan_delete_expired(&mut self, now: Instant) -> DeleteJob {
        let mut job = DeleteJob {
            sync: self.cfg.sync,
            ..Default::default()
        };
        loop {
            let mut it = self.segs.iter();
            let (Some((&s0, i0)), Some((_, i1))) = (it.next(), it.next()) else {
                break;
            };
            let ok = i0.delete_at.is_some_and(|d| d <= now)
                && i1.first.is_some_and(|f| f.index <= self.last_force_index);
            if !ok {
                break;
            }
            let q = &mut self.files;
            if q.first_start() != Some(s0) || q.first_in_use() {
                break;
            }
            job.log.extend(q.pop_first());
            self.segs.remove(&s0);
        }
        let first = self.first_index();
        job.idx = self.idx.take_before(first);
        job
    }

    /// The segment files as they are now, for reads on an IO thread (see
    /// [`FileRead::read`]); they stay on disk while the copy exists.
    pub fn files_snapshot(&self) -> FileQueue {
        self.files.snapshot()
    }

    /// The term of entry `index`: from the tail cache, or a header read to run.
    pub fn plan_term_at(&mut self, index: u64) -> StoreResult<Lookup<u32>> {
        self.check_open()?;
        if let Some(t) = self.cached_term(index) {
            return Ok(Lookup::Known(t));
        }
        self.plan_header(index).map(Lookup::Read)
    }

    /// [`LogStore::next_item_pos`] without its disk read: known at once, or the header
    /// to read (whose second result is the position).
    pub fn plan_next_item_pos(&mut self, index: u64) -> StoreResult<Lookup<u64>> {
        self.check_open()?;
        self.lookup_next_item_pos(index)
    }

    pub(super) fn lookup_next_item_pos(&self, index: u64) -> StoreResult<Lookup<u64>> {
        if index == 0 {
            return Ok(Lookup::Known(0));
        }
        if index == self.last_index() {
            return Ok(Lookup::Known(self.next_pos));
        }
        let at = self.idx.locate(index)?;
        // Entries not yet written are only in the tail cache.
        if let (Some(pos), Some(len)) = (at.known(), self.cached_len(index)) {
            return Ok(Lookup::Known(pos + len));
        }
        Ok(Lookup::Read(self.header_read(index, at)))
    }

    pub(super) fn plan_header(&self, index: u64) -> StoreResult<HeaderRead> {
        let at = self.idx.locate(index)?;
        Ok(self.header_read(index, at))
    }

    fn header_read(&self, index: u64, at: PosAt) -> HeaderRead {
        HeaderRead {
            files: self.files_snapshot(),
            at,
            index,
        }
    }

    /// [`LogStore::truncate_tail`] without file access on the caller's thread: checks
    /// the request, and applies it at once when everything it needs is in memory (the
    /// entry before the cut in the tail cache); otherwise returns the read to run
    /// elsewhere, after which [`LogStore::finish_truncate_tail`] applies it. Until then
    /// the log is unchanged.
    pub fn plan_truncate_tail(&mut self, index: u64) -> StoreResult<TruncatePlan> {
        if !self.check_truncate(index)? {
            return Ok(TruncatePlan::Done);
        }
        let first = self.first_index();
        let prev = if index > first {
            // The end of entry `index - 1` matters only for a cut at a segment start.
            let at_seg_start = self
                .idx
                .cached_pos(index)
                .is_some_and(|p| p % self.cfg.log_file_size == 0);
            let end = match (self.idx.cached_pos(index - 1), self.cached_len(index - 1)) {
                (Some(pos), Some(len)) => Some(pos + len),
                // Not used by `apply_truncate` away from a segment start.
                _ if !at_seg_start => Some(0),
                _ => None,
            };
            match self.cached_term(index - 1).zip(end) {
                Some(known) => Some(known),
                None => {
                    return Ok(TruncatePlan::Read(TruncateRead {
                        index,
                        epoch: self.epoch,
                        header: self.plan_header(index - 1)?,
                    }))
                }
            }
        } else {
            None
        };
        self.apply_truncate(index, prev)?;
        Ok(TruncatePlan::Done)
    }

    /// Applies a truncation planned by [`LogStore::plan_truncate_tail`] with the entry
    /// read. If the log was truncated or reinstalled in between, the read may be
    /// stale: the truncation is planned again (possibly another read).
    pub fn finish_truncate_tail(&mut self, prev: PrevEntry) -> StoreResult<TruncatePlan> {
        if prev.epoch != self.epoch {
            return self.plan_truncate_tail(prev.index);
        }
        if !self.check_truncate(prev.index)? {
            return Ok(TruncatePlan::Done);
        }
        let known = (prev.index > self.first_index()).then_some((prev.term, prev.end));
        self.apply_truncate(prev.index, known)?;
        Ok(TruncatePlan::Done)
    }

    /// Whether a truncation at `index` has something to do (`Err` if it may not be
    /// done at all).
    fn check_truncate(&self, index: u64) -> StoreResult<bool> {
        self.check_open()?;
        if index <= self.commit_index {
            return Err(StoreError::InvalidArgument(format!(
                "cannot truncate at {index}: entries up to {} are committed",
                self.commit_index
            )));
        }
        if index > self.last_index() {
            return Ok(false);
        }
        if index < self.first_index() {
            return Err(StoreError::InvalidArgument(format!(
                "cannot truncate at {index}: the log starts at {}",
                self.first_index()
            )));
        }
        if index < self.idx.next_flush() {
            return Err(StoreError::InvalidArgument(format!(
                "cannot truncate at {index}: entries up to {} are flushed to the index files",
                self.idx.next_flush() - 1
            )));
        }
        Ok(true)
    }

    /// Cuts at `index` (checked), given the term and end position of entry
    /// `index - 1` (`None` when the cut is at the log's first entry).
    fn apply_truncate(&mut self, index: u64, prev: Option<(u32, u64)>) -> StoreResult<()> {
        // Entries not flushed to the index files (checked) have their position cached.
        let mut pos = self
            .idx
            .cached_pos(index)
            .ok_or_else(|| StoreError::NotFound {
                index,
                reason: "no cached index entry for an unflushed entry".into(),
            })?;
        if let Some((_, end)) = prev {
            if pos % self.cfg.log_file_size == 0 {
                // The entry before ended in the previous segment (with or without an
                // end marker): the next append continues right after it.
                pos = end;
            }
        }
        self.cut_tail(index, pos, prev.map(|(t, _)| t));
        // The segments' appended ends follow the cut, so that a later fsync does not
        // drop pages the appends after it have yet to rewrite.
        for f in self.files.files() {
            if f.start + self.cfg.log_file_size > pos {
                f.note_truncated(pos.saturating_sub(f.start));
            }
        }
        Ok(())
    }

    /// The index files a due index flush still needs, if any (see [`IndexFilesJob`]).
    pub fn plan_index_files(&self) -> Option<IndexFilesJob> {
        let upto = self.commit_index.min(self.last_force_index);
        let starts = self.idx.files_missing_for_flush(upto);
        (!starts.is_empty()).then(|| IndexFilesJob {
            maker: self.idx.maker(),
            starts,
        })
    }

    /// Adds the index files an [`IndexFilesJob`] made.
    pub fn index_files_created(&mut self, files: Vec<Arc<DtFile>>) -> StoreResult<()> {
        for f in files {
            self.idx.push_created(f)?;
        }
        Ok(())
    }

    /// First and last index, for a match-position search.
    pub fn index_range(&self) -> StoreResult<(u64, u64)> {
        self.check_open()?;
        Ok((self.first_index(), self.last_index()))
    }
}
