//! Match-position search (`docs/dt-raft.md`, "Match-position search").
//!
//! Given a suggestion `(sT, sI)`, an entry `(t, i)` is *valid* iff
//! `(t ≤ sT and i < sI) or (t = sT and i = sI)`. Terms never decrease along the log, so
//! the valid entries form a prefix of it; the search returns the last valid entry
//! among indexes `first..=min(sI, last)` by binary search, reading O(log n) terms.

use super::error::StoreResult;

/// Whether entry `(term, index)` is valid for the suggestion `(s_term, s_index)`.
pub fn is_valid(term: u32, index: u64, s_term: u32, s_index: u64) -> bool {
    (term <= s_term && index < s_index) || (term == s_term && index == s_index)
}

/// Finds the last valid entry in `first..=min(s_index, last)`; `term_at(i)` returns the
/// term of local entry `i`. `None` when no entry in range is valid (or the range is
/// empty).
pub fn find_match_pos(
    s_term: u32,
    s_index: u64,
    first: u64,
    last: u64,
    mut term_at: impl FnMut(u64) -> StoreResult<u32>,
) -> StoreResult<Option<(u32, u64)>> {
    let mut search = MatchSearch::new(s_term, s_index, first, last);
    loop {
        match search.next_probe() {
            Probe::Done(r) => return Ok(r),
            Probe::TermOf(i) => {
                let t = term_at(i)?;
                search.feed(t);
            }
        }
    }
}

/// What [`MatchSearch`] needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The term of this local entry (give it to [`MatchSearch::feed`]).
    TermOf(u64),
    /// The search is over: the last valid entry, if any.
    Done(Option<(u32, u64)>),
}

#[derive(Debug, Clone, Copy)]
enum Step {
    First { first: u64, hi: u64 },
    // Invariant: `lo` is valid (with term `t_lo`); everything above `hi` is invalid.
    Bisect { lo: u64, t_lo: u32, hi: u64 },
    Done(Option<(u32, u64)>),
}

/// [`find_match_pos`] one term lookup at a time, for a caller that looks terms up
/// asynchronously (the owner of a log, whose disk reads run on IO threads).
#[derive(Debug, Clone)]
pub struct MatchSearch {
    s_term: u32,
    s_index: u64,
    step: Step,
}

impl MatchSearch {
    /// A search for the suggestion `(s_term, s_index)` over local entries
    /// `first..=last`.
    pub fn new(s_term: u32, s_index: u64, first: u64, last: u64) -> Self {
        let hi = s_index.min(last);
        let step = if first == 0 || hi < first {
            Step::Done(None)
        } else {
            Step::First { first, hi }
        };
        MatchSearch {
            s_term,
            s_index,
            step,
        }
    }

    /// The next term to look up, or the result.
    pub fn next_probe(&self) -> Probe {
        match self.step {
            Step::First { first, .. } => Probe::TermOf(first),
            Step::Bisect { lo, t_lo, hi } if lo >= hi => Probe::Done(Some((t_lo, lo))),
            Step::Bisect { lo, hi, .. } => Probe::TermOf(lo + (hi - lo).div_ceil(2)),
            Step::Done(r) => Probe::Done(r),
        }
    }

    /// The term of the entry [`MatchSearch::next_probe`] asked for.
    pub fn feed(&mut self, term: u32) {
        let (s_term, s_index) = (self.s_term, self.s_index);
        self.step = match self.step {
            Step::First { first, hi } => {
                if is_valid(term, first, s_term, s_index) {
                    Step::Bisect {
                        lo: first,
                        t_lo: term,
                        hi,
                    }
                } else {
                    Step::Done(None)
                }
            }
            Step::Bisect { lo, t_lo, hi } if lo < hi => {
                let mid = lo + (hi - lo).div_ceil(2);
                if is_valid(term, mid, s_term, s_index) {
                    Step::Bisect {
                        lo: mid,
                        t_lo: term,
                        hi,
                    }
                } else {
                    Step::Bisect {
                        lo,
                        t_lo,
                        hi: mid - 1,
                    }
                }
            }
            other => other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(terms: &[u32], first: u64, s_term: u32, s_index: u64) -> Option<(u32, u64)> {
        let last = first + terms.len() as u64 - 1;
        let mut best = None;
        for i in first..=s_index.min(last) {
            let t = terms[(i - first) as usize];
            if is_valid(t, i, s_term, s_index) {
                best = Some((t, i));
            } else {
                break;
            }
        }
        best
    }

    fn run(terms: &[u32], first: u64, s_term: u32, s_index: u64) -> Option<(u32, u64)> {
        let last = first + terms.len() as u64 - 1;
        find_match_pos(s_term, s_index, first, last, |i| {
            Ok(terms[(i - first) as usize])
        })
        .unwrap()
    }

    #[test]
    fn every_case_of_the_rule() {
        // local: index 1..=9 with terms
        let terms = [1, 1, 1, 2, 2, 4, 4, 5, 5];
        // exact match of term and index
        assert_eq!(run(&terms, 1, 4, 7), Some((4, 7)));
        // same index, larger suggested term: entries before are valid (t<=sT, i<sI)
        assert_eq!(run(&terms, 1, 6, 7), Some((4, 6)));
        // same index, smaller suggested term: prefix with t<=sT
        assert_eq!(run(&terms, 1, 2, 7), Some((2, 5)));
        // suggestion beyond our last index: bounded by last
        assert_eq!(run(&terms, 1, 5, 100), Some((5, 9)));
        assert_eq!(run(&terms, 1, 3, 100), Some((2, 5)));
        // nothing valid: first entry's term greater than suggested
        assert_eq!(run(&terms, 1, 0, 5), None);
        // suggestion index before our first index
        assert_eq!(run(&terms[3..], 4, 2, 3), None);
        // t == sT but i < sI
        assert_eq!(run(&terms, 1, 1, 9), Some((1, 3)));
        // suggestion index 0
        assert_eq!(run(&terms, 1, 5, 0), None);
        // entry at sI with a different term than sT is invalid even if smaller
        assert_eq!(run(&terms, 1, 3, 4), Some((1, 3)));
    }

    #[test]
    fn agrees_with_brute_force() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let n = (rnd() % 20 + 1) as usize;
            let first = rnd() % 5 + 1;
            let mut t = (rnd() % 3) as u32;
            let terms: Vec<u32> = (0..n)
                .map(|_| {
                    t += (rnd() % 3 == 0) as u32;
                    t
                })
                .collect();
            let s_term = (rnd() % 8) as u32;
            let s_index = rnd() % 30;
            assert_eq!(
                run(&terms, first, s_term, s_index),
                brute(&terms, first, s_term, s_index),
                "{terms:?} first={first} s=({s_term},{s_index})"
            );
        }
    }
}
