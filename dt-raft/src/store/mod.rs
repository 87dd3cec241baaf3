//! The synchronous, file-level store core.
//!
//! | file | owns |
//! |---|---|
//! | [`crc32c`] | the checksum (SSE4.2 with a table fallback) |
//! | [`log_item`] | `LogItem`, the 42-byte item header, the end marker |
//! | [`faults`] | fault injection under file writes and fsyncs (tests, simulation) |
//! | [`file_queue`] | fixed-size pre-allocated files named by 20-digit positions |
//! | [`fsync_batcher`] | one `syncfs` for the appends of many logs (group commit) |
//! | [`index_file`] | `IdxFileQueue`: index → position, cache and index files |
//! | [`status`] | `StatusFile` (atomic, checksummed) and `StatusManager` |
//! | [`snapshot`] | snapshot data/metadata files, listing, retention |
//! | [`restore`] | a new group directory from a snapshot alone (offline restore) |
//! | [`recovery`] | the start-up scan, torn-tail detection |
//! | [`match_pos`] | match-position search |
//! | [`tail_cache`] | recent entries in memory |
//! | [`reader`] | sequential, verified item reads |
//! | `read_pool` | read buffers kept for reuse; entries read are slices of them |
//! | [`log_store`] | `LogStore`, tying it all together |
//!
//! Everything is blocking; the async [`crate::raft_log`] layer runs it on IO threads.

pub mod config;
pub mod crc32c;
pub mod error;
pub mod faults;
pub mod file_queue;
pub mod fsync_batcher;
pub mod index_file;
pub mod log_item;
pub mod log_store;
pub mod match_pos;
pub(crate) mod read_pool;
pub mod reader;
pub mod recovery;
pub mod restore;
pub mod snapshot;
mod snapshot_readers;
pub mod status;
pub mod tail_cache;

pub use config::StoreConfig;
pub use error::{StoreError, StoreResult};
pub use log_item::LogItem;
pub use log_store::{FileRead, LogStore, ReadPlan, WriteBatch, LOCK_FILE_NAME};
pub use status::{PendingStatus, PersistedState, RaftStatus, StatusFile, StatusManager};
