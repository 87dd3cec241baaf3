//! The DtKV requests of `vectors/parser/server_behaviour.jsonl` (raw byte streams sent
//! to a live reference server, and what it answered) through the processors' decisions
//! and the data model: the same business codes and messages (key and value checks, TTL
//! pre-checks, the ttl-on-PUT and empty-value-in-BATCH_PUT quirks, watch request edge
//! cases), writes answered with the same frames, and a connection-closing decode error
//! where the reference closed the connection. (Framing, handshake and port rules are
//! dt-net's and the Raft server's, tested there.)

use bytes::BytesMut;
use dt_client::kv::{KvBody, KvCommands, KvResp};
use dt_codec::encode;
use dt_common::vectors::{hex, unhex};
use dt_net::{FrameDecoder, ProcessInfo, ReadPacket, WriteBody, WritePacket};
use dt_server::dtkv::{plan, read, KvAction, KvResponse, KvTree};
use serde_json::Value;

fn frame(h: &str) -> Option<ReadPacket> {
    let mut buf = BytesMut::from(&unhex(h)[..]);
    FrameDecoder::new(i32::MAX as usize).decode(&mut buf).ok()?
}

fn resp_frame(req: &ReadPacket, resp: &KvResponse) -> String {
    let w = WritePacket {
        packet_type: 2,
        command: req.command,
        seq: req.seq,
        resp_code: 0,
        biz_code: resp.biz_code.code(),
        msg: resp.msg.clone(),
        timeout_nanos: 0,
        extra: None,
        body: WriteBody::Bytes(encode::to_bytes(&resp.body)),
    };
    let mut out = BytesMut::new();
    w.encode_frame(&mut out);
    hex(&out)
}

#[test]
fn server_behaviour_dtkv_requests() {
    let Some(dir) = dt_common::vectors::golden_vectors("server_behaviour_dtkv_requests") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("parser/server_behaviour.jsonl")).unwrap();
    // The handshakes' client UUID (no request here depends on ownership).
    let owner = ProcessInfo { uuid1: 1, uuid2: 2 };
    let (mut checked, mut closes) = (0, 0);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let name = v["name"].as_str().unwrap();
        if v["port"] != "service" {
            continue;
        }
        let received: Vec<&Value> = v["received_frames"].as_array().unwrap().iter().collect();
        // The handshake rules are dt-net's: only streams with a good handshake.
        if name.contains("handshake") || name == "bad_magic1" {
            continue;
        }
        let mut tree = KvTree::new();
        let mut closed = false;
        let mut framing_error = false;
        for sent in v["sent_hex"].as_array().unwrap() {
            let Some(p) = frame(sent.as_str().unwrap()) else {
                framing_error = true; // dt-net's
                continue;
            };
            if !KvCommands::is_client_command(p.command)
                || p.timeout_nanos <= 0 && p.packet_type == 1
            {
                continue;
            }
            let answer = received
                .iter()
                .find(|f| f["seq"] == p.seq && f["cmd"] == p.command);
            let action = match plan(p.command, &p.body, owner).unwrap() {
                Err(e) => {
                    assert!(
                        v["connection_closed_by_server"].as_bool().unwrap(),
                        "{name}: {e}"
                    );
                    assert!(answer.is_none(), "{name}");
                    closed = true;
                    closes += 1;
                    break;
                }
                Ok(a) => a,
            };
            let a = answer.unwrap_or_else(|| panic!("{name}: no answer to seq {}", p.seq));
            let want_biz = a["biz_code"].as_i64().unwrap() as i32;
            let want_msg = a["msg"].as_str().unwrap_or("");
            let body = unhex(a["body_hex"].as_str().unwrap_or(""));
            match action {
                KvAction::Respond { response, .. } => {
                    assert_eq!(response.biz_code.code(), want_biz, "{name}");
                    assert_eq!(response.msg, want_msg, "{name}");
                }
                KvAction::SyncWatch(_) => assert_eq!(want_biz, 0, "{name}"),
                KvAction::Status { .. } => {}
                KvAction::Write { biz, req } => {
                    let index = KvResp::decode(&body.clone().into()).unwrap().raft_index;
                    let out = tree.apply(index, 0, biz, &req);
                    let resp = KvResponse::write(index, out.result);
                    assert_eq!(
                        resp_frame(&p, &resp),
                        a["frame_hex"].as_str().unwrap(),
                        "{name}"
                    );
                }
                KvAction::Read { command, req } => {
                    let resp = read(&tree, command, &req);
                    assert_eq!(resp.biz_code.code(), want_biz, "{name}");
                    // The live server held other data: compare the nodes we wrote here.
                    if command == KvCommands::DTKV_GET && !req.key.is_empty() {
                        let theirs = KvResp::decode(&body.into()).unwrap();
                        let ours = resp.body.to_resp().unwrap();
                        let (t, o) = (&theirs.results[0], &ours.results[0]);
                        assert_eq!(t.biz_code, o.biz_code, "{name}");
                        let (tn, on) = (t.node.as_ref().unwrap(), o.node.as_ref().unwrap());
                        assert_eq!((tn.flag, &tn.data), (on.flag, &on.data), "{name}");
                    }
                }
            }
            checked += 1;
        }
        if !closed && !framing_error {
            assert!(
                !v["connection_closed_by_server"].as_bool().unwrap(),
                "{name}"
            );
        }
    }
    assert_eq!(closes, 1, "batch_put_keys_values_mismatch");
    eprintln!("{checked} DtKV requests checked");
    assert_eq!(checked, 20);
}
