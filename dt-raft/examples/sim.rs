//! The deterministic whole-cluster simulation (issue 11), seed after seed.
//!
//! ```text
//! cargo run --release -p dt-raft --example sim -- --seeds N [--start S] [--nodes 3|5]
//!     [--faults net,disk,crash,clock,all] [--history-out DIR] [--bug NAME] [--list-bugs]
//!     [--seconds T] [--verbose] [--no-stickiness] [--no-align-heartbeats] [--membership]
//! ```
//!
//! `--membership` adds a spare node (empty, in no set at first) and membership changes
//! under the faults (members moved to observers and back, added, removed, changes
//! aborted); the run then also prints
//! `MEMBERSHIP prepares=<n> commits=<n> aborts=<n>` (changes the leaders answered).
//!
//! Each seed runs a cluster (every node the real fiber driver's `RaftGroup`, saving
//! snapshots, deleting its log and installing snapshots from the leader) for
//! `--seconds` (default 20) of virtual time with the chosen faults and a client
//! workload, checks the invariants as it goes and the client history for
//! linearizability at the end (`dt_raft::sim::cluster`). A failing seed prints one line
//! with the command that replays it; the run ends with
//! `SNAPSHOTS saved=<n> installs=<n> install_streams=<n> log_deletions=<n> crashes_in_snapshot=<n> saves_lost=<n> seeds_with_install=<n> seeds_stuck_installing=<n> seeds_stalled=<n>`
//! (stuck_installing: seeds that ended without a leader because half the members or
//! more waited for an install with their log dropped, which makes them refuse votes;
//! stalled: seeds that ended without a ready leader after the heal for any reason,
//! those included; a stalled seed not stuck installing prints `STALL seed=<s>: <the
//! nodes' states>`),
//! `READS published_lease=<n>` (gets answered at once from the lease the node's group
//! published, the DtKV IO thread's fast path),
//! `MEMORY rss_kb_start=<kB> rss_kb_end=<kB>` (this process's resident set before the
//! first seed and after the last, from `/proc/self/status`; 0 where unavailable) and
//! `RESULT seeds=<n> violations=<v> ops=<total client ops> virtual_s=<simulated seconds> wall_s=<x>`.
//! `--history-out DIR` writes `DIR/seed-<s>.jsonl` per seed (format in
//! `dt_raft::sim::jsonl`). `--bug NAME` switches a deliberate bug on (the core's need
//! `--features sim-bugs`); `--list-bugs` prints their names.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_raft::sim::bugs::{sim_flags, Bug};
use dt_raft::sim::cluster::{run_seed, SimConfig};

#[derive(Parser, Debug)]
#[command(about = "deterministic whole-cluster simulation of dt's Raft")]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Nodes per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
    /// Faults: comma separated net, disk, crash, clock, all (or none).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Write each seed's client history as JSON lines into this directory.
    #[arg(long)]
    history_out: Option<PathBuf>,
    /// Switch on a deliberate bug (see --list-bugs).
    #[arg(long)]
    bug: Option<String>,
    /// Print the deliberate bugs' names and exit.
    #[arg(long)]
    list_bugs: bool,
    /// Virtual seconds of workload and faults per seed.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Also save snapshots every this many bytes of log (`saveSnapshotLogBytes`; by
    /// default runs never reach the 4 GiB default).
    #[arg(long, value_name = "BYTES")]
    snapshot_log_bytes: Option<u64>,
    /// Run the core without leader stickiness, as the reference does (lease reads are
    /// then not linearizable under partitions).
    #[arg(long)]
    no_stickiness: bool,
    /// Do not align idle leaders' heartbeats to a grid (the reference's timing).
    #[arg(long)]
    no_align_heartbeats: bool,
    /// Membership changes under the faults, with one spare node.
    #[arg(long)]
    membership: bool,
    /// Print one line per seed.
    #[arg(long)]
    verbose: bool,
}

/// This process's resident set in kB (0 where `/proc` is unavailable).
fn rss_kb() -> u64 {
    support::resident_kib().map_or(0, |(rss, _)| rss)
}

fn main() {
    // RUST_LOG=info shows the driver's log lines (installs, saves) when replaying a seed
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).init();
    let args = Args::parse();
    let (faults, bug) = match sim_flags::<Bug>(args.list_bugs, &args.faults, args.bug.as_deref()) {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(dir) = &args.history_out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("--history-out {}: {e}", dir.display());
            std::process::exit(2);
        }
    }
    let cfg = SimConfig {
        nodes: args.nodes,
        faults,
        duration: Duration::from_secs(args.seconds),
        bug,
        leader_stickiness: !args.no_stickiness,
        align_heartbeats: !args.no_align_heartbeats,
        membership: args.membership,
        snapshot_log_bytes: args.snapshot_log_bytes,
        ..SimConfig::default()
    };
    let rss_start = rss_kb();
    let mut snaps = dt_raft::sim::cluster::RunStats::default();
    let mut seeds_with_install = 0u64;
    let started = Instant::now();
    let (mut violations, mut ops, mut virt, mut unknown) = (0u64, 0u64, 0f64, 0u64);
    for seed in args.start..args.start + args.seeds {
        let r = run_seed(&cfg, seed);
        ops += r.ops;
        virt += r.virtual_time.as_secs_f64();
        unknown += u64::from(r.check_unknown);
        if r.check_unknown {
            println!("note: seed {seed}: the checker ran out of steps on a key");
        }
        let st = r.stats;
        snaps.snapshots += st.snapshots;
        snaps.installs += st.installs;
        snaps.install_requests += st.install_requests;
        snaps.log_deletions += st.log_deletions;
        snaps.crashes_in_snapshot += st.crashes_in_snapshot;
        snaps.snapshot_saves_lost += st.snapshot_saves_lost;
        seeds_with_install += u64::from(st.installs > 0);
        snaps.stuck_installing += st.stuck_installing;
        snaps.stalled += st.stalled;
        if let (Some(why), true) = (&r.stall, args.verbose || st.stuck_installing == 0) {
            println!("STALL seed={seed}: {why}");
        }
        snaps.published_lease_reads += st.published_lease_reads;
        snaps.config_prepares += st.config_prepares;
        snaps.config_commits += st.config_commits;
        snaps.config_aborts += st.config_aborts;
        if let Some(dir) = &args.history_out {
            let path = dir.join(format!("seed-{seed}.jsonl"));
            let res = std::fs::File::create(&path).and_then(|f| {
                dt_raft::sim::jsonl::write_history(std::io::BufWriter::new(f), &r.history)
            });
            if let Err(e) = res {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        }
        if args.verbose {
            println!("{r}");
        }
        if !r.violations.is_empty() {
            violations += 1;
            let mut bug = bug.map_or(String::new(), |b| format!(" --bug {}", b.name()));
            if args.no_stickiness {
                bug.push_str(" --no-stickiness");
            }
            if args.no_align_heartbeats {
                bug.push_str(" --no-align-heartbeats");
            }
            if args.membership {
                bug.push_str(" --membership");
            }
            println!(
                "FAIL seed={seed}: {} | replay: cargo run --release -p dt-raft{} --example sim -- --seeds 1 --start {seed} --nodes {} --faults {} --seconds {}{bug}",
                one_line(&r.violations[0]),
                if cfg!(feature = "sim-bugs") { " --features sim-bugs" } else { "" },
                args.nodes, args.faults, args.seconds
            );
            for v in r.violations.iter().skip(1).take(3) {
                println!("    also: {}", one_line(v));
            }
        }
    }
    if unknown > 0 {
        println!("note: the checker ran out of steps on {unknown} seeds (counted as clean)");
    }
    println!(
        "SNAPSHOTS saved={} installs={} install_streams={} log_deletions={} crashes_in_snapshot={} saves_lost={} seeds_with_install={seeds_with_install} seeds_stuck_installing={} seeds_stalled={}",
        snaps.snapshots,
        snaps.installs,
        snaps.install_requests,
        snaps.log_deletions,
        snaps.crashes_in_snapshot,
        snaps.snapshot_saves_lost,
        snaps.stuck_installing,
        snaps.stalled
    );
    if args.membership {
        println!(
            "MEMBERSHIP prepares={} commits={} aborts={}",
            snaps.config_prepares, snaps.config_commits, snaps.config_aborts
        );
    }
    println!(
        "READS published_lease={} (gets answered from the lease the group published)",
        snaps.published_lease_reads
    );
    println!("MEMORY rss_kb_start={rss_start} rss_kb_end={}", rss_kb());
    println!(
        "RESULT seeds={} violations={violations} ops={ops} virtual_s={virt:.0} wall_s={:.1}",
        args.seeds,
        started.elapsed().as_secs_f64()
    );
}

/// A violation report on one line (the checker's report has several).
fn one_line(s: &str) -> String {
    s.split('\n').map(str::trim).collect::<Vec<_>>().join(" | ")
}
