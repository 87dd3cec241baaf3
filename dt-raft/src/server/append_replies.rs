//! [`AppendReplies`]: the answers of one group's AppendEntries requests, delivered by
//! the replicate client's IO thread into a slot table instead of a oneshot and a boxed
//! callback per request ([`dt_net::NioClient::send_request_handler`]): a send costs one
//! allocation (the future's box the driver's [`RpcFuture`] needs) instead of three.
//!
//! Each request owns one slot from its send until both its answer arrived (the client
//! reports every request's result exactly once) and its future took it or was dropped;
//! so a slot's key is never reused while an answer for it may still come.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use dt_net::{NetError, ReadPacket, RpcHandler};
use slab::Slab;

use crate::core::AppendResp;
use crate::driver::RpcError;

/// The state of one request's slot.
enum Slot {
    /// No answer yet; the waker of the future's last poll.
    Waiting(Option<Waker>),
    /// The decoded answer, not taken yet.
    Done(Result<AppendResp, RpcError>),
    /// The future was dropped first: the slot goes when the answer comes.
    Abandoned,
}

/// The slot table of one transport's append requests (the client's [`RpcHandler`]).
#[derive(Default)]
pub(crate) struct AppendReplies {
    slots: Mutex<Slab<Slot>>,
}

impl AppendReplies {
    fn lock(&self) -> MutexGuard<'_, Slab<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a request about to be sent; its key is the request's token.
    pub(crate) fn open(self: &Arc<Self>) -> AppendReply {
        let key = self.lock().insert(Slot::Waiting(None));
        AppendReply {
            table: self.clone(),
            key,
            taken: false,
        }
    }

    /// Fails the request of `reply` at once (it could not be sent).
    pub(crate) fn fail(&self, reply: &AppendReply, e: RpcError) {
        self.complete(reply.key, Err(e));
    }

    fn complete(&self, key: usize, r: Result<AppendResp, RpcError>) {
        let waker = {
            let mut s = self.lock();
            match s.get_mut(key) {
                Some(slot @ Slot::Waiting(_)) => {
                    let Slot::Waiting(w) = std::mem::replace(slot, Slot::Done(r)) else {
                        unreachable!("matched Waiting")
                    };
                    w
                }
                Some(Slot::Abandoned) => {
                    s.remove(key);
                    None
                }
                // answered twice (not by the client's contract) or unknown: ignored
                _ => None,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl RpcHandler for AppendReplies {
    fn on_result(&self, token: u64, r: Result<ReadPacket, NetError>) {
        let r = r
            .map_err(super::transport::net_error)
            .and_then(super::transport::decode_append);
        self.complete(token as usize, r);
    }
}

/// The answer of one append request (the driver's `RpcFuture`, boxed by the caller).
pub(crate) struct AppendReply {
    table: Arc<AppendReplies>,
    key: usize,
    taken: bool,
}

impl AppendReply {
    /// The token the request is sent with.
    pub(crate) fn token(&self) -> u64 {
        self.key as u64
    }
}

impl Future for AppendReply {
    type Output = Result<AppendResp, RpcError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.taken {
            return Poll::Ready(Err(RpcError::BadResponse(
                "append answer polled after completion".into(),
            )));
        }
        let mut s = self.table.lock();
        let key = self.key;
        match s.get_mut(key) {
            Some(Slot::Waiting(w)) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done(_)) => {
                let Slot::Done(r) = s.remove(key) else {
                    unreachable!("matched Done")
                };
                drop(s);
                self.taken = true;
                Poll::Ready(r)
            }
            _ => {
                drop(s);
                self.taken = true;
                Poll::Ready(Err(RpcError::BadResponse("append answer slot lost".into())))
            }
        }
    }
}

impl Drop for AppendReply {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut s = self.table.lock();
        match s.get(self.key) {
            Some(Slot::Done(_)) => {
                s.remove(self.key);
            }
            Some(Slot::Waiting(_)) => s[self.key] = Slot::Abandoned,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(f: &mut AppendReply) -> Poll<Result<AppendResp, RpcError>> {
        let w = Waker::noop();
        Pin::new(f).poll(&mut Context::from_waker(w))
    }

    #[test]
    fn an_answer_reaches_its_future_and_frees_the_slot() {
        let t = Arc::new(AppendReplies::default());
        let mut a = t.open();
        let mut b = t.open();
        assert!(poll(&mut a).is_pending());
        t.fail(&b, RpcError::Timeout);
        t.complete(
            a.key,
            Ok(AppendResp::new(3, crate::core::AppendCode::Success)),
        );
        assert_eq!(
            poll(&mut a),
            Poll::Ready(Ok(AppendResp::new(3, crate::core::AppendCode::Success)))
        );
        assert_eq!(poll(&mut b), Poll::Ready(Err(RpcError::Timeout)));
        drop((a, b));
        assert!(t.lock().is_empty());
    }

    #[test]
    fn a_dropped_future_keeps_its_slot_until_the_answer_comes() {
        let t = Arc::new(AppendReplies::default());
        let a = t.open();
        let key = a.key;
        drop(a);
        // the key is not reused while the answer may still come
        let b = t.open();
        assert_ne!(b.key, key);
        t.complete(key, Err(RpcError::Timeout));
        assert_eq!(t.lock().len(), 1);
        drop(b);
        assert_eq!(t.lock().len(), 1, "b's answer has not come yet");
    }
}
