//! The thread-local "where am I" of the dispatcher thread: the group being run and the
//! fiber being polled. Free functions such as [`crate::sleep`] find their fiber here.

use std::cell::Cell;
use std::rc::Rc;

use crate::fiber_state::FiberState;
use crate::group::GroupInner;

/// Per-poll state, kept in one thread-local (constant-initialised, no destructor) so a
/// poll touches it once on entry and once on exit.
struct PollCtx {
    /// The fiber being polled, or null. Borrowed from the `Rc` that the poller holds
    /// for the duration of the poll.
    fiber: Cell<*const FiberState>,
    /// The fiber asked to go to the next round when its poll returns.
    yield_req: Cell<bool>,
    /// An interrupt is pending for the fiber being polled; its next wait consumes it.
    interrupt: Cell<bool>,
    /// The current group, or null. A non-null pointer owns one strong count of the
    /// group (made by `Rc::into_raw`), so the group lives while it is current; a plain
    /// pointer keeps this thread-local free of a destructor and of a borrow flag.
    group: Cell<*const GroupInner>,
}

thread_local! {
    static POLL: PollCtx = const {
        PollCtx {
            fiber: Cell::new(std::ptr::null()),
            yield_req: Cell::new(false),
            interrupt: Cell::new(false),
            group: Cell::new(std::ptr::null()),
        }
    };
}

/// Marks `f` as the fiber being polled, with its pending interrupt flag. Returns the
/// previous fiber, to hand back to [`end_poll`]. The caller keeps `f` alive until then.
#[inline]
pub(crate) fn begin_poll(f: &Rc<FiberState>, interrupt: bool) -> *const FiberState {
    POLL.with(|p| {
        p.interrupt.set(interrupt);
        p.yield_req.set(false);
        p.fiber.replace(Rc::as_ptr(f))
    })
}

/// Ends the poll begun by [`begin_poll`]: restores the previous fiber and returns (and
/// clears) the yield request and the interrupt no wait consumed.
#[inline]
pub(crate) fn end_poll(prev: *const FiberState) -> (bool, bool) {
    POLL.with(|p| {
        p.fiber.set(prev);
        (p.yield_req.replace(false), p.interrupt.replace(false))
    })
}

/// Resets the poll context after a poll unwound (its `end_poll` never ran); returns the
/// fiber that was being polled (null if none). Polls are not nested, so the previous
/// fiber was none.
pub(crate) fn abandon_poll() -> *const FiberState {
    POLL.with(|p| {
        p.yield_req.set(false);
        p.interrupt.set(false);
        p.fiber.replace(std::ptr::null())
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
        if p.fiber.get().is_null() {
            return false;
        }
        p.yield_req.set(true);
        true
    })
}

/// Restores the previous current group when dropped.
pub(crate) struct GroupGuard {
    /// The previous current group, owning its strong count (or null).
    prev: *const GroupInner,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let cur = POLL.with(|p| p.group.replace(self.prev));
        if !cur.is_null() {
            // SAFETY: every non-null pointer stored in `POLL.group` comes from
            // `Rc::into_raw` and owns one strong count; swapping it out hands that count
            // to us, and it is given back exactly once here.
            drop(unsafe { Rc::from_raw(cur) });
        }
    }
}

/// Makes `g` the current group until the guard drops.
pub(crate) fn enter_group(g: &Rc<GroupInner>) -> GroupGuard {
    let new = Rc::into_raw(g.clone());
    let prev = POLL.with(|p| p.group.replace(new));
    GroupGuard { prev }
}

/// Calls `f` with the current group, reading it from the per-poll thread-local only.
#[inline]
pub(crate) fn with_group_ref<R>(f: impl FnOnce(Option<&GroupInner>) -> R) -> R {
    let ptr = POLL.with(|p| p.group.get());
    // SAFETY: a non-null pointer owns a strong count of its group (see `PollCtx::group`),
    // which is only given back when a guard swaps the pointer out; `f` runs on this
    // thread and only gets a borrow for this call, during which the current group
    // cannot change except through a guard, which `f` cannot reach with this borrow
    // alive (guards are made and dropped by the dispatcher's run loops only).
    f(unsafe { ptr.as_ref() })
}

/// The current fiber, its pending interrupt (consumed) and the current group, in one
/// thread-local access, for a wait that registers itself.
#[inline]
pub(crate) fn begin_wait<R>(
    f: impl FnOnce(Option<&FiberState>, bool, Option<&GroupInner>) -> R,
) -> R {
    let (fiber, interrupt, ptr) = POLL.with(|p| {
        let fiber = p.fiber.get();
        let interrupt = !fiber.is_null() && p.interrupt.replace(false);
        (fiber, interrupt, p.group.get())
    });
    // SAFETY: a non-null `fiber` was set by `begin_poll` from an `Rc` that the poller
    // holds until the matching `end_poll` resets it, and we are inside that poll (on
    // the same thread), so the state block is alive for this call; the group pointer
    // as in `with_group_ref`.
    f(unsafe { fiber.as_ref() }, interrupt, unsafe {
        ptr.as_ref()
    })
}

/// Calls `f` with the fiber being polled, if any.
#[inline]
pub(crate) fn with_fiber_ref<R>(f: impl FnOnce(Option<&FiberState>) -> R) -> R {
    let fiber = POLL.with(|p| p.fiber.get());
    // SAFETY: as in `begin_wait`.
    f(unsafe { fiber.as_ref() })
}

/// A new reference to the fiber being polled, if any.
pub(crate) fn current_fiber() -> Option<Rc<FiberState>> {
    let ptr = POLL.with(|p| p.fiber.get());
    // SAFETY: a non-null fiber pointer comes from `Rc::as_ptr` of an `Rc` the poller
    // holds for the duration of the poll (see `begin_wait`), and we are inside it.
    unsafe { share_rc(ptr) }
}

pub(crate) fn current_group() -> Option<Rc<GroupInner>> {
    let ptr = POLL.with(|p| p.group.get());
    // SAFETY: a non-null group pointer comes from `Rc::into_raw` and owns a strong
    // count (see `PollCtx::group`), so the group is alive.
    unsafe { share_rc(ptr) }
}

/// A new `Rc` for the value behind `ptr` (`None` for null), adding a strong count and
/// leaving the existing ones intact.
///
/// # Safety
/// A non-null `ptr` must come from `Rc::as_ptr` / `Rc::into_raw` of an `Rc<T>` that is
/// alive for the duration of this call.
unsafe fn share_rc<T>(ptr: *const T) -> Option<Rc<T>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller: `ptr` points into a live `Rc` allocation.
    unsafe {
        Rc::increment_strong_count(ptr);
        Some(Rc::from_raw(ptr))
    }
}
