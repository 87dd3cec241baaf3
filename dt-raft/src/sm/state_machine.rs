//! The [`StateMachine`] contract (raft.md §16.1): what Raft calls, on which thread, in
//! which order, and what it expects back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::snapshot::{Snapshot, SnapshotChunk, SnapshotInfo};
use crate::core::{Index, Term};

/// A boxed, not-`Send` future returned by the state machine (snapshot work, slow
/// executions). It is polled by the group's fibers on its dispatcher thread; it may be
/// completed from another thread through its [`Waker`](std::task::Waker).
pub type SmFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SmError>> + 'a>>;

/// Why the state machine failed an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmError {
    /// The input was refused (unknown bizType, a body that does not decode). For a
    /// write entry this is still fatal to the group (every replica must apply the same
    /// entries the same way); for a read-only entry it goes to the caller.
    Rejected(String),
    /// The state machine failed internally (fatal for write entries).
    Failed(String),
    /// The operation is not supported by this state machine (e.g. snapshots).
    Unsupported(&'static str),
}

impl fmt::Display for SmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmError::Rejected(m) => write!(f, "state machine rejected the input: {m}"),
            SmError::Failed(m) => write!(f, "state machine failed: {m}"),
            SmError::Unsupported(what) => write!(f, "state machine does not support {what}"),
        }
    }
}

impl std::error::Error for SmError {}

/// The result of [`StateMachine::exec`]: done at once (no allocation), or a future.
///
/// Futures of consecutive entries must complete in index order: Raft does not wait for
/// one before executing the next entry (it polls each future once right away, so a
/// lazy `async` block starts its work), then takes the completions in index order and
/// advances `lastApplied` as each completes.
pub enum Exec<T> {
    /// Executed synchronously.
    Done(Result<T, SmError>),
    /// Completes later (e.g. after an IO of the state machine's own).
    Pending(SmFuture<'static, T>),
}

impl<T> fmt::Debug for Exec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exec::Done(r) => write!(f, "Exec::Done(ok: {})", r.is_ok()),
            Exec::Pending(_) => f.write_str("Exec::Pending"),
        }
    }
}

/// One committed entry handed to [`StateMachine::exec`].
#[derive(Clone, Copy, Debug)]
pub struct ExecEntry<'a> {
    /// Raft index.
    pub index: Index,
    /// Term of the entry.
    pub term: Term,
    /// Entry type: [`TYPE_NORMAL`](crate::store::log_item::TYPE_NORMAL) or
    /// [`TYPE_LOG_READ`](crate::store::log_item::TYPE_LOG_READ) (a read-only input, executed only
    /// on the node that holds its caller).
    pub item_type: u8,
    /// The state-machine operation code (0–127).
    pub biz_type: u8,
    /// Leader wall-clock milliseconds when the entry was created.
    pub leader_create_millis: i64,
    /// Monotonic nanoseconds (of the group's clock) when this process created or
    /// received the entry; for entries replayed from disk, estimated from the
    /// timestamp and never in the future.
    pub local_create_nanos: i64,
    /// The business header bytes (may be empty).
    pub header: &'a Bytes,
    /// The business body bytes (may be empty).
    pub body: &'a Bytes,
    /// Whether `header` and `body` are slices of a buffer shared with other entries:
    /// true for an entry this node received from a leader (a slice of the whole
    /// AppendEntries frame) or replayed from disk (a slice of a read block), and for
    /// a leader's entry whose caller is gone; false for an entry submitted here with
    /// its own buffers. A state machine that keeps slices of a shared body beyond
    /// `exec` (a stored value, say) should copy them: a slice keeps its whole buffer
    /// alive.
    pub body_shared: bool,
}

impl ExecEntry<'_> {
    /// True for a read-only entry (LOG_READ).
    pub fn is_read_only(&self) -> bool {
        self.item_type == crate::store::log_item::TYPE_LOG_READ
    }
}

/// The user's state machine of one Raft group.
///
/// # Threads and order
///
/// Every method runs on the group's dispatcher thread (the state machine needs no
/// locks; it may hold `Rc`s). [`RaftFactory`](super::RaftFactory) builds it there.
///
/// 1. [`start`](Self::start) once, at group init, before anything else.
/// 2. If the group recovers from a saved snapshot or a leader installs one:
///    [`install_snapshot`](Self::install_snapshot) with the chunks in order (offset 0
///    starts an install: discard all state; `done` ends it).
/// 3. [`exec`](Self::exec) for every committed NORMAL entry, and every LOG_READ entry
///    that has a waiting caller on this node, in strictly increasing index order, each
///    exactly once per process lifetime. After a restart, Raft replays the entries
///    after the last snapshot: `exec` must rebuild the same state from the same entries
///    (determinism), and must not depend on the local clock or randomness.
/// 4. [`take_snapshot`](Self::take_snapshot) between entries, after every earlier
///    `exec` future completed: the snapshot must reflect exactly
///    `info.last_included_index`; later writes must not leak into it.
/// 5. [`stop`](Self::stop) once at group shutdown.
///
/// # Failures
///
/// An error from `exec` of a write entry shuts the group down (the replicas would
/// diverge otherwise); for a read-only entry it is given to the caller.
///
/// # Results
///
/// [`Output`](Self::Output) is what the leader's caller receives with the index of its
/// entry (followers and replays drop it). It is sent to the caller's thread.
pub trait StateMachine: 'static {
    /// The result of one execution, handed to the caller that submitted the entry.
    type Output: Send + 'static;

    /// Called once at group init, before recovery and any `exec`.
    fn start(&mut self) -> Result<(), SmError> {
        Ok(())
    }

    /// Executes one committed entry. Futures must complete in index order.
    fn exec(&mut self, entry: &ExecEntry<'_>) -> Exec<Self::Output>;

    /// A hint that `entry` is executed soon. When the engine executes a run of
    /// committed entries it calls this a few entries ahead of
    /// [`StateMachine::exec`] (for normal entries, in index order), so that a state
    /// machine can start loading what the entry will touch (prefetch its index with
    /// [`dt_common::prefetch::prefetch`], say) while it executes the entries before.
    /// A hint only: it may be skipped for an entry, and it must not change state.
    /// The default does nothing.
    fn prepare(&mut self, entry: &ExecEntry<'_>) {
        let _ = entry;
    }

    /// Takes a snapshot of the state after `info.last_included_index`.
    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        let _ = info;
        Box::pin(async { Err(SmError::Unsupported("snapshots")) })
    }

    /// Receives one chunk of a snapshot (from a saved snapshot file or from the
    /// leader). Chunks arrive in order; `offset == 0` starts an install (discard the
    /// current state); `done` ends it (it may carry no data).
    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        let _ = chunk;
        Box::pin(async { Err(SmError::Unsupported("snapshots")) })
    }

    /// Called once at group shutdown.
    fn stop(&mut self) {}
}
