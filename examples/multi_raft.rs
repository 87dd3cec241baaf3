//! Multi-Raft: three DtKV nodes in one process run groups 101 and 102 (each its own
//! Raft log, leader and state); group 103 is added at run time on every node with the
//! admin command ADD_GROUP, written to, then removed with REMOVE_GROUP, while a
//! background writer keeps putting to 101 and 102. The reference's `multiraft` demo
//! (`MultiRaftDemoServer1..3`, `AddGroup103Demo`, `RemoveGroup103Demo`,
//! `PeriodPutClient`) in one program.
//!
//! ```text
//! cargo run --example multi_raft -- [--dir DIR] [--replicate-base 4000 --service-base 5000]
//! ```
//!
//! Ends by itself; any failure is printed as `multi_raft: <cause>` with exit status 1.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dt_client::KvClient;
use dt_examples::common::{
    ensure, group, main_with, put_retrying, wait_leader, wait_until, ClusterArgs, DemoResult,
    KvCluster, Writer,
};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "multi_raft",
    about = "Several Raft groups; add and remove one at run time"
)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const NODES: [i32; 3] = [1, 2, 3];
const MEMBERS: [u32; 3] = [1, 2, 3];
const ADDED: i32 = 103;

fn main() -> ExitCode {
    main_with("multi_raft", run)
}

/// Starts the nodes with groups 101 and 102, adds, uses and removes 103.
pub fn run(args: &Args) -> DemoResult {
    let cluster = KvCluster::start(
        &args.cluster,
        &NODES,
        vec![group(101, &MEMBERS), group(102, &MEMBERS)],
    )?;
    let kv = cluster.client(&[(101, &NODES), (102, &NODES)])?;
    for g in [101, 102] {
        println!("group {g}: leader node {:?}", kv.raft().leader(g));
    }

    // The same key in two groups: two independent state machines.
    kv.put(101, "color", "red")?;
    kv.put(102, "color", "blue")?;
    println!(
        "'color' is {} in group 101 and {} in group 102",
        get(&kv, 101)?,
        get(&kv, 102)?
    );

    // A writer puts to 101 and 102 all along (the reference's PeriodPutClient).
    let writer = Writer::start(&cluster.service_servers(), &[(101, &NODES), (102, &NODES)])?;
    let steps = add_use_remove(&cluster, &kv);
    let stats = writer.finish()?;
    steps?;
    ensure(
        stats.ok > 0 && stats.failed == 0,
        "groups 101 and 102 kept serving",
    )?;
    kv.stop(Duration::from_secs(1));
    cluster.stop();
    Ok(())
}

fn get(kv: &KvClient, g: i32) -> DemoResult<String> {
    let n = kv.get(g, "color")?.ok_or("key missing")?;
    Ok(String::from_utf8_lossy(&n.data).into_owned())
}

/// Adds group 103 on every node, writes to it, removes it.
fn add_use_remove(cluster: &KvCluster, kv: &KvClient) -> DemoResult {
    let t = Duration::from_secs(10);
    let admin = cluster.admin()?;
    let get = |g| get(kv, g);
    // ADD_GROUP on every node (admin commands go to the replicate ports).
    for n in NODES {
        admin.server_add_group(n, ADDED, &NODES, &[], t).wait()?;
        println!("node {n}: group {ADDED} added");
    }
    for n in NODES {
        println!(
            "node {n} runs groups {:?}",
            admin.server_list_groups(n, t).wait()?
        );
    }
    kv.raft().add_or_update_group(ADDED, &NODES)?;
    let leader = wait_leader(kv, ADDED, t)?;
    println!("group {ADDED}: leader node {leader}");
    put_retrying(kv, "", ADDED, "color", "green")?;
    println!("'color' is {} in group {ADDED}", get(ADDED)?);
    ensure(
        get(101)? == "red" && get(102)? == "blue",
        "the other groups keep their values",
    )?;

    // REMOVE_GROUP on every node: the group stops, its requests fail.
    for n in NODES {
        admin.server_remove_group(n, ADDED, t).wait()?;
        println!("node {n}: group {ADDED} removed");
    }
    // The answer comes at once; each node drops the group once it has stopped.
    for n in NODES {
        let mut groups = vec![];
        let gone = wait_until(t, || {
            groups = admin.server_list_groups(n, t).wait().unwrap_or_default();
            !groups.contains(&ADDED)
        });
        println!("node {n} runs groups {groups:?}");
        ensure(gone, "the removed group is gone")?;
    }
    match kv.put(ADDED, "color", "black") {
        Ok(_) => return Err("a put to the removed group succeeded".into()),
        Err(e) => println!("put to group {ADDED} now fails: {e}"),
    }
    kv.raft().remove_group(ADDED)?;
    admin.stop(Duration::from_secs(1));
    Ok(())
}
