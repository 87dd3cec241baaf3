//! The multi-raft table: group id → the group's entry, read by the IO threads on every
//! group request and changed only when a group is added or removed.
//!
//! Reads take a read lock for one hash lookup and an `Arc` clone; a writer builds the new
//! map outside the lock (copy on write) and holds the write lock only to swap it in, so
//! adding or removing a group at runtime never makes an IO thread wait for more than a
//! pointer swap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// A copy-on-write map from group id to `Arc<G>`.
pub struct GroupTable<G: ?Sized> {
    map: RwLock<Arc<HashMap<i32, Arc<G>>>>,
    writer: Mutex<()>,
}

impl<G: ?Sized> Default for GroupTable<G> {
    fn default() -> Self {
        GroupTable {
            map: RwLock::new(Arc::new(HashMap::new())),
            writer: Mutex::new(()),
        }
    }
}

impl<G: ?Sized> std::fmt::Debug for GroupTable<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupTable{:?}", self.ids())
    }
}

impl<G: ?Sized> GroupTable<G> {
    /// The group with this id.
    pub fn get(&self, group_id: i32) -> Option<Arc<G>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group_id)
            .cloned()
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
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        r
    }

    /// Inserts `g` unless the id exists (then `g` is given back).
    pub fn insert_new(&self, group_id: i32, g: Arc<G>) -> Result<(), Arc<G>> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.get(group_id).is_some() {
            return Err(g);
        }
        let mut next = (*self.snapshot()).clone();
        next.insert(group_id, g);
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
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
