//! DtKV's data model: the key tree with directories, versions and MVCC, and the
//! apply-time semantics of every command (`dtkv-server.md` §2–§6, §8–§9).
//!
//! Everything here is plain and IO-free: no clock, no thread, no network. A write is
//! applied with [`KvTree::apply`] from (raft index, entry timestamp, [`BizType`],
//! [`KvReq`](dt_client::kv::KvReq)) and returns an [`ApplyOutcome`]: the result for the
//! client, the TTL changes a TtlManager needs, and the lock hand-over to push. The same
//! entries give the same tree on every replica. Reads ([`KvTree::get`],
//! [`KvTree::batch_get`], [`KvTree::list`]) see the latest state; snapshots
//! ([`KvTree::open_snapshot`]) see the state at their index while writes go on.
//!
//! | file | holds |
//! |---|---|
//! | [`dt_kv`] | [`DtKv`]: one group's state machine: tree, TTLs, watches, install and snapshots |
//! | [`biz_type`] | [`BizType`]: the log entry's operation |
//! | [`validate`] | [`check_ttl`]: the TTL pre-checks before the log |
//! | `holder_arena` | the holders by id, each slot a plain holder |
//! | `key_hash` | the key map's seeded multiply-fold hash |
//! | `key_map` | the key map: key → holder, short keys inline in the slot |
//! | [`node`] | [`NodeVersion`], [`TtlInfo`] |
//! | [`tree`] | [`KvTree`]: holders, order, children, lock queues, MVCC and GC, reads |
//! | `versions` | a holder's version chain: the latest inline, older ones for snapshots |
//! | [`apply`] | the write semantics, [`ApplyOutcome`] |
//! | [`watch_manager`] | [`WatchManager`]: watch registrations, notification dispatch and pushes |
//! | [`ttl_manager`] | [`TtlManager`]: local expiry queues, the leader's EXPIRE task |
//! | [`processor`] | [`plan`]: what to do with a request before any IO, [`read`] |
//! | [`response`] | [`KvResponse`]: the response shapes |
//! | [`snapshot`] | the snapshot stream: [`SnapshotRecord`], reader, decoder, install |
//!
//! The networked request processors and the `StateMachine` binding are in
//! [`crate::kv_server`]; [`plan`] is the decision its processors make.

pub mod apply;
pub mod biz_type;
pub mod dt_kv;
mod holder_arena;
mod key_hash;
mod key_map;
pub mod node;
pub mod processor;
pub mod response;
pub mod snapshot;
pub mod tree;
pub mod ttl_manager;
pub mod validate;
mod versions;
pub mod watch_manager;

pub use apply::{ApplyOutcome, ApplyResult, LockHandover, TtlChange};
pub use biz_type::BizType;
pub use dt_kv::{DtKv, DtKvError, DtKvSnapshot};
pub use node::{NodeVersion, TtlInfo};
pub use processor::{plan, read, KvAction};
pub use response::{KvRespBody, KvResponse, SizedBody};
pub use snapshot::{SnapshotDecoder, SnapshotError, SnapshotReader, SnapshotRecord};
pub use tree::{KvTree, SnapshotId, WatchView};
pub use ttl_manager::{TtlManager, TtlRun};
pub use validate::check_ttl;
pub use watch_manager::{check_watch_req, Push, PushOutcome, PushToken, WatchConfig, WatchManager};

#[cfg(test)]
mod apply_tests;

#[cfg(test)]
mod prop_tests;
