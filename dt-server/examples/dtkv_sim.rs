//! The deterministic whole-cluster simulation with the DtKV state machine
//! (`dt_server::sim`): seed after seed, dt-raft's simulated cluster (real fiber
//! driver, seeded network, disk, crash and clock faults, snapshots and installs) runs
//! DtKV's real state machine binding, a put / get / cas / remove workload checked for
//! linearizability, temporary nodes expiring through the log, and lock clients; the
//! DtKV invariants (state digests equal across replicas at every index, lock
//! hand-overs and fencing tokens, TTL expiry on a stable leader) are checked as the
//! run goes.
//!
//! ```text
//! cargo run --release -p dt-server --example dtkv_sim -- --seeds N [--start S] [--nodes 3|5]
//!     [--faults net,disk,crash,clock,all] [--seconds 20] [--bug NAME] [--list-bugs] [--verbose]
//! ```
//!
//! One line per failing seed with the command that replays it, then
//! `RESULT seeds=<n> violations=<v> ops=<total client ops> virtual_s=<simulated seconds> wall_s=<x>`.
//! Deliberate DtKV bugs (`--bug`, see `--list-bugs`) need `--features sim-bugs`.

use std::time::{Duration, Instant};

use clap::Parser;
use dt_raft::sim::bugs::sim_flags;
use dt_raft::sim::cluster::SimConfig;
use dt_server::sim::{run_dtkv_seed, DtKvBug};

#[derive(Parser, Debug)]
#[command(about = "Deterministic whole-cluster simulation of DtKV")]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Voting nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
    /// Faults: net,disk,crash,clock,all,none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Virtual seconds of workload per seed.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Also save snapshots every this many bytes of log (`saveSnapshotLogBytes`; by
    /// default runs never reach the 4 GiB default).
    #[arg(long, value_name = "BYTES")]
    snapshot_log_bytes: Option<u64>,
    /// A deliberate DtKV bug to switch on (needs --features sim-bugs).
    #[arg(long)]
    bug: Option<String>,
    /// List the deliberate bugs.
    #[arg(long)]
    list_bugs: bool,
    /// Print every seed's report.
    #[arg(long)]
    verbose: bool,
}

fn one_line(s: &str) -> String {
    s.lines().collect::<Vec<_>>().join(" / ")
}

fn main() {
    let args = Args::parse();
    let (faults, bug) =
        match sim_flags::<DtKvBug>(args.list_bugs, &args.faults, args.bug.as_deref()) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
    let cfg = SimConfig {
        nodes: args.nodes,
        faults,
        duration: Duration::from_secs(args.seconds),
        snapshot_log_bytes: args.snapshot_log_bytes,
        ..SimConfig::default()
    };
    let started = Instant::now();
    let (mut violations, mut ops, mut virt, mut unknown) = (0u64, 0u64, 0f64, 0u64);
    let mut app_totals: Vec<(&'static str, u64)> = Vec::new();
    for seed in args.start..args.start + args.seeds {
        let r = run_dtkv_seed(&cfg, seed, bug);
        ops += r.ops;
        virt += r.virtual_time.as_secs_f64();
        unknown += u64::from(r.check_unknown);
        if r.check_unknown {
            println!("note: seed {seed}: the checker ran out of steps on a key");
        }
        for &(k, v) in &r.app_stats {
            match app_totals.iter_mut().find(|(n, _)| *n == k) {
                Some(t) => t.1 += v,
                None => app_totals.push((k, v)),
            }
        }
        if args.verbose {
            println!("{r} {:?}", r.app_stats);
        }
        if !r.violations.is_empty() {
            violations += 1;
            println!(
                "FAIL seed={seed}: {} | replay: cargo run --release -p dt-server{} --example dtkv_sim -- --seeds 1 --start {seed} --nodes {} --faults {} --seconds {}{}",
                one_line(&r.violations[0]),
                if cfg!(feature = "sim-bugs") { " --features sim-bugs" } else { "" },
                args.nodes,
                args.faults,
                args.seconds,
                bug.map_or(String::new(), |b| format!(" --bug {}", b.name()))
            );
            for v in r.violations.iter().skip(1).take(3) {
                println!("    also: {}", one_line(v));
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let totals: Vec<String> = app_totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("DTKV {}", totals.join(" "));
    if unknown > 0 {
        println!("UNKNOWN seeds={unknown} (the checker gave up on a key)");
    }
    println!(
        "RESULT seeds={} violations={violations} ops={ops} virtual_s={virt:.0} wall_s={wall:.1}",
        args.seeds
    );
    if violations > 0 {
        std::process::exit(1);
    }
}
