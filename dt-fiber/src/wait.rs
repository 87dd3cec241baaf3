//! The waiting machinery shared by every suspending primitive.
//!
//! A wait takes one [`WaitCell`] (recycled; it points at the waiting fiber's state) and
//! registers it wherever a wake-up may come from: the waiter list of a condition (or
//! two) and, with a timeout, the timer heap. The first source to fire the cell decides
//! the outcome; the other registrations become stale and are skipped or compacted away.
//! An interrupt makes the fiber ready with its interrupt flag set, which the wait sees
//! when it is polled again. A fiber may be in several waits at once (e.g. a future
//! awaiting two others): each has its own cell.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use crate::context;
use crate::error::FiberError;
use crate::fiber_state::FiberState;
use crate::group::GroupInner;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still waiting.
    Pending,
    /// Signalled by the source with this index (0 for the first condition, 1 for the
    /// second).
    Signaled(u8),
    /// The timer fired first.
    Timeout,
    /// The waiting future was dropped.
    Cancelled,
}

/// One suspension of one fiber.
pub(crate) struct WaitCell {
    group: Rc<GroupInner>,
    /// The waiting fiber; `None` in a spare cell.
    fiber: Option<Rc<FiberState>>,
    outcome: Cell<Outcome>,
}

impl WaitCell {
    pub(crate) fn is_pending(&self) -> bool {
        self.outcome.get() == Outcome::Pending
    }

    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome.get()
    }

    /// Ends the wait with `o` if it is still pending and makes the fiber ready (at the
    /// front of its group's ready queue when `front`). Returns whether it took effect.
    pub(crate) fn fire(&self, o: Outcome, front: bool) -> bool {
        if self.outcome.get() != Outcome::Pending {
            return false;
        }
        self.outcome.set(o);
        if let Some(f) = &self.fiber {
            self.group.make_ready(f, front);
        }
        true
    }

    fn cancel(&self) {
        if self.outcome.get() == Outcome::Pending {
            self.outcome.set(Outcome::Cancelled);
        }
    }
}

/// Cells kept for reuse per dispatcher thread, so a wait costs no allocation in the
/// steady state.
const CELL_POOL_MAX: usize = 256;

impl WaitCell {
    /// A pending cell for fiber `f` (the one being polled) of `group`: the fiber's
    /// spare cell if it has one, else a pooled or new allocation.
    #[inline]
    fn acquire(group: &GroupInner, f: &FiberState) -> Option<Rc<WaitCell>> {
        if let Some(c) = f.spare_cell.take() {
            // A spare cell already points at `f` and its group (see `release`).
            c.outcome.set(Outcome::Pending);
            return Some(c);
        }
        Self::acquire_slow(group)
    }

    #[cold]
    fn acquire_slow(group: &GroupInner) -> Option<Rc<WaitCell>> {
        let f = context::current_fiber()?;
        let pooled = group.core().cell_pool.borrow_mut().pop();
        if let Some(mut rc) = pooled {
            if let Some(c) = Rc::get_mut(&mut rc) {
                if !std::ptr::eq(Rc::as_ptr(&c.group), group) {
                    c.group = group.rc()?;
                }
                c.fiber = Some(f);
                c.outcome.set(Outcome::Pending);
                return Some(rc);
            }
        }
        Some(Rc::new(WaitCell {
            group: group.rc()?,
            fiber: Some(f),
            outcome: Cell::new(Outcome::Pending),
        }))
    }
}

/// Returns a finished cell for reuse when nothing else refers to it: as the spare cell
/// of its fiber when that fiber is the one being polled (its next wait takes it back
/// without touching any reference count), else to the dispatcher's pool.
#[inline]
fn release(cell: Rc<WaitCell>) {
    if Rc::strong_count(&cell) != 1 || Rc::weak_count(&cell) != 0 {
        return;
    }
    context::with_fiber_ref(|f| match f {
        Some(f)
            if f.alive.get()
                && cell
                    .fiber
                    .as_ref()
                    .is_some_and(|cf| std::ptr::eq(Rc::as_ptr(cf), f)) =>
        {
            if let Some(old) = f.spare_cell.replace(Some(cell)) {
                pool_cell(old);
            }
        }
        _ => pool_cell(cell),
    });
}

/// Keeps a cell nothing else refers to in the dispatcher's pool, without its fiber
/// (so that an ended fiber's state block can be reused).
pub(crate) fn pool_cell(mut cell: Rc<WaitCell>) {
    let Some(c) = Rc::get_mut(&mut cell) else {
        return;
    };
    c.fiber = None;
    let core = cell.group.core().clone();
    let mut pool = core.cell_pool.borrow_mut();
    if pool.len() < CELL_POOL_MAX {
        pool.push(cell);
    }
}

/// A FIFO list of waiting fibers, with lazy removal of stale cells.
#[derive(Default)]
pub(crate) struct WaitList {
    cells: RefCell<VecDeque<(Rc<WaitCell>, u8)>>,
    compact_at: Cell<usize>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        WaitList {
            cells: RefCell::new(VecDeque::new()),
            compact_at: Cell::new(16),
        }
    }

    /// Registers a waiter; `tag` tells the waiter which of its sources fired.
    pub(crate) fn push(&self, cell: Rc<WaitCell>, tag: u8) {
        let mut cells = self.cells.borrow_mut();
        if cells.len() >= self.compact_at.get() {
            cells.retain(|c| c.0.is_pending());
            self.compact_at.set((cells.len() * 2).max(16));
        }
        cells.push_back((cell, tag));
    }

    /// Wakes the oldest still-pending waiter. Returns whether one was woken.
    pub(crate) fn signal_one(&self, front: bool) -> bool {
        loop {
            let next = self.cells.borrow_mut().pop_front();
            match next {
                None => return false,
                Some((c, tag)) => {
                    if c.fire(Outcome::Signaled(tag), front) {
                        return true;
                    }
                }
            }
        }
    }

    /// Wakes every pending waiter, keeping their FIFO order in the ready queue.
    /// Returns how many were woken.
    pub(crate) fn signal_all(&self, front: bool) -> usize {
        let mut cells = std::mem::take(&mut *self.cells.borrow_mut());
        let mut n = 0;
        if front {
            for (c, tag) in cells.iter().rev() {
                n += c.fire(Outcome::Signaled(*tag), true) as usize;
            }
        } else {
            for (c, tag) in cells.iter() {
                n += c.fire(Outcome::Signaled(*tag), false) as usize;
            }
        }
        // Keep the buffer for the next waiters (unless some registered meanwhile).
        cells.clear();
        let mut cur = self.cells.borrow_mut();
        if cur.is_empty() {
            *cur = cells;
        }
        n
    }

    /// Number of registered waiters that are still pending.
    pub(crate) fn pending_len(&self) -> usize {
        self.cells
            .borrow()
            .iter()
            .filter(|c| c.0.is_pending())
            .count()
    }

    pub(crate) fn clear(&self) {
        self.cells.borrow_mut().clear();
    }
}

/// How [`Wait::poll_end`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// The wait ended with this outcome.
    Done(Outcome),
    /// Not polled from a fiber.
    NotInFiber,
    /// The fiber was interrupted.
    Interrupted,
}

impl WaitEnd {
    #[inline]
    pub(crate) fn into_result(self) -> Result<Outcome, FiberError> {
        match self {
            WaitEnd::Done(o) => Ok(o),
            WaitEnd::NotInFiber => Err(FiberError::NotInFiber),
            WaitEnd::Interrupted => Err(FiberError::Interrupted),
        }
    }
}

/// The state of one suspending primitive inside its future: not yet registered, or
/// registered with a cell.
#[derive(Default)]
pub(crate) struct Wait {
    cell: Option<Rc<WaitCell>>,
}

impl Wait {
    pub(crate) fn new() -> Self {
        Wait { cell: None }
    }

    /// Drives the wait. On the first call it registers the current fiber in `lists`
    /// (tagged with their index as the signal source) and, with a timeout, in the timer
    /// heap; then returns `Pending`. Later calls return the outcome once fired.
    #[inline]
    pub(crate) fn poll(
        &mut self,
        lists: &[&WaitList],
        timeout: Option<Duration>,
    ) -> Poll<Result<Outcome, FiberError>> {
        self.poll_end(lists, timeout).map(WaitEnd::into_result)
    }

    /// [`Wait::poll`] with a small result type, so that the (not inlined) body does
    /// not return a large `Result` through memory on every poll.
    pub(crate) fn poll_end(
        &mut self,
        lists: &[&WaitList],
        timeout: Option<Duration>,
    ) -> Poll<WaitEnd> {
        match &self.cell {
            None => {
                let cell = context::begin_wait(|fiber, interrupt, g| match (fiber, g) {
                    (None, _) => Err(WaitEnd::NotInFiber),
                    _ if interrupt => Err(WaitEnd::Interrupted),
                    (Some(f), Some(g)) => WaitCell::acquire(g, f).ok_or(WaitEnd::NotInFiber),
                    (Some(_), None) => Err(WaitEnd::NotInFiber),
                });
                let cell = match cell {
                    Ok(c) => c,
                    Err(e) => return Poll::Ready(e),
                };
                for (i, l) in lists.iter().enumerate() {
                    l.push(cell.clone(), i as u8);
                }
                if let Some(d) = timeout {
                    cell.group.core().add_timer(d, cell.clone());
                }
                self.cell = Some(cell);
                Poll::Pending
            }
            Some(cell) => match cell.outcome() {
                Outcome::Pending => {
                    if context::take_interrupt() {
                        self.finish();
                        Poll::Ready(WaitEnd::Interrupted)
                    } else {
                        Poll::Pending
                    }
                }
                o => {
                    self.finish();
                    Poll::Ready(WaitEnd::Done(o))
                }
            },
        }
    }

    fn finish(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.cancel();
            release(cell);
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.finish();
    }
}
