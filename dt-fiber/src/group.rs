//! Fiber groups: single-threaded domains of fibers, their lifecycle and their handles.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use dt_common::{PerfType, Timestamp};
use slab::Slab;

use crate::channel::FiberChannel;
use crate::condition::FiberCondition;
use crate::context;
use crate::core::CoreInner;
use crate::error::{panic_message, FiberError};
use crate::fiber::{Fiber, FiberKey, FiberOptions};
use crate::fiber_state::{FiberState, Registry};
use crate::future::FiberFuture;
use crate::handle::{GroupHandle, GroupShared};
use crate::wait::{pool_cell, Wait, WaitList};
use crate::waker::PollWaker;

use crate::task_pool::Task;

/// The dispatcher-thread state of one group.
pub(crate) struct GroupInner {
    me: Weak<GroupInner>,
    core: Rc<CoreInner>,
    pub(crate) shared: Arc<GroupShared>,
    fibers: RefCell<Registry>,
    /// Fibers to poll in this round, in order.
    ready: RefCell<VecDeque<Rc<FiberState>>>,
    /// Fibers deferred to the next round (yields, fairness).
    next: RefCell<VecDeque<Rc<FiberState>>>,
    next_gen: Cell<u32>,
    /// Length of the front section of the next round's queue (see [`GroupInner::defer`]).
    next_front: Cell<usize>,
    in_ready_list: Cell<bool>,
    in_deferred_list: Cell<bool>,
    /// The round in which `in_deferred_list` was set.
    deferred_round: Cell<u64>,
    non_daemon: Cell<usize>,
    should_stop: Cell<bool>,
    finished: Cell<bool>,
    stop_list: WaitList,
    remote: RefCell<Slab<Rc<dyn Any>>>,
    finish_list: WaitList,
}

impl GroupInner {
    pub(crate) fn new(core: Rc<CoreInner>, shared: Arc<GroupShared>) -> Rc<Self> {
        Rc::new_cyclic(|me| GroupInner {
            me: me.clone(),
            core,
            shared,
            fibers: RefCell::new(Registry::default()),
            ready: RefCell::new(VecDeque::new()),
            next: RefCell::new(VecDeque::new()),
            next_gen: Cell::new(0),
            next_front: Cell::new(0),
            in_ready_list: Cell::new(false),
            in_deferred_list: Cell::new(false),
            deferred_round: Cell::new(0),
            non_daemon: Cell::new(0),
            should_stop: Cell::new(false),
            finished: Cell::new(false),
            stop_list: WaitList::new(),
            remote: RefCell::new(Slab::new()),
            finish_list: WaitList::new(),
        })
    }

    pub(crate) fn core(&self) -> &Rc<CoreInner> {
        &self.core
    }

    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.name
    }

    pub(crate) fn should_stop(&self) -> bool {
        self.should_stop.get()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.get()
    }

    pub(crate) fn stop_list(&self) -> &WaitList {
        &self.stop_list
    }

    /// Waiters woken when the group finishes.
    pub(crate) fn finish_list(&self) -> &WaitList {
        &self.finish_list
    }

    pub(crate) fn rc(&self) -> Option<Rc<GroupInner>> {
        self.me.upgrade()
    }

    #[inline(always)]
    pub(crate) fn spawn(
        &self,
        opts: FiberOptions,
        fut: Task,
    ) -> Result<Rc<FiberState>, FiberError> {
        if self.finished.get() {
            return Err(FiberError::GroupFinished {
                group: self.shared.name.clone(),
            });
        }
        let gen = match self.next_gen.get().wrapping_add(1) {
            0 => 1,
            g => g,
        };
        self.next_gen.set(gen);
        let f =
            self.fibers
                .borrow_mut()
                .insert(gen, opts.name, opts.daemon, opts.max_ready_per_round);
        f.set_task(fut);
        // A new fiber is ready at once (scheduled, one use of its round budget).
        f.scheduled.set(true);
        f.round.set(self.core.round());
        f.ready_times.set(1);
        self.ready.borrow_mut().push_back(f.clone());
        if !opts.daemon {
            self.non_daemon.set(self.non_daemon.get() + 1);
        }
        self.mark_ready();
        Ok(f)
    }

    /// Makes the fiber with `key` ready, if it is still alive (wake-ups from other
    /// threads name fibers by key).
    pub(crate) fn make_ready_key(&self, key: FiberKey, front: bool) {
        let f = self.fibers.borrow().get(key).cloned();
        if let Some(f) = f {
            self.make_ready(&f, front);
        }
    }

    /// Makes a fiber ready (front or back of the ready queue), honouring its per-round
    /// budget. No effect on ended fibers, fibers already queued, or finished groups.
    #[inline]
    pub(crate) fn make_ready(&self, f: &Rc<FiberState>, front: bool) {
        // A live fiber means a live group: finishing a group ends all its fibers.
        if !f.alive.get() || f.scheduled.get() {
            return;
        }
        if f.running.get() {
            f.notified.set(true);
            return;
        }
        f.scheduled.set(true);
        let round = self.core.round();
        if f.round.get() != round {
            f.round.set(round);
            f.ready_times.set(0);
        }
        if f.ready_times.get() >= f.max_ready {
            self.defer(f.clone(), front);
            self.mark_deferred();
            return;
        }
        f.ready_times.set(f.ready_times.get() + 1);
        {
            let mut ready = self.ready.borrow_mut();
            if front {
                ready.push_front(f.clone());
            } else {
                ready.push_back(f.clone());
            }
        }
        self.mark_ready();
    }

    /// Puts the group in the dispatcher's list of groups to run, once.
    #[inline]
    fn mark_ready(&self) {
        if !self.in_ready_list.get() {
            if let Some(me) = self.rc() {
                self.in_ready_list.set(true);
                self.core.push_ready_group(me);
            }
        }
    }

    /// Queues a fiber for the next round. Fibers signalled to the front (`front`) but
    /// over budget run first in the next round, ahead of yielded ones (as the
    /// reference does): they form the front section of the next round's queue.
    /// The caller then calls [`GroupInner::mark_deferred`].
    #[inline]
    fn defer(&self, f: Rc<FiberState>, front: bool) {
        let mut next = self.next.borrow_mut();
        if front {
            // Keep the front section in signal order.
            let n = self.next_front.get();
            next.insert(n, f);
            self.next_front.set(n + 1);
        } else {
            next.push_back(f);
        }
    }

    /// Puts the group in the dispatcher's list of groups with fibers for the next
    /// round, once.
    #[inline]
    fn mark_deferred(&self) {
        if !self.in_deferred_list.get() {
            if let Some(me) = self.rc() {
                self.in_deferred_list.set(true);
                self.deferred_round.set(self.core.round());
                self.core.push_deferred_group(me);
            }
        }
    }

    /// Called by the dispatcher at the start of a round for a group with fibers deferred
    /// to it: lists the group to run. Its fibers are moved into its ready queue when it
    /// runs ([`GroupInner::run_ready`]), which saves touching two lists per round.
    /// Returns whether the group was added to the ready list (false if already there).
    #[inline]
    pub(crate) fn list_for_round(&self) -> bool {
        if self.in_ready_list.get() {
            return false;
        }
        self.in_ready_list.set(true);
        true
    }

    /// Moves the fibers deferred to an earlier round into the ready queue.
    fn promote_next_round(&self) {
        self.in_deferred_list.set(false);
        let front = self.next_front.replace(0);
        let mut keys = self.next.borrow_mut();
        if keys.is_empty() || self.finished.get() {
            keys.clear();
            return;
        }
        // The fibers' states are not touched here: the wake-up was counted in the round
        // it happened in, so `make_ready` starts the new round's budget afresh (as the
        // reference does).
        let mut ready = self.ready.borrow_mut();
        if ready.is_empty() {
            std::mem::swap(&mut *ready, &mut *keys);
        } else {
            // Fibers made ready earlier in this round (by timers, cross-thread messages
            // or other groups) stay between the front section and the yielded fibers.
            for f in keys.drain(..front).rev() {
                ready.push_front(f);
            }
            ready.extend(keys.drain(..));
        }
    }

    /// Runs this group's ready fibers until its ready queue is empty, after moving in
    /// the fibers deferred to this round.
    ///
    /// The group stays marked as listed while it runs, so fibers made ready meanwhile
    /// join this run instead of queueing the group for a second, empty run.
    pub(crate) fn run_ready(self: &Rc<Self>) {
        // Fibers deferred in this very round (a second run of the group in one round)
        // wait for the next one.
        if self.in_deferred_list.get() && self.deferred_round.get() < self.core.round() {
            self.promote_next_round();
        }
        let _g = context::enter_group(self);
        // One unwind guard per run rather than one per poll: the fibers' futures stay
        // in their state blocks while polled, so unwinding drops none of them.
        while let Err(p) = catch_unwind(AssertUnwindSafe(|| while self.poll_next() {})) {
            if !self.fiber_panicked(p.as_ref()) {
                // Not from a fiber's poll: a bug in the dispatcher itself.
                std::panic::resume_unwind(p);
            }
        }
        self.in_ready_list.set(false);
    }

    /// Polls the next ready fiber. Returns false when the ready queue is empty.
    fn poll_next(self: &Rc<Self>) -> bool {
        let Some(f) = self.ready.borrow_mut().pop_front() else {
            return false;
        };
        if !f.alive.get() {
            return true;
        }
        f.scheduled.set(false);
        let interrupt = f.interrupt_pending.replace(false);
        let start = self.core.perf_fiber_run.then(Instant::now);
        let prev = context::begin_poll(&f, interrupt);
        // A fiber whose waker was kept before is polled with its owned waker (cloning
        // it again is a reference count); else with a borrowed one (see `crate::waker`).
        let owned = f.waker.take();
        let res = match &owned {
            Some(w) => {
                let mut cx = Context::from_waker(w);
                f.poll_task(&mut cx)
            }
            None => {
                let pw = PollWaker {
                    shared: &self.core.shared,
                    gid: self.shared.id,
                    key: f.key,
                    fiber: Rc::as_ptr(&f) as usize,
                };
                let waker = pw.waker();
                let mut cx = Context::from_waker(waker.get());
                // A panic unwinds to `run_ready`, which finds the fiber through the poll
                // context (still set) and ends it.
                f.poll_task(&mut cx)
            }
        };
        if owned.is_some() {
            f.waker.set(owned);
        }
        // An interrupt no wait consumed in this poll stays pending for the next wait.
        let (yielded, interrupt_left) = context::end_poll(prev);
        if let Some(s) = start {
            self.core
                .perf
                .fire_time(PerfType::FiberRun, s.elapsed().as_nanos() as u64, 1, 0);
        }
        // Groups finish between runs, never during a poll; were one to finish here, the
        // abandoned fiber's future would still be dropped with its state block, and a
        // finished group's queues are emptied without running anything.
        match res {
            Poll::Pending => {
                if interrupt_left {
                    f.interrupt_pending.set(true);
                }
                if yielded {
                    f.notified.set(false);
                    f.scheduled.set(true);
                    self.defer(f, false);
                    self.mark_deferred();
                } else if f.notified.get() {
                    f.notified.set(false);
                    self.make_ready(&f, false);
                }
            }
            Poll::Ready(()) => {
                self.end_fiber(f);
            }
        }
        true
    }

    /// Ends the fiber whose poll panicked with `p` (identified by the poll context the
    /// unwinding left set) and shuts the group down. Returns false if the panic did not
    /// come from a fiber's poll.
    fn fiber_panicked(&self, p: &(dyn std::any::Any + Send)) -> bool {
        let ptr = context::abandon_poll();
        let f = self.fibers.borrow().find(ptr);
        let Some(f) = f else {
            return false;
        };
        f.running.set(false);
        let msg = panic_message(p);
        let name = f.name.to_string();
        log::error!(
            "fiber '{}' of group '{}' panicked: {}; shutting the group down",
            name,
            self.shared.name,
            msg
        );
        self.end_fiber(f);
        self.fatal(&format!("fiber '{name}' panicked: {msg}"));
        true
    }

    /// Ends a fiber that is not being polled: drops its future, wakes its joiners,
    /// frees its registry slot.
    fn end_fiber(&self, f: Rc<FiberState>) {
        let was_alive = f.alive.replace(false);
        if let Some(task) = f.take_task() {
            drop_quietly(&self.core, self.name(), task);
        }
        if was_alive {
            if !f.daemon {
                self.non_daemon.set(self.non_daemon.get() - 1);
            }
            if let Some(j) = f.join.take() {
                j.signal_all(false);
            }
        }
        if let Some(c) = f.spare_cell.take() {
            pool_cell(c);
        }
        f.waker.set(None);
        self.fibers.borrow_mut().remove(&f);
    }

    /// Marks the fiber interrupted and makes it ready: the wait it is in (or its next
    /// wait) resumes with an interrupt error.
    pub(crate) fn interrupt(&self, f: &Rc<FiberState>) -> bool {
        if !f.alive.get() {
            return false;
        }
        f.interrupt_pending.set(true);
        self.make_ready(f, false);
        true
    }

    /// Asks the group to shut down: sets should-stop, publishes it, wakes fibers waiting
    /// for it. Idempotent.
    pub(crate) fn request_shutdown(&self) {
        if self.should_stop.get() || self.finished.get() {
            return;
        }
        self.should_stop.set(true);
        self.shared.should_stop.store(true, Ordering::Release);
        self.stop_list.signal_all(false);
        if let Some(me) = self.rc() {
            self.core.stopping_groups.borrow_mut().push(me);
        }
    }

    pub(crate) fn fatal(&self, msg: &str) {
        self.shared.set_fatal(msg);
        self.request_shutdown();
    }

    /// Whether a stopping group may finish now.
    pub(crate) fn can_finish(&self) -> bool {
        self.should_stop.get() && !self.finished.get() && self.non_daemon.get() == 0
    }

    /// Finishes the group: abandons daemon fibers, releases remote registrations,
    /// publishes the finished flag.
    pub(crate) fn finish(self: &Rc<Self>) {
        if self.finished.get() {
            return;
        }
        self.finished.set(true);
        let fibers = self.fibers.borrow_mut().drain();
        self.ready.borrow_mut().clear();
        self.next.borrow_mut().clear();
        self.next_front.set(0);
        {
            let _g = context::enter_group(self);
            for f in fibers {
                f.alive.set(false);
                drop(f.spare_cell.take());
                if let Some(j) = f.join.take() {
                    j.signal_all(false);
                }
                if let Some(t) = f.take_task() {
                    drop_quietly(&self.core, self.name(), t);
                }
            }
            let remote: Vec<Rc<dyn Any>> = self.remote.borrow_mut().drain().collect();
            drop(remote);
        }
        self.stop_list.clear();
        self.finish_list.signal_all(false);
        self.shared.set_finished();
        log::debug!("fiber group '{}' finished", self.shared.name);
    }

    pub(crate) fn register_remote(&self, obj: Rc<dyn Any>) -> Result<usize, FiberError> {
        if self.finished.get() {
            return Err(FiberError::GroupFinished {
                group: self.shared.name.clone(),
            });
        }
        Ok(self.remote.borrow_mut().insert(obj))
    }

    pub(crate) fn remote_get(&self, slot: usize) -> Option<Rc<dyn Any>> {
        self.remote.borrow().get(slot).cloned()
    }

    pub(crate) fn remote_remove(&self, slot: usize) -> Option<Rc<dyn Any>> {
        self.remote.borrow_mut().try_remove(slot)
    }

    pub(crate) fn live_fibers(&self) -> usize {
        self.fibers.borrow().len()
    }
}

/// Drops a fiber's future (recycling its allocation), containing a panic from its
/// destructors.
fn drop_quietly(core: &CoreInner, group: &str, task: Task) {
    if let Err(p) = core.tasks.drop_task(task) {
        log::error!(
            "dropping a fiber of group '{}' panicked: {}",
            group,
            panic_message(p.as_ref())
        );
    }
}

/// A handle to a fiber group, usable on its dispatcher thread (it is `!Send`).
///
/// Fibers are started with [`FiberGroup::spawn`]; primitives are created with
/// [`FiberGroup::new_channel`], [`FiberGroup::new_future`] and [`FiberCondition::new`].
/// Other threads use a [`GroupHandle`] instead.
#[derive(Clone)]
pub struct FiberGroup {
    pub(crate) inner: Rc<GroupInner>,
}

impl fmt::Debug for FiberGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberGroup")
            .field("name", &self.inner.name())
            .finish()
    }
}

impl FiberGroup {
    /// The group's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Starts a non-daemon fiber running `fut`. It runs in this dispatcher round if the
    /// group is being run, else in the next. Fails when the group has finished.
    #[inline]
    pub fn spawn<F>(&self, name: impl Into<Cow<'static, str>>, fut: F) -> Result<Fiber, FiberError>
    where
        F: Future<Output = ()> + 'static,
    {
        self.spawn_with(FiberOptions::new(name), fut)
    }

    /// Starts a fiber with explicit [`FiberOptions`] (daemon, fairness budget).
    #[inline]
    pub fn spawn_with<F>(&self, opts: FiberOptions, fut: F) -> Result<Fiber, FiberError>
    where
        F: Future<Output = ()> + 'static,
    {
        let task = self.inner.core.tasks.boxed(fut);
        let state = self.inner.spawn(opts, task)?;
        Ok(Fiber {
            group: self.inner.clone(),
            state,
        })
    }

    /// A new unbounded channel consumed by fibers of this group.
    pub fn new_channel<T: 'static>(&self) -> FiberChannel<T> {
        FiberChannel::new(self)
    }

    /// A new, not yet completed future owned by this group.
    pub fn new_future<T: 'static>(&self) -> FiberFuture<T> {
        FiberFuture::new(self)
    }

    /// A new condition (conditions are not tied to a group; this is a convenience).
    pub fn new_condition(&self, name: &'static str) -> FiberCondition {
        FiberCondition::new(name)
    }

    /// Whether shutdown of this group was requested.
    pub fn should_stop(&self) -> bool {
        self.inner.should_stop()
    }

    /// Whether the group has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Requests shutdown: the group finishes once its non-daemon fibers are done.
    pub fn request_shutdown(&self) {
        self.inner.request_shutdown()
    }

    /// Records an unrecoverable error, requests shutdown of the group and returns an
    /// error the caller can propagate (e.g. after a failed log write).
    pub fn fatal(&self, msg: impl Into<String>) -> FiberError {
        let msg = msg.into();
        log::error!("fatal error in fiber group '{}': {}", self.name(), msg);
        self.inner.fatal(&msg);
        FiberError::Fatal {
            group: self.name().to_string(),
            message: msg,
        }
    }

    /// A `Send` handle for other threads.
    pub fn handle(&self) -> GroupHandle {
        GroupHandle {
            shared: self.inner.shared.clone(),
            disp: self.inner.core.shared.clone(),
        }
    }

    /// The dispatcher's cached clock, refreshed once per round.
    pub fn now(&self) -> Timestamp {
        self.inner.core.now()
    }

    /// Re-reads the clock (for lease checks and entry timestamps) and returns it.
    pub fn refresh_now(&self) -> Timestamp {
        self.inner.core.refresh_clock_full()
    }

    /// Whether the dispatcher runs on a virtual clock (a simulation): its readings are
    /// then not comparable with [`dt_common::mono_nanos`] on other threads.
    pub fn virtual_clock(&self) -> bool {
        self.inner.core.is_virtual()
    }

    /// 64 bits from the dispatcher's (possibly seeded) random generator.
    pub fn random_u64(&self) -> u64 {
        self.inner.core.random_u64()
    }

    /// Number of fibers alive in the group (daemons included).
    pub fn fiber_count(&self) -> usize {
        self.inner.live_fibers()
    }

    /// Waits until the group finishes (for fibers of *other* groups on the same
    /// dispatcher). Resolves immediately if it already has.
    pub fn wait_finished(&self) -> WaitFinished {
        WaitFinished {
            group: self.inner.clone(),
            wait: Wait::new(),
        }
    }
}

/// The future of [`FiberGroup::wait_finished`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitFinished {
    group: Rc<GroupInner>,
    wait: Wait,
}

impl Future for WaitFinished {
    type Output = Result<(), FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.group.is_finished() {
            return Poll::Ready(Ok(()));
        }
        let list = &this.group.finish_list;
        this.wait.poll(&[list], None).map(|r| r.map(|_| ()))
    }
}

/// The group of the fiber (or group task) currently running on this thread.
pub fn current_group() -> Option<FiberGroup> {
    context::current_group().map(|inner| FiberGroup { inner })
}
