//! Raft write throughput and latency: N RaftServers in one process over loopback, a
//! trivial state machine, asynchronous writes (like the reference's RaftBenchmark).
//!
//! ```text
//! cargo run --release -p dt-raft --example raft_bench -- [--nodes 3] [--groups 1]
//!     [--seconds 10] [--max-pending 2000] [--body-size 256] [--sync-force true|false]
//!     [--dir D] [--dispatchers N] [--idle-seconds N] [--block-io-threads N]
//!     [--prefill-kib K] [--batch-fsync true|false] [--coalesce-appends-below N] [--perf]
//!     [--drop-page-cache true|false]
//! ```
//!
//! Every group has all nodes as members, its log in `<dir>/n<node>/g<group>` (fsync
//! on). Writes of `--body-size` bytes go to the groups' leaders round-robin with at most
//! `--max-pending` in flight; a write's latency is from submit to the leader's completion
//! (committed on a quorum and executed), reported to one shared handler
//! (`RaftGroup::submit_to`, no boxed callback per write). One line per second:
//! `sec=<s> ops=<n> p50_us=<a> p99_us=<b> max_us=<c>`, then
//! `RESULT ops_per_s=<x> p50_us=<a> p99_us=<b> max_us=<c>` over the whole run.
//!
//! Then `ALLOCS allocations=<n> per_entry=<x>`: heap allocations (alloc + realloc
//! calls of the whole process: every node's leader or follower path and the submitting
//! thread, counted by a counting global allocator as in dt-net's `rpc_bench`) during the
//! measured seconds, per committed entry. With `--nodes 1` that is the leader's own path
//! (submit → log write → commit → apply → callback); with more nodes each follower's
//! receive path and the leader's replication add to it.
//! Then `LEADERSHIP groups=<n> changed=<c>`: how many of the groups' leaders found at
//! the start lost leadership or moved to a new term by the end (elections under load;
//! 0 in a healthy run).
//! Then `FSYNC requests=<n> rounds=<r> syncfs=<s> fdatasync=<f>`: the appends' fsync
//! requests of all servers since start, the group-commit rounds that served them, and
//! the `syncfs` and `fdatasync` calls those made (`--batch-fsync false`: all zero, each
//! append fsyncs its own files).
//! On Linux, `CPU process_user_pct=<u> process_sys_pct=<s> machine_busy_pct=<b>
//! machine_kernel_pct=<k>` over the measured seconds: the process's user and system CPU
//! (percent of one core), and how busy the whole machine was and how much of it in the
//! kernel (percent of all cores; `/proc/stat`). The kernel work the logs cause outside
//! the process, the page cache's writeback workers for one, shows only in the machine's
//! figures.
//! With `--perf`, `PERF node=<n> <stage> events=<e> items=<i> avg_us=<a> max_us=<m>`
//! per node and stage over the measured seconds (`RaftGroupConfig::perf`): the wait
//! of a submitted write for the group's request fiber, the log's write syscalls and
//! fsyncs (per write job; items = entries), the leader's append RPCs (items =
//! entries) and the state machine's executions.
//! Last, on Linux, `MEMORY rss_mib=<x> peak_rss_mib=<y>`: the process's resident set at
//! the end of the run and its peak (all nodes' groups, caches and network buffers).
//!
//! `--idle-seconds N` first measures the CPU the idle cluster uses (heartbeats, pings)
//! over N seconds: `IDLE groups=<g> cpu_pct_of_one_core=<x>` (user + system time of the
//! whole process, so the kernel's fsync work counts; a window of 60 s or more includes
//! each log's first index flush, which creates its index file: an idle log flushes its
//! index 60 s after it opened, `IDX_IDLE_FLUSH_INTERVAL`).
//!
//! A bad flag exits with status 2 (clap's message); a failure to build or run the
//! cluster prints `raft_bench: <cause>` on stderr and exits with status 1.

#[path = "support/mod.rs"]
pub mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dt_common::{PerfHook, PerfStats, PerfType};
use dt_raft::core::Role;
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer, RaftServerConfig};
use dt_raft::sm::{
    store_config, Exec, ExecEntry, RaftError, RaftFactory, RaftHandler, RaftInput, RaftResult,
    StateMachine,
};
use dt_raft::store::fsync_batcher::FsyncStats;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "raft_bench",
    about = "Raft write throughput and latency of N servers in one process over loopback"
)]
pub struct Args {
    /// Servers (all members of every group), 1 to 9.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
    /// Raft groups, 1 to 1000.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    groups: u32,
    /// Seconds to measure, 1 to 3600.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Writes in flight at most, 1 to 1 000 000.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_pending: u64,
    /// Bytes per write, 1 to 1 MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    body_size: u64,
    /// syncForce: acknowledge only fsynced entries.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sync_force: bool,
    /// Data directory (created; default: a fresh directory under the system temp dir,
    /// removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Dispatcher threads per server shared by its groups; 0 = one per group (default:
    /// one per group up to the number of cores).
    #[arg(long)]
    dispatchers: Option<usize>,
    /// Before writing, measure the idle cluster's CPU use for this many seconds and print
    /// `IDLE groups=<g> cpu_pct_of_one_core=<x>` (0 = skip).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    idle_seconds: u64,
    /// Blocking-IO threads per server (file writes and fsyncs of all its groups;
    /// default: the reference's `blockIoThreads` = max(2 × cores, 4), raised to
    /// min(groups, 16) with many groups: each group's log is its own files, so its
    /// fsyncs cannot share another group's; they run in parallel instead, and the disk
    /// sustains many concurrent fsyncs (measured here: ~1 000/s on one thread, ~20 000/s
    /// on 12), while the threads mostly wait).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    block_io_threads: Option<u64>,
    /// Zero-fill each log's current segment this many KiB ahead of its appends
    /// (`StoreConfig::prefill_bytes`; 0, the default, leaves it off), so an append's
    /// fsync does not also write the blocks' allocation.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    prefill_kib: u64,
    /// Group commit of fsyncs across groups (`RaftServerConfig::batch_fsync`): one
    /// `syncfs` for the appends of many groups waiting at once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    batch_fsync: bool,
    /// Entries behind an append in flight that wait for its response
    /// (`RaftGroupConfig::coalesce_appends_below`; default: the group default, 32;
    /// 0 sends each proposal at once, like the reference).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    coalesce_appends_below: Option<u64>,
    /// Time the stages of a write on every node (`RaftGroupConfig::perf`) and print
    /// `PERF node=<n> <stage> events=<e> items=<i> avg_us=<a> max_us=<m>` lines for
    /// the measured seconds (costs a few clock reads per entry).
    #[arg(long)]
    perf: bool,
    /// Drop the logs' pages from the page cache once fsynced
    /// (`RaftGroupConfig::drop_synced_pages`, default true; false keeps them cached,
    /// as the reference).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    drop_page_cache: bool,
}

/// The stages `--perf` times.
const PERF_STAGES: [PerfType; 5] = [
    PerfType::RaftLeaderRunnerFiberLatency,
    PerfType::RaftLogWrite1,
    PerfType::RaftLogSync,
    PerfType::RaftReplicateRpc,
    PerfType::RaftStateMachineExec,
];

#[path = "../../dt-net/examples/support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Does nothing but count.
struct NoopSm;

impl StateMachine for NoopSm {
    type Output = ();
    fn exec(&mut self, _e: &ExecEntry<'_>) -> Exec<()> {
        Exec::Done(Ok(()))
    }
}

struct BenchFactory {
    base: PathBuf,
    io: Arc<ThreadPoolIo>,
    prefill_bytes: u64,
}

impl RaftFactory for BenchFactory {
    type Sm = NoopSm;
    fn create_state_machine(&self, _cfg: &RaftGroupConfig) -> Result<NoopSm, RaftError> {
        Ok(NoopSm)
    }
    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError> {
        let mut sc = store_config(cfg);
        sc.prefill_bytes = self.prefill_bytes;
        Ok(Box::new(DefaultRaftLog::new(
            &cfg.data_dir,
            sc,
            self.io.clone(),
        )))
    }
}

/// Latencies of the whole run and of the current second.
struct Stats {
    total: Histogram<u64>,
    second: Histogram<u64>,
}

/// Writes in flight, and whether the submitting thread sleeps waiting for room.
pub struct Pending {
    n: Mutex<InFlight>,
    cond: Condvar,
}

struct InFlight {
    n: u64,
    /// The submitter waits on `cond`; the first completion to see this clears it and
    /// wakes it. The other completions of the same burst (a commit completes many
    /// writes in one go) skip the wake-up, which is a futex system call on the
    /// dispatcher thread that completes them: the harness would otherwise add one per
    /// write to the engine's cost.
    waiting: bool,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            n: Mutex::new(InFlight {
                n: 0,
                waiting: false,
            }),
            cond: Condvar::new(),
        }
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.n.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one of `max` places, waiting for a completion while all are taken; gives
    /// up (false) at `until`.
    pub fn acquire(&self, max: u64, until: Instant) -> bool {
        let mut f = self.lock();
        while f.n >= max {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            f.waiting = true;
            f = self
                .cond
                .wait_timeout(f, (until - now).min(Duration::from_millis(10)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            f.waiting = false;
        }
        f.n += 1;
        true
    }

    /// Gives a place back (a write completed), waking the submitter if it waits.
    pub fn release(&self) {
        let mut f = self.lock();
        f.n -= 1;
        if std::mem::take(&mut f.waiting) {
            drop(f);
            self.cond.notify_one();
        }
    }

    /// Places taken.
    pub fn in_flight(&self) -> u64 {
        self.lock().n
    }
}

/// Completes every write (one handler for all, `RaftGroup::submit_to`, so a write
/// costs no boxed callback): the token is the write's submit time in nanoseconds
/// after `start`.
struct Done {
    start: Instant,
    stats: Arc<Mutex<Stats>>,
    errors: Arc<AtomicU64>,
    pending: Arc<Pending>,
}

impl RaftHandler<()> for Done {
    fn done(&self, token: u64, r: RaftResult<()>) {
        match r {
            Ok(_) => {
                let now = self.start.elapsed().as_nanos() as u64;
                let us = (now.saturating_sub(token) / 1000).max(1);
                let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                let _ = s.total.record(us);
                let _ = s.second.record(us);
            }
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pending.release();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft_bench: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let (dir, _tmp) = support::work_dir(args.dir.as_deref(), "raft_bench")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dispatchers = args
        .dispatchers
        .unwrap_or(if args.groups as usize <= cores {
            0
        } else {
            cores
        });
    let ports = dt_common::ports::free_loopback_ports(args.nodes as usize)
        .map_err(|e| format!("cannot find free loopback ports: {e}"))?;
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
        .collect();
    let mut nodes = Vec::new();
    // one per node with --perf, none without
    let perf: Vec<Arc<PerfStats>> = (0..args.nodes)
        .filter(|_| args.perf)
        .map(|_| Arc::new(PerfStats::new(&PERF_STAGES)))
        .collect();
    for id in 1..=args.nodes as i32 {
        let server = RaftServer::new(RaftServerConfig {
            servers: servers.clone(),
            node_id: id,
            replicate_port: ports[id as usize - 1],
            bind_host: "127.0.0.1".parse().expect("an address"),
            elect_timeout: Duration::from_millis(3000),
            heartbeat_interval: Duration::from_millis(1000),
            ping_interval: Duration::from_millis(500),
            raft_ping_interval: Duration::from_millis(200),
            batch_fsync: args.batch_fsync,
            block_io_threads: args.block_io_threads.map_or(
                (cores * 2).max(4).max((args.groups as usize).min(16)),
                |n| n as usize,
            ),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        let factory = Arc::new(BenchFactory {
            base: dir.join(format!("n{id}")),
            io: server.block_io(),
            prefill_bytes: args.prefill_kib << 10,
        });
        let cfgs = (1..=args.groups as i32)
            .map(|g| {
                let mut c = RaftGroupConfig::new(g, 0, (1..=args.nodes).collect());
                c.data_dir = factory.base.join(format!("g{g}"));
                c.sync_force = args.sync_force;
                c.drop_synced_pages = args.drop_page_cache;
                if let Some(n) = args.coalesce_appends_below {
                    c.coalesce_appends_below = n;
                }
                c.log_file_size = 64 << 20;
                c.idx_items_per_file = 1 << 16;
                if let Some(p) = perf.get(id as usize - 1) {
                    c.perf = PerfHook::new(p.clone());
                }
                c
            })
            .collect();
        let groups = RaftGroups::install(&server, factory, cfgs, GroupsOptions { dispatchers })
            .map_err(|e| e.to_string())?;
        nodes.push((server, groups));
    }
    for (s, _) in &nodes {
        s.start().map_err(|e| e.to_string())?;
    }
    for (s, _) in &nodes {
        s.wait_group_ready(Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
    }
    let leaders = find_leaders(&nodes, args.groups as i32)?;
    let terms0: Vec<_> = leaders.iter().map(|g| g.status().term).collect();
    eprintln!(
        "raft_bench: {} nodes, {} groups, {} dispatchers per node, leaders ready",
        args.nodes,
        args.groups,
        if dispatchers == 0 {
            args.groups as usize
        } else {
            dispatchers
        }
    );

    if args.idle_seconds > 0 {
        let c0 = support::process_cpu().ok_or("cannot read /proc/self/stat")?;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.idle_seconds));
        let c1 = support::process_cpu().ok_or("cannot read /proc/self/stat")?;
        println!(
            "IDLE groups={} cpu_pct_of_one_core={:.2}",
            args.groups,
            (c1 - c0).as_secs_f64() * 100.0 / t0.elapsed().as_secs_f64()
        );
    }
    let stats = Arc::new(Mutex::new(Stats {
        total: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
        second: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
    }));
    let errors = Arc::new(AtomicU64::new(0));
    let pending = Arc::new(Pending::default());
    let body = Bytes::from(vec![b'x'; args.body_size as usize]);
    let ok0 = stats.lock().unwrap_or_else(|p| p.into_inner()).total.len();
    let allocs0 = counting_alloc::allocations();
    for p in &perf {
        p.take();
    }
    let cpu0 = support::CpuSample::now();
    let start = Instant::now();
    let done = Arc::new(Done {
        start,
        stats: stats.clone(),
        errors: errors.clone(),
        pending: pending.clone(),
    });
    let end = start + Duration::from_secs(args.seconds);
    let mut next_report = start + Duration::from_secs(1);
    let mut sec = 0;
    let mut i = 0usize;
    while Instant::now() < end {
        if !pending.acquire(args.max_pending, next_report) {
            report(&stats, &mut sec, &mut next_report);
            continue;
        }
        let g = &leaders[i % leaders.len()];
        i += 1;
        let token = start.elapsed().as_nanos() as u64;
        g.submit_to(RaftInput::new(0, body.clone()), &done, token);
        if Instant::now() >= next_report {
            report(&stats, &mut sec, &mut next_report);
        }
    }
    let wall = start.elapsed();
    let stages: Vec<_> = perf.iter().map(|p| p.take()).collect();
    let elapsed = wall.as_secs_f64();
    let allocs = counting_alloc::allocations() - allocs0;
    let cpu = cpu0
        .zip(support::CpuSample::now())
        .map(|(a, b)| support::cpu_line(wall, &a, &b));
    let committed = stats.lock().unwrap_or_else(|p| p.into_inner()).total.len() - ok0;
    // Let the writes in flight finish (they count in the latencies, not the rate).
    let drain_end = Instant::now() + Duration::from_secs(10);
    loop {
        let n = pending.in_flight();
        if n == 0 || Instant::now() > drain_end {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = stats.lock().unwrap_or_else(|p| p.into_inner());
    let ok = s.total.len();
    let errs = errors.load(Ordering::Relaxed);
    if errs > 0 {
        eprintln!("raft_bench: {errs} writes failed");
    }
    println!(
        "RESULT ops_per_s={:.0} p50_us={} p99_us={} max_us={}",
        ok as f64 / elapsed,
        s.total.value_at_quantile(0.5),
        s.total.value_at_quantile(0.99),
        s.total.max()
    );
    println!(
        "ALLOCS allocations={allocs} per_entry={:.2}",
        allocs as f64 / committed.max(1) as f64
    );
    drop(s);
    let changed = leaders
        .iter()
        .zip(&terms0)
        .filter(|(g, t)| {
            let st = g.status();
            st.role != Role::Leader || st.term != **t
        })
        .count();
    println!("LEADERSHIP groups={} changed={changed}", leaders.len());
    let fs = nodes
        .iter()
        .filter_map(|(srv, _)| srv.fsync_batcher())
        .map(|b| b.stats())
        .fold(FsyncStats::default(), |a, b| FsyncStats {
            requests: a.requests + b.requests,
            rounds: a.rounds + b.rounds,
            syncfs_calls: a.syncfs_calls + b.syncfs_calls,
            fdatasync_calls: a.fdatasync_calls + b.fdatasync_calls,
        });
    println!(
        "FSYNC requests={} rounds={} syncfs={} fdatasync={}",
        fs.requests, fs.rounds, fs.syncfs_calls, fs.fdatasync_calls
    );
    if let Some(line) = cpu {
        println!("{line}");
    }
    for (n, figures) in stages.iter().enumerate() {
        for (t, f) in figures {
            println!(
                "PERF node={} {} events={} items={} avg_us={:.1} max_us={:.1}",
                n + 1,
                t.name(),
                f.events,
                f.items,
                f.avg_nanos() as f64 / 1e3,
                f.max_nanos as f64 / 1e3
            );
        }
    }
    if let Some((rss, peak)) = support::resident_kib() {
        println!(
            "MEMORY rss_mib={:.1} peak_rss_mib={:.1}",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    for (srv, _) in &nodes {
        srv.stop(Duration::from_secs(10));
    }
    Ok(())
}

fn report(stats: &Mutex<Stats>, sec: &mut u64, next: &mut Instant) {
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    *sec += 1;
    println!(
        "sec={} ops={} p50_us={} p99_us={} max_us={}",
        sec,
        s.second.len(),
        s.second.value_at_quantile(0.5),
        s.second.value_at_quantile(0.99),
        s.second.max()
    );
    s.second.reset();
    *next += Duration::from_secs(1);
}

fn find_leaders(
    nodes: &[(Arc<RaftServer>, Arc<RaftGroups<BenchFactory>>)],
    groups: i32,
) -> Result<Vec<RaftGroup<()>>, String> {
    let mut out = Vec::new();
    for gid in 1..=groups {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let l = nodes.iter().find_map(|(_, gs)| {
                gs.group(gid)
                    .filter(|g| g.status().role == Role::Leader && g.status().group_ready)
            });
            if let Some(l) = l {
                out.push(l);
                break;
            }
            if Instant::now() > end {
                return Err(format!("group {gid} has no leader after 30 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(out)
}
