//! The receiver side of AppendEntries (raft.md §7.3): prologue, match-position search,
//! truncation, append, and success replies deferred until persisted, in order.
//!
//! Requests are handled one at a time in arrival order (the reference's sequential
//! processor). A request that has to wait (for the status file, a match-position
//! search, or the local write before a truncation) blocks the ones behind it, which
//! are queued here.

use std::collections::VecDeque;

use super::msg::{EntryMeta, InstallReq};
use super::{
    Action, AppendCode, AppendReq, AppendResp, Index, MatchSearch, RaftCore, ReqId, Role, Term,
};

/// A request of the receiver's sequential queue.
#[derive(Clone, Debug)]
pub(super) enum Received {
    Append(AppendReq),
    Install(InstallReq),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Block {
    /// The status file must hold this term first.
    Status(Term),
    /// Waiting for a match-position search started in this term.
    Search(Term),
    /// Waiting for the local write to finish before truncating.
    WriteFinished,
    /// Waiting for the driver to finish the first or last install request.
    Install(ReqId),
}

/// Receiver state: queued requests and deferred replies.
#[derive(Default)]
pub(super) struct Receiver {
    /// Requests not yet handled; the front one is the blocked one when `block` is set.
    queue: VecDeque<(ReqId, Received)>,
    block: Option<Block>,
    /// Success replies waiting for the persisted index: (req, last index, term).
    pub(super) deferred: VecDeque<(ReqId, Index, Term)>,
    /// Entry lists of handled append requests, emptied, for the driver to decode the
    /// next requests into ([`RaftCore::spare_entries`]): no allocation per request.
    spare: Vec<Vec<EntryMeta>>,
}

/// Entry lists kept for reuse at most (one per request the driver decodes at once).
const MAX_SPARE_ENTRIES: usize = 4;

impl Receiver {
    pub(super) fn truncating(&self) -> bool {
        self.block == Some(Block::WriteFinished)
    }
}

pub(super) enum Outcome {
    Done,
    Blocked(Block),
}

impl RaftCore {
    /// An AppendEntries request (§7.3). Replies come as [`Action::ReplyAppend`]; a
    /// success for entries only once they are persisted. `req_id` routes the reply and
    /// names the request in [`Action::AppendReceived`], so the driver keeps the entries
    /// until it has written them.
    ///
    /// The driver drops a request whose own timeout has already expired (no response,
    /// §17 item 17) and one for a stopping group, before calling this.
    pub fn handle_append(&mut self, now: u64, req_id: ReqId, req: &AppendReq) {
        self.handle_append_owned(now, req_id, req.clone());
    }

    /// [`handle_append`](Self::handle_append) taking the request (the core keeps it
    /// while it waits; the driver hands over the one it decoded, no copy).
    pub fn handle_append_owned(&mut self, now: u64, req_id: ReqId, req: AppendReq) {
        self.now = self.now.max(now);
        self.receive(req_id, Received::Append(req));
    }

    /// A RAFT_INSTALL_SNAPSHOT request (§12.3), handled in arrival order with the
    /// append requests (same prologue). Replies come as [`Action::ReplyAppend`]:
    ///
    /// * the first request (with the sets) adopts the leader's configuration, sets
    ///   lastConfigChangeIndex := lastIncludedIndex (§17 item 16) and emits
    ///   [`Action::BeginInstallSnapshot`]; its reply and every later request wait
    ///   for [`on_install_begun`](Self::on_install_begun);
    /// * a data request of the stream begun (same lastIncluded, offset where the
    ///   previous chunk ended) emits [`Action::InstallSnapshotData`]; its reply waits
    ///   for [`on_install_data_done`](Self::on_install_data_done), later requests do
    ///   not wait; any other chunk is answered SERVER_ERROR;
    /// * the last request (`done`) emits [`Action::FinishInstallSnapshot`]; its
    ///   reply and later requests wait for
    ///   [`on_install_complete`](Self::on_install_complete).
    ///
    /// While installing, appends are answered INSTALL_SNAPSHOT, votes are not granted
    /// and the node does not campaign.
    pub fn handle_install_snapshot(&mut self, now: u64, req_id: ReqId, req: &InstallReq) {
        self.now = self.now.max(now);
        self.receive(req_id, Received::Install(req.clone()));
    }

    fn receive(&mut self, req_id: ReqId, req: Received) {
        if self.receiver.block.is_some() || !self.receiver.queue.is_empty() {
            self.receiver.queue.push_back((req_id, req));
            return;
        }
        if let Outcome::Blocked(b) = self.process_received(req_id, &req) {
            self.receiver.block = Some(b);
            self.receiver.queue.push_back((req_id, req));
        } else {
            self.recycle(req);
        }
    }

    /// Keeps a handled append request's entry list for [`Self::spare_entries`].
    fn recycle(&mut self, req: Received) {
        if let Received::Append(r) = req {
            let mut e = r.entries;
            if self.receiver.spare.len() < MAX_SPARE_ENTRIES && e.capacity() > 0 {
                e.clear();
                self.receiver.spare.push(e);
            }
        }
    }

    /// An empty entry list to decode the next append request into: one a handled
    /// request left (its capacity kept), or a new one.
    pub fn spare_entries(&mut self) -> Vec<EntryMeta> {
        self.receiver.spare.pop().unwrap_or_default()
    }

    fn process_received(&mut self, id: ReqId, req: &Received) -> Outcome {
        match req {
            Received::Append(r) => self.process_append(id, r),
            Received::Install(r) => {
                if let Some(o) = self.prologue(id, r.term, r.leader_id) {
                    return o;
                }
                self.process_install(id, r)
            }
        }
    }

    /// Unblocks the receiver if it waits for the install request `req`; true if so
    /// (the request is removed from the queue).
    pub(super) fn receiver_unblock_install(&mut self, req: ReqId) -> bool {
        if self.receiver.block != Some(Block::Install(req)) {
            return false;
        }
        self.receiver.block = None;
        self.receiver.queue.pop_front();
        true
    }

    pub(super) fn reply_append(&mut self, req: ReqId, code: AppendCode) {
        let resp = AppendResp::new(self.term, code);
        self.actions.push(Action::ReplyAppend { req, resp });
    }

    /// The common prologue of appends and installs (§7.3): sender, term, durable
    /// term, role. `Some` if the request is answered or must wait.
    fn prologue(&mut self, id: ReqId, term: Term, from: super::NodeId) -> Option<Outcome> {
        // the sender need not be a voter of a configuration this node knows (a
        // deliberate difference, see the module docs): a term has one leader, whoever
        // elected it, and a node that has not received the change that made the leader
        // a member learns it from the leader only
        if term < self.term {
            // "small term", carrying the higher term
            self.reply_append(id, AppendCode::ReqError);
            return Some(Outcome::Done);
        }
        if term > self.term {
            self.incr_term(term);
            self.restart_elect_timer();
        }
        if self.saved_term < self.term {
            // the term must be durable before accepting its leader
            return Some(Outcome::Blocked(Block::Status(self.term)));
        }
        match self.role {
            Role::Leader => {
                self.reply_append(id, AppendCode::ReqError);
                return Some(Outcome::Done);
            }
            Role::Candidate => {
                self.leader_heard_at = self.now;
                self.cancel_vote();
                self.reset(false);
                self.leader = Some(from);
                self.set_role(Role::Follower);
            }
            _ => {
                self.leader_heard_at = self.now;
                self.cancel_vote();
                self.restart_elect_timer();
                if self.leader != Some(from) {
                    self.leader = Some(from);
                    self.actions.push(Action::RoleChanged {
                        role: self.role,
                        term: self.term,
                        leader: self.leader,
                    });
                }
            }
        }
        None
    }

    fn process_append(&mut self, id: ReqId, req: &AppendReq) -> Outcome {
        if let Some(o) = self.prologue(id, req.term, req.leader_id) {
            return o;
        }
        if self.installing_snapshot {
            self.reply_append(id, AppendCode::InstallSnapshot);
            return Outcome::Done;
        }
        if req.entries.is_empty() {
            self.leader_commit = self.leader_commit.max(req.leader_commit);
            self.follower_commit();
            self.reply_append(id, AppendCode::Success);
            return Outcome::Done;
        }
        if !entries_well_formed(req) {
            self.reply_append(id, AppendCode::ReqError);
            return Outcome::Done;
        }
        let (prev_i, prev_t) = (req.prev_log_index, req.prev_log_term);
        if prev_i == self.last_log_index && prev_t == self.last_log_term {
            return self.accept(id, req, None);
        }
        if prev_i < self.last_log_index && self.last_log_term == req.term {
            // Our last entry came from this leader, so (log matching) our log equals
            // its log up to lastLogIndex: the overlap is identical, nothing to truncate.
            // A duplicated or re-sent request never truncates acknowledged entries.
            return self.accept(id, req, None);
        }
        if prev_i == 0 {
            // everything after the start differs: the exact match is the empty prefix
            return self.truncate_and_accept(id, req);
        }
        self.actions.push(Action::FindMatchPos {
            search: MatchSearch::Follower { req: id },
            suggest_term: prev_t,
            suggest_index: prev_i,
        });
        Outcome::Blocked(Block::Search(self.term))
    }

    /// The follower-side search for request `req` found `found` (§7.3 step 3).
    pub fn on_follower_match_pos(&mut self, now: u64, req: ReqId, found: Option<(Term, Index)>) {
        self.now = self.now.max(now);
        let Some(Block::Search(term)) = self.receiver.block else {
            return;
        };
        let Some((id, received)) = self.receiver.queue.pop_front() else {
            return;
        };
        let request = match received {
            Received::Append(r) if id == req => r,
            other => {
                self.receiver.queue.push_front((id, other));
                return;
            }
        };
        self.receiver.block = None;
        let outcome = if term != self.term {
            self.reply_append(id, AppendCode::ServerError);
            Outcome::Done
        } else {
            match found {
                // nothing in the log at or below prevLogIndex, but it is this node's
                // commit index: the entry there is committed, so it is the leader's
                // (prevLogTerm, prevLogIndex) whether or not the log still holds it (a
                // log that starts right after an installed snapshot): a match. The
                // answer (0, 0) would ask for an install, which the node refuses when
                // the leader's snapshot is older than its commit index, forever if
                // the leader needs this node to commit anything newer.
                None if request.prev_log_index == self.commit_index => {
                    self.truncate_and_accept(id, &request)
                }
                None => {
                    self.reply_append(id, AppendCode::LogNotMatch);
                    Outcome::Done
                }
                Some((t, i)) if t == request.prev_log_term && i == request.prev_log_index => {
                    self.truncate_and_accept(id, &request)
                }
                Some((t, i)) => {
                    let mut resp = AppendResp::new(self.term, AppendCode::LogNotMatch);
                    resp.suggest_term = t;
                    resp.suggest_index = i;
                    self.actions.push(Action::ReplyAppend { req: id, resp });
                    Outcome::Done
                }
            }
        };
        if let Outcome::Blocked(b) = outcome {
            self.receiver.block = Some(b);
            self.receiver
                .queue
                .push_front((id, Received::Append(request)));
            return;
        }
        self.drain_receiver_queue();
    }

    fn truncate_and_accept(&mut self, id: ReqId, req: &AppendReq) -> Outcome {
        if req.prev_log_index < self.commit_index {
            self.reply_append(id, AppendCode::PrevLogIndexLessThanLocalCommit);
            return Outcome::Done;
        }
        if self.persisted_index != self.last_log_index {
            return Outcome::Blocked(Block::WriteFinished);
        }
        self.last_log_index = req.prev_log_index;
        self.last_log_term = req.prev_log_term;
        self.persisted_index = self.persisted_index.min(req.prev_log_index);
        let prev = req.prev_log_index;
        self.receiver.deferred.retain(|d| d.1 <= prev);
        self.accept(id, req, Some(prev))
    }

    /// §7.3 step 4: the request's entries follow our log (entries already in it are
    /// skipped).
    fn accept(&mut self, id: ReqId, req: &AppendReq, truncate_after: Option<Index>) -> Outcome {
        self.leader_commit = self.leader_commit.max(req.leader_commit);
        let Some(last) = req.entries.last().copied() else {
            return Outcome::Done;
        };
        if self.role != Role::None {
            let first = req.entries[0].index;
            self.group_ready_index = self.group_ready_index.min(first);
        }
        if last.index > self.last_log_index {
            let first_index = self.last_log_index + 1;
            self.last_log_index = last.index;
            self.last_log_term = last.term;
            self.actions.push(Action::AppendReceived {
                req: id,
                truncate_after,
                first_index,
                last_index: last.index,
            });
        }
        self.receiver
            .deferred
            .push_back((id, last.index, self.term));
        self.release_deferred();
        self.follower_commit();
        Outcome::Done
    }

    /// Writes the success replies whose entries are persisted, in FIFO order; drops
    /// those of an older term (§17 item 7).
    pub(super) fn release_deferred(&mut self) {
        while let Some(&(id, index, term)) = self.receiver.deferred.front() {
            if index > self.persisted_index {
                break;
            }
            self.receiver.deferred.pop_front();
            if term == self.term {
                self.reply_append(id, AppendCode::Success);
            }
        }
    }

    pub(super) fn receiver_status_saved(&mut self) {
        if let Some(Block::Status(t)) = self.receiver.block {
            if self.saved_term >= t {
                self.receiver.block = None;
                self.rerun_front();
            }
        }
    }

    pub(super) fn receiver_write_finished(&mut self) {
        if self.receiver.block == Some(Block::WriteFinished) {
            self.receiver.block = None;
            self.rerun_front();
        }
    }

    fn rerun_front(&mut self) {
        let Some((id, req)) = self.receiver.queue.pop_front() else {
            return;
        };
        if let Outcome::Blocked(b) = self.process_received(id, &req) {
            self.receiver.block = Some(b);
            self.receiver.queue.push_front((id, req));
            return;
        }
        self.drain_receiver_queue();
    }

    pub(super) fn drain_receiver_queue(&mut self) {
        while self.receiver.block.is_none() {
            let Some((id, req)) = self.receiver.queue.pop_front() else {
                return;
            };
            if let Outcome::Blocked(b) = self.process_received(id, &req) {
                self.receiver.block = Some(b);
                self.receiver.queue.push_front((id, req));
            } else {
                self.recycle(req);
            }
        }
    }

    /// Follower: a snapshot install finished (§12.3, last request): the log now starts
    /// after (`last_included_index`, `last_included_term`), everything up to it is
    /// persisted, committed and applied: lastLogIndex, the persisted index,
    /// commitIndex and lastApplied all become `last_included_index` (as in the
    /// reference, also when that is below the old commit index: the state machine now
    /// holds the snapshot). Replies still waiting for older entries are
    /// dropped. [`on_install_complete`](Self::on_install_complete) calls this and
    /// also replies; call this directly only for an install outside the receiver
    /// (e.g. init after a crash during an install).
    pub fn on_install_finished(
        &mut self,
        now: u64,
        last_included_index: Index,
        last_included_term: Term,
    ) {
        self.now = self.now.max(now);
        self.last_log_index = last_included_index;
        self.last_log_term = last_included_term;
        self.persisted_index = last_included_index;
        self.commit_index = last_included_index;
        self.leader_commit = self.leader_commit.max(last_included_index);
        self.last_applied = last_included_index;
        self.last_apply_time = self.now;
        self.receiver.deferred.clear();
        self.installing_snapshot = false;
        self.install_vote = None;
        self.follower_install = None;
    }

    /// Append requests queued behind one that waits (status write, search, write).
    pub fn queued_appends(&self) -> usize {
        self.receiver.queue.len()
    }
}

/// prevLogTerm is 0 exactly for prevLogIndex 0; entries must follow prevLogIndex consecutively, with terms that never decrease,
/// start at or above prevLogTerm and do not exceed the leader's term.
fn entries_well_formed(req: &AppendReq) -> bool {
    if req.prev_log_index == 0 && req.prev_log_term != 0 {
        return false;
    }
    let mut expect = match req.prev_log_index.checked_add(1) {
        Some(i) => i,
        None => return false,
    };
    let mut term = req.prev_log_term;
    for e in &req.entries {
        if e.index != expect || e.term < term || e.term > req.term {
            return false;
        }
        expect = match expect.checked_add(1) {
            Some(i) => i,
            None => return false,
        };
        term = e.term;
    }
    true
}
