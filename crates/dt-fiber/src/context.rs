//! The thread-local "where am I" of the dispatcher thread: the group being run and the
//! fiber being polled. Free functions such as [`crate::sleep`] find their fiber here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::fiber::FiberKey;
use crate::group::GroupInner;

thread_local! {
    static CUR_GROUP: RefCell<Option<Rc<GroupInner>>> = const { RefCell::new(None) };
    static CUR_FIBER: Cell<Option<FiberKey>> = const { Cell::new(None) };
    static YIELD: Cell<bool> = const { Cell::new(false) };
    static INTERRUPT: Cell<bool> = const { Cell::new(false) };
}

/// Sets the interrupt flag of the poll about to run.
pub(crate) fn set_interrupt(v: bool) {
    INTERRUPT.with(|i| i.set(v));
}

/// Consumes the interrupt flag of the current poll (a wait calls this).
pub(crate) fn take_interrupt() -> bool {
    INTERRUPT.with(|i| i.replace(false))
}

/// Asks that the fiber being polled go to the next round when its poll returns.
/// Returns false outside a fiber.
pub(crate) fn request_yield() -> bool {
    if CUR_FIBER.with(|c| c.get()).is_none() {
        return false;
    }
    YIELD.with(|y| y.set(true));
    true
}

/// Reads and clears the yield request of the poll that just returned.
pub(crate) fn take_yield() -> bool {
    YIELD.with(|y| y.replace(false))
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

/// Restores the previous current fiber when dropped.
pub(crate) struct FiberGuard {
    prev: Option<FiberKey>,
}

impl Drop for FiberGuard {
    fn drop(&mut self) {
        CUR_FIBER.with(|c| c.set(self.prev));
    }
}

pub(crate) fn enter_fiber(key: FiberKey) -> FiberGuard {
    let prev = CUR_FIBER.with(|c| c.replace(Some(key)));
    FiberGuard { prev }
}

pub(crate) fn current_group() -> Option<Rc<GroupInner>> {
    CUR_GROUP.with(|g| g.borrow().clone())
}

pub(crate) fn current_fiber() -> Option<(Rc<GroupInner>, FiberKey)> {
    let key = CUR_FIBER.with(|c| c.get())?;
    let g = current_group()?;
    Some((g, key))
}
