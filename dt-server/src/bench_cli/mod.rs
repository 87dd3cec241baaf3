//! `dt-bench`, the benchmark CLI (spec `dtkv-server.md` §13.10), as a library so its
//! parsing, counting and output are testable; `src/bin/dt-bench.rs` only calls
//! [`run_cli`]. Needs the `cli` feature (clap, hdrhistogram).
//!
//! A run reads client.properties (`-s`), starts `--client-count` [`dt_client::KvClient`]s
//! that each register every server as a member of group `-g`, find its leader and
//! `mkdir benchmark`, then issues puts or gets on keys `benchmark.key<i>` chosen at
//! random: in async mode through the callback API, max-pending / client-count requests
//! in flight per client (a driver thread fills the slots, and each answer's callback
//! sends the next request), in sync mode `--thread-count` threads through the blocking
//! API. It warms up (`--warmup`, 3 s), measures
//! (`--duration`), printing the reference's per-second lines, then the configuration,
//! the `[Final]` lines with p50/p99/p999/max and (on Linux) the benchmark process's own
//! CPU per operation, and last a `RESULT` line:
//!
//! ```
//! use dt_server::bench_cli::{report, BenchArgs, ParseOutcome, Percentiles, Summary, Window};
//!
//! let ParseOutcome::Run(args) =
//!     BenchArgs::parse_from_args(["dt-bench", "-s", "client.properties", "-g", "0"])
//! else {
//!     unreachable!()
//! };
//! assert_eq!((args.value_size, args.key_count, args.max_pending), (256, 10_000, 2000));
//! let s = Summary {
//!     totals: Window { success: 50_000, fail: 0, total_nanos: 50_000 * 800_000, max_nanos: 9_000_000 },
//!     elapsed_secs: 10.0,
//!     percentiles: Percentiles { p50_us: 700, p99_us: 2_000, p999_us: 5_000 },
//!     client_cpu: None,
//! };
//! assert_eq!(
//!     report::result_line(&s),
//!     "RESULT tps=5000.0 p50_us=700 p99_us=2000 p999_us=5000 max_us=9000"
//! );
//! ```
//!
//! Differences from the reference's DtBenchmark: unknown options are refused (exit 1)
//! rather than ignored; `--use-virtual-threads` / `--no-virtual-threads` are accepted
//! and do nothing (no virtual threads here); `--warmup` makes its fixed 3 s warm-up
//! configurable; a get run first writes every key once (`--no-preload` skips that, as
//! the reference does); `--json` and the percentile and RESULT lines are additions.

pub mod args;
pub mod report;
pub mod run;
pub mod stats;

pub use args::{BenchArgs, Op, ParseOutcome};
pub use report::{ClientCpu, Summary};
pub use run::{finish, run, run_cli, BenchError, Outcome};
pub use stats::{Percentiles, Window};
