//! Running a benchmark: the clients, the workers (async drivers or sync threads), the
//! per-second ticks, the warm-up and measured phases, and the command's exit code.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::KvError;
use dt_client::raft::{RaftClientConfig, RaftNode};
use dt_client::{KvClient, KvClientConfig};
use dt_common::process_cpu::process_cpu_split;
use dt_net::PeerStatus;

use super::args::{BenchArgs, Op, ParseOutcome};
use super::report::{self, ClientCpu, Summary};
use super::stats::{percentiles, Clock, KeyRng, LatencyRecorder, Stats};
use crate::bootstrap::{ClientConfig, ClientConfigError};

/// How long a run waits for the group's leader before giving up.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors shown after the first ones are only counted.
const SHOWN_ERRORS: u64 = 10;

/// Why a benchmark could not run (exit code 1).
#[derive(Debug)]
pub enum BenchError {
    /// client.properties cannot be read or has no usable `servers`.
    Config(ClientConfigError),
    /// A client could not be started or configured.
    Client(KvError),
    /// No leader of the group was found.
    NoLeader {
        /// The group.
        group_id: i32,
        /// What discovery reported.
        source: KvError,
    },
    /// Writing the keys before a get benchmark failed.
    Preload(KvError),
    /// Nothing succeeded in the measured phase (the figures are printed anyway).
    NothingSucceeded {
        /// Failed operations in the measured phase.
        failed: u64,
    },
    /// Writing the output failed.
    Output(std::io::Error),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Config(e) => write!(f, "{e}"),
            BenchError::Client(e) => write!(f, "cannot start a client: {e}"),
            BenchError::NoLeader { group_id, source } => write!(
                f,
                "no leader of group {group_id} found ({source}); are the servers of the \
                 -s file up, listed with their service ports, and is the group id right?"
            ),
            BenchError::Preload(e) => {
                write!(f, "writing the keys before the get benchmark failed: {e}")
            }
            BenchError::NothingSucceeded { failed } => write!(
                f,
                "no operation succeeded in the measured phase ({failed} failed)"
            ),
            BenchError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError::Output(e)
    }
}

/// A finished run: the servers it used and its figures.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The `servers` value of client.properties.
    pub servers: String,
    /// The measured phase.
    pub summary: Summary,
}

/// What every worker shares.
struct Shared {
    stats: Stats,
    clock: Clock,
    group: i32,
    op: Op,
    value: Bytes,
    keys: Vec<Bytes>,
    errors: AtomicU64,
}

impl Shared {
    fn report_error(&self, mode: &str, e: &KvError) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < SHOWN_ERRORS {
            eprintln!("{mode} {} error: {e}", self.op.name());
        } else if n == SHOWN_ERRORS {
            eprintln!("(further errors are only counted)");
        }
    }

    /// Counts a finished operation and records its latency when measured.
    fn finish(&self, mode: &str, start: u64, r: Result<(), KvError>, rec: &LatencyRecorder) {
        let elapsed = self.clock.now().saturating_sub(start);
        if let Err(e) = &r {
            self.report_error(mode, e);
        }
        if self.stats.record(r.is_ok(), elapsed) {
            rec.record_nanos(elapsed);
        }
    }
}

/// One async client's driver state: requests in flight against its limit, and the
/// driver thread to wake when enough slots are free again.
struct AsyncSlot {
    shared: Arc<Shared>,
    inflight: AtomicUsize,
    limit: usize,
    /// A driver that found the limit reached sleeps until the requests in flight fall
    /// to this (it then issues a burst): one wake-up per burst instead of one per
    /// completion, which on a busy machine costs a scheduler round trip each.
    resume_at: usize,
    parked: AtomicBool,
    driver: OnceLock<Thread>,
    recorder: LatencyRecorder,
}

impl AsyncSlot {
    fn new(shared: Arc<Shared>, limit: usize) -> AsyncSlot {
        AsyncSlot {
            shared,
            inflight: AtomicUsize::new(0),
            limit,
            resume_at: limit - (limit / 8).max(1),
            parked: AtomicBool::new(false),
            driver: OnceLock::new(),
            recorder: LatencyRecorder::new(),
        }
    }

    fn done(&self, start: u64, r: Result<(), KvError>) {
        self.shared.finish("Async", start, r, &self.recorder);
        let left = self.inflight.fetch_sub(1, Ordering::SeqCst) - 1;
        if left <= self.resume_at && self.parked.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            if let Some(t) = self.driver.get() {
                t.unpark();
            }
        }
    }

    /// Called by the driver at the limit: sleeps until at most `resume_at` requests
    /// are in flight (or a short timeout, to notice the end of the run).
    fn wait_for_room(&self) {
        self.parked.store(true, Ordering::SeqCst);
        if self.inflight.load(Ordering::SeqCst) > self.resume_at {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        self.parked.store(false, Ordering::SeqCst);
    }
}

/// Issues operations through the callback API, keeping at most `limit` in flight
/// (the driver waits for free slots, as the reference's caller waits for a permit;
/// the wait counts in the latency).
fn drive_async(client: &KvClient, slot: Arc<AsyncSlot>, salt: u64) {
    let _ = slot.driver.set(std::thread::current());
    let sh = slot.shared.clone();
    let mut rng = KeyRng::seeded(salt);
    'run: while sh.stats.running() {
        let start = sh.clock.now();
        while slot.inflight.load(Ordering::SeqCst) >= slot.limit {
            if !sh.stats.running() {
                break 'run;
            }
            slot.wait_for_room();
        }
        slot.inflight.fetch_add(1, Ordering::SeqCst);
        let key = sh.keys[rng.below(sh.keys.len())].clone();
        let s = slot.clone();
        match sh.op {
            Op::Put => client.put_cb(sh.group, key, sh.value.clone(), move |r| {
                s.done(start, r.map(|_| ()))
            }),
            Op::Get => client.get_cb(sh.group, key, move |r| s.done(start, r.map(|_| ()))),
        }
    }
    // Let the outstanding requests end (each has the client's deadline).
    let end = Instant::now() + Duration::from_secs(10);
    while slot.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Issues operations with the blocking API, one at a time.
fn drive_sync(client: &KvClient, sh: &Shared, rec: &LatencyRecorder, salt: u64) {
    let mut rng = KeyRng::seeded(salt);
    while sh.stats.running() {
        let key = sh.keys[rng.below(sh.keys.len())].clone();
        let start = sh.clock.now();
        let r = match sh.op {
            Op::Put => client.put(sh.group, key, sh.value.clone()).map(|_| ()),
            Op::Get => client.get(sh.group, key).map(|_| ()),
        };
        sh.finish("Sync", start, r, rec);
    }
}

/// The keys `benchmark.key<i>`, as slices of one buffer that lives as long as the
/// process (leaked once per run): cloning a static `Bytes` per request touches no
/// reference count, where a shared count would bounce between the thread that sends
/// and the network thread that drops, and be counted as the client's cost.
fn static_keys(count: usize) -> Vec<Bytes> {
    let mut all = String::new();
    let mut ends = Vec::with_capacity(count);
    for i in 0..count {
        use std::fmt::Write as _;
        let _ = write!(all, "benchmark.key{i}");
        ends.push(all.len());
    }
    let all: &'static str = Box::leak(all.into_boxed_str());
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let k = Bytes::from_static(&all.as_bytes()[start..end]);
            start = end;
            k
        })
        .collect()
}

/// `b` as a static `Bytes` (leaked once per run; see [`static_keys`]).
fn static_bytes(b: Vec<u8>) -> Bytes {
    Bytes::from_static(Box::leak(b.into_boxed_slice()))
}

fn random_value(size: usize) -> Vec<u8> {
    let mut rng = KeyRng::seeded(size as u64);
    (0..size).map(|_| rng.below(256) as u8).collect()
}

fn start_clients(args: &BenchArgs, servers: &str) -> Result<Vec<KvClient>, BenchError> {
    let nodes = RaftNode::parse_list(servers).map_err(BenchError::Client)?;
    let ids: Vec<i32> = nodes.iter().map(|n| n.node_id).collect();
    let mut clients = Vec::new();
    for _ in 0..args.client_count {
        let cfg = KvClientConfig {
            raft: RaftClientConfig {
                max_out_requests: args.pending_per_client(),
                ..Default::default()
            },
        };
        let c = KvClient::new(cfg).map_err(BenchError::Client)?;
        c.raft()
            .add_or_update_nodes(&nodes)
            .map_err(BenchError::Client)?;
        c.raft()
            .add_or_update_group(args.group_id, &ids)
            .map_err(BenchError::Client)?;
        wait_for_leader(&c, args.group_id)?;
        clients.push(c);
    }
    Ok(clients)
}

/// Finds the group's leader. While a server is up but still starting (connected, but
/// answering NOT_INIT until its groups are ready, which fails discovery at once) it asks
/// again every 200 ms, up to [`LEADER_TIMEOUT`]; when no server can be reached it fails
/// at once.
fn wait_for_leader(c: &KvClient, group_id: i32) -> Result<(), BenchError> {
    let end = Instant::now() + LEADER_TIMEOUT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let source = match c.raft().fetch_leader(group_id, left).wait() {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let reachable = c
            .raft()
            .nodes()
            .iter()
            .any(|(_, st)| *st == PeerStatus::Connected);
        if !reachable || Instant::now() + Duration::from_millis(200) >= end {
            return Err(BenchError::NoLeader { group_id, source });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn preload(client: &KvClient, args: &BenchArgs, sh: &Shared) -> Result<(), BenchError> {
    for chunk in sh.keys.chunks(args.pending_per_client()) {
        let futures: Vec<_> = chunk
            .iter()
            .map(|k| client.put_async(sh.group, k.clone(), sh.value.clone()))
            .collect();
        for f in futures {
            f.wait().map_err(BenchError::Preload)?;
        }
    }
    Ok(())
}

/// Runs a benchmark, writing the configuration, the warm-up and per-second lines to
/// `progress`; returns the measured figures (the caller prints the result).
pub fn run(args: &BenchArgs, progress: &mut dyn Write) -> Result<Outcome, BenchError> {
    let cfg = ClientConfig::load(&args.servers_file).map_err(BenchError::Config)?;
    let servers = cfg.servers.clone();
    writeln!(progress, "{}", report::configuration_block(args, &servers))?;
    if args.effective_max_pending() != args.max_pending {
        writeln!(
            progress,
            "WARNING: sync mode, threadCount is greater than maxPending, auto increase maxPending."
        )?;
    }
    let clients = start_clients(args, &servers)?;
    let shared = Arc::new(Shared {
        stats: Stats::new(),
        clock: if args.use_nanos {
            Clock::Nanos
        } else {
            Clock::Millis
        },
        group: args.group_id,
        op: args.op,
        value: static_bytes(random_value(args.value_size as usize)),
        keys: static_keys(args.key_count as usize),
        errors: AtomicU64::new(0),
    });
    for c in &clients {
        if let Err(e) = c.mkdir(args.group_id, "benchmark") {
            eprintln!("Warning: Failed to create benchmark directory: {e}");
        }
    }
    if args.preload() {
        writeln!(progress, "Preloading {} keys...", args.key_count)?;
        preload(&clients[0], args, &shared)?;
    }
    writeln!(progress, "{}", report::benchmark_config_block(args))?;
    writeln!(progress, "Warming up for {} seconds...\n", args.warmup)?;

    let slots: Vec<Arc<AsyncSlot>> = (0..clients.len())
        .map(|_| Arc::new(AsyncSlot::new(shared.clone(), args.pending_per_client())))
        .collect();
    let sync_recorders: Vec<Vec<LatencyRecorder>> = clients
        .iter()
        .enumerate()
        .map(|(c, _)| {
            let n = if args.sync {
                args.threads_of_client(c as u32)
            } else {
                0
            };
            (0..n).map(|_| LatencyRecorder::new()).collect()
        })
        .collect();

    let summary = std::thread::scope(|scope| -> Result<Summary, BenchError> {
        let mut salt = 0u64;
        for (c, client) in clients.iter().enumerate() {
            if args.sync {
                for rec in &sync_recorders[c] {
                    salt += 1;
                    let (sh, s) = (&*shared, salt);
                    std::thread::Builder::new()
                        .name(format!("bench-sync-{c}-{s}"))
                        .spawn_scoped(scope, move || drive_sync(client, sh, rec, s))
                        .map_err(BenchError::Output)?;
                }
            } else {
                salt += 1;
                let (slot, s) = (slots[c].clone(), salt);
                std::thread::Builder::new()
                    .name(format!("bench-async-{c}"))
                    .spawn_scoped(scope, move || drive_async(client, slot, s))
                    .map_err(BenchError::Output)?;
            }
        }
        let r = tick(args, &shared.stats, progress);
        shared.stats.stop();
        let (elapsed_secs, client_cpu) = r?;
        let recorders = slots
            .iter()
            .map(|s| &s.recorder)
            .chain(sync_recorders.iter().flatten());
        Ok(Summary {
            totals: shared.stats.totals(),
            elapsed_secs,
            percentiles: percentiles(recorders),
            client_cpu,
        })
    })?;
    for c in &clients {
        c.stop(Duration::from_secs(5));
    }
    Ok(Outcome { servers, summary })
}

/// The main thread's clock: a line per second, the end of the warm-up, the end of the
/// run; returns the measured phase's length in seconds and this process's CPU time over
/// it (`None` where it cannot be read).
fn tick(
    args: &BenchArgs,
    stats: &Stats,
    progress: &mut dyn Write,
) -> Result<(f64, Option<ClientCpu>), BenchError> {
    let t0 = Instant::now();
    let mut measure_start = t0;
    let mut cpu_start = None;
    // Also this process's CPU time when the measured phase starts.
    let end_warmup = |progress: &mut dyn Write| -> std::io::Result<_> {
        stats.end_warmup();
        writeln!(progress, "Warmup complete, starting benchmark...\n")?;
        Ok(process_cpu_split())
    };
    if args.warmup == 0 {
        cpu_start = end_warmup(progress)?;
    }
    for k in 1..=(args.warmup + args.duration) {
        let at = t0 + Duration::from_secs(u64::from(k));
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let w = stats.take_second();
        if w.count() > 0 {
            let label = if k <= args.warmup { "Warmup" } else { "Now" };
            writeln!(progress, "{}", report::second_line(label, &w))?;
        }
        if k == args.warmup {
            measure_start = Instant::now();
            cpu_start = end_warmup(progress)?;
        }
    }
    let elapsed = measure_start.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(process_cpu_split())
        .map(|((u0, s0), (u1, s1))| ClientCpu {
            user_secs: u1.saturating_sub(u0).as_secs_f64(),
            system_secs: s1.saturating_sub(s0).as_secs_f64(),
        });
    Ok((elapsed, cpu))
}

/// The whole command: parses `argv`, runs, prints, and returns the exit code (0, or 1
/// on a usage problem or error, with a message on stderr).
pub fn run_cli<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match BenchArgs::parse_from_args(argv) {
        ParseOutcome::Run(a) => a,
        ParseOutcome::Info(text) => {
            print!("{text}");
            return 0;
        }
        ParseOutcome::Usage(msg) => {
            eprintln!("{}", msg.trim_end());
            return 1;
        }
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let progress: &mut dyn Write = if args.json { &mut stderr } else { &mut stdout };
    let outcome = match run(&args, progress) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    match finish(&args, &outcome, progress) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// Prints the configuration again, the final lines, the JSON object (with `--json`)
/// and the RESULT line (on stdout); an error when nothing succeeded.
pub fn finish(args: &BenchArgs, o: &Outcome, progress: &mut dyn Write) -> Result<(), BenchError> {
    writeln!(progress)?;
    writeln!(progress, "{}", report::benchmark_config_block(args))?;
    write!(progress, "{}", report::final_lines(&o.summary))?;
    if let Some(line) = report::client_cpu_line(&o.summary) {
        writeln!(progress, "{line}")?;
    }
    writeln!(progress)?;
    progress.flush()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report::json(args, &o.servers, &o.summary))?;
    }
    writeln!(out, "{}", report::result_line(&o.summary))?;
    out.flush()?;
    if o.summary.totals.success == 0 {
        return Err(BenchError::NothingSucceeded {
            failed: o.summary.totals.fail,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            stats: Stats::new(),
            clock: Clock::Nanos,
            group: 0,
            op: Op::Put,
            value: Bytes::from_static(b"v"),
            keys: vec![Bytes::from_static(b"benchmark.key0")],
            errors: AtomicU64::new(0),
        })
    }

    #[test]
    fn a_parked_driver_is_woken_once_per_burst() {
        let slot = AsyncSlot::new(shared(), 16);
        assert_eq!(slot.resume_at, 14);
        let _ = slot.driver.set(std::thread::current());
        slot.inflight.store(16, Ordering::SeqCst);
        slot.parked.store(true, Ordering::SeqCst);
        let start = slot.shared.clock.now();
        slot.done(start, Ok(()));
        assert!(
            slot.parked.load(Ordering::SeqCst),
            "15 in flight: still asleep"
        );
        slot.done(start, Ok(()));
        assert!(!slot.parked.load(Ordering::SeqCst), "14 in flight: woken");
        slot.done(start, Err(KvError::InvalidArgument("x".into())));
        assert_eq!(slot.inflight.load(Ordering::SeqCst), 13);
        let w = slot.shared.stats.take_second();
        assert_eq!((w.success, w.fail), (2, 1));
        // A limit of 1 resumes at 0.
        assert_eq!(AsyncSlot::new(shared(), 1).resume_at, 0);
    }

    #[test]
    fn the_driver_does_not_sleep_when_there_is_room() {
        let slot = AsyncSlot::new(shared(), 8);
        slot.inflight.store(7, Ordering::SeqCst);
        let t = Instant::now();
        for _ in 0..40 {
            slot.wait_for_room();
        }
        // Forty 5 ms sleeps would take 200 ms.
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        assert!(!slot.parked.load(Ordering::SeqCst));
    }
}
