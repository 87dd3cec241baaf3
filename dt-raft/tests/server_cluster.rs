//! Three RaftServers in one process over loopback: groups built by a RaftFactory on the
//! fiber driver, file logs in a temporary directory. They elect a leader, commit writes
//! submitted through RaftGroup, answer QUERY_STATUS over the wire, transfer leadership
//! on the admin command, and add and remove a group at run time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dt_codec::PbInt;
use dt_common::{PerfFigures, PerfHook, PerfStats, PerfType};
use dt_net::{CmdCodes, NetError, NioClient, PeerId, WriteBody, WritePacket};
use dt_raft::core::Role;
use dt_raft::driver::local::CounterSm;
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::rpc::{
    AdminAddGroupReq, AdminListGroupsResp, QueryStatusResp, RaftCommands, RpcBody,
    TransferLeaderReq,
};
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer};
use dt_raft::sm::{store_config, RaftError, RaftFactory, RaftInput};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::server_config;

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

/// File logs under `<base>/g<group>`, counter state machines, and run-time group
/// configurations (members from ADD_GROUP).
struct TestFactory {
    base: PathBuf,
    io: Arc<ThreadPoolIo>,
    perf: PerfHook,
}

impl TestFactory {
    fn config(&self, group_id: i32, members: Vec<u32>) -> RaftGroupConfig {
        let mut c = RaftGroupConfig::new(group_id, 0, members);
        c.data_dir = self.base.join(format!("g{group_id}"));
        c.log_file_size = 1 << 20;
        c.idx_items_per_file = 1 << 12;
        c.perf = self.perf.clone();
        c
    }
}

impl RaftFactory for TestFactory {
    type Sm = CounterSm;
    fn create_state_machine(&self, _cfg: &RaftGroupConfig) -> Result<CounterSm, RaftError> {
        Ok(CounterSm::new())
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
        let mut c = self.config(group_id, members.to_vec());
        c.observers = observers.to_vec();
        Ok(c)
    }
}

struct Node {
    server: Arc<RaftServer>,
    groups: Arc<RaftGroups<TestFactory>>,
}

fn start_cluster(dir: &std::path::Path, ports: &[u16], dispatchers: usize) -> Vec<Node> {
    start_nodes(
        dir,
        ports,
        1,
        dispatchers,
        &(1..=ports.len() as i32).collect::<Vec<_>>(),
    )
}

/// Builds and starts nodes `ids` of a cluster on `ports`, each with groups 1..=`groups`
/// (all nodes members), and waits until they are group ready.
fn start_nodes(
    dir: &std::path::Path,
    ports: &[u16],
    groups: i32,
    dispatchers: usize,
    ids: &[i32],
) -> Vec<Node> {
    start_nodes_reporting(dir, ports, groups, dispatchers, ids, |_| {
        PerfHook::default()
    })
}

/// [`start_nodes`] with each node's groups reporting to `perf(node id)`.
fn start_nodes_reporting(
    dir: &std::path::Path,
    ports: &[u16],
    groups: i32,
    dispatchers: usize,
    ids: &[i32],
    perf: impl Fn(i32) -> PerfHook,
) -> Vec<Node> {
    let io = ThreadPoolIo::new(2);
    let nodes: Vec<Node> = ids
        .iter()
        .map(|&id| {
            let server = RaftServer::new(server_config(ports, id)).unwrap();
            let factory = Arc::new(TestFactory {
                base: dir.join(format!("n{id}")),
                io: io.clone(),
                perf: perf(id),
            });
            let cfgs = (1..=groups)
                .map(|g| factory.config(g, (1..=ports.len() as u32).collect()))
                .collect();
            let groups =
                RaftGroups::install(&server, factory, cfgs, GroupsOptions { dispatchers }).unwrap();
            Node { server, groups }
        })
        .collect();
    for n in &nodes {
        n.server.start().unwrap();
    }
    for n in &nodes {
        n.server.wait_group_ready(Duration::from_secs(20)).unwrap();
    }
    nodes
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn leader_of(nodes: &[Node], gid: i32) -> usize {
    let mut found = None;
    wait_until("a leader", Duration::from_secs(20), || {
        found = nodes.iter().position(|n| {
            n.groups
                .group(gid)
                .is_some_and(|g| g.status().role == Role::Leader)
        });
        found.is_some()
    });
    found.unwrap()
}

fn group(nodes: &[Node], i: usize, gid: i32) -> RaftGroup<i64> {
    nodes[i].groups.group(gid).unwrap()
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
    fn status(&self, node: usize, gid: i32) -> QueryStatusResp {
        let r = self
            .call(
                node,
                RaftCommands::RAFT_QUERY_STATUS,
                WriteBody::Encodable(Box::new(PbInt(gid))),
            )
            .unwrap();
        QueryStatusResp::decode(&r.body).unwrap()
    }
}

fn write(g: &RaftGroup<i64>, v: i64) -> Result<(u64, i64), RaftError> {
    g.submit_async(RaftInput::new(0, v.to_string().into_bytes()))
        .wait(Duration::from_secs(10))
}

#[test]
fn three_servers_elect_commit_and_answer_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let nodes = start_cluster(dir.path(), &ports, 0);
    let l = leader_of(&nodes, 1);
    let lg = group(&nodes, l, 1);

    // Writes through the leader's RaftGroup commit and apply in order everywhere.
    let mut last = 0;
    for v in 1..=20 {
        let (idx, total) = write(&lg, v).unwrap();
        assert!(idx > last);
        last = idx;
        assert_eq!(total, (1..=v).sum::<i64>());
    }
    for i in 0..3 {
        wait_until("followers applied", Duration::from_secs(10), || {
            group(&nodes, i, 1)
                .query_status()
                .wait(Duration::from_secs(5))
                .unwrap()
                .last_applied
                >= last
        });
    }
    // A follower refuses writes with the leader's id.
    let f = (l + 1) % 3;
    match write(&group(&nodes, f, 1), 1) {
        Err(RaftError::NotLeader { leader }) => assert_eq!(leader, Some(l as u32 + 1)),
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // QUERY_STATUS over the wire, on every node.
    let c = Client::new(&ports);
    for i in 0..3 {
        let s = c.status(i, 1);
        assert_eq!(s.group_id, 1);
        assert_eq!(s.node_id, i as i32 + 1);
        assert_eq!(s.leader_id, l as i32 + 1);
        assert!(s.is_init_finished());
        assert!(s.commit_index >= last as i64, "{s:?}");
        let mut m = s.members.clone();
        m.sort_unstable();
        assert_eq!(m, [1, 2, 3]);
    }
    let e = c
        .call(
            0,
            RaftCommands::RAFT_QUERY_STATUS,
            WriteBody::Encodable(Box::new(PbInt(9))),
        )
        .unwrap_err();
    assert!(matches!(
        e,
        NetError::Remote {
            code: CmdCodes::RAFT_GROUP_NOT_FOUND,
            ..
        }
    ));

    // Admin transfer leader (44) to the old leader; RAFT_TRANSFER_LEADER (45) goes
    // between the servers; the new leader keeps the term and takes writes.
    let to = (l + 2) % 3;
    let term_before = c.status(l, 1).term;
    let req = TransferLeaderReq {
        group_id: 1,
        old_leader_id: l as i32 + 1,
        new_leader_id: to as i32 + 1,
        ..Default::default()
    };
    c.call(
        l,
        RaftCommands::RAFT_ADMIN_TRANSFER_LEADER,
        WriteBody::Encodable(Box::new(req)),
    )
    .unwrap();
    wait_until("new leader", Duration::from_secs(10), || {
        group(&nodes, to, 1).status().role == Role::Leader
    });
    assert_eq!(c.status(to, 1).term, term_before);
    let (idx, total) = write(&group(&nodes, to, 1), 100).unwrap();
    assert!(idx > last);
    assert_eq!(total, 210 + 100);

    // ADD_GROUP on every node: group 2 elects and commits; REMOVE_GROUP takes it away.
    for i in 0..3 {
        c.call(
            i,
            RaftCommands::RAFT_ADMIN_ADD_GROUP,
            WriteBody::Encodable(Box::new(AdminAddGroupReq {
                group_id: 2,
                node_id_of_members: "1,2,3".into(),
                node_id_of_observers: String::new(),
            })),
        )
        .unwrap();
    }
    let e = c
        .call(
            0,
            RaftCommands::RAFT_ADMIN_ADD_GROUP,
            WriteBody::Encodable(Box::new(AdminAddGroupReq {
                group_id: 2,
                node_id_of_members: "1,2,3".into(),
                node_id_of_observers: String::new(),
            })),
        )
        .unwrap_err();
    match e {
        NetError::Remote { code, msg } => {
            assert_eq!(code, CmdCodes::SYS_ERROR);
            assert!(msg.contains("group already exist: 2"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let l2 = leader_of(&nodes, 2);
    assert_eq!(write(&group(&nodes, l2, 2), 7).unwrap().1, 7);
    let r = c
        .call(0, RaftCommands::RAFT_ADMIN_LIST_GROUPS, WriteBody::Empty)
        .unwrap();
    assert_eq!(
        AdminListGroupsResp::decode(&r.body).unwrap().group_ids,
        [1, 2]
    );
    for i in 0..3 {
        c.call(
            i,
            RaftCommands::RAFT_ADMIN_REMOVE_GROUP,
            WriteBody::Encodable(Box::new(PbInt(2))),
        )
        .unwrap();
        // Idempotent.
        c.call(
            i,
            RaftCommands::RAFT_ADMIN_REMOVE_GROUP,
            WriteBody::Encodable(Box::new(PbInt(2))),
        )
        .unwrap();
    }
    for n in &nodes {
        wait_until("group 2 removed", Duration::from_secs(10), || {
            n.server.group(2).is_none() && n.groups.group(2).is_none()
        });
    }
    // Group 1 still serves.
    let l = leader_of(&nodes, 1);
    write(&group(&nodes, l, 1), 1).unwrap();

    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
    // Stopped groups answer their handles with Stopped.
    assert!(matches!(
        write(&group(&nodes, l, 1), 1),
        Err(RaftError::Stopped) | Err(RaftError::Rejected(_))
    ));
}

fn applied(g: &RaftGroup<i64>) -> u64 {
    g.query_status()
        .wait(Duration::from_secs(5))
        .map(|s| s.last_applied)
        .unwrap_or(0)
}

#[test]
fn a_stopped_leader_restarts_from_its_data_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut nodes = start_cluster(dir.path(), &ports, 0);
    let l = leader_of(&nodes, 1);
    for v in 1..=10 {
        write(&group(&nodes, l, 1), v).unwrap();
    }
    // The leader's server stops; the other two elect a new leader and go on.
    nodes[l].server.stop(Duration::from_secs(5));
    let rest: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    let mut nl = None;
    wait_until("a new leader", Duration::from_secs(20), || {
        nl = rest
            .iter()
            .copied()
            .find(|i| group(&nodes, *i, 1).status().role == Role::Leader);
        nl.is_some()
    });
    let nl = nl.unwrap();
    let mut last = (0, 0);
    for v in 11..=20 {
        last = write(&group(&nodes, nl, 1), v).unwrap();
    }
    assert_eq!(last.1, (1..=20).sum::<i64>());
    // It restarts on the same port with the same data directory: it recovers its log,
    // rejoins, and applies everything up to the new leader's last write.
    let again = start_nodes(dir.path(), &ports, 1, 0, &[l as i32 + 1]);
    nodes[l] = again.into_iter().next().unwrap();
    wait_until(
        "the restarted node caught up",
        Duration::from_secs(20),
        || applied(&group(&nodes, l, 1)) >= last.0,
    );
    let total = write(&group(&nodes, nl, 1), 1).unwrap().1;
    assert_eq!(total, (1..=20).sum::<i64>() + 1);
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}

#[test]
fn twenty_groups_share_two_dispatchers_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let ids = [1, 2, 3];
    let nodes = start_nodes(dir.path(), &ports, 20, 2, &ids);
    for gid in 1..=20 {
        let l = leader_of(&nodes, gid);
        assert_eq!(
            write(&group(&nodes, l, gid), gid as i64).unwrap().1,
            gid as i64
        );
    }
    let c = Client::new(&ports);
    let r = c
        .call(1, RaftCommands::RAFT_ADMIN_LIST_GROUPS, WriteBody::Empty)
        .unwrap();
    assert_eq!(
        AdminListGroupsResp::decode(&r.body).unwrap().group_ids,
        (1..=20).collect::<Vec<i32>>()
    );
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}

#[test]
fn five_servers_elect_and_commit_with_two_down() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(5);
    let nodes = start_nodes(dir.path(), &ports, 1, 0, &[1, 2, 3, 4, 5]);
    let l = leader_of(&nodes, 1);
    let mut last = 0;
    for v in 1..=5 {
        last = write(&group(&nodes, l, 1), v).unwrap().0;
    }
    for i in 0..5 {
        wait_until("all applied", Duration::from_secs(10), || {
            applied(&group(&nodes, i, 1)) >= last
        });
    }
    // Two followers stop: the three left still commit.
    let down: Vec<usize> = (0..5).filter(|i| *i != l).take(2).collect();
    for &i in &down {
        nodes[i].server.stop(Duration::from_secs(5));
    }
    let (_, total) = write(&group(&nodes, l, 1), 100).unwrap();
    assert_eq!(total, 15 + 100);
    for (i, n) in nodes.iter().enumerate() {
        if !down.contains(&i) {
            n.server.stop(Duration::from_secs(5));
        }
    }
}

#[test]
fn bad_group_configurations_are_refused_at_install() {
    use dt_raft::server::{RaftServerError, ServerConfigError};
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let io = ThreadPoolIo::new(1);
    let factory = || {
        Arc::new(TestFactory {
            base: dir.path().to_path_buf(),
            io: io.clone(),
            perf: PerfHook::default(),
        })
    };
    let server = RaftServer::new(server_config(&ports, 1)).unwrap();
    let f = factory();
    let two = vec![f.config(1, vec![1, 2, 3]), f.config(1, vec![1, 2, 3])];
    assert!(matches!(
        RaftGroups::install(&server, factory(), two, GroupsOptions::default()),
        Err(RaftServerError::Config(
            ServerConfigError::DuplicateGroupId(1)
        ))
    ));
    // The second group is bad: the first, already started, is undone.
    let unknown = vec![f.config(5, vec![1, 2, 3]), f.config(2, vec![1, 2, 7])];
    match RaftGroups::install(&server, factory(), unknown, GroupsOptions::default()) {
        Err(RaftServerError::Group {
            group_id: 2,
            reason,
        }) => {
            assert!(reason.contains("node not exist: 7"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let mut both = f.config(3, vec![1, 2]);
    both.observers = vec![2];
    match RaftGroups::install(&server, factory(), vec![both], GroupsOptions::default()) {
        Err(RaftServerError::Group {
            group_id: 3,
            reason,
        }) => {
            assert!(reason.contains("member and observer"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        RaftGroups::install(
            &server,
            factory(),
            vec![f.config(4, vec![])],
            GroupsOptions::default()
        ),
        Err(RaftServerError::Group { group_id: 4, .. })
    ));
    // Nothing of the refused groups is left in the server.
    assert!(server.group_ids().is_empty());
    server.start().unwrap();
    assert!(matches!(
        RaftGroups::install(&server, factory(), vec![], GroupsOptions::default()),
        Err(RaftServerError::BadState(_))
    ));
    server.stop(Duration::from_secs(1));
}

#[test]
fn an_observer_applies_what_the_members_commit() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let io = ThreadPoolIo::new(2);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let server = RaftServer::new(server_config(&ports, id)).unwrap();
            let factory = Arc::new(TestFactory {
                base: dir.path().join(format!("n{id}")),
                io: io.clone(),
                perf: PerfHook::default(),
            });
            let mut cfg = factory.config(1, vec![1, 2]);
            cfg.observers = vec![3];
            let groups =
                RaftGroups::install(&server, factory, vec![cfg], GroupsOptions::default()).unwrap();
            Node { server, groups }
        })
        .collect();
    for n in &nodes {
        n.server.start().unwrap();
    }
    for n in &nodes {
        n.server.wait_group_ready(Duration::from_secs(20)).unwrap();
    }
    let l = leader_of(&nodes, 1);
    assert!(l < 2, "the observer must not lead");
    assert_eq!(group(&nodes, 2, 1).status().role, Role::Observer);
    let mut last = 0;
    for v in 1..=5 {
        last = write(&group(&nodes, l, 1), v).unwrap().0;
    }
    wait_until("the observer applied", Duration::from_secs(10), || {
        applied(&group(&nodes, 2, 1)) >= last
    });
    // QUERY_STATUS on the observer reports it in the observers.
    let c = Client::new(&ports);
    let s = c.status(2, 1);
    assert_eq!(s.observers, [3]);
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}

#[test]
fn a_wiped_follower_is_caught_up_by_install_snapshot_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut nodes = start_cluster(dir.path(), &ports, 0);
    let l = leader_of(&nodes, 1);
    for v in 1..=10 {
        write(&group(&nodes, l, 1), v).unwrap();
    }
    // a follower stops and loses its data directory
    let f = (0..3).find(|i| *i != l).unwrap();
    nodes[f].server.stop(Duration::from_secs(5));
    std::fs::remove_dir_all(dir.path().join(format!("n{}", f + 1))).unwrap();
    let mut last = (0, 0);
    for v in 11..=20 {
        last = write(&group(&nodes, l, 1), v).unwrap();
    }
    // it restarts empty: the leader streams a snapshot over RAFT_INSTALL_SNAPSHOT
    let again = start_nodes(dir.path(), &ports, 1, 0, &[f as i32 + 1]);
    nodes[f] = again.into_iter().next().unwrap();
    wait_until("the wiped node caught up", Duration::from_secs(20), || {
        applied(&group(&nodes, f, 1)) >= last.0
    });
    // the install saved a local snapshot
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
    // its state machine holds the leader's state: lead from it and add 1
    group(&nodes, l, 1)
        .transfer_leadership(f as u32 + 1, Duration::from_secs(10))
        .wait(Duration::from_secs(15))
        .unwrap();
    wait_until("the wiped node leads", Duration::from_secs(10), || {
        group(&nodes, f, 1).status().role == Role::Leader
    });
    let total = write(&group(&nodes, f, 1), 1).unwrap().1;
    assert_eq!(total, (1..=20).sum::<i64>() + 1);
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}

/// Adds figures taken later to those taken before (per type: counts and times summed,
/// the longest span kept).
fn add_figures(to: &mut Vec<(PerfType, PerfFigures)>, more: Vec<(PerfType, PerfFigures)>) {
    for (t, f) in more {
        match to.iter_mut().find(|(x, _)| *x == t) {
            Some((_, a)) => {
                a.events += f.events;
                a.items += f.items;
                a.bytes += f.bytes;
                a.total_nanos += f.total_nanos;
                a.max_nanos = a.max_nanos.max(f.max_nanos);
            }
            None => to.push((t, f)),
        }
    }
}

#[test]
fn each_node_reports_its_raft_timings_to_the_groups_perf_hook() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let types = [
        PerfType::RaftLeaderRunnerFiberLatency,
        PerfType::RaftStateMachineExec,
        PerfType::RaftReplicateRpc,
        PerfType::RaftLogWrite1,
        PerfType::RaftLogSync,
    ];
    let stats: Vec<Arc<PerfStats>> = (0..3).map(|_| Arc::new(PerfStats::new(&types))).collect();
    let nodes = start_nodes_reporting(dir.path(), &ports, 1, 0, &[1, 2, 3], |id| {
        PerfHook::new(stats[id as usize - 1].clone())
    });
    let l = leader_of(&nodes, 1);
    // the election's own entries are not what is counted below
    for s in &stats {
        s.take();
    }
    const WRITES: u64 = 20;
    let mut last = 0;
    for v in 1..=WRITES {
        last = write(&group(&nodes, l, 1), v as i64).unwrap().0;
    }
    for i in 0..3 {
        wait_until("every node applied", Duration::from_secs(10), || {
            applied(&group(&nodes, i, 1)) >= last
        });
    }
    // An append RPC is timed when its answer reaches the leader, which may come after
    // the follower has applied the entries it carried (it learned the commit from the
    // other follower's answer): the leader's figures are gathered until both followers'
    // answers for every write are in.
    let mut taken: Vec<Vec<(PerfType, PerfFigures)>> = stats.iter().map(|s| s.take()).collect();
    wait_until(
        "the leader timed every append's answer",
        Duration::from_secs(10),
        || {
            let more = stats[l].take();
            add_figures(&mut taken[l], more);
            taken[l]
                .iter()
                .any(|(t, f)| *t == PerfType::RaftReplicateRpc && f.items >= 2 * WRITES)
        },
    );
    for (i, figures) in taken.iter().enumerate() {
        let of = |t: PerfType| figures.iter().find(|(x, _)| *x == t).map(|(_, f)| *f);
        let exec = of(PerfType::RaftStateMachineExec).expect("executions timed");
        assert_eq!(
            exec.events,
            WRITES,
            "node {}: one execution per write",
            i + 1
        );
        let written = of(PerfType::RaftLogWrite1).expect("log writes timed");
        assert!(written.items >= WRITES && written.bytes > 0, "{written:?}");
        let synced = of(PerfType::RaftLogSync).expect("fsyncs timed");
        assert!(synced.events >= 1 && synced.items >= 1, "{synced:?}");
        let queued = of(PerfType::RaftLeaderRunnerFiberLatency);
        let replicated = of(PerfType::RaftReplicateRpc);
        if i == l {
            // the writes were submitted here, and sent to the two others
            assert_eq!(queued.map(|f| f.events), Some(WRITES));
            let r = replicated.expect("append RPCs timed");
            assert!(r.items >= 2 * WRITES, "{r:?}");
            assert!(r.bytes >= 2 * WRITES, "{r:?}");
            assert!(r.max_nanos >= r.avg_nanos() && r.avg_nanos() > 0, "{r:?}");
        } else {
            assert_eq!(queued, None, "node {}: nothing submitted here", i + 1);
            assert_eq!(
                replicated,
                None,
                "node {}: a follower sends no appends",
                i + 1
            );
        }
    }
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
}
