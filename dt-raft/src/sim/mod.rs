//! Support code for the deterministic whole-cluster simulation (issue 11): the client
//! history model, its JSON-lines file format, and the linearizability checker that
//! judges a recorded history. The simulation itself comes with the consensus driver.
//!
//! * [`history`]: events (`invoke`, `ok`, `fail`, `info` of `put`, `get`, `cas`,
//!   `remove`), their Jepsen semantics, and the pairing into [`history::Operation`]s;
//! * [`jsonl`]: the `--history-out` format, one event per line:
//!   `{"process":p,"type":"invoke|ok|fail|info","f":"put|get|cas|remove","key":k,"value":v,"expected":e,"time":ns}`
//!   (plus an optional `"result":bool` for cas and remove);
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

pub mod bugs;
pub mod cluster;
pub mod disk;
pub mod gen;
pub mod history;
pub mod jsonl;
pub mod kv;
pub mod lincheck;
pub mod net;
