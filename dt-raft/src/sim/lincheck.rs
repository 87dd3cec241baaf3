//! Linearizability checker for key-value histories.
//!
//! Wing & Gong's search with Lowe's memoisation, in the form Porcupine uses: the calls
//! and returns of one key's completed operations are a doubly linked list in real-time
//! order; the search linearizes a call that the model accepts and whose search node was
//! not covered before, and backtracks when nothing is left to try before the first
//! return whose operation is not linearized yet. Operations on different keys are
//! independent, so each key's sub-history is checked on its own.
//!
//! The model is one register per key, initially absent ([`Action`] says what each
//! operation does). An operation with an unknown outcome has no return: it can be
//! linearized anywhere after its invoke or not at all. Such operations are grouped by
//! action and taken in invoke order; they are tried only after the completed calls, and
//! a node that used no fewer of each group than an explored node with the same
//! completed operations and state is skipped (the explored one covered it). The search
//! succeeds once every completed operation is linearized.
//!
//! Work is bounded by [`CheckConfig::max_steps_per_key`]: a key whose search needs more
//! steps is reported as [`Verdict::Unknown`] rather than running forever (the problem
//! is NP-complete; histories with many concurrent unknown-outcome writes on one key are
//! the expensive ones).

use std::collections::{BTreeMap, HashMap};
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
    /// 100 million steps per key: the DtKV simulation's seed 277 (3 nodes) has a key
    /// that needs more than 10 million, decided in 1.5 s (release) within this.
    fn default() -> Self {
        Self {
            max_steps_per_key: 100_000_000,
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

/// Lowe's memo, widened to dominance over unknown-outcome operations.
///
/// A search node is (completed operations linearized, state, how many operations of
/// each unknown-outcome class are linearized). The memo maps the first two to the
/// class counts of the nodes explored with them. A node is skipped when an explored
/// node has the same completed set and state and used no more of any class: every
/// continuation of the new node is one of the old node's too (it has at least the
/// same unknown-outcome operations left, each invoked no later), so the old node's
/// search covered it. With no unknown-outcome operations this is Lowe's memo.
struct Memo {
    seen: HashMap<NodeKey, Vec<Box<[u32]>>, BuildHasherDefault<FxHasher>>,
}

/// The completed operations linearized (a bitset) and the state.
type NodeKey = (Box<[u64]>, Option<Value>);

impl Memo {
    /// Records the node; false if an explored node covers it.
    fn admit(&mut self, bits: &[u64], state: Option<Value>, counts: &[u32]) -> bool {
        let le = |a: &[u32], b: &[u32]| a.iter().zip(b).all(|(x, y)| x <= y);
        let explored = self.seen.entry((bits.into(), state)).or_default();
        if explored.iter().any(|old| le(old, counts)) {
            return false;
        }
        // Nodes the new one covers need not be remembered.
        explored.retain(|old| !le(counts, old));
        explored.push(counts.into());
        true
    }
}

enum KeyOutcome {
    Ok,
    Unknown,
    Violation(Box<Violation>),
}

const NONE: usize = usize::MAX;

/// The next choice a search node tries.
#[derive(Clone, Copy)]
enum Cursor {
    /// A call in the list of completed operations (or the first return: the end of
    /// the calls that may go next).
    Call(usize),
    /// The next unknown-outcome operation of this class.
    Class(usize),
}

/// A linearized operation on the search stack.
struct Frame {
    /// The choice that linearized it (the parent node resumes after it).
    choice: Cursor,
    /// The operation.
    op: usize,
    /// The state before it.
    state: Option<Value>,
    /// The parent node's frontier (see [`check_key`]).
    frontier: usize,
}

/// One key's search.
///
/// Completed operations are a doubly linked list of calls and returns in real-time
/// order (entry 0 is the head). A node may linearize any call before the first return
/// in the list (the frontier: that operation must take effect before it completes) and
/// the earliest-invoked unused operation of any class of unknown-outcome operations
/// with the same action, if invoked before the frontier and if it changes the state.
/// Operations of a class are interchangeable, an earlier invoked one able to stand in
/// for a later one, so taking them in invoke order loses nothing; completed calls are
/// tried first, unknown-outcome operations only when needed. The history is
/// linearizable when every completed operation is linearized; the unknown-outcome
/// operations left are dropped.
fn check_key(key: Key, ops: &[Operation], budget: u64) -> (KeyOutcome, u64) {
    let n = ops.len();
    // (position, is_return, op) of completed operations.
    let mut order: Vec<(usize, bool, usize)> = Vec::with_capacity(2 * n);
    // Unknown-outcome operations by action, in invoke order.
    let mut classes: Vec<Vec<usize>> = Vec::new();
    let mut class_of: HashMap<Action, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op.complete_index {
            Some(c) => {
                order.push((op.invoke_index, false, i));
                order.push((c, true, i));
            }
            None => {
                let c = *class_of.entry(op.action).or_insert_with(|| {
                    classes.push(Vec::new());
                    classes.len() - 1
                });
                classes[c].push(i);
            }
        }
    }
    order.sort_unstable();
    for class in &mut classes {
        class.sort_unstable_by_key(|&i| ops[i].invoke_index);
    }
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

    let mut bits = vec![0u64; n.div_ceil(64)];
    let mut counts = vec![0u32; classes.len()];
    let mut memo = Memo {
        seen: HashMap::default(),
    };
    memo.admit(&bits, None, &counts);
    let mut state: Option<Value> = None;
    let mut stack: Vec<Frame> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    // The completion index of the first return in the list, once the cursor passed
    // the calls.
    let mut frontier = NONE;
    let mut cursor = Cursor::Call(next[0]);
    loop {
        steps += 1;
        if steps > budget {
            return (KeyOutcome::Unknown, steps);
        }
        // The operation this choice linearizes, and the state after it.
        let mut chosen = None;
        match cursor {
            Cursor::Call(NONE) => return (KeyOutcome::Ok, steps),
            Cursor::Call(e) if is_return[e] => {
                frontier = ops[op_of[e]].complete_index.unwrap_or(NONE);
                cursor = Cursor::Class(0);
                continue;
            }
            Cursor::Call(e) => {
                let i = op_of[e];
                if let Some(new_state) = step(state, &ops[i].action) {
                    bits[i / 64] |= 1 << (i % 64);
                    if memo.admit(&bits, new_state, &counts) {
                        unlink(e, &mut next, &mut prev);
                        unlink(ret_of_op[i], &mut next, &mut prev);
                        chosen = Some((i, new_state));
                    } else {
                        bits[i / 64] &= !(1 << (i % 64));
                    }
                }
                if chosen.is_none() {
                    cursor = Cursor::Call(next[e]);
                }
            }
            Cursor::Class(c) if c == classes.len() => {
                // Nothing more to try here: undo the last choice.
                let Some(frame) = stack.pop() else {
                    return (KeyOutcome::Violation(explain(key, ops, &best)), steps);
                };
                state = frame.state;
                frontier = frame.frontier;
                cursor = match frame.choice {
                    Cursor::Call(e) => {
                        let i = frame.op;
                        bits[i / 64] &= !(1 << (i % 64));
                        relink(ret_of_op[i], &mut next, &mut prev);
                        relink(e, &mut next, &mut prev);
                        Cursor::Call(next[e])
                    }
                    Cursor::Class(c) => {
                        counts[c] -= 1;
                        Cursor::Class(c + 1)
                    }
                };
            }
            Cursor::Class(c) => {
                let i = classes[c].get(counts[c] as usize).copied().unwrap_or(NONE);
                if i != NONE && ops[i].invoke_index < frontier {
                    if let Some(new_state) = step_op(state, &ops[i]) {
                        counts[c] += 1;
                        if memo.admit(&bits, new_state, &counts) {
                            chosen = Some((i, new_state));
                        } else {
                            counts[c] -= 1;
                        }
                    }
                }
                if chosen.is_none() {
                    cursor = Cursor::Class(c + 1);
                }
            }
        }
        if let Some((op, new_state)) = chosen {
            stack.push(Frame {
                choice: cursor,
                op,
                state,
                frontier,
            });
            state = new_state;
            if stack.len() > best.len() {
                best.clear();
                best.extend(stack.iter().map(|f| f.op));
            }
            cursor = Cursor::Call(next[0]);
        }
    }
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
