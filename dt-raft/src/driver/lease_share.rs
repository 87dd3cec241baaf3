//! [`LeaseShare`]: the leader lease as the group's thread last computed it, published
//! for other threads so a lease read needs no round trip to the group's dispatcher
//! (the reference's leaseRead likewise checks its published share status on the
//! caller's thread, raft.md §9).

use std::sync::atomic::{AtomicI64, Ordering};

/// The end of the leader lease in monotonic nanos ([`dt_common::mono_nanos`]), or 0
/// when a read cannot be served without asking the group's thread (not the leader, not
/// ready, a leader transfer under way, stopping, or a virtual clock).
///
/// Only the group's thread stores; it stores a nonzero end only when the core would
/// answer a lease read at that moment with Ok, and clears it before executing the
/// actions of any change that ends the lease early (step down, transfer). A lease
/// only moves forward while it holds, so a reader that sees `now < end` may serve the
/// read as the group's thread would have.
#[derive(Debug, Default)]
pub(crate) struct LeaseShare {
    end_nanos: AtomicI64,
}

impl LeaseShare {
    /// Publishes the lease end (in ms of the core's clock, 0 = none).
    pub(crate) fn set_end_ms(&self, end_ms: u64) {
        let nanos = i64::try_from(end_ms)
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .unwrap_or(0);
        self.end_nanos.store(nanos, Ordering::Release);
    }

    /// Whether the published lease holds at `now_nanos`.
    pub(crate) fn holds_at(&self, now_nanos: i64) -> bool {
        let end = self.end_nanos.load(Ordering::Acquire);
        end != 0 && now_nanos < end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_before_the_published_end() {
        let l = LeaseShare::default();
        assert!(!l.holds_at(1));
        l.set_end_ms(5);
        assert!(l.holds_at(4_999_999));
        assert!(!l.holds_at(5_000_000));
        l.set_end_ms(0);
        assert!(!l.holds_at(0));
        l.set_end_ms(u64::MAX);
        assert!(!l.holds_at(1), "an end that overflows nanos is no lease");
    }
}
