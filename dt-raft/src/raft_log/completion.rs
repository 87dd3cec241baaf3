//! A one-shot completion: an IO thread fills it, a future on any executor awaits it.
//! Built on std only (a mutex-protected slot and a `Waker`), so it works with
//! dt-fiber's dispatcher, a test `block_on`, or any other executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::store::{StoreError, StoreResult};

struct Slot<T> {
    value: Option<StoreResult<T>>,
    waker: Option<Waker>,
    dropped: bool,
}

/// The receiving half: a future of `StoreResult<T>`. If the [`Completer`] is dropped
/// without completing, it resolves to [`StoreError::Closed`].
pub struct Completion<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// The sending half.
pub struct Completer<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// A new completion pair.
pub fn completion<T>() -> (Completer<T>, Completion<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        dropped: false,
    }));
    (Completer { slot: slot.clone() }, Completion { slot })
}

impl<T> Completion<T> {
    /// An already completed future.
    pub fn ready(v: StoreResult<T>) -> Self {
        let (c, f) = completion();
        c.complete(v);
        f
    }
}

impl<T> Completer<T> {
    /// Completes the future (waking its task).
    pub fn complete(self, v: StoreResult<T>) {
        let waker = {
            let mut s = self.slot.lock().expect("completion lock");
            s.value = Some(v);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.slot.lock().expect("completion lock");
            s.dropped = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Completion<T> {
    type Output = StoreResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().expect("completion lock");
        if let Some(v) = s.value.take() {
            return Poll::Ready(v);
        }
        if s.dropped {
            return Poll::Ready(Err(StoreError::Closed));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Runs `f` on `io` and returns a future of its result.
pub fn run_blocking<T: Send + 'static>(
    io: &dyn dt_common::Executor,
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> Completion<T> {
    let (c, fut) = completion();
    // A refused job is dropped with its completer, which fails the future.
    let _ = io.execute(Box::new(move || c.complete(f())));
    fut
}

/// Drives a future to completion on the current thread (parking between polls).
///
/// For tests, tools and synchronous embedders; never call it on a dispatcher thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    drive(fut, None).expect("a wait without a limit ends only with the future")
}

/// [`block_on`] for at most `limit`: `None` when the future did not finish in time (a
/// hang, for tests that must tell one from a result).
pub fn block_on_timeout<F: Future>(fut: F, limit: std::time::Duration) -> Option<F::Output> {
    drive(fut, Some(std::time::Instant::now() + limit))
}

/// How long [`block_on`] may keep polling (yielding its core in between) before it
/// parks. A small durable append often completes within this (one fdatasync); waking a
/// parked thread costs tens of microseconds on a virtual machine, as much as 15% of a
/// small fsync'd append.
const SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(200);

std::thread_local! {
    /// How long this thread's last wait in [`block_on`] took: it spins only while
    /// waits are short enough for spinning to catch them (longer ones leave the core
    /// to the threads doing the work).
    static LAST_WAIT: std::cell::Cell<std::time::Duration> =
        const { std::cell::Cell::new(std::time::Duration::ZERO) };
}

fn drive<F: Future>(fut: F, deadline: Option<std::time::Instant>) -> Option<F::Output> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;
    struct ThreadWaker {
        thread: std::thread::Thread,
        woken: AtomicBool,
    }
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.woken.store(true, Ordering::Release);
            // Cheap when the thread is not parked (an atomic swap, no system call).
            self.thread.unpark();
        }
    }
    let w = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        w.woken.store(false, Ordering::Relaxed);
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let start = std::time::Instant::now();
        if LAST_WAIT.get() < SPIN_BEFORE_PARK {
            let spin_until = deadline.map_or(start + SPIN_BEFORE_PARK, |d| {
                d.min(start + SPIN_BEFORE_PARK)
            });
            while !w.woken.load(Ordering::Acquire) && std::time::Instant::now() < spin_until {
                std::thread::yield_now();
            }
            if w.woken.load(Ordering::Acquire) {
                LAST_WAIT.set(start.elapsed());
                continue;
            }
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    return None;
                }
                std::thread::park_timeout(d - now);
            }
        }
        LAST_WAIT.set(start.elapsed());
    }
}
