//! The DtKV operations as a client performs them, without the networking: building
//! each request with the client-side checks (the full key check, values, TTLs, batch
//! shapes: `wire-protocol.md` §6.3, §6.5), and interpreting each response with the
//! reference client's rules of what counts as success (§6.4).
//!
//! ```
//! use bytes::Bytes;
//! use dt_client::kv::{ops, KvCommands, KvError, KvReq, KvResp, KvResult, KvCode};
//! use dt_net::ReadPacket;
//!
//! let (cmd, req) = ops::put(0, "a.b", "v").unwrap();
//! assert_eq!(cmd, KvCommands::DTKV_PUT);
//! assert!(matches!(ops::put(0, "a..b", "v"), Err(KvError::InvalidArgument(_))));
//!
//! // A NOT_FOUND answer to a remove is a success for the reference client...
//! let resp = ReadPacket { packet_type: 2, command: 70, biz_code: 2, ..Default::default() };
//! assert_eq!(ops::interpret(KvCommands::DTKV_REMOVE, &resp).unwrap().0, KvCode::NotFound);
//! // ... but not for a put.
//! let resp = ReadPacket { packet_type: 2, command: 6, biz_code: 9, ..Default::default() };
//! let e = ops::interpret(KvCommands::DTKV_PUT, &resp).unwrap_err();
//! assert_eq!(e.biz_code(), Some(KvCode::ParentDirNotExists));
//! ```

use bytes::Bytes;
use dt_codec::plain::{PlainFields, PlainValue};
use dt_codec::{PbCallback, PbError, PbParser};
use dt_net::{CmdCodes, ReadPacket};

use super::batch::BatchResult;
use super::codes::{KvCode, KvCommands};
use super::error::KvError;
use super::key::{check_key, check_value, MAX_TTL_MILLIS};
use super::req::KvReq;
use super::resp::{KvNode, KvResp, KvResult};
use super::KvBody;

/// A request ready to send: the command and its body.
pub type KvRequest = (i32, KvReq);

fn key_ok(key: &[u8], allow_empty: bool) -> Result<(), KvError> {
    match check_key(key, allow_empty, true) {
        KvCode::Success => Ok(()),
        c => Err(KvError::InvalidArgument(format!(
            "invalid key {:?}: {}",
            String::from_utf8_lossy(key),
            c.name()
        ))),
    }
}

fn value_ok(value: &[u8]) -> Result<(), KvError> {
    match check_value(value) {
        KvCode::Success => Ok(()),
        c => Err(KvError::InvalidArgument(format!(
            "invalid value of {} bytes: {}",
            value.len(),
            c.name()
        ))),
    }
}

fn ttl_ok(ttl: i64, what: &str) -> Result<(), KvError> {
    if ttl <= 0 || ttl > MAX_TTL_MILLIS {
        return Err(KvError::InvalidArgument(format!(
            "{what} must be in 1..={MAX_TTL_MILLIS} ms, got {ttl}"
        )));
    }
    Ok(())
}

fn batch_keys_ok(keys: &[Bytes]) -> Result<(), KvError> {
    if keys.is_empty() {
        return Err(KvError::InvalidArgument("keys must not be empty".into()));
    }
    keys.iter().try_for_each(|k| key_ok(k, false))
}

/// DTKV_GET: the empty key is the root.
pub fn get(group_id: i32, key: impl Into<Bytes>) -> Result<KvRequest, KvError> {
    let key = key.into();
    key_ok(&key, true)?;
    Ok((KvCommands::DTKV_GET, KvReq::key(group_id, key)))
}

/// DTKV_LIST: the empty key is the root.
pub fn list(group_id: i32, key: impl Into<Bytes>) -> Result<KvRequest, KvError> {
    let key = key.into();
    key_ok(&key, true)?;
    Ok((KvCommands::DTKV_LIST, KvReq::key(group_id, key)))
}

/// DTKV_PUT: a non-empty value of at most 1 MiB.
pub fn put(
    group_id: i32,
    key: impl Into<Bytes>,
    value: impl Into<Bytes>,
) -> Result<KvRequest, KvError> {
    let (key, value) = (key.into(), value.into());
    key_ok(&key, false)?;
    value_ok(&value)?;
    Ok((KvCommands::DTKV_PUT, KvReq::put(group_id, key, value)))
}

/// DTKV_PUT_TEMP_NODE: a put with a TTL, owned by this client.
pub fn put_temp(
    group_id: i32,
    key: impl Into<Bytes>,
    value: impl Into<Bytes>,
    ttl_millis: i64,
) -> Result<KvRequest, KvError> {
    ttl_ok(ttl_millis, "ttl")?;
    let (cmd, req) = put(group_id, key, value)?;
    let _ = cmd;
    Ok((KvCommands::DTKV_PUT_TEMP_NODE, req.with_ttl(ttl_millis)))
}

/// DTKV_REMOVE.
pub fn remove(group_id: i32, key: impl Into<Bytes>) -> Result<KvRequest, KvError> {
    let key = key.into();
    key_ok(&key, false)?;
    Ok((KvCommands::DTKV_REMOVE, KvReq::key(group_id, key)))
}

/// DTKV_MKDIR.
pub fn mkdir(group_id: i32, key: impl Into<Bytes>) -> Result<KvRequest, KvError> {
    let key = key.into();
    key_ok(&key, false)?;
    Ok((KvCommands::DTKV_MKDIR, KvReq::key(group_id, key)))
}

/// DTKV_MAKE_TEMP_DIR.
pub fn make_temp_dir(
    group_id: i32,
    key: impl Into<Bytes>,
    ttl_millis: i64,
) -> Result<KvRequest, KvError> {
    ttl_ok(ttl_millis, "ttl")?;
    let (_, req) = mkdir(group_id, key)?;
    Ok((KvCommands::DTKV_MAKE_TEMP_DIR, req.with_ttl(ttl_millis)))
}

/// DTKV_UPDATE_TTL of one's own temporary node.
pub fn update_ttl(
    group_id: i32,
    key: impl Into<Bytes>,
    ttl_millis: i64,
) -> Result<KvRequest, KvError> {
    ttl_ok(ttl_millis, "ttl")?;
    let (_, req) = remove(group_id, key)?;
    Ok((KvCommands::DTKV_UPDATE_TTL, req.with_ttl(ttl_millis)))
}

/// DTKV_BATCH_GET.
pub fn batch_get(group_id: i32, keys: Vec<Bytes>) -> Result<KvRequest, KvError> {
    batch_keys_ok(&keys)?;
    Ok((
        KvCommands::DTKV_BATCH_GET,
        KvReq::batch(group_id, keys, vec![]),
    ))
}

/// DTKV_BATCH_PUT: as many non-empty values as keys (the server would turn an empty
/// value into a directory).
pub fn batch_put(
    group_id: i32,
    keys: Vec<Bytes>,
    values: Vec<Bytes>,
) -> Result<KvRequest, KvError> {
    if keys.len() != values.len() {
        return Err(KvError::InvalidArgument(format!(
            "{} keys but {} values",
            keys.len(),
            values.len()
        )));
    }
    batch_keys_ok(&keys)?;
    values.iter().try_for_each(|v| value_ok(v))?;
    Ok((
        KvCommands::DTKV_BATCH_PUT,
        KvReq::batch(group_id, keys, values),
    ))
}

/// DTKV_BATCH_REMOVE.
pub fn batch_remove(group_id: i32, keys: Vec<Bytes>) -> Result<KvRequest, KvError> {
    batch_keys_ok(&keys)?;
    Ok((
        KvCommands::DTKV_BATCH_REMOVE,
        KvReq::batch(group_id, keys, vec![]),
    ))
}

/// DTKV_CAS: `expect` empty means "create if absent", `value` empty "remove if equal";
/// not both empty. The new value obeys the value rules when present.
pub fn compare_and_set(
    group_id: i32,
    key: impl Into<Bytes>,
    expect: impl Into<Bytes>,
    value: impl Into<Bytes>,
) -> Result<KvRequest, KvError> {
    let (key, expect, value) = (key.into(), expect.into(), value.into());
    key_ok(&key, false)?;
    if expect.is_empty() && value.is_empty() {
        return Err(KvError::InvalidArgument(
            "expect value and new value can't both be empty".into(),
        ));
    }
    if !value.is_empty() {
        value_ok(&value)?;
    }
    Ok((
        KvCommands::DTKV_CAS,
        KvReq::cas(group_id, key, expect, value),
    ))
}

/// Whether `code` is a success for `command`, as the reference client decides
/// (`wire-protocol.md` §6.4): NOT_FOUND is a success for get and remove, DIR_EXISTS for
/// mkdir and make-temp-dir, SUCCESS_OVERWRITE for the puts, every code for CAS (its
/// result is whether the code is SUCCESS). Lock commands are the lock client's.
pub fn is_success(command: i32, code: KvCode) -> bool {
    use KvCode::*;
    match command {
        KvCommands::DTKV_PUT | KvCommands::DTKV_PUT_TEMP_NODE => {
            matches!(code, Success | SuccessOverwrite)
        }
        KvCommands::DTKV_GET | KvCommands::DTKV_REMOVE => matches!(code, Success | NotFound),
        KvCommands::DTKV_MKDIR | KvCommands::DTKV_MAKE_TEMP_DIR => {
            matches!(code, Success | DirExists)
        }
        KvCommands::DTKV_CAS => true,
        _ => code == Success,
    }
}

/// The leader a NOT_RAFT_LEADER answer names: `extra` holds its node id in decimal
/// ASCII (absent when the server does not know the leader).
pub fn leader_hint(p: &ReadPacket) -> Option<i32> {
    let e = p.extra.as_ref()?;
    std::str::from_utf8(e).ok()?.trim().parse().ok()
}

/// Interprets a DtKV data response to `command`: a non-zero response code is
/// [`KvError::Server`], a business code that is not a success for the command
/// [`KvError::Business`], else the code and the decoded body.
pub fn interpret(command: i32, p: &ReadPacket) -> Result<(KvCode, KvResp), KvError> {
    let code = check_codes(command, p)?;
    let resp = KvResp::decode(&p.body).map_err(KvError::Malformed)?;
    Ok((code, resp))
}

/// [`interpret`] and [`get_node`] in one, for DTKV_GET: a plain body
/// ([`dt_codec::plain`]) is read without building its list of results; any other body
/// is decoded whole, so every answer, good or malformed, gives what `interpret` then
/// `get_node` give.
pub fn interpret_get(command: i32, p: &ReadPacket) -> Result<(KvCode, Option<KvNode>), KvError> {
    let code = check_codes(command, p)?;
    let node = match super::resp::plain_first_node(&p.body) {
        Some(node) => node.filter(|_| code == KvCode::Success),
        None => get_node(code, KvResp::decode(&p.body).map_err(KvError::Malformed)?),
    };
    Ok((code, node))
}

/// The response and business codes of a DtKV data response to `command`: the
/// business code when both say success, else the error.
fn check_codes(command: i32, p: &ReadPacket) -> Result<KvCode, KvError> {
    if p.resp_code != CmdCodes::SUCCESS {
        return Err(KvError::Server {
            resp_code: p.resp_code,
            msg: p.msg.clone(),
            leader_hint: if p.resp_code == CmdCodes::NOT_RAFT_LEADER {
                leader_hint(p)
            } else {
                None
            },
        });
    }
    let code = KvCode::from_code(p.biz_code);
    if !is_success(command, code) {
        return Err(KvError::Business {
            command,
            code,
            msg: p.msg.clone(),
        });
    }
    Ok(code)
}

/// [`interpret`] for the commands whose answer the caller needs only the code and the
/// raft index of (put, remove, mkdir, the batches, CAS, temp nodes and TTLs): the
/// body's `KvResp` is checked as protobuf and its raft index read, but its results
/// are not decoded (nothing is allocated for them).
pub fn interpret_index(command: i32, p: &ReadPacket) -> Result<(KvCode, i64), KvError> {
    let code = check_codes(command, p)?;
    if p.body.is_empty() {
        return Ok((code, 0));
    }
    Ok((code, raft_index_of(&p.body).map_err(KvError::Malformed)?))
}

/// Field 1 (`raftIndex`) of a `KvResp` body, the rest checked as protobuf and skipped:
/// read straight from a plain body ([`plain_raft_index`]), else by the streaming
/// parser (which also reports every error).
fn raft_index_of(body: &Bytes) -> Result<i64, PbError> {
    if let Some(i) = plain_raft_index(body) {
        return Ok(i);
    }
    let mut parser = PbParser::new(RaftIndexOnly::default());
    parser.parse_whole(body)?;
    Ok(parser.callback().raft_index)
}

/// What [`RaftIndexOnly`] reads from a plain body ([`dt_codec::plain`]): the last field
/// 1 of wire type fixed64 (0 without one), every other field skipped. `None` when the
/// body is not plain.
fn plain_raft_index(body: &[u8]) -> Option<i64> {
    let mut fields = PlainFields::new(body);
    let mut index = 0;
    while let Some((field, v)) = fields.next_field().ok()? {
        if let (1, PlainValue::Fixed64(v)) = (field, v) {
            index = v as i64;
        }
    }
    Some(index)
}

/// Reads field 1 (`raftIndex`, fixed64) of a `KvResp` and skips the rest.
#[derive(Default)]
struct RaftIndexOnly {
    raft_index: i64,
}

impl PbCallback for RaftIndexOnly {
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        if field == 1 {
            self.raft_index = v as i64;
        }
        Ok(())
    }
}

/// GET's node: `None` when the key does not exist.
pub fn get_node(code: KvCode, resp: KvResp) -> Option<KvNode> {
    if code != KvCode::Success {
        return None;
    }
    resp.results.into_iter().next().and_then(|r| r.node)
}

/// BATCH_GET's nodes, one per key in request order; `None` for a missing key.
pub fn batch_get_nodes(resp: KvResp) -> Vec<Option<KvNode>> {
    resp.results.into_iter().map(|r| r.node).collect()
}

/// The answer to batch command `command` (BATCH_GET, BATCH_PUT, BATCH_REMOVE) must hold
/// one result per key: `keys` asked, else [`KvError::ResultCount`] (a server that
/// answers for other keys than asked must not be read as answering for these).
pub fn check_result_count(command: i32, resp: &KvResp, keys: usize) -> Result<(), KvError> {
    if resp.results.len() == keys {
        Ok(())
    } else {
        Err(KvError::ResultCount {
            command,
            keys,
            results: resp.results.len(),
        })
    }
}

/// BATCH_GET's answer (`command`) to a request of `keys` keys: one node per key
/// ([`batch_get_nodes`]), checked to be one per key ([`check_result_count`]).
pub fn batch_get_result(
    command: i32,
    resp: KvResp,
    keys: usize,
) -> Result<Vec<Option<KvNode>>, KvError> {
    check_result_count(command, &resp, keys)?;
    Ok(batch_get_nodes(resp))
}

/// BATCH_PUT's or BATCH_REMOVE's answer to a request of `keys` keys: the raft index
/// and each key's code, checked to be one per key ([`check_result_count`]).
pub fn batch_write_result(command: i32, resp: KvResp, keys: usize) -> Result<BatchResult, KvError> {
    check_result_count(command, &resp, keys)?;
    let codes = resp.results.iter().map(|r| r.biz_code).collect();
    Ok(BatchResult::new(command, resp.raft_index, codes))
}

/// LIST's children (each with its `key_in_dir` and node), in insertion order.
pub fn list_children(resp: KvResp) -> Vec<KvResult> {
    resp.results
}

/// CAS's outcome: whether the condition held and the write was done.
pub fn cas_done(code: KvCode) -> bool {
    code == KvCode::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `interpret_get` against `interpret` then `get_node`, which it stands in for.
    mod get_answer {
        use super::*;
        use dt_codec::fuzz::field_bytes as field;
        use proptest::prelude::*;

        fn packet(resp_code: i32, biz_code: i32, body: Vec<u8>) -> ReadPacket {
            ReadPacket {
                command: KvCommands::DTKV_GET,
                resp_code,
                biz_code,
                body: Bytes::from(body),
                ..Default::default()
            }
        }

        /// The two readings, comparable (errors by their text).
        fn both(p: &ReadPacket) -> (String, String) {
            let cmd = KvCommands::DTKV_GET;
            let whole = interpret(cmd, p).map(|(c, r)| (c, get_node(c, r)));
            (format!("{:?}", interpret_get(cmd, p)), format!("{whole:?}"))
        }

        fn arb_codes() -> impl Strategy<Value = (i32, i32)> {
            (
                prop::sample::select(vec![0, 0, 0, 7]),
                prop::sample::select(vec![0, 0, 1, 2, 4, 9]),
            )
        }

        proptest! {
            #[test]
            fn agrees_on_any_bytes(
                codes in arb_codes(),
                b in prop::collection::vec(any::<u8>(), 0..48),
            ) {
                let (a, w) = both(&packet(codes.0, codes.1, b));
                prop_assert_eq!(a, w);
            }

            #[test]
            fn agrees_on_answers(
                codes in arb_codes(),
                results in prop::collection::vec(
                    (0i32..5, prop::option::of((any::<i64>(), prop::collection::vec(any::<u8>(), 0..9)))),
                    0..3,
                ),
                junk in prop::option::of(prop::collection::vec(any::<u8>(), 1..6)),
            ) {
                let resp = KvResp {
                    raft_index: 3,
                    results: results
                        .into_iter()
                        .map(|(c, node)| KvResult {
                            biz_code: KvCode::from_code(c),
                            node: node.map(|(t, d)| KvNode {
                                update_index: t,
                                data: Bytes::from(d),
                                ..Default::default()
                            }),
                            key_in_dir: Bytes::new(),
                        })
                        .collect(),
                };
                let mut b = dt_codec::encode::to_bytes(&resp).to_vec();
                if let Some(j) = junk {
                    // a trailing field that may or may not parse
                    b.extend(field(3, 2, 0, &j));
                }
                let (a, w) = both(&packet(codes.0, codes.1, b));
                prop_assert_eq!(a, w);
            }
        }
    }

    /// `plain_raft_index` against the streaming parser it stands in for.
    mod plain_index {
        use super::*;
        use dt_codec::fuzz::field_bytes as field;
        use proptest::prelude::*;

        fn parsed(body: &[u8]) -> Result<i64, PbError> {
            let mut parser = PbParser::new(RaftIndexOnly::default());
            parser.parse_whole(&Bytes::copy_from_slice(body))?;
            Ok(parser.callback().raft_index)
        }

        fn arb_field() -> impl Strategy<Value = Vec<u8>> {
            (
                0u32..6,
                prop::sample::select(vec![0u8, 1, 2, 5, 3]),
                any::<u64>().prop_map(|v| v >> (v % 64)),
                prop::collection::vec(any::<u8>(), 0..20),
            )
                .prop_map(|(n, wt, v, d)| field(n, wt, v, &d))
        }

        proptest! {
            #[test]
            fn agrees_with_the_parser_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..48)) {
                if let Some(i) = plain_raft_index(&b) {
                    prop_assert_eq!(Ok(i), parsed(&b));
                }
                prop_assert_eq!(raft_index_of(&Bytes::from(b.clone())), parsed(&b));
            }

            #[test]
            fn agrees_with_the_parser_on_fields(
                fields in prop::collection::vec(arb_field(), 0..8),
                cut in 0usize..4,
            ) {
                let mut b: Vec<u8> = fields.concat();
                b.truncate(b.len().saturating_sub(cut));
                if let Some(i) = plain_raft_index(&b) {
                    prop_assert_eq!(Ok(i), parsed(&b));
                }
                prop_assert_eq!(raft_index_of(&Bytes::from(b.clone())), parsed(&b));
            }

            #[test]
            fn encoded_responses_take_it(index in any::<i64>(), n in 0usize..3) {
                let resp = KvResp {
                    raft_index: index,
                    results: (0..n)
                        .map(|i| KvResult {
                            biz_code: KvCode::Success,
                            node: None,
                            key_in_dir: Bytes::from(vec![b'k'; i + 1]),
                        })
                        .collect(),
                };
                let body = dt_codec::encode::to_bytes(&resp);
                prop_assert_eq!(plain_raft_index(&body), Some(index));
                prop_assert_eq!(parsed(&body), Ok(index));
            }
        }
    }

    #[test]
    fn client_side_checks() {
        assert!(get(0, "").is_ok());
        assert!(list(0, "").is_ok());
        assert!(put(0, "", "v").is_err());
        assert!(put(0, "a b", "v").is_err());
        assert!(put(0, "k", "").is_err());
        assert!(put(0, "k", vec![0u8; super::super::MAX_VALUE_SIZE + 1]).is_err());
        assert!(put_temp(0, "k", "v", 0).is_err());
        assert!(put_temp(0, "k", "v", MAX_TTL_MILLIS + 1).is_err());
        assert!(make_temp_dir(0, "k", -5).is_err());
        assert!(update_ttl(0, "k", 0).is_err());
        assert!(batch_get(0, vec![]).is_err());
        assert!(batch_put(0, vec!["a".into()], vec![]).is_err());
        assert!(batch_put(0, vec!["a".into()], vec![Bytes::new()]).is_err());
        assert!(batch_remove(0, vec!["a".into(), ".b".into()]).is_err());
        assert!(compare_and_set(0, "k", "", "").is_err());
        assert!(compare_and_set(0, "k", "x", "").is_ok());
        let (cmd, r) = put_temp(1, "t", "v", 5).unwrap();
        assert_eq!((cmd, r.group_id, r.ttl_millis), (80, 1, 5));
        // Plain writes never carry a TTL (the server would make a temp node).
        assert_eq!(put(0, "k", "v").unwrap().1.ttl_millis, 0);
    }

    #[test]
    fn success_table_and_errors() {
        assert!(is_success(KvCommands::DTKV_GET, KvCode::NotFound));
        assert!(!is_success(KvCommands::DTKV_LIST, KvCode::NotFound));
        assert!(is_success(
            KvCommands::DTKV_MAKE_TEMP_DIR,
            KvCode::DirExists
        ));
        assert!(!is_success(KvCommands::DTKV_PUT, KvCode::DirExists));
        assert!(is_success(KvCommands::DTKV_CAS, KvCode::CasMismatch));
        assert!(!is_success(KvCommands::DTKV_UPDATE_TTL, KvCode::NotOwner));
        let p = ReadPacket {
            packet_type: 2,
            command: 6,
            resp_code: CmdCodes::NOT_RAFT_LEADER,
            extra: Some(Bytes::from_static(b"12")),
            ..Default::default()
        };
        match interpret(6, &p) {
            Err(KvError::Server { leader_hint, .. }) => assert_eq!(leader_hint, Some(12)),
            other => panic!("{other:?}"),
        }
        let p = ReadPacket {
            packet_type: 2,
            command: 80,
            biz_code: 21,
            msg: "ttl must be positive: 0".into(),
            ..Default::default()
        };
        let e = interpret(80, &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DTKV_PUT_TEMP_NODE failed: INVALID_TTL(21) (ttl must be positive: 0)"
        );
    }

    #[test]
    fn interpret_index_reads_the_raft_index_and_skips_the_results() {
        let resp = KvResp {
            raft_index: 4242,
            results: vec![KvResult {
                biz_code: KvCode::Success,
                node: Some(KvNode {
                    create_index: 1,
                    create_time: 2,
                    update_index: 3,
                    update_time: 4,
                    flag: 0,
                    data: Bytes::from_static(b"some value"),
                }),
                key_in_dir: Bytes::from_static(b"k"),
            }],
        };
        let packet = |biz_code: i32, body: Bytes| ReadPacket {
            packet_type: 2,
            command: KvCommands::DTKV_PUT,
            biz_code,
            body,
            ..Default::default()
        };
        let ok = packet(0, dt_codec::encode::to_bytes(&resp));
        assert_eq!(
            interpret_index(KvCommands::DTKV_PUT, &ok).unwrap(),
            (KvCode::Success, 4242)
        );
        assert_eq!(
            interpret(KvCommands::DTKV_PUT, &ok).unwrap().1.raft_index,
            4242
        );
        // no body (a bare code): index 0
        let bare = packet(KvCode::NotFound.code(), Bytes::new());
        assert_eq!(
            interpret_index(KvCommands::DTKV_REMOVE, &bare).unwrap(),
            (KvCode::NotFound, 0)
        );
        // a failure code is the business error, as with `interpret`
        let failed = packet(KvCode::ParentDirNotExists.code(), Bytes::new());
        let e = interpret_index(KvCommands::DTKV_PUT, &failed).unwrap_err();
        assert_eq!(e.biz_code(), Some(KvCode::ParentDirNotExists));
        // a body that is not protobuf is malformed
        let bad = packet(0, Bytes::from_static(&[0x0a, 0x05, 0x01]));
        assert!(matches!(
            interpret_index(KvCommands::DTKV_PUT, &bad),
            Err(KvError::Malformed(_))
        ));
    }

    #[test]
    fn a_batch_answer_must_hold_one_result_per_key() {
        let result = |code: KvCode| KvResult {
            biz_code: code,
            ..Default::default()
        };
        let resp = KvResp {
            raft_index: 77,
            results: vec![result(KvCode::Success), result(KvCode::ParentDirNotExists)],
        };
        let r = batch_write_result(KvCommands::DTKV_BATCH_PUT, resp.clone(), 2).unwrap();
        assert_eq!(r.raft_index, 77);
        assert_eq!(r.codes, vec![KvCode::Success, KvCode::ParentDirNotExists]);
        assert!(!r.all_succeeded());
        for keys in [1, 3] {
            let e =
                batch_write_result(KvCommands::DTKV_BATCH_REMOVE, resp.clone(), keys).unwrap_err();
            assert!(matches!(
                e,
                KvError::ResultCount { command: KvCommands::DTKV_BATCH_REMOVE, keys: k, results: 2 } if k == keys
            ));
            assert!(e.to_string().contains("2 results for"), "{e}");
        }
        assert!(check_result_count(KvCommands::DTKV_BATCH_GET, &resp, 2).is_ok());
        assert!(check_result_count(KvCommands::DTKV_BATCH_GET, &resp, 5).is_err());
        let nodes = batch_get_result(KvCommands::DTKV_BATCH_GET, resp.clone(), 2).unwrap();
        assert_eq!(nodes.len(), 2);
        assert!(matches!(
            batch_get_result(KvCommands::DTKV_BATCH_GET, resp, 5),
            Err(KvError::ResultCount {
                keys: 5,
                results: 2,
                ..
            })
        ));
    }
}
