//! Property and robustness tests of the Raft RPC bodies: random messages round-trip
//! (whole and fragmented), every truncation and random garbage give a result or a typed
//! error and never a panic, and malformed counts are refused before any allocation.

use std::fmt::Debug;

use bytes::{BufMut, Bytes, BytesMut};
use dt_codec::{encode, Encodable, ParseStatus, PbError, PbParser};
use dt_raft::rpc::admin::RaftNode;
use dt_raft::rpc::*;
use proptest::prelude::*;

/// Encodes, checks the size, decodes whole and split at `cut`, and tries every
/// truncation.
fn round_trip<T>(m: &T, cut: usize)
where
    T: RpcBody + Encodable + PartialEq + Debug,
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
        // A truncated body decodes (cut between fields) or fails; it never panics.
        let _ = T::decode(&b.slice(..n));
    }
}

/// Decodes garbage as every message type: a result or an error, never a panic, and the
/// same verdict whole and byte by byte.
fn garbage<T: RpcBody + PartialEq + Debug>(data: &Bytes) {
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
            _ => Err(PbError::invalid("not finished")),
        }
    })();
    assert_eq!(whole.is_ok(), bytewise.is_ok(), "{whole:?} vs {bytewise:?}");
    if let (Ok(a), Ok(b)) = (&whole, &bytewise) {
        assert_eq!(a, b);
    }
}

fn ids() -> impl Strategy<Value = Vec<i32>> {
    prop::collection::hash_set(any::<i32>(), 0..5).prop_map(|s| s.into_iter().collect())
}

fn opt_bytes() -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from))
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9.,:;]{0,24}"
}

fn log_item() -> impl Strategy<Value = LogItem> {
    (
        (any::<i32>(), any::<i32>(), any::<i32>(), any::<i64>()),
        (any::<i32>(), any::<i64>(), opt_bytes(), opt_bytes()),
    )
        .prop_map(|((t, b, term, index), (prev, ts, header, body))| LogItem {
            item_type: t,
            biz_type: b,
            term,
            index,
            prev_log_term: prev,
            timestamp: ts,
            header,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn vote_round_trip(
        g in any::<i32>(), t in any::<i32>(), c in any::<i32>(), i in any::<i64>(),
        lt in any::<i32>(), pv in any::<bool>(), cut in any::<usize>(),
    ) {
        round_trip(&VoteReq { group_id: g, term: t, candidate_id: c, last_log_index: i,
                              last_log_term: lt, pre_vote: pv }, cut);
        round_trip(&VoteResp { term: t, vote_granted: pv }, cut);
    }

    #[test]
    fn append_round_trip(
        head in (any::<i32>(), any::<i32>(), any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>()),
        logs in prop::collection::vec(log_item(), 0..4),
        resp in (any::<i32>(), any::<bool>(), any::<i32>(), any::<i32>(), any::<i64>()),
        cut in any::<usize>(),
    ) {
        let (group_id, term, leader_id, prev_log_index, prev_log_term, leader_commit) = head;
        round_trip(&AppendReq { group_id, term, leader_id, prev_log_index, prev_log_term,
                                leader_commit, logs }, cut);
        let (term, success, append_code, suggest_term, suggest_index) = resp;
        round_trip(&AppendResp { term, success, append_code, suggest_term, suggest_index }, cut);
    }

    #[test]
    fn install_snapshot_round_trip(
        a in (any::<i32>(), any::<i32>(), any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>()),
        b in (any::<bool>(), any::<i64>(), any::<i64>()),
        sets in (ids(), ids(), ids(), ids()),
        data in prop::collection::vec(any::<u8>(), 0..40),
        cut in any::<usize>(),
    ) {
        round_trip(&InstallSnapshotReq {
            group_id: a.0, term: a.1, leader_id: a.2, last_included_index: a.3,
            last_included_term: a.4, offset: a.5, done: b.0, next_write_pos: b.1,
            members: sets.0, observers: sets.1, prepared_members: sets.2,
            prepared_observers: sets.3, last_config_change_index: b.2, data: data.into(),
        }, cut);
    }

    #[test]
    fn ping_and_transfer_round_trip(
        n in (any::<i32>(), any::<i32>(), any::<i64>(), any::<i64>()),
        s in (text(), text(), text(), text()),
        t in (any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>(), any::<i64>()),
        cut in any::<usize>(),
    ) {
        round_trip(&NodePing { local_node_id: n.0, remote_node_id: n.1, uuid_high: n.2,
                               uuid_low: n.3 }, cut);
        round_trip(&RaftPing { group_id: n.0, node_id: n.1, members: s.0, observers: s.1,
                               prepared_members: s.2, prepared_observers: s.3 }, cut);
        round_trip(&TransferLeaderReq { group_id: t.0, term: t.1, old_leader_id: t.2,
                                        new_leader_id: t.3, log_index: t.4 }, cut);
    }

    #[test]
    fn admin_round_trip(
        g in any::<i32>(), idx in any::<i64>(), sets in (ids(), ids(), ids(), ids()),
        host in text(), port in any::<i32>(),
        nodes in prop::collection::vec((any::<i32>(), text(), any::<i32>()), 0..4),
        groups in prop::collection::vec(any::<i32>(), 0..6),
        cut in any::<usize>(),
    ) {
        round_trip(&AdminPrepareConfigChangeReq { group_id: g, members: sets.0,
            observers: sets.1, prepared_members: sets.2, prepared_observers: sets.3 }, cut);
        round_trip(&AdminCommitOrAbortReq { group_id: g, prepare_index: idx }, cut);
        round_trip(&AdminAddNodeReq { node_id: g, host: host.clone(), port }, cut);
        round_trip(&AdminAddGroupReq { group_id: g, node_id_of_members: host.clone(),
                                       node_id_of_observers: host }, cut);
        let nodes = nodes.into_iter()
            .map(|(node_id, host, port)| RaftNode { node_id, host, port }).collect();
        round_trip(&AdminListNodesResp { nodes }, cut);
        round_trip(&AdminListGroupsResp { group_ids: groups }, cut);
    }

    #[test]
    fn status_round_trip(
        a in (any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>()),
        b in (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        sets in (ids(), ids(), ids(), ids()),
        err in any::<String>(),
        cut in any::<usize>(),
    ) {
        round_trip(&QueryStatusResp {
            group_id: a.0, node_id: a.1, flag: a.2, term: a.3, leader_id: a.4,
            commit_index: b.0, last_applied: b.1, last_apply_time_to_now_millis: b.2,
            last_log_index: b.3, apply_lag_millis: b.4, members: sets.0, observers: sets.1,
            prepared_members: sets.2, prepared_observers: sets.3,
            last_config_change_index: b.5, last_error: err,
        }, cut);
    }

    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..160)) {
        let data = Bytes::from(data);
        garbage::<VoteReq>(&data);
        garbage::<VoteResp>(&data);
        garbage::<AppendReq>(&data);
        garbage::<AppendResp>(&data);
        garbage::<LogItem>(&data);
        garbage::<InstallSnapshotReq>(&data);
        garbage::<NodePing>(&data);
        garbage::<RaftPing>(&data);
        garbage::<TransferLeaderReq>(&data);
        garbage::<AdminPrepareConfigChangeReq>(&data);
        garbage::<AdminCommitOrAbortReq>(&data);
        garbage::<AdminAddNodeReq>(&data);
        garbage::<AdminAddGroupReq>(&data);
        garbage::<AdminListNodesResp>(&data);
        garbage::<AdminListGroupsResp>(&data);
        garbage::<QueryStatusResp>(&data);
    }

    /// Mutated valid append requests (the richest body) decode or fail cleanly.
    #[test]
    fn mutated_append_never_panics(
        logs in prop::collection::vec(log_item(), 1..3),
        pos in any::<usize>(), byte in any::<u8>(),
    ) {
        let m = AppendReq { group_id: 1, term: 2, leader_id: 3, prev_log_index: 4,
                            prev_log_term: 5, leader_commit: 6, logs };
        let mut b = encode::to_bytes(&m).to_vec();
        let i = pos % b.len();
        b[i] = byte;
        garbage::<AppendReq>(&Bytes::from(b));
    }
}

// ---- hand-made malformed bodies: typed errors ----

fn varint_field(out: &mut BytesMut, field: u32, v: i64) {
    encode::put_tag(out, field, 0);
    encode::put_varint(out, v as u64);
}

fn entry(out: &mut BytesMut, item: &LogItem) {
    let b = encode::to_bytes(item);
    encode::put_len_prefix(out, 8, b.len());
    out.put_slice(&b);
}

fn invalid<T: RpcBody + Debug>(b: BytesMut) -> String {
    match T::decode(&b.freeze()) {
        Err(PbError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn append_counts_are_checked() {
    let item = LogItem {
        index: 5,
        term: 1,
        ..Default::default()
    };
    // A count far beyond what the body can hold is refused before any allocation.
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, 1 << 30);
    entry(&mut b, &item);
    assert!(invalid::<AppendReq>(b).contains("exceeds"));
    // Negative.
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, -1);
    assert!(invalid::<AppendReq>(b).contains("negative"));
    // Fewer entries than announced.
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, 2);
    entry(&mut b, &item);
    assert!(invalid::<AppendReq>(b).contains("logs_size 2 but 1"));
    // More entries than announced.
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, 1);
    entry(&mut b, &item);
    entry(&mut b, &item);
    assert!(invalid::<AppendReq>(b).contains("more entries"));
    // An entry before the count.
    let mut b = BytesMut::new();
    entry(&mut b, &item);
    varint_field(&mut b, 7, 1);
    assert!(invalid::<AppendReq>(b).contains("before logs_size"));
    // A repeated count.
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, 1);
    varint_field(&mut b, 7, 1);
    assert!(invalid::<AppendReq>(b).contains("repeated"));
}

#[test]
fn nested_entry_overrun_is_a_typed_error() {
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, 1);
    // Entry field of 6 bytes holding a header field that claims 9.
    encode::put_len_prefix(&mut b, 8, 6);
    encode::put_len_prefix(&mut b, 7, 9);
    b.put_slice(b"abcd");
    let r = AppendReq::decode(&b.freeze());
    assert!(
        matches!(r, Err(PbError::LengthOverrun { field: 7, .. })),
        "{r:?}"
    );
    // An entry cut inside a fixed64.
    let mut b = BytesMut::new();
    varint_field(&mut b, 7, 1);
    encode::put_len_prefix(&mut b, 8, 3);
    b.put_slice(&[0x21, 1, 2]);
    let r = AppendReq::decode(&b.freeze());
    assert!(matches!(r, Err(PbError::Truncated { .. })), "{r:?}");
    // A wire type the subset does not have.
    let r = VoteReq::decode(&Bytes::from_static(&[0x0b]));
    assert!(matches!(r, Err(PbError::InvalidWireType { .. })), "{r:?}");
}

#[test]
fn list_counts_are_checked() {
    let mut b = BytesMut::new();
    varint_field(&mut b, 1, 1);
    varint_field(&mut b, 2, 7);
    varint_field(&mut b, 2, 8);
    let r = AdminListGroupsResp::decode(&b.freeze());
    assert!(matches!(r, Err(PbError::Rejected(_))), "{r:?}");
    let mut b = BytesMut::new();
    varint_field(&mut b, 2, 7);
    assert!(invalid::<AdminListGroupsResp>(b).contains("before its size"));
    let mut b = BytesMut::new();
    varint_field(&mut b, 1, 2);
    varint_field(&mut b, 2, 7);
    assert!(invalid::<AdminListGroupsResp>(b).contains("size 2 but 1"));
    let mut b = BytesMut::new();
    varint_field(&mut b, 1, 3);
    varint_field(&mut b, 2, 7);
    assert!(invalid::<AdminListGroupsResp>(b).contains("exceeds"));
    let mut b = BytesMut::new();
    varint_field(&mut b, 1, 2);
    let node = encode::to_bytes(&RaftNode {
        node_id: 1,
        host: "h".into(),
        port: 2,
    });
    encode::put_len_prefix(&mut b, 2, node.len());
    b.put_slice(&node);
    assert!(invalid::<AdminListNodesResp>(b).contains("size 2 but 1"));
    let mut b = BytesMut::new();
    varint_field(&mut b, 1, i32::MAX as i64);
    assert!(invalid::<AdminListNodesResp>(b).contains("exceeds"));
    // Empty lists are an empty body, as the reference writes them.
    assert!(encode::to_bytes(&AdminListNodesResp::default()).is_empty());
    assert_eq!(
        AdminListGroupsResp::decode(&Bytes::new()).unwrap(),
        AdminListGroupsResp::default()
    );
}

#[test]
fn repeated_ids_are_a_set() {
    let mut b = BytesMut::new();
    encode::put_repeated_fixed32(&mut b, 11, &[3, 1, 3, 2, 1]);
    let m = QueryStatusResp::decode(&b.freeze()).unwrap();
    assert_eq!(m.members, [3, 1, 2]);
}

#[test]
fn entry_bytes_are_zero_copy() {
    let m = AppendReq {
        term: 1,
        logs: vec![LogItem {
            index: 1,
            header: Some(Bytes::from_static(b"head")),
            body: Some(Bytes::from(vec![7u8; 100])),
            ..Default::default()
        }],
        ..Default::default()
    };
    let wire = encode::to_bytes(&m);
    let d = AppendReq::decode(&wire).unwrap();
    assert_eq!(d, m);
    let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
    for b in [
        d.logs[0].header.as_ref().unwrap(),
        d.logs[0].body.as_ref().unwrap(),
    ] {
        assert!(range.contains(&(b.as_ptr() as usize)), "copied");
    }
    // Absent and empty header/body stay distinct on the wire.
    let mut item = LogItem::default();
    assert!(encode::to_bytes(&item).is_empty());
    item.body = Some(Bytes::new());
    assert_eq!(&encode::to_bytes(&item)[..], &[0x42, 0x00]);
    assert_eq!(LogItem::decode(&encode::to_bytes(&item)).unwrap(), item);
}

#[test]
fn core_conversions_refuse_bad_values() {
    let r = AppendResp {
        term: 1,
        append_code: 9,
        ..Default::default()
    };
    assert!(dt_raft::core::AppendResp::try_from(&r).is_err());
    let r = AppendResp {
        term: 1,
        success: true,
        append_code: AppendCodes::APPEND_LOG_NOT_MATCH,
        ..Default::default()
    };
    assert!(dt_raft::core::AppendResp::try_from(&r).is_err());
    let v = VoteReq {
        term: -1,
        ..Default::default()
    };
    assert!(dt_raft::core::VoteReq::try_from(&v).is_err());
    let i = LogItem {
        biz_type: 128,
        ..Default::default()
    };
    assert!(dt_raft::store::LogItem::try_from(&i).is_err());
    let a = AppendReq {
        logs: vec![LogItem {
            index: -5,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(dt_raft::core::AppendReq::try_from(&a).is_err());
}

#[test]
fn query_status_flags() {
    let mut m = QueryStatusResp::default();
    m.set_flag(true, false, true, false);
    assert_eq!(m.flag, 5);
    assert!(m.is_init_finished() && m.is_group_ready());
    assert!(!m.is_init_failed() && !m.is_bug());
    m.set_flag(false, true, false, true);
    assert_eq!(m.flag, 10);
    assert_eq!(
        RaftPing::format_servers([(1, "127.0.0.1", 4001), (2, "h", 4002)]),
        "1,127.0.0.1:4001;2,h:4002;"
    );
}

/// One parser and callback decode message after message (as a connection does), also
/// after a failed one.
#[test]
fn callbacks_are_reusable() {
    let a = AppendReq {
        term: 3,
        logs: vec![LogItem {
            index: 9,
            body: Some(Bytes::from_static(b"x")),
            ..Default::default()
        }],
        ..Default::default()
    };
    let b = AppendReq {
        leader_commit: 4,
        ..Default::default()
    };
    // Fails inside the parse (the second entry is one too many), leaving state behind.
    let mut bad = BytesMut::new();
    varint_field(&mut bad, 7, 1);
    entry(&mut bad, &a.logs[0]);
    entry(&mut bad, &a.logs[0]);
    let bad = bad.freeze();
    let mut cb = <AppendReq as RpcBody>::Callback::default();
    for (body, want) in [
        (encode::to_bytes(&a), Some(&a)),
        (bad.clone(), None),
        (encode::to_bytes(&b), Some(&b)),
        (encode::to_bytes(&a), Some(&a)),
    ] {
        let mut p = PbParser::new(&mut cb);
        let status = p.parse_whole(&body);
        // The callback is taken only after a finished parse; a failed one stays in
        // use with whatever it had collected, and `begin` must clear that.
        let got = status.and_then(|_| AppendReq::finish(std::mem::take(&mut cb)));
        match want {
            Some(m) => assert_eq!(&got.unwrap(), m),
            None => assert!(got.is_err()),
        }
    }
}
