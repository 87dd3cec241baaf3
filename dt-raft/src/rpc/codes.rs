//! Constants of the Raft RPCs: command codes (`raft.md` §1.1), append codes (§7.2) and
//! log item types (§6.1), named as in the reference. The packet response codes are
//! dt-net's [`CmdCodes`] (§1.2).

pub use dt_net::CmdCodes;
use dt_net::Commands;

/// The Raft command codes (packet header field 2), the reference's `Commands` from 4 and
/// 40 to 56 (those dt-net already names are taken from its [`Commands`]).
#[derive(Debug)]
pub struct RaftCommands;

impl RaftCommands {
    /// AppendEntries, leader → member/observer: [`AppendReq`](super::AppendReq) /
    /// [`AppendResp`](super::AppendResp).
    pub const RAFT_APPEND_ENTRIES: i32 = Commands::RAFT_APPEND_ENTRIES;
    /// Server ↔ server node ping: [`NodePing`](super::NodePing) both ways.
    pub const NODE_PING: i32 = Commands::NODE_PING;
    /// Per-group ping: [`RaftPing`](super::RaftPing) both ways.
    pub const RAFT_PING: i32 = Commands::RAFT_PING;
    /// Pre-vote and vote: [`VoteReq`](super::VoteReq) / [`VoteResp`](super::VoteResp).
    pub const RAFT_REQUEST_VOTE: i32 = Commands::RAFT_REQUEST_VOTE;
    /// Snapshot chunks: [`InstallSnapshotReq`](super::InstallSnapshotReq) /
    /// [`AppendResp`](super::AppendResp).
    pub const RAFT_INSTALL_SNAPSHOT: i32 = Commands::RAFT_INSTALL_SNAPSHOT;
    /// Admin tool → old leader: [`TransferLeaderReq`](super::TransferLeaderReq), empty
    /// response.
    pub const RAFT_ADMIN_TRANSFER_LEADER: i32 = Commands::RAFT_ADMIN_TRANSFER_LEADER;
    /// Old leader → new leader: [`TransferLeaderReq`](super::TransferLeaderReq), empty
    /// response.
    pub const RAFT_TRANSFER_LEADER: i32 = Commands::RAFT_TRANSFER_LEADER;
    /// Group status (leader discovery): group id as [`PbInt`](dt_codec::PbInt) /
    /// [`QueryStatusResp`](super::QueryStatusResp).
    pub const RAFT_QUERY_STATUS: i32 = Commands::RAFT_QUERY_STATUS;
    /// Admin → leader: [`AdminPrepareConfigChangeReq`](super::AdminPrepareConfigChangeReq)
    /// / [`PbLong`](dt_codec::PbLong) prepare index.
    pub const RAFT_ADMIN_PREPARE_CHANGE: i32 = 47;
    /// Admin → leader: [`AdminCommitOrAbortReq`](super::AdminCommitOrAbortReq) /
    /// [`PbLong`](dt_codec::PbLong) commit index.
    pub const RAFT_ADMIN_COMMIT_CHANGE: i32 = 48;
    /// Admin → leader: [`AdminCommitOrAbortReq`](super::AdminCommitOrAbortReq) /
    /// [`PbLong`](dt_codec::PbLong) abort index.
    pub const RAFT_ADMIN_ABORT_CHANGE: i32 = 49;
    /// Admin → server: [`AdminAddNodeReq`](super::AdminAddNodeReq), empty response.
    pub const RAFT_ADMIN_ADD_NODE: i32 = 50;
    /// Admin → server: node id as [`PbInt`](dt_codec::PbInt), empty response.
    pub const RAFT_ADMIN_REMOVE_NODE: i32 = 51;
    /// Admin → server: [`AdminAddGroupReq`](super::AdminAddGroupReq), empty response.
    pub const RAFT_ADMIN_ADD_GROUP: i32 = 52;
    /// Admin → server: group id as [`PbInt`](dt_codec::PbInt), empty response.
    pub const RAFT_ADMIN_REMOVE_GROUP: i32 = 53;
    /// Admin → server: empty request / [`AdminListNodesResp`](super::AdminListNodesResp).
    pub const RAFT_ADMIN_LIST_NODES: i32 = 54;
    /// Admin → server: empty request / [`AdminListGroupsResp`](super::AdminListGroupsResp).
    pub const RAFT_ADMIN_LIST_GROUPS: i32 = 55;
    /// Admin → server: empty request and response (registered by the dist bootstrap only).
    pub const RAFT_ADMIN_SYNC_CONFIG: i32 = 56;

    /// The reference's name of a Raft command code, `None` for other codes.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            4 => "RAFT_APPEND_ENTRIES",
            40 => "NODE_PING",
            41 => "RAFT_PING",
            42 => "RAFT_REQUEST_VOTE",
            43 => "RAFT_INSTALL_SNAPSHOT",
            44 => "RAFT_ADMIN_TRANSFER_LEADER",
            45 => "RAFT_TRANSFER_LEADER",
            46 => "RAFT_QUERY_STATUS",
            47 => "RAFT_ADMIN_PREPARE_CHANGE",
            48 => "RAFT_ADMIN_COMMIT_CHANGE",
            49 => "RAFT_ADMIN_ABORT_CHANGE",
            50 => "RAFT_ADMIN_ADD_NODE",
            51 => "RAFT_ADMIN_REMOVE_NODE",
            52 => "RAFT_ADMIN_ADD_GROUP",
            53 => "RAFT_ADMIN_REMOVE_GROUP",
            54 => "RAFT_ADMIN_LIST_NODES",
            55 => "RAFT_ADMIN_LIST_GROUPS",
            56 => "RAFT_ADMIN_SYNC_CONFIG",
            _ => return None,
        })
    }
}

/// `appendCode` values of [`AppendResp`](super::AppendResp) (the reference's
/// `AppendProcessor.APPEND_*`). The core's [`AppendCode`](crate::core::AppendCode) is the
/// same set as an enum.
#[derive(Debug)]
pub struct AppendCodes;

impl AppendCodes {
    /// Appended.
    pub const APPEND_SUCCESS: i32 = 0;
    /// The previous entry does not match; the suggestion carries the follower's best match.
    pub const APPEND_LOG_NOT_MATCH: i32 = 1;
    /// The leader tried to overwrite committed entries.
    pub const APPEND_PREV_LOG_INDEX_LESS_THAN_LOCAL_COMMIT: i32 = 2;
    /// Smaller term, a leader received an append, or non-contiguous entries.
    pub const APPEND_REQ_ERROR: i32 = 3;
    /// The follower is installing a snapshot.
    pub const APPEND_INSTALL_SNAPSHOT: i32 = 4;
    /// The sender is not a member or prepared member on the receiver.
    pub const APPEND_NOT_MEMBER_IN_GROUP: i32 = 5;
    /// Failure on the follower.
    pub const APPEND_SERVER_ERROR: i32 = 6;

    /// The reference's name of an append code (without the `APPEND_` prefix, as the
    /// golden vectors spell it), `"UNKNOWN"` for other values.
    pub fn name(code: i32) -> &'static str {
        match code {
            0 => "SUCCESS",
            1 => "LOG_NOT_MATCH",
            2 => "PREV_LOG_INDEX_LESS_THAN_LOCAL_COMMIT",
            3 => "REQ_ERROR",
            4 => "INSTALL_SNAPSHOT",
            5 => "NOT_MEMBER_IN_GROUP",
            6 => "SERVER_ERROR",
            _ => "UNKNOWN",
        }
    }
}

/// Log item types (`LogItem.TYPE_*` of the reference, `raft.md` §6.1).
#[derive(Debug)]
pub struct LogItemType;

impl LogItemType {
    /// A state-machine input.
    pub const TYPE_NORMAL: i32 = 0;
    /// A no-op entry.
    pub const TYPE_HEARTBEAT: i32 = 1;
    /// Joint consensus begins; the body is the ASCII configuration string.
    pub const TYPE_PREPARE_CONFIG_CHANGE: i32 = 2;
    /// Joint consensus aborted.
    pub const TYPE_DROP_CONFIG_CHANGE: i32 = 3;
    /// Joint consensus finished.
    pub const TYPE_COMMIT_CONFIG_CHANGE: i32 = 4;
    /// A read-only input.
    pub const TYPE_LOG_READ: i32 = 5;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::AppendCode;
    use dt_net::Commands;

    #[test]
    fn agree_with_dt_net_and_core() {
        assert_eq!(
            RaftCommands::RAFT_APPEND_ENTRIES,
            Commands::RAFT_APPEND_ENTRIES
        );
        assert_eq!(RaftCommands::NODE_PING, Commands::NODE_PING);
        assert_eq!(RaftCommands::RAFT_QUERY_STATUS, Commands::RAFT_QUERY_STATUS);
        assert_eq!(
            RaftCommands::RAFT_ADMIN_TRANSFER_LEADER,
            Commands::RAFT_ADMIN_TRANSFER_LEADER
        );
        for c in [4].into_iter().chain(40..=56) {
            assert!(RaftCommands::name(c).is_some(), "{c}");
        }
        assert_eq!(RaftCommands::name(5), None);
        for c in 0..=6 {
            assert_eq!(AppendCode::from_code(c).unwrap().code(), c);
            assert_ne!(AppendCodes::name(c), "UNKNOWN");
        }
        assert_eq!(
            AppendCode::NotMemberInGroup.code(),
            AppendCodes::APPEND_NOT_MEMBER_IN_GROUP
        );
    }
}
