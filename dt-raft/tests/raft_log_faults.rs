//! Faults of `DefaultRaftLog`'s IO side: a panic in an IO job, an executor that refuses
//! work, and a tail truncation racing a write in flight. None may hang the log or let
//! it report more than it holds.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::entries;
use dt_raft::raft_log::{
    block_on, block_on_timeout, DefaultRaftLog, Executor, RaftLog, Task, ThreadPoolIo,
};
use dt_raft::store::faults::FileFaults;
use dt_raft::store::{StoreConfig, StoreError};

const LIMIT: Duration = Duration::from_secs(10);

/// A file layer whose writes panic while armed (a bug in IO code, simulated).
#[derive(Debug, Default)]
struct PanicOnWrite {
    armed: AtomicBool,
}

impl FileFaults for PanicOnWrite {
    fn before_write(&self, _path: &Path, _len: usize) -> Result<(), (usize, std::io::Error)> {
        if self.armed.load(Ordering::SeqCst) {
            panic!("injected panic in a log write");
        }
        Ok(())
    }
}

/// A panic inside the IO work of an append fails that append and every later one with
/// a typed error; nothing hangs. (Before: the write lane's `running` flag stayed set
/// after the panic, so the next append was queued to a lane that never ran again and
/// its future never resolved.)
#[test]
fn a_panic_in_an_io_job_fails_the_log_instead_of_hanging_it() {
    let d = tempfile::tempdir().unwrap();
    let hook = Arc::new(PanicOnWrite::default());
    let cfg = StoreConfig {
        faults: Some(hook.clone()),
        ..StoreConfig::small_for_tests()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 5, 1, 0))).unwrap(), 5);
    hook.armed.store(true, Ordering::SeqCst);
    let first = block_on_timeout(log.append(entries(6, 6, 1, 1)), LIMIT)
        .expect("the append whose write panicked hangs");
    assert!(first.is_err(), "{first:?}");
    hook.armed.store(false, Ordering::SeqCst);
    for i in 7..10 {
        match block_on_timeout(log.append(entries(i, i, 1, 1)), LIMIT) {
            None => panic!("append {i} after the panic hangs"),
            Some(Err(StoreError::Failed { cause })) => {
                assert!(cause.to_string().contains("panicked"), "{cause}");
            }
            Some(other) => panic!("append {i} after the panic: {other:?}"),
        }
    }
    assert_eq!(log.persisted_index(), 5);
    assert!(block_on_timeout(log.close(), LIMIT)
        .expect("close hangs")
        .is_err());
    drop(log);
    let log = DefaultRaftLog::new(
        d.path(),
        StoreConfig::small_for_tests(),
        ThreadPoolIo::new(1),
    );
    let (_, last) = block_on(log.init()).unwrap().unwrap();
    assert!(last >= 5);
}

/// An executor that refuses every task once told to (a shut-down pool).
struct Refusing {
    inner: Arc<ThreadPoolIo>,
    refuse: AtomicBool,
}

impl Executor for Refusing {
    fn execute(&self, task: Task) -> Result<(), Task> {
        if self.refuse.load(Ordering::SeqCst) {
            Err(task)
        } else {
            self.inner.execute(task)
        }
    }
}

/// An executor that refuses the log's IO work fails the waiting append and every later
/// one with a typed error. (Before: the refused write lane was only logged; the append
/// stayed queued forever.)
#[test]
fn a_refusing_executor_fails_the_log_instead_of_hanging_it() {
    let d = tempfile::tempdir().unwrap();
    let io = Arc::new(Refusing {
        inner: ThreadPoolIo::new(2),
        refuse: AtomicBool::new(false),
    });
    let log = DefaultRaftLog::new(d.path(), StoreConfig::small_for_tests(), io.clone());
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 5, 1, 0))).unwrap(), 5);
    io.refuse.store(true, Ordering::SeqCst);
    // The write lane lingers a few microseconds for a next append before it gives its
    // thread back; after that, the next append needs the executor.
    std::thread::sleep(Duration::from_millis(20));
    for i in 6..9 {
        match block_on_timeout(log.append(entries(i, i, 1, 1)), LIMIT) {
            None => panic!("append {i} on a refusing executor hangs"),
            Some(Err(StoreError::Failed { cause })) => {
                assert!(cause.to_string().contains("refused"), "{cause}");
            }
            Some(other) => panic!("append {i} on a refusing executor: {other:?}"),
        }
    }
    assert_eq!(log.persisted_index(), 5);
    // Reads of what is cached still work; the log reports the failure on close.
    assert!(block_on_timeout(log.close(), LIMIT)
        .expect("close hangs")
        .is_err());
}

/// An executor that accepts tasks and drops them unrun once told to (a pool shut down
/// with work in its queue).
struct Dropping {
    inner: Arc<ThreadPoolIo>,
    drop_all: AtomicBool,
}

impl Executor for Dropping {
    fn execute(&self, task: Task) -> Result<(), Task> {
        if self.drop_all.load(Ordering::SeqCst) {
            drop(task);
            Ok(())
        } else {
            self.inner.execute(task)
        }
    }
}

/// Jobs accepted but dropped unrun (the write lane's own runner included) fail the log
/// instead of leaving appends waiting forever.
#[test]
fn an_executor_dropping_jobs_fails_the_log_instead_of_hanging_it() {
    let d = tempfile::tempdir().unwrap();
    let io = Arc::new(Dropping {
        inner: ThreadPoolIo::new(2),
        drop_all: AtomicBool::new(false),
    });
    let log = DefaultRaftLog::new(d.path(), StoreConfig::small_for_tests(), io.clone());
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 5, 1, 0))).unwrap(), 5);
    io.drop_all.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    for i in 6..9 {
        match block_on_timeout(log.append(entries(i, i, 1, 1)), LIMIT) {
            None => panic!("append {i} on an executor dropping jobs hangs"),
            Some(Err(StoreError::Failed { .. })) => {}
            Some(other) => panic!("append {i} on an executor dropping jobs: {other:?}"),
        }
    }
    // A failed log answers everything at once (with its failure), also reads.
    let mut it = log.open_iterator();
    assert!(
        block_on_timeout(it.next(1, 5, 1 << 20), LIMIT).is_some(),
        "read hangs"
    );
    drop(it);
    assert!(block_on_timeout(log.close(), LIMIT)
        .expect("close hangs")
        .is_err());
}

/// An executor that holds tasks while `hold` is set, until `release`.
struct Gate {
    inner: Arc<ThreadPoolIo>,
    hold: AtomicBool,
    held: Mutex<Vec<Task>>,
}

impl Gate {
    fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
        for t in self.held.lock().unwrap().drain(..) {
            self.inner.execute(t).map_err(|_| ()).unwrap();
        }
    }
}

impl Executor for Gate {
    fn execute(&self, task: Task) -> Result<(), Task> {
        if self.hold.load(Ordering::SeqCst) {
            self.held.lock().unwrap().push(task);
            Ok(())
        } else {
            self.inner.execute(task)
        }
    }
}

/// A tail truncation while the write of the truncated entries is in flight (held by
/// the executor until after the truncation): when the write completes, the persisted
/// index stays below the truncation point, and the entries appended after it are the
/// ones that count.
#[test]
fn truncation_during_a_held_write_keeps_the_persisted_index_honest() {
    let d = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate {
        inner: ThreadPoolIo::new(2),
        hold: AtomicBool::new(false),
        held: Mutex::new(Vec::new()),
    });
    let cfg = StoreConfig {
        sync_force: false,
        ..StoreConfig::small_for_tests()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, gate.clone());
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 10, 1, 0))).unwrap(), 10);
    log.set_commit_index(10);
    gate.hold.store(true, Ordering::SeqCst);
    let f = log.append(entries(11, 30, 1, 1));
    block_on(log.truncate_tail(15)).unwrap();
    assert!(log.persisted_index() <= 14);
    gate.release();
    let _ = block_on(f);
    assert!(log.persisted_index() <= 14, "{}", log.persisted_index());
    let new = entries(15, 40, 2, 1);
    assert_eq!(block_on(log.append(new.clone())).unwrap(), 40);
    block_on(log.close()).unwrap();
    drop(log);
    let log = DefaultRaftLog::new(
        d.path(),
        StoreConfig::small_for_tests(),
        ThreadPoolIo::new(1),
    );
    assert_eq!(block_on(log.init()).unwrap(), Some((2, 40)));
}

/// The same race without a gate, many times over: appends of uncommitted entries are
/// truncated while their write runs on an IO thread. With `sync_force` off the old
/// write lane read the written index under the store lock and published it after
/// releasing the lock, so a truncation in between was undone by a stale, too-high
/// persisted index. The owner of the log now is the only one moving it.
#[test]
fn truncation_racing_writes_never_leaves_a_stale_persisted_index() {
    let d = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        sync_force: false,
        log_file_size: 1 << 20,
        ..StoreConfig::small_for_tests()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 1, 1, 0))).unwrap(), 1);
    log.set_commit_index(1);
    for r in 0..2_000u32 {
        let term = r + 1;
        // Entry 1 (term 1) stays; each round appends 2..=3 in a new term after it.
        let f = log.append(entries(2, 3, term + 1, 1));
        // Let the write get going on its IO thread, for a varying while (0..400 us).
        let until = Instant::now() + Duration::from_micros((r * 7 % 400) as u64);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        block_on(log.truncate_tail(2)).unwrap();
        // The append resolves (with the persisted index at that time, or an error if
        // the truncation beat it); either way, what counts is the index after it.
        let _ = block_on(f);
        let p = log.persisted_index();
        assert!(
            p <= 1,
            "round {r}: persisted index {p} after truncating at 2"
        );
    }
    block_on(log.close()).unwrap();
}

/// Records which threads write files.
#[derive(Debug, Default)]
struct WriterThreads {
    seen: Mutex<Vec<(std::thread::ThreadId, std::path::PathBuf)>>,
}

impl FileFaults for WriterThreads {
    fn before_write(&self, path: &Path, _len: usize) -> Result<(), (usize, std::io::Error)> {
        self.seen
            .lock()
            .unwrap()
            .push((std::thread::current().id(), path.to_path_buf()));
        Ok(())
    }
}

/// The log's owner (the thread calling it) never writes a file itself: segment and
/// index files are created and allocated, entries written, the status file replaced,
/// all by IO jobs, while the owner only plans and records.
#[test]
fn the_owner_thread_writes_no_file() {
    let d = tempfile::tempdir().unwrap();
    let hook = Arc::new(WriterThreads::default());
    let cfg = StoreConfig {
        faults: Some(hook.clone()),
        ..StoreConfig::small_for_tests()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    let all = entries(1, 1200, 1, 0);
    for c in all.chunks(40) {
        let last = c.last().unwrap().index;
        assert_eq!(block_on(log.append(c.to_vec())).unwrap(), last);
        log.set_commit_index(last);
    }
    block_on(log.persist_term_vote(2, 1)).unwrap();
    block_on(log.close()).unwrap();
    let me = std::thread::current().id();
    let seen = hook.seen.lock().unwrap();
    let on_owner: Vec<_> = seen.iter().filter(|(t, _)| *t == me).collect();
    assert!(
        on_owner.is_empty(),
        "written on the owner thread: {on_owner:?}"
    );
    assert!(seen
        .iter()
        .any(|(_, p)| p.starts_with(d.path().join("idx"))));
    assert!(seen
        .iter()
        .any(|(_, p)| p.starts_with(d.path().join("log"))));
}

/// A status-file write that fails (its fsync returns EIO) fails the log: the term/vote
/// write reports it, and later appends are refused with it as the cause even after
/// the disk recovers. (Before: only the persist call failed; appends went on after a
/// failed fsync, whose dropped pages could hide a lost vote or anchor.)
#[test]
fn a_failed_status_write_fails_the_log() {
    use dt_raft::store::faults::{DiskFaults, EIO};
    let d = tempfile::tempdir().unwrap();
    let disk = DiskFaults::healthy();
    let cfg = StoreConfig {
        faults: Some(disk.clone()),
        ..StoreConfig::small_for_tests()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 5, 1, 0))).unwrap(), 5);
    disk.fail_syncs(Some(EIO));
    let e = block_on_timeout(log.persist_term_vote(3, 1), LIMIT)
        .expect("status write hangs")
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
    disk.fail_syncs(None);
    match block_on_timeout(log.append(entries(6, 6, 1, 1)), LIMIT) {
        Some(Err(StoreError::Failed { cause })) => assert_eq!(cause.raw_os_error(), Some(EIO)),
        other => panic!("append after a failed status write: {other:?}"),
    }
    assert_eq!(log.persisted_index(), 5);
}
