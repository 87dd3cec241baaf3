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

/// A response of `e`: small ones (an append or vote answer) inline in the packet, no
/// box ([`WriteBody::of`]).
fn encodable(e: impl dt_codec::Encodable + Send + 'static) -> WritePacket {
    WritePacket::response(WriteBody::of(e))
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
        GroupRequest::InstallSnapshot(r) => {
            let resp = ctx.responder();
            inbox.install_snapshot(
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

/// The response packet of a failed Raft-backed request (`raft.md` §1.2, the reference's
/// `RaftProcessor` error writer): a timeout gets no response at all (`None`: the client
/// times out by itself); flow control → FLOW_CONTROL; not leader → NOT_RAFT_LEADER with
/// the leader's id in `extra` (ASCII decimal, absent when unknown); a stopped group →
/// RAFT_GROUP_STOPPED; anything else → SYS_ERROR. `msg` is the error text.
pub fn raft_error_packet(e: &crate::sm::RaftError) -> Option<WritePacket> {
    use crate::sm::RaftError;
    let msg = e.to_string();
    Some(match e {
        RaftError::Timeout => return None,
        RaftError::FlowControl { .. } => WritePacket::error(CmdCodes::FLOW_CONTROL, msg),
        RaftError::NotLeader { leader } => {
            let mut p = WritePacket::error(CmdCodes::NOT_RAFT_LEADER, msg);
            p.extra = leader.map(|l| bytes::Bytes::from(l.to_string()));
            p
        }
        RaftError::Stopped | RaftError::Rejected(_) => {
            WritePacket::error(CmdCodes::RAFT_GROUP_STOPPED, msg)
        }
        RaftError::NotInitialized(_) => WritePacket::error(CmdCodes::RAFT_GROUP_NOT_INIT, msg),
        _ => WritePacket::error(CmdCodes::SYS_ERROR, msg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::RaftError;

    #[test]
    fn raft_errors_map_to_the_spec_codes() {
        assert!(raft_error_packet(&RaftError::Timeout).is_none());
        let p = raft_error_packet(&RaftError::NotLeader { leader: Some(12) }).unwrap();
        assert_eq!(p.resp_code, CmdCodes::NOT_RAFT_LEADER);
        assert_eq!(p.extra.as_deref(), Some(&b"12"[..]));
        let p = raft_error_packet(&RaftError::NotLeader { leader: None }).unwrap();
        assert_eq!(p.extra, None);
        let p = raft_error_packet(&RaftError::FlowControl {
            pending_tasks: 1,
            pending_bytes: 2,
        })
        .unwrap();
        assert_eq!(p.resp_code, CmdCodes::FLOW_CONTROL);
        assert_eq!(
            raft_error_packet(&RaftError::Stopped).unwrap().resp_code,
            CmdCodes::RAFT_GROUP_STOPPED
        );
        assert_eq!(
            raft_error_packet(&RaftError::LogTruncated)
                .unwrap()
                .resp_code,
            CmdCodes::SYS_ERROR
        );
        assert_eq!(
            vote_refused_text(VoteRefused::NotMember),
            "current node is not members"
        );
    }
}
