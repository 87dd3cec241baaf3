//! The Dispatcher: one OS thread running the fibers of several groups.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use dt_common::cpu_set::CpuSet;
use dt_common::{NoopPerfCallback, PerfCallback, PerfType, Task};

use crate::clock::{Clock, ClockMode, DetRng};
use crate::context;
use crate::core::CoreInner;
use crate::error::{check_thread_name, panic_message, FiberError};
use crate::fiber::FiberKey;
use crate::group::{FiberGroup, GroupInner};
use crate::handle::{GroupHandle, GroupShared};

/// Longest park of an idle dispatcher thread. Every message and every timer wakes it
/// earlier; this is only a safety net, long enough that idle dispatchers (one per Raft
/// group in the reference's layout) do not wake for nothing many times a second.
const MAX_PARK: Duration = Duration::from_millis(1000);
/// Most cross-thread messages taken per round, so timers and fibers are not starved.
const MAX_MSGS_PER_ROUND: usize = 16 * 1024;

pub(crate) type GroupTask = Box<dyn FnOnce(Option<&Rc<GroupInner>>) + Send>;

/// Work for one group that its poster keeps and posts again and again (a channel
/// sender's "drain my queue"): posted as an `Arc` clone, so a post allocates nothing.
pub(crate) trait GroupJob: Send + Sync {
    /// Runs inside the group, or with `None` if the group is gone.
    fn run(&self, g: Option<&Rc<GroupInner>>);
}

/// The work of a [`Msg::Group`].
pub(crate) enum GroupWork {
    /// Run once.
    Once(GroupTask),
    /// A kept job.
    Job(Arc<dyn GroupJob>),
}

impl GroupWork {
    fn run(self, g: Option<&Rc<GroupInner>>) {
        match self {
            GroupWork::Once(f) => f(g),
            GroupWork::Job(j) => j.run(g),
        }
    }
}
pub(crate) type GlobalTask = Box<dyn FnOnce(&mut Runner) + Send>;

/// A message to the dispatcher thread.
pub(crate) enum Msg {
    /// Work for one group; called with `None` if the group is gone.
    Group {
        gid: u64,
        enq_nanos: i64,
        f: GroupWork,
    },
    /// A [`dt_common::Task`] handed to a group's executor; run inside the group, dropped
    /// if the group is gone.
    Task {
        gid: u64,
        enq_nanos: i64,
        task: Task,
    },
    /// Work on the dispatcher itself (create a group, stop).
    Global(GlobalTask),
    /// A wake-up from a [`std::task::Waker`].
    Wake { gid: u64, key: FiberKey },
}

/// Dispatcher state shared with other threads.
pub(crate) struct DispatcherShared {
    pub(crate) name: String,
    tx: Sender<Msg>,
    stopped: AtomicBool,
    stop_requested: AtomicBool,
    next_group_id: AtomicU64,
    groups: Mutex<Vec<Arc<GroupShared>>>,
    exited: Mutex<bool>,
    exited_cv: Condvar,
    pub(crate) perf: Arc<dyn PerfCallback>,
    time_queue: bool,
    /// The dispatcher thread, once it runs (parks and unparks it).
    thread: OnceLock<Thread>,
    /// The dispatcher thread is parked, or about to park, waiting for a message.
    parked: AtomicBool,
}

impl DispatcherShared {
    pub(crate) fn stopped_error(&self) -> FiberError {
        FiberError::DispatcherStopped {
            dispatcher: self.name.clone(),
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn send(&self, m: Msg) -> bool {
        let ok = !self.is_stopped() && self.tx.send(m).is_ok();
        if ok {
            self.unpark();
        }
        ok
    }

    /// Wakes the dispatcher thread if it parks (after a message was queued).
    ///
    /// The thread parks itself instead of blocking in the channel's receive, whose
    /// spin-then-yield back-off cost every idle wake-up several `sched_yield` calls. The
    /// handshake is the store-buffer pattern: the sender queues, fences and reads
    /// `parked`; the receiver sets `parked`, fences and checks the queue; with both
    /// fences sequentially consistent one of them sees the other, so a message is never
    /// left waiting for the park's timeout.
    #[inline]
    fn unpark(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    pub(crate) fn post_group(&self, gid: u64, f: GroupTask) -> Result<(), FiberError> {
        self.post_group_work(gid, GroupWork::Once(f))
    }

    /// [`post_group`](Self::post_group) of a kept job.
    pub(crate) fn post_group_job(&self, gid: u64, j: Arc<dyn GroupJob>) -> Result<(), FiberError> {
        self.post_group_work(gid, GroupWork::Job(j))
    }

    fn post_group_work(&self, gid: u64, f: GroupWork) -> Result<(), FiberError> {
        let enq_nanos = if self.time_queue {
            dt_common::mono_nanos()
        } else {
            0
        };
        if self.send(Msg::Group { gid, enq_nanos, f }) {
            Ok(())
        } else {
            Err(self.stopped_error())
        }
    }

    /// Whether [`Dispatcher::stop`] was called (the groups are being shut down).
    pub(crate) fn is_stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// Queues `task` to run inside group `gid`, or hands it back when the dispatcher has
    /// stopped.
    pub(crate) fn post_task(&self, gid: u64, task: Task) -> Result<(), Task> {
        if self.is_stopped() {
            return Err(task);
        }
        let enq_nanos = if self.time_queue {
            dt_common::mono_nanos()
        } else {
            0
        };
        match self.tx.send(Msg::Task {
            gid,
            enq_nanos,
            task,
        }) {
            Ok(()) => {
                self.unpark();
                Ok(())
            }
            Err(e) => match e.into_inner() {
                Msg::Task { task, .. } => Err(task),
                // Not reached: the message sent is the one handed back.
                _ => Ok(()),
            },
        }
    }

    fn register_group(&self, name: &str) -> Arc<GroupShared> {
        let id = self.next_group_id.fetch_add(1, Ordering::Relaxed);
        let gs = Arc::new(GroupShared::new(id, name.to_string()));
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.retain(|g| !g.is_finished());
        groups.push(gs.clone());
        gs
    }

    fn unfinished_groups(&self) -> Vec<String> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .iter()
            .filter(|g| !g.is_finished())
            .map(|g| g.name.clone())
            .collect()
    }

    fn mark_exited(&self) {
        let mut e = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        *e = true;
        self.exited_cv.notify_all();
    }

    fn wait_exited(&self, deadline: Instant) -> bool {
        let mut e = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        while !*e {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            e = match self.exited_cv.wait_timeout(e, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// How to build a dispatcher.
#[derive(Clone)]
pub struct DispatcherConfig {
    /// Thread and log name.
    pub name: String,
    /// The clock: real, or virtual (time jumps to the next timer when all fibers wait).
    pub clock: ClockMode,
    /// Seed of the dispatcher's random generator; `None` seeds from the clock.
    pub seed: Option<u64>,
    /// Receives fiber runs, loop times and queue waits.
    pub perf: Arc<dyn PerfCallback>,
    /// The CPUs the dispatcher thread may run on; `None` (the default): wherever the
    /// operating system puts it. Every CPU listed must be one this process may use.
    pub cpus: Option<CpuSet>,
}

impl DispatcherConfig {
    /// A real-clock dispatcher called `name`, with no perf callback.
    pub fn new(name: impl Into<String>) -> Self {
        DispatcherConfig {
            name: name.into(),
            clock: ClockMode::Real,
            seed: None,
            perf: Arc::new(NoopPerfCallback),
            cpus: None,
        }
    }

    /// Checks the configuration; [`Dispatcher::start`] calls it before starting the
    /// thread. The name (the thread's name) must not be empty nor contain a NUL byte;
    /// `cpus`, when set, must name CPUs only among those the calling thread may use
    /// (the new thread inherits them), on a system that supports affinity (Linux).
    pub fn validate(&self) -> Result<(), FiberError> {
        check_thread_name("DispatcherConfig.name", &self.name)?;
        if let Some(cpus) = &self.cpus {
            cpus.check_usable().map_err(|e| FiberError::InvalidConfig {
                field: "DispatcherConfig.cpus",
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for DispatcherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherConfig")
            .field("name", &self.name)
            .field("clock", &self.clock)
            .field("seed", &self.seed)
            .field("cpus", &self.cpus)
            .finish()
    }
}

/// What [`Dispatcher::stop`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// Whether the dispatcher thread exited before the deadline.
    pub stopped: bool,
    /// Names of groups that had not finished at the deadline.
    pub unfinished_groups: Vec<String>,
}

/// The loop state living on the dispatcher thread.
pub(crate) struct Runner {
    pub(crate) core: Rc<CoreInner>,
    rx: Receiver<Msg>,
    groups: BTreeMap<u64, Rc<GroupInner>>,
    msgs: Vec<Msg>,
    stopping: bool,
}

pub(crate) fn new_shared(cfg: &DispatcherConfig) -> (Arc<DispatcherShared>, Receiver<Msg>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(DispatcherShared {
        name: cfg.name.clone(),
        tx,
        stopped: AtomicBool::new(false),
        stop_requested: AtomicBool::new(false),
        next_group_id: AtomicU64::new(1),
        groups: Mutex::new(Vec::new()),
        exited: Mutex::new(false),
        exited_cv: Condvar::new(),
        time_queue: cfg.perf.accept(PerfType::FiberQueue),
        perf: cfg.perf.clone(),
        thread: OnceLock::new(),
        parked: AtomicBool::new(false),
    });
    (shared, rx)
}

impl Runner {
    pub(crate) fn new(
        cfg: &DispatcherConfig,
        shared: Arc<DispatcherShared>,
        rx: Receiver<Msg>,
    ) -> Self {
        let rng = match cfg.seed {
            Some(s) => DetRng::new(s),
            None => DetRng::from_entropy(),
        };
        let core = Rc::new(CoreInner::new(shared, Clock::new(cfg.clock), rng));
        Runner {
            core,
            rx,
            groups: BTreeMap::new(),
            msgs: Vec::new(),
            stopping: false,
        }
    }

    /// Creates a group on this thread.
    pub(crate) fn create_group(&mut self, gs: Arc<GroupShared>) -> Rc<GroupInner> {
        let g = GroupInner::new(self.core.clone(), gs);
        if self.stopping {
            g.request_shutdown();
        }
        self.groups.insert(g.id(), g.clone());
        g
    }

    pub(crate) fn new_group(&mut self, name: &str) -> FiberGroup {
        let gs = self.core.shared.register_group(name);
        FiberGroup {
            inner: self.create_group(gs),
        }
    }

    pub(crate) fn request_stop(&mut self) {
        self.stopping = true;
        self.core
            .shared
            .stop_requested
            .store(true, Ordering::Release);
        let groups: Vec<Rc<GroupInner>> = self.groups.values().cloned().collect();
        for g in groups {
            g.request_shutdown();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.stopping && self.groups.is_empty()
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.core.has_ready()
    }

    pub(crate) fn has_msgs(&self) -> bool {
        !self.rx.is_empty()
    }

    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Takes queued messages, first blocking up to `block` for one. Returns whether the
    /// queue was drained completely.
    #[inline]
    pub(crate) fn collect(&mut self, block: Option<Duration>) -> bool {
        if block.is_none() && self.rx.is_empty() {
            return true;
        }
        self.collect_slow(block)
    }

    fn collect_slow(&mut self, block: Option<Duration>) -> bool {
        if let Some(t) = block.filter(|t| !t.is_zero()) {
            let start = self.core.perf_poll.then(Instant::now);
            let shared = &self.core.shared;
            if shared.thread.get().is_some() {
                // see DispatcherShared::unpark for the handshake
                shared.parked.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if self.rx.is_empty() {
                    std::thread::park_timeout(t);
                }
                shared.parked.store(false, Ordering::Relaxed);
            } else {
                match self.rx.recv_timeout(t) {
                    Ok(m) => self.msgs.push(m),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
                }
            }
            if let Some(s) = start {
                self.core
                    .perf
                    .fire_time(PerfType::FiberPoll, s.elapsed().as_nanos() as u64, 1, 0);
            }
        }
        if self.rx.is_empty() {
            return true;
        }
        while self.msgs.len() < MAX_MSGS_PER_ROUND {
            match self.rx.try_recv() {
                Ok(m) => self.msgs.push(m),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    /// One dispatcher round: refresh the clock, fire expired timers, run the collected
    /// messages, run every ready group, then finish the groups that may finish.
    pub(crate) fn round(&mut self, drained_all: bool) {
        let start = self.core.perf_work.then(Instant::now);
        self.core.next_round();
        self.core.invalidate_clock();
        if !self.core.timers.is_empty() && self.core.timers.next_deadline().is_some() {
            let now = self.core.now();
            self.core.timers.fire_expired(now.nano_time);
        }
        if !self.msgs.is_empty() {
            let mut msgs = std::mem::take(&mut self.msgs);
            for m in msgs.drain(..) {
                self.handle_msg(m);
            }
            self.msgs = msgs;
        }
        self.core.promote_deferred();
        // What the fibers send to other threads' event loops (answers to IO workers)
        // wakes each of them once, at the end of the round.
        dt_common::wake_batch::scope(|| self.core.run_ready_groups());
        if drained_all {
            self.finish_groups();
        }
        if let Some(s) = start {
            self.core
                .perf
                .fire_time(PerfType::FiberWork, s.elapsed().as_nanos() as u64, 1, 0);
        }
    }

    fn handle_msg(&mut self, m: Msg) {
        match m {
            Msg::Group { gid, enq_nanos, f } => {
                if enq_nanos != 0 {
                    let waited = dt_common::mono_nanos() - enq_nanos;
                    self.core
                        .perf
                        .fire_time(PerfType::FiberQueue, waited.max(0) as u64, 1, 0);
                }
                match self.groups.get(&gid).cloned() {
                    Some(g) => {
                        let _guard = context::enter_group(&g);
                        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f.run(Some(&g)))) {
                            let msg = panic_message(p.as_ref());
                            log::error!("task of group '{}' panicked: {}", g.name(), msg);
                            g.fatal(&format!("a group task panicked: {msg}"));
                        }
                    }
                    None => {
                        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f.run(None))) {
                            log::error!(
                                "rejection handler panicked: {}",
                                panic_message(p.as_ref())
                            );
                        }
                    }
                }
            }
            Msg::Task {
                gid,
                enq_nanos,
                task,
            } => self.run_task(gid, enq_nanos, task),
            Msg::Global(f) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(self))) {
                    log::error!("dispatcher task panicked: {}", panic_message(p.as_ref()));
                }
            }
            Msg::Wake { gid, key } => {
                if let Some(g) = self.groups.get(&gid) {
                    g.make_ready_key(key, false);
                }
            }
        }
    }

    /// Runs an executor's task inside its group (kept out of line: the group-closure and
    /// wake-up messages are the hot ones).
    #[inline(never)]
    fn run_task(&mut self, gid: u64, enq_nanos: i64, task: Task) {
        if enq_nanos != 0 {
            let waited = dt_common::mono_nanos() - enq_nanos;
            self.core
                .perf
                .fire_time(PerfType::FiberQueue, waited.max(0) as u64, 1, 0);
        }
        match self.groups.get(&gid).cloned() {
            Some(g) => {
                let _guard = context::enter_group(&g);
                if let Err(p) = catch_unwind(AssertUnwindSafe(task)) {
                    let msg = panic_message(p.as_ref());
                    log::error!("executor task of group '{}' panicked: {}", g.name(), msg);
                    g.fatal(&format!("an executor task panicked: {msg}"));
                }
            }
            None => {
                log::warn!("executor task for a finished fiber group dropped");
                drop_task(task);
            }
        }
    }

    fn finish_groups(&mut self) {
        if self.core.stopping_groups.borrow().is_empty() {
            return;
        }
        let stopping = std::mem::take(&mut *self.core.stopping_groups.borrow_mut());
        let mut keep = Vec::new();
        for g in stopping {
            if g.is_finished() {
                continue;
            }
            if g.can_finish() {
                g.finish();
                self.groups.remove(&g.id());
            } else {
                keep.push(g);
            }
        }
        self.core.stopping_groups.borrow_mut().extend(keep);
    }

    /// Next timer deadline (monotonic nanos of the dispatcher's clock).
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.core.timers.next_deadline()
    }

    /// The dispatcher thread's loop.
    fn run_thread(mut self) {
        let _ = self.core.shared.thread.set(std::thread::current());
        let virtual_clock = self.core.is_virtual();
        loop {
            let drained = if self.has_ready() {
                self.collect(None)
            } else if virtual_clock {
                match self.next_deadline() {
                    Some(d) if self.rx.is_empty() => {
                        self.core.advance_to(d);
                        self.collect(None)
                    }
                    Some(_) => self.collect(None),
                    None => self.collect(Some(MAX_PARK)),
                }
            } else {
                let wait = match self.next_deadline() {
                    Some(d) => {
                        let left = d - dt_common::mono_nanos();
                        if left <= 0 {
                            Duration::ZERO
                        } else {
                            MAX_PARK.min(Duration::from_nanos(left as u64))
                        }
                    }
                    None => MAX_PARK,
                };
                self.collect(Some(wait))
            };
            self.round(drained);
            if self.is_done() {
                break;
            }
        }
        self.close();
    }

    /// Marks the dispatcher stopped and rejects what is still queued.
    pub(crate) fn close(&mut self) {
        self.core.shared.stopped.store(true, Ordering::Release);
        let leftover: Vec<Msg> = self.rx.try_iter().collect();
        for m in leftover {
            match m {
                Msg::Group { f, .. } => {
                    let _ = catch_unwind(AssertUnwindSafe(|| f.run(None)));
                }
                Msg::Task { task, .. } => drop_task(task),
                Msg::Global(_) | Msg::Wake { .. } => {}
            }
        }
        let groups: Vec<Rc<GroupInner>> = std::mem::take(&mut self.groups).into_values().collect();
        for g in groups {
            g.request_shutdown();
            g.finish();
        }
        self.core.clear();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if !self.core.shared.is_stopped() {
            self.close();
        }
        self.core.shared.mark_exited();
    }
}

/// Drops a task that will not run (its group or dispatcher is gone); whatever it
/// captured is released, so a waiter on its result sees it fail. A panicking drop is
/// contained.
fn drop_task(task: Task) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(task))) {
        log::error!("dropping a task panicked: {}", panic_message(p.as_ref()));
    }
}

/// A dispatcher: one OS thread running several [`FiberGroup`]s.
///
/// The handle is `Send + Sync`; all group state lives on the dispatcher thread. Stop it
/// with [`Dispatcher::stop`]; dropping the handle stops it with a one-second deadline.
pub struct Dispatcher {
    shared: Arc<DispatcherShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl Dispatcher {
    /// Starts a dispatcher thread. An invalid configuration is refused with
    /// [`FiberError::InvalidConfig`] (see [`DispatcherConfig::validate`]).
    pub fn start(cfg: DispatcherConfig) -> Result<Dispatcher, FiberError> {
        cfg.validate()?;
        let (shared, rx) = new_shared(&cfg);
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name(cfg.name.clone())
            .spawn(move || {
                if let Some(cpus) = &cfg.cpus {
                    // Checked by `validate`; a set the system still refuses leaves the
                    // thread where it is, which changes only where it runs.
                    match cpus.pin_current_thread() {
                        Ok(()) => log::info!("dispatcher {} runs on CPU {cpus}", cfg.name),
                        Err(e) => {
                            log::warn!("dispatcher {}: could not pin to CPU {cpus}: {e}", cfg.name)
                        }
                    }
                }
                Runner::new(&cfg, s2, rx).run_thread()
            })
            .map_err(|e| FiberError::ThreadStart {
                thread: shared.name.clone(),
                message: e.to_string(),
            })?;
        Ok(Dispatcher {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The dispatcher's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Creates a group on the dispatcher and returns its handle at once; the group exists
    /// before any work posted through the handle runs.
    pub fn start_group(&self, name: &str) -> Result<GroupHandle, FiberError> {
        if self.shared.stop_requested.load(Ordering::Acquire) {
            return Err(self.shared.stopped_error());
        }
        let gs = self.shared.register_group(name);
        let gs2 = gs.clone();
        if !self
            .shared
            .send(Msg::Global(Box::new(move |r: &mut Runner| {
                r.create_group(gs2);
            })))
        {
            return Err(self.shared.stopped_error());
        }
        Ok(GroupHandle {
            shared: gs,
            disp: self.shared.clone(),
        })
    }

    /// Requests shutdown of every group and waits until they have finished (the thread
    /// exits) or `timeout` passes. The report names the groups that did not finish; the
    /// thread keeps running them in the background.
    pub fn stop(&self, timeout: Duration) -> StopReport {
        let deadline = Instant::now() + timeout;
        if !self.shared.stop_requested.swap(true, Ordering::AcqRel)
            && self
                .shared
                .tx
                .send(Msg::Global(Box::new(|r: &mut Runner| r.request_stop())))
                .is_ok()
        {
            self.shared.unpark();
        }
        let stopped = self.shared.wait_exited(deadline);
        if stopped {
            if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = t.join();
            }
            StopReport {
                stopped: true,
                unfinished_groups: Vec::new(),
            }
        } else {
            let unfinished = self.shared.unfinished_groups();
            log::warn!(
                "dispatcher '{}' did not stop within {:?}; unfinished groups: {:?}",
                self.shared.name,
                timeout,
                unfinished
            );
            StopReport {
                stopped: false,
                unfinished_groups: unfinished,
            }
        }
    }

    /// Whether the dispatcher thread has exited.
    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        let has_thread = self.thread.lock().map(|t| t.is_some()).unwrap_or(false);
        if has_thread {
            self.stop(Duration::from_secs(1));
        }
    }
}
