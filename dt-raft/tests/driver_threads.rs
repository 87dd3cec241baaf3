//! Three nodes in one process, each group on its own Dispatcher thread, connected by
//! the in-memory `LocalNetwork`, with the real `DefaultRaftLog` in temporary
//! directories (fsync on): elect, replicate, apply in the same order; a killed leader
//! is replaced and writes continue; the killed node restarts from its data directory
//! and catches up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dt_fiber::{Dispatcher, DispatcherConfig};
use dt_raft::core::{NodeId, Role};
use dt_raft::driver::local::{AppliedLog, CounterSm, LocalNetwork};
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{Executor, ThreadPoolIo};
use dt_raft::sm::{DefaultRaftFactory, RaftError, RaftInput};

const GROUP: i32 = 1;
const WAIT: Duration = Duration::from_secs(30);

struct Node {
    dir: PathBuf,
    applied: AppliedLog,
    dispatcher: Option<Dispatcher>,
    group: Option<RaftGroup<i64>>,
}

struct Cluster {
    _tmp: tempfile::TempDir,
    io: Arc<ThreadPoolIo>,
    net: LocalNetwork,
    nodes: Vec<Node>,
    /// Applied to every node's configuration.
    tweak: fn(&mut RaftGroupConfig),
}

impl Cluster {
    fn new(n: u32) -> Self {
        Self::with(n, |_| {})
    }

    fn with(n: u32, tweak: fn(&mut RaftGroupConfig)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = (1..=n)
            .map(|id| Node {
                dir: tmp.path().join(format!("node{id}")),
                applied: AppliedLog::default(),
                dispatcher: None,
                group: None,
            })
            .collect();
        let mut c = Cluster {
            _tmp: tmp,
            io: ThreadPoolIo::new(2),
            net: LocalNetwork::new(),
            nodes,
            tweak,
        };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let n = self.nodes.len() as u32;
        let node = &mut self.nodes[id as usize - 1];
        let mut cfg = RaftGroupConfig::new(GROUP, id, (1..=n).collect());
        cfg.data_dir = node.dir.clone();
        cfg.elect_timeout_ms = 1000;
        cfg.heartbeat_interval_ms = 200;
        cfg.rpc_timeout_ms = 500;
        cfg.replicate_retry_ms = 100;
        cfg.log_file_size = 64 * 1024;
        cfg.idx_items_per_file = 256;
        cfg.idx_cache_size = 64;
        cfg.idx_flush_threshold = 32;
        // small install chunks, so that an install streams many requests
        cfg.replicate_snapshot_buffer_size = 256;
        cfg.replicate_snapshot_concurrency = 2;
        (self.tweak)(&mut cfg);
        node.applied.lock().unwrap().clear(); // the state machine replays from 1
        let applied = node.applied.clone();
        let io: Arc<dyn Executor> = self.io.clone();
        let factory = Arc::new(DefaultRaftFactory::new(
            io,
            move |_cfg: &RaftGroupConfig| Ok(CounterSm::recording(applied.clone())),
        ));
        let d = Dispatcher::start(DispatcherConfig::new(format!("node{id}"))).unwrap();
        let h = d.start_group(&format!("group{GROUP}")).unwrap();
        let net = self.net.clone();
        let group = RaftGroup::start(&h, factory, cfg, move || net.transport(id)).unwrap();
        self.net.register(id, &group);
        node.dispatcher = Some(d);
        node.group = Some(group);
    }

    fn kill(&mut self, id: NodeId) {
        self.net.set_down(id);
        let node = &mut self.nodes[id as usize - 1];
        let g = node.group.take().unwrap();
        g.shutdown();
        assert!(g.wait_stopped(WAIT), "node {id} did not stop");
        let d = node.dispatcher.take().unwrap();
        assert!(d.stop(WAIT).stopped);
    }

    fn group(&self, id: NodeId) -> &RaftGroup<i64> {
        self.nodes[id as usize - 1].group.as_ref().unwrap()
    }

    fn live(&self) -> Vec<NodeId> {
        (1..=self.nodes.len() as NodeId)
            .filter(|&i| self.nodes[i as usize - 1].group.is_some())
            .collect()
    }

    fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + WAIT;
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_leader(&self) -> NodeId {
        let mut leader = 0;
        self.wait_until("a leader", || {
            let l: Vec<NodeId> = self
                .live()
                .into_iter()
                .filter(|&i| {
                    let s = self.group(i).status();
                    s.role == Role::Leader && s.group_ready
                })
                .collect();
            if l.len() == 1 {
                leader = l[0];
            }
            l.len() == 1
        });
        leader
    }

    /// Writes `values` through `leader`, pipelined (all submitted, then awaited).
    fn write(&self, leader: NodeId, values: impl IntoIterator<Item = i64>) -> i64 {
        let futs: Vec<_> = values
            .into_iter()
            .map(|v| {
                self.group(leader)
                    .submit_async(RaftInput::new(0, v.to_string()))
            })
            .collect();
        let mut last = (0, 0);
        for f in futs {
            let r = f.wait(WAIT).expect("write failed");
            assert!(r.0 > last.0, "indexes of one leader's writes increase");
            last = r;
        }
        last.1
    }

    fn wait_applied_equal(&self, count: usize) -> Vec<(u64, Vec<u8>)> {
        let live = self.live();
        self.wait_until("every node to apply", || {
            live.iter()
                .all(|&i| self.nodes[i as usize - 1].applied.lock().unwrap().len() >= count)
        });
        let get = |i: NodeId| self.nodes[i as usize - 1].applied.lock().unwrap().clone();
        let first = get(live[0]);
        for &i in &live[1..] {
            assert_eq!(get(i), first, "node {i} applied differently");
        }
        first
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(g) = n.group.take() {
                g.shutdown();
                g.wait_stopped(WAIT);
            }
            if let Some(d) = n.dispatcher.take() {
                d.stop(WAIT);
            }
        }
    }
}

#[test]
fn three_dispatchers_real_log_kill_and_restart() {
    let mut c = Cluster::new(3);
    let leader = c.wait_leader();
    assert_eq!(c.write(leader, 1..=50), 1275);
    let applied = c.wait_applied_equal(50);
    let bodies: Vec<i64> = applied
        .iter()
        .map(|(_, b)| std::str::from_utf8(b).unwrap().parse().unwrap())
        .collect();
    assert_eq!(bodies, (1..=50).collect::<Vec<_>>());

    // a follower answers NotLeader with the leader's id
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let r = c
        .group(follower)
        .submit_async(RaftInput::new(0, "1"))
        .wait(WAIT);
    assert_eq!(
        r.unwrap_err(),
        RaftError::NotLeader {
            leader: Some(leader)
        }
    );

    // kill the leader: another node takes over and writes continue
    c.kill(leader);
    let new = c.wait_leader();
    assert_ne!(new, leader);
    assert_eq!(c.write(new, 51..=80), (1..=80).sum::<i64>());
    c.wait_applied_equal(80);

    // restart the killed node from its data directory: it replays and catches up
    c.start(leader);
    let all = c.wait_applied_equal(80);
    assert_eq!(all.len(), 80);
    let st = c.group(leader).query_status().wait(WAIT).unwrap();
    assert!(st.init_finished);
    assert_eq!(st.leader, Some(new));
    // and it takes part in new writes
    assert_eq!(c.write(new, [1000]), (1..=80).sum::<i64>() + 1000);
    c.wait_applied_equal(81);
}

/// A restarted node replays a log of several read batches (the apply loop reads 1 024
/// entries at a time, the next batch while it executes the current one) from its
/// files: every entry once, in order, as before the restart.
#[test]
fn a_restart_replays_a_log_of_many_read_batches_in_order() {
    let _ = env_logger::builder().is_test(true).try_init();
    // no snapshot (none on close, the periodic one an hour away): the restart replays
    // the whole log
    let mut c = Cluster::with(1, |cfg| {
        cfg.save_snapshot_when_close = false;
        cfg.save_snapshot_seconds = 3600;
    });
    let leader = c.wait_leader();
    let n = 3_500;
    assert_eq!(c.write(leader, 1..=n), (1..=n).sum::<i64>());
    let before = c.wait_applied_equal(n as usize);
    c.kill(leader);
    assert_eq!(snapshot_count(&c.nodes[0].dir), 0);
    c.start(leader);
    c.wait_leader();
    let after = c.wait_applied_equal(n as usize);
    assert_eq!(after.len(), before.len());
    assert_eq!(after, before);
    let indexes: Vec<u64> = after.iter().map(|(i, _)| *i).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]));
}

/// A follower whose data directory is deleted comes back with an empty log: the
/// leader finds no match and streams a fresh snapshot of its state machine (in many
/// chunks); the follower adopts it and the log position, and takes part in new writes.
#[test]
fn wiped_follower_is_caught_up_by_install_snapshot() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut c = Cluster::new(3);
    let leader = c.wait_leader();
    assert_eq!(c.write(leader, 1..=60), (1..=60).sum::<i64>());
    c.wait_applied_equal(60);

    let follower = (1..=3).find(|&i| i != leader).unwrap();
    c.kill(follower);
    std::fs::remove_dir_all(&c.nodes[follower as usize - 1].dir).unwrap();
    // writes go on while it is away
    assert_eq!(c.write(leader, 61..=90), (1..=90).sum::<i64>());
    c.start(follower);
    // the installed snapshot carries the leader's record of applied entries
    let all = c.wait_applied_equal(90);
    assert_eq!(all.len(), 90);
    c.wait_until("the follower to finish the install", || {
        c.group(follower)
            .query_status()
            .wait(WAIT)
            .is_ok_and(|s| s.last_applied >= 90 && s.init_finished)
    });
    // the follower's log now starts after the snapshot, and it takes new writes
    assert_eq!(c.write(leader, [1000]), (1..=90).sum::<i64>() + 1000);
    let all = c.wait_applied_equal(91);
    assert_eq!(all.last().unwrap().1, b"1000".to_vec());
    // the new entries are in its log: they survive a restart of the leader role
    c.kill(leader);
    let new = c.wait_leader();
    assert_eq!(c.write(new, [5]), (1..=90).sum::<i64>() + 1005);
}

/// An input whose log item would not fit in one log file (64 KiB here) is refused with
/// InvalidInput before it gets an index; before, the log write failed and stopped the
/// group (found by dt-server's hostile_input test with a 1 MiB DtKV value).
#[test]
fn an_entry_larger_than_a_log_file_is_refused_and_the_group_goes_on() {
    let c = Cluster::new(1);
    let leader = c.wait_leader();
    assert_eq!(c.write(leader, [5]), 5);
    // The largest body that fits: 42-byte item header + body + its 4-byte CRC.
    let fits = 64 * 1024 - 42 - 4;
    for (len, ok) in [(fits + 1, false), (100_000, false), (fits, true)] {
        let body = format!("{}7", "0".repeat(len - 1));
        let r = c
            .group(leader)
            .submit_async(RaftInput::new(0, body))
            .wait(WAIT);
        match r {
            Err(RaftError::InvalidInput(msg)) if !ok => {
                assert!(msg.contains("larger than a log file"), "{msg}")
            }
            Ok(_) if ok => {}
            other => panic!("body of {len} bytes: {other:?}"),
        }
    }
    assert_eq!(c.write(leader, [1]), 5 + 7 + 1);
    c.wait_applied_equal(3);
}

fn snapshot_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("snapshot"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
                .count()
        })
        .unwrap_or(0)
}

/// Periodic snapshots (every second here) are saved with at most maxKeepSnapshots
/// kept; a node restarted from its data directory recovers the newest snapshot and
/// replays only the log after it (replay starts after the snapshot, so a state
/// machine that did not get the snapshot would miss the prefix); a whole-cluster
/// restart recovers the same state everywhere.
#[test]
fn restart_from_snapshot_and_log_suffix() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut c = Cluster::with(3, |cfg| {
        cfg.save_snapshot_seconds = 1;
        cfg.save_snapshot_when_close = false;
        cfg.max_keep_snapshots = 1;
    });
    let leader = c.wait_leader();
    assert_eq!(c.write(leader, 1..=50), (1..=50).sum::<i64>());
    c.wait_applied_equal(50);
    c.wait_until("every node to save a snapshot", || {
        c.nodes.iter().all(|n| snapshot_count(&n.dir) >= 1)
    });
    // the log suffix after the snapshots
    assert_eq!(c.write(leader, 51..=80), (1..=80).sum::<i64>());
    c.wait_applied_equal(80);

    let follower = (1..=3).find(|&i| i != leader).unwrap();
    c.kill(follower);
    assert_eq!(
        snapshot_count(&c.nodes[follower as usize - 1].dir),
        1,
        "maxKeepSnapshots = 1"
    );
    c.start(follower);
    let all = c.wait_applied_equal(80);
    let bodies: Vec<i64> = all
        .iter()
        .map(|(_, b)| std::str::from_utf8(b).unwrap().parse().unwrap())
        .collect();
    assert_eq!(bodies, (1..=80).collect::<Vec<_>>());

    // the whole cluster restarts
    for id in 1..=3 {
        c.kill(id);
    }
    for id in 1..=3 {
        c.start(id);
    }
    let leader = c.wait_leader();
    c.wait_applied_equal(80);
    assert_eq!(c.write(leader, [7]), (1..=80).sum::<i64>() + 7);
    c.wait_applied_equal(81);
}

/// `save_snapshot_log_bytes`: with the periodic save an hour away, every node saves a
/// snapshot once that many bytes of log were written (entries of ~49 bytes here), and
/// again after as many more; below it, none.
#[test]
fn snapshots_are_saved_every_so_many_log_bytes() {
    let c = Cluster::with(3, |cfg| {
        cfg.save_snapshot_seconds = 3600;
        cfg.save_snapshot_log_bytes = 4096;
        cfg.save_snapshot_when_close = false;
        cfg.max_keep_snapshots = 2;
    });
    let leader = c.wait_leader();
    let counts = || -> Vec<usize> { c.nodes.iter().map(|n| snapshot_count(&n.dir)).collect() };
    c.write(leader, 1..=20);
    c.wait_applied_equal(20);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counts(), vec![0, 0, 0], "about 1 KB of log: no save yet");
    c.write(leader, 21..=120);
    c.wait_applied_equal(120);
    c.wait_until("every node to save a snapshot", || {
        counts().iter().all(|&n| n >= 1)
    });
    c.write(leader, 121..=250);
    c.wait_applied_equal(250);
    c.wait_until("every node to save a second snapshot", || {
        counts().iter().all(|&n| n == 2)
    });
}

/// `lease_holds_now` (answered on the caller's thread from the lease the group's thread
/// publishes) is true on the ready leader only, false on followers, on the old leader
/// once a transfer started and on a stopped group.
#[test]
fn the_published_lease_holds_only_on_the_ready_leader() {
    let mut c = Cluster::new(3);
    let l = c.wait_leader();
    c.wait_until("the leader's published lease", || {
        c.group(l).lease_holds_now()
    });
    for i in c.live() {
        if i != l {
            assert!(!c.group(i).lease_holds_now(), "follower {i}");
        }
    }
    let to = if l == 1 { 2 } else { 1 };
    c.group(l)
        .transfer_leadership(to, WAIT)
        .wait(WAIT)
        .expect("transfer");
    assert!(
        !c.group(l).lease_holds_now(),
        "old leader after the transfer"
    );
    c.wait_until("the new leader's lease", || c.group(to).lease_holds_now());
    assert_eq!(c.write(to, [5]), 5);
    let g = c.group(to).clone();
    c.kill(to);
    assert!(!g.lease_holds_now(), "a stopped group");
}
