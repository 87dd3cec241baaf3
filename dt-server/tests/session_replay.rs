//! The recorded client sessions (`vectors/sessions/`: kv_basic, kv_lock, kv_watch with
//! its watch pushes, cluster3_not_leader_redirect) replayed
//! against the DtKV data model: every DtKV request a reference client sent is applied
//! (writes at the raft index the reference server gave them, with the connection's
//! UUID as owner) or read, and our response, shaped as the reference shapes it, is the
//! recorded response frame byte for byte. Lock pushes match the hand-overs we report;
//! watch pushes come out of our watch manager byte for byte.

use std::collections::HashMap;
use std::path::Path;

use bytes::BytesMut;
use dt_client::kv::{
    KvBody, KvCode, KvCommands, KvReq, KvResp, KvStatusResp, LockPayload, WatchNotifyResp,
    WatchNotifyRespCallback, WatchReq,
};
use dt_codec::encode;
use dt_codec::PbParser;
use dt_common::vectors::{hex, unhex};
use dt_net::{FrameDecoder, ProcessInfo, ReadPacket, WriteBody, WritePacket};
use dt_server::dtkv::{
    check_ttl, check_watch_req, BizType, KvResponse, KvTree, LockHandover, PushOutcome, PushToken,
    WatchConfig, WatchManager,
};
use serde_json::Value;

fn parse_frame(h: &str) -> ReadPacket {
    let mut buf = BytesMut::from(&unhex(h)[..]);
    FrameDecoder::new(i32::MAX as usize)
        .decode(&mut buf)
        .unwrap()
        .unwrap()
}

struct Frame {
    conn: String,
    t_ns: i64,
    dir: String,
    p: ReadPacket,
    hex: String,
}

fn frames(path: &Path) -> (Value, Vec<Frame>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let header = lines.next().unwrap();
    let fs = lines
        .filter_map(|v| {
            let h = v["frame_hex"].as_str()?.to_string();
            Some(Frame {
                conn: v["conn"].to_string(),
                t_ns: (v["t_ms"].as_f64().unwrap() * 1e6) as i64,
                dir: v["dir"].as_str().unwrap().to_string(),
                p: parse_frame(&h),
                hex: h,
            })
        })
        .collect();
    (header, fs)
}

/// Entry timestamps shown by the recorded read responses.
fn times(fs: &[Frame]) -> HashMap<i64, i64> {
    let mut m = HashMap::new();
    for f in fs {
        let read = matches!(
            f.p.command,
            KvCommands::DTKV_GET | KvCommands::DTKV_LIST | KvCommands::DTKV_BATCH_GET
        );
        if f.dir == "s2c" && read && !f.p.body.is_empty() {
            for r in KvResp::decode(&f.p.body).unwrap().results {
                if let Some(n) = r.node {
                    m.insert(n.create_index, n.create_time);
                    m.insert(n.update_index, n.update_time);
                }
            }
        }
    }
    m
}

fn uuid(s: &str) -> ProcessInfo {
    ProcessInfo {
        uuid1: u64::from_str_radix(&s[..16], 16).unwrap(),
        uuid2: u64::from_str_radix(&s[16..32], 16).unwrap(),
    }
}

/// Rebuilds the recorded response frame around our `biz_code`, `msg` and body.
fn our_frame(rec: &ReadPacket, resp: &KvResponse) -> String {
    let body = encode::to_bytes(&resp.body);
    let w = WritePacket {
        packet_type: rec.packet_type,
        command: rec.command,
        seq: rec.seq,
        resp_code: rec.resp_code,
        biz_code: resp.biz_code.code(),
        msg: resp.msg.clone(),
        timeout_nanos: rec.timeout_nanos,
        extra: rec.extra.clone(),
        body: WriteBody::Bytes(body),
    };
    let mut out = BytesMut::new();
    w.encode_frame(&mut out);
    hex(&out)
}

/// Replays one session; returns (responses compared, lock pushes matched).
fn replay(file: &str) -> Option<(usize, usize)> {
    let dir = dt_common::vectors::golden_vectors(&format!("session_replay_{file}"))?;
    let (_, fs) = frames(&dir.join("sessions").join(format!("{file}.frames.jsonl")));
    // The capture's own header names each connection's client UUID.
    let raw = std::fs::read_to_string(dir.join("sessions").join(format!("{file}.jsonl"))).unwrap();
    let header: Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    let owners: HashMap<String, ProcessInfo> = header["connections"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), uuid(v["client_uuid"].as_str().unwrap())))
        .collect();
    let times = times(&fs);
    let mut pending: HashMap<(String, i32), KvReq> = HashMap::new();
    let mut tree = KvTree::new();
    let mut handovers: Vec<LockHandover> = Vec::new();
    let (mut compared, mut pushes) = (0, 0);
    let mut watches: WatchManager<u32> = WatchManager::new(0, WatchConfig::default());
    let mut in_flight: HashMap<(String, i32), (PushToken, usize)> = HashMap::new();
    for f in &fs {
        let cmd = f.p.command;
        let now = f.t_ns;
        let conn: u32 = f.conn.parse().unwrap();
        if KvCommands::name(cmd).is_none() {
            continue;
        }
        if cmd == KvCommands::DTKV_LOCK_PUSH {
            let push = KvReq::decode(&f.p.body).unwrap();
            let h = handovers.remove(0);
            assert_eq!(push.key, h.lock_key);
            assert_eq!(push.value, h.value);
            assert_eq!(
                Some(&h.owner),
                owners.get(&f.conn),
                "pushed to the new owner"
            );
            assert!(LockPayload::parse(&push.value).is_some());
            pushes += 1;
            continue;
        }
        if cmd == KvCommands::DTKV_WATCH_NOTIFY_PUSH {
            if f.dir == "s2c" {
                // The server's dispatch round that produced this push.
                let (ps, done) = watches.dispatch(&tree, now);
                assert!(done);
                assert_eq!(ps.len(), 1, "{file}: one push expected, got {ps:?}");
                let p = &ps[0];
                assert_eq!(p.channel, conn);
                assert_eq!(
                    hex(&encode::to_bytes(&p.req)),
                    hex(&f.p.body),
                    "{file}: push"
                );
                let n = p.req.notify_list.len();
                in_flight.insert((f.conn.clone(), f.p.seq), (p.token.clone(), n));
                pushes += 1;
            } else {
                let (token, n) = in_flight.remove(&(f.conn.clone(), f.p.seq)).unwrap();
                let mut parser = PbParser::new(WatchNotifyRespCallback::expecting(n));
                parser.parse_whole(&f.p.body).unwrap();
                let results = WatchNotifyResp::finish(parser.into_callback())
                    .unwrap()
                    .results;
                let outcome = PushOutcome::Answered {
                    biz_code: KvCode::from_code(f.p.biz_code),
                    results,
                };
                let more = watches.push_result(&mut tree, conn, &token, outcome, now);
                assert!(more.is_empty());
                // The next periodic round re-checks the acknowledged watches: nothing new.
                let (ps, _) = watches.dispatch(&tree, now);
                assert!(ps.is_empty(), "{file}: unexpected push {ps:?}");
            }
            continue;
        }
        if f.dir == "c2s" {
            let mut req = match cmd {
                KvCommands::DTKV_SYNC_WATCH => {
                    let w = WatchReq::decode(&f.p.body).unwrap();
                    if check_watch_req(&w) == KvCode::Success {
                        watches.sync(&mut tree, conn, &w, now);
                    }
                    KvReq::default()
                }
                KvCommands::DTKV_QUERY_STATUS => KvReq::default(),
                _ => KvReq::decode(&f.p.body).unwrap(),
            };
            req.set_owner(owners[&f.conn]);
            pending.insert((f.conn.clone(), f.p.seq), req);
            continue;
        }
        let req = pending.remove(&(f.conn.clone(), f.p.seq)).unwrap();
        if f.p.resp_code != 0 {
            // A transport/Raft error (NOT_RAFT_LEADER): nothing was applied.
            continue;
        }
        let name = format!("{file}: {} seq {}", KvCommands::name(cmd).unwrap(), f.p.seq);
        if cmd == KvCommands::DTKV_QUERY_STATUS {
            let st = KvStatusResp::decode(&f.p.body).unwrap();
            assert_eq!(st.watch_count, watches.watch_count(conn, now), "{name}");
            compared += 1;
            continue;
        }
        if cmd == KvCommands::DTKV_SYNC_WATCH {
            let resp = KvResponse::rejected(KvCode::Success, "");
            assert_eq!(our_frame(&f.p, &resp), f.hex, "{name}");
            compared += 1;
            continue;
        }
        let resp = match cmd {
            KvCommands::DTKV_GET => KvResponse::get(tree.get(&req.key)),
            KvCommands::DTKV_LIST => KvResponse::multi_read(tree.list(&req.key)),
            KvCommands::DTKV_BATCH_GET => KvResponse::multi_read(tree.batch_get(&req.keys)),
            _ => {
                let biz = BizType::of_command(cmd).unwrap();
                let pre = match biz {
                    BizType::PutTempNode
                    | BizType::MkTempDir
                    | BizType::UpdateTtl
                    | BizType::UpdateLockLease => check_ttl(req.ttl_millis, &req.value, false),
                    BizType::TryLock => check_ttl(req.ttl_millis, &req.value, true),
                    _ => Ok(()),
                };
                match pre {
                    Err(msg) => KvResponse::rejected(KvCode::InvalidTtl, msg),
                    Ok(()) => {
                        let index = KvResp::decode(&f.p.body).unwrap().raft_index;
                        let time = times.get(&index).copied().unwrap_or(0);
                        let out = tree.apply(index, time, biz, &req);
                        watches.after_apply(&out.watch_events, index);
                        handovers.extend(out.lock_handover);
                        KvResponse::write(index, out.result)
                    }
                }
            }
        };
        assert_eq!(our_frame(&f.p, &resp), f.hex, "{name}");
        compared += 1;
    }
    assert!(
        handovers.is_empty(),
        "hand-overs without a push: {handovers:?}"
    );
    Some((compared, pushes))
}

#[test]
fn session_replay_kv_basic() {
    if let Some((n, pushes)) = replay("kv_basic") {
        assert_eq!((n, pushes), (30, 0));
    }
}

/// Client A watches a key and a directory while B writes: the four pushes the
/// reference sent (initial state, updates, NOT_EXISTS after a remove, a directory
/// change after the key's watch was removed) come out of our watch manager byte for
/// byte, and the watch counts of DTKV_QUERY_STATUS agree.
#[test]
fn session_replay_kv_watch() {
    if let Some((n, pushes)) = replay("kv_watch") {
        assert_eq!((n, pushes), (10 + 3 + 1, 4));
    }
}

/// Three nodes with two leader changes: the redirected requests (NOT_RAFT_LEADER)
/// were not applied; the others were, in one log.
#[test]
fn session_replay_cluster3_not_leader_redirect() {
    if let Some((n, pushes)) = replay("cluster3_not_leader_redirect") {
        assert_eq!((n, pushes), (6, 0));
    }
}

#[test]
fn session_replay_kv_lock() {
    if let Some((n, pushes)) = replay("kv_lock") {
        assert_eq!((n, pushes), (10, 1));
    }
}
