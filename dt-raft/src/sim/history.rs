//! Client histories: the events a workload records, and their pairing into operations.
//!
//! A history is the sequence of [`Event`]s the clients saw, in real-time order: each
//! operation is an `invoke` followed later by at most one completion from the same
//! process (`ok`, `fail` or `info`). The meaning of a completion is Jepsen's:
//!
//! * `ok`: the operation took effect exactly once, between its invoke and its
//!   completion, with the recorded result;
//! * `fail`: the operation definitely did not take effect;
//! * `info`: the outcome is unknown: the operation may have taken effect at any moment
//!   after its invoke (even after later operations of other clients completed), or
//!   never. An invoke with no completion at the end of the history counts as `info`.
//!
//! A process may invoke again after an `info` (the lost operation then stays pending
//! forever); it may not invoke while an operation of its own is still pending.
//!
//! Keys and values are `i64`: a simulation workload uses a handful of keys and small
//! values, mapping them to DtKV keys and byte values itself (for example key 3 to
//! `"k3"`, value 17 to the bytes of `"17"`). A missing value (`None`, JSON `null`) is
//! an absent key.
//!
//! Operations (`f`) and their fields:
//!
//! | `f`      | invoke                                   | `ok` completion                                       |
//! |----------|------------------------------------------|-------------------------------------------------------|
//! | `put`    | `value` = the value written              | -                                                     |
//! | `get`    | -                                        | `value` = the value read (`None`: key absent)         |
//! | `cas`    | `expected` (`None`: create if absent), `value` = new value (`None`: delete if equal) | `result` `true` (the default) or `false`: compare failed |
//! | `remove` | -                                        | `result` `true` (the default: it existed) or `false`   |
//!
//! A `cas` whose compare failed or a `remove` that found no key did not change the
//! store but still observed it: record it as `ok` with `result: Some(false)` or as
//! `fail` with `result: Some(false)`. Both are checked as a read (value ≠ expected, key
//! absent). A plain `fail` (no result) is only "did not take effect".
//!
//! Real-time order is the order of the events in the history; `time_ns` is kept for
//! people and outside tools but the checker does not use it.

use std::collections::HashMap;
use std::fmt;

/// A key of the simulated key-value store (see the module doc for the mapping to DtKV).
pub type Key = i64;
/// A value of the simulated key-value store.
pub type Value = i64;

/// The kind of an event (`type` in the JSON-lines format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The client sent the operation.
    Invoke,
    /// It completed, with a result.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Its outcome is unknown (timeout, connection lost).
    Info,
}

impl EventType {
    /// The name used in the JSON-lines format.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            _ => return None,
        })
    }
}

/// The operation of an event (`f` in the JSON-lines format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpFn {
    /// Write a value.
    Put,
    /// Read a key.
    Get,
    /// Compare-and-set.
    Cas,
    /// Delete a key.
    Remove,
}

impl OpFn {
    /// The name used in the JSON-lines format.
    pub fn as_str(self) -> &'static str {
        match self {
            OpFn::Put => "put",
            OpFn::Get => "get",
            OpFn::Cas => "cas",
            OpFn::Remove => "remove",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "put" => OpFn::Put,
            "get" => OpFn::Get,
            "cas" => OpFn::Cas,
            "remove" => OpFn::Remove,
            _ => return None,
        })
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The client process; one operation at a time per process.
    pub process: u64,
    /// Invoke or which completion.
    pub ty: EventType,
    /// The operation.
    pub f: OpFn,
    /// The key it works on.
    pub key: Key,
    /// Value written (put, cas) or read (get); see the module doc.
    pub value: Option<Value>,
    /// The value a cas expects (`None`: the key must be absent).
    pub expected: Option<Value>,
    /// The boolean result of a completed cas or remove (`None`: not recorded, `true`
    /// for `ok`).
    pub result: Option<bool>,
    /// When it happened, in nanoseconds (virtual time in a simulation).
    pub time_ns: u64,
}

/// What an operation did, as far as the history tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Wrote the value.
    Put(Value),
    /// Read this (`None`: key absent).
    Get(Option<Value>),
    /// Compare-and-set: if the value is `expected`, set it to `new`.
    Cas {
        /// The value required (`None`: absent).
        expected: Option<Value>,
        /// The value set (`None`: delete).
        new: Option<Value>,
        /// `Some(true)`: it set; `Some(false)`: the compare failed; `None`: unknown
        /// outcome.
        result: Option<bool>,
    },
    /// Delete the key.
    Remove {
        /// `Some(true)`: it deleted a value; `Some(false)`: there was none; `None`:
        /// unknown outcome.
        result: Option<bool>,
    },
}

/// An invoke paired with its completion: the unit the checker linearizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client process.
    pub process: u64,
    /// The key.
    pub key: Key,
    /// What it did.
    pub action: Action,
    /// Index of the invoke event in the history.
    pub invoke_index: usize,
    /// Index of the completion event; `None` when the outcome is unknown (`info` or no
    /// completion): the operation may take effect at any time after its invoke, or never.
    pub complete_index: Option<usize>,
    /// Time of the invoke event.
    pub invoke_time_ns: u64,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn v(x: Option<Value>) -> String {
            x.map_or_else(|| "nil".to_string(), |x| x.to_string())
        }
        fn r(x: Option<bool>) -> &'static str {
            match x {
                Some(true) => "true",
                Some(false) => "false",
                None => "?",
            }
        }
        write!(f, "p{} ", self.process)?;
        match self.action {
            Action::Put(x) => write!(f, "put({}, {})", self.key, x)?,
            Action::Get(x) => write!(f, "get({}) -> {}", self.key, v(x))?,
            Action::Cas {
                expected,
                new,
                result,
            } => write!(
                f,
                "cas({}, {}, {}) -> {}",
                self.key,
                v(expected),
                v(new),
                r(result)
            )?,
            Action::Remove { result } => write!(f, "remove({}) -> {}", self.key, r(result))?,
        }
        match self.complete_index {
            Some(c) => write!(f, " [events {}..{}]", self.invoke_index, c),
            None => write!(f, " [event {}.., outcome unknown]", self.invoke_index),
        }
    }
}

/// A history whose events do not pair up into operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// A completion from a process with no pending invoke.
    CompletionWithoutInvoke {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
    },
    /// An invoke from a process whose previous operation is still pending.
    InvokeWhilePending {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
    },
    /// A completion whose `f` or key differs from its invoke's.
    CompletionMismatch {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
    },
    /// A put invoked without a value.
    PutWithoutValue {
        /// Event index.
        index: usize,
    },
    /// A `fail` claiming `result: true` (it cannot both fail and succeed).
    FailWithTrueResult {
        /// Event index.
        index: usize,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::CompletionWithoutInvoke { index, process } => {
                write!(f, "event {index}: completion from process {process} with no pending invoke")
            }
            HistoryError::InvokeWhilePending { index, process } => write!(
                f,
                "event {index}: process {process} invokes while its previous operation is pending"
            ),
            HistoryError::CompletionMismatch { index, process } => write!(
                f,
                "event {index}: completion from process {process} names another f or key than its invoke"
            ),
            HistoryError::PutWithoutValue { index } => {
                write!(f, "event {index}: put invoked without a value")
            }
            HistoryError::FailWithTrueResult { index } => {
                write!(f, "event {index}: fail with result true")
            }
        }
    }
}

impl std::error::Error for HistoryError {}

/// Pairs invokes with completions. Operations that cannot have changed or observed the
/// store are left out: `fail`s without a result, and reads whose outcome is unknown.
/// The operations come in invoke order.
pub fn operations(events: &[Event]) -> Result<Vec<Operation>, HistoryError> {
    let mut pending: HashMap<u64, usize> = HashMap::new();
    // Slot per invoke; filled at completion (or left for unknown).
    let mut slots: Vec<Option<Operation>> = Vec::new();
    let mut slot_of_invoke: HashMap<usize, usize> = HashMap::new();
    for (index, e) in events.iter().enumerate() {
        if e.ty == EventType::Invoke {
            if pending.contains_key(&e.process) {
                return Err(HistoryError::InvokeWhilePending {
                    index,
                    process: e.process,
                });
            }
            let action = match e.f {
                OpFn::Put => Action::Put(e.value.ok_or(HistoryError::PutWithoutValue { index })?),
                // A read with unknown outcome constrains nothing: dropped unless completed.
                OpFn::Get => Action::Get(None),
                OpFn::Cas => Action::Cas {
                    expected: e.expected,
                    new: e.value,
                    result: None,
                },
                OpFn::Remove => Action::Remove { result: None },
            };
            pending.insert(e.process, index);
            slot_of_invoke.insert(index, slots.len());
            let keep = e.f != OpFn::Get;
            slots.push(keep.then_some(Operation {
                process: e.process,
                key: e.key,
                action,
                invoke_index: index,
                complete_index: None,
                invoke_time_ns: e.time_ns,
            }));
            continue;
        }
        let Some(inv_index) = pending.remove(&e.process) else {
            return Err(HistoryError::CompletionWithoutInvoke {
                index,
                process: e.process,
            });
        };
        let inv = &events[inv_index];
        if inv.f != e.f || inv.key != e.key {
            return Err(HistoryError::CompletionMismatch {
                index,
                process: e.process,
            });
        }
        let slot = slot_of_invoke[&inv_index];
        let op = Operation {
            process: e.process,
            key: e.key,
            action: Action::Get(None),
            invoke_index: inv_index,
            complete_index: Some(index),
            invoke_time_ns: inv.time_ns,
        };
        slots[slot] = match (e.ty, e.f) {
            (EventType::Info, OpFn::Get) => None,
            // Unknown outcome: keep the invoke's operation, no completion.
            (EventType::Info, _) => slots[slot],
            (EventType::Ok, OpFn::Get) => Some(Operation {
                action: Action::Get(e.value),
                ..op
            }),
            (EventType::Ok, OpFn::Put) => Some(Operation {
                action: Action::Put(
                    inv.value
                        .ok_or(HistoryError::PutWithoutValue { index: inv_index })?,
                ),
                ..op
            }),
            (EventType::Ok, OpFn::Cas) => Some(Operation {
                action: Action::Cas {
                    expected: inv.expected,
                    new: inv.value,
                    result: Some(e.result.unwrap_or(true)),
                },
                ..op
            }),
            (EventType::Ok, OpFn::Remove) => Some(Operation {
                action: Action::Remove {
                    result: Some(e.result.unwrap_or(true)),
                },
                ..op
            }),
            (EventType::Fail, _) if e.result == Some(true) => {
                return Err(HistoryError::FailWithTrueResult { index })
            }
            (EventType::Fail, OpFn::Cas) if e.result == Some(false) => Some(Operation {
                action: Action::Cas {
                    expected: inv.expected,
                    new: inv.value,
                    result: Some(false),
                },
                ..op
            }),
            (EventType::Fail, OpFn::Remove) if e.result == Some(false) => Some(Operation {
                action: Action::Remove {
                    result: Some(false),
                },
                ..op
            }),
            (EventType::Fail, _) => None,
            (EventType::Invoke, _) => unreachable!("handled above"),
        };
    }
    Ok(slots.into_iter().flatten().collect())
}

/// A history under construction, for tests and workloads: invoke and complete by
/// process, with the event time taken from a counter unless set with [`at`](Self::at).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The events so far.
    pub events: Vec<Event>,
    pending: HashMap<u64, usize>,
    next_time: u64,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the time of the next event (later events count on from it).
    pub fn at(&mut self, time_ns: u64) -> &mut Self {
        self.next_time = time_ns;
        self
    }

    fn time(&mut self) -> u64 {
        let t = self.next_time;
        self.next_time += 1;
        t
    }

    fn invoke(
        &mut self,
        process: u64,
        f: OpFn,
        key: Key,
        value: Option<Value>,
        expected: Option<Value>,
    ) -> &mut Self {
        let time_ns = self.time();
        self.pending.insert(process, self.events.len());
        self.events.push(Event {
            process,
            ty: EventType::Invoke,
            f,
            key,
            value,
            expected,
            result: None,
            time_ns,
        });
        self
    }

    /// `process` invokes `put(key, value)`.
    pub fn put(&mut self, process: u64, key: Key, value: Value) -> &mut Self {
        self.invoke(process, OpFn::Put, key, Some(value), None)
    }

    /// `process` invokes `get(key)`.
    pub fn get(&mut self, process: u64, key: Key) -> &mut Self {
        self.invoke(process, OpFn::Get, key, None, None)
    }

    /// `process` invokes `cas(key, expected, new)`.
    pub fn cas(
        &mut self,
        process: u64,
        key: Key,
        expected: Option<Value>,
        new: Option<Value>,
    ) -> &mut Self {
        self.invoke(process, OpFn::Cas, key, new, expected)
    }

    /// `process` invokes `remove(key)`.
    pub fn remove(&mut self, process: u64, key: Key) -> &mut Self {
        self.invoke(process, OpFn::Remove, key, None, None)
    }

    fn complete(
        &mut self,
        process: u64,
        ty: EventType,
        read: Option<Value>,
        result: Option<bool>,
    ) -> &mut Self {
        let time_ns = self.time();
        let inv = match self.pending.remove(&process) {
            Some(i) => self.events[i].clone(),
            // Not pending: record it anyway; pairing reports the error.
            None => Event {
                process,
                ty,
                f: OpFn::Get,
                key: 0,
                value: None,
                expected: None,
                result: None,
                time_ns,
            },
        };
        let value = if inv.f == OpFn::Get { read } else { inv.value };
        self.events.push(Event {
            ty,
            value,
            result,
            time_ns,
            ..inv
        });
        self
    }

    /// The pending operation of `process` completes `ok`; for a get, `read` is the
    /// value read (ignored for the others).
    pub fn ok(&mut self, process: u64, read: Option<Value>) -> &mut Self {
        self.complete(process, EventType::Ok, read, None)
    }

    /// The pending cas or remove of `process` completes `ok` with result `false` (the
    /// compare failed, the key was absent).
    pub fn ok_false(&mut self, process: u64) -> &mut Self {
        self.complete(process, EventType::Ok, None, Some(false))
    }

    /// The pending cas or remove of `process` is recorded as `fail` with result
    /// `false`: it did not change the store because the compare failed or the key was
    /// absent.
    pub fn fail_false(&mut self, process: u64) -> &mut Self {
        self.complete(process, EventType::Fail, None, Some(false))
    }

    /// The pending operation of `process` definitely did not take effect.
    pub fn fail(&mut self, process: u64) -> &mut Self {
        self.complete(process, EventType::Fail, None, None)
    }

    /// The pending operation of `process` has an unknown outcome.
    pub fn info(&mut self, process: u64) -> &mut Self {
        self.complete(process, EventType::Info, None, None)
    }
}
