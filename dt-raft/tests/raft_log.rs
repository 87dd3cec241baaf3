//! The async `RaftLog` trait through `DefaultRaftLog`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::entries;
use dt_raft::raft_log::{block_on, DefaultRaftLog, Executor, RaftLog, Task, ThreadPoolIo};
use dt_raft::store::faults::FileFaults;
use dt_raft::store::{LogItem, StoreConfig, StoreError};

fn cfg() -> StoreConfig {
    StoreConfig::small_for_tests()
}

fn new_log(dir: &std::path::Path) -> DefaultRaftLog {
    DefaultRaftLog::new(dir, cfg(), ThreadPoolIo::new(2))
}

fn read_all(log: &dyn RaftLog, from: u64, to: u64) -> Vec<LogItem> {
    let mut it = log.open_iterator();
    let mut out = Vec::new();
    let mut i = from;
    while i <= to {
        let v = block_on(it.next(i, 17, 4000)).unwrap();
        assert!(!v.is_empty());
        i += v.len() as u64;
        out.extend(v);
    }
    out
}

#[test]
fn append_iterate_reopen() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    assert!(matches!(
        block_on(log.append(entries(1, 1, 1, 0))),
        Err(StoreError::Closed)
    ));
    assert_eq!(block_on(log.init()).unwrap(), Some((0, 0)));
    let all = entries(1, 400, 1, 0);
    for c in all.chunks(25) {
        let p = block_on(log.append(c.to_vec())).unwrap();
        assert_eq!(p, c.last().unwrap().index);
    }
    assert_eq!(log.persisted_index(), 400);
    assert_eq!(read_all(&log, 1, 400), all);
    log.set_commit_index(400);
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((1, 400)));
    // cold reads: from files via the IO pool
    assert_eq!(read_all(&log, 1, 400), all);
    assert_eq!(
        block_on(log.load_next_item_pos(400)).unwrap(),
        log.with_store(|s| Ok(s.next_pos())).unwrap()
    );
}

#[test]
fn group_commit_shares_fsyncs() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    let all = entries(1, 500, 1, 0);
    // issue every append before awaiting any: they queue behind the running sync
    let futs: Vec<_> = all.chunks(1).map(|c| log.append(c.to_vec())).collect();
    for f in futs {
        block_on(f).unwrap();
    }
    assert_eq!(log.persisted_index(), 500);
    let syncs = log.sync_count();
    assert!(syncs < 500, "{syncs} fsyncs for 500 appends");
    eprintln!("500 appends, {syncs} group fsyncs");
    // close releases the directory lock at once; a dropped log releases it when the
    // last IO job holding it ends
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((1, 500)));
}

#[test]
fn truncate_while_writes_are_in_flight() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 100, 1, 0))).unwrap();
    log.set_commit_index(50);
    let f1 = log.append(entries(101, 200, 1, 1));
    block_on(log.truncate_tail(150)).unwrap();
    assert!(log.persisted_index() <= 149);
    assert!(block_on(log.truncate_tail(40)).is_err());
    let new = entries(150, 220, 2, 1);
    let f2 = log.append(new.clone());
    block_on(f1).unwrap();
    block_on(f2).unwrap();
    assert_eq!(log.persisted_index(), 220);
    let got = read_all(&log, 1, 220);
    assert_eq!(&got[149..], &new[..]);
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((2, 220)));
    assert_eq!(&read_all(&log, 1, 220)[149..], &new[..]);
}

#[test]
fn match_pos_and_install() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 100, 1, 0))).unwrap();
    block_on(log.append(entries(101, 150, 2, 1))).unwrap();
    assert_eq!(
        block_on(log.try_find_match_pos(2, 120)).unwrap(),
        Some((2, 120))
    );
    assert_eq!(
        block_on(log.try_find_match_pos(1, 120)).unwrap(),
        Some((1, 100))
    );
    assert_eq!(
        block_on(log.try_find_match_pos(3, 999)).unwrap(),
        Some((2, 150))
    );
    block_on(log.begin_install()).unwrap();
    assert!(block_on(log.append(entries(151, 151, 2, 2))).is_err());
    block_on(log.finish_install(1001, 50_000)).unwrap();
    log.with_store(|s| {
        s.set_prev_term_after_install(3);
        Ok(())
    })
    .unwrap();
    block_on(log.append(entries(1001, 1010, 3, 3))).unwrap();
    log.set_commit_index(1010);
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((3, 1010)));
    assert_eq!(read_all(&log, 1001, 1010), entries(1001, 1010, 3, 3));
}

/// `finish_install_with_term`: a restart with nothing written since the install finds
/// an empty log after the snapshot's entry (not "install required"), whose search
/// counts that entry, and which takes the next entry at once.
#[test]
fn an_install_with_its_term_restarts_as_an_empty_log_after_the_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 10, 1, 0))).unwrap();
    block_on(log.begin_install()).unwrap();
    block_on(log.finish_install_with_term(1001, 50_000, 3)).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((3, 1000)));
    assert!(!log.persisted_state().unwrap().install_snapshot);
    assert_eq!(
        block_on(log.try_find_match_pos(4, 1005)).unwrap(),
        Some((3, 1000))
    );
    assert_eq!(block_on(log.try_find_match_pos(2, 1005)).unwrap(), None);
    block_on(log.append(entries(1001, 1003, 4, 3))).unwrap();
    log.set_commit_index(1003);
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((4, 1003)));
    assert_eq!(read_all(&log, 1001, 1003), entries(1001, 1003, 4, 3));
}

#[test]
fn delete_after_mark_with_delay() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 600, 1, 0))).unwrap();
    log.set_commit_index(600);
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    // an open reader of the first segment delays its deletion
    log.mark_truncate_by_index(300, Duration::ZERO);
    let segs = log.with_store(|s| Ok(s.segment_count())).unwrap();
    let held = log
        .with_store(|s| Ok(s.file_queue().get(0).unwrap()))
        .unwrap();
    assert_eq!(block_on(log.delete_expired()).unwrap(), 0);
    drop(held);
    let n = block_on(log.delete_expired()).unwrap();
    assert!(n > 0);
    assert_eq!(log.with_store(|s| Ok(s.segment_count())).unwrap(), segs - n);
    let first = log.with_store(|s| Ok(s.first_index())).unwrap();
    assert!(first > 1 && first <= 300);
    let mut it = log.open_iterator();
    assert!(block_on(it.next(1, 1, 100)).is_err());
    assert_eq!(block_on(it.next(first, 1, 100)).unwrap()[0].index, first);
}

/// A user-supplied executor: one new thread per job.
struct ThreadPerJob;

impl Executor for ThreadPerJob {
    fn execute(&self, job: Task) -> Result<(), Task> {
        std::thread::spawn(job);
        Ok(())
    }
}

#[test]
fn works_with_a_custom_executor() {
    let d = tempfile::tempdir().unwrap();
    let log = DefaultRaftLog::new(d.path(), cfg(), Arc::new(ThreadPerJob));
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 30, 1, 0))).unwrap();
    assert_eq!(read_all(&log, 1, 30), entries(1, 30, 1, 0));
    block_on(log.close()).unwrap();
}

#[test]
fn persist_status_is_durable() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    block_on(log.persist_status(|st| {
        st.current_term = 9;
        st.voted_for = 3;
    }))
    .unwrap();
    let sm = dt_raft::store::StatusManager::load(&d.path().join("raft.status"), true).unwrap();
    assert_eq!((sm.status.current_term, sm.status.voted_for), (9, 3));
}

/// A write that fails (the next segment cannot be created) fails the append, and the
/// log refuses further work instead of carrying on with a hole.
#[test]
fn write_failure_fails_the_log() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 5, 1, 0))).unwrap();
    // open files keep working, but no new segment can be created (works as root too)
    std::fs::rename(d.path().join("log"), d.path().join("log.moved")).unwrap();
    std::fs::write(d.path().join("log"), b"not a directory").unwrap();
    let big: Vec<_> = (6..200).map(|i| common::entry(i, 1, 1)).collect();
    assert!(block_on(log.append(big)).is_err());
    // The later append is refused with the first failure as its cause: the
    // operation, the path and the OS error, not a string.
    match block_on(log.append(entries(200, 200, 1, 1))) {
        Err(StoreError::Failed { cause }) => match &*cause {
            StoreError::Io { op, path, .. } => {
                assert_eq!(*op, "create");
                assert!(path.starts_with(d.path().join("log")), "{}", path.display());
                assert!(cause.raw_os_error().is_some(), "{cause}");
            }
            other => panic!("cause is not the OS error: {other:?}"),
        },
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn sync_force_off_acknowledges_written_entries() {
    let d = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        sync_force: false,
        ..cfg()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(1));
    block_on(log.init()).unwrap();
    assert_eq!(block_on(log.append(entries(1, 50, 1, 0))).unwrap(), 50);
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((1, 50)));
}

/// Appends (with occasional uncommitted-tail truncations) race with reads in flight on
/// the IO threads (issued, as Raft's replication does, from the log's own thread, and
/// awaited later): every entry a read gets is one that was appended at that index, and
/// entries at or below the commit index never change.
#[test]
fn concurrent_appends_truncations_and_reads() {
    concurrent_appends_truncations_and_reads_with(cfg());
}

/// The same with the segment zero-filled ahead of the writes in small steps, so that
/// prefills run beside appends, truncations, reads and deletions all along.
#[test]
fn concurrent_appends_truncations_and_reads_with_prefill() {
    concurrent_appends_truncations_and_reads_with(StoreConfig {
        prefill_bytes: 128 * 1024,
        ..cfg()
    });
}

fn concurrent_appends_truncations_and_reads_with(cfg: StoreConfig) {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};
    type ReadFut<'a> =
        Pin<Box<dyn Future<Output = (u64, u64, Result<Vec<LogItem>, StoreError>)> + 'a>>;
    let d = tempfile::tempdir().unwrap();
    let log = DefaultRaftLog::new(d.path(), cfg.clone(), ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    let mut committed = 0u64;
    let mut reads_in_flight: VecDeque<ReadFut<'_>> = VecDeque::new();
    let mut reads = 0u64;
    let check = |(from, c, r): (u64, u64, Result<Vec<LogItem>, StoreError>)| {
        // committed entries never change: reading them must succeed, unless their
        // segment was deleted meanwhile (the test uses a zero delay)
        let v = match r {
            Ok(v) => v,
            Err(StoreError::NotFound { .. }) => return false,
            Err(e) => panic!("reading {from}..: {e}"),
        };
        assert_eq!(v[0].index, from);
        for e in v {
            assert!(e.index <= c);
            assert_eq!(e.body, common::entry(e.index, e.term, e.prev_log_term).body);
        }
        true
    };
    let mut last = 0u64;
    let mut term = 1u32;
    let mut prev = 0u32;
    let mut expected: Vec<LogItem> = Vec::new();
    for round in 0..300u64 {
        let n = 1 + round % 23;
        let items = entries(last + 1, last + n, term, prev);
        expected.extend(items.iter().cloned());
        prev = term;
        let f = log.append(items);
        last += n;
        if committed > 0 {
            let first = log.with_store(|s| Ok(s.first_index())).unwrap();
            if committed >= first {
                let from = first + (round * 7919) % (committed - first + 1);
                let c = committed;
                let cnt = (c - from + 1).min(50) as usize;
                let log = &log;
                let mut rf: ReadFut<'_> = Box::pin(async move {
                    let mut it = log.open_iterator();
                    (from, c, it.next(from, cnt, 1 << 20).await)
                });
                // Start it (the read goes to an IO thread); it is awaited later.
                match rf.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    std::task::Poll::Ready(r) => reads += check(r) as u64,
                    std::task::Poll::Pending => reads_in_flight.push_back(rf),
                }
            }
        }
        while reads_in_flight.len() > 3 {
            reads += check(block_on(reads_in_flight.pop_front().unwrap())) as u64;
        }
        if round % 7 == 3 && last > committed + 5 {
            let at = last - 3;
            block_on(log.truncate_tail(at)).unwrap();
            assert!(log.persisted_index() < at);
            expected.truncate(at as usize - 1);
            prev = expected.last().unwrap().term;
            last = at - 1;
            term += 1;
        }
        if round % 11 == 0 {
            // match search against the expected log, while writes are in flight
            let s_index = last.saturating_sub(round % 40).max(1);
            let s_term = expected[s_index as usize - 1].term;
            let got = block_on(log.try_find_match_pos(s_term, s_index)).unwrap();
            assert_eq!(got, Some((s_term, s_index)));
            log.mark_truncate_by_index(committed / 2, Duration::ZERO);
            let _ = block_on(log.delete_expired());
        }
        let _ = block_on(f);
        if round % 5 == 0 {
            let c = last.saturating_sub(10).max(committed);
            log.set_commit_index(c);
            committed = c.min(log.persisted_index());
        }
    }
    while let Some(rf) = reads_in_flight.pop_front() {
        reads += check(block_on(rf)) as u64;
    }
    assert!(reads > 0);
    drop(reads_in_flight);
    block_on(log.close()).unwrap();
    drop(log);
    let log2 = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    let (t, l) = block_on(log2.init()).unwrap().unwrap();
    assert_eq!(
        (t, l),
        (expected.last().unwrap().term, expected.len() as u64)
    );
    let first = log2.with_store(|s| Ok(s.first_index())).unwrap();
    assert_eq!(
        read_all(&log2, first, l),
        expected[first as usize - 1..].to_vec()
    );
}

/// The snapshot cycle as Raft drives it: stream a state machine into a snapshot on an
/// IO thread, keep the newest two, let the log delete what the oldest kept one covers,
/// and read the newest back.
#[test]
fn snapshot_save_retain_and_log_deletion() {
    use dt_raft::raft_log::run_blocking;
    use dt_raft::store::snapshot::{SnapshotDir, SnapshotMeta};
    let d = tempfile::tempdir().unwrap();
    let io = ThreadPoolIo::new(2);
    let log = DefaultRaftLog::new(d.path(), cfg(), io.clone());
    block_on(log.init()).unwrap();
    let snaps = Arc::new(SnapshotDir::new(&d.path().join("snapshot"), true));
    let mut last = 0;
    for k in 1..=3u64 {
        let prev = if last == 0 { 0 } else { 1 };
        block_on(log.append(entries(last + 1, last + 200, 1, prev))).unwrap();
        last += 200;
        log.set_commit_index(last);
        // an empty append runs the write lane once more: it flushes the index
        block_on(log.append(Vec::new())).unwrap();
        // the "state machine": k × 10 000 bytes
        let sd = snaps.clone();
        let info = block_on(run_blocking(&*io, move || {
            let mut w = sd.create(4096)?;
            for chunk in 0..k * 10 {
                w.write(&vec![chunk as u8; 1000])?;
            }
            w.finish(SnapshotMeta {
                last_included_index: last,
                last_included_term: 1,
                members: vec![1],
                ..Default::default()
            })
        }))
        .unwrap();
        assert_eq!(info.meta.last_included_index, last);
        let oldest_kept = snaps.keep(2).unwrap().unwrap();
        log.mark_truncate_by_index(oldest_kept, Duration::ZERO);
        block_on(log.delete_expired()).unwrap();
        let first = log.with_store(|s| Ok(s.first_index())).unwrap();
        assert!(
            first <= oldest_kept + 1,
            "deleted past the oldest kept snapshot"
        );
        if k == 3 {
            assert!(first > 1, "old segments were deleted");
        }
    }
    assert_eq!(snaps.list().unwrap().len(), 2);
    let newest = snaps.latest_verified().unwrap().unwrap();
    assert_eq!(newest.meta.last_included_index, 600);
    assert_eq!(newest.verify().unwrap(), 30_000);
    block_on(log.close()).unwrap();
}

#[test]
fn index_flush_runs_beside_appends_and_moves_the_anchor() {
    // small_for_tests flushes the index every 32 committed entries; the flush and its
    // status-file write run as their own IO job, so appends are acknowledged after the
    // log fsync alone and the anchor still advances, only ever to synced entries.
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    let all = entries(1, 400, 1, 0);
    for c in all.chunks(20) {
        let last = c.last().unwrap().index;
        assert_eq!(block_on(log.append(c.to_vec())).unwrap(), last);
        log.set_commit_index(last);
    }
    let persisted_anchor = || {
        log.with_store(|s| Ok(s.status().persisted().persist_idx_index))
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while persisted_anchor() < 300 && std::time::Instant::now() < deadline {
        // Appends keep driving the lane, which starts flushes when they are due.
        std::thread::sleep(Duration::from_millis(5));
        let next = log.with_store(|s| Ok(s.last_index())).unwrap() + 1;
        block_on(log.append(entries(next, next, 1, 1))).unwrap();
        log.set_commit_index(next);
    }
    let anchor = persisted_anchor();
    assert!(anchor >= 300, "anchor stuck at {anchor}");
    assert!(anchor <= log.persisted_index());
    // The status file on disk says the same, and a reopen recovers from it.
    let on_disk = dt_raft::store::StatusManager::load(&d.path().join("raft.status"), true)
        .unwrap()
        .status
        .persist_idx_index;
    assert!(on_disk >= 300, "status file anchor {on_disk}");
    let last = log.persisted_index();
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((1, last)));
    let mut back = read_all(&log, 1, 400);
    back.truncate(400);
    assert!(back == all, "entries 1..=400 differ after reopen");
}

#[test]
fn dropping_reads_in_flight_cancels_them_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    block_on(log.init()).unwrap();
    let e = entries(1, 400, 1, 0);
    for c in e.chunks(50) {
        block_on(log.append(c.to_vec())).unwrap();
    }
    log.set_commit_index(400);
    // Reads and match-position searches abandoned at once, many times over, while the
    // IO threads are still working on them.
    for k in 0..200u64 {
        let mut it = log.open_iterator();
        let f = it.next(1 + k % 300, 64, 1 << 20);
        drop(f);
        drop(it);
        drop(log.try_find_match_pos(1, 1 + k));
    }
    // The log is intact and fully usable afterwards.
    assert_eq!(read_all(&log, 1, 400), e);
    block_on(log.append(entries(401, 401, 1, 1))).unwrap();
    block_on(log.close()).unwrap();
    drop(log);
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((1, 401)));
    assert_eq!(read_all(&log, 395, 401).len(), 7);
}

/// Term and vote are part of the `RaftLog` contract: Raft, holding a `dyn RaftLog`,
/// persists them and reads them back at init, with no other file. (The trait had no
/// way to do either before; only `DefaultRaftLog::persist_status` existed.)
#[test]
fn term_and_vote_through_the_trait() {
    use dt_raft::store::PersistedState;
    let d = tempfile::tempdir().unwrap();
    {
        let log: Box<dyn RaftLog> = Box::new(new_log(d.path()));
        assert!(log.persisted_state().is_err(), "no state before init");
        block_on(log.init()).unwrap();
        assert_eq!(log.persisted_state().unwrap(), PersistedState::default());
        assert_eq!(log.persisted_state().unwrap().first_valid_index, 1);
        block_on(log.persist_term_vote(7, 2)).unwrap();
        let st = log.persisted_state().unwrap();
        assert_eq!((st.current_term, st.voted_for), (7, 2));
        block_on(log.append(entries(1, 10, 7, 0))).unwrap();
        log.set_commit_index(10);
        block_on(log.persist_term_vote(8, 0)).unwrap();
        block_on(log.close()).unwrap();
    }
    let log: Box<dyn RaftLog> = Box::new(new_log(d.path()));
    assert_eq!(block_on(log.init()).unwrap(), Some((7, 10)));
    let st = log.persisted_state().unwrap();
    assert_eq!((st.current_term, st.voted_for), (8, 0));
    assert_eq!(st.commit_index, 10);
    assert!(!st.install_snapshot);
}

/// The write lane of `DefaultRaftLog` on a disk that fills up: the append that hits
/// ENOSPC fails with the OS error as its cause, later appends fail too even after space
/// is freed, and a reopen holds every acknowledged entry.
#[test]
fn full_disk_fails_the_lane_with_its_cause() {
    use dt_raft::store::faults::{DiskFaults, ENOSPC};
    let d = tempfile::tempdir().unwrap();
    let disk = DiskFaults::with_space(20_000);
    let mut c = StoreConfig::small_for_tests();
    c.faults = Some(disk.clone());
    let log = DefaultRaftLog::new(d.path(), c, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    let mut acked = 0;
    let mut err = None;
    for i in 1..1000u64 {
        match block_on(log.append(entries(i, i, 1, if i == 1 { 0 } else { 1 }))) {
            Ok(p) => acked = p,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("the disk never filled");
    assert_eq!(e.raw_os_error(), Some(ENOSPC), "{e}");
    disk.set_space(u64::MAX);
    let next = acked + 2;
    match block_on(log.append(entries(next, next, 1, 1))) {
        Err(StoreError::Failed { cause }) => assert_eq!(cause.raw_os_error(), Some(ENOSPC)),
        other => panic!("{other:?}"),
    }
    assert!(block_on(log.close()).is_err());
    drop(log);
    let log = new_log(d.path());
    let (_, last) = block_on(log.init()).unwrap().unwrap();
    assert!(
        last >= acked,
        "acknowledged {acked}, reopened log ends at {last}"
    );
    assert_eq!(read_all(&log, 1, acked), entries(1, acked, 1, 0));
}

/// A file layer that records which thread ran each read and write, and of which file.
#[derive(Debug, Default)]
struct ReadThreads {
    reads: Mutex<Vec<(ThreadId, PathBuf)>>,
    writes: Mutex<Vec<(ThreadId, PathBuf)>>,
}

impl FileFaults for ReadThreads {
    fn before_read(&self, path: &Path, _len: usize) -> std::io::Result<()> {
        let me = std::thread::current().id();
        self.reads.lock().unwrap().push((me, path.to_path_buf()));
        Ok(())
    }

    fn before_write(&self, path: &Path, _len: usize) -> Result<(), (usize, std::io::Error)> {
        let me = std::thread::current().id();
        self.writes.lock().unwrap().push((me, path.to_path_buf()));
        Ok(())
    }
}

/// A tail truncation whose entry before the cut is neither in the tail cache nor (its
/// position) in the index cache reads that entry's header from its segment, and its
/// position from the index file: both reads run on IO threads, never on the thread that
/// owns the log (here the test's thread, which polls every future). The cuts are still
/// right: at a segment start the next entry continues the previous segment, and the
/// last term is the one read from disk (the next append's chain check proves it).
/// The log's other reads of old entries (iteration, match-position search, the
/// position after an entry) and every write (segments, the index flush, the status
/// file) ran on IO threads too.
#[test]
fn no_file_io_on_the_owner_thread_truncation_included() {
    let d = tempfile::tempdir().unwrap();
    let hook = Arc::new(ReadThreads::default());
    let cfg = StoreConfig {
        faults: Some(hook.clone()),
        ..cfg()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 200, 1, 0))).unwrap();
    block_on(log.append(entries(201, 300, 2, 1))).unwrap();
    log.set_commit_index(200);
    // The next write starts the index flush of entries ..=200 (they leave the index
    // cache); wait until it is done.
    block_on(log.append(entries(301, 301, 2, 2))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.with_store(|s| Ok(s.persist_idx_index())).unwrap() < 200 {
        assert!(Instant::now() < deadline, "the index flush never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
    // An entry starting a segment, well before the tail cache.
    let k = (210..=280u64)
        .find(|&k| {
            log.with_store(|s| s.index_pos(k))
                .unwrap()
                .is_multiple_of(16384)
        })
        .expect("some entry in 210..=280 starts a segment");
    let end_prev = log.with_store(|s| s.next_item_pos(k - 1)).unwrap();
    // (These blocking lookups read on this thread; the log's own do not.)
    let pos_101 = log.with_store(|s| s.index_pos(101)).unwrap();
    assert!(log
        .with_store(|s| Ok(s.cached_term(k - 1)))
        .unwrap()
        .is_none());

    let owner = std::thread::current().id();
    hook.reads.lock().unwrap().clear();
    block_on(log.truncate_tail(k)).unwrap();
    let (last, next_pos, last_term) = log
        .with_store(|s| Ok((s.last_index(), s.next_pos(), s.last_term())))
        .unwrap();
    assert_eq!((last, next_pos, last_term), (k - 1, end_prev, 2));
    block_on(log.truncate_tail(201)).unwrap();
    let (last, last_term) = log
        .with_store(|s| Ok((s.last_index(), s.last_term())))
        .unwrap();
    assert_eq!((last, last_term), (200, 1));
    // The other reads of old entries go the same way: iteration, the match-position
    // search, the position after an entry.
    assert!(read_all(&log, 1, 40)[..40] == entries(1, 40, 1, 0)[..]);
    assert_eq!(
        block_on(log.try_find_match_pos(1, 150)).unwrap(),
        Some((1, 150))
    );
    assert_eq!(block_on(log.load_next_item_pos(100)).unwrap(), pos_101);

    let reads = std::mem::take(&mut *hook.reads.lock().unwrap());
    let under = |dir: &str| {
        reads
            .iter()
            .any(|(_, p)| p.parent().unwrap().ends_with(dir))
    };
    assert!(under("log"), "no segment read: {reads:?}");
    assert!(under("idx"), "no index-file read: {reads:?}");
    for (t, p) in &reads {
        assert_ne!(
            *t,
            owner,
            "{} was read on the log's own thread",
            p.display()
        );
    }
    // Entry 200 has term 1 (read from disk): a new term continues it.
    let new = entries(201, 230, 3, 1);
    assert_eq!(block_on(log.append(new.clone())).unwrap(), 230);
    block_on(log.close()).unwrap();
    drop(log);
    let writes = std::mem::take(&mut *hook.writes.lock().unwrap());
    assert!(
        writes
            .iter()
            .any(|(_, p)| p.parent().unwrap().ends_with("idx")),
        "no index-file write: {writes:?}"
    );
    for (t, p) in &writes {
        assert_ne!(
            *t,
            owner,
            "{} was written on the log's own thread",
            p.display()
        );
    }
    let log = new_log(d.path());
    assert_eq!(block_on(log.init()).unwrap(), Some((3, 230)));
    assert_eq!(read_all(&log, 201, 230), new);
}

/// With prefilling on, once a log has written some, the blocks past its appends are
/// allocated (zeros written and fsynced) soon after a write; with it off the segment
/// stays sparse there.
#[test]
fn prefill_allocates_the_segment_ahead_of_the_appends() {
    use std::os::unix::fs::MetadataExt;
    /// (bytes of log data, bytes allocated to the segment)
    fn after_appends(prefill: u64) -> (u64, u64) {
        let d = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            log_file_size: 4 << 20,
            prefill_bytes: prefill,
            ..cfg()
        };
        let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
        block_on(log.init()).unwrap();
        for i in 0..10u64 {
            let from = i * 100 + 1;
            block_on(log.append(entries(from, from + 99, 1, u32::from(i > 0)))).unwrap();
        }
        let end = log.with_store(|s| Ok(s.next_pos())).unwrap();
        let seg = d.path().join("log").join("00000000000000000000");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut blocks = 0;
        while Instant::now() < deadline {
            blocks = std::fs::metadata(&seg).unwrap().blocks() * 512;
            if blocks >= end + prefill {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            // Let the owner apply the prefill's result (and start the next).
            let _ = log.persisted_index();
        }
        block_on(log.append(entries(1001, 1010, 1, 1))).unwrap();
        assert_eq!(read_all(&log, 1, 1010), entries(1, 1010, 1, 0));
        block_on(log.close()).unwrap();
        (end, blocks)
    }
    let (end, blocks) = after_appends(128 * 1024);
    assert!(
        end > 128 * 1024,
        "the test writes enough to start prefilling: {end}"
    );
    assert!(
        blocks >= end + 64 * 1024,
        "{blocks} allocated for {end} written"
    );
    let (end, blocks) = after_appends(0);
    assert!(
        blocks < end + 64 * 1024,
        "{blocks} allocated for {end} written"
    );
}

/// A closed loop of single appends while prefills come and go: none waits forever
/// behind a prefill.
#[test]
fn closed_loop_appends_never_wait_forever_behind_a_prefill() {
    let d = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        log_file_size: 1 << 20,
        prefill_bytes: 128 * 1024,
        ..cfg()
    };
    let log = DefaultRaftLog::new(d.path(), cfg, ThreadPoolIo::new(2));
    block_on(log.init()).unwrap();
    for i in 1..=3000u64 {
        let r = dt_raft::raft_log::block_on_timeout(
            log.append(entries(i, i, 1, u32::from(i > 1))),
            Duration::from_secs(5),
        );
        assert_eq!(r.expect("append hung").unwrap(), i);
    }
    block_on(log.close()).unwrap();
}

/// The concurrency test with the appends' fsyncs going through a group commit shared
/// with nobody else (every round is this log's alone).
#[test]
fn concurrent_appends_truncations_and_reads_through_an_fsync_batcher() {
    use dt_raft::store::fsync_batcher::FsyncBatcher;
    concurrent_appends_truncations_and_reads_with(StoreConfig {
        fsync_batcher: Some(FsyncBatcher::new(ThreadPoolIo::new(1))),
        ..cfg()
    });
}

/// Logs of several groups whose appends share one fsync group commit (as a
/// RaftServer's groups do): every acknowledged entry is there after a reopen, the
/// rounds served several logs at once, and with syncing turned on but
/// `sync_force` off the follow-up fsyncs go through it too.
#[test]
fn logs_sharing_an_fsync_batcher_keep_every_acknowledged_entry() {
    use dt_raft::store::fsync_batcher::FsyncBatcher;
    let d = tempfile::tempdir().unwrap();
    let io = ThreadPoolIo::new(4);
    let batcher = FsyncBatcher::new(io.clone());
    const LOGS: usize = 6;
    const N: u64 = 300;
    let threads: Vec<_> = (0..LOGS)
        .map(|g| {
            let dir = d.path().join(format!("g{g}"));
            let c = StoreConfig {
                fsync_batcher: Some(batcher.clone()),
                sync_force: g % 3 != 0,
                ..cfg()
            };
            let io = io.clone();
            std::thread::spawn(move || {
                let log = DefaultRaftLog::new(&dir, c, io);
                block_on(log.init()).unwrap();
                let all = entries(1, N, 1, 0);
                // Appends in flight together, as Raft issues them.
                let futs: Vec<_> = all.chunks(3).map(|c| log.append(c.to_vec())).collect();
                let mut last = 0;
                for f in futs {
                    last = block_on(f).unwrap();
                }
                assert_eq!(last, N);
                log.set_commit_index(N);
                block_on(log.close()).unwrap();
                dir
            })
        })
        .collect();
    let dirs: Vec<PathBuf> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let s = batcher.stats();
    assert!(s.requests >= LOGS as u64, "{s:?}");
    assert!(s.rounds <= s.requests, "{s:?}");
    eprintln!("{LOGS} logs sharing a batcher: {s:?}");
    for dir in dirs {
        let log = new_log(&dir);
        assert_eq!(block_on(log.init()).unwrap(), Some((1, N)));
        assert_eq!(read_all(&log, 1, N), entries(1, N, 1, 0));
    }
}

/// A failed fsync in a shared round fails the log whose file it was, with the OS
/// error as the cause; a log on a healthy disk sharing the batcher goes on.
#[test]
fn a_failed_batched_fsync_fails_only_its_own_log() {
    use dt_raft::store::faults::DiskFaults;
    use dt_raft::store::fsync_batcher::FsyncBatcher;
    const EIO: i32 = 5;
    let d = tempfile::tempdir().unwrap();
    let io = ThreadPoolIo::new(2);
    let batcher = FsyncBatcher::new(io.clone());
    let sick = DiskFaults::healthy();
    let bad_log = DefaultRaftLog::new(
        &d.path().join("bad"),
        StoreConfig {
            faults: Some(sick.clone()),
            fsync_batcher: Some(batcher.clone()),
            ..cfg()
        },
        io.clone(),
    );
    let good_log = DefaultRaftLog::new(
        &d.path().join("good"),
        StoreConfig {
            fsync_batcher: Some(batcher.clone()),
            ..cfg()
        },
        io,
    );
    block_on(bad_log.init()).unwrap();
    block_on(good_log.init()).unwrap();
    block_on(bad_log.append(entries(1, 5, 1, 0))).unwrap();
    sick.fail_syncs(Some(EIO));
    let bad = bad_log.append(entries(6, 9, 1, 1));
    let good = good_log.append(entries(1, 9, 1, 0));
    let e = block_on(bad).expect_err("its fsync failed");
    assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
    assert_eq!(block_on(good).unwrap(), 9);
    assert_eq!(bad_log.persisted_index(), 5);
    match block_on(bad_log.append(entries(10, 10, 1, 1))) {
        Err(StoreError::Failed { cause }) => assert_eq!(cause.raw_os_error(), Some(EIO)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        block_on(good_log.append(entries(10, 12, 1, 1))).unwrap(),
        12
    );
}

#[test]
fn spare_items_hands_back_an_appended_list_for_the_next_append() {
    let d = tempfile::tempdir().unwrap();
    let log = new_log(d.path());
    // the store is opened by init: before it, a new list
    assert_eq!(log.spare_items().capacity(), 0);
    block_on(log.init()).unwrap();
    let e = entries(1, 9, 1, 0);
    let mut list = log.spare_items();
    list.extend_from_slice(&e[..5]);
    assert_eq!(block_on(log.append(list)).unwrap(), 5);
    let mut list = log.spare_items();
    assert!(list.is_empty());
    assert!(list.capacity() >= 5, "the appended list, its capacity kept");
    list.extend_from_slice(&e[5..]);
    assert_eq!(block_on(log.append(list)).unwrap(), 9);
    assert_eq!(read_all(&log, 1, 9), e);
}

/// Holds every fsync of a log segment while closed; counts the fsyncs that reached it.
#[derive(Debug, Default)]
struct SyncGate {
    closed: Mutex<bool>,
    opened: std::sync::Condvar,
    entered: std::sync::atomic::AtomicUsize,
    /// The next segment fsync to reach the gate fails (after the gate opens).
    fail_next: std::sync::atomic::AtomicBool,
}

impl SyncGate {
    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    /// Waits until `n` segment fsyncs have reached the gate.
    fn wait_entered(&self, n: usize) {
        wait_until("no fsync reached the gate", || {
            self.entered.load(std::sync::atomic::Ordering::SeqCst) >= n
        });
    }
}

impl FileFaults for SyncGate {
    fn before_sync(&self, path: &Path) -> std::io::Result<()> {
        if path.parent().and_then(|p| p.file_name()) == Some("log".as_ref()) {
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
            if self
                .fail_next
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(std::io::Error::other("injected fsync failure"));
            }
        }
        Ok(())
    }
}

/// Polls `done` for up to 10 s; fails with `what` if it never holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Closes `log`, reopens its directory with `reopen` and checks that it holds entries
/// 1..=`last` of term 1 (as `entries(1, last, 1, 0)` wrote them).
fn assert_reopens_with(log: DefaultRaftLog, reopen: impl FnOnce() -> DefaultRaftLog, last: u64) {
    block_on(log.close()).unwrap();
    drop(log);
    let log = reopen();
    assert_eq!(block_on(log.init()).unwrap(), Some((1, last)));
    assert_eq!(read_all(&log, 1, last), entries(1, last, 1, 0));
}

fn gated_log(dir: &Path, log_file_size: u64, sync_force: bool) -> (DefaultRaftLog, Arc<SyncGate>) {
    let gate = Arc::new(SyncGate::default());
    let mut c = cfg();
    c.log_file_size = log_file_size;
    c.sync_force = sync_force;
    c.faults = Some(gate.clone());
    (DefaultRaftLog::new(dir, c, ThreadPoolIo::new(2)), gate)
}

/// [`gated_log`], opened, with entries 1..=10 written (the gate open; acknowledged once
/// fsynced with `sync_force`, once written without).
fn gated_log_with_ten(
    dir: &Path,
    log_file_size: u64,
    sync_force: bool,
) -> (DefaultRaftLog, Arc<SyncGate>) {
    let (log, gate) = gated_log(dir, log_file_size, sync_force);
    block_on(log.init()).unwrap();
    block_on(log.append(entries(1, 10, 1, 0))).unwrap();
    (log, gate)
}

/// With `sync_force`, the next write job starts while the last one's fsync runs (two
/// in flight), and each append is acknowledged once its own job's fsync is done: the
/// second append's future is not answered while the first job's fsync is held, and
/// everything is on disk after a reopen.
#[test]
fn the_next_write_runs_while_the_last_fsync_does() {
    let d = tempfile::tempdir().unwrap();
    let (log, gate) = gated_log_with_ten(d.path(), 1 << 20, true);
    assert_eq!(log.writes_in_flight(), 0);
    gate.close();
    let before = gate.entered.load(std::sync::atomic::Ordering::SeqCst);
    let a = log.append(entries(11, 20, 1, 1));
    gate.wait_entered(before + 1);
    let b = log.append(entries(21, 30, 1, 1));
    assert_eq!(
        log.writes_in_flight(),
        2,
        "the second job waits for no result"
    );
    let c = log.append(entries(31, 40, 1, 1));
    assert_eq!(log.writes_in_flight(), 2, "at most two jobs in flight");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        log.persisted_index(),
        10,
        "nothing acknowledged past the held fsync"
    );
    gate.open();
    assert!(block_on(a).unwrap() >= 20);
    assert!(block_on(b).unwrap() >= 30);
    assert_eq!(block_on(c).unwrap(), 40);
    assert_eq!(log.persisted_index(), 40);
    assert_eq!(log.writes_in_flight(), 0);
    assert_reopens_with(log, || gated_log(d.path(), 1 << 20, true).0, 40);
}

/// A write that needs a segment the job in flight is creating waits for that job
/// (two jobs never create one segment), and both land.
#[test]
fn a_write_into_a_segment_being_created_waits_for_its_creator() {
    let d = tempfile::tempdir().unwrap();
    let (log, gate) = gated_log_with_ten(d.path(), 16 * 1024, true);
    let segments_before = std::fs::read_dir(d.path().join("log")).unwrap().count();
    gate.close();
    let before = gate.entered.load(std::sync::atomic::Ordering::SeqCst);
    // Far more than one 16 KiB segment: the job creates the next ones.
    let big = entries(11, 400, 1, 1);
    let a = log.append(big);
    gate.wait_entered(before + 1);
    let b = log.append(entries(401, 410, 1, 1));
    assert_eq!(log.writes_in_flight(), 1, "waits for the segment's creator");
    gate.open();
    block_on(a).unwrap();
    assert_eq!(block_on(b).unwrap(), 410);
    assert!(std::fs::read_dir(d.path().join("log")).unwrap().count() > segments_before);
    assert_reopens_with(log, || new_log(d.path()), 410);
}

/// With `sync_force` off, appends are acknowledged once written and the fsync follows
/// before the next write: one job in flight at most.
#[test]
fn without_sync_force_one_write_is_in_flight() {
    let d = tempfile::tempdir().unwrap();
    let (log, gate) = gated_log_with_ten(d.path(), 1 << 20, false);
    // Acknowledged once written: its fsync may still be running.
    wait_until("the first fsync never finished", || {
        log.writes_in_flight() == 0
    });
    gate.close();
    let before = gate.entered.load(std::sync::atomic::Ordering::SeqCst);
    let a = log.append(entries(11, 20, 1, 1));
    assert!(block_on(a).unwrap() >= 20, "acknowledged once written");
    gate.wait_entered(before + 1);
    let b = log.append(entries(21, 30, 1, 1));
    assert_eq!(
        log.writes_in_flight(),
        1,
        "the fsync in flight holds the next write"
    );
    gate.open();
    assert_eq!(block_on(b).unwrap(), 30);
    block_on(log.close()).unwrap();
}

/// When the first of two write jobs in flight fails its fsync, the second one's
/// fsync, though it succeeds, acknowledges nothing: the log fails, both appends get
/// the failure, and the persisted index stays where it was.
#[test]
fn a_write_after_a_failed_fsync_acknowledges_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (log, gate) = gated_log_with_ten(d.path(), 1 << 20, true);
    gate.close();
    gate.fail_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let before = gate.entered.load(std::sync::atomic::Ordering::SeqCst);
    let a = log.append(entries(11, 20, 1, 1));
    gate.wait_entered(before + 1);
    let b = log.append(entries(21, 30, 1, 1));
    assert_eq!(log.writes_in_flight(), 2);
    gate.open();
    assert!(matches!(block_on(a), Err(StoreError::Failed { .. })));
    assert!(matches!(block_on(b), Err(StoreError::Failed { .. })));
    wait_until("the second job never finished", || {
        log.writes_in_flight() == 0
    });
    assert_eq!(log.persisted_index(), 10);
}

/// Logs that share a write lane (the groups of one thread with an fsync batcher) keep
/// one write job each in flight: the other logs' jobs keep the lane busy. A log alone
/// on its lane again takes two.
#[test]
fn a_shared_write_lane_takes_one_job_per_log() {
    use dt_raft::store::fsync_batcher::FsyncBatcher;
    let d = tempfile::tempdir().unwrap();
    let io = ThreadPoolIo::new(2);
    let batcher = FsyncBatcher::new(io.clone());
    let gate = Arc::new(SyncGate::default());
    let c = StoreConfig {
        log_file_size: 1 << 20,
        fsync_batcher: Some(batcher.clone()),
        ..cfg()
    };
    let a = DefaultRaftLog::new(
        &d.path().join("a"),
        StoreConfig {
            faults: Some(gate.clone()),
            ..c.clone()
        },
        io.clone(),
    );
    let b = DefaultRaftLog::new(&d.path().join("b"), c, io.clone());
    for log in [&a, &b] {
        block_on(log.init()).unwrap();
        block_on(log.append(entries(1, 10, 1, 0))).unwrap();
    }
    let held_pair = |from: u64| {
        gate.close();
        let before = gate.entered.load(std::sync::atomic::Ordering::SeqCst);
        let f1 = a.append(entries(from, from + 9, 1, 1));
        gate.wait_entered(before + 1);
        let f2 = a.append(entries(from + 10, from + 19, 1, 1));
        let in_flight = a.writes_in_flight();
        gate.open();
        block_on(f1).unwrap();
        assert_eq!(block_on(f2).unwrap(), from + 19);
        in_flight
    };
    assert_eq!(held_pair(11), 1, "two logs on the lane");
    block_on(b.close()).unwrap();
    drop(b);
    assert_eq!(held_pair(31), 2, "alone on the lane again");
    block_on(a.close()).unwrap();
}
