//! The key tree: holders in an insertion-ordered map, their version chains, directory
//! children lists, lock queues, and MVCC for snapshots (`dtkv-server.md` §3, §8).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bytes::Bytes;
use dt_client::kv::{check_key, key_in_dir, KvCode, KvNode, KvResult, SEPARATOR};
use dt_common::prefetch::prefetch;
use slab::Slab;

use super::holder_arena::HolderArena;
use super::key_map::KeyMap;
use super::node::{NodeVersion, TtlInfo};
use super::versions::Versions;

/// The index of a holder in the tree's arena.
pub(crate) type HolderId = usize;

/// An intrusive doubly-linked list of holders (the map's insertion order, or a
/// directory's children).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Links {
    pub(crate) prev: Option<HolderId>,
    pub(crate) next: Option<HolderId>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ListHead {
    pub(crate) head: Option<HolderId>,
    pub(crate) tail: Option<HolderId>,
    pub(crate) len: usize,
}

/// A lock directory's entries by (create index, holder): the first owns the lock. Boxed
/// and allocated only while the queue has entries (a word in every holder, most of
/// which are not lock directories).
#[derive(Debug, Default)]
// Boxed for its size in the holder (a word, not three), not for its contents.
#[allow(clippy::box_collection)]
pub(crate) struct LockQueue(Option<Box<BTreeSet<(i64, HolderId)>>>);

impl LockQueue {
    pub(crate) fn insert(&mut self, entry: (i64, HolderId)) {
        self.0.get_or_insert_with(Default::default).insert(entry);
    }

    pub(crate) fn remove(&mut self, entry: &(i64, HolderId)) {
        if let Some(q) = &mut self.0 {
            q.remove(entry);
            if q.is_empty() {
                self.0 = None;
            }
        }
    }

    pub(crate) fn first(&self) -> Option<&(i64, HolderId)> {
        self.0.as_ref()?.first()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(i64, HolderId)> {
        self.0.iter().flat_map(|q| q.iter())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// Everything about one key that exists or still has versions or child holders.
///
/// Laid out (`repr(C)`, 64-byte aligned) so that what a put to an existing key reads and
/// writes, the parent link and the latest version's flag, removed mark, update index,
/// update time and value, fill the holder's first cache line together.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct Holder {
    /// The parent holder's id + 1, 0 for the root ([`Holder::parent`]): one word, so
    /// it shares the first cache line with the latest version's hot fields.
    parent_link: usize,
    /// The latest version and those open snapshots may still see.
    pub(crate) versions: Versions,
    pub(crate) key: Bytes,
    /// Holders whose parent is this one (live children and tombstones).
    pub(crate) child_holder_count: usize,
    /// Position in the map's insertion order.
    pub(crate) order: Links,
    /// Position in the parent's children list (while a live child).
    pub(crate) sibling: Links,
    pub(crate) in_children: bool,
    /// Live children of this directory, in insertion order (shared by all its versions).
    pub(crate) children: ListHead,
    /// For lock directories: the entries ordered by create index (the first owns the
    /// lock).
    pub(crate) lock_queue: LockQueue,
    /// A free arena slot's placeholder ([`Holder::vacant`]), not a holder of the tree.
    pub(crate) vacant: bool,
}

/// The root's version in a new tree: a directory with indexes and times 0.
pub(crate) fn empty_dir() -> NodeVersion {
    NodeVersion {
        create_index: 0,
        create_time: 0,
        update_index: 0,
        update_time: 0,
        flag: KvNode::FLAG_DIR,
        data: Bytes::new(),
        removed: false,
        ttl: None,
    }
}

impl Holder {
    /// A holder of `key` under `parent` with one version.
    pub(crate) fn new(key: Bytes, parent: Option<HolderId>, first: NodeVersion) -> Self {
        Holder {
            key,
            parent_link: parent.map_or(0, |p| p + 1),
            versions: Versions::new(first),
            child_holder_count: 0,
            order: Links::default(),
            sibling: Links::default(),
            in_children: false,
            children: ListHead::default(),
            lock_queue: LockQueue::default(),
            vacant: false,
        }
    }

    /// What a free arena slot holds (nothing allocated).
    pub(crate) fn vacant() -> Self {
        Holder {
            vacant: true,
            ..Holder::new(Bytes::new(), None, empty_dir())
        }
    }

    /// Whether this is a free arena slot's placeholder.
    #[inline]
    pub(crate) fn is_vacant(&self) -> bool {
        self.vacant
    }

    /// The parent holder (`None` for the root).
    #[inline]
    pub(crate) fn parent(&self) -> Option<HolderId> {
        self.parent_link.checked_sub(1)
    }

    #[inline]
    pub(crate) fn latest(&self) -> &NodeVersion {
        self.versions.latest()
    }

    #[inline]
    pub(crate) fn latest_mut(&mut self) -> &mut NodeVersion {
        self.versions.latest_mut()
    }

    pub(crate) fn key_in_dir(&self) -> Bytes {
        let k = key_in_dir(&self.key);
        self.key.slice(self.key.len() - k.len()..)
    }

    /// The version a snapshot at `index` sees (the newest with `update_index ≤ index`),
    /// `None` when it sees none or a tombstone.
    pub(crate) fn visible_at(&self, index: i64) -> Option<&NodeVersion> {
        self.versions.at(index).filter(|v| !v.removed)
    }
}

/// The DtKV key tree: an in-memory, IO-free, deterministic data model.
///
/// The root (empty key, a directory with indexes 0) always exists. Keys map to holders
/// kept in insertion order (a key re-created while its holder still exists keeps its
/// place; snapshots iterate in this order). While a snapshot is open
/// ([`KvTree::open_snapshot`]) every replaced or removed version stays on its holder's
/// chain as long as an open snapshot can see it, so the snapshot reads a consistent
/// state while writes go on; otherwise only the latest version exists.
///
/// Reads ([`KvTree::get`], [`KvTree::batch_get`], [`KvTree::list`]) see the latest
/// state; writes go through [`KvTree::apply`](KvTree::apply) with the entry's index and
/// timestamp.
///
/// Built for the cost of a put to an existing key (the common write): the key map
/// (seeded fast hash, short keys inline in the slot) gives the holder id, the holder
/// (one arena slot) names its parent, and the latest version (inline in the holder) is
/// updated in place while no snapshot is open; all a put reads of the key's own state
/// is in one cache line of the map and one of the holder. Measured with
/// `dtkv_apply_bench` (`docs/examples.md`).
#[derive(Debug)]
pub struct KvTree {
    pub(crate) holders: HolderArena,
    pub(crate) map: KeyMap,
    pub(crate) order: ListHead,
    pub(crate) root: HolderId,
    /// lastIncludedIndex of each open snapshot → how many are open at it.
    pub(crate) open_snapshots: BTreeMap<i64, usize>,
    /// Snapshot readers' cursors (the next holder in map order each will visit), and
    /// the garbage-collection sweep's.
    pub(crate) cursors: Slab<Option<HolderId>>,
    /// The garbage-collection sweep under way: its cursor in `cursors`
    /// ([`KvTree::close_snapshot`], [`KvTree::gc_step`]).
    pub(crate) gc_cursor: Option<usize>,
    /// Keys with watches: their changes are reported in `ApplyOutcome::watch_events`.
    pub(crate) watched: HashSet<Bytes>,
}

impl Default for KvTree {
    fn default() -> Self {
        KvTree::new()
    }
}

impl KvTree {
    /// An empty tree: only the root directory.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty tree whose key map has room for `capacity` keys before it grows (the
    /// reference's `initMapCapacity`).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut t = KvTree {
            holders: HolderArena::with_capacity(capacity),
            map: KeyMap::with_capacity(capacity),
            order: ListHead::default(),
            root: 0,
            open_snapshots: BTreeMap::new(),
            cursors: Slab::new(),
            gc_cursor: None,
            watched: HashSet::new(),
        };
        t.root = t.insert_holder(Bytes::new(), None, empty_dir());
        t
    }

    /// Number of holders in the map (live keys, the root, and tombstones still kept).
    pub fn holder_count(&self) -> usize {
        self.map.len()
    }

    /// A digest of the latest state: every live node's key, indexes, times, flags,
    /// value and whether it has a TTL and whose. Equal trees give equal digests,
    /// whatever their insertion order, MVCC versions or tombstones (simulation and
    /// replica checks). The TTL's timing (its raft index, start and length) is left
    /// out: a restart of a TTL changes it in place, without a new version, so a
    /// snapshot taken before the restart may carry it (as in the reference, whose
    /// replay skips the older restart: `dtkv-server.md` §5.2); compare
    /// [`KvTree::ttl_infos`] with that in mind.
    pub fn state_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut sum = 0u64;
        for (_, x) in self.holders.iter() {
            let (key, v) = (&x.key, x.latest());
            if v.removed {
                continue;
            }
            #[allow(deprecated)] // SipHash with fixed keys: the same on every run
            let mut st = std::hash::SipHasher::new();
            key.hash(&mut st);
            (v.create_index, v.create_time, v.update_index, v.update_time).hash(&mut st);
            (v.flag, &v.data[..]).hash(&mut st);
            if let Some(t) = v.ttl {
                (t.owner.uuid1, t.owner.uuid2).hash(&mut st);
            }
            sum = sum.wrapping_add(st.finish());
        }
        sum
    }

    /// The TTL of every live node that has one, by key.
    pub fn ttl_infos(&self) -> BTreeMap<Bytes, TtlInfo> {
        self.holders
            .iter()
            .filter_map(|(_, x)| {
                let v = x.latest();
                v.ttl.filter(|_| !v.removed).map(|t| (x.key.clone(), t))
            })
            .collect()
    }

    /// The latest state as text, one sorted line per live node (key, indexes, times,
    /// flags, value, TTL): what [`KvTree::state_digest`] covers, for reports.
    pub fn state_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .holders
            .iter()
            .filter_map(|(_, x)| {
                let (key, v) = (&x.key, x.latest());
                (!v.removed).then(|| {
                    format!(
                        "{:?} c={}@{} u={}@{} f={} v={:?} ttl={:?}",
                        String::from_utf8_lossy(key),
                        v.create_index,
                        v.create_time,
                        v.update_index,
                        v.update_time,
                        v.flag,
                        v.data,
                        v.ttl
                    )
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The entries of the lock at `lock_key` in queue order (the first holds the lock):
    /// each entry's owner, create index and TTL; empty when there is no such lock.
    pub fn lock_entries(
        &self,
        lock_key: &[u8],
    ) -> Vec<(dt_net::ProcessInfo, i64, Option<TtlInfo>)> {
        let Some(dir) = self.live(lock_key) else {
            return Vec::new();
        };
        self.holders[dir]
            .lock_queue
            .iter()
            .map(|&(ci, h)| {
                let ttl = self.holders[h].latest().ttl;
                (ttl.map(|t| t.owner).unwrap_or_default(), ci, ttl)
            })
            .collect()
    }

    // ---- reads (latest state; `dtkv-server.md` §8) ----

    /// GET: the empty key is the root. Missing or removed → NOT_FOUND; else SUCCESS with
    /// the node (data for values, none for directories).
    pub fn get(&self, key: &[u8]) -> KvResult {
        let ck = check_key(key, true, false);
        if ck != KvCode::Success {
            return KvResult::code(ck);
        }
        self.get0(key)
    }

    fn get0(&self, key: &[u8]) -> KvResult {
        match self.live(key) {
            Some(h) => KvResult::with_node(self.holders[h].latest().to_kv_node()),
            None => KvResult::code(KvCode::NotFound),
        }
    }

    /// BATCH_GET: no keys → INVALID_KEY overall; per key an empty key is INVALID_KEY
    /// (not the root), else like GET.
    pub fn batch_get(&self, keys: &[Bytes]) -> Result<Vec<KvResult>, KvCode> {
        if keys.is_empty() {
            return Err(KvCode::InvalidKey);
        }
        Ok(keys
            .iter()
            .map(|k| match check_key(k, false, false) {
                KvCode::Success => self.get0(k),
                c => KvResult::code(c),
            })
            .collect())
    }

    /// LIST: the empty key is the root. Missing → NOT_FOUND; a value → PARENT_NOT_DIR;
    /// else one SUCCESS result per child, in the children list's (insertion) order,
    /// with the node and its key-in-dir.
    pub fn list(&self, key: &[u8]) -> Result<Vec<KvResult>, KvCode> {
        let ck = check_key(key, true, false);
        if ck != KvCode::Success {
            return Err(ck);
        }
        let h = self.live(key).ok_or(KvCode::NotFound)?;
        if !self.holders[h].latest().is_dir() {
            return Err(KvCode::ParentNotDir);
        }
        Ok(self
            .children(h)
            .into_iter()
            .map(|c| {
                let c = &self.holders[c];
                KvResult {
                    biz_code: KvCode::Success,
                    node: Some(c.latest().to_kv_node()),
                    key_in_dir: c.key_in_dir(),
                }
            })
            .collect())
    }

    // ---- watches ----

    /// Marks `key` as watched (or not): changes of watched keys are reported by
    /// [`KvTree::apply`] in [`ApplyOutcome::watch_events`](super::ApplyOutcome).
    pub fn set_watched(&mut self, key: &Bytes, watched: bool) {
        if watched {
            self.watched.insert(key.clone());
        } else {
            self.watched.remove(key);
        }
    }

    /// What a watch on `key` sees now: the live node (update index, directory or value),
    /// or, for a missing key, the update index of its nearest live ancestor.
    pub fn watch_view(&self, key: &[u8]) -> WatchView {
        if let Some(h) = self.live(key) {
            let v = self.holders[h].latest();
            return WatchView::Exists {
                update_index: v.update_index,
                dir: v.is_dir(),
                data: v.data.clone(),
            };
        }
        let mut k = key;
        loop {
            k = dt_client::kv::parent_key(k);
            if let Some(h) = self.live(k) {
                return WatchView::Missing {
                    ancestor_update_index: self.holders[h].latest().update_index,
                };
            }
        }
    }

    // ---- snapshots (MVCC) ----

    /// Opens a snapshot of the state after entry `last_included_index`: from now on, the
    /// versions it sees are kept until [`KvTree::close_snapshot`]. Returns a handle for
    /// [`KvTree::snapshot_get`] and the snapshot reader.
    pub fn open_snapshot(&mut self, last_included_index: i64) -> SnapshotId {
        *self.open_snapshots.entry(last_included_index).or_default() += 1;
        let cursor = self.cursors.insert(self.order.head);
        SnapshotId {
            index: last_included_index,
            cursor,
        }
    }

    /// Closes a snapshot. Versions nobody sees any more are dropped as holders are
    /// updated, and by a garbage-collection sweep over the whole map, which this
    /// starts (or starts over, from the first holder, when one is under way) and
    /// [`KvTree::gc_step`] runs a few holders at a time: a sweep of a million holders
    /// run at once held the group's thread for a quarter of a second.
    pub fn close_snapshot(&mut self, id: SnapshotId) {
        if let Some(n) = self.open_snapshots.get_mut(&id.index) {
            *n -= 1;
            if *n == 0 {
                self.open_snapshots.remove(&id.index);
            }
        }
        if self.cursors.contains(id.cursor) {
            self.cursors.remove(id.cursor);
        }
        let head = self.order.head;
        match self.gc_cursor {
            Some(c) => self.cursors[c] = head,
            None => self.gc_cursor = Some(self.cursors.insert(head)),
        }
    }

    /// Whether a garbage-collection sweep is under way.
    pub fn gc_pending(&self) -> bool {
        self.gc_cursor.is_some()
    }

    /// Runs up to `max` holders of the sweep under way, in map order (the reference
    /// does 500 per step); returns whether holders remain. Holders added meanwhile are
    /// visited too, removed ones skipped (the sweep's cursor moves past a holder that
    /// goes, as a snapshot reader's does).
    pub fn gc_step(&mut self, max: usize) -> bool {
        let Some(c) = self.gc_cursor else {
            return false;
        };
        for _ in 0..max {
            let Some(h) = self.cursors[c] else {
                self.cursors.remove(c);
                self.gc_cursor = None;
                return false;
            };
            self.cursors[c] = self.holders[h].order.next;
            self.gc(h);
        }
        true
    }

    /// What the snapshot `id` sees at `key`: the version current after its last
    /// included entry, `None` when the key did not exist then.
    pub fn snapshot_get(&self, id: &SnapshotId, key: &[u8]) -> Option<KvNode> {
        let h = self.map.get(key)?;
        self.holders[h].visible_at(id.index).map(|v| v.to_kv_node())
    }

    /// Total number of versions kept (all holders), for tests and status.
    pub fn version_count(&self) -> usize {
        self.holders.iter().map(|(_, h)| h.versions.len()).sum()
    }

    // ---- internals shared with apply and snapshot ----

    pub(crate) fn snapshots_open(&self) -> bool {
        !self.open_snapshots.is_empty()
    }

    /// The holder of a live (existing, not removed) key; the empty key is the root.
    pub(crate) fn live(&self, key: &[u8]) -> Option<HolderId> {
        let h = self.map.get(key)?;
        (!self.holders[h].latest().removed).then_some(h)
    }

    /// Starts loading the map slot `key` most likely sits in (found from the map's
    /// tags alone); returns its bucket for [`KvTree::prefetch_holder`].
    pub(crate) fn prefetch_slot(&self, key: &[u8]) -> Option<usize> {
        let i = self.map.slot_hint(key)?;
        prefetch(self.map.slot_ptr(i));
        Some(i)
    }

    /// Starts loading the first cache line (the one a put on an existing key reads) of
    /// the holder in map bucket `bucket`, once that slot is in the cache.
    pub(crate) fn prefetch_holder(&self, bucket: usize) -> Option<HolderId> {
        let h = self.map.holder_at(bucket)?;
        prefetch(self.holders.slot_ptr(h));
        Some(h)
    }

    /// Starts loading the start of holder `h`'s latest value, whose header freeing it
    /// reads and writes; nothing when `h` holds no holder.
    pub(crate) fn prefetch_value(&self, h: HolderId) {
        if let Some(x) = self.holders.get(h) {
            let p = x.latest().data.as_ptr();
            prefetch(p.wrapping_sub(8));
            prefetch(p);
        }
    }

    pub(crate) fn lookup(&self, key: &[u8]) -> Option<HolderId> {
        self.map.get(key)
    }

    pub(crate) fn children(&self, dir: HolderId) -> Vec<HolderId> {
        let mut out = Vec::with_capacity(self.holders[dir].children.len);
        let mut c = self.holders[dir].children.head;
        while let Some(h) = c {
            out.push(h);
            c = self.holders[h].sibling.next;
        }
        out
    }

    /// The holders in map order (for tests' checks of the whole tree).
    #[cfg(test)]
    pub(crate) fn iter_order(&self) -> impl Iterator<Item = HolderId> + '_ {
        let mut c = self.order.head;
        std::iter::from_fn(move || {
            let h = c?;
            c = self.holders[h].order.next;
            Some(h)
        })
    }

    /// Creates a holder, appends it to the map order and counts it in its parent.
    pub(crate) fn insert_holder(
        &mut self,
        key: Bytes,
        parent: Option<HolderId>,
        first: NodeVersion,
    ) -> HolderId {
        let h = self.holders.insert(Holder::new(key.clone(), parent, first));
        self.map.insert(&key, h);
        let tail = self.order.tail;
        self.holders[h].order.prev = tail;
        match tail {
            Some(t) => self.holders[t].order.next = Some(h),
            None => self.order.head = Some(h),
        }
        self.order.tail = Some(h);
        self.order.len += 1;
        if let Some(p) = parent {
            self.holders[p].child_holder_count += 1;
        }
        h
    }

    /// Drops a holder from the map, the order list and the arena; readers whose cursor
    /// pointed at it move on to the next holder.
    fn drop_holder(&mut self, h: HolderId) {
        let Links { prev, next } = self.holders[h].order;
        match prev {
            Some(p) => self.holders[p].order.next = next,
            None => self.order.head = next,
        }
        match next {
            Some(n) => self.holders[n].order.prev = prev,
            None => self.order.tail = prev,
        }
        self.order.len -= 1;
        for (_, c) in self.cursors.iter_mut() {
            if *c == Some(h) {
                *c = next;
            }
        }
        let holder = self.holders.remove(h);
        self.map.remove(&holder.key);
    }

    /// Appends `child` to `dir`'s children list (and its lock queue for a lock dir).
    pub(crate) fn add_child(&mut self, dir: HolderId, child: HolderId) {
        debug_assert!(!self.holders[child].in_children);
        let tail = self.holders[dir].children.tail;
        {
            let c = &mut self.holders[child];
            c.sibling = Links {
                prev: tail,
                next: None,
            };
            c.in_children = true;
        }
        match tail {
            Some(t) => self.holders[t].sibling.next = Some(child),
            None => self.holders[dir].children.head = Some(child),
        }
        let d = &mut self.holders[dir];
        d.children.tail = Some(child);
        d.children.len += 1;
        if d.latest().is_lock() {
            let ci = self.holders[child].latest().create_index;
            self.holders[dir].lock_queue.insert((ci, child));
        }
    }

    /// Takes `child` out of its parent's children list (and lock queue).
    pub(crate) fn remove_child(&mut self, dir: HolderId, child: HolderId) {
        if !self.holders[child].in_children {
            return;
        }
        let Links { prev, next } = self.holders[child].sibling;
        match prev {
            Some(p) => self.holders[p].sibling.next = next,
            None => self.holders[dir].children.head = next,
        }
        match next {
            Some(n) => self.holders[n].sibling.prev = prev,
            None => self.holders[dir].children.tail = prev,
        }
        let ci = self.holders[child].latest().create_index;
        let c = &mut self.holders[child];
        c.sibling = Links::default();
        c.in_children = false;
        let d = &mut self.holders[dir];
        d.children.len -= 1;
        d.lock_queue.remove(&(ci, child));
    }

    /// The owner of a lock directory: its entry with the smallest create index.
    pub(crate) fn lock_owner(&self, dir: HolderId) -> Option<HolderId> {
        self.holders[dir].lock_queue.first().map(|&(_, h)| h)
    }

    /// Installs a new latest version of `h`: kept beside the older ones while
    /// snapshots are open (then garbage-collected), alone otherwise.
    pub(crate) fn push_version(&mut self, h: HolderId, v: NodeVersion) {
        if self.snapshots_open() {
            self.holders[h].versions.push(v);
            self.gc(h);
        } else {
            self.holders[h].versions.set_only(v);
        }
    }

    /// Gives `h` a new latest version at `index`/`time`: the latest one's flag, TTL and
    /// create fields, with `data` (or the latest's data when `None`). Without open
    /// snapshots the latest version is changed in place (no other version exists and
    /// nobody can see the old one); otherwise as [`KvTree::push_version`].
    // always: two callers, both on every put's path
    #[inline(always)]
    pub(crate) fn update_version(
        &mut self,
        h: HolderId,
        index: i64,
        time: i64,
        data: Option<Bytes>,
    ) {
        if self.snapshots_open() {
            let old = self.holders[h].latest();
            let data = data.unwrap_or_else(|| old.data.clone());
            let v = old.updated(index, time, data);
            self.push_version(h, v);
        } else {
            // Older versions left by a closed snapshot (not swept yet) may stay: no
            // snapshot can see them (a new one sees at least this version), and the
            // next garbage collection of the holder drops them.
            let v = self.holders[h].latest_mut();
            v.update_index = index;
            v.update_time = time;
            if let Some(d) = data {
                v.data = d;
            }
        }
    }

    /// Drops the versions of `h` no open snapshot can see; removes the holder when only
    /// a tombstone is left and it has no child holders (which may cascade to its
    /// parent).
    pub(crate) fn gc(&mut self, h: HolderId) {
        let holder = &mut self.holders[h];
        if self.open_snapshots.is_empty() {
            holder.versions.drop_older();
        } else {
            holder.versions.retain_visible(&self.open_snapshots);
        }
        if holder.versions.is_single() && holder.latest().removed {
            self.try_remove_from_map(h);
        }
    }

    fn try_remove_from_map(&mut self, h: HolderId) {
        if h == self.root || self.holders[h].child_holder_count > 0 {
            return;
        }
        let parent = self.holders[h].parent();
        self.drop_holder(h);
        if let Some(p) = parent {
            let c = &mut self.holders[p].child_holder_count;
            *c -= 1;
            if *c == 0 {
                self.gc(p);
            }
        }
    }

    /// Decrements the parent's child-holder count after a holder was dropped without
    /// garbage collection (the reference's remove without open snapshots).
    pub(crate) fn drop_removed_holder(&mut self, h: HolderId) {
        let parent = self.holders[h].parent();
        self.drop_holder(h);
        if let Some(p) = parent {
            self.holders[p].child_holder_count -= 1;
        }
    }

    /// The parent holder of `key`, whose holder is `h` (from [`KvTree::lookup`]): an
    /// existing holder names its parent (which cannot be dropped, nor its key given to
    /// another holder, while it has child holders), so only a new key needs the map.
    #[inline]
    pub(crate) fn parent_for(&self, key: &[u8], h: Option<HolderId>) -> Option<HolderId> {
        match h {
            Some(h) => self.holders[h].parent(),
            None => self.parent_of(key),
        }
    }

    /// The parent holder of a key with a separator (`None` when it does not exist), or
    /// the root.
    pub(crate) fn parent_of(&self, key: &[u8]) -> Option<HolderId> {
        match key.iter().rposition(|&b| b == SEPARATOR) {
            Some(i) if i > 0 => self.lookup(&key[..i]),
            _ => Some(self.root),
        }
    }
}

/// What a watch on a key sees ([`KvTree::watch_view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchView {
    /// The key exists.
    Exists {
        /// Its update index.
        update_index: i64,
        /// Whether it is a directory.
        dir: bool,
        /// Its value (empty for a directory).
        data: Bytes,
    },
    /// The key does not exist.
    Missing {
        /// The update index of its nearest existing ancestor (the root at worst).
        ancestor_update_index: i64,
    },
}

/// A handle on an open snapshot ([`KvTree::open_snapshot`]).
#[derive(Debug, PartialEq, Eq)]
pub struct SnapshotId {
    /// The snapshot's last included index.
    pub index: i64,
    pub(crate) cursor: usize,
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn a_puts_fields_share_the_holders_first_cache_line() {
        let latest = offset_of!(Holder, versions); // the latest version comes first
        assert_eq!(offset_of!(Holder, parent_link), 0);
        for end in [
            offset_of!(NodeVersion, flag) + size_of::<i32>(),
            offset_of!(NodeVersion, removed) + 1,
            offset_of!(NodeVersion, update_index) + 8,
            offset_of!(NodeVersion, update_time) + 8,
            offset_of!(NodeVersion, data) + size_of::<Bytes>(),
        ] {
            assert!(latest + end <= 64, "{latest} + {end}");
        }
        // In the arena every holder starts a cache line.
        let mut t = KvTree::new();
        for i in 0..4 {
            t.apply(
                i + 1,
                0,
                super::super::BizType::Put,
                &dt_client::kv::KvReq::put(0, format!("k{i}"), "v"),
            );
        }
        let addr: Vec<usize> = (0..5)
            .map(|h| &t.holders[h] as *const Holder as usize)
            .collect();
        assert!(addr.iter().all(|a| a % 64 == 0), "{addr:?}");
        assert_eq!(addr[1] - addr[0], size_of::<Holder>());
        // Five cache lines a key (plus its map slot): no more than the holder and its
        // separately allocated version took before the version moved inline.
        assert_eq!(size_of::<Holder>(), 320);
    }
}
