//! RaftClient and KvClient against a fake cluster: NioServers whose processors answer
//! RAFT_QUERY_STATUS, DTKV_GET/PUT and DTKV_QUERY_STATUS / SYNC_WATCH as the reference
//! does (leader hints in `extra`, NOT_INIT, silence), to test discovery, redirects,
//! leader changes, retries, timeouts, a dead node, flow-control waiting and watches.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::{
    KvBody, KvCode, KvCommands, KvError, KvNode, KvReq, KvResp, KvResult, KvStatusResp,
    WatchNotify, WatchNotifyReq, WatchReq,
};
use dt_client::raft::{RaftClient, RaftClientConfig, RaftNode};
use dt_client::{KvClient, KvClientConfig};
use dt_codec::{encode, PbIntCallback};
use dt_net::{
    CmdCodes, Commands, ConnRef, NetError, NioServer, NioServerConfig, ReadPacket, ReqContext,
    ReqProcessor, WriteBody, WritePacket,
};
use dt_raft::rpc::QueryStatusResp;

#[derive(Default)]
struct ClusterState {
    leader: i32,
    /// What QUERY_STATUS answers say the leader is, per node (default: `leader`).
    reported: HashMap<i32, i32>,
    /// Whether NOT_RAFT_LEADER carries the hint.
    no_hint: bool,
    /// One-shot forced response codes for data commands: (node, resp_code).
    script: VecDeque<(i32, i32)>,
    /// Data commands never answered (the reference drops late requests).
    silent: bool,
    /// Delay before answering data commands.
    delay: Duration,
    map: HashMap<Bytes, Bytes>,
    index: i64,
    /// (node, command) of every data request received.
    log: Vec<(i32, i32)>,
    /// Watch registrations per node: key -> known index.
    watches: HashMap<i32, (ConnRef, HashMap<Bytes, i64>)>,
    watch_syncs: Vec<(i32, WatchReq)>,
}

type Cluster = Arc<Mutex<ClusterState>>;

struct FakeNode {
    node: i32,
    cluster: Cluster,
}

fn resp(body: WriteBody, biz: i32) -> WritePacket {
    let mut p = WritePacket::response(body);
    p.biz_code = biz;
    p
}

impl ReqProcessor for FakeNode {
    type Body = ();
    fn decode(&self, _pkt: &ReadPacket) -> Result<(), dt_codec::PbError> {
        Ok(())
    }
    fn process(&self, pkt: ReadPacket, _b: (), ctx: ReqContext) -> Option<WritePacket> {
        let mut c = self.cluster.lock().unwrap();
        match pkt.command {
            Commands::RAFT_QUERY_STATUS | KvCommands::DTKV_QUERY_STATUS => {
                let group = pkt.decode_body::<PbIntCallback>().unwrap().value;
                let mut s = QueryStatusResp {
                    group_id: group,
                    node_id: self.node,
                    leader_id: *c.reported.get(&self.node).unwrap_or(&c.leader),
                    members: vec![1, 2, 3],
                    ..Default::default()
                };
                s.set_flag(true, false, true, false);
                if pkt.command == Commands::RAFT_QUERY_STATUS {
                    return Some(resp(WriteBody::Bytes(encode::to_bytes(&s)), 0));
                }
                let count = c.watches.get(&self.node).map_or(0, |w| w.1.len()) as i32;
                let ks = KvStatusResp {
                    raft_server_status: Some(encode::to_bytes(&s)),
                    watch_count: count,
                };
                Some(resp(WriteBody::Bytes(encode::to_bytes(&ks)), 0))
            }
            KvCommands::DTKV_SYNC_WATCH => {
                let req = WatchReq::decode(&pkt.body).unwrap();
                c.watch_syncs.push((self.node, req.clone()));
                let conn = ctx.conn();
                let e = c
                    .watches
                    .entry(self.node)
                    .or_insert_with(|| (conn, HashMap::new()));
                e.0 = conn;
                if req.sync_all {
                    e.1.clear();
                }
                for (k, i) in req.keys.iter().zip(&req.known_raft_indexes) {
                    if *i < 0 {
                        e.1.remove(k);
                    } else {
                        e.1.insert(k.clone(), *i);
                    }
                }
                Some(resp(WriteBody::Empty, 0))
            }
            cmd => {
                c.log.push((self.node, cmd));
                if let Some(&(n, code)) = c.script.front() {
                    if n == self.node {
                        c.script.pop_front();
                        return Some(WritePacket::error(code, "scripted"));
                    }
                }
                if self.node != c.leader {
                    let mut p = WritePacket::error(CmdCodes::NOT_RAFT_LEADER, "not leader");
                    if !c.no_hint {
                        p.extra = Some(Bytes::from(c.leader.to_string()));
                    }
                    return Some(p);
                }
                if c.silent {
                    return None;
                }
                let req = KvReq::decode(&pkt.body).unwrap();
                let out = match cmd {
                    KvCommands::DTKV_PUT => {
                        c.index += 1;
                        let old = c.map.insert(req.key, req.value);
                        let code = if old.is_some() {
                            KvCode::SuccessOverwrite
                        } else {
                            KvCode::Success
                        };
                        let r = KvResp::single(c.index, KvResult::code(code));
                        resp(WriteBody::Bytes(encode::to_bytes(&r)), code.code())
                    }
                    KvCommands::DTKV_GET => match c.map.get(&req.key) {
                        Some(v) => {
                            let r = KvResp::single(
                                0,
                                KvResult::with_node(KvNode {
                                    create_index: 1,
                                    create_time: 1,
                                    update_index: 1,
                                    update_time: 1,
                                    flag: 0,
                                    data: v.clone(),
                                }),
                            );
                            resp(WriteBody::Bytes(encode::to_bytes(&r)), 0)
                        }
                        None => resp(WriteBody::Empty, KvCode::NotFound.code()),
                    },
                    _ => WritePacket::error(CmdCodes::COMMAND_NOT_SUPPORT, "fake"),
                };
                if c.delay.is_zero() {
                    return Some(out);
                }
                let d = c.delay;
                drop(c);
                let r = ctx.responder();
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    r.respond(out);
                });
                None
            }
        }
    }
}

struct Fake {
    cluster: Cluster,
    servers: Vec<NioServer>,
}

fn node_server(node: i32, port: u16, cluster: &Cluster) -> NioServer {
    let mut s = NioServer::new(NioServerConfig {
        ports: vec![port],
        io_threads: 1,
        ..Default::default()
    });
    for cmd in [
        Commands::RAFT_QUERY_STATUS,
        KvCommands::DTKV_QUERY_STATUS,
        KvCommands::DTKV_SYNC_WATCH,
        KvCommands::DTKV_GET,
        KvCommands::DTKV_PUT,
    ] {
        s.register(
            cmd,
            FakeNode {
                node,
                cluster: cluster.clone(),
            },
        );
    }
    s.start().unwrap();
    s
}

impl Fake {
    fn start(n: i32, leader: i32) -> Fake {
        let cluster: Cluster = Arc::new(Mutex::new(ClusterState {
            leader,
            ..Default::default()
        }));
        let mut servers = Vec::new();
        for node in 1..=n {
            servers.push(node_server(node, 0, &cluster));
        }
        Fake { cluster, servers }
    }

    fn nodes(&self) -> Vec<RaftNode> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| RaftNode {
                node_id: i as i32 + 1,
                addr: format!("127.0.0.1:{}", s.port()).parse().unwrap(),
            })
            .collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        self.cluster.lock().unwrap()
    }

    fn data_log(&self) -> Vec<(i32, i32)> {
        std::mem::take(&mut self.state().log)
    }
}

fn cfg(timeout_ms: u64) -> RaftClientConfig {
    RaftClientConfig {
        rpc_timeout: Duration::from_millis(timeout_ms),
        ..Default::default()
    }
}

fn kv_client(fake: &Fake, timeout_ms: u64) -> KvClient {
    let kv = KvClient::new(KvClientConfig {
        raft: cfg(timeout_ms),
    })
    .unwrap();
    kv.raft().add_or_update_nodes(&fake.nodes()).unwrap();
    let members: Vec<i32> = (1..=fake.servers.len() as i32).collect();
    kv.raft().add_or_update_group(0, &members).unwrap();
    kv
}

#[test]
fn discovery_then_redirect_then_leader_change() {
    let fake = Fake::start(3, 2);
    // Every node reports a stale leader (1); node 1 redirects to 2.
    fake.state().reported = [(1, 1), (2, 1), (3, 1)].into();
    let kv = kv_client(&fake, 3000);
    assert_eq!(kv.put(0, "a", "1").unwrap(), 1);
    assert_eq!(
        fake.data_log(),
        [(1, KvCommands::DTKV_PUT), (2, KvCommands::DTKV_PUT)]
    );
    assert_eq!(kv.raft().leader(0), Some(2));

    // The cached leader is used directly.
    assert_eq!(&kv.get(0, "a").unwrap().unwrap().data[..], b"1");
    assert_eq!(fake.data_log(), [(2, KvCommands::DTKV_GET)]);

    // Leader moves to 3: node 2 redirects once, the client follows and remembers.
    fake.state().leader = 3;
    assert_eq!(kv.put(0, "a", "2").unwrap(), 2);
    assert_eq!(
        fake.data_log(),
        [(2, KvCommands::DTKV_PUT), (3, KvCommands::DTKV_PUT)]
    );
    assert_eq!(kv.raft().leader(0), Some(3));
    assert_eq!(
        kv.raft().requests_in_flight(),
        0,
        "every answered request left the table"
    );
    kv.stop(Duration::from_secs(1));
}

#[test]
fn without_hint_the_leader_is_forgotten_and_found_again_once() {
    let fake = Fake::start(3, 1);
    let kv = kv_client(&fake, 3000);
    kv.put(0, "k", "v").unwrap();
    assert_eq!(kv.raft().leader(0), Some(1));
    fake.data_log();

    // A NOT_RAFT_LEADER without extra (a node that left the group, or lost its
    // lease): the client forgets node 1, asks the members, re-sends once to 3.
    fake.state().leader = 3;
    fake.state().script.extend([(1, CmdCodes::NOT_RAFT_LEADER)]);
    assert_eq!(kv.put(0, "k", "v2").unwrap(), 2);
    assert_eq!(
        fake.data_log(),
        [(1, KvCommands::DTKV_PUT), (3, KvCommands::DTKV_PUT)]
    );
    assert_eq!(kv.raft().leader(0), Some(3));

    // The leader moves to 2 while every node still reports 1 and no node gives a
    // hint: 3 refuses, discovery names 1, 1 refuses: one re-send only, then the error,
    // and no leader is kept.
    {
        let mut st = fake.state();
        st.no_hint = true;
        st.leader = 2;
        st.reported = [(1, 1), (2, 1), (3, 1)].into();
    }
    assert!(matches!(
        kv.get(0, "k"),
        Err(KvError::Server {
            resp_code: CmdCodes::NOT_RAFT_LEADER,
            leader_hint: None,
            ..
        })
    ));
    assert_eq!(
        fake.data_log(),
        [(3, KvCommands::DTKV_GET), (1, KvCommands::DTKV_GET)]
    );
    assert_eq!(kv.raft().leader(0), None);

    // Once the nodes report 2, the next request finds it.
    fake.state().reported.clear();
    assert_eq!(&kv.get(0, "k").unwrap().unwrap().data[..], b"v2");
    assert_eq!(fake.data_log(), [(2, KvCommands::DTKV_GET)]);
    assert_eq!(
        kv.raft().requests_in_flight(),
        0,
        "every answered request left the table"
    );
    kv.stop(Duration::from_secs(1));
}

#[test]
fn not_init_rediscovers_and_retries_once() {
    let fake = Fake::start(3, 2);
    let kv = kv_client(&fake, 3000);
    kv.put(0, "k", "v").unwrap();
    fake.data_log();
    fake.state().script.extend([(2, CmdCodes::NOT_INIT)]);
    kv.put(0, "k", "v2").unwrap();
    assert_eq!(
        fake.data_log(),
        [(2, KvCommands::DTKV_PUT), (2, KvCommands::DTKV_PUT)]
    );

    // Two in a row: one retry only, the second answer is the error.
    fake.state()
        .script
        .extend([(2, CmdCodes::RAFT_GROUP_NOT_INIT), (2, CmdCodes::STOPPING)]);
    assert!(matches!(
        kv.put(0, "k", "v3"),
        Err(KvError::Server {
            resp_code: CmdCodes::STOPPING,
            ..
        })
    ));
    assert_eq!(fake.data_log().len(), 2);

    // SYS_ERROR and FLOW_CONTROL: no retry.
    fake.state().script.extend([(2, CmdCodes::SYS_ERROR)]);
    assert!(matches!(
        kv.get(0, "k"),
        Err(KvError::Server {
            resp_code: CmdCodes::SYS_ERROR,
            ..
        })
    ));
    assert_eq!(fake.data_log().len(), 1);
    assert_eq!(
        kv.raft().requests_in_flight(),
        0,
        "every answered request left the table"
    );
    kv.stop(Duration::from_secs(1));
}

#[test]
fn silence_is_a_timeout_at_the_deadline() {
    let fake = Fake::start(1, 1);
    let kv = kv_client(&fake, 400);
    kv.put(0, "k", "v").unwrap();
    fake.state().silent = true;
    let t = Instant::now();
    match kv.get(0, "k") {
        Err(KvError::Net(NetError::Timeout { .. })) => {}
        other => panic!("{other:?}"),
    }
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(350) && e < Duration::from_millis(1500),
        "{e:?}"
    );
    assert_eq!(
        kv.raft().requests_in_flight(),
        0,
        "every answered request left the table"
    );
    kv.stop(Duration::from_secs(1));
}

#[test]
fn a_dead_leader_is_replaced_through_discovery() {
    let mut fake = Fake::start(3, 1);
    let kv = kv_client(&fake, 2000);
    kv.put(0, "k", "v").unwrap();
    assert_eq!(kv.raft().leader(0), Some(1));
    // Node 1 dies; the others now name node 2.
    fake.servers[0].stop(Duration::from_millis(100));
    fake.state().leader = 2;
    fake.state().reported = [(2, 2), (3, 2)].into();
    std::thread::sleep(Duration::from_millis(300));
    // The connection is down: discovery runs (node 1 fails, the others name 2).
    let t = Instant::now();
    let mut ok = false;
    while t.elapsed() < Duration::from_secs(5) {
        if kv.put(0, "k", "v2").is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "no success after the leader died");
    assert_eq!(kv.raft().leader(0), Some(2));
    fake.servers.remove(0);
    assert_eq!(
        kv.raft().requests_in_flight(),
        0,
        "every answered request left the table"
    );
    kv.stop(Duration::from_secs(1));
}

#[test]
fn no_leader_fails_fast_for_a_second() {
    let fake = Fake::start(2, 0);
    fake.state().reported = [(1, 0), (2, 0)].into();
    let kv = kv_client(&fake, 2000);
    match kv.put(0, "k", "v") {
        Err(KvError::NoLeader {
            group_id: 0,
            reason,
        }) => {
            assert!(reason.contains("leader unknown"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    fake.state().leader = 1;
    fake.state().reported.clear();
    let t = Instant::now();
    assert!(matches!(kv.put(0, "k", "v"), Err(KvError::NoLeader { .. })));
    assert!(t.elapsed() < Duration::from_millis(500), "fail fast");
    std::thread::sleep(Duration::from_millis(1100));
    kv.put(0, "k", "v").unwrap();
    kv.stop(Duration::from_secs(1));
}

#[test]
fn flow_control_waits_for_a_permit_until_the_deadline() {
    let fake = Fake::start(1, 1);
    let raft = RaftClient::new(RaftClientConfig {
        max_out_requests: 1,
        ..cfg(3000)
    })
    .unwrap();
    raft.add_or_update_nodes(&fake.nodes()).unwrap();
    raft.add_or_update_group(0, &[1]).unwrap();
    raft.fetch_leader(0, Duration::from_secs(3)).wait().unwrap();
    fake.state().delay = Duration::from_millis(200);
    let body = encode::to_bytes(&KvReq::put(0, "k", "v"));
    let send = |timeout_ms: u64| {
        let (p, f) = dt_client::kv_channel();
        raft.send_request(
            0,
            KvCommands::DTKV_PUT,
            body.clone(),
            Duration::from_millis(timeout_ms),
            move |r| p.complete(r),
        );
        f
    };
    let t = Instant::now();
    let fs: Vec<_> = (0..3).map(|_| send(3000)).collect();
    assert_eq!(raft.waiting_for_permit(), 2);
    for f in fs {
        f.wait().unwrap();
    }
    // One at a time: the three took at least three delays.
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );

    // A request whose deadline passes while it waits fails with FlowControl.
    fake.state().delay = Duration::from_millis(800);
    let first = send(3000);
    let t = Instant::now();
    match send(200).wait() {
        Err(KvError::Net(NetError::FlowControl { .. })) => {}
        other => panic!("{other:?}"),
    }
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(180) && e < Duration::from_millis(2_000),
        "{e:?}"
    );
    first.wait().unwrap();
    raft.stop(Duration::from_secs(1));
}

#[test]
fn groups_and_nodes_change_at_runtime() {
    let fake = Fake::start(3, 3);
    let raft = RaftClient::new(cfg(2000)).unwrap();
    let nodes = fake.nodes();
    raft.add_or_update_nodes(&nodes[..2]).unwrap();
    assert!(matches!(
        raft.add_or_update_group(0, &[1, 2, 3]),
        Err(KvError::InvalidArgument(_))
    ));
    raft.add_or_update_group(0, &[1, 2]).unwrap();
    // Both name node 3, which is not a member: no leader.
    assert!(matches!(
        raft.fetch_leader(0, Duration::from_secs(2)).wait(),
        Err(KvError::NoLeader { .. })
    ));
    raft.add_or_update_nodes(&nodes[2..]).unwrap();
    raft.add_or_update_group(0, &[1, 2, 3]).unwrap();
    assert_eq!(
        raft.fetch_leader(0, Duration::from_secs(2)).wait().unwrap(),
        3
    );
    // A second group on the same nodes shares the connections.
    raft.add_or_update_group(7, &[3]).unwrap();
    assert_eq!(
        raft.fetch_leader(7, Duration::from_secs(2)).wait().unwrap(),
        3
    );
    assert_eq!(raft.nio().peers().len(), 3);
    assert!(matches!(
        raft.remove_node(3),
        Err(KvError::InvalidArgument(_))
    ));
    raft.remove_group(7).unwrap();
    raft.add_or_update_group(0, &[1, 2]).unwrap();
    assert_eq!(raft.leader(0), None);
    raft.remove_node(3).unwrap();
    assert_eq!(raft.nodes().len(), 2);
    let st = raft
        .query_status(1, 0, Duration::from_secs(2))
        .wait()
        .unwrap();
    assert_eq!((st.node_id, st.leader_id), (1, 3));
    raft.stop(Duration::from_secs(1));
}

#[test]
fn callbacks_and_futures_complete() {
    let fake = Fake::start(1, 1);
    let kv = kv_client(&fake, 2000);
    let (tx, rx) = std::sync::mpsc::channel();
    kv.put_cb(0, "c", "1", move |r| tx.send(r.unwrap()).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(3)).unwrap(), 1);
    // A future polled by a minimal executor (no runtime).
    let v = block_on(kv.get_async(0, "c")).unwrap().unwrap();
    assert_eq!(&v.data[..], b"1");
    assert!(block_on(kv.get_async(0, "missing")).unwrap().is_none());
    // Local checks fail at once, nothing sent.
    fake.data_log();
    assert!(matches!(
        kv.put(0, "a..b", "v"),
        Err(KvError::InvalidArgument(_))
    ));
    assert!(fake.data_log().is_empty());
    kv.stop(Duration::from_secs(1));
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct T(std::thread::Thread);
    impl Wake for T {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(T(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn push(fake: &Fake, server: &NioServer, node: i32, key: &str, index: i64, value: &str) -> i32 {
    let conn = fake.state().watches.get(&node).unwrap().0;
    let req = WatchNotifyReq {
        group_id: 0,
        notify_list: vec![WatchNotify {
            raft_index: index,
            state: 1,
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
        }],
    };
    let pkt = WritePacket::request(
        KvCommands::DTKV_WATCH_NOTIFY_PUSH,
        WriteBody::Bytes(encode::to_bytes(&req)),
    );
    server
        .send_request(conn, pkt, Duration::from_secs(2))
        .wait()
        .unwrap()
        .biz_code
}

#[test]
fn watches_sync_deliver_and_resync_on_another_server() {
    let mut fake = Fake::start(2, 1);
    let kv = kv_client(&fake, 2000);
    kv.watch_manager()
        .set_check_interval(Duration::from_millis(500));
    let (tx, rx) = std::sync::mpsc::channel();
    kv.watch_manager().set_listener(
        move |e| {
            tx.send((e.raft_index, String::from_utf8_lossy(&e.value).into_owned()))
                .unwrap()
        },
        None,
    );
    kv.watch_manager().add_watch(0, &["w.a", "w.b"]).unwrap();
    let t = Instant::now();
    while kv.watch_manager().watch_server(0).is_none() || fake.state().watches.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "no watch sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    let node = kv.watch_manager().watch_server(0).unwrap();
    {
        let st = fake.state();
        let (n, first) = &st.watch_syncs[0];
        assert_eq!(*n, node);
        assert!(
            first.sync_all,
            "the first sync to a new server is a full one"
        );
        assert_eq!(first.known_raft_indexes, [0, 0]);
    }
    let server = &fake.servers[node as usize - 1];
    assert_eq!(push(&fake, server, node, "w.a", 5, "v5"), 0);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(2)).unwrap(),
        (5, "v5".into())
    );
    // An older or equal index is acknowledged but not delivered again.
    assert_eq!(push(&fake, server, node, "w.a", 5, "v5"), 0);
    assert_eq!(push(&fake, server, node, "w.a", 7, "v7"), 0);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(2)).unwrap(),
        (7, "v7".into())
    );

    // The watch server dies: the client moves to the other node with a full sync that
    // carries what it has seen.
    fake.state().watch_syncs.clear();
    fake.servers[node as usize - 1].stop(Duration::from_millis(100));
    let other = 3 - node;
    let t = Instant::now();
    loop {
        let done = fake
            .state()
            .watch_syncs
            .iter()
            .any(|(n, r)| *n == other && r.sync_all);
        if done {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "no re-sync to node {other}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        let st = fake.state();
        let (_, r) = st.watch_syncs.iter().find(|(n, _)| *n == other).unwrap();
        let m: HashMap<_, _> = r
            .keys
            .iter()
            .cloned()
            .zip(r.known_raft_indexes.clone())
            .collect();
        assert_eq!(m[&Bytes::from("w.a")], 7);
        assert_eq!(m[&Bytes::from("w.b")], 0);
    }
    let server2 = &fake.servers[other as usize - 1];
    assert_eq!(push(&fake, server2, other, "w.a", 7, "v7"), 0);
    assert_eq!(push(&fake, server2, other, "w.b", 8, "b8"), 0);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(2)).unwrap(),
        (8, "b8".into())
    );
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());

    // Removing a watch: the next push for it is answered REMOVE_WATCH; with no watches
    // left the group gets REMOVE_ALL_WATCH.
    kv.watch_manager().remove_watch(0, &["w.a", "w.b"]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        push(&fake, server2, other, "w.b", 9, "b9"),
        KvCode::RemoveAllWatch.code()
    );
    fake.servers.remove(node as usize - 1);
    kv.stop(Duration::from_secs(1));
}

#[test]
fn watches_resync_when_the_server_lost_them() {
    let fake = Fake::start(1, 1);
    let kv = kv_client(&fake, 2000);
    kv.watch_manager()
        .set_check_interval(Duration::from_millis(500));
    kv.watch_manager().add_watch(0, &["x.a"]).unwrap();
    let t = Instant::now();
    while fake.state().watches.get(&1).is_none_or(|w| w.1.is_empty()) {
        assert!(t.elapsed() < Duration::from_secs(5), "no watch sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server forgets the registration (as after a restart or a reconnect): the
    // status check sees watch_count 0 < 1 and the client registers again, fully.
    {
        let mut st = fake.state();
        st.watches.get_mut(&1).unwrap().1.clear();
        st.watch_syncs.clear();
    }
    let t = Instant::now();
    loop {
        let st = fake.state();
        if let Some((_, r)) = st.watch_syncs.first() {
            assert!(r.sync_all);
            assert_eq!(r.keys, [Bytes::from("x.a")]);
            break;
        }
        drop(st);
        assert!(t.elapsed() < Duration::from_secs(5), "no re-sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    kv.stop(Duration::from_secs(1));
    // Stopping removes the registrations on the server (sync_all with no keys).
    let st = fake.state();
    let (_, last) = st.watch_syncs.last().unwrap();
    assert!(last.sync_all && last.keys.is_empty());
}

#[test]
fn a_restarted_node_is_reconnected_and_used_again() {
    let mut fake = Fake::start(1, 1);
    let kv = kv_client(&fake, 1000);
    kv.put(0, "k", "v").unwrap();
    let port = fake.servers[0].port();
    fake.servers[0].stop(Duration::from_millis(100));
    fake.servers.clear();
    assert!(kv.get(0, "k").is_err(), "the node is down");
    // Back on the same port: the client reconnects (back-off 100 ms, 1 s, ...).
    fake.servers.push(node_server(1, port, &fake.cluster));
    let t = Instant::now();
    loop {
        if let Ok(Some(n)) = kv.get(0, "k") {
            assert_eq!(&n.data[..], b"v");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(8), "not reconnected");
        std::thread::sleep(Duration::from_millis(100));
    }
    kv.stop(Duration::from_secs(1));
}
