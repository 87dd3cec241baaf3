//! # dt-net: the RPC transport of dt, wire-compatible with Dongting
//!
//! This layer owns everything between a TCP socket and a decoded request: the framing
//! (4-byte big-endian length + packet), the packet header (fields 1–8, body 15, in the
//! reference's order), the handshake (magics, versions, the client's [`ProcessInfo`]
//! UUID, the [`ConfigBody`] limits hint, the 5-second deadline, the first-packet rule), and
//! the two endpoints built on mio:
//!
//! * [`NioServer`]: an acceptor thread and N IO workers ([`NioServerConfig::io_threads`]),
//!   one or more listening ports, request processors registered by command code
//!   ([`ReqProcessor`]) that run inline on the IO thread or on an [`Executor`] you supply
//!   (a thread pool, or a fiber group: see [`RunOn::Executor`]);
//!   responses from other threads return through the worker's queue and a mio waker;
//!   listeners told once about every connection that closes
//!   ([`NioServerConfig::conn_closed`], [`ConnClosedListener`]) so per-connection state
//!   elsewhere can be freed.
//! * [`NioClient`]: peers added and removed at runtime, connect with timeout, handshake,
//!   reconnect with the reference's back-off, pipelining (requests queued while
//!   connecting go out right after the handshake), deadlines carried on the wire in
//!   nanoseconds, a timeout sweep, flow control with a typed error, processors for
//!   requests servers push. Results by callback ([`NioClient::send_request_cb`]), by a
//!   shared [`RpcHandler`] with a per-request token (no allocation per request:
//!   [`NioClient::send_request_handler`]), as a `std::future::Future` ([`RpcFuture`], no
//!   runtime needed: [`NioClient::send_request`], [`NioClient::call`]) or blocking
//!   ([`NioClient::send_request_sync`]).
//!
//! It does not own Raft or KV message bodies: processors decode those with dt-codec.
//!
//! ## Threads and the path of a request
//!
//! A server has one acceptor thread and `io_threads` IO threads (NioWorker), each
//! with its own mio `Poll`; accepted connections are spread round-robin. A worker reads
//! into a per-connection buffer, cuts frames ([`FrameDecoder`]), decodes the header with
//! dt-codec's `PbParser` (the body stays a zero-copy `Bytes` slice of the frame), runs the
//! handshake inline, and hands each request to the processor of its command:
//! [`ReqProcessor::decode`] always runs on the IO thread; [`ReqProcessor::process`] runs
//! inline ([`RunOn::IoThread`]) or as a task on your [`Executor`] ([`RunOn::Executor`]):
//! `dt_common::Executor`, re-exported here, which dt-fiber implements for a fiber group, so
//! a processor can hand its requests to a fiber group without dt-net knowing about fibers.
//! An inline response is encoded straight into the connection's output buffer; a response
//! from another thread ([`Responder::respond`]) goes through the worker's queue and mio
//! `Waker`. All responses produced in one loop iteration leave in one `write` per
//! connection. IO threads never block. On the ping path the server does no heap
//! allocation per request in steady state (see the `rpc_server --count-allocs` example).
//!
//! A client has one IO thread. Requests from any thread are queued to it; it assigns the
//! per-connection seq (1, 2, … wrapping to 1; one-ways take numbers too) when it
//! serialises the packet, writes the remaining deadline into header field 7 in
//! nanoseconds, keeps the request pending by (connection, seq) and sweeps deadlines every
//! 50 ms. Responses whose seq is unknown are dropped, a different command fails the
//! request, a non-zero `resp_code` becomes [`NetError::Remote`].
//!
//! ## Bad input
//!
//! Every length and enum from the wire is checked. A negative or oversize frame length, a
//! malformed packet, a field after the body, a body before the command, a bad handshake
//! (wrong magic, no or zero process uuid, not first), a body its processor cannot decode
//! and a handshake not completed within 5 s close that connection, with the reason logged
//! once; other connections are unaffected. Requests without a positive timeout are dropped;
//! unknown commands get `COMMAND_NOT_SUPPORT`; one-ways are never answered. A peer that does
//! not read its responses stops being read once `write_high_water` bytes are pending for
//! it (and is closed once `max_conn_unsent_bytes` are: answers from other threads keep
//! coming), and once the server's unsent output passes `max_write_buffer_bytes` every
//! peer with unsent output does; a peer that pipelines requests past its port's
//! `max_conn_in_requests` unanswered ones gets `FLOW_CONTROL` for the excess; partial frames are charged their full size against
//! `max_read_buffer_bytes` before their bodies are read. A peer that closes is seen
//! closing even when its FIN arrives with its last data. The server's memory is bounded
//! as [`NioServerConfig`] describes.
//!
//! ## A server and a client
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use dt_net::{Commands, NioClient, NioClientConfig, NioServer, NioServerConfig, WritePacket};
//!
//! // A server on an ephemeral port; ping (command 1) is registered by default.
//! let mut server = NioServer::new(NioServerConfig {
//!     ports: vec![0],
//!     io_threads: 1,
//!     ..Default::default()
//! });
//! server.start().unwrap();
//! let addr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
//!
//! let mut client = NioClient::new(NioClientConfig { peers: vec![addr], ..Default::default() });
//! client.start().unwrap();
//! assert!(client.wait_connected(Duration::from_secs(5)));
//!
//! // Blocking call.
//! let req = WritePacket::request_bytes(Commands::CMD_PING, Bytes::from_static(b"hello"));
//! let resp = client.send_request_sync(None, req, Duration::from_secs(3)).unwrap();
//! assert_eq!(&resp.body[..], b"hello");
//!
//! // The same as a future; any executor can await it, or wait() blocks.
//! let fut = client.send_request(None, WritePacket::request_bytes(Commands::CMD_PING, Bytes::new()),
//!                               Duration::from_secs(3));
//! assert!(fut.wait().unwrap().body.is_empty());
//!
//! client.stop(Duration::from_secs(1));
//! server.stop(Duration::from_secs(1));
//! ```
//!
//! ## Registering processors
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use dt_codec::{PbError, PbInt, PbIntCallback};
//! use dt_net::*;
//!
//! /// Doubles a PbInt, on an executor (here: a new thread per task, for brevity).
//! struct Double;
//! struct Spawn;
//! impl Executor for Spawn {
//!     fn execute(&self, t: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
//!         std::thread::spawn(t);
//!         Ok(())
//!     }
//! }
//! impl ReqProcessor for Double {
//!     type Body = i32;
//!     fn run_on(&self) -> RunOn { RunOn::Executor(Arc::new(Spawn)) }
//!     // Runs on the IO thread: the body decoder chosen by command.
//!     fn decode(&self, pkt: &ReadPacket) -> Result<i32, PbError> {
//!         Ok(pkt.decode_body::<PbIntCallback>()?.value)
//!     }
//!     // Runs on the executor; returning None would mean "answer later via ctx.responder()".
//!     fn process(&self, _pkt: ReadPacket, v: i32, _ctx: ReqContext) -> Option<WritePacket> {
//!         Some(WritePacket::response(WriteBody::Encodable(Box::new(PbInt(v * 2)))))
//!     }
//! }
//!
//! let mut server = NioServer::new(NioServerConfig { io_threads: 1, ..Default::default() });
//! server.register(100, Double);
//! server.start().unwrap();
//! let mut client = NioClient::new(NioClientConfig::default());
//! client.start().unwrap();
//! let peer = client.add_peer(format!("127.0.0.1:{}", server.port()).parse().unwrap()).unwrap();
//! let req = WritePacket::request(100, WriteBody::Encodable(Box::new(PbInt(21))));
//! let v = client
//!     .call(Some(peer.id), req, Duration::from_secs(3), |p| {
//!         Ok(p.decode_body::<PbIntCallback>()?.value)
//!     })
//!     .wait()
//!     .unwrap();
//! assert_eq!(v, 42);
//! // Unknown commands are answered COMMAND_NOT_SUPPORT.
//! let e = client.send_request_sync(Some(peer.id), WritePacket::request_bytes(99, Bytes::new()),
//!                                  Duration::from_secs(3)).unwrap_err();
//! assert!(matches!(e, NetError::Remote { code: CmdCodes::COMMAND_NOT_SUPPORT, .. }));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod codes;
mod conn_closed;
mod error;
mod flow_control;
mod frame;
mod handshake;
mod packet;
mod peer;
mod pending;
mod processor;
mod queue;
mod rpc_future;
mod server;
mod worker;

pub use client::{NioClient, NioClientConfig};
pub use codes::{CmdCodes, Commands, PacketType};
pub use conn_closed::{ConnClosed, ConnClosedListener};
pub use error::{ConfigError, NetError};
pub use flow_control::FlowControl;
pub use frame::{FrameDecoder, FrameError};
pub use handshake::{
    ConfigBody, HandshakeBody, HandshakeCallback, HandshakeHook, ProcessInfo, MAGIC1, MAGIC2,
    MAJOR_VERSION, MINOR_VERSION,
};
pub use packet::{InlineBody, ReadPacket, WriteBody, WritePacket, INLINE_BODY_MAX};
pub use peer::{backoff, Peer, PeerId, PeerStatus, PeerStatusView, RECONNECT_BACKOFF_MS};
pub use processor::{
    Executor, FnProcessor, PingProcessor, Processors, ReqContext, ReqProcessor, Responder, RunOn,
    Task,
};
pub use queue::{ConnRef, RpcHandler};
pub use rpc_future::{rpc_channel, RpcFuture, RpcPromise};
pub use server::{NioServer, NioServerConfig, ServerStats};
