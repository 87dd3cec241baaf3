//! [`QueryStatus`]: the client's decoding of a RAFT_QUERY_STATUS (46) answer, the
//! `QueryStatusResp` of `wire-protocol.md` §5.3 (also nested in the DTKV_QUERY_STATUS
//! answer). dt-client does not depend on dt-raft, so it reads the message itself; the
//! field numbers and types are the reference's.

use bytes::Bytes;
use dt_codec::{BytesCollector, Chunk, PbCallback, PbError};

use crate::kv::KvBody;

/// One node's view of one Raft group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryStatus {
    /// Field 1: the group.
    pub group_id: i32,
    /// Field 2: the answering node.
    pub node_id: i32,
    /// Field 3: bit 0 init finished, bit 1 init failed, bit 2 group ready, bit 3 bug.
    pub flag: i32,
    /// Field 4: the node's term.
    pub term: i32,
    /// Field 5: the leader this node knows (0: unknown).
    pub leader_id: i32,
    /// Field 6.
    pub commit_index: i64,
    /// Field 7.
    pub last_applied: i64,
    /// Field 8: ms since the node last applied an entry.
    pub last_apply_time_to_now_millis: i64,
    /// Field 9.
    pub last_log_index: i64,
    /// Field 10: sampled commit-to-apply delay, ms.
    pub apply_lag_millis: i64,
    /// Field 11: voting members.
    pub members: Vec<i32>,
    /// Field 12: observers.
    pub observers: Vec<i32>,
    /// Field 13: members of a prepared (joint) configuration.
    pub prepared_members: Vec<i32>,
    /// Field 14: observers of a prepared configuration.
    pub prepared_observers: Vec<i32>,
    /// Field 15.
    pub last_config_change_index: i64,
    /// Field 16: the first internal error the node logged.
    pub last_error: String,
}

impl QueryStatus {
    /// `flag` bit: the group is ready (it applied what it needs after start or election).
    pub const FLAG_GROUP_READY: i32 = 4;

    /// Whether the group is ready on this node.
    pub fn is_group_ready(&self) -> bool {
        self.flag & Self::FLAG_GROUP_READY != 0
    }

    /// The reference watch client's health test for a watch server (§6.7.3): group
    /// ready, leader known, applied within 15 s, apply lag at most 15 s.
    pub fn is_healthy_watch_server(&self) -> bool {
        self.is_group_ready()
            && self.leader_id > 0
            && self.last_apply_time_to_now_millis <= 15_000
            && self.apply_lag_millis <= 15_000
    }
}

/// Decoder of [`QueryStatus`].
#[derive(Debug, Default)]
pub struct QueryStatusCallback {
    msg: QueryStatus,
    acc: BytesCollector,
}

fn add_id(set: &mut Vec<i32>, id: u32) {
    let id = id as i32;
    if !set.contains(&id) && set.len() < 10_000 {
        set.push(id);
    }
}

impl PbCallback for QueryStatusCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = QueryStatus::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        let v = v as i32;
        let m = &mut self.msg;
        match field {
            1 => m.group_id = v,
            2 => m.node_id = v,
            3 => m.flag = v,
            4 => m.term = v,
            5 => m.leader_id = v,
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        let v = v as i64;
        let m = &mut self.msg;
        match field {
            6 => m.commit_index = v,
            7 => m.last_applied = v,
            8 => m.last_apply_time_to_now_millis = v,
            9 => m.last_log_index = v,
            10 => m.apply_lag_millis = v,
            15 => m.last_config_change_index = v,
            _ => {}
        }
        Ok(())
    }
    fn fixed32(&mut self, field: u32, v: u32) -> Result<(), PbError> {
        let m = &mut self.msg;
        match field {
            11 => add_id(&mut m.members, v),
            12 => add_id(&mut m.observers, v),
            13 => add_id(&mut m.prepared_members, v),
            14 => add_id(&mut m.prepared_observers, v),
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 16 {
            if let Some(b) = self.acc.push(&chunk) {
                self.msg.last_error = String::from_utf8_lossy(&b).into_owned();
            }
        }
        Ok(())
    }
}

impl KvBody for QueryStatus {
    type Callback = QueryStatusCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

impl QueryStatus {
    /// Decodes a whole `QueryStatusResp` body.
    pub fn decode_body(body: &Bytes) -> Result<Self, PbError> {
        <Self as KvBody>::decode(body)
    }
}
