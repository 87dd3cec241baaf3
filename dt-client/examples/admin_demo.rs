//! The admin client against a running cluster (replicate ports): status of every node,
//! the nodes and groups a server knows, and a leader transfer.
//!
//! ```text
//! cargo run -p dt-client --example admin_demo -- --servers "1,127.0.0.1:4001;2,127.0.0.1:4002;3,127.0.0.1:4003" --group 0
//! ```

use std::time::Duration;

use dt_client::admin::AdminRaftClient;
use dt_client::raft::{RaftClientConfig, RaftNode};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().collect();
    let servers = RaftNode::parse_list(&arg(&args, "--servers", "1,127.0.0.1:4001")).unwrap();
    let group: i32 = arg(&args, "--group", "0").parse().unwrap();
    let t = Duration::from_secs(10);
    let admin = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
    admin.raft().add_or_update_nodes(&servers).unwrap();
    let ids: Vec<i32> = servers.iter().map(|n| n.node_id).collect();
    admin.raft().add_or_update_group(group, &ids).unwrap();
    for &n in &ids {
        let s = admin.query_status(n, group, t).wait().unwrap();
        println!(
            "node {n}: term {} leader {} commit {} applied {} members {:?} ready {}",
            s.term,
            s.leader_id,
            s.commit_index,
            s.last_applied,
            s.members,
            s.is_group_ready()
        );
    }
    println!(
        "node {} knows nodes {:?}",
        ids[0],
        admin.server_list_nodes(ids[0], t).wait().unwrap()
    );
    println!(
        "node {} runs groups {:?}",
        ids[0],
        admin.server_list_groups(ids[0], t).wait().unwrap()
    );
    let leader = admin.raft().fetch_leader(group, t).wait().unwrap();
    if ids.len() > 1 {
        let to = *ids.iter().find(|&&n| n != leader).unwrap();
        println!("transferring leadership of group {group} from {leader} to {to}");
        admin.transfer_leader(group, leader, to, t).wait().unwrap();
        let s = admin.query_status(to, group, t).wait().unwrap();
        println!("node {to} now says leader is {}", s.leader_id);
        if s.leader_id != to {
            eprintln!("FAILED: leader did not move");
            std::process::exit(1);
        }
    }
    // A membership change to the same set: prepare then abort, prepare then commit.
    let idx = admin
        .prepare_config_change(group, &ids, &[], &ids, &[], t)
        .wait()
        .unwrap();
    let a = admin.abort_change(group, t).wait().unwrap();
    println!("prepare (same members) at index {idx}, aborted at {a}");
    let idx = admin
        .prepare_config_change(group, &ids, &[], &ids, &[], t)
        .wait()
        .unwrap();
    let c = admin.commit_change(group, idx, t).wait().unwrap();
    println!("prepare at index {idx}, committed at {c}");
    // --add-group G: add group G on the first server (members: that server), list,
    // then remove it again.
    let add: i32 = arg(&args, "--add-group", "-1").parse().unwrap();
    if add >= 0 {
        admin
            .server_add_group(ids[0], add, &ids[..1], &[], t)
            .wait()
            .unwrap();
        let groups = admin.server_list_groups(ids[0], t).wait().unwrap();
        println!("after adding group {add}: {groups:?}");
        if !groups.contains(&add) {
            eprintln!("FAILED: group not added");
            std::process::exit(1);
        }
        admin.server_remove_group(ids[0], add, t).wait().unwrap();
        // The server stops the group in the background.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let mut groups = admin.server_list_groups(ids[0], t).wait().unwrap();
        while groups.contains(&add) && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
            groups = admin.server_list_groups(ids[0], t).wait().unwrap();
        }
        println!("after removing it: {groups:?}");
    }
    admin.stop(Duration::from_secs(1));
    println!("admin_demo finished");
}
