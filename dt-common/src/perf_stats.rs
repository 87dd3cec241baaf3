//! [`PerfStats`]: a ready-made [`PerfCallback`] that sums what it is told, per type, until
//! someone takes the figures.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::perf::{PerfCallback, PerfType};

/// The figures of one perf type over a period (see [`PerfStats::take`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfFigures {
    /// Events fired (spans or counts).
    pub events: u64,
    /// Items the events covered (a log write of 50 entries is one event, 50 items).
    pub items: u64,
    /// Bytes the events covered.
    pub bytes: u64,
    /// Sum of the spans' durations (nanoseconds).
    pub total_nanos: u64,
    /// Longest span (nanoseconds).
    pub max_nanos: u64,
}

impl PerfFigures {
    /// Mean span in nanoseconds (0 without events).
    pub fn avg_nanos(&self) -> u64 {
        self.total_nanos.checked_div(self.events).unwrap_or(0)
    }
}

#[derive(Default)]
struct Slot {
    events: AtomicU64,
    items: AtomicU64,
    bytes: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Slot {
    fn take(&self) -> PerfFigures {
        PerfFigures {
            events: self.events.swap(0, Ordering::Relaxed),
            items: self.items.swap(0, Ordering::Relaxed),
            bytes: self.bytes.swap(0, Ordering::Relaxed),
            total_nanos: self.total_nanos.swap(0, Ordering::Relaxed),
            max_nanos: self.max_nanos.swap(0, Ordering::Relaxed),
        }
    }
}

/// Sums the events of the perf types it was built to accept, lock-free (relaxed
/// atomics: figures taken while events fire may split one event between two periods),
/// and hands them out with [`PerfStats::take`], which starts a new period. A server
/// logs them periodically; a benchmark prints them at its end.
///
/// ```
/// use dt_common::{PerfCallback, PerfStats, PerfType};
///
/// let stats = PerfStats::new(&[PerfType::RaftLogSync]);
/// assert!(stats.accept(PerfType::RaftLogSync));
/// assert!(!stats.accept(PerfType::RpcRead));
/// stats.fire_time(PerfType::RaftLogSync, 400_000, 12, 4096);
/// stats.fire_time(PerfType::RaftLogSync, 200_000, 3, 1024);
/// let taken = stats.take();
/// assert_eq!(taken.len(), 1);
/// let (t, f) = taken[0];
/// assert_eq!(t, PerfType::RaftLogSync);
/// assert_eq!((f.events, f.items, f.bytes, f.avg_nanos(), f.max_nanos), (2, 15, 5120, 300_000, 400_000));
/// assert!(stats.take().is_empty()); // a new period
/// ```
pub struct PerfStats {
    types: Vec<PerfType>,
    slots: Vec<Slot>,
}

impl PerfStats {
    /// Statistics of `types` (the others are not accepted).
    pub fn new(types: &[PerfType]) -> Self {
        let mut types = types.to_vec();
        types.sort();
        types.dedup();
        let slots = types.iter().map(|_| Slot::default()).collect();
        PerfStats { types, slots }
    }

    /// The types accepted.
    pub fn types(&self) -> &[PerfType] {
        &self.types
    }

    fn slot(&self, t: PerfType) -> Option<&Slot> {
        // a handful of types: a linear scan beats hashing
        self.types
            .iter()
            .position(|x| *x == t)
            .map(|i| &self.slots[i])
    }

    /// The figures of every type that had events since the last call, in type order,
    /// and a new period for all.
    pub fn take(&self) -> Vec<(PerfType, PerfFigures)> {
        self.types
            .iter()
            .zip(&self.slots)
            .map(|(t, s)| (*t, s.take()))
            .filter(|(_, f)| f.events > 0)
            .collect()
    }
}

impl std::fmt::Debug for PerfStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfStats")
            .field("types", &self.types)
            .finish()
    }
}

impl PerfCallback for PerfStats {
    fn accept(&self, perf_type: PerfType) -> bool {
        self.types.contains(&perf_type)
    }

    fn fire(&self, perf_type: PerfType, count: u64, bytes: u64) {
        if let Some(s) = self.slot(perf_type) {
            s.events.fetch_add(1, Ordering::Relaxed);
            s.items.fetch_add(count, Ordering::Relaxed);
            s.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn fire_time(&self, perf_type: PerfType, nanos: u64, count: u64, bytes: u64) {
        if let Some(s) = self.slot(perf_type) {
            s.events.fetch_add(1, Ordering::Relaxed);
            s.items.fetch_add(count, Ordering::Relaxed);
            s.bytes.fetch_add(bytes, Ordering::Relaxed);
            s.total_nanos.fetch_add(nanos, Ordering::Relaxed);
            s.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_and_spans_sum_per_type_and_reset_on_take() {
        let s = PerfStats::new(&[PerfType::RpcRead, PerfType::RaftLogSync, PerfType::RpcRead]);
        assert_eq!(s.types(), &[PerfType::RpcRead, PerfType::RaftLogSync]);
        s.fire(PerfType::RpcRead, 2, 100);
        s.fire(PerfType::RpcRead, 1, 50);
        s.fire_time(PerfType::RaftLogSync, 10, 1, 0);
        s.fire_time(PerfType::RaftLogSync, 30, 1, 0);
        // not accepted: ignored
        s.fire_time(PerfType::RpcWrite, 99, 1, 1);
        let t = s.take();
        assert_eq!(
            t,
            vec![
                (
                    PerfType::RpcRead,
                    PerfFigures {
                        events: 2,
                        items: 3,
                        bytes: 150,
                        total_nanos: 0,
                        max_nanos: 0
                    }
                ),
                (
                    PerfType::RaftLogSync,
                    PerfFigures {
                        events: 2,
                        items: 2,
                        bytes: 0,
                        total_nanos: 40,
                        max_nanos: 30
                    }
                ),
            ]
        );
        assert_eq!(t[1].1.avg_nanos(), 20);
        assert!(s.take().is_empty());
        assert_eq!(PerfFigures::default().avg_nanos(), 0);
    }

    #[test]
    fn events_from_many_threads_all_count() {
        let s = Arc::new(PerfStats::new(&[PerfType::FiberRun]));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        s.fire_time(PerfType::FiberRun, i, 1, 1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let (_, f) = s.take()[0];
        assert_eq!((f.events, f.items, f.bytes), (40_000, 40_000, 40_000));
        assert_eq!(f.total_nanos, 4 * (0..10_000u64).sum::<u64>());
        assert_eq!(f.max_nanos, 9_999);
    }
}
