//! The command queue of an IO worker: what other threads (the acceptor, processors on
//! executors, the client's and server's API) send to a worker, the mio `Waker` that wakes
//! it, and the identifiers and request types those commands carry. It depends on no
//! endpoint: the worker, the server, the client and the processors all build on it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use dt_common::DtTime;
use mio::net::TcpStream;
use mio::Waker;

use crate::error::NetError;
use crate::flow_control::Permit;
use crate::packet::{ReadPacket, WritePacket};
use crate::peer::{Peer, PeerId};

/// Identifies one connection of a server or client (stable while it lives; a closed
/// connection's `ConnRef` never matches a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub(crate) worker: usize,
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

/// Completion callback of a request.
pub(crate) type RespCallback = Box<dyn FnOnce(Result<ReadPacket, NetError>) + Send>;

/// Receives the results of many requests, told apart by a caller-chosen token: the
/// allocation-free alternative to a boxed callback per request (see
/// [`crate::NioClient::send_request_handler`]). Called on the IO thread; keep it short.
pub trait RpcHandler: Send + Sync + 'static {
    /// The result of the request sent with `token`.
    fn on_result(&self, token: u64, r: Result<ReadPacket, NetError>);
}

/// How a request's result is delivered.
pub(crate) enum Completion {
    Boxed(RespCallback),
    /// Like `Boxed`, but a response with a non-zero `resp_code` is delivered as it came
    /// (`Ok`), so the caller can read its `msg` and `extra`.
    Raw(RespCallback),
    Shared(Arc<dyn RpcHandler>, u64),
    Static(&'static dyn RpcHandler, u64),
}

impl Completion {
    pub(crate) fn run(self, r: Result<ReadPacket, NetError>) {
        match self {
            Completion::Boxed(cb) | Completion::Raw(cb) => cb(r),
            Completion::Shared(h, t) => h.on_result(t, r),
            Completion::Static(h, t) => h.on_result(t, r),
        }
    }

    /// Whether a non-zero `resp_code` is delivered as the packet rather than an error.
    pub(crate) fn is_raw(&self) -> bool {
        matches!(self, Completion::Raw(_))
    }

    /// Delivers an error on the calling thread (immediate failures).
    pub fn fail(self, e: NetError) {
        self.run(Err(e))
    }
}

/// Where a request goes.
pub(crate) enum Target {
    Peer(PeerId),
    Any,
    Conn(ConnRef),
}

/// A request on its way to a worker.
pub(crate) struct OutRequest {
    pub target: Target,
    pub pkt: WritePacket,
    pub deadline: DtTime,
    pub cb: Option<Completion>,
    pub permit_bytes: usize,
    pub start_nanos: i64,
}

/// A command to a worker.
pub(crate) enum WorkerCmd {
    NewConn {
        stream: TcpStream,
        local_port: u16,
    },
    Respond {
        conn: ConnRef,
        pkt: WritePacket,
        deadline: DtTime,
        enqueued: i64,
        /// Flow-control credit of the request, released once the response is written.
        permit: Option<Permit>,
    },
    Send(OutRequest),
    AddPeer(Peer),
    RemovePeer(PeerId),
    Stop,
}

/// The cross-thread entry of a worker: a queue and a waker (woken once per batch).
pub(crate) struct WorkerHandle {
    tx: Sender<WorkerCmd>,
    waker: Waker,
    wake_pending: AtomicBool,
    /// What the worker holds, published once per loop iteration.
    pub stats: WorkerStats,
}

/// Gauges of one worker (relaxed; for monitoring and tests). On a cache line of its
/// own, away from the queue's wake flag that producers write.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerStats {
    pub connections: AtomicUsize,
    pub read_buffered: AtomicUsize,
    pub write_buffered: AtomicUsize,
}

impl WorkerHandle {
    /// A handle sending on `tx` and waking the worker's poll with `waker`.
    pub fn new(tx: Sender<WorkerCmd>, waker: Waker) -> Self {
        WorkerHandle {
            tx,
            waker,
            wake_pending: AtomicBool::new(false),
            stats: WorkerStats::default(),
        }
    }

    /// Queues `cmd`; gives it back when the worker is gone.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, cmd: WorkerCmd) -> Result<(), WorkerCmd> {
        self.tx.send(cmd).map_err(|e| e.0)?;
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// Queues `cmd`, dropping it when the worker is gone.
    pub fn send(&self, cmd: WorkerCmd) {
        let _ = self.try_send(cmd);
    }

    /// Called by the worker before it drains its queue: the next command queued wakes
    /// it again. An RMW (not a plain store): it reads the flag a producer set with its own
    /// RMW after queueing, so everything queued before that is visible to the drain.
    pub fn clear_wake(&self) {
        self.wake_pending.swap(false, Ordering::AcqRel);
    }
}
