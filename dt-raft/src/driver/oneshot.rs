//! A one-value channel whose receiver is a std [`Future`]: the bridge between the
//! group's thread and any other thread (or executor) waiting for a result.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct State<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// The sending half; `Send` when `T` is.
pub struct OneshotSender<T> {
    st: Arc<Mutex<State<T>>>,
}

/// The receiving half: resolves to `Some(value)`, or `None` when the sender was dropped
/// without sending.
pub struct OneshotReceiver<T> {
    st: Arc<Mutex<State<T>>>,
}

/// A new one-value channel.
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let st = Arc::new(Mutex::new(State {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (OneshotSender { st: st.clone() }, OneshotReceiver { st })
}

fn lock<T>(m: &Mutex<State<T>>) -> std::sync::MutexGuard<'_, State<T>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> OneshotSender<T> {
    /// Sends the value and wakes the receiver.
    pub fn send(self, v: T) {
        let w = {
            let mut s = lock(&self.st);
            s.value = Some(v);
            s.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let w = {
            let mut s = lock(&self.st);
            s.sender_gone = true;
            s.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> OneshotReceiver<T> {
    /// The value if it has arrived, without waiting.
    pub fn try_take(&self) -> Option<T> {
        lock(&self.st).value.take()
    }

    /// Blocks the calling thread until the value arrives (never call it on a
    /// dispatcher thread). `None` if the sender was dropped, or after `timeout`.
    pub fn wait_timeout(self, timeout: std::time::Duration) -> Option<T> {
        crate::raft_log::block_on_timeout(self, timeout).flatten()
    }
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = lock(&self.st);
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.sender_gone {
            return Poll::Ready(None);
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn value_crosses_threads() {
        let (tx, rx) = oneshot();
        std::thread::spawn(move || tx.send(5u32));
        assert_eq!(rx.wait_timeout(Duration::from_secs(5)), Some(5));
    }

    #[test]
    fn dropped_sender_resolves_none() {
        let (tx, rx) = oneshot::<u32>();
        drop(tx);
        assert_eq!(rx.wait_timeout(Duration::from_secs(5)), None);
    }
}
