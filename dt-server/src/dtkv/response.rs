//! The response shapes of the DtKV commands (`wire-protocol.md` §6.4,
//! `dtkv-server.md` §1.3): the packet's `biz_code` and `KvResp` body for each kind of
//! result.

use dt_client::kv::{KvCode, KvResp, KvResult};

use super::apply::ApplyResult;

/// What a DtKV response carries besides the transport fields: the header's `biz_code`
/// and the body (`None`: no body; a `KvResp` that encodes to nothing is no body either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvResponse {
    /// The packet's `biz_code`.
    pub biz_code: KvCode,
    /// The body.
    pub body: Option<KvResp>,
    /// The packet's `msg` (the INVALID_TTL pre-check's reason), empty otherwise.
    pub msg: String,
}

impl KvResponse {
    fn new(biz_code: KvCode, body: Option<KvResp>) -> Self {
        KvResponse {
            biz_code,
            body,
            msg: String::new(),
        }
    }

    /// A write's answer: shape A (one result) for single-key writes, B (all results)
    /// for a successful batch, D (raft index, no results) for a failed batch. The raft
    /// index is the entry's, also when the write failed with a business code.
    pub fn write(raft_index: i64, result: &ApplyResult) -> Self {
        match result {
            ApplyResult::Single(r) => {
                KvResponse::new(r.biz_code, Some(KvResp::single(raft_index, r.clone())))
            }
            ApplyResult::Batch(Ok(rs)) => KvResponse::new(
                KvCode::Success,
                Some(KvResp {
                    raft_index,
                    results: rs.clone(),
                }),
            ),
            ApplyResult::Batch(Err(c)) => KvResponse::new(
                *c,
                Some(KvResp {
                    raft_index,
                    results: vec![],
                }),
            ),
        }
    }

    /// GET's answer: shape A with raft index 0.
    pub fn get(result: KvResult) -> Self {
        KvResponse::new(result.biz_code, Some(KvResp::single(0, result)))
    }

    /// BATCH_GET's and LIST's answer: shape B with raft index 0, or a bare error
    /// (shape C).
    pub fn multi_read(result: Result<Vec<KvResult>, KvCode>) -> Self {
        match result {
            Ok(results) => KvResponse::new(
                KvCode::Success,
                Some(KvResp {
                    raft_index: 0,
                    results,
                }),
            ),
            Err(c) => KvResponse::new(c, None),
        }
    }

    /// A pre-check failure before the log (shape C with a reason).
    pub fn rejected(biz_code: KvCode, msg: impl Into<String>) -> Self {
        KvResponse {
            biz_code,
            body: None,
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
        let a = KvResponse::write(42, &ApplyResult::Single(KvResult::code(KvCode::Success)));
        let b = encode::to_bytes(a.body.as_ref().unwrap());
        assert_eq!(&b[..], b"\x09\x2a\0\0\0\0\0\0\0\x10\x01\x1a\x00");
        let d = KvResponse::write(51, &ApplyResult::Batch(Err(KvCode::InvalidValue)));
        assert_eq!(d.biz_code, KvCode::InvalidValue);
        let b = encode::to_bytes(d.body.as_ref().unwrap());
        assert_eq!(&b[..], b"\x09\x33\0\0\0\0\0\0\0");
        let empty = KvResponse::multi_read(Ok(vec![]));
        assert!(encode::to_bytes(empty.body.as_ref().unwrap()).is_empty());
        let c = KvResponse::multi_read(Err(KvCode::NotFound));
        assert_eq!((c.biz_code, c.body), (KvCode::NotFound, None));
        let nf = KvResponse::get(KvResult::code(KvCode::NotFound));
        let b = encode::to_bytes(nf.body.as_ref().unwrap());
        assert_eq!(&b[..], b"\x10\x01\x1a\x02\x08\x02");
    }
}
