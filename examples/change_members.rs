//! Membership change by joint consensus while a client writes, the way an operator
//! grows and shrinks a cluster: three DtKV nodes in one process run group 0 (members
//! 1, 2, 3). A fourth node is then started with an empty data directory and no group;
//! the running nodes learn its address (admin ADD_NODE), the group is created on it
//! (ADD_GROUP) and it joins as an observer (prepare + commit: members 1, 2, 3,
//! observer 4), catching up from the leader (from the log, or by install snapshot if
//! the leader has deleted the start of its log). Once it has caught up it is promoted
//! (members 1, 2, 3, 4), and finally node 1 is removed (→ 2, 3, 4; leadership is
//! moved off node 1 first) and drops the group. The reference's `configchange` demo
//! (`ChangeTo234Client`, `ChangeTo123Client`) with a node added at run time.
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
use dt_client::raft::RaftNode;
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
const NEW: i32 = 4;
const T: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    main_with("change_members", run)
}

/// Starts three nodes, adds the fourth at run time, runs the changes under a writer,
/// checks the result.
pub fn run(args: &Args) -> DemoResult {
    let mut cluster = KvCluster::start(&args.cluster, &[1, 2, 3], vec![group(GROUP, &[1, 2, 3])])?;
    let admin = cluster.admin()?;
    admin.raft().add_or_update_group(GROUP, &[1, 2, 3])?;

    // A writer puts all along; every put must be acknowledged through every change.
    let writer = Writer::start(&cluster.service_servers(), &[(GROUP, &[1, 2, 3])])?;
    let steps = add_node(&mut cluster, &args.cluster, &admin, &writer)
        .and_then(|()| change(&cluster, &admin));
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

/// Starts node 4 empty, makes it known, creates the group on it and adds it as an
/// observer, and waits until it has caught up.
fn add_node(
    cluster: &mut KvCluster,
    args: &ClusterArgs,
    admin: &AdminRaftClient,
    writer: &Writer,
) -> DemoResult {
    show(cluster, admin, "start")?;
    std::thread::sleep(Duration::from_millis(300));

    // 1. Start node 4: empty data directory, no group.
    let port = cluster.start_node_at_run_time(args, NEW, vec![])?;
    println!("node {NEW} started with an empty data directory, replicate port {port}");
    // 2. ADD_NODE on the running nodes: they learn its address and ping it.
    for n in [1, 2, 3] {
        admin
            .server_add_node(n, NEW, "127.0.0.1", i32::from(port), T)
            .wait()?;
    }
    cluster.wait_node_ready(NEW)?;
    println!("nodes 1, 2, 3 know node {NEW}; it is ready");
    // The clients learn it too (admin commands go to its replicate port, the writer's
    // puts may follow the leadership there).
    let me = format!("{NEW},127.0.0.1:{port}");
    admin
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list(&me)?)?;
    let svc = cluster
        .service_port(NEW)
        .ok_or("node 4 has no service port")?;
    let me = format!("{NEW},127.0.0.1:{svc}");
    writer
        .client()
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list(&me)?)?;
    // 3. ADD_GROUP on node 4: group 0 with members 1, 2, 3, itself an observer.
    admin
        .server_add_group(NEW, GROUP, &[1, 2, 3], &[NEW], T)
        .wait()?;
    println!(
        "node {NEW} runs groups {:?}",
        admin.server_list_groups(NEW, T).wait()?
    );
    admin.raft().add_or_update_group(GROUP, &[1, 2, 3, NEW])?;
    writer
        .client()
        .raft()
        .add_or_update_group(GROUP, &[1, 2, 3, NEW])?;

    // 4. The group takes it as an observer: it receives the log but does not vote
    //    (the reference's advice for a new node), so it cannot slow the quorum down
    //    while it catches up.
    let prepare = admin
        .prepare_config_change(GROUP, &[1, 2, 3], &[], &[1, 2, 3], &[NEW], T)
        .wait()?;
    let commit = admin.commit_change(GROUP, prepare, T).wait()?;
    show(
        cluster,
        admin,
        &format!("observer {NEW} added at index {commit}"),
    )?;
    let leader = leader(cluster)?;
    let target = admin.query_status(leader, GROUP, T).wait()?.commit_index;
    let mut applied = 0;
    let caught_up = wait_until(Duration::from_secs(30), || {
        applied = admin
            .query_status(NEW, GROUP, T)
            .wait()
            .map_or(0, |s| s.last_applied);
        applied >= target
    });
    ensure(caught_up, &format!("node {NEW} caught up with the leader"))?;
    println!("node {NEW} caught up: applied {applied} (the leader had committed {target})");
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
    // 5. Promote observer 4: prepare the joint configuration (old and new member sets
    //    must both agree from now on), then commit the new one.
    let prepare = admin
        .prepare_config_change(GROUP, &[1, 2, 3], &[NEW], &[1, 2, 3, NEW], &[], T)
        .wait()?;
    show(cluster, admin, &format!("prepared at index {prepare}"))?;
    let commit = admin.commit_change(GROUP, prepare, T).wait()?;
    show(cluster, admin, &format!("committed at index {commit}"))?;
    std::thread::sleep(Duration::from_millis(300));

    // 6. Remove node 1. Move the leadership away first if node 1 has it.
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
    // 7. Node 1 is no longer in the group: it drops it (REMOVE_GROUP).
    admin.server_remove_group(1, GROUP, T).wait()?;
    let gone = wait_until(T, || {
        admin
            .server_list_groups(1, T)
            .wait()
            .is_ok_and(|g| !g.contains(&GROUP))
    });
    ensure(gone, "node 1 dropped the group")?;
    println!("node 1 no longer runs group {GROUP}");
    Ok(())
}
