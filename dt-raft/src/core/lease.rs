//! The leader lease (raft.md §9).

use super::{NodeId, RaftCore, Role};

/// Why a lease read cannot be served now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// Not the leader; the known leader, if any.
    NotLeader(Option<NodeId>),
    /// Leader, but the first entry of its term is not applied yet: wait for group
    /// ready and retry.
    NotReady,
    /// The lease ended this many ms ago (reported as NotLeader with no leader).
    Expired(u64),
}

impl RaftCore {
    /// `leaseStart`: the rwQuorum-th largest lastConfirmReqNanos of members (the smaller
    /// of that and the prepared members' one when joint; also over the configurations
    /// of [`RaftCore::set_log_configs`]); 0 when unknown.
    pub fn lease_start(&mut self) -> u64 {
        let peers = std::mem::take(&mut self.peers);
        let v = self.leader_quorum_value(|id| {
            peers
                .iter()
                .find(|p| p.node_id == id)
                .map_or(0, |p| p.last_confirm)
        });
        self.peers = peers;
        v
    }

    /// `leaseEnd = leaseStart + electTimeout − clamp(electTimeout/10, 3, 500)`, or 0
    /// when there is no lease.
    pub fn lease_end(&mut self) -> u64 {
        let start = self.lease_start();
        if start == 0 || self.role != Role::Leader {
            return 0;
        }
        let t = self.cfg.elect_timeout_ms;
        let delta = (t / 10).clamp(3, 500);
        (start + t).saturating_sub(delta)
    }

    /// `isLeaseReadValid` at `now` (§9): Ok when a read of the latest state is
    /// linearizable.
    pub fn lease_read(&mut self, now: u64) -> Result<(), LeaseError> {
        self.now = self.now.max(now);
        if self.role != Role::Leader {
            return Err(LeaseError::NotLeader(self.leader));
        }
        if !self.group_ready {
            return Err(LeaseError::NotReady);
        }
        let end = self.lease_end();
        if end == 0 || now >= end {
            return Err(LeaseError::Expired(now.saturating_sub(end)));
        }
        Ok(())
    }

    /// `isLeader()`: leader and the lease has not ended.
    pub fn is_leader(&mut self, now: u64) -> bool {
        self.role == Role::Leader && now < self.lease_end()
    }
}
