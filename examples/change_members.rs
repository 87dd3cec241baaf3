//! Membership change by joint consensus while a client writes: four DtKV nodes in one
//! process run group 0 with members 1, 2, 3 and node 4 as an observer (it receives the
//! log but does not vote, the reference's advice for a new node). The admin client
//! then promotes node 4 (members 1, 2, 3 → 1, 2, 3, 4) and removes node 1
//! (→ 2, 3, 4; leadership is moved off node 1 first), each as prepare then commit.
//! The reference's `configchange` demo (`ChangeTo234Client`, `ChangeTo123Client`) in
//! one program.
//!
//! ```text
//! cargo run --example change_members -- [--dir DIR] [--replicate-base 4000 --service-base 5000]
//! ```
//!
//! Ends by itself; any failure is printed as `change_members: <cause>` with exit
//! status 1.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dt_client::admin::AdminRaftClient;
use dt_examples::common::{
    ensure, group, main_with, wait_until, ClusterArgs, DemoResult, KvCluster, Writer,
};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "change_members",
    about = "Membership change 3 -> 4 -> 3 while writing"
)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const GROUP: i32 = 0;
const NODES: [i32; 4] = [1, 2, 3, 4];
const T: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    main_with("change_members", run)
}

/// Starts the four nodes, runs both changes under a writer, checks the result.
pub fn run(args: &Args) -> DemoResult {
    let mut g = group(GROUP, &[1, 2, 3]);
    g.observers = vec![4];
    let cluster = KvCluster::start(&args.cluster, &NODES, vec![g])?;
    let admin = cluster.admin()?;
    admin.raft().add_or_update_group(GROUP, &NODES)?;

    // A writer puts all along; every put must be acknowledged through both changes.
    let writer = Writer::start(&cluster.service_servers(), &[(GROUP, &NODES)])?;
    let steps = change(&cluster, &admin);
    let stats = writer.finish()?;
    steps?;
    ensure(
        stats.ok > 0 && stats.failed == 0,
        "every put was acknowledged",
    )?;
    let kv = cluster.client(&[(GROUP, &[2, 3, 4])])?;
    let last = kv
        .get(GROUP, "writer")?
        .ok_or("the writer's key is missing")?;
    println!(
        "the new members serve the last value written: writer = {}",
        String::from_utf8_lossy(&last.data)
    );
    ensure(
        stats.last.is_some_and(|n| last.data == n.to_string()),
        "the last acknowledged put is there",
    )?;
    admin.stop(Duration::from_secs(1));
    kv.stop(Duration::from_secs(1));
    cluster.stop();
    Ok(())
}

/// The leader as the nodes see it (waiting out an election).
fn leader(cluster: &KvCluster) -> DemoResult<i32> {
    let mut leader = None;
    wait_until(T, || {
        leader = cluster.leader_of(GROUP);
        leader.is_some()
    });
    Ok(leader.ok_or("no leader")?)
}

/// Prints the group's configuration as the leader reports it.
fn show(cluster: &KvCluster, admin: &AdminRaftClient, when: &str) -> DemoResult<i32> {
    let leader = leader(cluster)?;
    let s = admin.query_status(leader, GROUP, T).wait()?;
    println!(
        "{when}: leader {leader}, members {:?}, observers {:?}, prepared members {:?}, prepared observers {:?}",
        s.members, s.observers, s.prepared_members, s.prepared_observers
    );
    Ok(leader)
}

fn change(cluster: &KvCluster, admin: &AdminRaftClient) -> DemoResult {
    show(cluster, admin, "start")?;
    std::thread::sleep(Duration::from_millis(300));

    // 1. Promote observer 4: prepare the joint configuration (old and new member sets
    //    must both agree from now on), then commit the new one.
    let prepare = admin
        .prepare_config_change(GROUP, &[1, 2, 3], &[4], &[1, 2, 3, 4], &[], T)
        .wait()?;
    show(cluster, admin, &format!("prepared at index {prepare}"))?;
    let commit = admin.commit_change(GROUP, prepare, T).wait()?;
    show(cluster, admin, &format!("committed at index {commit}"))?;
    std::thread::sleep(Duration::from_millis(300));

    // 2. Remove node 1. Move the leadership away first if node 1 has it.
    if leader(cluster)? == 1 {
        admin.transfer_leader(GROUP, 1, 2, T).wait()?;
        println!("leadership moved from node 1 to node 2");
    }
    let prepare = admin
        .prepare_config_change(GROUP, &[1, 2, 3, 4], &[], &[2, 3, 4], &[], T)
        .wait()?;
    show(cluster, admin, &format!("prepared at index {prepare}"))?;
    let commit = admin.commit_change(GROUP, prepare, T).wait()?;
    let leader = show(cluster, admin, &format!("committed at index {commit}"))?;
    ensure(leader != 1, "node 1 no longer leads")?;
    let s = admin.query_status(leader, GROUP, T).wait()?;
    let mut members = s.members.clone();
    members.sort();
    ensure(members == [2, 3, 4], "the members are 2, 3, 4")?;
    // Every member catches up with the leader's commit index.
    for n in [2, 3, 4] {
        let caught_up = wait_until(T, || {
            admin
                .query_status(n, GROUP, T)
                .wait()
                .is_ok_and(|m| m.last_applied >= commit)
        });
        ensure(caught_up, &format!("node {n} applied the change"))?;
    }
    println!("nodes 2, 3 and 4 applied the change");
    Ok(())
}
