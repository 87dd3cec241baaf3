//! Wire bodies of the Raft RPCs and admin commands, byte-compatible with the reference
//! (`raft.md` §3, §5.3, §7.1–7.2, §10–14; `wire-protocol.md` §4–5 and Appendix A).
//!
//! Each message is a plain struct with the reference's field names, an
//! [`Encodable`](dt_codec::Encodable) encoder following the reference's omission rules,
//! and a [`PbCallback`](dt_codec::PbCallback) decoder
//! (`*Callback`) that can be driven by a streaming [`dt_codec::PbParser`] or by
//! [`dt_net::ReadPacket::decode_body`]. [`RpcBody::decode`] decodes a whole body in one
//! call.
//!
//! Decoding is bounded: every count read from the wire is checked against the bytes that
//! can follow it, a list never holds more elements than its count announced, and a
//! malformed body gives a [`PbError`] (never a panic). Entry headers and bodies of
//! [`LogItem`]s and snapshot chunks are zero-copy [`bytes::Bytes`] slices of the received
//! body when it arrived in one piece.
//!
//! | family | file | messages |
//! |---|---|---|
//! | codes | [`codes`] | command codes, append codes, log item types |
//! | vote | [`vote`] | [`VoteReq`], [`VoteResp`] |
//! | replication | [`append`] | [`AppendReq`], [`LogItem`], [`AppendResp`] |
//! | snapshot | [`snapshot`] | [`InstallSnapshotReq`] |
//! | pings | [`ping`] | [`NodePing`], [`RaftPing`] |
//! | transfer | [`transfer`] | [`TransferLeaderReq`] (commands 44 and 45) |
//! | admin | [`admin`] | config change 47–49, nodes and groups 50–55 |
//! | status | [`status`] | [`QueryStatusResp`] |
//!
//! Single-int bodies (query-status and remove-group group ids, remove-node node id) are
//! [`dt_codec::PbInt`]; the config-change responses are [`dt_codec::PbLong`]. Commands
//! 44, 45, 50–53 and 56 answer with an empty body; 54, 55 and 56 take an empty request.
//!
//! ## Mapping to the core and the store
//!
//! The wire structs keep the reference's signed types (`int32` terms and ids, `fixed64`
//! indexes as `i64`). [`crate::core`]'s messages convert to them with `From` /
//! `from_core` / [`AppendReq::from_send`], and back with `TryFrom`, which refuses
//! negative terms, ids and indexes, an unknown append code, or a `success` flag that
//! disagrees with it: [`VoteReq`], [`VoteResp`], [`AppendReq`] (entries reduced to
//! index and term), [`AppendResp`], [`TransferLeaderReq`], [`InstallSnapshotReq`] (to
//! the core's `InstallReq`; [`InstallSnapshotReq::first_from_core`] builds a stream's
//! first request). [`QueryStatusResp::from_core`] fills a status response from the
//! core's `CoreStatus`. A [`LogItem`] converts to and
//! from the store's [`store::LogItem`](crate::store::LogItem) without copying header or
//! body.
//!
//! ```
//! use bytes::Bytes;
//! use dt_codec::encode;
//! use dt_raft::rpc::{AppendReq, LogItem, LogItemType, RaftCommands, RpcBody};
//! use dt_net::{WriteBody, WritePacket};
//!
//! let req = AppendReq {
//!     term: 2,
//!     leader_id: 1,
//!     prev_log_index: 102,
//!     prev_log_term: 2,
//!     leader_commit: 102,
//!     logs: vec![LogItem {
//!         item_type: LogItemType::TYPE_HEARTBEAT,
//!         term: 2,
//!         index: 103,
//!         prev_log_term: 2,
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! };
//! let body = encode::to_bytes(&req);
//! assert_eq!(AppendReq::decode(&body).unwrap(), req);
//! // As a packet body, encoded straight into the socket buffer:
//! let _p = WritePacket::request(RaftCommands::RAFT_APPEND_ENTRIES, WriteBody::Encodable(Box::new(req)));
//! ```
//!
//! ## Where this differs from the reference
//!
//! * Sets of node ids keep the wire order and drop repeated ids (the reference collects
//!   them into a `HashSet`, so re-encoding a decoded set gives the same bytes for every
//!   set the reference writes).
//! * A count field (AppendEntries `logs_size`, list sizes) must match the number of
//!   elements that follow and must come before them; the reference pre-sizes from it and
//!   fails or pads in various ways otherwise. A count larger than the body could hold is
//!   refused before anything is allocated. More group ids than the size of an
//!   [`AdminListGroupsResp`] reject the message without failing the stream
//!   ([`PbError::Rejected`]), as in the reference.
//! * Strings the reference writes with its ASCII writer (one byte per UTF-16 unit) are
//!   written as UTF-8; they are identical for the ASCII ids and host names they carry.

use bytes::{BufMut, BytesMut};
use dt_codec::encode;
use dt_codec::wire::WIRE_FIXED32;
use dt_codec::{BytesCollector, Chunk, PbError};

pub mod admin;
pub mod append;
pub mod codes;
pub mod ping;
pub mod snapshot;
pub mod status;
pub mod transfer;
pub mod vote;

pub use admin::{
    AdminAddGroupReq, AdminAddNodeReq, AdminCommitOrAbortReq, AdminListGroupsResp,
    AdminListNodesResp, AdminPrepareConfigChangeReq, RaftNode,
};
pub use append::{AppendReq, AppendResp, LogItem};
pub use codes::{AppendCodes, LogItemType, RaftCommands};
pub use ping::{NodePing, RaftPing};
pub use snapshot::InstallSnapshotReq;
pub use status::QueryStatusResp;
pub use transfer::TransferLeaderReq;
pub use vote::{VoteReq, VoteResp};

/// A message body with a decoder callback: dt-codec's [`PbBody`](dt_codec::PbBody)
/// under the name the Raft RPC code uses.
pub use dt_codec::PbBody as RpcBody;

/// Reads an `int32` field value the reference's way: the low 32 bits of the varint.
#[inline]
pub(crate) fn int32(v: i64) -> i32 {
    v as i32
}

/// A set of node ids (`repeated fixed32`): repeated ids are dropped, wire order kept.
#[inline]
pub(crate) fn add_id(set: &mut Vec<i32>, id: u32) {
    let id = id as i32;
    if !set.contains(&id) {
        set.push(id);
    }
}

/// Size of a set of ids written as `repeated fixed32` (unpacked).
pub(crate) fn size_ids(field: u32, v: &[i32]) -> usize {
    v.len() * (encode::size_tag(field) + 4)
}

/// Writes a set of ids as `repeated fixed32` (unpacked), in the order given.
pub(crate) fn put_ids(out: &mut BytesMut, field: u32, v: &[i32]) {
    for &x in v {
        encode::put_tag(out, field, WIRE_FIXED32);
        out.put_u32_le(x as u32);
    }
}

/// Checks a count field read from the wire: not negative, not repeated, and not larger
/// than the number of elements the rest of the body could hold (each element takes at
/// least `min_elem` bytes). Returns the count.
pub(crate) fn check_count(
    field: u32,
    value: i64,
    seen: bool,
    body_len: usize,
    min_elem: usize,
) -> Result<usize, PbError> {
    if seen {
        return Err(PbError::invalid(format!("count field {field} repeated")));
    }
    let v = int32(value);
    if v < 0 {
        return Err(PbError::invalid(format!(
            "negative count {v} in field {field}"
        )));
    }
    let v = v as usize;
    if v > body_len / min_elem.max(1) {
        return Err(PbError::invalid(format!(
            "count {v} in field {field} exceeds what a {body_len}-byte body can hold"
        )));
    }
    Ok(v)
}

/// A term or node id from the wire as the core's unsigned type; negative values are
/// refused.
pub(crate) fn unsigned32(what: &'static str, v: i32) -> Result<u32, PbError> {
    u32::try_from(v).map_err(|_| PbError::invalid(format!("negative {what}: {v}")))
}

/// An index from the wire as the core's unsigned type; negative values are refused.
pub(crate) fn unsigned64(what: &'static str, v: i64) -> Result<u64, PbError> {
    u64::try_from(v).map_err(|_| PbError::invalid(format!("negative {what}: {v}")))
}

/// Collects a string field (invalid UTF-8 replaced, as the reference does).
pub(crate) fn collect_str(
    acc: &mut BytesCollector,
    chunk: &Chunk<'_>,
    out: &mut String,
) -> Result<(), PbError> {
    if let Some(b) = acc.push(chunk) {
        *out = dt_codec::utf8_lossy(&b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_checks() {
        assert_eq!(check_count(7, 3, false, 30, 2).unwrap(), 3);
        assert!(check_count(7, -1, false, 30, 2).is_err());
        assert!(check_count(7, 16, false, 30, 2).is_err());
        assert!(check_count(7, 1, true, 30, 2).is_err());
        let mut s = vec![];
        add_id(&mut s, 3);
        add_id(&mut s, 1);
        add_id(&mut s, 3);
        assert_eq!(s, [3, 1]);
    }
}
