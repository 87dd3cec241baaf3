//! The command queue of an IO worker: what other threads (the acceptor, processors on
//! executors, the client's and server's API) send to a worker, the mio `Waker` that wakes
//! it, and the identifiers and request types those commands carry. It depends on no
//! endpoint: the worker, the server, the client and the processors all build on it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dt_common::wake_batch::{self, DeferredWake};
use dt_common::{DtTime, PerfCallback};
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
    /// `Shared`, with non-zero `resp_code`s delivered as `Raw` does.
    SharedRaw(Arc<dyn RpcHandler>, u64),
    Static(&'static dyn RpcHandler, u64),
}

impl Completion {
    pub(crate) fn run(self, r: Result<ReadPacket, NetError>) {
        match self {
            Completion::Boxed(cb) | Completion::Raw(cb) => cb(r),
            Completion::Shared(h, t) | Completion::SharedRaw(h, t) => h.on_result(t, r),
            Completion::Static(h, t) => h.on_result(t, r),
        }
    }

    /// Whether a non-zero `resp_code` is delivered as the packet rather than an error.
    pub(crate) fn is_raw(&self) -> bool {
        matches!(self, Completion::Raw(_) | Completion::SharedRaw(..))
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
    queue: CmdQueue,
    waker: Waker,
    wake_pending: AtomicBool,
    /// What the worker holds, published once per loop iteration.
    pub stats: WorkerStats,
    /// The worker's perf callback: a response is timestamped when queued only while it
    /// takes [`dt_common::PerfType::RpcWorkerQueue`] (reading the clock is not free).
    pub perf: Arc<dyn PerfCallback>,
}

impl DeferredWake for WorkerHandle {
    fn wake_now(&self) {
        let _ = self.waker.wake();
    }
}

/// The commands queued for a worker: producers push under a short lock, the worker
/// swaps the whole batch out for its (empty) spare vector. Unlike a linked block
/// queue it allocates nothing in the steady state: the two vectors keep their
/// capacity, where crossbeam's unbounded channel allocated and zeroed a block for
/// every 31 commands (a command is ~200 bytes, so ~6 KiB zeroed per block, on the
/// dispatcher thread that answers requests).
struct CmdQueue {
    state: Mutex<CmdState>,
}

struct CmdState {
    cmds: Vec<WorkerCmd>,
    /// The worker is gone: pushes are refused.
    closed: bool,
}

impl CmdQueue {
    fn lock(&self) -> MutexGuard<'_, CmdState> {
        // A panic while holding the lock cannot leave the vector inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    /// A handle with an empty queue, waking the worker's poll with `waker`.
    pub fn new(waker: Waker, perf: Arc<dyn PerfCallback>) -> Self {
        WorkerHandle {
            queue: CmdQueue {
                state: Mutex::new(CmdState {
                    cmds: Vec::new(),
                    closed: false,
                }),
            },
            waker,
            wake_pending: AtomicBool::new(false),
            stats: WorkerStats::default(),
            perf,
        }
    }

    /// Queues `cmd`; gives it back when the worker is gone.
    #[allow(clippy::result_large_err)]
    ///
    /// Inside a [`dt_common::wake_batch::scope`] (a Dispatcher's round) the wake-up is
    /// held to the scope's end: a round's answers to one worker wake it once.
    pub fn try_send(self: &Arc<Self>, cmd: WorkerCmd) -> Result<(), WorkerCmd> {
        {
            let mut q = self.queue.lock();
            if q.closed {
                return Err(cmd);
            }
            q.cmds.push(cmd);
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let me: Arc<dyn DeferredWake> = self.clone();
            if !wake_batch::defer(&me) {
                let _ = self.waker.wake();
            }
        }
        Ok(())
    }

    /// Queues `cmd`, dropping it when the worker is gone.
    pub fn send(self: &Arc<Self>, cmd: WorkerCmd) {
        let _ = self.try_send(cmd);
    }

    /// Called by the worker before it drains its queue: the next command queued wakes
    /// it again. An RMW (not a plain store): it reads the flag a producer set with its own
    /// RMW after queueing, so everything queued before that is visible to the drain.
    pub fn clear_wake(&self) {
        self.wake_pending.swap(false, Ordering::AcqRel);
    }

    /// Moves every queued command into `batch` (which the worker passes empty and gets
    /// back holding them, in the order they were queued); the queue keeps `batch`'s
    /// old allocation for the next commands.
    pub fn take_batch(&self, batch: &mut Vec<WorkerCmd>) {
        debug_assert!(batch.is_empty());
        let mut q = self.queue.lock();
        std::mem::swap(&mut q.cmds, batch);
    }

    /// Refuses every later command (the worker stopped) and returns those still queued.
    pub fn close(&self) -> Vec<WorkerCmd> {
        let mut q = self.queue.lock();
        q.closed = true;
        std::mem::take(&mut q.cmds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};

    fn handle() -> (Poll, Arc<WorkerHandle>) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(7)).unwrap();
        (
            poll,
            Arc::new(WorkerHandle::new(
                waker,
                Arc::new(dt_common::NoopPerfCallback),
            )),
        )
    }

    fn send(h: &Arc<WorkerHandle>, cmd: WorkerCmd) {
        assert!(h.try_send(cmd).is_ok(), "an open queue refused a command");
    }

    fn peer_of(cmd: &WorkerCmd) -> u32 {
        match cmd {
            WorkerCmd::RemovePeer(p) => p.0,
            _ => panic!("not a RemovePeer"),
        }
    }

    #[test]
    fn a_batch_holds_the_commands_in_queue_order_and_the_queue_reuses_the_spare() {
        let (_poll, h) = handle();
        for i in 0..5 {
            send(&h, WorkerCmd::RemovePeer(PeerId(i)));
        }
        let mut batch = Vec::with_capacity(64);
        let spare = batch.as_ptr();
        h.take_batch(&mut batch);
        assert_eq!(
            batch.iter().map(peer_of).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        // the queue now holds the spare's allocation: no new one for the next commands
        send(&h, WorkerCmd::RemovePeer(PeerId(9)));
        batch.clear();
        h.take_batch(&mut batch);
        assert_eq!(batch.as_ptr(), spare);
        assert_eq!(batch.iter().map(peer_of).collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn the_first_command_after_a_drain_wakes_the_worker_once() {
        let (mut poll, h) = handle();
        let mut events = Events::with_capacity(4);
        send(&h, WorkerCmd::RemovePeer(PeerId(1)));
        send(&h, WorkerCmd::RemovePeer(PeerId(2)));
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
        h.clear_wake();
        let mut batch = Vec::new();
        h.take_batch(&mut batch);
        assert_eq!(batch.len(), 2);
        send(&h, WorkerCmd::RemovePeer(PeerId(3)));
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
    }

    #[test]
    fn inside_a_wake_batch_scope_the_worker_is_woken_once_at_its_end() {
        let (mut poll, h) = handle();
        let mut events = Events::with_capacity(4);
        dt_common::wake_batch::scope(|| {
            send(&h, WorkerCmd::RemovePeer(PeerId(1)));
            send(&h, WorkerCmd::RemovePeer(PeerId(2)));
            poll.poll(&mut events, Some(std::time::Duration::from_millis(50)))
                .unwrap();
            assert_eq!(events.iter().count(), 0, "woken inside the scope");
        });
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
        let mut batch = Vec::new();
        h.take_batch(&mut batch);
        assert_eq!(batch.iter().map(peer_of).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_closed_queue_refuses_commands_and_gives_back_those_left() {
        let (_poll, h) = handle();
        send(&h, WorkerCmd::RemovePeer(PeerId(1)));
        let left = h.close();
        assert_eq!(left.iter().map(peer_of).collect::<Vec<_>>(), [1]);
        match h.try_send(WorkerCmd::RemovePeer(PeerId(2))) {
            Err(cmd) => assert_eq!(peer_of(&cmd), 2),
            Ok(()) => panic!("a closed queue took a command"),
        }
        assert!(h.close().is_empty());
    }
}
