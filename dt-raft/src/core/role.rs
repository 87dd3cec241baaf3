//! Roles of a node in one group (raft.md §4).

/// The role of the local node in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Leads the group: accepts proposals, replicates, commits.
    Leader,
    /// A member (or prepared member) following a leader or waiting to campaign.
    Follower,
    /// A member that has won a pre-vote and asked for votes in a new term.
    Candidate,
    /// In observers or prepared observers: replicated to, never votes or campaigns.
    Observer,
    /// In none of the four sets: accepts appends from a valid leader, nothing else.
    None,
}

impl Role {
    /// True for roles that vote and campaign (leader, follower, candidate).
    pub fn is_voting(self) -> bool {
        matches!(self, Role::Leader | Role::Follower | Role::Candidate)
    }
}
