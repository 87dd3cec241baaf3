//! Property and robustness tests of the DtKV messages: random messages round-trip (whole
//! and fragmented, size first), decode the same through `prost` (a real protobuf
//! implementation) where the message is plain protobuf, every truncation and random
//! garbage give a result or a typed error and never a panic.

use std::fmt::Debug;

use bytes::Bytes;
use dt_client::kv::*;
use dt_codec::{encode, Encodable, ParseStatus, PbError, PbParser};
use proptest::prelude::*;

/// Encodes, checks the size, decodes whole and split at `cut`, and tries every
/// truncation.
fn round_trip<T>(m: &T, cut: usize)
where
    T: KvBody + Encodable + PartialEq + Debug,
{
    let b = encode::to_bytes(m);
    assert_eq!(b.len(), m.encoded_size());
    assert_eq!(&T::decode(&b).unwrap(), m);
    let cut = cut % (b.len() + 1);
    let mut p = PbParser::new(T::Callback::default());
    p.prepare(b.len()).unwrap();
    let mut status = p.feed(&b.slice(..cut)).unwrap().status;
    if cut < b.len() {
        status = p.feed(&b.slice(cut..)).unwrap().status;
    }
    assert_eq!(status, ParseStatus::Finished);
    assert_eq!(&T::finish(p.into_callback()).unwrap(), m);
    for n in 0..b.len() {
        let _ = T::decode(&b.slice(..n));
    }
}

/// Decodes garbage: a result or an error, never a panic, and the same verdict whole and
/// byte by byte.
fn garbage<T: KvBody + PartialEq + Debug>(data: &Bytes) {
    let whole = T::decode(data);
    let mut p = PbParser::new(T::Callback::default());
    let bytewise = (|| {
        p.prepare(data.len())?;
        let mut status = p.feed(&Bytes::new())?.status;
        for i in 0..data.len() {
            status = p.feed(&data.slice(i..i + 1))?.status;
        }
        match status {
            ParseStatus::Finished => T::finish(p.into_callback()),
            ParseStatus::Rejected => Err(PbError::rejected("body rejected")),
            ParseStatus::NeedMore => Err(PbError::invalid("not finished")),
        }
    })();
    assert_eq!(whole.is_ok(), bytewise.is_ok(), "{whole:?} vs {bytewise:?}");
    if let (Ok(a), Ok(b)) = (&whole, &bytewise) {
        assert_eq!(a, b);
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn kv_req() -> impl Strategy<Value = KvReq> {
    (
        (any::<i32>(), bytes(16), bytes(40), bytes(8)),
        (any::<u64>(), any::<u64>(), any::<i64>()),
        prop::collection::vec(bytes(6), 0..5),
        any::<bool>(),
    )
        .prop_map(
            |((group_id, key, value, expect_value), (u1, u2, ttl), keys, with_values)| {
                let values = if with_values {
                    keys.iter().rev().cloned().collect()
                } else {
                    vec![]
                };
                KvReq {
                    group_id,
                    key,
                    value,
                    expect_value,
                    owner_uuid1: u1,
                    owner_uuid2: u2,
                    ttl_millis: ttl,
                    keys,
                    values,
                }
            },
        )
}

fn kv_node() -> impl Strategy<Value = KvNode> {
    (
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i32>(),
        bytes(20),
    )
        .prop_map(|(a, b, c, d, flag, data)| KvNode {
            create_index: a,
            create_time: b,
            update_index: c,
            update_time: d,
            flag,
            data,
        })
}

fn kv_result() -> impl Strategy<Value = KvResult> {
    (any::<i32>(), prop::option::of(kv_node()), bytes(8)).prop_map(|(c, node, key_in_dir)| {
        KvResult {
            biz_code: KvCode::from_code(c),
            node,
            key_in_dir,
        }
    })
}

fn kv_resp() -> impl Strategy<Value = KvResp> {
    (any::<i64>(), prop::collection::vec(kv_result(), 0..5)).prop_map(|(raft_index, results)| {
        KvResp {
            raft_index,
            results,
        }
    })
}

fn watch_req() -> impl Strategy<Value = WatchReq> {
    (
        any::<i32>(),
        any::<bool>(),
        prop::collection::vec((any::<i64>(), bytes(10)), 0..5),
    )
        .prop_map(|(group_id, sync_all, items)| WatchReq {
            group_id,
            sync_all,
            known_raft_indexes: items.iter().map(|i| i.0).collect(),
            keys: items.into_iter().map(|i| i.1).collect(),
        })
}

fn watch_notify_req() -> impl Strategy<Value = WatchNotifyReq> {
    (
        any::<i32>(),
        prop::collection::vec((any::<i64>(), 0..3i32, bytes(10), bytes(10)), 0..5),
    )
        .prop_map(|(group_id, items)| WatchNotifyReq {
            group_id,
            notify_list: items
                .into_iter()
                .map(|(raft_index, state, key, value)| WatchNotify {
                    raft_index,
                    state,
                    key,
                    value,
                })
                .collect(),
        })
}

/// prost's view of KvReq (plain protobuf: the wire is standard).
#[derive(Clone, PartialEq, prost::Message)]
struct ProstKvReq {
    #[prost(int32, tag = "1")]
    group_id: i32,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    value: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    expect_value: Vec<u8>,
    #[prost(fixed64, tag = "5")]
    owner_uuid1: u64,
    #[prost(fixed64, tag = "6")]
    owner_uuid2: u64,
    #[prost(int64, tag = "7")]
    ttl_millis: i64,
    #[prost(int32, tag = "8")]
    keys_size: i32,
    #[prost(bytes = "vec", repeated, tag = "9")]
    keys: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "10")]
    values: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProstKvNode {
    #[prost(fixed64, tag = "1")]
    create_index: u64,
    #[prost(fixed64, tag = "2")]
    create_time: u64,
    #[prost(fixed64, tag = "3")]
    update_index: u64,
    #[prost(fixed64, tag = "4")]
    update_time: u64,
    #[prost(int32, tag = "5")]
    flag: i32,
    #[prost(bytes = "vec", tag = "15")]
    data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProstKvResult {
    #[prost(int32, tag = "1")]
    biz_code: i32,
    #[prost(message, optional, tag = "2")]
    node: Option<ProstKvNode>,
    #[prost(bytes = "vec", tag = "3")]
    key_in_dir: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProstKvResp {
    #[prost(fixed64, tag = "1")]
    raft_index: u64,
    #[prost(int32, tag = "2")]
    results_size: i32,
    #[prost(message, repeated, tag = "3")]
    results: Vec<ProstKvResult>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn kv_req_round_trips_and_matches_prost(m in kv_req(), cut in any::<usize>()) {
        round_trip(&m, cut);
        use prost::Message;
        let b = encode::to_bytes(&m);
        let p = ProstKvReq::decode(&b[..]).unwrap();
        prop_assert_eq!(p.group_id, m.group_id);
        prop_assert_eq!(&p.key[..], &m.key[..]);
        prop_assert_eq!(&p.value[..], &m.value[..]);
        prop_assert_eq!(p.owner_uuid1, m.owner_uuid1);
        prop_assert_eq!(p.ttl_millis, m.ttl_millis);
        prop_assert_eq!(p.keys_size as usize, m.keys.len());
        prop_assert_eq!(p.keys.len(), m.keys.len());
        // prost writes the same bytes (both follow proto3's omission rules; repeated
        // bytes are never packed).
        prop_assert_eq!(&p.encode_to_vec()[..], &b[..]);
    }

    #[test]
    fn kv_resp_round_trips_and_matches_prost(m in kv_resp(), cut in any::<usize>()) {
        round_trip(&m, cut);
        use prost::Message;
        let b = encode::to_bytes(&m);
        let p = ProstKvResp::decode(&b[..]).unwrap();
        prop_assert_eq!(p.raft_index as i64, m.raft_index);
        prop_assert_eq!(p.results.len(), m.results.len());
        for (a, r) in p.results.iter().zip(&m.results) {
            prop_assert_eq!(a.biz_code, r.biz_code.code());
            prop_assert_eq!(a.node.is_some(), r.node.is_some());
            if let (Some(x), Some(y)) = (&a.node, &r.node) {
                prop_assert_eq!(x.flag, y.flag);
                prop_assert_eq!(&x.data[..], &y.data[..]);
                prop_assert_eq!(x.update_index as i64, y.update_index);
            }
        }
        prop_assert_eq!(&p.encode_to_vec()[..], &b[..]);
    }

    #[test]
    fn watch_messages_round_trip(
        w in watch_req(),
        n in watch_notify_req(),
        results in prop::collection::vec(any::<i32>(), 0..6),
        status in prop::option::of(bytes(30)),
        watch_count in any::<i32>(),
        cut in any::<usize>(),
    ) {
        round_trip(&w, cut);
        round_trip(&n, cut);
        round_trip(&WatchNotifyResp { results }, cut);
        round_trip(&KvStatusResp { raft_server_status: status, watch_count }, cut);
    }

    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let data = Bytes::from(data);
        garbage::<KvReq>(&data);
        garbage::<KvResp>(&data);
        garbage::<KvResult>(&data);
        garbage::<KvNode>(&data);
        garbage::<WatchReq>(&data);
        garbage::<WatchNotifyReq>(&data);
        garbage::<WatchNotifyResp>(&data);
        garbage::<KvStatusResp>(&data);
    }

    #[test]
    fn mutated_valid_bodies_never_panic(m in kv_resp(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut b = encode::to_bytes(&m).to_vec();
        if !b.is_empty() {
            let i = pos % b.len();
            b[i] = byte;
        }
        garbage::<KvResp>(&Bytes::from(b));
    }
}
