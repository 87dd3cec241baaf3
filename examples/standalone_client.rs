//! A client of a running DtKV cluster, by default the `standalone_server` example's
//! node (service port 5001, group 0): asynchronous puts, then gets of the same keys,
//! with the throughput of each. The reference's `StandaloneDemoClient`.
//!
//! ```text
//! cargo run --example standalone_server                 # first, in another terminal
//! cargo run --release --example standalone_client -- [--servers "1,127.0.0.1:5001"] [--group 0]
//!     [--count 100000] [--keys 10000] [--value-size 256] [--in-flight 1000]
//! ```
//!
//! Ends by itself; without a server it prints `standalone_client: no leader for group 0
//! ...` after 5 s of retries and exits with status 1.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dt_client::raft::RaftNode;
use dt_examples::common::{connect_client, main_with, put_and_get, DemoResult, LoadArgs};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "standalone_client",
    about = "Puts and gets against a running DtKV cluster"
)]
pub struct Args {
    /// Service addresses of the cluster, `id,host:port;...`; the group's members are
    /// these nodes.
    #[arg(long, default_value = "1,127.0.0.1:5001")]
    pub servers: String,
    /// The DtKV group.
    #[arg(long, default_value_t = 0)]
    pub group: i32,
    #[command(flatten)]
    pub load: LoadArgs,
}

fn main() -> ExitCode {
    main_with("standalone_client", run)
}

/// Connects, runs the load, disconnects.
pub fn run(args: &Args) -> DemoResult {
    let members: Vec<i32> = RaftNode::parse_list(&args.servers)
        .map_err(|e| format!("bad --servers: {e}"))?
        .iter()
        .map(|n| n.node_id)
        .collect();
    let kv = connect_client(&args.servers, &[(args.group, &members)])?;
    println!(
        "connected to {}, leader of group {}: node {:?}",
        args.servers,
        args.group,
        kv.raft().leader(args.group)
    );
    let r = put_and_get(&kv, args.group, &args.load);
    kv.stop(Duration::from_secs(2));
    r.map(|_| ())
}
