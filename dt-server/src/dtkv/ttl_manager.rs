//! The TtlManager (`dtkv-server.md` §5.2): every replica's local expiry queues, and the
//! leader-only task that turns expired TTLs into EXPIRE log entries.
//!
//! IO-free like the rest of this module: time is passed in (local monotonic
//! nanoseconds, and the wall clock for TTLs loaded from a snapshot), and the task's
//! output is the EXPIRE requests to submit plus the delay until it should run again.
//! It learns about TTLs only through the [`TtlChange`]s that [`KvTree::apply`] and
//! [`KvTree::install`](super::KvTree::install) report, so every replica's queues follow
//! its tree; expiry itself stays deterministic because only an applied EXPIRE entry
//! (guarded by the TTL's raft index) removes a node.
//!
//! [`KvTree::apply`]: super::KvTree::apply

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use dt_client::kv::{lock_entry_key, KvReq};

use super::apply::{LockHandover, TtlChange};
use super::node::TtlInfo;

/// At most this many failed expirations go back to the queue per run.
pub const MAX_RETRY_BATCH: usize = 10;
/// At most this many expirations are submitted per run.
pub const MAX_EXPIRE_BATCH: usize = 50;
/// Delay of a run with nothing to do, and before a failed expiration is retried.
pub const DEFAULT_DELAY_NANOS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    info: TtlInfo,
    expire_nanos: i64,
    seq: u64,
    pending: bool,
    failed_at: Option<i64>,
}

/// What one run of the expiry task produced ([`TtlManager::run`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlRun {
    /// EXPIRE bodies to submit as log entries (`key`, `ttl_millis` = the TTL's raft
    /// index, no owner), in expiry order.
    pub expire: Vec<KvReq>,
    /// When to run again, in nanoseconds from now (0: at once, a batch limit was hit).
    pub next_delay_nanos: i64,
}

/// The expiry queues of one group.
#[derive(Debug, Default)]
pub struct TtlManager {
    entries: HashMap<Bytes, Entry>,
    /// Waiting TTLs by (expiry, insertion order).
    queue: BTreeSet<(i64, u64, Bytes)>,
    /// TTLs whose EXPIRE was submitted (or failed), same order.
    pending: BTreeSet<(i64, u64, Bytes)>,
    leader: bool,
    seq: u64,
}

impl TtlManager {
    /// Empty queues; the task idles until [`TtlManager::role_change`] makes it leader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of TTLs tracked (waiting and pending).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no TTL is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key`'s TTL (started at `raft_index`) is tracked, and when it expires.
    pub fn expiry_of(&self, key: &[u8]) -> Option<(i64, i64)> {
        self.entries
            .get(key)
            .map(|e| (e.info.raft_index, e.expire_nanos))
    }

    fn unqueue(&mut self, key: &Bytes, e: &Entry) {
        let k = (e.expire_nanos, e.seq, key.clone());
        if !self.queue.remove(&k) {
            self.pending.remove(&k);
        }
    }

    fn start(&mut self, key: Bytes, info: TtlInfo, local_create_nanos: i64) {
        if let Some(old) = self.entries.remove(&key) {
            self.unqueue(&key, &old);
        }
        self.seq += 1;
        let e = Entry {
            info,
            expire_nanos: local_create_nanos
                .saturating_add(info.ttl_millis.saturating_mul(1_000_000)),
            seq: self.seq,
            pending: false,
            failed_at: None,
        };
        self.queue.insert((e.expire_nanos, e.seq, key.clone()));
        self.entries.insert(key, e);
    }

    /// Follows the TTL changes of an applied entry. `local_create_nanos` is the local
    /// monotonic time the entry was created (leader) or received (follower).
    pub fn apply_changes(&mut self, changes: &[TtlChange], local_create_nanos: i64) {
        for c in changes {
            match c {
                TtlChange::Started { key, info } => {
                    self.start(key.clone(), *info, local_create_nanos)
                }
                TtlChange::Removed { key, raft_index } => {
                    if self
                        .entries
                        .get(key)
                        .is_some_and(|e| e.info.raft_index == *raft_index)
                    {
                        let e = self.entries.remove(key).expect("present");
                        self.unqueue(key, &e);
                    }
                }
            }
        }
    }

    /// Starts over with the TTLs of an installed snapshot: the local start of each is
    /// reconstructed from the wall clock (`now − (wall − leader start)`, never in the
    /// future).
    pub fn install(&mut self, changes: &[TtlChange], now_nanos: i64, wall_millis: i64) {
        *self = TtlManager {
            leader: self.leader,
            ..TtlManager::default()
        };
        for c in changes {
            self.add_installed(c, now_nanos, wall_millis);
        }
    }

    /// Queues one TTL of a snapshot being installed (its local start reconstructed from
    /// the wall clock, as in [`TtlManager::install`]).
    pub fn add_installed(&mut self, change: &TtlChange, now_nanos: i64, wall_millis: i64) {
        if let TtlChange::Started { key, info } = change {
            let cost = (wall_millis - info.leader_start_millis).max(0);
            let local = now_nanos.saturating_sub(cost.saturating_mul(1_000_000));
            self.start(key.clone(), *info, local);
        }
    }

    /// The server-side wait of a lock's new owner for its push, from the local start of
    /// the TTL it waited with, less 1 ms, at least 0 (`dtkv-server.md` §6.6). Call it
    /// before [`TtlManager::apply_changes`] of the same entry (which restarts that TTL).
    pub fn lock_wait_nanos(&self, h: &LockHandover, now_nanos: i64) -> i64 {
        let key = lock_entry_key(&h.lock_key, h.owner);
        let Some(e) = self.entries.get(&key) else {
            return 0;
        };
        let start = e.expire_nanos - e.info.ttl_millis.saturating_mul(1_000_000);
        (now_nanos - start - 1_000_000).max(0)
    }

    /// The role changed: pending expirations go back to the queue (a new leader
    /// re-submits them); the task runs only on the leader.
    pub fn role_change(&mut self, leader: bool) {
        self.leader = leader;
        for k in std::mem::take(&mut self.pending) {
            if let Some(e) = self.entries.get_mut(&k.2) {
                e.pending = false;
                e.failed_at = None;
            }
            self.queue.insert(k);
        }
    }

    /// Submitting the EXPIRE of `key`'s TTL (at `raft_index`) failed: it is retried
    /// after [`DEFAULT_DELAY_NANOS`].
    pub fn expire_failed(&mut self, key: &[u8], raft_index: i64, now_nanos: i64) {
        if let Some(e) = self.entries.get_mut(key) {
            if e.pending && e.info.raft_index == raft_index {
                e.failed_at = Some(now_nanos);
            }
        }
    }

    /// One run of the expiry task at `now_nanos`.
    pub fn run(&mut self, now_nanos: i64) -> TtlRun {
        let mut out = TtlRun {
            expire: Vec::new(),
            next_delay_nanos: DEFAULT_DELAY_NANOS,
        };
        if !self.leader {
            return out;
        }
        let mut again = false;
        // 1. Failed expirations whose retry time came go back to the queue.
        let mut n = 0;
        while let Some(k) = self.pending.first().cloned() {
            let e = self.entries[&k.2];
            match e.failed_at {
                Some(t) if now_nanos - t > DEFAULT_DELAY_NANOS => {}
                _ => break,
            }
            if n >= MAX_RETRY_BATCH {
                again = true;
                break;
            }
            n += 1;
            self.pending.remove(&k);
            let e = self.entries.get_mut(&k.2).expect("tracked");
            e.pending = false;
            e.failed_at = None;
            self.queue.insert(k);
        }
        // 2. Expired TTLs are submitted.
        let mut n = 0;
        while let Some(k) = self.queue.first().cloned() {
            if n >= MAX_EXPIRE_BATCH {
                again = true;
                break;
            }
            n += 1;
            if k.0 - now_nanos > 0 {
                out.next_delay_nanos = k.0 - now_nanos;
                return out;
            }
            self.queue.remove(&k);
            let e = self.entries.get_mut(&k.2).expect("tracked");
            e.pending = true;
            let mut req = KvReq::key(0, k.2.clone());
            req.ttl_millis = e.info.raft_index;
            out.expire.push(req);
            self.pending.insert(k);
        }
        if again {
            out.next_delay_nanos = 0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtkv::{BizType, KvTree};
    use dt_client::kv::{KvCode, LockPayload};
    use dt_net::ProcessInfo;

    const A: ProcessInfo = ProcessInfo { uuid1: 1, uuid2: 2 };
    const B: ProcessInfo = ProcessInfo { uuid1: 3, uuid2: 4 };
    const MS: i64 = 1_000_000;

    /// A tree and its TtlManager, driven as a leader would: entry `i` is created at
    /// local time `i` ms.
    struct Node {
        tree: KvTree,
        ttl: TtlManager,
        index: i64,
    }

    impl Node {
        fn new() -> Self {
            let mut ttl = TtlManager::new();
            ttl.role_change(true);
            Node {
                tree: KvTree::new(),
                ttl,
                index: 0,
            }
        }

        fn write(&mut self, who: ProcessInfo, biz: BizType, mut req: KvReq, at_ms: i64) -> KvCode {
            self.index += 1;
            req.set_owner(who);
            let out = self.tree.apply(self.index, at_ms, biz, &req);
            self.ttl.apply_changes(&out.ttl_changes, at_ms * MS);
            out.result.biz_code()
        }

        /// Runs the task at `now_ms` and applies every EXPIRE it submits.
        fn expire_due(&mut self, now_ms: i64) -> Vec<(Bytes, KvCode)> {
            let run = self.ttl.run(now_ms * MS);
            run.expire
                .into_iter()
                .map(|req| {
                    self.index += 1;
                    let out = self.tree.apply(self.index, now_ms, BizType::Expire, &req);
                    self.ttl.apply_changes(&out.ttl_changes, now_ms * MS);
                    (req.key, out.result.biz_code())
                })
                .collect()
        }
    }

    #[test]
    fn a_temp_node_expires_through_an_expire_entry_after_its_ttl() {
        let mut n = Node::new();
        n.write(
            A,
            BizType::PutTempNode,
            KvReq::put(0, "t", "v").with_ttl(100),
            10,
        );
        let run = n.ttl.run(50 * MS);
        assert!(run.expire.is_empty());
        assert_eq!(run.next_delay_nanos, 60 * MS);
        assert!(n.expire_due(109).is_empty());
        assert_eq!(n.expire_due(110), [(Bytes::from("t"), KvCode::Success)]);
        assert!(n.tree.get(b"t").node.is_none());
        assert!(n.ttl.is_empty());
    }

    #[test]
    fn a_refresh_moves_the_expiry_and_a_stale_expire_is_a_mismatch() {
        let mut n = Node::new();
        n.write(
            A,
            BizType::PutTempNode,
            KvReq::put(0, "t", "v").with_ttl(100),
            0,
        );
        // The leader submits the expiry, then the owner refreshes before it applies.
        let run = n.ttl.run(100 * MS);
        assert_eq!(run.expire.len(), 1);
        n.write(A, BizType::UpdateTtl, KvReq::key(0, "t").with_ttl(100), 100);
        n.index += 1;
        let out = n.tree.apply(n.index, 101, BizType::Expire, &run.expire[0]);
        assert_eq!(out.result.biz_code(), KvCode::TtlIndexMismatch);
        assert!(n.tree.get(b"t").node.is_some());
        assert_eq!(n.ttl.expiry_of(b"t"), Some((2, 200 * MS)));
        assert_eq!(n.expire_due(200), [(Bytes::from("t"), KvCode::Success)]);
    }

    #[test]
    fn only_the_leader_expires_and_a_new_leader_resubmits_pending_ones() {
        let mut n = Node::new();
        n.ttl.role_change(false);
        n.write(
            A,
            BizType::PutTempNode,
            KvReq::put(0, "t", "v").with_ttl(1),
            0,
        );
        let run = n.ttl.run(10 * MS);
        assert!(run.expire.is_empty());
        assert_eq!(run.next_delay_nanos, DEFAULT_DELAY_NANOS);
        n.ttl.role_change(true);
        assert_eq!(n.ttl.run(10 * MS).expire.len(), 1);
        // Submitted but lost with a leader change: the next leader submits it again.
        assert!(n.ttl.run(11 * MS).expire.is_empty());
        n.ttl.role_change(false);
        n.ttl.role_change(true);
        assert_eq!(n.ttl.run(12 * MS).expire.len(), 1);
    }

    #[test]
    fn failed_submissions_are_retried_after_a_second() {
        let mut n = Node::new();
        n.write(
            A,
            BizType::PutTempNode,
            KvReq::put(0, "t", "v").with_ttl(1),
            0,
        );
        let run = n.ttl.run(10 * MS);
        n.ttl.expire_failed(b"t", run.expire[0].ttl_millis, 10 * MS);
        assert!(n.ttl.run(500 * MS).expire.is_empty());
        assert_eq!(n.ttl.run(1011 * MS).expire.len(), 1);
    }

    #[test]
    fn batches_are_limited_and_ask_to_run_again_at_once() {
        let mut n = Node::new();
        for i in 0..(MAX_EXPIRE_BATCH + 5) {
            let k = format!("t{i}");
            n.write(
                A,
                BizType::PutTempNode,
                KvReq::put(0, k, "v").with_ttl(1),
                0,
            );
        }
        let run = n.ttl.run(10 * MS);
        assert_eq!(run.expire.len(), MAX_EXPIRE_BATCH);
        assert_eq!(run.next_delay_nanos, 0);
        assert_eq!(n.ttl.run(10 * MS).expire.len(), 5);
    }

    #[test]
    fn a_temp_dir_expiry_drops_the_ttls_of_its_subtree() {
        let mut n = Node::new();
        n.write(A, BizType::MkTempDir, KvReq::key(0, "td").with_ttl(100), 0);
        n.write(
            A,
            BizType::Put,
            KvReq::put(0, "td.x", "v").with_ttl(1000),
            0,
        );
        assert_eq!(n.ttl.len(), 2);
        assert_eq!(n.expire_due(100), [(Bytes::from("td"), KvCode::Success)]);
        assert!(n.ttl.is_empty());
    }

    #[test]
    fn lock_hand_over_on_owner_expiry_with_the_server_side_wait() {
        let mut n = Node::new();
        let lock = |hold| {
            LockPayload {
                hold_ttl_millis: hold,
                lock_id: 1,
                op_id: 1,
            }
            .to_bytes()
        };
        n.write(
            A,
            BizType::TryLock,
            KvReq::put(0, "lk", lock(100)).with_ttl(0),
            0,
        );
        n.write(
            B,
            BizType::TryLock,
            KvReq::put(0, "lk", lock(500)).with_ttl(1000),
            20,
        );
        let run = n.ttl.run(100 * MS);
        assert_eq!(run.expire.len(), 1);
        n.index += 1;
        let out = n.tree.apply(n.index, 100, BizType::Expire, &run.expire[0]);
        let h = out.lock_handover.clone().unwrap();
        assert_eq!(h.owner, B);
        // B waited from 20 ms to 100 ms, less the 1 ms margin.
        assert_eq!(n.ttl.lock_wait_nanos(&h, 100 * MS), 79 * MS);
        n.ttl.apply_changes(&out.ttl_changes, 100 * MS);
        let b_key = lock_entry_key(b"lk", B);
        assert_eq!(n.ttl.expiry_of(&b_key), Some((n.index, 600 * MS)));
    }

    #[test]
    fn install_reconstructs_local_expiry_from_the_wall_clock() {
        let mut t = KvTree::new();
        let mut req = KvReq::put(0, "t", "v").with_ttl(10_000);
        req.set_owner(A);
        t.apply(1, 1_000_000, BizType::PutTempNode, &req);
        let mut r = t.snapshot_reader(1);
        let bytes = t.read_snapshot(&mut r, 1 << 20);
        let mut d = crate::dtkv::SnapshotDecoder::new();
        let mut recs = Vec::new();
        d.feed(&bytes, &mut recs).unwrap();
        let (_, changes) = KvTree::install(recs).unwrap();
        let mut m = TtlManager::new();
        // 4 s of the TTL have passed on the wall clock.
        m.install(&changes, 50_000 * MS, 1_004_000);
        assert_eq!(m.expiry_of(b"t"), Some((1, 56_000 * MS)));
        // A leader start in the future counts as now.
        m.install(&changes, 50_000 * MS, 999_000);
        assert_eq!(m.expiry_of(b"t"), Some((1, 60_000 * MS)));
    }
}
