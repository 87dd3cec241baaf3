//! Replays the recorded reference session `kv_basic` (a reference KvClient against a
//! reference single-node DtKV server) through our networked KvClient: a fake server
//! answers each request with the response the reference server gave, after checking
//! that our request has the recorded command and the byte-identical body; the test
//! checks that the client turns each answer into the result the reference client had.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dt_client::kv::{ops, KvBody, KvCode, KvCommands, KvError, KvReq};
use dt_client::raft::{QueryStatus, RaftNode};
use dt_client::{KvClient, KvClientConfig};
use dt_net::{
    Commands, FrameDecoder, NioServer, NioServerConfig, ReadPacket, ReqContext, ReqProcessor,
    WriteBody, WritePacket,
};
use serde_json::Value;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

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
    let status = QueryStatus::decode_body(&pairs[0].1.body).unwrap();
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
            KvCommands::DTKV_BATCH_GET => kv.batch_get(g, m.keys.clone()).map(|_| ()),
            KvCommands::DTKV_BATCH_PUT => kv
                .batch_put(g, m.keys.clone(), m.values.clone())
                .map(|_| ()),
            KvCommands::DTKV_BATCH_REMOVE => kv.batch_remove(g, m.keys.clone()).map(|_| ()),
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
    assert_eq!(QueryStatus::decode_body(&status.body).unwrap().leader_id, 3);
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
