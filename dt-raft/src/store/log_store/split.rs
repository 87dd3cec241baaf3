//! The store's work split between its owner and IO threads.
//!
//! The owner (the thread of the group, see `DefaultRaftLog`) keeps every piece of
//! bookkeeping: positions, segments, the tail cache, the index cache, watermarks. It
//! *plans* each piece of file work here, in memory, and gets back a job that holds
//! only what the syscalls need: buffers and open file handles. The job runs anywhere
//! (an IO thread), and its result comes back to the owner, which records it. No job
//! holds a reference into the store.

use super::*;
use crate::store::file_queue::FileMaker;

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
        let mut created = Vec::with_capacity(self.creates.len());
        for &start in &self.creates {
            created.push(self.maker.create(start)?);
        }
        let mut touched: Vec<Arc<DtFile>> = Vec::with_capacity(1);
        for b in &self.batches {
            for c in &b.chunks {
                let start = c.pos & !(self.seg_size - 1);
                let f = match touched.iter().find(|t| t.start == start) {
                    Some(f) => f.clone(),
                    None => {
                        let f = self
                            .files
                            .iter()
                            .chain(created.iter())
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
                f.write_all_at(&c.data, c.pos - f.start)?;
            }
        }
        if self.sync {
            for f in &touched {
                f.sync_data()?;
            }
        }
        Ok(WriteDone {
            batches: self.batches,
            created,
            touched,
            synced: self.sync,
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

    /// Deletes the files; returns the number of log segments deleted.
    pub fn run(self) -> StoreResult<usize> {
        for f in self.log.iter().chain(self.idx.iter()) {
            FileQueue::delete_file(f, self.sync)?;
        }
        Ok(self.log.len())
    }
}

/// Creation of the index files an index flush will need, planned by
/// [`LogStore::plan_index_files`] so that the flush itself (stores into mapped files on
/// the owner) never creates and allocates a file there.
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

/// A term to read from a segment header (see [`LogStore::plan_term_at`]).
#[derive(Debug)]
pub struct HeaderRead {
    files: FileQueue,
    pos: u64,
    index: u64,
    at: Option<IndexEntryRef>,
}

impl HeaderRead {
    /// Reads the header of the entry; returns its term and encoded length.
    pub fn run(self) -> StoreResult<(u32, u64)> {
        let files = Mutex::new(self.files);
        read_header_at(&files, self.pos, self.index)
            .map(|h| (h.term, self.pos + h.total_len as u64))
            .map_err(|e| blame(&files, self.at.as_ref(), e))
    }
}

/// A value known at once, or a header to read first.
#[derive(Debug)]
pub enum Lookup<T> {
    /// Known from memory.
    Known(T),
    /// Read this header ([`HeaderRead::run`]).
    Read(HeaderRead),
}

impl LogStore {
    /// Plans the write of `batches` (prepared by [`LogStore::prepare_append`], in
    /// order): which segments to create and which open files to write. With `sync`
    /// the job fsyncs each segment it touched.
    pub fn plan_write(&self, batches: Vec<WriteBatch>, sync: bool) -> WriteJob {
        let q = self.files.lock().expect("file queue lock");
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
        }
    }

    /// Records a finished [`WriteJob`]: the segments it created join the queue, the
    /// written watermark moves (batches of an older truncation epoch excepted), and
    /// the fsynced one too when the job fsynced. The batches' buffers are kept for
    /// reuse. Returns the segments written, for a later [`sync_files`] when the job
    /// did not fsync.
    pub fn write_done(&mut self, done: WriteDone) -> StoreResult<Vec<Arc<DtFile>>> {
        {
            let mut q = self.files.lock().expect("file queue lock");
            for f in done.created {
                q.push_created(f)?;
            }
        }
        for b in done.batches {
            self.on_written(b.last_index, b.epoch, Vec::new());
            self.recycle(b);
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
            let mut q = self.files.lock().expect("file queue lock");
            if q.first_start() != Some(s0) || q.first_in_use() {
                break;
            }
            job.log.extend(q.pop_first());
            drop(q);
            self.segs.remove(&s0);
        }
        let first = self.first_index();
        job.idx = self.idx.take_before(first);
        job
    }

    /// The segment files as they are now, for reads on an IO thread (see
    /// [`FileRead::read`]); they stay on disk while the copy exists.
    pub fn files_snapshot(&self) -> FileQueue {
        self.files.lock().expect("file queue lock").snapshot()
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
        if index == 0 {
            return Ok(Lookup::Known(0));
        }
        if index == self.last_index() {
            return Ok(Lookup::Known(self.next_pos));
        }
        let pos = self.idx.pos(index)?;
        if let Some(len) = self.cached_len(index) {
            return Ok(Lookup::Known(pos + len));
        }
        self.plan_header(index).map(Lookup::Read)
    }

    fn plan_header(&mut self, index: u64) -> StoreResult<HeaderRead> {
        let (pos, at) = self.idx.pos_and_source(index)?;
        Ok(HeaderRead {
            files: self.files_snapshot(),
            pos,
            index,
            at,
        })
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
