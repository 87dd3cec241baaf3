//! The deterministic whole-cluster simulation (issue 11) and its support code. One
//! seed decides a whole run: nodes, network, disks, clients and faults share one
//! [`dt_fiber::Simulation`] thread on virtual time, so a failing seed replays exactly.
//!
//! * [`cluster`]: the harness: nodes running the consensus core, a KV workload,
//!   faults (network, disk, crash, clock), invariants checked as events happen, the
//!   linearizability check at the end ([`cluster::run_seed`]). The `sim` example runs
//!   seeds from the command line:
//!   `cargo run --release -p dt-raft --example sim -- --seeds N [--start S] [--nodes 3|5] [--faults net,disk,crash,clock,all] [--history-out DIR] [--bug NAME] [--list-bugs] [--membership]`;
//! * [`app`]: the extension point for the application the nodes run
//!   ([`app::SimApp`]; the simulation's own KV, [`app::KvApp`], by default; DtKV's
//!   simulation in dt-server plugs in its real state machine binding), and the
//!   state-digest checks every application gets;
//! * [`disk`]: [`disk::SimRaftLog`], an in-memory `RaftLog` holding the store's real
//!   item encoding, with fsync timing, torn tails at a crash, fail-stop fsync errors,
//!   log deletion after a snapshot and installs; [`disk::SimSnapshots`], the node's
//!   saved snapshot (lost if a crash interrupts its save);
//! * [`net`]: [`net::SimNet`], a seeded network with loss, delay, reordering,
//!   duplicates, partitions and slow links (install streams go in order, as on their
//!   TCP connection);
//! * [`drive`]: the nodes on the real fiber driver, the workload, the nemesis and the
//!   invariant checks;
//! * [`kv`]: the KV state machine, its command encoding and its snapshot encoding;
//! * [`bugs`]: deliberate bugs the simulation must find (its self-test);
//! * [`history`]: events (`invoke`, `ok`, `fail`, `info` of `put`, `get`, `cas`,
//!   `remove`), their Jepsen semantics, and the pairing into [`history::Operation`]s;
//! * [`jsonl`]: the `--history-out` format, one event per line:
//!   `{"process":p,"type":"invoke|ok|fail|info","f":"put|get|cas|remove","key":k,"value":v,"expected":e,"time":ns}`
//!   (plus an optional `"result":bool` for cas and remove; `time` is virtual
//!   nanoseconds), readable by any outside checker;
//! * [`lincheck`]: Wing & Gong's search with Lowe's memoisation over a per-key register
//!   model, with a step budget;
//! * [`gen`]: random histories linearizable by construction (tests, benchmarks).
//!
//! ```
//! use dt_raft::sim::history::History;
//! use dt_raft::sim::lincheck::{check_events, CheckConfig, Verdict};
//!
//! let mut h = History::new();
//! h.put(0, 1, 10).get(1, 1); // both pending at once
//! h.ok(1, Some(10)).ok(0, None); // the read saw the concurrent write
//! h.get(1, 1).ok(1, None); // but a later read saw nothing: stale
//! let report = check_events(&h.events, &CheckConfig::default()).unwrap();
//! assert!(matches!(report.verdict, Verdict::Violation(_)));
//! ```

pub mod app;
pub mod bugs;
pub mod cluster;
pub mod disk;
pub mod drive;
pub mod gen;
pub mod history;
pub mod jsonl;
pub mod kv;
pub mod lincheck;
pub mod net;

/// How many seeds a test runs: `release` in an optimised build, `debug` otherwise (a
/// debug build simulates about 10x slower). The raft and DtKV simulation tests share it
/// so that CI's seed counts stay in one style.
pub fn seeds_for_build(release: u64, debug: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}
