//! RAFT_REQUEST_VOTE (42) bodies, pre-vote and vote (`raft.md` §5.3).

use bytes::BytesMut;
use dt_codec::encode::{self, Encodable};
use dt_codec::{PbCallback, PbError};

use super::{int32, unsigned32, unsigned64, RpcBody};
use crate::core::msg;

/// `VoteReq`: a candidate asks for a (pre-)vote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoteReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, int32: pre-vote carries the current term, vote the new term.
    pub term: i32,
    /// Field 3, int32.
    pub candidate_id: i32,
    /// Field 4, fixed64.
    pub last_log_index: i64,
    /// Field 5, int32.
    pub last_log_term: i32,
    /// Field 6, int32 1 for a pre-vote (the reference reads only the value 1 as true).
    pub pre_vote: bool,
}

impl Encodable for VoteReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.term)
            + encode::size_int32(3, self.candidate_id)
            + encode::size_fixed64(4, self.last_log_index as u64)
            + encode::size_int32(5, self.last_log_term)
            + encode::size_bool(6, self.pre_vote)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.term);
        encode::put_int32(out, 3, self.candidate_id);
        encode::put_fixed64(out, 4, self.last_log_index as u64);
        encode::put_int32(out, 5, self.last_log_term);
        encode::put_bool(out, 6, self.pre_vote);
    }
}

/// Decoder of [`VoteReq`].
#[derive(Debug, Default)]
pub struct VoteReqCallback {
    msg: VoteReq,
}

impl PbCallback for VoteReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = VoteReq::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => self.msg.term = int32(v),
            3 => self.msg.candidate_id = int32(v),
            5 => self.msg.last_log_term = int32(v),
            6 => self.msg.pre_vote = v == 1,
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 4 {
            self.msg.last_log_index = v as i64;
        }
        Ok(())
    }
}

impl RpcBody for VoteReq {
    type Callback = VoteReqCallback;
    fn finish(cb: VoteReqCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

impl VoteReq {
    /// The wire body of the core's request for group `group_id`.
    pub fn from_core(group_id: i32, r: &msg::VoteReq) -> Self {
        VoteReq {
            group_id,
            term: r.term as i32,
            candidate_id: r.candidate_id as i32,
            last_log_index: r.last_log_index as i64,
            last_log_term: r.last_log_term as i32,
            pre_vote: r.pre_vote,
        }
    }
}

impl TryFrom<&VoteReq> for msg::VoteReq {
    type Error = PbError;
    /// The core's view (the group id is the driver's business); negative terms, ids or
    /// indexes are refused.
    fn try_from(r: &VoteReq) -> Result<Self, PbError> {
        Ok(msg::VoteReq {
            term: unsigned32("term", r.term)?,
            candidate_id: unsigned32("candidate_id", r.candidate_id)?,
            last_log_index: unsigned64("last_log_index", r.last_log_index)?,
            last_log_term: unsigned32("last_log_term", r.last_log_term)?,
            pre_vote: r.pre_vote,
        })
    }
}

/// `VoteResp`: the voter's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoteResp {
    /// Field 1, int32: the voter's term.
    pub term: i32,
    /// Field 2, int32 1 when granted (any non-zero value reads as granted).
    pub vote_granted: bool,
}

impl Encodable for VoteResp {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.term) + encode::size_bool(2, self.vote_granted)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.term);
        encode::put_bool(out, 2, self.vote_granted);
    }
}

/// Decoder of [`VoteResp`].
#[derive(Debug, Default)]
pub struct VoteRespCallback {
    msg: VoteResp,
}

impl PbCallback for VoteRespCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = VoteResp::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.term = int32(v),
            2 => self.msg.vote_granted = v != 0,
            _ => {}
        }
        Ok(())
    }
}

impl RpcBody for VoteResp {
    type Callback = VoteRespCallback;
    fn finish(cb: VoteRespCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

impl From<&msg::VoteResp> for VoteResp {
    fn from(r: &msg::VoteResp) -> Self {
        VoteResp {
            term: r.term as i32,
            vote_granted: r.vote_granted,
        }
    }
}

impl TryFrom<&VoteResp> for msg::VoteResp {
    type Error = PbError;
    fn try_from(r: &VoteResp) -> Result<Self, PbError> {
        Ok(msg::VoteResp {
            term: unsigned32("term", r.term)?,
            vote_granted: r.vote_granted,
        })
    }
}
