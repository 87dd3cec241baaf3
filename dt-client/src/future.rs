//! [`KvFuture`]: the one-shot result of a client operation, usable as a
//! `std::future::Future` from any executor (no runtime is needed: the client's own
//! threads complete it and wake the task), or blocking with [`KvFuture::wait`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::kv::KvError;

struct Slot<T> {
    value: Option<Result<T, KvError>>,
    waker: Option<Waker>,
    taken: bool,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    cond: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The receiving half: `.await` it on any executor, or block with [`KvFuture::wait`].
pub struct KvFuture<T> {
    shared: Arc<Shared<T>>,
}

/// The completing half: [`KvPromise::complete`] once (later completions are ignored).
pub struct KvPromise<T> {
    shared: Arc<Shared<T>>,
}

/// A connected promise/future pair.
pub fn kv_channel<T>() -> (KvPromise<T>, KvFuture<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            waker: None,
            taken: false,
        }),
        cond: Condvar::new(),
    });
    (
        KvPromise {
            shared: shared.clone(),
        },
        KvFuture { shared },
    )
}

impl<T> KvPromise<T> {
    /// Completes the future and wakes whoever waits on it.
    pub fn complete(self, r: Result<T, KvError>) {
        let waker = {
            let mut s = lock(&self.shared.slot);
            if s.value.is_some() || s.taken {
                return;
            }
            s.value = Some(r);
            s.waker.take()
        };
        self.shared.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> KvFuture<T> {
    /// A future that is already complete.
    pub fn ready(r: Result<T, KvError>) -> Self {
        let (p, f) = kv_channel();
        p.complete(r);
        f
    }

    /// Blocks the calling thread until the result is there. Every operation has a
    /// deadline, so this returns by then at the latest.
    pub fn wait(self) -> Result<T, KvError> {
        let mut s = lock(&self.shared.slot);
        loop {
            if let Some(v) = s.value.take() {
                s.taken = true;
                return v;
            }
            s = self.shared.cond.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks at most `timeout`; `Err(self)` gives the future back when it is not done.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T, KvError>, Self> {
        let end = Instant::now() + timeout;
        {
            let mut s = lock(&self.shared.slot);
            loop {
                if let Some(v) = s.value.take() {
                    s.taken = true;
                    return Ok(v);
                }
                let now = Instant::now();
                if now >= end {
                    break;
                }
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

    /// Whether the result is there.
    pub fn is_done(&self) -> bool {
        lock(&self.shared.slot).value.is_some()
    }
}

impl<T> Future for KvFuture<T> {
    type Output = Result<T, KvError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.shared.slot);
        if let Some(v) = s.value.take() {
            s.taken = true;
            return Poll::Ready(v);
        }
        if s.taken {
            return Poll::Ready(Err(KvError::InvalidArgument(
                "KvFuture polled after completion".into(),
            )));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for KvFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KvFuture(done: {})", self.is_done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn poll_then_complete_wakes_the_task() {
        let (p, mut f) = kv_channel::<i32>();
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        std::thread::spawn(move || p.complete(Ok(7)))
            .join()
            .unwrap();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(matches!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(Ok(7))));
    }

    #[test]
    fn wait_timeout_gives_the_future_back() {
        let (p, f) = kv_channel::<i32>();
        let f = f.wait_timeout(Duration::from_millis(10)).unwrap_err();
        p.complete(Ok(1));
        assert_eq!(f.wait().unwrap(), 1);
    }
}
