//! Flow control: counters of outstanding requests and bytes with hard limits. Exceeding a
//! limit is a typed error ([`NetError::FlowControl`]) at once, never a hang.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::NetError;

/// Outstanding requests and bytes against limits (both sides of the layer use it: the
/// client for outgoing requests, the server for requests handed to executors).
#[derive(Debug)]
pub struct FlowControl {
    max_requests: AtomicI64,
    max_bytes: AtomicI64,
    requests: AtomicI64,
    bytes: AtomicI64,
    name: &'static str,
}

impl FlowControl {
    /// Limits of `max_requests` and `max_bytes`; 0 disables a limit.
    pub fn new(name: &'static str, max_requests: i64, max_bytes: i64) -> Self {
        FlowControl {
            max_requests: AtomicI64::new(max_requests),
            max_bytes: AtomicI64::new(max_bytes),
            requests: AtomicI64::new(0),
            bytes: AtomicI64::new(0),
            name,
        }
    }

    /// Takes a permit for one request of `bytes` bytes, or fails with the limit reached.
    pub fn acquire(&self, bytes: usize) -> Result<(), NetError> {
        let bytes = bytes as i64;
        let n = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        let b = self.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let max_r = self.max_requests.load(Ordering::Relaxed);
        let max_b = self.max_bytes.load(Ordering::Relaxed);
        if max_r > 0 && n > max_r {
            self.release(bytes as usize);
            return Err(NetError::FlowControl {
                what: format!("max {} request: {max_r}", self.name),
            });
        }
        // One request larger than the byte limit still passes alone (as the reference does).
        if max_b > 0 && b > max_b && b != bytes {
            self.release(bytes as usize);
            return Err(NetError::FlowControl {
                what: format!("max {} request bytes: {max_b}", self.name),
            });
        }
        Ok(())
    }

    /// Returns a permit.
    pub fn release(&self, bytes: usize) {
        self.requests.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes as i64, Ordering::AcqRel);
    }

    /// Outstanding requests.
    pub fn pending_requests(&self) -> i64 {
        self.requests.load(Ordering::Acquire)
    }

    /// Outstanding bytes.
    pub fn pending_bytes(&self) -> i64 {
        self.bytes.load(Ordering::Acquire)
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
    }
}
