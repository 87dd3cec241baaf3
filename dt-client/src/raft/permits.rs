//! [`Permits`]: the client's outbound flow control, the reference client's way: a
//! request that finds the limit reached waits for a permit (first come, first served)
//! until its deadline, and only then fails with a typed error.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use dt_net::NetError;

type Go = Box<dyn FnOnce(Result<(), NetError>) + Send>;

struct Waiter {
    id: u64,
    bytes: usize,
    go: Go,
}

#[derive(Default)]
struct State {
    requests: usize,
    bytes: usize,
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

/// Outstanding requests and bytes against limits, with a FIFO of waiters.
pub(crate) struct Permits {
    max_requests: usize,
    max_bytes: usize,
    state: Mutex<State>,
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
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fits(&self, s: &State, bytes: usize) -> bool {
        let r = self.max_requests == 0 || s.requests < self.max_requests;
        // One request larger than the byte limit still passes alone.
        let b = self.max_bytes == 0 || s.bytes == 0 || s.bytes + bytes <= self.max_bytes;
        r && b
    }

    /// Takes a permit for `bytes` now (calling `go(Ok)`), or queues `go` behind the
    /// earlier waiters. `wait` false fails at once instead of queuing (the reference's
    /// lock operations).
    pub(crate) fn acquire(
        &self,
        bytes: usize,
        wait: bool,
        go: impl FnOnce(Result<(), NetError>) + Send + 'static,
    ) -> Acquired {
        let mut s = self.lock();
        if s.waiters.is_empty() && self.fits(&s, bytes) {
            s.requests += 1;
            s.bytes += bytes;
            drop(s);
            go(Ok(()));
            return Acquired::Now;
        }
        if !wait {
            let what = format!(
                "max outstanding requests {} / bytes {} reached",
                self.max_requests, self.max_bytes
            );
            drop(s);
            go(Err(NetError::FlowControl { what }));
            return Acquired::Now;
        }
        s.next_id += 1;
        let id = s.next_id;
        s.waiters.push_back(Waiter {
            id,
            bytes,
            go: Box::new(go),
        });
        Acquired::Queued(id)
    }

    /// Fails waiter `id` (its deadline passed) unless it got its permit already.
    pub(crate) fn expire(&self, id: u64, since: Instant) {
        let w = {
            let mut s = self.lock();
            let Some(i) = s.waiters.iter().position(|w| w.id == id) else {
                return;
            };
            s.waiters.remove(i)
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
        let mut ready = Vec::new();
        {
            let mut s = self.lock();
            s.requests = s.requests.saturating_sub(1);
            s.bytes = s.bytes.saturating_sub(bytes);
            while let Some(w) = s.waiters.front() {
                if !self.fits(&s, w.bytes) {
                    break;
                }
                let w = s.waiters.pop_front().expect("front exists");
                s.requests += 1;
                s.bytes += w.bytes;
                ready.push(w.go);
            }
        }
        for go in ready {
            go(Ok(()));
        }
    }

    /// Outstanding requests (taken permits).
    pub(crate) fn outstanding(&self) -> usize {
        self.lock().requests
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
}
