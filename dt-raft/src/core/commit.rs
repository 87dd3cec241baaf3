//! Commit (raft.md §8.1, §8.2): the leader commits by the rwQuorum of persisted
//! matchIndex, only entries of its own term; the follower follows leaderCommit up to
//! its persisted index.

use super::{Action, Index, RaftCore};

impl RaftCore {
    /// `leaderTryCommit`: the highest index an rwQuorum of members (and of prepared
    /// members when joint) has persisted, bounded by the leader's own persisted index.
    /// A new quorum index refreshes the election timer and self's lease confirm; it
    /// becomes the commit index only from the first index of the current term on
    /// (§17 item 10).
    pub(super) fn leader_try_commit(&mut self) {
        let peers = std::mem::take(&mut self.peers);
        let m = self.leader_quorum_value(|id| {
            peers
                .iter()
                .find(|p| p.node_id == id)
                .map_or(0, |p| p.match_index)
        });
        self.peers = peers;
        let me = self.cfg.node_id;
        let m = if self.possible_voter(me) {
            m.min(self.persisted_index)
        } else {
            m
        };
        if m <= self.commit_index {
            return;
        }
        self.restart_elect_timer();
        let now = self.now;
        if let Some(i) = self.peer_index(me) {
            self.peers[i].last_confirm = now;
        }
        // DELIBERATE BUG (feature sim-bugs, simulation self-test only): count replicas
        // of older-term entries too.
        #[cfg(feature = "sim-bugs")]
        let old_term_bug = crate::sim::bugs::is_active(crate::sim::bugs::Bug::CommitOldTerm);
        #[cfg(not(feature = "sim-bugs"))]
        let old_term_bug = false;
        if m >= self.group_ready_index || old_term_bug {
            self.commit_index = m;
            self.record_commit(m);
            self.trim_tail_bytes();
            self.actions.push(Action::Apply { commit_index: m });
            // propagate the new commit index
            self.replicate_all();
        }
    }

    /// Forgets the sizes of committed entries every peer has been sent (and, beyond
    /// the reference's maxCacheTasks, of committed ones anyway: later sends of
    /// them count as log reads).
    fn trim_tail_bytes(&mut self) {
        const MAX_TRACKED: usize = 100_000;
        let min_next = self
            .peers
            .iter()
            .filter(|p| !p.is_self)
            .map(|p| p.next_index)
            .min()
            .unwrap_or(Index::MAX);
        while !self.tail_bytes.is_empty() && self.tail_base <= self.commit_index {
            if self.tail_base >= min_next && self.tail_bytes.len() <= MAX_TRACKED {
                break;
            }
            self.tail_bytes.pop_front();
            self.tail_base += 1;
        }
    }

    /// Follower: commitIndex := min(leaderCommit, persisted index) when larger.
    pub(super) fn follower_commit(&mut self) {
        let c = self.leader_commit.min(self.persisted_index);
        if c > self.commit_index {
            self.commit_index = c;
            self.record_commit(c);
            self.actions.push(Action::Apply { commit_index: c });
        }
    }
}
