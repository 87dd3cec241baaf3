//! [`Permits`]: the client's outbound flow control, the reference client's way: a
//! request that finds the limit reached waits for a permit (first come, first served)
//! until its deadline, and only then fails with a typed error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use dt_net::NetError;

type Go = Box<dyn FnOnce(Result<bool, NetError>) + Send>;

struct Waiter {
    id: u64,
    bytes: usize,
    go: Go,
}

#[derive(Default)]
struct Queue {
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

/// Bits of the packed counter that count bytes (the rest count requests).
const BYTE_BITS: u32 = 40;
const BYTE_MASK: u64 = (1 << BYTE_BITS) - 1;
/// The most requests the packed counter holds at once.
const MAX_COUNT: u64 = (1 << (64 - BYTE_BITS)) - 1;

fn unpack(v: u64) -> (u64, u64) {
    (v >> BYTE_BITS, v & BYTE_MASK)
}

/// Outstanding requests and bytes against limits, with a FIFO of waiters.
///
/// While nobody waits, taking and returning a permit is one atomic operation each on
/// a packed counter (requests in the high 24 bits, bytes in the low 40; a request's
/// bytes count up to 512 GiB); the waiters' queue and its mutex are touched only when
/// a request has to wait, and by the releases that then hand permits over. A release
/// and a request that starts waiting cannot miss each other: the waiter announces
/// itself (`has_waiters`) before it checks the counter a last time, and a release
/// looks for waiters after it has decremented the counter.
pub(crate) struct Permits {
    max_requests: usize,
    max_bytes: usize,
    counter: AtomicU64,
    has_waiters: AtomicBool,
    queue: Mutex<Queue>,
}

/// What [`Permits::acquire`] did.
pub(crate) enum Acquired {
    /// The permit was taken; `go` was called.
    Now,
    /// Queued with this id; `go` runs when a permit frees (or [`Permits::expire`]).
    Queued(u64),
}

impl Permits {
    /// Limits of `max_requests` requests and `max_bytes` bytes (0: no limit).
    pub(crate) fn new(max_requests: usize, max_bytes: usize) -> Self {
        Permits {
            max_requests,
            max_bytes,
            counter: AtomicU64::new(0),
            has_waiters: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn clamp(bytes: usize) -> u64 {
        (bytes as u64).min(BYTE_MASK / 2)
    }

    /// Takes a permit for `bytes` if it fits now (one compare-and-swap loop).
    fn try_take(&self, bytes: u64) -> bool {
        let mut cur = self.counter.load(Ordering::SeqCst);
        loop {
            let (n, b) = unpack(cur);
            let r = (self.max_requests == 0 || n < self.max_requests as u64) && n < MAX_COUNT;
            // One request larger than the byte limit still passes alone.
            let fits_b = self.max_bytes == 0 || b == 0 || b + bytes <= self.max_bytes as u64;
            if !r || !fits_b || b + bytes > BYTE_MASK {
                return false;
            }
            match self.counter.compare_exchange_weak(
                cur,
                cur + (1 << BYTE_BITS) + bytes,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
    }

    /// Takes a permit for `bytes` now (calling `go(Ok(true))` on this thread), or queues
    /// `go` behind the earlier waiters (it gets `Ok(false)` from the thread that frees
    /// the permit). `wait` false fails at once instead of queuing (the reference's
    /// lock operations).
    pub(crate) fn acquire(
        &self,
        bytes: usize,
        wait: bool,
        go: impl FnOnce(Result<bool, NetError>) + Send + 'static,
    ) -> Acquired {
        let b = Self::clamp(bytes);
        if !self.has_waiters.load(Ordering::SeqCst) && self.try_take(b) {
            go(Ok(true));
            return Acquired::Now;
        }
        let mut q = self.lock();
        // Announced before the last check: a release from now on hands over.
        self.has_waiters.store(true, Ordering::SeqCst);
        if q.waiters.is_empty() && self.try_take(b) {
            self.has_waiters.store(false, Ordering::SeqCst);
            drop(q);
            go(Ok(true));
            return Acquired::Now;
        }
        if !wait {
            if q.waiters.is_empty() {
                self.has_waiters.store(false, Ordering::SeqCst);
            }
            drop(q);
            let what = format!(
                "max outstanding requests {} / bytes {} reached",
                self.max_requests, self.max_bytes
            );
            go(Err(NetError::FlowControl { what }));
            return Acquired::Now;
        }
        q.next_id += 1;
        let id = q.next_id;
        q.waiters.push_back(Waiter {
            id,
            bytes,
            go: Box::new(go),
        });
        Acquired::Queued(id)
    }

    /// Fails waiter `id` (its deadline passed) unless it got its permit already.
    pub(crate) fn expire(&self, id: u64, since: Instant) {
        let w = {
            let mut q = self.lock();
            let Some(i) = q.waiters.iter().position(|w| w.id == id) else {
                return;
            };
            let w = q.waiters.remove(i);
            if q.waiters.is_empty() {
                self.has_waiters.store(false, Ordering::SeqCst);
            }
            w
        };
        if let Some(w) = w {
            (w.go)(Err(NetError::FlowControl {
                what: format!(
                    "no permit within the deadline (waited {} ms; limits {} requests / {} bytes)",
                    since.elapsed().as_millis(),
                    self.max_requests,
                    self.max_bytes
                ),
            }));
        }
    }

    /// Returns a permit taken for `bytes` and hands freed permits to waiters in order.
    pub(crate) fn release(&self, bytes: usize) {
        self.counter
            .fetch_sub((1 << BYTE_BITS) + Self::clamp(bytes), Ordering::SeqCst);
        if !self.has_waiters.load(Ordering::SeqCst) {
            return;
        }
        let mut ready = Vec::new();
        {
            let mut q = self.lock();
            while let Some(w) = q.waiters.front() {
                if !self.try_take(Self::clamp(w.bytes)) {
                    break;
                }
                ready.push(q.waiters.pop_front().expect("front exists").go);
            }
            if q.waiters.is_empty() {
                self.has_waiters.store(false, Ordering::SeqCst);
            }
        }
        for go in ready {
            go(Ok(false));
        }
    }

    /// Outstanding requests (taken permits).
    pub(crate) fn outstanding(&self) -> usize {
        unpack(self.counter.load(Ordering::SeqCst)).0 as usize
    }

    /// Requests waiting for a permit.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn waiters_get_permits_in_order_and_expire() {
        let p = Permits::new(1, 0);
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        assert!(matches!(
            p.acquire(10, true, move |r| t.send((1, r.is_ok())).unwrap()),
            Acquired::Now
        ));
        let t = tx.clone();
        let a = p.acquire(10, true, move |r| t.send((2, r.is_ok())).unwrap());
        let t = tx.clone();
        let b = p.acquire(10, true, move |r| t.send((3, r.is_ok())).unwrap());
        let t = tx.clone();
        p.acquire(10, false, move |r| t.send((4, r.is_ok())).unwrap());
        assert_eq!(rx.try_recv().unwrap(), (1, true));
        assert_eq!(rx.try_recv().unwrap(), (4, false));
        let (Acquired::Queued(_), Acquired::Queued(b)) = (a, b) else {
            panic!()
        };
        p.expire(b, Instant::now());
        assert_eq!(rx.try_recv().unwrap(), (3, false));
        assert_eq!(p.waiting(), 1);
        p.release(10);
        assert_eq!(rx.try_recv().unwrap(), (2, true));
        assert_eq!(p.outstanding(), 1);
        p.expire(b, Instant::now()); // gone already: nothing happens
        assert!(rx.try_recv().is_err());
    }

    /// Threads racing for few permits: every request gets its permit (no wake-up is
    /// lost between a release and a request starting to wait), never more than the
    /// limits at once, and the counters return to zero.
    #[test]
    fn racing_acquires_and_releases_lose_no_wake_up() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::Duration;
        for (max_r, max_b) in [(3, 0), (0, 300), (2, 250)] {
            let p = Arc::new(Permits::new(max_r, max_b));
            let in_use = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (p, in_use) = (p.clone(), in_use.clone());
                    std::thread::spawn(move || {
                        for i in 0..3000 {
                            let bytes = 50 + (t * 7 + i) % 60;
                            let (tx, rx) = mpsc::channel();
                            p.acquire(bytes, true, move |r| tx.send(r.is_ok()).unwrap());
                            let ok = rx
                                .recv_timeout(Duration::from_secs(10))
                                .expect("a permit (lost wake-up?)");
                            assert!(ok);
                            let n = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                            if max_r > 0 {
                                assert!(n <= max_r, "{n} permits out");
                            }
                            in_use.fetch_sub(1, Ordering::SeqCst);
                            p.release(bytes);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!((p.outstanding(), p.waiting()), (0, 0));
            assert_eq!(p.counter.load(std::sync::atomic::Ordering::SeqCst), 0);
        }
    }
}
