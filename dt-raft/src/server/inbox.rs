//! Delivery of decoded requests to a group's [`GroupInbox`] (the driver's inbound seam),
//! and the translation of the group's replies into response packets (`raft.md` §1.2:
//! not-init → RAFT_GROUP_NOT_INIT, stopped → RAFT_GROUP_STOPPED, refusals → SYS_ERROR
//! with the reason).

use dt_net::{CmdCodes, ReqContext, Responder, WriteBody, WritePacket};

use super::inbound::GroupRequest;
use crate::core::{TransferError, TransferReq, VoteRefused, VoteReq};
use crate::driver::{GroupInbox, InboundError};
use crate::rpc;

/// The response packet of an inbound error.
pub fn inbound_error_packet(group_id: i32, e: &InboundError) -> WritePacket {
    match e {
        InboundError::GroupStopped => WritePacket::error(
            CmdCodes::RAFT_GROUP_STOPPED,
            format!("raft group is stopped: {group_id}"),
        ),
        InboundError::GroupNotInit => WritePacket::error(
            CmdCodes::RAFT_GROUP_NOT_INIT,
            format!("raft group not initialized: {group_id}"),
        ),
        InboundError::Invalid(m) => WritePacket::error(CmdCodes::SYS_ERROR, m.clone()),
    }
}

/// The reference's text of a refused vote.
pub fn vote_refused_text(r: VoteRefused) -> &'static str {
    match r {
        VoteRefused::UnknownCandidate => "receive vote request from unknown member",
        VoteRefused::NotMember => "current node is not members",
    }
}

/// A text for a refused or failed transfer.
pub fn transfer_error_text(e: &TransferError) -> String {
    match e {
        TransferError::InProgress => "transfer leader in progress".into(),
        TransferError::NotLeader(Some(l)) => format!("not leader, current leader is {l}"),
        TransferError::NotLeader(None) => "not leader".into(),
        TransferError::NodeNotFound => "nodeId not found".into(),
        TransferError::Timeout => "transfer leader timeout".into(),
        TransferError::ConfigNotMatch => "config not match".into(),
        other => format!("transfer leader refused: {other:?}"),
    }
}

fn encodable(e: impl dt_codec::Encodable + Send + 'static) -> WritePacket {
    WritePacket::response(WriteBody::Encodable(Box::new(e)))
}

/// Hands `req` to the group behind `inbox`; the answer is written through `ctx` when the
/// group replies (on its thread). Requests the inbox does not take are answered at once
/// (returned). A request whose values the core cannot represent (a negative term or
/// index) is answered SYS_ERROR without reaching the group.
pub fn deliver_to_inbox(
    inbox: &GroupInbox,
    req: GroupRequest,
    ctx: ReqContext,
) -> Option<WritePacket> {
    let gid = inbox.group_id();
    match req {
        GroupRequest::Vote(r) => {
            let core = match VoteReq::try_from(&r) {
                Ok(c) => c,
                Err(e) => return Some(WritePacket::error(CmdCodes::SYS_ERROR, e.to_string())),
            };
            let resp: Responder = ctx.responder();
            inbox.vote(
                core,
                Box::new(move |r| {
                    resp.respond(match r {
                        Ok(Ok(v)) => encodable(rpc::VoteResp::from(&v)),
                        Ok(Err(refused)) => {
                            WritePacket::error(CmdCodes::SYS_ERROR, vote_refused_text(refused))
                        }
                        Err(e) => inbound_error_packet(gid, &e),
                    })
                }),
            );
            None
        }
        GroupRequest::Append(r) => {
            let resp = ctx.responder();
            inbox.append(
                r,
                Box::new(move |r| {
                    resp.respond(match r {
                        Ok(a) => encodable(rpc::AppendResp::from(&a)),
                        Err(e) => inbound_error_packet(gid, &e),
                    })
                }),
            );
            None
        }
        GroupRequest::TransferLeader(r) => {
            let core = match TransferReq::try_from(&r) {
                Ok(c) => c,
                Err(e) => return Some(WritePacket::error(CmdCodes::SYS_ERROR, e.to_string())),
            };
            let resp = ctx.responder();
            inbox.transfer_leader(
                core,
                Box::new(move |r| {
                    resp.respond(match r {
                        Ok(Ok(())) => WritePacket::response(WriteBody::Empty),
                        Ok(Err(e)) => {
                            WritePacket::error(CmdCodes::SYS_ERROR, transfer_error_text(&e))
                        }
                        Err(e) => inbound_error_packet(gid, &e),
                    })
                }),
            );
            None
        }
        GroupRequest::QueryStatus(_) => {
            let resp = ctx.responder();
            inbox.query_status(Box::new(move |r| {
                resp.respond(match r {
                    Ok(s) => encodable(s),
                    Err(e) => inbound_error_packet(gid, &e),
                })
            }));
            None
        }
        other => Some(WritePacket::error(
            CmdCodes::SYS_ERROR,
            format!(
                "command {} is not supported by this server yet",
                command_name(&other)
            ),
        )),
    }
}

fn command_name(r: &GroupRequest) -> &'static str {
    match r {
        GroupRequest::Append(_) => "RAFT_APPEND_ENTRIES",
        GroupRequest::RaftPing(_) => "RAFT_PING",
        GroupRequest::Vote(_) => "RAFT_REQUEST_VOTE",
        GroupRequest::InstallSnapshot(_) => "RAFT_INSTALL_SNAPSHOT",
        GroupRequest::AdminTransferLeader(_) => "RAFT_ADMIN_TRANSFER_LEADER",
        GroupRequest::TransferLeader(_) => "RAFT_TRANSFER_LEADER",
        GroupRequest::QueryStatus(_) => "RAFT_QUERY_STATUS",
        GroupRequest::PrepareChange(_) => "RAFT_ADMIN_PREPARE_CHANGE",
        GroupRequest::CommitChange(_) => "RAFT_ADMIN_COMMIT_CHANGE",
        GroupRequest::AbortChange(_) => "RAFT_ADMIN_ABORT_CHANGE",
    }
}
