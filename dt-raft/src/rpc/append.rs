//! RAFT_APPEND_ENTRIES (4) bodies: [`AppendReq`] with its [`LogItem`]s (`raft.md` §7.1,
//! §6.1) and [`AppendResp`], also the response of RAFT_INSTALL_SNAPSHOT (§7.2).

use bytes::{Bytes, BytesMut};
use dt_codec::encode::{self, Encodable};
use dt_codec::{BytesCollector, Chunk, NestedParser, ParseStatus, PbCallback, PbError};

use super::{check_count, int32, unsigned32, unsigned64, RpcBody};
use crate::core::msg::{self, AppendCode};
use crate::store;

/// One entry of an [`AppendReq`] (the reference's `LogItem` as it travels on the wire).
///
/// `header` and `body` are the business bytes, kept raw (the state machine decodes
/// them); after decoding they are zero-copy slices of the received body. `None` is an
/// absent field, `Some` of an empty value a zero-length field: both are kept so the
/// entry re-encodes to the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogItem {
    /// Field 1, int32: the entry type ([`LogItemType`](super::LogItemType)).
    pub item_type: i32,
    /// Field 2, int32: the state-machine operation code (0–127).
    pub biz_type: i32,
    /// Field 3, int32: the entry's term.
    pub term: i32,
    /// Field 4, fixed64: the entry's index.
    pub index: i64,
    /// Field 5, int32: the term of entry `index - 1`.
    pub prev_log_term: i32,
    /// Field 6, fixed64: leader wall-clock milliseconds at creation.
    pub timestamp: i64,
    /// Field 7, bytes: the business header.
    pub header: Option<Bytes>,
    /// Field 8, bytes: the business body.
    pub body: Option<Bytes>,
}

fn size_opt_bytes(field: u32, b: &Option<Bytes>) -> usize {
    b.as_ref()
        .map_or(0, |b| encode::size_len_field(field, b.len()))
}

fn put_opt_bytes(out: &mut BytesMut, field: u32, b: &Option<Bytes>) {
    if let Some(b) = b {
        encode::put_len_prefix(out, field, b.len());
        out.extend_from_slice(b);
    }
}

impl Encodable for LogItem {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.item_type)
            + encode::size_int32(2, self.biz_type)
            + encode::size_int32(3, self.term)
            + encode::size_fixed64(4, self.index as u64)
            + encode::size_int32(5, self.prev_log_term)
            + encode::size_fixed64(6, self.timestamp as u64)
            + size_opt_bytes(7, &self.header)
            + size_opt_bytes(8, &self.body)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.item_type);
        encode::put_int32(out, 2, self.biz_type);
        encode::put_int32(out, 3, self.term);
        encode::put_fixed64(out, 4, self.index as u64);
        encode::put_int32(out, 5, self.prev_log_term);
        encode::put_fixed64(out, 6, self.timestamp as u64);
        put_opt_bytes(out, 7, &self.header);
        put_opt_bytes(out, 8, &self.body);
    }
}

/// Decoder of one [`LogItem`] (used nested by [`AppendReqCallback`]).
#[derive(Debug, Default)]
pub struct LogItemCallback {
    item: LogItem,
    acc: BytesCollector,
}

impl LogItemCallback {
    /// Takes the decoded item out.
    pub fn take(&mut self) -> LogItem {
        std::mem::take(&mut self.item)
    }
}

impl PbCallback for LogItemCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.item = LogItem::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.item.item_type = int32(v),
            2 => self.item.biz_type = int32(v),
            3 => self.item.term = int32(v),
            5 => self.item.prev_log_term = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        match field {
            4 => self.item.index = v as i64,
            6 => self.item.timestamp = v as i64,
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 7 || field == 8 {
            if let Some(b) = self.acc.push(&chunk) {
                if field == 7 {
                    self.item.header = Some(b);
                } else {
                    self.item.body = Some(b);
                }
            }
        }
        Ok(())
    }
}

impl RpcBody for LogItem {
    type Callback = LogItemCallback;
    fn finish(mut cb: LogItemCallback) -> Result<Self, PbError> {
        Ok(cb.take())
    }
}

impl From<&store::LogItem> for LogItem {
    /// The wire form of a stored entry; empty header and body are left out, as the
    /// reference does for entries without them.
    fn from(i: &store::LogItem) -> Self {
        let opt = |b: &Bytes| (!b.is_empty()).then(|| b.clone());
        LogItem {
            item_type: i.item_type as i32,
            biz_type: i.biz_type as i32,
            term: i.term as i32,
            index: i.index as i64,
            prev_log_term: i.prev_log_term as i32,
            timestamp: i.timestamp,
            header: opt(&i.header),
            body: opt(&i.body),
        }
    }
}

impl TryFrom<&LogItem> for store::LogItem {
    type Error = PbError;
    /// The stored form of a received entry (zero-copy for header and body). A type or
    /// biz type outside what the log stores (0–127), or a negative term or index, is
    /// refused.
    fn try_from(i: &LogItem) -> Result<Self, PbError> {
        let byte = |what: &str, v: i32| {
            u8::try_from(v)
                .ok()
                .filter(|b| *b <= 127)
                .ok_or_else(|| PbError::invalid(format!("{what} {v} out of range 0..=127")))
        };
        Ok(store::LogItem {
            item_type: byte("type", i.item_type)?,
            biz_type: byte("biz_type", i.biz_type)?,
            term: unsigned32("term", i.term)?,
            prev_log_term: unsigned32("prev_log_term", i.prev_log_term)?,
            index: unsigned64("index", i.index)?,
            timestamp: i.timestamp,
            header: i.header.clone().unwrap_or_default(),
            body: i.body.clone().unwrap_or_default(),
        })
    }
}

/// `AppendEntriesReq`: entries (or only the commit index) from the leader.
///
/// For a non-empty request `prev_log_index` is the first entry's index − 1 and
/// `prev_log_term` its `prev_log_term`; an empty request carries only group, term,
/// leader and commit index. `logs_size` (field 7) is not a member: it is written as the
/// number of entries, and a decoded body must agree with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendReq {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, int32: the leader's term.
    pub term: i32,
    /// Field 3, int32.
    pub leader_id: i32,
    /// Field 4, fixed64.
    pub prev_log_index: i64,
    /// Field 5, int32.
    pub prev_log_term: i32,
    /// Field 6, fixed64: the leader's commit index.
    pub leader_commit: i64,
    /// Field 8, repeated LogItem (count in field 7, `logs_size`).
    pub logs: Vec<LogItem>,
}

impl AppendReq {
    fn logs_size(&self) -> i32 {
        self.logs.len() as i32
    }

    /// The request for the core's [`AppendSend`](msg::AppendSend) with the entries the
    /// driver read: `prev_log_index`/`prev_log_term` from the first entry, or left out
    /// for an empty append.
    pub fn from_send(group_id: i32, send: &msg::AppendSend, logs: Vec<LogItem>) -> Self {
        let (prev_log_index, prev_log_term) = match logs.first() {
            Some(first) => (send.prev_log_index() as i64, first.prev_log_term),
            None => (0, 0),
        };
        AppendReq {
            group_id,
            term: send.term as i32,
            leader_id: send.leader_id as i32,
            prev_log_index,
            prev_log_term,
            leader_commit: send.leader_commit as i64,
            logs,
        }
    }
}

impl Encodable for AppendReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.term)
            + encode::size_int32(3, self.leader_id)
            + encode::size_fixed64(4, self.prev_log_index as u64)
            + encode::size_int32(5, self.prev_log_term)
            + encode::size_fixed64(6, self.leader_commit as u64)
            + encode::size_int32(7, self.logs_size())
            + encode::size_repeated_nested(8, &self.logs)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.term);
        encode::put_int32(out, 3, self.leader_id);
        encode::put_fixed64(out, 4, self.prev_log_index as u64);
        encode::put_int32(out, 5, self.prev_log_term);
        encode::put_fixed64(out, 6, self.leader_commit as u64);
        encode::put_int32(out, 7, self.logs_size());
        encode::put_repeated_nested(out, 8, &self.logs);
    }
}

/// Smallest encoding of one entry field: its tag and a zero length.
const MIN_ENTRY_FIELD: usize = 2;

/// At most this many entries are allocated ahead of their arrival.
const MAX_PRESIZE: usize = 64;

/// Decoder of [`AppendReq`].
#[derive(Debug, Default)]
pub struct AppendReqCallback {
    msg: AppendReq,
    body_len: usize,
    logs_size: Option<usize>,
    item: Option<NestedParser<LogItemCallback>>,
}

impl PbCallback for AppendReqCallback {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.msg = AppendReq::default();
        self.body_len = len;
        self.logs_size = None;
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => self.msg.term = int32(v),
            3 => self.msg.leader_id = int32(v),
            5 => self.msg.prev_log_term = int32(v),
            7 => {
                let n = check_count(
                    7,
                    v,
                    self.logs_size.is_some(),
                    self.body_len,
                    MIN_ENTRY_FIELD,
                )?;
                if !self.msg.logs.is_empty() {
                    return Err(PbError::invalid("logs_size after the entries"));
                }
                // Pre-size for what a small request holds; an entry in memory is
                // far larger than its smallest encoding, so a count is not trusted further.
                self.msg.logs.reserve(n.min(MAX_PRESIZE));
                self.logs_size = Some(n);
            }
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        match field {
            4 => self.msg.prev_log_index = v as i64,
            6 => self.msg.leader_commit = v as i64,
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field != 8 {
            return Ok(());
        }
        if chunk.is_first() {
            match self.logs_size {
                None => return Err(PbError::invalid("entry before logs_size")),
                Some(n) if self.msg.logs.len() >= n => {
                    return Err(PbError::invalid(format!("more entries than logs_size {n}")))
                }
                _ => {}
            }
        }
        let p = self
            .item
            .get_or_insert_with(|| NestedParser::new(LogItemCallback::default()));
        match p.feed(field, &chunk)? {
            Some(ParseStatus::Finished) => {
                let item = p.callback_mut().take();
                self.msg.logs.push(item);
            }
            Some(_) => return Err(PbError::invalid("entry rejected")),
            None => {}
        }
        Ok(())
    }
}

impl RpcBody for AppendReq {
    type Callback = AppendReqCallback;
    fn finish(cb: AppendReqCallback) -> Result<Self, PbError> {
        let n = cb.logs_size.unwrap_or(0);
        if cb.msg.logs.len() != n {
            return Err(PbError::invalid(format!(
                "logs_size {n} but {} entries",
                cb.msg.logs.len()
            )));
        }
        Ok(cb.msg)
    }
}

impl TryFrom<&AppendReq> for msg::AppendReq {
    type Error = PbError;
    /// The core's view: entries reduced to index and term.
    fn try_from(r: &AppendReq) -> Result<Self, PbError> {
        r.to_core_in(Vec::new())
    }
}

impl AppendReq {
    /// The core's view ([`msg::AppendReq`]), its entry list built in `entries` (emptied
    /// first; pass one the core gave back, [`RaftCore::spare_entries`](crate::core::RaftCore::spare_entries),
    /// to decode without allocating).
    pub fn to_core_in(&self, mut entries: Vec<msg::EntryMeta>) -> Result<msg::AppendReq, PbError> {
        entries.clear();
        // sized at once: collecting through `Result` would grow it from empty
        entries.reserve(self.logs.len());
        for i in &self.logs {
            entries.push(msg::EntryMeta {
                index: unsigned64("index", i.index)?,
                term: unsigned32("term", i.term)?,
            });
        }
        Ok(msg::AppendReq {
            term: unsigned32("term", self.term)?,
            leader_id: unsigned32("leader_id", self.leader_id)?,
            prev_log_index: unsigned64("prev_log_index", self.prev_log_index)?,
            prev_log_term: unsigned32("prev_log_term", self.prev_log_term)?,
            leader_commit: unsigned64("leader_commit", self.leader_commit)?,
            entries,
        })
    }
}

/// `AppendResp`: the answer to AppendEntries and InstallSnapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendResp {
    /// Field 1, int32: the responder's term.
    pub term: i32,
    /// Field 2, int32 1 on success (any non-zero value reads as true).
    pub success: bool,
    /// Field 3, int32: an [`AppendCodes`](super::AppendCodes) value.
    pub append_code: i32,
    /// Field 4, int32: match-position hint.
    pub suggest_term: i32,
    /// Field 5, fixed64: match-position hint.
    pub suggest_index: i64,
}

impl Encodable for AppendResp {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.term)
            + encode::size_bool(2, self.success)
            + encode::size_int32(3, self.append_code)
            + encode::size_int32(4, self.suggest_term)
            + encode::size_fixed64(5, self.suggest_index as u64)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.term);
        encode::put_bool(out, 2, self.success);
        encode::put_int32(out, 3, self.append_code);
        encode::put_int32(out, 4, self.suggest_term);
        encode::put_fixed64(out, 5, self.suggest_index as u64);
    }
}

/// Decoder of [`AppendResp`].
#[derive(Debug, Default)]
pub struct AppendRespCallback {
    msg: AppendResp,
}

impl PbCallback for AppendRespCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = AppendResp::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.term = int32(v),
            2 => self.msg.success = v != 0,
            3 => self.msg.append_code = int32(v),
            4 => self.msg.suggest_term = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 5 {
            self.msg.suggest_index = v as i64;
        }
        Ok(())
    }
}

impl RpcBody for AppendResp {
    type Callback = AppendRespCallback;
    fn finish(cb: AppendRespCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

impl From<&msg::AppendResp> for AppendResp {
    fn from(r: &msg::AppendResp) -> Self {
        AppendResp {
            term: r.term as i32,
            success: r.success(),
            append_code: r.code.code(),
            suggest_term: r.suggest_term as i32,
            suggest_index: r.suggest_index as i64,
        }
    }
}

impl TryFrom<&AppendResp> for msg::AppendResp {
    type Error = PbError;
    /// The core's view; an unknown append code, or `success` disagreeing with it, is
    /// refused.
    fn try_from(r: &AppendResp) -> Result<Self, PbError> {
        let code = AppendCode::from_code(r.append_code)
            .ok_or_else(|| PbError::invalid(format!("unknown append code {}", r.append_code)))?;
        if r.success != (code == AppendCode::Success) {
            return Err(PbError::invalid(format!(
                "success {} with append code {}",
                r.success, r.append_code
            )));
        }
        Ok(msg::AppendResp {
            term: unsigned32("term", r.term)?,
            code,
            suggest_term: unsigned32("suggest_term", r.suggest_term)?,
            suggest_index: unsigned64("suggest_index", r.suggest_index)?,
        })
    }
}
