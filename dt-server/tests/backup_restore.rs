//! The operations guide's backup and restore procedures (docs/operations.md, "Backups and
//! restore"), run on the real `dt-server` binary as child processes: the group directory
//! of a stopped node is a complete backup, and putting that one copy under every member of
//! a stopped cluster rolls the whole cluster back to it — writes made after the backup are
//! gone, the members elect a leader and take new writes, and every member applies them.
//! And a copy of a running node's data directory taken at one instant (the process
//! frozen, as an atomic volume snapshot would see it) restores as after a crash: every
//! write answered before that instant is there, and nothing past a prefix of the writes.
//! And a snapshot pair copied from a running node, written under every member with
//! `dt-server --restore-snapshot`, rolls the whole cluster back to the snapshot.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{
    copy_dir, put_until_ok, start_all, stop_all, wait_all_applied, Layout, NodeFiles, SeqWriter,
    Server,
};

const T: Duration = Duration::from_secs(30);

/// Where node `f` keeps group 0.
fn group_dir(f: &NodeFiles) -> std::path::PathBuf {
    f.dir.join("data").join("0")
}

#[test]
fn one_stopped_nodes_group_directory_restores_a_whole_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup-of-node2-group0");
    let l = Layout::new(3);
    let files = l.write_all(dir.path(), "");

    // 1. The state to back up: 40 keys, on every member.
    let mut nodes = start_all(&files, "run1.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "k0", "before0", T);
    let mut last = 0;
    for i in 1..40 {
        last = kv.put(0, format!("k{i}"), format!("before{i}")).unwrap();
    }
    wait_all_applied(&l, last, T);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    // 2. The backup: one stopped node's group directory (node 2's, not necessarily the
    //    leader's), copied whole.
    copy_dir(&group_dir(&files[1]), &backup);
    assert!(
        fs::read_dir(backup.join("snapshot")).unwrap().count() > 0,
        "a clean stop saves a snapshot into the copy"
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
    wait_all_applied(&l, last, T);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    // 4. The restore: the same copy under every member of the stopped cluster.
    for f in &files {
        let g = group_dir(f);
        fs::remove_dir_all(&g).unwrap();
        copy_dir(&backup, &g);
    }

    // 5. The cluster comes back with the backup's state, elects a leader and continues;
    // 6. a restart after that keeps both.
    comes_back_and_continues(&l, &files, 40, 0, "run3.log");
}

/// Starts the restored cluster of `files` and checks that it holds keys `k0..k{keys}`
/// with their values `before<i>` and none of the later `new<i>`, that the group takes a
/// new write (on the last key) with an index above `after_index`, and that a restart
/// keeps the restored state and that write. Stops the nodes.
fn comes_back_and_continues(
    l: &Layout,
    files: &[NodeFiles],
    keys: usize,
    after_index: u64,
    log_name: &str,
) {
    let mut nodes = start_all(files, log_name);
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "probe", "p", T);
    for i in 0..keys {
        let got = kv.get(0, format!("k{i}")).unwrap().map(|n| n.data);
        assert_eq!(got, Some(Bytes::from(format!("before{i}"))), "k{i}");
    }
    for i in 0..10 {
        assert!(kv.get(0, format!("new{i}")).unwrap().is_none(), "new{i}");
    }
    let last_key = format!("k{}", keys - 1);
    let index = kv
        .put(0, last_key.clone(), "restored-then-written")
        .unwrap();
    assert!(index as u64 > after_index);
    wait_all_applied(l, index, T);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    let mut nodes = start_all(files, &format!("after-{log_name}"));
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "probe2", "p", T);
    assert_eq!(
        kv.get(0, last_key).unwrap().map(|n| n.data),
        Some(Bytes::from("restored-then-written"))
    );
    assert_eq!(
        kv.get(0, "k5").unwrap().map(|n| n.data),
        Some(Bytes::from("before5"))
    );
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);
}

/// Waits until every thread of `pid` is stopped (state `T` in its stat file): `kill`
/// returns once the signal is sent, and a thread inside a system call stops only when
/// the call returns.
fn wait_stopped(pid: u32) {
    let end = Instant::now() + T;
    loop {
        let all = fs::read_dir(format!("/proc/{pid}/task")).unwrap().all(|t| {
            let stat = fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
            // "pid (comm) S ...": the state follows the last ')'
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        });
        if all {
            return;
        }
        assert!(Instant::now() < end, "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_frozen_copy_of_a_running_nodes_data_directory_restores_like_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("frozen-copy");
    let l = Layout::new(1);
    let f = l.write_node(dir.path(), 1, "", "");
    let mut s = Server::start(&f, "run1.log");
    let pid = s.child.id();

    // A writer puts k1, k2, ... one after another and publishes the last one answered.
    let kv = put_until_ok(&l.client_servers(), &[1], "k0", "0", T);
    let writer = SeqWriter::start(kv);
    writer.wait_progress(50, "the writer to start", T);

    // The "atomic file-system snapshot": the running server frozen while its whole data
    // directory is copied (what a snapshot of the volume would hold), then thawed.
    s.signal("STOP");
    wait_stopped(pid);
    let acked_before = writer.acked();
    copy_dir(&f.dir.join("data"), &backup);
    s.signal("CONT");
    writer.wait_progress(20, "writes after the thaw", T);
    writer.stop();
    s.stop_clean();

    // The copy put back in place: the server recovers as after a crash.
    fs::remove_dir_all(f.dir.join("data")).unwrap();
    copy_dir(&backup, &f.dir.join("data"));
    let mut s = Server::start(&f, "run2.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "probe", "p", T);
    // Every write answered before the freeze is there (it was fsynced before it was
    // answered), and what is there is a prefix of the writes: at most the one in flight
    // and the one answered but not yet published by the writer are beyond it.
    let mut n = 0u64;
    while let Some(node) = kv.get(0, format!("k{}", n + 1)).unwrap() {
        n += 1;
        assert_eq!(node.data, Bytes::from(n.to_string()), "k{n}");
    }
    eprintln!("answered before the freeze: k1..k{acked_before}; restored: k1..k{n}");
    assert!(
        (acked_before..=acked_before + 1).contains(&n),
        "restored k1..k{n}, answered before the freeze: k1..k{acked_before}"
    );
    for i in n + 1..n + 5 {
        assert!(
            kv.get(0, format!("k{i}")).unwrap().is_none(),
            "k{i} beyond the prefix"
        );
    }
    kv.stop(Duration::from_secs(1));
    s.stop_clean();
}

/// Copies the newest snapshot pair of `group` whose last included index is at least
/// `index` into `to` (the data file first, then the metadata file, as the operations
/// guide says), while the node runs; returns the copied metadata file. A pair deleted
/// while it is copied (a newer one replaced it) is copied again.
fn copy_snapshot_pair(
    group: &std::path::Path,
    index: u64,
    to: &std::path::Path,
) -> std::path::PathBuf {
    let dir = dt_raft::store::snapshot::SnapshotDir::new(&group.join("snapshot"), false);
    let end = Instant::now() + T;
    fs::create_dir_all(to).unwrap();
    loop {
        if let Some(s) = dir.latest().ok().flatten() {
            if s.meta.last_included_index >= index {
                let data = to.join(s.data_path.file_name().unwrap());
                let idx = to.join(s.idx_path.file_name().unwrap());
                if fs::copy(&s.data_path, &data).is_ok() && fs::copy(&s.idx_path, &idx).is_ok() {
                    return idx;
                }
                let _ = fs::remove_file(&data);
            }
        }
        assert!(
            Instant::now() < end,
            "no snapshot at or after {index} in {}",
            group.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `dt-server --restore-snapshot` for node `f` and returns (exit code, stdout,
/// stderr).
fn restore(f: &NodeFiles, snapshot: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "--restore-snapshot",
        snapshot.to_str().unwrap(),
        "-c",
        f.config.to_str().unwrap(),
        "-s",
        f.servers.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = std::process::Command::new(support::BIN)
        .args(&args)
        .current_dir(&f.dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_snapshot_pair_copied_from_a_running_node_restores_a_whole_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(3);
    // a snapshot every second, so that one covers the writes while the nodes run
    let files = l.write_all(dir.path(), "saveSnapshotSeconds = 1\n");

    // 1. The state to back up, and a copy of a snapshot pair of a running follower or
    //    leader (node 3's) that covers it.
    let mut nodes = start_all(&files, "run1.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "k0", "before0", T);
    let mut last = 0;
    for i in 1..30 {
        last = kv.put(0, format!("k{i}"), format!("before{i}")).unwrap();
    }
    wait_all_applied(&l, last, T);
    let backup = copy_snapshot_pair(
        &group_dir(&files[2]),
        last as u64,
        &dir.path().join("backup"),
    );

    // 2. Writes after the copy: the copied snapshot was saved before them, so they are
    //    not in it.
    let covered = dt_raft::store::snapshot::SnapshotInfo::load(&backup)
        .unwrap()
        .meta
        .last_included_index;
    assert!(covered >= last as u64);
    for i in 0..10 {
        kv.put(0, format!("new{i}"), "lost").unwrap();
    }
    last = kv.remove(0, "k29").unwrap();
    wait_all_applied(&l, last, T);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);

    // 3. Refusals, each with its exit code and a message that says what to do.
    let (code, _, err) = restore(&files[0], &backup, &["--group-id", "0"]);
    assert_eq!(code, 103, "{err}");
    assert!(err.contains("move the old directory away"), "{err}");
    let (code, _, err) = restore(&files[0], &backup, &[]);
    assert_eq!(code, 101, "{err}");
    assert!(err.contains("--group-id"), "{err}");
    let (code, _, err) = restore(&files[0], &backup, &["--group-id", "7"]);
    assert_eq!(code, 105, "{err}");
    assert!(err.contains("group 7 is not configured"), "{err}");
    let (code, _, err) = restore(
        &files[0],
        &dir.path().join("none.idx"),
        &["--group-id", "0"],
    );
    assert_eq!(code, 102, "{err}");

    // 4. The restore: every member's group directory moved away, then written from the
    //    one copied pair.
    for f in &files {
        let g = group_dir(f);
        fs::rename(&g, f.dir.join("group0-before-restore")).unwrap();
        let (code, out, err) = restore(f, &backup, &["--group-id", "0"]);
        assert_eq!(code, 0, "node {}: {out}{err}", f.node_id);
        assert!(
            out.contains(&format!("the snapshot at index {covered}")),
            "{out}"
        );
    }

    // 5. The cluster comes back with the snapshot's state, elects a leader and
    //    continues after the snapshot's index; 6. a restart keeps both.
    comes_back_and_continues(&l, &files, 30, covered, "run2.log");
}
