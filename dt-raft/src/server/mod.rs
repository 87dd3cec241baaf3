//! RaftServer: the process-level half of Raft (`raft.md` §2, §3, §14, §15.1).
//!
//! * [`RaftServerConfig`]: the server's settings and the construction checks.
//! * [`NodeManager`]: the table of all servers, NODE_PING (40) between them, node
//!   readiness `(ready, epoch)`, runtime ADD_NODE / REMOVE_NODE / LIST_NODES with use counts.
//! * [`RaftServer`]: one NioServer with the replicate port and the service port. Every
//!   command is checked by the port it came in on (a Raft RPC on the service port, or a
//!   client command on the replicate port, is answered COMMAND_NOT_SUPPORT); requests for
//!   a group are decoded on the IO thread, checked (group exists, initialised, not
//!   stopping) and handed to the group ([`ServerGroup::deliver`]). The service port
//!   answers NOT_INIT until the server is group ready, STOPPING once it stops.
//! * [`GroupTable`]: the multi-raft table (group id → group), read by IO threads without
//!   waiting on writers for more than a pointer swap.
//!
//! The group layer plugs in through [`ServerGroup`] (routing), [`StartHooks`] (the start
//! sequence's group steps), [`GroupStopper`] and [`GroupAdmin`] (ADD_GROUP /
//! REMOVE_GROUP).

mod biz;
pub mod config;
mod group;
mod group_table;
mod inbound;
mod inbox;
mod member_ping;
pub mod node;
mod processors;
mod raft_groups;
mod raft_server;
mod transport;

pub use config::{parse_member_ids, parse_servers, RaftServerConfig, ServerConfigError};
pub use group::{GroupRef, GroupState, MemberIds, ServerGroup};
pub use group_table::GroupTable;
pub use inbound::GroupRequest;
pub use inbox::{deliver_to_inbox, inbound_error_packet, raft_error_packet};
pub use node::{NodeError, NodeInfo, NodeManager, NodeStatus, NodeTiming};
pub use processors::GroupAdmin;
pub use raft_groups::{FactoryOutput, GroupsOptions, RaftGroups};
pub use raft_server::{GroupStopper, RaftServer, RaftServerError, ServiceGate, StartHooks};
pub use transport::{net_error, NioRaftTransport};
