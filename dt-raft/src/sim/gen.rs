//! Random histories that are linearizable by construction, for testing the checker and
//! measuring it.
//!
//! Processes run a sequential key-value model with random real-time overlaps: each
//! step picks a process and either invokes an operation, makes its pending operation
//! take effect on the model (the linearization point), or completes it (`ok` with the
//! result it got, `fail` if it never took effect, `info` either way). An operation
//! completed with `info` before it took effect may still take effect later, or never.
//! Deterministic for a seed (a std-only xorshift generator).

use super::history::{Event, EventType, History, Key, OpFn, Value};

/// Shape of a generated history.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Operations to invoke.
    pub operations: usize,
    /// Concurrent client processes.
    pub processes: u64,
    /// Keys `0..keys`.
    pub keys: i64,
    /// Values written are `0..values`.
    pub values: i64,
    /// Out of 100 completions, how many are `info` (unknown outcome).
    pub info_percent: u32,
    /// Out of 100 completions of operations that did not take effect, how many are
    /// `fail` (the others wait until they take effect).
    pub fail_percent: u32,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            operations: 200,
            processes: 5,
            keys: 3,
            values: 5,
            info_percent: 5,
            fail_percent: 10,
        }
    }
}

/// A small deterministic PRNG (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; any seed works.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[derive(Clone, Copy)]
struct Pending {
    f: OpFn,
    key: Key,
    value: Option<Value>,
    expected: Option<Value>,
    /// Set once it took effect: the result (read value, or the bool as 0/1).
    applied: Option<(Option<Value>, bool)>,
}

fn apply(model: &mut [Option<Value>], p: &Pending) -> (Option<Value>, bool) {
    let cur = &mut model[p.key as usize];
    match p.f {
        OpFn::Put => {
            *cur = p.value;
            (None, true)
        }
        OpFn::Get => (*cur, true),
        OpFn::Cas => {
            if *cur == p.expected {
                *cur = p.value;
                (None, true)
            } else {
                (None, false)
            }
        }
        OpFn::Remove => (None, cur.take().is_some()),
    }
}

/// A linearizable history of `cfg.operations` operations (some may stay pending at
/// the end).
pub fn random_history(seed: u64, cfg: &GenConfig) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let procs = cfg.processes.max(1);
    let keys = cfg.keys.max(1);
    let values = cfg.values.max(1) as u64;
    let mut model: Vec<Option<Value>> = vec![None; keys as usize];
    let mut pending: Vec<Option<Pending>> = vec![None; procs as usize];
    // Operations completed with `info` before taking effect: may still take effect.
    let mut zombies: Vec<Pending> = Vec::new();
    let mut h = History::new();
    let mut invoked = 0;
    let mut time = 0u64;
    while invoked < cfg.operations || pending.iter().any(Option::is_some) {
        time += 1 + rng.below(1000);
        h.at(time);
        if !zombies.is_empty() && rng.below(20) == 0 {
            let z = zombies.swap_remove(rng.below(zombies.len() as u64) as usize);
            apply(&mut model, &z);
            continue;
        }
        let p = rng.below(procs);
        let slot = &mut pending[p as usize];
        match slot {
            None => {
                if invoked >= cfg.operations {
                    continue;
                }
                invoked += 1;
                let key = rng.below(keys as u64) as Key;
                let v = rng.below(values) as Value;
                let maybe = |rng: &mut Rng, v: Value| (rng.below(4) != 0).then_some(v);
                let op = match rng.below(4) {
                    0 => {
                        h.put(p, key, v);
                        Pending {
                            f: OpFn::Put,
                            key,
                            value: Some(v),
                            expected: None,
                            applied: None,
                        }
                    }
                    1 => {
                        h.get(p, key);
                        Pending {
                            f: OpFn::Get,
                            key,
                            value: None,
                            expected: None,
                            applied: None,
                        }
                    }
                    2 => {
                        let ev = rng.below(values) as Value;
                        let e = maybe(&mut rng, ev);
                        let n = maybe(&mut rng, v);
                        h.cas(p, key, e, n);
                        Pending {
                            f: OpFn::Cas,
                            key,
                            value: n,
                            expected: e,
                            applied: None,
                        }
                    }
                    _ => {
                        h.remove(p, key);
                        Pending {
                            f: OpFn::Remove,
                            key,
                            value: None,
                            expected: None,
                            applied: None,
                        }
                    }
                };
                *slot = Some(op);
            }
            Some(op) => {
                let info = rng.below(100) < u64::from(cfg.info_percent);
                match op.applied {
                    None if info => {
                        zombies.push(*op);
                        h.info(p);
                        *slot = None;
                    }
                    None if rng.below(100) < u64::from(cfg.fail_percent) => {
                        h.fail(p);
                        *slot = None;
                    }
                    None => {
                        let r = apply(&mut model, op);
                        op.applied = Some(r);
                    }
                    Some(_) if info => {
                        h.info(p);
                        *slot = None;
                    }
                    Some((read, ok)) => {
                        match (op.f, ok) {
                            (OpFn::Get, _) => h.ok(p, read),
                            (_, true) => h.ok(p, None),
                            (_, false) if rng.below(2) == 0 => h.ok_false(p),
                            (_, false) => h.fail_false(p),
                        };
                        *slot = None;
                    }
                }
            }
        }
    }
    debug_assert!(h
        .events
        .iter()
        .all(|e| e.ty != EventType::Invoke || e.process < procs));
    h.events
}
