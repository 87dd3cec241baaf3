//! Heap allocations per append of `DefaultRaftLog` in steady state (a closed loop of
//! one-entry appends, each written and fsynced before the next), counted for the whole
//! process by a counting global allocator: the owner's side (prepare, queue, wait,
//! completion) and the IO threads' (write job, reply). A regression guard: every
//! append with many groups is such a small write, and allocations there cost
//! malloc/free time on the dispatcher threads (see `raft_bench --groups 100`).
//!
//! The appends are paced (a pause before each) so that the count does not depend on
//! the machine's speed: the log's write lane lingers after a job only when the next one
//! followed closely, and a lane that went idle boxes its runner again at the next job.
//! Unpaced, a fast machine kept the lane running (4.24 allocations per append without
//! the fsync batcher) and a slow one did not (5.17, measured once in CI against a bound
//! of 5.0); paced, every append restarts the lane, a fixed count on any machine (a lane
//! descheduled past the pause only lowers it).

mod common;

use common::entries;
use dt_raft::raft_log::{block_on, DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::store::fsync_batcher::FsyncBatcher;
use dt_raft::store::StoreConfig;

#[path = "../../dt-net/examples/support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Allocations per append over `n` appends after a warm-up.
fn per_append(batched: bool) -> f64 {
    let d = tempfile::tempdir().unwrap();
    let io = ThreadPoolIo::new(2);
    let mut cfg = StoreConfig::small_for_tests();
    cfg.sync_force = true;
    if batched {
        cfg.fsync_batcher = Some(FsyncBatcher::new(io.clone()));
    }
    let log = DefaultRaftLog::new(d.path(), cfg, io);
    block_on(log.init()).unwrap();
    let (warm, n) = (50u64, 300u64);
    // Built before counting: the caller's entries are not the log's allocations.
    let mut batches: Vec<_> = (1..=warm + n).map(|i| entries(i, i, 1, 1)).collect();
    batches.reverse();
    for _ in 0..warm {
        let b = batches.pop().unwrap();
        block_on(log.append(b)).unwrap();
    }
    let a0 = counting_alloc::allocations();
    for _ in 0..n {
        let b = batches.pop().unwrap();
        let idx = b[0].index;
        // Longer than the gap after which the lane does not linger (module docs).
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert_eq!(block_on(log.append(b)).unwrap(), idx);
    }
    let a = counting_alloc::allocations() - a0;
    assert_eq!(log.persisted_index(), warm + n, "every append was fsynced");
    a as f64 / n as f64
}

/// Paced (module docs): measured 5.24 without and 6.28 with the fsync batcher, each
/// append restarting the write lane (one boxed runner). Unpaced, with the lane kept
/// running, it was 4.2 and 5.3 (5.2 and 6.3 before a write job's list of files written
/// reused its plan's list of files, 6.2 and 7.2 before an append's answer slot was
/// reused; 9.2 and 10.2 before the write job's completion reached the owner without a
/// boxed message and handler, and before the job shared the log directory's path
/// instead of copying it). One more allocation per append breaks either bound.
#[test]
fn a_synced_one_entry_append_allocates_little() {
    for (batched, bound) in [(false, 5.5), (true, 6.5)] {
        let x = per_append(batched);
        eprintln!("allocations per append (fsync batcher: {batched}): {x:.2}");
        assert!(
            x < bound,
            "{x:.2} allocations per append (batcher: {batched})"
        );
    }
}
