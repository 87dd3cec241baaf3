//! [`RpcFuture`]: a one-shot result usable as a `std::future::Future` (any executor), or
//! blocking with [`RpcFuture::wait`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::NetError;

struct Slot<T> {
    value: Option<Result<T, NetError>>,
    waker: Option<Waker>,
    taken: bool,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    cond: Condvar,
}

/// The receiving half: await it, or block with [`RpcFuture::wait`].
pub struct RpcFuture<T> {
    shared: Arc<Shared<T>>,
}

/// The completing half, moved into the callback that the IO thread runs.
pub struct RpcPromise<T> {
    shared: Arc<Shared<T>>,
}

/// A connected promise/future pair.
pub fn rpc_channel<T>() -> (RpcPromise<T>, RpcFuture<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            waker: None,
            taken: false,
        }),
        cond: Condvar::new(),
    });
    (
        RpcPromise {
            shared: shared.clone(),
        },
        RpcFuture { shared },
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> RpcPromise<T> {
    /// Completes the future (first completion wins).
    pub fn complete(self, r: Result<T, NetError>) {
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

impl<T> RpcFuture<T> {
    /// A future that is already complete.
    pub fn ready(r: Result<T, NetError>) -> Self {
        let (p, f) = rpc_channel();
        p.complete(r);
        f
    }

    /// Blocks until the result is there.
    pub fn wait(self) -> Result<T, NetError> {
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
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T, NetError>, Self> {
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

impl<T> Future for RpcFuture<T> {
    type Output = Result<T, NetError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.shared.slot);
        if let Some(v) = s.value.take() {
            s.taken = true;
            return Poll::Ready(v);
        }
        if s.taken {
            return Poll::Ready(Err(NetError::InvalidArgument(
                "RpcFuture polled after completion".into(),
            )));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for RpcFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RpcFuture(done={})", self.is_done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn poll_then_complete_wakes() {
        let (p, mut f) = rpc_channel::<i32>();
        let cw = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(cw.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        std::thread::spawn(move || p.complete(Ok(7)))
            .join()
            .unwrap();
        assert_eq!(cw.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut f).poll(&mut cx) {
            Poll::Ready(Ok(7)) => {}
            _ => panic!(),
        }
    }

    #[test]
    fn blocking_wait_and_timeout() {
        let (p, f) = rpc_channel::<i32>();
        let f = f.wait_timeout(Duration::from_millis(10)).unwrap_err();
        std::thread::spawn(move || p.complete(Err(NetError::Stopped)));
        assert!(matches!(f.wait(), Err(NetError::Stopped)));
    }
}
