//! `DefaultRaftLog` driven the way a Raft group drives it: from fibers on a dt-fiber
//! `Dispatcher`, with file work on dt-fiber's `IoPool`.

mod common;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::entries;
use dt_fiber::{Dispatcher, DispatcherConfig, IoPool};
use dt_raft::raft_log::{DefaultRaftLog, RaftLog};
use dt_raft::store::StoreConfig;

/// (init result, last appended index, entries read back, persisted index)
type Outcome = (Option<(u32, u64)>, u64, usize, u64);

#[test]
fn appends_and_reads_from_fibers_with_the_fiber_io_pool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let pool = IoPool::new("log-io", 2).unwrap();
    let dispatcher = Dispatcher::start(DispatcherConfig::new("raft-dispatcher")).unwrap();
    let group = dispatcher.start_group("group-0").unwrap();
    let (tx, rx) = mpsc::channel();
    let io: Arc<IoPool> = Arc::new(pool.clone());
    group
        .fire_fiber("log-user", move || async move {
            let log = DefaultRaftLog::new(&path, StoreConfig::small_for_tests(), io);
            let r: Result<Outcome, String> = async {
                let init = log.init().await.map_err(|e| e.to_string())?;
                let all = entries(1, 300, 1, 0);
                // Several appends in flight at once, as a leader pipelines them.
                let futs: Vec<_> = all.chunks(10).map(|c| log.append(c.to_vec())).collect();
                let mut last = 0;
                for f in futs {
                    last = f.await.map_err(|e| e.to_string())?;
                }
                let mut it = log.open_iterator();
                let mut read = 0usize;
                let mut i = 1;
                while i <= 300 {
                    let v = it.next(i, 64, 1 << 20).await.map_err(|e| e.to_string())?;
                    if v.is_empty() {
                        return Err(format!("empty read at {i}"));
                    }
                    for (k, item) in v.iter().enumerate() {
                        if item != &all[(i as usize - 1) + k] {
                            return Err(format!("entry {} differs", i as usize + k));
                        }
                    }
                    i += v.len() as u64;
                    read += v.len();
                }
                let persisted = log.persisted_index();
                log.close().await.map_err(|e| e.to_string())?;
                Ok((init, last, read, persisted))
            }
            .await;
            tx.send(r).unwrap();
        })
        .unwrap();
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("fiber finished");
    assert_eq!(r, Ok((Some((0, 0)), 300, 300, 300)));
    group.request_shutdown().unwrap();
    assert!(group.wait_finished(Duration::from_secs(5)));
    assert!(dispatcher.stop(Duration::from_secs(5)).stopped);
    pool.shutdown();

    // The data is durable: a plain reopen sees all 300 entries.
    let log = DefaultRaftLog::new(
        dir.path(),
        StoreConfig::small_for_tests(),
        dt_raft::raft_log::ThreadPoolIo::new(1),
    );
    assert_eq!(
        dt_raft::raft_log::block_on(log.init()).unwrap(),
        Some((1, 300))
    );
}

#[test]
fn jobs_after_pool_shutdown_fail_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let pool = IoPool::new("log-io", 1).unwrap();
    pool.shutdown();
    let log = DefaultRaftLog::new(dir.path(), StoreConfig::small_for_tests(), Arc::new(pool));
    assert!(dt_raft::raft_log::block_on(log.init()).is_err());
}
