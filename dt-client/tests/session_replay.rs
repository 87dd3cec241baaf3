//! Replays the recorded reference session `kv_basic` (a reference KvClient against a
//! reference single-node DtKV server) through our networked KvClient: a fake server
//! answers each request with the response the reference server gave, after checking
//! that our request has the recorded command and the byte-identical body; the test
//! checks that the client turns each answer into the result the reference client had.

use dt_common::vectors::unhex;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dt_client::kv::{ops, BatchResult, KvBody, KvCode, KvCommands, KvError, KvReq, KvResp};
use dt_client::raft::{QueryStatus, RaftNode};
use dt_client::{KvClient, KvClientConfig};
use dt_net::{
    Commands, FrameDecoder, NioServer, NioServerConfig, ReadPacket, ReqContext, ReqProcessor,
    WriteBody, WritePacket,
};
use serde_json::Value;

fn parse_frame(hex_frame: &str) -> ReadPacket {
    let mut buf = BytesMut::from(&unhex(hex_frame)[..]);
    FrameDecoder::new(i32::MAX as usize)
        .decode(&mut buf)
        .unwrap()
        .expect("a whole frame")
}

/// (request, response) pairs of the recorded service connection, in request order.
fn load(name: &str) -> Option<Vec<(ReadPacket, ReadPacket)>> {
    let dir = dt_common::vectors::golden_vectors("session_replay")?;
    let path = dir.join("sessions").join(format!("{name}.frames.jsonl"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut reqs: Vec<ReadPacket> = Vec::new();
    let mut resps: Vec<ReadPacket> = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(h) = v["frame_hex"].as_str() else {
            continue;
        };
        let p = parse_frame(h);
        if p.command == Commands::CMD_HANDSHAKE {
            continue;
        }
        if v["dir"] == "c2s" {
            reqs.push(p);
        } else {
            resps.push(p);
        }
    }
    Some(
        reqs.into_iter()
            .map(|q| {
                let r = resps
                    .iter()
                    .find(|r| r.seq == q.seq && r.command == q.command)
                    .cloned()
                    .expect("a response per request");
                (q, r)
            })
            .collect(),
    )
}

struct Replay {
    script: Arc<Mutex<VecDeque<(ReadPacket, ReadPacket)>>>,
    mismatches: Arc<Mutex<Vec<String>>>,
}

impl ReqProcessor for Replay {
    type Body = ();
    fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
        Ok(())
    }
    fn process(&self, pkt: ReadPacket, _b: (), _ctx: ReqContext) -> Option<WritePacket> {
        let (q, r) = self.script.lock().unwrap().pop_front()?;
        if q.command != pkt.command || q.body != pkt.body {
            self.mismatches.lock().unwrap().push(format!(
                "recorded cmd {} body {:02x?}, ours cmd {} body {:02x?}",
                q.command,
                &q.body[..],
                pkt.command,
                &pkt.body[..]
            ));
        }
        Some(WritePacket {
            resp_code: r.resp_code,
            biz_code: r.biz_code,
            msg: r.msg,
            extra: r.extra,
            ..WritePacket::response(if r.body.is_empty() {
                WriteBody::Empty
            } else {
                WriteBody::Bytes(r.body)
            })
        })
    }
}

#[test]
fn kv_basic_replays_through_the_networked_client() {
    let Some(pairs) = load("kv_basic") else {
        return;
    };
    assert!(pairs.len() > 30, "{} recorded requests", pairs.len());
    assert_eq!(pairs[0].0.command, Commands::RAFT_QUERY_STATUS);
    let status = <QueryStatus as dt_client::kv::KvBody>::decode(&pairs[0].1.body).unwrap();
    let script = Arc::new(Mutex::new(VecDeque::from(pairs.clone())));
    let mismatches = Arc::new(Mutex::new(Vec::new()));
    let mut server = NioServer::new(NioServerConfig {
        ports: vec![0],
        io_threads: 1,
        ..Default::default()
    });
    let mut cmds = vec![Commands::RAFT_QUERY_STATUS];
    cmds.extend(pairs.iter().map(|p| p.0.command));
    cmds.sort_unstable();
    cmds.dedup();
    for c in cmds {
        server.register(
            c,
            Replay {
                script: script.clone(),
                mismatches: mismatches.clone(),
            },
        );
    }
    server.start().unwrap();

    let kv = KvClient::new(KvClientConfig::default()).unwrap();
    kv.raft()
        .add_or_update_nodes(&[RaftNode {
            node_id: status.leader_id,
            addr: format!("127.0.0.1:{}", server.port()).parse().unwrap(),
        }])
        .unwrap();
    let group = KvReq::decode(&pairs[1].0.body).unwrap().group_id;
    kv.raft()
        .add_or_update_group(group, &[status.leader_id])
        .unwrap();

    let mut checked = 0;
    for (q, r) in &pairs[1..] {
        let m = KvReq::decode(&q.body).unwrap();
        let g = m.group_id;
        let (k, v) = (m.key.clone(), m.value.clone());
        let res: Result<(), KvError> = match q.command {
            KvCommands::DTKV_GET => kv.get(g, k).map(|_| ()),
            KvCommands::DTKV_PUT => kv.put(g, k, v).map(|_| ()),
            KvCommands::DTKV_REMOVE => kv.remove(g, k).map(|_| ()),
            KvCommands::DTKV_MKDIR => kv.mkdir(g, k).map(|_| ()),
            KvCommands::DTKV_LIST => kv.list(g, k).map(|_| ()),
            KvCommands::DTKV_BATCH_GET => kv.batch_get(g, m.keys.clone()).map(|nodes| {
                assert_eq!(nodes.len(), m.keys.len(), "one node per key");
            }),
            KvCommands::DTKV_BATCH_PUT => kv
                .batch_put(g, m.keys.clone(), m.values.clone())
                .map(|done| check_batch(&done, r)),
            KvCommands::DTKV_BATCH_REMOVE => kv
                .batch_remove(g, m.keys.clone())
                .map(|done| check_batch(&done, r)),
            KvCommands::DTKV_CAS => {
                let done = kv.compare_and_set(g, k, m.expect_value.clone(), v);
                if let Ok(d) = &done {
                    assert_eq!(*d, r.biz_code == 0, "cas result");
                }
                done.map(|_| ())
            }
            KvCommands::DTKV_PUT_TEMP_NODE => kv.put_temp(g, k, v, m.ttl_millis).map(|_| ()),
            KvCommands::DTKV_UPDATE_TTL => kv.update_ttl(g, k, m.ttl_millis).map(|_| ()),
            KvCommands::DTKV_MAKE_TEMP_DIR => kv.make_temp_dir(g, k, m.ttl_millis).map(|_| ()),
            c => panic!("unexpected command {c} in kv_basic"),
        };
        let code = KvCode::from_code(r.biz_code);
        if ops::is_success(q.command, code) {
            assert!(res.is_ok(), "cmd {} code {code:?}: {res:?}", q.command);
        } else {
            match res {
                Err(KvError::Business { code: c, .. }) => assert_eq!(c, code),
                other => panic!("cmd {} expected {code:?}, got {other:?}", q.command),
            }
        }
        checked += 1;
    }
    assert_eq!(checked, pairs.len() - 1);
    assert!(script.lock().unwrap().is_empty());
    assert_eq!(mismatches.lock().unwrap().as_slice(), &[] as &[String]);
    kv.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}

/// A batch write's result as the client reports it: the reference server's raft index
/// and its per-key codes, in order.
fn check_batch(done: &BatchResult, recorded: &ReadPacket) {
    let resp = KvResp::decode(&recorded.body).unwrap();
    assert_eq!(done.raft_index, resp.raft_index);
    let codes: Vec<KvCode> = resp.results.iter().map(|r| r.biz_code).collect();
    assert_eq!(done.codes, codes);
}

/// The recorded frames of a multi-connection session: per connection, the (request,
/// response) pairs in order; and every data request in global order with its conn.
#[allow(clippy::type_complexity)]
fn load_conns(
    name: &str,
) -> Option<(
    std::collections::BTreeMap<i64, Vec<(ReadPacket, ReadPacket)>>,
    Vec<(i64, ReadPacket)>,
)> {
    let dir = dt_common::vectors::golden_vectors("session_replay")?;
    let path = dir.join("sessions").join(format!("{name}.frames.jsonl"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut reqs: Vec<(i64, ReadPacket)> = Vec::new();
    let mut resps: Vec<(i64, ReadPacket)> = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(h) = v["frame_hex"].as_str() else {
            continue;
        };
        let conn = v["conn"].as_i64().unwrap();
        let p = parse_frame(h);
        if p.command == Commands::CMD_HANDSHAKE {
            continue;
        }
        if v["dir"] == "c2s" {
            reqs.push((conn, p));
        } else {
            resps.push((conn, p));
        }
    }
    let mut by_conn = std::collections::BTreeMap::new();
    for (c, q) in &reqs {
        let r = resps
            .iter()
            .find(|(rc, r)| rc == c && r.seq == q.seq && r.command == q.command)
            .map(|x| x.1.clone())
            .expect("a response per request");
        by_conn
            .entry(*c)
            .or_insert_with(Vec::new)
            .push((q.clone(), r));
    }
    Some((by_conn, reqs))
}

#[test]
fn cluster3_redirects_replay_through_the_networked_client() {
    let Some((by_conn, reqs)) = load_conns("cluster3_not_leader_redirect") else {
        return;
    };
    // Connections 13, 14, 15 are the client's to nodes 1, 2, 3 (service ports).
    let conns: Vec<i64> = by_conn.keys().copied().collect();
    assert_eq!(conns, [13, 15], "conns with requests");
    let status = by_conn[&13][0].1.clone();
    assert_eq!(
        <QueryStatus as dt_client::kv::KvBody>::decode(&status.body)
            .unwrap()
            .leader_id,
        3
    );
    let mismatches = Arc::new(Mutex::new(Vec::new()));
    let mut servers = Vec::new();
    let mut nodes = Vec::new();
    for node in 1..=3 {
        let script: VecDeque<(ReadPacket, ReadPacket)> = by_conn
            .get(&(12 + node as i64))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|(q, _)| q.command != Commands::RAFT_QUERY_STATUS)
            .collect();
        let script = Arc::new(Mutex::new(script));
        let mut s = NioServer::new(NioServerConfig {
            ports: vec![0],
            io_threads: 1,
            ..Default::default()
        });
        // Status: every node answers as node 1 did (the leader is node 3).
        let st = status.clone();
        s.register(
            Commands::RAFT_QUERY_STATUS,
            dt_net::FnProcessor(move |_p: &ReadPacket, _c: &ReqContext| {
                Some(WritePacket::response(WriteBody::Bytes(st.body.clone())))
            }),
        );
        for c in [
            KvCommands::DTKV_MKDIR,
            KvCommands::DTKV_PUT,
            KvCommands::DTKV_GET,
        ] {
            s.register(
                c,
                Replay {
                    script: script.clone(),
                    mismatches: mismatches.clone(),
                },
            );
        }
        s.start().unwrap();
        nodes.push(RaftNode {
            node_id: node,
            addr: format!("127.0.0.1:{}", s.port()).parse().unwrap(),
        });
        servers.push((s, script));
    }
    let kv = KvClient::new(KvClientConfig::default()).unwrap();
    kv.raft().add_or_update_nodes(&nodes).unwrap();
    kv.raft().add_or_update_group(0, &[1, 2, 3]).unwrap();

    // The data requests in recorded order; a redirected one appears twice (to the old
    // leader, then to the new one): issue it once.
    let mut last: Option<Bytes> = None;
    let mut issued = 0;
    for (_, q) in reqs
        .iter()
        .filter(|(_, q)| q.command != Commands::RAFT_QUERY_STATUS)
    {
        if last.as_ref() == Some(&q.body) {
            continue;
        }
        last = Some(q.body.clone());
        let m = KvReq::decode(&q.body).unwrap();
        let r = match q.command {
            KvCommands::DTKV_MKDIR => kv.mkdir(m.group_id, m.key).map(|_| ()),
            KvCommands::DTKV_PUT => kv.put(m.group_id, m.key, m.value).map(|_| ()),
            KvCommands::DTKV_GET => kv.get(m.group_id, m.key).map(|n| assert!(n.is_some())),
            c => panic!("command {c}"),
        };
        r.unwrap();
        issued += 1;
    }
    assert_eq!(issued, 6);
    for (i, (_, script)) in servers.iter().enumerate() {
        assert!(
            script.lock().unwrap().is_empty(),
            "node {} has requests left",
            i + 1
        );
    }
    assert_eq!(mismatches.lock().unwrap().as_slice(), &[] as &[String]);
    assert_eq!(kv.raft().leader(0), Some(3));
    kv.stop(Duration::from_secs(1));
    for (s, _) in servers {
        s.stop(Duration::from_secs(1));
    }
}

/// The recorded frames of one connection of a session, in order, as (dir, packet).
fn conn_frames(name: &str, conn: i64) -> Option<Vec<(String, ReadPacket)>> {
    let dir = dt_common::vectors::golden_vectors("session_replay")?;
    let path = dir.join("sessions").join(format!("{name}.frames.jsonl"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(h) = v["frame_hex"].as_str() else {
            continue;
        };
        if v["conn"].as_i64() == Some(conn) {
            out.push((v["dir"].as_str().unwrap().to_string(), parse_frame(h)));
        }
    }
    Some(out)
}

#[test]
fn kv_watch_pushes_replay_through_the_watch_manager() {
    use dt_client::kv::WatchReq;
    // Connection 2 is the watching client A.
    let Some(frames) = conn_frames("kv_watch", 2) else {
        return;
    };
    let find = |dir: &str, cmd: i32| -> Vec<ReadPacket> {
        frames
            .iter()
            .filter(|(d, p)| d == dir && p.command == cmd)
            .map(|x| x.1.clone())
            .collect()
    };
    let status = find("s2c", KvCommands::DTKV_QUERY_STATUS)[0].clone();
    let syncs = find("c2s", KvCommands::DTKV_SYNC_WATCH);
    let pushes: Vec<ReadPacket> = find("s2c", KvCommands::DTKV_WATCH_NOTIFY_PUSH)
        .into_iter()
        .filter(|p| p.packet_type == 1)
        .collect();
    let answers: Vec<ReadPacket> = find("c2s", KvCommands::DTKV_WATCH_NOTIFY_PUSH);
    assert_eq!((syncs.len(), pushes.len(), answers.len()), (3, 4, 4));

    let got_syncs: Arc<Mutex<Vec<Bytes>>> = Arc::new(Mutex::new(Vec::new()));
    let conn: Arc<Mutex<Option<dt_net::ConnRef>>> = Arc::new(Mutex::new(None));
    let mut server = NioServer::new(NioServerConfig {
        ports: vec![0],
        io_threads: 1,
        ..Default::default()
    });
    let body = status.body.clone();
    server.register(
        KvCommands::DTKV_QUERY_STATUS,
        dt_net::FnProcessor(move |_p: &ReadPacket, _c: &ReqContext| {
            Some(WritePacket::response(WriteBody::Bytes(body.clone())))
        }),
    );
    let (gs, cn) = (got_syncs.clone(), conn.clone());
    server.register(
        KvCommands::DTKV_SYNC_WATCH,
        dt_net::FnProcessor(move |p: &ReadPacket, c: &ReqContext| {
            gs.lock().unwrap().push(p.body.clone());
            *cn.lock().unwrap() = Some(c.conn());
            Some(WritePacket::response(WriteBody::Empty))
        }),
    );
    server.start().unwrap();

    let kv = KvClient::new(KvClientConfig::default()).unwrap();
    kv.raft()
        .add_or_update_nodes(&[RaftNode {
            node_id: 1,
            addr: format!("127.0.0.1:{}", server.port()).parse().unwrap(),
        }])
        .unwrap();
    let group = WatchReq::decode(&syncs[0].body).unwrap().group_id;
    kv.raft().add_or_update_group(group, &[1]).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    kv.watch_manager().set_listener(
        move |e| {
            tx.send((
                String::from_utf8_lossy(&e.key).into_owned(),
                e.state,
                e.raft_index,
            ))
            .unwrap()
        },
        None,
    );
    let wait_syncs = |n: usize| {
        let t = std::time::Instant::now();
        while got_syncs.lock().unwrap().len() < n {
            assert!(t.elapsed() < Duration::from_secs(5), "no sync {n}");
            std::thread::sleep(Duration::from_millis(10));
        }
        got_syncs.lock().unwrap()[n - 1].clone()
    };
    let push = |i: usize| {
        let c = conn.lock().unwrap().unwrap();
        let r = server
            .send_request(
                c,
                WritePacket::request(
                    KvCommands::DTKV_WATCH_NOTIFY_PUSH,
                    WriteBody::Bytes(pushes[i].body.clone()),
                ),
                Duration::from_secs(3),
            )
            .wait()
            .unwrap();
        assert_eq!(r.biz_code, answers[i].biz_code, "push {i}: biz_code");
        assert_eq!(r.body, answers[i].body, "push {i}: our answer differs");
    };
    let events = |n: usize| -> Vec<(String, i32, i64)> {
        (0..n)
            .map(|_| rx.recv_timeout(Duration::from_secs(3)).unwrap())
            .collect()
    };

    kv.watch_manager()
        .add_watch(group, &["w.k", "w.d"])
        .unwrap();
    // The first sync: the same keys and indexes; we send it as a full sync
    // (sync_all, on a newly chosen server), the reference as an incremental one.
    let first = WatchReq::decode(&wait_syncs(1)).unwrap();
    let rec = WatchReq::decode(&syncs[0].body).unwrap();
    assert_eq!(
        (first.keys.clone(), first.known_raft_indexes.clone()),
        (rec.keys, rec.known_raft_indexes)
    );
    assert!(first.sync_all);
    push(0);
    let mut e = events(2);
    e.sort();
    assert_eq!(e, [("w.d".into(), 2, 26), ("w.k".into(), 1, 27)]);
    push(1);
    let mut e = events(2);
    e.sort();
    assert_eq!(e, [("w.d".into(), 2, 31), ("w.k".into(), 1, 29)]);
    push(2);
    let mut e = events(2);
    e.sort();
    assert_eq!(e, [("w.d".into(), 2, 32), ("w.k".into(), 0, 33)]);
    kv.watch_manager().remove_watch(group, &["w.k"]).unwrap();
    assert_eq!(wait_syncs(2), syncs[1].body, "remove-watch sync bytes");
    push(3);
    assert_eq!(events(1), [("w.d".into(), 2, 36)]);
    kv.watch_manager().remove_watch(group, &["w.d"]).unwrap();
    assert_eq!(wait_syncs(3), syncs[2].body, "last remove-watch sync bytes");
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "7 events in all"
    );
    kv.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}

/// A client's process uuid.
type Uuid = (u64, u64);
/// The recorded (request, response) pairs of one connection.
type Script = VecDeque<(ReadPacket, ReadPacket)>;

struct LockReplay {
    /// Per client uuid: the recorded (request, response) pairs of its connection.
    scripts: Arc<Mutex<std::collections::HashMap<Uuid, Script>>>,
    conns: Arc<Mutex<std::collections::HashMap<Uuid, dt_net::ConnRef>>>,
    mismatches: Arc<Mutex<Vec<String>>>,
    /// Sent to client B after client A's first UNLOCK is answered.
    push: Arc<Mutex<Option<(ReadPacket, Uuid)>>>,
    server: Arc<std::sync::OnceLock<Arc<NioServer>>>,
}

impl ReqProcessor for LockReplay {
    type Body = ();
    fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
        Ok(())
    }
    fn process(&self, pkt: ReadPacket, _b: (), ctx: ReqContext) -> Option<WritePacket> {
        let pi = ctx.process_info().unwrap();
        let who = (pi.uuid1, pi.uuid2);
        self.conns.lock().unwrap().insert(who, ctx.conn());
        let (q, r) = self.scripts.lock().unwrap().get_mut(&who)?.pop_front()?;
        if q.command != pkt.command || q.body != pkt.body {
            self.mismatches.lock().unwrap().push(format!(
                "recorded cmd {} body {:02x?}, ours cmd {} body {:02x?}",
                q.command,
                &q.body[..],
                pkt.command,
                &pkt.body[..]
            ));
        }
        if pkt.command == KvCommands::DTKV_UNLOCK {
            if let Some((p, to)) = self.push.lock().unwrap().take() {
                let conn = self.conns.lock().unwrap()[&to];
                let server = self.server.get().unwrap().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    let mut w = WritePacket::request(
                        KvCommands::DTKV_LOCK_PUSH,
                        WriteBody::Bytes(p.body.clone()),
                    );
                    w.packet_type = 3;
                    server
                        .send_one_way(conn, w, Duration::from_secs(5))
                        .unwrap();
                });
            }
        }
        Some(WritePacket {
            resp_code: r.resp_code,
            biz_code: r.biz_code,
            msg: r.msg,
            extra: r.extra,
            ..WritePacket::response(if r.body.is_empty() {
                WriteBody::Empty
            } else {
                WriteBody::Bytes(r.body)
            })
        })
    }
}

#[test]
fn kv_lock_replays_through_two_lock_clients() {
    let (Some(fa), Some(fb)) = (conn_frames("kv_lock", 1), conn_frames("kv_lock", 2)) else {
        return;
    };
    let a_id = (0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_7654_3210_u64);
    let b_id = (0x1111_1111_1111_1111_u64, 0x2222_2222_2222_2222_u64);
    let pairs = |f: &[(String, ReadPacket)]| -> VecDeque<(ReadPacket, ReadPacket)> {
        f.iter()
            .filter(|(d, p)| d == "c2s" && p.command != Commands::CMD_HANDSHAKE)
            .map(|(_, q)| {
                let r = f
                    .iter()
                    .find(|(d, r)| {
                        d == "s2c" && r.packet_type == 2 && r.seq == q.seq && r.command == q.command
                    })
                    .unwrap()
                    .1
                    .clone();
                (q.clone(), r)
            })
            .collect()
    };
    let push = fb
        .iter()
        .find(|(d, p)| d == "s2c" && p.command == KvCommands::DTKV_LOCK_PUSH)
        .unwrap()
        .1
        .clone();
    let scripts = Arc::new(Mutex::new(
        [(a_id, pairs(&fa)), (b_id, pairs(&fb))]
            .into_iter()
            .collect(),
    ));
    let mismatches = Arc::new(Mutex::new(Vec::new()));
    let cell = Arc::new(std::sync::OnceLock::new());
    let mut server = NioServer::new(NioServerConfig {
        ports: vec![0],
        io_threads: 1,
        ..Default::default()
    });
    let shared = LockReplay {
        scripts: scripts.clone(),
        conns: Default::default(),
        mismatches: mismatches.clone(),
        push: Default::default(),
        server: cell.clone(),
    };
    *shared.push.lock().unwrap() = Some((push, b_id));
    for c in [
        Commands::RAFT_QUERY_STATUS,
        KvCommands::DTKV_MKDIR,
        KvCommands::DTKV_LIST,
        KvCommands::DTKV_TRY_LOCK,
        KvCommands::DTKV_UNLOCK,
        KvCommands::DTKV_UPDATE_LOCK_LEASE,
    ] {
        server.register(
            c,
            LockReplay {
                scripts: shared.scripts.clone(),
                conns: shared.conns.clone(),
                mismatches: shared.mismatches.clone(),
                push: shared.push.clone(),
                server: shared.server.clone(),
            },
        );
    }
    server.start().unwrap();
    let server = Arc::new(server);
    let _ = cell.set(server.clone());
    let client = |id: (u64, u64)| {
        let mut cfg = KvClientConfig::default();
        cfg.raft.nio.process_info = dt_net::ProcessInfo {
            uuid1: id.0,
            uuid2: id.1,
        };
        let kv = KvClient::new(cfg).unwrap();
        kv.raft()
            .add_or_update_nodes(&[RaftNode {
                node_id: 1,
                addr: format!("127.0.0.1:{}", server.port()).parse().unwrap(),
            }])
            .unwrap();
        kv.raft().add_or_update_group(0, &[1]).unwrap();
        kv
    };
    let a = client(a_id);
    let b = client(b_id);
    // Discovery first, in the recorded order.
    a.raft()
        .fetch_leader(0, Duration::from_secs(3))
        .wait()
        .unwrap();
    b.raft()
        .fetch_leader(0, Duration::from_secs(3))
        .wait()
        .unwrap();

    a.mkdir(0, "locks").unwrap();
    let la = a.create_lock(0, "locks.l1").unwrap();
    let lb = b.create_lock(0, "locks.l1").unwrap();
    assert!(la.try_lock(30_000, 0).unwrap());
    let fb = lb.try_lock_async(30_000, 10_000);
    std::thread::sleep(Duration::from_millis(100));
    la.update_lease(20_000).unwrap();
    la.unlock().unwrap();
    assert!(fb.wait().unwrap(), "B gets the lock by the recorded push");
    assert!(!la.try_lock(1_000, 0).unwrap());
    lb.update_lease(40_000).unwrap();
    lb.unlock().unwrap();
    drop(la); // may be held as far as A knows: the reference client unlocks too
    assert!(a.list(0, "locks").unwrap().is_empty());

    for (who, s) in scripts.lock().unwrap().iter() {
        assert!(
            s.is_empty(),
            "{who:x?}: recorded requests left: {}",
            s.len()
        );
    }
    assert_eq!(mismatches.lock().unwrap().as_slice(), &[] as &[String]);
    drop(lb);
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}
