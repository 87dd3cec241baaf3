//! Running a benchmark: the clients, the workers (async drivers or sync threads), the
//! per-second ticks, the warm-up and measured phases, and the command's exit code.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::KvError;
use dt_client::raft::{RaftClientConfig, RaftNode};
use dt_client::{KvClient, KvClientConfig};
use dt_common::prefetch::prefetch;
use dt_common::process_cpu::process_cpu_split;
use dt_fiber::DetRng;
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

    /// Counts a finished operation and records its latency when measured; returns the
    /// clock reading it took (an async slot's next request starts then).
    fn finish(&self, mode: &str, start: u64, r: Result<(), KvError>, rec: &LatencyRecorder) -> u64 {
        let now = self.clock.now();
        let elapsed = now.saturating_sub(start);
        if let Err(e) = &r {
            self.report_error(mode, e);
        }
        if self.stats.record(r.is_ok(), elapsed) {
            rec.record_nanos(elapsed);
        }
        now
    }
}

/// One async client's driver: the requests it keeps in flight, up to its limit.
///
/// A slot, once taken, stays in use for the whole run: the callback that answers a
/// request sends the next one in its place, on the thread the answer came on (the
/// client's IO thread), so a steady run hands nothing between threads. A failed request
/// gives its slot back instead (no failure sends again from inside its callback, so a
/// request failed at once cannot recurse), and the driver thread fills the freed slots
/// every [`TOP_UP_INTERVAL`]: a server that fails everything sees at most the limit's
/// worth of requests per interval.
struct AsyncDriver {
    client: Arc<KvClient>,
    shared: Arc<Shared>,
    /// Slots in use: only the driver thread takes one, callbacks give them back.
    inflight: AtomicUsize,
    limit: usize,
    /// Requests sent so far; the key of the next one is a hash of it and `salt`.
    seq: AtomicU64,
    salt: u64,
    recorder: LatencyRecorder,
}

/// How often the driver thread fills the slots that failed requests gave back.
const TOP_UP_INTERVAL: Duration = Duration::from_millis(5);

/// How many requests ahead an async driver starts loading a key (see
/// [`AsyncDriver::send`]). The client's IO thread sends the next requests within a
/// few microseconds (about one per microsecond under load): ample time for a load from
/// memory, and soon enough that the line is still cached when it is read.
const KEY_LOOKAHEAD: u64 = 4;

impl AsyncDriver {
    fn new(client: Arc<KvClient>, shared: Arc<Shared>, limit: usize, salt: u64) -> Self {
        AsyncDriver {
            client,
            shared,
            inflight: AtomicUsize::new(0),
            limit,
            seq: AtomicU64::new(0),
            salt,
            recorder: LatencyRecorder::new(),
        }
    }

    /// Sends one request in a slot the caller holds; its latency counts from `start`,
    /// a clock reading just taken.
    fn send(self: &Arc<Self>, start: u64) {
        let sh = &self.shared;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let count = sh.keys.len();
        // The keys are chosen at random, so each request's key entry and key bytes were
        // last read thousands of requests ago: two waits on memory in a row on the
        // client's IO thread (a tenth of its time in a get run). Start loading both a
        // few requests ahead: the entry of request n + 2A, and the bytes of request
        // n + A (whose entry was loaded A requests ago).
        let ahead = |k: u64| key_index(self.salt, n.wrapping_add(k * KEY_LOOKAHEAD), count);
        prefetch(&sh.keys[ahead(2)]);
        prefetch(sh.keys[ahead(1)].as_ptr());
        let key = sh.keys[ahead(0)].clone();
        let me = self.clone();
        match sh.op {
            Op::Put => self
                .client
                .put_cb(sh.group, key, sh.value.clone(), move |r| {
                    me.answered(start, r.map(|_| ()))
                }),
            Op::Get => self
                .client
                .get_cb(sh.group, key, move |r| me.answered(start, r.map(|_| ()))),
        }
    }

    /// A request's answer: counted, then its slot sends the next request, or is given
    /// back when the request failed or the run is over.
    fn answered(self: &Arc<Self>, start: u64, r: Result<(), KvError>) {
        let ok = r.is_ok();
        let now = self.shared.finish("Async", start, r, &self.recorder);
        if ok && self.shared.stats.running() {
            self.send(now);
            return;
        }
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    /// The driver thread: fills the free slots, then every [`TOP_UP_INTERVAL`] those
    /// that failures freed, until the run ends; then waits for the requests still out
    /// (each has the client's deadline).
    fn drive(self: &Arc<Self>) {
        while self.shared.stats.running() {
            let free = self.limit - self.inflight.load(Ordering::SeqCst);
            for _ in 0..free {
                self.inflight.fetch_add(1, Ordering::SeqCst);
                self.send(self.shared.clock.now());
            }
            std::thread::sleep(TOP_UP_INTERVAL);
        }
        let end = Instant::now() + Duration::from_secs(10);
        while self.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The key of request number `n` of a driver salted with `salt`: an index in
/// `0..count` (`count` > 0), uniform, from the first output of a splitmix64 generator
/// ([`DetRng`]) seeded with `n` and `salt`, so that any thread can choose the next key
/// without sharing a generator.
fn key_index(salt: u64, n: u64, count: usize) -> usize {
    DetRng::new(n.wrapping_add(salt.wrapping_mul(0xA076_1D64_78BD_642F))).below(count as u64)
        as usize
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
        let _ = sh.finish("Sync", start, r, rec);
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

fn start_clients(args: &BenchArgs, servers: &str) -> Result<Vec<Arc<KvClient>>, BenchError> {
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
        clients.push(Arc::new(c));
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

    let drivers: Vec<Arc<AsyncDriver>> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let (limit, salt) = (args.pending_per_client(), c as u64 + 1);
            Arc::new(AsyncDriver::new(
                client.clone(),
                shared.clone(),
                limit,
                salt,
            ))
        })
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
                let driver = drivers[c].clone();
                std::thread::Builder::new()
                    .name(format!("bench-async-{c}"))
                    .spawn_scoped(scope, move || driver.drive())
                    .map_err(BenchError::Output)?;
            }
        }
        let r = tick(args, &shared.stats, progress);
        shared.stats.stop();
        let (elapsed_secs, client_cpu) = r?;
        let recorders = drivers
            .iter()
            .map(|d| &d.recorder)
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
    fn failed_requests_give_their_slots_back_and_only_the_driver_sends_again() {
        // No group is known: every request fails at once, on the thread that sends it.
        let client = Arc::new(KvClient::new(KvClientConfig::default()).unwrap());
        let d = Arc::new(AsyncDriver::new(client.clone(), shared(), 4, 1));
        let t0 = Instant::now();
        let run = d.clone();
        let h = std::thread::spawn(move || run.drive());
        std::thread::sleep(Duration::from_millis(60));
        d.shared.stats.stop();
        h.join().unwrap();
        let elapsed = t0.elapsed();
        assert_eq!(d.inflight.load(Ordering::SeqCst), 0, "a slot was kept");
        let w = d.shared.stats.take_second();
        assert_eq!(w.success, 0);
        // Four slots filled at the start and once per interval, no more (a failure
        // sending again from its callback would recurse and count far more).
        let rounds = (elapsed.as_millis() / TOP_UP_INTERVAL.as_millis()) as u64 + 1;
        assert!(
            (4..=4 * rounds).contains(&w.fail),
            "{} failures in {elapsed:?}",
            w.fail
        );
        client.stop(Duration::from_secs(1));
    }

    #[test]
    fn keys_are_spread_evenly_and_differ_by_salt() {
        let mut seen = [0u32; 10];
        for n in 0..10_000 {
            seen[key_index(1, n, 10)] += 1;
        }
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
        let a: Vec<usize> = (0..32).map(|n| key_index(1, n, 1000)).collect();
        let b: Vec<usize> = (0..32).map(|n| key_index(2, n, 1000)).collect();
        assert_ne!(a, b);
        assert_eq!(key_index(7, 3, 1), 0);
    }
}
