//! [`GroupRequest`]: a request for one group, decoded on the IO thread by command code.

use bytes::Bytes;
use dt_codec::{PbError, PbIntCallback, PbParser};

use crate::rpc::{
    AdminCommitOrAbortReq, AdminPrepareConfigChangeReq, AppendReq, InstallSnapshotReq,
    RaftCommands, RaftPing, RpcBody, TransferLeaderReq, VoteReq,
};

/// A decoded request addressed to one group.
#[derive(Debug, Clone)]
pub enum GroupRequest {
    /// RAFT_APPEND_ENTRIES (4).
    Append(AppendReq),
    /// RAFT_PING (41).
    RaftPing(RaftPing),
    /// RAFT_REQUEST_VOTE (42), pre-vote or vote.
    Vote(VoteReq),
    /// RAFT_INSTALL_SNAPSHOT (43).
    InstallSnapshot(InstallSnapshotReq),
    /// RAFT_ADMIN_TRANSFER_LEADER (44), admin → old leader.
    AdminTransferLeader(TransferLeaderReq),
    /// RAFT_TRANSFER_LEADER (45), old leader → new leader.
    TransferLeader(TransferLeaderReq),
    /// RAFT_QUERY_STATUS (46), with the group id.
    QueryStatus(i32),
    /// RAFT_ADMIN_PREPARE_CHANGE (47).
    PrepareChange(AdminPrepareConfigChangeReq),
    /// RAFT_ADMIN_COMMIT_CHANGE (48).
    CommitChange(AdminCommitOrAbortReq),
    /// RAFT_ADMIN_ABORT_CHANGE (49).
    AbortChange(AdminCommitOrAbortReq),
}

impl GroupRequest {
    /// Decodes the body of a group command (`None` for commands that are not group
    /// commands).
    pub fn decode(command: i32, body: &Bytes) -> Option<Result<GroupRequest, PbError>> {
        Some(match command {
            RaftCommands::RAFT_APPEND_ENTRIES => AppendReq::decode(body).map(GroupRequest::Append),
            RaftCommands::RAFT_PING => RaftPing::decode(body).map(GroupRequest::RaftPing),
            RaftCommands::RAFT_REQUEST_VOTE => VoteReq::decode(body).map(GroupRequest::Vote),
            RaftCommands::RAFT_INSTALL_SNAPSHOT => {
                InstallSnapshotReq::decode(body).map(GroupRequest::InstallSnapshot)
            }
            RaftCommands::RAFT_ADMIN_TRANSFER_LEADER => {
                TransferLeaderReq::decode(body).map(GroupRequest::AdminTransferLeader)
            }
            RaftCommands::RAFT_TRANSFER_LEADER => {
                TransferLeaderReq::decode(body).map(GroupRequest::TransferLeader)
            }
            RaftCommands::RAFT_QUERY_STATUS => decode_int(body).map(GroupRequest::QueryStatus),
            RaftCommands::RAFT_ADMIN_PREPARE_CHANGE => {
                AdminPrepareConfigChangeReq::decode(body).map(GroupRequest::PrepareChange)
            }
            RaftCommands::RAFT_ADMIN_COMMIT_CHANGE => {
                AdminCommitOrAbortReq::decode(body).map(GroupRequest::CommitChange)
            }
            RaftCommands::RAFT_ADMIN_ABORT_CHANGE => {
                AdminCommitOrAbortReq::decode(body).map(GroupRequest::AbortChange)
            }
            _ => return None,
        })
    }

    /// The group the request is for.
    pub fn group_id(&self) -> i32 {
        match self {
            GroupRequest::Append(r) => r.group_id,
            GroupRequest::RaftPing(r) => r.group_id,
            GroupRequest::Vote(r) => r.group_id,
            GroupRequest::InstallSnapshot(r) => r.group_id,
            GroupRequest::AdminTransferLeader(r) | GroupRequest::TransferLeader(r) => r.group_id,
            GroupRequest::QueryStatus(g) => *g,
            GroupRequest::PrepareChange(r) => r.group_id,
            GroupRequest::CommitChange(r) | GroupRequest::AbortChange(r) => r.group_id,
        }
    }
}

/// Decodes a single-int body (field 1 fixed32; empty = 0).
pub(crate) fn decode_int(body: &Bytes) -> Result<i32, PbError> {
    let mut p = PbParser::new(PbIntCallback::default());
    match p.parse_whole(body)? {
        dt_codec::ParseStatus::Finished => Ok(p.into_callback().value),
        _ => Err(PbError::invalid("single-int body incomplete")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_codec::{encode, PbInt};
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive as the body of a group command, decoding returns a
        /// request or an error; it never panics.
        #[test]
        fn arbitrary_bodies_never_panic(
            cmd in prop::sample::select(vec![4, 41, 42, 43, 44, 45, 46, 47, 48, 49]),
            body in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let b = Bytes::from(body);
            let r = GroupRequest::decode(cmd, &b).expect("a group command");
            if let Ok(req) = r {
                let _ = req.group_id();
            }
        }
    }

    #[test]
    fn decodes_by_command() {
        let b = encode::to_bytes(&PbInt(7));
        let r = GroupRequest::decode(RaftCommands::RAFT_QUERY_STATUS, &b)
            .unwrap()
            .unwrap();
        assert_eq!(r.group_id(), 7);
        let r = GroupRequest::decode(RaftCommands::RAFT_QUERY_STATUS, &Bytes::new())
            .unwrap()
            .unwrap();
        assert_eq!(r.group_id(), 0);
        let ping = RaftPing {
            group_id: 3,
            node_id: 2,
            members: "1,h:1;".into(),
            ..Default::default()
        };
        let r = GroupRequest::decode(RaftCommands::RAFT_PING, &encode::to_bytes(&ping))
            .unwrap()
            .unwrap();
        assert_eq!(r.group_id(), 3);
        assert!(GroupRequest::decode(RaftCommands::NODE_PING, &Bytes::new()).is_none());
        // A truncated varint is an error, not a panic.
        assert!(GroupRequest::decode(
            RaftCommands::RAFT_REQUEST_VOTE,
            &Bytes::from_static(&[0x08, 0x80])
        )
        .unwrap()
        .is_err());
    }
}
