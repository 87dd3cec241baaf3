//! # dt-common: the foundation every dt layer stands on
//!
//! This crate owns the small, IO-free pieces that all other layers of dt (the Rust
//! Dongting) share:
//!
//! * [`Timestamp`]: a cached clock (wall-clock millis and monotonic nanos) that the
//!   owning event loop refreshes once per iteration, so hot paths never call the OS clock.
//! * [`DtTime`]: a deadline on the monotonic clock: remaining time, expired or not.
//! * [`DtError`]: the shared error enum a caller can `match` on (timeout, network, codec,
//!   flow control, not leader, stopped, io, bug ...).
//! * [`Executor`]: how one layer hands work to another thread (a fiber group, the
//!   blocking-IO pool, a thread pool); dt-net's processors and dt-raft's log use it.
//! * [`IdHashMap`] / [`IdHasher`]: maps keyed by integer ids (groups, nodes, peers)
//!   hashed with one multiply instead of SipHash, for per-request lookups.
//! * [`PerfCallback`]: the single hook a metrics exporter implements to see event counts
//!   and timed spans, keyed by [`PerfType`]; [`NoopPerfCallback`] is the default.
//!
//! * [`oneshot`]: a one-shot result slot usable as a `std::future::Future` or blocking
//!   (dt-net's `RpcFuture` and dt-client's `KvFuture` are this type).
//! * [`wake_batch`]: wake-ups of other threads' event loops held to the end of one pass
//!   of this thread's loop (a Dispatcher's round wakes each IO worker it answered
//!   through once).
//!
//! * [`prefetch`]: a cache hint (start loading a line now) for state machines that
//!   are told the entries they will execute next.
//!
//! * [`process_cpu`]: the CPU time this process has used (Linux's `/proc/self/stat`),
//!   for bench programs that report a cost per operation.
//!
//! * [`ports`]: free loopback ports, outside the range outgoing connections use, for the
//!   servers that tests and example programs start.
//!
//! * [`cpu_set`]: CPU lists (`0-3,6`) and restricting a thread to one (a dispatcher
//!   thread pinned by the server's `dispatcherCpus`).
//!
//! Apart from [`process_cpu`]'s reads of `/proc`, [`ports`]' probing binds and
//! [`cpu_set`]'s affinity calls, it does no IO of its own; [`vectors`] only tells tests where the golden data is.
//!
//! ```
//! use dt_common::{DtTime, Timestamp};
//! use std::time::Duration;
//!
//! let mut ts = Timestamp::now();
//! let deadline = DtTime::from_timestamp(&ts, Duration::from_millis(50));
//! assert!(!deadline.is_expired(&ts));
//! ts.refresh();
//! assert!(deadline.remaining(&ts) <= Duration::from_millis(50));
//! ```
#![warn(missing_docs)]
// One hint instruction (`prefetch`) and two system calls (`cpu_set`) need `unsafe`,
// each with its SAFETY note; nothing else may use it.
#![deny(unsafe_code)]

mod error;
mod executor;
mod id_hash;
mod perf;
mod perf_stats;
mod time;

pub use error::{DtError, DtResult};
pub use executor::{Executor, Task};
pub use id_hash::{IdHashMap, IdHasher};
pub use perf::{NoopPerfCallback, PerfCallback, PerfHook, PerfType};
pub use perf_stats::{PerfFigures, PerfStats};
pub use time::{mono_nanos, mono_nanos_at, DtTime, Timestamp};
pub mod cpu_set;
pub mod oneshot;
pub mod ports;
pub mod prefetch;
pub mod process_cpu;
pub mod vectors;
pub mod wake_batch;
