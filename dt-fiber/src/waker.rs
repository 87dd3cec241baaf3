//! Wakers given to fibers.
//!
//! dt-fiber's own primitives never use the waker: they make their fiber ready directly.
//! The waker only serves foreign futures awaited inside a fiber. Building an `Arc` per
//! fiber for that rare case would cost an allocation and two atomic operations per
//! fiber, so each poll gets a *borrowed* waker pointing at a [`PollWaker`] on the
//! poller's stack; only when a future clones it (to keep it past the poll) is an owned,
//! `Arc`-backed waker built. Waking, borrowed or owned, posts a wake-up message to the
//! dispatcher's queue, which is safe from any thread.

use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Wake, Waker};

use crate::dispatcher::{DispatcherShared, Msg};
use crate::fiber::FiberKey;

/// Identity of the fiber being polled; lives on the poller's stack for one poll.
pub(crate) struct PollWaker<'a> {
    pub(crate) shared: &'a Arc<DispatcherShared>,
    pub(crate) gid: u64,
    pub(crate) key: FiberKey,
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
    // Hand the owned waker's raw parts over without running its destructor.
    let owned = std::mem::ManuallyDrop::new(owned);
    RawWaker::new(owned.data(), owned.vtable())
}

/// # Safety
/// `p` points to a live `PollWaker`.
unsafe fn borrowed_wake(p: *const ()) {
    // SAFETY: guaranteed by the caller contract above.
    let pw = unsafe { &*(p as *const PollWaker<'_>) };
    pw.shared.send(Msg::Wake {
        gid: pw.gid,
        key: pw.key,
    });
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
        self.shared.send(Msg::Wake {
            gid: self.gid,
            key: self.key,
        });
    }
}
