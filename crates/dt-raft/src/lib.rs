//! # dt-raft: Raft for dt (storage half)
//!
//! This crate will hold all of Raft. Today it owns the durable half:
//!
//! * [`store`]: the synchronous, file-level core. It writes and recovers the on-disk
//!   format of the reference implementation byte for byte: log segment files with
//!   42-byte CRC32C item headers, index files, the `raft.status` file and snapshot
//!   files. Everything here is plain blocking code, usable and testable without any
//!   executor.
//! * [`raft_log`]: the [`RaftLog`](raft_log::RaftLog) extension trait (async,
//!   executor-agnostic) and [`DefaultRaftLog`](raft_log::DefaultRaftLog), which runs the
//!   core's file work on a [`BlockingIo`](raft_log::BlockingIo) pool with group commit.
//!
//! ```
//! use dt_raft::store::{LogItem, LogStore, StoreConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cfg = StoreConfig::small_for_tests();
//! let mut log = LogStore::open(dir.path(), cfg.clone()).unwrap();
//! let item = LogItem { term: 1, index: 1, body: b"hello"[..].into(), ..Default::default() };
//! log.append(&[item]).unwrap();
//! log.sync().unwrap();
//! assert_eq!(log.last_index(), 1);
//! drop(log);
//! let mut log = LogStore::open(dir.path(), cfg).unwrap();
//! assert_eq!(log.read(1, 10, usize::MAX).unwrap()[0].body, &b"hello"[..]);
//! ```
#![warn(missing_docs)]

pub mod raft_log;
pub mod store;
