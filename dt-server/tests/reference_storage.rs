//! The DtKV data model against the reference's real data directories
//! (`vectors/storage/{clean,crash}`): the workload the reference server applied is
//! replayed through [`KvTree::apply`] with the raft indexes it got, every business code
//! (and per-item batch code, get and CAS result) must be the reference's, the final tree
//! must be the one read back from the reference, and the snapshot stream we write of it
//! must be byte for byte the reference's snapshot file content. The reference's
//! snapshot files are also decoded and installed.

use dt_common::vectors::unhex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use dt_client::kv::{KvCode, KvReq};
use dt_net::ProcessInfo;
use dt_server::dtkv::{
    ApplyResult, BizType, DtKv, KvTree, SnapshotDecoder, SnapshotRecord, WatchConfig,
};
use serde_json::Value;

const CLIENT: ProcessInfo = ProcessInfo {
    uuid1: 0x0123456789abcdef,
    uuid2: 0xfedcba9876543210,
};

fn storage(test: &str) -> Option<PathBuf> {
    dt_common::vectors::golden_vectors(test).map(|d| d.join("storage"))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A workload value: a UTF-8 string, `{"hex", "len"}`, or null (empty).
fn val(v: &Value) -> Bytes {
    match v {
        Value::Null => Bytes::new(),
        Value::String(s) => Bytes::from(s.clone()),
        o => Bytes::from(unhex(o["hex"].as_str().unwrap())),
    }
}

fn s(v: &Value) -> Bytes {
    val(v)
}

fn list(v: &Value) -> Vec<Bytes> {
    v.as_array().unwrap().iter().map(val).collect()
}

/// The DtKV stream of a reference snapshot data file: blocks of `stride` bytes, each
/// `[len u32 BE][payload][crc32c]` (`storage.md` §5.2).
fn snapshot_stream(data: &[u8], stride: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(len > 0 && len <= stride - 8);
        out.extend_from_slice(&data[pos + 4..pos + 4 + len]);
        pos += stride;
    }
    out
}

/// The newest snapshot of an image: its last included index and its stream.
fn newest_snapshot(image: &Path) -> (i64, Vec<u8>) {
    let dir = image.join("0/snapshot");
    let mut idx: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    idx.sort();
    let last = idx.last().unwrap();
    let text = String::from_utf8_lossy(&std::fs::read(last).unwrap()).into_owned();
    let prop = |k: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let data = std::fs::read(last.with_extension("data")).unwrap();
    (
        prop("lastIncludedIndex"),
        snapshot_stream(&data, prop("bufferSize") as usize),
    )
}

fn decode_stream(stream: &[u8]) -> Vec<SnapshotRecord> {
    let mut d = SnapshotDecoder::new();
    let mut out = Vec::new();
    for c in stream.chunks(1000) {
        d.feed(c, &mut out).unwrap();
    }
    d.finish().unwrap();
    out
}

/// Replays the acknowledged ops of a workload whose index is at most `up_to`; returns
/// the tree.
fn replay(manifest: &Value, times: &HashMap<i64, i64>, up_to: i64) -> KvTree {
    let w = &manifest["workload"];
    let acked = w["acknowledged_ops"].as_u64().unwrap() as usize;
    let mut t = KvTree::new();
    let mut writes = 0;
    for op in w["ops"].as_array().unwrap().iter().take(acked) {
        let name = op["op"].as_str().unwrap();
        let no = &op["op_no"];
        assert_eq!(op["resp_code"], 0, "op {no}");
        let want = KvCode::from_code(op["biz_code"].as_i64().unwrap() as i32);
        let index = op["raft_index"].as_i64().unwrap();
        if index > up_to {
            break;
        }
        let key = s(&op["key"]);
        if name == "get" {
            let r = t.get(&key);
            assert_eq!(r.biz_code, want, "op {no} get");
            if let Some(n) = r.node {
                let e = &op["result"];
                assert_eq!(
                    n.create_index,
                    e["create_index"].as_i64().unwrap(),
                    "op {no}"
                );
                assert_eq!(
                    n.update_index,
                    e["update_index"].as_i64().unwrap(),
                    "op {no}"
                );
                assert_eq!(n.data, val(&e["value"]), "op {no}");
            }
            continue;
        }
        let (biz, req) = match name {
            "put" => (BizType::Put, KvReq::put(0, key, val(&op["value"]))),
            "mkdir" => (BizType::Mkdir, KvReq::key(0, key)),
            "remove" => (BizType::Remove, KvReq::key(0, key)),
            "cas" => (
                BizType::Cas,
                KvReq::cas(0, key, val(&op["expect_value"]), val(&op["new_value"])),
            ),
            "batch_put" => (
                BizType::BatchPut,
                KvReq::batch(0, list(&op["keys"]), list(&op["values"])),
            ),
            "batch_remove" => (
                BizType::BatchRemove,
                KvReq::batch(0, list(&op["keys"]), vec![]),
            ),
            "put_temp" => (
                BizType::PutTempNode,
                KvReq::put(0, key, val(&op["value"])).with_ttl(op["ttl_millis"].as_i64().unwrap()),
            ),
            "make_temp_dir" => (
                BizType::MkTempDir,
                KvReq::key(0, key).with_ttl(op["ttl_millis"].as_i64().unwrap()),
            ),
            "update_ttl" => (
                BizType::UpdateTtl,
                KvReq::key(0, key).with_ttl(op["ttl_millis"].as_i64().unwrap()),
            ),
            other => panic!("op {no}: unknown op {other}"),
        };
        let mut req = req;
        req.set_owner(CLIENT);
        let time = times.get(&index).copied().unwrap_or(0);
        let out = t.apply(index, time, biz, &req);
        writes += 1;
        assert_eq!(out.result.biz_code(), want, "op {no} {name} {:?}", req.key);
        if let Some(items) = op["item_results"].as_array() {
            let ApplyResult::Batch(Ok(rs)) = &out.result else {
                panic!("op {no}: batch failed")
            };
            let codes: Vec<i64> = rs.iter().map(|r| r.biz_code.code() as i64).collect();
            let want: Vec<i64> = items
                .iter()
                .map(|i| i["biz_code"].as_i64().unwrap())
                .collect();
            assert_eq!(codes, want, "op {no} items");
        }
        if name == "cas" {
            let ok = op["result"].as_bool().unwrap();
            assert_eq!(out.result.biz_code() == KvCode::Success, ok, "op {no}");
        }
    }
    assert!(writes > 500);
    t
}

/// Entry timestamps: every index the reference's final state shows a time for (node
/// creations and updates, TTL starts).
fn times_of(records: &[SnapshotRecord]) -> HashMap<i64, i64> {
    let mut m = HashMap::new();
    for r in records {
        m.insert(r.create_index, r.create_time);
        m.insert(r.update_index, r.update_time);
        if let Some(t) = r.ttl {
            m.insert(t.raft_index, t.leader_start_millis);
        }
    }
    m
}

/// The final tree read back from the reference equals ours, node by node, in list
/// order (parents first).
fn check_final_tree(manifest: &Value, t: &KvTree) {
    let nodes = manifest["final_tree"]["nodes"].as_array().unwrap();
    assert_eq!(
        nodes.len() as u64,
        manifest["final_tree"]["node_count"].as_u64().unwrap()
    );
    let mut ours = Vec::new();
    fn walk(t: &KvTree, key: &[u8], out: &mut Vec<(Bytes, dt_client::kv::KvNode)>) {
        let n = t.get(key).node.unwrap();
        let dir = n.is_dir();
        out.push((Bytes::copy_from_slice(key), n));
        if dir {
            for c in t.list(key).unwrap() {
                let mut k = key.to_vec();
                if !k.is_empty() {
                    k.push(b'.');
                }
                k.extend_from_slice(&c.key_in_dir);
                walk(t, &k, out);
            }
        }
    }
    walk(t, b"", &mut ours);
    assert_eq!(ours.len(), nodes.len());
    for ((key, n), e) in ours.iter().zip(nodes) {
        let k = e["key"].as_str().unwrap();
        assert_eq!(&key[..], k.as_bytes());
        assert_eq!(n.flag as i64, e["flag"].as_i64().unwrap(), "{k}");
        assert_eq!(n.create_index, e["create_index"].as_i64().unwrap(), "{k}");
        assert_eq!(n.update_index, e["update_index"].as_i64().unwrap(), "{k}");
        assert_eq!(n.create_time, e["create_time"].as_i64().unwrap(), "{k}");
        assert_eq!(n.update_time, e["update_time"].as_i64().unwrap(), "{k}");
        let v = e["value_hex"].as_str().map(unhex).unwrap_or_default();
        assert_eq!(&n.data[..], &v[..], "{k}");
    }
}

fn run(image: &str) {
    let Some(dir) = storage(&format!("reference_storage_{image}")) else {
        return;
    };
    let dir = dir.join(image);
    let manifest = json(&dir.join("manifest.json"));
    let (last_index, stream) = newest_snapshot(&dir.join("image"));
    let records = decode_stream(&stream);
    let times = times_of(&records);

    // The reference's snapshot installs, and reads back to the same bytes.
    let (mut installed, _ttls) = KvTree::install(records.clone()).unwrap();
    let mut r = installed.snapshot_reader(last_index);
    let mut again = Vec::new();
    loop {
        let b = installed.read_snapshot(&mut r, 4088);
        if b.is_empty() {
            break;
        }
        again.extend_from_slice(&b);
    }
    assert_eq!(again, stream, "{image}: re-read of the installed snapshot");

    // The same stream installed into a DtKv in odd-sized chunks gives the same tree.
    let mut kv: DtKv<u32> = DtKv::new(0, WatchConfig::default());
    let mut offset = 0;
    for c in stream.chunks(777) {
        kv.install_chunk(offset, c, false, 0, 0).unwrap();
        offset += c.len() as u64;
    }
    kv.install_chunk(offset, &[], true, 0, 0).unwrap();
    for r in &records {
        assert_eq!(kv.tree().get(&r.key), installed.get(&r.key), "{image}");
    }
    assert_eq!(kv.tree().holder_count(), installed.holder_count());

    // The workload up to the snapshot's index, replayed through our apply: our
    // snapshot of it must be the reference's, byte for byte (same insertion order and
    // holder reuse, same parent-first emission, same versions and TTL fields).
    let mut t = replay(&manifest, &times, last_index);
    let mut r = t.snapshot_reader(last_index);
    let mut ours = Vec::new();
    loop {
        let b = t.read_snapshot(&mut r, 1 << 16);
        if b.is_empty() {
            break;
        }
        ours.extend_from_slice(&b);
    }
    let mine = decode_stream(&ours);
    assert_eq!(mine.len(), records.len(), "{image}: record count");
    for (a, b) in mine.iter().zip(&records) {
        assert_eq!(a, b, "{image}");
    }
    assert_eq!(ours, stream, "{image}: our snapshot stream differs");

    if image == "clean" {
        // The last snapshot holds the whole workload: the tree read back from the
        // reference is ours and the installed one.
        check_final_tree(&manifest, &t);
        check_final_tree(&manifest, &installed);
    } else {
        // The crash image's tree read back after recovery holds every acknowledged
        // write (times of entries after the snapshot are unknown: shape only).
        let t = replay(&manifest, &times, i64::MAX);
        let nodes = manifest["final_tree"]["nodes"].as_array().unwrap();
        for e in nodes {
            let k = e["key"].as_str().unwrap();
            let n = t
                .get(k.as_bytes())
                .node
                .unwrap_or_else(|| panic!("{k} missing"));
            assert_eq!(n.flag as i64, e["flag"].as_i64().unwrap(), "{k}");
            assert_eq!(n.create_index, e["create_index"].as_i64().unwrap(), "{k}");
            assert_eq!(n.update_index, e["update_index"].as_i64().unwrap(), "{k}");
            let v = e["value_hex"].as_str().map(unhex).unwrap_or_default();
            assert_eq!(&n.data[..], &v[..], "{k}");
        }
        assert_eq!(t.holder_count(), nodes.len());
    }
}

#[test]
fn reference_storage_clean() {
    run("clean");
}

#[test]
fn reference_storage_crash() {
    run("crash");
}
