//! The response shapes of the DtKV commands (`wire-protocol.md` §6.4,
//! `dtkv-server.md` §1.3): the packet's `biz_code` and `KvResp` body for each kind of
//! result.

use bytes::BytesMut;
use dt_client::kv::{KvCode, KvResp, KvResult};
use dt_codec::encode::{self, Encodable};

use super::apply::ApplyResult;

/// What a DtKV response carries besides the transport fields: the header's `biz_code`
/// and the body (a body that encodes to nothing is no body either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvResponse {
    /// The packet's `biz_code`.
    pub biz_code: KvCode,
    /// The body.
    pub body: KvRespBody,
    /// The packet's `msg` (the INVALID_TTL pre-check's reason), empty otherwise.
    pub msg: String,
}

/// The body of a DtKV response: none, one result, or any [`KvResp`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KvRespBody {
    /// No body.
    #[default]
    None,
    /// A `KvResp` of one result that is only a code (shape A): what every single-key
    /// write answers, built on the dispatcher for each write, so kept small and
    /// without the vector a [`KvResp`] needs.
    Code {
        /// The raft index (the write's entry; 0 for a read).
        raft_index: i64,
        /// The result's code.
        biz_code: KvCode,
    },
    /// A `KvResp` of one result (shape A) with a node or a key.
    One {
        /// The raft index (the write's entry; 0 for a read).
        raft_index: i64,
        /// The result.
        result: Box<KvResult>,
    },
    /// Any `KvResp`.
    Resp(KvResp),
}

impl KvRespBody {
    /// The body as the [`KvResp`] a client decodes, `None` when there is no body.
    pub fn to_resp(&self) -> Option<KvResp> {
        match self {
            KvRespBody::None => None,
            KvRespBody::Code {
                raft_index,
                biz_code,
            } => Some(KvResp::single(*raft_index, KvResult::code(*biz_code))),
            KvRespBody::One { raft_index, result } => {
                Some(KvResp::single(*raft_index, (**result).clone()))
            }
            KvRespBody::Resp(r) => Some(r.clone()),
        }
    }

    /// True when there is no body.
    pub fn is_none(&self) -> bool {
        matches!(self, KvRespBody::None)
    }
}

impl Encodable for KvRespBody {
    fn encoded_size(&self) -> usize {
        match self {
            KvRespBody::None => 0,
            KvRespBody::Code {
                raft_index,
                biz_code,
            } => {
                encode::size_fixed64(1, *raft_index as u64)
                    + encode::size_int32(2, 1)
                    + encode::size_len_field(3, code_result_size(*biz_code))
            }
            KvRespBody::One { raft_index, result } => {
                encode::size_fixed64(1, *raft_index as u64)
                    + encode::size_int32(2, 1)
                    + encode::size_repeated_nested(3, std::slice::from_ref(&**result))
            }
            KvRespBody::Resp(r) => r.encoded_size(),
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        match self {
            KvRespBody::None => {}
            KvRespBody::Code {
                raft_index,
                biz_code,
            } => {
                encode::put_fixed64(out, 1, *raft_index as u64);
                encode::put_int32(out, 2, 1);
                let r = KvResult::code(*biz_code);
                encode::put_repeated_nested(out, 3, std::slice::from_ref(&r));
            }
            KvRespBody::One { raft_index, result } => {
                encode::put_fixed64(out, 1, *raft_index as u64);
                encode::put_int32(out, 2, 1);
                // KvResult's encoding, with the node's size computed once (a GET's
                // answer: the generic encoder sizes the node at every level)
                let code = result.biz_code.code();
                let node_size = result.node.as_ref().map(|n| n.encoded_size());
                let result_size = encode::size_int32(1, code)
                    + node_size.map_or(0, |s| encode::size_len_field(2, s))
                    + encode::size_bytes(3, &result.key_in_dir);
                encode::put_len_prefix(out, 3, result_size);
                encode::put_int32(out, 1, code);
                if let (Some(n), Some(size)) = (&result.node, node_size) {
                    encode::put_len_prefix(out, 2, size);
                    n.encode(out);
                }
                encode::put_bytes(out, 3, &result.key_in_dir);
            }
            KvRespBody::Resp(r) => r.encode(out),
        }
    }
}

/// A body with its encoded size computed once (a packet asks for it again to write its
/// length fields).
#[derive(Debug)]
pub struct SizedBody {
    size: usize,
    body: KvRespBody,
}

impl SizedBody {
    /// `body` with its size.
    pub fn new(body: KvRespBody) -> Self {
        SizedBody {
            size: body.encoded_size(),
            body,
        }
    }
}

impl Encodable for SizedBody {
    fn encoded_size(&self) -> usize {
        self.size
    }
    fn encode(&self, out: &mut BytesMut) {
        self.body.encode(out)
    }
}

/// Encoded size of a `KvResult` that is only `biz_code`.
fn code_result_size(biz_code: KvCode) -> usize {
    KvResult::code(biz_code).encoded_size()
}

/// Most bytes a [`KvRespBody::Code`] body takes (a fixed64 index, the count, and a
/// result whose code is a negative `int32`).
pub const CODE_BODY_MAX: usize = 9 + 2 + 2 + 11;

impl KvRespBody {
    /// The encoding of a [`KvRespBody::Code`] body (what [`Encodable::encode`] writes for
    /// it), written into an array: the bytes and their length. Every write answers with
    /// one, on the group's dispatcher thread.
    pub fn code_bytes(raft_index: i64, biz_code: KvCode) -> ([u8; CODE_BODY_MAX], usize) {
        let mut a = [0u8; CODE_BODY_MAX];
        let mut w: &mut [u8] = &mut a;
        encode::put_fixed64(&mut w, 1, raft_index as u64);
        encode::put_int32(&mut w, 2, 1);
        let code = biz_code.code();
        encode::put_len_prefix(&mut w, 3, encode::size_int32(1, code));
        encode::put_int32(&mut w, 1, code);
        let n = CODE_BODY_MAX - w.len();
        (a, n)
    }

    /// One result at `raft_index`: [`KvRespBody::Code`] when it is only a code.
    pub fn one(raft_index: i64, result: KvResult) -> Self {
        if result.node.is_none() && result.key_in_dir.is_empty() {
            KvRespBody::Code {
                raft_index,
                biz_code: result.biz_code,
            }
        } else {
            KvRespBody::One {
                raft_index,
                result: Box::new(result),
            }
        }
    }
}

impl KvResponse {
    fn new(biz_code: KvCode, body: KvRespBody) -> Self {
        KvResponse {
            biz_code,
            body,
            msg: String::new(),
        }
    }

    /// A write's answer: shape A (one result) for single-key writes, B (all results)
    /// for a successful batch, D (raft index, no results) for a failed batch. The raft
    /// index is the entry's, also when the write failed with a business code.
    pub fn write(raft_index: i64, result: ApplyResult) -> Self {
        match result {
            ApplyResult::Single(result) => {
                KvResponse::new(result.biz_code, KvRespBody::one(raft_index, result))
            }
            ApplyResult::Batch(Ok(results)) => KvResponse::new(
                KvCode::Success,
                KvRespBody::Resp(KvResp {
                    raft_index,
                    results,
                }),
            ),
            ApplyResult::Batch(Err(c)) => KvResponse::new(
                c,
                KvRespBody::Resp(KvResp {
                    raft_index,
                    results: vec![],
                }),
            ),
        }
    }

    /// GET's answer: shape A with raft index 0.
    pub fn get(result: KvResult) -> Self {
        KvResponse::new(result.biz_code, KvRespBody::one(0, result))
    }

    /// BATCH_GET's and LIST's answer: shape B with raft index 0, or a bare error
    /// (shape C).
    pub fn multi_read(result: Result<Vec<KvResult>, KvCode>) -> Self {
        match result {
            Ok(results) => KvResponse::new(
                KvCode::Success,
                KvRespBody::Resp(KvResp {
                    raft_index: 0,
                    results,
                }),
            ),
            Err(c) => KvResponse::new(c, KvRespBody::None),
        }
    }

    /// A pre-check failure before the log (shape C with a reason).
    pub fn rejected(biz_code: KvCode, msg: impl Into<String>) -> Self {
        KvResponse {
            biz_code,
            body: KvRespBody::None,
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_codec::encode;

    #[test]
    fn shapes_encode_as_the_reference_does() {
        let a = KvResponse::write(42, ApplyResult::Single(KvResult::code(KvCode::Success)));
        let b = encode::to_bytes(&a.body);
        assert_eq!(&b[..], b"\x09\x2a\0\0\0\0\0\0\0\x10\x01\x1a\x00");
        assert_eq!(encode::to_bytes(&a.body.to_resp().unwrap()), b);
        let d = KvResponse::write(51, ApplyResult::Batch(Err(KvCode::InvalidValue)));
        assert_eq!(d.biz_code, KvCode::InvalidValue);
        let b = encode::to_bytes(&d.body);
        assert_eq!(&b[..], b"\x09\x33\0\0\0\0\0\0\0");
        let empty = KvResponse::multi_read(Ok(vec![]));
        assert!(encode::to_bytes(&empty.body).is_empty());
        let c = KvResponse::multi_read(Err(KvCode::NotFound));
        assert_eq!((c.biz_code, c.body), (KvCode::NotFound, KvRespBody::None));
        let nf = KvResponse::get(KvResult::code(KvCode::NotFound));
        let b = encode::to_bytes(&nf.body);
        assert_eq!(&b[..], b"\x10\x01\x1a\x02\x08\x02");
    }

    #[test]
    fn code_bytes_are_the_code_body_encoding() {
        let codes = [
            KvCode::Success,
            KvCode::NotFound,
            KvCode::CasMismatch,
            KvCode::InvalidValue,
            KvCode::Unknown(-7),
        ];
        let mut longest = 0;
        for code in codes {
            for raft_index in [0, 1, 300, -1, i64::MAX, i64::MIN] {
                let body = KvRespBody::Code {
                    raft_index,
                    biz_code: code,
                };
                let (a, n) = KvRespBody::code_bytes(raft_index, code);
                assert_eq!(&a[..n], &encode::to_bytes(&body)[..], "{body:?}");
                longest = longest.max(n);
            }
        }
        // a negative code takes a 10-byte varint: the array holds the longest body
        assert_eq!(longest, CODE_BODY_MAX);
    }

    #[test]
    fn one_result_encodes_as_a_kv_resp_of_one_result() {
        let result = KvResult {
            biz_code: KvCode::Success,
            node: Some(dt_client::kv::KvNode {
                create_index: 3,
                create_time: 1_700_000_000_000,
                update_index: 9,
                update_time: 1_700_000_000_500,
                flag: 0,
                data: bytes::Bytes::from_static(b"value"),
            }),
            key_in_dir: bytes::Bytes::from_static(b"k1"),
        };
        let codes = [KvCode::Success, KvCode::NotFound, KvCode::CasMismatch];
        let results = codes.into_iter().map(KvResult::code).chain([
            result.clone(),
            KvResult {
                node: None,
                ..result
            },
        ]);
        for result in results {
            for raft_index in [0, 7, i64::MAX] {
                let one = KvRespBody::one(raft_index, result.clone());
                let only_code = result.node.is_none() && result.key_in_dir.is_empty();
                assert_eq!(matches!(one, KvRespBody::Code { .. }), only_code);
                let as_resp = KvResp::single(raft_index, result.clone());
                assert_eq!(one.encoded_size(), as_resp.encoded_size());
                let sized = SizedBody::new(one.clone());
                assert_eq!(sized.encoded_size(), as_resp.encoded_size());
                assert_eq!(encode::to_bytes(&sized), encode::to_bytes(&as_resp));
                assert_eq!(encode::to_bytes(&one), encode::to_bytes(&as_resp));
                assert_eq!(one.to_resp(), Some(as_resp));
            }
        }
    }
}
