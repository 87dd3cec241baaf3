//! Wakers given to fibers.
//!
//! dt-fiber's own primitives never use the waker: they make their fiber ready directly.
//! The waker serves std futures awaited inside a fiber (another thread's completion,
//! a hand-made notification). Building an `Arc` per fiber up front would cost an
//! allocation and two atomic operations per fiber that never needs one, so a fiber's
//! first polls get a *borrowed* waker pointing at a [`PollWaker`] on the poller's
//! stack; the first time a future clones it (to keep it past the poll) an owned,
//! `Arc`-backed waker is built and kept in the fiber's state, and the fiber's later
//! polls get that one, so a fiber that keeps its waker on every poll allocates once.
//!
//! Waking posts a wake-up message to the dispatcher's queue, which is safe from any
//! thread; on the dispatcher's own thread, while the fiber's group runs (one fiber
//! waking another of its group through a std waker), the fiber is made ready directly,
//! which costs no message, no queue slot and no unpark.

use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Wake, Waker};

use crate::context;
use crate::dispatcher::{DispatcherShared, Msg};
use crate::fiber::FiberKey;

/// Identity of the fiber being polled; lives on the poller's stack for one poll.
pub(crate) struct PollWaker<'a> {
    pub(crate) shared: &'a Arc<DispatcherShared>,
    pub(crate) gid: u64,
    pub(crate) key: FiberKey,
    /// The address of the fiber's state block, only compared with the fiber being
    /// polled on the calling thread (never dereferenced through this copy).
    pub(crate) fiber: usize,
}

impl PollWaker<'_> {
    /// A waker borrowing `self`. It must not outlive `self`; `Context` guarantees that
    /// the waker reference handed to a future cannot escape the poll, and an owned copy
    /// made by `clone` does not borrow `self`.
    pub(crate) fn waker(&self) -> BorrowedWaker<'_> {
        let raw = RawWaker::new(self as *const PollWaker<'_> as *const (), &BORROWED_VTABLE);
        // SAFETY: the vtable functions below uphold the RawWaker contract: `clone` returns
        // an independent Arc-backed waker, `wake`/`wake_by_ref` only read the PollWaker
        // (whose fields are Sync), `drop` does nothing. The data pointer stays valid for
        // the lifetime of the returned BorrowedWaker, which borrows `self`.
        let waker = unsafe { Waker::from_raw(raw) };
        BorrowedWaker {
            // Dropping a borrowed waker does nothing: skip the indirect call.
            waker: std::mem::ManuallyDrop::new(waker),
            _p: std::marker::PhantomData,
        }
    }
}

/// A waker valid while the [`PollWaker`] it points to is borrowed.
pub(crate) struct BorrowedWaker<'a> {
    waker: std::mem::ManuallyDrop<Waker>,
    _p: std::marker::PhantomData<&'a ()>,
}

impl BorrowedWaker<'_> {
    pub(crate) fn get(&self) -> &Waker {
        &self.waker
    }
}

static BORROWED_VTABLE: RawWakerVTable =
    RawWakerVTable::new(borrowed_clone, borrowed_wake, borrowed_wake, borrowed_drop);

/// # Safety
/// `p` points to a live `PollWaker` (see [`PollWaker::waker`]).
unsafe fn borrowed_clone(p: *const ()) -> RawWaker {
    // SAFETY: guaranteed by the caller contract above.
    let pw = unsafe { &*(p as *const PollWaker<'_>) };
    let owned = Waker::from(Arc::new(OwnedWaker {
        shared: pw.shared.clone(),
        gid: pw.gid,
        key: pw.key,
    }));
    // Kept by the fiber for its next polls when this runs on the poller's thread,
    // inside the poll (the fiber being polled here is the waker's fiber).
    context::with_fiber_ref(|cur| {
        if let Some(cur) = cur {
            if std::ptr::eq(cur, pw.fiber as *const crate::fiber_state::FiberState) {
                cur.waker.set(Some(owned.clone()));
            }
        }
    });
    // Hand the owned waker's raw parts over without running its destructor.
    let owned = std::mem::ManuallyDrop::new(owned);
    RawWaker::new(owned.data(), owned.vtable())
}

/// # Safety
/// `p` points to a live `PollWaker`.
unsafe fn borrowed_wake(p: *const ()) {
    // SAFETY: guaranteed by the caller contract above.
    let pw = unsafe { &*(p as *const PollWaker<'_>) };
    wake(pw.shared, pw.gid, pw.key);
}

/// Makes fiber `key` of group `gid` ready: directly when that group is running on
/// this thread (its dispatcher's), else by a message to the dispatcher.
fn wake(shared: &Arc<DispatcherShared>, gid: u64, key: FiberKey) {
    let local = context::with_group_ref(|g| match g {
        Some(g) if g.id() == gid && Arc::ptr_eq(&g.core().shared, shared) => {
            g.make_ready_key(key, false);
            true
        }
        _ => false,
    });
    if !local {
        shared.send(Msg::Wake { gid, key });
    }
}

unsafe fn borrowed_drop(_p: *const ()) {}

/// An owned waker for a fiber, for futures that keep the waker past a poll.
struct OwnedWaker {
    shared: Arc<DispatcherShared>,
    gid: u64,
    key: FiberKey,
}

impl Wake for OwnedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake(&self.shared, self.gid, self.key);
    }
}
