//! Membership change by joint consensus and leader transfer on RaftServers over
//! loopback (raft.md §10, §11, §14.6), with writes running: the admin commands 47–49
//! sent as raw rpc bodies, their codes and idempotency, node use counts, and that every
//! acknowledged write is applied identically on the final members.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_codec::{PbInt, PbLongCallback};
use dt_net::{CmdCodes, NetError, NioClient, PeerId, WriteBody, WritePacket};
use dt_raft::core::Role;
use dt_raft::driver::local::{AppliedLog, CounterSm};
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::rpc::{
    AdminCommitOrAbortReq, AdminPrepareConfigChangeReq, QueryStatusResp, RaftCommands, RpcBody,
};
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer};
use dt_raft::sm::{store_config, RaftError, RaftFactory, RaftInput};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::server_config;

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

/// File logs, counter state machines recording what they executed.
struct TestFactory {
    base: PathBuf,
    io: Arc<ThreadPoolIo>,
    applied: AppliedLog,
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
}

struct Node {
    server: Arc<RaftServer>,
    groups: Arc<RaftGroups<TestFactory>>,
    applied: AppliedLog,
}

impl Node {
    fn group(&self) -> RaftGroup<i64> {
        self.groups.group(1).unwrap()
    }
    fn applied(&self) -> Vec<(u64, Vec<u8>)> {
        self.applied.lock().unwrap().clone()
    }
    fn use_count(&self, id: i32) -> u32 {
        self.server
            .node_manager()
            .nodes()
            .iter()
            .find(|n| n.node.node_id == id)
            .map(|n| n.use_count)
            .unwrap()
    }
}

/// Every node on `ports` runs group 1 whose static sets are `members` and `observers`
/// (nodes in neither start with role none).
fn start_nodes(
    dir: &std::path::Path,
    ports: &[u16],
    members: &[u32],
    observers: &[u32],
) -> Vec<Node> {
    let _ = env_logger::builder().is_test(true).try_init();
    let io = ThreadPoolIo::new(2);
    let nodes: Vec<Node> = (1..=ports.len() as i32)
        .map(|id| new_node(dir, ports, id, members, observers, &io))
        .collect();
    for n in &nodes {
        n.server.start().unwrap();
    }
    for n in &nodes {
        n.server.wait_group_ready(Duration::from_secs(20)).unwrap();
    }
    nodes
}

/// Builds (does not start) node `id` with its data under `dir`.
fn new_node(
    dir: &std::path::Path,
    ports: &[u16],
    id: i32,
    members: &[u32],
    observers: &[u32],
    io: &Arc<ThreadPoolIo>,
) -> Node {
    let server = RaftServer::new(server_config(ports, id)).unwrap();
    let applied = AppliedLog::default();
    let factory = Arc::new(TestFactory {
        base: dir.join(format!("n{id}")),
        io: io.clone(),
        applied: applied.clone(),
    });
    let mut c = RaftGroupConfig::new(1, 0, members.to_vec());
    c.observers = observers.to_vec();
    c.data_dir = factory.base.join("g1");
    c.log_file_size = 1 << 20;
    c.idx_items_per_file = 1 << 12;
    let groups = RaftGroups::install(&server, factory, vec![c], GroupsOptions::default()).unwrap();
    Node {
        server,
        groups,
        applied,
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn leader_of(nodes: &[Node]) -> usize {
    let mut found = None;
    wait_until("a leader", Duration::from_secs(20), || {
        found = nodes
            .iter()
            .position(|n| n.group().status().role == Role::Leader);
        found.is_some()
    });
    found.unwrap()
}

struct Client {
    c: NioClient,
    peers: Vec<PeerId>,
}

impl Client {
    fn new(ports: &[u16]) -> Client {
        let (c, peers) = loopback::client_to(ports);
        Client { c, peers }
    }
    fn call(&self, node: usize, cmd: i32, body: WriteBody) -> Result<dt_net::ReadPacket, NetError> {
        self.c.send_request_sync(
            Some(self.peers[node]),
            WritePacket::request(cmd, body),
            Duration::from_secs(10),
        )
    }
    fn index(&self, node: usize, cmd: i32, body: WriteBody) -> Result<u64, NetError> {
        let r = self.call(node, cmd, body)?;
        Ok(r.decode_body::<PbLongCallback>().unwrap().value as u64)
    }
    fn prepare(
        &self,
        node: usize,
        members: &[i32],
        prepared: &[i32],
        prepared_observers: &[i32],
    ) -> Result<u64, NetError> {
        self.prepare_from(node, (members, &[]), prepared, prepared_observers)
    }
    fn prepare_from(
        &self,
        node: usize,
        (members, observers): (&[i32], &[i32]),
        prepared: &[i32],
        prepared_observers: &[i32],
    ) -> Result<u64, NetError> {
        let req = AdminPrepareConfigChangeReq {
            group_id: 1,
            members: members.to_vec(),
            observers: observers.to_vec(),
            prepared_members: prepared.to_vec(),
            prepared_observers: prepared_observers.to_vec(),
        };
        self.index(
            node,
            RaftCommands::RAFT_ADMIN_PREPARE_CHANGE,
            WriteBody::Encodable(Box::new(req)),
        )
    }
    fn commit(&self, node: usize, prepare_index: u64) -> Result<u64, NetError> {
        let req = AdminCommitOrAbortReq {
            group_id: 1,
            prepare_index: prepare_index as i64,
        };
        self.index(
            node,
            RaftCommands::RAFT_ADMIN_COMMIT_CHANGE,
            WriteBody::Encodable(Box::new(req)),
        )
    }
    fn abort(&self, node: usize) -> Result<u64, NetError> {
        let req = AdminCommitOrAbortReq {
            group_id: 1,
            prepare_index: 0,
        };
        self.index(
            node,
            RaftCommands::RAFT_ADMIN_ABORT_CHANGE,
            WriteBody::Encodable(Box::new(req)),
        )
    }
    fn status(&self, node: usize) -> QueryStatusResp {
        let r = self
            .call(
                node,
                RaftCommands::RAFT_QUERY_STATUS,
                WriteBody::Encodable(Box::new(PbInt(1))),
            )
            .unwrap();
        QueryStatusResp::decode(&r.body).unwrap()
    }
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn remote_err(r: Result<u64, NetError>) -> (i32, String) {
    match r {
        Err(NetError::Remote { code, msg }) => (code, msg),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// Writes of `1` to whichever node leads, until stopped; returns the acknowledged
/// `(index, total)` pairs.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u64, i64)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(groups: Vec<RaftGroup<i64>>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let thread = std::thread::spawn(move || {
            let mut at = 0;
            while !s.load(Ordering::Relaxed) {
                let g = &groups[at % groups.len()];
                match g
                    .submit_async(RaftInput::new(0, &b"1"[..]))
                    .wait(Duration::from_secs(5))
                {
                    Ok(r) => a.lock().unwrap().push(r),
                    Err(RaftError::NotLeader { leader: Some(l) }) => {
                        at = groups
                            .iter()
                            .position(|g| g.node_id() == l)
                            .unwrap_or(at + 1)
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
            acked,
            thread: Some(thread),
        }
    }
    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
    fn wait_more(&self, n: usize) {
        let want = self.count() + n;
        wait_until("writes to go on", Duration::from_secs(10), || {
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
        wait_until("applied everywhere", Duration::from_secs(10), || {
            n.applied().last().is_some_and(|e| e.0 >= last)
        });
    }
    let first = nodes[0].applied();
    for n in &nodes[1..] {
        let a = n.applied();
        let k = a.len().min(first.len());
        assert_eq!(a[..k], first[..k], "node {}", n.server.node_id());
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
fn membership_three_to_five_and_back_while_writes_run() {
    // Nodes 4 and 5 start as observers: they hold the log from its first entry (a node
    // added with an empty log later would need an install snapshot), then are promoted
    // to members and finally removed from the group.
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(5);
    let nodes = start_nodes(dir.path(), &ports, &[1, 2, 3], &[4, 5]);
    let c = Client::new(&ports);
    let l = leader_of(&nodes);
    assert!(l < 3);
    assert_eq!(nodes[3].group().status().role, Role::Observer);
    wait_until("use counts at start", Duration::from_secs(5), || {
        nodes[l].use_count(4) == 1 && nodes[l].use_count(1) == 1
    });
    let writer = Writer::start(nodes.iter().map(|n| n.group()).collect());
    writer.wait_more(20);

    // a follower refuses with the leader's id
    let f = (l + 1) % 3;
    let e = c
        .prepare_from(f, (&[1, 2, 3], &[4, 5]), &[1, 2, 3, 4, 5], &[])
        .unwrap_err();
    match e {
        NetError::Remote { code, .. } => assert_eq!(code, CmdCodes::NOT_RAFT_LEADER),
        other => panic!("{other:?}"),
    }
    // prepare 3 -> 5; a repeat with the same sets succeeds with a new index
    let p1 = c
        .prepare_from(l, (&[1, 2, 3], &[4, 5]), &[1, 2, 3, 4, 5], &[])
        .unwrap();
    let p2 = c
        .prepare_from(l, (&[3, 2, 1], &[5, 4]), &[1, 2, 3, 4, 5], &[])
        .unwrap();
    assert!(p2 > p1, "{p1} {p2}");
    let s = c.status(l);
    assert_eq!(sorted(&s.members), [1, 2, 3]);
    assert_eq!(sorted(&s.prepared_members), [1, 2, 3, 4, 5]);
    // RAFT_QUERY_STATUS reports the index commit-change must name (the admin tools
    // check it before committing)
    assert_eq!(s.last_config_change_index, p2 as i64);
    // the prepared members run as followers of the joint configuration
    for n in &nodes[3..] {
        wait_until("new members follow", Duration::from_secs(10), || {
            n.group().status().role == Role::Follower
        });
    }
    writer.wait_more(20);
    // commit with the first prepare index: it is no longer lastConfigChangeIndex
    let (code, msg) = remote_err(c.commit(l, p1));
    assert_eq!(code, CmdCodes::SYS_ERROR);
    assert!(msg.contains("prepareIndex not match"), "{msg}");
    let ci = c.commit(l, p2).unwrap();
    assert!(ci > p2);
    // after the commit is applied, a repeated commit fails
    let (code, msg) = remote_err(c.commit(l, p2));
    assert_eq!(code, CmdCodes::SYS_ERROR);
    assert!(msg.contains("prepareIndex not match"), "{msg}");
    for i in 0..5 {
        wait_until("five members everywhere", Duration::from_secs(10), || {
            let s = c.status(i);
            sorted(&s.members) == [1, 2, 3, 4, 5] && s.prepared_members.is_empty()
        });
    }
    // §14.6: the use counts follow the sets
    wait_until("use counts", Duration::from_secs(5), || {
        nodes[l].use_count(4) == 1 && nodes[l].use_count(5) == 1
    });
    for n in &nodes[3..] {
        assert_eq!(n.group().status().role, Role::Follower);
    }
    writer.wait_more(30);

    // and back to 3
    let p = c.prepare(l, &[1, 2, 3, 4, 5], &[1, 2, 3], &[]).unwrap();
    writer.wait_more(10);
    c.commit(l, p).unwrap();
    for n in &nodes[3..] {
        wait_until(
            "removed nodes have no role",
            Duration::from_secs(10),
            || n.group().status().role == Role::None,
        );
    }
    for i in 0..3 {
        wait_until("three members everywhere", Duration::from_secs(10), || {
            sorted(&c.status(i).members) == [1, 2, 3]
        });
    }
    wait_until("use counts back", Duration::from_secs(5), || {
        nodes[l].use_count(4) == 0 && nodes[l].use_count(5) == 0 && nodes[l].use_count(1) == 1
    });
    // the removed nodes stop receiving entries (their legacy replication has ended
    // once they have the commit entry)
    std::thread::sleep(Duration::from_millis(300));
    let removed_applied: Vec<usize> = (3..5).map(|i| nodes[i].applied().len()).collect();
    writer.wait_more(30);
    let acked = writer.finish();
    for (k, i) in (3..5).enumerate() {
        assert_eq!(
            nodes[i].applied().len(),
            removed_applied[k],
            "node {}",
            i + 1
        );
    }
    let members: Vec<&Node> = nodes[..3].iter().collect();
    check_applied(&members, &acked);
    // the removed nodes applied a prefix of the same log
    let all = nodes[0].applied();
    for n in &nodes[3..] {
        let a = n.applied();
        assert!(!a.is_empty());
        assert_eq!(a[..], all[..a.len()]);
    }
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}

#[test]
fn a_prepared_change_is_aborted_and_refusals_have_the_reference_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let nodes = start_nodes(dir.path(), &ports, &[1, 2, 3], &[]);
    let c = Client::new(&ports);
    let l = leader_of(&nodes);

    let (code, msg) = remote_err(c.prepare(l, &[1, 2], &[1, 2, 3, 4], &[]));
    assert_eq!(code, CmdCodes::SYS_ERROR);
    assert!(msg.contains("old members or observers not match"), "{msg}");
    let (_, msg) = remote_err(c.prepare(l, &[1, 2, 3], &[], &[]));
    assert!(msg.contains("preparedMembers are empty"), "{msg}");
    let (_, msg) = remote_err(c.prepare(l, &[1, 2, 3], &[1, 2, 3, 9], &[]));
    assert!(msg.contains("node not exist: 9"), "{msg}");
    let (_, msg) = remote_err(c.prepare(l, &[1, 2, 3], &[1, 2, 3], &[3]));
    assert!(msg.contains("both member and observer"), "{msg}");

    // prepare 4 as a member, then abort: back to the old sets
    let p = c.prepare(l, &[1, 2, 3], &[1, 2, 3, 4], &[]).unwrap();
    for i in 0..3 {
        wait_until("joint everywhere", Duration::from_secs(10), || {
            sorted(&c.status(i).prepared_members) == [1, 2, 3, 4]
        });
    }
    let a = c.abort(l).unwrap();
    assert!(a > p);
    for i in 0..3 {
        wait_until("aborted everywhere", Duration::from_secs(10), || {
            let s = c.status(i);
            sorted(&s.members) == [1, 2, 3] && s.prepared_members.is_empty()
        });
    }
    // a repeated abort is a harmless entry
    let a2 = c.abort(l).unwrap();
    assert!(a2 > a);
    // the aborted prepare cannot be committed
    let (_, msg) = remote_err(c.commit(l, p));
    assert!(msg.contains("prepareIndex not match"), "{msg}");
    // the group still commits
    let (_, total) = nodes[l]
        .group()
        .submit_async(RaftInput::new(0, &b"5"[..]))
        .wait(Duration::from_secs(5))
        .unwrap();
    assert_eq!(total, 5);
    // node 4 was never more than prepared: nothing uses it now
    wait_until("use count of 4", Duration::from_secs(5), || {
        nodes[l].use_count(4) == 0
    });

    // §11.4: a committed change outlives a restart. A follower f leaves the group; the
    // other follower k restarts with the static configuration (1, 2, 3) and gets the
    // sets back from its log.
    let mut nodes = nodes;
    let f = (l + 1) % 3;
    let k = (l + 2) % 3;
    let left: Vec<i32> = [l, k].iter().map(|i| *i as i32 + 1).collect();
    let p = c.prepare(l, &[1, 2, 3], &left, &[]).unwrap();
    c.commit(l, p).unwrap();
    wait_until("f removed", Duration::from_secs(10), || {
        nodes[f].group().status().role == Role::None
    });
    let (before, _) = nodes[l]
        .group()
        .submit_async(RaftInput::new(0, &b"1"[..]))
        .wait(Duration::from_secs(5))
        .unwrap();
    nodes[k].server.stop(Duration::from_secs(5));
    let io = ThreadPoolIo::new(1);
    let again = new_node(dir.path(), &ports, k as i32 + 1, &[1, 2, 3], &[], &io);
    again.server.start().unwrap();
    nodes[k] = again;
    wait_until("k replayed", Duration::from_secs(10), || {
        let s = nodes[k].group().status();
        s.init_finished && s.last_applied >= before
    });
    assert_eq!(sorted(&c.status(k).members), sorted(&left));
    // the two remaining members commit together again
    let (after, total) = nodes[l]
        .group()
        .submit_async(RaftInput::new(0, &b"1"[..]))
        .wait(Duration::from_secs(10))
        .unwrap();
    assert!(after > before);
    assert_eq!(total, 7);
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}

#[test]
fn leader_transfer_while_writes_run_loses_no_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let nodes = start_nodes(dir.path(), &ports, &[1, 2, 3], &[]);
    let l = leader_of(&nodes);
    let writer = Writer::start(nodes.iter().map(|n| n.group()).collect());
    writer.wait_more(30);
    let to = (l + 1) % 3;
    let term = nodes[l].group().status().term;
    nodes[l]
        .group()
        .transfer_leadership(to as u32 + 1, Duration::from_secs(5))
        .wait(Duration::from_secs(6))
        .unwrap();
    wait_until("the new leader", Duration::from_secs(5), || {
        nodes[to].group().status().role == Role::Leader
    });
    let before = writer.acked.lock().unwrap().len();
    writer.wait_more(30);
    // the writes after the transfer went to the new leader
    let acked = writer.finish();
    assert!(acked.len() > before + 29);
    // §10.3: the new leader keeps the term
    assert_eq!(nodes[to].group().status().term, term);
    assert_eq!(nodes[to].group().status().role, Role::Leader);
    let all: Vec<&Node> = nodes.iter().collect();
    check_applied(&all, &acked);
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}
