//! The core's part of RAFT_QUERY_STATUS (raft.md §13): a snapshot of the consensus
//! state with every field of `QueryStatusResp` the core owns, and the sampled
//! commit-to-apply delay (`applyLagMillis`).

use super::{Index, MemberSets, NodeId, RaftCore, Role, Term};

/// applyLagMillis after a role or term reset, until re-sampled: one day.
pub(super) const APPLY_LAG_UNKNOWN_MS: u64 = 24 * 3600 * 1000;
/// At most one commit sample per this many ms.
const SAMPLE_EVERY_MS: u64 = 1_000;
/// At most this many commit samples are kept.
const MAX_SAMPLES: usize = 64;

/// The consensus state of one group as QUERY_STATUS reports it (§13). The driver
/// adds groupId and the flag bits it owns (initFinished, initFailed, "a bug was
/// logged") and lastError; `group_ready` is flag bit 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreStatus {
    /// nodeId (field 2).
    pub node_id: NodeId,
    /// The role (not on the wire; for logs and tools).
    pub role: Role,
    /// term (field 4).
    pub term: Term,
    /// votedFor (not on the wire).
    pub voted_for: NodeId,
    /// leaderId (field 5; `None` is written as 0).
    pub leader_id: Option<NodeId>,
    /// commitIndex (field 6).
    pub commit_index: Index,
    /// lastApplied (field 7).
    pub last_applied: Index,
    /// lastApplyTimeToNowMillis (field 8): ms since lastApplied last moved (or since
    /// the core was created).
    pub last_apply_time_to_now_ms: u64,
    /// lastLogIndex (field 9).
    pub last_log_index: Index,
    /// lastLogTerm (not on the wire).
    pub last_log_term: Term,
    /// The persisted index (not on the wire).
    pub persisted_index: Index,
    /// applyLagMillis (field 10): the sampled commit-to-apply delay; 0 initially, one
    /// day after a role or term change until re-sampled.
    pub apply_lag_ms: u64,
    /// members, observers, preparedMembers, preparedObservers (fields 11–14).
    pub sets: MemberSets,
    /// lastConfigChangeIndex (field 15).
    pub last_config_change_index: Index,
    /// groupReady (flag bit 2).
    pub group_ready: bool,
    /// An install snapshot is in progress on this node (follower side).
    pub installing_snapshot: bool,
}

impl RaftCore {
    /// The QUERY_STATUS view of the group at time `now` (§13).
    pub fn status(&self, now: u64) -> CoreStatus {
        CoreStatus {
            node_id: self.cfg.node_id,
            role: self.role,
            term: self.term,
            voted_for: self.voted_for,
            leader_id: self.leader,
            commit_index: self.commit_index,
            last_applied: self.last_applied,
            last_apply_time_to_now_ms: now.saturating_sub(self.last_apply_time),
            last_log_index: self.last_log_index,
            last_log_term: self.last_log_term,
            persisted_index: self.persisted_index,
            apply_lag_ms: self.apply_lag_ms,
            sets: self.sets.clone(),
            last_config_change_index: self.last_config_change_index,
            group_ready: self.group_ready,
            installing_snapshot: self.installing_snapshot,
        }
    }

    /// A commit index the node learnt (its own or the leader's): sampled at most
    /// once per second, at most 64 samples.
    pub(super) fn record_commit(&mut self, index: Index) {
        let now = self.now;
        let take = match self.last_commit_sample {
            None => true,
            Some((i, t)) => {
                index > i
                    && now.saturating_sub(t) > SAMPLE_EVERY_MS
                    && self.commit_history.len() < MAX_SAMPLES
            }
        };
        if take {
            self.commit_history.push_back((index, now));
            self.last_commit_sample = Some((index, now));
        }
    }

    /// lastApplied moved: the samples it passed are consumed; the newest of them gives
    /// the delay between learning that commit index and applying it.
    pub(super) fn sample_apply_lag(&mut self) {
        let mut lag = None;
        while let Some(&(i, t)) = self.commit_history.front() {
            if i > self.last_applied {
                break;
            }
            lag = Some(self.now.saturating_sub(t));
            self.commit_history.pop_front();
        }
        if let Some(l) = lag {
            self.apply_lag_ms = l;
        }
    }
}
