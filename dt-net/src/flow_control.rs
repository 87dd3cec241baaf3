//! Flow control: counters of outstanding requests and bytes with hard limits. Exceeding a
//! limit is a typed error ([`NetError::FlowControl`]) at once, never a hang.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::NetError;

/// Outstanding requests and bytes against limits (both sides of the layer use it: the
/// client for outgoing requests, the server for requests handed to executors).
///
/// Both counters live in one atomic word (requests in the high 24 bits, bytes in the low
/// 40 bits) so that taking and returning a permit is one atomic operation each.
#[derive(Debug)]
pub struct FlowControl {
    max_requests: AtomicI64,
    max_bytes: AtomicI64,
    state: AtomicU64,
    name: &'static str,
}

const BYTE_BITS: u32 = 40;
const BYTE_MASK: u64 = (1 << BYTE_BITS) - 1;
/// Largest request count and byte count the packed counter can hold.
const MAX_COUNT: i64 = (1 << (64 - BYTE_BITS)) - 1;
const MAX_BYTES: i64 = BYTE_MASK as i64;

fn pack(requests: u64, bytes: u64) -> u64 {
    (requests << BYTE_BITS) | bytes
}

impl FlowControl {
    /// Limits of `max_requests` and `max_bytes`; 0 disables a limit (counts are still
    /// kept, up to 16 777 215 requests and 1 TiB).
    pub fn new(name: &'static str, max_requests: i64, max_bytes: i64) -> Self {
        FlowControl {
            max_requests: AtomicI64::new(max_requests.min(MAX_COUNT)),
            max_bytes: AtomicI64::new(max_bytes.min(MAX_BYTES)),
            state: AtomicU64::new(0),
            name,
        }
    }

    /// Takes a permit for one request of `bytes` bytes, or fails with the limit reached.
    pub fn acquire(&self, bytes: usize) -> Result<(), NetError> {
        let b = (bytes as u64).min(BYTE_MASK / 2);
        let prev = self.state.fetch_add(pack(1, b), Ordering::AcqRel);
        let n = (prev >> BYTE_BITS) as i64 + 1;
        let total = (prev & BYTE_MASK) as i64 + b as i64;
        let max_r = self.max_requests.load(Ordering::Relaxed);
        let max_b = self.max_bytes.load(Ordering::Relaxed);
        let over_r = (max_r > 0 && n > max_r) || n >= MAX_COUNT;
        // One request larger than the byte limit still passes alone (as the reference does).
        let over_b = (max_b > 0 && total > max_b && prev & BYTE_MASK != 0) || total >= MAX_BYTES;
        if over_r || over_b {
            self.state.fetch_sub(pack(1, b), Ordering::AcqRel);
            return Err(NetError::FlowControl {
                what: if over_r {
                    format!("max {} request: {max_r}", self.name)
                } else {
                    format!("max {} request bytes: {max_b}", self.name)
                },
            });
        }
        Ok(())
    }

    /// Returns a permit taken with the same `bytes`.
    pub fn release(&self, bytes: usize) {
        let b = (bytes as u64).min(BYTE_MASK / 2);
        self.state.fetch_sub(pack(1, b), Ordering::AcqRel);
    }

    /// Outstanding requests.
    pub fn pending_requests(&self) -> i64 {
        (self.state.load(Ordering::Acquire) >> BYTE_BITS) as i64
    }

    /// Outstanding bytes.
    pub fn pending_bytes(&self) -> i64 {
        (self.state.load(Ordering::Acquire) & BYTE_MASK) as i64
    }

    /// Lowers the limits to a hint from the peer (values ≤ 0 mean "no opinion"; only
    /// smaller values are applied).
    pub fn apply_hint(&self, max_requests: i64, max_bytes: i64) {
        if max_requests > 0 {
            let cur = self.max_requests.load(Ordering::Relaxed);
            if cur <= 0 || max_requests < cur {
                self.max_requests.store(max_requests, Ordering::Relaxed);
            }
        }
        if max_bytes > 0 {
            let cur = self.max_bytes.load(Ordering::Relaxed);
            if cur <= 0 || max_bytes < cur {
                self.max_bytes.store(max_bytes, Ordering::Relaxed);
            }
        }
    }

    /// Current limits (requests, bytes).
    pub fn limits(&self) -> (i64, i64) {
        (
            self.max_requests.load(Ordering::Relaxed),
            self.max_bytes.load(Ordering::Relaxed),
        )
    }
}

/// Requests of one connection not yet answered, against the connection's cap
/// ([`crate::NioServerConfig::max_conn_in_requests`]). Taken on the connection's IO
/// thread before a request goes to its processor; returned from whichever thread drops
/// the request's [`Permit`].
#[derive(Debug)]
pub(crate) struct ConnInFlight {
    count: AtomicU32,
    max: u32,
}

impl ConnInFlight {
    /// A counter with cap `max` (at least 1).
    pub(crate) fn new(max: u32) -> Self {
        ConnInFlight {
            count: AtomicU32::new(0),
            max: max.max(1),
        }
    }

    /// Counts one more unanswered request, unless the cap is reached; the unit is
    /// returned when the [`ConnCredit`] is dropped.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<ConnCredit> {
        // Only the connection's IO thread adds; other threads only subtract, so a
        // load-then-add cannot overshoot the cap.
        if self.count.load(Ordering::Acquire) >= self.max {
            return None;
        }
        self.count.fetch_add(1, Ordering::AcqRel);
        Some(ConnCredit(self.clone()))
    }

    /// Unanswered requests now.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// The cap.
    pub(crate) fn max(&self) -> u32 {
        self.max
    }
}

/// One unit of a [`ConnInFlight`], given back on drop.
#[derive(Debug)]
pub(crate) struct ConnCredit(Arc<ConnInFlight>);

impl ConnCredit {
    /// One more unit of the same connection (for another holder of the same request),
    /// taken whatever the cap: the request was admitted already.
    fn another(&self) -> ConnCredit {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        ConnCredit(self.0.clone())
    }
}

impl Drop for ConnCredit {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request's credit: its share of a [`FlowControl`] (requests handed to executors)
/// and/or one unit of its connection's [`ConnInFlight`], returned when the last clone is
/// dropped.
///
/// On a server, the executor task and the context handed to `process` (and from there a
/// [`crate::Responder`]) each hold a clone, and a response carries one to the IO worker,
/// which drops it once the response is written: the credit is held until the response
/// has left, or nothing can answer any more.
///
/// A permit of the connection's unit alone (requests processed on the IO thread) is that
/// unit itself, counted once per holder, with no allocation: clones exist only while
/// the IO thread runs `process`, when that connection admits no other request, so the
/// cap sees one unit per request.
pub(crate) enum Permit {
    /// A connection's unit only.
    Conn(ConnCredit),
    /// Shared credit (flow control and/or a connection's unit).
    Shared(Arc<PermitInner>),
}

impl Clone for Permit {
    fn clone(&self) -> Self {
        match self {
            Permit::Conn(c) => Permit::Conn(c.another()),
            Permit::Shared(s) => Permit::Shared(s.clone()),
        }
    }
}

pub(crate) struct PermitInner {
    fc: Option<(Arc<FlowControl>, usize)>,
    _conn: Option<ConnCredit>,
}

impl Permit {
    /// Wraps credit of `bytes` already taken from `fc` with [`FlowControl::acquire`]
    /// (if any) and a connection's unit (if any).
    pub(crate) fn new(fc: Option<(Arc<FlowControl>, usize)>, conn: Option<ConnCredit>) -> Self {
        Permit::Shared(Arc::new(PermitInner { fc, _conn: conn }))
    }

    /// A connection's unit alone (no flow-control bytes): no allocation.
    pub(crate) fn conn(conn: ConnCredit) -> Self {
        Permit::Conn(conn)
    }
}

impl Drop for PermitInner {
    fn drop(&mut self) {
        if let Some((fc, bytes)) = &self.fc {
            fc.release(*bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_hint() {
        let f = FlowControl::new("outgoing", 2, 100);
        f.acquire(10).unwrap();
        f.acquire(10).unwrap();
        assert!(matches!(f.acquire(1), Err(NetError::FlowControl { .. })));
        f.release(10);
        assert!(f.acquire(95).is_err());
        f.acquire(50).unwrap();
        assert_eq!(f.pending_requests(), 2);
        f.apply_hint(1, 0);
        assert_eq!(f.limits(), (1, 100));
        f.apply_hint(5, 0);
        assert_eq!(f.limits(), (1, 100));
        assert_eq!(f.pending_bytes(), 60);
        f.release(10);
        f.release(50);
        assert_eq!((f.pending_requests(), f.pending_bytes()), (0, 0));
        // a lone oversize request passes; unlimited counters keep counting
        let u = FlowControl::new("x", 0, 10);
        u.acquire(100).unwrap();
        assert!(u.acquire(1).is_err());
        let u = FlowControl::new("x", 0, 0);
        for _ in 0..1000 {
            u.acquire(1 << 20).unwrap();
        }
        assert_eq!(u.pending_bytes(), 1000 << 20);
    }

    #[test]
    fn conn_in_flight_caps_and_gives_back_on_drop() {
        let c = Arc::new(ConnInFlight::new(2));
        let a = c.try_take().unwrap();
        let b = c.try_take().unwrap();
        assert!(c.try_take().is_none());
        assert_eq!(c.count(), 2);
        drop(a);
        let p = Permit::new(None, c.try_take());
        let p2 = p.clone();
        assert!(c.try_take().is_none());
        drop(p);
        assert_eq!(c.count(), 2, "a clone still holds the unit");
        drop(p2);
        drop(b);
        assert_eq!(c.count(), 0);
        // A permit with both kinds of credit returns both.
        let fc = Arc::new(FlowControl::new("t", 0, 0));
        fc.acquire(10).unwrap();
        let p = Permit::new(Some((fc.clone(), 10)), c.try_take());
        assert_eq!((fc.pending_requests(), c.count()), (1, 1));
        drop(p);
        assert_eq!(
            (fc.pending_requests(), fc.pending_bytes(), c.count()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_connection_permit_is_its_unit_counted_per_holder() {
        let c = Arc::new(ConnInFlight::new(2));
        let p = Permit::conn(c.try_take().unwrap());
        assert_eq!(c.count(), 1);
        let p2 = p.clone();
        assert_eq!(c.count(), 2, "each holder counts while both live");
        drop(p);
        assert_eq!(c.count(), 1, "the other holder keeps the request's unit");
        assert!(c.try_take().is_some_and(|x| {
            drop(x);
            true
        }));
        drop(p2);
        assert_eq!(c.count(), 0, "the last holder gives the unit back");
    }
}
