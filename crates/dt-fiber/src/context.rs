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
    /// The current group (the one `CUR_GROUP` holds), or null: read without touching
    /// `CUR_GROUP`'s borrow flag or its thread-local destructor state.
    group: Cell<*const GroupInner>,
}

thread_local! {
    static CUR_GROUP: RefCell<Option<Rc<GroupInner>>> = const { RefCell::new(None) };
    static POLL: PollCtx = const {
        PollCtx {
            fiber: Cell::new(None),
            yield_req: Cell::new(false),
            interrupt: Cell::new(false),
            group: Cell::new(std::ptr::null()),
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

/// Restores the previous current group when dropped.
pub(crate) struct GroupGuard {
    prev: Option<Rc<GroupInner>>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let ptr = prev.as_ref().map_or(std::ptr::null(), Rc::as_ptr);
        CUR_GROUP.with(|g| *g.borrow_mut() = prev);
        POLL.with(|p| p.group.set(ptr));
    }
}

/// Makes `g` the current group until the guard drops.
pub(crate) fn enter_group(g: &Rc<GroupInner>) -> GroupGuard {
    let prev = CUR_GROUP.with(|c| c.borrow_mut().replace(g.clone()));
    POLL.with(|p| p.group.set(Rc::as_ptr(g)));
    GroupGuard { prev }
}

/// Calls `f` with the current group, reading it from the per-poll thread-local only.
#[inline]
pub(crate) fn with_group_ref<R>(f: impl FnOnce(Option<&GroupInner>) -> R) -> R {
    let ptr = POLL.with(|p| p.group.get());
    // SAFETY: a non-null pointer is always the one `CUR_GROUP` holds a strong `Rc` to
    // (both are set together by `enter_group` and restored together by the guard's
    // drop; a forgotten guard leaves both set, keeping the group alive). The group is
    // only dropped after `CUR_GROUP` lets go of it, and `f` cannot outlive this call.
    f(unsafe { ptr.as_ref() })
}

/// The current fiber, its pending interrupt (consumed) and the current group, in one
/// thread-local access, for a wait that registers itself.
#[inline]
pub(crate) fn begin_wait<R>(f: impl FnOnce(Option<FiberKey>, bool, Option<&GroupInner>) -> R) -> R {
    let (key, interrupt, ptr) = POLL.with(|p| {
        let key = p.fiber.get();
        let interrupt = key.is_some() && p.interrupt.replace(false);
        (key, interrupt, p.group.get())
    });
    // SAFETY: as in `with_group_ref`.
    f(key, interrupt, unsafe { ptr.as_ref() })
}

pub(crate) fn current_group() -> Option<Rc<GroupInner>> {
    CUR_GROUP.with(|g| g.borrow().clone())
}
