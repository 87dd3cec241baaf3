//! The driver on one `dt_fiber::Simulation` thread (virtual time): three nodes on the
//! in-memory network and log elect, replicate, apply in the same order, survive a
//! leader kill and a restart, drop a removed member from replication, and a run is
//! reproducible from its seed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use dt_fiber::Simulation;
use dt_raft::core::{NodeId, Role};
use dt_raft::driver::local::{AppliedLog, CounterSm, LocalNetwork, MemLogFactory};
use dt_raft::driver::{DriverOptions, RaftFuture, RaftGroup, RaftGroupConfig};
use dt_raft::sm::{RaftError, RaftInput};

const GROUP: i32 = 7;

struct Node {
    factory: Arc<MemLogFactory<CounterSm>>,
    applied: AppliedLog,
    group: Option<RaftGroup<i64>>,
}

struct Cluster {
    sim: Simulation,
    net: LocalNetwork,
    nodes: Vec<Node>,
    trace: Rc<RefCell<Vec<String>>>,
}

impl Cluster {
    fn new(seed: u64, n: u32) -> Self {
        let mut c = Cluster {
            sim: Simulation::new(seed),
            net: LocalNetwork::new(),
            nodes: Vec::new(),
            trace: Rc::default(),
        };
        for _ in 0..n {
            let applied = AppliedLog::default();
            let a2 = applied.clone();
            c.nodes.push(Node {
                factory: MemLogFactory::new(move || CounterSm::recording(a2.clone())),
                applied,
                group: None,
            });
        }
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let n = self.nodes.len() as u32;
        let mut cfg = RaftGroupConfig::new(GROUP, id, (1..=n).collect());
        cfg.elect_timeout_ms = 1000;
        cfg.heartbeat_interval_ms = 300;
        cfg.rpc_timeout_ms = 500;
        cfg.replicate_retry_ms = 100;
        let g = self.sim.new_group(&format!("node{id}"));
        let t = self.trace.clone();
        let opts = DriverOptions {
            trace: Some(Rc::new(move |now, node, a| {
                t.borrow_mut().push(format!("{now} n{node} {a:?}"))
            })),
            ..Default::default()
        };
        let node = &mut self.nodes[id as usize - 1];
        node.applied.lock().unwrap().clear(); // a restarted state machine replays from 1
        let group =
            RaftGroup::start_on_with(&g, node.factory.clone(), cfg, self.net.transport(id), opts);
        self.net.register(id, &group);
        node.group = Some(group);
    }

    fn kill(&mut self, id: NodeId) {
        self.net.set_down(id);
        let g = self.nodes[id as usize - 1].group.take().unwrap();
        g.shutdown();
        let fg = g.fiber_group().clone();
        assert!(self
            .sim
            .run_until(|| fg.is_finished(), Duration::from_secs(10)));
    }

    fn group(&self, id: NodeId) -> &RaftGroup<i64> {
        self.nodes[id as usize - 1].group.as_ref().unwrap()
    }

    /// Runs until exactly one live node is a ready leader; returns it.
    fn wait_leader(&mut self) -> NodeId {
        let nodes: Vec<(NodeId, RaftGroup<i64>)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.group.clone().map(|g| (i as NodeId + 1, g)))
            .collect();
        let leader = |nodes: &[(NodeId, RaftGroup<i64>)]| {
            let l: Vec<NodeId> = nodes
                .iter()
                .filter(|(_, g)| {
                    let s = g.status();
                    s.role == Role::Leader && s.group_ready
                })
                .map(|(id, _)| *id)
                .collect();
            (l.len() == 1).then(|| l[0])
        };
        assert!(
            self.sim
                .run_until(|| leader(&nodes).is_some(), Duration::from_secs(60)),
            "no leader elected"
        );
        leader(&nodes).unwrap()
    }

    fn run_future<T>(&mut self, f: RaftFuture<T>) -> Result<T, RaftError> {
        let mut f = Box::pin(f);
        let mut out = None;
        self.sim.run_until(
            || {
                out = f.as_mut().try_take();
                out.is_some()
            },
            Duration::from_secs(30),
        );
        out.expect("no answer within 30 s of virtual time")
    }

    /// Writes `values` through node `leader`, each awaited.
    fn write(&mut self, leader: NodeId, values: impl IntoIterator<Item = i64>) -> i64 {
        let mut last = 0;
        for v in values {
            let f = self
                .group(leader)
                .submit_async(RaftInput::new(0, v.to_string()));
            let (_, total) = self.run_future(f).expect("write failed");
            last = total;
        }
        last
    }

    fn applied(&self, id: NodeId) -> Vec<(u64, Vec<u8>)> {
        self.nodes[id as usize - 1].applied.lock().unwrap().clone()
    }

    /// Runs until every live node applied `count` entries, then checks they agree.
    fn wait_applied_equal(&mut self, count: usize) -> Vec<(u64, Vec<u8>)> {
        let live: Vec<NodeId> = (1..=self.nodes.len() as NodeId)
            .filter(|&i| self.nodes[i as usize - 1].group.is_some())
            .collect();
        let logs: Vec<AppliedLog> = live
            .iter()
            .map(|&i| self.nodes[i as usize - 1].applied.clone())
            .collect();
        let ok = self.sim.run_until(
            || logs.iter().all(|l| l.lock().unwrap().len() >= count),
            Duration::from_secs(60),
        );
        assert!(ok, "not every node applied {count} entries");
        let first = self.applied(live[0]);
        for &i in &live[1..] {
            assert_eq!(self.applied(i), first, "node {i} applied differently");
        }
        first
    }
}

#[test]
fn three_nodes_elect_replicate_apply_in_same_order() {
    let mut c = Cluster::new(11, 3);
    let leader = c.wait_leader();
    let total = c.write(leader, 1..=20);
    assert_eq!(total, 210);
    let applied = c.wait_applied_equal(20);
    let bodies: Vec<i64> = applied
        .iter()
        .map(|(_, b)| std::str::from_utf8(b).unwrap().parse().unwrap())
        .collect();
    assert_eq!(bodies, (1..=20).collect::<Vec<_>>());
    // indexes strictly increase (heartbeat entries sit in between)
    assert!(applied.windows(2).all(|w| w[0].0 < w[1].0));

    // a follower refuses writes, naming the leader
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let f = c.group(follower).submit_async(RaftInput::new(0, "1"));
    assert_eq!(
        c.run_future(f).unwrap_err(),
        RaftError::NotLeader {
            leader: Some(leader)
        }
    );
    // the leader serves lease reads, a follower does not
    let f = c.group(leader).lease_read(Duration::from_secs(1));
    c.run_future(f).unwrap();
    let f = c.group(follower).lease_read(Duration::from_secs(1));
    assert!(matches!(c.run_future(f), Err(RaftError::NotLeader { .. })));
}

#[test]
fn leader_kill_new_leader_and_restart_catches_up() {
    let mut c = Cluster::new(5, 3);
    let old = c.wait_leader();
    c.write(old, 1..=10);
    c.wait_applied_equal(10);
    c.kill(old);
    let new = c.wait_leader();
    assert_ne!(new, old);
    let total = c.write(new, 11..=20);
    assert_eq!(total, 210);
    c.wait_applied_equal(20);
    // the killed node comes back with its log and catches up
    c.start(old);
    let all = c.wait_applied_equal(20);
    assert_eq!(all.len(), 20);
    let st = c.run_future(c.group(old).query_status()).unwrap();
    assert!(st.init_finished);
    assert_eq!(st.leader, Some(new));
}

#[test]
fn leader_transfer_moves_leadership() {
    let mut c = Cluster::new(3, 3);
    let old = c.wait_leader();
    c.write(old, 1..=5);
    let target = (1..=3).find(|&i| i != old).unwrap();
    let f = c
        .group(old)
        .transfer_leadership(target, Duration::from_secs(5));
    c.run_future(f).unwrap();
    assert_eq!(c.wait_leader(), target);
    assert_eq!(c.write(target, [100]), 115);
}

/// Runs a fixed scenario and returns (applied sequence of node 1, action trace).
fn scenario(seed: u64) -> (Vec<(u64, Vec<u8>)>, Vec<String>) {
    let mut c = Cluster::new(seed, 3);
    let leader = c.wait_leader();
    c.write(leader, 1..=15);
    c.wait_applied_equal(15);
    c.kill(leader);
    let l2 = c.wait_leader();
    c.write(l2, 16..=20);
    c.wait_applied_equal(20);
    let survivor = (1..=3).find(|&i| i != leader).unwrap();
    let trace = c.trace.borrow().clone();
    (c.applied(survivor), trace)
}

#[test]
fn same_seed_same_run() {
    let (a1, t1) = scenario(42);
    let (a2, t2) = scenario(42);
    assert!(t1.len() > 100, "trace too short: {}", t1.len());
    assert_eq!(a1, a2);
    assert_eq!(t1, t2, "same seed, different action trace");
    let (_, t3) = scenario(43);
    assert_ne!(t1, t3, "the seed does not reach the run");
}

#[test]
fn partitioned_leader_loses_its_uncommitted_write() {
    let mut c = Cluster::new(9, 3);
    let old = c.wait_leader();
    c.write(old, 1..=5);
    c.wait_applied_equal(5);
    let others: Vec<NodeId> = (1..=3).filter(|&i| i != old).collect();
    for &o in &others {
        c.net.set_cut(old, o, true);
    }
    // the isolated leader takes a write it can never commit
    let lost = Box::pin(c.group(old).submit_async(RaftInput::new(0, "1000")));
    let g: Vec<RaftGroup<i64>> = others.iter().map(|&i| c.group(i).clone()).collect();
    let ok = c.sim.run_until(
        || {
            g.iter().any(|g| {
                let s = g.status();
                s.role == Role::Leader && s.group_ready
            })
        },
        Duration::from_secs(60),
    );
    assert!(ok, "the majority side elected no leader");
    let new = *others
        .iter()
        .find(|&&i| c.group(i).status().role == Role::Leader)
        .unwrap();
    c.write(new, 6..=8);
    for &o in &others {
        c.net.set_cut(old, o, false);
    }
    // the old leader learns the new term, drops its entry and follows
    let r = c.run_future_pinned(lost);
    assert!(
        matches!(
            r,
            Err(RaftError::NotLeader { .. }) | Err(RaftError::LogTruncated)
        ),
        "{r:?}"
    );
    let applied = c.wait_applied_equal(8);
    assert!(applied.iter().all(|(_, b)| b != b"1000"));
    assert_eq!(c.write(new, [0]), 36);
    let all: Vec<RaftGroup<i64>> = (1..=3).map(|i| c.group(i).clone()).collect();
    assert!(c
        .sim
        .run_until(|| c_status_leader(&all, new), Duration::from_secs(10)));
}

fn c_status_leader(groups: &[RaftGroup<i64>], leader: NodeId) -> bool {
    groups.iter().all(|g| g.status().leader == Some(leader))
}

impl Cluster {
    fn run_future_pinned<T>(
        &mut self,
        mut f: std::pin::Pin<Box<RaftFuture<T>>>,
    ) -> Result<T, RaftError> {
        let mut out = None;
        self.sim.run_until(
            || {
                out = f.as_mut().try_take();
                out.is_some()
            },
            Duration::from_secs(60),
        );
        out.expect("no answer within 60 s of virtual time")
    }
}

/// A state machine whose executions finish later (after a fiber sleep), in order.
struct SlowSm {
    total: i64,
}

impl dt_raft::sm::StateMachine for SlowSm {
    type Output = i64;
    fn exec(&mut self, e: &dt_raft::sm::ExecEntry<'_>) -> dt_raft::sm::Exec<i64> {
        self.total += std::str::from_utf8(e.body).unwrap().parse::<i64>().unwrap();
        let total = self.total;
        dt_raft::sm::Exec::Pending(Box::pin(async move {
            dt_fiber::sleep(Duration::from_millis(3)).await.unwrap();
            Ok(total)
        }))
    }
}

#[test]
fn pending_executions_complete_callers_in_index_order() {
    let mut sim = Simulation::new(3);
    let g = sim.new_group("n1");
    let net = LocalNetwork::new();
    let mut cfg = RaftGroupConfig::new(1, 1, vec![1]);
    cfg.elect_timeout_ms = 1000;
    cfg.heartbeat_interval_ms = 300;
    let group = RaftGroup::start_on(
        &g,
        MemLogFactory::new(|| SlowSm { total: 0 }),
        cfg,
        net.transport(1),
    );
    net.register(1, &group);
    assert!(sim.run_until(|| group.status().group_ready, Duration::from_secs(10)));
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = sim.elapsed();
    for v in 1..=30i64 {
        let d = done.clone();
        group.submit(RaftInput::new(0, v.to_string()), move |r| {
            d.lock().unwrap().push(r.unwrap())
        });
    }
    let d = done.clone();
    assert!(sim.run_until(|| d.lock().unwrap().len() == 30, Duration::from_secs(10)));
    let took = sim.elapsed() - start;
    let got = done.lock().unwrap().clone();
    assert!(got.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{got:?}");
    let totals: Vec<i64> = got.iter().map(|r| r.1).collect();
    let want: Vec<i64> = (1..=30).map(|n| n * (n + 1) / 2).collect();
    assert_eq!(totals, want);
    // executions overlapped: 30 sleeps of 3 ms one after the other take 90 ms
    assert!(took < Duration::from_millis(45), "took {took:?}");
}

/// One completion `submit_to` reported: the token and the result.
type Completed = (u64, dt_raft::sm::RaftResult<i64>);

/// Records what `submit_to` completes, in completion order.
#[derive(Default)]
struct Recorder {
    done: std::sync::Mutex<Vec<Completed>>,
}

impl dt_raft::sm::RaftHandler<i64> for Recorder {
    fn done(&self, token: u64, r: dt_raft::sm::RaftResult<i64>) {
        self.done.lock().unwrap().push((token, r));
    }
}

#[test]
fn submit_to_completes_one_handler_with_each_writes_token() {
    let mut c = Cluster::new(5, 3);
    let leader = c.wait_leader();
    let h = Arc::new(Recorder::default());
    for v in 1..=20u64 {
        c.group(leader)
            .submit_to(RaftInput::new(0, v.to_string()), &h, 1000 + v);
    }
    let h2 = h.clone();
    assert!(c.sim.run_until(
        || h2.done.lock().unwrap().len() == 20,
        Duration::from_secs(10)
    ));
    let got = h.done.lock().unwrap();
    // each token once, in submit (= index) order, with the counter's running total
    let tokens: Vec<u64> = got.iter().map(|(t, _)| *t).collect();
    assert_eq!(tokens, (1001..=1020).collect::<Vec<_>>());
    let res: Vec<(u64, i64)> = got.iter().map(|(_, r)| r.clone().unwrap()).collect();
    assert!(res.windows(2).all(|w| w[0].0 + 1 == w[1].0), "{res:?}");
    // a follower refuses: the handler gets NotLeader for that token
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    drop(got);
    c.group(follower).submit_to(RaftInput::new(0, "1"), &h, 7);
    let h3 = h.clone();
    assert!(c.sim.run_until(
        || h3.done.lock().unwrap().len() == 21,
        Duration::from_secs(10)
    ));
    let last = h.done.lock().unwrap()[20].clone();
    assert_eq!(last.0, 7);
    assert!(
        matches!(last.1, Err(RaftError::NotLeader { .. })),
        "{last:?}"
    );
}

#[test]
fn shutdown_fails_pending_writes_with_stopped() {
    let mut c = Cluster::new(21, 3);
    let leader = c.wait_leader();
    c.write(leader, [1]);
    for o in (1..=3).filter(|&i| i != leader) {
        c.net.set_cut(leader, o, true);
    }
    let pending = Box::pin(c.group(leader).submit_async(RaftInput::new(0, "2")));
    c.sim.run_for(Duration::from_millis(50));
    let g = c.group(leader).clone();
    c.kill(leader);
    assert_eq!(c.run_future_pinned(pending), Err(RaftError::Stopped));
    // a stopped group refuses at once
    let f = g.submit_async(RaftInput::new(0, "3"));
    assert_eq!(c.run_future(f), Err(RaftError::Stopped));
}

#[test]
fn a_removed_member_stops_being_replicated_to_after_the_legacy_period() {
    let mut c = Cluster::new(11, 3);
    let l = c.wait_leader();
    c.write(l, 1..=5);
    let gone = if l == 3 { 2 } else { 3 };
    let stay: Vec<NodeId> = (1..=3).filter(|i| *i != gone).collect();
    let f = c
        .group(l)
        .prepare_config_change(vec![1, 2, 3], vec![], stay.clone(), vec![]);
    let p = c.run_future(f).unwrap();
    let f = c.group(l).commit_change(p);
    assert!(c.run_future(f).unwrap() > p);
    assert_eq!(c.group(l).status().members.members, stay);
    let g = c.group(gone).clone();
    assert!(c
        .sim
        .run_until(|| g.status().role == Role::None, Duration::from_secs(10)));
    let to_gone = format!("SendAppend {{ to: {gone},");
    assert!(
        c.trace.borrow().iter().any(|t| t.contains(&to_gone)),
        "node {gone} was replicated to while a member"
    );
    // past the leader's "remove legacy" period (5 s)
    c.sim.run_for(Duration::from_secs(6));
    c.trace.borrow_mut().clear();
    let total = c.write(l, [10, 20]);
    assert_eq!(total, 15 + 30);
    c.sim.run_for(Duration::from_secs(2));
    let trace = c.trace.borrow();
    assert!(
        trace.iter().any(|t| t.contains("SendAppend")),
        "the remaining member is replicated to"
    );
    assert!(
        !trace.iter().any(|t| t.contains(&to_gone)),
        "node {gone} was replicated to after it left"
    );
}

/// The first install request carries the leader's configuration; like a
/// configuration entry's, every node it names must be in the node table (raft.md
/// §12.3, the reference's "node not exist"): a request naming an unknown node is
/// answered SERVER_ERROR and changes nothing (no install begun, sets kept); one the
/// node table knows is accepted and begins the install.
#[test]
fn an_install_whose_configuration_names_an_unknown_node_is_refused() {
    use dt_raft::core::{AppendCode, AppendResp};
    use dt_raft::rpc::InstallSnapshotReq;
    use std::sync::{Arc as SArc, Mutex};

    let mut sim = Simulation::new(5);
    let net = LocalNetwork::new();
    let applied = AppliedLog::default();
    let factory = MemLogFactory::new(move || CounterSm::recording(applied.clone()));
    let mut cfg = RaftGroupConfig::new(GROUP, 1, vec![1, 2, 3]);
    cfg.elect_timeout_ms = 60_000;
    cfg.heartbeat_interval_ms = 300;
    let fg = sim.new_group("node1");
    let trace: Rc<RefCell<Vec<String>>> = Rc::default();
    let t = trace.clone();
    let opts = DriverOptions {
        node_exists: Some(Rc::new(|id| (1..=3).contains(&id))),
        trace: Some(Rc::new(move |_, _, a| {
            t.borrow_mut().push(format!("{a:?}"))
        })),
        ..Default::default()
    };
    let g = RaftGroup::start_on_with(&fg, factory, cfg, net.transport(1), opts);
    assert!(sim.run_until(|| g.status().init_finished, Duration::from_secs(5)));
    let install = |sim: &mut Simulation, members: Vec<i32>| {
        let got: SArc<Mutex<Option<AppendResp>>> = SArc::default();
        let slot = got.clone();
        let req = InstallSnapshotReq {
            group_id: GROUP,
            term: 1,
            leader_id: 2,
            last_included_index: 5,
            last_included_term: 1,
            members,
            ..Default::default()
        };
        g.inbox()
            .install_snapshot(req, Box::new(move |r| *slot.lock().unwrap() = r.ok()));
        assert!(sim.run_until(|| got.lock().unwrap().is_some(), Duration::from_secs(5)));
        let r = got.lock().unwrap().take().unwrap();
        r
    };
    let began = || {
        trace
            .borrow()
            .iter()
            .any(|a| a.contains("BeginInstallSnapshot"))
    };
    let r = install(&mut sim, vec![1, 2, 4]);
    assert_eq!(r.code, AppendCode::ServerError);
    let st = g.status();
    assert_eq!(st.members.members, vec![1, 2, 3], "the sets are kept");
    assert!(
        !st.refuses_votes_for_install && !began(),
        "no install begun"
    );
    // known nodes (in another order): the install begins (the in-memory log of this
    // test cannot be dropped, so it then fails with SERVER_ERROR too)
    install(&mut sim, vec![2, 3, 1]);
    assert!(began(), "the install began");
    let r = install(&mut sim, vec![1, 2, 5]);
    assert_eq!(r.code, AppendCode::ServerError);
}
