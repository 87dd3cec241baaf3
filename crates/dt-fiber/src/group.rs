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
use crate::future::FiberFuture;
use crate::handle::{GroupHandle, GroupShared};
use crate::wait::{Wait, WaitCell, WaitList};
use crate::waker::PollWaker;

use crate::task_pool::Task;

struct FiberSlot {
    /// Generation of the fiber in the slot; 0 when the slot is free (no key has gen 0),
    /// so the generation check every lookup does also rejects free slots.
    gen: u32,
    name: Cow<'static, str>,
    task: Option<Task>,
    daemon: bool,
    running: bool,
    scheduled: bool,
    notified: bool,
    interrupt_pending: bool,
    round: u64,
    ready_times: u32,
    max_ready: u32,
    join: Option<Rc<WaitList>>,
}

/// The fibers of a group and their run queues, behind one `RefCell` so that a poll or a
/// wake-up borrows once: slots reused in place (a new fiber's fields are written into a
/// free slot one by one instead of moving a whole slot struct in and out of a slab),
/// the ready queue of this round and the queue of fibers deferred to the next one.
#[derive(Default)]
struct Slots {
    v: Vec<FiberSlot>,
    free: Vec<u32>,
    len: usize,
    ready: VecDeque<FiberKey>,
    next: VecDeque<FiberKey>,
}

impl Slots {
    /// The slot at `idx`, possibly free: callers compare its generation with their key's.
    #[inline]
    fn get(&self, idx: usize) -> Option<&FiberSlot> {
        self.v.get(idx)
    }

    /// Like [`Slots::get`].
    #[inline]
    fn get_mut(&mut self, idx: usize) -> Option<&mut FiberSlot> {
        self.v.get_mut(idx)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// A free slot (its fields to be set by the caller) and its index.
    #[inline]
    fn alloc(&mut self) -> (usize, &mut FiberSlot) {
        self.len += 1;
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.v.push(FiberSlot {
                    gen: 0,
                    name: Cow::Borrowed(""),
                    task: None,
                    daemon: false,
                    running: false,
                    scheduled: false,
                    notified: false,
                    interrupt_pending: false,
                    round: 0,
                    ready_times: 0,
                    max_ready: 1,
                    join: None,
                });
                self.v.len() - 1
            }
        };
        (idx, &mut self.v[idx])
    }

    /// Frees a live slot; returns whether the fiber was a daemon and its join list.
    fn release(&mut self, idx: usize) -> (bool, Option<Rc<WaitList>>) {
        let s = &mut self.v[idx];
        s.gen = 0;
        s.name = Cow::Borrowed("");
        let join = s.join.take();
        self.free.push(idx as u32);
        self.len -= 1;
        (s.daemon, join)
    }

    /// Frees every slot; returns the fibers' tasks and join lists.
    fn drain(&mut self) -> Vec<(Option<Task>, Option<Rc<WaitList>>)> {
        let out = self
            .v
            .iter_mut()
            .filter(|s| s.gen != 0)
            .map(|s| (s.task.take(), s.join.take()))
            .collect();
        self.v.clear();
        self.free.clear();
        self.len = 0;
        self.ready.clear();
        self.next.clear();
        out
    }
}

/// The dispatcher-thread state of one group.
pub(crate) struct GroupInner {
    me: Weak<GroupInner>,
    core: Rc<CoreInner>,
    pub(crate) shared: Arc<GroupShared>,
    fibers: RefCell<Slots>,
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
    /// A finished wait cell of this group kept for its next wait (see `wait::release`).
    /// Cleared when the group finishes (the cell refers to the group).
    pub(crate) spare_cell: Cell<Option<Rc<WaitCell>>>,
}

impl GroupInner {
    pub(crate) fn new(core: Rc<CoreInner>, shared: Arc<GroupShared>) -> Rc<Self> {
        Rc::new_cyclic(|me| GroupInner {
            me: me.clone(),
            core,
            shared,
            fibers: RefCell::new(Slots::default()),
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
            spare_cell: Cell::new(None),
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
    pub(crate) fn spawn(&self, opts: FiberOptions, fut: Task) -> Result<FiberKey, FiberError> {
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
        let round = self.core.round();
        let key = {
            let mut fibers = self.fibers.borrow_mut();
            let (idx, slot) = fibers.alloc();
            slot.gen = gen;
            slot.name = opts.name;
            slot.task = Some(fut);
            slot.daemon = opts.daemon;
            slot.running = false;
            slot.scheduled = true;
            slot.notified = false;
            slot.interrupt_pending = false;
            slot.round = round;
            slot.ready_times = 1;
            slot.max_ready = opts.max_ready_per_round;
            let key = FiberKey {
                idx: idx as u32,
                gen,
            };
            // A new fiber is ready at once (scheduled, one use of its round budget).
            fibers.ready.push_back(key);
            key
        };
        if !opts.daemon {
            self.non_daemon.set(self.non_daemon.get() + 1);
        }
        self.mark_ready();
        Ok(key)
    }

    /// Makes a fiber ready (front or back of the ready queue), honouring its per-round
    /// budget. No effect on finished fibers, fibers already queued, or finished groups.
    pub(crate) fn make_ready(&self, key: FiberKey, front: bool) {
        if self.finished.get() {
            return;
        }
        let mut fibers = self.fibers.borrow_mut();
        let Some(slot) = fibers.get_mut(key.idx as usize) else {
            return;
        };
        if slot.gen != key.gen || slot.scheduled {
            return;
        }
        if slot.running {
            slot.notified = true;
            return;
        }
        slot.scheduled = true;
        let round = self.core.round();
        if slot.round != round {
            slot.round = round;
            slot.ready_times = 0;
        }
        if slot.ready_times >= slot.max_ready {
            self.defer(&mut fibers, key, front);
            drop(fibers);
            self.mark_deferred();
            return;
        }
        slot.ready_times += 1;
        if front {
            fibers.ready.push_front(key);
        } else {
            fibers.ready.push_back(key);
        }
        drop(fibers);
        self.mark_ready();
    }

    /// Puts the group in the dispatcher's list of groups to run, once.
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
    /// The caller then calls [`GroupInner::mark_deferred`] (after releasing the borrow).
    #[inline]
    fn defer(&self, fibers: &mut Slots, key: FiberKey, front: bool) {
        if front {
            // Keep the front section in signal order.
            let n = self.next_front.get();
            fibers.next.insert(n, key);
            self.next_front.set(n + 1);
        } else {
            fibers.next.push_back(key);
        }
    }

    /// Puts the group in the dispatcher's list of groups with fibers for the next
    /// round, once.
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
        let mut fibers = self.fibers.borrow_mut();
        let front = self.next_front.replace(0);
        if fibers.next.is_empty() || self.finished.get() {
            fibers.next.clear();
            return;
        }
        // The slots are not touched here: a stale key is skipped when polled, and the
        // wake-up was counted in the round it happened in, so `make_ready` starts the
        // new round's budget afresh (as the reference does).
        let Slots {
            ready, next: keys, ..
        } = &mut *fibers;
        if ready.is_empty() {
            std::mem::swap(ready, keys);
        } else {
            // Fibers made ready earlier in this round (by timers, cross-thread messages
            // or other groups) stay between the front section and the yielded fibers.
            for k in keys.drain(..front).rev() {
                ready.push_front(k);
            }
            while let Some(k) = keys.pop_front() {
                ready.push_back(k);
            }
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
        while self.poll_next() {}
        self.in_ready_list.set(false);
    }

    /// Polls the next ready fiber. Returns false when the ready queue is empty.
    fn poll_next(self: &Rc<Self>) -> bool {
        let (key, mut task, interrupt) = {
            let mut fibers = self.fibers.borrow_mut();
            let Some(key) = fibers.ready.pop_front() else {
                return false;
            };
            let Some(slot) = fibers.get_mut(key.idx as usize) else {
                return true;
            };
            if slot.gen != key.gen {
                return true;
            }
            slot.scheduled = false;
            let Some(task) = slot.task.take() else {
                return true;
            };
            slot.running = true;
            (key, task, std::mem::take(&mut slot.interrupt_pending))
        };
        let start = self.core.perf_fiber_run.then(Instant::now);
        let prev = context::begin_poll(key, interrupt);
        let res = {
            let pw = PollWaker {
                shared: &self.core.shared,
                gid: self.shared.id,
                key,
            };
            let waker = pw.waker();
            let mut cx = Context::from_waker(waker.get());
            catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut cx)))
        };
        // An interrupt no wait consumed in this poll stays pending for the next wait.
        let (yielded, interrupt_left) = context::end_poll(prev);
        if let Some(s) = start {
            self.core
                .perf
                .fire_time(PerfType::FiberRun, s.elapsed().as_nanos() as u64, 1, 0);
        }
        match res {
            Ok(Poll::Pending) => {
                let mut fibers = self.fibers.borrow_mut();
                match fibers.get_mut(key.idx as usize) {
                    Some(slot) if slot.gen == key.gen => {
                        slot.running = false;
                        slot.task = Some(task);
                        slot.interrupt_pending |= interrupt_left;
                        if yielded {
                            slot.notified = false;
                            slot.scheduled = true;
                            self.defer(&mut fibers, key, false);
                            drop(fibers);
                            self.mark_deferred();
                        } else if slot.notified {
                            slot.notified = false;
                            drop(fibers);
                            self.make_ready(key, false);
                        }
                    }
                    // The group finished during the poll (cannot happen today) or the
                    // slot vanished: drop the task outside the borrow.
                    _ => {
                        drop(fibers);
                        drop_quietly(&self.core, self.name(), task);
                    }
                }
            }
            Ok(Poll::Ready(())) => {
                self.end_fiber(key, task);
            }
            Err(p) => {
                let msg = panic_message(p.as_ref());
                let name = self.fiber_name(key);
                log::error!(
                    "fiber '{}' of group '{}' panicked: {}; shutting the group down",
                    name,
                    self.shared.name,
                    msg
                );
                self.end_fiber(key, task);
                self.fatal(&format!("fiber '{name}' panicked: {msg}"));
            }
        }
        true
    }

    pub(crate) fn fiber_name(&self, key: FiberKey) -> String {
        let fibers = self.fibers.borrow();
        match fibers.get(key.idx as usize) {
            Some(s) if s.gen == key.gen => s.name.to_string(),
            _ => String::from("?"),
        }
    }

    fn end_fiber(&self, key: FiberKey, task: Task) {
        let slot = {
            let mut fibers = self.fibers.borrow_mut();
            match fibers.get(key.idx as usize) {
                Some(s) if s.gen == key.gen => Some(fibers.release(key.idx as usize)),
                _ => None,
            }
        };
        drop_quietly(&self.core, self.name(), task);
        if let Some((daemon, join)) = slot {
            if !daemon {
                self.non_daemon.set(self.non_daemon.get() - 1);
            }
            if let Some(j) = join {
                j.signal_all(false);
            }
        }
    }

    /// Marks the fiber interrupted and makes it ready: the wait it is in (or its next
    /// wait) resumes with an interrupt error.
    pub(crate) fn interrupt(&self, key: FiberKey) -> bool {
        {
            let mut fibers = self.fibers.borrow_mut();
            match fibers.get_mut(key.idx as usize) {
                Some(s) if s.gen == key.gen => s.interrupt_pending = true,
                _ => return false,
            }
        }
        self.make_ready(key, false);
        true
    }

    pub(crate) fn is_alive(&self, key: FiberKey) -> bool {
        let fibers = self.fibers.borrow();
        matches!(fibers.get(key.idx as usize), Some(s) if s.gen == key.gen)
    }

    pub(crate) fn join_list(&self, key: FiberKey) -> Option<Rc<WaitList>> {
        let mut fibers = self.fibers.borrow_mut();
        match fibers.get_mut(key.idx as usize) {
            Some(s) if s.gen == key.gen => Some(
                s.join
                    .get_or_insert_with(|| Rc::new(WaitList::new()))
                    .clone(),
            ),
            _ => None,
        }
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
        let slots = self.fibers.borrow_mut().drain();
        self.next_front.set(0);
        {
            let _g = context::enter_group(self);
            for (task, join) in slots {
                if let Some(j) = &join {
                    j.signal_all(false);
                }
                if let Some(t) = task {
                    drop_quietly(&self.core, self.name(), t);
                }
            }
            let remote: Vec<Rc<dyn Any>> = self.remote.borrow_mut().drain().collect();
            drop(remote);
        }
        self.stop_list.clear();
        self.finish_list.signal_all(false);
        drop(self.spare_cell.take());
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
        let key = self.inner.spawn(opts, task)?;
        Ok(Fiber {
            group: self.inner.clone(),
            key,
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
