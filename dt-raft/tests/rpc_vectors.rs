//! The Raft RPC and admin bodies against the reference's golden wire vectors
//! (`vectors/wire/raft_replication.jsonl`, `raft_admin.jsonl`, `raft_client.jsonl`,
//! `errors.jsonl`): every frame is parsed, its body decoded with our decoder (whole, byte
//! by byte, and through dt-net's `ReadPacket::decode_body`), the decoded fields compared
//! with the vector's `fields`, and the body re-encoded and the frame rebuilt byte for
//! byte.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use dt_codec::{
    encode, Encodable, ParseStatus, PbError, PbField, PbInt, PbIntCallback, PbLong, PbLongCallback,
    PbMessage, PbParser, PbValue,
};
use dt_common::vectors::{hex, unhex};
use dt_net::{CmdCodes, FrameDecoder, ReadPacket, WriteBody, WritePacket};
use dt_raft::rpc::admin::RaftNode;
use dt_raft::rpc::*;
use serde_json::{json, Map, Value};

fn vectors(test: &str) -> Option<PathBuf> {
    dt_common::vectors::golden_vectors(test).map(|d| d.join("wire"))
}

fn read_jsonl(dir: &Path, file: &str) -> Vec<Value> {
    dt_common::vectors::read_lines(&dir.join(file))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn parse_frame(hex_frame: &str) -> ReadPacket {
    let mut buf = BytesMut::from(&unhex(hex_frame)[..]);
    let p = FrameDecoder::new(i32::MAX as usize)
        .decode(&mut buf)
        .unwrap()
        .expect("a whole frame");
    assert!(buf.is_empty(), "bytes after the frame");
    p
}

// ---- decoded values as JSON, in the vectors' vocabulary ----

fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => json!(s),
        _ => json!({"hex": hex(b), "len": b.len()}),
    }
}

fn opt_bytes_json(b: &Option<Bytes>) -> Value {
    b.as_ref().map_or(Value::Null, |b| bytes_json(b))
}

fn half(v: i64) -> Value {
    json!(format!("0x{:016x}", v as u64))
}

/// A DtKV `KvReq` body seen through the schema-less decoder (dt-raft knows nothing of
/// DtKV): group, key, value and the owner UUID the vectors show.
fn kv_req_json(b: &Bytes) -> Value {
    let Ok(m) = PbMessage::decode(b) else {
        return bytes_json(b);
    };
    let mut o = Map::new();
    for f in &m.fields {
        match (f.number, &f.value) {
            (1, PbValue::Varint(v)) => o.insert("group_id".into(), json!(*v as i32)),
            (2, PbValue::Bytes(v)) => o.insert("key".into(), bytes_json(v)),
            (3, PbValue::Bytes(v)) => o.insert("value".into(), bytes_json(v)),
            (5 | 6, PbValue::Fixed64(_)) => None,
            (n, v) => o.insert(format!("field_{n}"), json!(format!("{v:?}"))),
        };
    }
    let hi = m.get(5).map(|v| match v {
        PbValue::Fixed64(x) => *x,
        _ => 0,
    });
    let lo = m.get(6).map(|v| match v {
        PbValue::Fixed64(x) => *x,
        _ => 0,
    });
    if let (Some(hi), Some(lo)) = (hi, lo) {
        let s = format!("{hi:016x}{lo:016x}");
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &s[0..8],
            &s[8..12],
            &s[12..16],
            &s[16..20],
            &s[20..32]
        );
        o.insert("owner_uuid".into(), json!(uuid));
    }
    json!({ "KvReq": Value::Object(o) })
}

fn log_item_json(i: &LogItem) -> Value {
    let body = match (&i.body, i.item_type) {
        (Some(b), LogItemType::TYPE_NORMAL) => kv_req_json(b),
        (b, _) => opt_bytes_json(b),
    };
    json!({
        "type": i.item_type, "biz_type": i.biz_type, "term": i.term, "index": i.index,
        "prev_log_term": i.prev_log_term, "timestamp": i.timestamp,
        "header": opt_bytes_json(&i.header), "body": body,
    })
}

fn append_req_json(m: &AppendReq) -> Value {
    json!({
        "group_id": m.group_id, "term": m.term, "leader_id": m.leader_id,
        "prev_log_index": m.prev_log_index, "prev_log_term": m.prev_log_term,
        "leader_commit": m.leader_commit, "logs_size": m.logs.len(),
        "entries": m.logs.iter().map(log_item_json).collect::<Vec<_>>(),
    })
}

fn append_resp_json(m: &AppendResp) -> Value {
    json!({
        "term": m.term, "success": m.success as i32, "append_code": m.append_code,
        "append_code_name": AppendCodes::name(m.append_code),
        "suggest_term": m.suggest_term, "suggest_index": m.suggest_index,
    })
}

fn vote_req_json(m: &VoteReq) -> Value {
    json!({
        "group_id": m.group_id, "term": m.term, "candidate_id": m.candidate_id,
        "last_log_index": m.last_log_index, "last_log_term": m.last_log_term,
        "pre_vote": m.pre_vote as i32,
    })
}

fn vote_resp_json(m: &VoteResp) -> Value {
    json!({"term": m.term, "vote_granted": m.vote_granted as i32})
}

fn install_json(m: &InstallSnapshotReq) -> Value {
    json!({
        "group_id": m.group_id, "term": m.term, "leader_id": m.leader_id,
        "last_included_index": m.last_included_index,
        "last_included_term": m.last_included_term, "offset": m.offset,
        "done": m.done as i32, "next_write_pos": m.next_write_pos,
        "members": m.members, "observers": m.observers,
        "prepared_members": m.prepared_members, "prepared_observers": m.prepared_observers,
        "last_config_change_index": m.last_config_change_index,
        "data": if m.data.is_empty() { Value::Null } else { bytes_json(&m.data) },
    })
}

fn raft_ping_json(m: &RaftPing) -> Value {
    json!({
        "group_id": m.group_id, "node_id": m.node_id, "members": m.members,
        "observers": m.observers, "prepared_members": m.prepared_members,
        "prepared_observers": m.prepared_observers,
    })
}

fn node_ping_json(m: &NodePing) -> Value {
    json!({
        "local_node_id": m.local_node_id, "remote_node_id": m.remote_node_id,
        "uuid_high": half(m.uuid_high), "uuid_low": half(m.uuid_low),
    })
}

fn transfer_json(m: &TransferLeaderReq) -> Value {
    json!({
        "group_id": m.group_id, "term": m.term, "old_leader_id": m.old_leader_id,
        "new_leader_id": m.new_leader_id, "log_index": m.log_index,
    })
}

fn prepare_json(m: &AdminPrepareConfigChangeReq) -> Value {
    json!({
        "group_id": m.group_id, "members": m.members, "observers": m.observers,
        "prepared_members": m.prepared_members, "prepared_observers": m.prepared_observers,
    })
}

fn node_json(n: &RaftNode) -> Value {
    json!({"node_id": n.node_id, "host": n.host, "port": n.port})
}

fn status_json(m: &QueryStatusResp) -> Value {
    json!({
        "group_id": m.group_id, "node_id": m.node_id, "flag": m.flag, "term": m.term,
        "leader_id": m.leader_id, "commit_index": m.commit_index,
        "last_applied": m.last_applied,
        "last_apply_time_to_now_millis": m.last_apply_time_to_now_millis,
        "last_log_index": m.last_log_index, "apply_lag_millis": m.apply_lag_millis,
        "members": m.members, "observers": m.observers,
        "prepared_members": m.prepared_members, "prepared_observers": m.prepared_observers,
        "last_config_change_index": m.last_config_change_index,
        "last_error": m.last_error,
    })
}

// ---- comparing with the vectors' `fields` ----

/// Absent on the wire: null, 0, false, "", [] or an object of such values.
fn zero_like(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(zero_like),
    }
}

fn check(path: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for k in e.keys().chain(a.keys()) {
                // Names are checked where the vector gives them.
                if k.ends_with("_name") && !e.contains_key(k) {
                    continue;
                }
                let null = Value::Null;
                let ev = e.get(k).unwrap_or(&null);
                let av = a.get(k).unwrap_or(&null);
                check(&format!("{path}.{k}"), ev, av);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: {expected} vs {actual}");
            let (mut e, mut a) = (e.clone(), a.clone());
            // Sets: the order is not significant (README, HashSet order).
            if e.iter().chain(a.iter()).all(Value::is_number) {
                let key = |v: &Value| v.as_i64().unwrap_or(0);
                e.sort_by_key(key);
                a.sort_by_key(key);
            }
            for (i, (ev, av)) in e.iter().zip(a.iter()).enumerate() {
                check(&format!("{path}[{i}]"), ev, av);
            }
        }
        (Value::String(e), Value::String(a)) if e.starts_with("0x") => {
            assert!(e.eq_ignore_ascii_case(a), "{path}: {e} vs {a}")
        }
        (Value::Number(e), Value::Number(a)) => assert!(
            e.as_i64() == a.as_i64() && e.as_u64() == a.as_u64(),
            "{path}: {e} vs {a}"
        ),
        (e, a) if zero_like(e) && zero_like(a) => {}
        (e, a) => assert_eq!(e, a, "{path}"),
    }
}

// ---- decoding ----

/// Decodes whole, byte by byte, and through dt-net; all three must agree.
fn dec<T>(p: &ReadPacket) -> T
where
    T: RpcBody + PartialEq + Debug,
{
    let whole = T::decode(&p.body).unwrap();
    let mut parser = PbParser::new(T::Callback::default());
    parser.prepare(p.body.len()).unwrap();
    let mut status = parser.feed(&Bytes::new()).unwrap().status;
    for i in 0..p.body.len() {
        status = parser.feed(&p.body.slice(i..i + 1)).unwrap().status;
    }
    assert_eq!(status, ParseStatus::Finished);
    assert_eq!(
        T::finish(parser.into_callback()).unwrap(),
        whole,
        "byte by byte"
    );
    let via_net = T::finish(p.decode_body::<T::Callback>().unwrap()).unwrap();
    assert_eq!(via_net, whole, "through ReadPacket::decode_body");
    whole
}

struct Decoded {
    fields: Value,
    encoded: Bytes,
}

fn decoded<T: Encodable>(m: &T, fields: Value) -> Option<Decoded> {
    Some(Decoded {
        fields,
        encoded: encode::to_bytes(m),
    })
}

/// Decodes the body of a packet by command and direction. `None`: no body expected.
fn decode(p: &ReadPacket, single_name: &str) -> Option<Decoded> {
    let req = p.packet_type == 1;
    if p.resp_code != CmdCodes::SUCCESS {
        return None;
    }
    match (p.command, req) {
        (RaftCommands::RAFT_APPEND_ENTRIES, true) => {
            let m: AppendReq = dec(p);
            decoded(&m, append_req_json(&m))
        }
        (RaftCommands::RAFT_APPEND_ENTRIES | RaftCommands::RAFT_INSTALL_SNAPSHOT, false) => {
            let m: AppendResp = dec(p);
            decoded(&m, append_resp_json(&m))
        }
        (RaftCommands::RAFT_REQUEST_VOTE, true) => {
            let m: VoteReq = dec(p);
            decoded(&m, vote_req_json(&m))
        }
        (RaftCommands::RAFT_REQUEST_VOTE, false) => {
            let m: VoteResp = dec(p);
            decoded(&m, vote_resp_json(&m))
        }
        (RaftCommands::RAFT_INSTALL_SNAPSHOT, true) => {
            let m: InstallSnapshotReq = dec(p);
            decoded(&m, install_json(&m))
        }
        (RaftCommands::RAFT_PING, _) => {
            let m: RaftPing = dec(p);
            decoded(&m, raft_ping_json(&m))
        }
        (RaftCommands::NODE_PING, _) => {
            let m: NodePing = dec(p);
            decoded(&m, node_ping_json(&m))
        }
        (RaftCommands::RAFT_ADMIN_TRANSFER_LEADER | RaftCommands::RAFT_TRANSFER_LEADER, true) => {
            let m: TransferLeaderReq = dec(p);
            decoded(&m, transfer_json(&m))
        }
        (RaftCommands::RAFT_ADMIN_PREPARE_CHANGE, true) => {
            let m: AdminPrepareConfigChangeReq = dec(p);
            decoded(&m, prepare_json(&m))
        }
        (RaftCommands::RAFT_ADMIN_COMMIT_CHANGE | RaftCommands::RAFT_ADMIN_ABORT_CHANGE, true) => {
            let m: AdminCommitOrAbortReq = dec(p);
            decoded(
                &m,
                json!({"group_id": m.group_id, "prepare_index": m.prepare_index}),
            )
        }
        (
            RaftCommands::RAFT_ADMIN_PREPARE_CHANGE
            | RaftCommands::RAFT_ADMIN_COMMIT_CHANGE
            | RaftCommands::RAFT_ADMIN_ABORT_CHANGE,
            false,
        ) => {
            let v = p.decode_body::<PbLongCallback>().unwrap().value;
            decoded(&PbLong(v), json!({ "value": v }))
        }
        (RaftCommands::RAFT_ADMIN_ADD_NODE, true) => {
            let m: AdminAddNodeReq = dec(p);
            decoded(
                &m,
                json!({"node_id": m.node_id, "host": m.host, "port": m.port}),
            )
        }
        (RaftCommands::RAFT_ADMIN_ADD_GROUP, true) => {
            let m: AdminAddGroupReq = dec(p);
            decoded(
                &m,
                json!({"group_id": m.group_id, "node_id_of_members": m.node_id_of_members,
                       "node_id_of_observers": m.node_id_of_observers}),
            )
        }
        (
            RaftCommands::RAFT_ADMIN_REMOVE_NODE
            | RaftCommands::RAFT_ADMIN_REMOVE_GROUP
            | RaftCommands::RAFT_QUERY_STATUS,
            true,
        ) => {
            let v = p.decode_body::<PbIntCallback>().unwrap().value;
            decoded(&PbInt(v), json!({ single_name: v }))
        }
        (RaftCommands::RAFT_ADMIN_LIST_NODES, false) => {
            let m: AdminListNodesResp = dec(p);
            decoded(
                &m,
                json!({"size": m.nodes.len(), "nodes": m.nodes.iter().map(node_json).collect::<Vec<_>>()}),
            )
        }
        (RaftCommands::RAFT_ADMIN_LIST_GROUPS, false) => {
            let m: AdminListGroupsResp = dec(p);
            decoded(
                &m,
                json!({"size": m.group_ids.len(), "group_ids": m.group_ids}),
            )
        }
        (RaftCommands::RAFT_QUERY_STATUS, false) => {
            let m: QueryStatusResp = dec(p);
            decoded(&m, status_json(&m))
        }
        (DTKV_QUERY_STATUS, false) => {
            // KvStatusResp {1: QueryStatusResp, 2: watch_count}: the nested part is ours.
            let mut outer = PbMessage::decode(&p.body).unwrap();
            let mut fields = Map::new();
            for f in &mut outer.fields {
                match (f.number, &f.value) {
                    (1, PbValue::Bytes(b)) => {
                        let m = QueryStatusResp::decode(b).unwrap();
                        fields.insert("raft_server_status".into(), status_json(&m));
                        *f = PbField {
                            number: 1,
                            value: PbValue::Bytes(encode::to_bytes(&m)),
                        };
                    }
                    (2, PbValue::Varint(v)) => {
                        fields.insert("watch_count".into(), json!(*v as i32));
                    }
                    other => panic!("unexpected KvStatusResp field {other:?}"),
                }
            }
            decoded(&outer, Value::Object(fields))
        }
        // Empty bodies: 44/45/50-53/56 responses, 54-56 requests.
        _ => None,
    }
}

const DTKV_QUERY_STATUS: i32 = 79;

/// Runs every vector of `file`; returns how many there were.
fn run_file(dir: &Path, file: &str) -> usize {
    let all = read_jsonl(dir, file);
    for v in &all {
        let name = v["name"].as_str().unwrap();
        let f = &v["fields"];
        let p = parse_frame(v["hex"].as_str().unwrap());
        assert_eq!(
            hex(&p.body),
            v["body_hex"].as_str().unwrap(),
            "{name}: body"
        );
        assert_eq!(p.command as i64, f["command"].as_i64().unwrap(), "{name}");
        assert_eq!(
            p.resp_code as i64,
            f["resp_code"].as_i64().unwrap(),
            "{name}"
        );
        if let Some(n) = f["command_name"].as_str() {
            if let Some(ours) = RaftCommands::name(p.command) {
                assert_eq!(ours, n, "{name}: command name");
            }
        }
        if let Some(n) = f["resp_code_name"].as_str() {
            assert_eq!(CmdCodes::name(p.resp_code), n, "{name}: resp code name");
        }
        let expected_body = f.get("body").cloned().unwrap_or(Value::Null);
        // The single-int bodies name their one field after what it carries.
        let single_name = expected_body
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_else(|| "value".into());
        let got = decode(&p, &single_name);
        let body = match got {
            Some(d) => {
                check(name, &expected_body, &d.fields);
                assert_eq!(
                    hex(&d.encoded),
                    hex(&p.body),
                    "{name}: re-encoded body differs"
                );
                d.encoded
            }
            None => {
                assert!(p.body.is_empty(), "{name}: unexpected body");
                assert!(zero_like(&expected_body), "{name}: body not decoded");
                Bytes::new()
            }
        };
        // The whole frame, rebuilt around our encoding.
        let w = WritePacket {
            packet_type: p.packet_type,
            command: p.command,
            seq: p.seq,
            resp_code: p.resp_code,
            biz_code: p.biz_code,
            msg: p.msg.clone(),
            timeout_nanos: p.timeout_nanos,
            extra: p.extra.clone(),
            body: WriteBody::Bytes(body),
        };
        let mut out = BytesMut::new();
        w.encode_frame(&mut out);
        assert_eq!(hex(&out), v["hex"].as_str().unwrap(), "{name}: frame");
    }
    all.len()
}

#[test]
fn raft_replication_vectors() {
    let Some(dir) = vectors("raft_replication_vectors") else {
        return;
    };
    assert_eq!(run_file(&dir, "raft_replication.jsonl"), 26);
}

#[test]
fn raft_admin_vectors() {
    let Some(dir) = vectors("raft_admin_vectors") else {
        return;
    };
    assert_eq!(run_file(&dir, "raft_admin.jsonl"), 22);
}

#[test]
fn raft_client_vectors() {
    let Some(dir) = vectors("raft_client_vectors") else {
        return;
    };
    assert_eq!(run_file(&dir, "raft_client.jsonl"), 5);
}

#[test]
fn error_vectors() {
    let Some(dir) = vectors("error_vectors") else {
        return;
    };
    assert_eq!(run_file(&dir, "errors.jsonl"), 16);
}

/// The decoded messages map to the core's and back.
#[test]
fn core_mapping_of_vectors() {
    let Some(dir) = vectors("core_mapping_of_vectors") else {
        return;
    };
    let mut n = 0;
    for v in read_jsonl(&dir, "raft_replication.jsonl") {
        let p = parse_frame(v["hex"].as_str().unwrap());
        match (p.command, p.packet_type) {
            (RaftCommands::RAFT_REQUEST_VOTE, 1) => {
                let w = VoteReq::decode(&p.body).unwrap();
                let c = dt_raft::core::VoteReq::try_from(&w).unwrap();
                assert_eq!(VoteReq::from_core(w.group_id, &c), w);
                n += 1;
            }
            (RaftCommands::RAFT_REQUEST_VOTE, 2) => {
                let w = VoteResp::decode(&p.body).unwrap();
                let c = dt_raft::core::VoteResp::try_from(&w).unwrap();
                assert_eq!(VoteResp::from(&c), w);
                n += 1;
            }
            (RaftCommands::RAFT_TRANSFER_LEADER, 1) => {
                let w = TransferLeaderReq::decode(&p.body).unwrap();
                let c = dt_raft::core::TransferReq::try_from(&w).unwrap();
                assert_eq!(TransferLeaderReq::from_core(w.group_id, &c), w);
                n += 1;
            }
            (RaftCommands::RAFT_APPEND_ENTRIES, 2) => {
                let w = AppendResp::decode(&p.body).unwrap();
                let c = dt_raft::core::AppendResp::try_from(&w).unwrap();
                assert_eq!(AppendResp::from(&c), w);
                n += 1;
            }
            (RaftCommands::RAFT_APPEND_ENTRIES, 1) => {
                let w = AppendReq::decode(&p.body).unwrap();
                let c = dt_raft::core::AppendReq::try_from(&w).unwrap();
                assert_eq!(c.entries.len(), w.logs.len());
                let send = dt_raft::core::AppendSend {
                    term: c.term,
                    leader_id: c.leader_id,
                    first_index: c.entries.first().map_or(0, |e| e.index),
                    count: c.entries.len() as u64,
                    leader_commit: c.leader_commit,
                    epoch: 0,
                    sent_at: 0,
                };
                // Through the store's entry type and back.
                let logs = w
                    .logs
                    .iter()
                    .map(|i| {
                        let s = dt_raft::store::LogItem::try_from(i).unwrap();
                        LogItem::from(&s)
                    })
                    .collect();
                assert_eq!(AppendReq::from_send(w.group_id, &send, logs), w);
                n += 1;
            }
            _ => {}
        }
    }
    assert_eq!(n, 3 + 4 + 8 + 1);
}

/// Real replicate-port and admin traffic between three reference servers (and the
/// service-port sessions' query-status calls): every Raft frame decodes and re-encodes
/// to the captured bytes.
#[test]
fn session_frames() {
    let Some(dir) = dt_common::vectors::golden_vectors("session_frames") else {
        return;
    };
    let mut per_command = std::collections::BTreeMap::<i32, usize>::new();
    for file in [
        "cluster3_replicate_and_admin",
        "cluster3_not_leader_redirect",
        "kv_basic",
    ] {
        let path = dir.join("sessions").join(format!("{file}.frames.jsonl"));
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let Some(frame) = v["frame_hex"].as_str() else {
                continue;
            };
            let p = parse_frame(frame);
            if RaftCommands::name(p.command).is_none() {
                continue;
            }
            let body = match decode(&p, "value") {
                Some(d) => d.encoded,
                None => {
                    assert!(p.body.is_empty(), "{file} n={}: unexpected body", v["n"]);
                    Bytes::new()
                }
            };
            assert_eq!(hex(&body), hex(&p.body), "{file} n={}", v["n"]);
            *per_command.entry(p.command).or_default() += 1;
        }
    }
    // Appends (with heartbeat and DtKV entries), pings, votes, transfers, status and
    // every admin command were seen.
    assert_eq!(
        per_command.get(&RaftCommands::RAFT_APPEND_ENTRIES),
        Some(&124)
    );
    for c in [4].into_iter().chain(40..=42).chain(44..=56) {
        assert!(per_command.contains_key(&c), "no frame of command {c}");
    }
}

/// The reference decoder's verdicts on made-up bodies (`vectors/parser/`) for the
/// decoders of this module: accepted, skipped (the callback returned false: a
/// rejection, the stream stays usable) or rejected (fatal).
#[test]
fn parser_verdicts() {
    let Some(dir) = dt_common::vectors::golden_vectors("parser_verdicts") else {
        return;
    };
    let mut n = 0;
    for file in ["reject.jsonl", "accept.jsonl"] {
        let text = std::fs::read_to_string(dir.join("parser").join(file)).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let body = Bytes::from(unhex(v["hex"].as_str().unwrap_or("")));
            let verdict = v["whole_buffer"]["result"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let (ok, rejected) = match v["decoder"].as_str() {
                Some("AdminListGroupsResp") => {
                    let r = AdminListGroupsResp::decode(&body);
                    (r.is_ok(), matches!(r, Err(PbError::Rejected(_))))
                }
                Some("PbInt") => {
                    let mut p = PbParser::new(PbIntCallback::default());
                    let r = p.parse_whole(&body);
                    (r.is_ok(), false)
                }
                _ => continue,
            };
            let name = v["name"].as_str().unwrap();
            if verdict == "accepted" {
                assert!(ok, "{name}: {verdict}");
            } else if verdict == "skipped" {
                assert!(rejected, "{name}: {verdict}");
            } else {
                assert_eq!(verdict, "rejected", "{name}");
                assert!(!ok && !rejected, "{name}: {verdict}");
            }
            n += 1;
        }
    }
    assert_eq!(n, 4);
}

/// The install-snapshot requests and a QUERY_STATUS response of the vectors through
/// the core's types: the first request's sets reach the core and the core's stream
/// start rebuilds the same body; a status built by the core encodes to the
/// reference's bytes.
#[test]
fn install_and_status_core_mapping_of_vectors() {
    let Some(dir) = vectors("install_and_status_core_mapping") else {
        return;
    };
    let mut seen = 0;
    for v in read_jsonl(&dir, "raft_replication.jsonl") {
        let name = v["name"].as_str().unwrap();
        if !name.starts_with("install_snapshot_") {
            continue;
        }
        let p = parse_frame(v["hex"].as_str().unwrap());
        let w = InstallSnapshotReq::decode(&p.body).unwrap();
        let c = dt_raft::core::InstallReq::try_from(&w).unwrap();
        assert_eq!((c.term, c.leader_id), (2, 1));
        assert_eq!((c.last_included_index, c.last_included_term), (500, 2));
        match name {
            "install_snapshot_first" => {
                let sets = c.sets.clone().expect("the first request carries the sets");
                assert_eq!(sets.members, vec![1, 2, 3]);
                assert_eq!(sets.observers, vec![4]);
                assert_eq!(c.last_config_change_index, 7);
                let start = dt_raft::core::InstallStart {
                    term: 2,
                    leader_id: 1,
                    epoch: 0,
                    sets,
                    last_config_change_index: 7,
                };
                assert_eq!(
                    InstallSnapshotReq::first_from_core(w.group_id, &start, 500, 2),
                    w
                );
            }
            "install_snapshot_data" => {
                assert!(c.sets.is_none() && !c.done);
                assert_eq!((c.offset, c.data_len), (65536, 20));
            }
            "install_snapshot_last" => {
                assert!(c.sets.is_none() && c.done);
                assert_eq!((c.offset, c.next_write_pos), (65556, 123456));
            }
            other => panic!("unexpected install vector {other}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 3);

    let v = read_jsonl(&dir, "raft_client.jsonl")
        .into_iter()
        .find(|v| v["name"] == "raft_query_status_resp")
        .unwrap();
    let p = parse_frame(v["hex"].as_str().unwrap());
    let w = QueryStatusResp::decode(&p.body).unwrap();
    let s = dt_raft::core::CoreStatus {
        node_id: 1,
        role: dt_raft::core::Role::Leader,
        term: 3,
        voted_for: 1,
        leader_id: Some(1),
        commit_index: 100,
        last_applied: 100,
        last_apply_time_to_now_ms: 5,
        last_log_index: 100,
        last_log_term: 3,
        persisted_index: 100,
        apply_lag_ms: 0,
        sets: dt_raft::core::MemberSets::new(vec![1, 2, 3], vec![]),
        last_config_change_index: 1,
        group_ready: true,
        installing_snapshot: false,
    };
    let mut r = QueryStatusResp::from_core(0, &s);
    r.flag |= QueryStatusResp::FLAG_INIT_FINISHED;
    assert_eq!(r, w);
    assert_eq!(encode::to_bytes(&r), p.body);
}
