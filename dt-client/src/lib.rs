//! # dt-client: what users of dt talk to
//!
//! This crate owns the client side of dt: the DtKV message types that travel between a
//! client and a DtKV server; the [`RaftClient`] (server nodes with one shared connection
//! each, groups and their members, leader discovery, NOT_RAFT_LEADER redirects, the
//! reference's retry policy, deadlines, outbound permits that wait); the [`KvClient`]
//! (every DtKV operation, blocking, as a `std::future::Future` ([`KvFuture`], no runtime
//! needed) and with callbacks); the [`WatchManager`] and the [`LockManager`] with its
//! [`DistributedLock`]s. It does not own any server code path: the DtKV state machine
//! lives in `dt-server`, which uses the message types of this crate.
//!
//! Threads: the network IO thread (dt-net's `NioClient`) and one timer thread per
//! client. Callbacks (`*_cb`) run on one of them: keep them short and never block in
//! them; use the blocking or future forms for anything longer. Watch listeners run on
//! the executor you give [`WatchManager::set_listener`].
//!
//! Everything here is wire-compatible with the reference (Dongting 0.8,
//! `wire-protocol.md` §5–9): the encoders are byte-exact with the reference's, the
//! decoders accept what the reference accepts and refuse what it refuses, with a typed
//! [`dt_codec::PbError`], never a panic.
//!
//! ## A round trip
//!
//! Against a stand-in server that answers like a DtKV node
//! (node 1, leader of group 0, holding `cfg.db = pg://`):
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use dt_client::kv::{KvCommands, KvNode, KvResp, KvResult};
//! use dt_client::{KvClient, KvClientConfig, RaftNode};
//! use dt_codec::encode;
//! use dt_net::{Commands, FnProcessor, NioServer, NioServerConfig, WriteBody, WritePacket};
//!
//! let mut server = NioServer::new(NioServerConfig { io_threads: 1, ..Default::default() });
//! // RAFT_QUERY_STATUS: "the leader is node 1" (QueryStatusResp field 5).
//! server.register(Commands::RAFT_QUERY_STATUS, FnProcessor(|_p: &_, _c: &_| {
//!     Some(WritePacket::response(WriteBody::Bytes(Bytes::from_static(b"("))))
//! }));
//! server.register(KvCommands::DTKV_GET, FnProcessor(|_p: &_, _c: &_| {
//!     let node = KvNode { create_index: 7, create_time: 1, update_index: 7, update_time: 1,
//!                         flag: 0, data: Bytes::from_static(b"pg://") };
//!     let resp = KvResp::single(0, KvResult::with_node(node));
//!     Some(WritePacket::response(WriteBody::Bytes(encode::to_bytes(&resp))))
//! }));
//! server.start().unwrap();
//!
//! let kv = KvClient::new(KvClientConfig::default()).unwrap();
//! let addr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
//! kv.raft().add_or_update_nodes(&[RaftNode { node_id: 1, addr }]).unwrap();
//! kv.raft().add_or_update_group(0, &[1]).unwrap();
//!
//! let node = kv.get(0, "cfg.db").unwrap().unwrap();             // blocking
//! assert_eq!(&node.data[..], b"pg://");
//! let again = kv.get_async(0, "cfg.db").wait().unwrap();        // a Future
//! assert_eq!(again.unwrap().update_index, 7);
//! let (tx, rx) = std::sync::mpsc::channel();
//! kv.get_cb(0, "cfg.db", move |r| tx.send(r.is_ok()).unwrap()); // a callback
//! assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
//! assert_eq!(kv.raft().leader(0), Some(1));
//! kv.stop(Duration::from_secs(1));
//! server.stop(Duration::from_secs(1));
//! ```
//!
//! ## Modules
//!
//! * [`kv`]: the DtKV messages — [`kv::KvReq`], [`kv::KvResp`], [`kv::KvResult`],
//!   [`kv::KvNode`], the watch messages ([`kv::WatchReq`], [`kv::WatchNotifyReq`],
//!   [`kv::WatchNotifyResp`], [`kv::KvStatusResp`]), the lock payload
//!   ([`kv::LockPayload`]), the command codes ([`kv::KvCommands`]), the business codes
//!   ([`kv::KvCode`]) and the key rules ([`kv::check_key`]); the client operations
//!   ([`kv::ops`]: request builders with the client checks, response interpretation,
//!   [`kv::KvError`]); and the IO-free state machines the networked clients drive:
//!   [`kv::WatchClient`], [`kv::LockClient`], [`kv::AutoRenewalLock`].
//! * [`admin`]: [`admin::AdminRaftClient`] (replicate ports).
//! * [`raft`]: [`RaftClient`], [`raft::RaftNode`], [`raft::QueryStatus`].
//! * [`kv_client`]: [`KvClient`]; [`future`]: [`KvFuture`].
//! * [`watch_manager`]: [`WatchManager`] (what it guarantees is in its docs).
//! * [`lock_manager`]: [`LockManager`], [`DistributedLock`] (fencing token included).
//!
//! ```
//! use bytes::Bytes;
//! use dt_client::kv::{KvBody, KvCode, KvReq, KvResp, KvResult};
//! use dt_codec::encode;
//!
//! // A put request, as the client sends it (wire-protocol.md §8.3).
//! let req = KvReq::put(0, "a.b", "v");
//! assert_eq!(&encode::to_bytes(&req)[..], b"\x12\x03a.b\x1a\x01v");
//!
//! // The server's answer: raft index 42, one SUCCESS result (§8.4).
//! let body = Bytes::from_static(b"\x09\x2a\0\0\0\0\0\0\0\x10\x01\x1a\x00");
//! let resp = KvResp::decode(&body).unwrap();
//! assert_eq!(resp.raft_index, 42);
//! assert_eq!(resp.results, vec![KvResult::code(KvCode::Success)]);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod future;
pub mod kv;
pub mod kv_client;
pub mod lock_manager;
pub mod raft;
mod timer;
pub mod watch_manager;

pub use future::{kv_channel, KvFuture, KvPromise};
pub use kv_client::{KvClient, KvClientConfig};
pub use lock_manager::{AutoRenewalLock, DistributedLock, LockManager};
pub use raft::{RaftClient, RaftClientConfig, RaftNode};
pub use watch_manager::{WatchListener, WatchManager};
