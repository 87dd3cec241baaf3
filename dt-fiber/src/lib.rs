//! # dt-fiber: the fiber runtime of dt
//!
//! This crate owns the runtime each Raft group lives in: a [`Dispatcher`] is one OS
//! thread running several [`FiberGroup`]s; a group is a single-threaded domain whose
//! state is touched only by its fibers, so it needs no locks. A fiber is an `async`
//! block spawned into a group; the dispatcher is our own executor (ready queues, a timer
//! heap, a cross-thread queue and a park with timeout), not tokio.
//!
//! What it provides:
//!
//! * Lifecycle: [`Dispatcher::start`], [`Dispatcher::start_group`],
//!   [`GroupHandle::request_shutdown`], [`Dispatcher::stop`]. A group finishes once
//!   shutdown was requested and its non-daemon fibers are done; daemon fibers are then
//!   abandoned.
//! * Fiber primitives, all awaited from fibers: [`sleep`], [`sleep_until_shutdown`],
//!   [`yield_now`], [`FiberCondition`] (signal one / all, timeout, wait on two),
//!   [`FiberFuture`] (first completion wins, completable from any thread through a
//!   [`FutureCompleter`], `map`, `all_of`), [`FiberChannel`] (unbounded, offer from any
//!   thread through a [`ChannelSender`]), [`Fiber::join`], [`Fiber::interrupt`].
//! * Fairness: a fiber is made ready at most N times per dispatcher round
//!   ([`FiberOptions::max_ready_per_round`], default 1); yields go to the next round.
//! * Containment: a panicking fiber is caught; its group is told (fatal error, shutdown)
//!   and other groups keep running.
//! * Threads talking to fibers: [`GroupHandle`] (`Send`) posts closures that build the
//!   `!Send` fiber state on the dispatcher thread; [`GroupExecutor`] is the same route
//!   as a [`dt_common::Executor`] (how dt-net's request processors hand a request to a
//!   Raft group's fibers); [`Published`] snapshots are read by other threads without
//!   touching group state.
//! * Blocking IO: an [`IoPool`] runs file work off the dispatcher; fibers await it.
//! * Virtual time: [`Simulation`] drives a dispatcher step by step on the calling thread
//!   with a virtual clock and a seeded random generator, for deterministic tests.
//! * Perf hooks: the dt-common [`PerfCallback`](dt_common::PerfCallback) sees fiber runs
//!   (`FiberRun`), loop work and park time (`FiberWork`, `FiberPoll`), queue waits
//!   (`FiberQueue`).
//!
//! ## Example
//!
//! ```
//! use dt_fiber::{Dispatcher, DispatcherConfig, FiberCondition};
//! use std::sync::mpsc;
//! use std::time::Duration;
//!
//! let dispatcher = Dispatcher::start(DispatcherConfig::new("dispatcher-1")).unwrap();
//! let group = dispatcher.start_group("raft-group-1").unwrap();
//! let (tx, rx) = mpsc::channel();
//!
//! // From this (non-dispatcher) thread: build the fibers on the dispatcher thread.
//! group
//!     .execute(move |g| {
//!         let chan = g.new_channel::<u32>();
//!         let cond = FiberCondition::new("ready");
//!         let (c2, cond2) = (chan.clone(), cond.clone());
//!         g.spawn("consumer", async move {
//!             cond2.wait().await.unwrap();
//!             let v = c2.take().await.unwrap();
//!             tx.send(v).unwrap();
//!         })
//!         .unwrap();
//!         g.spawn("producer", async move {
//!             chan.offer(7);
//!             cond.signal();
//!         })
//!         .unwrap();
//!     })
//!     .unwrap();
//!
//! assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
//! group.request_shutdown().unwrap();
//! assert!(group.wait_finished(Duration::from_secs(5)));
//! assert!(dispatcher.stop(Duration::from_secs(5)).stopped);
//! ```
//!
//! Fibers hand blocking file work to an [`IoPool`] and await the result:
//!
//! ```
//! use dt_fiber::{IoPool, Simulation};
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! let pool = IoPool::new("io", 2).unwrap();
//! let mut sim = Simulation::new(1);
//! let g = sim.new_group("g");
//! let got = Rc::new(Cell::new(0u64));
//! let (got2, pool2) = (got.clone(), pool.clone());
//! g.spawn("writer", async move {
//!     // The closure runs on an IO thread; the fiber waits without blocking the dispatcher.
//!     let n = pool2.submit(|| 40u64 + 2).unwrap().await.unwrap();
//!     got2.set(n);
//! })
//! .unwrap();
//! // Completions arrive from another thread: poll until they do.
//! for _ in 0..10_000 {
//!     sim.run_until_idle();
//!     if got.get() != 0 { break; }
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! assert_eq!(got.get(), 42);
//! pool.shutdown();
//! ```
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod channel;
mod clock;
mod condition;
mod context;
mod core;
mod dispatcher;
mod error;
mod executor;
mod fiber;
mod fiber_state;
mod future;
mod group;
mod handle;
mod io_pool;
mod share;
mod sim;
mod task_pool;
mod timer;
mod wait;
mod waker;

pub use channel::{ChannelSender, FiberChannel, Rejected, Take, TakeAll, TakeOpt};
pub use clock::{ClockMode, DetRng};
pub use condition::{CondWait, CondWaitEither, CondWaitTimeout, FiberCondition, Signaled};
pub use dispatcher::{Dispatcher, DispatcherConfig, StopReport};
pub use error::FiberError;
pub use executor::GroupExecutor;
pub use fiber::{Fiber, FiberOptions, Join};
pub use future::{FiberFuture, FutureCompleter, Get, Take as FutureTake};
pub use group::{current_group, FiberGroup, WaitFinished};
pub use handle::GroupHandle;
pub use io_pool::IoPool;
pub use share::Published;
pub use sim::{Simulation, MAX_IDLE_ROUNDS};
pub use timer::{sleep, sleep_until_shutdown, within, yield_now, Sleep, YieldNow};

use dt_common::Timestamp;

/// The current dispatcher's cached clock (virtual in a simulation), or `None` outside
/// a dispatcher thread's group.
pub fn now() -> Option<Timestamp> {
    context::current_group().map(|g| g.core().now())
}

/// Forces a fresh reading of the current dispatcher's clock (both wall and monotonic)
/// and returns it; for lease checks and entry timestamps that must not be stale.
/// `None` outside a dispatcher thread's group.
pub fn refresh_now() -> Option<Timestamp> {
    context::current_group().map(|g| g.core().refresh_clock_full())
}

/// 64 bits from the current dispatcher's random generator (seeded in a simulation), or
/// `None` outside a dispatcher thread's group.
pub fn random_u64() -> Option<u64> {
    context::current_group().map(|g| g.core().random_u64())
}
