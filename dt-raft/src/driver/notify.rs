//! A single-waiter wake-up flag for fibers of one group, based on std wakers so it can
//! be polled together with other std futures (log writes, transport answers).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Set by [`Notify::notify`], consumed by one waiter.
#[derive(Default)]
pub(crate) struct Notify {
    flag: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    pub(crate) fn notify(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Consumes a pending notification, or registers `cx`'s waker.
    pub(crate) fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.replace(false) {
            return Poll::Ready(());
        }
        match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(cx.waker().clone())),
        }
        Poll::Pending
    }

    /// Waits for the next notification (or a pending one).
    pub(crate) fn notified(&self) -> Notified<'_> {
        Notified { n: self }
    }
}

pub(crate) struct Notified<'a> {
    n: &'a Notify,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.n.poll_notified(cx)
    }
}
