//! Throughput and latency of the Raft driver alone: three nodes in one process, each
//! group on its own Dispatcher thread, connected by the in-memory `LocalNetwork` (no
//! sockets), the real `DefaultRaftLog` (fsync on by default) and a trivial counter
//! state machine. Writes of `--body-size` bytes are submitted asynchronously, at most
//! `--max-pending` at a time. One line per second, then
//! `RESULT ops_per_s=<x> p50_us=<a> p99_us=<b> max_us=<c>`.
//!
//! `cargo run --release -p dt-raft --example driver_bench -- --seconds 5`

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_fiber::{Dispatcher, DispatcherConfig};
use dt_raft::core::Role;
use dt_raft::driver::local::{CounterSm, LocalNetwork};
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{Executor, ThreadPoolIo};
use dt_raft::sm::{DefaultRaftFactory, RaftInput};
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Writes in flight at most.
    #[arg(long, default_value_t = 2000)]
    max_pending: usize,
    /// Body bytes per write.
    #[arg(long, default_value_t = 256)]
    body_size: usize,
    /// Acknowledge only fsynced entries.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sync_force: bool,
    /// Data directory (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Raft groups on the 3 nodes (each node runs all its groups on one dispatcher);
    /// writes go to group 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    groups: u32,
    /// Write nothing: measure the process's CPU use while the groups idle
    /// (heartbeats only) and print `RESULT idle_cpu_pct_of_one_core=<x>`.
    #[arg(long, default_value_t = false)]
    idle: bool,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("driver_bench: {msg}");
    std::process::exit(1)
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| fail(format!("temporary directory: {e}")));
    let base = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    if let Err(e) = std::fs::create_dir_all(&base) {
        fail(format!("{}: {e}", base.display()));
    }
    let io: Arc<dyn Executor> = ThreadPoolIo::new(4);
    let net = LocalNetwork::new();
    let mut dispatchers = Vec::new();
    for id in 1..=3u32 {
        let d = Dispatcher::start(DispatcherConfig::new(format!("node{id}")))
            .unwrap_or_else(|e| fail(format!("dispatcher: {e}")));
        dispatchers.push(d);
    }
    let factory = Arc::new(DefaultRaftFactory::new(
        io.clone(),
        |_: &RaftGroupConfig| Ok(CounterSm::new()),
    ));
    let mut groups: Vec<RaftGroup<i64>> = Vec::new();
    for gid in 1..=args.groups as i32 {
        for id in 1..=3u32 {
            let mut cfg = RaftGroupConfig::new(gid, id, vec![1, 2, 3]);
            cfg.data_dir = base.join(format!("node{id}")).join(format!("group{gid}"));
            cfg.sync_force = args.sync_force;
            cfg.elect_timeout_ms = 3000;
            cfg.heartbeat_interval_ms = 2000;
            cfg.log_file_size = if args.groups > 1 { 1 << 20 } else { 64 << 20 };
            cfg.idx_items_per_file = 1 << 16;
            let h = dispatchers[id as usize - 1]
                .start_group(&format!("group{gid}"))
                .unwrap_or_else(|e| fail(format!("fiber group: {e}")));
            let n = net.clone();
            let g: RaftGroup<i64> =
                RaftGroup::start(&h, factory.clone(), cfg, move || n.transport(id))
                    .unwrap_or_else(|e| fail(format!("raft group: {e}")));
            net.register(id, &g);
            groups.push(g);
        }
    }
    let start = Instant::now();
    loop {
        let with_leader = groups
            .chunks(3)
            .filter(|c| {
                c.iter()
                    .any(|g| g.status().role == Role::Leader && g.status().group_ready)
            })
            .count();
        if with_leader == args.groups as usize {
            break;
        }
        if let Some(why) = groups.iter().find_map(|g| g.status().init_failed.clone()) {
            fail(format!("group init failed: {why}"));
        }
        if start.elapsed() > Duration::from_secs(60) {
            fail(format!(
                "{with_leader} of {} groups elected a leader within 60 s",
                args.groups
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("{} groups elected in {:?}", args.groups, start.elapsed());
    if args.idle {
        let (c0, t0) = (support::process_cpu(), Instant::now());
        std::thread::sleep(Duration::from_secs(args.seconds));
        let (c1, t1) = (support::process_cpu(), Instant::now());
        match (c0, c1) {
            (Some(c0), Some(c1)) => println!(
                "RESULT idle_cpu_pct_of_one_core={:.2} groups={} nodes=3 seconds={:.1}",
                (c1 - c0).as_secs_f64() * 100.0 / (t1 - t0).as_secs_f64(),
                args.groups,
                (t1 - t0).as_secs_f64()
            ),
            _ => fail("cannot read /proc/self/stat"),
        }
        stop(&groups, dispatchers);
        return;
    }
    let leader = groups[..3]
        .iter()
        .find(|g| g.status().role == Role::Leader)
        .unwrap_or_else(|| fail("group 1 lost its leader"))
        .clone();
    println!("leader: node {}", leader.node_id());

    let body = bytes::Bytes::from(vec![b'0'; args.body_size.max(1)]);
    let (tx, rx) = mpsc::channel::<Result<Duration, String>>();
    let mut hist = Histogram::<u64>::new(3).expect("3 significant digits are valid");
    let mut pending = 0usize;
    let (mut done, mut errors) = (0u64, 0u64);
    let begin = Instant::now();
    let end = begin + Duration::from_secs(args.seconds);
    let mut next_report = begin + Duration::from_secs(1);
    let mut last_done = 0;
    while Instant::now() < end {
        while pending < args.max_pending {
            let tx = tx.clone();
            let t0 = Instant::now();
            leader.submit(RaftInput::new(0, body.clone()), move |r| {
                let _ = tx.send(r.map(|_| t0.elapsed()).map_err(|e| e.to_string()));
            });
            pending += 1;
        }
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(100)) {
            let mut handle = |r: Result<Duration, String>| {
                pending -= 1;
                match r {
                    Ok(d) => {
                        done += 1;
                        let _ = hist.record(d.as_micros() as u64);
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("write failed: {e}");
                        }
                        errors += 1;
                    }
                }
            };
            handle(r);
            while let Ok(r) = rx.try_recv() {
                handle(r);
            }
        }
        if Instant::now() >= next_report {
            println!(
                "{:>3}s ops={} p99_us={}",
                (next_report - begin).as_secs(),
                done - last_done,
                hist.value_at_quantile(0.99)
            );
            last_done = done;
            next_report += Duration::from_secs(1);
        }
    }
    let secs = begin.elapsed().as_secs_f64();
    println!(
        "RESULT ops_per_s={:.0} p50_us={} p99_us={} max_us={} errors={errors}",
        done as f64 / secs,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    stop(&groups, dispatchers);
}

fn stop(groups: &[RaftGroup<i64>], dispatchers: Vec<Dispatcher>) {
    for g in groups {
        g.shutdown();
    }
    for g in groups {
        g.wait_stopped(Duration::from_secs(10));
    }
    for d in dispatchers {
        d.stop(Duration::from_secs(10));
    }
}
