//! The Raft client layer (`wire-protocol.md` §5): [`RaftClient`] keeps the server nodes
//! (one connection each, shared by all groups), the groups and their members, finds
//! each group's leader with RAFT_QUERY_STATUS, follows NOT_RAFT_LEADER redirects and
//! retries as the reference client does, and gives every request a deadline and an
//! outbound permit (waiting for one, up to the deadline, when the limit is reached).
//! [`QueryStatus`] is the decoded RAFT_QUERY_STATUS answer.

pub(crate) mod client;
mod in_flight;
mod permits;
mod status;

pub(crate) use client::group_body;
pub use client::{RaftClient, RaftClientConfig, RaftNode, SendOptions, LEADER_RETRY_INTERVAL};
pub use status::{QueryStatus, QueryStatusCallback};
