//! Simulation: a dispatcher driven step by step on the calling thread, on virtual time.

use std::time::Duration;

use dt_common::{PerfCallback, Timestamp};
use std::sync::Arc;

use crate::clock::{ClockMode, VIRTUAL_ORIGIN_NANOS};
use crate::dispatcher::{new_shared, DispatcherConfig, Runner};
use crate::group::FiberGroup;

/// Most rounds [`Simulation::run_until_idle`] runs before giving up (a fiber that yields
/// forever never lets the dispatcher become idle).
pub const MAX_IDLE_ROUNDS: usize = 1_000_000;

/// A dispatcher run on the calling thread under a virtual clock and a seeded random
/// generator: deterministic, and time only moves when the test says so or when every
/// fiber is waiting.
///
/// Groups of several future Raft nodes can live in one simulation; with the same seed
/// and the same scenario, fibers run in the same order and see the same times.
///
/// ```
/// use dt_fiber::{sleep, Simulation};
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let mut sim = Simulation::new(42);
/// let g = sim.new_group("node1");
/// let done = Rc::new(Cell::new(false));
/// let d2 = done.clone();
/// g.spawn("sleeper", async move {
///     sleep(Duration::from_secs(3600)).await.ok();
///     d2.set(true);
/// })
/// .unwrap();
/// assert!(sim.run_until(|| done.get(), Duration::from_secs(7200)));
/// assert_eq!(sim.elapsed(), Duration::from_secs(3600));
/// ```
pub struct Simulation {
    runner: Runner,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

impl Simulation {
    /// A simulation seeded with `seed`, wall clock starting at 2026-01-01T00:00:00Z.
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, 1_767_225_600_000, None)
    }

    /// A simulation with an explicit wall-clock start and an optional perf callback.
    pub fn with_config(
        seed: u64,
        start_wall_millis: i64,
        perf: Option<Arc<dyn PerfCallback>>,
    ) -> Self {
        let mut cfg = DispatcherConfig::new("simulation");
        cfg.clock = ClockMode::Virtual { start_wall_millis };
        cfg.seed = Some(seed);
        if let Some(p) = perf {
            cfg.perf = p;
        }
        let (shared, rx) = new_shared(&cfg);
        Simulation {
            runner: Runner::new(&cfg, shared, rx),
        }
    }

    /// Creates a group.
    pub fn new_group(&mut self, name: &str) -> FiberGroup {
        self.runner.new_group(name)
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        self.runner.core.now()
    }

    /// Virtual time elapsed since the simulation started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos((self.now().nano_time - VIRTUAL_ORIGIN_NANOS).max(0) as u64)
    }

    /// Number of groups not yet finished.
    pub fn group_count(&self) -> usize {
        self.runner.group_count()
    }

    /// One dispatcher round without moving time. Returns whether there is more to do
    /// at the current time (ready fibers or queued messages).
    pub fn step(&mut self) -> bool {
        let drained = self.runner.collect(None);
        self.runner.round(drained);
        self.runner.has_ready() || self.runner.has_msgs()
    }

    /// Runs rounds at the current time until no fiber is ready and no message is queued.
    /// Returns the number of rounds (at most [`MAX_IDLE_ROUNDS`]).
    pub fn run_until_idle(&mut self) -> usize {
        let mut rounds = 0;
        loop {
            rounds += 1;
            if !self.step() {
                return rounds;
            }
            if rounds >= MAX_IDLE_ROUNDS {
                log::warn!("simulation not idle after {rounds} rounds");
                return rounds;
            }
        }
    }

    /// Moves virtual time to the earliest pending timer and runs until idle. Returns
    /// false (and does nothing) when no timer is pending.
    pub fn advance_to_next_timer(&mut self) -> bool {
        match self.runner.next_deadline() {
            Some(d) => {
                self.runner.core.advance_to(d);
                self.run_until_idle();
                true
            }
            None => false,
        }
    }

    /// Runs, jumping from timer to timer, until `pred` holds or `max` of virtual time has
    /// passed. Returns whether `pred` held.
    pub fn run_until(&mut self, mut pred: impl FnMut() -> bool, max: Duration) -> bool {
        self.run_until_runner(|_| pred(), max)
    }

    /// [`Simulation::run_until`] with a predicate on the runner's own state.
    fn run_until_runner(&mut self, mut pred: impl FnMut(&Runner) -> bool, max: Duration) -> bool {
        let end = self
            .now()
            .nano_time
            .saturating_add(i64::try_from(max.as_nanos()).unwrap_or(i64::MAX));
        loop {
            self.run_until_idle();
            if pred(&self.runner) {
                return true;
            }
            match self.runner.next_deadline() {
                Some(d) if d <= end => self.runner.core.advance_to(d),
                _ => {
                    self.runner.core.advance_to(end);
                    self.run_until_idle();
                    return pred(&self.runner);
                }
            }
        }
    }

    /// Runs for `d` of virtual time (firing every timer due in that span).
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(|| false, d);
    }

    /// Requests shutdown of every group and runs until they finished or `max` of virtual
    /// time passed. Returns whether all finished.
    pub fn stop(&mut self, max: Duration) -> bool {
        self.runner.request_stop();
        self.run_until_runner(|r| r.is_done(), max)
    }
}
