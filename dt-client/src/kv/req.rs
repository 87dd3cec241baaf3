//! `KvReq`: the request body of every DtKV data command, the Raft log entry body of every
//! DtKV write, and the body of the lock push (`wire-protocol.md` §6.1.1,
//! `dtkv-server.md` §1.2).

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use dt_codec::encode::{self, Encodable};
use dt_codec::plain::{PlainFields, PlainValue};
use dt_codec::{BytesCollector, Chunk, PbCallback, PbError};
use dt_net::ProcessInfo;

use super::{int32, presize, KvBody};

/// `KvReq`. Which fields a command uses is in `wire-protocol.md` §6.5; the others are
/// ignored by the server (except `ttl_millis`, see below).
///
/// Empty `Bytes` stand for an absent field (the reference makes no difference between an
/// absent and an empty single bytes field). `keys` and `values` keep empty elements: they
/// are written as `tag 00` so positions are kept.
///
/// * `owner_uuid1`/`owner_uuid2` are never sent by clients; the server overwrites them
///   with the connection's handshake UUID before the request goes into the log. They are
///   kept as received (so a body re-encodes to the same bytes); [`KvReq::owner`] reads
///   them the reference's way (an owner only when both halves are non-zero).
/// * `ttl_millis`: the TTL for temp nodes and TTL updates; the wait time for TRY_LOCK;
///   the new lease for UPDATE_LOCK_LEASE; in an EXPIRE log entry the expected TTL raft
///   index; in DTKV_LOCK_PUSH the server-side wait in **nanoseconds**. Quirk of the
///   reference: a PUT, MKDIR, BATCH_PUT or CAS carrying `ttl_millis > 0` creates a
///   temporary node, so clients must leave it 0 for plain writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvReq {
    /// Field 1, int32: the Raft group.
    pub group_id: i32,
    /// Field 2, bytes: the key (empty: the root, for get and list).
    pub key: Bytes,
    /// Field 3, bytes: the value, the CAS new value, or the lock payload.
    pub value: Bytes,
    /// Field 4, bytes: the CAS expected value.
    pub expect_value: Bytes,
    /// Field 5, fixed64: owner UUID, most significant half.
    pub owner_uuid1: u64,
    /// Field 6, fixed64: owner UUID, least significant half.
    pub owner_uuid2: u64,
    /// Field 7, int64: TTL / wait / lease (see the type's documentation).
    pub ttl_millis: i64,
    /// Field 9, repeated bytes (count in field 8, `keys_size`, written before them).
    pub keys: Vec<Bytes>,
    /// Field 10, repeated bytes: batch-put values, parallel to `keys`.
    pub values: Vec<Bytes>,
}

impl KvReq {
    /// A request for one key (get, remove, mkdir, list, unlock).
    pub fn key(group_id: i32, key: impl Into<Bytes>) -> Self {
        KvReq {
            group_id,
            key: key.into(),
            ..Default::default()
        }
    }

    /// A put of `value` at `key`.
    pub fn put(group_id: i32, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        KvReq {
            group_id,
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }
    }

    /// A request with a TTL (put temp node, make temp dir, update TTL, try-lock wait,
    /// lock lease).
    pub fn with_ttl(mut self, ttl_millis: i64) -> Self {
        self.ttl_millis = ttl_millis;
        self
    }

    /// A compare-and-set: `expect` empty means "create if absent", `value` empty means
    /// "remove if equal".
    pub fn cas(
        group_id: i32,
        key: impl Into<Bytes>,
        expect: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Self {
        KvReq {
            group_id,
            key: key.into(),
            value: value.into(),
            expect_value: expect.into(),
            ..Default::default()
        }
    }

    /// A batch request (batch get, batch remove; batch put with `values`).
    pub fn batch(group_id: i32, keys: Vec<Bytes>, values: Vec<Bytes>) -> Self {
        KvReq {
            group_id,
            keys,
            values,
            ..Default::default()
        }
    }

    /// The owner as the reference reads it: only when both halves are non-zero.
    pub fn owner(&self) -> Option<ProcessInfo> {
        (self.owner_uuid1 != 0 && self.owner_uuid2 != 0).then_some(ProcessInfo {
            uuid1: self.owner_uuid1,
            uuid2: self.owner_uuid2,
        })
    }

    /// Sets the owner (what the server does with the connection's UUID before a write
    /// goes into the log).
    pub fn set_owner(&mut self, owner: ProcessInfo) {
        self.owner_uuid1 = owner.uuid1;
        self.owner_uuid2 = owner.uuid2;
    }

    fn keys_size(&self) -> i32 {
        self.keys.len() as i32
    }
}

impl Encodable for KvReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_bytes(2, &self.key)
            + encode::size_bytes(3, &self.value)
            + encode::size_bytes(4, &self.expect_value)
            + encode::size_fixed64(5, self.owner_uuid1)
            + encode::size_fixed64(6, self.owner_uuid2)
            + encode::size_int64(7, self.ttl_millis)
            + encode::size_int32(8, self.keys_size())
            + encode::size_repeated_bytes(9, &self.keys)
            + encode::size_repeated_bytes(10, &self.values)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_bytes(out, 2, &self.key);
        encode::put_bytes(out, 3, &self.value);
        encode::put_bytes(out, 4, &self.expect_value);
        encode::put_fixed64(out, 5, self.owner_uuid1);
        encode::put_fixed64(out, 6, self.owner_uuid2);
        encode::put_int64(out, 7, self.ttl_millis);
        encode::put_int32(out, 8, self.keys_size());
        encode::put_repeated_bytes(out, 9, &self.keys);
        encode::put_repeated_bytes(out, 10, &self.values);
    }
}

/// Decoder of [`KvReq`].
///
/// As in the reference: `keys_size` is only an allocation hint; when both `keys` and
/// `values` are present their counts must be equal, otherwise the body is invalid (a
/// fatal error: the connection is closed). Fields with an unexpected wire type are
/// ignored; the last occurrence of a single field wins.
#[derive(Debug, Default)]
pub struct KvReqCallback {
    msg: KvReq,
    body_len: usize,
    keys_size: i32,
    acc: BytesCollector,
}

impl PbCallback for KvReqCallback {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.msg = KvReq::default();
        self.body_len = len;
        self.keys_size = 0;
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            7 => self.msg.ttl_millis = v,
            8 => self.keys_size = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        match field {
            5 => self.msg.owner_uuid1 = v,
            6 => self.msg.owner_uuid2 = v,
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if !(2..=4).contains(&field) && field != 9 && field != 10 {
            return Ok(());
        }
        let Some(b) = self.acc.push(&chunk) else {
            return Ok(());
        };
        let m = &mut self.msg;
        match field {
            2 => m.key = b,
            3 => m.value = b,
            4 => m.expect_value = b,
            9 | 10 => {
                let list = if field == 9 {
                    &mut m.keys
                } else {
                    &mut m.values
                };
                if list.is_empty() {
                    list.reserve(presize(self.keys_size, self.body_len, 2));
                }
                list.push(b);
            }
            _ => {}
        }
        Ok(())
    }
    fn end(&mut self, success: bool) -> Result<(), PbError> {
        let m = &self.msg;
        if success && !m.keys.is_empty() && !m.values.is_empty() && m.keys.len() != m.values.len() {
            return Err(PbError::invalid(format!(
                "KvReq: keys and values size mismatch ({} keys, {} values)",
                m.keys.len(),
                m.values.len()
            )));
        }
        Ok(())
    }
}

impl KvReqCallback {
    /// Takes the decoded request out.
    pub fn take(&mut self) -> KvReq {
        std::mem::take(&mut self.msg)
    }
}

impl KvBody for KvReq {
    type Callback = KvReqCallback;
    fn finish(mut cb: KvReqCallback) -> Result<Self, PbError> {
        Ok(cb.take())
    }

    /// Decodes a whole body: the common shapes directly (`decode_plain`), anything
    /// else (and every error) through the streaming parser and [`KvReqCallback`].
    fn decode(body: &Bytes) -> Result<Self, PbError> {
        let cut = |at: Range<usize>| body.slice(at);
        if let Some(r) = decode_ordered(body, cut) {
            return Ok(r);
        }
        if let Some(r) = decode_plain(body, cut) {
            return Ok(r);
        }
        Self::decode_streaming(body)
    }
}

impl KvReq {
    /// Decodes a whole body as [`KvBody::decode`] does, except that every bytes field
    /// gets a buffer of its own instead of being a slice of `body`.
    ///
    /// For a body that is a slice of a buffer other threads slice and drop too (a
    /// pooled chunk, a read block, a whole frame): a slice would count itself in that
    /// buffer's shared reference count twice (made, then dropped), and under load that
    /// count's cache line moves between threads on every touch. Copying the fields
    /// (keys and values are small there) costs an allocation each and touches only this
    /// thread's memory; what the caller keeps then holds nothing of `body` alive either.
    pub fn decode_copied(body: &Bytes) -> Result<Self, PbError> {
        let cut = |at: Range<usize>| Bytes::copy_from_slice(&body[at]);
        if let Some(r) = decode_ordered(body, cut) {
            return Ok(r);
        }
        if let Some(r) = decode_plain(body, cut) {
            return Ok(r);
        }
        let mut r = Self::decode_streaming(body)?;
        for b in [&mut r.key, &mut r.value, &mut r.expect_value]
            .into_iter()
            .chain(r.keys.iter_mut())
            .chain(r.values.iter_mut())
        {
            if !b.is_empty() {
                *b = Bytes::copy_from_slice(b);
            }
        }
        Ok(r)
    }
}

/// [`KvReq`] from a whole plain body whose single fields come in field order, each at
/// most once, without `keys_size`, `keys` or `values`: how every encoder writes a
/// request on one key (and all a put needs). Read in one pass with a test per field
/// instead of a dispatch on each; `None` for any other body (then [`decode_plain`]).
#[inline]
fn decode_ordered(body: &[u8], cut: impl Fn(Range<usize>) -> Bytes) -> Option<KvReq> {
    let mut f = PlainFields::new(body);
    let mut r = KvReq::default();
    if let Some(PlainValue::Varint(v)) = f.next_if(0x08).ok()? {
        r.group_id = int32(v as i64);
    }
    if let Some(PlainValue::Len(at)) = f.next_if(0x12).ok()? {
        r.key = cut(at);
    }
    if let Some(PlainValue::Len(at)) = f.next_if(0x1a).ok()? {
        r.value = cut(at);
    }
    if let Some(PlainValue::Len(at)) = f.next_if(0x22).ok()? {
        r.expect_value = cut(at);
    }
    if let Some(PlainValue::Fixed64(v)) = f.next_if(0x29).ok()? {
        r.owner_uuid1 = v;
    }
    if let Some(PlainValue::Fixed64(v)) = f.next_if(0x31).ok()? {
        r.owner_uuid2 = v;
    }
    if let Some(PlainValue::Varint(v)) = f.next_if(0x38).ok()? {
        r.ttl_millis = v as i64;
    }
    f.at_end().then_some(r)
}

/// [`KvReq`] from a whole plain body ([`dt_codec::plain`]) without the streaming parser,
/// when `keys`/`values` also agree: exactly what [`KvReqCallback`] makes of it (unknown
/// fields and unexpected wire types ignored, the last single field wins). `None` for
/// anything else (the parser then decodes it, or reports the error).
#[inline]
fn decode_plain(body: &[u8], cut: impl Fn(Range<usize>) -> Bytes) -> Option<KvReq> {
    let mut r = KvReq::default();
    let mut keys_size = 0i32;
    let mut fields = PlainFields::new(body);
    while let Some((field, v)) = fields.next_field().ok()? {
        match (field, v) {
            (1, PlainValue::Varint(v)) => r.group_id = int32(v as i64),
            (7, PlainValue::Varint(v)) => r.ttl_millis = v as i64,
            (8, PlainValue::Varint(v)) => keys_size = int32(v as i64),
            (5, PlainValue::Fixed64(v)) => r.owner_uuid1 = v,
            (6, PlainValue::Fixed64(v)) => r.owner_uuid2 = v,
            (2, PlainValue::Len(at)) => r.key = cut(at),
            (3, PlainValue::Len(at)) => r.value = cut(at),
            (4, PlainValue::Len(at)) => r.expect_value = cut(at),
            (9 | 10, PlainValue::Len(at)) => {
                let list = if field == 9 {
                    &mut r.keys
                } else {
                    &mut r.values
                };
                if list.is_empty() {
                    list.reserve(presize(keys_size, body.len(), 2));
                }
                list.push(cut(at));
            }
            _ => {}
        }
    }
    if !r.keys.is_empty() && !r.values.is_empty() && r.keys.len() != r.values.len() {
        return None;
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_put_bodies() {
        let b = encode::to_bytes(&KvReq::put(0, "a.b", "v"));
        assert_eq!(&b[..], b"\x12\x03a.b\x1a\x01v");
        let b = encode::to_bytes(&KvReq::put(1, "a.b", "v"));
        assert_eq!(&b[..], b"\x08\x01\x12\x03a.b\x1a\x01v");
        assert_eq!(KvReq::decode(&b).unwrap(), KvReq::put(1, "a.b", "v"));
    }

    /// `decode_plain` against the streaming parser it stands in for.
    mod plain {
        use super::*;
        use proptest::prelude::*;

        fn ordered(body: &Bytes) -> Option<KvReq> {
            decode_ordered(body, |at| body.slice(at))
        }

        fn plain(body: &Bytes) -> Option<KvReq> {
            decode_plain(body, |at| body.slice(at))
        }

        /// What the streaming parser makes of `body`.
        fn parsed(body: &Bytes) -> Result<KvReq, PbError> {
            let mut p = dt_codec::PbParser::new(KvReqCallback::default());
            match p.parse_whole(body)? {
                dt_codec::ParseStatus::Finished => KvReq::finish(p.into_callback()),
                s => panic!("{s:?}"),
            }
        }

        use dt_codec::fuzz::field_bytes as field;

        fn arb_field() -> impl Strategy<Value = Vec<u8>> {
            (
                0u32..18,
                prop::sample::select(vec![0u8, 1, 2, 5, 3]),
                any::<u64>().prop_map(|v| v >> (v % 64)),
                prop::collection::vec(any::<u8>(), 0..20),
            )
                .prop_map(|(n, wt, v, d)| field(n, wt, v, &d))
        }

        proptest! {
            #[test]
            fn agrees_with_the_parser_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..48)) {
                let body = Bytes::from(b);
                if let Some(r) = ordered(&body) {
                    prop_assert_eq!(Ok(r), parsed(&body));
                }
                if let Some(r) = plain(&body) {
                    prop_assert_eq!(Ok(r), parsed(&body));
                }
                prop_assert_eq!(KvReq::decode(&body), parsed(&body));
            }

            #[test]
            fn agrees_with_the_parser_on_fields(
                fields in prop::collection::vec(arb_field(), 0..12),
                cut in 0usize..4,
            ) {
                let mut b: Vec<u8> = fields.concat();
                b.truncate(b.len().saturating_sub(cut));
                let body = Bytes::from(b);
                if let Some(r) = ordered(&body) {
                    prop_assert_eq!(Ok(r), parsed(&body));
                }
                if let Some(r) = plain(&body) {
                    prop_assert_eq!(Ok(r), parsed(&body));
                }
                prop_assert_eq!(KvReq::decode(&body), parsed(&body));
                let copied = KvReq::decode_copied(&body);
                if let Ok(r) = &copied {
                    prop_assert!(nothing_inside(r, &body), "{:?}", r);
                }
                prop_assert_eq!(copied, parsed(&body));
            }

            /// Single fields in field order, any of them left out, some repeated or
            /// out of order: the ordered reader takes exactly the bodies it may.
            #[test]
            fn ordered_reader_agrees_with_the_parser(
                present in prop::collection::vec(any::<bool>(), 7),
                swap in any::<Option<(usize, usize)>>(),
                extra in prop::option::of(arb_field()),
                vals in (any::<u64>(), prop::collection::vec(any::<u8>(), 0..6)),
            ) {
                let (v, d) = vals;
                let v = v >> (v % 64);
                let all = [
                    field(1, 0, v, &[]),
                    field(2, 2, 0, &d),
                    field(3, 2, 0, b"value"),
                    field(4, 2, 0, &d),
                    field(5, 1, v, &[]),
                    field(6, 1, v ^ 1, &[]),
                    field(7, 0, v, &[]),
                ];
                let mut fields: Vec<Vec<u8>> = all
                    .iter()
                    .zip(&present)
                    .filter(|(_, &p)| p)
                    .map(|(f, _)| f.clone())
                    .collect();
                if let Some((a, b)) = swap {
                    let n = fields.len();
                    if n > 0 {
                        fields.swap(a % n, b % n);
                    }
                }
                fields.extend(extra);
                let body = Bytes::from(fields.concat());
                if let Some(r) = ordered(&body) {
                    prop_assert_eq!(Ok(r), parsed(&body));
                }
                prop_assert_eq!(KvReq::decode(&body), parsed(&body));
            }

            #[test]
            fn encoded_requests_take_it(
                group in any::<i32>(),
                key in prop::collection::vec(any::<u8>(), 0..40),
                value in prop::collection::vec(any::<u8>(), 0..400),
                owner in any::<(u64, u64)>(),
                ttl in any::<i64>().prop_map(|v| v >> (v & 63)),
                batch in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..4),
            ) {
                let mut r = KvReq::put(group, key, value).with_ttl(ttl);
                r.owner_uuid1 = owner.0;
                r.owner_uuid2 = owner.1;
                r.keys = batch.into_iter().map(Bytes::from).collect();
                r.values = r.keys.iter().rev().cloned().collect();
                let body = encode::to_bytes(&r);
                // a negative number or one of 63 bits or more takes a 10-byte varint:
                // left to the parser
                if group >= 0 && (0..1 << 62).contains(&ttl) {
                    prop_assert_eq!(plain(&body), Some(r.clone()));
                    let single = r.keys.is_empty();
                    prop_assert_eq!(ordered(&body), single.then(|| r.clone()));
                }
                prop_assert_eq!(KvReq::decode(&body), Ok(r.clone()));
                let copied = KvReq::decode_copied(&body).unwrap();
                prop_assert!(nothing_inside(&copied, &body));
                prop_assert_eq!(copied, r);
            }
        }

        /// Whether no bytes field of `r` points into `body`'s memory.
        fn nothing_inside(r: &KvReq, body: &Bytes) -> bool {
            let range = body.as_ptr_range();
            [&r.key, &r.value, &r.expect_value]
                .into_iter()
                .chain(&r.keys)
                .chain(&r.values)
                .all(|b| b.is_empty() || !range.contains(&b.as_ptr()))
        }

        #[test]
        fn copied_decoding_of_each_shape_keeps_nothing_of_the_body() {
            let mut batch = KvReq::batch(
                0,
                vec!["k1".into(), "k2".into()],
                vec!["v1".into(), "v2".into()],
            );
            batch.expect_value = Bytes::from_static(b"e");
            let mut negative = KvReq::put(-1, "key", "value");
            negative.expect_value = Bytes::from_static(b"old");
            // ordered reader, plain reader, streaming parser (a 10-byte varint)
            for r in [KvReq::put(1, "key", "value"), batch, negative] {
                let body = encode::to_bytes(&r);
                let sliced = KvReq::decode(&body).unwrap();
                assert!(!nothing_inside(&sliced, &body), "decode slices the body");
                let copied = KvReq::decode_copied(&body).unwrap();
                assert!(nothing_inside(&copied, &body), "{copied:?}");
                assert_eq!(copied, r);
            }
        }
    }

    #[test]
    fn owner_needs_both_halves() {
        let mut r = KvReq::key(0, "a");
        assert_eq!(r.owner(), None);
        r.owner_uuid2 = 5;
        assert_eq!(r.owner(), None);
        r.set_owner(ProcessInfo { uuid1: 1, uuid2: 2 });
        assert_eq!(r.owner(), Some(ProcessInfo { uuid1: 1, uuid2: 2 }));
    }

    #[test]
    fn mismatched_batch_is_fatal() {
        let r = KvReq::batch(0, vec!["k1".into(), "k2".into()], vec!["v1".into()]);
        let e = KvReq::decode(&encode::to_bytes(&r)).unwrap_err();
        assert!(matches!(e, PbError::Invalid(_)), "{e:?}");
        // Values without keys are not a mismatch (the server answers INVALID_KEY later).
        let r = KvReq::batch(0, vec![], vec!["v1".into()]);
        assert_eq!(KvReq::decode(&encode::to_bytes(&r)).unwrap(), r);
    }

    #[test]
    fn lying_keys_size_allocates_nothing_big() {
        // keys_size = i32::MAX, one key.
        let body = Bytes::from_static(b"\x40\xff\xff\xff\xff\x07\x4a\x01k");
        let r = KvReq::decode(&body).unwrap();
        assert_eq!(r.keys, vec![Bytes::from_static(b"k")]);
        assert!(r.keys.capacity() < 64);
    }
}
