//! The state of one fiber, and the registry of a group's fibers.
//!
//! A fiber's state lives in its own reference-counted block, shared by the group's
//! registry, the run queues it is in, the waits it is registered with and the handles
//! to it. Making a fiber ready, polling it and firing one of its waits touch this block
//! directly, without looking the fiber up by index.

use std::borrow::Cow;
use std::cell::{Cell, UnsafeCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::fiber::FiberKey;
use crate::task_pool::Task;
use crate::wait::{WaitCell, WaitList};

/// One fiber. Fields set when the fiber starts are plain; fields that change while
/// others refer to the block are cells.
pub(crate) struct FiberState {
    /// Registry index and generation: identifies the fiber in wake-up messages from
    /// other threads.
    pub(crate) key: FiberKey,
    pub(crate) name: Cow<'static, str>,
    pub(crate) daemon: bool,
    /// Times the fiber may be made ready per dispatcher round.
    pub(crate) max_ready: u32,
    /// The fiber's future. Polled in place (see [`FiberState::poll_task`]); only
    /// reached through this type's methods.
    task: UnsafeCell<Option<Task>>,
    /// Cleared when the fiber ends (or is abandoned with its group).
    pub(crate) alive: Cell<bool>,
    /// Being polled now.
    pub(crate) running: Cell<bool>,
    /// In a run queue (this round's or the next's).
    pub(crate) scheduled: Cell<bool>,
    /// Made ready while running: goes back to the ready queue after its poll.
    pub(crate) notified: Cell<bool>,
    /// An interrupt waits to be delivered to the fiber's current or next wait.
    pub(crate) interrupt_pending: Cell<bool>,
    /// The round whose budget `ready_times` counts.
    pub(crate) round: Cell<u64>,
    pub(crate) ready_times: Cell<u32>,
    /// Fibers joining this one.
    pub(crate) join: Cell<Option<Rc<WaitList>>>,
    /// A finished wait cell of this fiber kept for its next wait. Only ever holds a
    /// cell pointing at this fiber, owned by nothing else; emptied when the fiber ends
    /// (the cell refers back to the fiber).
    pub(crate) spare_cell: Cell<Option<Rc<WaitCell>>>,
    /// The fiber's owned waker, made the first time a future kept its waker past a
    /// poll (see [`crate::waker`]); its later polls get this one, so keeping the
    /// waker again costs no allocation. Emptied when the fiber ends.
    pub(crate) waker: Cell<Option<Waker>>,
}

impl FiberState {
    fn new(key: FiberKey, name: Cow<'static, str>, daemon: bool, max_ready: u32) -> Self {
        FiberState {
            key,
            name,
            daemon,
            max_ready,
            task: UnsafeCell::new(None),
            alive: Cell::new(true),
            running: Cell::new(false),
            scheduled: Cell::new(false),
            notified: Cell::new(false),
            interrupt_pending: Cell::new(false),
            round: Cell::new(0),
            ready_times: Cell::new(0),
            join: Cell::new(None),
            spare_cell: Cell::new(None),
            waker: Cell::new(None),
        }
    }

    /// Gives the fiber its future (when it starts).
    pub(crate) fn set_task(&self, t: Task) {
        if self.running.get() {
            return;
        }
        // SAFETY: the task is only reached through this type's methods; none of them
        // keeps a reference past its return except `poll_task`, which holds one for the
        // duration of the poll with `running` set, and we checked `running` is clear.
        unsafe { *self.task.get() = Some(t) };
    }

    /// Takes the fiber's future out (when it ends or is abandoned). `None` while the
    /// fiber is being polled.
    pub(crate) fn take_task(&self) -> Option<Task> {
        if self.running.get() {
            return None;
        }
        // SAFETY: as in `set_task`.
        unsafe { (*self.task.get()).take() }
    }

    /// Polls the fiber's future in place (no move out and back per poll); `Ready(())`
    /// also when it has no future. Sets `running` for the duration, which keeps
    /// `set_task` and `take_task` off the future meanwhile.
    #[inline]
    pub(crate) fn poll_task(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.running.replace(true) {
            // Polled from inside its own poll: impossible by construction; refuse.
            return Poll::Pending;
        }
        // SAFETY: `running` was clear, so no other reference to the task exists (see
        // `set_task`); it is set until this poll returns or unwinds, so none is made
        // meanwhile. The future is not moved: it stays pinned in its box.
        let r = match unsafe { (*self.task.get()).as_mut() } {
            Some(t) => t.as_mut().poll(cx),
            None => Poll::Ready(()),
        };
        self.running.set(false);
        r
    }

    /// The join list, created on first use.
    pub(crate) fn join_list(&self) -> Rc<WaitList> {
        let j = self.join.take().unwrap_or_else(|| Rc::new(WaitList::new()));
        self.join.set(Some(j.clone()));
        j
    }
}

/// The fibers of a group by registry index. A slot keeps its state block after its
/// fiber ended, and the next fiber started in the slot reuses the block when nothing
/// else refers to it any more (so that starting a fiber costs no allocation for it in
/// the steady state).
#[derive(Default)]
pub(crate) struct Registry {
    slots: Vec<Rc<FiberState>>,
    free: Vec<u32>,
    len: usize,
}

impl Registry {
    /// Registers a new fiber: a (recycled) state block with its key and options.
    /// Inlined into `spawn` (and that into the caller), so that the options the caller
    /// just built are stored without a round trip through memory.
    #[inline(always)]
    pub(crate) fn insert(
        &mut self,
        gen: u32,
        name: Cow<'static, str>,
        daemon: bool,
        max_ready: u32,
    ) -> Rc<FiberState> {
        self.len += 1;
        let Some(idx) = self.free.pop() else {
            let key = FiberKey {
                idx: self.slots.len() as u32,
                gen,
            };
            let f = Rc::new(FiberState::new(key, name, daemon, max_ready));
            self.slots.push(f.clone());
            return f;
        };
        let key = FiberKey { idx, gen };
        let slot = &mut self.slots[idx as usize];
        match Rc::get_mut(slot) {
            Some(s) => {
                // An ended fiber's block: its task and join list are gone, its
                // scheduling fields are set by whoever starts it (`GroupInner::spawn`).
                s.key = key;
                s.name = name;
                s.daemon = daemon;
                s.max_ready = max_ready;
                s.alive.set(true);
                s.running.set(false);
                s.notified.set(false);
                s.interrupt_pending.set(false);
                s.waker.set(None);
            }
            // Still referred to (a handle, a stale wait): leave it to them.
            None => *slot = Rc::new(FiberState::new(key, name, daemon, max_ready)),
        }
        slot.clone()
    }

    /// The live fiber with `key`, if any.
    pub(crate) fn get(&self, key: FiberKey) -> Option<&Rc<FiberState>> {
        self.slots
            .get(key.idx as usize)
            .filter(|f| f.key.gen == key.gen && f.alive.get())
    }

    /// Frees the slot of `f`, an ended fiber (its block stays for reuse).
    pub(crate) fn remove(&mut self, f: &FiberState) {
        if self
            .slots
            .get(f.key.idx as usize)
            .is_some_and(|s| std::ptr::eq(Rc::as_ptr(s), f))
        {
            self.free.push(f.key.idx);
            self.len -= 1;
        }
    }

    /// The live fiber whose state block is at `ptr`, if any.
    pub(crate) fn find(&self, ptr: *const FiberState) -> Option<Rc<FiberState>> {
        self.slots
            .iter()
            .find(|f| std::ptr::eq(Rc::as_ptr(f), ptr) && f.alive.get())
            .cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Empties the registry; returns the fibers that were live.
    pub(crate) fn drain(&mut self) -> Vec<Rc<FiberState>> {
        let out: Vec<_> = self.slots.drain(..).filter(|f| f.alive.get()).collect();
        self.free.clear();
        self.len = 0;
        out
    }
}
