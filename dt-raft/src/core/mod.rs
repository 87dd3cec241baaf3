//! The sans-IO consensus core of one Raft group (raft.md §4–§9).
//!
//! No threads, sockets, files, clocks or randomness sources live here: time is
//! passed in, randomness comes from a seeded generator the caller chooses.

pub mod quorum;

/// A node id (positive; 0 means "none").
pub type NodeId = u32;
