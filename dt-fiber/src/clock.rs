//! The dispatcher's clock and randomness: real or virtual, and a seeded generator.

use dt_common::{mono_nanos, Timestamp};

/// Where a dispatcher reads its time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The operating system's clocks (production).
    Real,
    /// A virtual clock: it starts at the given wall-clock millis and only moves when the
    /// dispatcher has nothing runnable, jumping straight to the next timer (simulation).
    Virtual {
        /// Wall-clock milliseconds at virtual time zero.
        start_wall_millis: i64,
    },
}

/// Virtual monotonic time starts here so that deadlines computed as `now + d` never need
/// to be negative, and values look like real monotonic readings.
pub(crate) const VIRTUAL_ORIGIN_NANOS: i64 = 1_000_000_000;

/// The cached clock of one dispatcher.
#[derive(Debug)]
pub(crate) struct Clock {
    mode: ClockMode,
    virtual_nanos: i64,
    cached: Timestamp,
    /// Real mode: monotonic nanos at the last wall-clock read.
    wall_read_at: i64,
}

impl Clock {
    pub(crate) fn new(mode: ClockMode) -> Self {
        let mut c = Clock {
            mode,
            virtual_nanos: VIRTUAL_ORIGIN_NANOS,
            cached: Timestamp::from_parts(0, 0),
            wall_read_at: i64::MIN,
        };
        c.refresh_full();
        c
    }

    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self.mode, ClockMode::Virtual { .. })
    }

    /// Re-reads the monotonic clock into the cache; the wall clock is re-read at most
    /// once per millisecond (in between it is advanced by the monotonic clock), so a
    /// round costs one clock read.
    pub(crate) fn refresh(&mut self) {
        match self.mode {
            ClockMode::Real => {
                let mono = mono_nanos();
                if mono.wrapping_sub(self.wall_read_at) >= 1_000_000 || mono < self.wall_read_at {
                    self.refresh_full();
                } else {
                    self.cached = Timestamp::from_parts(self.cached.wall_millis, mono);
                }
            }
            ClockMode::Virtual { .. } => self.refresh_full(),
        }
    }

    /// Re-reads both clocks (lease checks, entry timestamps).
    pub(crate) fn refresh_full(&mut self) {
        self.cached = match self.mode {
            ClockMode::Real => {
                let ts = Timestamp::now();
                self.wall_read_at = ts.nano_time;
                ts
            }
            ClockMode::Virtual { start_wall_millis } => Timestamp::from_parts(
                start_wall_millis + (self.virtual_nanos - VIRTUAL_ORIGIN_NANOS) / 1_000_000,
                self.virtual_nanos,
            ),
        };
    }

    /// The cached reading.
    pub(crate) fn cached(&self) -> Timestamp {
        self.cached
    }

    /// Moves virtual time forward to `nanos` (never backwards) and refreshes the cache.
    /// No effect on a real clock.
    pub(crate) fn advance_to(&mut self, nanos: i64) {
        if self.is_virtual() && nanos > self.virtual_nanos {
            self.virtual_nanos = nanos;
        }
        self.refresh_full();
    }
}

/// A small, fast, seeded pseudo-random generator (splitmix64).
///
/// Not cryptographic. In simulation mode the dispatcher's generator is seeded by the test,
/// so every random choice made through [`crate::random_u64`] repeats under the same seed.
#[derive(Debug, Clone)]
pub struct DetRng {
    state: u64,
}

impl DetRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        DetRng { state: seed }
    }

    /// A generator seeded from the clock (for production dispatchers).
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        DetRng::new(t ^ (mono_nanos() as u64).rotate_left(32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[0, bound)`; `0` when `bound` is zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward() {
        let mut c = Clock::new(ClockMode::Virtual {
            start_wall_millis: 5_000,
        });
        assert_eq!(c.cached().nano_time, VIRTUAL_ORIGIN_NANOS);
        assert_eq!(c.cached().wall_millis, 5_000);
        c.advance_to(VIRTUAL_ORIGIN_NANOS + 3_000_000);
        assert_eq!(c.cached().wall_millis, 5_003);
        c.advance_to(VIRTUAL_ORIGIN_NANOS);
        assert_eq!(c.cached().nano_time, VIRTUAL_ORIGIN_NANOS + 3_000_000);
    }

    #[test]
    fn real_clock_refresh_is_fresh() {
        let mut c = Clock::new(ClockMode::Real);
        let a = c.cached();
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.refresh();
        let b = c.cached();
        assert!(b.nano_time - a.nano_time >= 2_000_000);
        assert!(b.wall_millis > a.wall_millis);
        c.refresh();
        assert!(c.cached().nano_time >= b.nano_time);
        c.refresh_full();
        assert!(c.cached().wall_millis >= b.wall_millis);
    }

    #[test]
    fn rng_is_seeded() {
        let mut a = DetRng::new(7);
        let mut b = DetRng::new(7);
        let mut c = DetRng::new(8);
        let va: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        for _ in 0..1000 {
            assert!(a.below(10) < 10);
        }
        assert_eq!(a.below(0), 0);
    }
}
