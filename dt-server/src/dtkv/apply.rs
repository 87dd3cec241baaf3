//! The apply-time semantics of every DtKV write (`dtkv-server.md` §4–§6): deterministic
//! functions of (index, entry timestamp, business type, request) over the tree, with the
//! reference's business codes and check order.

use bytes::Bytes;
use dt_client::kv::{
    check_key, lock_entry_key, KvCode, KvNode, KvReq, KvResult, LockPayload, MAX_VALUE_SIZE,
};
use dt_net::ProcessInfo;

use super::biz_type::BizType;
use super::node::{NodeVersion, TtlInfo};
use super::tree::{HolderId, KvTree};

/// What applying one entry produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The result for the client.
    pub result: ApplyResult,
    /// TTLs started, restarted or dropped by the entry, in order: what a TtlManager
    /// (local expiry queues) must learn.
    pub ttl_changes: Vec<TtlChange>,
    /// A lock passed to a new owner (UNLOCK by the owner, or EXPIRE of the owner's
    /// entry): the leader pushes DTKV_LOCK_PUSH to that client.
    pub lock_handover: Option<LockHandover>,
    /// Watched keys ([`KvTree::set_watched`]) the entry changed, in order: each is
    /// `(key, removed)`; directories appear when anything below them changed.
    pub watch_events: Vec<(Bytes, bool)>,
}

/// The result of an entry, by response shape (`wire-protocol.md` §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// One result (shape A; the packet's `biz_code` is its code).
    Single(KvResult),
    /// BATCH_PUT / BATCH_REMOVE: the per-key results (shape B), or the overall failure
    /// (shape D).
    Batch(Result<Vec<KvResult>, KvCode>),
}

impl ApplyResult {
    /// The packet's `biz_code`.
    pub fn biz_code(&self) -> KvCode {
        match self {
            ApplyResult::Single(r) => r.biz_code,
            ApplyResult::Batch(Ok(_)) => KvCode::Success,
            ApplyResult::Batch(Err(c)) => *c,
        }
    }
}

/// A change of a node's TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlChange {
    /// A TTL was started or restarted on `key` (replacing any earlier one).
    Started {
        /// The full key.
        key: Bytes,
        /// The new TTL.
        info: TtlInfo,
    },
    /// The node at `key` was removed; its TTL (started at `raft_index`) is gone.
    Removed {
        /// The full key.
        key: Bytes,
        /// The removed TTL's raft index.
        raft_index: i64,
    },
}

/// A lock handed over to its next waiter (`dtkv-server.md` §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHandover {
    /// The lock directory's key (the push's `key`).
    pub lock_key: Bytes,
    /// The new owner (whose connection gets the push).
    pub owner: ProcessInfo,
    /// The new owner's stored TRY_LOCK value (the push's `value`).
    pub value: Bytes,
    /// The waiter's TTL before it was restarted with the hold lease: the server-side
    /// wait is measured from its local start (`max(0, now − start − 1 ms)`).
    pub waited_ttl: Option<TtlInfo>,
}

/// The per-entry context (the reference's `OpContext`).
struct Op {
    biz: BizType,
    index: i64,
    time: i64,
    operator: Option<ProcessInfo>,
    ttl_millis: i64,
    ttl_changes: Vec<TtlChange>,
    handover: Option<LockHandover>,
    last_put: Option<HolderId>,
    watch_events: Vec<(Bytes, bool)>,
}

impl Op {
    fn owns(&self, ttl: &Option<TtlInfo>) -> bool {
        matches!((ttl, self.operator), (Some(t), Some(o)) if t.owner == o)
    }
}

fn r(code: KvCode) -> KvResult {
    KvResult::code(code)
}

impl KvTree {
    /// Applies a committed entry: `index` and `timestamp` (leader wall-clock ms) come
    /// from the log entry, `req` is its body with the owner already set to the writing
    /// connection's UUID (`dtkv-server.md` §1.2). Deterministic: the same entries give
    /// the same tree and results on every replica.
    ///
    /// ```
    /// use dt_client::kv::{KvCode, KvReq};
    /// use dt_server::dtkv::{ApplyResult, BizType, KvTree};
    ///
    /// let mut t = KvTree::new();
    /// let out = t.apply(1, 1_700_000_000_000, BizType::Mkdir, &KvReq::key(0, "a"));
    /// assert_eq!(out.result.biz_code(), KvCode::Success);
    /// let out = t.apply(2, 1_700_000_000_001, BizType::Put, &KvReq::put(0, "a.b", "v"));
    /// assert_eq!(out.result.biz_code(), KvCode::Success);
    /// let node = t.get(b"a.b").node.unwrap();
    /// assert_eq!((node.create_index, &node.data[..]), (2, &b"v"[..]));
    /// // Every ancestor got a new version at index 2.
    /// assert_eq!(t.get(b"").node.unwrap().update_index, 2);
    /// ```
    pub fn apply(&mut self, index: i64, timestamp: i64, biz: BizType, req: &KvReq) -> ApplyOutcome {
        self.apply_taking(index, timestamp, biz, &mut req.clone())
    }

    /// [`KvTree::apply`] taking what it keeps out of `req`: the value of a put or CAS and
    /// the values of a batch put move into the tree instead of being cloned (a value in
    /// a buffer of its own, [`Bytes::copy_from_slice`] say, stays that one allocation),
    /// and `req.value` / `req.values` are left empty. The tree keeps no slice of `req`'s key: a new node copies its key,
    /// so a key sliced from a larger buffer does not keep that buffer alive.
    pub fn apply_taking(
        &mut self,
        index: i64,
        timestamp: i64,
        biz: BizType,
        req: &mut KvReq,
    ) -> ApplyOutcome {
        let mut op = Op {
            biz,
            index,
            time: timestamp,
            operator: req.owner(),
            ttl_millis: req.ttl_millis,
            ttl_changes: Vec::new(),
            handover: None,
            last_put: None,
            watch_events: Vec::new(),
        };
        let key = &req.key;
        let result = match biz {
            BizType::Put | BizType::PutTempNode => {
                ApplyResult::Single(self.put(&mut op, key, std::mem::take(&mut req.value)))
            }
            BizType::Mkdir | BizType::MkTempDir => {
                ApplyResult::Single(self.check_and_put(&mut op, key, Bytes::new()))
            }
            BizType::Remove => ApplyResult::Single(self.check_and_remove(&mut op, key)),
            BizType::BatchPut => {
                let values = std::mem::take(&mut req.values);
                ApplyResult::Batch(self.batch_put(&mut op, &req.keys, values))
            }
            BizType::BatchRemove => ApplyResult::Batch(self.batch_remove(&mut op, &req.keys)),
            BizType::Cas => {
                let new = std::mem::take(&mut req.value);
                ApplyResult::Single(self.cas(&mut op, key, &req.expect_value, new))
            }
            // For EXPIRE, ttl_millis carries the expected TTL raft index.
            BizType::Expire => ApplyResult::Single(self.expire(&mut op, key, req.ttl_millis)),
            BizType::UpdateTtl => ApplyResult::Single(self.update_ttl(&mut op, key)),
            BizType::UpdateLockLease => ApplyResult::Single(self.update_lock_lease(&mut op, key)),
            BizType::TryLock => ApplyResult::Single(self.try_lock(&mut op, key, &req.value)),
            BizType::Unlock => ApplyResult::Single(self.unlock(&mut op, key)),
        };
        ApplyOutcome {
            result,
            ttl_changes: op.ttl_changes,
            lock_handover: op.handover,
            watch_events: op.watch_events,
        }
    }

    /// Records a change of `h` for the watch manager when its key is watched. Inlined
    /// down to one test while nothing is watched (three calls a put).
    #[inline(always)]
    fn touched(&self, op: &mut Op, h: HolderId, removed: bool) {
        if !self.watched.is_empty() {
            self.touched_watched(op, h, removed);
        }
    }

    #[inline(never)]
    fn touched_watched(&self, op: &mut Op, h: HolderId, removed: bool) {
        let k = &self.holders[h].key;
        if self.watched.contains(k) {
            op.watch_events.push((k.clone(), removed));
        }
    }

    // ---- checks (§4) ----

    /// `checkExistNode`: `Some(code)` refuses the operation.
    fn check_exist(&self, op: &Op, h: Option<HolderId>) -> Option<KvCode> {
        let latest = h.map(|h| self.holders[h].latest()).filter(|v| !v.removed);
        use BizType::*;
        match op.biz {
            Put | Mkdir | BatchPut | Cas => {
                let v = latest?;
                if v.is_lock() {
                    Some(KvCode::IsLockNode)
                } else if v.is_temp() {
                    Some(KvCode::IsTempNode)
                } else {
                    None
                }
            }
            Remove | BatchRemove => {
                let Some(v) = latest else {
                    return Some(KvCode::NotFound);
                };
                if v.is_lock() {
                    Some(KvCode::IsLockNode)
                } else if v.is_temp() && !op.owns(&v.ttl) {
                    Some(KvCode::NotOwner)
                } else {
                    None
                }
            }
            UpdateTtl => {
                let Some(v) = latest else {
                    return Some(KvCode::NotFound);
                };
                if !v.is_temp() {
                    Some(KvCode::NotTempNode)
                } else if !op.owns(&v.ttl) {
                    Some(KvCode::NotOwner)
                } else {
                    None
                }
            }
            PutTempNode | MkTempDir => {
                let v = latest?;
                if v.is_lock() {
                    Some(KvCode::IsLockNode)
                } else if !v.is_temp() {
                    Some(KvCode::NotTempNode)
                } else if !op.owns(&v.ttl) {
                    Some(KvCode::NotOwner)
                } else {
                    None
                }
            }
            TryLock | Unlock | UpdateLockLease => {
                let Some(v) = latest else {
                    return (op.biz != TryLock).then_some(KvCode::NotFound);
                };
                (!(v.is_lock() && v.is_dir())).then_some(KvCode::NotLockNode)
            }
            Expire => None,
        }
    }

    /// `checkParentBeforePut`.
    fn check_parent(&self, op: &Op, parent: Option<HolderId>) -> Option<KvCode> {
        let Some(p) = parent.filter(|&p| !self.holders[p].latest().removed) else {
            return Some(KvCode::ParentDirNotExists);
        };
        let v = self.holders[p].latest();
        if !v.is_dir() {
            return Some(KvCode::ParentNotDir);
        }
        if v.is_lock() {
            return Some(KvCode::ParentIsLock);
        }
        if matches!(
            op.biz,
            BizType::TryLock | BizType::PutTempNode | BizType::MkTempDir
        ) {
            let mut a = Some(p);
            while let Some(x) = a {
                if self.holders[x].latest().is_temp() {
                    return Some(KvCode::UnderTempDir);
                }
                a = self.holders[x].parent();
            }
        }
        None
    }

    // ---- TTL bookkeeping (§5) ----

    fn init_ttl(&mut self, op: &mut Op, h: HolderId) {
        if op.ttl_millis <= 0 {
            return;
        }
        let info = TtlInfo {
            raft_index: op.index,
            owner: op.operator.unwrap_or_default(),
            leader_start_millis: op.time,
            ttl_millis: op.ttl_millis,
        };
        self.holders[h].latest_mut().ttl = Some(info);
        op.ttl_changes.push(TtlChange::Started {
            key: self.holders[h].key.clone(),
            info,
        });
    }

    /// Restarts a node's TTL; idempotent: ignored when its TTL was (re)started at this
    /// index or later (replay after a snapshot that already holds the newer TTL).
    fn restart_ttl(&mut self, op: &mut Op, h: HolderId) {
        if op.ttl_millis <= 0 {
            return;
        }
        match self.holders[h].latest().ttl {
            Some(t) if t.raft_index < op.index => self.init_ttl(op, h),
            _ => {}
        }
    }

    // ---- puts ----

    fn put(&mut self, op: &mut Op, key: &Bytes, value: Bytes) -> KvResult {
        if value.is_empty() {
            return r(KvCode::InvalidValue);
        }
        if value.len() > MAX_VALUE_SIZE {
            return r(KvCode::ValueTooLong);
        }
        self.check_and_put(op, key, value)
    }

    /// Put (value non-empty) or mkdir (value empty) after the key, parent and existing
    /// node checks.
    fn check_and_put(&mut self, op: &mut Op, key: &Bytes, data: Bytes) -> KvResult {
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        let h = self.lookup(key);
        let parent = self.parent_for(key, h);
        if parent != Some(self.root) {
            if let Some(c) = self.check_parent(op, parent) {
                return r(c);
            }
        }
        let parent = parent.expect("checked");
        if let Some(c) = self.check_exist(op, h) {
            return r(c);
        }
        self.do_put(op, key, data, h, parent)
    }

    fn do_put(
        &mut self,
        op: &mut Op,
        key: &Bytes,
        data: Bytes,
        current: Option<HolderId>,
        parent: HolderId,
    ) -> KvResult {
        op.last_put = None;
        let existing = current.filter(|&h| !self.holders[h].latest().removed);
        let Some(h) = existing else {
            // A new node (or a re-created key whose holder still exists).
            let is_dir = data.is_empty();
            // what a TRY_LOCK's value asks for, read before the value moves in
            let hold_ttl = (op.biz == BizType::TryLock && !is_dir)
                .then(|| LockPayload::hold_ttl(&data).unwrap_or(0));
            let flag = if is_dir { KvNode::FLAG_DIR } else { 0 }
                | if op.biz == BizType::TryLock {
                    KvNode::FLAG_LOCK
                } else {
                    0
                }
                | if op.ttl_millis > 0 {
                    KvNode::FLAG_TEMP
                } else {
                    0
                };
            let v = NodeVersion {
                create_index: op.index,
                create_time: op.time,
                update_index: op.index,
                update_time: op.time,
                flag,
                data,
                removed: false,
                ttl: None,
            };
            let h = match current {
                // a key of its own: `key` may be a slice of a whole request or frame
                None => self.insert_holder(Bytes::copy_from_slice(key), Some(parent), v),
                Some(h) => {
                    self.push_version(h, v);
                    h
                }
            };
            self.add_child(parent, h);
            let mut res = r(KvCode::Success);
            if let Some(hold_ttl) = hold_ttl {
                if self.lock_owner(parent) == Some(h) {
                    op.ttl_millis = hold_ttl;
                } else {
                    res = r(KvCode::LockByOther);
                }
            }
            self.init_ttl(op, h);
            self.touched(op, h, false);
            self.update_parents(op, parent);
            op.last_put = Some(h);
            return res;
        };
        let old = self.holders[h].latest();
        if data.is_empty() {
            if !old.is_dir() {
                return r(KvCode::ValueExists);
            }
            if op.biz == BizType::MkTempDir {
                self.restart_ttl(op, h);
            }
            op.last_put = Some(h);
            return r(KvCode::DirExists);
        }
        if old.is_dir() {
            return r(KvCode::DirExists);
        }
        let hold_ttl =
            (op.biz == BizType::TryLock).then(|| LockPayload::hold_ttl(&data).unwrap_or(0));
        self.update_version(h, op.index, op.time, Some(data));
        let mut res = r(KvCode::SuccessOverwrite);
        if matches!(op.biz, BizType::PutTempNode | BizType::TryLock) {
            if let Some(hold_ttl) = hold_ttl {
                if self.lock_owner(parent) == Some(h) {
                    op.ttl_millis = hold_ttl;
                    res = r(KvCode::LockBySelf);
                } else {
                    res = r(KvCode::LockByOther);
                }
            }
            self.restart_ttl(op, h);
        }
        self.touched(op, h, false);
        self.update_parents(op, parent);
        op.last_put = Some(h);
        res
    }

    /// Gives every ancestor from `parent` up to the root a new version at this entry.
    fn update_parents(&mut self, op: &mut Op, parent: HolderId) {
        let mut p = Some(parent);
        while let Some(h) = p {
            self.touched(op, h, false);
            self.update_version(h, op.index, op.time, None);
            p = self.holders[h].parent();
        }
    }

    fn batch_put(
        &mut self,
        op: &mut Op,
        keys: &[Bytes],
        values: Vec<Bytes>,
    ) -> Result<Vec<KvResult>, KvCode> {
        if keys.is_empty() {
            return Err(KvCode::InvalidKey);
        }
        if values.len() != keys.len() {
            return Err(KvCode::InvalidValue);
        }
        // Quirk kept: no value checks here; an empty value creates a directory.
        Ok(keys
            .iter()
            .zip(values)
            .map(|(k, v)| self.check_and_put(op, k, v))
            .collect())
    }

    fn cas(&mut self, op: &mut Op, key: &Bytes, expect: &Bytes, new: Bytes) -> KvResult {
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        if expect.is_empty() && new.is_empty() {
            return r(KvCode::InvalidValue);
        }
        let h = self.lookup(key);
        let parent = self.parent_for(key, h);
        if parent != Some(self.root) {
            if let Some(c) = self.check_parent(op, parent) {
                return r(c);
            }
        }
        let parent = parent.expect("checked");
        if let Some(c) = self.check_exist(op, h) {
            return r(c);
        }
        let live = h.filter(|&h| !self.holders[h].latest().removed);
        if expect.is_empty() {
            return match live {
                None => self.do_put(op, key, new, h, parent),
                Some(_) => r(KvCode::CasMismatch),
            };
        }
        let Some(h) = live else {
            return r(KvCode::CasMismatch);
        };
        let v = self.holders[h].latest();
        if v.is_dir() || v.data != *expect {
            return r(KvCode::CasMismatch);
        }
        if new.is_empty() {
            self.do_remove(op, h)
        } else {
            let res = self.do_put(op, key, new, Some(h), parent);
            if res.biz_code == KvCode::SuccessOverwrite {
                r(KvCode::Success)
            } else {
                res
            }
        }
    }

    // ---- removes ----

    fn check_and_remove(&mut self, op: &mut Op, key: &Bytes) -> KvResult {
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        let h = self.lookup(key);
        if let Some(c) = self.check_exist(op, h) {
            return r(c);
        }
        let h = h.expect("checked");
        if self.holders[h].children.len > 0 {
            return r(KvCode::HasChildren);
        }
        self.do_remove(op, h)
    }

    fn do_remove(&mut self, op: &mut Op, h: HolderId) -> KvResult {
        let parent = self.holders[h].parent().expect("the root is never removed");
        self.touched(op, h, true);
        self.remove_child(parent, h);
        if let Some(t) = self.holders[h].latest().ttl {
            op.ttl_changes.push(TtlChange::Removed {
                key: self.holders[h].key.clone(),
                raft_index: t.raft_index,
            });
        }
        let old = self.holders[h].latest();
        if self.snapshots_open() {
            let tomb = NodeVersion {
                create_index: old.create_index,
                create_time: old.create_time,
                update_index: op.index,
                update_time: op.time,
                flag: 0,
                data: Bytes::new(),
                removed: true,
                ttl: None,
            };
            self.holders[h].versions.push(tomb);
            self.gc(h);
        } else if self.holders[h].child_holder_count == 0 {
            self.drop_removed_holder(h);
        } else {
            let tomb = NodeVersion {
                create_index: op.index,
                create_time: op.time,
                update_index: op.index,
                update_time: op.time,
                flag: 0,
                data: Bytes::new(),
                removed: true,
                ttl: None,
            };
            self.holders[h].versions.set_only(tomb);
        }
        self.update_parents(op, parent);
        r(KvCode::Success)
    }

    fn batch_remove(&mut self, op: &mut Op, keys: &[Bytes]) -> Result<Vec<KvResult>, KvCode> {
        if keys.is_empty() {
            return Err(KvCode::InvalidKey);
        }
        Ok(keys.iter().map(|k| self.check_and_remove(op, k)).collect())
    }

    // ---- TTL commands ----

    fn update_ttl(&mut self, op: &mut Op, key: &Bytes) -> KvResult {
        if op.ttl_millis <= 0 {
            return r(KvCode::InvalidTtl);
        }
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        let h = self.lookup(key);
        if let Some(c) = self.check_exist(op, h) {
            return r(c);
        }
        // No new version, no ancestor update, no watch event.
        self.restart_ttl(op, h.expect("checked"));
        r(KvCode::Success)
    }

    fn expire(&mut self, op: &mut Op, key: &Bytes, expected_ttl_index: i64) -> KvResult {
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        let Some(h) = self.live(key) else {
            return r(KvCode::NotFound);
        };
        match self.holders[h].latest().ttl {
            Some(t) if t.raft_index == expected_ttl_index => {}
            _ => return r(KvCode::TtlIndexMismatch),
        }
        let v = self.holders[h].latest();
        if v.is_dir() {
            // A temp dir: its whole subtree goes, children first, all at this index.
            let mut order = Vec::new();
            let mut stack = vec![h];
            while let Some(x) = stack.pop() {
                order.push(x);
                if self.holders[x].latest().is_dir() {
                    stack.extend(self.children(x));
                }
            }
            for x in order.into_iter().rev() {
                self.do_remove(op, x);
            }
            return r(KvCode::Success);
        }
        let is_lock = v.is_lock();
        let parent = self.holders[h].parent().expect("not the root");
        let was_owner = is_lock && self.lock_owner(parent) == Some(h);
        self.do_remove(op, h);
        if is_lock {
            if self.holders[parent].children.len == 0 {
                self.do_remove(op, parent);
            } else if was_owner {
                self.hand_over(op, parent);
            }
        }
        r(KvCode::Success)
    }

    // ---- locks (§6) ----

    fn operator_entry_key(op: &Op, lock_key: &[u8]) -> Bytes {
        lock_entry_key(lock_key, op.operator.unwrap_or_default())
    }

    fn try_lock(&mut self, op: &mut Op, key: &Bytes, value: &Bytes) -> KvResult {
        let wait = op.ttl_millis;
        op.ttl_millis = 0; // the lock directory has no TTL
        let res = self.check_and_put(op, key, Bytes::new());
        if !matches!(res.biz_code, KvCode::Success | KvCode::DirExists) {
            return res;
        }
        op.ttl_millis = wait;
        let dir = op.last_put.expect("put or found the lock dir");
        if value.is_empty() {
            // The service boundary requires ≥ 8 bytes; an empty value would make the
            // entry a directory inside the lock.
            return r(KvCode::InvalidValue);
        }
        let dir_key = self.holders[dir].key.clone();
        let entry_key = Self::operator_entry_key(op, &dir_key);
        let entry = self.lookup(&entry_key);
        let owner = self.lock_owner(dir);
        // DELIBERATE BUG (feature sim-bugs, simulation self-test only): the caller
        // takes a lock held by another client.
        #[cfg(feature = "sim-bugs")]
        if crate::sim::bugs::is_active(crate::sim::bugs::DtKvBug::TryLockStealsHeldLock) {
            if let Some(o) = owner.filter(|&o| Some(o) != entry) {
                self.do_remove(op, o);
                return self.do_put(op, &entry_key, value.clone(), entry, dir);
            }
        }
        if wait == 0 && owner.is_some() && owner != entry {
            return r(KvCode::LockByOther);
        }
        self.do_put(op, &entry_key, value.clone(), entry, dir)
    }

    fn unlock(&mut self, op: &mut Op, key: &Bytes) -> KvResult {
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        let dir = self.lookup(key);
        if let Some(c) = self.check_exist(op, dir) {
            return r(c);
        }
        let dir = dir.expect("checked");
        let entry_key = Self::operator_entry_key(op, &self.holders[dir].key.clone());
        let Some(entry) = self.live(&entry_key) else {
            return r(KvCode::LockByOther);
        };
        let held = self.lock_owner(dir) == Some(entry);
        self.do_remove(op, entry);
        let dir_gone = self.holders[dir].children.len == 0;
        if dir_gone {
            self.do_remove(op, dir);
        }
        if !held {
            return r(KvCode::LockByOther);
        }
        if !dir_gone {
            self.hand_over(op, dir);
        }
        r(KvCode::Success)
    }

    fn update_lock_lease(&mut self, op: &mut Op, key: &Bytes) -> KvResult {
        let ck = check_key(key, false, false);
        if ck != KvCode::Success {
            return r(ck);
        }
        if op.ttl_millis <= 0 {
            return r(KvCode::InvalidTtl);
        }
        let dir = self.lookup(key);
        if let Some(c) = self.check_exist(op, dir) {
            return r(c);
        }
        let dir = dir.expect("checked");
        let entry_key = Self::operator_entry_key(op, &self.holders[dir].key.clone());
        match self.lookup(&entry_key) {
            Some(e) if self.lock_owner(dir) == Some(e) => {
                self.restart_ttl(op, e);
                r(KvCode::Success)
            }
            _ => r(KvCode::LockByOther),
        }
    }

    /// The next waiter of `dir` becomes the owner: its TTL restarts with its hold lease
    /// at this entry, and the leader will push the news to it.
    fn hand_over(&mut self, op: &mut Op, dir: HolderId) {
        let Some(next) = self.lock_owner(dir) else {
            return;
        };
        let v = self.holders[next].latest();
        let waited = v.ttl;
        let value = v.data.clone();
        let Some(owner) = waited.map(|t| t.owner) else {
            return;
        };
        op.operator = Some(owner);
        op.ttl_millis = LockPayload::hold_ttl(&value).unwrap_or(0);
        self.restart_ttl(op, next);
        op.handover = Some(LockHandover {
            lock_key: self.holders[dir].key.clone(),
            owner,
            value,
            waited_ttl: waited,
        });
    }
}
