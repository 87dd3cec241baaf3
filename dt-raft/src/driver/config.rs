//! [`RaftGroupConfig`]: the configuration of one group (raft.md §15.2, with the
//! reference's defaults), plus the server-level values the group's driver needs.

use std::path::PathBuf;
use std::sync::Arc;

use dt_common::cpu_set::CpuSet;
use dt_common::PerfHook;

use crate::core::{ConfigError, CoreConfig, NodeId};
use crate::store::fsync_batcher::FsyncBatcher;

/// The configuration of one Raft group.
///
/// The first block holds the reference's `RaftGroupConfig` keys (§15.2) with its
/// defaults; the second the values the reference takes from `RaftServerConfig`
/// (`nodeId`, `electTimeout`, `heartbeatInterval`, `rpcTimeout`), which a RaftServer
/// copies in from its own configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftGroupConfig {
    /// `groupId`.
    pub group_id: i32,
    /// `nodeIdOfMembers`.
    pub members: Vec<NodeId>,
    /// `nodeIdOfObservers`.
    pub observers: Vec<NodeId>,
    /// `dataDir` (default `./data`): the group's data directory.
    pub data_dir: PathBuf,
    /// `statusFile` (default `raft.status`).
    pub status_file: String,
    /// `syncForce` (default true): commit and acknowledge only fsynced entries.
    pub sync_force: bool,
    /// Not a reference key: fsync at all (default true). Off only for tests and
    /// benchmarks of everything but the disk.
    pub sync: bool,
    /// Not a reference key (`dropLogPageCache` in the server's files): the default log
    /// drops its segments' pages from the page cache once fsynced
    /// ([`StoreConfig::drop_synced_pages`](crate::store::StoreConfig::drop_synced_pages),
    /// default true).
    pub drop_synced_pages: bool,
    /// Not a reference key (`logPrefillBytes` in the server's files): bytes of the
    /// current log segment the default log keeps zero-filled ahead of its appends
    /// ([`StoreConfig::prefill_bytes`](crate::store::StoreConfig::prefill_bytes);
    /// default 0, off).
    pub prefill_bytes: u64,
    /// Not a reference key (`dispatcherCpus` in the server's files): the CPUs the
    /// group's dispatcher thread may run on (the thread that owns the group's state;
    /// a dispatcher shared by several groups takes the setting of the group that
    /// started it). `None` (the default): wherever the operating system puts it.
    pub dispatcher_cpus: Option<CpuSet>,
    /// `raftPingCheck` (default 0).
    pub raft_ping_check: i32,
    /// Leader stickiness (on by default; the reference has none): a follower that
    /// heard from a leader less than the election timeout ago refuses pre-votes and
    /// votes. Lease reads are linearizable only with it: without it a candidate cut
    /// off from the leader can win and commit while the old leader still serves reads
    /// from its lease (found by the whole-cluster simulation). The refusal is an
    /// ordinary vote refusal on the wire, so mixed clusters with the reference work;
    /// set it to false to get the reference's vote rules.
    pub leader_stickiness: bool,
    /// Align idle leaders' heartbeats to a grid of a quarter `heartbeat_interval_ms`
    /// (default true; not in the reference; see [`CoreConfig::align_heartbeats`]).
    pub align_heartbeats: bool,
    /// Coalesce appends of fewer entries than this while one is in flight to the
    /// follower (default 32; 0 sends at once, like the reference; not a reference key;
    /// see [`CoreConfig::coalesce_appends_below`]).
    pub coalesce_appends_below: u64,
    /// `disableConfigChange` (default false).
    pub disable_config_change: bool,
    /// `maxReplicateItems` (default 20 000): in-flight entries per follower.
    pub max_replicate_items: u64,
    /// `maxReplicateBytes` (default 16 MiB).
    pub max_replicate_bytes: u64,
    /// `singleReplicateLimit` (default 1800 KiB): body bytes per AppendEntries.
    pub single_replicate_limit: usize,
    /// `maxPendingTasks` (default 50 000): leader flow control (unapplied entries).
    pub max_pending_tasks: usize,
    /// `maxPendingTaskBytes` (default 256 MiB).
    pub max_pending_task_bytes: usize,
    /// `maxCacheTasks` (default 100 000): tail cache bound.
    pub max_cache_tasks: usize,
    /// `maxCacheTaskBytes` (default 256 MiB).
    pub max_cache_task_bytes: usize,
    /// `idxItemsPerFile` (default 1 048 576, a power of two).
    pub idx_items_per_file: u64,
    /// `idxCacheSize` (default 16 384).
    pub idx_cache_size: usize,
    /// `idxFlushThreshold` (default 8192).
    pub idx_flush_threshold: u64,
    /// `logFileSize` (default 1 GiB, a power of two).
    pub log_file_size: u64,
    /// `saveSnapshotSeconds` (default 3600).
    pub save_snapshot_seconds: u64,
    /// Not a reference key (`saveSnapshotLogBytes` in the server's files): also save a
    /// snapshot once this many bytes of log (entries as written, on the leader and on
    /// followers) have been written since the last save began, so that a busy group's
    /// log, deleted only behind snapshots, does not grow for a whole
    /// `saveSnapshotSeconds`. Default 4 GiB; 0 saves by time alone, as the reference.
    pub save_snapshot_log_bytes: u64,
    /// `maxKeepSnapshots` (default 2).
    pub max_keep_snapshots: usize,
    /// `saveSnapshotWhenClose` (default true).
    pub save_snapshot_when_close: bool,
    /// `autoDeleteLogDelaySeconds` (default 60).
    pub auto_delete_log_delay_seconds: u64,
    /// `deleteLogsAfterTakeSnapshot` (default true).
    pub delete_logs_after_take_snapshot: bool,
    /// `replicateSnapshotConcurrency` (default 4): install chunks in flight.
    pub replicate_snapshot_concurrency: usize,
    /// `replicateSnapshotBufferSize` (default 64 KiB): install chunk size.
    pub replicate_snapshot_buffer_size: usize,

    /// `nodeId` of the server (positive).
    pub node_id: NodeId,
    /// `electTimeout` (default 15 000 ms), also the base of the lease.
    pub elect_timeout_ms: u64,
    /// `heartbeatInterval` (default 2 000 ms).
    pub heartbeat_interval_ms: u64,
    /// `rpcTimeout` (default 5 000 ms): how long a request to a peer may take.
    pub rpc_timeout_ms: u64,
    /// Delay before replication stopped by an error restarts (the reference's
    /// raft-ping period, 1 000 ms).
    pub replicate_retry_ms: u64,
    /// Not a reference key: the fsync group commit shared with the other groups of
    /// the process (see [`FsyncBatcher`]), used by the default log's appends. A
    /// RaftServer sets its own when the group joins it (unless one is set here or the
    /// server's `batch_fsync` is off); `None`: each append fsyncs its own files.
    pub fsync_batcher: Option<Arc<FsyncBatcher>>,
    /// `perfCallback`: where the group reports its timings (raft.md §15.2): the
    /// request queue's latency (`raft_leader_runner_fiber_latency`), state-machine
    /// executions (`raft_state_machine_exec`), the leader's append RPCs
    /// (`raft_replicate_rpc`), and the default log's writes and fsyncs
    /// (`raft_log_write1`, `raft_log_sync`). No-op by default (the reference's
    /// default logs execution times every minute; dt's server binary does so with
    /// `perfStatsInterval`); a [`PerfStats`](dt_common::PerfStats) sums them.
    pub perf: PerfHook,
}

impl RaftGroupConfig {
    /// A configuration with the reference's defaults for `node_id` in group
    /// `group_id` of `members`.
    pub fn new(group_id: i32, node_id: NodeId, members: Vec<NodeId>) -> Self {
        RaftGroupConfig {
            group_id,
            members,
            observers: Vec::new(),
            data_dir: PathBuf::from("./data"),
            status_file: "raft.status".to_string(),
            sync_force: true,
            sync: true,
            drop_synced_pages: true,
            prefill_bytes: 0,
            dispatcher_cpus: None,
            raft_ping_check: 0,
            disable_config_change: false,
            leader_stickiness: true,
            align_heartbeats: true,
            coalesce_appends_below: 32,
            max_replicate_items: 20_000,
            max_replicate_bytes: 16 * 1024 * 1024,
            single_replicate_limit: 1800 * 1024,
            max_pending_tasks: 50_000,
            max_pending_task_bytes: 256 * 1024 * 1024,
            max_cache_tasks: 100_000,
            max_cache_task_bytes: 256 * 1024 * 1024,
            idx_items_per_file: 1 << 20,
            idx_cache_size: 16_384,
            idx_flush_threshold: 8192,
            log_file_size: 1 << 30,
            save_snapshot_seconds: 3600,
            save_snapshot_log_bytes: 4 << 30,
            max_keep_snapshots: 2,
            save_snapshot_when_close: true,
            auto_delete_log_delay_seconds: 60,
            delete_logs_after_take_snapshot: true,
            replicate_snapshot_concurrency: 4,
            replicate_snapshot_buffer_size: 64 * 1024,
            node_id,
            elect_timeout_ms: 15_000,
            heartbeat_interval_ms: 2_000,
            rpc_timeout_ms: 5_000,
            replicate_retry_ms: 1_000,
            fsync_batcher: None,
            perf: PerfHook::default(),
        }
    }

    /// The consensus core's part of the configuration, checked.
    pub fn core_config(&self) -> Result<CoreConfig, ConfigError> {
        let mut cfg = CoreConfig::new(self.node_id, self.members.clone());
        cfg.observers = self.observers.clone();
        cfg.elect_timeout_ms = self.elect_timeout_ms;
        cfg.heartbeat_interval_ms = self.heartbeat_interval_ms;
        cfg.sync_force = self.sync_force;
        cfg.max_replicate_items = self.max_replicate_items;
        cfg.max_replicate_bytes = self.max_replicate_bytes;
        cfg.single_replicate_limit = self.single_replicate_limit as u64;
        cfg.disable_config_change = self.disable_config_change;
        cfg.leader_stickiness = self.leader_stickiness;
        cfg.align_heartbeats = self.align_heartbeats;
        cfg.coalesce_appends_below = self.coalesce_appends_below;
        cfg.replicate_retry_ms = self.replicate_retry_ms;
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_references() {
        let c = RaftGroupConfig::new(1, 2, vec![1, 2, 3]);
        assert_eq!(c.max_replicate_items, 20_000);
        assert_eq!(c.single_replicate_limit, 1_843_200);
        assert_eq!(c.max_pending_tasks, 50_000);
        assert_eq!(c.elect_timeout_ms, 15_000);
        assert_eq!(c.heartbeat_interval_ms, 2_000);
        assert_eq!(c.status_file, "raft.status");
        let core = c.core_config().unwrap();
        assert_eq!(core.node_id, 2);
        assert!(RaftGroupConfig::new(1, 0, vec![1]).core_config().is_err());
    }
}
