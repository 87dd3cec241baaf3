//! Which snapshot data files this process is reading, so that deleting a snapshot
//! frees its blocks in steps only when no reader would see the file shrink.
//!
//! A reader marks its file's path *before* opening it, and the mark lasts as long as
//! the reader. Deletion unlinks the path first and checks for marks afterwards: a
//! reader that marked before the check keeps the file whole (its blocks go when it
//! closes), and one that marks after it can no longer open the unlinked path. Snapshot
//! readers are few (a restore, an install being sent), so one process-wide map behind a
//! mutex serves them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

fn readers() -> MutexGuard<'static, HashMap<PathBuf, usize>> {
    static READERS: OnceLock<Mutex<HashMap<PathBuf, usize>>> = OnceLock::new();
    READERS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A reader's mark on a path; dropping it removes the mark.
#[derive(Debug)]
pub(crate) struct ReaderMark {
    path: PathBuf,
}

impl ReaderMark {
    /// Marks `path` as read until the mark is dropped.
    pub(crate) fn new(path: &Path) -> ReaderMark {
        *readers().entry(path.to_path_buf()).or_insert(0) += 1;
        ReaderMark {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for ReaderMark {
    fn drop(&mut self) {
        let mut r = readers();
        if let Some(n) = r.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.path);
            }
        }
    }
}

/// Whether a reader of this process holds a mark on `path`.
pub(crate) fn is_read(path: &Path) -> bool {
    readers().contains_key(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_count_per_path_and_go_with_the_last_reader() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.data");
        let b = d.path().join("b.data");
        let m1 = ReaderMark::new(&a);
        let m2 = ReaderMark::new(&a);
        assert!(is_read(&a));
        assert!(!is_read(&b));
        drop(m1);
        assert!(is_read(&a), "a second reader still holds it");
        drop(m2);
        assert!(!is_read(&a));
    }
}
