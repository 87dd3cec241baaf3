//! Fibers: how one is started ([`FiberOptions`]) and the handle to a running one
//! ([`Fiber`]): join it, interrupt it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::FiberError;
use crate::fiber_state::FiberState;
use crate::group::GroupInner;
use crate::wait::{Outcome, Wait};

/// Identifies a fiber inside its group for wake-ups sent from other threads: registry
/// index plus a generation, so a stale wake-up never reaches a newer fiber started in
/// the same registry slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FiberKey {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// How a fiber is started: its name, whether it is a daemon, and its fairness budget.
#[derive(Debug, Clone)]
pub struct FiberOptions {
    pub(crate) name: Cow<'static, str>,
    pub(crate) daemon: bool,
    pub(crate) max_ready_per_round: u32,
}

impl FiberOptions {
    /// A non-daemon fiber called `name`, made ready at most once per dispatcher round.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        FiberOptions {
            name: name.into(),
            daemon: false,
            max_ready_per_round: 1,
        }
    }

    /// Makes the fiber a daemon: the group does not wait for it to finish when shutting
    /// down; it is abandoned (its future dropped) when the group finishes.
    pub fn daemon(mut self) -> Self {
        self.daemon = true;
        self
    }

    /// How many times per dispatcher round the fiber may be made ready (default 1, at
    /// least 1). Wake-ups beyond the budget are deferred to the next round, so one busy
    /// fiber cannot starve the others. As in the reference, a deferred wake-up counts
    /// against the budget of the round it happened in, not the next one, and deferred
    /// fibers that were signalled to the front of the queue run first in the next round
    /// (ahead of fibers that yielded).
    pub fn max_ready_per_round(mut self, n: u32) -> Self {
        self.max_ready_per_round = n.max(1);
        self
    }
}

/// A handle to one fiber: join it, interrupt it.
#[derive(Clone)]
pub struct Fiber {
    pub(crate) group: Rc<GroupInner>,
    pub(crate) state: Rc<FiberState>,
}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("group", &self.group.name())
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Fiber {
    /// The fiber's name (`"?"` once it has finished).
    pub fn name(&self) -> String {
        if self.state.alive.get() {
            self.state.name.to_string()
        } else {
            String::from("?")
        }
    }

    /// Whether the fiber has not finished yet.
    pub fn is_alive(&self) -> bool {
        self.state.alive.get()
    }

    /// Interrupts the fiber: if it is waiting, the wait resumes with
    /// [`FiberError::Interrupted`]; otherwise its next wait does. Returns false if the
    /// fiber has finished.
    pub fn interrupt(&self) -> bool {
        self.group.interrupt(&self.state)
    }

    /// Waits for the fiber to finish (normally, by panic, or abandoned with its group).
    pub fn join(&self) -> Join {
        Join {
            state: self.state.clone(),
            timeout: None,
            wait: Wait::new(),
        }
    }

    /// Like [`Fiber::join`] with a timeout: resolves to `Ok(true)` when the fiber
    /// finished, `Ok(false)` on timeout.
    pub fn join_timeout(&self, d: Duration) -> Join {
        Join {
            state: self.state.clone(),
            timeout: Some(d),
            wait: Wait::new(),
        }
    }
}

/// The future of [`Fiber::join`] / [`Fiber::join_timeout`]: `Ok(true)` once the fiber
/// finished, `Ok(false)` on timeout.
#[must_use = "futures do nothing unless awaited"]
pub struct Join {
    state: Rc<FiberState>,
    timeout: Option<Duration>,
    wait: Wait,
}

impl Future for Join {
    type Output = Result<bool, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.state.alive.get() {
            return Poll::Ready(Ok(true));
        }
        let list = this.state.join_list();
        match this.wait.poll(&[&list], this.timeout) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Outcome::Timeout)) => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}
