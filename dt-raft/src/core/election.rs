//! Election (raft.md §5): the vote timer, pre-vote, vote, the voter rules, becoming
//! leader, and the leader's step-down after an election timeout without a commit.

use super::{
    Action, NodeId, RaftCore, ReqId, Role, Term, VoteRefused, VoteReq, VoteResp, VoteSend,
};

impl RaftCore {
    /// One pass of the reference's vote-fiber loop (§5.1), run when the election check
    /// time has come.
    pub(super) fn election_check(&mut self) {
        let now = self.now;
        let me = self.cfg.node_id;
        let alone = self.fresh_start && self.sets.has_elect_quorum(|id| id == me);
        let timed_out =
            alone || now.saturating_sub(self.last_elect_time) > self.cfg.elect_timeout_ms;
        if self.installing_snapshot {
            self.elect_check_at = now + self.rng.range(10, 700);
            return;
        }
        if self.vote.active {
            if !timed_out {
                self.schedule_next_check();
                return;
            }
            // "vote timeout"
            self.cancel_vote();
        }
        if timed_out {
            self.leader = None;
            match self.role {
                // a node that is a voter only of a configuration its log holds but has
                // not applied (a change's new member) campaigns like a follower
                Role::Observer | Role::None if !self.possible_voter(me) => {}
                Role::Leader => {
                    // check quorum: a leader that could not commit for an election
                    // timeout steps down (same term, tasks are not failed)
                    self.reset(false);
                    self.set_role(Role::Follower);
                }
                Role::Follower | Role::Candidate | Role::Observer | Role::None => {
                    if self.persisted_index != self.last_log_index
                        || self.receiver.truncating()
                        || self.last_applied < self.commit_index
                    {
                        self.elect_check_at = now + self.rng.range(10, 700);
                        return;
                    }
                    self.start_pre_vote();
                }
            }
        }
        self.schedule_next_check();
    }

    fn schedule_next_check(&mut self) {
        let at = self.last_elect_time + self.cfg.elect_timeout_ms + self.rng.range(10, 700);
        self.elect_check_at = if at > self.now {
            at
        } else {
            self.now + self.rng.range(10, 700)
        };
    }

    /// Readiness to campaign: ready voters reach the elect quorum of members (and of
    /// prepared members when joint), §5.2, in every configuration the log may give
    /// ([`RaftCore::set_log_configs`]).
    fn ready_quorum(&self) -> bool {
        // a voter only of a configuration not applied yet: per its last verdict,
        // ready without one (counts_ready)
        self.every_possible_config(|sets| sets.has_elect_quorum(|id| self.counts_ready(id)))
    }

    fn open_round(&mut self, pre_vote: bool) {
        self.vote.id += 1;
        self.vote.active = true;
        self.vote.pre_vote = pre_vote;
        self.vote.waiting_status = false;
        self.vote.granted.clear();
    }

    pub(super) fn cancel_vote(&mut self) {
        self.vote.active = false;
        self.vote.waiting_status = false;
        self.vote.granted.clear();
    }

    fn set_self_confirm(&mut self) {
        let (me, now) = (self.cfg.node_id, self.now);
        if let Some(i) = self.peer_index(me) {
            self.peers[i].last_confirm = now;
        }
    }

    /// Whether `id` is a voter of the applied configuration or of one the entries
    /// above lastApplied would give ([`RaftCore::set_log_configs`]). Such a node
    /// campaigns, as in Raft, where a server uses the latest configuration of its log:
    /// a change's new members may be the only nodes holding the longest log (the old
    /// ones refused by their log check), and without it a group whose applied
    /// configuration has none of them could never elect a leader again (the
    /// whole-cluster simulation found such runs). Its election still needs an elect
    /// quorum in every one of these configurations; the reference campaigns as a
    /// member of the applied configuration only.
    pub(super) fn possible_voter(&self, id: NodeId) -> bool {
        let mut voter = false;
        self.for_each_possible_voter(|v| voter |= v == id);
        voter
    }

    /// §5.2: send a pre-vote carrying the current term to every ready voter.
    fn start_pre_vote(&mut self) {
        // a term at the top of its range (only a peer can have pushed it there) cannot
        // be incremented: never campaign then
        if !self.possible_voter(self.cfg.node_id) || self.term == Term::MAX || !self.ready_quorum()
        {
            return;
        }
        self.restart_elect_timer();
        self.set_self_confirm();
        self.open_round(true);
        self.send_votes(true);
    }

    /// Sends the round's request to voters (only ready ones for a pre-vote); self
    /// grants locally.
    fn send_votes(&mut self, only_ready: bool) {
        let req = VoteReq {
            term: self.term,
            candidate_id: self.cfg.node_id,
            last_log_index: self.last_log_index,
            last_log_term: self.last_log_term,
            pre_vote: self.vote.pre_vote,
        };
        let msg = VoteSend {
            req,
            round: self.vote.id,
            sent_at: self.now,
        };
        let me = self.cfg.node_id;
        let mut targets = std::mem::take(&mut self.scratch);
        targets.clear();
        // the voters of every configuration the log may give (set_log_configs), once
        self.for_each_possible_voter(|id| {
            if !targets.contains(&(id as u64)) {
                targets.push(id as u64)
            }
        });
        for &id in &targets {
            let id = id as NodeId;
            if id == me {
                continue;
            }
            if only_ready && !self.counts_ready(id) {
                continue;
            }
            self.actions.push(Action::SendVote { to: id, msg });
        }
        self.scratch = targets;
        self.count_vote(me, self.now);
    }

    /// Records a granted (pre-)vote and acts when the round is won.
    fn count_vote(&mut self, from: NodeId, sent_at: u64) {
        if !self.vote.granted.contains(&from) {
            self.vote.granted.push(from);
        }
        if !self.vote.pre_vote {
            if let Some(i) = self.peer_index(from) {
                let p = &mut self.peers[i];
                p.last_confirm = p.last_confirm.max(sent_at);
            }
        }
        let granted = &self.vote.granted;
        if !self.every_possible_config(|sets| sets.has_elect_quorum(|id| granted.contains(&id))) {
            return;
        }
        if self.vote.pre_vote {
            self.start_vote();
        } else {
            self.become_leader();
        }
    }

    /// §5.5 pre-vote success → vote: new round, candidate, term+1, vote for self,
    /// persist and wait before sending.
    fn start_vote(&mut self) {
        if !self.ready_quorum() || self.term == Term::MAX {
            self.cancel_vote();
            return;
        }
        self.open_round(false);
        self.reset(false);
        self.term += 1;
        self.voted_for = self.cfg.node_id;
        self.set_role(Role::Candidate);
        self.restart_elect_timer();
        self.set_self_confirm();
        self.vote.waiting_status = true;
        self.save_status();
    }

    /// The candidate's own status write finished: send the votes.
    pub(super) fn candidate_status_saved(&mut self) {
        if !(self.vote.active && self.vote.waiting_status && self.role == Role::Candidate) {
            return;
        }
        if self.saved_term != self.term || self.saved_vote != self.cfg.node_id {
            return;
        }
        self.vote.waiting_status = false;
        if !self.ready_quorum() {
            self.cancel_vote();
            return;
        }
        self.send_votes(false);
    }

    /// §5.6: become leader of the current term and write its first entry (a heartbeat).
    fn become_leader(&mut self) {
        self.cancel_vote();
        self.become_leader_in_term();
    }

    /// A (pre-)vote request from `from` (§5.4). The reply is an [`Action::ReplyVote`],
    /// for a granted real vote only after the status file holds the vote.
    pub fn handle_vote(&mut self, now: u64, req_id: ReqId, req: &VoteReq) {
        self.now = self.now.max(now);
        // Neither the candidate nor this node need be a voter of a configuration this
        // node knows (a deliberate difference, see the module docs): a change's new
        // members vote before they have the change, and for a candidate of a
        // configuration this node has not seen, as in Raft. What makes an election safe
        // is the candidate's count, a quorum in every configuration its log may give
        // (set_log_configs), with every voter's log check and persisted vote; the
        // reference's refusals only cost liveness: a leader lost in the middle of a
        // change whose new members had not received it left a group that could elect
        // no one again (the whole-cluster simulation's seeds 17 and 37 with
        // membership changes).
        if self.cfg.leader_stickiness
            && self.role == Role::Follower
            && self.now < self.leader_heard_at + self.cfg.elect_timeout_ms
        {
            // see CoreConfig::leader_stickiness: refuse, keep the term
            let resp = self.vote_resp(false);
            self.reply_vote(req_id, Ok(resp));
            return;
        }
        if req.term > self.term {
            // also for pre-votes (§17 item 4)
            self.incr_term(req.term);
        }
        if self.refuses_votes_for_install() {
            let resp = self.vote_resp(false);
            self.reply_vote(req_id, Ok(resp));
            return;
        }
        // while installing with its log dropped, the node votes with install_vote
        let install_vote = self.install_vote().filter(|_| !self.votes_while_waiting);
        let (my_term, my_index) = install_vote.unwrap_or((self.last_log_term, self.last_log_index));
        if !req.pre_vote
            && install_vote.is_none()
            && (self.persisted_index != self.last_log_index || self.receiver.truncating())
        {
            // wait for the local write, then re-run the checks
            self.parked_votes
                .push_back((req_id, req.candidate_id, *req));
            return;
        }
        let log_ok = if self.role == Role::Leader && req.pre_vote {
            // only a leader answering a pre-vote wants a strictly longer log (§17 item 5)
            req.last_log_term > my_term
                || (req.last_log_term == my_term && req.last_log_index > my_index)
        } else {
            req.last_log_term > my_term
                || (req.last_log_term == my_term && req.last_log_index >= my_index)
        };
        let vote_ok = req.pre_vote || self.voted_for == 0 || self.voted_for == req.candidate_id;
        let grant = req.term >= self.term && vote_ok && log_ok;
        if grant && !req.pre_vote {
            self.restart_elect_timer();
            self.voted_for = req.candidate_id;
            self.cancel_vote();
            self.save_status();
            // DELIBERATE BUG (feature sim-bugs, simulation self-test only): grant before
            // the status file holds the vote.
            #[cfg(feature = "sim-bugs")]
            if crate::sim::bugs::is_active(crate::sim::bugs::Bug::VoteBeforePersist) {
                let resp = self.vote_resp(true);
                self.reply_vote(req_id, Ok(resp));
                return;
            }
            // reply after the write (§17 item 6)
            self.vote_replies
                .push_back((req_id, self.term, req.candidate_id));
            return;
        }
        let resp = self.vote_resp(grant);
        self.reply_vote(req_id, Ok(resp));
    }

    fn vote_resp(&self, granted: bool) -> VoteResp {
        VoteResp {
            term: self.term,
            vote_granted: granted,
        }
    }

    fn reply_vote(&mut self, req: ReqId, resp: Result<VoteResp, VoteRefused>) {
        self.actions.push(Action::ReplyVote { req, resp });
    }

    /// Re-runs vote requests that waited for the local write to finish.
    pub(super) fn unpark_votes(&mut self) {
        while self.persisted_index == self.last_log_index && !self.receiver.truncating() {
            let Some((req_id, _, req)) = self.parked_votes.pop_front() else {
                break;
            };
            self.handle_vote(self.now, req_id, &req);
        }
    }

    /// The answer from `from` to a (pre-)vote request `sent` (§5.5).
    pub fn handle_vote_resp(&mut self, now: u64, from: NodeId, sent: &VoteSend, resp: &VoteResp) {
        self.now = self.now.max(now);
        if !self.vote.active || sent.round != self.vote.id || self.vote.waiting_status {
            return;
        }
        if resp.term > self.term {
            self.incr_term(resp.term);
            return;
        }
        if resp.term < self.term {
            return;
        }
        let role_ok = if sent.req.pre_vote {
            self.vote.pre_vote && self.role != Role::Leader
        } else {
            !self.vote.pre_vote && self.role == Role::Candidate
        };
        let mut voter = false;
        self.for_each_possible_voter(|id| voter |= id == from);
        if !role_ok || !voter {
            return;
        }
        if resp.vote_granted {
            self.count_vote(from, sent.sent_at);
        }
    }
}
