//! A holder's version chain (`dtkv-server.md` §3, §8): the latest version stored inline,
//! the older ones an open snapshot may still read in a vector beside it.
//!
//! Without open snapshots a key has exactly one version, and a put reads and writes only
//! that one: keeping it inline (not behind a `Vec`'s pointer) saves the put a memory
//! access to another cache line, and a holder an allocation. The older versions, oldest
//! first, exist only while snapshots are open (and until the garbage-collection sweep
//! after the last one closes).

use std::collections::BTreeMap;

use super::node::NodeVersion;

/// The versions of one holder, oldest first; never empty (the latest always exists).
///
/// While no snapshot is open, `older` may still hold versions a closed snapshot kept
/// until the garbage collection that follows reaches the holder: nothing reads them
/// (a snapshot opened later sees the latest version or a newer one), so a put may
/// change the latest version in place without looking at them.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Versions {
    latest: NodeVersion,
    /// Versions replaced by newer ones that an open snapshot may see, oldest first,
    /// each with an `update_index` no greater than the next one's.
    older: Vec<NodeVersion>,
}

impl Versions {
    /// A chain of one version.
    pub(crate) fn new(v: NodeVersion) -> Self {
        Versions {
            latest: v,
            older: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn latest(&self) -> &NodeVersion {
        &self.latest
    }

    #[inline]
    pub(crate) fn latest_mut(&mut self) -> &mut NodeVersion {
        &mut self.latest
    }

    /// The number of versions (at least 1).
    pub(crate) fn len(&self) -> usize {
        self.older.len() + 1
    }

    /// Whether only the latest version is left.
    #[inline]
    pub(crate) fn is_single(&self) -> bool {
        self.older.is_empty()
    }

    /// Every version, oldest first.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &NodeVersion> {
        self.older.iter().chain(std::iter::once(&self.latest))
    }

    /// Makes `v` the latest version, keeping the one it replaces as the newest older
    /// one.
    pub(crate) fn push(&mut self, v: NodeVersion) {
        debug_assert!(v.update_index >= self.latest.update_index);
        let old = std::mem::replace(&mut self.latest, v);
        self.older.push(old);
    }

    /// Makes `v` the only version.
    pub(crate) fn set_only(&mut self, v: NodeVersion) {
        self.drop_older();
        self.latest = v;
    }

    /// Drops every version but the latest (and the memory that held them).
    #[inline]
    pub(crate) fn drop_older(&mut self) {
        if self.older.capacity() > 0 {
            self.older = Vec::new();
        }
    }

    /// The version a snapshot at `index` sees: the newest with `update_index ≤ index`
    /// (tombstones included), `None` when every version is newer.
    pub(crate) fn at(&self, index: i64) -> Option<&NodeVersion> {
        if self.latest.update_index <= index {
            return Some(&self.latest);
        }
        let n = self.older.partition_point(|v| v.update_index <= index);
        self.older.get(n.checked_sub(1)?)
    }

    /// Keeps the latest version and, of the older ones, each that one of `snapshots`
    /// (open snapshots by last included index) sees; then drops the oldest while they
    /// are tombstones (a tombstone with nothing before it is the same as nothing).
    /// Allocates nothing.
    pub(crate) fn retain_visible<V>(&mut self, snapshots: &BTreeMap<i64, V>) {
        let n = self.older.len();
        let mut w = 0;
        // Both ascending: one merge walk (no tree search per version).
        let mut snaps = snapshots.keys().copied().peekable();
        for i in 0..n {
            let next = match self.older.get(i + 1) {
                Some(v) => v.update_index,
                None => self.latest.update_index,
            };
            let from = self.older[i].update_index;
            while snaps.next_if(|&s| s < from).is_some() {}
            // Seen by a snapshot at s when from ≤ s < next (the next version is newer
            // than s); versions sharing an index are seen only as the last of them.
            if snaps.peek().is_some_and(|&s| s < next) {
                self.older.swap(w, i);
                w += 1;
            }
        }
        self.older.truncate(w);
        let lead = self.older.iter().take_while(|v| v.removed).count();
        self.older.drain(..lead);
        if self.older.is_empty() {
            self.drop_older();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn v(update_index: i64, removed: bool) -> NodeVersion {
        NodeVersion {
            create_index: 1,
            create_time: 0,
            update_index,
            update_time: update_index,
            flag: 0,
            data: Bytes::from(format!("v{update_index}")),
            removed,
            ttl: None,
        }
    }

    fn indexes(vs: &Versions) -> Vec<i64> {
        vs.iter().map(|v| v.update_index).collect()
    }

    fn snaps(at: &[i64]) -> BTreeMap<i64, usize> {
        at.iter().map(|&s| (s, 1)).collect()
    }

    #[test]
    fn one_version_grows_to_several_and_back() {
        let mut vs = Versions::new(v(2, false));
        assert!(vs.is_single());
        assert_eq!(vs.at(1), None);
        assert_eq!(vs.at(2).unwrap().update_index, 2);
        vs.push(v(5, false));
        vs.push(v(9, false));
        assert_eq!((vs.len(), indexes(&vs)), (3, vec![2, 5, 9]));
        assert_eq!(vs.latest().update_index, 9);
        // Each index sees the newest version at or before it.
        let seen: Vec<_> = (0..11).map(|i| vs.at(i).map(|v| v.update_index)).collect();
        let want = [None, None, Some(2), Some(2), Some(2), Some(5), Some(5)];
        assert_eq!(&seen[..7], &want);
        assert_eq!(&seen[7..], &[Some(5), Some(5), Some(9), Some(9)]);
        // A snapshot at 6 keeps 5 only; none keeps nothing; the latest always stays.
        vs.retain_visible(&snaps(&[6]));
        assert_eq!(indexes(&vs), vec![5, 9]);
        vs.retain_visible(&snaps(&[]));
        assert_eq!(indexes(&vs), vec![9]);
        assert!(vs.is_single());
        assert_eq!(
            vs.older.capacity(),
            0,
            "the memory of old versions is freed"
        );
        vs.push(v(10, false));
        vs.set_only(v(11, false));
        assert_eq!(indexes(&vs), vec![11]);
    }

    #[test]
    fn retain_keeps_what_each_snapshot_sees() {
        let mut vs = Versions::new(v(1, false));
        for i in [3, 3, 4, 7, 8] {
            vs.push(v(i, false));
        }
        // Snapshots at 3 (sees the second 3), 5 (sees 4), 7 (sees 7), 8 (the latest).
        vs.retain_visible(&snaps(&[3, 5, 7, 8]));
        assert_eq!(indexes(&vs), vec![3, 4, 7, 8]);
        assert_eq!(vs.iter().next().unwrap().data, Bytes::from("v3"));
        // A snapshot older than every version keeps none of them.
        vs.retain_visible(&snaps(&[0]));
        assert_eq!(indexes(&vs), vec![8]);
    }

    #[test]
    fn several_snapshots_between_two_versions_keep_one() {
        let mut vs = Versions::new(v(1, false));
        for i in [3, 7, 9] {
            vs.push(v(i, false));
        }
        // 0 sees nothing; 4, 5 and 6 all see 3; 20 sees the latest.
        vs.retain_visible(&snaps(&[0, 4, 5, 6, 20]));
        assert_eq!(indexes(&vs), vec![3, 9]);
        vs.push(v(12, false));
        // 9 and 11 see 9; 12 sees the latest.
        vs.retain_visible(&snaps(&[9, 11, 12]));
        assert_eq!(indexes(&vs), vec![9, 12]);
    }

    #[test]
    fn leading_tombstones_go_but_a_tombstone_latest_stays() {
        let mut vs = Versions::new(v(1, false));
        vs.push(v(2, true));
        vs.push(v(3, false));
        vs.push(v(4, true));
        // Seen: 2 (tombstone, by 2) and 3 (by 3); the leading tombstone is dropped.
        vs.retain_visible(&snaps(&[2, 3]));
        assert_eq!(indexes(&vs), vec![3, 4]);
        assert!(vs.latest().removed);
        vs.retain_visible(&snaps(&[]));
        assert_eq!(indexes(&vs), vec![4]);
        assert!(vs.latest().removed && vs.is_single());
    }
}
