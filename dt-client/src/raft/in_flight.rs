//! [`InFlight`]: the requests a [`RaftClient`](super::RaftClient) has on the wire, by
//! token, and the handler their answers come back to.
//!
//! A request's state (its call, with the caller's callback, and where it went) waits
//! here in a slab slot instead of in a closure boxed per request: sending allocates
//! nothing once the slab has grown to the number of requests in flight, and the
//! network thread that delivers the answer frees nothing the caller's thread allocated
//! (a free across threads costs more than the allocation did).

use std::sync::{Mutex, MutexGuard, Weak};

use dt_net::{NetError, PeerId, ReadPacket, RpcHandler};
use slab::Slab;

use super::client::{Call, Inner};

/// One request on the wire: the call and the node and connection it went to.
pub(crate) struct Sent {
    pub call: Call,
    pub node: i32,
    pub peer: PeerId,
}

/// The requests in flight (see the module documentation).
pub(crate) struct InFlight {
    inner: Weak<Inner>,
    slots: Mutex<Slab<Sent>>,
}

impl InFlight {
    pub fn new(inner: Weak<Inner>) -> InFlight {
        InFlight {
            inner,
            slots: Mutex::new(Slab::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slab<Sent>> {
        // Slots are plain data: a panic elsewhere leaves them consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `s` until its answer; returns its token.
    pub fn put(&self, s: Sent) -> u64 {
        self.lock().insert(s) as u64
    }

    /// Requests waiting for an answer.
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl RpcHandler for InFlight {
    fn on_result(&self, token: u64, r: Result<ReadPacket, NetError>) {
        // The network layer completes each request exactly once, so the slot is there.
        let Some(sent) = usize::try_from(token)
            .ok()
            .and_then(|k| self.lock().try_remove(k))
        else {
            log::error!("raft client: an answer for unknown request token {token}");
            return;
        };
        match self.inner.upgrade() {
            Some(inner) => inner.on_result(sent.call, sent.node, sent.peer, r),
            // The client is gone: answer the caller all the same.
            None => sent.call.fail(NetError::Stopped),
        }
    }
}
