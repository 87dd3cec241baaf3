//! What a batch write did: [`BatchResult`], the answer to DTKV_BATCH_PUT and
//! DTKV_BATCH_REMOVE.
//!
//! The server accepts or refuses a batch as a whole (a refused batch is a
//! [`KvError`](super::KvError)), then judges each key on its own, as the single-key
//! command would (`dtkv-server.md` §1.3, §6): in one accepted batch some keys may be
//! written and others not (a put under a missing directory gets PARENT_DIR_NOT_EXISTS,
//! a put on a directory DIR_EXISTS, and so on). The reference client hands these per-key
//! results to its caller; so does [`BatchResult`].
//!
//! ```
//! use dt_client::kv::{BatchResult, KvCode, KvCommands};
//!
//! let r = BatchResult::new(
//!     KvCommands::DTKV_BATCH_PUT,
//!     42,
//!     vec![KvCode::Success, KvCode::ParentDirNotExists, KvCode::SuccessOverwrite],
//! );
//! assert!(!r.all_succeeded());
//! assert!(r.succeeded(0) && r.succeeded(2));
//! assert_eq!(r.failures().collect::<Vec<_>>(), vec![(1, KvCode::ParentDirNotExists)]);
//! ```

use super::codes::{KvCode, KvCommands};
use super::ops::is_success;

/// The answer to a batch write: the raft index of the one log entry that carried the
/// batch and each key's code, in the order the keys were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    /// The raft index of the log entry that carried the batch.
    pub raft_index: i64,
    /// One code per key, in the order of the request's keys.
    pub codes: Vec<KvCode>,
    /// The single-key command whose success rules judge each code (PUT or REMOVE).
    single: i32,
}

impl BatchResult {
    /// The result of batch command `command` (DTKV_BATCH_PUT or DTKV_BATCH_REMOVE)
    /// committed at `raft_index` with per-key `codes`.
    pub fn new(command: i32, raft_index: i64, codes: Vec<KvCode>) -> BatchResult {
        let single = match command {
            KvCommands::DTKV_BATCH_REMOVE => KvCommands::DTKV_REMOVE,
            _ => KvCommands::DTKV_PUT,
        };
        BatchResult {
            raft_index,
            codes,
            single,
        }
    }

    /// Whether key `i` (its position in the request) was done: SUCCESS or
    /// SUCCESS_OVERWRITE for a put; SUCCESS or NOT_FOUND (nothing to remove) for a
    /// remove, the single-key commands' rules. False for a position past the end.
    pub fn succeeded(&self, i: usize) -> bool {
        self.codes
            .get(i)
            .is_some_and(|c| is_success(self.single, *c))
    }

    /// Whether every key was done.
    pub fn all_succeeded(&self) -> bool {
        self.codes.iter().all(|c| is_success(self.single, *c))
    }

    /// The keys that were not done: their positions in the request and their codes.
    pub fn failures(&self) -> impl Iterator<Item = (usize, KvCode)> + '_ {
        self.codes
            .iter()
            .enumerate()
            .filter(|(_, c)| !is_success(self.single, **c))
            .map(|(i, c)| (i, *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remove_of_an_absent_key_counts_as_done_as_a_single_remove_does() {
        let r = BatchResult::new(
            KvCommands::DTKV_BATCH_REMOVE,
            7,
            vec![KvCode::Success, KvCode::NotFound, KvCode::HasChildren],
        );
        assert!(r.succeeded(0) && r.succeeded(1) && !r.succeeded(2));
        assert!(!r.succeeded(3), "past the end");
        assert_eq!(
            r.failures().collect::<Vec<_>>(),
            vec![(2, KvCode::HasChildren)]
        );
        assert!(!r.all_succeeded());
    }

    #[test]
    fn a_put_of_an_existing_key_counts_as_done_and_not_found_does_not() {
        let r = BatchResult::new(
            KvCommands::DTKV_BATCH_PUT,
            9,
            vec![KvCode::SuccessOverwrite, KvCode::Success],
        );
        assert!(r.all_succeeded());
        assert_eq!(r.failures().count(), 0);
        let r = BatchResult::new(KvCommands::DTKV_BATCH_PUT, 9, vec![KvCode::NotFound]);
        assert!(!r.all_succeeded());
    }
}
