//! Three DtKV servers in one process over loopback, driven by dt-client's networked
//! KvClient: every operation, a watch, a lock hand-over by push, and a leader stop
//! after which the client goes on with the new leader.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::{KvCode, KvError, WatchEvent};
use dt_client::KvClient;
use dt_common::{PerfHook, PerfStats};
use dt_raft::core::Role;
use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig, SERVER_STATS};

const GROUP: i32 = 0;

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

fn start(dir: &std::path::Path, repl: &[u16], svc: &[u16]) -> Vec<DtKvServer> {
    start_reporting(dir, repl, svc, |_| None)
}

/// [`start`] with node `id`'s perf hook `perf(id)` (`None`: the server's own).
fn start_reporting(
    dir: &std::path::Path,
    repl: &[u16],
    svc: &[u16],
    perf: impl Fn(i32) -> Option<PerfHook>,
) -> Vec<DtKvServer> {
    let servers: String = repl
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
        .collect();
    let nodes: Vec<DtKvServer> = (1..=repl.len() as i32)
        .map(|id| {
            let scfg = RaftServerConfig {
                servers: servers.clone(),
                node_id: id,
                replicate_port: repl[id as usize - 1],
                service_port: svc[id as usize - 1],
                bind_host: "127.0.0.1".parse().unwrap(),
                elect_timeout: Duration::from_millis(1000),
                heartbeat_interval: Duration::from_millis(200),
                rpc_timeout: Duration::from_millis(1000),
                ping_interval: Duration::from_millis(200),
                raft_ping_interval: Duration::from_millis(100),
                io_threads: 1,
                block_io_threads: 1,
                ..Default::default()
            };
            let g = KvGroupConfig::new(GROUP, (1..=repl.len() as u32).collect());
            let mut cfg = DtKvServerConfig::new(scfg, vec![g], dir.join(format!("n{id}")));
            cfg.log_file_size = 1 << 20;
            cfg.perf = perf(id);
            DtKvServer::new(cfg).unwrap()
        })
        .collect();
    for n in &nodes {
        n.start().unwrap();
    }
    for n in &nodes {
        n.wait_group_ready(Duration::from_secs(20)).unwrap();
    }
    nodes
}

fn leader(nodes: &[Option<DtKvServer>]) -> usize {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let l = nodes.iter().position(|n| {
            n.as_ref().is_some_and(|n| {
                n.groups()
                    .group(GROUP)
                    .is_some_and(|g| g.status().role == Role::Leader)
            })
        });
        if let Some(l) = l {
            return l;
        }
        assert!(Instant::now() < end, "no leader");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn client_servers(svc: &[u16]) -> String {
    svc.iter()
        .enumerate()
        .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
        .collect()
}

#[test]
fn kv_client_against_a_three_node_dtkv_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let (repl, svc) = ports.split_at(3);
    let mut nodes: Vec<Option<DtKvServer>> =
        start(dir.path(), repl, svc).into_iter().map(Some).collect();
    let servers = client_servers(svc);
    let members = [1, 2, 3];
    let kv = KvClient::connect(&servers, &[(GROUP, &members)]).unwrap();

    // Plain operations.
    kv.mkdir(GROUP, "d").unwrap();
    let i1 = kv.put(GROUP, "d.a", "1").unwrap();
    let i2 = kv.put(GROUP, "d.b", "2").unwrap();
    assert!(i2 > i1);
    assert_eq!(
        kv.get(GROUP, "d.a").unwrap().unwrap().data,
        Bytes::from("1")
    );
    assert!(kv.get(GROUP, "d.none").unwrap().is_none());
    let mut names: Vec<Bytes> = kv
        .list(GROUP, "d")
        .unwrap()
        .into_iter()
        .map(|r| r.key_in_dir)
        .collect();
    names.sort();
    assert_eq!(names, vec![Bytes::from("a"), Bytes::from("b")]);
    let keys: Vec<Bytes> = vec!["d.x".into(), "d.y".into()];
    let done = kv
        .batch_put(GROUP, keys.clone(), vec!["x".into(), "y".into()])
        .unwrap();
    assert_eq!(done.codes, vec![KvCode::Success, KvCode::Success]);
    assert!(done.raft_index > i2);
    let got = kv.batch_get(GROUP, keys.clone()).unwrap();
    assert_eq!(got[1].as_ref().unwrap().data, Bytes::from("y"));
    // Each key of a batch is judged on its own, and the caller sees each outcome: an
    // overwrite, a key under a missing directory, a put on a directory.
    let mixed = kv
        .batch_put(
            GROUP,
            vec!["d.x".into(), "nodir.k".into(), "d".into()],
            vec!["x2".into(), "v".into(), "v".into()],
        )
        .unwrap();
    assert_eq!(
        mixed.codes,
        vec![
            KvCode::SuccessOverwrite,
            KvCode::ParentDirNotExists,
            KvCode::DirExists
        ]
    );
    assert!(kv.get(GROUP, "nodir.k").unwrap().is_none());
    let removed = kv
        .batch_remove(GROUP, vec!["d.x".into(), "d.y".into(), "d.none".into()])
        .unwrap();
    assert_eq!(
        removed.codes,
        vec![KvCode::Success, KvCode::Success, KvCode::NotFound]
    );
    assert!(removed.all_succeeded(), "an absent key counts as removed");
    assert!(kv
        .batch_get(GROUP, keys)
        .unwrap()
        .iter()
        .all(Option::is_none));
    assert!(kv.compare_and_set(GROUP, "d.a", "1", "1b").unwrap());
    assert!(!kv.compare_and_set(GROUP, "d.a", "1", "1c").unwrap());
    kv.remove(GROUP, "d.b").unwrap();
    assert!(kv.get(GROUP, "d.b").unwrap().is_none());
    // A non-empty directory cannot be removed: a business code from the server.
    assert!(matches!(
        kv.remove(GROUP, "d"),
        Err(KvError::Business { .. })
    ));

    // TTL: a temp node expires through the log; update_ttl keeps another alive.
    kv.put_temp(GROUP, "t1", "v", 300).unwrap();
    kv.put_temp(GROUP, "t2", "v", 300).unwrap();
    kv.update_ttl(GROUP, "t2", 60_000).unwrap();
    kv.make_temp_dir(GROUP, "td", 300).unwrap();
    kv.put(GROUP, "td.c", "v").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while (kv.get(GROUP, "t1").unwrap().is_some() || kv.get(GROUP, "td.c").unwrap().is_some())
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kv.get(GROUP, "t1").unwrap().is_none(), "temp node expired");
    assert!(
        kv.get(GROUP, "td.c").unwrap().is_none(),
        "temp dir expired with its child"
    );
    assert!(
        kv.get(GROUP, "t2").unwrap().is_some(),
        "updated TTL still alive"
    );

    // A watch sees a later put by another client.
    let (tx, rx) = mpsc::channel::<WatchEvent>();
    kv.watch_manager().set_listener(
        move |e| {
            let _ = tx.send(e);
        },
        None,
    );
    kv.watch_manager().add_watch(GROUP, &["w"]).unwrap();
    let other = KvClient::connect(&servers, &[(GROUP, &members)]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let wi = other.put(GROUP, "w", "seen").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while Instant::now() < end {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(100)) {
            if &e.value[..] == b"seen" {
                seen = Some(e);
                break;
            }
        }
    }
    let e = seen.expect("watch event");
    assert_eq!(e.raft_index, wi);

    // Lock hand-over: B waits, A unlocks, B gets it by push with a larger fencing token.
    let la = kv.create_lock(GROUP, "lk").unwrap();
    let lb = other.create_lock(GROUP, "lk").unwrap();
    assert!(la.try_lock(30_000, 0).unwrap());
    assert!(!lb.try_lock(30_000, 0).unwrap());
    let fb = lb.try_lock_async(30_000, 10_000);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!fb.is_done());
    let ta = la.fencing_token().unwrap();
    la.unlock().unwrap();
    assert!(fb.wait().unwrap(), "B got the lock after A's unlock");
    let end = Instant::now() + Duration::from_secs(5);
    while lb.fencing_token().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lb.fencing_token().unwrap() > ta);
    lb.unlock().unwrap();
    drop((la, lb));
    other.stop(Duration::from_secs(1));

    // Stop the leader: the client goes on with the new one.
    let l = leader(&nodes);
    nodes[l].take().unwrap().stop(Duration::from_secs(5));
    let end = Instant::now() + Duration::from_secs(30);
    let idx = loop {
        match kv.put(GROUP, "after", "kill") {
            Ok(i) => break i,
            Err(e) => {
                assert!(Instant::now() < end, "no write after the leader stop: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(idx > wi);
    let nl = leader(&nodes);
    assert_ne!(nl, l);
    assert_eq!(
        kv.get(GROUP, "after").unwrap().unwrap().data,
        Bytes::from("kill")
    );
    assert_eq!(
        kv.get(GROUP, "d.a").unwrap().unwrap().data,
        Bytes::from("1b")
    );
    kv.stop(Duration::from_secs(1));
    for n in nodes.into_iter().flatten() {
        n.stop(Duration::from_secs(5));
    }
}

/// The raw answers of the processors: NOT_RAFT_LEADER with the leader hint from a
/// follower (reads and writes), the TTL pre-check before the log, an unknown group.
#[test]
fn processors_answer_redirects_and_pre_checks_on_the_wire() {
    use dt_client::kv::{KvCode, KvCommands, KvReq};
    use dt_net::{CmdCodes, NioClient, NioClientConfig, WriteBody, WritePacket};

    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let (repl, svc) = ports.split_at(3);
    let nodes: Vec<Option<DtKvServer>> =
        start(dir.path(), repl, svc).into_iter().map(Some).collect();
    let l = leader(&nodes);
    let f = (l + 1) % 3;
    let mut c = NioClient::new(NioClientConfig::default());
    c.start().unwrap();
    let peer = |i: usize| {
        c.add_peer(format!("127.0.0.1:{}", svc[i]).parse().unwrap())
            .unwrap()
            .id
    };
    let (pl, pf) = (peer(l), peer(f));
    let call = |p, cmd: i32, req: KvReq| {
        c.send_request_sync(
            Some(p),
            WritePacket::request(cmd, WriteBody::Encodable(Box::new(req))),
            Duration::from_secs(10),
        )
    };
    // NOT_RAFT_LEADER from a follower, naming the leader (the hint also travels in the
    // packet's `extra`, which NioClient's sync call does not surface; its text is
    // checked here). The follower may not know the leader for a moment.
    let end = Instant::now() + Duration::from_secs(10);
    for cmd in [KvCommands::DTKV_PUT, KvCommands::DTKV_GET] {
        loop {
            match call(pf, cmd, KvReq::put(GROUP, "k", "v")) {
                Err(dt_net::NetError::Remote { code, msg }) => {
                    assert_eq!(code, CmdCodes::NOT_RAFT_LEADER, "command {cmd}");
                    if msg.ends_with(&format!("leader is {}", l + 1)) {
                        break;
                    }
                    assert!(Instant::now() < end, "no leader hint: {msg}");
                }
                other => panic!("command {cmd} on a follower: {other:?}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let call_ok = |p, cmd: i32, req: KvReq| call(p, cmd, req).unwrap();
    // On the leader: a temp node with a bad TTL is refused before the log.
    let r = call_ok(
        pl,
        KvCommands::DTKV_PUT_TEMP_NODE,
        KvReq::put(GROUP, "t", "v"),
    );
    assert_eq!(r.resp_code, CmdCodes::SUCCESS);
    assert_eq!(r.biz_code, KvCode::InvalidTtl.code());
    assert!(!r.msg.is_empty());
    // A business failure carries its code: GET of a bad key.
    let r = call_ok(pl, KvCommands::DTKV_GET, KvReq::key(GROUP, ".bad"));
    assert_eq!(r.resp_code, CmdCodes::SUCCESS);
    assert_eq!(r.biz_code, KvCode::InvalidKey.code());
    // A put then a get on the leader.
    let r = call_ok(pl, KvCommands::DTKV_PUT, KvReq::put(GROUP, "k", "v"));
    assert_eq!((r.resp_code, r.biz_code), (CmdCodes::SUCCESS, 0));
    // An unknown group.
    match call(pl, KvCommands::DTKV_PUT, KvReq::put(77, "k", "v")) {
        Err(dt_net::NetError::Remote { code, .. }) => {
            assert_eq!(code, CmdCodes::RAFT_GROUP_NOT_FOUND)
        }
        other => panic!("unknown group: {other:?}"),
    }
    c.stop(Duration::from_secs(1));
    for n in nodes.into_iter().flatten() {
        n.stop(Duration::from_secs(5));
    }
}

#[test]
fn requests_and_executions_reach_the_configured_perf_hook() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let (repl, svc) = ports.split_at(3);
    let stats: Vec<Arc<PerfStats>> = (0..3)
        .map(|_| Arc::new(PerfStats::new(&SERVER_STATS)))
        .collect();
    let nodes: Vec<Option<DtKvServer>> = start_reporting(dir.path(), repl, svc, |id| {
        Some(PerfHook::new(stats[id as usize - 1].clone()))
    })
    .into_iter()
    .map(Some)
    .collect();
    let l = leader(&nodes);
    let kv = KvClient::connect(&client_servers(svc), &[(GROUP, &[1, 2, 3])]).unwrap();
    for s in &stats {
        s.take();
    }
    const PUTS: u64 = 10;
    const GETS: u64 = 4;
    for i in 0..PUTS {
        kv.put(GROUP, Bytes::from(format!("k{i}")), "v").unwrap();
    }
    for i in 0..GETS {
        assert!(kv
            .get(GROUP, Bytes::from(format!("k{i}")))
            .unwrap()
            .is_some());
    }
    let count = |s: &PerfStats, seen: &mut [u64; SERVER_STATS.len()]| {
        for (t, f) in s.take() {
            let i = SERVER_STATS.iter().position(|x| *x == t).unwrap();
            seen[i] += f.events;
        }
    };
    for (i, s) in stats.iter().enumerate() {
        // in SERVER_STATS' order: executions, lease reads, linearizable operations,
        // then the IO threads' and dispatchers' loops
        let mut seen = [0u64; SERVER_STATS.len()];
        let end = Instant::now() + Duration::from_secs(10);
        while seen[0] < PUTS && Instant::now() < end {
            count(s, &mut seen);
            std::thread::sleep(Duration::from_millis(20));
        }
        count(s, &mut seen);
        assert_eq!(seen[0], PUTS, "node {}: one execution per put", i + 1);
        if i == l {
            assert_eq!(
                seen[1..3],
                [GETS, PUTS],
                "the leader answered every request"
            );
        } else {
            assert_eq!(seen[1..3], [0, 0], "node {}: no client request", i + 1);
        }
        // every node's IO threads and dispatchers went round their loops
        assert!(seen[3..].iter().all(|n| *n > 0), "node {}: {seen:?}", i + 1);
    }
    kv.stop(Duration::from_secs(1));
    for n in nodes.iter().flatten() {
        n.stop(Duration::from_secs(5));
    }
}
