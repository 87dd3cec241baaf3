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
//! * [`RaftGroups`]: the groups of a server, built by a
//!   [`RaftFactory`](crate::sm::RaftFactory) and run by the fiber driver
//!   ([`RaftGroup`](crate::driver::RaftGroup)) on one dispatcher per group or on a few
//!   shared ones; plugs into the start sequence, stop, and ADD_GROUP / REMOVE_GROUP.
//! * [`NioRaftTransport`]: the driver's outbound [`RaftTransport`](crate::driver::RaftTransport)
//!   over the replicate client; [`deliver_to_inbox`]: the inbound side, into a group's
//!   [`GroupInbox`](crate::driver::GroupInbox).
//!
//! Other group layers can plug in through [`ServerGroup`] (routing), [`StartHooks`] (the
//! start sequence's group steps), [`GroupStopper`] and [`GroupAdmin`] (ADD_GROUP /
//! REMOVE_GROUP); a client protocol (DtKV) registers its processors with
//! [`RaftServer::register`] and checks each request with a [`ServiceGate`].
//!
//! ## Start sequence (`raft.md` §14.2)
//!
//! [`RaftServer::start`] binds both ports, starts the replicate client, registers the
//! nodes and runs the self check, then continues on a background thread: wait for every
//! group's init; start node pings; wait until `floor(N/2)+1` nodes are ready; start the
//! raft pings of every group; wait until every group is ping-ready (ready members reach
//! its elect quorum); wait until every group whose role is not none is group ready. Then
//! the server is group ready and the service port serves clients.
//! [`RaftServer::wait_group_ready`] waits for it.
//!
//! ## A one-node server with one group
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use dt_raft::driver::local::CounterSm;
//! use dt_raft::driver::RaftGroupConfig;
//! use dt_raft::raft_log::ThreadPoolIo;
//! use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer, RaftServerConfig};
//! use dt_raft::sm::{DefaultRaftFactory, RaftInput};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let port = dt_common::ports::free_loopback_ports(1).unwrap()[0];
//! let server = RaftServer::new(RaftServerConfig {
//!     servers: format!("1,127.0.0.1:{port}"),
//!     node_id: 1,
//!     replicate_port: port,
//!     bind_host: "127.0.0.1".parse().unwrap(),
//!     elect_timeout: Duration::from_millis(500),
//!     heartbeat_interval: Duration::from_millis(100),
//!     ..Default::default()
//! })
//! .unwrap();
//! let factory = Arc::new(DefaultRaftFactory::new(ThreadPoolIo::new(1), |_| Ok(CounterSm::new())));
//! let mut cfg = RaftGroupConfig::new(1, 1, vec![1]);
//! cfg.data_dir = dir.path().join("group1");
//! let groups = RaftGroups::install(&server, factory, vec![cfg], GroupsOptions::default()).unwrap();
//! server.start().unwrap();
//! server.wait_group_ready(Duration::from_secs(30)).unwrap();
//!
//! let g = groups.group(1).unwrap();
//! let (index, total) = g
//!     .submit_async(RaftInput::new(0, &b"42"[..]))
//!     .wait(Duration::from_secs(10))
//!     .unwrap();
//! assert_eq!(total, 42);
//! assert!(index >= 1);
//! server.stop(Duration::from_secs(5));
//! ```

mod append_replies;
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

pub use config::{
    parse_member_ids, parse_servers, RaftServerConfig, ServerConfigError,
    DEFAULT_MAX_CONN_IN_REQUESTS,
};
pub use group::{GroupRef, GroupState, MemberIds, MembershipToken, ServerGroup};
pub use group_table::GroupTable;
pub use inbound::GroupRequest;
pub use inbox::{deliver_to_inbox, inbound_error_packet, raft_error_packet};
pub use node::{NodeError, NodeInfo, NodeManager, NodeStatus, NodeTiming};
pub use processors::GroupAdmin;
pub use raft_groups::{FactoryOutput, GroupsOptions, RaftGroups};
pub use raft_server::{GroupStopper, RaftServer, RaftServerError, ServiceGate, StartHooks};
pub use transport::{net_error, NioRaftTransport};
