//! The real `dt-server` binary started on a copy of a data directory written by the
//! reference's server (`vectors/storage/{clean,crash}`): it must recover the
//! reference's newest DtKV snapshot files and the log after them (the crash image's
//! unflushed tail included), and serve, over the service port, the tree the reference
//! read back from the same image (`manifest.json` `final_tree`): keys, flags, values,
//! create/update indexes and times. The image's temporary nodes carry TTLs of one to
//! two days counted from the capture; those that have run out by the wall clock must be
//! expired through the log (their ancestors then show a newer update index), the others
//! must be there unchanged. Finally the server is stopped (it saves its own snapshot on
//! close) and restarted, and serves the same tree again.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dt_client::kv::KvNode;
use dt_client::KvClient;
use dt_common::vectors::unhex;
use serde_json::Value;
use support::{copy_dir, Layout, Server};

const T: Duration = Duration::from_secs(30);

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Every node of group 0's tree, by full key, read with get (root) and list.
fn walk(kv: &KvClient) -> Result<BTreeMap<String, KvNode>, String> {
    fn children(
        kv: &KvClient,
        key: &str,
        out: &mut BTreeMap<String, KvNode>,
    ) -> Result<(), String> {
        for c in kv.list(0, key.to_string()).map_err(|e| e.to_string())? {
            let name = String::from_utf8(c.key_in_dir.to_vec()).unwrap();
            let full = if key.is_empty() {
                name
            } else {
                format!("{key}.{name}")
            };
            let n = c.node.ok_or("list result without a node")?;
            let dir = n.is_dir();
            out.insert(full.clone(), n);
            if dir {
                children(kv, &full, out)?;
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    let root = kv
        .get(0, Bytes::new())
        .map_err(|e| e.to_string())?
        .ok_or("no root")?;
    out.insert(String::new(), root);
    children(kv, "", &mut out)?;
    Ok(out)
}

/// `key` is `anc` or lies below it.
fn under(key: &str, anc: &str) -> bool {
    key == anc || anc.is_empty() || key.starts_with(&format!("{anc}."))
}

fn run(image: &str) {
    let Some(v) = dt_common::vectors::golden_vectors(&format!("reference_image_server_{image}"))
    else {
        return;
    };
    let base = v.join("storage").join(image);
    let manifest = json(&base.join("manifest.json"));
    let decoded = json(&base.join("decoded.json"));

    // The image: its last log index, the newest snapshot's index, and when each TTL
    // started (TTL records of the newest snapshot, else the entry's timestamp).
    let items = decoded["log_items"].as_array().unwrap();
    let last_index = items.last().unwrap()["index"].as_i64().unwrap();
    let stamps: HashMap<i64, i64> = items
        .iter()
        .map(|i| {
            (
                i["index"].as_i64().unwrap(),
                i["timestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    let snaps = decoded["snapshots"].as_array().unwrap();
    let newest = snaps
        .iter()
        .max_by_key(|s| s["idx_file"].as_str().unwrap().to_string())
        .unwrap();
    let newest_index = manifest["decoded_summary"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["idx_file"] == newest["idx_file"])
        .unwrap()["meta_keys"]["lastIncludedIndex"]
        .as_str()
        .unwrap()
        .to_string();
    let ttl_start: HashMap<String, i64> = newest["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let t = r["ttl_leader_start_time"].as_i64()?;
            Some((r["key"].as_str().unwrap().to_string(), t))
        })
        .collect();

    // Which temporary nodes must be gone by now, which must still be there.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let nodes = manifest["final_tree"]["nodes"].as_array().unwrap();
    let mut gone = Vec::new();
    let mut unsure = Vec::new();
    for n in nodes {
        if n["flag"].as_i64().unwrap() & KvNode::FLAG_TEMP as i64 == 0 {
            continue;
        }
        let key = n["key"].as_str().unwrap().to_string();
        let ttl_index = n["ttl_raft_index"].as_i64().expect("ttl_raft_index");
        let start = stamps
            .get(&ttl_index)
            .or_else(|| ttl_start.get(&key))
            .copied()
            .unwrap_or_else(|| panic!("{image}: no TTL start for {key}"));
        let deadline = start + n["ttl_millis"].as_i64().unwrap();
        if deadline <= now {
            gone.push(key);
        } else if deadline < now + 2 * T.as_millis() as i64 {
            unsure.push(key); // may run out while the test runs
        }
    }
    let expected: Vec<&Value> = nodes
        .iter()
        .filter(|n| {
            let k = n["key"].as_str().unwrap();
            !gone.iter().chain(&unsure).any(|g| under(k, g))
        })
        .collect();
    assert!(expected.len() > 100, "{image}: {} nodes", expected.len());

    // The image under a one-node server with the capture's log geometry.
    let tmp = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    let f = l.write_node(
        tmp.path(),
        1,
        "logFileSize = 16384\nidxItemsPerFile = 256\n",
        "",
    );
    copy_dir(&base.join("image/0"), &f.dir.join("data/0"));
    let mut s = Server::start(&f, "run1.log");

    // Read until the tree is served, every run-out TTL has been expired, and two walks
    // in a row agree: a walk reads a directory before its children, so an expiry
    // between the two leaves the directory's update index from before it.
    let end = Instant::now() + T;
    let mut last: Option<BTreeMap<String, KvNode>> = None;
    let tree = loop {
        let kv = KvClient::connect(&l.client_servers(), &[(0, &[1])]).unwrap();
        let r = walk(&kv);
        kv.stop(Duration::from_millis(200));
        match r {
            Ok(t) if !t.keys().any(|k| gone.iter().any(|g| under(k, g))) => {
                if last.as_ref() == Some(&t) {
                    break t;
                }
                last = Some(t);
            }
            Ok(_) => {}
            Err(e) => assert!(Instant::now() < end, "{image}: {e}\n{}", s.log_text()),
        }
        assert!(
            Instant::now() < end,
            "{image}: expired TTLs {gone:?} still served\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = s.log_text();
    assert!(
        log.contains(&format!("recovered snapshot at {newest_index} ")),
        "{image}: the reference's newest snapshot ({newest_index}) was not loaded:\n{log}"
    );

    let served: Vec<&String> = tree
        .keys()
        .filter(|k| !unsure.iter().any(|u| under(k, u)))
        .collect();
    let mut want: Vec<&str> = expected
        .iter()
        .map(|n| n["key"].as_str().unwrap())
        .collect();
    want.sort();
    assert_eq!(
        served.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        want,
        "{image}: keys served"
    );
    for e in &expected {
        let k = e["key"].as_str().unwrap();
        let n = &tree[k];
        assert_eq!(n.flag as i64, e["flag"].as_i64().unwrap(), "{image} {k}");
        assert_eq!(
            n.create_index,
            e["create_index"].as_i64().unwrap(),
            "{image} {k}"
        );
        assert_eq!(
            n.create_time,
            e["create_time"].as_i64().unwrap(),
            "{image} {k}"
        );
        let v = e["value_hex"].as_str().map(unhex).unwrap_or_default();
        assert_eq!(&n.data[..], &v[..], "{image} {k}");
        let (ui, ut) = (
            e["update_index"].as_i64().unwrap(),
            e["update_time"].as_i64().unwrap(),
        );
        if gone.iter().any(|g| under(g, k)) {
            // An expiry below it changed it after the image.
            assert!(n.update_index > last_index, "{image} {k}");
            assert!(n.update_time >= ut, "{image} {k}");
        } else {
            assert_eq!(n.update_index, ui, "{image} {k}");
            assert_eq!(n.update_time, ut, "{image} {k}");
        }
    }

    // Our own snapshot of the tree (saved on close) brings it back.
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
    assert!(s.log_text().contains("snapshot saved"), "{}", s.log_text());
    let mut s = Server::start(&f, "run2.log");
    let end = Instant::now() + T;
    let again = loop {
        let kv = KvClient::connect(&l.client_servers(), &[(0, &[1])]).unwrap();
        let r = walk(&kv);
        kv.stop(Duration::from_millis(200));
        match r {
            Ok(t) => break t,
            Err(e) => assert!(Instant::now() < end, "{image}: {e}\n{}", s.log_text()),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (k, n) in &tree {
        if !unsure.iter().any(|u| under(k, u)) {
            assert_eq!(again.get(k), Some(n), "{image} {k} after restart");
        }
    }
    if unsure.is_empty() {
        assert_eq!(again.len(), tree.len(), "{image}: node count after restart");
    }
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
    eprintln!(
        "{image}: {} nodes served as the reference's, expired {gone:?}, not checked {unsure:?}",
        expected.len()
    );
}

#[test]
fn reference_image_server_clean() {
    run("clean");
}

#[test]
fn reference_image_server_crash() {
    run("crash");
}
