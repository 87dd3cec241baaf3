//! The watch messages and the DtKV status (`wire-protocol.md` §6.7 and §6.9,
//! `dtkv-server.md` §7): [`WatchReq`] (DTKV_SYNC_WATCH, 77), [`WatchNotifyReq`] with its
//! [`WatchNotify`] items and the client's [`WatchNotifyResp`] (DTKV_WATCH_NOTIFY_PUSH,
//! 78), and [`KvStatusResp`] (DTKV_QUERY_STATUS, 79, whose request is a
//! [`PbInt`](dt_codec::PbInt) group id).

use bytes::{Bytes, BytesMut};
use dt_codec::encode::{self, Encodable};
use dt_codec::{BytesCollector, Chunk, NestedParser, ParseStatus, PbCallback, PbError};

use super::{int32, presize, KvBody};

/// The most keys one [`WatchReq`] may announce (the reference's server limit).
pub const MAX_WATCH_KEYS: i32 = 50_000;

/// `WatchReq`: register, refresh or remove watches of this connection in one group.
///
/// Per key: a known index ≥ 0 registers (0: "I know nothing") or refreshes the watch, a
/// negative one (the reference uses −1) removes it. With `sync_all` the list is the whole
/// watch set of the connection for the group; `sync_all` with no keys removes them all.
/// `keys_size` (field 3) is not a member: it is written as the number of keys, before the
/// indexes and keys, which the encoder writes in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, bool (int32 1/0).
    pub sync_all: bool,
    /// Field 4, repeated fixed64 (unpacked; zeros written): one per key.
    pub known_raft_indexes: Vec<i64>,
    /// Field 5, repeated bytes.
    pub keys: Vec<Bytes>,
}

impl Encodable for WatchReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_bool(2, self.sync_all)
            + encode::size_int32(3, self.keys.len() as i32)
            + self.known_raft_indexes.len() * (encode::size_tag(4) + 8)
            + encode::size_repeated_bytes(5, &self.keys)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_bool(out, 2, self.sync_all);
        encode::put_int32(out, 3, self.keys.len() as i32);
        for &i in &self.known_raft_indexes {
            // Unpacked, zeros written.
            encode::put_tag(out, 4, dt_codec::wire::WIRE_FIXED64);
            out.extend_from_slice(&(i as u64).to_le_bytes());
        }
        encode::put_repeated_bytes(out, 5, &self.keys);
    }
}

/// Decoder of [`WatchReq`] with the reference server's rules (`vectors/README.md`,
/// errata 4):
///
/// * `keys_size` must come before any index or key; negative or above
///   [`MAX_WATCH_KEYS`] is fatal; so is an element before it, more elements than it
///   announced, or a second `keys_size` (the reference re-allocates and then fails in
///   various ways; we refuse it outright).
/// * Fewer elements than announced are padded: a missing index reads as 0 ("new watch"),
///   a missing key as empty, which the server then refuses as INVALID_KEY.
/// * Indexes sent packed (wire type 2) are ignored.
#[derive(Debug, Default)]
pub struct WatchReqCallback {
    msg: WatchReq,
    keys_size: Option<usize>,
    indexes: usize,
    acc: BytesCollector,
}

impl WatchReqCallback {
    fn announced(&self, what: &str) -> Result<usize, PbError> {
        self.keys_size
            .ok_or_else(|| PbError::invalid(format!("WatchReq: {what} before keys_size")))
    }
}

impl PbCallback for WatchReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        *self = WatchReqCallback::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => self.msg.sync_all = v != 0,
            3 => {
                let n = int32(v);
                if !(0..=MAX_WATCH_KEYS).contains(&n) {
                    return Err(PbError::invalid(format!("WatchReq: invalid key size: {n}")));
                }
                if self.keys_size.is_some() {
                    return Err(PbError::invalid("WatchReq: keys_size repeated"));
                }
                self.keys_size = Some(n as usize);
            }
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 4 {
            let n = self.announced("known raft index")?;
            if self.indexes >= n {
                return Err(PbError::invalid(format!(
                    "WatchReq: more known raft indexes than keys_size {n}"
                )));
            }
            self.indexes += 1;
            self.msg.known_raft_indexes.push(v as i64);
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field != 5 {
            return Ok(());
        }
        let n = self.announced("key")?;
        if chunk.is_first() && self.msg.keys.len() >= n {
            return Err(PbError::invalid(format!(
                "WatchReq: more keys than keys_size {n}"
            )));
        }
        if let Some(b) = self.acc.push(&chunk) {
            self.msg.keys.push(b);
        }
        Ok(())
    }
}

impl KvBody for WatchReq {
    type Callback = WatchReqCallback;
    fn finish(cb: WatchReqCallback) -> Result<Self, PbError> {
        let mut m = cb.msg;
        let n = cb.keys_size.unwrap_or(0);
        m.known_raft_indexes.resize(n, 0);
        m.keys.resize(n, Bytes::new());
        Ok(m)
    }
}

/// The state a [`WatchNotify`] reports (its `state` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchState {
    /// 0: the key does not exist.
    NotExists,
    /// 1: the key holds a value.
    ValueExists,
    /// 2: the key is a directory.
    DirectoryExists,
}

impl WatchState {
    /// The wire value.
    pub const fn code(self) -> i32 {
        match self {
            WatchState::NotExists => 0,
            WatchState::ValueExists => 1,
            WatchState::DirectoryExists => 2,
        }
    }

    /// The state for a wire value, `None` for values outside 0–2.
    pub const fn from_code(v: i32) -> Option<WatchState> {
        match v {
            0 => Some(WatchState::NotExists),
            1 => Some(WatchState::ValueExists),
            2 => Some(WatchState::DirectoryExists),
            _ => None,
        }
    }

    /// The reference's name.
    pub const fn name(self) -> &'static str {
        match self {
            WatchState::NotExists => "NOT_EXISTS",
            WatchState::ValueExists => "VALUE_EXISTS",
            WatchState::DirectoryExists => "DIRECTORY_EXISTS",
        }
    }
}

/// `WatchNotify`: the current state of one watched key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchNotify {
    /// Field 1, fixed64: the node's update index, or the removal index when missing.
    pub raft_index: i64,
    /// Field 2, int32: a [`WatchState`] value (kept raw so unknown values survive).
    pub state: i32,
    /// Field 3, bytes: the watched key.
    pub key: Bytes,
    /// Field 4, bytes: the value (state 1 only).
    pub value: Bytes,
}

impl WatchNotify {
    /// The state, `None` when the value is not one of the three known.
    pub fn watch_state(&self) -> Option<WatchState> {
        WatchState::from_code(self.state)
    }
}

impl Encodable for WatchNotify {
    fn encoded_size(&self) -> usize {
        encode::size_fixed64(1, self.raft_index as u64)
            + encode::size_int32(2, self.state)
            + encode::size_bytes(3, &self.key)
            + encode::size_bytes(4, &self.value)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed64(out, 1, self.raft_index as u64);
        encode::put_int32(out, 2, self.state);
        encode::put_bytes(out, 3, &self.key);
        encode::put_bytes(out, 4, &self.value);
    }
}

/// Decoder of [`WatchNotify`].
#[derive(Debug, Default)]
pub struct WatchNotifyCallback {
    msg: WatchNotify,
    acc: BytesCollector,
}

impl WatchNotifyCallback {
    /// Takes the decoded item out.
    pub fn take(&mut self) -> WatchNotify {
        std::mem::take(&mut self.msg)
    }
}

impl PbCallback for WatchNotifyCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = WatchNotify::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 2 {
            self.msg.state = int32(v);
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 1 {
            self.msg.raft_index = v as i64;
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 3 || field == 4 {
            if let Some(b) = self.acc.push(&chunk) {
                if field == 3 {
                    self.msg.key = b;
                } else {
                    self.msg.value = b;
                }
            }
        }
        Ok(())
    }
}

impl KvBody for WatchNotify {
    type Callback = WatchNotifyCallback;
    fn finish(mut cb: WatchNotifyCallback) -> Result<Self, PbError> {
        Ok(cb.take())
    }
}

/// `WatchNotifyReq`: a push of notifications from the server (DTKV_WATCH_NOTIFY_PUSH).
/// `list_size` (field 2) is written as the number of items, before them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchNotifyReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 3, repeated WatchNotify.
    pub notify_list: Vec<WatchNotify>,
}

impl Encodable for WatchNotifyReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.notify_list.len() as i32)
            + encode::size_repeated_nested(3, &self.notify_list)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.notify_list.len() as i32);
        encode::put_repeated_nested(out, 3, &self.notify_list);
    }
}

/// Decoder of [`WatchNotifyReq`], as the reference client decodes it: `list_size`
/// (re)creates the list (so items before it are dropped), items without any `list_size`
/// are accepted.
#[derive(Debug, Default)]
pub struct WatchNotifyReqCallback {
    msg: WatchNotifyReq,
    body_len: usize,
    item: Option<NestedParser<WatchNotifyCallback>>,
}

impl PbCallback for WatchNotifyReqCallback {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.msg = WatchNotifyReq::default();
        self.body_len = len;
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => {
                self.msg.notify_list = Vec::with_capacity(presize(int32(v), self.body_len, 2));
            }
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field != 3 {
            return Ok(());
        }
        let p = self
            .item
            .get_or_insert_with(|| NestedParser::new(WatchNotifyCallback::default()));
        match p.feed(field, &chunk)? {
            Some(ParseStatus::Finished) => {
                let n = p.callback_mut().take();
                self.msg.notify_list.push(n);
            }
            Some(_) => return Err(PbError::invalid("WatchNotify rejected")),
            None => {}
        }
        Ok(())
    }
}

impl KvBody for WatchNotifyReq {
    type Callback = WatchNotifyReqCallback;
    fn finish(cb: WatchNotifyReqCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

/// `WatchNotifyResp`: the client's answer to a push, one result per notification
/// (SUCCESS or REMOVE_WATCH), as `repeated int32` (unpacked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchNotifyResp {
    /// Field 1, repeated int32: [`KvCode`](super::KvCode) values.
    pub results: Vec<i32>,
}

impl Encodable for WatchNotifyResp {
    fn encoded_size(&self) -> usize {
        encode::size_repeated_int32(1, &self.results)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_repeated_int32(out, 1, &self.results);
    }
}

/// Decoder of [`WatchNotifyResp`] as the reference server reads it: any field other than
/// field 1 makes it discard the response ([`PbError::Rejected`]: the push is retried);
/// with [`WatchNotifyRespCallback::expecting`], more results than notifications pushed is
/// fatal.
#[derive(Debug, Default)]
pub struct WatchNotifyRespCallback {
    msg: WatchNotifyResp,
    expected: Option<usize>,
}

impl WatchNotifyRespCallback {
    /// A decoder for the answer to a push of `n` notifications.
    pub fn expecting(n: usize) -> Self {
        WatchNotifyRespCallback {
            expected: Some(n),
            ..Default::default()
        }
    }

    fn other(field: u32) -> Result<(), PbError> {
        Err(PbError::rejected(format!(
            "WatchNotifyResp: unexpected field {field}"
        )))
    }
}

impl PbCallback for WatchNotifyRespCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = WatchNotifyResp::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field != 1 {
            return Self::other(field);
        }
        if let Some(n) = self.expected {
            if self.msg.results.len() >= n {
                return Err(PbError::invalid(format!(
                    "WatchNotifyResp: more than {n} results"
                )));
            }
        }
        self.msg.results.push(int32(v));
        Ok(())
    }
    fn fixed32(&mut self, field: u32, _v: u32) -> Result<(), PbError> {
        Self::other(field)
    }
    fn fixed64(&mut self, field: u32, _v: u64) -> Result<(), PbError> {
        Self::other(field)
    }
    fn bytes(&mut self, field: u32, _chunk: Chunk<'_>) -> Result<(), PbError> {
        Self::other(field)
    }
}

impl KvBody for WatchNotifyResp {
    type Callback = WatchNotifyRespCallback;
    fn finish(cb: WatchNotifyRespCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

/// `KvStatusResp`: the answer to DTKV_QUERY_STATUS.
///
/// The Raft status is dt-raft's `QueryStatusResp`; this crate does not depend on dt-raft
/// yet, so it is kept as its encoded bytes (decode it with
/// `dt_raft::rpc::QueryStatusResp::decode`). `None` means absent; `Some` of empty bytes
/// is a present, all-default status (`0A 00`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStatusResp {
    /// Field 1, embedded `QueryStatusResp`, raw.
    pub raft_server_status: Option<Bytes>,
    /// Field 2, int32: the number of watches the calling connection has in the group.
    pub watch_count: i32,
}

impl Encodable for KvStatusResp {
    fn encoded_size(&self) -> usize {
        encode::size_nested(1, self.raft_server_status.as_ref())
            + encode::size_int32(2, self.watch_count)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_nested(out, 1, self.raft_server_status.as_ref());
        encode::put_int32(out, 2, self.watch_count);
    }
}

/// Decoder of [`KvStatusResp`].
#[derive(Debug, Default)]
pub struct KvStatusRespCallback {
    msg: KvStatusResp,
    acc: BytesCollector,
}

impl PbCallback for KvStatusRespCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = KvStatusResp::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 2 {
            self.msg.watch_count = int32(v);
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 1 {
            if let Some(b) = self.acc.push(&chunk) {
                self.msg.raft_server_status = Some(b);
            }
        }
        Ok(())
    }
}

impl KvBody for KvStatusResp {
    type Callback = KvStatusRespCallback;
    fn finish(cb: KvStatusRespCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn watch_req_server_rules() {
        // More keys than keys_size, key before keys_size, too many, negative: fatal.
        for bad in [
            "18012100000000000000002a01612a0162",
            "2a01611801210000000000000000",
            "18d18603",
            "18ffffffffffffffffff01",
            "180118012a0161",
        ] {
            let e = WatchReq::decode(&hex(bad)).unwrap_err();
            assert!(matches!(e, PbError::Invalid(_)), "{bad}: {e:?}");
        }
        // Packed indexes ignored; fewer indexes padded with 0; fewer keys padded empty.
        let r = WatchReq::decode(&hex("180122082a000000000000002a0161")).unwrap();
        assert_eq!(r.known_raft_indexes, [0]);
        let r = WatchReq::decode(&hex("18022105000000000000002a01612a0162")).unwrap();
        assert_eq!(r.known_raft_indexes, [5, 0]);
        assert_eq!(r.keys, [Bytes::from("a"), Bytes::from("b")]);
        let r = WatchReq::decode(&hex("18022100000000000000002100000000000000002a0161")).unwrap();
        assert_eq!(r.keys, [Bytes::from("a"), Bytes::new()]);
    }

    #[test]
    fn notify_resp_rules() {
        let mut p = dt_codec::PbParser::new(WatchNotifyRespCallback::expecting(1));
        assert!(p.parse_whole(&hex("08000800")).is_err());
        assert_eq!(
            WatchNotifyResp::decode(&hex("08001001")).unwrap_err(),
            PbError::rejected("body rejected")
        );
        let r = WatchNotifyResp {
            results: vec![0, 0, 16, 0],
        };
        assert_eq!(WatchNotifyResp::decode(&encode::to_bytes(&r)).unwrap(), r);
    }

    #[test]
    fn notify_req_list_size_recreates() {
        // An item, then list_size: the item is dropped (the reference re-creates).
        let item = WatchNotify {
            raft_index: 1,
            state: 1,
            key: "a".into(),
            value: Bytes::new(),
        };
        let mut out = BytesMut::new();
        encode::put_nested(&mut out, 3, Some(&item));
        encode::put_int32(&mut out, 2, 1);
        assert!(WatchNotifyReq::decode(&out.freeze())
            .unwrap()
            .notify_list
            .is_empty());
        let r = WatchNotifyReq::decode(&hex("1a0e09010000000000000010011a0161")).unwrap();
        assert_eq!(r.notify_list, [item]);
    }
}
