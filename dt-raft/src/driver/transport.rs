//! The network seam of a group: [`RaftTransport`] for requests this node sends, and
//! [`GroupInbox`] for requests it receives.
//!
//! # Outbound: [`RaftTransport`]
//!
//! The driver calls the transport on the group's dispatcher thread and awaits the
//! returned [`RpcFuture`] from a fiber. The contract:
//!
//! * The request is handed to the network **when the method is called**, not when the
//!   future is first polled: the driver pipelines appends to one peer (it calls
//!   `send_append` several times before awaiting the first answer) and awaits the
//!   answers in send order. Requests to one peer should travel in call order (one
//!   connection), though Raft stays correct if they do not.
//! * The future resolves exactly once, with the decoded response or an [`RpcError`];
//!   it may be completed from any thread through its waker (a real client completes it
//!   on an IO thread), or on the same thread (a simulated network).
//! * The transport needs no timeout of its own: the driver gives up on every request
//!   after `rpcTimeout` and drops the future (dropping must be harmless; a late answer
//!   is discarded).
//! * A refused vote (the peer answered SYS_ERROR) is [`RpcError::Remote`].
//!
//! A real implementation wraps dt-net's client: encode with the [`crate::rpc`] bodies
//! (e.g. `rpc::AppendReq` is already the wire struct), decode the answer and convert
//! with the `TryFrom` impls to the [`crate::core`] structs. [`super::local`] has an
//! in-memory implementation for tests and simulations.
//!
//! # Inbound: [`GroupInbox`]
//!
//! A `Send + Sync + Clone` handle of one group that a network layer (RaftServer's
//! request processors on IO threads) or a simulated network (on the dispatcher thread)
//! uses to deliver a decoded request. Each method takes the request and a
//! [`Responder`], a `Send` callback that the group calls exactly once, on its own
//! thread, with the reply or an [`InboundError`] (a network layer writes the response
//! packet from it; a refused delivery calls it at once on the caller's thread).
//! Requests of one kind are handled in arrival order (the reference's sequential
//! processors); replies that wait for durability (a granted vote, a follower's append)
//! come later, in order. Delivery goes through a [`dt_fiber::ChannelSender`], which
//! works from other threads and from the group's own dispatcher thread alike, so the
//! same code runs under [`dt_fiber::Simulation`] deterministically.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use dt_fiber::ChannelSender;

use crate::core::{AppendResp, NodeId, TransferError, TransferReq, VoteRefused, VoteReq, VoteResp};
use crate::rpc;

/// Why an outbound request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// No answer within `rpcTimeout` (set by the driver).
    Timeout,
    /// The peer is unknown or not connected.
    NotConnected(String),
    /// The peer answered with an error code (packet `resp_code`) and message.
    Remote {
        /// The response code.
        code: i32,
        /// The peer's message.
        message: String,
    },
    /// The answer did not decode or made no sense.
    BadResponse(String),
    /// The transport (or this node) is shutting down.
    Stopped,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Timeout => f.write_str("rpc timed out"),
            RpcError::NotConnected(m) => write!(f, "peer not connected: {m}"),
            RpcError::Remote { code, message } => write!(f, "peer error {code}: {message}"),
            RpcError::BadResponse(m) => write!(f, "bad response: {m}"),
            RpcError::Stopped => f.write_str("transport stopped"),
        }
    }
}

impl std::error::Error for RpcError {}

/// The future of an outbound request (polled on the group's thread).
pub type RpcFuture<T> = Pin<Box<dyn Future<Output = Result<T, RpcError>>>>;

/// Sends this node's Raft requests to peers. One instance per group, used on the
/// group's dispatcher thread; see the [module documentation](self) for the contract.
pub trait RaftTransport {
    /// RAFT_REQUEST_VOTE (pre-vote or vote) to `to` for group `group_id`.
    fn send_vote(&self, to: NodeId, group_id: i32, req: VoteReq) -> RpcFuture<VoteResp>;

    /// RAFT_APPEND_ENTRIES to `to` (the group id is in the request).
    fn send_append(&self, to: NodeId, req: rpc::AppendReq) -> RpcFuture<AppendResp>;

    /// RAFT_TRANSFER_LEADER (45) to the new leader `to`; resolves when it accepted.
    fn send_transfer_leader(&self, to: NodeId, group_id: i32, req: TransferReq) -> RpcFuture<()>;

    /// RAFT_QUERY_STATUS to `to` (the leader-transfer check compares member sets).
    fn query_status(&self, to: NodeId, group_id: i32) -> RpcFuture<rpc::QueryStatusResp>;

    /// RAFT_INSTALL_SNAPSHOT (43) to `to` (the group id is in the request): one
    /// request of an install stream (raft.md §12.1); the answer is an append response.
    fn send_install_snapshot(
        &self,
        to: NodeId,
        req: rpc::InstallSnapshotReq,
    ) -> RpcFuture<AppendResp>;
}

/// Why an inbound request got no Raft answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundError {
    /// The group is stopping or stopped (RAFT_GROUP_STOPPED).
    GroupStopped,
    /// The group has not finished init (RAFT_GROUP_NOT_INIT).
    GroupNotInit,
    /// The request made no sense (negative term, bad entry): SYS_ERROR with this text.
    Invalid(String),
}

impl fmt::Display for InboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InboundError::GroupStopped => f.write_str("raft group is stopped"),
            InboundError::GroupNotInit => f.write_str("raft group is not initialized"),
            InboundError::Invalid(m) => write!(f, "invalid request: {m}"),
        }
    }
}

impl std::error::Error for InboundError {}

/// Called once, on the group's thread, with the reply to an inbound request.
pub type Responder<T> = Box<dyn FnOnce(Result<T, InboundError>) + Send>;

/// The answer to a vote request: a response, or a refusal the network layer writes as
/// SYS_ERROR (raft.md §5.4 rule 1).
pub type VoteReply = Result<VoteResp, VoteRefused>;

/// The answer to RAFT_TRANSFER_LEADER: accepted, or refused (SYS_ERROR).
pub type TransferReply = Result<(), TransferError>;

/// An inbound request with its responder (what [`GroupInbox`] queues).
pub enum Inbound {
    /// RAFT_REQUEST_VOTE.
    Vote(VoteReq, Responder<VoteReply>),
    /// RAFT_APPEND_ENTRIES, as decoded from the wire.
    Append(rpc::AppendReq, Responder<AppendResp>),
    /// RAFT_TRANSFER_LEADER (45).
    TransferLeader(TransferReq, Responder<TransferReply>),
    /// RAFT_QUERY_STATUS.
    QueryStatus(Responder<rpc::QueryStatusResp>),
    /// RAFT_INSTALL_SNAPSHOT (43), as decoded from the wire.
    InstallSnapshot(rpc::InstallSnapshotReq, Responder<AppendResp>),
    /// The raft ping (§3.2) found `node` ready (or not): only ready peers get
    /// pre-votes and replication.
    MemberReady(NodeId, bool),
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inbound::Vote(r, _) => write!(f, "Vote({r:?})"),
            Inbound::Append(r, _) => write!(
                f,
                "Append(term {}, leader {}, prev {}, {} entries)",
                r.term,
                r.leader_id,
                r.prev_log_index,
                r.logs.len()
            ),
            Inbound::TransferLeader(r, _) => write!(f, "TransferLeader({r:?})"),
            Inbound::QueryStatus(_) => f.write_str("QueryStatus"),
            Inbound::InstallSnapshot(r, _) => write!(
                f,
                "InstallSnapshot(term {}, leader {}, last included {}/{}, offset {}, {} bytes, done {})",
                r.term,
                r.leader_id,
                r.last_included_index,
                r.last_included_term,
                r.offset,
                r.data.len(),
                r.done
            ),
            Inbound::MemberReady(n, r) => write!(f, "MemberReady({n}, {r})"),
        }
    }
}

impl Inbound {
    /// Answers the request with `err` (no Raft answer), e.g. when it cannot be queued.
    pub fn fail(self, err: InboundError) {
        match self {
            Inbound::Vote(_, r) => r(Err(err)),
            Inbound::Append(_, r) => r(Err(err)),
            Inbound::TransferLeader(_, r) => r(Err(err)),
            Inbound::QueryStatus(r) => r(Err(err)),
            Inbound::InstallSnapshot(_, r) => r(Err(err)),
            Inbound::MemberReady(..) => {}
        }
    }
}

/// Delivers inbound requests to one group from any thread (see the
/// [module documentation](self)).
#[derive(Clone)]
pub struct GroupInbox {
    group_id: i32,
    sender: ChannelSender<Inbound>,
}

impl fmt::Debug for GroupInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupInbox")
            .field("group_id", &self.group_id)
            .finish()
    }
}

impl GroupInbox {
    /// An inbox delivering into `sender` (the driver builds one per group; test doubles
    /// may build their own).
    pub fn new(group_id: i32, sender: ChannelSender<Inbound>) -> Self {
        GroupInbox { group_id, sender }
    }

    /// The group id.
    pub fn group_id(&self) -> i32 {
        self.group_id
    }

    /// Queues `msg` for the group; when the group has stopped, answers it at once (on
    /// this thread) with [`InboundError::GroupStopped`].
    pub fn deliver(&self, msg: Inbound) {
        if let Err(rejected) = self.sender.offer(msg) {
            rejected.item.fail(InboundError::GroupStopped);
        }
    }

    /// A vote request.
    pub fn vote(&self, req: VoteReq, reply: Responder<VoteReply>) {
        self.deliver(Inbound::Vote(req, reply))
    }

    /// An append request.
    pub fn append(&self, req: rpc::AppendReq, reply: Responder<AppendResp>) {
        self.deliver(Inbound::Append(req, reply))
    }

    /// A RAFT_TRANSFER_LEADER request (this node is asked to lead).
    pub fn transfer_leader(&self, req: TransferReq, reply: Responder<TransferReply>) {
        self.deliver(Inbound::TransferLeader(req, reply))
    }

    /// A query-status request.
    pub fn query_status(&self, reply: Responder<rpc::QueryStatusResp>) {
        self.deliver(Inbound::QueryStatus(reply))
    }

    /// A RAFT_INSTALL_SNAPSHOT request (one chunk of a leader's install stream).
    pub fn install_snapshot(&self, req: rpc::InstallSnapshotReq, reply: Responder<AppendResp>) {
        self.deliver(Inbound::InstallSnapshot(req, reply))
    }

    /// Marks peer `node` ready or not (the raft ping's verdict).
    pub fn set_member_ready(&self, node: NodeId, ready: bool) {
        self.deliver(Inbound::MemberReady(node, ready))
    }
}
