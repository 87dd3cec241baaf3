//! Embeds a three-node DtKV cluster in one process (three `DtKvServer`s on loopback,
//! data in a temporary directory) and drives it with a `KvClient`: asynchronous puts
//! with many requests in flight, then lease reads of the same keys, with the
//! throughput of each. The reference's `EmbeddedDemo`.
//!
//! ```text
//! cargo run --release --example embedded_cluster -- [--count 100000] [--keys 10000]
//!     [--value-size 256] [--in-flight 1000] [--dir DIR] [--replicate-base 4000 --service-base 5000]
//! ```
//!
//! Ends by itself once every put and get has answered. A port in use or an
//! unreachable leader is printed as `embedded_cluster: <cause>` with exit status 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_examples::common::{
    group, main_with, put_and_get, ClusterArgs, DemoResult, KvCluster, LoadArgs,
};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "embedded_cluster",
    about = "Three DtKV nodes and a client in one process"
)]
pub struct Args {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const GROUP: i32 = 0;

fn main() -> ExitCode {
    main_with("embedded_cluster", run)
}

/// Starts the nodes, runs the puts and gets, stops everything.
pub fn run(args: &Args) -> DemoResult {
    let t = Instant::now();
    // Nodes 1, 2 and 3, each running group 0 with members 1, 2, 3.
    let cluster = KvCluster::start(&args.cluster, &[1, 2, 3], vec![group(GROUP, &[1, 2, 3])])?;
    println!(
        "3 nodes ready in {} ms (service ports {}), data in {}",
        t.elapsed().as_millis(),
        cluster.service_servers(),
        cluster.dir().display()
    );
    // The client knows the service ports and the group's members; it finds the leader.
    let kv = cluster.client(&[(GROUP, &[1, 2, 3])])?;
    println!(
        "leader of group {GROUP}: node {:?}",
        kv.raft().leader(GROUP)
    );
    put_and_get(&kv, GROUP, &args.load)?;
    kv.stop(Duration::from_secs(2));
    cluster.stop();
    Ok(())
}
