//! The `dt-admin` binary run as a child process against DtKV servers in this process
//! on loopback: every subcommand (list-nodes, list-groups, query-status,
//! transfer-leader, a membership change 3 → 4 → 3 by prepare/commit after add-node,
//! abort-change, add/remove group, add/remove node, sync-config's request), the
//! reference's checks before sending, `--json`, and the exit codes 101–104.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;

use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig};
use support::{add_node, admin, free_ports, ids, ok, status, wait_until, Run};

const GROUP: i32 = 0;

fn servers_list(repl: &[u16]) -> String {
    repl.iter()
        .enumerate()
        .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
        .collect()
}

/// Node `id` (1-based) of a cluster whose `servers` are `known` replicate ports,
/// hosting group 0 with members 1..=3.
fn node(dir: &Path, known: &[u16], svc: u16, id: i32) -> DtKvServer {
    let scfg = RaftServerConfig {
        servers: servers_list(known),
        node_id: id,
        replicate_port: known[id as usize - 1],
        service_port: svc,
        bind_host: "127.0.0.1".parse().unwrap(),
        elect_timeout: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(200),
        rpc_timeout: Duration::from_millis(1000),
        ping_interval: Duration::from_millis(200),
        raft_ping_interval: Duration::from_millis(100),
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    };
    let g = KvGroupConfig::new(GROUP, vec![1, 2, 3]);
    let mut cfg = DtKvServerConfig::new(scfg, vec![g], dir.join(format!("n{id}")));
    cfg.log_file_size = 1 << 20;
    let s = DtKvServer::new(cfg).unwrap();
    s.start().unwrap();
    s
}

/// Runs and requires `code`; the message on stderr must contain `want`.
fn fails(file: &Path, args: &[&str], code: i32, want: &str) -> Run {
    let r = admin(file, args);
    assert_eq!(
        r.code, code,
        "dt-admin {args:?}\nstdout: {}\nstderr: {}",
        r.out, r.err
    );
    assert!(
        r.err.contains(want),
        "dt-admin {args:?}: stderr lacks {want:?}: {}",
        r.err
    );
    r
}

fn write_servers(dir: &Path, repl: &[u16], extra: &str) -> PathBuf {
    let p = dir.join("servers.properties");
    std::fs::write(
        &p,
        format!(
            "servers = {}\ngroup.0.nodeIdOfMembers = 1,2,3\n{extra}",
            servers_list(repl)
        ),
    )
    .unwrap();
    p
}

#[test]
fn admin_cli_against_a_dtkv_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let (repl, svc) = ports.split_at(4);
    // Nodes 1-3 know each other; node 4 knows all four and hosts group 0 without being
    // in it (it joins by the membership change below).
    let mut nodes: Vec<DtKvServer> = (1..=3)
        .map(|id| node(dir.path(), &repl[..3], svc[id - 1], id as i32))
        .collect();
    for n in &nodes {
        n.wait_group_ready(Duration::from_secs(20)).unwrap();
    }
    nodes.push(node(dir.path(), repl, svc[3], 4));
    // The admin's file names all four nodes; group 0 as it is now.
    let file = write_servers(dir.path(), repl, "");

    // list-nodes / list-groups, human and JSON.
    let r = ok(&file, &["list-nodes", "--node-id", "1"]);
    assert!(r
        .out
        .contains("Executing server-list-nodes with timeout 5 seconds..."));
    let want = format!(
        "Nodes:\n  Node{{nodeId=1, host=[127.0.0.1,{}]}}\n  Node{{nodeId=2, host=[127.0.0.1,{}]}}\n  Node{{nodeId=3, host=[127.0.0.1,{}]}}\n",
        repl[0], repl[1], repl[2]
    );
    assert!(r.out.ends_with(&want), "{}", r.out);
    let j = ok(&file, &["list-nodes", "--node-id", "4", "--json"]).json();
    assert_eq!(j["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(j["nodes"][3]["port"], repl[3]);
    let r = ok(&file, &["list-groups", "--node-id", "2"]);
    assert!(r.out.ends_with("Group IDs: [0]\n"), "{}", r.out);

    // query-status.
    let r = ok(
        &file,
        &["query-status", "--node-id", "1", "--group-id", "0"],
    );
    assert!(
        r.out.contains("Raft Status for group 0 on node 1:"),
        "{}",
        r.out
    );
    assert!(r.out.contains("  Members: [1, 2, 3]\n"), "{}", r.out);
    assert!(r.out.contains("  Group Ready: true\n"), "{}", r.out);
    let s = status(&file, 2, 0);
    let leader = s["leaderId"].as_i64().unwrap() as i32;
    assert!((1..=3).contains(&leader), "{s}");
    assert_eq!(s["groupId"], 0);
    assert_eq!(s["nodeId"], 2);
    assert_eq!(ids(&s["members"]), [1, 2, 3]);

    // transfer-leader: the reference's checks, then a real transfer.
    let other = if leader == 1 { 2 } else { 1 };
    let (l, o) = (leader.to_string(), other.to_string());
    fails(
        &file,
        &[
            "transfer-leader",
            "--group-id",
            "0",
            "--old-leader",
            &l,
            "--new-leader",
            &l,
        ],
        104,
        "old and new leader id equals",
    );
    fails(
        &file,
        &[
            "transfer-leader",
            "--group-id",
            "0",
            "--old-leader",
            &o,
            "--new-leader",
            &l,
        ],
        104,
        "old leader not match",
    );
    fails(
        &file,
        &[
            "transfer-leader",
            "--group-id",
            "0",
            "--old-leader",
            &l,
            "--new-leader",
            "4",
        ],
        104,
        "new leader not found in servers list: 4",
    );
    let r = ok(
        &file,
        &[
            "transfer-leader",
            "--group-id",
            "0",
            "--old-leader",
            &l,
            "--new-leader",
            &o,
            "--timeout",
            "20",
        ],
    );
    assert!(r
        .out
        .contains("Executing transfer-leader with timeout 20 seconds..."));
    assert!(
        r.out.ends_with("Transfer leader completed successfully\n"),
        "{}",
        r.out
    );
    wait_until("the new leader", Duration::from_secs(10), || {
        status(&file, other, 0)["leaderId"] == other
    });

    // Membership 3 -> 4: node 4 is defined on the members first.
    for n in ["1", "2", "3"] {
        let r = add_node(&file, n, "4", repl[3]);
        assert!(
            r.out.contains("Add node completed successfully\n"),
            "{}",
            r.out
        );
        assert!(
            r.out
                .contains("NOTE: The local config file was not updated"),
            "{}",
            r.out
        );
    }
    let r = ok(
        &file,
        &[
            "prepare-change",
            "--group-id",
            "0",
            "--old-members",
            "1,2,3",
            "--new-members",
            "1,2,3,4",
        ],
    );
    assert!(r
        .out
        .contains("Executing prepare-change with timeout 30 seconds..."));
    let line = r
        .out
        .lines()
        .find(|l| l.starts_with("SUCCESS. Prepare index: "))
        .unwrap_or_else(|| panic!("{}", r.out));
    let prepare: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let s = status(&file, other, 0);
    assert_eq!(ids(&s["preparedMembers"]), [1, 2, 3, 4]);
    assert_eq!(s["lastConfigChangeIndex"], prepare, "{s} {}", r.out);
    // A wrong prepare index is refused before anything is sent.
    fails(
        &file,
        &[
            "commit-change",
            "--group-id",
            "0",
            "--prepare-index",
            &(prepare + 100).to_string(),
        ],
        104,
        &format!("lastConfigChangeIndex={prepare}"),
    );
    let r = ok(
        &file,
        &[
            "commit-change",
            "--group-id",
            "0",
            "--prepare-index",
            &prepare.to_string(),
        ],
    );
    assert!(
        r.out
            .contains(&format!("Leader is node {other}, querying status...")),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains(&format!("Prepare index validated: {prepare}")),
        "{}",
        r.out
    );
    assert!(r.out.contains("SUCCESS. Commit index: "), "{}", r.out);
    assert!(
        r.out
            .contains("NOTE: The local config file was not updated"),
        "{}",
        r.out
    );
    wait_until("node 4 a ready member", Duration::from_secs(20), || {
        let s = status(&file, 4, 0);
        ids(&s["members"]) == [1, 2, 3, 4] && s["groupReady"] == true
    });

    // abort-change: prepare 4 -> 2 members, abort, the sets are as before.
    ok(
        &file,
        &[
            "prepare-change",
            "--group-id",
            "0",
            "--old-members",
            "1,2,3,4",
            "--new-members",
            "1,2",
            "--new-observers",
            "",
        ],
    );
    assert_eq!(ids(&status(&file, other, 0)["preparedMembers"]), [1, 2]);
    let r = ok(&file, &["abort-change", "--group-id", "0"]);
    assert!(r
        .out
        .contains("Executing abort-change with timeout 15 seconds..."));
    assert!(r.out.contains("SUCCESS. Abort index: "), "{}", r.out);
    wait_until("the abort applied", Duration::from_secs(10), || {
        let s = status(&file, other, 0);
        ids(&s["members"]) == [1, 2, 3, 4] && ids(&s["preparedMembers"]).is_empty()
    });

    // Membership 4 -> 3 (JSON this time), then node 4 is removed from the members'
    // node tables once no group uses it.
    let j = ok(
        &file,
        &[
            "prepare-change",
            "--group-id",
            "0",
            "--old-members",
            "4,3,2,1",
            "--new-members",
            "1,2,3",
            "--json",
        ],
    )
    .json();
    let prepare = j["prepareIndex"].as_i64().unwrap();
    let j = ok(
        &file,
        &[
            "commit-change",
            "--group-id",
            "0",
            "--prepare-index",
            &prepare.to_string(),
            "--json",
        ],
    )
    .json();
    assert!(j["commitIndex"].as_i64().unwrap() > prepare, "{j}");
    assert_eq!(j["localConfigUpdated"], false);
    wait_until("three members", Duration::from_secs(10), || {
        (1..=3).all(|n| ids(&status(&file, n, 0)["members"]) == [1, 2, 3])
    });
    for n in ["1", "2", "3"] {
        wait_until("remove-node 4", Duration::from_secs(10), || {
            admin(
                &file,
                &["remove-node", "--node-id", n, "--remove-node-id", "4"],
            )
            .code
                == 0
        });
        let j = ok(&file, &["list-nodes", "--node-id", n, "--json"]).json();
        assert_eq!(j["nodes"].as_array().unwrap().len(), 3, "{j}");
    }
    nodes.pop().unwrap().stop(Duration::from_secs(5));

    // add-group / remove-group on every member.
    for n in ["1", "2", "3"] {
        let r = ok(
            &file,
            &[
                "add-group",
                "--node-id",
                n,
                "--group-id",
                "5",
                "--members",
                "1,2,3",
            ],
        );
        assert!(
            r.out.contains("Add group completed successfully\n"),
            "{}",
            r.out
        );
    }
    let j = ok(&file, &["list-groups", "--node-id", "3", "--json"]).json();
    assert_eq!(ids(&j["groupIds"]), [0, 5]);
    wait_until("a leader of group 5", Duration::from_secs(20), || {
        let s = status(&file, 1, 5);
        s["leaderId"].as_i64().unwrap() > 0 && s["groupReady"] == true
    });
    for n in ["1", "2", "3"] {
        let r = ok(&file, &["remove-group", "--node-id", n, "--group-id", "5"]);
        assert!(
            r.out.contains("Remove group completed successfully\n"),
            "{}",
            r.out
        );
    }
    wait_until("group 5 gone", Duration::from_secs(10), || {
        (1..=3).all(|n| {
            let j = ok(
                &file,
                &["list-groups", "--node-id", &n.to_string(), "--json"],
            )
            .json();
            ids(&j["groupIds"]) == [0]
        })
    });

    // sync-config is sent; a server without the processor refuses: a failed command.
    let r = fails(&file, &["sync-config", "--node-id", "1"], 104, "Error: ");
    assert!(r.out.contains("Executing sync-config..."), "{}", r.out);

    // Failures: an unknown node, a node that does not answer, a server's refusal.
    fails(&file, &["list-groups", "--node-id", "9"], 104, "9");
    let dead = free_ports(1)[0];
    let dead_file = dir.path().join("dead.properties");
    std::fs::write(
        &dead_file,
        format!("servers = {}9,127.0.0.1:{dead}\n", servers_list(&repl[..3])),
    )
    .unwrap();
    let r = fails(
        &dead_file,
        &["list-nodes", "--node-id", "9", "--timeout", "2", "--json"],
        104,
        "Error: ",
    );
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["exitCode"], 104);
    assert_eq!(j["command"], "list-nodes");
    fails(
        &file,
        &["query-status", "--node-id", "1", "--group-id", "77"],
        104,
        "Error: ",
    );
    fails(
        &file,
        &[
            "prepare-change",
            "--group-id",
            "0",
            "--old-members",
            "1,2",
            "--new-members",
            "1,2,3",
        ],
        104,
        "Error: ",
    );

    for n in nodes {
        n.stop(Duration::from_secs(5));
    }
}

#[test]
fn usage_and_file_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_servers(dir.path(), &free_ports(3), "");
    // 101: bad or missing arguments, with the message and the usage.
    let r = fails(&file, &["list-nodes"], 101, "--node-id <id>");
    assert!(r.err.contains("Usage: dt-admin list-nodes"), "{}", r.err);
    fails(
        &file,
        &["list-nodes", "--node-id", "x"],
        101,
        "invalid value 'x'",
    );
    fails(&file, &["no-such-thing"], 101, "no-such-thing");
    fails(
        &file,
        &[
            "add-group",
            "--node-id",
            "1",
            "--group-id",
            "3",
            "--members",
            "1,,2",
        ],
        101,
        "'' in '1,,2' is not a node id",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_dt-admin"))
        .args(["list-groups", "--node-id", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(101));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-s <servers.properties> is required"));
    // Help for a subcommand, also as --h, exits 0.
    let r = ok(&file, &["transfer-leader", "--h"]);
    assert!(
        r.out.contains("--old-leader") && r.out.contains("Examples:"),
        "{}",
        r.out
    );
    // 102: the file cannot be read.
    fails(
        &dir.path().join("nope.properties"),
        &["list-nodes", "--node-id", "1"],
        102,
        "nope.properties",
    );
    // 103: the file has no usable servers.
    let bad = dir.path().join("bad.properties");
    std::fs::write(&bad, "servers = 1,127.0.0.1\n").unwrap();
    fails(
        &bad,
        &["list-nodes", "--node-id", "1"],
        103,
        "servers = 1,127.0.0.1",
    );
}
