//! Snapshot files (todo).
