//! RAFT_INSTALL_SNAPSHOT (43) request body (`raft.md` §12.1); the response is an
//! [`AppendResp`](super::AppendResp).

use bytes::{Bytes, BytesMut};
use dt_codec::encode::{self, Encodable};
use dt_codec::{BytesCollector, Chunk, PbCallback, PbError};

use super::{add_id, int32, put_ids, size_ids, RpcBody};

/// `InstallSnapshotReq`: one chunk of a snapshot stream.
///
/// The first request carries the configuration (fields 9–13), data requests carry
/// `data`, the last one `done` and `next_write_pos`. `data` is a zero-copy slice of the
/// received body after decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallSnapshotReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, int32: the leader's term.
    pub term: i32,
    /// Field 3, int32.
    pub leader_id: i32,
    /// Field 4, fixed64.
    pub last_included_index: i64,
    /// Field 5, int32.
    pub last_included_term: i32,
    /// Field 6, fixed64: byte offset of this chunk in the snapshot stream.
    pub offset: i64,
    /// Field 7, int32 1 in the last request.
    pub done: bool,
    /// Field 8, fixed64 (last request).
    pub next_write_pos: i64,
    /// Field 9, repeated fixed32 (first request).
    pub members: Vec<i32>,
    /// Field 10, repeated fixed32 (first request).
    pub observers: Vec<i32>,
    /// Field 11, repeated fixed32 (first request).
    pub prepared_members: Vec<i32>,
    /// Field 12, repeated fixed32 (first request).
    pub prepared_observers: Vec<i32>,
    /// Field 13, fixed64 (first request).
    pub last_config_change_index: i64,
    /// Field 15, bytes (data requests); empty data is not written.
    pub data: Bytes,
}

impl Encodable for InstallSnapshotReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.term)
            + encode::size_int32(3, self.leader_id)
            + encode::size_fixed64(4, self.last_included_index as u64)
            + encode::size_int32(5, self.last_included_term)
            + encode::size_fixed64(6, self.offset as u64)
            + encode::size_bool(7, self.done)
            + encode::size_fixed64(8, self.next_write_pos as u64)
            + size_ids(9, &self.members)
            + size_ids(10, &self.observers)
            + size_ids(11, &self.prepared_members)
            + size_ids(12, &self.prepared_observers)
            + encode::size_fixed64(13, self.last_config_change_index as u64)
            + encode::size_bytes(15, &self.data)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.term);
        encode::put_int32(out, 3, self.leader_id);
        encode::put_fixed64(out, 4, self.last_included_index as u64);
        encode::put_int32(out, 5, self.last_included_term);
        encode::put_fixed64(out, 6, self.offset as u64);
        encode::put_bool(out, 7, self.done);
        encode::put_fixed64(out, 8, self.next_write_pos as u64);
        put_ids(out, 9, &self.members);
        put_ids(out, 10, &self.observers);
        put_ids(out, 11, &self.prepared_members);
        put_ids(out, 12, &self.prepared_observers);
        encode::put_fixed64(out, 13, self.last_config_change_index as u64);
        encode::put_bytes(out, 15, &self.data);
    }
}

/// Decoder of [`InstallSnapshotReq`].
#[derive(Debug, Default)]
pub struct InstallSnapshotReqCallback {
    msg: InstallSnapshotReq,
    acc: BytesCollector,
}

impl PbCallback for InstallSnapshotReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = InstallSnapshotReq::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => self.msg.term = int32(v),
            3 => self.msg.leader_id = int32(v),
            5 => self.msg.last_included_term = int32(v),
            7 => self.msg.done = v != 0,
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        let v = v as i64;
        match field {
            4 => self.msg.last_included_index = v,
            6 => self.msg.offset = v,
            8 => self.msg.next_write_pos = v,
            13 => self.msg.last_config_change_index = v,
            _ => {}
        }
        Ok(())
    }
    fn fixed32(&mut self, field: u32, v: u32) -> Result<(), PbError> {
        match field {
            9 => add_id(&mut self.msg.members, v),
            10 => add_id(&mut self.msg.observers, v),
            11 => add_id(&mut self.msg.prepared_members, v),
            12 => add_id(&mut self.msg.prepared_observers, v),
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 15 {
            if let Some(b) = self.acc.push(&chunk) {
                self.msg.data = b;
            }
        }
        Ok(())
    }
}

impl RpcBody for InstallSnapshotReq {
    type Callback = InstallSnapshotReqCallback;
    fn finish(cb: InstallSnapshotReqCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

fn ids(what: &'static str, v: &[i32]) -> Result<Vec<u32>, PbError> {
    v.iter().map(|&id| super::unsigned32(what, id)).collect()
}

fn wire_ids(v: &[u32]) -> Vec<i32> {
    v.iter().map(|&id| id as i32).collect()
}

impl InstallSnapshotReq {
    /// The first request of the core's install stream `start` for group `group_id`:
    /// the sets and lastConfigChangeIndex, offset 0, no data.
    pub fn first_from_core(
        group_id: i32,
        start: &crate::core::InstallStart,
        last_included_index: u64,
        last_included_term: u32,
    ) -> Self {
        InstallSnapshotReq {
            group_id,
            term: start.term as i32,
            leader_id: start.leader_id as i32,
            last_included_index: last_included_index as i64,
            last_included_term: last_included_term as i32,
            members: wire_ids(&start.sets.members),
            observers: wire_ids(&start.sets.observers),
            prepared_members: wire_ids(&start.sets.prepared_members),
            prepared_observers: wire_ids(&start.sets.prepared_observers),
            last_config_change_index: start.last_config_change_index as i64,
            ..Default::default()
        }
    }
}

impl TryFrom<&InstallSnapshotReq> for crate::core::InstallReq {
    type Error = PbError;
    /// The core's view: a request with members is a first request (carrying the four
    /// sets); the data stays with the caller (`data_len` is its length). Negative
    /// terms, ids, indexes or offsets are refused.
    fn try_from(r: &InstallSnapshotReq) -> Result<Self, PbError> {
        use super::{unsigned32, unsigned64};
        let sets = if r.members.is_empty() {
            None
        } else {
            Some(crate::core::MemberSets {
                members: ids("members", &r.members)?,
                observers: ids("observers", &r.observers)?,
                prepared_members: ids("prepared_members", &r.prepared_members)?,
                prepared_observers: ids("prepared_observers", &r.prepared_observers)?,
            })
        };
        Ok(crate::core::InstallReq {
            term: unsigned32("term", r.term)?,
            leader_id: unsigned32("leader_id", r.leader_id)?,
            last_included_index: unsigned64("last_included_index", r.last_included_index)?,
            last_included_term: unsigned32("last_included_term", r.last_included_term)?,
            offset: unsigned64("offset", r.offset)?,
            done: r.done,
            next_write_pos: unsigned64("next_write_pos", r.next_write_pos)?,
            sets,
            last_config_change_index: unsigned64(
                "last_config_change_index",
                r.last_config_change_index,
            )?,
            data_len: r.data.len() as u64,
        })
    }
}
