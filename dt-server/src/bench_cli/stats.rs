//! What a benchmark counts: per-second windows and the measured-phase totals (lock-free
//! counters shared by every worker), latency histograms, and the clock latencies are
//! taken with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// The clock latencies are measured with (`--use-nanos` picks [`Clock::Nanos`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock in whole milliseconds, as the reference by default.
    Millis,
    /// The monotonic clock in nanoseconds.
    Nanos,
}

impl Clock {
    /// Now, in nanoseconds on this clock's scale (only differences are meaningful).
    pub fn now(self) -> u64 {
        match self {
            Clock::Millis => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                ms * 1_000_000
            }
            Clock::Nanos => dt_common::mono_nanos().max(0) as u64,
        }
    }
}

/// Counts of one period: successes, failures, the latency sum and maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Successful operations.
    pub success: u64,
    /// Failed operations.
    pub fail: u64,
    /// Sum of the latencies (ns), failures included.
    pub total_nanos: u64,
    /// Largest latency (ns).
    pub max_nanos: u64,
}

impl Window {
    /// Operations counted (successes and failures).
    pub fn count(&self) -> u64 {
        self.success + self.fail
    }

    /// Mean latency in whole microseconds (0 when nothing was counted).
    pub fn avg_us(&self) -> u64 {
        self.total_nanos
            .checked_div(self.count())
            .map_or(0, |n| n / 1000)
    }

    /// Largest latency in whole microseconds.
    pub fn max_us(&self) -> u64 {
        self.max_nanos / 1000
    }
}

#[derive(Default)]
struct Counters {
    success: AtomicU64,
    fail: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Counters {
    fn add(&self, success: bool, nanos: u64) {
        if success {
            self.success.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fail.fetch_add(1, Ordering::Relaxed);
        }
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    fn read(&self) -> Window {
        Window {
            success: self.success.load(Ordering::Relaxed),
            fail: self.fail.load(Ordering::Relaxed),
            total_nanos: self.total_nanos.load(Ordering::Relaxed),
            max_nanos: self.max_nanos.load(Ordering::Relaxed),
        }
    }

    fn take(&self) -> Window {
        Window {
            success: self.success.swap(0, Ordering::Relaxed),
            fail: self.fail.swap(0, Ordering::Relaxed),
            total_nanos: self.total_nanos.swap(0, Ordering::Relaxed),
            max_nanos: self.max_nanos.swap(0, Ordering::Relaxed),
        }
    }
}

/// The shared counters of a run and its phase (warm-up, measuring, stopped).
pub struct Stats {
    warmup: AtomicBool,
    running: AtomicBool,
    total: Counters,
    second: Counters,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Counters in the warm-up phase, running.
    pub fn new() -> Stats {
        Stats {
            warmup: AtomicBool::new(true),
            running: AtomicBool::new(true),
            total: Counters::default(),
            second: Counters::default(),
        }
    }

    /// Whether workers should go on issuing operations.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Whether the run is still warming up.
    pub fn warming_up(&self) -> bool {
        self.warmup.load(Ordering::Relaxed)
    }

    /// Ends the warm-up: from now on operations count in the totals.
    pub fn end_warmup(&self) {
        self.warmup.store(false, Ordering::Relaxed);
    }

    /// Stops counting; workers stop issuing.
    pub fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// Counts one finished operation. Returns whether it belongs to the measured phase
    /// (the caller then records its latency in a histogram); nothing is counted after
    /// [`Stats::stop`].
    pub fn record(&self, success: bool, nanos: u64) -> bool {
        if !self.running() {
            return false;
        }
        self.second.add(success, nanos);
        if self.warming_up() {
            return false;
        }
        self.total.add(success, nanos);
        true
    }

    /// The counts since the last call (the per-second line), reset.
    pub fn take_second(&self) -> Window {
        self.second.take()
    }

    /// The measured-phase totals.
    pub fn totals(&self) -> Window {
        self.total.read()
    }
}

/// A latency histogram in microseconds (1 us to 1 hour, 3 significant digits), behind a
/// mutex so the thread that reports can merge it while its owner records.
pub struct LatencyRecorder {
    hist: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

/// The highest latency a histogram tracks (us); larger ones count as this.
pub const MAX_TRACKED_US: u64 = 3_600_000_000;

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            hist: Mutex::new(empty_histogram()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.hist.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one latency given in nanoseconds.
    pub fn record_nanos(&self, nanos: u64) {
        self.lock().saturating_record(nanos / 1000);
    }

    /// Adds this recorder's values into `into`.
    pub fn merge_into(&self, into: &mut Histogram<u64>) {
        // Same bounds on both sides: adding cannot fail.
        let _ = into.add(&*self.lock());
    }
}

/// Percentiles of the measured phase, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
}

/// The percentiles of several recorders together (zeros when none recorded anything).
pub fn percentiles<'a>(recorders: impl IntoIterator<Item = &'a LatencyRecorder>) -> Percentiles {
    let mut all = empty_histogram();
    for r in recorders {
        r.merge_into(&mut all);
    }
    if all.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
    }
}

/// A small xorshift64* generator: key choice only (no crate needed, one per worker).
#[derive(Debug, Clone)]
pub struct KeyRng(u64);

impl KeyRng {
    /// A generator from a seed (any value; 0 is replaced).
    pub fn new(seed: u64) -> KeyRng {
        KeyRng(seed.max(1))
    }

    /// A generator seeded from the clock and `salt` (the worker's number).
    pub fn seeded(salt: u64) -> KeyRng {
        let t = dt_common::mono_nanos() as u64;
        KeyRng::new(t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491)
    }

    /// The next number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_counts_only_in_the_second_window() {
        let s = Stats::new();
        assert!(!s.record(true, 5_000));
        assert!(!s.record(false, 9_000));
        assert_eq!(
            s.take_second(),
            Window {
                success: 1,
                fail: 1,
                total_nanos: 14_000,
                max_nanos: 9_000
            }
        );
        assert_eq!(s.take_second(), Window::default(), "taking resets");
        assert_eq!(s.totals(), Window::default());
        s.end_warmup();
        assert!(s.record(true, 2_000));
        assert!(s.record(true, 4_000));
        let w = s.totals();
        assert_eq!((w.success, w.fail, w.avg_us(), w.max_us()), (2, 0, 3, 4));
        assert_eq!(s.take_second().count(), 2);
        s.stop();
        assert!(!s.record(true, 1_000));
        assert_eq!(s.totals().count(), 2, "nothing counted after stop");
        assert!(!s.running());
    }

    #[test]
    fn empty_window_averages_zero() {
        assert_eq!(Window::default().avg_us(), 0);
    }

    #[test]
    fn percentiles_merge_recorders() {
        let a = LatencyRecorder::new();
        let b = LatencyRecorder::new();
        for us in 1..=900u64 {
            a.record_nanos(us * 1000);
        }
        for us in 901..=1000u64 {
            b.record_nanos(us * 1000);
        }
        let p = percentiles([&a, &b]);
        // 3 significant digits: within 0.1 %.
        assert!((499..=501).contains(&p.p50_us), "{p:?}");
        assert!((989..=991).contains(&p.p99_us), "{p:?}");
        assert!((998..=1000).contains(&p.p999_us), "{p:?}");
        assert_eq!(
            percentiles([&LatencyRecorder::new()]),
            Percentiles::default()
        );
        // Beyond the tracked range saturates instead of failing.
        let c = LatencyRecorder::new();
        c.record_nanos(u64::MAX);
        assert!(percentiles([&c]).p50_us >= MAX_TRACKED_US - MAX_TRACKED_US / 1000);
    }

    #[test]
    fn millis_clock_is_whole_milliseconds() {
        assert_eq!(Clock::Millis.now() % 1_000_000, 0);
        let a = Clock::Nanos.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(Clock::Nanos.now() - a >= 2_000_000);
    }

    #[test]
    fn key_rng_spreads_over_the_range() {
        let mut r = KeyRng::new(42);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[r.below(10)] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(KeyRng::new(0).below(1), 0);
    }
}
