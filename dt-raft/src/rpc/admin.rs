//! Admin command bodies (`raft.md` §11.3, §14.4–14.6): configuration change (47–49),
//! nodes and groups (50–55).
//!
//! Commands 51 (remove node) and 53 (remove group) take a [`PbInt`](dt_codec::PbInt);
//! 47–49 answer with a [`PbLong`](dt_codec::PbLong) index; 50–53 and 56 answer with an
//! empty body; 54–56 take an empty request.

use bytes::BytesMut;
use dt_codec::encode::{self, Encodable};
use dt_codec::{BytesCollector, Chunk, NestedParser, ParseStatus, PbCallback, PbError};

use super::{add_id, check_count, collect_str, int32, put_ids, size_ids, RpcBody};

/// `AdminPrepareConfigChangeReq` (47): the expected current sets and the new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminPrepareConfigChangeReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, repeated fixed32: the current members, as the admin expects them.
    pub members: Vec<i32>,
    /// Field 3, repeated fixed32: the current observers, as the admin expects them.
    pub observers: Vec<i32>,
    /// Field 4, repeated fixed32: the new members.
    pub prepared_members: Vec<i32>,
    /// Field 5, repeated fixed32: the new observers.
    pub prepared_observers: Vec<i32>,
}

impl Encodable for AdminPrepareConfigChangeReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + size_ids(2, &self.members)
            + size_ids(3, &self.observers)
            + size_ids(4, &self.prepared_members)
            + size_ids(5, &self.prepared_observers)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        put_ids(out, 2, &self.members);
        put_ids(out, 3, &self.observers);
        put_ids(out, 4, &self.prepared_members);
        put_ids(out, 5, &self.prepared_observers);
    }
}

/// Decoder of [`AdminPrepareConfigChangeReq`].
#[derive(Debug, Default)]
pub struct AdminPrepareConfigChangeReqCallback {
    msg: AdminPrepareConfigChangeReq,
}

impl PbCallback for AdminPrepareConfigChangeReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = AdminPrepareConfigChangeReq::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 1 {
            self.msg.group_id = int32(v);
        }
        Ok(())
    }
    fn fixed32(&mut self, field: u32, v: u32) -> Result<(), PbError> {
        match field {
            2 => add_id(&mut self.msg.members, v),
            3 => add_id(&mut self.msg.observers, v),
            4 => add_id(&mut self.msg.prepared_members, v),
            5 => add_id(&mut self.msg.prepared_observers, v),
            _ => {}
        }
        Ok(())
    }
}

impl RpcBody for AdminPrepareConfigChangeReq {
    type Callback = AdminPrepareConfigChangeReqCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

/// `AdminCommitOrAbortReq` (48 commit, 49 abort; abort ignores `prepare_index`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdminCommitOrAbortReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, fixed64: the index the prepare returned.
    pub prepare_index: i64,
}

impl Encodable for AdminCommitOrAbortReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id) + encode::size_fixed64(2, self.prepare_index as u64)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_fixed64(out, 2, self.prepare_index as u64);
    }
}

/// Decoder of [`AdminCommitOrAbortReq`].
#[derive(Debug, Default)]
pub struct AdminCommitOrAbortReqCallback {
    msg: AdminCommitOrAbortReq,
}

impl PbCallback for AdminCommitOrAbortReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = AdminCommitOrAbortReq::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 1 {
            self.msg.group_id = int32(v);
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 2 {
            self.msg.prepare_index = v as i64;
        }
        Ok(())
    }
}

impl RpcBody for AdminCommitOrAbortReq {
    type Callback = AdminCommitOrAbortReqCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

/// `AdminAddNodeReq` (50): the same three fields as a [`RaftNode`] (node id, host,
/// replicate port), so one message type and one decoder serve both.
pub type AdminAddNodeReq = RaftNode;

/// `AdminAddGroupReq` (52).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminAddGroupReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, string: comma-separated member ids.
    pub node_id_of_members: String,
    /// Field 3, string: comma-separated observer ids.
    pub node_id_of_observers: String,
}

impl Encodable for AdminAddGroupReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_str(2, &self.node_id_of_members)
            + encode::size_str(3, &self.node_id_of_observers)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_str(out, 2, &self.node_id_of_members);
        encode::put_str(out, 3, &self.node_id_of_observers);
    }
}

/// Decoder of [`AdminAddGroupReq`].
#[derive(Debug, Default)]
pub struct AdminAddGroupReqCallback {
    msg: AdminAddGroupReq,
    acc: BytesCollector,
}

impl PbCallback for AdminAddGroupReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = AdminAddGroupReq::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 1 {
            self.msg.group_id = int32(v);
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        match field {
            2 => collect_str(&mut self.acc, &chunk, &mut self.msg.node_id_of_members),
            3 => collect_str(&mut self.acc, &chunk, &mut self.msg.node_id_of_observers),
            _ => Ok(()),
        }
    }
}

impl RpcBody for AdminAddGroupReq {
    type Callback = AdminAddGroupReqCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

/// `RaftNode`: one element of [`AdminListNodesResp`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftNode {
    /// Field 1, int32.
    pub node_id: i32,
    /// Field 2, string.
    pub host: String,
    /// Field 3, int32: the replicate port.
    pub port: i32,
}

impl Encodable for RaftNode {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.node_id)
            + encode::size_str(2, &self.host)
            + encode::size_int32(3, self.port)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.node_id);
        encode::put_str(out, 2, &self.host);
        encode::put_int32(out, 3, self.port);
    }
}

/// Decoder of [`RaftNode`] (whole, as [`AdminAddNodeReq`], or nested by
/// [`AdminListNodesRespCallback`]).
#[derive(Debug, Default)]
pub struct RaftNodeCallback {
    node: RaftNode,
    acc: BytesCollector,
}

impl PbCallback for RaftNodeCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.node = RaftNode::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.node.node_id = int32(v),
            3 => self.node.port = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 2 {
            collect_str(&mut self.acc, &chunk, &mut self.node.host)?;
        }
        Ok(())
    }
}

impl RpcBody for RaftNode {
    type Callback = RaftNodeCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        Ok(cb.node)
    }
}

/// Checks that a list did not announce more elements than arrived.
fn check_complete(count: Option<usize>, got: usize) -> Result<(), PbError> {
    let n = count.unwrap_or(0);
    if n != got {
        return Err(PbError::invalid(format!(
            "list size {n} but {got} elements"
        )));
    }
    Ok(())
}

/// Checks that one more element may arrive after a count of `count`.
fn check_room(count: Option<usize>, got: usize) -> Result<(), PbError> {
    match count {
        None => Err(PbError::invalid("list element before its size")),
        Some(n) if got >= n => Err(PbError::invalid(format!(
            "more list elements than its size {n}"
        ))),
        _ => Ok(()),
    }
}

/// `AdminListNodesResp` (54): every node of the server's node table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminListNodesResp {
    /// Field 2, repeated RaftNode (count first, in field 1).
    pub nodes: Vec<RaftNode>,
}

impl Encodable for AdminListNodesResp {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.nodes.len() as i32)
            + encode::size_repeated_nested(2, &self.nodes)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.nodes.len() as i32);
        encode::put_repeated_nested(out, 2, &self.nodes);
    }
}

/// Decoder of [`AdminListNodesResp`].
#[derive(Debug, Default)]
pub struct AdminListNodesRespCallback {
    msg: AdminListNodesResp,
    body_len: usize,
    count: Option<usize>,
    node: Option<NestedParser<RaftNodeCallback>>,
}

impl PbCallback for AdminListNodesRespCallback {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.msg = AdminListNodesResp::default();
        self.body_len = len;
        self.count = None;
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 1 {
            let n = check_count(1, v, self.count.is_some(), self.body_len, 2)?;
            if !self.msg.nodes.is_empty() {
                return Err(PbError::invalid("list size after its elements"));
            }
            self.msg.nodes.reserve(n.min(64));
            self.count = Some(n);
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field != 2 {
            return Ok(());
        }
        if chunk.is_first() {
            check_room(self.count, self.msg.nodes.len())?;
        }
        let p = self
            .node
            .get_or_insert_with(|| NestedParser::new(RaftNodeCallback::default()));
        match p.feed(field, &chunk)? {
            Some(ParseStatus::Finished) => {
                let node = std::mem::take(&mut p.callback_mut().node);
                self.msg.nodes.push(node);
            }
            Some(_) => return Err(PbError::invalid("node rejected")),
            None => {}
        }
        Ok(())
    }
}

impl RpcBody for AdminListNodesResp {
    type Callback = AdminListNodesRespCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        check_complete(cb.count, cb.msg.nodes.len())?;
        Ok(cb.msg)
    }
}

/// `AdminListGroupsResp` (55): the ids of the server's groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminListGroupsResp {
    /// Field 2, repeated int32, unpacked (count first, in field 1).
    pub group_ids: Vec<i32>,
}

impl Encodable for AdminListGroupsResp {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_ids.len() as i32)
            + encode::size_repeated_int32(2, &self.group_ids)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_ids.len() as i32);
        encode::put_repeated_int32(out, 2, &self.group_ids);
    }
}

/// Decoder of [`AdminListGroupsResp`].
#[derive(Debug, Default)]
pub struct AdminListGroupsRespCallback {
    msg: AdminListGroupsResp,
    body_len: usize,
    count: Option<usize>,
}

impl PbCallback for AdminListGroupsRespCallback {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.msg = AdminListGroupsResp::default();
        self.body_len = len;
        self.count = None;
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => {
                let n = check_count(1, v, self.count.is_some(), self.body_len, 2)?;
                if !self.msg.group_ids.is_empty() {
                    return Err(PbError::invalid("list size after its elements"));
                }
                self.msg.group_ids.reserve(n);
                self.count = Some(n);
            }
            2 => {
                if self.count.is_some_and(|n| self.msg.group_ids.len() >= n) {
                    // The reference discards the message without failing the stream.
                    return Err(PbError::rejected("more group ids than the list size"));
                }
                check_room(self.count, self.msg.group_ids.len())?;
                self.msg.group_ids.push(int32(v));
            }
            _ => {}
        }
        Ok(())
    }
}

impl RpcBody for AdminListGroupsResp {
    type Callback = AdminListGroupsRespCallback;
    fn finish(cb: Self::Callback) -> Result<Self, PbError> {
        check_complete(cb.count, cb.msg.group_ids.len())?;
        Ok(cb.msg)
    }
}
