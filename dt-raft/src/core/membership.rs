//! Applying a configuration (raft.md §11.2 "Applying a configuration"): the driver
//! calls this when it applies a PREPARE / DROP / COMMIT entry (or recovers a
//! snapshot's configuration); the core moves its member sets, progress, quorums and
//! role. Joint consensus itself is the quorum math of [`MemberSets`].

use super::{MemberSets, NodeId, Progress, RaftCore, Role};

impl RaftCore {
    /// Switches to `sets` (the driver has checked the node ids and applied
    /// `disableConfigChange`). Progress is kept by node id; new members start with
    /// nextIndex = lastLogIndex + 1 and are not ready until the driver says so. The
    /// leader is forgotten if it is no longer a voter; the local role follows the
    /// membership (a leader removed from the group becomes `none`, §17 item 14); any
    /// vote round is cancelled.
    ///
    /// Not done here: the reference keeps replicating to dropped nodes for up to 5 s
    /// ("remove legacy"); the driver may do that with its own timer.
    pub fn apply_member_sets(&mut self, now: u64, sets: MemberSets) {
        self.now = self.now.max(now);
        if sets == self.sets {
            return;
        }
        let me = self.cfg.node_id;
        let next = self.last_log_index + 1;
        let mut old = std::mem::take(&mut self.peers);
        let ids: Vec<NodeId> = sets.replicate_list();
        for id in ids {
            let p = match old.iter().position(|p| p.node_id == id) {
                Some(i) => old.swap_remove(i),
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
            self.leader_try_commit();
            self.replicate_all();
        }
    }
}
