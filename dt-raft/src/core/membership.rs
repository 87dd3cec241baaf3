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
        let mut old = std::mem::take(&mut self.peers);
        self.sets = sets;
        // the applied configuration's replicate list and the nodes configurations of
        // the log not applied yet name (replication_targets)
        for id in self.replication_targets() {
            let p = match old.iter().position(|p| p.node_id == id) {
                Some(i) => {
                    let mut p = old.swap_remove(i);
                    p.remove_legacy = None;
                    p
                }
                None => self.new_progress(id),
            };
            self.peers.push(p);
        }
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

    /// Progress for a node the core starts tracking: nextIndex = lastLogIndex + 1,
    /// ready per the last verdict the driver gave for it
    /// ([`set_member_ready`](Self::set_member_ready)), not ready without one.
    pub(super) fn new_progress(&self, id: NodeId) -> Progress {
        let me = self.cfg.node_id;
        let mut p = Progress::new(id, id == me);
        p.next_index = self.last_log_index + 1;
        if id == me {
            p.match_index = self.persisted_index;
        } else if self.verdict(id) == Some(true) {
            p.ready = true;
            p.running = true;
            p.restart_at = self.now;
        }
        p
    }

    /// The last readiness verdict the driver gave for `id`, if any.
    pub(super) fn verdict(&self, id: NodeId) -> Option<bool> {
        self.verdicts.iter().find(|v| v.0 == id).map(|v| v.1)
    }

    /// Whether `id` counts as ready for a campaign: self always; a node of the
    /// applied configuration per its progress; a node only configurations of the log
    /// not applied yet name per its last verdict, ready when there is none (the driver
    /// may not ping it).
    pub(super) fn counts_ready(&self, id: NodeId) -> bool {
        if id == self.cfg.node_id {
            return true;
        }
        if self.sets.in_replicate_list(id) {
            return self.progress(id).is_some_and(|p| p.ready);
        }
        self.verdict(id).unwrap_or(true)
    }

    /// Keeps progress for exactly the nodes of [`replication_targets`](Self::replication_targets)
    /// (and those in "remove legacy"): adds the missing ones (a leader starts
    /// replicating to them at once when they are ready); drops the others except on a
    /// leader, where a node leaves when the entry that leaves it out is applied
    /// ([`apply_sets`](Self::apply_sets)).
    pub(super) fn sync_peers(&mut self) {
        // kept between calls: the driver calls this whenever the configuration
        // entries of the log change
        let mut ids = std::mem::take(&mut self.targets_scratch);
        self.replication_targets_into(&mut ids);
        for &id in &ids {
            if self.peer_index(id).is_none() {
                let p = self.new_progress(id);
                self.peers.push(p);
                let i = self.peers.len() - 1;
                self.replicate_peer(i);
            }
        }
        if self.role != Role::Leader {
            self.peers
                .retain(|p| p.is_self || p.remove_legacy.is_some() || ids.contains(&p.node_id));
        }
        self.targets_scratch = ids;
    }
}
