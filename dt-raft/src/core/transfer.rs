//! Leader transfer (raft.md §10): the old leader waits until the target has caught up,
//! has the driver check the target's configuration, steps down (same term) and asks
//! the target to take over; the target becomes leader in the same term.

use super::{Action, Index, LocalEntries, NodeId, RaftCore, ReqId, Role, Term};

/// RAFT_TRANSFER_LEADER (45) request, old leader → new leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferReq {
    /// The old leader's term; the new leader keeps it.
    pub term: Term,
    /// The old leader.
    pub old_leader_id: NodeId,
    /// The node asked to lead.
    pub new_leader_id: NodeId,
    /// The old leader's lastLogIndex (all committed).
    pub log_index: Index,
}

/// Why a transfer failed (old leader side) or was refused (target side, SYS_ERROR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// "transfer leader in progress".
    InProgress,
    /// Not (or no longer) the leader.
    NotLeader(Option<NodeId>),
    /// "nodeId not found": the target is not a member or prepared member.
    NodeNotFound,
    /// The deadline passed before the target caught up.
    Timeout,
    /// The target's configuration differs ("config not match").
    ConfigNotMatch,
    /// Target side: a check of §10.3 failed (role, ids, term or log position).
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for commitIndex == lastLogIndex == target's matchIndex.
    CatchUp,
    /// The driver is comparing the target's configuration.
    Checking,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    target: NodeId,
    deadline: u64,
    phase: Phase,
}

impl Transfer {
    pub(super) fn deadline(&self) -> u64 {
        self.deadline
    }
}

impl RaftCore {
    /// Old leader: starts transferring leadership to `target`, to finish before
    /// `deadline`. While it runs the core writes no heartbeat entries and the driver
    /// holds new proposals (the reference's linear task runner waits). Progress is
    /// checked on every tick and ack; the outcome is an
    /// [`Action::CheckTransferTarget`], then [`Action::SendTransferLeader`], or an
    /// [`Action::TransferFailed`].
    pub fn start_transfer(
        &mut self,
        now: u64,
        target: NodeId,
        deadline: u64,
    ) -> Result<(), TransferError> {
        self.now = self.now.max(now);
        if self.transfer.is_some() {
            return Err(TransferError::InProgress);
        }
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader(self.leader));
        }
        if !self.sets.is_voter(target) || target == self.cfg.node_id {
            return Err(TransferError::NodeNotFound);
        }
        self.transfer = Some(Transfer {
            target,
            deadline,
            phase: Phase::CatchUp,
        });
        self.check_transfer();
        Ok(())
    }

    /// True while a transfer holds new proposals.
    pub fn transfer_in_progress(&self) -> bool {
        self.transfer.is_some()
    }

    /// §10.2 step 2, run on ticks and acks.
    pub(super) fn check_transfer(&mut self) {
        let Some(t) = self.transfer else { return };
        if self.now >= t.deadline {
            self.fail_transfer(TransferError::Timeout);
            return;
        }
        if t.phase != Phase::CatchUp {
            return;
        }
        if self.role != Role::Leader {
            self.fail_transfer(TransferError::NotLeader(self.leader));
            return;
        }
        let last = self.last_log_index;
        let caught_up = self
            .progress(t.target)
            .is_some_and(|p| p.ready && p.match_index == last);
        if caught_up && self.commit_index == last {
            self.transfer = Some(Transfer {
                phase: Phase::Checking,
                ..t
            });
            self.actions
                .push(Action::CheckTransferTarget { to: t.target });
        }
    }

    /// The driver compared the target's four member sets (QUERY_STATUS) with ours:
    /// `config_matches` false fails the transfer; true makes this node a follower of
    /// the target in the same term and asks the target to take over.
    pub fn on_transfer_target_checked(&mut self, now: u64, config_matches: bool) {
        self.now = self.now.max(now);
        let Some(t) = self.transfer else { return };
        if t.phase != Phase::Checking {
            return;
        }
        if !config_matches {
            self.fail_transfer(TransferError::ConfigNotMatch);
            return;
        }
        if self.role != Role::Leader || self.commit_index != self.last_log_index {
            self.fail_transfer(TransferError::NotLeader(self.leader));
            return;
        }
        self.transfer = None;
        let req = TransferReq {
            term: self.term,
            old_leader_id: self.cfg.node_id,
            new_leader_id: t.target,
            log_index: self.last_log_index,
        };
        // step down first, keeping the term: no rollback if the target refuses (§17.18)
        self.reset(false);
        self.leader = Some(t.target);
        self.set_role(Role::Follower);
        self.actions
            .push(Action::SendTransferLeader { to: t.target, req });
    }

    pub(super) fn fail_transfer(&mut self, error: TransferError) {
        if self.transfer.take().is_some() {
            self.actions.push(Action::TransferFailed { error });
        }
    }

    /// Target: RAFT_TRANSFER_LEADER from the old leader (§10.3). On success this node
    /// becomes leader in the same term (no increment, votedFor unchanged) with
    /// commitIndex := logIndex, and writes a heartbeat entry.
    pub fn handle_transfer_leader(&mut self, now: u64, req_id: ReqId, req: &TransferReq) {
        self.now = self.now.max(now);
        let ok = self.role == Role::Follower
            && req.new_leader_id == self.cfg.node_id
            && self.sets.is_voter(req.old_leader_id)
            && self.sets.is_voter(req.new_leader_id)
            && req.term == self.term
            && req.log_index == self.last_log_index
            && req.log_index == self.persisted_index;
        if !ok {
            self.actions.push(Action::ReplyTransfer {
                req: req_id,
                result: Err(TransferError::Refused),
            });
            return;
        }
        if req.log_index > self.commit_index {
            self.commit_index = req.log_index;
            self.actions.push(Action::Apply {
                commit_index: req.log_index,
            });
        }
        self.cancel_vote();
        self.become_leader_in_term();
        self.actions.push(Action::ReplyTransfer {
            req: req_id,
            result: Ok(()),
        });
    }

    /// §5.6 without a vote: leader of the current term, first entry a heartbeat.
    pub(super) fn become_leader_in_term(&mut self) {
        self.reset(true);
        self.leader = Some(self.cfg.node_id);
        self.group_ready_index = self.last_log_index + 1;
        let next = self.last_log_index + 1;
        let (me, persisted) = (self.cfg.node_id, self.persisted_index);
        for p in &mut self.peers {
            p.next_index = next;
            if p.node_id == me {
                p.match_index = persisted;
            }
        }
        self.set_role(Role::Leader);
        self.append_local(LocalEntries::Heartbeat, 1);
    }
}
