//! The fiber driver of one Raft group: runs the sans-IO [`RaftCore`](crate::core::RaftCore)
//! on a dt-fiber [`FiberGroup`](dt_fiber::FiberGroup), executing its actions with the
//! group's [`RaftLog`](crate::raft_log::RaftLog), a [`RaftTransport`] to the peers and
//! the user's [`StateMachine`](crate::sm::StateMachine).
//!
//! * [`RaftGroupConfig`]: the group's configuration (raft.md §15.2).
//! * [`transport`]: the network seam ([`RaftTransport`] out, [`GroupInbox`] in).
//! * [`oneshot`]: the std-future bridge used by the public handle.
pub mod config;
pub mod oneshot;
pub mod transport;

pub use config::RaftGroupConfig;
pub use transport::{
    GroupInbox, Inbound, InboundError, RaftTransport, Responder, RpcError, RpcFuture,
    TransferReply, VoteReply,
};
mod group;
pub mod local;
mod notify;
mod runner;
mod tail;

pub use group::{ActionTrace, DriverOptions, GroupStatus, RaftFuture, RaftGroup};
