//! Property tests of the data model: random command sequences (every business type,
//! two owners, small key space, random TTLs and values, batches) never panic, keep the
//! tree's invariants, give the same results whether snapshots are open or not, and every
//! snapshot reads, streams and installs exactly the state at its index while writes go
//! on; with random watches, every notification is newer than what its watch knew and
//! every watch on an existing key ends up told its current state.

use std::collections::BTreeMap;

use bytes::Bytes;
use dt_client::kv::{KvNode, KvReq, LockPayload};
use dt_net::ProcessInfo;
use proptest::prelude::*;

use super::*;

const OWNERS: [ProcessInfo; 2] = [
    ProcessInfo { uuid1: 1, uuid2: 2 },
    ProcessInfo { uuid1: 3, uuid2: 4 },
];

#[derive(Debug, Clone)]
enum Step {
    Write(BizType, usize, KvReq),
    OpenSnapshot,
    CloseSnapshot(usize),
    ReadSome(usize, usize),
    Watch(u32, Vec<(String, i64)>, bool),
    Dispatch,
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4).prop_map(|s| s.join("."))
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        Just(
            LockPayload {
                hold_ttl_millis: 500,
                lock_id: 1,
                op_id: 1
            }
            .to_bytes()
        ),
        "[xyz]{1,3}".prop_map(Bytes::from),
    ]
}

fn biz() -> impl Strategy<Value = BizType> {
    prop::sample::select(vec![
        BizType::Put,
        BizType::Remove,
        BizType::Mkdir,
        BizType::BatchPut,
        BizType::BatchRemove,
        BizType::Cas,
        BizType::PutTempNode,
        BizType::MkTempDir,
        BizType::Expire,
        BizType::UpdateTtl,
        BizType::TryLock,
        BizType::Unlock,
        BizType::UpdateLockLease,
    ])
}

fn step() -> impl Strategy<Value = Step> {
    let write = (
        biz(),
        0..2usize,
        key(),
        value(),
        value(),
        prop_oneof![Just(0i64), Just(100), Just(-1), 1..20i64],
        prop::collection::vec((key(), value()), 0..3),
    )
        .prop_map(|(b, who, k, v, e, ttl, batch)| {
            let mut req = KvReq::cas(0, k, e, v).with_ttl(ttl);
            req.keys = batch.iter().map(|x| Bytes::from(x.0.clone())).collect();
            if b == BizType::BatchPut {
                req.values = batch.into_iter().map(|x| x.1).collect();
            }
            Step::Write(b, who, req)
        });
    prop_oneof![
        8 => write,
        1 => Just(Step::OpenSnapshot),
        1 => any::<usize>().prop_map(Step::CloseSnapshot),
        1 => (any::<usize>(), 1..200usize).prop_map(|(a, b)| Step::ReadSome(a, b)),
        1 => (
            0..2u32,
            prop::collection::vec((key(), prop_oneof![Just(-1i64), Just(0), 1..30i64]), 0..3),
            any::<bool>()
        )
            .prop_map(|(c, keys, all)| Step::Watch(c, keys, all)),
        2 => Just(Step::Dispatch),
    ]
}

/// Every live key and its node, and every directory's children in list order.
fn view(t: &KvTree) -> BTreeMap<Bytes, (KvNode, Vec<Bytes>)> {
    let mut out = BTreeMap::new();
    for h in t.iter_order() {
        let x = &t.holders[h];
        if x.latest().removed {
            continue;
        }
        let kids = t
            .children(h)
            .iter()
            .map(|&c| t.holders[c].key.clone())
            .collect();
        out.insert(x.key.clone(), (x.latest().to_kv_node(), kids));
    }
    out
}

fn check_invariants(t: &KvTree) {
    assert_eq!(t.map.len(), t.order.len);
    assert_eq!(t.iter_order().count(), t.map.len());
    let mut max_update = 0;
    for h in t.iter_order() {
        let x = &t.holders[h];
        assert_eq!(t.map.get(&x.key), Some(h));
        let ui: Vec<i64> = x.versions.iter().map(|v| v.update_index).collect();
        assert!(ui.windows(2).all(|w| w[0] <= w[1]));
        if !t.snapshots_open() {
            assert_eq!(x.versions.len(), 1, "{:?}", x.key);
        }
        let kids: Vec<_> = t
            .iter_order()
            .filter(|&c| t.holders[c].parent() == Some(h))
            .collect();
        assert_eq!(x.child_holder_count, kids.len(), "{:?}", x.key);
        let live_kids = kids
            .iter()
            .filter(|&&c| !t.holders[c].latest().removed)
            .count();
        assert_eq!(x.children.len, live_kids, "{:?}", x.key);
        assert_eq!(t.children(h).len(), live_kids);
        let v = x.latest();
        if !v.removed {
            max_update = max_update.max(v.update_index);
            if v.is_lock() && v.is_dir() {
                assert_eq!(x.lock_queue.len(), live_kids);
            } else {
                assert!(x.lock_queue.is_empty());
            }
            if let Some(p) = x.parent() {
                let pv = t.holders[p].latest();
                assert!(!pv.removed && pv.is_dir(), "{:?}", x.key);
                assert!(pv.update_index >= v.update_index, "{:?}", x.key);
            }
        } else {
            assert!(!x.in_children);
        }
    }
    assert_eq!(t.holders[t.root].latest().update_index, max_update);
}

fn stream_all(t: &mut KvTree, r: &mut SnapshotReader) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = t.read_snapshot(r, 97);
        if b.is_empty() {
            return out;
        }
        out.extend_from_slice(&b);
    }
}

/// A view with each directory's children as a set: an installed snapshot lists
/// children in the stream's (map insertion) order, which is not the children-list
/// order when a key was re-created while its holder was kept (as in the reference).
fn unordered(
    mut v: BTreeMap<Bytes, (KvNode, Vec<Bytes>)>,
) -> BTreeMap<Bytes, (KvNode, Vec<Bytes>)> {
    for (_, kids) in v.values_mut() {
        kids.sort();
    }
    v
}

fn records_view(bytes: &[u8]) -> BTreeMap<Bytes, (KvNode, Vec<Bytes>)> {
    let mut d = SnapshotDecoder::new();
    let mut recs = Vec::new();
    d.feed(bytes, &mut recs).unwrap();
    d.finish().unwrap();
    let (t, _) = KvTree::install(recs).unwrap();
    unordered(view(&t))
}

/// What the clients were told, per (channel, key): the last notification, or the
/// index they claimed to know.
type Told = std::collections::HashMap<(u32, Bytes), (i64, Option<dt_client::kv::WatchNotify>)>;

/// Runs dispatch rounds and acknowledges every push until nothing is left; checks
/// that each notification is newer than what its watch knew.
fn flush(t: &mut KvTree, wm: &mut WatchManager<u32>, told: &mut Told) -> Result<(), TestCaseError> {
    for _ in 0..100 {
        let (mut pushes, _) = wm.dispatch(t, 0);
        if pushes.is_empty() {
            return Ok(());
        }
        while let Some(p) = pushes.pop() {
            for n in &p.req.notify_list {
                let e = told.entry((p.channel, n.key.clone())).or_insert((0, None));
                prop_assert!(n.raft_index > e.0, "stale notification {n:?} after {e:?}");
                *e = (n.raft_index, Some(n.clone()));
            }
            let outcome = PushOutcome::Answered {
                biz_code: dt_client::kv::KvCode::Success,
                results: vec![0; p.req.notify_list.len()],
            };
            pushes.extend(wm.push_result(t, p.channel, &p.token, outcome, 0));
        }
    }
    prop_assert!(false, "dispatch never settles");
    Ok(())
}

struct Open {
    reader: SnapshotReader,
    expected: BTreeMap<Bytes, (KvNode, Vec<Bytes>)>,
    got: Vec<u8>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_commands_keep_invariants_and_snapshots_see_their_index(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        let mut t = KvTree::new();
        // The same writes without any snapshot: MVCC must not change any result.
        let mut plain = KvTree::new();
        let mut open: Vec<Open> = Vec::new();
        // Fed with every TTL change: it must track exactly the live TTLs of the tree.
        let mut ttl = TtlManager::new();
        let mut wm: WatchManager<u32> = WatchManager::new(0, WatchConfig::default());
        let mut told: Told = Default::default();
        let mut index = 0;
        for s in steps {
            match s {
                Step::Write(biz, who, mut req) => {
                    index += 1;
                    req.set_owner(OWNERS[who]);
                    if biz == BizType::Expire {
                        // Name a real TTL index sometimes.
                        req.ttl_millis = t
                            .live(&req.key)
                            .and_then(|h| t.holders[h].latest().ttl)
                            .map_or(req.ttl_millis, |x| x.raft_index);
                    }
                    let a = t.apply(index, 1000 + index, biz, &req);
                    let b = plain.apply(index, 1000 + index, biz, &req);
                    prop_assert_eq!(&a.result, &b.result);
                    prop_assert_eq!(&a.ttl_changes, &b.ttl_changes);
                    prop_assert_eq!(&a.lock_handover, &b.lock_handover);
                    wm.after_apply(&a.watch_events, index);
                    check_invariants(&t);
                    ttl.apply_changes(&a.ttl_changes, index);
                    let live: Vec<(Bytes, i64)> = t
                        .iter_order()
                        .filter_map(|h| {
                            let x = &t.holders[h];
                            let v = x.latest();
                            (!v.removed).then_some(())?;
                            v.ttl.map(|i| (x.key.clone(), i.raft_index))
                        })
                        .collect();
                    prop_assert_eq!(ttl.len(), live.len());
                    for (k, i) in live {
                        prop_assert_eq!(ttl.expiry_of(&k).map(|e| e.0), Some(i));
                    }
                }
                Step::OpenSnapshot => {
                    let expected = unordered(view(&t));
                    let reader = t.snapshot_reader(index);
                    open.push(Open { reader, expected, got: Vec::new() });
                }
                Step::CloseSnapshot(i) if !open.is_empty() => {
                    let mut o = open.remove(i % open.len());
                    let rest = stream_all(&mut t, &mut o.reader);
                    o.got.extend_from_slice(&rest);
                    prop_assert_eq!(&records_view(&o.got), &o.expected);
                    t.close_snapshot_reader(o.reader);
                    while t.gc_step(3) {}
                    check_invariants(&t);
                }
                Step::Watch(c, keys, sync_all) => {
                    let req = dt_client::kv::WatchReq {
                        group_id: 0,
                        sync_all,
                        known_raft_indexes: keys.iter().map(|k| k.1).collect(),
                        keys: keys.iter().map(|k| Bytes::from(k.0.clone())).collect(),
                    };
                    if check_watch_req(&req) == dt_client::kv::KvCode::Success {
                        wm.sync(&mut t, c, &req, 0);
                        if sync_all {
                            told.retain(|(ch, k), _| *ch != c || req.keys.contains(k));
                        }
                        for (k, i) in keys {
                            let k = Bytes::from(k);
                            if i < 0 {
                                told.remove(&(c, k));
                            } else {
                                told.insert((c, k), (i, None));
                            }
                        }
                    }
                    prop_assert_eq!(wm.watched_keys(), t.watched.clone());
                }
                Step::Dispatch => flush(&mut t, &mut wm, &mut told)?,
                Step::ReadSome(i, n) if !open.is_empty() => {
                    let k = i % open.len();
                    let o = &mut open[k];
                    let b = t.read_snapshot(&mut o.reader, n);
                    o.got.extend_from_slice(&b);
                }
                _ => {}
            }
            prop_assert_eq!(view(&t), view(&plain));
        }
        for mut o in open {
            let rest = stream_all(&mut t, &mut o.reader);
            o.got.extend_from_slice(&rest);
            prop_assert_eq!(&records_view(&o.got), &o.expected);
            t.close_snapshot_reader(o.reader);
            while t.gc_step(500) {}
        }
        check_invariants(&t);
        // Every watch on an existing key ends up told its current state.
        flush(&mut t, &mut wm, &mut told)?;
        for ((c, k), (idx, last)) in &told {
            if let WatchView::Exists { update_index, dir, data } = t.watch_view(k) {
                // Told the current index, unless the client claimed to know more.
                prop_assert!(*idx >= update_index, "channel {} key {:?}", c, k);
                if let Some(n) = last.as_ref().filter(|n| n.raft_index == update_index) {
                    prop_assert_eq!(n.state, if dir { 2 } else { 1 });
                    prop_assert_eq!(&n.value, &data);
                }
            }
        }
        prop_assert_eq!(wm.watched_keys(), t.watched.clone());
        // With every snapshot closed and swept, only latest versions remain, and the
        // live state streams and installs to itself.
        prop_assert_eq!(t.version_count(), t.holder_count());
        let mut r = t.snapshot_reader(index);
        let bytes = stream_all(&mut t, &mut r);
        prop_assert_eq!(records_view(&bytes), unordered(view(&t)));
    }
}

/// A message's encoding, maybe with one byte changed and junk appended.
fn body_for(m: &impl dt_codec::Encodable, garbage: &[u8], mutate: Option<(usize, u8)>) -> Bytes {
    let mut b = dt_codec::encode::to_bytes(m).to_vec();
    if let Some((i, x)) = mutate {
        if !b.is_empty() {
            let n = b.len();
            b[i % n] = x;
        }
    }
    b.extend_from_slice(garbage);
    Bytes::from(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random and malformed requests through the processors' decisions and the data
    /// model: never a panic, a typed error for bodies that cannot be decoded, and the
    /// tree's invariants hold.
    #[test]
    fn random_requests_through_the_processors_never_panic(
        reqs in prop::collection::vec(
            (
                prop::sample::select(vec![5, 6, 70, 71, 72, 73, 74, 75, 76, 77, 79, 80, 81, 82, 83, 84, 86]),
                0..2usize,
                step(),
                prop::collection::vec(any::<u8>(), 0..6),
                prop::option::of((any::<usize>(), any::<u8>())),
            ),
            1..40,
        )
    ) {
        let mut t = KvTree::new();
        let mut wm: WatchManager<u32> = WatchManager::new(0, WatchConfig::default());
        let mut index = 0;
        for (command, who, s, garbage, mutate) in reqs {
            let Step::Write(_, _, req) = s else { continue };
            let body = if command == 77 {
                let w = dt_client::kv::WatchReq {
                    group_id: 0,
                    sync_all: req.ttl_millis > 50,
                    known_raft_indexes: req.keys.iter().map(|_| req.ttl_millis).collect(),
                    keys: req.keys.clone(),
                };
                body_for(&w, &garbage, mutate)
            } else {
                body_for(&req, &garbage, mutate)
            };
            let Some(action) = plan(command, &body, OWNERS[who]) else { continue };
            let Ok(action) = action else { continue };
            match action {
                KvAction::Write { biz, req } => {
                    index += 1;
                    let out = t.apply(index, index, biz, &req);
                    wm.after_apply(&out.watch_events, index);
                }
                KvAction::Read { command, req } => {
                    let _ = read(&t, command, &req);
                }
                KvAction::SyncWatch(w) => wm.sync(&mut t, who as u32, &w, index),
                KvAction::Respond { .. } | KvAction::Status { .. } => {}
            }
            let (pushes, _) = wm.dispatch(&t, index);
            for p in pushes {
                let outcome = PushOutcome::Failed { resp_code: None };
                wm.push_result(&mut t, p.channel, &p.token, outcome, index);
            }
            check_invariants(&t);
        }
    }
}
