//! The multi-raft table: group id → the group's entry, read by the IO threads on every
//! group request and changed only when a group is added or removed.
//!
//! The map is copy-on-write: a writer builds the new map aside and swaps it in under a
//! short write lock, then bumps a version counter. A reader keeps, per thread, the map it
//! last saw with its version: while the version has not moved (the steady state) a
//! lookup is one atomic load, a thread-local access and a hash lookup, with no lock and
//! no shared write; after a change, its first lookup takes the read lock once to pick
//! up the new map.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Source of table identities (for the per-thread caches).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// A map this thread read: (table id, version, the map).
type Seen = (u64, u64, Arc<dyn Any + Send + Sync>);

thread_local! {
    /// The maps of the tables this thread read lately.
    static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
}

/// Tables a thread remembers at most (the oldest is forgotten first).
const SEEN_MAX: usize = 8;

/// A copy-on-write map from group id to `Arc<G>`.
pub struct GroupTable<G: ?Sized> {
    map: RwLock<Arc<HashMap<i32, Arc<G>>>>,
    writer: Mutex<()>,
    id: u64,
    version: AtomicU64,
}

impl<G: ?Sized> Default for GroupTable<G> {
    fn default() -> Self {
        GroupTable {
            map: RwLock::new(Arc::new(HashMap::new())),
            writer: Mutex::new(()),
            id: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
        }
    }
}

impl<G: ?Sized + Send + Sync + 'static> std::fmt::Debug for GroupTable<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupTable{:?}", self.ids())
    }
}

impl<G: ?Sized + Send + Sync + 'static> GroupTable<G> {
    /// The group with this id (lock-free while the table does not change).
    pub fn get(&self, group_id: i32) -> Option<Arc<G>> {
        let v = self.version.load(Ordering::Acquire);
        let cached = SEEN.with(|seen| {
            let seen = seen.borrow();
            seen.iter()
                .find(|e| e.0 == self.id && e.1 == v)
                .and_then(|e| {
                    e.2.downcast_ref::<Arc<HashMap<i32, Arc<G>>>>()
                        .map(|m| m.get(&group_id).cloned())
                })
        });
        if let Some(r) = cached {
            return r;
        }
        let map = self.snapshot();
        let r = map.get(&group_id).cloned();
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            seen.retain(|e| e.0 != self.id);
            if seen.len() >= SEEN_MAX {
                seen.remove(0);
            }
            seen.push((self.id, v, Arc::new(map)));
        });
        r
    }

    /// A snapshot of the whole table (no lock held afterwards).
    pub fn snapshot(&self) -> Arc<HashMap<i32, Arc<G>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The group ids, ascending.
    pub fn ids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.snapshot().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn update<R>(&self, f: impl FnOnce(&mut HashMap<i32, Arc<G>>) -> R) -> R {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (*self.snapshot()).clone();
        let r = f(&mut next);
        self.publish(next);
        r
    }

    /// Swaps in a new map, then moves the version (readers refresh on their next get).
    fn publish(&self, next: HashMap<i32, Arc<G>>) {
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Inserts `g` unless the id exists (then `g` is given back).
    pub fn insert_new(&self, group_id: i32, g: Arc<G>) -> Result<(), Arc<G>> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.get(group_id).is_some() {
            return Err(g);
        }
        let mut next = (*self.snapshot()).clone();
        next.insert(group_id, g);
        self.publish(next);
        Ok(())
    }

    /// Removes the group if the table still maps its id to this very entry (a group
    /// removed and re-added meanwhile stays). Returns whether it was removed.
    pub fn remove_if_same(&self, group_id: i32, g: &Arc<G>) -> bool {
        self.update(|m| match m.get(&group_id) {
            Some(cur) if Arc::ptr_eq(cur, g) => {
                m.remove(&group_id);
                true
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove() {
        let t: GroupTable<String> = GroupTable::default();
        let a = Arc::new("a".to_string());
        assert!(t.insert_new(1, a.clone()).is_ok());
        assert!(t.insert_new(1, Arc::new("b".into())).is_err());
        assert_eq!(*t.get(1).unwrap(), "a");
        assert!(t.get(2).is_none());
        let snap = t.snapshot();
        let other = Arc::new("a".to_string());
        assert!(!t.remove_if_same(1, &other));
        assert!(t.remove_if_same(1, &a));
        assert!(t.get(1).is_none());
        // An earlier snapshot is unaffected.
        assert_eq!(snap.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn a_reader_sees_every_change_of_each_table() {
        let a: GroupTable<String> = GroupTable::default();
        let b: GroupTable<String> = GroupTable::default();
        a.insert_new(1, Arc::new("a1".into())).unwrap();
        b.insert_new(1, Arc::new("b1".into())).unwrap();
        // Cached per table: no mix-up between tables with the same ids.
        for _ in 0..3 {
            assert_eq!(*a.get(1).unwrap(), "a1");
            assert_eq!(*b.get(1).unwrap(), "b1");
        }
        let g = a.get(1).unwrap();
        assert!(a.remove_if_same(1, &g));
        assert!(a.get(1).is_none(), "a removal is seen at once");
        a.insert_new(1, Arc::new("a2".into())).unwrap();
        assert_eq!(*a.get(1).unwrap(), "a2");
        // Another thread sees the latest too.
        let a = Arc::new(a);
        let a2 = a.clone();
        let t = std::thread::spawn(move || a2.get(1).map(|s| (*s).clone()));
        assert_eq!(t.join().unwrap().as_deref(), Some("a2"));
        // Many tables on one thread: older cache entries are dropped, never wrong.
        let many: Vec<GroupTable<String>> = (0..20).map(|_| GroupTable::default()).collect();
        for (i, t) in many.iter().enumerate() {
            t.insert_new(7, Arc::new(i.to_string())).unwrap();
        }
        for _ in 0..2 {
            for (i, t) in many.iter().enumerate() {
                assert_eq!(*t.get(7).unwrap(), i.to_string());
            }
        }
    }

    #[test]
    fn readers_see_a_consistent_map_while_writers_run() {
        let t: Arc<GroupTable<i32>> = Arc::default();
        let w = {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    t.insert_new(i, Arc::new(i)).unwrap();
                }
            })
        };
        let mut seen = 0;
        while seen < 500 {
            let s = t.snapshot();
            for (k, v) in s.iter() {
                assert_eq!(k, &**v);
            }
            seen = s.len();
        }
        w.join().unwrap();
        assert_eq!(t.ids().len(), 500);
    }
}
