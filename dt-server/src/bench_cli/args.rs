//! The command line of `dt-bench`: the reference benchmark's options (spec
//! `dtkv-server.md` §13.10) with its names and defaults, plus `--warmup` and `--json`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The operation a benchmark issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// DTKV_PUT of a random value.
    Put,
    /// DTKV_GET.
    Get,
}

impl Op {
    /// `put` or `get`, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
        }
    }
}

/// The parsed command line (before the sync-mode max-pending adjustment).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dt-bench",
    version,
    about = "Benchmarks a DtKV group (dt or the reference's server) with put or get",
    long_about = "Benchmarks a DtKV group (dt or the reference's server) with put or get.\n\n\
Every client registers all servers of the client.properties file as members of the \
group, finds its leader and creates the directory `benchmark`; operations use the keys \
`benchmark.key<i>` chosen at random. After the warm-up, prints one line per second, \
then the configuration, a [Final] line and the latency percentiles, and as its last \
line `RESULT tps=<x> p50_us=<a> p99_us=<b> p999_us=<c> max_us=<d>`. Exit code 1 on any \
error or usage problem.",
    after_help = "Examples:\n  \
dt-bench -s conf/client.properties -g 0\n  \
dt-bench -s conf/client.properties -g 0 --max-pending 10000 --client-count 2\n  \
dt-bench -s conf/client.properties -g 0 --op get --duration 30\n  \
dt-bench -s conf/client.properties -g 0 --sync --thread-count 128 --use-nanos"
)]
pub struct BenchArgs {
    /// Path to client.properties (`servers = id,host:servicePort;...`)
    #[arg(short = 's', value_name = "FILE")]
    pub servers_file: PathBuf,

    /// Group id to benchmark
    #[arg(
        short = 'g',
        long = "group-id",
        value_name = "ID",
        allow_negative_numbers = true
    )]
    pub group_id: i32,

    /// Value size in bytes (1 to 1 MiB)
    #[arg(long, value_name = "SIZE", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1024 * 1024))]
    pub value_size: u32,

    /// Use blocking operations from --thread-count threads
    #[arg(long, overrides_with = "async_mode")]
    pub sync: bool,

    /// Use callback operations, each answer sending the next request (default)
    #[arg(long = "async", overrides_with = "sync")]
    pub async_mode: bool,

    /// Total thread count for sync mode, split across the clients
    #[arg(long, value_name = "COUNT", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub thread_count: u32,

    /// Operation: put or get
    #[arg(long, value_enum, ignore_case = true, default_value_t = Op::Put, value_name = "OP")]
    pub op: Op,

    /// Measured seconds (after the warm-up)
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub duration: u32,

    /// Number of KvClient instances (each with its own connections)
    #[arg(long, value_name = "COUNT", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub client_count: u32,

    /// Number of keys (benchmark.key0 ..), chosen at random
    #[arg(long, value_name = "COUNT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub key_count: u32,

    /// Total requests in flight; each client gets max-pending / client-count (in sync
    /// mode raised to thread-count + 100 when smaller than thread-count)
    #[arg(long, value_name = "COUNT", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending: u32,

    /// Measure latency with the monotonic clock in nanoseconds (default: the wall clock
    /// in milliseconds, as the reference; percentiles are then multiples of 1,000 us)
    #[arg(long)]
    pub use_nanos: bool,

    /// Accepted for compatibility with the reference (Java virtual threads); no effect
    #[arg(long, overrides_with = "no_virtual_threads")]
    pub use_virtual_threads: bool,

    /// Accepted for compatibility with the reference; no effect
    #[arg(long, overrides_with = "use_virtual_threads")]
    pub no_virtual_threads: bool,

    /// Warm-up seconds before measuring (the reference's fixed 3)
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub warmup: u32,

    /// For --op get: skip writing every key once before the warm-up (the reference's
    /// benchmark does not preload; its gets then mostly find nothing)
    #[arg(long)]
    pub no_preload: bool,

    /// Print the result as a JSON object on stdout (progress goes to stderr)
    #[arg(long)]
    pub json: bool,
}

/// What the command line asks for, or why it cannot run.
#[derive(Debug)]
pub enum ParseOutcome {
    /// Run the benchmark.
    Run(BenchArgs),
    /// `--help` or `--version`: print this on stdout, exit 0.
    Info(String),
    /// A usage problem: print this on stderr, exit 1.
    Usage(String),
}

impl BenchArgs {
    /// Parses a command line (`args[0]` is the program name) and checks the
    /// combinations clap cannot.
    pub fn parse_from_args<I, T>(args: I) -> ParseOutcome
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        match BenchArgs::try_parse_from(args) {
            Ok(a) => match a.check() {
                Ok(()) => ParseOutcome::Run(a),
                Err(m) => ParseOutcome::Usage(format!(
                    "error: {m}\n\nFor more information, try '--help'."
                )),
            },
            Err(e) => {
                use clap::error::ErrorKind;
                match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                        ParseOutcome::Info(e.to_string())
                    }
                    _ => ParseOutcome::Usage(e.to_string()),
                }
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.max_pending < self.client_count {
            return Err(format!(
                "--max-pending ({}) must be at least --client-count ({}): each client gets \
                 max-pending / client-count requests in flight",
                self.max_pending, self.client_count
            ));
        }
        if self.sync && self.thread_count < self.client_count {
            return Err(format!(
                "--thread-count ({}) must be at least --client-count ({}) in sync mode",
                self.thread_count, self.client_count
            ));
        }
        Ok(())
    }

    /// The total requests in flight actually used: in sync mode, when thread-count is
    /// greater than max-pending, thread-count + 100 (the reference's rule; the run
    /// prints a warning then).
    pub fn effective_max_pending(&self) -> u32 {
        if self.sync && self.thread_count > self.max_pending {
            self.thread_count + 100
        } else {
            self.max_pending
        }
    }

    /// Requests in flight allowed per client.
    pub fn pending_per_client(&self) -> usize {
        (self.effective_max_pending() / self.client_count).max(1) as usize
    }

    /// Sync-mode threads of client `c` (thread-count split evenly, the first clients
    /// taking the remainder).
    pub fn threads_of_client(&self, c: u32) -> u32 {
        let base = self.thread_count / self.client_count;
        base + u32::from(c < self.thread_count % self.client_count)
    }

    /// Whether gets are preceded by writing every key once.
    pub fn preload(&self) -> bool {
        self.op == Op::Get && !self.no_preload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ParseOutcome {
        BenchArgs::parse_from_args(std::iter::once("dt-bench").chain(args.iter().copied()))
    }

    fn run(args: &[&str]) -> BenchArgs {
        match parse(args) {
            ParseOutcome::Run(a) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match parse(args) {
            ParseOutcome::Usage(m) => m,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_references() {
        let a = run(&["-s", "c.properties", "-g", "0"]);
        assert_eq!(a.servers_file, PathBuf::from("c.properties"));
        assert_eq!(a.group_id, 0);
        assert_eq!(a.value_size, 256);
        assert!(!a.sync);
        assert_eq!(a.thread_count, 128);
        assert_eq!(a.op, Op::Put);
        assert_eq!(a.duration, 10);
        assert_eq!(a.client_count, 1);
        assert_eq!(a.key_count, 10_000);
        assert_eq!(a.max_pending, 2000);
        assert!(!a.use_nanos);
        assert_eq!(a.warmup, 3);
        assert!(!a.json);
        assert_eq!(a.pending_per_client(), 2000);
        assert!(!a.preload());
    }

    #[test]
    fn every_option_parses() {
        let a = run(&[
            "-s",
            "x",
            "-g",
            "7",
            "--value-size",
            "1024",
            "--sync",
            "--thread-count",
            "10",
            "--op",
            "GET",
            "--duration",
            "2",
            "--client-count",
            "3",
            "--key-count",
            "50",
            "--max-pending",
            "300",
            "--use-nanos",
            "--no-virtual-threads",
            "--warmup",
            "0",
            "--json",
        ]);
        assert_eq!(a.group_id, 7);
        assert_eq!(a.value_size, 1024);
        assert!(a.sync);
        assert_eq!(a.op, Op::Get);
        assert!(a.preload());
        assert_eq!((a.duration, a.client_count, a.key_count), (2, 3, 50));
        assert!(a.use_nanos && a.json && a.no_virtual_threads);
        assert_eq!(a.warmup, 0);
        assert_eq!(a.pending_per_client(), 100);
        // 10 threads over 3 clients: 4, 3, 3.
        let t: Vec<u32> = (0..3).map(|c| a.threads_of_client(c)).collect();
        assert_eq!(t, vec![4, 3, 3]);
        assert!(run(&["-s", "x", "-g", "0", "--op", "get", "--no-preload"])
            .preload()
            .eq(&false));
    }

    #[test]
    fn last_of_sync_and_async_wins() {
        assert!(run(&["-s", "x", "-g", "0", "--async", "--sync"]).sync);
        assert!(!run(&["-s", "x", "-g", "0", "--sync", "--async"]).sync);
        run(&[
            "-s",
            "x",
            "-g",
            "0",
            "--use-virtual-threads",
            "--no-virtual-threads",
        ]);
    }

    #[test]
    fn sync_mode_raises_max_pending_as_the_reference() {
        let a = run(&["-s", "x", "-g", "0", "--sync", "--thread-count", "3000"]);
        assert_eq!(a.effective_max_pending(), 3100);
        let a = run(&["-s", "x", "-g", "0", "--thread-count", "3000"]);
        assert_eq!(a.effective_max_pending(), 2000, "async mode keeps it");
    }

    #[test]
    fn usage_problems() {
        assert!(usage(&["-g", "0"]).contains("-s <FILE>"));
        assert!(usage(&["-s", "x"]).contains("--group-id"));
        assert!(usage(&["-s", "x", "-g", "zero"]).contains("zero"));
        assert!(usage(&["-s", "x", "-g", "0", "--op", "cas"]).contains("cas"));
        assert!(usage(&["-s", "x", "-g", "0", "--value-size", "0"]).contains("--value-size"));
        assert!(usage(&["-s", "x", "-g", "0", "--duration", "0"]).contains("--duration"));
        assert!(usage(&["-s", "x", "-g", "0", "--bogus"]).contains("--bogus"));
        assert!(usage(&[
            "-s",
            "x",
            "-g",
            "0",
            "--client-count",
            "5",
            "--max-pending",
            "4"
        ])
        .contains("--max-pending (4)"));
        assert!(usage(&[
            "-s",
            "x",
            "-g",
            "0",
            "--sync",
            "--client-count",
            "5",
            "--thread-count",
            "4"
        ])
        .contains("--thread-count (4)"));
    }

    #[test]
    fn help_and_version_are_info() {
        match parse(&["--help"]) {
            ParseOutcome::Info(h) => {
                for o in [
                    "-s <FILE>",
                    "--group-id",
                    "--value-size",
                    "--sync",
                    "--async",
                    "--thread-count",
                    "--op",
                    "--duration",
                    "--client-count",
                    "--key-count",
                    "--max-pending",
                    "--use-nanos",
                    "--use-virtual-threads",
                    "--no-virtual-threads",
                    "--warmup",
                    "--json",
                ] {
                    assert!(h.contains(o), "help lacks {o}");
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["--version"]), ParseOutcome::Info(_)));
    }
}
