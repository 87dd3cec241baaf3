//! Unit tests of the apply-time semantics, one per rule of `dtkv-server.md` §2–§6, §8
//! and the data-model items of the §14 checklist.

use bytes::Bytes;
use dt_client::kv::{KvCode, KvNode, KvReq, LockPayload, MAX_KEY_SIZE, MAX_VALUE_SIZE};
use dt_net::ProcessInfo;

use super::*;

const A: ProcessInfo = ProcessInfo {
    uuid1: 0x0123456789abcdef,
    uuid2: 0xfedcba9876543210,
};
const B: ProcessInfo = ProcessInfo {
    uuid1: 0x1111,
    uuid2: 0x2222,
};
const T0: i64 = 1_700_000_000_000;

/// A tree and the next entry index; every write is one entry at time T0 + index.
struct Kv {
    t: KvTree,
    index: i64,
}

impl Kv {
    fn new() -> Self {
        Kv {
            t: KvTree::new(),
            index: 0,
        }
    }

    fn apply_as(&mut self, who: ProcessInfo, biz: BizType, mut req: KvReq) -> ApplyOutcome {
        self.index += 1;
        req.set_owner(who);
        self.t.apply(self.index, T0 + self.index, biz, &req)
    }

    fn code_as(&mut self, who: ProcessInfo, biz: BizType, req: KvReq) -> KvCode {
        self.apply_as(who, biz, req).result.biz_code()
    }

    fn code(&mut self, biz: BizType, req: KvReq) -> KvCode {
        self.code_as(A, biz, req)
    }

    fn put(&mut self, k: &str, v: &str) -> KvCode {
        self.code(BizType::Put, KvReq::put(0, k.to_string(), v.to_string()))
    }

    fn mkdir(&mut self, k: &str) -> KvCode {
        self.code(BizType::Mkdir, KvReq::key(0, k.to_string()))
    }

    fn remove_as(&mut self, who: ProcessInfo, k: &str) -> KvCode {
        self.code_as(who, BizType::Remove, KvReq::key(0, k.to_string()))
    }

    fn put_temp_as(&mut self, who: ProcessInfo, k: &str, v: &str, ttl: i64) -> KvCode {
        let req = KvReq::put(0, k.to_string(), v.to_string()).with_ttl(ttl);
        self.code_as(who, BizType::PutTempNode, req)
    }

    fn temp_dir_as(&mut self, who: ProcessInfo, k: &str, ttl: i64) -> KvCode {
        let req = KvReq::key(0, k.to_string()).with_ttl(ttl);
        self.code_as(who, BizType::MkTempDir, req)
    }

    fn node(&self, k: &str) -> Option<KvNode> {
        self.t.get(k.as_bytes()).node
    }

    fn ttl(&self, k: &str) -> Option<TtlInfo> {
        let h = self.t.live(k.as_bytes())?;
        self.t.holders[h].latest().ttl
    }

    fn children(&self, k: &str) -> Vec<String> {
        self.t
            .list(k.as_bytes())
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.key_in_dir.to_vec()).unwrap())
            .collect()
    }
}

fn lock_value(hold: i64) -> Bytes {
    LockPayload {
        hold_ttl_millis: hold,
        lock_id: 1,
        op_id: 1,
    }
    .to_bytes()
}

fn try_lock(kv: &mut Kv, who: ProcessInfo, k: &str, hold: i64, wait: i64) -> ApplyOutcome {
    let req = KvReq::put(0, k.to_string(), lock_value(hold)).with_ttl(wait);
    kv.apply_as(who, BizType::TryLock, req)
}

fn keys(v: &[&str]) -> Vec<Bytes> {
    v.iter().map(|s| Bytes::from(s.to_string())).collect()
}

// ---- §2 keys ----

#[test]
fn keys_server_check_is_lax_length_and_separators() {
    let mut kv = Kv::new();
    assert_eq!(kv.put("", "v"), KvCode::InvalidKey);
    assert_eq!(kv.put(".a", "v"), KvCode::InvalidKey);
    assert_eq!(kv.put("a.", "v"), KvCode::InvalidKey);
    let long = "k".repeat(MAX_KEY_SIZE + 1);
    assert_eq!(kv.put(&long, "v"), KvCode::KeyTooLong);
    // Spaces are only refused by the full (client / watch) check.
    assert_eq!(kv.put("a b", "v"), KvCode::Success);
    // An empty segment passes the key check; its parent "a." does not exist.
    kv.mkdir("a");
    assert_eq!(kv.put("a..b", "v"), KvCode::ParentDirNotExists);
}

#[test]
fn every_failed_write_still_consumes_its_index() {
    let mut kv = Kv::new();
    assert_eq!(kv.put("x.y", "v"), KvCode::ParentDirNotExists);
    assert_eq!(kv.put("x", "v"), KvCode::Success);
    assert_eq!(kv.node("x").unwrap().create_index, 2);
}

// ---- §3.1 versioning ----

#[test]
fn put_new_then_overwrite_keeps_create_index_and_time() {
    let mut kv = Kv::new();
    assert_eq!(kv.put("k", "v1"), KvCode::Success);
    assert_eq!(kv.put("k", "v2"), KvCode::SuccessOverwrite);
    let n = kv.node("k").unwrap();
    assert_eq!((n.create_index, n.create_time), (1, T0 + 1));
    assert_eq!((n.update_index, n.update_time), (2, T0 + 2));
    assert_eq!((n.flag, &n.data[..]), (0, &b"v2"[..]));
}

/// Checklist 2: ancestors get a new version on every subtree change, root included.
#[test]
fn every_subtree_change_updates_every_ancestor_up_to_the_root() {
    let mut kv = Kv::new();
    kv.mkdir("a");
    kv.mkdir("a.b");
    kv.put("a.b.c", "v");
    for k in ["a", "a.b", ""] {
        let n = kv.node(k).unwrap();
        assert_eq!((n.update_index, n.update_time), (3, T0 + 3), "{k}");
    }
    assert_eq!(kv.node("a").unwrap().create_index, 1);
    kv.remove_as(A, "a.b.c");
    assert_eq!(kv.node("").unwrap().update_index, 4);
    assert_eq!(kv.node("a.b").unwrap().update_index, 4);
    // The root keeps create index/time 0.
    let root = kv.node("").unwrap();
    assert_eq!((root.create_index, root.create_time, root.flag), (0, 0, 1));
}

#[test]
fn mkdir_of_an_existing_dir_and_update_ttl_change_no_version() {
    let mut kv = Kv::new();
    kv.mkdir("d");
    assert_eq!(kv.mkdir("d"), KvCode::DirExists);
    assert_eq!(kv.node("d").unwrap().update_index, 1);
    assert_eq!(kv.node("").unwrap().update_index, 1);
    kv.put_temp_as(A, "t", "v", 1000);
    let before = kv.node("t").unwrap();
    let req = KvReq::key(0, "t").with_ttl(5000);
    assert_eq!(kv.code(BizType::UpdateTtl, req), KvCode::Success);
    assert_eq!(kv.node("t").unwrap(), before);
    assert_eq!(kv.node("").unwrap().update_index, 3);
    assert_eq!(kv.ttl("t").unwrap().raft_index, 4);
}

// ---- §4 PUT ----

#[test]
fn put_value_checks_come_before_the_key_check() {
    let mut kv = Kv::new();
    assert_eq!(kv.put("", ""), KvCode::InvalidValue);
    let big = "x".repeat(MAX_VALUE_SIZE + 1);
    assert_eq!(kv.put(".bad", &big), KvCode::ValueTooLong);
    let max = "x".repeat(MAX_VALUE_SIZE);
    assert_eq!(kv.put("ok", &max), KvCode::Success);
}

#[test]
fn put_parent_checks() {
    let mut kv = Kv::new();
    assert_eq!(kv.put("no.k", "v"), KvCode::ParentDirNotExists);
    kv.put("val", "v");
    assert_eq!(kv.put("val.k", "v"), KvCode::ParentNotDir);
    try_lock(&mut kv, A, "lk", 1000, 0);
    assert_eq!(kv.put("lk.k", "v"), KvCode::ParentIsLock);
    assert_eq!(kv.mkdir("lk.d"), KvCode::ParentIsLock);
    kv.mkdir("d");
    kv.remove_as(A, "d");
    assert_eq!(kv.put("d.k", "v"), KvCode::ParentDirNotExists);
}

#[test]
fn put_on_existing_nodes() {
    let mut kv = Kv::new();
    kv.mkdir("d");
    assert_eq!(kv.put("d", "v"), KvCode::DirExists);
    kv.put_temp_as(A, "t", "v", 1000);
    // The owner too must use the temp commands.
    assert_eq!(kv.put("t", "w"), KvCode::IsTempNode);
    try_lock(&mut kv, A, "lk", 1000, 0);
    assert_eq!(kv.put("lk", "v"), KvCode::IsLockNode);
}

// ---- MKDIR ----

#[test]
fn mkdir_results() {
    let mut kv = Kv::new();
    assert_eq!(kv.mkdir("d"), KvCode::Success);
    assert_eq!(kv.node("d").unwrap().flag, KvNode::FLAG_DIR);
    assert_eq!(kv.mkdir("d"), KvCode::DirExists);
    kv.put("v", "x");
    assert_eq!(kv.mkdir("v"), KvCode::ValueExists);
    kv.temp_dir_as(A, "td", 1000);
    assert_eq!(kv.mkdir("td"), KvCode::IsTempNode);
    // Plain nodes may be created under a temp dir (checklist 6).
    assert_eq!(kv.mkdir("td.sub"), KvCode::Success);
    assert_eq!(kv.put("td.sub.k", "v"), KvCode::Success);
}

// ---- REMOVE ----

#[test]
fn remove_results() {
    let mut kv = Kv::new();
    assert_eq!(kv.remove_as(A, "k"), KvCode::NotFound);
    kv.mkdir("d");
    kv.put("d.k", "v");
    assert_eq!(kv.remove_as(A, "d"), KvCode::HasChildren);
    assert_eq!(kv.remove_as(A, "d.k"), KvCode::Success);
    assert_eq!(kv.remove_as(A, "d.k"), KvCode::NotFound);
    assert_eq!(kv.remove_as(A, "d"), KvCode::Success);
    assert!(kv.node("d").is_none());
    try_lock(&mut kv, A, "lk", 1000, 0);
    assert_eq!(kv.remove_as(A, "lk"), KvCode::IsLockNode);
    kv.put_temp_as(A, "t", "v", 1000);
    assert_eq!(kv.remove_as(B, "t"), KvCode::NotOwner);
    let out = kv.apply_as(A, BizType::Remove, KvReq::key(0, "t"));
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert!(matches!(&out.ttl_changes[..], [TtlChange::Removed { .. }]));
}

#[test]
fn a_recreated_key_gets_a_new_create_index_and_moves_to_the_end_of_its_dir() {
    let mut kv = Kv::new();
    kv.put("a", "1");
    kv.put("b", "1");
    kv.remove_as(A, "a");
    kv.put("a", "2");
    assert_eq!(kv.node("a").unwrap().create_index, 4);
    assert_eq!(kv.children(""), ["b", "a"]);
}

// ---- BATCH_PUT / BATCH_REMOVE ----

#[test]
fn batch_put_overall_and_per_key_results() {
    let mut kv = Kv::new();
    let out = kv.apply_as(A, BizType::BatchPut, KvReq::batch(0, vec![], vec![]));
    assert_eq!(out.result, ApplyResult::Batch(Err(KvCode::InvalidKey)));
    let out = kv.apply_as(A, BizType::BatchPut, KvReq::batch(0, keys(&["a"]), vec![]));
    assert_eq!(out.result, ApplyResult::Batch(Err(KvCode::InvalidValue)));
    kv.put("b", "old");
    let req = KvReq::batch(0, keys(&["a", "b", "no.c"]), keys(&["1", "2", "3"]));
    let ApplyResult::Batch(Ok(rs)) = kv.apply_as(A, BizType::BatchPut, req).result else {
        panic!()
    };
    let codes: Vec<_> = rs.iter().map(|r| r.biz_code).collect();
    assert_eq!(
        codes,
        [
            KvCode::Success,
            KvCode::SuccessOverwrite,
            KvCode::ParentDirNotExists
        ]
    );
    // One entry: every item has the entry's index.
    assert_eq!(
        kv.node("a").unwrap().update_index,
        kv.node("b").unwrap().update_index
    );
}

/// Checklist 11: BATCH_PUT does not check values; an empty value makes a directory.
#[test]
fn batch_put_empty_value_creates_a_directory_and_sizes_are_not_checked() {
    let mut kv = Kv::new();
    let big = Bytes::from(vec![b'x'; MAX_VALUE_SIZE + 1]);
    let req = KvReq::batch(0, keys(&["d", "big"]), vec![Bytes::new(), big]);
    let ApplyResult::Batch(Ok(rs)) = kv.apply_as(A, BizType::BatchPut, req).result else {
        panic!()
    };
    assert!(rs.iter().all(|r| r.biz_code == KvCode::Success));
    assert!(kv.node("d").unwrap().is_dir());
    assert_eq!(kv.node("big").unwrap().data.len(), MAX_VALUE_SIZE + 1);
}

#[test]
fn batch_remove_results() {
    let mut kv = Kv::new();
    let out = kv.apply_as(A, BizType::BatchRemove, KvReq::batch(0, vec![], vec![]));
    assert_eq!(out.result, ApplyResult::Batch(Err(KvCode::InvalidKey)));
    kv.put("a", "1");
    kv.mkdir("d");
    kv.put("d.x", "1");
    let req = KvReq::batch(0, keys(&["a", "nope", "d"]), vec![]);
    let ApplyResult::Batch(Ok(rs)) = kv.apply_as(A, BizType::BatchRemove, req).result else {
        panic!()
    };
    let codes: Vec<_> = rs.iter().map(|r| r.biz_code).collect();
    assert_eq!(
        codes,
        [KvCode::Success, KvCode::NotFound, KvCode::HasChildren]
    );
}

// ---- CAS ----

fn cas(kv: &mut Kv, k: &str, expect: &str, new: &str) -> KvCode {
    let req = KvReq::cas(0, k.to_string(), expect.to_string(), new.to_string());
    kv.code(BizType::Cas, req)
}

#[test]
fn cas_rules() {
    let mut kv = Kv::new();
    assert_eq!(cas(&mut kv, "k", "", ""), KvCode::InvalidValue);
    assert_eq!(cas(&mut kv, "k", "", "v1"), KvCode::Success);
    assert_eq!(cas(&mut kv, "k", "", "v2"), KvCode::CasMismatch);
    assert_eq!(cas(&mut kv, "k", "wrong", "v2"), KvCode::CasMismatch);
    // A successful replace is SUCCESS, never SUCCESS_OVERWRITE.
    assert_eq!(cas(&mut kv, "k", "v1", "v2"), KvCode::Success);
    assert_eq!(&kv.node("k").unwrap().data[..], b"v2");
    assert_eq!(cas(&mut kv, "k", "v2", ""), KvCode::Success);
    assert!(kv.node("k").is_none());
    assert_eq!(cas(&mut kv, "k", "v2", "v3"), KvCode::CasMismatch);
    kv.mkdir("d");
    assert_eq!(cas(&mut kv, "d", "x", "y"), KvCode::CasMismatch);
    kv.put_temp_as(A, "t", "v", 1000);
    assert_eq!(cas(&mut kv, "t", "v", "w"), KvCode::IsTempNode);
    assert_eq!(cas(&mut kv, "no.k", "", "v"), KvCode::ParentDirNotExists);
}

/// Checklist 11: CAS does not check the new value's size.
#[test]
fn cas_does_not_check_value_size() {
    let mut kv = Kv::new();
    let big = "x".repeat(MAX_VALUE_SIZE + 1);
    assert_eq!(cas(&mut kv, "k", "", &big), KvCode::Success);
}

// ---- temp nodes and TTL (§4, §5) ----

/// Checklist 1: the owner recorded is the request's owner (the connection's UUID).
#[test]
fn put_temp_node_records_flag_ttl_and_owner() {
    let mut kv = Kv::new();
    let out = kv.apply_as(
        A,
        BizType::PutTempNode,
        KvReq::put(0, "t", "v").with_ttl(60_000),
    );
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert_eq!(kv.node("t").unwrap().flag, KvNode::FLAG_TEMP);
    let info = TtlInfo {
        raft_index: 1,
        owner: A,
        leader_start_millis: T0 + 1,
        ttl_millis: 60_000,
    };
    assert_eq!(kv.ttl("t"), Some(info));
    assert_eq!(
        out.ttl_changes,
        [TtlChange::Started {
            key: "t".into(),
            info
        }]
    );
}

#[test]
fn put_temp_node_on_existing_nodes() {
    let mut kv = Kv::new();
    kv.put_temp_as(A, "t", "v", 1000);
    assert_eq!(kv.put_temp_as(A, "t", "w", 2000), KvCode::SuccessOverwrite);
    let ttl = kv.ttl("t").unwrap();
    assert_eq!((ttl.raft_index, ttl.ttl_millis), (2, 2000));
    assert_eq!(kv.node("t").unwrap().create_index, 1);
    assert_eq!(kv.put_temp_as(B, "t", "x", 1000), KvCode::NotOwner);
    kv.put("plain", "v");
    assert_eq!(kv.put_temp_as(A, "plain", "x", 1000), KvCode::NotTempNode);
    kv.temp_dir_as(A, "td", 1000);
    assert_eq!(kv.put_temp_as(A, "td", "x", 1000), KvCode::DirExists);
    try_lock(&mut kv, A, "lk", 1000, 0);
    assert_eq!(kv.put_temp_as(A, "lk", "x", 1000), KvCode::IsLockNode);
}

/// Checklist 6: no temp node, temp dir or lock under a temp dir, at any depth.
#[test]
fn temp_nodes_temp_dirs_and_locks_are_refused_under_a_temp_dir() {
    let mut kv = Kv::new();
    kv.temp_dir_as(A, "td", 1000);
    kv.mkdir("td.plain");
    assert_eq!(kv.put_temp_as(A, "td.t", "v", 1000), KvCode::UnderTempDir);
    assert_eq!(
        kv.put_temp_as(A, "td.plain.t", "v", 1000),
        KvCode::UnderTempDir
    );
    assert_eq!(kv.temp_dir_as(A, "td.plain.d", 1000), KvCode::UnderTempDir);
    let out = try_lock(&mut kv, A, "td.plain.lk", 1000, 0);
    assert_eq!(out.result.biz_code(), KvCode::UnderTempDir);
}

#[test]
fn make_temp_dir_rules() {
    let mut kv = Kv::new();
    assert_eq!(kv.temp_dir_as(A, "td", 1000), KvCode::Success);
    assert_eq!(
        kv.node("td").unwrap().flag,
        KvNode::FLAG_DIR | KvNode::FLAG_TEMP
    );
    // The owner's existing temp dir: DIR_EXISTS and the TTL restarts.
    assert_eq!(kv.temp_dir_as(A, "td", 5000), KvCode::DirExists);
    assert_eq!(kv.ttl("td").unwrap().raft_index, 2);
    assert_eq!(kv.ttl("td").unwrap().ttl_millis, 5000);
    assert_eq!(kv.temp_dir_as(B, "td", 5000), KvCode::NotOwner);
    kv.put_temp_as(A, "tv", "v", 1000);
    assert_eq!(kv.temp_dir_as(A, "tv", 1000), KvCode::ValueExists);
    kv.mkdir("plain");
    assert_eq!(kv.temp_dir_as(A, "plain", 1000), KvCode::NotTempNode);
}

#[test]
fn update_ttl_rules() {
    let mut kv = Kv::new();
    let upd = |kv: &mut Kv, who, k: &str, ttl| {
        kv.code_as(
            who,
            BizType::UpdateTtl,
            KvReq::key(0, k.to_string()).with_ttl(ttl),
        )
    };
    assert_eq!(upd(&mut kv, A, "t", 0), KvCode::InvalidTtl);
    assert_eq!(upd(&mut kv, A, "t", 10), KvCode::NotFound);
    kv.put("plain", "v");
    assert_eq!(upd(&mut kv, A, "plain", 10), KvCode::NotTempNode);
    kv.put_temp_as(A, "t", "v", 1000);
    assert_eq!(upd(&mut kv, B, "t", 10), KvCode::NotOwner);
    assert_eq!(upd(&mut kv, A, "t", 10), KvCode::Success);
    assert_eq!(kv.ttl("t").unwrap().ttl_millis, 10);
}

/// Restarting a TTL is ignored when the node's TTL is already at this index or later
/// (replay after a snapshot that holds the newer TTL).
#[test]
fn ttl_restart_is_idempotent_for_older_entries() {
    let mut t = KvTree::new();
    let mut req = KvReq::put(0, "t", "v").with_ttl(1000);
    req.set_owner(A);
    t.apply(5, T0, BizType::PutTempNode, &req);
    let mut upd = KvReq::key(0, "t").with_ttl(9999);
    upd.set_owner(A);
    let out = t.apply(5, T0, BizType::UpdateTtl, &upd);
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert!(out.ttl_changes.is_empty());
    let h = t.live(b"t").unwrap();
    assert_eq!(t.holders[h].latest().ttl.unwrap().ttl_millis, 1000);
}

/// Checklist 13: a plain write with ttl_millis > 0 creates a TEMP node with that TTL,
/// without the range check.
#[test]
fn plain_writes_with_a_ttl_create_temp_nodes() {
    let mut kv = Kv::new();
    let huge = i64::MAX;
    let out = kv.apply_as(A, BizType::Put, KvReq::put(0, "k", "v").with_ttl(huge));
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert!(kv.node("k").unwrap().is_temp());
    assert_eq!(kv.ttl("k").unwrap().ttl_millis, huge);
    kv.code(BizType::Mkdir, KvReq::key(0, "d").with_ttl(5));
    assert_eq!(
        kv.node("d").unwrap().flag,
        KvNode::FLAG_DIR | KvNode::FLAG_TEMP
    );
    // Updating an existing node with a plain PUT does not touch its TTL: it is refused.
    assert_eq!(kv.put("k", "w"), KvCode::IsTempNode);
}

// ---- EXPIRE ----

fn expire(kv: &mut Kv, k: &str, ttl_index: i64) -> ApplyOutcome {
    let mut req = KvReq::key(0, k.to_string());
    req.ttl_millis = ttl_index;
    kv.index += 1;
    kv.t.apply(kv.index, T0 + kv.index, BizType::Expire, &req)
}

#[test]
fn expire_is_guarded_by_the_ttl_raft_index() {
    let mut kv = Kv::new();
    assert_eq!(expire(&mut kv, "t", 1).result.biz_code(), KvCode::NotFound);
    kv.put_temp_as(A, "t", "v", 1000); // index 2
    kv.put_temp_as(A, "t", "w", 1000); // restarted at 3
    assert_eq!(
        expire(&mut kv, "t", 2).result.biz_code(),
        KvCode::TtlIndexMismatch
    );
    kv.put("plain", "v");
    assert_eq!(
        expire(&mut kv, "plain", 0).result.biz_code(),
        KvCode::TtlIndexMismatch
    );
    let out = expire(&mut kv, "t", 3);
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert!(kv.node("t").is_none());
    assert_eq!(kv.node("").unwrap().update_index, 7);
}

/// Checklist 6: plain nodes under a temp dir disappear with it.
#[test]
fn expire_of_a_temp_dir_removes_its_whole_subtree_at_one_index() {
    let mut kv = Kv::new();
    kv.temp_dir_as(A, "td", 1000); // 1
    kv.mkdir("td.a");
    kv.put("td.a.x", "v");
    kv.put("td.y", "v");
    kv.mkdir("keep");
    let out = expire(&mut kv, "td", 1);
    assert_eq!(out.result.biz_code(), KvCode::Success);
    for k in ["td", "td.a", "td.a.x", "td.y"] {
        assert!(kv.node(k).is_none(), "{k}");
    }
    assert_eq!(kv.children(""), ["keep"]);
    assert_eq!(kv.node("").unwrap().update_index, 6);
    assert_eq!(
        out.ttl_changes,
        [TtlChange::Removed {
            key: "td".into(),
            raft_index: 1
        }]
    );
    // Nothing of the subtree is left in the map.
    assert_eq!(kv.t.holder_count(), 2);
}

// ---- locks (§6) ----

/// Checklist 7: the wait is ttl_millis; the hold lease is the value's first 8 bytes.
#[test]
fn try_lock_first_client_gets_the_lock_with_its_hold_lease() {
    let mut kv = Kv::new();
    let out = try_lock(&mut kv, A, "lk", 60_000, 10_000);
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert_eq!(
        kv.node("lk").unwrap().flag,
        KvNode::FLAG_DIR | KvNode::FLAG_LOCK
    );
    let entry = "lk.0123456789abcdeffedcba9876543210";
    let n = kv.node(entry).unwrap();
    assert_eq!(n.flag, KvNode::FLAG_LOCK | KvNode::FLAG_TEMP);
    assert_eq!(n.data, lock_value(60_000));
    let ttl = kv.ttl(entry).unwrap();
    assert_eq!((ttl.ttl_millis, ttl.owner, ttl.raft_index), (60_000, A, 1));
    // The lock directory itself has no TTL.
    assert_eq!(kv.ttl("lk"), None);
}

#[test]
fn try_lock_queueing_retry_and_no_wait() {
    let mut kv = Kv::new();
    try_lock(&mut kv, A, "lk", 60_000, 0);
    // Wait 0 with no owner: the entry gets no TEMP flag but still the hold TTL.
    let a_entry = "lk.0123456789abcdeffedcba9876543210";
    assert_eq!(kv.node(a_entry).unwrap().flag, KvNode::FLAG_LOCK);
    assert_eq!(kv.ttl(a_entry).unwrap().ttl_millis, 60_000);
    // B without waiting: refused, nothing created.
    let out = try_lock(&mut kv, B, "lk", 30_000, 0);
    assert_eq!(out.result.biz_code(), KvCode::LockByOther);
    assert_eq!(kv.children("lk").len(), 1);
    // B waiting: queued with TTL = wait.
    let out = try_lock(&mut kv, B, "lk", 30_000, 5_000);
    assert_eq!(out.result.biz_code(), KvCode::LockByOther);
    let b_entry = "lk.00000000000011110000000000002222";
    assert_eq!(kv.ttl(b_entry).unwrap().ttl_millis, 5_000);
    // Retries keep the queue position.
    assert_eq!(
        try_lock(&mut kv, A, "lk", 60_000, 0).result.biz_code(),
        KvCode::LockBySelf
    );
    assert_eq!(
        try_lock(&mut kv, B, "lk", 30_000, 5_000).result.biz_code(),
        KvCode::LockByOther
    );
    assert_eq!(kv.node(b_entry).unwrap().create_index, 3);
}

#[test]
fn try_lock_on_non_lock_nodes() {
    let mut kv = Kv::new();
    kv.mkdir("d");
    assert_eq!(
        try_lock(&mut kv, A, "d", 10, 0).result.biz_code(),
        KvCode::NotLockNode
    );
    kv.put("v", "x");
    assert_eq!(
        try_lock(&mut kv, A, "v", 10, 0).result.biz_code(),
        KvCode::NotLockNode
    );
    assert_eq!(
        try_lock(&mut kv, A, "no.lk", 10, 0).result.biz_code(),
        KvCode::ParentDirNotExists
    );
}

/// Checklist 8 (data-model part): the hand-over names the new owner, its value and
/// the waiter's TTL the push's server-side wait is measured from.
#[test]
fn unlock_by_the_owner_hands_the_lock_to_the_next_waiter() {
    let mut kv = Kv::new();
    try_lock(&mut kv, A, "lk", 60_000, 0); // 1
    try_lock(&mut kv, B, "lk", 30_000, 5_000); // 2
    let out = kv.apply_as(A, BizType::Unlock, KvReq::key(0, "lk")); // 3
    assert_eq!(out.result.biz_code(), KvCode::Success);
    let h = out.lock_handover.unwrap();
    assert_eq!((h.lock_key, h.owner), (Bytes::from("lk"), B));
    assert_eq!(h.value, lock_value(30_000));
    assert_eq!(h.waited_ttl.unwrap().raft_index, 2);
    assert_eq!(h.waited_ttl.unwrap().ttl_millis, 5_000);
    let b_entry = "lk.00000000000011110000000000002222";
    let ttl = kv.ttl(b_entry).unwrap();
    assert_eq!((ttl.raft_index, ttl.ttl_millis, ttl.owner), (3, 30_000, B));
    // B now holds it: its lease can be updated, A's cannot.
    let lease = |kv: &mut Kv, who| {
        kv.code_as(
            who,
            BizType::UpdateLockLease,
            KvReq::key(0, "lk").with_ttl(1000),
        )
    };
    assert_eq!(lease(&mut kv, B), KvCode::Success);
    assert_eq!(lease(&mut kv, A), KvCode::LockByOther);
}

/// Checklist 9: UNLOCK by a waiter removes its queue entry but answers LOCK_BY_OTHER.
#[test]
fn unlock_by_a_waiter_leaves_the_queue_with_lock_by_other() {
    let mut kv = Kv::new();
    try_lock(&mut kv, A, "lk", 60_000, 0);
    try_lock(&mut kv, B, "lk", 30_000, 5_000);
    let out = kv.apply_as(B, BizType::Unlock, KvReq::key(0, "lk"));
    assert_eq!(out.result.biz_code(), KvCode::LockByOther);
    assert!(out.lock_handover.is_none());
    assert_eq!(kv.children("lk").len(), 1);
    // The last unlock removes the lock directory.
    assert_eq!(
        kv.code(BizType::Unlock, KvReq::key(0, "lk")),
        KvCode::Success
    );
    assert!(kv.node("lk").is_none());
}

#[test]
fn unlock_and_lease_errors() {
    let mut kv = Kv::new();
    assert_eq!(
        kv.code(BizType::Unlock, KvReq::key(0, "lk")),
        KvCode::NotFound
    );
    kv.mkdir("d");
    assert_eq!(
        kv.code(BizType::Unlock, KvReq::key(0, "d")),
        KvCode::NotLockNode
    );
    try_lock(&mut kv, A, "lk", 60_000, 0);
    assert_eq!(
        kv.code_as(B, BizType::Unlock, KvReq::key(0, "lk")),
        KvCode::LockByOther
    );
    let lease = KvReq::key(0, "lk").with_ttl(0);
    assert_eq!(kv.code(BizType::UpdateLockLease, lease), KvCode::InvalidTtl);
    let lease = KvReq::key(0, "nope").with_ttl(10);
    assert_eq!(kv.code(BizType::UpdateLockLease, lease), KvCode::NotFound);
}

#[test]
fn expiry_of_the_owner_hands_over_and_of_the_last_entry_removes_the_lock() {
    let mut kv = Kv::new();
    try_lock(&mut kv, A, "lk", 60_000, 0); // 1
    try_lock(&mut kv, B, "lk", 30_000, 5_000); // 2
    let a_entry = "lk.0123456789abcdeffedcba9876543210";
    let out = expire(&mut kv, a_entry, 1);
    assert_eq!(out.lock_handover.unwrap().owner, B);
    let b_entry = "lk.00000000000011110000000000002222";
    let out = expire(&mut kv, b_entry, 3);
    assert_eq!(out.result.biz_code(), KvCode::Success);
    assert!(out.lock_handover.is_none());
    assert!(kv.node("lk").is_none());
}

#[test]
fn expiry_of_a_waiter_only_removes_its_entry() {
    let mut kv = Kv::new();
    try_lock(&mut kv, A, "lk", 60_000, 0);
    try_lock(&mut kv, B, "lk", 30_000, 5_000);
    let out = expire(&mut kv, "lk.00000000000011110000000000002222", 2);
    assert!(out.lock_handover.is_none());
    assert_eq!(kv.children("lk"), ["0123456789abcdeffedcba9876543210"]);
}

// ---- reads (§8) ----

#[test]
fn get_batch_get_and_list() {
    let mut kv = Kv::new();
    assert_eq!(kv.t.get(b"").node.unwrap().flag, KvNode::FLAG_DIR);
    assert_eq!(kv.t.get(b"nope").biz_code, KvCode::NotFound);
    assert_eq!(kv.t.get(b".x").biz_code, KvCode::InvalidKey);
    kv.mkdir("d");
    kv.put("d.b", "1");
    kv.mkdir("d.a");
    assert!(kv.node("d").unwrap().data.is_empty());
    assert_eq!(kv.t.batch_get(&[]), Err(KvCode::InvalidKey));
    let rs = kv.t.batch_get(&keys(&["d.b", "", "zz"])).unwrap();
    let codes: Vec<_> = rs.iter().map(|r| r.biz_code).collect();
    assert_eq!(
        codes,
        [KvCode::Success, KvCode::InvalidKey, KvCode::NotFound]
    );
    assert_eq!(kv.children("d"), ["b", "a"]);
    assert_eq!(kv.children(""), ["d"]);
    assert_eq!(kv.t.list(b"d.b"), Err(KvCode::ParentNotDir));
    assert_eq!(kv.t.list(b"zz"), Err(KvCode::NotFound));
    let l = kv.t.list(b"d").unwrap();
    assert_eq!(&l[0].node.as_ref().unwrap().data[..], b"1");
}

// ---- MVCC (§3.2) ----

/// Checklist 3: reads see the latest state even with a snapshot open.
#[test]
fn snapshot_sees_a_consistent_version_while_writes_go_on() {
    let mut kv = Kv::new();
    kv.put("k", "v1"); // 1
    kv.mkdir("d"); // 2
    kv.put("d.x", "x1"); // 3
    let snap = kv.t.open_snapshot(3);
    kv.put("k", "v2");
    kv.remove_as(A, "d.x");
    kv.put("new", "n");
    kv.put("k", "v3");
    assert_eq!(&kv.node("k").unwrap().data[..], b"v3");
    assert!(kv.node("d.x").is_none());
    assert_eq!(&kv.t.snapshot_get(&snap, b"k").unwrap().data[..], b"v1");
    assert_eq!(&kv.t.snapshot_get(&snap, b"d.x").unwrap().data[..], b"x1");
    assert_eq!(kv.t.snapshot_get(&snap, b"d").unwrap().update_index, 3);
    assert_eq!(kv.t.snapshot_get(&snap, b"").unwrap().update_index, 3);
    assert!(kv.t.snapshot_get(&snap, b"new").is_none());
    // Versions no snapshot sees were dropped as they were replaced: k keeps v1 (seen)
    // and v3 (latest), not v2.
    let h = kv.t.lookup(b"k").unwrap();
    assert_eq!(kv.t.holders[h].versions.len(), 2);
}

#[test]
fn closing_the_last_snapshot_and_sweeping_drops_old_versions_and_tombstones() {
    let mut kv = Kv::new();
    kv.put("k", "v1");
    kv.put("gone", "g");
    let snap = kv.t.open_snapshot(2);
    kv.put("k", "v2");
    kv.remove_as(A, "gone");
    assert!(
        kv.t.lookup(b"gone").is_some(),
        "tombstone kept for the snapshot"
    );
    let before = kv.t.version_count();
    kv.t.close_snapshot(snap);
    assert!(kv.t.gc_pending());
    while kv.t.gc_step(1) {}
    assert!(!kv.t.gc_pending());
    assert!(kv.t.cursors.is_empty(), "the sweep's cursor is released");
    assert!(kv.t.version_count() < before);
    assert!(kv.t.lookup(b"gone").is_none());
    for (_, h) in kv.t.holders.iter() {
        assert_eq!(h.versions.len(), 1, "{:?}", h.key);
    }
}

#[test]
fn two_snapshots_each_keep_their_own_version() {
    let mut kv = Kv::new();
    kv.put("k", "v1"); // 1
    let s1 = kv.t.open_snapshot(1);
    kv.put("k", "v2"); // 2
    let s2 = kv.t.open_snapshot(2);
    kv.put("k", "v3"); // 3
    kv.put("k", "v4"); // 4
    assert_eq!(&kv.t.snapshot_get(&s1, b"k").unwrap().data[..], b"v1");
    assert_eq!(&kv.t.snapshot_get(&s2, b"k").unwrap().data[..], b"v2");
    let h = kv.t.lookup(b"k").unwrap();
    assert_eq!(kv.t.holders[h].versions.len(), 3);
    kv.t.close_snapshot(s1);
    while kv.t.gc_step(500) {}
    assert_eq!(kv.t.holders[h].versions.len(), 2);
    assert_eq!(&kv.t.snapshot_get(&s2, b"k").unwrap().data[..], b"v2");
}

#[test]
fn a_removed_dir_with_child_tombstones_stays_until_they_go() {
    let mut kv = Kv::new();
    kv.mkdir("d"); // 1
    kv.put("d.x", "v"); // 2
    let snap = kv.t.open_snapshot(2);
    kv.remove_as(A, "d.x");
    kv.remove_as(A, "d");
    assert!(kv.t.lookup(b"d.x").is_some());
    assert!(kv.t.snapshot_get(&snap, b"d.x").is_some());
    kv.t.close_snapshot(snap);
    while kv.t.gc_step(500) {}
    assert!(kv.t.lookup(b"d.x").is_none());
    assert!(kv.t.lookup(b"d").is_none());
    assert_eq!(kv.t.holder_count(), 1);
}

#[test]
fn a_put_to_a_kept_tombstone_checks_its_parent_as_a_new_key_would() {
    // The put finds the key's holder first and takes the parent from it (no parent
    // lookup); with the child's and the parent's tombstones kept for a snapshot, the
    // codes must be those of a lookup by key.
    let mut kv = Kv::new();
    kv.mkdir("d"); // 1
    kv.put("d.x", "v"); // 2
    let snap = kv.t.open_snapshot(2);
    assert_eq!(kv.remove_as(A, "d.x"), KvCode::Success);
    assert_eq!(kv.remove_as(A, "d"), KvCode::Success);
    assert!(kv.t.lookup(b"d.x").is_some() && kv.t.lookup(b"d").is_some());
    assert_eq!(kv.put("d.x", "w"), KvCode::ParentDirNotExists);
    assert_eq!(kv.put("d", "value"), KvCode::Success);
    assert_eq!(kv.put("d.x", "w"), KvCode::ParentNotDir);
    assert_eq!(kv.remove_as(A, "d"), KvCode::Success);
    assert_eq!(kv.mkdir("d"), KvCode::Success);
    assert_eq!(kv.put("d.x", "w"), KvCode::Success);
    assert_eq!(&kv.node("d.x").unwrap().data[..], b"w");
    assert_eq!(kv.children("d"), vec!["x"]);
    // The snapshot still sees the first state.
    assert_eq!(&kv.t.snapshot_get(&snap, b"d.x").unwrap().data[..], b"v");
    assert!(kv.t.snapshot_get(&snap, b"d").unwrap().flag & KvNode::FLAG_DIR != 0);
}

#[test]
fn an_overwrite_without_snapshots_changes_the_version_in_place_and_with_one_keeps_it() {
    let mut kv = Kv::new();
    kv.mkdir("d"); // 1
    kv.put("d.k", "v1"); // 2
    kv.put("d.k", "v2"); // 3
    let h = kv.t.lookup(b"d.k").unwrap();
    assert_eq!(kv.t.holders[h].versions.len(), 1);
    let n = kv.node("d.k").unwrap();
    assert_eq!(
        (n.create_index, n.update_index, &n.data[..]),
        (2, 3, &b"v2"[..])
    );
    assert_eq!(kv.node("d").unwrap().update_index, 3);
    assert_eq!(kv.node("").unwrap().update_index, 3);
    let snap = kv.t.open_snapshot(3);
    kv.put("d.k", "v3"); // 4
    assert_eq!(kv.t.holders[h].versions.len(), 2);
    for (k, at_snap, now) in [("d.k", 3, 4), ("d", 3, 4), ("", 3, 4)] {
        assert_eq!(
            kv.t.snapshot_get(&snap, k.as_bytes()).unwrap().update_index,
            at_snap
        );
        assert_eq!(kv.node(k).unwrap().update_index, now);
    }
    kv.t.close_snapshot(snap);
    while kv.t.gc_step(500) {}
    kv.put("d.k", "v4"); // 5
    assert_eq!(kv.t.holders[h].versions.len(), 1);
    let n = kv.node("d.k").unwrap();
    assert_eq!(
        (n.create_index, n.update_index, &n.data[..]),
        (2, 5, &b"v4"[..])
    );
}

#[test]
fn versions_left_by_a_closed_snapshot_before_its_sweep_are_never_seen() {
    // A closed snapshot's versions stay until the sweep reaches the holder; puts in
    // between change the latest version in place, and a snapshot opened then sees
    // only the latest state; its own puts drop the stale ones.
    let mut kv = Kv::new();
    kv.put("k", "v1"); // 1
    let s1 = kv.t.open_snapshot(1);
    kv.put("k", "v2"); // 2
    let h = kv.t.lookup(b"k").unwrap();
    assert_eq!(kv.t.holders[h].versions.len(), 2);
    kv.t.close_snapshot(s1); // its sweep not run yet
    kv.put("k", "v3"); // 3, in place
    assert_eq!(&kv.node("k").unwrap().data[..], b"v3");
    let s2 = kv.t.open_snapshot(3);
    assert_eq!(&kv.t.snapshot_get(&s2, b"k").unwrap().data[..], b"v3");
    kv.put("k", "v4"); // 4: keeps v3 for s2, drops v1
    let kept: Vec<_> = kv.t.holders[h]
        .versions
        .iter()
        .map(|v| v.data.clone())
        .collect();
    assert_eq!(kept, vec![Bytes::from("v3"), Bytes::from("v4")]);
    assert_eq!(&kv.t.snapshot_get(&s2, b"k").unwrap().data[..], b"v3");
    kv.t.close_snapshot(s2); // starts the sweep over
    while kv.t.gc_step(500) {}
    assert_eq!(kv.t.holders[h].versions.len(), 1);
    assert_eq!(&kv.node("k").unwrap().data[..], b"v4");
}

#[test]
fn a_sweep_in_steps_goes_on_past_holders_removed_and_added_between_steps() {
    let mut kv = Kv::new();
    for i in 0..100 {
        kv.put(&format!("k{i}"), "v1");
    }
    let snap = kv.t.open_snapshot(100);
    for i in 0..100 {
        kv.put(&format!("k{i}"), "v2");
    }
    kv.t.close_snapshot(snap);
    assert!(kv.t.gc_step(10), "more to go after 10 holders");
    // Removed at, behind and ahead of the sweep's position; one added at the end.
    for i in 5..60 {
        assert_eq!(kv.remove_as(A, &format!("k{i}")), KvCode::Success);
    }
    kv.put("new", "x");
    let mut steps = 1;
    while kv.t.gc_step(10) {
        steps += 1;
    }
    assert!(steps >= 5, "{steps} steps");
    for (_, h) in kv.t.holders.iter() {
        assert_eq!(h.versions.len(), 1, "{:?}", h.key);
    }
    assert!(kv.t.lookup(b"k30").is_none());
    assert_eq!(&kv.node("k99").unwrap().data[..], b"v2");
    assert_eq!(&kv.node("new").unwrap().data[..], b"x");
    assert!(kv.t.cursors.is_empty(), "the sweep's cursor is released");
}
