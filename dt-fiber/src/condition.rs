//! FiberCondition: wait for a signal from another fiber.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::FiberError;
use crate::wait::{Outcome, Wait, WaitList};

struct CondInner {
    name: &'static str,
    list: WaitList,
}

/// A condition fibers wait on until another fiber signals it.
///
/// Only usable on the dispatcher thread (it is `!Send`); it may be shared by fibers of
/// several groups of the same dispatcher. Waits have no memory: a signal with no waiter
/// is lost, so waiters re-check their state in a loop, as with any condition variable.
#[derive(Clone)]
pub struct FiberCondition {
    inner: Rc<CondInner>,
}

impl fmt::Debug for FiberCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberCondition")
            .field("name", &self.inner.name)
            .finish()
    }
}

/// Which condition ended a [`FiberCondition::wait_either`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signaled {
    /// The condition `wait_either` was called on.
    First,
    /// The other condition.
    Second,
    /// Neither: the timeout passed.
    Timeout,
}

impl FiberCondition {
    /// A condition; `name` shows up in logs and debug output.
    pub fn new(name: &'static str) -> Self {
        FiberCondition {
            inner: Rc::new(CondInner {
                name,
                list: WaitList::new(),
            }),
        }
    }

    /// The condition's name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// Wakes the longest-waiting fiber and puts it at the front of its ready queue.
    /// Returns whether a fiber was waiting.
    pub fn signal(&self) -> bool {
        self.inner.list.signal_one(true)
    }

    /// Like [`FiberCondition::signal`] but the woken fiber goes to the back of the queue.
    pub fn signal_later(&self) -> bool {
        self.inner.list.signal_one(false)
    }

    /// Wakes every waiting fiber (in waiting order, at the front of the ready queues).
    /// Returns how many were woken.
    pub fn signal_all(&self) -> usize {
        self.inner.list.signal_all(true)
    }

    /// Number of fibers waiting.
    pub fn waiter_count(&self) -> usize {
        self.inner.list.pending_len()
    }

    /// Waits for a signal. Fails with [`FiberError::Interrupted`] if interrupted.
    pub fn wait(&self) -> CondWait<'_> {
        self.wait_inner(None, None)
    }

    /// Waits for a signal at most `d`: `Ok(true)` if signalled, `Ok(false)` on timeout
    /// (a timeout is normal; re-check the state).
    pub fn wait_timeout(&self, d: Duration) -> CondWaitTimeout<'_> {
        CondWaitTimeout {
            w: self.wait_inner(None, Some(d)),
        }
    }

    /// Waits on this condition and `other` at once: the first signal wins.
    pub fn wait_either<'a>(
        &'a self,
        other: &'a FiberCondition,
        timeout: Option<Duration>,
    ) -> CondWaitEither<'a> {
        CondWaitEither {
            w: self.wait_inner(Some(&other.inner), timeout),
        }
    }

    fn wait_inner<'a>(
        &'a self,
        second: Option<&'a CondInner>,
        timeout: Option<Duration>,
    ) -> CondWait<'a> {
        CondWait {
            first: &self.inner,
            second,
            timeout,
            wait: Wait::new(),
        }
    }
}

/// The future of [`FiberCondition::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct CondWait<'a> {
    first: &'a CondInner,
    second: Option<&'a CondInner>,
    timeout: Option<Duration>,
    wait: Wait,
}

impl CondWait<'_> {
    fn poll_outcome(&mut self) -> Poll<Result<Outcome, FiberError>> {
        match &self.second {
            None => self.wait.poll(&[&self.first.list], self.timeout),
            Some(s) => self.wait.poll(&[&self.first.list, &s.list], self.timeout),
        }
    }
}

impl Future for CondWait<'_> {
    type Output = Result<(), FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_outcome().map(|r| r.map(|_| ()))
    }
}

/// The future of [`FiberCondition::wait_timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct CondWaitTimeout<'a> {
    w: CondWait<'a>,
}

impl Future for CondWaitTimeout<'_> {
    type Output = Result<bool, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut()
            .w
            .poll_outcome()
            .map(|r| r.map(|o| matches!(o, Outcome::Signaled(_))))
    }
}

/// The future of [`FiberCondition::wait_either`].
#[must_use = "futures do nothing unless awaited"]
pub struct CondWaitEither<'a> {
    w: CondWait<'a>,
}

impl Future for CondWaitEither<'_> {
    type Output = Result<Signaled, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().w.poll_outcome().map(|r| {
            r.map(|o| match o {
                Outcome::Signaled(0) => Signaled::First,
                Outcome::Signaled(_) => Signaled::Second,
                _ => Signaled::Timeout,
            })
        })
    }
}
