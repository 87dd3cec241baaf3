//! [`OneshotFuture`] / [`OneshotPromise`]: a one-shot, thread-safe result slot usable as a
//! `std::future::Future` on any executor (no runtime needed: whichever thread completes
//! the promise wakes the task), or blocking with [`OneshotFuture::wait`].
//!
//! dt-net's `RpcFuture` and dt-client's `KvFuture` are this type with their own error
//! enum; the error type names how a second poll after completion is reported
//! ([`OneshotError`]).
//!
//! ```
//! use dt_common::oneshot::{oneshot, OneshotError};
//!
//! #[derive(Debug, PartialEq)]
//! struct MyError(String);
//! impl OneshotError for MyError {
//!     fn polled_after_completion() -> Self {
//!         MyError("polled after completion".into())
//!     }
//! }
//!
//! let (promise, future) = oneshot::<u32, MyError>();
//! std::thread::spawn(move || promise.complete(Ok(42)));
//! assert_eq!(future.wait(), Ok(42));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The error a [`OneshotFuture`] yields when it is polled again after it already
/// returned its result.
pub trait OneshotError {
    /// The error for "polled after completion" (a caller bug, not a remote failure).
    fn polled_after_completion() -> Self;
}

struct Slot<T, E> {
    value: Option<Result<T, E>>,
    waker: Option<Waker>,
    taken: bool,
    /// A thread blocks (or blocked) in `wait`: only then does completing notify the
    /// condition variable (a notify is a futex syscall even with nobody waiting, and
    /// most futures are awaited, not waited for).
    blocking: bool,
}

struct Shared<T, E> {
    slot: Mutex<Slot<T, E>>,
    cond: Condvar,
}

impl<T, E> Shared<T, E> {
    fn lock(&self) -> MutexGuard<'_, Slot<T, E>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiving half: `.await` it on any executor, or block with
/// [`OneshotFuture::wait`].
pub struct OneshotFuture<T, E> {
    shared: Arc<Shared<T, E>>,
}

/// The completing half: [`OneshotPromise::complete`] consumes it, so a result is set
/// once.
pub struct OneshotPromise<T, E> {
    shared: Arc<Shared<T, E>>,
}

/// A connected promise/future pair.
pub fn oneshot<T, E>() -> (OneshotPromise<T, E>, OneshotFuture<T, E>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            waker: None,
            taken: false,
            blocking: false,
        }),
        cond: Condvar::new(),
    });
    (
        OneshotPromise {
            shared: shared.clone(),
        },
        OneshotFuture { shared },
    )
}

impl<T, E> OneshotPromise<T, E> {
    /// Completes the future and wakes whoever waits on it.
    pub fn complete(self, r: Result<T, E>) {
        let (waker, blocking) = {
            let mut s = self.shared.lock();
            if s.value.is_some() || s.taken {
                return;
            }
            s.value = Some(r);
            (s.waker.take(), s.blocking)
        };
        if blocking {
            self.shared.cond.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T, E> OneshotFuture<T, E> {
    /// A future that is already complete.
    pub fn ready(r: Result<T, E>) -> Self {
        let (p, f) = oneshot();
        p.complete(r);
        f
    }

    /// Blocks the calling thread until the result is there.
    pub fn wait(self) -> Result<T, E> {
        let mut s = self.shared.lock();
        loop {
            if let Some(v) = s.value.take() {
                s.taken = true;
                return v;
            }
            s.blocking = true;
            s = self.shared.cond.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks at most `timeout`; `Err(self)` gives the future back when it is not done.
    #[allow(clippy::type_complexity)]
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T, E>, Self> {
        let end = Instant::now() + timeout;
        {
            let mut s = self.shared.lock();
            loop {
                if let Some(v) = s.value.take() {
                    s.taken = true;
                    return Ok(v);
                }
                let now = Instant::now();
                if now >= end {
                    break;
                }
                s.blocking = true;
                s = self
                    .shared
                    .cond
                    .wait_timeout(s, end - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        Err(self)
    }

    /// Whether the result is there (and not yet taken).
    pub fn is_done(&self) -> bool {
        self.shared.lock().value.is_some()
    }
}

impl<T, E: OneshotError> Future for OneshotFuture<T, E> {
    type Output = Result<T, E>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.shared.lock();
        if let Some(v) = s.value.take() {
            s.taken = true;
            return Poll::Ready(v);
        }
        if s.taken {
            return Poll::Ready(Err(E::polled_after_completion()));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T, E> std::fmt::Debug for OneshotFuture<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OneshotFuture(done: {})", self.is_done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[derive(Debug, PartialEq)]
    enum TestError {
        Polled,
        Failed,
    }
    impl OneshotError for TestError {
        fn polled_after_completion() -> Self {
            TestError::Polled
        }
    }

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn poll_then_complete_wakes_the_task_once() {
        let (p, mut f) = oneshot::<i32, TestError>();
        let cw = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(cw.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        std::thread::spawn(move || p.complete(Ok(7)))
            .join()
            .unwrap();
        assert_eq!(cw.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(Ok(7)));
        // A second poll is a caller bug, reported through the error type.
        assert_eq!(
            Pin::new(&mut f).poll(&mut cx),
            Poll::Ready(Err(TestError::Polled))
        );
    }

    #[test]
    fn wait_timeout_gives_the_future_back_then_wait_gets_the_result() {
        let (p, f) = oneshot::<i32, TestError>();
        let f = f.wait_timeout(Duration::from_millis(10)).unwrap_err();
        assert!(!f.is_done());
        std::thread::spawn(move || p.complete(Err(TestError::Failed)));
        assert_eq!(f.wait(), Err(TestError::Failed));
    }

    #[test]
    fn a_blocked_waiter_is_woken_by_complete() {
        // the waiter blocks before the result comes (and after a timed wait gave up)
        for first_timed in [false, true] {
            let (p, f) = oneshot::<i32, TestError>();
            let f = if first_timed {
                f.wait_timeout(Duration::from_millis(5)).unwrap_err()
            } else {
                f
            };
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                let _ = tx.send(());
                let start = Instant::now();
                let r = f.wait_timeout(Duration::from_secs(20)).ok();
                (r, start.elapsed())
            });
            rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            p.complete(Ok(3));
            let (r, waited) = t.join().unwrap();
            assert_eq!(r, Some(Ok(3)));
            // woken by the completion, not by the timeout
            assert!(waited < Duration::from_secs(10), "{waited:?}");
        }
        // and one blocked in `wait` (a missed wake-up would hang here)
        let (p, f) = oneshot::<i32, TestError>();
        let t = std::thread::spawn(move || f.wait());
        std::thread::sleep(Duration::from_millis(20));
        p.complete(Ok(4));
        assert_eq!(t.join().unwrap(), Ok(4));
    }

    #[test]
    fn ready_is_done_at_once() {
        let f = OneshotFuture::<i32, TestError>::ready(Ok(1));
        assert!(f.is_done());
        assert_eq!(format!("{f:?}"), "OneshotFuture(done: true)");
        assert_eq!(f.wait(), Ok(1));
    }
}
