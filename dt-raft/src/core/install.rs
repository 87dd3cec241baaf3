//! Install snapshot decisions (raft.md §12): the leader marks a peer that has no
//! usable log and starts a stream to it (the driver streams a fresh state-machine
//! snapshot, §17 item 15), and the follower's side of the three kinds of requests
//! (first with the configuration, data chunks, last with `done`).
//!
//! The core never sees snapshot bytes: on the leader the driver reads and sends the
//! chunks and reports each reply; on the follower it hands each chunk to the state
//! machine and reports when that is done. The core decides what is accepted and
//! answers with [`Action::ReplyAppend`] (the install response is the append
//! response, §12.1).

use super::msg::InstallReq;
use super::receiver::{Block, Outcome};
use super::{
    Action, AppendCode, AppendResp, AppendSend, Index, MemberSets, NodeId, RaftCore, ReqId, Role,
    Term,
};

/// What the leader's driver needs to start an install stream to one peer
/// (carried by [`Action::StartInstallSnapshot`], handed back with every reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallStart {
    /// The leader's term (request field 2).
    pub term: Term,
    /// The leader (self, field 3).
    pub leader_id: NodeId,
    /// The peer's replicate epoch; replies for another epoch are ignored.
    pub epoch: u64,
    /// The four sets for the first request (fields 9–12).
    pub sets: MemberSets,
    /// lastConfigChangeIndex for the first request (field 13).
    pub last_config_change_index: Index,
}

/// The follower's install in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FollowerInstall {
    last_included_index: Index,
    last_included_term: Term,
    /// Byte offset the next chunk must start at.
    next_offset: u64,
    /// The first request has been acknowledged by the driver.
    begun: bool,
}

impl RaftCore {
    /// Leader: `peer` has no usable log (suggestion (0,0), no match found, or it
    /// answered INSTALL_SNAPSHOT): stop appends to it and start an install.
    pub(super) fn mark_install(&mut self, i: usize) {
        let p = &mut self.peers[i];
        p.bump_epoch(0);
        p.install_snapshot = true;
        self.try_start_install(i);
    }

    /// Leader: the entries of the append `sent` to `peer` are no longer in the log
    /// (deleted after a snapshot): it can only be caught up by an install snapshot.
    /// Ignored when the append is stale (another term or replication epoch).
    pub fn on_entries_gone(&mut self, now: u64, peer: NodeId, sent: &AppendSend) {
        self.now = self.now.max(now);
        let Some(i) = self.peer_index(peer) else {
            return;
        };
        if self.role != Role::Leader
            || sent.term != self.term
            || self.peers[i].epoch != sent.epoch
            || self.peers[i].install_snapshot
        {
            return;
        }
        self.mark_install(i);
    }

    /// Emits [`Action::StartInstallSnapshot`] for peer `i` when it is marked, ready,
    /// not already streaming and its retry time has come.
    pub(super) fn try_start_install(&mut self, i: usize) {
        if self.role != Role::Leader {
            return;
        }
        let now = self.now;
        let p = &mut self.peers[i];
        if p.is_self || !p.ready || !p.install_snapshot || p.installing || p.restart_at > now {
            return;
        }
        p.installing = true;
        let start = InstallStart {
            term: self.term,
            leader_id: self.cfg.node_id,
            epoch: p.epoch,
            sets: self.sets.clone(),
            last_config_change_index: self.last_config_change_index,
        };
        let to = p.node_id;
        self.actions
            .push(Action::StartInstallSnapshot { to, start });
    }

    /// Leader: the reply of `from` to one request of the install stream `start`.
    /// Returns true if the stream may go on (SUCCESS and still current). Anything
    /// else ends it: a higher term makes this node a follower; another code, or a
    /// stream that is no longer current (epoch changed, not leader), aborts it and the
    /// core starts a new one from scratch after `replicate_retry_ms` (§12.2 step 6).
    /// After the SUCCESS of the request with `done`, call
    /// [`on_snapshot_installed`](Self::on_snapshot_installed).
    pub fn handle_install_resp(
        &mut self,
        now: u64,
        from: NodeId,
        start: &InstallStart,
        resp: &AppendResp,
    ) -> bool {
        self.now = self.now.max(now);
        if resp.term > self.term {
            self.incr_term(resp.term);
            return false;
        }
        if !self.install_current(from, start) {
            return false;
        }
        if resp.code == AppendCode::Success {
            return true;
        }
        if resp.code == AppendCode::ServerError && resp.suggest_index > self.commit_index {
            self.learn_commit(resp.suggest_index);
        }
        self.fail_install(from);
        false
    }

    /// Leader: a follower refused an install as older than its commit index `index`
    /// (dt's suggestIndex with SERVER_ERROR): entries up to `index` are committed, and
    /// this leader holds them (leader completeness), so its commit index moves there
    /// (within what it holds durably). Its next install, taken at its lastApplied once
    /// they are applied, is then one the follower takes. Without it, a new leader that
    /// had not applied as far as the follower knew committed could neither install on
    /// it nor commit without it when its quorum needed it: no progress ever (the
    /// whole-cluster simulation with membership changes found such runs).
    fn learn_commit(&mut self, index: Index) {
        let c = index.min(self.persisted_index).min(self.last_log_index);
        if c <= self.commit_index {
            return;
        }
        self.commit_index = c;
        self.record_commit(c);
        self.actions.push(Action::Apply { commit_index: c });
        self.replicate_all();
    }

    /// Leader: a request of the install stream `start` to `from` failed (RPC error,
    /// timeout, or the driver could not read the snapshot): the stream is aborted
    /// and restarted from scratch after `replicate_retry_ms`.
    pub fn handle_install_error(&mut self, now: u64, from: NodeId, start: &InstallStart) {
        self.now = self.now.max(now);
        if self.install_current(from, start) {
            self.fail_install(from);
        }
    }

    /// True while the install stream `start` to `peer` is the current one.
    pub fn install_current(&self, peer: NodeId, start: &InstallStart) -> bool {
        self.role == Role::Leader
            && start.term == self.term
            && self
                .progress(peer)
                .is_some_and(|p| p.installing && p.epoch == start.epoch)
    }

    fn fail_install(&mut self, peer: NodeId) {
        let retry_at = self.now + self.cfg.replicate_retry_ms;
        if let Some(i) = self.peer_index(peer) {
            self.peers[i].bump_epoch(retry_at);
        }
    }

    /// Init (§14.3): the status file says an install was under way, or there is no
    /// snapshot to recover from while the log does not start at 1 (or no snapshot
    /// manager): the node waits for the leader's install. Until an install finishes
    /// its appends are answered INSTALL_SNAPSHOT (the leader then starts a stream),
    /// it grants no votes and never campaigns.
    pub fn set_install_required(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.installing_snapshot = true;
        self.follower_install = None;
        self.votes_while_waiting = false;
        self.install_vote = None;
    }

    /// [`Self::set_install_required`] for a node whose install was interrupted (its
    /// log dropped) but whose status file recorded the position to vote with
    /// ([`Self::install_vote`]): it grants votes as if its log ended at
    /// (`last_log_term`, `last_log_index`) until the install finishes.
    pub fn set_install_required_with_vote(
        &mut self,
        now: u64,
        last_log_term: Term,
        last_log_index: Index,
    ) {
        self.set_install_required(now);
        self.install_vote = Some((last_log_term, last_log_index));
    }

    /// While an install is under way (from its first request) or required: the (last
    /// log term, last log index) this node votes with, its log being dropped. It is
    /// the later of the log's last entry when the first install request came (or the
    /// position recorded before) and the snapshot's last included entry: every
    /// committed entry the node held is covered by both (an install replaces a log
    /// that matched the leader's only up to an entry at or below the snapshot's), so
    /// a candidate at least as up to date holds them too, and the vote is as safe as
    /// one with the log. The driver records it in the status file with the install
    /// ([`RaftLog::begin_install_voting`](crate::raft_log::RaftLog::begin_install_voting))
    /// so that a node whose install a crash interrupted still votes: the reference
    /// refuses votes then, and a group with too many such nodes could never elect a
    /// leader again (the whole-cluster simulation's `seeds_stuck_installing`).
    pub fn install_vote(&self) -> Option<(Term, Index)> {
        if self.installing_snapshot {
            self.install_vote
        } else {
            None
        }
    }

    /// [`Self::set_install_required`] for a node whose log is intact but starts after
    /// its state (an install finished, then a crash came before the local snapshot
    /// was saved): it cannot apply or lead until the leader's install, but its log
    /// (after the installed snapshot, which was committed) is a Raft log like any
    /// other, so it keeps voting. The reference refuses votes until the install; when
    /// half the members or more were caught so, no leader could be elected again
    /// (the whole-cluster simulation found such runs). A node whose install was
    /// interrupted (its log dropped) still refuses votes.
    pub fn set_install_required_voting(&mut self, now: u64) {
        self.set_install_required(now);
        self.votes_while_waiting = true;
    }

    /// Init of a node waiting for an install: `index` is committed (the status file's
    /// commitIndex), although the core starts at its snapshot. An install older than
    /// it is refused (its log could not take the entries after it), answered with it as
    /// suggestIndex so that the leader learns it (`handle_install_resp`): without that,
    /// a leader that had applied less could never install on this node.
    pub fn set_known_committed(&mut self, index: Index) {
        self.known_committed = self.known_committed.max(index);
    }

    /// Whether the first install request carrying `sets` switches this node to them:
    /// false with `disable_config_change` or when they are the current sets (the
    /// reference then skips the switch and its node-table check). Before handing such
    /// a request to the core the driver checks every id of `sets` against its node
    /// table and answers SERVER_ERROR for an unknown one, as the reference's install
    /// does ("node not exist", raft.md §12.3).
    pub fn adopts_install_sets(&self, sets: &MemberSets) -> bool {
        !self.cfg.disable_config_change && !super::config_change::same_sets(sets, &self.sets)
    }

    /// True while this node waits for (or runs) an install with its log dropped: it
    /// grants no votes until the install finishes (raft.md §12.3; see
    /// [`Self::set_install_required_voting`] for the case that still votes).
    pub fn refuses_votes_for_install(&self) -> bool {
        self.installing_snapshot && !self.votes_while_waiting && self.install_vote.is_none()
    }

    /// True while an install is required or under way on this node (the status
    /// file's installSnapshot flag).
    pub fn installing_snapshot(&self) -> bool {
        self.installing_snapshot
    }

    /// Follower: one RAFT_INSTALL_SNAPSHOT request (§12.3), after the common
    /// prologue of the receiver.
    pub(super) fn process_install(&mut self, id: ReqId, req: &InstallReq) -> Outcome {
        let idx = req.last_included_index;
        let term = req.last_included_term;
        if term > req.term || (idx == 0) != (term == 0) {
            self.reply_append(id, AppendCode::ReqError);
            return Outcome::Done;
        }
        let floor = self.commit_index.max(self.known_committed);
        if req.sets.is_some() && idx < floor {
            // older than what this node knows committed: installing it would throw
            // committed entries away (a leader's snapshot is taken at its lastApplied).
            // dt: the answer carries this node's commit index as suggestIndex (the
            // reference reads no suggestion with SERVER_ERROR), from which the leader
            // learns that much is committed (handle_install_resp)
            let mut resp = AppendResp::new(self.term, AppendCode::ServerError);
            resp.suggest_index = floor;
            self.actions.push(Action::ReplyAppend { req: id, resp });
            return Outcome::Done;
        }
        if let Some(sets) = &req.sets {
            // first request: the log is thrown away, the configuration adopted; votes
            // go on with the later of the log's end and the snapshot's (install_vote)
            let mut vote = (term, idx);
            if !self.installing_snapshot || self.votes_while_waiting {
                vote = vote.max((self.last_log_term, self.last_log_index));
            }
            if let Some(v) = self.install_vote() {
                vote = vote.max(v);
            }
            self.install_vote = Some(vote);
            self.installing_snapshot = true;
            self.votes_while_waiting = false;
            self.receiver.deferred.clear();
            self.follower_install = Some(FollowerInstall {
                last_included_index: idx,
                last_included_term: term,
                next_offset: 0,
                begun: false,
            });
            self.last_config_change_index = idx;
            self.log_configs.clear();
            if !self.cfg.disable_config_change {
                self.apply_sets(sets.clone(), 0);
            }
            self.actions.push(Action::BeginInstallSnapshot {
                req: id,
                last_included_index: idx,
                last_included_term: term,
            });
            return Outcome::Blocked(Block::Install(id));
        }
        let ok = self.installing_snapshot
            && self.follower_install.is_some_and(|f| {
                f.begun
                    && f.last_included_index == idx
                    && f.last_included_term == term
                    && f.next_offset == req.offset
            });
        if !ok {
            // "not in install snapshot state", or a chunk of another stream / gap
            self.reply_append(id, AppendCode::ServerError);
            return Outcome::Done;
        }
        if let Some(f) = &mut self.follower_install {
            f.next_offset = f.next_offset.saturating_add(req.data_len);
        }
        if req.done {
            self.actions.push(Action::FinishInstallSnapshot {
                req: id,
                last_included_index: idx,
                last_included_term: term,
                next_write_pos: req.next_write_pos,
            });
            return Outcome::Blocked(Block::Install(id));
        }
        self.actions.push(Action::InstallSnapshotData {
            req: id,
            last_included_index: idx,
            last_included_term: term,
            offset: req.offset,
        });
        Outcome::Done
    }

    /// Follower: the driver finished (`ok`) or failed the work of
    /// [`Action::BeginInstallSnapshot`] for request `req`; the reply is SUCCESS or
    /// SERVER_ERROR and the requests queued behind it are processed.
    pub fn on_install_begun(&mut self, now: u64, req: ReqId, ok: bool) {
        self.now = self.now.max(now);
        if !self.receiver_unblock_install(req) {
            return;
        }
        if let Some(f) = &mut self.follower_install {
            f.begun = ok;
        }
        let code = if ok {
            AppendCode::Success
        } else {
            AppendCode::ServerError
        };
        self.reply_append(req, code);
        self.drain_receiver_queue();
    }

    /// Follower: the state machine took (`ok`) or refused the chunk of
    /// [`Action::InstallSnapshotData`] `req`; the reply is SUCCESS or SERVER_ERROR.
    /// A refused chunk ends the install: the leader starts over with a first request.
    pub fn on_install_data_done(&mut self, now: u64, req: ReqId, ok: bool) {
        self.now = self.now.max(now);
        if !ok {
            if let Some(f) = &mut self.follower_install {
                f.begun = false;
            }
        }
        let code = if ok {
            AppendCode::Success
        } else {
            AppendCode::ServerError
        };
        self.reply_append(req, code);
    }

    /// Follower: the driver finished (`ok`) or failed the work of
    /// [`Action::FinishInstallSnapshot`] for request `req`. On success the log now
    /// starts after (lastIncludedIndex, lastIncludedTerm), which is persisted,
    /// committed and applied (as [`on_install_finished`](Self::on_install_finished));
    /// the reply is SUCCESS. On failure the node stays installing and answers
    /// SERVER_ERROR.
    pub fn on_install_complete(&mut self, now: u64, req: ReqId, ok: bool) {
        self.now = self.now.max(now);
        if !self.receiver_unblock_install(req) {
            return;
        }
        match self.follower_install {
            Some(f) if ok => {
                self.on_install_finished(now, f.last_included_index, f.last_included_term);
                self.reply_append(req, AppendCode::Success);
            }
            _ => {
                if let Some(f) = &mut self.follower_install {
                    f.begun = false;
                }
                self.reply_append(req, AppendCode::ServerError);
            }
        }
        self.drain_receiver_queue();
    }
}
