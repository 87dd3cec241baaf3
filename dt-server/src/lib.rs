//! # dt-server: the DtKV state machine (library part)
//!
//! This crate owns the server side of DtKV. Today that is [`dtkv`], plain and IO-free:
//! the key tree with directories, versions and MVCC for snapshots, the apply-time
//! semantics of every command with the reference's business codes, the snapshot stream,
//! the TtlManager, the WatchManager, the processors' decisions, and [`dtkv::DtKv`] which
//! keeps them in step for one group. [`kv_server`] puts it on consensus: the
//! `StateMachine` binding ([`kv_server::DtKvStateMachine`], built by
//! [`kv_server::DtKvFactory`]), the request processors of the service port
//! ([`kv_server::KvProcessor`]) and [`kv_server::DtKvServer`], which assembles a
//! `RaftServer`, its DtKV groups, the processors and the daemon task (TTL expiry through
//! the log, watch dispatch) from a [`kv_server::DtKvServerConfig`]. The KV message
//! types it reads and answers with are `dt_client::kv`'s.
//!
//! It also owns the server's configuration: [`props`] reads Java `.properties` files
//! with the JDK's and the reference's rules, and [`bootstrap`] turns
//! config.properties, servers.properties and client.properties into typed settings
//! with the reference's defaults, start-up checks and exit codes, rewrites
//! servers.properties safely when membership changes, and gives the embedded defaults
//! of a server started without arguments (see `docs/configuration.md`).
//!
//! With the default `cli` feature, [`admin_cli`] is the `dt-admin` tool (the reference's
//! `DtAdmin`): its subcommands, their checks, output and exit codes, on
//! `dt_client::admin::AdminRaftClient`.
//!
//! [`launcher`] is the `dt-server` program itself (command line, configuration mapped
//! onto the Raft and DtKV settings, start, readiness, the servers.properties sync and
//! its SYNC_CONFIG processor, graceful stop); the binary's `main` only adds logging and
//! the signal handler.
//!
//! With the same feature, `bench_cli` is `dt-bench`, the benchmark CLI.
//!
//! ```
//! use dt_client::kv::{KvCode, KvReq};
//! use dt_server::dtkv::{BizType, KvTree};
//!
//! let mut tree = KvTree::new();
//! tree.apply(1, 0, BizType::Put, &KvReq::put(0, "k", "v"));
//! let snap = tree.open_snapshot(1);
//! tree.apply(2, 0, BizType::Put, &KvReq::put(0, "k", "w"));
//! assert_eq!(&tree.get(b"k").node.unwrap().data[..], b"w");
//! // The snapshot still reads the state after index 1.
//! assert_eq!(&tree.snapshot_get(&snap, b"k").unwrap().data[..], b"v");
//! # let _ = KvCode::Success;
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "cli")]
pub mod admin_cli;
#[cfg(feature = "cli")]
pub mod bench_cli;
pub mod bootstrap;
pub mod dtkv;
pub mod kv_server;
pub mod launcher;
pub mod props;
pub mod sim;
