//! DtKV snapshot records written by the reference's server that the golden data
//! directories lack: a held lock with a queued waiter, a temporary value whose TTL was
//! updated, and a temporary directory with a plain child. The records were cut (whole,
//! parents first) from a snapshot the reference's dist `Bootstrap` saved on close after
//! its own `KvClient` wrote them (a live interoperability run; the full tree also loaded
//! in dt-server and back). Here they are decoded, installed, re-encoded byte for byte,
//! and the installed tree behaves as the reference's: the lock's owner is the entry
//! with the smallest create index, unlocking hands the lock to the waiter with its hold
//! lease, and TTL owners are the recorded client UUIDs.

use bytes::Bytes;
use dt_client::kv::{KvCode, KvNode, KvReq};
use dt_common::vectors::unhex;
use dt_net::ProcessInfo;
use dt_server::dtkv::{
    ApplyResult, BizType, KvTree, SnapshotDecoder, SnapshotRecord, TtlChange, TtlInfo,
};

/// Index the records were saved at (`lastIncludedIndex` of that snapshot).
const LAST_INCLUDED: i64 = 101;

/// The first client (it holds the lock and owns the temporary nodes).
const HOLDER: ProcessInfo = ProcessInfo {
    uuid1: 0x0d69d91c583a4977,
    uuid2: 0xa35cb2ddf0d01ea1,
};

/// The second client (queued on the lock with a 3 000 000 ms wait).
const WAITER: ProcessInfo = ProcessInfo {
    uuid1: 0x29df6bc4a01147f6,
    uuid2: 0xaf9830c276be06a0,
};

/// The records' bytes, in the reference's order.
const RECORDS: [&str; 9] = [
    // (root)
    concat!(
        "000000000000000000000000000000000000000000000063000001a240fba908000000010000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
    ),
    // p
    concat!(
        "0000000000000007000001a240fba77a0000000000000063000001a240fba908000000010000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000010000000070",
    ),
    // p.t2
    concat!(
        "000000000000005d000001a240fba8b3000000000000005d000001a240fba8b3000000040d69d91c583a4977",
        "a35cb2ddf0d01ea1000000000000005e000001a240fba8b400000000005265c00000000400000005702e7432",
        "74656d7032",
    ),
    // p.td
    concat!(
        "000000000000005f000001a240fba8ba0000000000000060000001a240fba8bd000000050d69d91c583a4977",
        "a35cb2ddf0d01ea1000000000000005f000001a240fba8ba000000000036ee800000000400000000702e7464",
    ),
    // p.td.child
    concat!(
        "0000000000000060000001a240fba8bd0000000000000060000001a240fba8bd000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000a0000000b702e7464",
        "2e6368696c64696e2074656d7020646972",
    ),
    // p.locks
    concat!(
        "0000000000000061000001a240fba8be0000000000000063000001a240fba908000000010000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000700000000702e6c6f",
        "636b73",
    ),
    // p.locks.l1
    concat!(
        "0000000000000062000001a240fba8c90000000000000063000001a240fba908000000030000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000a00000000702e6c6f",
        "636b732e6c31",
    ),
    // p.locks.l1.0d69…(holder)
    concat!(
        "0000000000000062000001a240fba8c90000000000000062000001a240fba8c9000000020d69d91c583a4977",
        "a35cb2ddf0d01ea10000000000000062000001a240fba8c9000000000036ee800000002b00000010702e6c6f",
        "636b732e6c312e30643639643931633538336134393737613335636232646466306430316561310000000000",
        "36ee800000000100000001",
    ),
    // p.locks.l1.29df…(waiter)
    concat!(
        "0000000000000063000001a240fba9080000000000000063000001a240fba9080000000629df6bc4a01147f6",
        "af9830c276be06a00000000000000063000001a240fba90800000000002dc6c00000002b00000010702e6c6f",
        "636b732e6c312e32396466366263346130313134376636616639383330633237366265303661300000000000",
        "36ee800000000100000001",
    ),
];

fn stream() -> Vec<u8> {
    RECORDS.iter().flat_map(|h| unhex(h)).collect()
}

fn decode(stream: &[u8], chunk: usize) -> Vec<SnapshotRecord> {
    let mut d = SnapshotDecoder::new();
    let mut out = Vec::new();
    for c in stream.chunks(chunk) {
        d.feed(c, &mut out).unwrap();
    }
    d.finish().unwrap();
    out
}

fn rec<'a>(rs: &'a [SnapshotRecord], key: &str) -> &'a SnapshotRecord {
    rs.iter().find(|r| r.key == key.as_bytes()).unwrap()
}

#[test]
fn reference_lock_and_ttl_records_decode() {
    let rs = decode(&stream(), 13);
    assert_eq!(rs.len(), 9);
    let holder_key = "p.locks.l1.0d69d91c583a4977a35cb2ddf0d01ea1";
    let waiter_key = "p.locks.l1.29df6bc4a01147f6af9830c276be06a0";

    let lock = rec(&rs, "p.locks.l1");
    assert_eq!(lock.flag, KvNode::FLAG_DIR | KvNode::FLAG_LOCK);
    assert_eq!((lock.create_index, lock.update_index), (98, 99));
    assert_eq!(lock.ttl, None);

    // The holder's entry: LOCK, not TEMP (it was created with wait 0), TTL = hold lease.
    let h = rec(&rs, holder_key);
    assert_eq!(h.flag, KvNode::FLAG_LOCK);
    assert_eq!(h.create_index, 98);
    let t = h.ttl.unwrap();
    assert_eq!(
        (t.owner, t.raft_index, t.ttl_millis),
        (HOLDER, 98, 3_600_000)
    );
    assert_eq!(t.leader_start_millis, h.create_time);
    // Value: hold TTL (8 bytes), lock id, operation id.
    assert_eq!(&h.value[..8], &3_600_000i64.to_be_bytes());

    // The waiter's entry: LOCK|TEMP, TTL = its wait timeout.
    let w = rec(&rs, waiter_key);
    assert_eq!(w.flag, KvNode::FLAG_LOCK | KvNode::FLAG_TEMP);
    let t = w.ttl.unwrap();
    assert_eq!(
        (t.owner, t.raft_index, t.ttl_millis),
        (WAITER, 99, 3_000_000)
    );

    // put_temp at 93 (TTL 7 200 000 ms), then updateTtl at 94 to 5 400 000 ms: the
    // version stays 93, the TTL names 94.
    let t2 = rec(&rs, "p.t2");
    assert_eq!(t2.flag, KvNode::FLAG_TEMP);
    assert_eq!((t2.create_index, t2.update_index), (93, 93));
    let t = t2.ttl.unwrap();
    assert_eq!(
        (t.owner, t.raft_index, t.ttl_millis),
        (HOLDER, 94, 5_400_000)
    );
    assert!(t.leader_start_millis > t2.update_time);

    let td = rec(&rs, "p.td");
    assert_eq!(td.flag, KvNode::FLAG_DIR | KvNode::FLAG_TEMP);
    assert_eq!(td.ttl.unwrap().ttl_millis, 3_600_000);
    let child = rec(&rs, "p.td.child");
    assert_eq!((child.flag, child.ttl), (0, None));
}

#[test]
fn reference_lock_records_install_and_reencode_byte_for_byte() {
    let input = stream();
    let rs = decode(&input, 1000);
    let (mut t, ttls) = KvTree::install(rs).unwrap();
    // Every TTL the records carry goes to the TtlManager.
    let mut started: Vec<(Bytes, TtlInfo)> = ttls
        .into_iter()
        .map(|c| match c {
            TtlChange::Started { key, info } => (key, info),
            other => panic!("{other:?}"),
        })
        .collect();
    started.sort_by_key(|(_, i)| i.raft_index);
    let keys: Vec<&[u8]> = started.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(
        keys,
        [
            &b"p.t2"[..],
            b"p.td",
            b"p.locks.l1.0d69d91c583a4977a35cb2ddf0d01ea1",
            b"p.locks.l1.29df6bc4a01147f6af9830c276be06a0"
        ]
    );

    let mut r = t.snapshot_reader(LAST_INCLUDED);
    let mut out = Vec::new();
    loop {
        let b = t.read_snapshot(&mut r, 100);
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    assert_eq!(out, input, "our encoding of the installed records");
}

#[test]
fn reference_lock_records_behave_after_install() {
    let (mut t, _) = KvTree::install(decode(&stream(), 64)).unwrap();
    let time = 1_800_000_000_000;

    // The waiter cannot take the lock with wait 0: the holder owns it.
    let mut value = 3_600_000i64.to_be_bytes().to_vec();
    value.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 1]);
    let mut req = KvReq::put(0, "p.locks.l1", value).with_ttl(0);
    req.set_owner(WAITER);
    let out = t.apply(LAST_INCLUDED + 1, time, BizType::TryLock, &req);
    assert_eq!(out.result.biz_code(), KvCode::LockByOther);

    // Only the recorded owner may refresh the temporary value's TTL.
    let mut req = KvReq::key(0, "p.t2").with_ttl(1000);
    req.set_owner(WAITER);
    let out = t.apply(LAST_INCLUDED + 2, time, BizType::UpdateTtl, &req);
    assert_eq!(out.result.biz_code(), KvCode::NotOwner);
    req.set_owner(HOLDER);
    let out = t.apply(LAST_INCLUDED + 3, time, BizType::UpdateTtl, &req);
    assert_eq!(out.result.biz_code(), KvCode::Success);

    // The holder unlocks: the waiter owns the lock now, with its hold lease.
    let mut req = KvReq::key(0, "p.locks.l1");
    req.set_owner(HOLDER);
    let out = t.apply(LAST_INCLUDED + 4, time, BizType::Unlock, &req);
    assert_eq!(
        out.result,
        ApplyResult::Single(dt_client::kv::KvResult::code(KvCode::Success))
    );
    let h = out.lock_handover.expect("hand-over to the waiter");
    assert_eq!(h.owner, WAITER);
    assert_eq!(&h.lock_key[..], b"p.locks.l1");
    assert_eq!(h.waited_ttl.unwrap().raft_index, 99);
    assert!(out.ttl_changes.iter().any(|c| matches!(
        c,
        TtlChange::Started { key, info }
            if &key[..] == b"p.locks.l1.29df6bc4a01147f6af9830c276be06a0"
                && info.raft_index == LAST_INCLUDED + 4
                && info.ttl_millis == 3_600_000
    )));
    let kids = t.list(b"p.locks.l1").unwrap();
    assert_eq!(kids.len(), 1);
    assert_eq!(&kids[0].key_in_dir[..], b"29df6bc4a01147f6af9830c276be06a0");
}
