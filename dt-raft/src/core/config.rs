//! The group configuration values the core needs (raft.md §15), checked when built.

use std::fmt;

use super::NodeId;

/// What the consensus core of one group needs to know about its configuration.
///
/// Times are milliseconds of the caller's monotonic clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// The local node id (positive).
    pub node_id: NodeId,
    /// Voting members (`nodeIdOfMembers`), non-empty.
    pub members: Vec<NodeId>,
    /// Observers (`nodeIdOfObservers`).
    pub observers: Vec<NodeId>,
    /// Election timeout, also the base of the lease (default 15 000 ms).
    pub elect_timeout_ms: u64,
    /// Period after which an idle leader writes a heartbeat entry (default 2 000 ms).
    pub heartbeat_interval_ms: u64,
    /// Acknowledge and commit only fsynced entries (default true). The core itself
    /// only sees "persisted up to"; the driver reports the index this flag selects.
    pub sync_force: bool,
    /// Entries in flight per follower (`maxReplicateItems`, default 20 000).
    pub max_replicate_items: u64,
    /// Bytes of entries in flight per follower (`maxReplicateBytes`, default 16 MiB;
    /// counts the sizes given to [`RaftCore::propose_sized`](super::RaftCore::propose_sized)).
    pub max_replicate_bytes: u64,
    /// Bytes of entries per AppendEntries request (`singleReplicateLimit`, default
    /// 1 800 KiB); a request carries at least one entry.
    pub single_replicate_limit: u64,
    /// Install chunks in flight per follower (`replicateSnapshotConcurrency`,
    /// default 4). Used by the driver's install stream.
    pub replicate_snapshot_concurrency: u32,
    /// Bytes per install chunk (`replicateSnapshotBufferSize`, default 64 KiB). Used
    /// by the driver's install stream.
    pub replicate_snapshot_buffer_size: u32,
    /// Ignore every configuration application (`disableConfigChange`, default
    /// false): configuration entries still move lastConfigChangeIndex.
    pub disable_config_change: bool,
    /// Delay before a replication stopped by an error is restarted (the reference's
    /// raft-ping period, 1 000 ms).
    pub replicate_retry_ms: u64,
    /// Leader stickiness (not in the reference; off in `CoreConfig::new`, on in the
    /// driver's `RaftGroupConfig`): a
    /// follower that accepted an append of a leader, or started, less than
    /// `elect_timeout_ms` ago refuses pre-votes and votes, keeping its term. Lease
    /// reads (§9) need it: the lease ends electTimeout − leaseDelta after a send a
    /// quorum acknowledged, but without stickiness a candidate cut off from the leader
    /// can win with those same voters' votes and commit writes while the old leader
    /// still serves reads from its lease. The whole-cluster simulation found this
    /// (`dt_raft::sim`, a stale read under a one-way partition); with stickiness it
    /// finds none.
    pub leader_stickiness: bool,
    /// Align an idle leader's heartbeat deadlines to a process-wide grid of
    /// `heartbeat_interval_ms / 4` (not in the reference; off in `CoreConfig::new`, on in
    /// the driver's `RaftGroupConfig`). The heartbeat then comes up to a quarter interval
    /// late, but the idle leaders of many groups fire at the same instants: one
    /// dispatcher wake-up, one IO-pool wake-up and one socket write carry the heartbeats
    /// of all groups due in that slot instead of one each, which is what makes many idle
    /// groups cheap. Nothing on the wire changes.
    pub align_heartbeats: bool,
    /// Coalesce small appends (not in the reference, which sends at once; 0 = off in
    /// `CoreConfig::new`, 32 in the driver's `RaftGroupConfig`): while an append to a
    /// follower is in flight, fewer new entries than this wait for its response and
    /// then go out together, instead of each proposal sending a request of its own. A
    /// write that finds nothing in flight still goes at once, and a backlog of this
    /// many entries or more is pipelined as before, so light load and bulk streams
    /// keep their latency; what changes is many small proposals under load (many
    /// groups sharing the writes in flight), where per-request costs (encode, send,
    /// the follower's decode, write job and reply) were paid for two or three entries.
    /// Nothing on the wire changes.
    pub coalesce_appends_below: u64,
}

impl CoreConfig {
    /// A configuration with the reference's defaults for `node_id` in `members`.
    pub fn new(node_id: NodeId, members: Vec<NodeId>) -> Self {
        CoreConfig {
            node_id,
            members,
            observers: Vec::new(),
            elect_timeout_ms: 15_000,
            heartbeat_interval_ms: 2_000,
            sync_force: true,
            max_replicate_items: 20_000,
            max_replicate_bytes: 16 * 1024 * 1024,
            single_replicate_limit: 1800 * 1024,
            replicate_snapshot_concurrency: 4,
            replicate_snapshot_buffer_size: 64 * 1024,
            disable_config_change: false,
            replicate_retry_ms: 1_000,
            leader_stickiness: false,
            align_heartbeats: false,
            coalesce_appends_below: 0,
        }
    }

    /// Checks the values (raft.md §11.5, §15.2).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::new("node_id", "must be positive"));
        }
        if self.members.is_empty() {
            return Err(ConfigError::new("members", "must not be empty"));
        }
        for (name, set) in [("members", &self.members), ("observers", &self.observers)] {
            for (i, id) in set.iter().enumerate() {
                if *id == 0 {
                    return Err(ConfigError::new(name, "node id 0 is not allowed"));
                }
                if set[..i].contains(id) {
                    return Err(ConfigError::new(name, "duplicate node id"));
                }
            }
        }
        if self.observers.iter().any(|id| self.members.contains(id)) {
            return Err(ConfigError::new(
                "observers",
                "a node may not be both member and observer",
            ));
        }
        if self.elect_timeout_ms == 0 {
            return Err(ConfigError::new("elect_timeout_ms", "must be positive"));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.elect_timeout_ms {
            return Err(ConfigError::new(
                "heartbeat_interval_ms",
                "must be positive and below elect_timeout_ms",
            ));
        }
        if self.max_replicate_items == 0 {
            return Err(ConfigError::new("max_replicate_items", "must be positive"));
        }
        if self.max_replicate_bytes == 0 {
            return Err(ConfigError::new("max_replicate_bytes", "must be positive"));
        }
        if self.single_replicate_limit == 0 {
            return Err(ConfigError::new(
                "single_replicate_limit",
                "must be positive",
            ));
        }
        if self.replicate_snapshot_concurrency == 0 {
            return Err(ConfigError::new(
                "replicate_snapshot_concurrency",
                "must be positive",
            ));
        }
        if self.replicate_snapshot_buffer_size == 0 {
            return Err(ConfigError::new(
                "replicate_snapshot_buffer_size",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// A configuration value was rejected; names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field of [`CoreConfig`].
    pub field: &'static str,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl ConfigError {
    fn new(field: &'static str, reason: &'static str) -> Self {
        ConfigError { field, reason }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad raft group config: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s15_2_defaults_are_the_references() {
        let c = CoreConfig::new(1, vec![1]);
        assert_eq!(c.max_replicate_items, 20_000);
        assert_eq!(c.max_replicate_bytes, 16 * 1024 * 1024);
        assert_eq!(c.single_replicate_limit, 1_843_200);
        assert_eq!(c.replicate_snapshot_concurrency, 4);
        assert_eq!(c.replicate_snapshot_buffer_size, 65_536);
        assert!(!c.disable_config_change && c.sync_force);
        assert_eq!(
            (c.elect_timeout_ms, c.heartbeat_interval_ms),
            (15_000, 2_000)
        );
    }

    #[test]
    fn s11_5_config_validation_names_the_field() {
        assert!(CoreConfig::new(1, vec![1, 2, 3]).validate().is_ok());
        let field = |c: CoreConfig| c.validate().unwrap_err().field;
        assert_eq!(field(CoreConfig::new(0, vec![1])), "node_id");
        assert_eq!(field(CoreConfig::new(1, vec![])), "members");
        assert_eq!(field(CoreConfig::new(1, vec![1, 2, 2])), "members");
        let mut c = CoreConfig::new(1, vec![1, 2]);
        c.observers = vec![2];
        assert_eq!(field(c), "observers");
        let mut c = CoreConfig::new(1, vec![1]);
        c.heartbeat_interval_ms = c.elect_timeout_ms;
        assert_eq!(field(c), "heartbeat_interval_ms");
        let mut c = CoreConfig::new(1, vec![1]);
        c.max_replicate_items = 0;
        assert_eq!(field(c), "max_replicate_items");
        let mut c = CoreConfig::new(1, vec![1]);
        c.max_replicate_bytes = 0;
        assert_eq!(field(c), "max_replicate_bytes");
        let mut c = CoreConfig::new(1, vec![1]);
        c.single_replicate_limit = 0;
        assert_eq!(field(c), "single_replicate_limit");
        let mut c = CoreConfig::new(1, vec![1]);
        c.replicate_snapshot_buffer_size = 0;
        assert_eq!(field(c), "replicate_snapshot_buffer_size");
    }
}
