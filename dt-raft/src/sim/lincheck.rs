//! Linearizability checker for key-value histories.
//!
//! Wing & Gong's search with Lowe's memoisation, in the form Porcupine uses: the calls
//! and returns of one key's operations are a doubly linked list in real-time order; the
//! search linearizes the first call that the model accepts and whose (set of linearized
//! operations, model state) pair was not seen before, and backtracks when it reaches a
//! return whose operation is not linearized yet. Operations on different keys are
//! independent, so each key's sub-history is checked on its own.
//!
//! The model is one register per key, initially absent ([`Action`] says what each
//! operation does). An operation with an unknown outcome has no return: it can be
//! linearized anywhere after its invoke or not at all (when the search reaches the
//! returns of unknown operations, every completed one is linearized, and the unknown
//! ones left are dropped).
//!
//! Work is bounded by [`CheckConfig::max_steps_per_key`]: a key whose search needs more
//! steps is reported as [`Verdict::Unknown`] rather than running forever (the problem
//! is NP-complete; histories with many concurrent unknown-outcome writes on one key are
//! the expensive ones).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use super::history::{operations, Action, Event, HistoryError, Key, Operation, Value};

/// Limits of a check.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// Search steps (list entries visited) allowed per key before giving up with
    /// [`Verdict::Unknown`].
    pub max_steps_per_key: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            max_steps_per_key: 10_000_000,
        }
    }
}

/// Why a key's sub-history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Key,
    /// The longest linearizable prefix the search found, in linearization order.
    pub prefix: Vec<Operation>,
    /// The key's value after that prefix.
    pub state: Option<Value>,
    /// The completed operation that had to be linearized next (the earliest completion
    /// among the operations not in the prefix) but could not be.
    pub stuck: Operation,
    /// The operations that could have gone next (invoked before `stuck` completed, not
    /// in the prefix), none of which leads to a linearization.
    pub window: Vec<Operation>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        writeln!(f, "key {} is not linearizable", self.key)?;
        writeln!(
            f,
            "longest linearizable prefix: {} operations{}",
            self.prefix.len(),
            if self.prefix.len() > SHOWN {
                format!(", the last {SHOWN}:")
            } else {
                ":".to_string()
            }
        )?;
        for op in &self.prefix[self.prefix.len().saturating_sub(SHOWN)..] {
            writeln!(f, "  {op}")?;
        }
        let v = self
            .state
            .map_or_else(|| "absent".to_string(), |v| v.to_string());
        writeln!(f, "value after the prefix: {v}")?;
        writeln!(
            f,
            "{} must take effect before it completes, but no order of these fits:",
            self.stuck
        )?;
        for op in &self.window {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// A key's sub-history is not (the first such key, in key order).
    Violation(Box<Violation>),
    /// No violation found, but these keys ran out of their step budget.
    Unknown {
        /// The keys whose search was cut short.
        keys: Vec<Key>,
    },
}

/// The verdict and the work it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations checked (after dropping those that cannot matter).
    pub operations: usize,
    /// Keys checked.
    pub keys: usize,
    /// Search steps, summed over keys.
    pub steps: u64,
}

/// Checks a history of events; fails only if the events do not pair up.
pub fn check_events(events: &[Event], cfg: &CheckConfig) -> Result<Report, HistoryError> {
    Ok(check_operations(&operations(events)?, cfg))
}

/// Checks paired operations (from [`operations`]): partitions them by key and searches
/// each key; stops at the first violating key.
pub fn check_operations(ops: &[Operation], cfg: &CheckConfig) -> Report {
    let mut by_key: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key).or_default().push(*op);
    }
    let mut report = Report {
        verdict: Verdict::Linearizable,
        operations: ops.len(),
        keys: by_key.len(),
        steps: 0,
    };
    let mut unknown = Vec::new();
    for (key, ops) in by_key {
        let (outcome, steps) = check_key(key, &ops, cfg.max_steps_per_key);
        report.steps += steps;
        match outcome {
            KeyOutcome::Ok => {}
            KeyOutcome::Unknown => unknown.push(key),
            KeyOutcome::Violation(v) => {
                report.verdict = Verdict::Violation(v);
                return report;
            }
        }
    }
    if !unknown.is_empty() {
        report.verdict = Verdict::Unknown { keys: unknown };
    }
    report
}

/// The register model: the next state, or `None` if `action` cannot happen in `state`.
fn step(state: Option<Value>, action: &Action) -> Option<Option<Value>> {
    match *action {
        Action::Put(v) => Some(Some(v)),
        Action::Get(v) => (v == state).then_some(state),
        Action::Cas {
            expected,
            new,
            result,
        } => match (state == expected, result) {
            (true, Some(true) | None) => Some(new),
            (false, Some(false)) => Some(state),
            _ => None,
        },
        Action::Remove { result } => match (state.is_some(), result) {
            (true, Some(true) | None) => Some(None),
            (false, Some(false)) => Some(None),
            _ => None,
        },
    }
}

/// As [`step`], but an unknown-outcome operation that would change nothing is refused:
/// leaving it unlinearized (free to take effect later) covers every case linearizing it
/// here would.
fn step_op(state: Option<Value>, op: &Operation) -> Option<Option<Value>> {
    let next = step(state, &op.action)?;
    (op.complete_index.is_some() || next != state).then_some(next)
}

/// FxHash-style hasher for the memo (keys are bitsets, not attacker-controlled).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Lowe's memo: (linearized set, state) pairs already explored.
type Memo = HashSet<(Box<[u64]>, Option<Value>), BuildHasherDefault<FxHasher>>;

enum KeyOutcome {
    Ok,
    Unknown,
    Violation(Box<Violation>),
}

const NONE: usize = usize::MAX;

/// One key's search. Entry 0 is the list head; entries `1..` are calls and returns.
fn check_key(key: Key, ops: &[Operation], budget: u64) -> (KeyOutcome, u64) {
    let n = ops.len();
    // (position, is_return, op): returns of unknown operations sort last.
    let mut order: Vec<(usize, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke_index, false, i));
        order.push((op.complete_index.unwrap_or(usize::MAX), true, i));
    }
    order.sort_unstable();
    let len = order.len() + 1;
    let mut op_of = vec![NONE; len];
    let mut is_return = vec![false; len];
    let mut ret_of_op = vec![NONE; n];
    for (e, &(_, r, i)) in order.iter().enumerate() {
        let e = e + 1;
        op_of[e] = i;
        is_return[e] = r;
        if r {
            ret_of_op[i] = e;
        }
    }
    let mut next: Vec<usize> = (1..=len).map(|x| if x == len { NONE } else { x }).collect();
    let mut prev: Vec<usize> = (0..len).map(|x| x.wrapping_sub(1)).collect();
    prev[0] = NONE;

    let unlink = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = nx;
        if nx != NONE {
            prev[nx] = p;
        }
    };
    let relink = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = e;
        if nx != NONE {
            prev[nx] = e;
        }
    };

    // Unknown-outcome operations with the same action are interchangeable, the earlier
    // invoked one's interval ([invoke, forever)) containing the later one's: linearize
    // them in invoke order only (`twin[i]`: the previous such operation, which must be
    // linearized before `i` is tried).
    let mut twin = vec![NONE; n];
    let mut last_of: HashMap<Action, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.complete_index.is_none() {
            if let Some(prev) = last_of.insert(op.action, i) {
                twin[i] = prev;
            }
        }
    }
    let is_set = |bits: &[u64], i: usize| bits[i / 64] & (1 << (i % 64)) != 0;

    let words = n.div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut cache: Memo = HashSet::default();
    let mut state: Option<Value> = None;
    // (call entry, state before it)
    let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    let mut entry = next[0];
    while next[0] != NONE {
        steps += 1;
        if steps > budget {
            return (KeyOutcome::Unknown, steps);
        }
        let i = op_of[entry];
        if !is_return[entry] {
            let twin_ok = twin[i] == NONE || is_set(&bits, twin[i]);
            if let Some(new_state) = step_op(state, &ops[i]).filter(|_| twin_ok) {
                bits[i / 64] |= 1 << (i % 64);
                if cache.insert((bits.clone().into_boxed_slice(), new_state)) {
                    stack.push((entry, state));
                    state = new_state;
                    // Lift the call and its return out of the list.
                    unlink(entry, &mut next, &mut prev);
                    unlink(ret_of_op[i], &mut next, &mut prev);
                    if stack.len() > best.len() {
                        best.clear();
                        best.extend(stack.iter().map(|&(e, _)| op_of[e]));
                    }
                    entry = next[0];
                    continue;
                }
                bits[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
        } else {
            if ops[i].complete_index.is_none() {
                // Only unknown-outcome operations are left: drop them.
                return (KeyOutcome::Ok, steps);
            }
            let Some((call, old)) = stack.pop() else {
                return (KeyOutcome::Violation(explain(key, ops, &best)), steps);
            };
            let j = op_of[call];
            bits[j / 64] &= !(1 << (j % 64));
            state = old;
            relink(ret_of_op[j], &mut next, &mut prev);
            relink(call, &mut next, &mut prev);
            entry = next[call];
        }
    }
    (KeyOutcome::Ok, steps)
}

/// Builds the explanation from the longest prefix found.
fn explain(key: Key, ops: &[Operation], best: &[usize]) -> Box<Violation> {
    let mut state = None;
    let mut done = vec![false; ops.len()];
    for &i in best {
        // The prefix was accepted by the model during the search.
        state = step(state, &ops[i].action).unwrap_or(state);
        done[i] = true;
    }
    let stuck = (0..ops.len())
        .filter(|&i| !done[i] && ops[i].complete_index.is_some())
        .min_by_key(|&i| ops[i].complete_index);
    // A violation always has an unlinearized completed operation.
    let stuck = stuck.unwrap_or(0);
    let deadline = ops[stuck].complete_index.unwrap_or(usize::MAX);
    let window = (0..ops.len())
        .filter(|&i| !done[i] && ops[i].invoke_index < deadline)
        .map(|i| ops[i])
        .collect();
    Box::new(Violation {
        key,
        prefix: best.iter().map(|&i| ops[i]).collect(),
        state,
        stuck: ops[stuck],
        window,
    })
}
