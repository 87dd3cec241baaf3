//! The operations guide's "Replacing a node" (docs/operations.md), step by step with the
//! real binaries: node 3 of a 1,2,3 group dies (SIGKILL), a new node 4 starts with an
//! empty data directory, and `dt-admin` against the live nodes defines node 4, makes it
//! an observer, waits for it to catch up, swaps it in for 3 and forgets 3. The group then
//! has members 1,2,4 that hold every write, and 2 and 4 alone are a quorum. The old log
//! is deleted first, so node 4 catches up through an install snapshot.

mod support;

use std::fs;
use std::time::Duration;

use dt_client::KvClient;
use support::{
    add_node, admin, ids, ok, put_until_ok, start_all, status, stop_all, try_status, value_8k,
    wait_until, Layout, Server,
};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_dead_member_is_replaced_by_a_new_node_with_the_admin_tool() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(4);
    let files = l.write_all(
        dir.path(),
        // a snapshot every second, and the log it covers deleted at once
        "saveSnapshotSeconds = 1\nautoDeleteLogDelaySeconds = 0\n",
    );
    // Nodes 1-3 know only each other; node 4 (the new machine) knows all four. The group
    // is 1,2,3 on every node.
    for (i, f) in files.iter().enumerate() {
        let known: &[i32] = if i < 3 { &[1, 2, 3] } else { &[1, 2, 3, 4] };
        fs::write(
            &f.servers,
            format!(
                "servers = {}\ngroup.0.nodeIdOfMembers = 1,2,3\ngroup.0.nodeIdOfObservers =\n",
                l.servers_of(known)
            ),
        )
        .unwrap();
    }
    let admin_file = &files[3].servers;

    let mut nodes = start_all(&files[..3], "run.log");
    let kv = put_until_ok(
        &l.client_servers_of(&[1, 2, 3]),
        &[1, 2, 3],
        "k-first",
        "v",
        T,
    );
    for i in 0..200 {
        kv.put(0, format!("k{i}"), value_8k(i)).unwrap();
    }
    // ~1.6 MB in 1 MiB segments: once a snapshot covers them the first segment goes, so
    // a new node cannot be sent the log from the start and needs an install snapshot.
    // (The log looks for segments to delete after writes, every 10 s: keep writing. It
    // took ~20 s here.)
    wait_until("the first log segment deleted on every node", 2 * T, || {
        kv.put(0, "trickle", "x").unwrap();
        files[..3]
            .iter()
            .all(|f| !f.dir.join("data/0/log/00000000000000000000").exists())
    });
    kv.stop(Duration::from_secs(1));

    // Node 3 dies.
    nodes.pop().unwrap().kill();
    // If it led, 1 and 2 elect a new leader first (the guide says to wait for it: until
    // then they still name node 3, and a request sent there fails to connect).
    wait_until("a leader among the live nodes", T, || {
        [1, 2].iter().all(|&n| {
            let l = status(admin_file, n, 0)["leaderId"].as_i64().unwrap_or(0);
            l == 1 || l == 2
        })
    });

    // 1. The new node starts empty: in no set yet.
    nodes.push(Server::start(&files[3], "run.log"));
    let n4 = &nodes[2];
    // 2. Every live node learns of node 4.
    for n in ["1", "2"] {
        let r = add_node(admin_file, n, "4", l.repl[3]);
        assert!(
            r.out.contains("Add node completed successfully"),
            "{}",
            r.out
        );
    }
    // 3. Node 4 becomes an observer.
    let change = |args: &[&str]| {
        let mut a = vec!["prepare-change", "--group-id", "0"];
        a.extend_from_slice(args);
        a.push("--json");
        let p = ok(admin_file, &a).json()["prepareIndex"].as_i64().unwrap();
        ok(
            admin_file,
            &[
                "commit-change",
                "--group-id",
                "0",
                "--prepare-index",
                &p.to_string(),
            ],
        );
    };
    change(&[
        "--old-members",
        "1,2,3",
        "--new-members",
        "1,2,3",
        "--new-observers",
        "4",
    ]);
    // 4. It catches up.
    wait_until("node 4 to catch up", T, || {
        let leader = status(admin_file, 1, 0)["commitIndex"].as_i64().unwrap();
        try_status(admin_file, 4, 0)
            .is_some_and(|s4| s4["lastApplied"].as_i64().unwrap_or(0) >= leader)
    });
    assert_eq!(ids(&status(admin_file, 4, 0)["observers"]), [4]);
    assert!(
        n4.log_text().contains("snapshot installed up to"),
        "node 4 caught up without an install snapshot:\n{}",
        n4.log_text()
    );
    // 5. The swap: 4 votes, 3 leaves.
    change(&[
        "--old-members",
        "1,2,3",
        "--old-observers",
        "4",
        "--new-members",
        "1,2,4",
    ]);
    wait_until("members 1,2,4 everywhere", T, || {
        [1, 2, 4].iter().all(|&n| {
            let s = status(admin_file, n, 0);
            ids(&s["members"]) == [1, 2, 4] && ids(&s["observers"]).is_empty()
        })
    });
    // 6. Node 3 is forgotten.
    for n in ["1", "2", "4"] {
        wait_until("remove-node 3", T, || {
            admin(
                admin_file,
                &["remove-node", "--node-id", n, "--remove-node-id", "3"],
            )
            .code
                == 0
        });
        let j = ok(admin_file, &["list-nodes", "--node-id", n, "--json"]).json();
        let mut listed: Vec<i64> = j["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["nodeId"].as_i64().unwrap())
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, [1, 2, 4], "node {n}: {j}");
    }

    // Node 1 stops too: 2 and 4 are a majority of 1,2,4, and hold every write.
    let mut n1 = nodes.remove(0);
    n1.stop_clean();
    let kv = KvClient::connect(&l.client_servers_of(&[1, 2, 4]), &[(0, &[1, 2, 4])]).unwrap();
    wait_until("a write to 2 and 4", T, || {
        kv.put(0, "after", "swap").is_ok()
    });
    for i in 0..200 {
        let got = kv.get(0, format!("k{i}")).unwrap().map(|n| n.data);
        assert_eq!(got, Some(value_8k(i)), "k{i}");
    }
    kv.stop(Duration::from_secs(1));
    let servers4 = fs::read_to_string(&files[3].servers).unwrap();
    assert!(
        servers4.contains("nodeIdOfMembers = 1,2,4") || servers4.contains("nodeIdOfMembers=1,2,4"),
        "node 4's servers.properties was not rewritten:\n{servers4}"
    );
    stop_all(&mut nodes);
}
