//! Cached clocks and deadlines.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn base_instant() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Reads the monotonic clock now, in nanoseconds since an arbitrary process-wide origin.
///
/// The origin is fixed the first time any dt code asks for the time, so values are small,
/// positive and comparable across threads of one process (not across processes).
pub fn mono_nanos() -> i64 {
    base_instant().elapsed().as_nanos() as i64
}

/// [`mono_nanos`] of an `Instant` the caller has already read (one clock read serves
/// both). An instant before the origin (only possible before anything asked for the
/// time) reads as now.
pub fn mono_nanos_at(t: Instant) -> i64 {
    match t.checked_duration_since(base_instant()) {
        Some(d) => d.as_nanos() as i64,
        None => mono_nanos(),
    }
}

fn wall_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A cached reading of the wall clock and the monotonic clock.
///
/// An event loop (an IO worker, a Dispatcher) owns one `Timestamp` and calls
/// [`Timestamp::refresh`] once per iteration; everything that runs in that iteration reads
/// the cached values. Readers that need a fresh value (lease checks) call `refresh` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub wall_millis: i64,
    /// Monotonic time in nanoseconds (see [`mono_nanos`]).
    pub nano_time: i64,
}

impl Timestamp {
    /// Reads both clocks now.
    pub fn now() -> Self {
        Timestamp {
            wall_millis: wall_millis(),
            nano_time: mono_nanos(),
        }
    }

    /// Builds a timestamp from explicit values (virtual clocks, tests).
    pub fn from_parts(wall_millis: i64, nano_time: i64) -> Self {
        Timestamp {
            wall_millis,
            nano_time,
        }
    }

    /// Re-reads both clocks.
    pub fn refresh(&mut self) {
        *self = Timestamp::now();
    }

    /// Re-reads the clocks only if the cached value is older than `max_age`
    /// (by the monotonic clock). Returns whether it refreshed.
    pub fn refresh_if_older(&mut self, max_age: Duration) -> bool {
        let now = mono_nanos();
        if now - self.nano_time >= max_age.as_nanos() as i64 {
            self.wall_millis = wall_millis();
            self.nano_time = now;
            true
        } else {
            false
        }
    }

    /// Monotonic nanoseconds elapsed since `earlier_nanos` by this cached reading
    /// (zero if `earlier_nanos` is in the future).
    pub fn nanos_since(&self, earlier_nanos: i64) -> i64 {
        (self.nano_time - earlier_nanos).max(0)
    }
}

/// A deadline on the monotonic clock.
///
/// Created from a timeout, it answers "how long is left?" and "has it passed?" against a
/// cached [`Timestamp`] (cheap) or against the real clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DtTime {
    deadline_nanos: i64,
}

impl DtTime {
    /// A deadline `timeout` after the real clock's now.
    pub fn from_now(timeout: Duration) -> Self {
        Self::from_nanos(mono_nanos(), timeout)
    }

    /// A deadline `timeout` after the cached time `ts`.
    pub fn from_timestamp(ts: &Timestamp, timeout: Duration) -> Self {
        Self::from_nanos(ts.nano_time, timeout)
    }

    /// A deadline `timeout` after the monotonic instant `start_nanos`.
    pub fn from_nanos(start_nanos: i64, timeout: Duration) -> Self {
        let t = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
        DtTime {
            deadline_nanos: start_nanos.saturating_add(t),
        }
    }

    /// A deadline from a signed nanosecond budget as it arrives on the wire (the packet
    /// timeout field): zero or negative budgets give a deadline that has already passed.
    pub fn from_wire_nanos(start_nanos: i64, budget_nanos: i64) -> Self {
        DtTime {
            deadline_nanos: start_nanos.saturating_add(budget_nanos),
        }
    }

    /// The deadline as a monotonic instant in nanoseconds.
    pub fn deadline_nanos(&self) -> i64 {
        self.deadline_nanos
    }

    /// Signed nanoseconds left at `ts` (negative once passed).
    pub fn remaining_nanos(&self, ts: &Timestamp) -> i64 {
        self.deadline_nanos.saturating_sub(ts.nano_time)
    }

    /// Time left at `ts`, zero once passed.
    pub fn remaining(&self, ts: &Timestamp) -> Duration {
        Duration::from_nanos(self.remaining_nanos(ts).max(0) as u64)
    }

    /// Whether the deadline has passed at the cached time `ts`.
    pub fn is_expired(&self, ts: &Timestamp) -> bool {
        self.remaining_nanos(ts) <= 0
    }

    /// Whether the deadline has passed by the real clock.
    pub fn is_expired_now(&self) -> bool {
        mono_nanos() >= self.deadline_nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_nanos_is_monotonic() {
        let a = mono_nanos();
        let b = mono_nanos();
        assert!(b >= a);
        assert!(a >= 0);
    }

    #[test]
    fn mono_nanos_at_reads_an_instant_on_the_same_scale() {
        let a = mono_nanos();
        let t = Instant::now();
        let b = mono_nanos();
        let at = mono_nanos_at(t);
        assert!(a <= at && at <= b, "{a} <= {at} <= {b}");
        // 5 ms later on the Instant's scale is 5 ms later on this one
        let later = mono_nanos_at(t + Duration::from_millis(5));
        assert_eq!(later - at, 5_000_000);
    }

    #[test]
    fn wall_clock_is_plausible() {
        let ts = Timestamp::now();
        // After 2020-01-01 and before 2200.
        assert!(ts.wall_millis > 1_577_836_800_000);
        assert!(ts.wall_millis < 7_258_118_400_000);
    }

    #[test]
    fn deadline_against_explicit_time() {
        let ts = Timestamp::from_parts(0, 1_000);
        let d = DtTime::from_timestamp(&ts, Duration::from_nanos(500));
        assert_eq!(d.remaining_nanos(&ts), 500);
        assert!(!d.is_expired(&ts));
        let later = Timestamp::from_parts(0, 1_499);
        assert_eq!(d.remaining(&later), Duration::from_nanos(1));
        let at = Timestamp::from_parts(0, 1_500);
        assert!(d.is_expired(&at));
        let after = Timestamp::from_parts(0, 9_000);
        assert_eq!(d.remaining(&after), Duration::ZERO);
        assert_eq!(d.remaining_nanos(&after), -7_500);
    }

    #[test]
    fn wire_budget_zero_or_negative_is_expired() {
        let ts = Timestamp::from_parts(0, 10);
        assert!(DtTime::from_wire_nanos(10, 0).is_expired(&ts));
        assert!(DtTime::from_wire_nanos(10, -5).is_expired(&ts));
        assert!(!DtTime::from_wire_nanos(10, 1).is_expired(&ts));
    }

    #[test]
    fn huge_timeouts_saturate() {
        let d = DtTime::from_nanos(i64::MAX - 5, Duration::from_secs(u64::MAX));
        assert_eq!(d.deadline_nanos(), i64::MAX);
        let d = DtTime::from_wire_nanos(100, i64::MAX);
        assert_eq!(d.deadline_nanos(), i64::MAX);
    }

    #[test]
    fn refresh_if_older() {
        let mut ts = Timestamp::from_parts(0, mono_nanos() - 1_000_000_000);
        assert!(ts.refresh_if_older(Duration::from_millis(10)));
        assert!(!ts.refresh_if_older(Duration::from_secs(3600)));
        assert!(ts.nanos_since(ts.nano_time + 50) == 0);
    }
}
