//! `DefaultRaftLog`: [`LogStore`] driven asynchronously, with group commit.
//!
//! Appends are encoded and given positions on the caller's thread (cheap, in memory),
//! then queued to a single *write lane*: one IO job at a time drains the queue, writes
//! every queued batch in order, issues **one** `fdatasync` per segment touched, and
//! completes all those appends. While it syncs, new appends queue up and share the
//! next sync: the more load, the bigger the groups. The lane also advances the
//! written / fsynced watermarks, flushes committed index entries and deletes expired
//! segments.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::completion::{completion, run_blocking, Completer, Completion};
use super::{LogFuture, LogIterator, RaftLog};
use crate::store::log_store::IndexFlush;
use crate::store::log_store::ReadPlan;
use crate::store::match_pos::find_match_pos;
use crate::store::reader::read_header_at;
use crate::store::{
    LogItem, LogStore, PersistedState, StoreConfig, StoreError, StoreResult, WriteBatch,
};
use dt_common::Executor;

/// How long an idle write lane waits for the next append before releasing its thread.
const LANE_LINGER: Duration = Duration::from_micros(50);

/// How often the write lane looks for expired segments to delete.
const DELETE_CHECK_INTERVAL: Duration = Duration::from_secs(10);

enum LaneJob {
    Write(WriteBatch, Completer<u64>),
    Barrier(Completer<()>),
}

#[derive(Default)]
struct Lane {
    jobs: VecDeque<LaneJob>,
    running: bool,
}

struct Shared {
    dir: PathBuf,
    cfg: StoreConfig,
    io: Arc<dyn Executor>,
    core: Mutex<Option<LogStore>>,
    /// Serializes status-file writes, which happen off the `core` lock. Lock order:
    /// `status_io`, then `core`.
    status_io: Mutex<()>,
    lane: Mutex<Lane>,
    persisted: AtomicU64,
    syncs: AtomicU64,
    /// Jobs were queued on the lane since it last drained it: lets the lingering lane
    /// poll without taking the lane lock (which the enqueuer needs).
    lane_has_jobs: AtomicBool,
    /// An index flush job is queued or running (at most one at a time, so that
    /// `persistIdxIndex` only ever covers synced index files).
    idx_flush_busy: AtomicBool,
    last_delete_check: Mutex<Instant>,
}

/// The default [`RaftLog`]: segment and index files in a data directory, file work on
/// an [`Executor`], group commit, a tail cache for recent entries.
///
/// ```
/// use dt_raft::raft_log::{block_on, DefaultRaftLog, RaftLog, ThreadPoolIo};
/// use dt_raft::store::{LogItem, StoreConfig};
///
/// let dir = tempfile::tempdir().unwrap();
/// let log = DefaultRaftLog::new(dir.path(), StoreConfig::small_for_tests(), ThreadPoolIo::new(2));
/// assert_eq!(block_on(log.init()).unwrap(), Some((0, 0)));
/// let items = vec![LogItem { term: 1, index: 1, body: b"x"[..].into(), ..Default::default() }];
/// let persisted = block_on(log.append(items)).unwrap();
/// assert_eq!(persisted, 1);
/// let mut it = log.open_iterator();
/// assert_eq!(block_on(it.next(1, 10, 1 << 20)).unwrap()[0].body, &b"x"[..]);
/// drop(it);
/// block_on(log.close()).unwrap();
/// ```
pub struct DefaultRaftLog {
    shared: Arc<Shared>,
}

impl DefaultRaftLog {
    /// A log over `data_dir` (not opened until [`RaftLog::init`]).
    pub fn new(data_dir: &std::path::Path, cfg: StoreConfig, io: Arc<dyn Executor>) -> Self {
        DefaultRaftLog {
            shared: Arc::new(Shared {
                dir: data_dir.to_path_buf(),
                cfg,
                io,
                core: Mutex::new(None),
                status_io: Mutex::new(()),
                lane: Mutex::new(Lane::default()),
                persisted: AtomicU64::new(0),
                syncs: AtomicU64::new(0),
                lane_has_jobs: AtomicBool::new(false),
                idx_flush_busy: AtomicBool::new(false),
                last_delete_check: Mutex::new(Instant::now()),
            }),
        }
    }

    /// Runs `f` on the opened store (under its lock, on the caller's thread): reading
    /// the status (term, vote), inspection, tests. Do not write the status file from
    /// here; use [`DefaultRaftLog::persist_status`], which orders status writes.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut LogStore) -> StoreResult<T>) -> StoreResult<T> {
        let mut g = self.shared.core();
        let s = g.as_mut().ok_or(StoreError::Closed)?;
        f(s)
    }

    /// Deletes segments whose deletion delay has passed (also done periodically by
    /// the write lane).
    pub fn delete_expired(&self) -> LogFuture<'_, usize> {
        let sh = self.shared.clone();
        Box::pin(run_blocking(&*self.shared.io, move || {
            let mut g = sh.core();
            g.as_mut()
                .ok_or(StoreError::Closed)?
                .delete_expired(Instant::now())
        }))
    }

    /// Changes the status file (term, vote, ...) with `f` and persists it atomically on
    /// an IO thread; resolves when it is durable. Raft awaits this before granting a
    /// vote, starting an election or accepting a higher term.
    pub fn persist_status(
        &self,
        f: impl FnOnce(&mut crate::store::RaftStatus) + Send + 'static,
    ) -> LogFuture<'_, ()> {
        let sh = self.shared.clone();
        Box::pin(run_blocking(&*self.shared.io, move || {
            let _status_io = sh.status_io.lock().expect("status lock");
            let p = {
                let mut g = sh.core();
                let s = g.as_mut().ok_or(StoreError::Closed)?;
                f(&mut s.status().status);
                s.status().pending()
            };
            p.write()?;
            if let Some(s) = sh.core().as_mut() {
                s.status().mark_persisted(p.status);
            }
            Ok(())
        }))
    }

    /// Number of group fsyncs issued so far (each covers every append queued when it
    /// started).
    pub fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    fn barrier(&self) -> Completion<()> {
        let (c, f) = completion();
        self.shared.enqueue(LaneJob::Barrier(c));
        f
    }
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Option<LogStore>> {
        self.core.lock().expect("log store lock")
    }

    fn enqueue(self: &Arc<Self>, job: LaneJob) {
        let start = {
            let mut l = self.lane.lock().expect("lane lock");
            l.jobs.push_back(job);
            self.lane_has_jobs.store(true, Ordering::Release);
            !std::mem::replace(&mut l.running, true)
        };
        if start {
            let me = self.clone();
            if self.io.execute(Box::new(move || me.run_lane())).is_err() {
                log::error!(
                    "log store IO executor refused the write lane in {}",
                    self.dir.display()
                );
            }
        }
    }

    /// The write lane: drain, write, one fsync, complete; repeat while work arrives.
    fn run_lane(self: &Arc<Self>) {
        loop {
            let jobs: Vec<LaneJob> = {
                let mut l = self.lane.lock().expect("lane lock");
                if l.jobs.is_empty() {
                    // Linger briefly: in a request/response rhythm the next append
                    // arrives within microseconds of the last completion, and picking
                    // it up here saves a pool wake-up (as costly as a fast fsync).
                    // The lane yields instead of spinning: the caller it just woke
                    // is often placed on this very CPU, and a spinning lane would
                    // keep it off until the linger ends (measured: 35 us per append
                    // at batch 256 on a 2-core VM, against 3 us when yielding).
                    drop(l);
                    let until = Instant::now() + LANE_LINGER;
                    while !self.lane_has_jobs.load(Ordering::Acquire) && Instant::now() < until {
                        std::thread::yield_now();
                    }
                    l = self.lane.lock().expect("lane lock");
                    if l.jobs.is_empty() {
                        l.running = false;
                        return;
                    }
                }
                self.lane_has_jobs.store(false, Ordering::Release);
                l.jobs.drain(..).collect()
            };
            let files = match self.core().as_ref() {
                Some(s) => s.file_queue(),
                None => {
                    for j in jobs {
                        match j {
                            LaneJob::Write(_, c) => c.complete(Err(StoreError::Closed)),
                            LaneJob::Barrier(c) => c.complete(Err(StoreError::Closed)),
                        }
                    }
                    continue;
                }
            };
            let mut err: Option<Arc<StoreError>> = None;
            let mut waiters = Vec::new();
            let mut barriers = Vec::new();
            for j in jobs {
                match j {
                    LaneJob::Write(batch, c) => {
                        if err.is_none() {
                            match batch.write(&files) {
                                Ok(touched) => {
                                    if let Some(s) = self.core().as_mut() {
                                        s.on_written(batch.last_index, batch.epoch, touched);
                                        s.recycle(batch);
                                    }
                                }
                                Err(e) => err = Some(Arc::new(e)),
                            }
                        }
                        waiters.push(c);
                    }
                    LaneJob::Barrier(c) => barriers.push(c),
                }
            }
            if err.is_none() && !self.cfg.sync_force {
                // Acknowledged once in the OS; the fsync below still follows.
                let written = self.core().as_ref().map_or(0, |s| s.persisted_index());
                self.persisted.store(written, Ordering::Release);
                for c in waiters.drain(..) {
                    c.complete(Ok(written));
                }
            }
            if err.is_none() {
                if let Err(e) = self.sync_log() {
                    err = Some(Arc::new(e));
                }
            }
            if let Some(e) = &err {
                // Like the reference's writer error state: no more appends; the group
                // has to stop and recover from what is on disk. Set before any waiter
                // learns of the error, so no later append slips in.
                log::error!("raft log write failed in {}: {e}", self.dir.display());
                if let Some(s) = self.core().as_mut() {
                    s.fail(e.clone());
                }
            }
            let persisted = self.persisted.load(Ordering::Acquire);
            for c in waiters {
                c.complete(match &err {
                    None => Ok(persisted),
                    Some(e) => Err(lane_error(e)),
                });
            }
            for c in barriers {
                c.complete(match &err {
                    None => Ok(()),
                    Some(e) => Err(lane_error(e)),
                });
            }
            if err.is_none() {
                self.maybe_start_index_flush();
            }
            self.maybe_delete();
        }
    }

    /// Starts an index flush on another IO thread when one is due, so that neither the
    /// appends just acknowledged nor the next write wait for index and status-file
    /// syncs (the reference runs them in their own fiber too).
    fn maybe_start_index_flush(self: &Arc<Self>) {
        let due = self.core().as_ref().is_some_and(|s| s.index_flush_due());
        if due && !self.idx_flush_busy.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            let _ = self.io.execute(Box::new(move || {
                let r = me.flush_index();
                me.idx_flush_busy.store(false, Ordering::Release);
                if let Err(e) = r {
                    log::error!("raft index flush failed in {}: {e}", me.dir.display());
                    if let Some(s) = me.core().as_mut() {
                        s.fail(Arc::new(e));
                    }
                }
            }));
        }
    }

    /// One index flush: store due entries into the mapped index files (under the store
    /// lock, memory only), sync them (no store lock), raise `persistIdxIndex`, write the
    /// status file (no store lock). Status writes are ordered by `status_io`, held
    /// throughout.
    fn flush_index(&self) -> StoreResult<()> {
        let _status_io = self.status_io.lock().expect("status lock");
        let plan = match self.core().as_mut() {
            Some(s) => s.begin_index_flush(false)?,
            None => return Ok(()),
        };
        let pending = match plan {
            IndexFlush::Nothing => None,
            IndexFlush::Status(p) => Some(p),
            IndexFlush::Write(w) => {
                w.sync()?;
                self.core()
                    .as_mut()
                    .and_then(|s| s.finish_index_flush(w.end))
            }
        };
        if let Some(p) = pending {
            p.write()?;
            if let Some(s) = self.core().as_mut() {
                s.status().mark_persisted(p.status);
            }
        }
        Ok(())
    }

    /// One group fsync of everything written so far, then the watermarks.
    fn sync_log(&self) -> StoreResult<()> {
        let (dirty, target) = {
            let mut g = self.core();
            let Some(s) = g.as_mut() else { return Ok(()) };
            (s.take_dirty(), s.last_write_index())
        };
        if self.cfg.sync && !dirty.is_empty() {
            for f in &dirty {
                f.sync_data()?;
            }
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        drop(dirty);
        let mut g = self.core();
        if let Some(s) = g.as_mut() {
            s.on_forced(target);
            self.persisted.store(s.persisted_index(), Ordering::Release);
        }
        Ok(())
    }

    fn maybe_delete(&self) {
        let due = {
            let mut t = self.last_delete_check.lock().expect("lock");
            if t.elapsed() >= DELETE_CHECK_INTERVAL {
                *t = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            if let Some(s) = self.core().as_mut() {
                if let Err(e) = s.delete_expired(Instant::now()) {
                    log::warn!("deleting old log segments failed: {e}");
                }
            }
        }
    }
}

fn lane_error(cause: &Arc<StoreError>) -> StoreError {
    StoreError::failed(cause.clone())
}

impl RaftLog for DefaultRaftLog {
    fn init(&self) -> LogFuture<'_, Option<(u32, u64)>> {
        let sh = self.shared.clone();
        Box::pin(run_blocking(&*self.shared.io, move || {
            let s = LogStore::open(&sh.dir, sh.cfg.clone())?;
            let r = s.init_result();
            sh.persisted.store(s.persisted_index(), Ordering::Release);
            *sh.core() = Some(s);
            Ok(r)
        }))
    }

    fn append(&self, items: Vec<LogItem>) -> LogFuture<'_, u64> {
        let batch = {
            let mut g = self.shared.core();
            match g.as_mut() {
                Some(s) => s.prepare_append_owned(items),
                None => Err(StoreError::Closed),
            }
        };
        match batch {
            Ok(b) => {
                let (c, f) = completion();
                self.shared.enqueue(LaneJob::Write(b, c));
                Box::pin(f)
            }
            Err(e) => Box::pin(Completion::ready(Err(e))),
        }
    }

    fn truncate_tail(&self, index: u64) -> StoreResult<()> {
        let mut g = self.shared.core();
        let s = g.as_mut().ok_or(StoreError::Closed)?;
        s.truncate_tail(index)?;
        self.shared
            .persisted
            .fetch_min(s.persisted_index(), Ordering::AcqRel);
        Ok(())
    }

    fn open_iterator(&self) -> Box<dyn LogIterator + '_> {
        Box::new(DefaultLogIterator {
            shared: self.shared.clone(),
        })
    }

    fn try_find_match_pos(&self, term: u32, index: u64) -> LogFuture<'_, Option<(u32, u64)>> {
        let sh = self.shared.clone();
        Box::pin(run_blocking(&*self.shared.io, move || {
            let (first, last, files) = {
                let g = sh.core();
                let s = g.as_ref().ok_or(StoreError::Closed)?;
                (s.first_index(), s.last_index(), s.file_queue())
            };
            // The store lock is held only for cache and index lookups, never across a
            // disk read, so appends on the Raft thread do not wait for the search.
            find_match_pos(term, index, first, last, |i| {
                let pos = {
                    let mut g = sh.core();
                    let s = g.as_mut().ok_or(StoreError::Closed)?;
                    if let Some(t) = s.cached_term(i) {
                        return Ok(t);
                    }
                    s.index_pos(i)?
                };
                Ok(read_header_at(&files, pos, i)?.term)
            })
        }))
    }

    fn mark_truncate_by_index(&self, index: u64, delay: Duration) {
        if let Some(s) = self.shared.core().as_mut() {
            s.mark_truncate_by_index(index, delay);
        }
    }

    fn mark_truncate_by_timestamp(&self, timestamp_ms: i64, bound_index: u64, delay: Duration) {
        if let Some(s) = self.shared.core().as_mut() {
            s.mark_truncate_by_timestamp(timestamp_ms, bound_index, delay);
        }
    }

    fn begin_install(&self) -> LogFuture<'_, ()> {
        let drained = self.barrier();
        let sh = self.shared.clone();
        Box::pin(async move {
            // In-flight writes may fail once their files are gone; that is fine.
            let _ = drained.await;
            run_blocking(&*sh.io.clone(), move || {
                let _status_io = sh.status_io.lock().expect("status lock");
                let mut g = sh.core();
                let s = g.as_mut().ok_or(StoreError::Closed)?;
                s.begin_install()?;
                sh.persisted.store(0, Ordering::Release);
                Ok(())
            })
            .await
        })
    }

    fn finish_install(&self, next_index: u64, next_pos: u64) -> LogFuture<'_, ()> {
        let sh = self.shared.clone();
        Box::pin(run_blocking(&*self.shared.io, move || {
            let _status_io = sh.status_io.lock().expect("status lock");
            let mut g = sh.core();
            let s = g.as_mut().ok_or(StoreError::Closed)?;
            s.finish_install(next_index, next_pos)?;
            sh.persisted.store(s.persisted_index(), Ordering::Release);
            Ok(())
        }))
    }

    fn load_next_item_pos(&self, index: u64) -> LogFuture<'_, u64> {
        let sh = self.shared.clone();
        Box::pin(run_blocking(&*self.shared.io, move || {
            let (pos, files) = {
                let mut g = sh.core();
                let s = g.as_mut().ok_or(StoreError::Closed)?;
                if index == 0 {
                    return Ok(0);
                }
                if index == s.last_index() {
                    return Ok(s.next_pos());
                }
                let pos = s.index_pos(index)?;
                if let Some(len) = s.cached_len(index) {
                    return Ok(pos + len);
                }
                (pos, s.file_queue())
            };
            Ok(pos + read_header_at(&files, pos, index)?.total_len as u64)
        }))
    }

    fn set_commit_index(&self, index: u64) {
        if let Some(s) = self.shared.core().as_mut() {
            s.set_commit_index(index);
        }
    }

    fn persisted_index(&self) -> u64 {
        self.shared.persisted.load(Ordering::Acquire)
    }

    fn persisted_state(&self) -> StoreResult<PersistedState> {
        self.with_store(|s| Ok(s.persisted_state()))
    }

    fn persist_term_vote(&self, current_term: u32, voted_for: i32) -> LogFuture<'_, ()> {
        self.persist_status(move |st| {
            st.current_term = current_term;
            st.voted_for = voted_for;
        })
    }

    fn close(&self) -> LogFuture<'_, ()> {
        let drained = self.barrier();
        let sh = self.shared.clone();
        Box::pin(async move {
            drained.await?;
            run_blocking(&*sh.io.clone(), move || {
                let _status_io = sh.status_io.lock().expect("status lock");
                let mut g = sh.core();
                match g.as_mut() {
                    Some(s) => s.close(),
                    None => Ok(()),
                }
            })
            .await
        })
    }
}

/// Iterator of [`DefaultRaftLog`]: the tail cache answers at once; older entries are
/// read on an IO thread.
struct DefaultLogIterator {
    shared: Arc<Shared>,
}

impl LogIterator for DefaultLogIterator {
    fn next(
        &mut self,
        index: u64,
        limit: usize,
        bytes_limit: usize,
    ) -> LogFuture<'_, Vec<LogItem>> {
        let plan = {
            let mut g = self.shared.core();
            match g.as_mut() {
                Some(s) => s
                    .plan_read(index, limit, bytes_limit)
                    .map(|p| (p, s.file_queue())),
                None => Err(StoreError::Closed),
            }
        };
        match plan {
            Err(e) => Box::pin(Completion::ready(Err(e))),
            Ok((ReadPlan::Cached(v), _)) => Box::pin(Completion::ready(Ok(v))),
            Ok((ReadPlan::Files(r), files)) => {
                let block = self.shared.cfg.read_block_size;
                Box::pin(run_blocking(&*self.shared.io, move || {
                    r.read(&files, block)
                }))
            }
        }
    }
}
