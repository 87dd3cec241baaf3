//! Leader transfer: three DtKV nodes in one process run group 0; while a client puts
//! every 10 ms, the admin client moves the leadership from node to node
//! (RAFT_ADMIN_TRANSFER_LEADER, sent to the current leader). The writer prints each
//! leader change it sees: its client follows the new leader through the servers'
//! NOT_RAFT_LEADER redirects (a put that fails while no leader is known is retried). The reference's `ChangeLeader` with its
//! `PeriodPutClient`.
//!
//! ```text
//! cargo run --example transfer_leader -- [--transfers 3] [--dir DIR]
//!     [--replicate-base 4000 --service-base 5000]
//! ```
//!
//! Ends by itself; any failure is printed as `transfer_leader: <cause>` with exit
//! status 1.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dt_examples::common::{ensure, group, main_with, ClusterArgs, DemoResult, KvCluster, Writer};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "transfer_leader",
    about = "Move the leadership while a client writes"
)]
pub struct Args {
    /// Leader transfers to make.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub transfers: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const GROUP: i32 = 0;
const NODES: [i32; 3] = [1, 2, 3];

fn main() -> ExitCode {
    main_with("transfer_leader", run)
}

/// Starts the nodes, transfers the leadership `--transfers` times under a writer.
pub fn run(args: &Args) -> DemoResult {
    let t = Duration::from_secs(10);
    let cluster = KvCluster::start(&args.cluster, &NODES, vec![group(GROUP, &[1, 2, 3])])?;
    let admin = cluster.admin()?;
    admin.raft().add_or_update_group(GROUP, &NODES)?;

    // The writer puts every 10 ms and prints each leader change its client sees.
    let writer = Writer::start(&cluster.service_servers(), &[(GROUP, &NODES)])?;
    let kv = cluster.client(&[(GROUP, &NODES)])?;

    let transfers = (|| -> DemoResult<i32> {
        let mut leader = cluster.leader_of(GROUP).ok_or("no leader")?;
        for _ in 0..args.transfers {
            std::thread::sleep(Duration::from_millis(300));
            let to = leader % 3 + 1;
            println!(
                "transferring the leadership of group {GROUP} from node {leader} to node {to}"
            );
            admin.transfer_leader(GROUP, leader, to, t).wait()?;
            let s = admin.query_status(to, GROUP, t).wait()?;
            println!(
                "node {to} now reports leader {} in term {} (a transfer keeps the term)",
                s.leader_id, s.term
            );
            ensure(s.leader_id == to, "the leadership moved")?;
            leader = to;
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(leader)
    })();
    let stats = writer.finish()?;
    let leader = transfers?;
    ensure(
        stats.ok > 0 && stats.failed == 0,
        "every put was acknowledged",
    )?;
    kv.put(GROUP, "after", "transfers")?;
    ensure(
        kv.raft().leader(GROUP) == Some(leader),
        "the client follows the last leader",
    )?;
    ensure(cluster.leader_of(GROUP) == Some(leader), "the nodes agree")?;
    admin.stop(Duration::from_secs(1));
    kv.stop(Duration::from_secs(1));
    cluster.stop();
    Ok(())
}
