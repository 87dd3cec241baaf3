//! Compatibility with data directories written by the reference (Java) server:
//! `storage/{clean,crash}` of the golden vectors (see `dt_common::vectors`). Skipped when the vectors are absent.

mod common;

use dt_raft::store::snapshot::SnapshotDir;
use dt_raft::store::{LogStore, StatusManager, StoreConfig};
use serde_json::Value;

fn cfg() -> StoreConfig {
    StoreConfig {
        log_file_size: 16384,
        idx_items_per_file: 256,
        ..StoreConfig::default()
    }
}

fn check_image(name: &str) {
    let Some(vec) = dt_common::vectors::golden_vectors(&format!("compat {name}")) else {
        return;
    };
    let base = vec.join("storage").join(name);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(base.join("manifest.json")).unwrap()).unwrap();
    let decoded: Value =
        serde_json::from_slice(&std::fs::read(base.join("decoded.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("0");
    common::copy_dir(&base.join("image/0"), &dir);

    // Status file.
    let keys = &manifest["decoded_summary"]["status_file"]["keys"];
    let sm = StatusManager::load(&dir.join("raft.status"), true).unwrap();
    let st = &sm.status;
    assert_eq!(
        st.current_term.to_string(),
        keys["currentTerm"].as_str().unwrap()
    );
    assert_eq!(st.voted_for.to_string(), keys["votedFor"].as_str().unwrap());
    assert_eq!(
        st.commit_index.to_string(),
        keys["commitIndex"].as_str().unwrap()
    );
    assert_eq!(
        st.persist_idx_index.to_string(),
        keys["persistIdxIndex"].as_str().unwrap()
    );
    assert_eq!(
        st.first_valid_index.to_string(),
        keys["firstValidIndex"].as_str().unwrap()
    );
    assert!(!st.install_snapshot);
    drop(sm);

    // Snapshots: list, metadata, and the full data stream of each.
    let snaps = SnapshotDir::new(&dir.join("snapshot"), true);
    let list = snaps.init().unwrap();
    let expected = manifest["decoded_summary"]["snapshots"].as_array().unwrap();
    assert_eq!(list.len(), expected.len());
    for (got, exp) in list.iter().zip(expected) {
        let mk = &exp["meta_keys"];
        assert_eq!(
            got.meta.last_included_index.to_string(),
            mk["lastIncludedIndex"].as_str().unwrap()
        );
        assert_eq!(
            got.meta.last_included_term.to_string(),
            mk["lastIncludedTerm"].as_str().unwrap()
        );
        assert_eq!(
            got.meta.buffer_size.to_string(),
            mk["bufferSize"].as_str().unwrap()
        );
        assert_eq!(
            got.meta.next_snapshot_id.to_string(),
            mk["nextSnapshotId"].as_str().unwrap()
        );
        assert_eq!(got.meta.members, vec![1]);
        let mut r = got.open_reader().unwrap();
        let mut total = 0u64;
        let mut blocks = 0;
        while let Some(chunk) = r.next_chunk().unwrap() {
            total += chunk.len() as u64;
            blocks += 1;
        }
        assert_eq!(total, exp["stream_len"].as_u64().unwrap());
        assert_eq!(blocks, exp["blocks"].as_u64().unwrap());
    }
    let latest = snaps.latest().unwrap().unwrap();
    assert_eq!(
        latest.meta.last_included_index,
        list.last().unwrap().meta.last_included_index
    );

    // Every entry of the reference's log verifies (CRCs, chain) from the first one.
    let strict = StoreConfig {
        verify_on_start: true,
        ..cfg()
    };
    drop(LogStore::open(&dir, strict).unwrap());

    // The log: recover and read back every entry of decoded.json.
    let mut log = LogStore::open(&dir, cfg()).unwrap();
    let items = decoded["log_items"].as_array().unwrap();
    let first = items[0]["index"].as_u64().unwrap();
    let last = items.last().unwrap()["index"].as_u64().unwrap();
    let (term, last_index) = log.init_result().unwrap();
    assert_eq!(last_index, last, "{name}: last index after recovery");
    assert_eq!(term, items.last().unwrap()["term"].as_u64().unwrap() as u32);
    assert_eq!(log.first_index(), first);
    let mut got = Vec::new();
    let mut i = first;
    while i <= last {
        let batch = log.read(i, 100, 64 * 1024).unwrap();
        assert!(!batch.is_empty());
        i += batch.len() as u64;
        got.extend(batch);
    }
    assert_eq!(got.len(), items.len());
    for (g, e) in got.iter().zip(items) {
        assert_eq!(g.index, e["index"].as_u64().unwrap());
        assert_eq!(g.term as u64, e["term"].as_u64().unwrap());
        assert_eq!(g.prev_log_term as u64, e["prev_log_term"].as_u64().unwrap());
        assert_eq!(g.item_type as u64, e["type"].as_u64().unwrap());
        assert_eq!(g.biz_type as u64, e["biz_type"].as_u64().unwrap());
        assert_eq!(g.timestamp, e["timestamp"].as_i64().unwrap());
        assert_eq!(g.header.len() as u64, e["header_len"].as_u64().unwrap());
        assert_eq!(g.body.len() as u64, e["body_len"].as_u64().unwrap());
        assert_eq!(g.encoded_len() as u64, e["total_len"].as_u64().unwrap());
        // Keys written by the workload are in the KvReq body bytes.
        if let Some(k) = e["body_kvreq"]["key"].as_str() {
            let needle = k.as_bytes();
            assert!(
                g.body.windows(needle.len()).any(|w| w == needle),
                "key {k} in body"
            );
        }
    }
    // Byte-exact encoding: re-encoding what we read gives the reference's bytes.
    for (g, e) in got.iter().zip(items) {
        let pos = e["abs_pos"].as_u64().unwrap();
        let seg = dir.join("log").join(format!("{:020}", pos / 16384 * 16384));
        let raw = std::fs::read(seg).unwrap();
        let off = (pos % 16384) as usize;
        let enc = g.encode();
        assert_eq!(&raw[off..off + enc.len()], &enc[..], "entry {}", g.index);
    }
    // Positions: next_item_pos of entry i == abs_pos of entry i+1 (same segment).
    for w in items.windows(2).step_by(50) {
        let i = w[0]["index"].as_u64().unwrap();
        let p0 = w[0]["abs_pos"].as_u64().unwrap();
        let p1 = w[1]["abs_pos"].as_u64().unwrap();
        let np = log.next_item_pos(i).unwrap();
        if p1 / 16384 == p0 / 16384 {
            assert_eq!(np, p1);
        } else {
            assert_eq!(np, p0 + w[0]["total_len"].as_u64().unwrap());
        }
    }
    // Match position against our own entries.
    let mid = first + (last - first) / 2;
    assert_eq!(log.find_match_pos(1, mid).unwrap(), Some((1, mid)));
    assert_eq!(log.find_match_pos(9, last + 10).unwrap(), Some((1, last)));
    assert_eq!(log.find_match_pos(0, last).unwrap(), None);

    // Appending continues the reference's log (the next term's first entry goes at the
    // write position), and survives a reopen.
    let next = common::entries(last + 1, last + 40, term + 1, term);
    log.append(&next).unwrap();
    log.set_commit_index(last + 40);
    log.sync().unwrap();
    log.close().unwrap();
    drop(log);
    let mut log = LogStore::open(&dir, cfg()).unwrap();
    assert_eq!(log.init_result(), Some((term + 1, last + 40)));
    let back = log.read(last + 1, 100, usize::MAX).unwrap();
    assert_eq!(back, next);
    let back = log.read(first, 1, usize::MAX).unwrap();
    assert_eq!(back[0].index, first);
    eprintln!("compat {name}: entries {first}..={last} read back, status and snapshots match");
}

#[test]
fn clean_image() {
    check_image("clean");
}

#[test]
fn crash_image() {
    check_image("crash");
}

/// The crash image's notes: every acknowledged write is in the recovered log.
#[test]
fn crash_image_keeps_every_acknowledged_write() {
    let Some(vec) =
        dt_common::vectors::golden_vectors("crash_image_keeps_every_acknowledged_write")
    else {
        return;
    };
    let base = vec.join("storage/crash");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(base.join("manifest.json")).unwrap()).unwrap();
    let acked = manifest["crash_notes"]["last_acknowledged_write_raft_index"]
        .as_u64()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&base.join("image/0"), tmp.path());
    let log = LogStore::open(tmp.path(), cfg()).unwrap();
    assert!(log.last_index() >= acked);
}
