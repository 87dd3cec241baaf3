//! [`FsyncBatcher`]: one `syncfs` for the logs of many groups instead of one
//! `fdatasync` each.
//!
//! Every Raft group keeps its own log files (the reference's on-disk layout), so a
//! process with many groups makes many small fsyncs: each replication round of each
//! group ends in one. On the test machine (ext4 on a virtio disk) an `fdatasync` costs
//! tens of microseconds of CPU however little it writes, and `raft_bench --groups 100`
//! spent more CPU in fsyncs than in everything else. A file system's `syncfs` makes
//! all of its files' written data durable with one journal commit and one device
//! flush. `fsync_bench --threads 64` (each thread writes 4 KiB to its own file and
//! waits for it to be durable) measured 80 µs of CPU per fsync with an `fdatasync`
//! each and 23 µs with `--batched` (this batcher: 1 225 `syncfs` calls served
//! 59 000 fsyncs), with 2x the fsyncs per second.
//!
//! The batcher is group commit across logs: a log whose write job needs its segments
//! durable hands them over with [`FsyncBatcher::sync`] and is answered once a sync that
//! started after that call has finished. The first caller with no sync running runs
//! one round itself (on its IO thread, where its own write just ran); requests that
//! arrive during that round are served by the next one, on an IO thread of the
//! executor, which keeps going while requests keep coming. A round with one file
//! `fdatasync`s it (cheaper than `syncfs` for one file); with several files on one file
//! system it calls `syncfs` once, then asks each file whether its writeback failed
//! since it last looked (`sync_file_range` with `SYNC_FILE_RANGE_WAIT_AFTER`, which
//! reports the file's own writeback-error sequence without another flush), so that an
//! error in a page written back in the background is reported to the log that wrote
//! it, exactly as its own `fdatasync` would have. A failed `syncfs` fails every request
//! of the round (the logs then fail-stop, as after a failed `fdatasync`).
//!
//! `syncfs` is used only on Linux 5.8 or later, where it reports writeback errors;
//! elsewhere, and with [`FsyncBatcher::per_file`], every file gets its own
//! `fdatasync` (requests still share a round, which only saves wake-ups).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dt_common::Executor;

use super::error::{StoreError, StoreResult};
use super::file_queue::DtFile;

/// The answer to one [`FsyncBatcher::sync`] request: `Ok` once every file handed over
/// is durable up to what was written to it before the call.
pub type SyncDone = Box<dyn FnOnce(StoreResult<()>) + Send>;

struct SyncRequest {
    files: Vec<Arc<DtFile>>,
    done: SyncDone,
}

#[derive(Default)]
struct State {
    queue: Vec<SyncRequest>,
    /// A round is running or an IO thread has been asked to run them.
    running: bool,
    /// The queue's spare buffer (rounds swap it in and out).
    spare: Vec<SyncRequest>,
}

/// Counters of an [`FsyncBatcher`] (see [`FsyncBatcher::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsyncStats {
    /// Requests answered.
    pub requests: u64,
    /// Rounds run.
    pub rounds: u64,
    /// `syncfs` calls made.
    pub syncfs_calls: u64,
    /// `fdatasync` calls made.
    pub fdatasync_calls: u64,
}

/// Group commit of fsyncs across the logs of a process (see the module documentation).
/// One per [`RaftServer`](crate::server::RaftServer); logs get it through
/// [`StoreConfig::fsync_batcher`](super::StoreConfig::fsync_batcher).
pub struct FsyncBatcher {
    io: Arc<dyn Executor>,
    syncfs: bool,
    state: Mutex<State>,
    requests: AtomicU64,
    rounds: AtomicU64,
    syncfs_calls: AtomicU64,
    fdatasync_calls: AtomicU64,
}

impl std::fmt::Debug for FsyncBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsyncBatcher")
            .field("syncfs", &self.syncfs)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Batchers are equal only to themselves (configurations holding one compare by it).
impl PartialEq for FsyncBatcher {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for FsyncBatcher {}

impl FsyncBatcher {
    /// A batcher whose later rounds run on `io`'s threads, using `syncfs` where the
    /// system supports it (Linux 5.8 or later).
    pub fn new(io: Arc<dyn Executor>) -> Arc<FsyncBatcher> {
        Self::with_syncfs(io, sys::syncfs_reports_errors())
    }

    /// A batcher that never calls `syncfs`: one `fdatasync` per file.
    pub fn per_file(io: Arc<dyn Executor>) -> Arc<FsyncBatcher> {
        Self::with_syncfs(io, false)
    }

    fn with_syncfs(io: Arc<dyn Executor>, syncfs: bool) -> Arc<FsyncBatcher> {
        Arc::new(FsyncBatcher {
            io,
            syncfs,
            state: Mutex::default(),
            requests: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            syncfs_calls: AtomicU64::new(0),
            fdatasync_calls: AtomicU64::new(0),
        })
    }

    /// Whether rounds with several files of one file system use `syncfs`.
    pub fn uses_syncfs(&self) -> bool {
        self.syncfs
    }

    /// Counters since the batcher was made.
    pub fn stats(&self) -> FsyncStats {
        FsyncStats {
            requests: self.requests.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
            syncfs_calls: self.syncfs_calls.load(Ordering::Relaxed),
            fdatasync_calls: self.fdatasync_calls.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Rounds complete requests outside the lock: the state stays consistent even
        // if a `done` panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `files` durable up to what was written to them before this call, then
    /// calls `done` (on this thread or an IO thread). Blocks this thread for one round
    /// when no round is running (call it from an IO thread, never from a dispatcher).
    pub fn sync(self: &Arc<Self>, files: Vec<Arc<DtFile>>, done: SyncDone) {
        self.submit(std::iter::once(SyncRequest { files, done }));
    }

    /// [`FsyncBatcher::sync`], except inside [`defer_syncs`] on this thread: there the
    /// request waits until the deferring code is done and goes in with every other
    /// request it deferred, so that the writes of many logs run first and share one
    /// round (and the thread blocks at most once for them).
    pub fn sync_deferred(self: &Arc<Self>, files: Vec<Arc<DtFile>>, done: SyncDone) {
        let req = SyncRequest { files, done };
        let req = DEFERRED.with(|d| match d.try_borrow_mut() {
            Ok(mut d) if d.active => {
                d.reqs.push((self.clone(), req));
                None
            }
            _ => Some(req),
        });
        if let Some(req) = req {
            self.submit(std::iter::once(req));
        }
    }

    /// Queues `reqs` and, if no round is running, leads one on this thread (its own
    /// requests are in it) and hands whatever arrived meanwhile to an IO thread, so
    /// that this thread's next write is not held up behind other logs' rounds.
    fn submit(self: &Arc<Self>, reqs: impl Iterator<Item = SyncRequest>) {
        {
            let mut st = self.lock();
            st.queue.extend(reqs);
            if st.running || st.queue.is_empty() {
                return;
            }
            st.running = true;
        }
        if self.run_round() {
            let me = self.clone();
            if let Err(task) = self.io.execute(Box::new(move || me.drain())) {
                task();
            }
        }
    }

    /// Runs rounds until the queue is empty.
    fn drain(&self) {
        while self.run_round() {}
    }

    /// Takes the queued requests, syncs their files and answers them. Then, under the
    /// same lock: returns true if more requests are queued (the caller runs or
    /// schedules the next round), else clears `running` and returns false.
    fn run_round(&self) -> bool {
        let mut batch = {
            let mut st = self.lock();
            let spare = std::mem::take(&mut st.spare);
            std::mem::replace(&mut st.queue, spare)
        };
        if !batch.is_empty() {
            self.rounds.fetch_add(1, Ordering::Relaxed);
            self.requests
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let outcome = self.sync_files(&batch);
            for r in batch.drain(..) {
                let res = r
                    .files
                    .iter()
                    .find_map(|f| outcome.error_of(f))
                    .map_or(Ok(()), Err);
                (r.done)(res);
            }
        }
        let mut st = self.lock();
        if st.spare.capacity() < batch.capacity() {
            st.spare = batch;
        }
        if st.queue.is_empty() {
            st.running = false;
            false
        } else {
            true
        }
    }

    /// Syncs every distinct file of the batch once and says which failed.
    fn sync_files(&self, batch: &[SyncRequest]) -> Outcome {
        let mut outcome = Outcome::default();
        if let [one] = batch {
            if one.files.len() == 1 {
                // The common case of a lone log: its own fdatasync, nothing to sort.
                let f = &one.files[0];
                self.fdatasync_calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = f.sync_data() {
                    outcome.fail(f, e);
                }
                return outcome;
            }
        }
        let mut files: Vec<Arc<DtFile>> = Vec::new();
        for r in batch {
            for f in &r.files {
                if !files.iter().any(|g| Arc::ptr_eq(g, f)) {
                    files.push(f.clone());
                }
            }
        }
        // Files of one file system, several of them: one syncfs. The rest: fdatasync.
        let mut done = vec![false; files.len()];
        if self.syncfs {
            for i in 0..files.len() {
                if done[i] || files[i].device() == 0 {
                    continue;
                }
                let dev = files[i].device();
                let same: Vec<usize> = (i..files.len())
                    .filter(|&j| !done[j] && files[j].device() == dev)
                    .collect();
                if same.len() < 2 {
                    continue;
                }
                for &j in &same {
                    done[j] = true;
                }
                self.sync_same_fs(&files, &same, &mut outcome);
            }
        }
        for (i, f) in files.iter().enumerate() {
            if !done[i] {
                self.fdatasync_calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = f.sync_data() {
                    outcome.fail(f, e);
                }
            }
        }
        outcome
    }

    /// One `syncfs` for the files `idx` of `files` (all on one file system), then each
    /// file's own writeback-error check.
    fn sync_same_fs(&self, files: &[Arc<DtFile>], idx: &[usize], outcome: &mut Outcome) {
        // The fault hook of each file's fsync first, as `fdatasync` would run it; with
        // each live file, what it had appended before the syncfs (durable once it
        // succeeds).
        let mut live = Vec::with_capacity(idx.len());
        for &j in idx {
            match files[j].check_sync_fault() {
                Ok(()) => live.push((j, files[j].appended_mark())),
                Err(e) => outcome.fail(&files[j], e),
            }
        }
        let Some(&(first, _)) = live.first() else {
            return;
        };
        self.syncfs_calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = sys::syncfs(files[first].file()) {
            for &(j, _) in &live {
                let err = StoreError::io("syncfs", &files[j].path, copy_io(&e));
                outcome.fail(&files[j], err);
            }
            return;
        }
        for &(j, mark) in &live {
            match sys::check_writeback(files[j].file()) {
                Ok(()) => files[j].drop_synced_pages(mark),
                Err(e) => outcome.fail(&files[j], StoreError::io("fdatasync", &files[j].path, e)),
            }
        }
    }
}

/// Requests deferred on this thread (see [`defer_syncs`]).
#[derive(Default)]
struct Deferred {
    active: bool,
    reqs: Vec<(Arc<FsyncBatcher>, SyncRequest)>,
}

std::thread_local! {
    static DEFERRED: std::cell::RefCell<Deferred> = std::cell::RefCell::default();
}

/// Runs `f`, holding back the [`FsyncBatcher::sync_deferred`] requests it makes on this
/// thread, then hands them to their batchers together: one round for all of them
/// instead of a round (and a wait) after each. For an IO thread running several logs'
/// write jobs in a row. Nested calls defer to the outermost.
pub fn defer_syncs<R>(f: impl FnOnce() -> R) -> R {
    let outer = DEFERRED.with(|d| std::mem::replace(&mut d.borrow_mut().active, true));
    if outer {
        return f();
    }
    // Ends the deferral even if `f` panics, so that no request is left behind.
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let mut reqs = DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                d.active = false;
                std::mem::take(&mut d.reqs)
            });
            while let Some((b, _)) = reqs.first() {
                let b = b.clone();
                if reqs.iter().all(|(c, _)| Arc::ptr_eq(c, &b)) {
                    b.submit(reqs.drain(..).map(|(_, r)| r));
                } else {
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while i < reqs.len() {
                        if Arc::ptr_eq(&reqs[i].0, &b) {
                            mine.push(reqs.swap_remove(i).1);
                        } else {
                            i += 1;
                        }
                    }
                    b.submit(mine.into_iter());
                }
            }
            // Keep the buffer for the next deferral on this thread.
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if d.reqs.capacity() < reqs.capacity() {
                    d.reqs = reqs;
                }
            });
        }
    }
    let _flush = Flush;
    f()
}

/// Which files of a round failed, and how.
#[derive(Default)]
struct Outcome {
    failed: Vec<(Arc<DtFile>, StoreError)>,
}

impl Outcome {
    fn fail(&mut self, f: &Arc<DtFile>, e: StoreError) {
        self.failed.push((f.clone(), e));
    }

    /// A copy of the error of `f`, if it failed.
    fn error_of(&self, f: &Arc<DtFile>) -> Option<StoreError> {
        self.failed
            .iter()
            .find(|(g, _)| Arc::ptr_eq(g, f))
            .map(|(_, e)| copy_error(e))
    }
}

/// A copy of an IO error (errno kept) for another waiter.
fn copy_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io { op, path, source } => StoreError::io(op, path, copy_io(source)),
        other => StoreError::io("fdatasync", "", io::Error::other(other.to_string())),
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::raw::c_uint;
    use std::os::unix::io::AsRawFd;

    const SYNC_FILE_RANGE_WAIT_AFTER: c_uint = 4;

    mod ffi {
        use std::os::raw::{c_int, c_uint};
        extern "C" {
            pub fn syncfs(fd: c_int) -> c_int;
            pub fn sync_file_range(fd: c_int, offset: i64, nbytes: i64, flags: c_uint) -> c_int;
        }
    }

    /// A libc return value: 0 is success, anything else the thread's errno.
    fn checked(r: std::os::raw::c_int) -> io::Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `syncfs(2)` on the file system holding `f`.
    pub fn syncfs(f: &File) -> io::Result<()> {
        // SAFETY: `syncfs` only reads its argument, a descriptor that stays open for
        // the call because `f` is borrowed; it touches no memory of ours.
        checked(unsafe { ffi::syncfs(f.as_raw_fd()) })
    }

    /// Waits for writeback of `f` in progress and reports (once per descriptor, like
    /// `fdatasync`) a writeback error recorded on the file since this descriptor last
    /// reported one.
    pub fn check_writeback(f: &File) -> io::Result<()> {
        // SAFETY: `sync_file_range` reads only its integer arguments and a descriptor
        // kept open by the borrow of `f`; it touches no memory of ours.
        checked(unsafe { ffi::sync_file_range(f.as_raw_fd(), 0, 0, SYNC_FILE_RANGE_WAIT_AFTER) })
    }

    /// Whether `syncfs` reports writeback errors: Linux 5.8 and later.
    pub fn syncfs_reports_errors() -> bool {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|s| super::parse_release(&s))
            .is_some_and(|v| v >= (5, 8))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::fs::File;
    use std::io;

    pub fn syncfs(_f: &File) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub fn check_writeback(_f: &File) -> io::Result<()> {
        Ok(())
    }

    pub fn syncfs_reports_errors() -> bool {
        false
    }
}

/// `(major, minor)` of a kernel release string such as `6.1.0-18-amd64`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_release(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_log::ThreadPoolIo;
    use crate::store::faults::DiskFaults;
    use crate::store::file_queue::FileQueue;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn kernel_release_parses() {
        assert_eq!(parse_release("6.18.44-fc-v1252\n"), Some((6, 18)));
        assert_eq!(parse_release("5.8.0"), Some((5, 8)));
        assert_eq!(parse_release("4.19"), Some((4, 19)));
        assert_eq!(parse_release("x"), None);
        assert_eq!(parse_release("5"), None);
    }

    /// `n` one-segment file queues (one per "group") under one directory, with data
    /// written to each.
    fn files(
        dir: &std::path::Path,
        n: usize,
        faults: crate::store::faults::Faults,
    ) -> Vec<Arc<DtFile>> {
        (0..n)
            .map(|i| {
                let q =
                    FileQueue::open_with(&dir.join(format!("g{i}")), 4096, true, faults.clone())
                        .expect("queue");
                let f = q.maker().create(0).expect("segment");
                f.write_all_at(&[i as u8; 100], 0).expect("write");
                f
            })
            .collect()
    }

    fn answered_ok(rx: &mpsc::Receiver<StoreResult<()>>) {
        let r = rx.recv_timeout(Duration::from_secs(10)).expect("answered");
        assert!(r.is_ok(), "{r:?}");
    }

    fn ask(b: &Arc<FsyncBatcher>, files: Vec<Arc<DtFile>>) -> mpsc::Receiver<StoreResult<()>> {
        let (tx, rx) = mpsc::channel();
        b.sync(
            files,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx
    }

    #[test]
    fn deferred_requests_wait_for_the_deferral_and_share_one_round() {
        let d = tempfile::tempdir().expect("dir");
        let fs = files(d.path(), 5, None);
        let b = FsyncBatcher::new(ThreadPoolIo::new(2));
        let rxs = defer_syncs(|| {
            let rxs: Vec<_> = fs
                .iter()
                .map(|f| {
                    let (tx, rx) = mpsc::channel();
                    b.sync_deferred(
                        vec![f.clone()],
                        Box::new(move |r| {
                            let _ = tx.send(r);
                        }),
                    );
                    rx
                })
                .collect();
            // Nothing is synced or answered while the deferral lasts.
            assert_eq!(b.stats(), FsyncStats::default());
            for rx in &rxs {
                assert!(rx.try_recv().is_err());
            }
            rxs
        });
        for rx in &rxs {
            answered_ok(rx);
        }
        let s = b.stats();
        assert_eq!((s.requests, s.rounds), (5, 1), "{s:?}");
        // Outside a deferral the request goes in at once.
        let (tx, rx) = mpsc::channel();
        b.sync_deferred(
            vec![fs[0].clone()],
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        answered_ok(&rx);
        assert_eq!(b.stats().requests, 6);
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn a_shared_round_drops_the_synced_appends_of_every_file_from_the_page_cache() {
        use crate::store::file_queue::tests::{page_cache_dir, resident_pages};
        use crate::store::file_queue::PAGE_DROP_STEP;
        let Some(d) = page_cache_dir() else {
            return;
        };
        let fs: Vec<Arc<DtFile>> = (0..3)
            .map(|i| {
                let mut q =
                    FileQueue::open(&d.path().join(format!("g{i}")), 4 << 20, true).expect("queue");
                q.drop_synced_pages(true);
                let f = q.maker().create(0).expect("segment");
                let data = vec![i as u8 + 1; PAGE_DROP_STEP as usize + 4096];
                f.write_all_at(&data, 0).expect("write");
                f.note_appended(data.len() as u64);
                f
            })
            .collect();
        let b = FsyncBatcher::new(ThreadPoolIo::new(2));
        answered_ok(&ask(&b, fs.clone()));
        let s = b.stats();
        assert_eq!(s.syncfs_calls + s.fdatasync_calls.min(1), 1, "{s:?}");
        for f in &fs {
            let pages = resident_pages(f.file(), PAGE_DROP_STEP as usize + 4096);
            let step = (PAGE_DROP_STEP / 4096) as usize;
            assert!(
                pages[..step].iter().all(|r| !r),
                "{}: the synced step is cached",
                f.path.display()
            );
            assert!(
                pages[step],
                "{}: the page still appended to was dropped",
                f.path.display()
            );
        }
    }

    #[test]
    fn a_lone_request_is_answered_with_one_fdatasync_per_file() {
        let d = tempfile::tempdir().expect("dir");
        let fs = files(d.path(), 1, None);
        let b = FsyncBatcher::new(ThreadPoolIo::new(2));
        let rx = ask(&b, fs.clone());
        answered_ok(&rx);
        let s = b.stats();
        assert_eq!(
            (s.requests, s.rounds, s.syncfs_calls, s.fdatasync_calls),
            (1, 1, 0, 1)
        );
    }

    #[test]
    fn requests_queued_during_a_round_share_the_next_one() {
        let d = tempfile::tempdir().expect("dir");
        let fs = files(d.path(), 20, None);
        let b = FsyncBatcher::new(ThreadPoolIo::new(4));
        // Hold the batcher "running" so that all requests queue, then run them as the
        // leader of a round would.
        b.lock().running = true;
        let rxs: Vec<_> = fs.iter().map(|f| ask(&b, vec![f.clone()])).collect();
        assert_eq!(
            b.stats().requests,
            0,
            "nothing runs while a round is running"
        );
        b.drain();
        for rx in rxs {
            answered_ok(&rx);
        }
        let s = b.stats();
        assert_eq!((s.requests, s.rounds), (20, 1));
        if b.uses_syncfs() {
            assert_eq!((s.syncfs_calls, s.fdatasync_calls), (1, 0));
        } else {
            assert_eq!((s.syncfs_calls, s.fdatasync_calls), (0, 20));
        }
        assert!(!b.lock().running, "the drain released the batcher");
    }

    #[test]
    fn a_file_named_in_two_requests_is_synced_once() {
        let d = tempfile::tempdir().expect("dir");
        let fs = files(d.path(), 1, None);
        let b = FsyncBatcher::per_file(ThreadPoolIo::new(1));
        b.lock().running = true;
        let r1 = ask(&b, fs.clone());
        let r2 = ask(&b, fs.clone());
        b.drain();
        answered_ok(&r1);
        answered_ok(&r2);
        assert_eq!(b.stats().fdatasync_calls, 1);
    }

    #[test]
    fn a_failed_fsync_fails_exactly_the_requests_naming_that_file() {
        // Two "disks": the faulty one's fsyncs fail with EIO, the other's succeed.
        let d = tempfile::tempdir().expect("dir");
        let bad = DiskFaults::healthy();
        let good_files = files(&d.path().join("good"), 3, None);
        let bad_files = files(&d.path().join("bad"), 2, Some(bad.clone()));
        bad.fail_syncs(Some(5)); // EIO
        for b in [
            FsyncBatcher::new(ThreadPoolIo::new(2)),
            FsyncBatcher::per_file(ThreadPoolIo::new(2)),
        ] {
            b.lock().running = true;
            let ok: Vec<_> = good_files
                .iter()
                .map(|f| ask(&b, vec![f.clone()]))
                .collect();
            let mixed = ask(&b, vec![good_files[0].clone(), bad_files[0].clone()]);
            let failed = ask(&b, vec![bad_files[1].clone()]);
            b.drain();
            for rx in ok {
                answered_ok(&rx);
            }
            for rx in [mixed, failed] {
                let e = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("answered")
                    .expect_err("the faulty file's fsync failed");
                assert_eq!(e.raw_os_error(), Some(5), "{e}");
            }
        }
    }

    #[test]
    fn many_threads_asking_at_once_are_all_answered() {
        let d = tempfile::tempdir().expect("dir");
        let fs = files(d.path(), 16, None);
        let io = ThreadPoolIo::new(4);
        let b = FsyncBatcher::new(io.clone());
        let (tx, rx) = mpsc::channel();
        let threads: Vec<_> = fs
            .into_iter()
            .map(|f| {
                let (b, tx) = (b.clone(), tx.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let r = ask(&b, vec![f.clone()]).recv_timeout(Duration::from_secs(20));
                        let _ = tx.send(r.map(|x| x.is_ok()));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        drop(tx);
        let answers: Vec<_> = rx.iter().collect();
        assert_eq!(answers.len(), 16 * 20);
        assert!(answers.iter().all(|a| *a == Ok(true)), "{answers:?}");
        let s = b.stats();
        assert_eq!(s.requests, 16 * 20);
        assert!(s.rounds <= s.requests);
        // A round answers its requests before it releases the batcher, so the last
        // answer can arrive a moment before `running` clears.
        let t = std::time::Instant::now();
        while b.lock().running && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !b.lock().running,
            "the batcher still runs after its last answer"
        );
    }
}
