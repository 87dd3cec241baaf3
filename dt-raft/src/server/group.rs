//! [`ServerGroup`]: what the server needs from one Raft group to route requests to it,
//! and the group's four membership sets ([`MemberIds`]).

use std::sync::Arc;

use dt_net::{ReqContext, WritePacket};

use super::inbound::GroupRequest;

/// Where a group is in its life (what the request checks of `raft.md` §2 look at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// Created, init not finished: requests other than QUERY_STATUS get
    /// RAFT_GROUP_NOT_INIT.
    NotInit,
    /// Init finished: requests are served.
    Running,
    /// Stopping or stopped: requests get RAFT_GROUP_STOPPED.
    Stopping,
}

/// The four membership sets of a group (node ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberIds {
    /// Voting members.
    pub members: Vec<i32>,
    /// Observers (replicated to, not voting).
    pub observers: Vec<i32>,
    /// Members of the prepared (joint) configuration.
    pub prepared_members: Vec<i32>,
    /// Observers of the prepared configuration.
    pub prepared_observers: Vec<i32>,
}

impl MemberIds {
    /// The four sets, for use counts.
    pub fn sets(&self) -> [&[i32]; 4] {
        [
            &self.members,
            &self.observers,
            &self.prepared_members,
            &self.prepared_observers,
        ]
    }
}

/// One Raft group as the server sees it: its id, state, membership, and the door through
/// which the IO threads hand it decoded requests.
///
/// Implemented over the group's fiber driver; every method is called from IO or admin
/// threads and must not block.
pub trait ServerGroup: Send + Sync + 'static {
    /// The group id.
    fn group_id(&self) -> i32;

    /// The group's state now.
    fn state(&self) -> GroupState;

    /// The membership sets now (RAFT_PING answers, node use counts).
    fn member_ids(&self) -> MemberIds;

    /// Nodes the group replicates to besides its sets' replicate list (members of
    /// configurations its log holds but has not applied); the raft ping checks them
    /// too. None by default.
    fn log_config_nodes(&self) -> Vec<i32> {
        Vec::new()
    }

    /// A token of the state [`ServerGroup::member_ids`] and
    /// [`ServerGroup::log_config_nodes`] are read from: while a later call returns the
    /// same token (`Arc::ptr_eq`), both answers are unchanged, and the raft ping reuses
    /// what it derived from them instead of asking again every round. `None` (the
    /// default): unknown, ask every round.
    fn membership_token(&self) -> Option<MembershipToken> {
        None
    }

    /// Hands a decoded request to the group; the group answers through `ctx` (now or
    /// later), or returns the answer at once.
    fn deliver(&self, req: GroupRequest, ctx: ReqContext) -> Option<WritePacket>;

    /// The group's `raftPingCheck` (0 none, 1 compare ids, 2 also host:port).
    fn raft_ping_check(&self) -> i32 {
        0
    }

    /// The raft ping's verdict on member `node` changed (§3.2): only ready members get
    /// pre-votes and replication. Called from the server's threads; must not block.
    fn set_member_ready(&self, node: i32, ready: bool) {
        let _ = (node, ready);
    }
}

/// A shared group.
pub type GroupRef = Arc<dyn ServerGroup>;

/// See [`ServerGroup::membership_token`]: compared by pointer, held so that its address
/// cannot be reused by a later state while compared.
pub type MembershipToken = Arc<dyn std::any::Any + Send + Sync>;
