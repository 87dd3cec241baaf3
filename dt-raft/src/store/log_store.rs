//! `LogStore`: the synchronous log of one group (segment files + index files + status
//! file + tail cache), with recovery, append, fsync, reads, tail truncation, match
//! position search, marking and deleting old segments, and snapshot install.
//!
//! Writes are split in two steps so that an async wrapper can run the IO elsewhere:
//! [`LogStore::prepare_append`] encodes items and assigns positions in memory, and the
//! returned [`WriteBatch`] is written by [`WriteBatch::write`] on any thread. The
//! blocking convenience [`LogStore::append`] does both.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::StoreConfig;
use super::error::{StoreError, StoreResult};
use super::file_queue::{DtFile, FileQueue};
use super::index_file::{IdxFileQueue, IdxWrite, IndexEntryRef, PosAt};
use super::log_item::{encode_end_marker, LogItem, ITEM_HEADER_SIZE};
use super::match_pos::find_match_pos;
use super::reader::{blame_index_entry, read_header_at, read_items};
use super::recovery::{recover, verify_prefix, Recovered, SegFirst};
use super::status::{PendingStatus, PersistedState, StatusManager};
use super::tail_cache::TailCache;

mod prefill;
mod split;
pub use prefill::{PrefillGate, PrefillJob};
pub use split::{
    sync_files, DeleteJob, HeaderRead, IndexFilesJob, Lookup, PrevEntry, TruncatePlan,
    TruncateRead, WriteDone, WriteJob,
};

/// What [`LogStore::begin_index_flush`] left to do.
#[derive(Debug)]
pub enum IndexFlush {
    /// Nothing is due.
    Nothing,
    /// No index entries, but the status file has changes to persist (forced flush).
    Status(PendingStatus),
    /// Index entries encoded for the files; write and sync them
    /// ([`IdxWrite::run`]), then [`LogStore::finish_index_flush`].
    Write(IdxWrite),
}

/// Committed index entries are flushed at least this often when at least
/// [`IDX_FLUSH_MIN_PENDING`] are pending. The reference uses 2 s. What a restart
/// re-reads past its anchor is bounded by `idx_flush_threshold` either way (a log that
/// reaches it flushes at once), so the timer only decides how often a moderately busy
/// log pays a flush: an index fdatasync plus a status-file save (create, write, fsync,
/// rename, directory fsync). With 100 groups at ~1 000 entries/s each those saves were
/// about a tenth of `raft_bench --groups 100`'s CPU at 2 s; at 10 s such a log flushes
/// on the threshold instead (every ~8 s).
pub const IDX_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Pending committed entries that make [`IDX_FLUSH_INTERVAL`] apply. Fewer (an idle
/// group: a heartbeat entry a second) wait for [`IDX_IDLE_FLUSH_INTERVAL`]: each flush
/// costs an index fsync and a status-file save (two more fsyncs), which for many idle
/// groups was most of their idle CPU, while a later anchor only means recovery re-reads a
/// few more log items.
pub const IDX_FLUSH_MIN_PENDING: u64 = 64;

/// Committed index entries are flushed at least this often (when there are any).
///
/// An idle group commits a heartbeat entry per `heartbeatInterval` (1-2 s): at 60 s its
/// recovery re-reads at most ~60 small log items past the anchor, while each of its
/// flushes costs an index fdatasync and a status-file save (write, fsync, rename), the
/// first one also the creation of its index file. At 20 s a server of 100 idle groups
/// spent ~15 flushes (~45 fsyncs) a second on them, and all its logs, opened together,
/// made their first flushes together.
pub const IDX_IDLE_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Whether the timed triggers of an index flush fire `since` the last flush with
/// `pending` committed entries not flushed (`threshold`: `idx_flush_threshold`, which
/// caps [`IDX_FLUSH_MIN_PENDING`]): [`IDX_FLUSH_INTERVAL`] for a busy log,
/// [`IDX_IDLE_FLUSH_INTERVAL`] for an idle one, never with nothing pending.
fn timed_index_flush_due(since: Duration, pending: u64, threshold: u64) -> bool {
    pending > 0
        && (since >= IDX_IDLE_FLUSH_INTERVAL
            || (since >= IDX_FLUSH_INTERVAL && pending >= IDX_FLUSH_MIN_PENDING.min(threshold)))
}

/// Most encode buffers (and chunk lists) kept for reuse: a write job carries every
/// batch queued behind the one before it (a follower's log gets one per append request,
/// several per write), and each batch came with a buffer of its own.
const SPARE_BUFS: usize = 16;
/// Most bytes of spare encode buffers kept for reuse (per log).
const SPARE_BUF_BYTES: usize = 4 << 20;
/// Emptied entry lists kept for [`LogStore::take_item_list`] at most.
const SPARE_ITEM_LISTS: usize = 4;
/// The largest entry list kept (in entries): a list that held a rare huge append is
/// given back to the allocator.
const MAX_SPARE_ITEM_LIST: usize = 4096;

/// Bytes destined for one contiguous range of one segment.
#[derive(Debug)]
pub struct Chunk {
    /// Absolute start position.
    pub pos: u64,
    /// Encoded items (and possibly a trailing end marker).
    pub data: Vec<u8>,
}

/// The encoded form of one appended batch, ready to be written.
#[derive(Debug)]
pub struct WriteBatch {
    /// Chunks in position order; a batch crossing segments has one per segment.
    pub chunks: Vec<Chunk>,
    /// Index of the batch's first entry.
    pub first_index: u64,
    /// Index of the batch's last entry.
    pub last_index: u64,
    /// The store's truncation epoch when the batch was prepared; a batch from an older
    /// epoch was (partly) truncated while in flight and does not advance watermarks.
    pub epoch: u64,
}

impl WriteBatch {
    /// Writes the chunks (creating segments as needed) on the calling thread. Returns
    /// the files written, for a later fsync. (`DefaultRaftLog` writes through
    /// [`LogStore::plan_write`] instead, off its owner's thread.)
    pub fn write(&self, files: &mut FileQueue) -> StoreResult<Vec<Arc<DtFile>>> {
        let mut touched: Vec<Arc<DtFile>> = Vec::new();
        for c in &self.chunks {
            let f = files.ensure(c.pos)?;
            f.write_all_at(&c.data, c.pos - f.start)?;
            if !touched.iter().any(|t| t.start == f.start) {
                touched.push(f);
            }
        }
        Ok(touched)
    }
}

/// Per-segment bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
struct SegInfo {
    first: Option<SegFirst>,
    delete_at: Option<Instant>,
}

/// The synchronous log store of one group. See the module documentation.
pub struct LogStore {
    dir: PathBuf,
    cfg: StoreConfig,
    /// The segments. Owned by the store (its owner's thread): IO jobs get the open
    /// files they need by value (`Arc<DtFile>` handles or a [`FileQueue::snapshot`]).
    files: FileQueue,
    segs: BTreeMap<u64, SegInfo>,
    idx: IdxFileQueue,
    status: StatusManager,
    next_index: u64,
    next_pos: u64,
    last_term: Option<u32>,
    last_write_index: u64,
    last_force_index: u64,
    commit_index: u64,
    tail: TailCache,
    dirty: Vec<Arc<DtFile>>,
    /// Encode buffers of written batches, for reuse.
    spare_bufs: Vec<Vec<u8>>,
    /// Capacity of `spare_bufs`, summed.
    spare_buf_bytes: usize,
    /// Emptied chunk lists of written batches, for the next batches.
    spare_chunks: Vec<Vec<Chunk>>,
    /// Emptied entry lists of appends, for the caller's next appends
    /// ([`LogStore::take_item_list`]).
    spare_items: Vec<Vec<LogItem>>,
    /// An emptied list of written batches, for the owner's next queue.
    spare_batches: Vec<WriteBatch>,
    install_required: bool,
    closed: bool,
    /// The first write or fsync error: the store is failed (fail-stop).
    failed: Option<Arc<StoreError>>,
    /// The locked lock file; `None` once closed.
    lock: Option<File>,
    epoch: u64,
    last_idx_flush: Instant,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("next_index", &self.next_index)
            .field("next_pos", &self.next_pos)
            .finish()
    }
}

impl LogStore {
    /// Opens the store in `data_dir` (`raft.status`, `log/`, `idx/`) and recovers it.
    /// A corrupt log refuses to open with an error naming the file and offset.
    ///
    /// The directory is locked (an exclusive lock on [`LOCK_FILE_NAME`]) for as long as
    /// the store is open: a second open, in this process or another, fails with
    /// [`StoreError::Locked`]. [`LogStore::close`] and drop release it.
    ///
    /// The configuration is checked first ([`StoreConfig::validate`]).
    pub fn open(data_dir: &Path, cfg: StoreConfig) -> StoreResult<LogStore> {
        cfg.validate()?;
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io("create dir", data_dir, e))?;
        let lock = lock_dir(data_dir)?;
        let status = StatusManager::load_with(
            &data_dir.join(&cfg.status_file_name),
            cfg.sync,
            cfg.faults.clone(),
        )?;
        let mut log = FileQueue::open_with(
            &data_dir.join("log"),
            cfg.log_file_size,
            cfg.sync,
            cfg.faults.clone(),
        )?;
        log.drop_synced_pages(cfg.drop_synced_pages && cfg.sync);
        let mut idx = IdxFileQueue::open(
            &data_dir.join("idx"),
            cfg.idx_items_per_file,
            cfg.idx_cache_size,
            cfg.sync,
            cfg.faults.clone(),
        )?;
        let rec = recover(
            &mut log,
            &mut idx,
            &status.status,
            status.path(),
            cfg.read_block_size,
        )?;
        let mut s = LogStore {
            dir: data_dir.to_path_buf(),
            tail: TailCache::new(cfg.tail_cache_items, cfg.tail_cache_bytes),
            files: log,
            segs: BTreeMap::new(),
            idx,
            next_index: 1,
            next_pos: 0,
            last_term: None,
            last_write_index: 0,
            last_force_index: 0,
            commit_index: status.status.commit_index,
            status,
            dirty: Vec::new(),
            spare_bufs: Vec::new(),
            spare_buf_bytes: 0,
            spare_chunks: Vec::new(),
            spare_items: Vec::new(),
            spare_batches: Vec::new(),
            install_required: false,
            closed: false,
            failed: None,
            lock: Some(lock),
            epoch: 0,
            last_idx_flush: Instant::now(),
            cfg,
        };
        match rec {
            Recovered::NoLog => {
                if s.status.status.install_snapshot {
                    // An install was interrupted: its files are garbage.
                    s.files.delete_all()?;
                    s.idx.delete_all()?;
                }
                s.install_required = true;
                s.next_index = s.status.status.first_valid_index;
                s.next_pos = s.status.status.first_valid_pos;
            }
            Recovered::Log {
                last_index,
                last_term,
                next_pos,
                restore_index,
                positions,
                firsts,
            } => {
                if s.cfg.verify_on_start {
                    if let Some((&start, fi)) = firsts.iter().next() {
                        let pos = start.max(s.status.status.first_valid_pos);
                        verify_prefix(
                            &s.files,
                            pos,
                            fi.index,
                            restore_index,
                            s.cfg.read_block_size,
                        )?;
                    }
                }
                for (start, fi) in firsts {
                    s.segs.insert(
                        start,
                        SegInfo {
                            first: Some(fi),
                            delete_at: None,
                        },
                    );
                }
                s.idx.reset(restore_index);
                for (k, p) in positions.iter().enumerate() {
                    s.idx.push(restore_index + k as u64, *p);
                }
                s.next_index = last_index + 1;
                s.next_pos = next_pos;
                s.last_term = (last_index > 0).then_some(last_term);
                s.last_write_index = last_index;
                s.last_force_index = last_index;
                for f in s.files.files() {
                    s.segs.entry(f.start).or_default();
                }
                if s.files.is_empty() {
                    let p = s.next_pos;
                    s.files.ensure(p)?;
                    s.segs.entry(p & !(s.cfg.log_file_size - 1)).or_default();
                }
            }
        }
        Ok(s)
    }

    /// The result of recovery as the reference's `init()` reports it: `(last term,
    /// last index)`, or `None` when a snapshot install is required.
    pub fn init_result(&self) -> Option<(u32, u64)> {
        if self.install_required {
            None
        } else {
            Some((self.last_term.unwrap_or(0), self.next_index - 1))
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The segment files (for inspection; IO threads get a
    /// [`LogStore::files_snapshot`] or single file handles instead).
    pub fn file_queue(&self) -> &FileQueue {
        &self.files
    }

    /// The status manager (term, vote, ... live here).
    pub fn status(&mut self) -> &mut StatusManager {
        &mut self.status
    }

    /// The Raft state in the status file as last persisted (what survives a crash now).
    pub fn persisted_state(&self) -> PersistedState {
        self.status.persisted().into()
    }

    /// Durably records `current_term` and `voted_for` (atomic replace of the status
    /// file, fsynced). A failure puts the store in the failed state.
    pub fn persist_term_vote(&mut self, current_term: u32, voted_for: i32) -> StoreResult<()> {
        self.check_writable()?;
        self.status.status.current_term = current_term;
        self.status.status.voted_for = voted_for;
        self.status.persist().map_err(|e| self.fail(Arc::new(e)))
    }

    /// Index of the last entry (0 if none).
    pub fn last_index(&self) -> u64 {
        self.next_index - 1
    }

    /// Term of the last entry (0 if none or unknown after an install).
    pub fn last_term(&self) -> u32 {
        self.last_term.unwrap_or(0)
    }

    /// Position where the next entry goes.
    pub fn next_pos(&self) -> u64 {
        self.next_pos
    }

    /// First index still held by the log files (or the next index if none).
    pub fn first_index(&self) -> u64 {
        self.segs
            .values()
            .find_map(|s| s.first.map(|f| f.index))
            .unwrap_or(self.next_index)
    }

    /// Last index fully written to the files (page cache).
    pub fn last_write_index(&self) -> u64 {
        self.last_write_index
    }

    /// Last index fsynced (equal to the write watermark when sync is off).
    pub fn last_force_index(&self) -> u64 {
        self.last_force_index
    }

    /// Last index the index files and `persistIdxIndex` cover.
    pub fn persist_idx_index(&self) -> u64 {
        self.status.status.persist_idx_index
    }

    /// The watermark Raft acknowledges with: fsynced if `sync_force`, else written.
    pub fn persisted_index(&self) -> u64 {
        if self.cfg.sync_force {
            self.last_force_index
        } else {
            self.last_write_index
        }
    }

    /// Fails with the reason the store takes no writes: failed, closed (in that order
    /// of precedence).
    fn check_writable(&self) -> StoreResult<()> {
        if let Some(cause) = &self.failed {
            Err(StoreError::failed(cause.clone()))
        } else if self.closed {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// [`LogStore::check_writable`], and no install in progress.
    fn check_open(&self) -> StoreResult<()> {
        self.check_writable()?;
        if self.install_required {
            Err(StoreError::Installing)
        } else {
            Ok(())
        }
    }

    /// Encodes `items` and assigns their positions (no IO). They must continue the log:
    /// consecutive indexes from `last_index() + 1`, `prev_log_term` equal to the
    /// previous entry's term, non-decreasing terms. The tail cache keeps clones of the
    /// items; [`LogStore::prepare_append_owned`] moves them in instead.
    pub fn prepare_append(&mut self, items: &[LogItem]) -> StoreResult<WriteBatch> {
        let b = self.encode_batch(items)?;
        self.cache_appended(items.iter().cloned());
        Ok(b)
    }

    /// [`LogStore::prepare_append`] taking the items by value: they move into the tail
    /// cache (no clone per entry).
    pub fn prepare_append_owned(&mut self, mut items: Vec<LogItem>) -> StoreResult<WriteBatch> {
        let b = self.encode_batch(&items)?;
        self.cache_appended(items.drain(..));
        if self.spare_items.len() < SPARE_ITEM_LISTS && items.capacity() <= MAX_SPARE_ITEM_LIST {
            self.spare_items.push(items);
        }
        Ok(b)
    }

    /// An empty list to gather the next append's entries in: one an earlier
    /// [`LogStore::prepare_append_owned`] emptied (its capacity kept), or a new one.
    pub fn take_item_list(&mut self) -> Vec<LogItem> {
        self.spare_items.pop().unwrap_or_default()
    }

    /// Puts just-encoded items into the tail cache and evicts what it no longer needs.
    fn cache_appended(&mut self, items: impl IntoIterator<Item = LogItem>) {
        for it in items {
            self.tail.push(it);
        }
        self.tail.evict(self.last_write_index);
    }

    /// Gives back the buffers of a written batch for later batches to reuse (a batch of
    /// 256 small entries is ~77 KB; up to 16 are kept, 4 MiB of them at most).
    pub fn recycle(&mut self, batch: WriteBatch) {
        let mut chunks = batch.chunks;
        for c in chunks.drain(..) {
            let mut data = c.data;
            if self.spare_bufs.len() < SPARE_BUFS
                && self.spare_buf_bytes + data.capacity() <= SPARE_BUF_BYTES
            {
                data.clear();
                self.spare_buf_bytes += data.capacity();
                self.spare_bufs.push(data);
            }
        }
        if self.spare_chunks.len() < SPARE_BUFS {
            self.spare_chunks.push(chunks);
        }
    }

    /// An empty list for the batches of the next write (the list of an earlier write,
    /// kept by [`LogStore::write_done`], when there is one).
    pub fn take_batch_list(&mut self) -> Vec<WriteBatch> {
        std::mem::take(&mut self.spare_batches)
    }

    /// A cleared buffer with room for `len` bytes, reused if one is spare.
    fn take_buf(&mut self, len: usize) -> Vec<u8> {
        match self.spare_bufs.pop() {
            Some(b) => {
                self.spare_buf_bytes -= b.capacity();
                if b.capacity() >= len {
                    b
                } else {
                    // Growing it would copy its old (cleared) bytes for nothing.
                    Vec::with_capacity(len)
                }
            }
            None => Vec::with_capacity(len),
        }
    }

    /// Validates and encodes a batch, assigning positions and index entries.
    fn encode_batch(&mut self, items: &[LogItem]) -> StoreResult<WriteBatch> {
        self.check_open()?;
        let seg_size = self.cfg.log_file_size;
        let first_index = self.next_index;
        // Validate the whole batch first so a bad batch changes nothing.
        let mut term = self.last_term;
        let mut total = 0usize;
        for (idx, it) in (self.next_index..).zip(items.iter()) {
            if it.index != idx {
                return Err(StoreError::InvalidArgument(format!(
                    "append of entry {} but the next index is {idx}",
                    it.index
                )));
            }
            if let Some(t) = term {
                if it.prev_log_term != t || it.term < t {
                    return Err(StoreError::InvalidArgument(format!(
                        "entry {} has term {} / prev term {}, previous entry has term {t}",
                        it.index, it.term, it.prev_log_term
                    )));
                }
            }
            let len = it.encoded_len();
            if len as u64 > seg_size {
                return Err(StoreError::InvalidArgument(format!(
                    "entry {} of {len} bytes is larger than a log segment ({seg_size})",
                    it.index,
                )));
            }
            total += len;
            term = Some(it.term);
        }
        // One buffer for the common case of a batch inside one segment.
        let mut chunks: Vec<Chunk> = self
            .spare_chunks
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(1));
        let data = self.take_buf(total + ITEM_HEADER_SIZE);
        chunks.push(Chunk {
            pos: self.next_pos,
            data,
        });
        // The segment whose first entry is known to be recorded.
        let mut seg_recorded = u64::MAX;
        for it in items {
            let len = it.encoded_len() as u64;
            let seg_start = self.next_pos & !(seg_size - 1);
            let seg_end = seg_start + seg_size;
            if self.next_pos + len > seg_end {
                let room = seg_end - self.next_pos;
                if room >= ITEM_HEADER_SIZE as u64 {
                    let c = chunk_at(&mut chunks, self.next_pos, seg_size);
                    encode_end_marker(&mut c.data);
                }
                self.next_pos = seg_end;
            }
            let pos = self.next_pos;
            let seg_start = pos & !(seg_size - 1);
            if seg_start != seg_recorded {
                let info = self.segs.entry(seg_start).or_default();
                if info.first.is_none() {
                    info.first = Some(SegFirst {
                        index: it.index,
                        term: it.term,
                        timestamp: it.timestamp,
                    });
                }
                seg_recorded = seg_start;
            }
            let c = chunk_at(&mut chunks, pos, seg_size);
            it.encode_into(&mut c.data);
            self.idx.push(it.index, pos);
            self.next_pos += len;
            self.next_index = it.index + 1;
            self.last_term = Some(it.term);
        }
        chunks.retain(|c| !c.data.is_empty());
        Ok(WriteBatch {
            chunks,
            first_index,
            last_index: self.next_index - 1,
            epoch: self.epoch,
        })
    }

    /// Records that a batch up to `index`, prepared in `epoch`, is written (called in
    /// write order).
    pub fn on_written(&mut self, index: u64, epoch: u64, files: Vec<Arc<DtFile>>) {
        if epoch == self.epoch {
            self.last_write_index = self.last_write_index.max(index.min(self.last_index()));
        }
        for f in files {
            if !self.dirty.iter().any(|d| d.start == f.start) {
                self.dirty.push(f);
            }
        }
        if !self.cfg.sync {
            self.last_force_index = self.last_write_index;
        }
        self.tail.evict(self.last_write_index);
    }

    /// Takes the files written since the last fsync (for an fsync elsewhere).
    pub fn take_dirty(&mut self) -> Vec<Arc<DtFile>> {
        std::mem::take(&mut self.dirty)
    }

    /// Records that everything up to `index` is fsynced.
    pub fn on_forced(&mut self, index: u64) {
        self.last_force_index = self.last_force_index.max(index.min(self.last_write_index));
    }

    /// Appends and writes `items` (to the page cache). Call [`LogStore::sync`] to make
    /// them durable.
    pub fn append(&mut self, items: &[LogItem]) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let before = (self.next_index, self.next_pos, self.last_term);
        let b = self.prepare_append(items)?;
        match b.write(&mut self.files) {
            Ok(touched) => {
                self.on_written(b.last_index, b.epoch, touched);
                self.recycle(b);
                Ok(())
            }
            Err(e) => {
                // The batch is not (wholly) on disk: forget it, so that `last_index`
                // tells the truth, and stop (the files may now hold a partial item).
                let (index, pos, term) = before;
                self.cut_tail(index, pos, term);
                Err(self.fail(Arc::new(e)))
            }
        }
    }

    /// fsyncs everything written so far, then flushes committed index entries when
    /// enough are pending (and persists `persistIdxIndex`).
    ///
    /// Fail-stop: if this or an earlier write or fsync failed, it returns
    /// [`StoreError::Failed`] and nothing more is ever acknowledged.
    pub fn sync(&mut self) -> StoreResult<()> {
        self.check_writable()?;
        let target = self.last_write_index;
        if self.cfg.sync {
            for f in self.take_dirty() {
                if let Err(e) = f.sync_data() {
                    return Err(self.fail(Arc::new(e)));
                }
            }
        } else {
            self.dirty.clear();
        }
        self.on_forced(target);
        self.maybe_flush_index(false)
    }

    /// Tells the store the Raft commit index (index files only hold committed entries;
    /// the value is also written to the status file at the next persist).
    pub fn set_commit_index(&mut self, index: u64) {
        if index > self.commit_index {
            self.commit_index = index;
        }
        self.sync_status_commit();
    }

    /// The status file's `commitIndex` only claims what this node has fsynced, so that
    /// recovery may treat everything up to it as must-exist.
    fn sync_status_commit(&mut self) {
        let c = self.commit_index.min(self.last_force_index);
        if c > self.status.status.commit_index {
            self.status.status.commit_index = c;
        }
    }

    /// Flushes committed index entries when a flush is due ([`Self::index_flush_due`])
    /// or `force`; fsyncs
    /// them, and persists `persistIdxIndex` =
    /// min(flushed, fsynced log).
    /// A failure puts the store in the failed state.
    pub fn maybe_flush_index(&mut self, force: bool) -> StoreResult<()> {
        self.check_writable()?;
        self.flush_index_inner(force)
            .map_err(|e| self.fail(Arc::new(e)))
    }

    fn flush_index_inner(&mut self, force: bool) -> StoreResult<()> {
        let pending = match self.begin_index_flush(force)? {
            IndexFlush::Nothing => None,
            IndexFlush::Status(p) => Some(p),
            IndexFlush::Write(w) => {
                w.run()?;
                self.finish_index_flush(w.end)
            }
        };
        if let Some(p) = pending {
            p.write()?;
            self.status.mark_persisted(p.status);
        }
        Ok(())
    }

    /// Whether an index flush is due now (enough committed entries pending, the flush
    /// interval passed with [`IDX_FLUSH_MIN_PENDING`] pending or the idle interval with
    /// any, or the anchor must leave `firstValidIndex` after an install).
    pub fn index_flush_due(&self) -> bool {
        let upto = self.commit_index.min(self.last_force_index);
        let pending = (upto + 1).saturating_sub(self.idx.next_flush());
        if pending == 0 {
            return false;
        }
        // After an install (firstValidIndex above 1) the recovery anchor must leave
        // firstValidIndex quickly: until it does, a restart reads the log from
        // firstValidPos (dt, with firstValidTerm) or finds "no log" and needs another
        // install (the reference, or an install without firstValidTerm). A log that
        // starts at entry 1 recovers from position 0 without any index file, so its
        // first flush waits for the usual triggers: a fresh idle group does not create
        // and fsync its index file at once (with many groups that was a burst of file
        // creations right after start).
        let st = &self.status.status;
        if pending >= self.cfg.idx_flush_threshold
            || (st.first_valid_index > 1 && self.idx.next_flush() <= st.first_valid_index)
        {
            return true;
        }
        timed_index_flush_due(
            self.last_idx_flush.elapsed(),
            pending,
            self.cfg.idx_flush_threshold,
        )
    }

    /// First step of an index flush, cheap enough for the owner's thread: encodes the
    /// due committed index entries. The caller writes and syncs the returned
    /// [`IdxWrite`] (anywhere: it holds buffers and file handles) and then calls
    /// [`LogStore::finish_index_flush`].
    pub fn begin_index_flush(&mut self, force: bool) -> StoreResult<IndexFlush> {
        self.sync_status_commit();
        if !force && !self.index_flush_due() {
            return Ok(IndexFlush::Nothing);
        }
        let upto = self.commit_index.min(self.last_force_index);
        self.last_idx_flush = Instant::now();
        match self.idx.write_upto(upto)? {
            Some(w) => Ok(IndexFlush::Write(w)),
            None if force && self.status.is_dirty() => {
                Ok(IndexFlush::Status(self.status.pending()))
            }
            None => Ok(IndexFlush::Nothing),
        }
    }

    /// Last step of an index flush, after its [`IdxWrite`] was written and synced: the
    /// entries may leave the index cache, `persistIdxIndex` rises to min(synced index,
    /// fsynced log), and the status-file version to write (on an IO thread) is returned.
    pub fn finish_index_flush(&mut self, synced_end: u64) -> Option<PendingStatus> {
        self.idx.written(synced_end);
        let p = synced_end.min(self.last_force_index);
        if p > self.status.status.persist_idx_index {
            self.status.status.persist_idx_index = p;
        }
        Some(self.status.pending())
    }

    /// Reads up to `max` entries from `index` whose encoded size fits `bytes_limit`
    /// (at least one entry). Recent entries come from the tail cache.
    pub fn read(
        &mut self,
        index: u64,
        max: usize,
        bytes_limit: usize,
    ) -> StoreResult<Vec<LogItem>> {
        match self.plan_read(index, max, bytes_limit)? {
            ReadPlan::Cached(v) => Ok(v),
            ReadPlan::Files(r) => r.read(&self.files, self.cfg.read_block_size),
        }
    }

    /// Decides where a read is served from (no file IO: a position in an index file
    /// is read by [`FileRead::read`]).
    pub fn plan_read(
        &mut self,
        index: u64,
        max: usize,
        bytes_limit: usize,
    ) -> StoreResult<ReadPlan> {
        self.check_open()?;
        if index > self.last_index() || index < self.first_index() || max == 0 {
            return Err(StoreError::NotFound {
                index,
                reason: format!(
                    "the log holds entries {}..={}",
                    self.first_index(),
                    self.last_index()
                ),
            });
        }
        if self.tail.get(index).is_some() {
            return Ok(ReadPlan::Cached(self.tail.read(index, max, bytes_limit)));
        }
        let at = self.idx.locate(index)?;
        let stop_before = self
            .tail
            .first_index()
            .unwrap_or(self.next_index)
            .min(self.last_write_index + 1);
        Ok(ReadPlan::Files(FileRead {
            at,
            index,
            max,
            bytes_limit,
            stop_before,
        }))
    }

    /// The term of entry `index` if it is in the tail cache.
    pub fn cached_term(&self, index: u64) -> Option<u32> {
        self.tail.get(index).map(|i| i.term)
    }

    /// The encoded length of entry `index` if it is in the tail cache.
    pub fn cached_len(&self, index: u64) -> Option<u64> {
        self.tail.get(index).map(|i| i.encoded_len() as u64)
    }

    /// The log position of entry `index` (index cache or index file).
    pub fn index_pos(&mut self, index: u64) -> StoreResult<u64> {
        self.idx.pos(index)
    }

    /// The term of entry `index` (tail cache, else its header on disk).
    ///
    /// A damaged index entry is reported as such (see [`FileRead::read`]).
    pub fn term_at(&mut self, index: u64) -> StoreResult<u32> {
        if let Some(it) = self.tail.get(index) {
            return Ok(it.term);
        }
        self.plan_header(index)?.run().map(|(t, _)| t)
    }

    /// Match-position search (`docs/dt-raft.md`): the last local entry `(term, index)` that
    /// is valid for the suggestion `(s_term, s_index)`, or `None`.
    pub fn find_match_pos(&mut self, s_term: u32, s_index: u64) -> StoreResult<Option<(u32, u64)>> {
        self.check_open()?;
        let first = self.first_index();
        let last = self.last_index();
        let base = self.base_entry();
        // term_at answers from the tail cache when it can, else reads one header.
        let found = find_match_pos(s_term, s_index, first, last, |i| self.term_at(i))?;
        Ok(found.or_else(|| base_if_valid(base, s_term, s_index)))
    }

    /// The entry just before the log, when the log starts right after an install whose
    /// term it recorded ([`RaftStatus::first_valid_term`](super::RaftStatus::first_valid_term)):
    /// `(lastIncludedTerm, lastIncludedIndex)`. The match-position search counts it
    /// as the log's: a committed entry the node holds through its snapshot.
    pub fn base_entry(&self) -> Option<(u32, u64)> {
        let st = &self.status.status;
        let fvi = st.first_valid_index;
        match st.first_valid_term {
            Some(t) if fvi > 1 && !st.install_snapshot && self.first_index() == fvi => {
                Some((t, fvi - 1))
            }
            _ => None,
        }
    }

    /// Position just after entry `index` (used as `nextPos` of an install).
    pub fn next_item_pos(&mut self, index: u64) -> StoreResult<u64> {
        match self.lookup_next_item_pos(index)? {
            Lookup::Known(p) => Ok(p),
            Lookup::Read(h) => h.run().map(|(_, next)| next),
        }
    }

    /// Removes entries `index..` (`docs/storage-format.md` §7). They must not be committed.
    ///
    /// Reads the header of entry `index - 1` on the calling thread when it is not in
    /// memory; [`LogStore::plan_truncate_tail`] is the same without that read.
    pub fn truncate_tail(&mut self, index: u64) -> StoreResult<()> {
        let mut plan = self.plan_truncate_tail(index)?;
        loop {
            match plan {
                TruncatePlan::Done => return Ok(()),
                TruncatePlan::Read(r) => {
                    let prev = r.run()?;
                    plan = self.finish_truncate_tail(prev)?;
                }
            }
        }
    }

    /// Forgets entries `index..` in memory: the next entry is `index` at `pos`, after
    /// an entry of term `prev_term`. Entries `index..` must not be flushed to the
    /// index files.
    fn cut_tail(&mut self, index: u64, pos: u64, prev_term: Option<u32>) {
        // Checked by the callers: unflushed entries always truncate.
        let _ = self.idx.truncate(index);
        self.tail.truncate(index);
        for info in self.segs.values_mut() {
            if info.first.is_some_and(|f| f.index >= index) {
                info.first = None;
            }
        }
        self.next_index = index;
        self.next_pos = pos;
        self.last_term = prev_term;
        self.epoch += 1;
        self.last_write_index = self.last_write_index.min(index - 1);
        self.last_force_index = self.last_force_index.min(index - 1);
    }

    /// Marks segments for deletion whose entries are all ≤ `index` (bounded by the
    /// fsynced log and the persisted index), to be deleted after `delay`. The caller
    /// (Raft) passes min(lastApplied, last saved snapshot index, the requested index).
    pub fn mark_truncate_by_index(&mut self, index: u64, delay: Duration) {
        let bound = index
            .min(self.last_force_index)
            .min(self.persist_idx_index());
        self.mark(bound, i64::MAX, delay);
    }

    /// Like [`LogStore::mark_truncate_by_index`] with the bound given by a timestamp:
    /// segments whose successor's first entry is older than `timestamp_ms`.
    pub fn mark_truncate_by_timestamp(
        &mut self,
        timestamp_ms: i64,
        bound_index: u64,
        delay: Duration,
    ) {
        let bound = bound_index
            .min(self.last_force_index)
            .min(self.persist_idx_index());
        self.mark(bound, timestamp_ms, delay);
    }

    fn mark(&mut self, bound: u64, ts_bound: i64, delay: Duration) {
        let at = Instant::now() + delay;
        let starts: Vec<u64> = self.segs.keys().copied().collect();
        for w in starts.windows(2) {
            let next = self.segs[&w[1]].first;
            match next {
                Some(f) if f.timestamp < ts_bound && f.index <= bound => {
                    let s = self.segs.get_mut(&w[0]).expect("exists");
                    s.delete_at = Some(s.delete_at.map_or(at, |d| d.min(at)));
                }
                _ => break,
            }
        }
    }

    /// Deletes marked segments whose delay passed and that no reader holds, and index
    /// files no longer needed. Returns the number of log segments deleted.
    pub fn delete_expired(&mut self, now: Instant) -> StoreResult<usize> {
        let mut n = 0;
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
            q.delete_first()?;
            self.segs.remove(&s0);
            n += 1;
        }
        let first = self.first_index();
        self.idx.delete_before(first)?;
        Ok(n)
    }

    /// Puts the store in the failed state after a write or fsync error: every later
    /// operation fails with [`StoreError::Failed`] naming the first failure (the group
    /// must restart and recover from disk). Returns that error for the caller to pass
    /// on; a second failure keeps the first cause.
    pub fn fail(&mut self, cause: Arc<StoreError>) -> StoreError {
        // A `Failed` error is already about the first cause.
        let cause = match &*cause {
            StoreError::Failed { cause } => cause.clone(),
            _ => cause,
        };
        if self.failed.is_none() {
            log::error!(
                "log store in {} failed, refusing further writes: {cause}",
                self.dir.display()
            );
        }
        StoreError::failed(self.failed.get_or_insert(cause).clone())
    }

    /// The failure that stopped the store, if one did.
    pub fn failure(&self) -> Option<&Arc<StoreError>> {
        self.failed.as_ref()
    }

    /// Whether the store is closed (by [`LogStore::close`]) or failed.
    pub fn is_closed(&self) -> bool {
        self.closed || self.failed.is_some()
    }

    /// Number of log segment files.
    pub fn segment_count(&self) -> usize {
        self.files.len()
    }

    /// Install begin (`docs/storage-format.md` §7): marks the install in the status file
    /// (with the position the node votes with meanwhile, `vote`, if any), then deletes
    /// every segment and index file. Appends fail until [`LogStore::finish_install`].
    pub fn begin_install(&mut self, vote: Option<(u32, u64)>) -> StoreResult<()> {
        self.check_writable()?;
        self.status.status.install_snapshot = true;
        self.status.status.install_vote = vote;
        self.status.status.first_valid_term = None;
        if let Err(e) = self.status.persist() {
            return Err(self.fail(Arc::new(e)));
        }
        self.install_required = true;
        let deleted = self.files.delete_all();
        if let Err(e) = deleted.and_then(|_| self.idx.delete_all()) {
            return Err(self.fail(Arc::new(e)));
        }
        self.segs.clear();
        self.tail.clear();
        self.dirty.clear();
        self.epoch += 1;
        Ok(())
    }

    /// Install finish (`docs/storage-format.md` §7): the log restarts empty with the next entry
    /// `next_index` at position `next_pos` (the leader's position after entry
    /// `next_index - 1`).
    pub fn finish_install(&mut self, next_index: u64, next_pos: u64) -> StoreResult<()> {
        self.finish_install_with_term(next_index, next_pos, None)
    }

    /// [`LogStore::finish_install`] that also records `prev_term`, the term of entry
    /// `next_index - 1` (the snapshot's lastIncludedTerm), in the status file
    /// ([`RaftStatus::first_valid_term`](super::RaftStatus::first_valid_term)): a
    /// restart before anything is written after it then recovers an empty log after
    /// that entry instead of requiring another install, and the next append is chain
    /// checked against it.
    pub fn finish_install_with_term(
        &mut self,
        next_index: u64,
        next_pos: u64,
        prev_term: Option<u32>,
    ) -> StoreResult<()> {
        self.check_writable()?;
        if next_index == 0 {
            return Err(StoreError::InvalidArgument("next index 0".into()));
        }
        self.idx.reset(next_index);
        self.next_index = next_index;
        self.next_pos = next_pos;
        self.last_term = None;
        self.last_write_index = next_index - 1;
        self.last_force_index = next_index - 1;
        self.commit_index = self.commit_index.max(next_index - 1);
        let created = self.files.ensure(next_pos);
        if let Err(e) = created {
            return Err(self.fail(Arc::new(e)));
        }
        self.segs
            .insert(next_pos & !(self.cfg.log_file_size - 1), SegInfo::default());
        self.last_term = prev_term;
        let st = &mut self.status.status;
        st.first_valid_pos = next_pos;
        st.first_valid_index = next_index;
        st.first_valid_term = prev_term;
        st.install_snapshot = false;
        st.install_vote = None;
        st.persist_idx_index = next_index - 1;
        st.commit_index = st.commit_index.max(next_index - 1);
        if let Err(e) = self.status.persist() {
            return Err(self.fail(Arc::new(e)));
        }
        self.install_required = false;
        Ok(())
    }

    /// Sets the term of the entry before the first one after an install (the
    /// snapshot's lastIncludedTerm), so the chain check applies to the next append.
    pub fn set_prev_term_after_install(&mut self, term: u32) {
        if self.next_index - 1 == self.status.status.first_valid_index - 1 {
            self.last_term = Some(term);
        }
    }

    /// fsyncs, flushes all committed index entries and persists the status file. The
    /// store refuses further work afterwards.
    ///
    /// A failed store closes with its [`StoreError::Failed`] (and is closed after it).
    pub fn close(&mut self) -> StoreResult<()> {
        if let Some(cause) = &self.failed {
            let e = StoreError::failed(cause.clone());
            self.closed = true;
            self.release_lock();
            return Err(e);
        }
        if self.closed {
            return Ok(());
        }
        if !self.install_required {
            self.sync()?;
            self.maybe_flush_index(true)?;
        }
        self.closed = true;
        self.release_lock();
        Ok(())
    }

    /// Unlocks the directory.
    fn release_lock(&mut self) {
        self.lock = None;
    }
}

/// Name of the lock file in a data directory (not part of the reference's format; the
/// reference ignores it).
pub const LOCK_FILE_NAME: &str = "dt.lock";

/// Takes the exclusive lock of `dir` (see [`LogStore::open`]).
fn lock_dir(dir: &Path) -> StoreResult<File> {
    let path = dir.join(LOCK_FILE_NAME);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io("create lock file", &path, e))?;
    // A process that spawns a child shares the lock with it from the fork until the
    // child's exec closes the (close-on-exec) descriptor: a store closed and reopened
    // while another thread spawns a program can find its own old lock still held for
    // that moment. Such a lock goes away within microseconds; a real second owner does
    // not, and is reported after the grace period.
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    lock_file: path,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io("lock", &path, e)),
        }
    }
}

/// How long [`lock_dir`] retries a held lock before reporting it (see there).
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Where [`LogStore::plan_read`] found the entries.
#[derive(Debug)]
pub enum ReadPlan {
    /// Served from the tail cache.
    Cached(Vec<LogItem>),
    /// To be read from the files.
    Files(FileRead),
}

/// A read of consecutive entries from the segment files, planned by the store's owner
/// and carried out (with [`FileRead::read`]) wherever file IO may block.
#[derive(Debug, Clone)]
pub struct FileRead {
    /// Where the position of the first entry is (memory, or an index file that the
    /// read looks up first).
    pub at: PosAt,
    /// Its index.
    pub index: u64,
    /// Most entries.
    pub max: usize,
    /// Byte budget.
    pub bytes_limit: usize,
    /// Do not read this index or later (not yet written, or cached).
    pub stop_before: u64,
}

impl FileRead {
    /// Reads the entries (every CRC and the index sequence checked) in blocks of
    /// `block` bytes.
    ///
    /// When the read fails and the position came from an index file, the log is checked for
    /// where the entry really is: a damaged index entry is reported as a
    /// [`StoreError::Corrupt`] naming the index file, the entry's offset in it and the
    /// Raft index, not as a problem of the log segment it pointed into.
    pub fn read(&self, files: &FileQueue, block: usize) -> StoreResult<Vec<LogItem>> {
        let (pos, index_entry) = self.at.resolve()?;
        read_items(
            files,
            pos,
            self.index,
            self.max,
            self.bytes_limit,
            self.stop_before,
            block,
        )
        .map_err(|e| blame(files, index_entry.as_ref(), e))
    }
}

/// `e`, or the index entry's error when `at` is to blame for it.
fn blame(files: &FileQueue, at: Option<&IndexEntryRef>, e: StoreError) -> StoreError {
    match at {
        Some(at) => blame_index_entry(files, at, true).unwrap_or(e),
        None => e,
    }
}

fn chunk_at(chunks: &mut Vec<Chunk>, pos: u64, seg_size: u64) -> &mut Chunk {
    // One chunk never spans two segments.
    let contiguous = chunks
        .last()
        .is_some_and(|c| c.pos + c.data.len() as u64 == pos && c.pos / seg_size == pos / seg_size);
    if !contiguous {
        chunks.push(Chunk {
            pos,
            data: Vec::new(),
        });
    }
    chunks.last_mut().expect("pushed")
}

/// `base` (the entry before the log, [`LogStore::base_entry`]) when it is valid for
/// the suggestion `(s_term, s_index)`: the search's answer when no entry of the log is.
pub(crate) fn base_if_valid(
    base: Option<(u32, u64)>,
    s_term: u32,
    s_index: u64,
) -> Option<(u32, u64)> {
    base.filter(|&(t, i)| super::match_pos::is_valid(t, i, s_term, s_index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_log_flushes_its_index_only_after_the_idle_interval() {
        let s = Duration::from_secs;
        // a heartbeat a second: 20 and 59 committed entries pending
        assert!(!timed_index_flush_due(s(20), 20, 8192));
        assert!(!timed_index_flush_due(s(59), 59, 8192));
        assert!(timed_index_flush_due(IDX_IDLE_FLUSH_INTERVAL, 60, 8192));
        assert!(timed_index_flush_due(IDX_IDLE_FLUSH_INTERVAL, 1, 8192));
        // nothing new: never
        assert!(!timed_index_flush_due(s(3600), 0, 8192));
    }

    #[test]
    fn a_busy_log_flushes_its_index_every_flush_interval() {
        let p = IDX_FLUSH_MIN_PENDING;
        assert!(!timed_index_flush_due(s_ms(1_999), p, 8192));
        assert!(timed_index_flush_due(IDX_FLUSH_INTERVAL, p, 8192));
        assert!(!timed_index_flush_due(IDX_FLUSH_INTERVAL, p - 1, 8192));
        // a threshold below the minimum lowers it
        assert!(timed_index_flush_due(IDX_FLUSH_INTERVAL, 4, 4));
    }

    fn s_ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}
