//! The operations guide's backup and restore procedures (docs/operations.md, "Backups and
//! restore"), run on the real `dt-server` binary as child processes: the group directory
//! of a stopped node is a complete backup, and putting that one copy under every member of
//! a stopped cluster rolls the whole cluster back to it — writes made after the backup are
//! gone, the members elect a leader and take new writes, and every member applies them.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::admin::AdminRaftClient;
use dt_client::raft::{RaftClientConfig, RaftNode};
use support::{put_until_ok, Layout, NodeFiles, Server};

const T: Duration = Duration::from_secs(30);

/// Copies the directory tree `from` to `to` (which must not exist).
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Names of the files under `dir`, recursively, relative to it (sorted).
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn group_dir(f: &NodeFiles) -> std::path::PathBuf {
    f.dir.join("data").join("0")
}

fn start_all(files: &[NodeFiles], log: &str) -> Vec<Server> {
    files.iter().map(|f| Server::start(f, log)).collect()
}

/// SIGTERM to every node, then each must exit 0 (a clean stop saves a snapshot).
fn stop_all(nodes: &mut [Server]) {
    for n in nodes.iter() {
        n.terminate();
    }
    for n in nodes.iter_mut() {
        assert_eq!(n.wait_exit(T).code(), Some(0), "{}", n.log_text());
    }
}

/// Waits until every member reports `last_applied >= index` and a known leader.
fn wait_all_applied(l: &Layout, index: i64) {
    let admin = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
    admin
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list(&l.servers()).unwrap())
        .unwrap();
    let end = Instant::now() + T;
    for id in l.ids() {
        loop {
            let st = admin.query_status(id, 0, Duration::from_secs(2)).wait();
            if let Ok(st) = &st {
                if st.last_applied >= index && st.leader_id > 0 {
                    break;
                }
            }
            assert!(
                Instant::now() < end,
                "node {id} did not apply {index}: {st:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    admin.stop(Duration::from_secs(1));
}

#[test]
fn one_stopped_nodes_group_directory_restores_a_whole_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup-of-node2-group0");
    let l = Layout::new(3);
    let files: Vec<NodeFiles> = l
        .ids()
        .iter()
        .map(|&id| l.write_node(dir.path(), id, "", ""))
        .collect();

    // 1. The state to back up: 40 keys, on every member.
    let mut nodes = start_all(&files, "run1.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "k0", "before0", T);
    let mut last = 0;
    for i in 1..40 {
        last = kv.put(0, format!("k{i}"), format!("before{i}")).unwrap();
    }
    wait_all_applied(&l, last);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    // 2. The backup: one stopped node's group directory (node 2's, not necessarily the
    //    leader's), copied whole.
    copy_dir(&group_dir(&files[1]), &backup);
    assert!(
        files_under(&backup)
            .iter()
            .any(|f| f.starts_with("snapshot")),
        "a clean stop saves a snapshot into the copy: {:?}",
        files_under(&backup)
    );

    // 3. Writes after the backup: overwrite some keys, add others, remove one.
    let mut nodes = start_all(&files, "run2.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "k0", "after0", T);
    for i in 1..10 {
        kv.put(0, format!("k{i}"), format!("after{i}")).unwrap();
    }
    for i in 0..10 {
        kv.put(0, format!("new{i}"), "lost").unwrap();
    }
    last = kv.remove(0, "k39").unwrap();
    wait_all_applied(&l, last);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    // 4. The restore: the same copy under every member of the stopped cluster.
    for f in &files {
        let g = group_dir(f);
        fs::remove_dir_all(&g).unwrap();
        copy_dir(&backup, &g);
    }

    // 5. The cluster comes back with the backup's state, elects a leader and continues.
    let mut nodes = start_all(&files, "run3.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "probe", "p", T);
    for i in 0..40 {
        let got = kv.get(0, format!("k{i}")).unwrap().map(|n| n.data);
        assert_eq!(got, Some(Bytes::from(format!("before{i}"))), "k{i}");
    }
    for i in 0..10 {
        assert!(kv.get(0, format!("new{i}")).unwrap().is_none(), "new{i}");
    }
    let index = kv.put(0, "k39", "restored-then-written").unwrap();
    wait_all_applied(&l, index);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    // 6. A restart after that keeps both the restored state and the write made on it.
    let mut nodes = start_all(&files, "run4.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "probe2", "p", T);
    assert_eq!(
        kv.get(0, "k39").unwrap().map(|n| n.data),
        Some(Bytes::from("restored-then-written"))
    );
    assert_eq!(
        kv.get(0, "k5").unwrap().map(|n| n.data),
        Some(Bytes::from("before5"))
    );
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);
}
