//! The `RaftLog` extension point (the reference's `RaftLog` contract; guide in
//! `docs/dt-raft.md`) and its default implementation.
//!
//! # Why boxed futures
//!
//! Methods return [`LogFuture`], a `Pin<Box<dyn Future>>`, rather than using `async fn`
//! in the trait: Raft holds its log as a `Box<dyn RaftLog>` chosen at run time by a
//! `RaftFactory`, and `async fn` in traits is not object safe. One allocation per call
//! is noise next to a file write. The futures are not `Send`: they are awaited by the
//! group's fibers on its dispatcher thread. They are executor-agnostic: they complete
//! through a [`Waker`](std::task::Waker) from whatever thread finished the IO.
//!
//! # Writing your own
//!
//! Implement [`RaftLog`] (and a [`LogIterator`]). The contract Raft relies on:
//! `append` receives consecutive entries continuing the log; `persisted_index` only
//! grows except through `truncate_tail` / install, and every entry at or below it must
//! survive a crash; entries at or below the commit index are never truncated.
//!
//! A log also keeps Raft's own durable state (raft.md §4; the reference's
//! `StatusManager`), so that a log of your own works with the consensus layer without
//! any other file:
//!
//! * `currentTerm` and `votedFor`: [`RaftLog::persist_term_vote`] must make both
//!   durable together (fsynced; after a crash either the old pair or the new pair is
//!   read, never a mix) before its future resolves. Raft awaits it before granting a
//!   vote, starting an election or answering with a higher term (raft.md §5): a vote
//!   that is forgotten in a crash lets a node vote twice in one term. Calls are made
//!   one at a time, each after the previous resolved.
//! * `commitIndex`: reported with [`RaftLog::set_commit_index`] and persisted lazily
//!   (it may lag, it must never claim more than this node holds durably).
//! * `installSnapshot` and `firstValidIndex`: kept by
//!   [`RaftLog::begin_install`] / [`RaftLog::finish_install`].
//!
//! At group init Raft awaits [`RaftLog::init`], then reads all five with
//! [`RaftLog::persisted_state`] (raft.md §14.3: the snapshot's term must not exceed
//! `currentTerm`, the last entry's term neither; `commitIndex` is where apply replays
//! to). A fresh log reports [`PersistedState::default`] with `first_valid_index` 1.
//!
//! # Cancelling
//!
//! Where the reference passes a cancel indicator (`openIterator`, the match-position
//! search), drop the future, or the iterator, instead: the caller stops waiting at
//! once; work already handed to an IO thread finishes its bounded step (one read
//! within the caller's byte limit) and its result is discarded.
//!
//! # Running the file work
//!
//! [`DefaultRaftLog`] never blocks the caller on a file: it hands work to a
//! [`Executor`] (dt-fiber's IO pool implements it; [`ThreadPoolIo`] is a std-thread
//! pool for tests and tools). Its state stays on the caller's thread; IO threads get
//! jobs (buffers and file handles) and post their results back, which the log applies
//! when one of its methods is called or one of its futures is polled. A job that fails,
//! panics, or is refused or dropped by the executor fails the log: waiting and later
//! calls get [`StoreError::Failed`](crate::store::StoreError::Failed), never a hang.

mod completion;
mod default_raft_log;
mod thread_pool;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use completion::{block_on, block_on_timeout, completion, run_blocking, Completer, Completion};
pub use default_raft_log::DefaultRaftLog;
pub use dt_common::{Executor, Task};
pub use thread_pool::ThreadPoolIo;

use crate::store::{LogItem, PersistedState, StoreResult};

/// The future type of every asynchronous log operation.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + 'a>>;

/// The Raft log as Raft uses it. All methods are called from the group's thread.
pub trait RaftLog {
    /// Recovers the log. `Some((last term, last index))` (`(0, 0)` for an empty log;
    /// `(t, i)` for an empty log after an install at `i` whose term `t` it recorded,
    /// [`finish_install_with_term`](Self::finish_install_with_term)), or `None` when
    /// the node must get a snapshot installed first.
    fn init(&self) -> LogFuture<'_, Option<(u32, u64)>>;

    /// Appends consecutive entries continuing the log. The entries are readable at
    /// once (tail cache); the future resolves when they are durable by the configured
    /// policy (fsynced with `sync_force`, else written), with the new
    /// [`RaftLog::persisted_index`].
    fn append(&self, items: Vec<LogItem>) -> LogFuture<'_, u64>;

    /// An empty list to gather the entries of a later [`append`](Self::append) in. A
    /// log may hand back lists earlier appends gave it (their capacity kept), so that
    /// steady appending allocates no list; the default is a new one.
    fn spare_items(&self) -> Vec<LogItem> {
        Vec::new()
    }

    /// Removes entries `index..` (they must be uncommitted). Takes effect for reads and
    /// appends when the future resolves; await it before the next append.
    ///
    /// A future (it was a plain call before) because finding the term and end of entry
    /// `index - 1` may need a file read, which must not run on the group's thread; a
    /// log that has everything in memory returns a ready future.
    /// [`DefaultRaftLog`] applies the cut at the call when it can (the entry before is
    /// in its tail cache) and on an IO thread's answer otherwise.
    fn truncate_tail(&self, index: u64) -> LogFuture<'_, ()>;

    /// A reader over the log. Each open iterator may keep a file in use, delaying its
    /// deletion; drop it when done.
    fn open_iterator(&self) -> Box<dyn LogIterator + '_>;

    /// Match-position search (`docs/dt-raft.md`, "Match-position search").
    fn try_find_match_pos(&self, term: u32, index: u64) -> LogFuture<'_, Option<(u32, u64)>>;

    /// Allows deletion, after `delay`, of segments whose entries are all ≤ `index`
    /// (Raft passes min(lastApplied, last saved snapshot index, index)).
    fn mark_truncate_by_index(&self, index: u64, delay: Duration);

    /// Allows deletion, after `delay`, of segments whose entries are all older than
    /// `timestamp_ms` and ≤ `bound_index`.
    fn mark_truncate_by_timestamp(&self, timestamp_ms: i64, bound_index: u64, delay: Duration);

    /// Install begin: waits for in-flight writes, records the install in the status
    /// file and deletes every log and index file.
    fn begin_install(&self) -> LogFuture<'_, ()>;

    /// [`begin_install`](Self::begin_install) that also records, with the install,
    /// the (last log term, last log index) the node votes with until the install
    /// finishes ([`PersistedState::install_vote`](crate::store::status::PersistedState::install_vote)
    /// after a restart). A log that cannot record it begins the install without
    /// (the default): the node then grants no votes after a restart until the
    /// install, as the reference.
    fn begin_install_voting(&self, vote: (u32, u64)) -> LogFuture<'_, ()> {
        let _ = vote;
        self.begin_install()
    }

    /// Install finish: the log restarts with entry `next_index` at position
    /// `next_pos` (the leader's position after `next_index - 1`).
    fn finish_install(&self, next_index: u64, next_pos: u64) -> LogFuture<'_, ()>;

    /// [`finish_install`](Self::finish_install) that also records `prev_term`, the
    /// term of entry `next_index - 1` (the snapshot's lastIncludedTerm), so that
    /// [`init`](Self::init) after a restart with nothing written since reports the
    /// empty log as `Some((prev_term, next_index - 1))`: the node then goes on from
    /// its saved snapshot, or votes with that position while it waits for the leader's
    /// install, instead of refusing votes (a group with half its members so could never
    /// elect a leader again). A log that cannot record it finishes the install without
    /// (the default) and reports such a log as `None`, as the reference.
    fn finish_install_with_term(
        &self,
        next_index: u64,
        next_pos: u64,
        prev_term: u32,
    ) -> LogFuture<'_, ()> {
        let _ = prev_term;
        self.finish_install(next_index, next_pos)
    }

    /// The position just after entry `index` (sent as `nextPos` with an install).
    fn load_next_item_pos(&self, index: u64) -> LogFuture<'_, u64>;

    /// Tells the log the commit index (only committed index entries are flushed).
    fn set_commit_index(&self, index: u64);

    /// The highest index Raft may count as stored on this node: fsynced with
    /// `sync_force`, written to the OS otherwise.
    fn persisted_index(&self) -> u64;

    /// Waits for in-flight writes, fsyncs, flushes the index and status files.
    fn close(&self) -> LogFuture<'_, ()>;

    /// The persisted Raft state (term, vote, commit index, install flag, first valid
    /// index) as it is durable now; see "Writing your own" in the module documentation.
    /// Valid once [`RaftLog::init`] resolved; an error before that.
    fn persisted_state(&self) -> StoreResult<PersistedState>;

    /// Durably records `current_term` and `voted_for` together; resolves when they are
    /// fsynced (see the module documentation for the contract).
    fn persist_term_vote(&self, current_term: u32, voted_for: i32) -> LogFuture<'_, ()>;
}

/// Reads entries in order.
pub trait LogIterator {
    /// Up to `limit` entries from `index` whose encoded size stays within
    /// `bytes_limit` (at least one entry).
    fn next(&mut self, index: u64, limit: usize, bytes_limit: usize)
        -> LogFuture<'_, Vec<LogItem>>;
}
