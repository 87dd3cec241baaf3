//! # dt-raft: Raft for dt
//!
//! This crate holds Raft: the durable store, the consensus core, its fiber driver and
//! the extension contracts:
//!
//! * [`store`]: the synchronous, file-level core. It writes and recovers the on-disk
//!   format of the reference implementation byte for byte: log segment files with
//!   42-byte CRC32C item headers, index files, the `raft.status` file and snapshot
//!   files. Everything here is plain blocking code, usable and testable without any
//!   executor.
//! * [`raft_log`]: the [`RaftLog`](raft_log::RaftLog) extension trait (async,
//!   executor-agnostic) and [`DefaultRaftLog`](raft_log::DefaultRaftLog), which runs the
//!   core's file work on a [`Executor`](dt_common::Executor) pool with group commit.
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
//!
//! * [`core`]: the sans-IO consensus core of one group (election with pre-vote, per-peer
//!   replication progress, commit with the joint-consensus quorums, lease). It takes
//!   messages, ticks of time and IO completions and returns actions; no IO inside.
//! * [`rpc`]: the wire bodies of the Raft RPCs and admin commands, byte for byte the reference's.
//! * [`sm`]: the extension contracts a user implements: [`StateMachine`](sm::StateMachine),
//!   [`RaftFactory`](sm::RaftFactory), the inputs and errors of a group.
//! * [`driver`]: the fiber driver that runs a core on a dt-fiber group with a log, a
//!   transport and a state machine, and its public handle [`RaftGroup`](driver::RaftGroup).
//! * [`server`]: RaftServer: the replicate and service ports with their command checks,
//!   the node layer (node pings, readiness, admin nodes), raft pings, the multi-raft group
//!   table, the start and stop sequences, the transport of the driver over dt-net, and
//!   [`RaftGroups`](server::RaftGroups) (groups built by a factory, added and removed at
//!   run time).
//! * [`sim`]: the deterministic whole-cluster simulation (nodes on the fiber driver, on a
//!   fault-injecting network and disk, a KV workload, invariants, a linearizability checker over the
//!   client history; the `sim` example runs it seed after seed). The `sim-bugs` cargo
//!   feature compiles deliberate bugs into the core for its self-test; never enable it
//!   outside tests.
//!
//! ## On-disk format
//!
//! A group's data directory is the reference's, byte for byte (`docs/storage-format.md`): `raft.status`,
//! `log/<20 digits>` segments pre-allocated to `log_file_size` holding back-to-back items
//! (42-byte big-endian header with CRC32C, optional business header and body each with
//! its CRC32C, end marker `F1 9A 7B CB`), `idx/<20 digits>` files of 8-byte positions,
//! `snapshot/<yyyyMMdd_HHmmss>_<id>.{data,idx}`. The compatibility tests open directories
//! written by the Java server and re-encode every entry to the same bytes.
//!
//! ## Where this differs from the reference (format kept, bugs not)
//!
//! * `commitIndex` is parsed as 64 bits (the reference reads 32).
//! * Snapshots are ordered by their numeric id, not by file name.
//! * A zero-length status file (a crash during the reference's first write) reads as
//!   empty; ours are always written atomically (temp file, fsync, rename, fsync of the
//!   directory — the reference does not fsync the directory).
//! * A short *last* segment or index file (a crash between creating and sizing it) is
//!   completed instead of refusing to start; any other size mismatch is still fatal.
//! * Recovery refuses to start, naming file and offset, when the log breaks at or below
//!   the `commitIndex` of the status file (the reference notices only later, at group
//!   init, without saying where).
//! * A write or fsync error puts the log in a failed state (fail-stop: every later
//!   append, sync, read and install fails with
//!   [`StoreError::Failed`](store::StoreError::Failed), whose cause keeps the operation,
//!   path and OS error) instead of retrying: after a failed write the segment may hold a
//!   partial item, and after a failed fsync the page cache may have dropped the data, so
//!   a retry that succeeds proves nothing. The group has to restart and recover from
//!   disk; nothing acknowledged is lost. This holds for the blocking
//!   [`store::LogStore`] as for [`raft_log::DefaultRaftLog`].
//! * New index files are allocated with zeros, not left sparse, on an IO thread: a full
//!   file system shows as ENOSPC when a file is made, not in the middle of a flush.
//! * The index files are written and read with `pwrite`/`pread` on IO threads, not
//!   memory mapped: a page fault on a mapping would make whichever thread touches it
//!   (the group's dispatcher thread) wait for the disk.
//! * The data directory is locked while a store has it open (`dt.lock`, an exclusive
//!   `flock`): a second open, in this process or another, fails with
//!   [`StoreError::Locked`](store::StoreError::Locked) instead of two writers sharing
//!   the files.
//! * A status file with a valid checksum but values that do not fit the log
//!   (`firstValidPos` past the log or not at entry `firstValidIndex`, `persistIdxIndex`
//!   above `commitIndex`, ...) is refused, naming the key; a damaged index entry is
//!   reported naming the index file and the entry, not the segment it points into.
//! * Snapshot file names use UTC (std has no time-zone database).
//!
//! ## Threads
//!
//! [`store::LogStore`] is plain blocking code. [`raft_log::DefaultRaftLog`] gives it one
//! owner, the group's thread: all bookkeeping (positions, segments, tail cache, index
//! cache, watermarks, status values) is done there, in memory, with no mutex. Writes,
//! fsyncs, cold reads, header lookups, file creation and deletion are planned there as
//! jobs holding only buffers and file handles, run on the
//! [`Executor`](dt_common::Executor) threads, and their results come back as messages
//! the owner applies.
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod core;
pub mod driver;
pub mod raft_log;
pub mod rpc;
pub mod server;
pub mod sim;
pub mod sm;
pub mod store;
