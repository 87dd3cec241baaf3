//! [`NioRaftTransport`]: the driver's [`RaftTransport`] over the server's replicate
//! [`NioClient`]: node ids resolve to client peers through the [`NodeManager`], bodies
//! are the [`crate::rpc`] wire structs, answers are decoded on the client's IO thread and
//! converted to the core's structs.
//!
//! The node-id → peer mapping is cached per transport (one per group, used on the
//! group's thread) and re-read only when the node manager's version changed, so a send
//! takes no lock of the node table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dt_codec::PbError;
use dt_net::{NetError, NioClient, PeerId, ReadPacket, RpcHandler, WriteBody, WritePacket};

use super::append_replies::AppendReplies;
use super::node::NodeManager;
use crate::core::{AppendResp, NodeId, TransferReq, VoteReq, VoteResp};
use crate::driver::{RaftTransport, RpcError, RpcFuture};
use crate::rpc::{self, RaftCommands, RpcBody};

/// Sends one group's Raft requests to other nodes through the replicate client.
pub struct NioRaftTransport {
    nodes: NodeManager,
    client: Arc<NioClient>,
    timeout: Duration,
    cache: RefCell<(u64, HashMap<NodeId, PeerId>)>,
    /// The answers of this group's appends (no oneshot or boxed callback per append).
    replies: Arc<AppendReplies>,
    /// `replies` as the client's handler.
    handler: Arc<dyn RpcHandler>,
}

impl std::fmt::Debug for NioRaftTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NioRaftTransport(self={})", self.nodes.self_id())
    }
}

impl NioRaftTransport {
    /// A transport over `nodes`' client; the client gives up on a request after
    /// `timeout` (the driver gives up at its own rpcTimeout before).
    pub fn new(nodes: NodeManager, timeout: Duration) -> Self {
        let replies = Arc::new(AppendReplies::default());
        NioRaftTransport {
            client: nodes.client().clone(),
            nodes,
            timeout,
            cache: RefCell::new((u64::MAX, HashMap::new())),
            handler: replies.clone(),
            replies,
        }
    }

    fn peer(&self, to: NodeId) -> Result<PeerId, RpcError> {
        let v = self.nodes.version();
        let mut c = self.cache.borrow_mut();
        if c.0 != v {
            c.1.clear();
            c.0 = v;
        }
        if let Some(p) = c.1.get(&to) {
            return Ok(*p);
        }
        let id = i32::try_from(to).map_err(|_| RpcError::NotConnected(format!("node {to}")))?;
        let p = self
            .nodes
            .peer_of(id)
            .ok_or_else(|| RpcError::NotConnected(format!("unknown node {to}")))?;
        c.1.insert(to, p);
        Ok(p)
    }

    fn call<T: Send + 'static>(
        &self,
        to: NodeId,
        cmd: i32,
        body: WriteBody,
        decode: fn(ReadPacket) -> Result<T, RpcError>,
    ) -> RpcFuture<T> {
        let peer = match self.peer(to) {
            Ok(p) => p,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let f = self.client.call(
            Some(peer),
            WritePacket::request(cmd, body),
            self.timeout,
            move |p| decode(p).map_err(|e| NetError::Decode(e.to_string())),
        );
        Box::pin(async move { f.await.map_err(net_error) })
    }
}

/// Maps a client error to the driver's [`RpcError`].
pub fn net_error(e: NetError) -> RpcError {
    match e {
        NetError::Timeout { .. } => RpcError::Timeout,
        NetError::Remote { code, msg } => RpcError::Remote { code, message: msg },
        NetError::Stopped => RpcError::Stopped,
        NetError::Decode(s) => RpcError::BadResponse(s),
        NetError::ConnectionClosed(s) | NetError::Connect(s) => RpcError::NotConnected(s),
        other => RpcError::NotConnected(other.to_string()),
    }
}

fn bad(e: PbError) -> RpcError {
    RpcError::BadResponse(e.to_string())
}

fn decode_vote(p: ReadPacket) -> Result<VoteResp, RpcError> {
    let r = rpc::VoteResp::decode(&p.body).map_err(bad)?;
    VoteResp::try_from(&r).map_err(bad)
}

pub(super) fn decode_append(p: ReadPacket) -> Result<AppendResp, RpcError> {
    let r = rpc::AppendResp::decode(&p.body).map_err(bad)?;
    AppendResp::try_from(&r).map_err(bad)
}

fn decode_empty(_p: ReadPacket) -> Result<(), RpcError> {
    Ok(())
}

fn decode_status(p: ReadPacket) -> Result<rpc::QueryStatusResp, RpcError> {
    rpc::QueryStatusResp::decode(&p.body).map_err(bad)
}

impl RaftTransport for NioRaftTransport {
    fn send_vote(&self, to: NodeId, group_id: i32, req: VoteReq) -> RpcFuture<VoteResp> {
        let body = rpc::VoteReq::from_core(group_id, &req);
        self.call(
            to,
            RaftCommands::RAFT_REQUEST_VOTE,
            WriteBody::Encodable(Box::new(body)),
            decode_vote,
        )
    }

    fn send_append(&self, to: NodeId, req: rpc::AppendReq) -> RpcFuture<AppendResp> {
        // the hot path: answered through the slot table, decoded on the IO thread
        let reply = self.replies.open();
        match self.peer(to) {
            Ok(peer) => self.client.send_request_handler(
                Some(peer),
                WritePacket::request(
                    RaftCommands::RAFT_APPEND_ENTRIES,
                    WriteBody::Encodable(Box::new(req)),
                ),
                self.timeout,
                &self.handler,
                reply.token(),
            ),
            Err(e) => self.replies.fail(&reply, e),
        }
        Box::pin(reply)
    }

    fn send_transfer_leader(&self, to: NodeId, group_id: i32, req: TransferReq) -> RpcFuture<()> {
        let body = rpc::TransferLeaderReq::from_core(group_id, &req);
        self.call(
            to,
            RaftCommands::RAFT_TRANSFER_LEADER,
            WriteBody::Encodable(Box::new(body)),
            decode_empty,
        )
    }

    fn query_status(&self, to: NodeId, group_id: i32) -> RpcFuture<rpc::QueryStatusResp> {
        self.call(
            to,
            RaftCommands::RAFT_QUERY_STATUS,
            WriteBody::Encodable(Box::new(dt_codec::PbInt(group_id))),
            decode_status,
        )
    }

    fn send_install_snapshot(
        &self,
        to: NodeId,
        req: rpc::InstallSnapshotReq,
    ) -> RpcFuture<AppendResp> {
        self.call(
            to,
            RaftCommands::RAFT_INSTALL_SNAPSHOT,
            WriteBody::Encodable(Box::new(req)),
            decode_append,
        )
    }
}
