//! The fiber driver of one Raft group: runs the sans-IO [`RaftCore`](crate::core::RaftCore)
//! on a dt-fiber [`FiberGroup`](dt_fiber::FiberGroup), executing its actions with the
//! group's [`RaftLog`](crate::raft_log::RaftLog), a [`RaftTransport`] to the peers and
//! the user's [`StateMachine`](crate::sm::StateMachine).
//!
//! # Using it
//!
//! * [`RaftGroupConfig`]: the group's configuration (raft.md §15.2, the reference's
//!   defaults) plus the server-level values a group needs (node id, electTimeout,
//!   heartbeatInterval, rpcTimeout).
//! * [`RaftGroup::start_on`] (on the dispatcher thread, or a
//!   [`Simulation`](dt_fiber::Simulation)'s) or [`RaftGroup::start`] (from another
//!   thread) builds the state machine and the log with a
//!   [`RaftFactory`](crate::sm::RaftFactory), recovers, replays and runs the group.
//! * [`RaftGroup`] is the `Send + Sync` handle: [`RaftGroup::submit`] /
//!   [`RaftGroup::submit_async`] / [`RaftGroup::submit_to`] /
//!   [`RaftGroup::submit_respond`] (linearizable writes; the last two complete a shared
//!   [`RaftHandler`](crate::sm::RaftHandler) with a token or a shared
//!   [`RaftResponder`](crate::sm::RaftResponder) with the request's responder, no
//!   allocation per write), [`RaftGroup::lease_read`],
//!   [`RaftGroup::transfer_leadership`], membership changes by joint consensus
//!   ([`RaftGroup::prepare_config_change`], [`RaftGroup::commit_change`],
//!   [`RaftGroup::abort_change`]), [`RaftGroup::query_status`],
//!   [`RaftGroup::status`], [`RaftGroup::shutdown`]. Failures are [`RaftError`](crate::sm::RaftError)s.
//! * The network: the driver sends through a [`RaftTransport`] and receives through
//!   its [`GroupInbox`] ([`RaftGroup::inbox`]); see [`transport`] for the contract.
//!   [`local`] has an in-process network, an in-memory log and a counter state
//!   machine for tests and simulations.
//!
//! # How it runs
//!
//! Everything of one group lives on its dispatcher thread, in a few fibers sharing the
//! core through `Rc<RefCell<..>>` (borrowed only between awaits, never across one):
//!
//! * every input (an inbound request, a peer's answer, a finished log write or status
//!   save, a search result, a tick at the core's `next_deadline()`, a user request) is
//!   fed to the core by the fiber that received it; the core's actions are then
//!   executed in order. Actions never call back into the core: what completes later is
//!   queued to a fiber whose completion is the next input;
//! * the **writer** hands appends and truncations to the log in action order and
//!   reports what became durable (`on_log_persisted`); the **status** fiber saves term
//!   and vote one at a time (`on_status_saved`); the **apply** fiber executes committed
//!   entries in index order (from the tail cache, else from the log), running ahead of
//!   their completion (up to 1024 pending `exec` futures, each polled once at once),
//!   completes the callers in index order and reports `on_applied`; per peer, **replicate** builds and
//!   sends appends in order (entries from the tail cache, else the log) and **ack**
//!   awaits the answers in send order, each bounded by rpcTimeout;
//! * the clock is the dispatcher's ([`FiberGroup::now`](dt_fiber::FiberGroup::now)),
//!   so a [`Simulation`](dt_fiber::Simulation) runs the same code on virtual time,
//!   deterministically: the same seed gives the same election timeouts, the same order
//!   of fibers and the same action trace ([`DriverOptions::trace`]).
//!
//! Init (raft.md §14.3, §8.4): the state machine is started, the log recovered, the
//! core built from the persisted term, vote and commit index, and the committed
//! entries are replayed through the state machine; [`GroupStatus::init_finished`] turns
//! true once they are applied. Group ready (§8.5) comes from the core and gates lease
//! reads.
//!
//! Snapshots: the `SnapshotManager` saves one every `save_snapshot_seconds` and on
//! close (`save_snapshot_when_close`), keeps `max_keep_snapshots` and deletes the log
//! files they cover; init recovers the newest valid snapshot before replaying the log
//! after it; a follower that needs entries the leader has deleted gets an install
//! snapshot streamed from the leader's live state machine
//! (`replicate_snapshot_buffer_size` chunks, `replicate_snapshot_concurrency` in
//! flight). Replication is bounded by `max_replicate_items`, `max_replicate_bytes` and
//! `single_replicate_limit`. Where snapshots are kept is a seam, `SnapshotStore` (files
//! by default; the simulation keeps them on its fault-injecting disk).
//!
//! Configuration entries (PREPARE / DROP / COMMIT) are applied by the apply fiber in
//! log order through the core (`apply_config_entry`), also during replay, so the
//! member sets after a restart are the static ones plus the logged changes; the
//! replication fibers of a peer that left the group (and its "remove legacy" time)
//! are stopped.

pub mod config;
pub mod oneshot;
pub mod transport;

pub use config::RaftGroupConfig;
pub use transport::{
    GroupInbox, Inbound, InboundError, RaftTransport, Responder, RpcError, RpcFuture,
    TransferReply, VoteReply,
};
mod group;
mod lease_share;
pub mod local;
mod notify;
mod runner;
mod snapshot_manager;
mod tail;

pub use group::{
    ActionTrace, ConfigChange, ConfigHook, DriverOptions, GroupStatus, NodeClock, NodeExists,
    RaftFuture, RaftGroup,
};
pub use snapshot_manager::{SavedSnapshot, SnapshotManager, SnapshotStore, SnapshotStoreFuture};
