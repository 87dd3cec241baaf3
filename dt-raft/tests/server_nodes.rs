//! RaftServer's node layer, ports and admin commands over loopback: three servers ping
//! each other, commands are checked by port, bad input gets the spec's codes and the
//! server keeps serving.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_codec::{encode, PbInt};
use dt_net::{
    CmdCodes, NetError, NioClient, NioClientConfig, PeerId, ReqContext, WriteBody, WritePacket,
};
use dt_raft::rpc::{
    AdminAddNodeReq, AdminListGroupsResp, AdminListNodesResp, NodePing, QueryStatusResp,
    RaftCommands, RaftPing, RpcBody, VoteReq,
};
use dt_raft::server::{
    GroupRequest, GroupState, MemberIds, RaftServer, RaftServerConfig, RaftServerError, ServerGroup,
};

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

fn servers_str(ports: &[u16]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
        .collect()
}

fn config(ports: &[u16], id: i32, service_port: u16) -> RaftServerConfig {
    RaftServerConfig {
        servers: servers_str(ports),
        node_id: id,
        replicate_port: ports[id as usize - 1],
        service_port,
        bind_host: "127.0.0.1".parse().unwrap(),
        ping_interval: Duration::from_millis(100),
        raft_ping_interval: Duration::from_millis(100),
        rpc_timeout: Duration::from_millis(1000),
        connect_timeout: Duration::from_millis(1000),
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    }
}

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Client {
    c: NioClient,
    peer: PeerId,
}

impl Client {
    fn new(port: u16) -> Client {
        let mut c = NioClient::new(NioClientConfig::default());
        c.start().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let peer = c.add_peer(addr).unwrap().id;
        Client { c, peer }
    }
    fn call(&self, cmd: i32, body: WriteBody) -> Result<dt_net::ReadPacket, NetError> {
        self.c.send_request_sync(
            Some(self.peer),
            WritePacket::request(cmd, body),
            Duration::from_secs(3),
        )
    }
}

fn remote_code(r: Result<dt_net::ReadPacket, NetError>) -> (i32, String) {
    match r {
        Err(NetError::Remote { code, msg }) => (code, msg),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A group entry for routing tests: fixed members, a settable state; QUERY_STATUS
/// answers with its id, other requests are counted and answered SYS_ERROR.
struct TestGroup {
    id: i32,
    state: Mutex<GroupState>,
    members: Mutex<MemberIds>,
    seen: Mutex<Vec<i32>>,
    check: i32,
    verdicts: Mutex<Vec<(i32, bool)>>,
}

impl ServerGroup for TestGroup {
    fn group_id(&self) -> i32 {
        self.id
    }
    fn state(&self) -> GroupState {
        *self.state.lock().unwrap()
    }
    fn member_ids(&self) -> MemberIds {
        self.members.lock().unwrap().clone()
    }
    fn raft_ping_check(&self) -> i32 {
        self.check
    }
    fn set_member_ready(&self, node: i32, ready: bool) {
        self.verdicts.lock().unwrap().push((node, ready));
    }
    fn deliver(&self, req: GroupRequest, _ctx: ReqContext) -> Option<WritePacket> {
        self.seen.lock().unwrap().push(req.group_id());
        match req {
            GroupRequest::QueryStatus(g) => Some(WritePacket::response(WriteBody::Encodable(
                Box::new(QueryStatusResp {
                    group_id: g,
                    node_id: 1,
                    ..Default::default()
                }),
            ))),
            _ => Some(WritePacket::error(CmdCodes::SYS_ERROR, "test group")),
        }
    }
}

fn test_group(id: i32, members: &[i32], state: GroupState) -> Arc<TestGroup> {
    Arc::new(TestGroup {
        id,
        state: Mutex::new(state),
        members: Mutex::new(MemberIds {
            members: members.to_vec(),
            ..Default::default()
        }),
        seen: Mutex::default(),
        check: 0,
        verdicts: Mutex::default(),
    })
}

#[test]
fn three_servers_ping_each_other_and_track_readiness() {
    let ports = free_ports(3);
    let servers: Vec<Arc<RaftServer>> = (1..=3)
        .map(|id| RaftServer::new(config(&ports, id, 0)).unwrap())
        .collect();
    for s in &servers {
        s.start().unwrap();
    }
    for s in &servers {
        s.wait_group_ready(Duration::from_secs(10)).unwrap();
        assert!(s.is_group_ready());
    }
    for s in &servers {
        wait_until("all nodes ready", Duration::from_secs(10), || {
            s.node_manager().ready_nodes() == 3
        });
        for n in s.node_manager().nodes() {
            assert!(n.status.ready, "node {} on {}", n.node.node_id, s.node_id());
            assert_eq!(n.status.epoch, 1);
            assert_eq!(n.is_self, n.node.node_id == s.node_id());
        }
    }
    // Node 3 goes away: the others mark it not ready, epoch kept.
    servers[2].stop(Duration::from_secs(1));
    for s in &servers[..2] {
        wait_until("node 3 not ready", Duration::from_secs(10), || {
            !s.node_manager().status_of(3).unwrap().ready
        });
        assert_eq!(s.node_manager().status_of(3).unwrap().epoch, 1);
    }
    // It comes back on the same port (a new process UUID): ready again, epoch 2.
    let s3 = RaftServer::new(config(&ports, 3, 0)).unwrap();
    s3.start().unwrap();
    for s in &servers[..2] {
        wait_until("node 3 ready again", Duration::from_secs(10), || {
            s.node_manager().status_of(3).unwrap()
                == dt_raft::server::NodeStatus {
                    ready: true,
                    epoch: 2,
                }
        });
    }
    s3.wait_group_ready(Duration::from_secs(10)).unwrap();
    for s in servers.iter().take(2).chain([&s3]) {
        s.stop(Duration::from_secs(1));
    }
}

#[test]
fn self_check_failure_aborts_start() {
    // The configured self address is served by another server process-alike (a server
    // with node id 1 on node 2's port): the self check gets another UUID and fails.
    let ports = free_ports(2);
    let other = RaftServer::new(RaftServerConfig {
        check_self: false,
        ..config(&ports, 1, 0)
    })
    .unwrap();
    other.start().unwrap();
    // Node 2's config names node 1's port as its own address.
    let mut cfg = config(&ports, 2, 0);
    cfg.servers = format!("1,127.0.0.1:{};2,127.0.0.1:{};", ports[1], ports[0]);
    cfg.replicate_port = ports[1];
    let s = RaftServer::new(cfg).unwrap();
    match s.start() {
        Err(RaftServerError::Node(e)) => {
            let t = e.to_string();
            assert!(t.contains("node id not match") || t.contains("uuid"), "{t}");
        }
        other => panic!("expected a self-check failure, got {other:?}"),
    }
    other.stop(Duration::from_secs(1));
}

#[test]
fn commands_are_checked_by_port_and_readiness() {
    let ports = free_ports(4);
    let service = ports[3];
    // Node 1 of a 3-node list, alone: never node-ping ready, so never group ready.
    let s = RaftServer::new(config(&ports[..3], 1, service)).unwrap();
    s.start().unwrap();
    assert_eq!(s.service_port(), service);
    let g = test_group(0, &[1, 2, 3], GroupState::Running);
    s.add_group_entry(g.clone()).unwrap();

    let svc = Client::new(service);
    // Raft RPCs and admin commands on the service port: COMMAND_NOT_SUPPORT.
    for cmd in [
        RaftCommands::RAFT_REQUEST_VOTE,
        RaftCommands::RAFT_APPEND_ENTRIES,
        RaftCommands::RAFT_PING,
        RaftCommands::NODE_PING,
        RaftCommands::RAFT_ADMIN_LIST_NODES,
        RaftCommands::RAFT_ADMIN_ADD_NODE,
        RaftCommands::RAFT_TRANSFER_LEADER,
    ] {
        let (code, msg) = remote_code(svc.call(cmd, WriteBody::Empty));
        assert_eq!(code, CmdCodes::COMMAND_NOT_SUPPORT, "cmd {cmd}");
        assert_eq!(msg, "command not supported on this port");
    }
    // QUERY_STATUS is allowed on the service port, but not before the server is ready.
    let (code, msg) = remote_code(svc.call(RaftCommands::RAFT_QUERY_STATUS, WriteBody::Empty));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::NOT_INIT, "raft server not ready")
    );

    // A client command (DTKV_GET = 5) on the replicate port: not registered there.
    let rep = Client::new(ports[0]);
    let (code, _) = remote_code(rep.call(5, WriteBody::Empty));
    assert_eq!(code, CmdCodes::COMMAND_NOT_SUPPORT);
    // QUERY_STATUS on the replicate port goes to the group even before group ready.
    let r = rep
        .call(RaftCommands::RAFT_QUERY_STATUS, WriteBody::Empty)
        .unwrap();
    assert_eq!(QueryStatusResp::decode(&r.body).unwrap().group_id, 0);
    assert_eq!(*g.seen.lock().unwrap(), [0]);
    s.stop(Duration::from_secs(1));
}

#[test]
fn group_requests_get_the_spec_codes() {
    let ports = free_ports(3);
    let s = RaftServer::new(config(&ports, 1, 0)).unwrap();
    s.start().unwrap();
    let running = test_group(1, &[1, 2, 3], GroupState::Running);
    let not_init = test_group(2, &[1, 2], GroupState::NotInit);
    let stopping = test_group(3, &[1], GroupState::Stopping);
    for g in [&running, &not_init, &stopping] {
        s.add_group_entry(g.clone()).unwrap();
    }
    assert!(s
        .add_group_entry(test_group(1, &[1], GroupState::Running))
        .is_err());
    assert!(s
        .add_group_entry(test_group(9, &[7], GroupState::Running))
        .is_err());
    let c = Client::new(ports[0]);
    let vote = |gid| {
        WriteBody::Encodable(Box::new(VoteReq {
            group_id: gid,
            term: 1,
            candidate_id: 2,
            ..Default::default()
        }))
    };
    let (code, msg) = remote_code(c.call(RaftCommands::RAFT_REQUEST_VOTE, vote(5)));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::RAFT_GROUP_NOT_FOUND, "raft group not found: 5")
    );
    let (code, msg) = remote_code(c.call(RaftCommands::RAFT_REQUEST_VOTE, vote(2)));
    assert_eq!(
        (code, msg.as_str()),
        (
            CmdCodes::RAFT_GROUP_NOT_INIT,
            "raft group not initialized: 2"
        )
    );
    // QUERY_STATUS is exempt from the init check.
    let r = c
        .call(
            RaftCommands::RAFT_QUERY_STATUS,
            WriteBody::Encodable(Box::new(PbInt(2))),
        )
        .unwrap();
    assert_eq!(QueryStatusResp::decode(&r.body).unwrap().group_id, 2);
    let (code, msg) = remote_code(c.call(RaftCommands::RAFT_REQUEST_VOTE, vote(3)));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::RAFT_GROUP_STOPPED, "raft group is stopped: 3")
    );
    // A running group gets the request.
    let (code, _) = remote_code(c.call(RaftCommands::RAFT_REQUEST_VOTE, vote(1)));
    assert_eq!(code, CmdCodes::SYS_ERROR);
    assert_eq!(*running.seen.lock().unwrap(), [1]);

    // RAFT_PING is answered with this node's id and the group's lists.
    let ping = RaftPing {
        group_id: 1,
        node_id: 2,
        ..Default::default()
    };
    let r = c
        .call(
            RaftCommands::RAFT_PING,
            WriteBody::Encodable(Box::new(ping)),
        )
        .unwrap();
    let p = RaftPing::decode(&r.body).unwrap();
    assert_eq!(p.group_id, 1);
    assert_eq!(p.node_id, 1);
    assert_eq!(
        p.members,
        format!(
            "1,127.0.0.1:{};2,127.0.0.1:{};3,127.0.0.1:{};",
            ports[0], ports[1], ports[2]
        )
    );
    assert_eq!(p.observers, "");

    // A malformed body closes that connection only; the server keeps serving.
    let bad = Bytes::from_static(&[0x08]); // a tag without its varint
    let e =
        c.c.send_request_sync(
            Some(c.peer),
            WritePacket::request_bytes(RaftCommands::RAFT_REQUEST_VOTE, bad),
            Duration::from_secs(3),
        )
        .unwrap_err();
    assert!(
        matches!(e, NetError::ConnectionClosed(_)),
        "expected the connection closed, got {e:?}"
    );
    let c2 = Client::new(ports[0]);
    let (code, _) = remote_code(c2.call(RaftCommands::RAFT_REQUEST_VOTE, vote(5)));
    assert_eq!(code, CmdCodes::RAFT_GROUP_NOT_FOUND);
    s.stop(Duration::from_secs(1));
}

#[test]
fn admin_node_and_group_commands() {
    let ports = free_ports(4);
    let s = RaftServer::new(config(&ports[..3], 1, 0)).unwrap();
    let persisted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p2 = persisted.clone();
    s.set_persist_config_hook(move || {
        p2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let persisted = move || persisted.load(std::sync::atomic::Ordering::SeqCst);
    s.start().unwrap();
    s.add_group_entry(test_group(7, &[1, 2], GroupState::Running))
        .unwrap();
    assert_eq!(persisted(), 1, "a group added while running");
    s.add_group_entry(test_group(3, &[1], GroupState::Running))
        .unwrap();
    let c = Client::new(ports[0]);

    let r = c
        .call(RaftCommands::RAFT_ADMIN_LIST_GROUPS, WriteBody::Empty)
        .unwrap();
    assert_eq!(
        AdminListGroupsResp::decode(&r.body).unwrap().group_ids,
        [3, 7]
    );

    let list = || {
        let r = c
            .call(RaftCommands::RAFT_ADMIN_LIST_NODES, WriteBody::Empty)
            .unwrap();
        AdminListNodesResp::decode(&r.body)
            .unwrap()
            .nodes
            .iter()
            .map(|n| (n.node_id, n.host.clone(), n.port))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(),
        (1..=3)
            .map(|i| (i, "127.0.0.1".to_string(), ports[i as usize - 1] as i32))
            .collect::<Vec<_>>()
    );
    let add = |id: i32, port: u16| {
        c.call(
            RaftCommands::RAFT_ADMIN_ADD_NODE,
            WriteBody::Encodable(Box::new(AdminAddNodeReq {
                node_id: id,
                host: "127.0.0.1".into(),
                port: port as i32,
            })),
        )
    };
    let remove = |id: i32| {
        c.call(
            RaftCommands::RAFT_ADMIN_REMOVE_NODE,
            WriteBody::Encodable(Box::new(PbInt(id))),
        )
    };
    // Add node 4, twice (idempotent); same id with another port fails.
    let before = persisted();
    add(4, ports[3]).unwrap();
    assert_eq!(persisted(), before + 1);
    add(4, ports[3]).unwrap();
    let (code, msg) = remote_code(add(4, ports[2]));
    assert_eq!(persisted(), before + 2, "failed commands persist nothing");
    let (bad_code, bad_msg) = remote_code(add(-3, ports[3]));
    assert_eq!(
        (bad_code, bad_msg.as_str()),
        (CmdCodes::SYS_ERROR, "node id must be positive: -3")
    );
    assert_eq!(code, CmdCodes::SYS_ERROR);
    assert!(
        msg.contains("already exist but host/port is not same"),
        "{msg}"
    );
    assert_eq!(list().len(), 4);
    // Node 2 is used by group 7: cannot be removed.
    let (code, msg) = remote_code(remove(2));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::SYS_ERROR, "node is using, current ref count: 1")
    );
    // Self cannot be removed; unknown ids succeed; node 4 goes.
    let (code, msg) = remote_code(remove(1));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::SYS_ERROR, "can not remove self")
    );
    remove(99).unwrap();
    remove(4).unwrap();
    assert_eq!(list().len(), 3);
    // Once group 7 is gone, node 2 is free.
    let g7 = s.group(7).unwrap();
    assert!(s.remove_group_entry(&g7));
    remove(2).unwrap();
    assert_eq!(list().iter().map(|n| n.0).collect::<Vec<_>>(), [1, 3]);
    // Without a group factory, ADD_GROUP / REMOVE_GROUP answer SYS_ERROR.
    let (code, _) = remote_code(c.call(
        RaftCommands::RAFT_ADMIN_REMOVE_GROUP,
        WriteBody::Encodable(Box::new(PbInt(3))),
    ));
    assert_eq!(code, CmdCodes::SYS_ERROR);

    // NODE_PING from a node we do not know: SYS_ERROR "node not found".
    let np = NodePing {
        local_node_id: 9,
        remote_node_id: 1,
        uuid_high: 1,
        uuid_low: 2,
    };
    let (code, msg) =
        remote_code(c.call(RaftCommands::NODE_PING, WriteBody::Encodable(Box::new(np))));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::SYS_ERROR, "node not found: 9")
    );
    // From a known node: our id, its id, our UUID.
    let np = NodePing {
        local_node_id: 3,
        remote_node_id: 1,
        uuid_high: 1,
        uuid_low: 2,
    };
    let r = c
        .call(RaftCommands::NODE_PING, WriteBody::Encodable(Box::new(np)))
        .unwrap();
    let a = NodePing::decode(&r.body).unwrap();
    let u = s.node_manager().uuid();
    assert_eq!(
        (a.local_node_id, a.remote_node_id, a.uuid_high, a.uuid_low),
        (1, 3, u.uuid1 as i64, u.uuid2 as i64)
    );
    let _ = encode::to_bytes(&PbInt(0));
    s.stop(Duration::from_secs(1));
}

#[test]
fn raft_pings_make_members_ready() {
    let ports = free_ports(3);
    let servers: Vec<Arc<RaftServer>> = (1..=3)
        .map(|id| RaftServer::new(config(&ports, id, 0)).unwrap())
        .collect();
    let mut groups = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let g = test_group(1, &[1, 2, 3], GroupState::Running);
        s.add_group_entry(g.clone()).unwrap();
        // Group 2: node 1 checks ids (raftPingCheck 1) but believes the group is {1, 2};
        // nodes 2 and 3 say {1, 2, 3}: node 1 never sees member 2 ready in group 2.
        let members: &[i32] = if i == 0 { &[1, 2] } else { &[1, 2, 3] };
        let g2 = Arc::new(TestGroup {
            check: 1,
            ..Arc::try_unwrap(test_group(2, members, GroupState::Running))
                .ok()
                .unwrap()
        });
        s.add_group_entry(g2.clone()).unwrap();
        groups.push((g, g2));
    }
    for s in &servers {
        s.start().unwrap();
    }
    // Group ready needs every group ping-ready: group 2 on node 1 has members {1, 2}
    // (quorum 2) and member 2 never gets ready there, so only nodes 2 and 3 get ready.
    for s in &servers[1..] {
        s.wait_group_ready(Duration::from_secs(10)).unwrap();
    }
    for s in &servers {
        wait_until("members of group 1 ready", Duration::from_secs(10), || {
            (1..=3).all(|n| s.is_member_ready(1, n) == Some(true))
        });
        assert_eq!(s.is_member_ping_ready(1), Some(true));
    }
    assert_eq!(servers[0].is_member_ping_ready(2), Some(false));
    assert_eq!(servers[0].is_member_ready(2, 2), Some(false));
    assert!(!servers[0].is_group_ready());
    {
        let v = groups[0].0.verdicts.lock().unwrap();
        assert!(v.contains(&(2, true)) && v.contains(&(3, true)), "{v:?}");
        let v2 = groups[0].1.verdicts.lock().unwrap();
        assert!(!v2.contains(&(2, true)), "{v2:?}");
    }
    // Node 3 stops: its member turns not ready on node 1 (and the group is told).
    servers[2].stop(Duration::from_secs(1));
    wait_until("member 3 not ready", Duration::from_secs(10), || {
        servers[0].is_member_ready(1, 3) == Some(false)
    });
    assert_eq!(
        groups[0].0.verdicts.lock().unwrap().last(),
        Some(&(3, false))
    );
    // It comes back (node epoch 2): a new raft ping makes it ready again.
    let s3 = RaftServer::new(config(&ports, 3, 0)).unwrap();
    s3.add_group_entry(test_group(1, &[1, 2, 3], GroupState::Running))
        .unwrap();
    s3.start().unwrap();
    wait_until("member 3 ready again", Duration::from_secs(10), || {
        servers[0].is_member_ready(1, 3) == Some(true)
    });
    for s in servers.iter().take(2).chain([&s3]) {
        s.stop(Duration::from_secs(1));
    }
}

/// Delays the server's stop for a while (to look at the server while it stops).
struct SlowStopper;
impl dt_raft::server::GroupStopper for SlowStopper {
    fn stop_groups(&self, _server: &RaftServer, _timeout: Duration) {
        std::thread::sleep(Duration::from_millis(600));
    }
}

#[test]
fn client_commands_pass_the_service_gate() {
    let ports = free_ports(2);
    // A one-node cluster: ready as soon as its self check and node pings are done.
    let s = RaftServer::new(config(&ports[..1], 1, ports[1])).unwrap();
    let gate = s.service_gate();
    s.register(
        5,
        dt_net::FnProcessor(move |pkt: &dt_net::ReadPacket, ctx: &ReqContext| {
            Some(
                gate.check(ctx)
                    .unwrap_or_else(|| WritePacket::response(WriteBody::Bytes(pkt.body.clone()))),
            )
        }),
    );
    s.set_group_stopper(Arc::new(SlowStopper));
    s.start().unwrap();
    s.wait_group_ready(Duration::from_secs(10)).unwrap();
    let svc = Client::new(ports[1]);
    let rep = Client::new(ports[0]);
    let r = svc
        .call(5, WriteBody::Bytes(Bytes::from_static(b"hi")))
        .unwrap();
    assert_eq!(&r.body[..], b"hi");
    let (code, msg) = remote_code(rep.call(5, WriteBody::Empty));
    assert_eq!(
        (code, msg.as_str()),
        (
            CmdCodes::COMMAND_NOT_SUPPORT,
            "command not supported on this port"
        )
    );
    // While the server stops (its groups take a while), client commands get STOPPING.
    let s2 = s.clone();
    let stopper = std::thread::spawn(move || s2.stop(Duration::from_secs(2)));
    wait_until("stopping", Duration::from_secs(5), || s.is_stopping());
    let (code, msg) = remote_code(svc.call(5, WriteBody::Empty));
    assert_eq!(
        (code, msg.as_str()),
        (CmdCodes::STOPPING, "raft server shutdown")
    );
    stopper.join().unwrap();
}

#[test]
fn node_use_counts_follow_membership_changes() {
    let ports = free_ports(3);
    let s = RaftServer::new(config(&ports, 1, 0)).unwrap();
    s.start().unwrap();
    let g = test_group(4, &[1, 2], GroupState::Running);
    s.add_group_entry(g.clone()).unwrap();
    let count = |id: i32| {
        s.node_manager()
            .nodes()
            .iter()
            .find(|n| n.node.node_id == id)
            .unwrap()
            .use_count
    };
    assert_eq!((count(1), count(2), count(3)), (1, 1, 0));
    // A membership change (joint: {1,2} → {1,3}) is picked up by the raft-ping pass.
    s.start_member_ping(4).unwrap();
    *g.members.lock().unwrap() = MemberIds {
        members: vec![1, 2],
        prepared_members: vec![1, 3],
        ..Default::default()
    };
    wait_until("counts of the joint config", Duration::from_secs(5), || {
        (count(1), count(2), count(3)) == (2, 1, 1)
    });
    assert!(s.node_manager().remove_node(3).is_err());
    *g.members.lock().unwrap() = MemberIds {
        members: vec![1, 3],
        ..Default::default()
    };
    wait_until("counts of the new config", Duration::from_secs(5), || {
        (count(1), count(2), count(3)) == (1, 0, 1)
    });
    s.node_manager().remove_node(2).unwrap();
    // Removing the group releases what it holds.
    let gr: dt_raft::server::GroupRef = g;
    assert!(s.remove_group_entry(&gr));
    assert_eq!((count(1), count(3)), (0, 0));
    s.stop(Duration::from_secs(1));
}

#[test]
fn random_bodies_on_every_command_leave_the_server_serving() {
    let ports = free_ports(3);
    let s = RaftServer::new(config(&ports[..2], 1, ports[2])).unwrap();
    s.start().unwrap();
    s.add_group_entry(test_group(0, &[1, 2], GroupState::Running))
        .unwrap();
    let rep = Client::new(ports[0]);
    let svc = Client::new(ports[2]);
    // A fixed-seed xorshift: the same inputs every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let cmds: Vec<i32> = [4].into_iter().chain(40..=56).collect();
    let mut answered = 0;
    for i in 0..400 {
        let cmd = cmds[(next() % cmds.len() as u64) as usize];
        // A third have an empty body (all fields default), the rest random bytes.
        let len = if i % 3 == 0 {
            0
        } else {
            (next() % 64) as usize
        };
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let c = if i % 4 == 0 { &svc } else { &rep };
        match c.c.send_request_sync(
            Some(c.peer),
            WritePacket::request_bytes(cmd, Bytes::from(body)),
            Duration::from_secs(3),
        ) {
            Ok(_) | Err(NetError::Remote { .. }) => answered += 1,
            // A body that cannot be decoded closes that connection (the client
            // reconnects for the next request).
            Err(NetError::ConnectionClosed(_)) | Err(NetError::Connect(_)) => {}
            Err(e) => panic!("command {cmd}: unexpected {e:?}"),
        }
    }
    assert!(answered > 100, "only {answered} answers");
    // The server still serves well-formed requests, and its tables are intact.
    let r = rep
        .call(RaftCommands::RAFT_ADMIN_LIST_GROUPS, WriteBody::Empty)
        .unwrap();
    assert_eq!(AdminListGroupsResp::decode(&r.body).unwrap().group_ids, [0]);
    let r = rep
        .call(RaftCommands::RAFT_ADMIN_LIST_NODES, WriteBody::Empty)
        .unwrap();
    let ids: Vec<i32> = AdminListNodesResp::decode(&r.body)
        .unwrap()
        .nodes
        .iter()
        .map(|n| n.node_id)
        .collect();
    assert!(ids.contains(&1) && ids.contains(&2), "{ids:?}");
    s.stop(Duration::from_secs(1));
}
