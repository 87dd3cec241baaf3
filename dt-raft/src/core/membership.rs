//! Applying a configuration (raft.md §11.2 "Applying a configuration"): the driver
//! calls this when it applies a PREPARE / DROP / COMMIT entry (or recovers a
//! snapshot's configuration); the core moves its member sets, progress, quorums and
//! role. Joint consensus itself is the quorum math of [`MemberSets`]; the entries and
//! the admin side are in `config_change`.

use super::config_change::{same_sets, REMOVE_LEGACY_MS};
use super::{Index, MemberSets, NodeId, Progress, RaftCore, Role};

impl RaftCore {
    /// Switches to `sets` (the driver has checked the node ids and applied
    /// `disableConfigChange`). Progress is kept by node id; new members start with
    /// nextIndex = lastLogIndex + 1 and are not ready until the driver says so. The
    /// leader is forgotten if it is no longer a voter; the local role follows the
    /// membership (a leader removed from the group becomes `none`, §17 item 14); any
    /// vote round is cancelled. Sets holding the same ids in another order are the
    /// same configuration (no-op).
    ///
    /// On a leader that stays leader, nodes leaving the replicate list keep being
    /// replicated to ("remove legacy") until they have the current commit index
    /// persisted and acknowledged, or [`REMOVE_LEGACY_MS`] pass;
    /// [`apply_config_entry`](Self::apply_config_entry) uses the entry's own index.
    pub fn apply_member_sets(&mut self, now: u64, sets: MemberSets) {
        self.now = self.now.max(now);
        self.apply_sets(sets, self.commit_index);
    }

    /// [`apply_member_sets`](Self::apply_member_sets) with the index a removed node
    /// must reach before its legacy replication stops.
    pub(super) fn apply_sets(&mut self, sets: MemberSets, change_index: Index) {
        if same_sets(&sets, &self.sets) {
            return;
        }
        let me = self.cfg.node_id;
        let next = self.last_log_index + 1;
        let mut old = std::mem::take(&mut self.peers);
        let ids: Vec<NodeId> = sets.replicate_list();
        for id in ids {
            let p = match old.iter().position(|p| p.node_id == id) {
                Some(i) => {
                    let mut p = old.swap_remove(i);
                    p.remove_legacy = None;
                    p
                }
                None => {
                    let mut p = Progress::new(id, id == me);
                    p.next_index = next;
                    if id == me {
                        p.match_index = self.persisted_index;
                    }
                    p
                }
            };
            self.peers.push(p);
        }
        self.sets = sets;
        if self.leader.is_some_and(|l| !self.sets.is_voter(l)) {
            self.leader = None;
        }
        self.cancel_vote();
        let role = if self.sets.is_voter(me) {
            match self.role {
                Role::Leader | Role::Follower => self.role,
                _ => Role::Follower,
            }
        } else if self.sets.is_observer(me) {
            Role::Observer
        } else {
            Role::None
        };
        if role != self.role {
            self.reset(false);
            if role == Role::Observer || role == Role::None {
                self.group_ready = false;
            }
            self.set_role(role);
        }
        if self.role == Role::Leader {
            // §11.2 step 8: keep replicating to the nodes that left, for a while
            let deadline = self.now + REMOVE_LEGACY_MS;
            for mut p in old {
                if p.is_self || (p.remove_legacy.is_none() && !p.ready) {
                    continue;
                }
                if p.remove_legacy.is_none() {
                    p.remove_legacy = Some((change_index, deadline));
                }
                self.peers.push(p);
            }
            self.check_legacy();
            self.leader_try_commit();
            self.replicate_all();
        }
    }
}
