//! RAFT_ADMIN_TRANSFER_LEADER (44) and RAFT_TRANSFER_LEADER (45) request body
//! (`raft.md` §10); both answer with an empty body.

use bytes::BytesMut;
use dt_codec::encode::{self, Encodable};
use dt_codec::{PbCallback, PbError};

use super::{int32, unsigned32, unsigned64, RpcBody};
use crate::core::TransferReq;

/// `TransferLeaderReq`. The admin request (44) leaves `term` and `log_index` at 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferLeaderReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, int32 (45 only): the old leader's term.
    pub term: i32,
    /// Field 3, int32.
    pub old_leader_id: i32,
    /// Field 4, int32.
    pub new_leader_id: i32,
    /// Field 5, fixed64 (45 only): the old leader's last log index.
    pub log_index: i64,
}

impl Encodable for TransferLeaderReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.term)
            + encode::size_int32(3, self.old_leader_id)
            + encode::size_int32(4, self.new_leader_id)
            + encode::size_fixed64(5, self.log_index as u64)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.term);
        encode::put_int32(out, 3, self.old_leader_id);
        encode::put_int32(out, 4, self.new_leader_id);
        encode::put_fixed64(out, 5, self.log_index as u64);
    }
}

/// Decoder of [`TransferLeaderReq`].
#[derive(Debug, Default)]
pub struct TransferLeaderReqCallback {
    msg: TransferLeaderReq,
}

impl PbCallback for TransferLeaderReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = TransferLeaderReq::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => self.msg.term = int32(v),
            3 => self.msg.old_leader_id = int32(v),
            4 => self.msg.new_leader_id = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 5 {
            self.msg.log_index = v as i64;
        }
        Ok(())
    }
}

impl RpcBody for TransferLeaderReq {
    type Callback = TransferLeaderReqCallback;
    fn finish(cb: TransferLeaderReqCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

impl TransferLeaderReq {
    /// The RAFT_TRANSFER_LEADER (45) body of the core's request for group `group_id`.
    pub fn from_core(group_id: i32, r: &TransferReq) -> Self {
        TransferLeaderReq {
            group_id,
            term: r.term as i32,
            old_leader_id: r.old_leader_id as i32,
            new_leader_id: r.new_leader_id as i32,
            log_index: r.log_index as i64,
        }
    }
}

impl TryFrom<&TransferLeaderReq> for TransferReq {
    type Error = PbError;
    /// The core's view of a RAFT_TRANSFER_LEADER (45) body; negative values are refused.
    fn try_from(r: &TransferLeaderReq) -> Result<Self, PbError> {
        Ok(TransferReq {
            term: unsigned32("term", r.term)?,
            old_leader_id: unsigned32("old_leader_id", r.old_leader_id)?,
            new_leader_id: unsigned32("new_leader_id", r.new_leader_id)?,
            log_index: unsigned64("log_index", r.log_index)?,
        })
    }
}
