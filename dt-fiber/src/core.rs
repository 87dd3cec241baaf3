//! State of one dispatcher thread that its groups share: the cached clock, the seeded
//! random generator, the timer heap, the round counter and the lists of groups with work.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use dt_common::{PerfCallback, PerfType, Timestamp};

use crate::clock::{Clock, DetRng};
use crate::dispatcher::DispatcherShared;
use crate::group::GroupInner;
use crate::task_pool::TaskPool;
use crate::timer::TimerHeap;
use crate::wait::WaitCell;

pub(crate) struct CoreInner {
    pub(crate) shared: Arc<DispatcherShared>,
    pub(crate) perf: Arc<dyn PerfCallback>,
    /// Cached `perf.accept(FiberRun)`: asked once, not per fiber run.
    pub(crate) perf_fiber_run: bool,
    /// Cached `perf.accept(FiberWork)`.
    pub(crate) perf_work: bool,
    /// Cached `perf.accept(FiberPoll)`.
    pub(crate) perf_poll: bool,
    clock: RefCell<Clock>,
    clock_stale: Cell<bool>,
    pub(crate) cell_pool: RefCell<Vec<Rc<WaitCell>>>,
    rng: RefCell<DetRng>,
    pub(crate) timers: TimerHeap,
    /// Recycled allocations of fiber futures.
    pub(crate) tasks: TaskPool,
    round: Cell<u64>,
    ready_groups: RefCell<VecDeque<Rc<GroupInner>>>,
    deferred_groups: RefCell<VecDeque<Rc<GroupInner>>>,
    pub(crate) stopping_groups: RefCell<Vec<Rc<GroupInner>>>,
}

impl CoreInner {
    pub(crate) fn new(shared: Arc<DispatcherShared>, clock: Clock, rng: DetRng) -> Self {
        let perf = shared.perf.clone();
        CoreInner {
            shared,
            perf_fiber_run: perf.accept(PerfType::FiberRun),
            perf_work: perf.accept(PerfType::FiberWork),
            perf_poll: perf.accept(PerfType::FiberPoll),
            perf,
            clock: RefCell::new(clock),
            clock_stale: Cell::new(false),
            cell_pool: RefCell::new(Vec::new()),
            rng: RefCell::new(rng),
            timers: TimerHeap::default(),
            tasks: TaskPool::default(),
            round: Cell::new(0),
            ready_groups: RefCell::new(VecDeque::new()),
            deferred_groups: RefCell::new(VecDeque::new()),
            stopping_groups: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn round(&self) -> u64 {
        self.round.get()
    }

    pub(crate) fn next_round(&self) {
        self.round.set(self.round.get() + 1);
    }

    /// The cached clock. The first reading in a round refreshes it (one clock read);
    /// later readings in the same round see the same value.
    pub(crate) fn now(&self) -> Timestamp {
        if self.clock_stale.get() {
            self.clock_stale.set(false);
            let mut c = self.clock.borrow_mut();
            c.refresh();
            return c.cached();
        }
        self.clock.borrow().cached()
    }

    /// Marks the cached clock stale at the start of a round: the next reading refreshes
    /// it. A round in which nothing reads the time (no timers pending, no fiber asking)
    /// then costs no clock read at all.
    pub(crate) fn invalidate_clock(&self) {
        self.clock_stale.set(true);
    }

    /// A forced fresh reading of both clocks.
    pub(crate) fn refresh_clock_full(&self) -> Timestamp {
        self.clock_stale.set(false);
        let mut c = self.clock.borrow_mut();
        c.refresh_full();
        c.cached()
    }

    pub(crate) fn is_virtual(&self) -> bool {
        self.clock.borrow().is_virtual()
    }

    pub(crate) fn advance_to(&self, nanos: i64) {
        self.clock_stale.set(false);
        self.clock.borrow_mut().advance_to(nanos);
    }

    pub(crate) fn random_u64(&self) -> u64 {
        self.rng.borrow_mut().next_u64()
    }

    pub(crate) fn add_timer(&self, d: Duration, cell: Rc<WaitCell>) {
        let now = self.now().nano_time;
        let d = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        self.timers.add(now.saturating_add(d), cell);
    }

    pub(crate) fn push_ready_group(&self, g: Rc<GroupInner>) {
        self.ready_groups.borrow_mut().push_back(g);
    }

    pub(crate) fn push_deferred_group(&self, g: Rc<GroupInner>) {
        self.deferred_groups.borrow_mut().push_back(g);
    }

    /// Whether some fiber can run now (this round or the next).
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready_groups.borrow().is_empty() || !self.deferred_groups.borrow().is_empty()
    }

    /// Lists the groups with fibers deferred to this round (yields, fairness) to run;
    /// each moves its deferred fibers into its ready queue when it runs.
    pub(crate) fn promote_deferred(&self) {
        let mut next = self.deferred_groups.borrow_mut();
        if next.is_empty() {
            return;
        }
        let mut ready = self.ready_groups.borrow_mut();
        while let Some(g) = next.pop_front() {
            if g.list_for_round() {
                ready.push_back(g);
            }
        }
    }

    /// Runs every ready group until its ready queue is empty.
    pub(crate) fn run_ready_groups(&self) {
        loop {
            let g = self.ready_groups.borrow_mut().pop_front();
            match g {
                Some(g) => g.run_ready(),
                None => return,
            }
        }
    }

    pub(crate) fn clear(&self) {
        self.ready_groups.borrow_mut().clear();
        self.deferred_groups.borrow_mut().clear();
        self.stopping_groups.borrow_mut().clear();
        self.timers.clear();
        self.cell_pool.borrow_mut().clear();
    }
}
