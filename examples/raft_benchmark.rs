//! The reference's `RaftBenchmark` in Rust, for a side-by-side comparison: three DtKV
//! nodes in one process on loopback (fsync on, the servers' default threads), one
//! `KvClient` putting 256-byte values to 100 000 keys asynchronously with 2 000
//! requests in flight, through the service port like any client. A put's latency runs
//! from the moment a permit is free to its answer (committed on a quorum, applied).
//!
//! ```text
//! cargo run --release --example raft_benchmark -- [--nodes 3] [--seconds 5] [--warmup 1]
//!     [--keys 100000] [--value-size 256] [--max-pending 2000]
//!     [--dir DIR] [--replicate-base 4000 --service-base 5000]
//! ```
//!
//! It prints dt-bench's per-second lines and final figures, ending with
//! `RESULT tps=<x> p50_us=<a> p99_us=<b> p999_us=<c> max_us=<d>`. The reference's
//! program differs in what it prints (success count, average and maximum latency over
//! 5 s after 100 ms of warm-up); compare operations per second. Unlike dt-raft's
//! `raft_bench` (writes submitted in process to a trivial state machine), this one
//! measures what the reference's measures: the client, the network hop, the Raft
//! group and DtKV together.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_examples::common::{main_with, ClusterArgs, DemoResult, KvCluster};
use dt_raft::server::RaftServerConfig;
use dt_server::bench_cli::{self, BenchArgs, ParseOutcome};
use dt_server::kv_server::KvGroupConfig;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "raft_benchmark",
    about = "The reference's RaftBenchmark: DtKV nodes and an async client in one process"
)]
pub struct Args {
    /// Nodes, all members of group 0 (1 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub nodes: u32,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub seconds: u32,
    /// Seconds of warm-up (not measured).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=600))]
    pub warmup: u32,
    /// Distinct keys the puts spread over.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub keys: u32,
    /// Bytes of each value.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub value_size: u32,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_pending: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const GROUP: i32 = 0;

fn main() -> ExitCode {
    main_with("raft_benchmark", run)
}

/// The servers' defaults, with the reference benchmark's timeouts (elections after
/// 3 s, heartbeats every second).
fn bench_server_config(servers: &str, id: i32, replicate: u16, service: u16) -> RaftServerConfig {
    RaftServerConfig {
        servers: servers.to_string(),
        node_id: id,
        replicate_port: replicate,
        service_port: service,
        bind_host: "127.0.0.1".parse().expect("a literal address"),
        elect_timeout: Duration::from_millis(3000),
        heartbeat_interval: Duration::from_millis(1000),
        ..Default::default()
    }
}

/// Starts the nodes, runs dt-bench's async put driver against them, stops everything.
pub fn run(args: &Args) -> DemoResult {
    let t = Instant::now();
    let ids: Vec<i32> = (1..=args.nodes as i32).collect();
    let members: Vec<u32> = (1..=args.nodes).collect();
    // the group's defaults: syncForce on, a snapshot an hour (none during a run)
    let group = KvGroupConfig::new(GROUP, members);
    let cluster = KvCluster::start_with(&args.cluster, &ids, vec![group], bench_server_config)?;
    println!(
        "{} nodes ready in {} ms, data in {}",
        args.nodes,
        t.elapsed().as_millis(),
        cluster.dir().display()
    );
    let props = cluster.dir().join("client.properties");
    std::fs::write(&props, format!("servers = {}\n", cluster.service_servers()))?;
    let argv = [
        "raft_benchmark".to_string(),
        "-s".into(),
        props.display().to_string(),
        "-g".into(),
        GROUP.to_string(),
        "--async".into(),
        "--op".into(),
        "put".into(),
        "--value-size".into(),
        args.value_size.to_string(),
        "--key-count".into(),
        args.keys.to_string(),
        "--max-pending".into(),
        args.max_pending.to_string(),
        "--duration".into(),
        args.seconds.to_string(),
        "--warmup".into(),
        args.warmup.to_string(),
        "--no-preload".into(),
    ];
    let bench = match BenchArgs::parse_from_args(argv) {
        ParseOutcome::Run(a) => a,
        ParseOutcome::Info(text) | ParseOutcome::Usage(text) => {
            return Err(format!("benchmark flags refused: {}", text.trim_end()).into())
        }
    };
    let mut out = std::io::stdout();
    let outcome = bench_cli::run(&bench, &mut out)?;
    bench_cli::finish(&bench, &outcome, &mut out)?;
    out.flush()?;
    let failed = outcome.summary.totals.fail;
    cluster.stop();
    if failed > 0 {
        return Err(format!("{failed} puts failed").into());
    }
    Ok(())
}
