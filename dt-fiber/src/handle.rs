//! Threads talking to a group: the `Send` [`GroupHandle`] and the shared state behind it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::dispatcher::DispatcherShared;
use crate::error::FiberError;
use crate::fiber::FiberOptions;
use crate::group::{current_group, FiberGroup, GroupInner};

/// The part of a group other threads may read: identity, flags, fatal error.
pub(crate) struct GroupShared {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) should_stop: AtomicBool,
    pub(crate) finished: Mutex<bool>,
    pub(crate) finished_cv: Condvar,
    pub(crate) finished_flag: AtomicBool,
    pub(crate) fatal: Mutex<Option<String>>,
}

impl GroupShared {
    pub(crate) fn new(id: u64, name: String) -> Self {
        GroupShared {
            id,
            name,
            should_stop: AtomicBool::new(false),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            finished_flag: AtomicBool::new(false),
            fatal: Mutex::new(None),
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished_flag.load(Ordering::Acquire)
    }

    pub(crate) fn set_finished(&self) {
        let mut f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        *f = true;
        self.finished_flag.store(true, Ordering::Release);
        self.finished_cv.notify_all();
    }

    pub(crate) fn set_fatal(&self, msg: &str) {
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(msg.to_string());
        }
    }
}

/// A `Send + Sync` handle to a group for other threads: start fibers, run tasks, request
/// shutdown, read the published status. Work is posted to the dispatcher's queue and
/// runs on the dispatcher thread; the closures given here build the `!Send` state there.
#[derive(Clone)]
pub struct GroupHandle {
    pub(crate) shared: Arc<GroupShared>,
    pub(crate) disp: Arc<DispatcherShared>,
}

impl fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupHandle")
            .field("name", &self.shared.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl GroupHandle {
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether shutdown was requested (published; no lock on the group).
    pub fn should_stop(&self) -> bool {
        self.shared.should_stop.load(Ordering::Acquire)
    }

    /// Whether the group has finished.
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// The fatal error that shut the group down, if any (e.g. a fiber panicked).
    pub fn fatal_error(&self) -> Option<String> {
        self.shared
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn check_open(&self) -> Result<(), FiberError> {
        if self.is_finished() {
            return Err(FiberError::GroupFinished {
                group: self.shared.name.clone(),
            });
        }
        Ok(())
    }

    /// Runs `f` in the group on the dispatcher thread (FIFO with other posted work).
    /// Rejected when the group has finished or the dispatcher stopped; work that arrives
    /// after the group finished is dropped with a warning.
    pub fn execute<F>(&self, f: F) -> Result<(), FiberError>
    where
        F: FnOnce(&FiberGroup) + Send + 'static,
    {
        self.check_open()?;
        let name = self.shared.name.clone();
        self.disp.post_group(
            self.shared.id,
            Box::new(move |g: Option<&Rc<GroupInner>>| match g {
                Some(g) => f(&FiberGroup { inner: g.clone() }),
                None => log::warn!("task for finished fiber group '{name}' dropped"),
            }),
        )
    }

    /// Starts a non-daemon fiber: `build` runs on the dispatcher thread and returns the
    /// (`!Send`) future of the fiber.
    pub fn fire_fiber<B, F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        build: B,
    ) -> Result<(), FiberError>
    where
        B: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        self.fire_fiber_with(FiberOptions::new(name), build)
    }

    /// Like [`GroupHandle::fire_fiber`] with explicit options.
    pub fn fire_fiber_with<B, F>(&self, opts: FiberOptions, build: B) -> Result<(), FiberError>
    where
        B: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        self.execute(move |g| {
            let name = opts.name.clone();
            if let Err(e) = g.spawn_with(opts, build()) {
                log::warn!("fiber '{name}' not started: {e}");
            }
        })
    }

    /// Runs `f` in the group after `delay` (in a fiber that sleeps first).
    pub fn schedule<F>(&self, delay: Duration, f: F) -> Result<(), FiberError>
    where
        F: FnOnce(&FiberGroup) + Send + 'static,
    {
        self.fire_fiber("scheduled", move || async move {
            if crate::timer::sleep(delay).await.is_ok() {
                if let Some(g) = current_group() {
                    f(&g);
                }
            }
        })
    }

    /// Requests shutdown of the group from any thread. The should-stop flag is published
    /// at once; the group is told on the dispatcher thread.
    pub fn request_shutdown(&self) -> Result<(), FiberError> {
        self.shared.should_stop.store(true, Ordering::Release);
        self.disp.post_group(
            self.shared.id,
            Box::new(|g: Option<&Rc<GroupInner>>| {
                if let Some(g) = g {
                    g.request_shutdown();
                }
            }),
        )
    }

    /// Blocks the calling (non-dispatcher) thread until the group finishes or `timeout`
    /// passes. Returns whether it finished.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut f = self
            .shared
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while !*f {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            f = match self.shared.finished_cv.wait_timeout(f, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}
