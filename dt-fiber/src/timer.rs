//! The timer heap and the time-based primitives: sleep, sleep until shutdown, yield.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::context;
use crate::error::FiberError;
use crate::wait::{Outcome, Wait, WaitCell};

struct TimerEntry {
    deadline: i64,
    seq: u64,
    cell: Rc<WaitCell>,
}

impl PartialEq for TimerEntry {
    fn eq(&self, o: &Self) -> bool {
        self.deadline == o.deadline && self.seq == o.seq
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TimerEntry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top;
    // equal deadlines fire in registration order.
    fn cmp(&self, o: &Self) -> Ordering {
        o.deadline
            .cmp(&self.deadline)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

/// Timers of sleeping and timed-waiting fibers, ordered by wake-up time.
#[derive(Default)]
pub(crate) struct TimerHeap {
    heap: RefCell<BinaryHeap<TimerEntry>>,
    seq: std::cell::Cell<u64>,
}

impl TimerHeap {
    pub(crate) fn add(&self, deadline: i64, cell: Rc<WaitCell>) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let mut heap = self.heap.borrow_mut();
        // Drop stale entries (waits ended by a signal) when they dominate the heap.
        if heap.len() >= 1024 && heap.len().is_power_of_two() {
            let live = heap.iter().filter(|e| e.cell.is_pending()).count();
            if live < heap.len() / 2 {
                heap.retain(|e| e.cell.is_pending());
            }
        }
        heap.push(TimerEntry {
            deadline,
            seq,
            cell,
        });
    }

    /// Whether no timer (pending or stale) is registered.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.borrow().is_empty()
    }

    /// The earliest deadline of a still-pending wait, dropping stale entries on top.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        let mut heap = self.heap.borrow_mut();
        while let Some(top) = heap.peek() {
            if top.cell.is_pending() {
                return Some(top.deadline);
            }
            heap.pop();
        }
        None
    }

    /// Fires every wait whose deadline is `<= now` with a timeout. Returns how many fired.
    pub(crate) fn fire_expired(&self, now: i64) -> usize {
        let mut n = 0;
        loop {
            let entry = {
                let mut heap = self.heap.borrow_mut();
                match heap.peek() {
                    Some(top) if top.deadline <= now => heap.pop(),
                    _ => None,
                }
            };
            match entry {
                Some(e) => n += e.cell.fire(Outcome::Timeout, false) as usize,
                None => return n,
            }
        }
    }

    pub(crate) fn clear(&self) {
        self.heap.borrow_mut().clear();
    }
}

/// Suspends the current fiber for `d` (by the dispatcher's clock, which may be virtual).
///
/// Fails only with [`FiberError::Interrupted`] (or [`FiberError::NotInFiber`]).
pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        wait: Wait::new(),
        d,
        until_shutdown: false,
    }
}

/// Suspends the current fiber for `d`, but resumes early when its group is asked to shut
/// down. Resolves to `Ok(true)` when it ended because of the shutdown request (also when
/// the request came before the call), `Ok(false)` when the time ran out.
pub fn sleep_until_shutdown(d: Duration) -> Sleep {
    Sleep {
        wait: Wait::new(),
        d,
        until_shutdown: true,
    }
}

/// Awaits `fut` for at most `d` (by the dispatcher's clock): `Some(output)` when it
/// finished in time, `None` when the time ran out first (or the sleep failed: the
/// fiber was interrupted).
///
/// ```
/// use dt_fiber::{sleep, within, Simulation};
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let mut sim = Simulation::new(1);
/// let g = sim.new_group("g");
/// let seen = Rc::new(Cell::new((None, None)));
/// let s2 = seen.clone();
/// g.spawn("t", async move {
///     let fast = within(async { 7 }, Duration::from_secs(1)).await;
///     let slow = within(sleep(Duration::from_secs(10)), Duration::from_secs(1)).await;
///     s2.set((fast, slow.map(|_| ())));
/// })
/// .unwrap();
/// assert!(sim.run_until(|| seen.get().0.is_some(), Duration::from_secs(60)));
/// assert_eq!(seen.get(), (Some(7), None));
/// assert_eq!(sim.elapsed(), Duration::from_secs(1), "gave up after the limit");
/// ```
pub async fn within<T>(fut: impl Future<Output = T>, d: Duration) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = std::pin::pin!(sleep(d));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The future of [`sleep`] and [`sleep_until_shutdown`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    wait: Wait,
    d: Duration,
    until_shutdown: bool,
}

impl Future for Sleep {
    type Output = Result<bool, FiberError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.until_shutdown {
            let Some(group) = context::current_group() else {
                return Poll::Ready(Err(FiberError::NotInFiber));
            };
            if group.should_stop() {
                return Poll::Ready(Ok(true));
            }
            let r = this.wait.poll(&[group.stop_list()], Some(this.d));
            r.map(|o| o.map(|o| matches!(o, Outcome::Signaled(_))))
        } else {
            this.wait.poll(&[], Some(this.d)).map(|o| o.map(|_| false))
        }
    }
}

/// Lets the other ready fibers run: the current fiber resumes in the next dispatcher round.
#[inline]
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.get_mut().yielded = true;
        if !context::request_yield() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
