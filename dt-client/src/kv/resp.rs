//! `KvResp`, `KvResult`, `KvNode`: the response body of the DtKV data commands
//! (`wire-protocol.md` §6.1.2–6.1.4 and §6.4, `dtkv-server.md` §1.3).

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use dt_codec::encode::{self, Encodable};
use dt_codec::plain::{PlainFields, PlainValue};
use dt_codec::{BytesCollector, Chunk, NestedParser, ParseStatus, PbCallback, PbError};

use super::codes::KvCode;
use super::{int32, presize, KvBody};

/// `KvNode`: one node as a client sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvNode {
    /// Field 1, fixed64: index of the entry that created the node.
    pub create_index: i64,
    /// Field 2, fixed64: leader wall-clock ms of that entry.
    pub create_time: i64,
    /// Field 3, fixed64: index of the last change (for a directory: of anything below).
    pub update_index: i64,
    /// Field 4, fixed64: leader wall-clock ms of the last change.
    pub update_time: i64,
    /// Field 5, int32: the `FLAG_*` bits.
    pub flag: i32,
    /// Field 15, bytes: the value (empty for directories).
    pub data: Bytes,
}

impl KvNode {
    /// Flag bit: a directory.
    pub const FLAG_DIR: i32 = 0x1;
    /// Flag bit: a lock directory or a lock entry.
    pub const FLAG_LOCK: i32 = 0x2;
    /// Flag bit: a temporary node (it has an owner and a TTL).
    pub const FLAG_TEMP: i32 = 0x4;

    /// Whether the node is a directory.
    pub fn is_dir(&self) -> bool {
        self.flag & Self::FLAG_DIR != 0
    }
    /// Whether the node belongs to a lock.
    pub fn is_lock(&self) -> bool {
        self.flag & Self::FLAG_LOCK != 0
    }
    /// Whether the node is temporary.
    pub fn is_temp(&self) -> bool {
        self.flag & Self::FLAG_TEMP != 0
    }
}

impl Encodable for KvNode {
    fn encoded_size(&self) -> usize {
        encode::size_fixed64(1, self.create_index as u64)
            + encode::size_fixed64(2, self.create_time as u64)
            + encode::size_fixed64(3, self.update_index as u64)
            + encode::size_fixed64(4, self.update_time as u64)
            + encode::size_int32(5, self.flag)
            + encode::size_bytes(15, &self.data)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed64(out, 1, self.create_index as u64);
        encode::put_fixed64(out, 2, self.create_time as u64);
        encode::put_fixed64(out, 3, self.update_index as u64);
        encode::put_fixed64(out, 4, self.update_time as u64);
        encode::put_int32(out, 5, self.flag);
        encode::put_bytes(out, 15, &self.data);
    }
}

/// Decoder of [`KvNode`].
#[derive(Debug, Default)]
pub struct KvNodeCallback {
    msg: KvNode,
    acc: BytesCollector,
}

impl KvNodeCallback {
    /// Takes the decoded node out.
    pub fn take(&mut self) -> KvNode {
        std::mem::take(&mut self.msg)
    }
}

impl PbCallback for KvNodeCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = KvNode::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 5 {
            self.msg.flag = int32(v);
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        let v = v as i64;
        match field {
            1 => self.msg.create_index = v,
            2 => self.msg.create_time = v,
            3 => self.msg.update_index = v,
            4 => self.msg.update_time = v,
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

impl KvBody for KvNode {
    type Callback = KvNodeCallback;
    fn finish(mut cb: KvNodeCallback) -> Result<Self, PbError> {
        Ok(cb.take())
    }
}

/// `KvResult`: the outcome for one key (or one child, in a list).
///
/// A plain success has no fields and encodes to zero bytes (in a list: `1A 00`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvResult {
    /// Field 1, int32: the business code.
    pub biz_code: KvCode,
    /// Field 2, KvNode: the node, when one is returned (get, batch get, list).
    pub node: Option<KvNode>,
    /// Field 3, bytes: the child's last key segment (list results only; else empty).
    pub key_in_dir: Bytes,
}

impl KvResult {
    /// A result with a code and nothing else.
    pub fn code(biz_code: KvCode) -> Self {
        KvResult {
            biz_code,
            ..Default::default()
        }
    }

    /// A successful result carrying a node.
    pub fn with_node(node: KvNode) -> Self {
        KvResult {
            node: Some(node),
            ..Default::default()
        }
    }
}

impl Encodable for KvResult {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.biz_code.code())
            + encode::size_nested(2, self.node.as_ref())
            + encode::size_bytes(3, &self.key_in_dir)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.biz_code.code());
        encode::put_nested(out, 2, self.node.as_ref());
        encode::put_bytes(out, 3, &self.key_in_dir);
    }
}

/// Decoder of [`KvResult`].
#[derive(Debug, Default)]
pub struct KvResultCallback {
    msg: KvResult,
    node: Option<NestedParser<KvNodeCallback>>,
    acc: BytesCollector,
}

impl KvResultCallback {
    /// Takes the decoded result out.
    pub fn take(&mut self) -> KvResult {
        std::mem::take(&mut self.msg)
    }
}

impl PbCallback for KvResultCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = KvResult::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 1 {
            self.msg.biz_code = KvCode::from_code(int32(v));
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        match field {
            2 => {
                let p = self
                    .node
                    .get_or_insert_with(|| NestedParser::new(KvNodeCallback::default()));
                match p.feed(field, &chunk)? {
                    Some(ParseStatus::Finished) => self.msg.node = Some(p.callback_mut().take()),
                    Some(_) => return Err(PbError::invalid("KvNode rejected")),
                    None => {}
                }
            }
            3 => {
                if let Some(b) = self.acc.push(&chunk) {
                    self.msg.key_in_dir = b;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl KvBody for KvResult {
    type Callback = KvResultCallback;
    fn finish(mut cb: KvResultCallback) -> Result<Self, PbError> {
        Ok(cb.take())
    }
}

/// `KvResp`: the response body of the DtKV data commands.
///
/// `results_size` (field 2) is not a member: it is written as the number of results
/// (omitted when 0) and, as in the reference, only used as an allocation hint when
/// decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvResp {
    /// Field 1, fixed64: the log index of a write (also when it failed with a business
    /// code); 0 for reads.
    pub raft_index: i64,
    /// Field 3, repeated KvResult: one per key, or one per child for a list.
    pub results: Vec<KvResult>,
}

impl KvResp {
    /// A response with one result (shape A of `wire-protocol.md` §6.4).
    pub fn single(raft_index: i64, result: KvResult) -> Self {
        KvResp {
            raft_index,
            results: vec![result],
        }
    }
}

impl Encodable for KvResp {
    fn encoded_size(&self) -> usize {
        encode::size_fixed64(1, self.raft_index as u64)
            + encode::size_int32(2, self.results.len() as i32)
            + encode::size_repeated_nested(3, &self.results)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed64(out, 1, self.raft_index as u64);
        encode::put_int32(out, 2, self.results.len() as i32);
        encode::put_repeated_nested(out, 3, &self.results);
    }
}

/// Decoder of [`KvResp`].
#[derive(Debug, Default)]
pub struct KvRespCallback {
    msg: KvResp,
    body_len: usize,
    results_size: i32,
    item: Option<NestedParser<KvResultCallback>>,
}

impl PbCallback for KvRespCallback {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.msg = KvResp::default();
        self.body_len = len;
        self.results_size = 0;
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        if field == 2 {
            self.results_size = int32(v);
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
        if field != 3 {
            return Ok(());
        }
        if chunk.is_first() && self.msg.results.is_empty() {
            self.msg
                .results
                .reserve(presize(self.results_size, self.body_len, 2));
        }
        let p = self
            .item
            .get_or_insert_with(|| NestedParser::new(KvResultCallback::default()));
        match p.feed(field, &chunk)? {
            Some(ParseStatus::Finished) => {
                let r = p.callback_mut().take();
                self.msg.results.push(r);
            }
            Some(_) => return Err(PbError::invalid("KvResult rejected")),
            None => {}
        }
        Ok(())
    }
}

impl KvBody for KvResp {
    type Callback = KvRespCallback;
    fn finish(cb: KvRespCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }

    /// Decodes a whole body: a plain one directly ([`decode_plain`]), anything else
    /// (and every error) through the streaming parser and [`KvRespCallback`].
    fn decode(body: &Bytes) -> Result<Self, PbError> {
        if let Some(r) = decode_plain(body) {
            return Ok(r);
        }
        Self::decode_streaming(body)
    }
}

/// [`KvResp`] from a whole plain body ([`dt_codec::plain`]), its results and their nodes
/// plain too, without the streaming parser: exactly what [`KvRespCallback`] makes of it
/// (unknown fields and unexpected wire types ignored, the last single field wins, a
/// nested message read afresh each time it appears). Bytes fields are slices of `body`.
/// `None` for anything else (the parser then decodes it, or reports the error). Every
/// get, list and batch answer takes this way: a client's network thread reads one per
/// request.
fn decode_plain(body: &Bytes) -> Option<KvResp> {
    let mut results = Vec::new();
    let raft_index = walk_plain(body, |r, announced| {
        if results.is_empty() {
            results.reserve(presize(announced, body.len(), 2));
        }
        results.push(r);
    })?;
    Some(KvResp {
        raft_index,
        results,
    })
}

/// The node of the first result of a whole plain body, read as [`decode_plain`] reads the
/// body but without keeping the results: `Some(node)` exactly when `decode_plain` would
/// succeed, `node` being its first result's node (`None` without results or node). A
/// get's answer holds one result, and this is all a get needs of it.
pub(crate) fn plain_first_node(body: &Bytes) -> Option<Option<KvNode>> {
    let mut first: Option<Option<KvNode>> = None;
    walk_plain(body, |r, _| {
        if first.is_none() {
            first = Some(r.node);
        }
    })?;
    Some(first.flatten())
}

/// Reads a whole plain `KvResp` body (see [`decode_plain`]): hands each result, in
/// order, to `each` with the result count announced so far (field 2, 0 before it), and
/// returns the raft index; `None` when the body or a result is not plain.
fn walk_plain(body: &Bytes, mut each: impl FnMut(KvResult, i32)) -> Option<i64> {
    let (mut raft_index, mut results_size) = (0i64, 0i32);
    let mut fields = PlainFields::new(body);
    while let Some((field, v)) = fields.next_field().ok()? {
        match (field, v) {
            (1, PlainValue::Fixed64(v)) => raft_index = v as i64,
            (2, PlainValue::Varint(v)) => results_size = int32(v as i64),
            (3, PlainValue::Len(at)) => each(plain_result(body, at)?, results_size),
            _ => {}
        }
    }
    Some(raft_index)
}

/// [`KvResult`] from the plain message at `at` in `body` (see [`decode_plain`]).
fn plain_result(body: &Bytes, at: Range<usize>) -> Option<KvResult> {
    let mut r = KvResult::default();
    let mut fields = PlainFields::new(&body[at.clone()]);
    while let Some((field, v)) = fields.next_field().ok()? {
        match (field, v) {
            (1, PlainValue::Varint(v)) => r.biz_code = KvCode::from_code(int32(v as i64)),
            (2, PlainValue::Len(n)) => r.node = Some(plain_node(body, shift(&at, n))?),
            (3, PlainValue::Len(n)) => r.key_in_dir = body.slice(shift(&at, n)),
            _ => {}
        }
    }
    Some(r)
}

/// [`KvNode`] from the plain message at `at` in `body` (see [`decode_plain`]).
fn plain_node(body: &Bytes, at: Range<usize>) -> Option<KvNode> {
    let mut n = KvNode::default();
    let mut fields = PlainFields::new(&body[at.clone()]);
    while let Some((field, v)) = fields.next_field().ok()? {
        match (field, v) {
            (1, PlainValue::Fixed64(v)) => n.create_index = v as i64,
            (2, PlainValue::Fixed64(v)) => n.create_time = v as i64,
            (3, PlainValue::Fixed64(v)) => n.update_index = v as i64,
            (4, PlainValue::Fixed64(v)) => n.update_time = v as i64,
            (5, PlainValue::Varint(v)) => n.flag = int32(v as i64),
            (15, PlainValue::Len(d)) => n.data = body.slice(shift(&at, d)),
            _ => {}
        }
    }
    Some(n)
}

/// `inner`, a range in the message at `outer`, as a range in the whole body.
fn shift(outer: &Range<usize>, inner: Range<usize>) -> Range<usize> {
    outer.start + inner.start..outer.start + inner.end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_success_result_is_tag_00() {
        let r = KvResp::single(42, KvResult::code(KvCode::Success));
        let b = encode::to_bytes(&r);
        assert_eq!(&b[..], b"\x09\x2a\0\0\0\0\0\0\0\x10\x01\x1a\x00");
        assert_eq!(KvResp::decode(&b).unwrap(), r);
    }

    #[test]
    fn truncated_nested_node_is_fatal() {
        // KvResp -> KvResult -> KvNode of 5 bytes holding a truncated fixed64.
        let body = Bytes::from_static(b"\x10\x01\x1a\x07\x12\x05\x09\x01\x02\x03\x04");
        assert!(KvResp::decode(&body).is_err());
    }
    /// `decode_plain` against the streaming parser it stands in for.
    mod plain {
        use super::*;
        use dt_codec::fuzz::field_bytes as field;
        use proptest::prelude::*;

        /// What the streaming parser makes of `body`.
        fn parsed(body: &Bytes) -> Result<KvResp, PbError> {
            KvResp::decode_streaming(body)
        }

        /// The direct readings agree with the parser on `body`.
        fn check(body: &Bytes) -> Result<(), TestCaseError> {
            if let Some(r) = decode_plain(body) {
                prop_assert_eq!(Ok(r), parsed(body));
            }
            prop_assert_eq!(KvResp::decode(body), parsed(body));
            prop_assert_eq!(plain_first_node(body), first_node(body));
            Ok(())
        }

        /// What `plain_first_node` must give: the first result's node of what
        /// `decode_plain` reads, `None` when it reads nothing.
        fn first_node(body: &Bytes) -> Option<Option<KvNode>> {
            decode_plain(body).map(|r| r.results.into_iter().next().and_then(|x| x.node))
        }

        /// One field: a number around those used, any wire type (3 is not plain), any
        /// value, `nested` as the bytes of a length-delimited one when given.
        fn arb_field(nums: Vec<u32>, nested: Option<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
            (
                prop::sample::select(nums),
                // mostly plain wire types: 3 (a group) makes the whole body not plain
                prop::sample::select(vec![0u8, 1, 2, 5, 0, 1, 2, 5, 0, 1, 2, 5, 3]),
                any::<u64>().prop_map(|v| v >> (v % 64)),
                prop::collection::vec(any::<u8>(), 0..12),
                prop::bool::weighted(0.75),
            )
                .prop_map(move |(n, wt, v, d, use_nested)| match &nested {
                    Some(b) if use_nested => field(n, 2, 0, b),
                    _ => field(n, wt, v, &d),
                })
        }

        fn arb_node() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(arb_field(vec![1, 2, 3, 4, 5, 6, 15, 15, 16], None), 0..5)
                .prop_map(|f| f.concat())
        }

        fn arb_result() -> impl Strategy<Value = Vec<u8>> {
            arb_node()
                .prop_flat_map(|node| {
                    prop::collection::vec(arb_field(vec![1, 2, 2, 2, 3, 3, 4], Some(node)), 0..4)
                })
                .prop_map(|f| f.concat())
        }

        fn arb_resp() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(
                arb_result().prop_flat_map(|r| arb_field(vec![1, 2, 3, 3, 3, 3, 9], Some(r))),
                1..5,
            )
            .prop_map(|f| f.concat())
        }

        fn arb_node_msg() -> impl Strategy<Value = KvNode> {
            (
                any::<[i64; 4]>(),
                0i32..8,
                prop::collection::vec(any::<u8>(), 0..40),
            )
                .prop_map(|(t, flag, data)| KvNode {
                    create_index: t[0],
                    create_time: t[1],
                    update_index: t[2],
                    update_time: t[3],
                    flag,
                    data: Bytes::from(data),
                })
        }

        proptest! {
            // Enough cases that several hundred hold a result with a node.
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn agrees_with_the_parser_on_nested_fields(
                b in arb_resp(),
                cut in prop_oneof![3 => Just(0usize), 1 => 1usize..3],
            ) {
                let mut b = b;
                b.truncate(b.len().saturating_sub(cut));
                check(&Bytes::from(b))?;
            }

            #[test]
            fn agrees_with_the_parser_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..48)) {
                check(&Bytes::from(b))?;
            }

            /// What servers send (every get, list and batch answer) takes the plain way.
            #[test]
            fn encoded_answers_are_plain(
                index in any::<i64>(),
                results in prop::collection::vec(
                    (1i32..20, prop::option::of(arb_node_msg()), prop::collection::vec(any::<u8>(), 0..8)),
                    0..6,
                ),
            ) {
                let resp = KvResp {
                    raft_index: index,
                    results: results
                        .into_iter()
                        .map(|(c, node, k)| KvResult {
                            biz_code: KvCode::from_code(c),
                            node,
                            key_in_dir: Bytes::from(k),
                        })
                        .collect(),
                };
                let body = encode::to_bytes(&resp);
                prop_assert_eq!(decode_plain(&body), Some(resp.clone()));
                prop_assert_eq!(parsed(&body), Ok(resp));
            }
        }
    }
}
