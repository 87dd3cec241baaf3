//! A node version and its TTL information (`dtkv-server.md` §3, §5.1).

use bytes::Bytes;
use dt_client::kv::KvNode;
use dt_net::ProcessInfo;

/// The TTL of a temporary node, as every replica records it at apply time.
///
/// Nothing here depends on a clock: the local expiry instant (`localCreateNanos +
/// ttl`, reconstructed from `leader_start_millis` after a restart) is the TtlManager's
/// business, fed by the [`TtlChange`](super::TtlChange)s that apply reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlInfo {
    /// Index of the entry that (re)started the TTL; an EXPIRE entry names it and is
    /// ignored (TTL_INDEX_MISMATCH) when the TTL was restarted since.
    pub raft_index: i64,
    /// The owner: the UUID of the client connection that wrote the entry.
    pub owner: ProcessInfo,
    /// The entry's timestamp (leader wall-clock ms) when the TTL (re)started.
    pub leader_start_millis: i64,
    /// The TTL in ms.
    pub ttl_millis: i64,
}

/// One version of a node: what a key held from `update_index` on.
///
/// A removed key is a *tombstone* version (`removed`), kept while a snapshot may still
/// see the version before it, or while the key has child holders.
///
/// The fields a put reads and writes come first (`repr(C)`): flag, removed mark, update
/// index and time, value; 56 bytes, so they share a cache line with the holder's parent
/// link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct NodeVersion {
    /// [`KvNode`] `FLAG_*` bits.
    pub flag: i32,
    /// Whether this version is a tombstone.
    pub removed: bool,
    /// Index of the entry that produced this version.
    pub update_index: i64,
    /// Timestamp (leader ms) of that entry.
    pub update_time: i64,
    /// The value (empty for directories and tombstones).
    pub data: Bytes,
    /// Index of the entry that created the key.
    pub create_index: i64,
    /// Timestamp (leader ms) of that entry.
    pub create_time: i64,
    /// The TTL, for temporary nodes and lock entries.
    pub ttl: Option<TtlInfo>,
}

impl NodeVersion {
    /// Whether the version is a directory.
    pub fn is_dir(&self) -> bool {
        self.flag & KvNode::FLAG_DIR != 0
    }

    /// Whether the version is a lock directory or a lock entry.
    pub fn is_lock(&self) -> bool {
        self.flag & KvNode::FLAG_LOCK != 0
    }

    /// Whether the version is temporary.
    pub fn is_temp(&self) -> bool {
        self.flag & KvNode::FLAG_TEMP != 0
    }

    /// The client's view of this version.
    pub fn to_kv_node(&self) -> KvNode {
        KvNode {
            create_index: self.create_index,
            create_time: self.create_time,
            update_index: self.update_index,
            update_time: self.update_time,
            flag: self.flag,
            data: self.data.clone(),
        }
    }

    /// A new version of the same node at `index`/`time` with `data` (flag and TTL kept).
    pub(crate) fn updated(&self, index: i64, time: i64, data: Bytes) -> NodeVersion {
        NodeVersion {
            update_index: index,
            update_time: time,
            data,
            ..self.clone()
        }
    }
}
