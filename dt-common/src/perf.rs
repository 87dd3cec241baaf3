//! The performance-callback hook.

/// What a perf event measures. The numbering follows the reference's `PerfConsts` so that
/// dashboards built for it read the same codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PerfType {
    /// Time a sender waited for a flow-control permit.
    RpcAcquire = 1,
    /// Time a packet waited in an IO worker's cross-thread queue.
    RpcWorkerQueue = 2,
    /// Time a packet waited in a connection's write queue.
    RpcChannelQueue = 3,
    /// Time an IO worker spent in `poll`.
    RpcWorkerSel = 4,
    /// Time an IO worker spent working between polls.
    RpcWorkerWork = 5,
    /// A read-interest change.
    RpcMarkRead = 6,
    /// A write-interest change.
    RpcMarkWrite = 7,
    /// Bytes and packets read.
    RpcRead = 8,
    /// Bytes and packets written.
    RpcWrite = 9,
    /// Round-trip latency of an RPC, from send to response.
    RpcLatency = 10,
    /// Time a dispatcher spent parked.
    FiberPoll = 20,
    /// Time a dispatcher spent running fibers.
    FiberWork = 21,
    /// One fiber run (resume until it yields).
    FiberRun = 22,
    /// Time a task waited in the dispatcher's cross-thread queue.
    FiberQueue = 23,
    /// Latency from a Raft request arriving to its leader fiber picking it up.
    RaftLeaderRunnerFiberLatency = 30,
    /// Time to encode and write log entries.
    RaftEncodeAndWrite = 31,
    /// First phase of a log write.
    RaftLogWrite1 = 32,
    /// Second phase of a log write.
    RaftLogWrite2 = 33,
    /// A log fsync.
    RaftLogSync = 34,
    /// Waiting for an index position that is not written yet.
    RaftIdxPosNotReady = 35,
    /// Waiting for a log position that is not written yet.
    RaftLogPosNotReady = 36,
    /// Allocating an index file.
    RaftIdxFileAlloc = 37,
    /// Allocating a log file.
    RaftLogFileAlloc = 38,
    /// Blocked on index flushing.
    RaftIdxBlock = 39,
    /// Writing the index.
    RaftIdxWrite = 40,
    /// Syncing the index.
    RaftIdxForce = 41,
    /// A replication RPC.
    RaftReplicateRpc = 42,
    /// Applying entries to the state machine.
    RaftStateMachineExec = 43,
    /// A DtKV lease read.
    DtkvLeaseRead = 60,
    /// A DtKV linearizable operation.
    DtkvLinearizableOp = 61,
}

impl PerfType {
    /// The numeric code (as in the reference's `PerfConsts`).
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The one hook a metrics exporter implements.
///
/// Layers call [`PerfCallback::accept`] before measuring (so a disabled type costs one
/// branch and no clock read), then [`PerfCallback::fire`] for counts or
/// [`PerfCallback::fire_time`] for timed spans. Implementations must be cheap and must not
/// block: they are called on IO and dispatcher threads.
pub trait PerfCallback: Send + Sync {
    /// Whether this callback wants events of `perf_type`. Default: none.
    fn accept(&self, perf_type: PerfType) -> bool {
        let _ = perf_type;
        false
    }

    /// Records `count` occurrences carrying `bytes` bytes in total.
    fn fire(&self, perf_type: PerfType, count: u64, bytes: u64) {
        let _ = (perf_type, count, bytes);
    }

    /// Records a span of `nanos` nanoseconds covering `count` items and `bytes` bytes.
    fn fire_time(&self, perf_type: PerfType, nanos: u64, count: u64, bytes: u64) {
        let _ = (perf_type, nanos, count, bytes);
    }
}

/// A [`PerfCallback`] that accepts nothing: the default everywhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopPerfCallback;

impl PerfCallback for NoopPerfCallback {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting {
        reads: AtomicU64,
        nanos: AtomicU64,
    }

    impl PerfCallback for Counting {
        fn accept(&self, t: PerfType) -> bool {
            t == PerfType::RpcRead
        }
        fn fire(&self, _t: PerfType, count: u64, _bytes: u64) {
            self.reads.fetch_add(count, Ordering::Relaxed);
        }
        fn fire_time(&self, _t: PerfType, nanos: u64, _c: u64, _b: u64) {
            self.nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    #[test]
    fn codes_match_reference() {
        assert_eq!(PerfType::RpcAcquire.code(), 1);
        assert_eq!(PerfType::RpcWrite.code(), 9);
        assert_eq!(PerfType::FiberPoll.code(), 20);
        assert_eq!(PerfType::RaftStateMachineExec.code(), 43);
        assert_eq!(PerfType::DtkvLinearizableOp.code(), 61);
    }

    #[test]
    fn noop_accepts_nothing_and_custom_counts() {
        let noop: &dyn PerfCallback = &NoopPerfCallback;
        assert!(!noop.accept(PerfType::RpcRead));
        let c = Counting {
            reads: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        };
        let cb: &dyn PerfCallback = &c;
        assert!(cb.accept(PerfType::RpcRead));
        assert!(!cb.accept(PerfType::RpcWrite));
        cb.fire(PerfType::RpcRead, 3, 100);
        cb.fire_time(PerfType::RpcRead, 77, 1, 1);
        assert_eq!(c.reads.load(Ordering::Relaxed), 3);
        assert_eq!(c.nanos.load(Ordering::Relaxed), 77);
    }
}
