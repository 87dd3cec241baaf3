//! Published snapshots: state a group republishes for other threads to read.

use std::sync::{Arc, RwLock};

/// A snapshot that the owning fiber group republishes after each relevant change
/// (role, lease end, leader, readiness...) and that any thread can read without
/// touching the group's state. Readers get an `Arc` of the latest snapshot; the internal
/// lock is held only to swap or clone that `Arc`.
#[derive(Debug)]
pub struct Published<T> {
    inner: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Published<T> {
    fn clone(&self) -> Self {
        Published {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Published<T> {
    /// A published value starting at `initial`.
    pub fn new(initial: T) -> Self {
        Published {
            inner: Arc::new(RwLock::new(Arc::new(initial))),
        }
    }

    /// Replaces the snapshot.
    pub fn publish(&self, value: T) {
        let v = Arc::new(value);
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *g = v;
    }

    /// The latest snapshot.
    pub fn load(&self) -> Arc<T> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_latest() {
        let p = Published::new(1u32);
        let r = p.clone();
        assert_eq!(*r.load(), 1);
        let old = r.load();
        p.publish(2);
        assert_eq!(*r.load(), 2);
        assert_eq!(*old, 1);
        let t = std::thread::spawn(move || *r.load());
        assert_eq!(t.join().ok(), Some(2));
    }
}
