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
    /// Delay before a replication stopped by an error is restarted (the reference's
    /// raft-ping period, 1 000 ms).
    pub replicate_retry_ms: u64,
    /// Leader stickiness (not in the reference, off by default there and here): a
    /// follower that accepted an append of a leader, or started, less than
    /// `elect_timeout_ms` ago refuses pre-votes and votes, keeping its term. Lease
    /// reads (§9) need it: the lease ends electTimeout − leaseDelta after a send a
    /// quorum acknowledged, but without stickiness a candidate cut off from the leader
    /// can win with those same voters' votes and commit writes while the old leader
    /// still serves reads from its lease. The whole-cluster simulation found this
    /// (`dt_raft::sim`, a stale read under a one-way partition); with stickiness it
    /// finds none.
    pub leader_stickiness: bool,
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
            replicate_retry_ms: 1_000,
            leader_stickiness: false,
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
    }
}
