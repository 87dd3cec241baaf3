//! The snapshot contract, as small as the driver needs today (raft.md §16.1, §16.2).

use bytes::{Bytes, BytesMut};

use super::state_machine::SmFuture;
use crate::core::{Index, MemberSets, NodeId, Term};

/// What a snapshot covers: the log position and the configuration at that position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The last entry the snapshot includes.
    pub last_included_index: Index,
    /// Its term.
    pub last_included_term: Term,
    /// Voting members at that point.
    pub members: Vec<NodeId>,
    /// Observers.
    pub observers: Vec<NodeId>,
    /// Prepared members (joint consensus).
    pub prepared_members: Vec<NodeId>,
    /// Prepared observers.
    pub prepared_observers: Vec<NodeId>,
    /// Index of the last configuration-change entry at or before the snapshot.
    pub last_config_change_index: Index,
}

impl SnapshotInfo {
    /// The info for position (`index`, `term`) with the member sets `sets`.
    pub fn new(
        index: Index,
        term: Term,
        sets: &MemberSets,
        last_config_change_index: Index,
    ) -> Self {
        SnapshotInfo {
            last_included_index: index,
            last_included_term: term,
            members: sets.members.clone(),
            observers: sets.observers.clone(),
            prepared_members: sets.prepared_members.clone(),
            prepared_observers: sets.prepared_observers.clone(),
            last_config_change_index,
        }
    }
}

/// A snapshot being read (to save it to disk, or to send it to a follower).
pub trait Snapshot {
    /// What it covers.
    fn info(&self) -> &SnapshotInfo;
    /// Appends the next bytes of the snapshot to `buf` (up to its spare capacity) and
    /// resolves with the number of bytes added; 0 means the end of the stream.
    fn read_next<'a>(&'a mut self, buf: &'a mut BytesMut) -> SmFuture<'a, usize>;
    /// Releases the snapshot's resources; called once.
    fn close(&mut self) {}
}

/// One chunk given to [`StateMachine::install_snapshot`](super::StateMachine::install_snapshot).
#[derive(Clone, Copy, Debug)]
pub struct SnapshotChunk<'a> {
    /// The snapshot being installed.
    pub info: &'a SnapshotInfo,
    /// Byte offset of `data` in the snapshot stream; 0 starts a new install.
    pub offset: u64,
    /// True for the last chunk.
    pub done: bool,
    /// The bytes.
    pub data: &'a Bytes,
}

/// A [`Snapshot`] over bytes already in memory (a state machine small enough to
/// serialize at once, or a test double).
#[derive(Debug)]
pub struct BytesSnapshot {
    info: SnapshotInfo,
    data: Bytes,
    pos: usize,
}

impl BytesSnapshot {
    /// The snapshot `data` covering `info`.
    pub fn new(info: SnapshotInfo, data: Bytes) -> Self {
        BytesSnapshot { info, data, pos: 0 }
    }
}

impl Snapshot for BytesSnapshot {
    fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    fn read_next<'a>(&'a mut self, buf: &'a mut BytesMut) -> SmFuture<'a, usize> {
        let room = buf.capacity() - buf.len();
        let n = room.min(self.data.len() - self.pos);
        buf.extend_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Box::pin(async move { Ok(n) })
    }
}
