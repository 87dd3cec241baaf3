//! The real `dt-server` binary as a child process on free loopback ports: one node and
//! three nodes from configuration files, SIGTERM and restart with the data intact, the
//! exit code and message of each bad argument and bad file, and SYNC_CONFIG / the
//! persist-config hook rewriting servers.properties with a backup (also through the
//! `dt-admin sync-config` binary).

mod support;

use std::fs;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::admin::AdminRaftClient;
use dt_client::raft::{RaftClientConfig, RaftNode};
use dt_client::KvClient;
use support::{put_until_ok, stop_all, wait_all_applied, Layout, Server, BIN};

const T: Duration = Duration::from_secs(20);

#[test]
fn one_node_from_files_serves_clients_stops_on_sigterm_and_restarts_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    // perf figures logged every second (dt only; off by default)
    let f = l.write_node(dir.path(), 1, "perfStatsInterval = 1\n", "");
    let mut s = Server::start(&f, "run1.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k0", "v0", T);
    for i in 1..20 {
        kv.put(0, format!("k{i}"), format!("v{i}")).unwrap();
    }
    assert_eq!(kv.get(0, "k7").unwrap().unwrap().data, Bytes::from("v7"));
    kv.stop(Duration::from_secs(1));
    for kind in [
        "raft_state_machine_exec",
        "dtkv_linearizable_op",
        "dtkv_lease_read",
        "rpc_io_threads",
        "raft_dispatchers",
    ] {
        wait_file_contains(&s.log, &format!("dt_stats] {kind}: "));
    }

    s.terminate();
    let st = s.wait_exit(T);
    let log = s.log_text();
    assert_eq!(st.code(), Some(0), "log:\n{log}");
    assert!(log.contains("listening"), "{log}");
    assert!(log.contains("ready: all groups ready"), "{log}");
    assert!(log.contains("snapshot saved"), "snapshot on close:\n{log}");
    let snaps = fs::read_dir(dir.path().join("node1/data/0/snapshot"))
        .unwrap()
        .count();
    assert!(snaps > 0);

    let mut s = Server::start(&f, "run2.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k20", "v20", T);
    for i in 0..=20 {
        let n = kv.get(0, format!("k{i}")).unwrap();
        assert_eq!(
            n.map(|n| n.data),
            Some(Bytes::from(format!("v{i}"))),
            "k{i} after restart"
        );
    }
    kv.stop(Duration::from_secs(1));
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
}

/// `dispatcherCpus`: the running server's group thread (`raft-0`) may use only the CPU
/// listed, every other thread keeps the process's CPUs, and the log says so.
#[cfg(target_os = "linux")]
#[test]
fn dispatcher_cpus_pin_the_group_thread_of_the_running_server() {
    use dt_common::cpu_set::CpuSet;
    let allowed = CpuSet::allowed().unwrap();
    let cpu = allowed.iter().last().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    let f = l.write_node(dir.path(), 1, &format!("dispatcherCpus = {cpu}\n"), "");
    let mut s = Server::start(&f, "run.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k", "v", T);
    kv.stop(Duration::from_secs(1));
    let mut seen = Vec::new();
    for t in fs::read_dir(format!("/proc/{}/task", s.child.id())).unwrap() {
        let t = t.unwrap().path();
        let comm = fs::read_to_string(t.join("comm")).unwrap_or_default();
        let status = fs::read_to_string(t.join("status")).unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        seen.push((comm.trim().to_string(), CpuSet::parse(list.trim()).unwrap()));
    }
    let raft0 = seen
        .iter()
        .find(|(n, _)| n == "raft-0")
        .expect("a raft-0 thread");
    assert_eq!(raft0.1.iter().collect::<Vec<_>>(), vec![cpu], "{seen:?}");
    // with one CPU allowed, pinned and unpinned threads look alike
    if allowed.len() > 1 {
        let pinned: Vec<_> = seen.iter().filter(|(_, c)| *c != allowed).collect();
        assert_eq!(pinned.len(), 1, "only raft-0 is pinned: {seen:?}");
    }
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0));
    let log = s.log_text();
    assert!(
        log.contains(&format!("dispatcher raft-0 runs on CPU {cpu}")),
        "{log}"
    );
}

#[test]
fn three_nodes_elect_a_leader_and_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(3);
    let mut nodes: Vec<Server> = l
        .ids()
        .iter()
        .map(|&id| Server::start(&l.write_node(dir.path(), id, "", ""), "run.log"))
        .collect();
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "a", "1", T);
    let index = kv.put(0, "b", "2").unwrap();
    assert_eq!(kv.get(0, "a").unwrap().unwrap().data, Bytes::from("1"));

    // Every node applies the write.
    wait_all_applied(&l, index, T);
    kv.stop(Duration::from_secs(1));
    stop_all(&mut nodes);
}

/// Runs the binary in `dir` with `args`; returns (exit code, stderr).
fn run_bad(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_and_files_exit_with_the_references_codes_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let l = Layout::new(1);
    let f = l.write_node(d, 1, "", "");
    let (c, s) = (f.config.to_str().unwrap(), f.servers.to_str().unwrap());
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // `-c <config> -s <servers>`
    let cs = |config: &str, servers: &str| -> Vec<String> {
        vec!["-c".into(), config.into(), "-s".into(), servers.into()]
    };
    // `cs` with a config file `name` for node `id` on this layout's ports, data in
    // `data`, plus the `extra` lines
    let node = |name: &str, id: u32, data: &str, extra: &str| -> Vec<String> {
        let text = format!(
            "nodeId = {id}\nreplicatePort = {}\nservicePort = {}\ndataDir = {data}\n{extra}",
            l.repl[0], l.svc[0]
        );
        cs(&write(name, &text), s)
    };
    let data = |n: u32| d.join(format!("data{n}")).display().to_string();
    let nope = d.join("nope.properties").display().to_string();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["-c".into(), c.into()], 101, "-s <file>"),
        (
            vec!["-s".into(), s.into(), "-c".into()],
            101,
            "-c option requires",
        ),
        (cs(&nope, s), 102, "nope.properties"),
        (
            node("datafile.properties", 1, &write("a-file", "x"), ""),
            103,
            "a-file",
        ),
        (
            cs(&write("badvalue.properties", "nodeId = one\n"), s),
            104,
            "nodeId",
        ),
        (
            cs(
                c,
                &write("noservers.properties", "group.0.nodeIdOfMembers = 1\n"),
            ),
            105,
            "servers",
        ),
        (
            cs(
                c,
                &write(
                    "badgroup.properties",
                    &format!("servers = {}\ngroup.x.nodeIdOfMembers = 1\n", l.servers()),
                ),
            ),
            105,
            "group.x.nodeIdOfMembers",
        ),
        (
            cs(
                c,
                &write(
                    "nogroup.properties",
                    &format!("servers = {}\n", l.servers()),
                ),
            ),
            105,
            "no group",
        ),
        (node("notlisted.properties", 7, &data(7), ""), 106, "nodeId"),
        (
            node("badsize.properties", 1, &data(8), "logFileSize = 1000\n"),
            106,
            "logFileSize must be a power of two",
        ),
        (
            node(
                "badstats.properties",
                1,
                &data(9),
                "perfStatsInterval = -5\n",
            ),
            106,
            "perfStatsInterval",
        ),
        (
            node(
                "badprefill.properties",
                1,
                &data(10),
                "logPrefillBytes = -1\n",
            ),
            106,
            "logPrefillBytes",
        ),
    ];
    for (args, code, hint) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (got, err) = run_bad(d, &a);
        assert_eq!(got, code, "{args:?}: stderr:\n{err}");
        assert!(
            err.contains(hint),
            "{args:?}: stderr lacks {hint:?}:\n{err}"
        );
        assert!(err.contains("dt-server: error:"), "{err}");
    }

    // A replicate port already taken: the start fails (106) and names the problem.
    let taken = TcpListener::bind(("127.0.0.1", l.repl[0])).unwrap();
    let (got, err) = run_bad(d, &["-c", c, "-s", s]);
    drop(taken);
    assert_eq!(got, 106, "{err}");
    assert!(err.contains("cannot start the server"), "{err}");

    // --help: usage, exit 0.
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-c <config.properties>"));
}

fn backups(f: &support::NodeFiles) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(&f.dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with("servers.properties.bak.").then_some(n)
        })
        .collect();
    v.sort();
    v
}

fn wait_file_contains(path: &std::path::Path, needle: &str) -> String {
    let end = Instant::now() + T;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < end,
            "{} never got {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sync_config_and_membership_changes_rewrite_servers_properties_with_backups() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    let f = l.write_node(
        dir.path(),
        1,
        "",
        "# a comment the rewrite drops\ngroup.0.maxKeepSnapshots = 3\n",
    );
    let mut s = Server::start(&f, "run.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k", "v", T);
    kv.stop(Duration::from_secs(1));
    assert!(backups(&f).is_empty());

    let admin = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
    admin
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list(&l.servers()).unwrap())
        .unwrap();
    admin
        .server_sync_config(1, Duration::from_secs(5))
        .wait()
        .unwrap();
    let text = fs::read_to_string(&f.servers).unwrap();
    assert!(
        text.starts_with(&format!("servers = 1,127.0.0.1:{};\n\n", l.repl[0])),
        "{text}"
    );
    assert!(text.contains("group.0.nodeIdOfMembers = 1\n"), "{text}");
    assert!(text.contains("group.0.maxKeepSnapshots = 3\n"), "{text}");
    assert!(!text.contains("comment"), "{text}");
    let b = backups(&f);
    assert_eq!(b.len(), 1, "{b:?}");
    let old = fs::read_to_string(f.dir.join(&b[0])).unwrap();
    assert!(
        old.contains("# a comment the rewrite drops"),
        "the backup is the old file"
    );

    // Not on the service port.
    let wrong = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
    wrong
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list(&l.client_servers()).unwrap())
        .unwrap();
    match wrong.server_sync_config(1, Duration::from_secs(5)).wait() {
        Err(dt_client::kv::KvError::Server { resp_code, .. }) => {
            assert_eq!(resp_code, dt_net::CmdCodes::COMMAND_NOT_SUPPORT)
        }
        r => panic!("sync-config on the service port: {r:?}"),
    }
    wrong.stop(Duration::from_secs(1));

    // Adding a node runs the persist-config hook: the file follows without a request.
    admin
        .server_add_node(1, 2, "127.0.0.1", 4999, Duration::from_secs(5))
        .wait()
        .unwrap();
    wait_file_contains(
        &f.servers,
        &format!("servers = 1,127.0.0.1:{};2,127.0.0.1:4999;", l.repl[0]),
    );

    // A committed membership change (node 2 becomes an observer of group 0) is written
    // once the COMMIT entry applies.
    admin.raft().add_or_update_group(0, &[1]).unwrap();
    let prepare = admin
        .prepare_config_change(0, &[1], &[], &[1], &[2], Duration::from_secs(5))
        .wait()
        .unwrap();
    admin
        .commit_change(0, prepare, Duration::from_secs(5))
        .wait()
        .unwrap();
    wait_file_contains(&f.servers, "group.0.nodeIdOfObservers = 2\n");

    // A group added at run time gets its directory under dataDir and its lines.
    admin
        .server_add_group(1, 7, &[1], &[], Duration::from_secs(5))
        .wait()
        .unwrap();
    let text = wait_file_contains(&f.servers, "group.7.nodeIdOfMembers = 1\n");
    assert!(text.contains("group.7.nodeIdOfObservers = \n"), "{text}");
    assert!(dir.path().join("node1/data/7").is_dir());
    let kv7 = KvClient::connect(&l.client_servers(), &[(7, &[1])]).unwrap();
    let end = Instant::now() + T;
    while kv7.put(7, "x", "y").is_err() {
        assert!(Instant::now() < end, "group 7 never took a put");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Removing it drops its lines, and the service port stops serving it.
    admin
        .server_remove_group(1, 7, Duration::from_secs(5))
        .wait()
        .unwrap();
    let end = Instant::now() + T;
    loop {
        let text = fs::read_to_string(&f.servers).unwrap();
        if !text.contains("group.7.") {
            break;
        }
        assert!(Instant::now() < end, "group 7 still listed:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let end = Instant::now() + T;
    loop {
        match kv7.get(7, "x") {
            Err(e) if e.to_string().contains("raft group not found: 7") => break,
            r => assert!(Instant::now() < end, "group 7 still served: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kv7.stop(Duration::from_secs(1));
    assert!(!backups(&f).is_empty());
    admin.stop(Duration::from_secs(1));
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
}

/// `dt-admin sync-config` (the binary) against the binary started with `-c`/`-s`:
/// exit 0, the reference's success line, the server's servers.properties rewritten
/// with the old file kept as `servers.properties.bak.<yyyyMMddHHmmss>`; `--json`
/// prints one object.
#[test]
fn dt_admin_sync_config_rewrites_the_running_servers_file_with_a_backup() {
    const ADMIN: &str = env!("CARGO_BIN_EXE_dt-admin");
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    let f = l.write_node(dir.path(), 1, "", "# dropped by the rewrite\n");
    let mut s = Server::start(&f, "run.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k", "v", T);
    kv.stop(Duration::from_secs(1));
    assert!(backups(&f).is_empty());
    let before = fs::read_to_string(&f.servers).unwrap();

    let servers_file = f.servers.to_str().unwrap();
    let out = Command::new(ADMIN)
        .args(["-s", servers_file, "sync-config", "--node-id", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Executing sync-config..."), "{stdout}");
    assert!(
        stdout.contains("Sync config completed successfully"),
        "{stdout}"
    );

    let text = fs::read_to_string(&f.servers).unwrap();
    assert!(
        text.starts_with(&format!("servers = 1,127.0.0.1:{};\n\n", l.repl[0])),
        "{text}"
    );
    assert!(text.contains("group.0.nodeIdOfMembers = 1\n"), "{text}");
    assert!(!text.contains("dropped by the rewrite"), "{text}");
    let b = backups(&f);
    assert_eq!(b.len(), 1, "{b:?}");
    let stamp = b[0].strip_prefix("servers.properties.bak.").unwrap();
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|c| c.is_ascii_digit()),
        "backup name {}",
        b[0]
    );
    assert_eq!(fs::read_to_string(f.dir.join(&b[0])).unwrap(), before);

    // --json: exactly one object on stdout, no progress line.
    let out = Command::new(ADMIN)
        .args([
            "--json",
            "-s",
            servers_file,
            "sync-config",
            "--node-id",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(v, serde_json::json!({"command": "sync-config", "ok": true}));

    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
}

#[test]
fn no_arguments_runs_the_embedded_defaults_in_the_working_directory() {
    // The embedded defaults use the fixed ports 9331/9332; skip (saying so) when
    // something else on this machine holds them.
    let busy = [9331u16, 9332]
        .iter()
        .any(|p| TcpListener::bind(("127.0.0.1", *p)).is_err());
    if busy {
        eprintln!("SKIPPED no_arguments_runs_the_embedded_defaults: port 9331 or 9332 is in use");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::spawn(dir.path(), &[], "run.log");
    let kv = put_until_ok("1,127.0.0.1:9332", &[1], "hello", "world", T);
    assert_eq!(
        kv.get(0, "hello").unwrap().unwrap().data,
        Bytes::from("world")
    );
    kv.stop(Duration::from_secs(1));
    assert!(dir.path().join("data/0").is_dir(), "data under ./data/0");

    // No servers.properties to rewrite: sync-config says so.
    let admin = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
    admin
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list("1,127.0.0.1:9331").unwrap())
        .unwrap();
    let e = admin
        .server_sync_config(1, Duration::from_secs(5))
        .wait()
        .unwrap_err();
    assert!(e.to_string().contains("no file to sync"), "{e}");
    admin.stop(Duration::from_secs(1));

    // Ctrl-C (SIGINT) stops it cleanly too.
    let st = Command::new("kill")
        .arg("-INT")
        .arg(s.child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
    let log = s.log_text();
    assert!(log.contains("embedded defaults"), "{log}");
    assert!(log.contains("service port 9332"), "{log}");
    assert!(
        log.contains("replicate port 127.0.0.1:9331"),
        "loopback only: {log}"
    );
}

#[test]
fn group_overrides_in_servers_properties_reach_each_running_group() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    // Group 1 turns the snapshot on close off; group 0 keeps the default (on).
    let f = l.write_node(
        dir.path(),
        1,
        "",
        "group.1.nodeIdOfMembers = 1\ngroup.1.saveSnapshotWhenClose = false\n",
    );
    let mut s = Server::start(&f, "run.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "a", "0", T);
    kv.stop(Duration::from_secs(1));
    let kv1 = KvClient::connect(&l.client_servers(), &[(1, &[1])]).unwrap();
    kv1.put(1, "b", "1").unwrap();
    kv1.stop(Duration::from_secs(1));
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
    let count = |g: &str| snapshots_saved(&dir.path().join("node1/data").join(g));
    assert!(count("0") > 0, "group 0 saved a snapshot on close");
    assert_eq!(
        count("1"),
        0,
        "group 1 did not (group.1.saveSnapshotWhenClose)"
    );
}

/// `saveSnapshotLogBytes` reaches the running group: with the hourly save an hour away
/// and none on close, about 200 KB of puts past a 64 KiB threshold leave snapshots on
/// disk while the server runs.
#[test]
fn save_snapshot_log_bytes_saves_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    let f = l.write_node(
        dir.path(),
        1,
        "saveSnapshotLogBytes = 65536\nsaveSnapshotWhenClose = false\n",
        "",
    );
    let mut s = Server::start(&f, "run.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k", "v", T);
    let value = "x".repeat(200);
    for i in 0..700 {
        kv.put(0, format!("k{i}"), value.clone()).unwrap();
    }
    let snapshots = || snapshots_saved(&dir.path().join("node1/data/0"));
    let end = std::time::Instant::now() + T;
    while snapshots() == 0 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(snapshots() > 0, "no snapshot saved: {}", s.log_text());
    kv.stop(Duration::from_secs(1));
    s.terminate();
    assert_eq!(s.wait_exit(T).code(), Some(0), "{}", s.log_text());
    assert!(
        s.log_text().contains("snapshot saved at"),
        "{}",
        s.log_text()
    );
}

/// The complete snapshots (their `.idx` files) in a group's data directory.
fn snapshots_saved(group_dir: &std::path::Path) -> usize {
    fs::read_dir(group_dir.join("snapshot"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
                .count()
        })
        .unwrap_or(0)
}
