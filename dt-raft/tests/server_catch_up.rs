//! Nodes that start with nothing catch up with a running group on RaftServers over
//! loopback, while writes run: a fourth node started at run time with an empty data
//! directory is added the way an operator does it (ADD_NODE on the old
//! nodes, ADD_GROUP on the new one, observer, then member by joint consensus), catches
//! up from the log and then votes; and a wiped follower is caught up by install
//! snapshot from a leader that has taken a snapshot and deleted the start of its log,
//! and keeps replicating afterwards. Every acknowledged write is applied identically
//! everywhere (the counter state machine's snapshot carries its record of applied
//! entries, so a node caught up by an install has the same record).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_codec::{PbInt, PbLongCallback};
use dt_net::{NetError, NioClient, PeerId, WriteBody, WritePacket};
use dt_raft::core::Role;
use dt_raft::driver::local::{AppliedLog, CounterSm};
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::rpc::{
    AdminAddGroupReq, AdminAddNodeReq, AdminCommitOrAbortReq, AdminPrepareConfigChangeReq,
    QueryStatusResp, RaftCommands, RpcBody,
};
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer};
use dt_raft::sm::{store_config, RaftError, RaftFactory, RaftInput};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::server_config;

const G: i32 = 1;

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

/// How the group's log and snapshots are set up.
#[derive(Clone, Copy)]
enum Storage {
    /// Defaults: no snapshot during the test, the whole log kept.
    KeepLog,
    /// Small log files, a snapshot every second and the log before it deleted at once.
    SnapshotAndDelete,
}

/// File logs, counter state machines recording what they executed, and run-time group
/// configurations (ADD_GROUP).
struct TestFactory {
    base: PathBuf,
    io: Arc<ThreadPoolIo>,
    applied: AppliedLog,
    storage: Storage,
}

impl TestFactory {
    fn config(&self, members: &[u32], observers: &[u32]) -> RaftGroupConfig {
        let mut c = RaftGroupConfig::new(G, 0, members.to_vec());
        c.observers = observers.to_vec();
        c.data_dir = self.base.join("g1");
        c.idx_items_per_file = 1 << 12;
        match self.storage {
            Storage::KeepLog => c.log_file_size = 1 << 20,
            Storage::SnapshotAndDelete => {
                c.log_file_size = 16 << 10;
                c.save_snapshot_seconds = 1;
                c.max_keep_snapshots = 1;
                c.delete_logs_after_take_snapshot = true;
                c.auto_delete_log_delay_seconds = 0;
            }
        }
        c
    }
}

impl RaftFactory for TestFactory {
    type Sm = CounterSm;
    fn create_state_machine(&self, _cfg: &RaftGroupConfig) -> Result<CounterSm, RaftError> {
        Ok(CounterSm::recording(self.applied.clone()))
    }
    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError> {
        Ok(Box::new(DefaultRaftLog::new(
            &cfg.data_dir,
            store_config(cfg),
            self.io.clone(),
        )))
    }
    fn create_config(
        &self,
        group_id: i32,
        members: &[u32],
        observers: &[u32],
    ) -> Result<RaftGroupConfig, RaftError> {
        assert_eq!(group_id, G);
        Ok(self.config(members, observers))
    }
}

struct Node {
    id: i32,
    server: Arc<RaftServer>,
    groups: Arc<RaftGroups<TestFactory>>,
    applied: AppliedLog,
}

impl Node {
    fn group(&self) -> Option<RaftGroup<i64>> {
        self.groups.group(G)
    }
    fn role(&self) -> Role {
        self.group().map_or(Role::None, |g| g.status().role)
    }
    fn applied(&self) -> Vec<(u64, Vec<u8>)> {
        self.applied.lock().unwrap().clone()
    }
    fn last_applied(&self) -> u64 {
        self.applied().last().map_or(0, |e| e.0)
    }
    fn stop(&self) {
        self.server.stop(Duration::from_secs(5));
    }
}

/// Starts node `id` whose server list is `ports` (node i+1 at ports[i]), with its data
/// under `<dir>/n<id>`, running group 1 with the static sets `sets` (None: no group),
/// and waits until it is group ready.
/// Nodes 1, 2 and 3 on the first three ports, members of group 0, keeping their logs.
fn start_members_1_2_3(dir: &Path, ports: &[u16], io: &Arc<ThreadPoolIo>) -> Vec<Node> {
    (1..=3)
        .map(|id| {
            start_node(
                dir,
                ports,
                id,
                Some((&[1, 2, 3], &[])),
                Storage::KeepLog,
                io,
            )
        })
        .collect()
}

fn start_node(
    dir: &Path,
    ports: &[u16],
    id: i32,
    sets: Option<(&[u32], &[u32])>,
    storage: Storage,
    io: &Arc<ThreadPoolIo>,
) -> Node {
    let server = RaftServer::new(server_config(ports, id)).unwrap();
    let applied = AppliedLog::default();
    let factory = Arc::new(TestFactory {
        base: dir.join(format!("n{id}")),
        io: io.clone(),
        applied: applied.clone(),
        storage,
    });
    let cfgs = sets
        .map(|(m, o)| factory.config(m, o))
        .into_iter()
        .collect();
    let groups = RaftGroups::install(&server, factory, cfgs, GroupsOptions::default()).unwrap();
    server.start().unwrap();
    Node {
        id,
        server,
        groups,
        applied,
    }
}

fn wait_ready(nodes: &[&Node]) {
    for n in nodes {
        n.server.wait_group_ready(Duration::from_secs(20)).unwrap();
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The index (into `nodes`) of the running node that leads.
fn leader_of(nodes: &[&Node]) -> usize {
    let mut found = None;
    wait_until("a leader", Duration::from_secs(20), || {
        found = nodes.iter().position(|n| n.role() == Role::Leader);
        found.is_some()
    });
    found.unwrap()
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// An admin client on the replicate ports, node id i+1 at ports[i].
struct Admin {
    c: NioClient,
    peers: Vec<PeerId>,
}

impl Admin {
    fn new(ports: &[u16]) -> Admin {
        let (c, peers) = loopback::client_to(ports);
        Admin { c, peers }
    }
    fn call(&self, node: i32, cmd: i32, body: impl RpcBodyBox) -> dt_net::ReadPacket {
        self.try_call(node, cmd, body)
            .unwrap_or_else(|e| panic!("command {cmd} to node {node}: {e}"))
    }
    fn try_call(
        &self,
        node: i32,
        cmd: i32,
        body: impl RpcBodyBox,
    ) -> Result<dt_net::ReadPacket, NetError> {
        self.try_call_within(node, cmd, body, Duration::from_secs(10))
    }
    fn try_call_within(
        &self,
        node: i32,
        cmd: i32,
        body: impl RpcBodyBox,
        timeout: Duration,
    ) -> Result<dt_net::ReadPacket, NetError> {
        self.c.send_request_sync(
            Some(self.peers[node as usize - 1]),
            WritePacket::request(cmd, body.boxed()),
            timeout,
        )
    }
    fn add_node(&self, target: i32, id: i32, port: u16) {
        self.call(
            target,
            RaftCommands::RAFT_ADMIN_ADD_NODE,
            AdminAddNodeReq {
                node_id: id,
                host: "127.0.0.1".into(),
                port: port as i32,
            },
        );
    }
    fn add_group(&self, target: i32, members: &str, observers: &str) {
        self.call(
            target,
            RaftCommands::RAFT_ADMIN_ADD_GROUP,
            AdminAddGroupReq {
                group_id: G,
                node_id_of_members: members.into(),
                node_id_of_observers: observers.into(),
            },
        );
    }
    /// Prepare then commit `old` → `new` (members, observers) on the leader `node`;
    /// returns the commit index.
    fn change(&self, node: i32, old: (&[i32], &[i32]), new: (&[i32], &[i32])) -> u64 {
        let p = self.call(
            node,
            RaftCommands::RAFT_ADMIN_PREPARE_CHANGE,
            AdminPrepareConfigChangeReq {
                group_id: G,
                members: old.0.to_vec(),
                observers: old.1.to_vec(),
                prepared_members: new.0.to_vec(),
                prepared_observers: new.1.to_vec(),
            },
        );
        let p = p.decode_body::<PbLongCallback>().unwrap().value;
        let c = self.call(
            node,
            RaftCommands::RAFT_ADMIN_COMMIT_CHANGE,
            AdminCommitOrAbortReq {
                group_id: G,
                prepare_index: p,
            },
        );
        c.decode_body::<PbLongCallback>().unwrap().value as u64
    }
    fn status(&self, node: i32) -> QueryStatusResp {
        let r = self.call(node, RaftCommands::RAFT_QUERY_STATUS, PbInt(G));
        QueryStatusResp::decode(&r.body).unwrap()
    }
}

/// Request bodies boxed for a WritePacket.
trait RpcBodyBox {
    fn boxed(self) -> WriteBody;
}

impl<T: dt_codec::encode::Encodable + Send + 'static> RpcBodyBox for T {
    fn boxed(self) -> WriteBody {
        WriteBody::Encodable(Box::new(self))
    }
}

/// Writes of `1` (padded with `pad` spaces) to whichever node leads, until stopped;
/// returns the acknowledged `(index, total)` pairs. Nodes added later join its list.
struct Writer {
    stop: Arc<AtomicBool>,
    groups: Arc<Mutex<Vec<RaftGroup<i64>>>>,
    acked: Arc<Mutex<Vec<(u64, i64)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(nodes: &[&Node], pad: usize) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let groups = Arc::new(Mutex::new(
            nodes.iter().filter_map(|n| n.group()).collect::<Vec<_>>(),
        ));
        let (s, a, gs) = (stop.clone(), acked.clone(), groups.clone());
        let body = format!("1{}", " ".repeat(pad)).into_bytes();
        let thread = std::thread::spawn(move || {
            let mut at = 0;
            while !s.load(Ordering::Relaxed) {
                let g = {
                    let gs = gs.lock().unwrap();
                    gs[at % gs.len()].clone()
                };
                match g
                    .submit_async(RaftInput::new(0, body.clone()))
                    .wait(Duration::from_secs(5))
                {
                    Ok(r) => a.lock().unwrap().push(r),
                    Err(RaftError::NotLeader { leader: Some(l) }) => {
                        let gs = gs.lock().unwrap();
                        at = gs.iter().position(|g| g.node_id() == l).unwrap_or(at + 1)
                    }
                    Err(_) => {
                        at += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        });
        Writer {
            stop,
            groups,
            acked,
            thread: Some(thread),
        }
    }
    fn add(&self, n: &Node) {
        self.groups.lock().unwrap().push(n.group().unwrap());
    }
    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
    fn last_index(&self) -> u64 {
        self.acked.lock().unwrap().last().map_or(0, |a| a.0)
    }
    fn wait_more(&self, n: usize) {
        let want = self.count() + n;
        wait_until("writes to go on", Duration::from_secs(20), || {
            self.count() >= want
        });
    }
    fn finish(mut self) -> Vec<(u64, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// Every acknowledged write is applied on each of `nodes` at its index with its total,
/// and they all applied the same entries.
fn check_applied(nodes: &[&Node], acked: &[(u64, i64)]) {
    let last = acked.iter().map(|a| a.0).max().unwrap();
    for n in nodes {
        wait_until("applied everywhere", Duration::from_secs(20), || {
            n.last_applied() >= last
        });
    }
    let first = nodes[0].applied();
    for n in &nodes[1..] {
        let a = n.applied();
        let k = a.len().min(first.len());
        assert_eq!(a[..k], first[..k], "node {}", n.id);
    }
    // each write adds 1: an acknowledged total is the number of writes applied up to
    // and including its index
    for &(index, total) in acked {
        let pos = first.iter().position(|e| e.0 == index);
        let pos = pos.unwrap_or_else(|| panic!("acknowledged write {index} is not applied"));
        assert_eq!(pos as i64 + 1, total, "write at {index}");
    }
}

#[test]
fn an_empty_node_added_at_run_time_catches_up_and_votes() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let io = ThreadPoolIo::new(2);
    // Nodes 1-3 know only each other.
    let mut nodes: Vec<Node> = start_members_1_2_3(dir.path(), &ports[..3], &io);
    wait_ready(&nodes.iter().collect::<Vec<_>>());
    let writer = Writer::start(&nodes.iter().collect::<Vec<_>>(), 0);
    writer.wait_more(30);
    let admin = Admin::new(&ports);

    // The operator tells the running nodes where node 4 will be, starts it with an
    // empty data directory and no group (it is ready once the others answer its node
    // pings), and creates the group on it as an observer.
    for id in 1..=3 {
        admin.add_node(id, 4, ports[3]);
    }
    nodes.push(start_node(
        dir.path(),
        &ports,
        4,
        None,
        Storage::KeepLog,
        &io,
    ));
    wait_ready(&[&nodes[3]]);
    assert!(nodes[3].group().is_none());
    admin.add_group(4, "1,2,3", "4");
    wait_until("the new group runs", Duration::from_secs(10), || {
        nodes[3].role() == Role::Observer
    });
    writer.add(&nodes[3]);
    assert_eq!(nodes[3].last_applied(), 0);

    // The leader learns it as an observer (3 members, observer 4) ...
    let l = leader_of(&nodes.iter().collect::<Vec<_>>()) as i32 + 1;
    admin.change(l, (&[1, 2, 3], &[]), (&[1, 2, 3], &[4]));
    // ... which catches up from the log while the writes go on ...
    writer.wait_more(20);
    let behind = writer.last_index();
    wait_until("the observer caught up", Duration::from_secs(20), || {
        nodes[3].last_applied() >= behind
    });
    assert_eq!(nodes[3].applied()[0].0, nodes[0].applied()[0].0);

    // ... and is promoted: members 1, 2, 3, 4.
    let l = leader_of(&nodes.iter().collect::<Vec<_>>()) as i32 + 1;
    let ci = admin.change(l, (&[1, 2, 3], &[4]), (&[1, 2, 3, 4], &[]));
    for id in 1..=4 {
        wait_until("four members everywhere", Duration::from_secs(10), || {
            let s = admin.status(id);
            sorted(&s.members) == [1, 2, 3, 4] && s.prepared_members.is_empty()
        });
    }
    assert_eq!(nodes[3].role(), Role::Follower);
    assert!(admin.status(4).last_applied as u64 >= ci);

    // It votes and acknowledges: with an old follower stopped, three of four members
    // (node 4 among them) carry the writes and elect node 4.
    let l = leader_of(&nodes.iter().collect::<Vec<_>>());
    let gone = (0..3).find(|&i| i != l).unwrap();
    nodes[gone].stop();
    writer.wait_more(20);
    nodes[l]
        .group()
        .unwrap()
        .transfer_leadership(4, Duration::from_secs(10))
        .wait(Duration::from_secs(15))
        .unwrap();
    wait_until("node 4 leads", Duration::from_secs(10), || {
        nodes[3].role() == Role::Leader
    });
    writer.wait_more(20);

    // 4 -> 3: the stopped node leaves the group.
    let old: Vec<i32> = vec![1, 2, 3, 4];
    let new: Vec<i32> = old
        .iter()
        .copied()
        .filter(|&id| id != gone as i32 + 1)
        .collect();
    admin.change(4, (&old, &[]), (&new, &[]));
    for &id in &new {
        wait_until("three members everywhere", Duration::from_secs(10), || {
            sorted(&admin.status(id).members) == new
        });
    }
    writer.wait_more(20);
    let acked = writer.finish();
    let live: Vec<&Node> = nodes.iter().filter(|n| n.id != gone as i32 + 1).collect();
    check_applied(&live, &acked);
    for n in &live {
        n.stop();
    }
}

/// Whether the first log file (the one starting at position 0) of node `id` is gone.
fn first_log_file_deleted(dir: &Path, id: i32) -> bool {
    !dir.join(format!("n{id}/g1/log/00000000000000000000"))
        .exists()
}

#[test]
fn a_wiped_follower_installs_from_a_leader_that_deleted_its_log() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let io = ThreadPoolIo::new(2);
    let start = |id| {
        start_node(
            dir.path(),
            &ports,
            id,
            Some((&[1, 2, 3], &[])),
            Storage::SnapshotAndDelete,
            &io,
        )
    };
    let mut nodes: Vec<Node> = (1..=3).map(start).collect();
    wait_ready(&nodes.iter().collect::<Vec<_>>());
    // 1 KiB entries fill a 16 KiB log file every 15 or so
    let writer = Writer::start(&nodes.iter().collect::<Vec<_>>(), 1000);
    writer.wait_more(50);

    // A follower stops and loses its data directory.
    let l = leader_of(&nodes.iter().collect::<Vec<_>>());
    let f = (0..3).find(|&i| i != l).unwrap();
    nodes[f].stop();
    std::fs::remove_dir_all(dir.path().join(format!("n{}", f + 1))).unwrap();
    // Meanwhile the leader saves snapshots and deletes the log before them.
    let l = leader_of(&nodes.iter().collect::<Vec<_>>());
    wait_until(
        "the leader deleted the start of its log",
        Duration::from_secs(30),
        || first_log_file_deleted(dir.path(), l as i32 + 1),
    );
    writer.wait_more(20);
    let before = writer.last_index();

    // It restarts empty: entry 1 is gone from the leader, so only an install
    // snapshot can catch it up.
    nodes[f] = start(f as i32 + 1);
    wait_until("the wiped node caught up", Duration::from_secs(30), || {
        nodes[f].last_applied() >= before
    });
    let snap_dir = dir.path().join(format!("n{}/g1/snapshot", f + 1));
    wait_until(
        "a snapshot saved after the install",
        Duration::from_secs(10),
        || {
            std::fs::read_dir(&snap_dir).is_ok_and(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".idx"))
            })
        },
    );
    // It keeps replicating: later writes reach it from the log.
    writer.wait_more(30);
    let acked = writer.finish();
    let all: Vec<&Node> = nodes.iter().collect();
    check_applied(&all, &acked);
    for n in &nodes {
        n.stop();
    }
}

#[test]
fn a_configuration_naming_a_node_missing_from_the_node_table_stops_the_group_at_apply() {
    // §11.2 step 3: the operator told only the leader about node 4 (ADD_NODE), so the
    // leader accepts the prepare, but the followers cannot apply a configuration
    // naming a node they do not know: their group stops, as the reference's does.
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let io = ThreadPoolIo::new(2);
    let nodes: Vec<Node> = start_members_1_2_3(dir.path(), &ports[..3], &io);
    let all: Vec<&Node> = nodes.iter().collect();
    wait_ready(&all);
    let l = leader_of(&all);
    let admin = Admin::new(&ports);
    admin.add_node(l as i32 + 1, 4, ports[3]);
    let followers: Vec<RaftGroup<i64>> = (0..3)
        .filter(|&i| i != l)
        .map(|i| nodes[i].group().unwrap())
        .collect();
    for g in &followers {
        assert!(!g.wait_stopped(Duration::from_millis(1)));
    }
    // the answer may never come: the heartbeat after the prepare needs a follower
    let _ = admin.try_call_within(
        l as i32 + 1,
        RaftCommands::RAFT_ADMIN_PREPARE_CHANGE,
        AdminPrepareConfigChangeReq {
            group_id: G,
            members: vec![1, 2, 3],
            observers: vec![],
            prepared_members: vec![1, 2, 3],
            prepared_observers: vec![4],
        },
        Duration::from_secs(1),
    );
    for g in &followers {
        assert!(
            g.wait_stopped(Duration::from_secs(10)),
            "node {} still runs the group",
            g.node_id()
        );
        // nothing of the configuration was applied there
        assert!(g.status().members.prepared_observers.is_empty());
    }
    for n in &nodes {
        n.stop();
    }
}
