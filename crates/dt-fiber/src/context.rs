//! The thread-local "where am I" of the dispatcher thread: the group being run and the
//! fiber being polled. Free functions such as [`crate::sleep`] find their fiber here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::fiber::FiberKey;
use crate::group::GroupInner;

/// Per-poll state, kept in one thread-local (constant-initialised, no destructor) so a
/// poll touches it once on entry and once on exit.
struct PollCtx {
    /// The fiber being polled.
    fiber: Cell<Option<FiberKey>>,
    /// The fiber asked to go to the next round when its poll returns.
    yield_req: Cell<bool>,
    /// An interrupt is pending for the fiber being polled; its next wait consumes it.
    interrupt: Cell<bool>,
}

thread_local! {
    static CUR_GROUP: RefCell<Option<Rc<GroupInner>>> = const { RefCell::new(None) };
    static POLL: PollCtx = const {
        PollCtx {
            fiber: Cell::new(None),
            yield_req: Cell::new(false),
            interrupt: Cell::new(false),
        }
    };
}

/// Marks `key` as the fiber being polled, with its pending interrupt flag. Returns the
/// previous fiber, to hand back to [`end_poll`].
#[inline]
pub(crate) fn begin_poll(key: FiberKey, interrupt: bool) -> Option<FiberKey> {
    POLL.with(|p| {
        p.interrupt.set(interrupt);
        p.yield_req.set(false);
        p.fiber.replace(Some(key))
    })
}

/// Ends the poll begun by [`begin_poll`]: restores the previous fiber and returns (and
/// clears) the yield request and the interrupt no wait consumed.
#[inline]
pub(crate) fn end_poll(prev: Option<FiberKey>) -> (bool, bool) {
    POLL.with(|p| {
        p.fiber.set(prev);
        (p.yield_req.replace(false), p.interrupt.replace(false))
    })
}

/// Consumes the interrupt flag of the current poll (a wait calls this).
#[inline]
pub(crate) fn take_interrupt() -> bool {
    POLL.with(|p| p.interrupt.replace(false))
}

/// Asks that the fiber being polled go to the next round when its poll returns.
/// Returns false outside a fiber.
#[inline]
pub(crate) fn request_yield() -> bool {
    POLL.with(|p| {
        if p.fiber.get().is_none() {
            return false;
        }
        p.yield_req.set(true);
        true
    })
}

/// The fiber being polled, if any.
#[inline]
pub(crate) fn current_fiber_key() -> Option<FiberKey> {
    POLL.with(|p| p.fiber.get())
}

/// Restores the previous current group when dropped.
pub(crate) struct GroupGuard {
    prev: Option<Rc<GroupInner>>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CUR_GROUP.with(|g| *g.borrow_mut() = prev);
    }
}

/// Makes `g` the current group until the guard drops.
pub(crate) fn enter_group(g: &Rc<GroupInner>) -> GroupGuard {
    let prev = CUR_GROUP.with(|c| c.borrow_mut().replace(g.clone()));
    GroupGuard { prev }
}

pub(crate) fn current_group() -> Option<Rc<GroupInner>> {
    CUR_GROUP.with(|g| g.borrow().clone())
}

/// Calls `f` with the current group without cloning its `Rc`.
#[inline]
pub(crate) fn with_current_group<R>(f: impl FnOnce(Option<&Rc<GroupInner>>) -> R) -> R {
    CUR_GROUP.with(|g| f(g.borrow().as_ref()))
}
