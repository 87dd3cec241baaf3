//! RAFT_QUERY_STATUS (46) response body (`raft.md` §13, `wire-protocol.md` §5.3). The
//! request is the group id as a [`PbInt`](dt_codec::PbInt).

use bytes::BytesMut;
use dt_codec::encode::{self, Encodable};
use dt_codec::{BytesCollector, Chunk, PbCallback, PbError};

use super::{add_id, collect_str, int32, put_ids, size_ids, RpcBody};

/// `QueryStatusResp`: a node's view of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryStatusResp {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, int32: the responder.
    pub node_id: i32,
    /// Field 3, int32: `FLAG_*` bits.
    pub flag: i32,
    /// Field 4, int32.
    pub term: i32,
    /// Field 5, int32: 0 when unknown.
    pub leader_id: i32,
    /// Field 6, fixed64.
    pub commit_index: i64,
    /// Field 7, fixed64.
    pub last_applied: i64,
    /// Field 8, fixed64.
    pub last_apply_time_to_now_millis: i64,
    /// Field 9, fixed64.
    pub last_log_index: i64,
    /// Field 10, fixed64: sampled commit-to-apply delay.
    pub apply_lag_millis: i64,
    /// Field 11, repeated fixed32.
    pub members: Vec<i32>,
    /// Field 12, repeated fixed32.
    pub observers: Vec<i32>,
    /// Field 13, repeated fixed32.
    pub prepared_members: Vec<i32>,
    /// Field 14, repeated fixed32.
    pub prepared_observers: Vec<i32>,
    /// Field 15, fixed64.
    pub last_config_change_index: i64,
    /// Field 16, string: the first internal error logged; empty when none.
    pub last_error: String,
}

impl QueryStatusResp {
    /// `flag` bit: group init finished.
    pub const FLAG_INIT_FINISHED: i32 = 1;
    /// `flag` bit: group init failed.
    pub const FLAG_INIT_FAILED: i32 = 1 << 1;
    /// `flag` bit: the group is ready.
    pub const FLAG_GROUP_READY: i32 = 1 << 2;
    /// `flag` bit: the server logged an internal bug.
    pub const FLAG_BUG: i32 = 1 << 3;

    /// Sets `flag` from its four bits.
    pub fn set_flag(
        &mut self,
        init_finished: bool,
        init_failed: bool,
        group_ready: bool,
        bug: bool,
    ) {
        let bit = |on: bool, mask: i32| if on { mask } else { 0 };
        self.flag = bit(init_finished, Self::FLAG_INIT_FINISHED)
            | bit(init_failed, Self::FLAG_INIT_FAILED)
            | bit(group_ready, Self::FLAG_GROUP_READY)
            | bit(bug, Self::FLAG_BUG);
    }

    /// Whether group init finished.
    pub fn is_init_finished(&self) -> bool {
        self.flag & Self::FLAG_INIT_FINISHED != 0
    }

    /// Whether group init failed.
    pub fn is_init_failed(&self) -> bool {
        self.flag & Self::FLAG_INIT_FAILED != 0
    }

    /// Whether the group is ready.
    pub fn is_group_ready(&self) -> bool {
        self.flag & Self::FLAG_GROUP_READY != 0
    }

    /// Whether the server logged an internal bug.
    pub fn is_bug(&self) -> bool {
        self.flag & Self::FLAG_BUG != 0
    }

    /// The most ids the decoder keeps in each id list; later ones are dropped.
    pub const MAX_IDS: usize = 10_000;

    /// The reference watch client's health test for a watch server (`wire-protocol.md`
    /// §6.7.3): group ready, leader known, applied within 15 s, apply lag at most 15 s.
    pub fn is_healthy_watch_server(&self) -> bool {
        self.is_group_ready()
            && self.leader_id > 0
            && self.last_apply_time_to_now_millis <= 15_000
            && self.apply_lag_millis <= 15_000
    }
}

impl Encodable for QueryStatusResp {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.node_id)
            + encode::size_int32(3, self.flag)
            + encode::size_int32(4, self.term)
            + encode::size_int32(5, self.leader_id)
            + encode::size_fixed64(6, self.commit_index as u64)
            + encode::size_fixed64(7, self.last_applied as u64)
            + encode::size_fixed64(8, self.last_apply_time_to_now_millis as u64)
            + encode::size_fixed64(9, self.last_log_index as u64)
            + encode::size_fixed64(10, self.apply_lag_millis as u64)
            + size_ids(11, &self.members)
            + size_ids(12, &self.observers)
            + size_ids(13, &self.prepared_members)
            + size_ids(14, &self.prepared_observers)
            + encode::size_fixed64(15, self.last_config_change_index as u64)
            + encode::size_str(16, &self.last_error)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.node_id);
        encode::put_int32(out, 3, self.flag);
        encode::put_int32(out, 4, self.term);
        encode::put_int32(out, 5, self.leader_id);
        encode::put_fixed64(out, 6, self.commit_index as u64);
        encode::put_fixed64(out, 7, self.last_applied as u64);
        encode::put_fixed64(out, 8, self.last_apply_time_to_now_millis as u64);
        encode::put_fixed64(out, 9, self.last_log_index as u64);
        encode::put_fixed64(out, 10, self.apply_lag_millis as u64);
        put_ids(out, 11, &self.members);
        put_ids(out, 12, &self.observers);
        put_ids(out, 13, &self.prepared_members);
        put_ids(out, 14, &self.prepared_observers);
        encode::put_fixed64(out, 15, self.last_config_change_index as u64);
        encode::put_str(out, 16, &self.last_error);
    }
}

/// Decoder of [`QueryStatusResp`].
#[derive(Debug, Default)]
pub struct QueryStatusRespCallback {
    msg: QueryStatusResp,
    acc: BytesCollector,
}

impl PbCallback for QueryStatusRespCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = QueryStatusResp::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        let v = int32(v);
        match field {
            1 => self.msg.group_id = v,
            2 => self.msg.node_id = v,
            3 => self.msg.flag = v,
            4 => self.msg.term = v,
            5 => self.msg.leader_id = v,
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
        let set = match field {
            11 => &mut m.members,
            12 => &mut m.observers,
            13 => &mut m.prepared_members,
            14 => &mut m.prepared_observers,
            _ => return Ok(()),
        };
        // A status answer comes from any server a client asks; a hostile one cannot make
        // the decoder's duplicate check quadratic in the body size.
        if set.len() < QueryStatusResp::MAX_IDS {
            add_id(set, v);
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 16 {
            collect_str(&mut self.acc, &chunk, &mut self.msg.last_error)?;
        }
        Ok(())
    }
}

impl RpcBody for QueryStatusResp {
    type Callback = QueryStatusRespCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

impl QueryStatusResp {
    /// The response for group `group_id` from the core's status. The flag bits the
    /// driver owns (init finished / failed, bug) and `last_error` are left clear; the
    /// group-ready bit comes from the core.
    pub fn from_core(group_id: i32, s: &crate::core::CoreStatus) -> Self {
        let ids = |v: &[u32]| v.iter().map(|&id| id as i32).collect::<Vec<i32>>();
        let mut r = QueryStatusResp {
            group_id,
            node_id: s.node_id as i32,
            term: s.term as i32,
            leader_id: s.leader_id.unwrap_or(0) as i32,
            commit_index: s.commit_index as i64,
            last_applied: s.last_applied as i64,
            last_apply_time_to_now_millis: s.last_apply_time_to_now_ms as i64,
            last_log_index: s.last_log_index as i64,
            apply_lag_millis: s.apply_lag_ms as i64,
            members: ids(&s.sets.members),
            observers: ids(&s.sets.observers),
            prepared_members: ids(&s.sets.prepared_members),
            prepared_observers: ids(&s.sets.prepared_observers),
            last_config_change_index: s.last_config_change_index as i64,
            ..Default::default()
        };
        if s.group_ready {
            r.flag |= Self::FLAG_GROUP_READY;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_codec::encode::to_bytes;

    #[test]
    fn id_lists_are_capped_and_deduplicated() {
        let mut out = BytesMut::new();
        for id in 0..(QueryStatusResp::MAX_IDS as i32 + 5) {
            encode::put_fixed32(&mut out, 11, id as u32);
        }
        encode::put_fixed32(&mut out, 12, 7);
        encode::put_fixed32(&mut out, 12, 7);
        let m = QueryStatusResp::decode(&out.freeze()).unwrap();
        assert_eq!(m.members.len(), QueryStatusResp::MAX_IDS);
        assert_eq!(m.observers, vec![7]);
    }

    #[test]
    fn healthy_watch_server_needs_ready_leader_and_fresh_apply() {
        let mut s = QueryStatusResp {
            leader_id: 1,
            last_apply_time_to_now_millis: 15_000,
            apply_lag_millis: 15_000,
            ..Default::default()
        };
        assert!(!s.is_healthy_watch_server());
        s.set_flag(true, false, true, false);
        assert!(s.is_healthy_watch_server());
        let back = QueryStatusResp::decode(&to_bytes(&s)).unwrap();
        assert_eq!(back, s);
        s.apply_lag_millis = 15_001;
        assert!(!s.is_healthy_watch_server());
        s.apply_lag_millis = 0;
        s.leader_id = 0;
        assert!(!s.is_healthy_watch_server());
    }
}
