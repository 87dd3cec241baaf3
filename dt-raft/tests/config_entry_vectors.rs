//! The joint-consensus log entries (raft.md §11.2) against the reference's bytes: every
//! configuration entry in the golden wire vectors and in the captured three-server
//! session (prepare, commit and abort ran there) decodes with
//! [`ConfigEntry::decode`] and encodes back to the same body.

use dt_common::vectors::unhex;
use std::path::Path;

use bytes::BytesMut;
use dt_net::FrameDecoder;
use dt_raft::core::{ConfigBody, ConfigEntry};
use dt_raft::rpc::{AppendReq, RaftCommands, RpcBody};
use serde_json::Value;

/// The configuration entries of every AppendEntries request among `frames`.
fn config_entries(frames: impl Iterator<Item = String>) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    for hex in frames {
        let mut buf = BytesMut::from(&unhex(&hex)[..]);
        let p = FrameDecoder::new(i32::MAX as usize)
            .decode(&mut buf)
            .unwrap()
            .expect("a whole frame");
        if p.command != RaftCommands::RAFT_APPEND_ENTRIES || p.packet_type != 1 {
            continue;
        }
        let req = AppendReq::decode(&p.body).unwrap();
        for item in &req.logs {
            if ConfigEntry::is_config_type(item.item_type) {
                let body = item.body.as_ref().map(|b| b.to_vec()).unwrap_or_default();
                out.push((item.item_type, body));
            }
        }
    }
    out
}

fn lines(path: &Path, key: &str) -> impl Iterator<Item = String> {
    let text = std::fs::read_to_string(path).unwrap();
    let key = key.to_string();
    text.lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            v[key.as_str()].as_str().map(str::to_string)
        })
        .collect::<Vec<_>>()
        .into_iter()
}

fn round_trip(item_type: i32, body: &[u8]) -> ConfigEntry {
    let e = ConfigEntry::decode(item_type, body).unwrap();
    assert_eq!(e.item_type(), item_type);
    if item_type == 2 {
        assert_eq!(e.body(), body, "{}", String::from_utf8_lossy(body));
    } else {
        assert!(e.body().is_empty());
    }
    e
}

#[test]
fn s11_2_prepare_entry_of_the_wire_vector_round_trips() {
    let Some(dir) = dt_common::vectors::golden_vectors("config_entry_wire") else {
        return;
    };
    let path = dir.join("wire").join("raft_replication.jsonl");
    let entries = config_entries(lines(&path, "hex"));
    assert_eq!(entries.len(), 1);
    let e = round_trip(entries[0].0, &entries[0].1);
    assert_eq!(
        e,
        ConfigEntry::Prepare(ConfigBody {
            old_members: vec![1, 2, 3],
            old_observers: vec![],
            new_members: vec![2, 3, 4],
            new_observers: vec![],
        })
    );
}

#[test]
fn s11_2_config_entries_of_the_cluster_session_round_trip() {
    let Some(dir) = dt_common::vectors::golden_vectors("config_entry_session") else {
        return;
    };
    let path = dir
        .join("sessions")
        .join("cluster3_replicate_and_admin.frames.jsonl");
    let entries = config_entries(lines(&path, "frame_hex"));
    let mut types = std::collections::BTreeSet::new();
    for (t, body) in &entries {
        round_trip(*t, body);
        types.insert(*t);
    }
    // prepare, commit and abort (a DROP entry) all ran in that session, each entry
    // sent to both followers
    assert_eq!(types.into_iter().collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[0].1, b"1,2,3;;1,2,3;");
}
