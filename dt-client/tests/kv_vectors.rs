//! The DtKV messages against the reference's golden vectors: the wire frames of every
//! DtKV command (`vectors/wire/dtkv_requests.jsonl`, `dtkv_responses.jsonl`,
//! `dtkv_push.jsonl`, the DtKV part of `edge_cases.jsonl` and `raft_client.jsonl`), the
//! decoder verdicts of `vectors/parser/` for the DtKV decoders, and every DtKV frame of
//! the recorded sessions (`vectors/sessions/`).
//!
//! Every frame is parsed, its body decoded (whole, byte by byte, and through dt-net's
//! `ReadPacket::decode_body`), the decoded fields compared with the vector's `fields`,
//! and the body re-encoded and the whole frame rebuilt byte for byte.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use dt_client::kv::*;
use dt_codec::{encode, Encodable, ParseStatus, PbError, PbInt, PbIntCallback, PbParser};
use dt_common::vectors::{hex, unhex};
use dt_net::{CmdCodes, FrameDecoder, ReadPacket, WriteBody, WritePacket};
use serde_json::{json, Value};

fn vectors(test: &str) -> Option<PathBuf> {
    dt_common::vectors::golden_vectors(test)
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    dt_common::vectors::read_lines(path)
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
    if b.is_empty() {
        return Value::Null;
    }
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => json!(s),
        _ => json!({"hex": hex(b), "len": b.len()}),
    }
}

fn list_json(v: &[Bytes]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    Value::Array(
        v.iter()
            .map(|b| {
                if b.is_empty() {
                    json!("")
                } else {
                    bytes_json(b)
                }
            })
            .collect(),
    )
}

fn uuid_json(hi: u64, lo: u64) -> Value {
    if hi == 0 && lo == 0 {
        return Value::Null;
    }
    let s = format!("{hi:016x}{lo:016x}");
    json!(format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    ))
}

fn kv_req_json(m: &KvReq) -> Value {
    let mut v = json!({
        "group_id": m.group_id, "key": bytes_json(&m.key), "value": bytes_json(&m.value),
        "expect_value": bytes_json(&m.expect_value),
        "owner_uuid": uuid_json(m.owner_uuid1, m.owner_uuid2),
        "ttl_millis": m.ttl_millis,
        "keys_size": if m.keys.is_empty() { Value::Null } else { json!(m.keys.len()) },
        "keys": list_json(&m.keys), "values": list_json(&m.values),
    });
    if let Some(p) = LockPayload::parse(&m.value) {
        v["value_decoded"] =
            json!({"lease_millis": p.hold_ttl_millis, "lock_id": p.lock_id, "op_id": p.op_id});
    }
    v
}

fn node_json(n: &KvNode) -> Value {
    json!({
        "create_index": n.create_index, "create_time": n.create_time,
        "update_index": n.update_index, "update_time": n.update_time,
        "flag": n.flag, "data": bytes_json(&n.data),
    })
}

fn result_json(r: &KvResult) -> Value {
    json!({
        "biz_code": r.biz_code.code(), "biz_code_name": r.biz_code.name(),
        "node": r.node.as_ref().map_or(Value::Null, node_json),
        "key_in_dir": bytes_json(&r.key_in_dir),
    })
}

fn kv_resp_json(m: &KvResp) -> Value {
    json!({
        "raft_index": m.raft_index, "results_size": m.results.len(),
        "results": m.results.iter().map(result_json).collect::<Vec<_>>(),
    })
}

fn watch_req_json(m: &WatchReq) -> Value {
    json!({
        "group_id": m.group_id, "sync_all": m.sync_all as i32, "keys_size": m.keys.len(),
        "known_raft_indexes": m.known_raft_indexes, "keys": list_json(&m.keys),
    })
}

fn notify_json(n: &WatchNotify) -> Value {
    json!({
        "raft_index": n.raft_index, "state": n.state,
        "state_name": n.watch_state().map(WatchState::name),
        "key": bytes_json(&n.key), "value": bytes_json(&n.value),
    })
}

fn status_json(b: &Bytes) -> (Value, Bytes) {
    use dt_raft::rpc::{QueryStatusResp, RpcBody};
    let m = QueryStatusResp::decode(b).unwrap();
    let v = json!({
        "group_id": m.group_id, "node_id": m.node_id, "flag": m.flag, "term": m.term,
        "leader_id": m.leader_id, "commit_index": m.commit_index,
        "last_applied": m.last_applied,
        "last_apply_time_to_now_millis": m.last_apply_time_to_now_millis,
        "last_log_index": m.last_log_index, "apply_lag_millis": m.apply_lag_millis,
        "members": m.members, "observers": m.observers,
        "prepared_members": m.prepared_members, "prepared_observers": m.prepared_observers,
        "last_config_change_index": m.last_config_change_index,
        "last_error": m.last_error,
    });
    (v, encode::to_bytes(&m))
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

/// Descriptive keys of the vectors that are not fields.
const PROSE: &[&str] = &["encoding", "ttl_millis_meaning", "note"];

/// Checks every key the vector gives (a vector lists all the fields it encodes).
fn check(path: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                if PROSE.contains(&k.as_str()) {
                    continue;
                }
                let null = Value::Null;
                check(&format!("{path}.{k}"), ev, a.get(k).unwrap_or(&null));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: {expected} vs {actual}");
            for (i, (ev, av)) in e.iter().zip(a.iter()).enumerate() {
                check(&format!("{path}[{i}]"), ev, av);
            }
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
fn dec<T>(body: &Bytes) -> T
where
    T: KvBody + PartialEq + Debug,
{
    let whole = T::decode(body).unwrap();
    let mut parser = PbParser::new(T::Callback::default());
    parser.prepare(body.len()).unwrap();
    let mut status = parser.feed(&Bytes::new()).unwrap().status;
    for i in 0..body.len() {
        status = parser.feed(&body.slice(i..i + 1)).unwrap().status;
    }
    assert_eq!(status, ParseStatus::Finished);
    assert_eq!(
        T::finish(parser.into_callback()).unwrap(),
        whole,
        "byte by byte"
    );
    let p = ReadPacket {
        body: body.clone(),
        ..Default::default()
    };
    let via_net = T::finish(p.decode_body::<T::Callback>().unwrap()).unwrap();
    assert_eq!(via_net, whole, "through ReadPacket::decode_body");
    whole
}

struct Decoded {
    fields: Value,
    encoded: Bytes,
    what: &'static str,
}

fn decoded<T: Encodable>(m: &T, fields: Value, what: &'static str) -> Option<Decoded> {
    Some(Decoded {
        fields,
        encoded: encode::to_bytes(m),
        what,
    })
}

/// Decodes the body of a DtKV packet by command and packet type. `None`: no body
/// expected (or not a DtKV command).
fn decode(p: &ReadPacket) -> Option<Decoded> {
    if p.resp_code != CmdCodes::SUCCESS || KvCommands::name(p.command).is_none() {
        return None;
    }
    let req = p.packet_type != 2;
    match (p.command, req) {
        (KvCommands::DTKV_QUERY_STATUS, true) => {
            let v = p.decode_body::<PbIntCallback>().unwrap().value;
            decoded(&PbInt(v), json!({ "group_id": v }), "PbInt")
        }
        (KvCommands::DTKV_QUERY_STATUS, false) => {
            let m: KvStatusResp = dec(&p.body);
            let (status, re) = status_json(m.raft_server_status.as_ref().unwrap());
            let again = KvStatusResp {
                raft_server_status: Some(re),
                ..m.clone()
            };
            decoded(
                &again,
                json!({"raft_server_status": status, "watch_count": m.watch_count}),
                "KvStatusResp",
            )
        }
        (KvCommands::DTKV_SYNC_WATCH, true) => {
            let m: WatchReq = dec(&p.body);
            decoded(&m, watch_req_json(&m), "WatchReq")
        }
        (KvCommands::DTKV_SYNC_WATCH, false) => None,
        (KvCommands::DTKV_WATCH_NOTIFY_PUSH, true) => {
            let m: WatchNotifyReq = dec(&p.body);
            let v = json!({
                "group_id": m.group_id, "list_size": m.notify_list.len(),
                "notify_list": m.notify_list.iter().map(notify_json).collect::<Vec<_>>(),
            });
            decoded(&m, v, "WatchNotifyReq")
        }
        (KvCommands::DTKV_WATCH_NOTIFY_PUSH, false) => {
            if p.body.is_empty() {
                return None;
            }
            let m: WatchNotifyResp = dec(&p.body);
            decoded(&m, json!({ "results": m.results }), "WatchNotifyResp")
        }
        (_, true) => {
            let m: KvReq = dec(&p.body);
            decoded(&m, kv_req_json(&m), "KvReq")
        }
        (_, false) => {
            // Shapes C (bare error) have no body.
            if p.body.is_empty() && p.biz_code != 0 {
                return None;
            }
            let m: KvResp = dec(&p.body);
            // Shape A: the header's biz_code is the single result's code.
            if m.results.len() == 1 && m.raft_index != 0 {
                assert_eq!(m.results[0].biz_code.code(), p.biz_code, "shape A biz_code");
            }
            decoded(&m, kv_resp_json(&m), "KvResp")
        }
    }
}

/// Rebuilds the frame around `body` and compares it with the original bytes.
fn check_frame(name: &str, p: &ReadPacket, body: Bytes, frame_hex: &str) {
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
    assert_eq!(hex(&out), frame_hex, "{name}: frame");
}

/// Runs every DtKV vector of a wire file; returns how many frames were checked and how
/// many of them had a body we decoded.
fn run_file(dir: &Path, file: &str) -> (usize, usize) {
    let (mut frames, mut bodies) = (0, 0);
    for v in read_jsonl(&dir.join("wire").join(file)) {
        let name = v["name"].as_str().unwrap();
        if v.get("message").is_some() {
            continue; // body-only vectors: see body_only_edge_cases
        }
        let f = &v["fields"];
        let p = parse_frame(v["hex"].as_str().unwrap());
        if KvCommands::name(p.command).is_none() {
            continue;
        }
        frames += 1;
        assert_eq!(hex(&p.body), v["body_hex"].as_str().unwrap(), "{name}");
        assert_eq!(p.command as i64, f["command"].as_i64().unwrap(), "{name}");
        assert_eq!(p.biz_code as i64, f["biz_code"].as_i64().unwrap(), "{name}");
        if let Some(n) = f["command_name"].as_str() {
            assert_eq!(KvCommands::name(p.command), Some(n), "{name}: command name");
        }
        if let Some(n) = f["biz_code_name"].as_str() {
            assert_eq!(
                KvCode::from_code(p.biz_code).name(),
                n,
                "{name}: biz code name"
            );
        }
        if let Some(n) = f["resp_code_name"].as_str() {
            assert_eq!(CmdCodes::name(p.resp_code), n, "{name}: resp code name");
        }
        if let Some(m) = f["msg"].as_str() {
            assert_eq!(p.msg, m, "{name}: msg");
        }
        let expected_body = f.get("body").cloned().unwrap_or(Value::Null);
        let body = match decode(&p) {
            Some(d) => {
                bodies += 1;
                check(&format!("{name} ({})", d.what), &expected_body, &d.fields);
                assert_eq!(
                    hex(&d.encoded),
                    hex(&p.body),
                    "{name}: re-encoded body differs"
                );
                d.encoded
            }
            None => {
                assert!(p.body.is_empty(), "{name}: body not decoded");
                assert!(zero_like(&expected_body), "{name}: body expected");
                Bytes::new()
            }
        };
        check_frame(name, &p, body, v["hex"].as_str().unwrap());
    }
    (frames, bodies)
}

#[test]
fn dtkv_request_vectors() {
    let Some(dir) = vectors("dtkv_request_vectors") else {
        return;
    };
    // Every request has a body except get_root and list_root (all-default KvReq) and
    // the query-status of group 0 (PbInt 0): those decode from zero bytes.
    assert_eq!(run_file(&dir, "dtkv_requests.jsonl"), (31, 31));
}

#[test]
fn dtkv_response_vectors() {
    let Some(dir) = vectors("dtkv_response_vectors") else {
        return;
    };
    // 47 frames; the 10 bare ones (shape C: 4 INVALID_TTL pre-checks, the batch-get and
    // list errors, the 3 sync-watch answers) carry no body.
    let (frames, bodies) = run_file(&dir, "dtkv_responses.jsonl");
    assert_eq!(frames, 47);
    assert_eq!(bodies, 47 - 10);
}

#[test]
fn dtkv_push_vectors() {
    let Some(dir) = vectors("dtkv_push_vectors") else {
        return;
    };
    assert_eq!(run_file(&dir, "dtkv_push.jsonl"), (7, 5));
}

#[test]
fn dtkv_edge_case_vectors() {
    let Some(dir) = vectors("dtkv_edge_case_vectors") else {
        return;
    };
    assert_eq!(run_file(&dir, "edge_cases.jsonl"), (15, 15));
}

#[test]
fn kv_status_vector() {
    let Some(dir) = vectors("kv_status_vector") else {
        return;
    };
    assert_eq!(run_file(&dir, "raft_client.jsonl"), (1, 1));
}

/// The owner-UUID edge case: the reference reads no owner when the high half is 0; we
/// keep the raw halves so the body re-encodes to the same bytes.
#[test]
fn owner_uuid_with_zero_high_half_is_no_owner() {
    let Some(dir) = vectors("owner_uuid_with_zero_high_half_is_no_owner") else {
        return;
    };
    let v = read_jsonl(&dir.join("wire/edge_cases.jsonl"))
        .into_iter()
        .find(|v| v["name"] == "kvreq_owner_uuid_high_zero")
        .unwrap();
    let p = parse_frame(v["hex"].as_str().unwrap());
    let r = KvReq::decode(&p.body).unwrap();
    assert_eq!(r.owner(), None);
    assert_eq!(r.owner_uuid2, 5);
    let full = read_jsonl(&dir.join("wire/edge_cases.jsonl"))
        .into_iter()
        .find(|v| v["name"] == "kvreq_with_owner_uuid")
        .unwrap();
    let r = KvReq::decode(&parse_frame(full["hex"].as_str().unwrap()).body).unwrap();
    let o = r.owner().unwrap();
    assert_eq!((o.uuid1, o.uuid2), (0x0123456789ABCDEF, 0xFEDCBA9876543210));
}

#[test]
fn body_only_edge_cases() {
    let Some(dir) = vectors("body_only_edge_cases") else {
        return;
    };
    let mut n = 0;
    for v in read_jsonl(&dir.join("wire/edge_cases.jsonl")) {
        let Some(kind) = v["message"].as_str() else {
            continue;
        };
        let name = v["name"].as_str().unwrap();
        let body = Bytes::from(unhex(v["hex"].as_str().unwrap()));
        let (fields, encoded) = match kind {
            "WatchNotify" => {
                let m: WatchNotify = dec(&body);
                (notify_json(&m), encode::to_bytes(&m))
            }
            "KvResult" => {
                let m: KvResult = dec(&body);
                (result_json(&m), encode::to_bytes(&m))
            }
            "KvNode" => {
                let m: KvNode = dec(&body);
                (node_json(&m), encode::to_bytes(&m))
            }
            _ => continue, // PbInt / PbLong: dt-codec's
        };
        check(name, &v["fields"], &fields);
        assert_eq!(hex(&encoded), hex(&body), "{name}");
        n += 1;
    }
    assert_eq!(n, 3);
}

// ---- decoder verdicts (vectors/parser) ----

fn verdict<T: KvBody>(body: &Bytes, bytewise: bool) -> Result<Option<T>, PbError> {
    let mut p = PbParser::new(T::Callback::default());
    p.prepare(body.len())?;
    let mut status = p.feed(&Bytes::new())?.status;
    if bytewise {
        for i in 0..body.len() {
            status = p.feed(&body.slice(i..i + 1))?.status;
        }
    } else {
        status = p.feed(body)?.status.max_status(status);
    }
    match status {
        ParseStatus::Finished => T::finish(p.into_callback()).map(Some),
        ParseStatus::Rejected => Ok(None),
        ParseStatus::NeedMore => Err(PbError::invalid("incomplete")),
    }
}

trait MaxStatus {
    fn max_status(self, other: ParseStatus) -> ParseStatus;
}

impl MaxStatus for ParseStatus {
    fn max_status(self, other: ParseStatus) -> ParseStatus {
        if other == ParseStatus::NeedMore {
            self
        } else {
            other
        }
    }
}

/// The reference's verdict ("rejected" = fatal, "accepted", "skipped") for every input
/// fed to a DtKV decoder, whole and byte by byte; accepted inputs decode to the values
/// the reference decoded.
#[test]
fn parser_verdicts() {
    let Some(dir) = vectors("parser_verdicts") else {
        return;
    };
    let mut n = 0;
    for file in ["reject.jsonl", "accept.jsonl"] {
        for v in read_jsonl(&dir.join("parser").join(file)) {
            let decoder = v["decoder"].as_str().unwrap();
            let name = v["name"].as_str().unwrap();
            let body = Bytes::from(unhex(v["hex"].as_str().unwrap_or("")));
            for mode in ["whole_buffer", "byte_by_byte"] {
                let Some(want) = v[mode]["result"].as_str() else {
                    continue;
                };
                let bytewise = mode == "byte_by_byte";
                let got = match decoder {
                    "KvReq" => {
                        verdict::<KvReq>(&body, bytewise).map(|r| r.map(|m| kv_req_json(&m)))
                    }
                    "KvResp" => {
                        verdict::<KvResp>(&body, bytewise).map(|r| r.map(|m| kv_resp_json(&m)))
                    }
                    "WatchReqCallback (server)" => {
                        verdict::<WatchReq>(&body, bytewise).map(|r| r.map(|m| watch_req_json(&m)))
                    }
                    "WatchNotifyReq" => verdict::<WatchNotifyReq>(&body, bytewise).map(|r| {
                        r.map(|m| json!({"group_id": m.group_id, "count": m.notify_list.len()}))
                    }),
                    _ => continue,
                };
                match (want, &got) {
                    ("rejected", Err(e)) => assert!(!e.is_rejection(), "{name} {mode}: {e:?}"),
                    ("accepted", Ok(Some(fields))) => {
                        check_accepted(name, decoder, &v[mode], fields)
                    }
                    ("skipped", Ok(None)) => {}
                    _ => panic!("{name} {mode}: reference says {want}, we got {got:?}"),
                }
                n += 1;
            }
        }
    }
    assert_eq!(n, 2 * 28);
}

/// Compares our decoding of an accepted input with the reference's.
fn check_accepted(name: &str, decoder: &str, verdict: &Value, ours: &Value) {
    let d = &verdict["decoded"];
    match decoder {
        "KvReq" => {
            let e = &d["KvReq"];
            for k in ["group_id", "ttl_millis"] {
                assert_eq!(e[k], ours[k], "{name}: {k}");
            }
            // Bytes fields in hex; an empty present field ("") and an absent one (null)
            // are the same to us (wire-protocol.md section 1.3).
            for k in ["key", "value", "expect_value"] {
                let want = e[k].as_str().unwrap_or("");
                let got = match &ours[k] {
                    Value::Null => String::new(),
                    Value::String(s) => hex(s.as_bytes()),
                    other => other["hex"].as_str().unwrap().to_string(),
                };
                assert_eq!(want, got, "{name}: {k}");
            }
        }
        "KvResp" => {
            let e = &d["KvResp"];
            assert_eq!(e["raft_index"], ours["raft_index"], "{name}");
            let want = e["results"].as_array().unwrap();
            let got = ours["results"].as_array().unwrap();
            assert_eq!(want.len(), got.len(), "{name}");
            for (w, g) in want.iter().zip(got) {
                assert_eq!(w["biz_code"], g["biz_code"], "{name}");
                assert_eq!(w["has_node"].as_bool().unwrap(), !g["node"].is_null());
            }
        }
        "WatchReqCallback (server)" => {
            let e = &d["WatchReq(server decoder)"];
            assert_eq!(
                e["known_raft_indexes"], ours["known_raft_indexes"],
                "{name}"
            );
            assert_eq!(e["sync_all"].as_bool().unwrap(), ours["sync_all"] == 1);
            let keys: Vec<Value> = e["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| if k.is_null() { json!("") } else { k.clone() })
                .collect();
            assert_eq!(Value::Array(keys), ours["keys"], "{name}");
        }
        "WatchNotifyReq" => check(name, &d["WatchNotifyReq"], ours),
        _ => unreachable!(),
    }
}

// ---- sessions ----

/// Every DtKV frame of the recorded sessions between reference clients and servers
/// decodes and re-encodes to the captured bytes.
#[test]
fn session_frames() {
    let Some(dir) = vectors("session_frames") else {
        return;
    };
    let mut total = 0;
    let mut pushes = 0;
    for (file, expect) in [
        ("kv_basic", 60),
        ("kv_watch", 36),
        ("kv_lock", 21),
        ("cluster3_not_leader_redirect", 16),
    ] {
        let mut n = 0;
        let path = dir.join("sessions").join(format!("{file}.frames.jsonl"));
        for v in read_jsonl(&path) {
            let Some(frame_hex) = v["frame_hex"].as_str() else {
                continue;
            };
            let p = parse_frame(frame_hex);
            if KvCommands::name(p.command).is_none() {
                continue;
            }
            let name = format!("{file} #{} cmd {}", v["n"], p.command);
            let body = match decode(&p) {
                Some(d) => {
                    assert_eq!(hex(&d.encoded), hex(&p.body), "{name}: body");
                    if p.command == KvCommands::DTKV_LOCK_PUSH {
                        let m = KvReq::decode(&p.body).unwrap();
                        assert!(LockPayload::parse(&m.value).is_some(), "{name}");
                        assert!(m.ttl_millis > 0, "{name}: server-side wait ns");
                        pushes += 1;
                    }
                    if p.command == KvCommands::DTKV_WATCH_NOTIFY_PUSH && p.packet_type == 1 {
                        let m = WatchNotifyReq::decode(&p.body).unwrap();
                        assert!(m.notify_list.iter().all(|w| w.watch_state().is_some()));
                        pushes += 1;
                    }
                    d.encoded
                }
                None => {
                    assert!(p.body.is_empty(), "{name}: body not decoded");
                    Bytes::new()
                }
            };
            check_frame(&name, &p, body, frame_hex);
            n += 1;
        }
        assert_eq!(n, expect, "{file}: DtKV frames");
        total += n;
    }
    assert_eq!(pushes, 1 + 4);
    assert!(total > 100);
}

// ---- the client operations against the sessions ----

/// Rebuilds a recorded request with the client's builders (and their checks).
fn rebuild(cmd: i32, r: &KvReq) -> KvReq {
    let g = r.group_id;
    let k = r.key.clone();
    let built = match cmd {
        KvCommands::DTKV_GET => ops::get(g, k),
        KvCommands::DTKV_LIST => ops::list(g, k),
        KvCommands::DTKV_PUT => ops::put(g, k, r.value.clone()),
        KvCommands::DTKV_PUT_TEMP_NODE => ops::put_temp(g, k, r.value.clone(), r.ttl_millis),
        KvCommands::DTKV_REMOVE => ops::remove(g, k),
        KvCommands::DTKV_MKDIR => ops::mkdir(g, k),
        KvCommands::DTKV_MAKE_TEMP_DIR => ops::make_temp_dir(g, k, r.ttl_millis),
        KvCommands::DTKV_UPDATE_TTL => ops::update_ttl(g, k, r.ttl_millis),
        KvCommands::DTKV_BATCH_GET => ops::batch_get(g, r.keys.clone()),
        KvCommands::DTKV_BATCH_PUT => ops::batch_put(g, r.keys.clone(), r.values.clone()),
        KvCommands::DTKV_BATCH_REMOVE => ops::batch_remove(g, r.keys.clone()),
        KvCommands::DTKV_CAS => ops::compare_and_set(g, k, r.expect_value.clone(), r.value.clone()),
        other => panic!("no builder for {other}"),
    };
    let (c, req) = built.unwrap_or_else(|e| panic!("recorded request refused: {e}"));
    assert_eq!(c, cmd);
    req
}

/// Every data request the reference client sent in the recorded sessions passes our
/// client checks and our builders encode it to the recorded bytes; every recorded
/// response is interpreted as the reference client did (its KvExceptions, in order).
#[test]
fn session_requests_and_responses_through_the_client_operations() {
    let Some(dir) = vectors("session_requests_and_responses_through_the_client_operations") else {
        return;
    };
    let (mut built, mut interpreted, mut checked_exceptions) = (0, 0, 0);
    for file in ["kv_basic", "kv_watch", "cluster3_not_leader_redirect"] {
        let raw =
            std::fs::read_to_string(dir.join("sessions").join(format!("{file}.jsonl"))).unwrap();
        let header: Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
        let mut expected_exceptions: Vec<i32> = Vec::new();
        for s in header["steps"].as_array().unwrap() {
            let s = s["step"].as_str().unwrap();
            if let Some(i) = s.find("KvException(") {
                let rest = &s[i + "KvException(".len()..];
                expected_exceptions.push(rest[..rest.find(')').unwrap()].parse().unwrap());
            }
        }
        let mut exceptions = Vec::new();
        let path = dir.join("sessions").join(format!("{file}.frames.jsonl"));
        for v in read_jsonl(&path) {
            let Some(frame_hex) = v["frame_hex"].as_str() else {
                continue;
            };
            let p = parse_frame(frame_hex);
            let data = matches!(p.command, 5 | 6 | 70..=76 | 80..=82);
            if !data {
                continue;
            }
            if p.packet_type == 1 {
                let r = KvReq::decode(&p.body).unwrap();
                let ours = encode::to_bytes(&rebuild(p.command, &r));
                assert_eq!(hex(&ours), hex(&p.body), "{file} seq {}", p.seq);
                built += 1;
            } else {
                match ops::interpret(p.command, &p) {
                    Ok(_) => {}
                    Err(KvError::Business { code, .. }) => exceptions.push(code.code()),
                    Err(KvError::Server {
                        resp_code,
                        leader_hint,
                        ..
                    }) => {
                        assert_eq!(resp_code, CmdCodes::NOT_RAFT_LEADER);
                        assert!(leader_hint.is_some(), "{file}: redirect without a hint");
                    }
                    Err(e) => panic!("{file}: {e}"),
                }
                interpreted += 1;
            }
        }
        assert_eq!(exceptions, expected_exceptions, "{file}");
        checked_exceptions += exceptions.len();
    }
    assert_eq!((built, interpreted), (30 + 10 + 8, 30 + 10 + 8));
    // kv_basic's PARENT_DIR_NOT_EXISTS, HAS_CHILDREN and IS_TEMP_NODE were checked.
    assert!(checked_exceptions >= 3);
}

/// Client A of the kv_watch session, played by our [`WatchClient`]: its sync requests
/// are the recorded ones byte for byte, its answers to the four pushes too, and the
/// events it delivers are the seven the reference client delivered.
#[test]
fn kv_watch_session_through_the_watch_client() {
    let Some(dir) = vectors("kv_watch_session_through_the_watch_client") else {
        return;
    };
    let raw = std::fs::read_to_string(dir.join("sessions/kv_watch.jsonl")).unwrap();
    let header: Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    let expected_events: Vec<String> = header["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s["step"]
                .as_str()
                .unwrap()
                .strip_prefix("A event ")
                .map(String::from)
        })
        .collect();
    assert_eq!(expected_events.len(), 7);
    let mut c = WatchClient::new();
    // What the program did, in order: add both, then remove one and the other.
    let mut actions = vec![
        (vec!["w.k", "w.d"], true),
        (vec!["w.k"], false),
        (vec!["w.d"], false),
    ]
    .into_iter();
    let mut events = Vec::new();
    let mut answers = std::collections::VecDeque::new();
    let mut syncs = 0;
    for v in read_jsonl(&dir.join("sessions/kv_watch.frames.jsonl")) {
        let Some(frame_hex) = v["frame_hex"].as_str() else {
            continue;
        };
        let p = parse_frame(frame_hex);
        if v["conn"] != 2 {
            continue;
        }
        match (p.command, p.packet_type) {
            (KvCommands::DTKV_SYNC_WATCH, 1) => {
                let (keys, add) = actions.next().unwrap();
                let keys: Vec<Bytes> = keys.into_iter().map(Bytes::from).collect();
                if add {
                    c.add_watch(0, &keys).unwrap();
                } else {
                    c.remove_watch(0, &keys).unwrap();
                }
                let req = c.next_sync(0).unwrap();
                assert_eq!(hex(&encode::to_bytes(&req)), hex(&p.body), "sync {syncs}");
                syncs += 1;
            }
            (KvCommands::DTKV_WATCH_NOTIFY_PUSH, 1) => {
                let push = WatchNotifyReq::decode(&p.body).unwrap();
                answers.push_back(c.on_push(&push));
                events.extend(std::iter::from_fn(|| c.take_event()));
            }
            (KvCommands::DTKV_WATCH_NOTIFY_PUSH, 2) => {
                let (code, resp) = answers.pop_front().unwrap();
                assert_eq!(p.biz_code, code.code());
                let body = resp.map(|r| encode::to_bytes(&r)).unwrap_or_default();
                assert_eq!(hex(&body), hex(&p.body), "push answer");
            }
            _ => {}
        }
    }
    assert_eq!(syncs, 3);
    let ours: Vec<String> = events
        .iter()
        .map(|e| {
            let value = if e.value.is_empty() {
                "null".to_string()
            } else {
                String::from_utf8_lossy(&e.value).into_owned()
            };
            format!(
                "key={} state={} raftIndex={} value={}",
                String::from_utf8_lossy(&e.key),
                e.state,
                e.raft_index,
                value
            )
        })
        .collect();
    assert_eq!(ours, expected_events);
    // The session ended with every watch removed: nothing to send at stop.
    assert!(c.remove_all().is_empty());
}

/// Both clients of the kv_lock session, played by our [`LockClient`]s: every lock
/// request they send is the recorded one byte for byte (payload with lock id and
/// operation id), and the outcomes are the reference clients' (A gets the lock, B waits
/// and gets it by push when A unlocks, A's second try without waiting fails, closing A
/// sends a last UNLOCK).
#[test]
fn kv_lock_session_through_the_lock_client() {
    let Some(dir) = vectors("kv_lock_session_through_the_lock_client") else {
        return;
    };
    let mut locks: std::collections::HashMap<i64, LockClient> = std::collections::HashMap::new();
    let mut sent: std::collections::HashMap<(i64, i32), Option<i32>> = Default::default();
    let mut outcomes: Vec<(i64, String)> = Vec::new();
    let mut closes = 0;
    for v in read_jsonl(&dir.join("sessions/kv_lock.frames.jsonl")) {
        let Some(frame_hex) = v["frame_hex"].as_str() else {
            continue;
        };
        let p = parse_frame(frame_hex);
        let conn = v["conn"].as_i64().unwrap();
        let now = (v["t_ms"].as_f64().unwrap() * 1e6) as i64;
        let l = locks
            .entry(conn)
            .or_insert_with(|| LockClient::new(0, "locks.l1", 1, now).unwrap());
        let mut record = |done: Option<LockDone>| {
            if let Some(d) = done {
                outcomes.push((conn, format!("{d:?}")));
            }
        };
        match (p.command, p.packet_type) {
            (KvCommands::DTKV_TRY_LOCK, 1) => {
                let r = KvReq::decode(&p.body).unwrap();
                let lease = LockPayload::parse(&r.value).unwrap().hold_ttl_millis;
                let (_, req) = l.try_lock(lease, r.ttl_millis, now).unwrap();
                assert_eq!(hex(&encode::to_bytes(&req)), hex(&p.body));
                sent.insert((conn, p.seq), l.current_op());
            }
            (KvCommands::DTKV_UPDATE_LOCK_LEASE, 1) => {
                let r = KvReq::decode(&p.body).unwrap();
                let (_, req) = l.update_lease(r.ttl_millis, now).unwrap();
                assert_eq!(hex(&encode::to_bytes(&req)), hex(&p.body));
                sent.insert((conn, p.seq), l.current_op());
            }
            (KvCommands::DTKV_UNLOCK, 1) => {
                let req = if l.status() == LockStatus::Unknown && l.current_op().is_none() {
                    // The program closes A while its last try-lock's lease could run.
                    closes += 1;
                    l.close(now).request.unwrap().1
                } else {
                    l.unlock(false, now).unwrap().request.unwrap().1
                };
                assert_eq!(hex(&encode::to_bytes(&req)), hex(&p.body));
                sent.insert((conn, p.seq), l.current_op());
            }
            (
                KvCommands::DTKV_TRY_LOCK
                | KvCommands::DTKV_UPDATE_LOCK_LEASE
                | KvCommands::DTKV_UNLOCK,
                2,
            ) => {
                if let Some(op) = sent.remove(&(conn, p.seq)).flatten() {
                    record(l.on_response(op, Ok(KvCode::from_code(p.biz_code)), now));
                }
            }
            (KvCommands::DTKV_LOCK_PUSH, 3) => {
                let r = KvReq::decode(&p.body).unwrap();
                record(l.on_push(&r.value, r.ttl_millis, now));
            }
            _ => {}
        }
    }
    let expected = [
        (1, "TryLock(Ok(true))"),
        (1, "UpdateLease(Ok(()))"),
        (1, "Unlock(Ok(()))"),
        (2, "TryLock(Ok(true))"),
        (1, "TryLock(Ok(false))"),
        (2, "UpdateLease(Ok(()))"),
        (2, "Unlock(Ok(()))"),
    ];
    let ours: Vec<(i64, &str)> = outcomes.iter().map(|(c, s)| (*c, s.as_str())).collect();
    assert_eq!(ours, expected);
    assert_eq!(closes, 1);
}
