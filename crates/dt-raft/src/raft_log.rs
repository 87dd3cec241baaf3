//! RaftLog (todo).
