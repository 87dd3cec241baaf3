//! Leader replication (raft.md §7.4): per-peer progress, the first append of an
//! epoch carrying one entry then pipelining, empty appends for the commit index, the
//! response handling with the leader half of the match-position search (§7.5).

use std::collections::VecDeque;

use super::{
    Action, AppendCode, AppendResp, AppendSend, Index, LocalEntries, MatchSearch, NodeId, RaftCore,
    Role, Term,
};

/// The leader's bookkeeping of one member of the replicate list (and of itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The member.
    pub node_id: NodeId,
    /// True for the local node (never replicated to; its matchIndex is the persisted
    /// index).
    pub is_self: bool,
    /// Next index to send. Never decremented blindly: only the match-position search
    /// moves it back (§17 item 8).
    pub next_index: Index,
    /// Highest index known to be persisted on the member.
    pub match_index: Index,
    /// Commit index sent with the last request.
    pub rep_commit_index: Index,
    /// Highest commit index the member acknowledged.
    pub rep_commit_acked: Index,
    /// Send time of the latest request the member acknowledged in this leadership
    /// (lease, §9); 0 = never.
    pub last_confirm: u64,
    /// Ready per the raft ping; only ready members are replicated to.
    pub ready: bool,
    /// Bumped whenever replication to the member restarts; stale responses are ignored.
    pub epoch: u64,
    /// The member needs an install snapshot.
    pub install_snapshot: bool,
    /// An install-snapshot stream to the member is running (the driver is executing
    /// an [`Action::StartInstallSnapshot`]).
    pub installing: bool,
    /// A leader-side match-position search is running for it.
    pub searching: bool,
    /// The "replication fiber" runs (false after an error until `restart_at`).
    pub running: bool,
    /// When a stopped replication may restart.
    pub restart_at: u64,
    /// False until the first successful non-empty append of this epoch.
    pub multi_append: bool,
    /// Entries in flight.
    pub pending_items: u64,
    /// An empty append is in flight.
    pub empty_in_flight: bool,
    /// Bytes of entry bodies in flight (as the core knows them, see
    /// [`RaftCore::propose_sized`]).
    pub pending_bytes: u64,
    /// The member left the replicate list and is only replicated to until its
    /// matchIndex and acknowledged commit reach `.0`, or the core's time reaches `.1`
    /// ("remove legacy", §11.2 step 8).
    pub remove_legacy: Option<(Index, u64)>,
    /// (first index, bytes) of the appends in flight, oldest first.
    inflight_bytes: VecDeque<(Index, u64)>,
}

impl Progress {
    pub(super) fn new(node_id: NodeId, is_self: bool) -> Self {
        Progress {
            node_id,
            is_self,
            next_index: 0,
            match_index: 0,
            rep_commit_index: 0,
            rep_commit_acked: 0,
            last_confirm: 0,
            ready: is_self,
            epoch: 0,
            install_snapshot: false,
            installing: false,
            searching: false,
            running: is_self,
            restart_at: 0,
            multi_append: false,
            pending_items: 0,
            empty_in_flight: false,
            pending_bytes: 0,
            remove_legacy: None,
            inflight_bytes: VecDeque::new(),
        }
    }

    /// Stops the current replication: new epoch, nothing in flight, probing again.
    /// It may restart at `restart_at`. nextIndex is not rolled back.
    pub(super) fn bump_epoch(&mut self, restart_at: u64) {
        self.epoch += 1;
        self.pending_items = 0;
        self.pending_bytes = 0;
        self.inflight_bytes.clear();
        self.installing = false;
        self.empty_in_flight = false;
        self.multi_append = false;
        self.running = false;
        self.restart_at = restart_at;
    }
}

/// Why [`RaftCore::propose`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    /// The known leader, if any.
    pub leader: Option<NodeId>,
}

/// Where proposed entries went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    /// Index of the first proposed entry; the others follow consecutively.
    pub first_index: Index,
    /// Their term.
    pub term: Term,
    /// Term of `first_index - 1`.
    pub prev_log_term: Term,
}

impl RaftCore {
    /// Leader: assigns indexes `last+1 ..= last+count` of the current term to `count`
    /// new entries (the driver writes them, see [`Action::AppendLocal`]) and starts
    /// replicating them.
    ///
    /// The core does not know these entries' sizes: they count as 0 bytes for
    /// `max_replicate_bytes` and `single_replicate_limit`. Prefer
    /// [`propose_sized`](Self::propose_sized).
    pub fn propose(&mut self, now: u64, count: u64) -> Result<Proposed, NotLeader> {
        self.propose_inner(now, count, None)
    }

    /// [`propose`](Self::propose) for `sizes.len()` entries whose body sizes (bytes
    /// of header + body, the part the reference counts against
    /// `singleReplicateLimit` and `maxReplicateBytes`) are `sizes`. The core then cuts
    /// appends at `single_replicate_limit` bytes (at least one entry) and stops
    /// sending to a peer with `max_replicate_bytes` in flight (§7.4, §15.2).
    pub fn propose_sized(&mut self, now: u64, sizes: &[u64]) -> Result<Proposed, NotLeader> {
        self.propose_inner(now, sizes.len() as u64, Some(sizes))
    }

    fn propose_inner(
        &mut self,
        now: u64,
        count: u64,
        sizes: Option<&[u64]>,
    ) -> Result<Proposed, NotLeader> {
        self.now = self.now.max(now);
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        let prev_log_term = self.last_log_term;
        let first_index = self.last_log_index + 1;
        if count > 0 {
            self.append_local_sized(LocalEntries::Proposal, count, sizes);
        }
        Ok(Proposed {
            first_index,
            term: self.term,
            prev_log_term,
        })
    }

    pub(super) fn append_local(&mut self, kind: LocalEntries, count: u64) {
        self.append_local_sized(kind, count, None);
    }

    fn append_local_sized(&mut self, kind: LocalEntries, count: u64, sizes: Option<&[u64]>) {
        let first_index = self.last_log_index + 1;
        let prev_log_term = self.last_log_term;
        if self.tail_base + self.tail_bytes.len() as u64 != first_index {
            self.tail_bytes.clear();
            self.tail_base = first_index;
        }
        match sizes {
            Some(s) => self.tail_bytes.extend(s.iter().copied()),
            None => self
                .tail_bytes
                .extend(std::iter::repeat_n(0, count as usize)),
        }
        self.last_log_index += count;
        self.last_log_term = self.term;
        self.last_propose_time = self.now;
        self.actions.push(Action::AppendLocal {
            kind,
            first_index,
            last_index: self.last_log_index,
            term: self.term,
            prev_log_term,
        });
        self.replicate_all();
    }

    pub(super) fn replicate_all(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        for i in 0..self.peers.len() {
            self.replicate_peer(i);
        }
    }

    /// The loop of one replication fiber (§7.4), run until it would wait.
    pub(super) fn replicate_peer(&mut self, i: usize) {
        if self.role != Role::Leader {
            return;
        }
        let max = self.cfg.max_replicate_items;
        let max_bytes = self.cfg.max_replicate_bytes;
        let limit = self.cfg.single_replicate_limit;
        let coalesce = self.cfg.coalesce_appends_below;
        let (term, me, now) = (self.term, self.cfg.node_id, self.now);
        let (last, commit) = (self.last_log_index, self.commit_index);
        loop {
            let p = &mut self.peers[i];
            if p.is_self || !p.ready || !p.running || p.install_snapshot || p.searching {
                return;
            }
            if p.pending_items >= max || p.pending_bytes >= max_bytes {
                return;
            }
            let diff = (last + 1).saturating_sub(p.next_index);
            if diff == 0 && p.rep_commit_index >= commit {
                return;
            }
            let count = if !p.multi_append {
                // probing: one entry, only when nothing is in flight (§17 item 9)
                if p.pending_items > 0 || p.empty_in_flight || diff == 0 {
                    return;
                }
                1
            } else {
                let window = max - p.pending_items;
                if p.pending_items > 0 && window <= max / 10 {
                    // silly window
                    return;
                }
                if diff > 0 && diff < coalesce && !p.inflight_bytes.is_empty() {
                    // a few entries behind an append in flight: they go with
                    // whatever else arrives before its response
                    return;
                }
                if diff == 0 {
                    if p.empty_in_flight {
                        return;
                    }
                    0
                } else {
                    window.min(diff)
                }
            };
            let (count, bytes) = if count == 0 {
                (0, 0)
            } else {
                batch_limit(self.tail_base, &self.tail_bytes, limit, p.next_index, count)
            };
            let msg = AppendSend {
                term,
                leader_id: me,
                first_index: p.next_index,
                count,
                leader_commit: commit,
                epoch: p.epoch,
                sent_at: now,
            };
            if count == 0 {
                p.empty_in_flight = true;
            } else {
                p.next_index += count;
                p.pending_items += count;
                p.pending_bytes += bytes;
                p.inflight_bytes.push_back((msg.first_index, bytes));
            }
            p.rep_commit_index = commit;
            let to = p.node_id;
            self.actions.push(Action::SendAppend { to, msg });
        }
    }

    /// The response of `from` to the append `sent` (§7.4).
    pub fn handle_append_resp(
        &mut self,
        now: u64,
        from: NodeId,
        sent: &AppendSend,
        resp: &AppendResp,
    ) {
        self.now = self.now.max(now);
        if resp.term > self.term {
            self.incr_term(resp.term);
            return;
        }
        let Some(i) = self.peer_index(from) else {
            return;
        };
        if self.role != Role::Leader || sent.term != self.term || self.peers[i].epoch != sent.epoch
        {
            return;
        }
        let retry_at = self.now + self.cfg.replicate_retry_ms;
        let p = &mut self.peers[i];
        if sent.count == 0 {
            p.empty_in_flight = false;
        } else {
            p.pending_items = p.pending_items.saturating_sub(sent.count);
            if let Some(k) = p
                .inflight_bytes
                .iter()
                .position(|b| b.0 == sent.first_index)
            {
                let (_, bytes) = p.inflight_bytes.remove(k).unwrap_or_default();
                p.pending_bytes = p.pending_bytes.saturating_sub(bytes);
            }
        }
        match resp.code {
            AppendCode::Success => {
                p.rep_commit_acked = p.rep_commit_acked.max(sent.leader_commit);
                if sent.count == 0 {
                    // empty appends never refresh the lease
                } else if p.match_index <= sent.prev_log_index() {
                    p.last_confirm = p.last_confirm.max(sent.sent_at);
                    p.match_index = sent.prev_log_index() + sent.count;
                    p.multi_append = true;
                    self.leader_try_commit();
                    self.check_transfer();
                } else {
                    // append miss order
                    p.bump_epoch(retry_at);
                }
            }
            AppendCode::LogNotMatch => {
                p.last_confirm = p.last_confirm.max(sent.sent_at);
                if resp.suggest_term == 0 && resp.suggest_index == 0 {
                    self.mark_install(i);
                } else {
                    p.bump_epoch(0);
                    p.searching = true;
                    let search = MatchSearch::Leader {
                        peer: from,
                        epoch: p.epoch,
                    };
                    self.actions.push(Action::FindMatchPos {
                        search,
                        suggest_term: resp.suggest_term,
                        suggest_index: resp.suggest_index,
                    });
                }
            }
            AppendCode::ServerError => {
                p.last_confirm = p.last_confirm.max(sent.sent_at);
                p.bump_epoch(retry_at);
            }
            AppendCode::InstallSnapshot => {
                p.last_confirm = p.last_confirm.max(sent.sent_at);
                self.mark_install(i);
            }
            AppendCode::PrevLogIndexLessThanLocalCommit
            | AppendCode::ReqError
            | AppendCode::NotMemberInGroup => p.bump_epoch(retry_at),
        }
        self.replicate_peer(i);
        if self.peers.get(i).is_some_and(|p| p.remove_legacy.is_some()) {
            self.check_legacy();
        }
    }

    /// The append `sent` to `from` failed (timeout, connection): replication to it
    /// stops and restarts later; nextIndex is not rolled back (the follower's
    /// LOG_NOT_MATCH will repair it).
    pub fn handle_append_error(&mut self, now: u64, from: NodeId, sent: &AppendSend) {
        self.now = self.now.max(now);
        let retry_at = self.now + self.cfg.replicate_retry_ms;
        if let Some(i) = self.peer_index(from) {
            let p = &mut self.peers[i];
            if p.epoch == sent.epoch && sent.term == self.term {
                p.bump_epoch(retry_at);
            }
        }
    }

    /// Result of the leader-side search for `peer`'s suggestion: the last entry of the
    /// local log valid for it (§7.5), or `None` (the peer needs a snapshot).
    pub fn on_leader_match_pos(
        &mut self,
        now: u64,
        peer: NodeId,
        epoch: u64,
        found: Option<(Term, Index)>,
    ) {
        self.now = self.now.max(now);
        let Some(i) = self.peer_index(peer) else {
            return;
        };
        let p = &mut self.peers[i];
        if self.role != Role::Leader || p.epoch != epoch || !p.searching {
            return;
        }
        p.searching = false;
        match found {
            None => self.mark_install(i),
            Some((_, index)) => {
                p.next_index = index.saturating_add(1).min(self.last_log_index + 1);
                p.epoch += 1;
                p.running = true;
                self.replicate_peer(i);
            }
        }
    }

    /// Leader: the install snapshot to `peer` finished successfully at
    /// `last_included_index` (§12.2 step 6: the reply to the request with `done`
    /// was SUCCESS): matchIndex and nextIndex follow it and replication restarts.
    /// Ignored unless an install stream to the peer is running (a stream that
    /// [`handle_install_resp`](Self::handle_install_resp) or
    /// [`handle_install_error`](Self::handle_install_error) ended does not count).
    pub fn on_snapshot_installed(&mut self, now: u64, peer: NodeId, last_included_index: Index) {
        self.now = self.now.max(now);
        let Some(i) = self.peer_index(peer) else {
            return;
        };
        if self.role != Role::Leader || !self.peers[i].install_snapshot || !self.peers[i].installing
        {
            return;
        }
        let p = &mut self.peers[i];
        p.install_snapshot = false;
        p.installing = false;
        p.match_index = p.match_index.max(last_included_index);
        p.next_index = last_included_index.saturating_add(1);
        p.epoch += 1;
        p.running = true;
        self.leader_try_commit();
        self.replicate_peer(i);
    }
}

/// Most entries one append read from the log (not the tail) may carry, as the
/// reference's log iterator reads at most 1024 items per request.
pub(super) const DISK_READ_MAX_ITEMS: u64 = 1024;

/// How many of the `count` entries from `first` one append carries and their bytes:
/// entries whose sizes the core knows (`sizes[k]` is index `base + k`) stop before
/// the one that would take the total over `limit` (at least one entry); others are
/// read from the log, at most [`DISK_READ_MAX_ITEMS`], size unknown (0).
fn batch_limit(
    base: Index,
    sizes: &VecDeque<u64>,
    limit: u64,
    first: Index,
    count: u64,
) -> (u64, u64) {
    if first < base || first - base >= sizes.len() as u64 {
        return (count.min(DISK_READ_MAX_ITEMS), 0);
    }
    let start = (first - base) as usize;
    let (mut n, mut bytes) = (0u64, 0u64);
    for &s in sizes.range(start..).take(count as usize) {
        if n > 0 && bytes + s > limit {
            break;
        }
        n += 1;
        bytes += s;
    }
    (n, bytes)
}
