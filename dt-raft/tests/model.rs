//! Model-based property test: random sequences of append, truncate, commit, sync,
//! reopen, reads and match searches on a `LogStore`, checked against a plain vector.

mod common;

use std::collections::BTreeMap;

use dt_raft::store::match_pos::is_valid;
use dt_raft::store::{LogItem, LogStore, StoreConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append { n: u8, new_term: bool },
    Truncate { back: u8 },
    Commit { back: u8 },
    Sync,
    Reopen,
    Read { back: u16, max: u8 },
    Match { term_delta: i8, back: i16 },
    Delete { back: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40, any::<bool>()).prop_map(|(n, new_term)| Op::Append { n, new_term }),
        1 => (0u8..30).prop_map(|back| Op::Truncate { back }),
        1 => (0u8..30).prop_map(|back| Op::Commit { back }),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        2 => (0u16..300, 1u8..50).prop_map(|(back, max)| Op::Read { back, max }),
        2 => (-2i8..3, -5i16..40).prop_map(|(term_delta, back)| Op::Match { term_delta, back }),
        1 => (0u8..100).prop_map(|back| Op::Delete { back }),
    ]
}

fn cfg() -> StoreConfig {
    StoreConfig {
        sync: false,
        ..StoreConfig::small_for_tests()
    }
}

fn run(ops: Vec<Op>) {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    let mut model: Vec<LogItem> = Vec::new(); // entries 1..
    let mut ghosts: BTreeMap<u64, LogItem> = BTreeMap::new();
    let mut term = 1u32;
    let mut commit = 0u64;
    let mut first = 1u64;
    let mut max_bound = 0u64; // marks accumulate until deletion is possible
    for op in ops {
        let last = model.len() as u64;
        match op {
            Op::Append { n, new_term } => {
                let prev = model.last().map_or(0, |i| i.term);
                if new_term {
                    term += 1;
                }
                let items = common::entries(last + 1, last + n as u64, term, prev);
                log.append(&items).unwrap();
                model.extend(items);
                ghosts.clear();
            }
            Op::Truncate { back } => {
                let at = last.saturating_sub(back as u64).max(commit + 1);
                if at <= last {
                    log.truncate_tail(at).unwrap();
                    // earlier ghosts (higher indexes) are still on disk behind these
                    ghosts.extend(
                        model
                            .split_off(at as usize - 1)
                            .into_iter()
                            .map(|i| (i.index, i)),
                    );
                    // the leader's entries that replace them come with a newer term
                    term += 1;
                }
            }
            Op::Commit { back } => {
                let c = last.saturating_sub(back as u64).max(commit);
                commit = c;
                log.set_commit_index(c);
                log.maybe_flush_index(true).unwrap();
            }
            Op::Sync => log.sync().unwrap(),
            Op::Delete { back } => {
                let bound = last.saturating_sub(back as u64);
                log.mark_truncate_by_index(bound, std::time::Duration::ZERO);
                log.delete_expired(std::time::Instant::now()).unwrap();
                max_bound = max_bound.max(bound);
                let before = first;
                first = log.first_index();
                assert!(first >= before);
                assert!(
                    first <= max_bound.max(before),
                    "first {first} > bound {max_bound}"
                );
                assert!(first <= commit.max(1));
                if last >= first {
                    let v = log.read(first, 1, usize::MAX).unwrap();
                    assert_eq!(v[0], model[first as usize - 1]);
                }
                if first > 1 {
                    assert!(log.read(first - 1, 1, usize::MAX).is_err());
                }
            }
            Op::Reopen => {
                log.close().unwrap();
                drop(log);
                log = LogStore::open(d.path(), cfg()).unwrap();
                let l = log.last_index();
                assert!(l >= last, "reopen lost entries: {l} < {last}");
                // entries truncated away but not overwritten may come back; they are
                // exactly the old bytes and continue the log
                for i in last + 1..=l {
                    let g = ghosts
                        .remove(&i)
                        .unwrap_or_else(|| panic!("entry {i} appeared from nowhere"));
                    model.push(g);
                }
                ghosts.clear();
                if let Some(t) = model.last().map(|i| i.term) {
                    term = term.max(t);
                }
                assert_eq!(log.last_term(), model.last().map_or(0, |i| i.term));
                assert_eq!(
                    log.first_index(),
                    first.min(log.last_index() + 1).max(first)
                );
            }
            Op::Read { back, max } => {
                if last > 0 {
                    let i = last.saturating_sub(back as u64).max(first);
                    let v = log.read(i, max as usize, 2000).unwrap();
                    assert!(!v.is_empty() && v.len() <= max as usize);
                    for it in &v {
                        assert_eq!(*it, model[it.index as usize - 1]);
                    }
                    assert_eq!(v[0].index, i);
                }
            }
            Op::Match { term_delta, back } => {
                let s_index = (last as i64 - back as i64).max(0) as u64;
                let base = if s_index >= 1 && s_index <= last {
                    model[s_index as usize - 1].term
                } else {
                    term
                };
                let s_term = (base as i64 + term_delta as i64).max(0) as u32;
                let expect = model
                    .iter()
                    .skip(first as usize - 1)
                    .take_while(|i| {
                        i.index <= s_index && is_valid(i.term, i.index, s_term, s_index)
                    })
                    .last()
                    .map(|i| (i.term, i.index));
                assert_eq!(log.find_match_pos(s_term, s_index).unwrap(), expect);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn log_store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
