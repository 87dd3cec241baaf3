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

    /// A short lower-case name for logs and reports (the reference's constant name
    /// without its prefix letters, e.g. `raft_log_sync` for `RAFT_D_LOG_SYNC`).
    pub fn name(self) -> &'static str {
        match self {
            PerfType::RpcAcquire => "rpc_acquire",
            PerfType::RpcWorkerQueue => "rpc_worker_queue",
            PerfType::RpcChannelQueue => "rpc_channel_queue",
            PerfType::RpcWorkerSel => "rpc_worker_sel",
            PerfType::RpcWorkerWork => "rpc_worker_work",
            PerfType::RpcMarkRead => "rpc_mark_read",
            PerfType::RpcMarkWrite => "rpc_mark_write",
            PerfType::RpcRead => "rpc_read",
            PerfType::RpcWrite => "rpc_write",
            PerfType::RpcLatency => "rpc_latency",
            PerfType::FiberPoll => "fiber_poll",
            PerfType::FiberWork => "fiber_work",
            PerfType::FiberRun => "fiber_run",
            PerfType::FiberQueue => "fiber_queue",
            PerfType::RaftLeaderRunnerFiberLatency => "raft_leader_runner_fiber_latency",
            PerfType::RaftEncodeAndWrite => "raft_encode_and_write",
            PerfType::RaftLogWrite1 => "raft_log_write1",
            PerfType::RaftLogWrite2 => "raft_log_write2",
            PerfType::RaftLogSync => "raft_log_sync",
            PerfType::RaftIdxPosNotReady => "raft_idx_pos_not_ready",
            PerfType::RaftLogPosNotReady => "raft_log_pos_not_ready",
            PerfType::RaftIdxFileAlloc => "raft_idx_file_alloc",
            PerfType::RaftLogFileAlloc => "raft_log_file_alloc",
            PerfType::RaftIdxBlock => "raft_idx_block",
            PerfType::RaftIdxWrite => "raft_idx_write",
            PerfType::RaftIdxForce => "raft_idx_force",
            PerfType::RaftReplicateRpc => "raft_replicate_rpc",
            PerfType::RaftStateMachineExec => "raft_state_machine_exec",
            PerfType::DtkvLeaseRead => "dtkv_lease_read",
            PerfType::DtkvLinearizableOp => "dtkv_linearizable_op",
        }
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

/// A shared [`PerfCallback`] as a configuration value: cloned cheaply, compared by
/// identity (two configurations are equal when they hold the same hook), printed by its
/// address. [`PerfHook::default`] holds a [`NoopPerfCallback`] (the same one for all).
///
/// Layers measure through [`PerfHook::start`] and [`PerfHook::end`], which read the
/// clock only when the hook accepts the type:
///
/// ```
/// use dt_common::{PerfHook, PerfType};
///
/// let hook = PerfHook::default();
/// let t = hook.start(PerfType::RaftLogSync); // 0: the no-op hook accepts nothing
/// assert_eq!(t, 0);
/// hook.end(PerfType::RaftLogSync, t, 1, 4096); // does nothing for a 0 start
/// ```
#[derive(Clone)]
pub struct PerfHook(std::sync::Arc<dyn PerfCallback>);

impl PerfHook {
    /// A hook that reports to `callback`.
    pub fn new(callback: std::sync::Arc<dyn PerfCallback>) -> Self {
        PerfHook(callback)
    }

    /// The callback as the layers' configurations take it (`NioServerConfig::perf`,
    /// `DispatcherConfig::perf`).
    pub fn shared(&self) -> std::sync::Arc<dyn PerfCallback> {
        self.0.clone()
    }

    /// Whether the callback wants `perf_type`.
    #[inline]
    pub fn accept(&self, perf_type: PerfType) -> bool {
        self.0.accept(perf_type)
    }

    /// The start of a span of `perf_type`: the monotonic clock in nanoseconds when the
    /// callback accepts the type, else 0 (and no clock read).
    #[inline]
    pub fn start(&self, perf_type: PerfType) -> i64 {
        if self.0.accept(perf_type) {
            crate::mono_nanos().max(1)
        } else {
            0
        }
    }

    /// Ends a span begun by [`PerfHook::start`] (nothing when `start` is 0), covering
    /// `count` items and `bytes` bytes.
    #[inline]
    pub fn end(&self, perf_type: PerfType, start: i64, count: u64, bytes: u64) {
        if start != 0 {
            let nanos = crate::mono_nanos().saturating_sub(start).max(0) as u64;
            self.0.fire_time(perf_type, nanos, count, bytes);
        }
    }
}

impl Default for PerfHook {
    /// The no-op hook: one shared instance, so that default hooks compare equal.
    fn default() -> Self {
        static NOOP: std::sync::OnceLock<std::sync::Arc<dyn PerfCallback>> =
            std::sync::OnceLock::new();
        PerfHook(
            NOOP.get_or_init(|| std::sync::Arc::new(NoopPerfCallback))
                .clone(),
        )
    }
}

impl std::fmt::Debug for PerfHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PerfHook({:p})",
            std::sync::Arc::as_ptr(&self.0) as *const ()
        )
    }
}

impl PartialEq for PerfHook {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PerfHook {}

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
        assert_eq!(PerfType::RaftLogSync.name(), "raft_log_sync");
        assert_eq!(PerfType::DtkvLeaseRead.name(), "dtkv_lease_read");
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

    #[test]
    fn hook_reads_the_clock_only_for_accepted_types() {
        let c = std::sync::Arc::new(Counting {
            reads: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        });
        let hook = PerfHook::new(c.clone());
        assert_eq!(hook.start(PerfType::RpcWrite), 0);
        let t = hook.start(PerfType::RpcRead);
        assert!(t > 0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        hook.end(PerfType::RpcRead, t, 1, 10);
        let measured = c.nanos.load(Ordering::Relaxed);
        assert!(measured >= 2_000_000);
        // a span that was never started fires nothing
        hook.end(PerfType::RpcRead, 0, 1, 10);
        assert_eq!(c.nanos.load(Ordering::Relaxed), measured);
        assert_eq!(hook, hook.clone());
        assert_ne!(hook, PerfHook::default());
        assert_eq!(PerfHook::default(), PerfHook::default());
    }
}
