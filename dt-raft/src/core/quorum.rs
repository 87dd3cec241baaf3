//! Quorum math of one group, including joint consensus (raft.md §4, §11.1, §17.1).
//!
//! Two quorums exist, and a reimplementation must use exactly these:
//!
//! * the **elect quorum** `floor(N/2)+1`: votes, pre-votes, readiness to campaign;
//! * the **read/write quorum** (`rwQuorum`): `N/2` when N ≥ 4 and N is even, else
//!   `floor(N/2)+1`: commit and lease.
//!
//! Because elect quorum + rwQuorum > N, every elected leader overlaps every commit
//! quorum. While a change is prepared ("joint"), both `members` and
//! `preparedMembers` must satisfy their own quorum.

use super::NodeId;

/// The elect quorum of a configuration of `n` voters: `floor(n/2)+1`.
pub fn elect_quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The read/write quorum of a configuration of `n` voters: `n/2` for even `n ≥ 4`,
/// else `floor(n/2)+1`.
pub fn rw_quorum(n: usize) -> usize {
    if n >= 4 && n.is_multiple_of(2) {
        n / 2
    } else {
        n / 2 + 1
    }
}

/// The four id sets of a group configuration (raft.md §11.1). Outside a change the
/// prepared sets are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSets {
    /// Voting members of the current configuration.
    pub members: Vec<NodeId>,
    /// Observers of the current configuration (replicated to, never counted).
    pub observers: Vec<NodeId>,
    /// Voting members of the prepared (new) configuration; non-empty means joint.
    pub prepared_members: Vec<NodeId>,
    /// Observers of the prepared configuration (not replicated to until commit, §11.6).
    pub prepared_observers: Vec<NodeId>,
}

impl MemberSets {
    /// A plain (non-joint) configuration.
    pub fn new(members: Vec<NodeId>, observers: Vec<NodeId>) -> Self {
        MemberSets {
            members,
            observers,
            prepared_members: Vec::new(),
            prepared_observers: Vec::new(),
        }
    }

    /// True while a change is prepared (preparedMembers non-empty).
    pub fn is_joint(&self) -> bool {
        !self.prepared_members.is_empty()
    }

    /// True if `id` is in members ∪ preparedMembers: it may vote, campaign and send
    /// appends.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.members.contains(&id) || self.prepared_members.contains(&id)
    }

    /// True if `id` is an observer or prepared observer and not a voter.
    pub fn is_observer(&self, id: NodeId) -> bool {
        !self.is_voter(id)
            && (self.observers.contains(&id) || self.prepared_observers.contains(&id))
    }

    /// Calls `f` once for every id of members ∪ preparedMembers.
    pub fn for_each_voter(&self, mut f: impl FnMut(NodeId)) {
        for &id in &self.members {
            f(id);
        }
        for &id in &self.prepared_members {
            if !self.members.contains(&id) {
                f(id);
            }
        }
    }

    /// The replicate list (§11.6): members + observers + preparedMembers, each once;
    /// prepared observers are not in it.
    pub fn replicate_list(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::new();
        self.for_each_replicate(|id| out.push(id));
        out
    }

    /// Calls `f` for each id of the [`replicate_list`](Self::replicate_list), in its
    /// order, without building it.
    pub fn for_each_replicate(&self, mut f: impl FnMut(NodeId)) {
        let sets = [
            &self.members[..],
            &self.observers[..],
            &self.prepared_members[..],
        ];
        for (si, set) in sets.iter().enumerate() {
            for (i, &id) in set.iter().enumerate() {
                if !set[..i].contains(&id) && !sets[..si].iter().any(|s| s.contains(&id)) {
                    f(id);
                }
            }
        }
    }

    /// Whether the [`replicate_list`](Self::replicate_list) names `id`.
    pub fn in_replicate_list(&self, id: NodeId) -> bool {
        self.members.contains(&id)
            || self.observers.contains(&id)
            || self.prepared_members.contains(&id)
    }

    /// True if the ids for which `yes` holds reach the elect quorum of `members` and,
    /// when joint, also the elect quorum of `preparedMembers` (votes, pre-votes,
    /// readiness to campaign).
    pub fn has_elect_quorum(&self, yes: impl Fn(NodeId) -> bool) -> bool {
        let count = |set: &[NodeId]| set.iter().filter(|&&id| yes(id)).count();
        if count(&self.members) < elect_quorum(self.members.len()) {
            return false;
        }
        !self.is_joint()
            || count(&self.prepared_members) >= elect_quorum(self.prepared_members.len())
    }

    /// The highest value that an rwQuorum of `members` (and, when joint, of
    /// `preparedMembers`) has reached: the rwQuorum-th largest value of each set,
    /// the smaller of the two when joint. Used for the commit index (with matchIndex)
    /// and for the lease start (with lastConfirmReqNanos). Returns 0 for an empty
    /// member set. `scratch` is a reusable buffer.
    pub fn quorum_value(&self, value: impl Fn(NodeId) -> u64, scratch: &mut Vec<u64>) -> u64 {
        let v = kth_largest(&self.members, &value, scratch);
        if self.is_joint() {
            v.min(kth_largest(&self.prepared_members, &value, scratch))
        } else {
            v
        }
    }
}

/// The rwQuorum-th largest `value(id)` over `set`, 0 if `set` is empty.
fn kth_largest(set: &[NodeId], value: &impl Fn(NodeId) -> u64, scratch: &mut Vec<u64>) -> u64 {
    if set.is_empty() {
        return 0;
    }
    scratch.clear();
    scratch.extend(set.iter().map(|&id| value(id)));
    scratch.sort_unstable_by(|a, b| b.cmp(a));
    scratch[rw_quorum(set.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s17_1_two_quorums_rw_quorum_is_half_for_even_n_from_4() {
        let expect = [
            (1, 1, 1),
            (2, 2, 2),
            (3, 2, 2),
            (4, 3, 2),
            (5, 3, 3),
            (6, 4, 3),
            (7, 4, 4),
            (8, 5, 4),
        ];
        for (n, eq, rw) in expect {
            assert_eq!(elect_quorum(n), eq, "elect quorum of {n}");
            assert_eq!(rw_quorum(n), rw, "rw quorum of {n}");
            assert!(eq + rw > n, "elect and rw quorums of {n} must overlap");
        }
    }

    fn match_of(pairs: &[(NodeId, u64)]) -> impl Fn(NodeId) -> u64 + '_ {
        move |id| pairs.iter().find(|p| p.0 == id).map(|p| p.1).unwrap_or(0)
    }

    #[test]
    fn s17_1_commit_of_four_members_needs_only_two_copies() {
        let sets = MemberSets::new(vec![1, 2, 3, 4], vec![]);
        let m = [(1, 10), (2, 7), (3, 3), (4, 1)];
        assert_eq!(sets.quorum_value(match_of(&m), &mut Vec::new()), 7);
        let sets = MemberSets::new(vec![1, 2, 3], vec![]);
        let m = [(1, 10), (2, 7), (3, 3)];
        assert_eq!(sets.quorum_value(match_of(&m), &mut Vec::new()), 7);
        let sets = MemberSets::new(vec![1, 2, 3, 4, 5], vec![]);
        let m = [(1, 10), (2, 7), (3, 3), (4, 9), (5, 1)];
        assert_eq!(sets.quorum_value(match_of(&m), &mut Vec::new()), 7);
    }

    #[test]
    fn s11_1_joint_commit_needs_both_rw_quorums() {
        let sets = MemberSets {
            members: vec![1, 2, 3],
            observers: vec![],
            prepared_members: vec![3, 4, 5],
            prepared_observers: vec![],
        };
        // old config has 1,2 at 10; new config only 3 at 10 (4, 5 behind)
        let m = [(1, 10), (2, 10), (3, 10), (4, 2), (5, 4)];
        assert_eq!(sets.quorum_value(match_of(&m), &mut Vec::new()), 4);
        // once 4 catches up both quorums hold index 10
        let m = [(1, 10), (2, 10), (3, 10), (4, 10), (5, 4)];
        assert_eq!(sets.quorum_value(match_of(&m), &mut Vec::new()), 10);
    }

    #[test]
    fn s11_1_joint_election_needs_both_elect_quorums() {
        let sets = MemberSets {
            members: vec![1, 2, 3],
            observers: vec![9],
            prepared_members: vec![3, 4, 5, 6],
            prepared_observers: vec![],
        };
        // 1, 2, 3: quorum of old (2/3) but only one of new (needs 3/4)
        assert!(!sets.has_elect_quorum(|id| [1, 2, 3].contains(&id)));
        assert!(!sets.has_elect_quorum(|id| [1, 3, 4].contains(&id)));
        assert!(sets.has_elect_quorum(|id| [1, 3, 4, 5].contains(&id)));
        // observers never count
        assert!(!sets.has_elect_quorum(|id| [1, 9, 4, 5].contains(&id)));
    }

    #[test]
    fn observers_are_not_voters_and_prepared_observers_not_replicated_to() {
        let sets = MemberSets {
            members: vec![1, 2, 3],
            observers: vec![4],
            prepared_members: vec![1, 2, 5],
            prepared_observers: vec![6],
        };
        assert!(sets.is_voter(5) && !sets.is_voter(4) && !sets.is_voter(6));
        assert!(sets.is_observer(4) && sets.is_observer(6) && !sets.is_observer(1));
        assert_eq!(sets.replicate_list(), vec![1, 2, 3, 4, 5]);
        let mut voters = Vec::new();
        sets.for_each_voter(|id| voters.push(id));
        assert_eq!(voters, vec![1, 2, 3, 5]);
    }

    #[test]
    fn empty_member_set_has_quorum_value_zero() {
        let sets = MemberSets::default();
        assert_eq!(sets.quorum_value(|_| 5, &mut Vec::new()), 0);
    }
}
