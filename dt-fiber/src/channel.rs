//! FiberChannel: an unbounded queue consumed by fibers of one group.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::context;
use crate::dispatcher::{DispatcherShared, GroupJob};
use crate::error::FiberError;
use crate::group::{FiberGroup, GroupInner};
use crate::handle::GroupShared;
use crate::wait::{Outcome, Wait, WaitEnd, WaitList};

type RejectFn<T> = Box<dyn Fn(T, FiberError) + Send + Sync>;

struct ChanInner<T> {
    group: Rc<GroupInner>,
    queue: RefCell<VecDeque<T>>,
    not_empty: WaitList,
    remote: RefCell<std::sync::Weak<SenderInner<T>>>,
    /// Items offered by other threads, moved into `queue` by a drain task.
    remote_q: RefCell<Option<Arc<RemoteQueue<T>>>>,
    /// Buffer swapped with the remote queue's, to keep both allocations.
    spare: RefCell<Vec<T>>,
    /// Whether a sender was ever made (skips the remote queue check otherwise).
    has_remote: Cell<bool>,
}

/// The cross-thread side of a channel: a buffer behind a mutex that a drain task swaps
/// out in one go, so producers and the consumer touch shared memory once per batch,
/// not once per item.
struct RemoteQueue<T> {
    state: Mutex<RemoteState<T>>,
}

struct RemoteState<T> {
    items: Vec<T>,
    /// A drain task is queued (or running) on the dispatcher.
    scheduled: bool,
}

impl<T> RemoteQueue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, RemoteState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> ChanInner<T> {
    #[inline]
    fn push(&self, v: T) {
        self.queue.borrow_mut().push_back(v);
        self.not_empty.signal_one(true);
    }

    /// Moves items offered from other threads into the queue and wakes takers. The
    /// drain task passes `from_task` to re-arm the producers' wake-up.
    fn drain_remote(&self, from_task: bool) {
        if !self.has_remote.get() {
            return;
        }
        let q = self.remote_q.borrow();
        let Some(q) = q.as_ref() else { return };
        let mut spare = self.spare.borrow_mut();
        {
            let mut st = q.lock();
            std::mem::swap(&mut st.items, &mut *spare);
            if from_task {
                st.scheduled = false;
            }
        }
        let n = spare.len();
        if n == 0 {
            return;
        }
        {
            let mut queue = self.queue.borrow_mut();
            if queue.is_empty() {
                // Hand the whole buffer over instead of moving each item: a Vec becomes
                // a VecDeque in place, and the empty queue's buffer is the next spare.
                let old =
                    std::mem::replace(&mut *queue, VecDeque::from(std::mem::take(&mut *spare)));
                *spare = Vec::from(old);
            } else {
                queue.extend(spare.drain(..));
            }
        }
        drop(spare);
        for _ in 0..n {
            if !self.not_empty.signal_one(true) {
                break;
            }
        }
    }
}

/// An unbounded FIFO queue whose items are taken by fibers of one group.
///
/// Fibers [`offer`](FiberChannel::offer) and [`take`](FiberChannel::take) on the dispatcher
/// thread; other threads offer through a [`ChannelSender`].
pub struct FiberChannel<T> {
    inner: Rc<ChanInner<T>>,
}

impl<T> Clone for FiberChannel<T> {
    fn clone(&self) -> Self {
        FiberChannel {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for FiberChannel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberChannel")
            .field("len", &self.inner.queue.borrow().len())
            .finish()
    }
}

/// Which takes a [`Take`] future performs.
#[derive(Clone, Copy)]
struct TakeMode {
    timeout: Option<Duration>,
    on_stop: bool,
}

impl<T: 'static> FiberChannel<T> {
    /// A channel consumed by fibers of `group`.
    pub fn new(group: &FiberGroup) -> Self {
        FiberChannel {
            inner: Rc::new(ChanInner {
                group: group.inner.clone(),
                queue: RefCell::new(VecDeque::new()),
                not_empty: WaitList::new(),
                remote: RefCell::new(std::sync::Weak::new()),
                remote_q: RefCell::new(None),
                spare: RefCell::new(Vec::new()),
                has_remote: Cell::new(false),
            }),
        }
    }

    /// Appends an item and wakes one taker (at the front of its ready queue).
    #[inline]
    pub fn offer(&self, v: T) {
        self.inner.push(v);
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.inner.drain_remote(false);
        self.inner.queue.borrow().len()
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes an item without waiting.
    pub fn try_take(&self) -> Option<T> {
        self.inner.drain_remote(false);
        self.inner.queue.borrow_mut().pop_front()
    }

    /// Waits for an item.
    pub fn take(&self) -> Take<'_, T> {
        self.take_with(None, false)
    }

    /// Waits for an item at most `d`: `Ok(None)` on timeout.
    pub fn take_timeout(&self, d: Duration) -> TakeOpt<'_, T> {
        TakeOpt {
            t: self.take_with(Some(d), false),
        }
    }

    /// Waits for an item, or until the group is asked to stop (`Ok(None)`), or at most
    /// `timeout` if given (`Ok(None)`).
    pub fn take_or_stop(&self, timeout: Option<Duration>) -> TakeOpt<'_, T> {
        TakeOpt {
            t: self.take_with(timeout, true),
        }
    }

    /// Waits until at least one item is queued (or the timeout passes, or — with
    /// `return_on_stop` — the group is asked to stop), then moves every queued item into
    /// `out`. Resolves to the number of items moved (possibly 0).
    pub fn take_all<'a>(
        &'a self,
        out: &'a mut Vec<T>,
        timeout: Option<Duration>,
        return_on_stop: bool,
    ) -> TakeAll<'a, T> {
        TakeAll {
            t: self.take_with(timeout, return_on_stop),
            out,
        }
    }

    fn take_with(&self, timeout: Option<Duration>, on_stop: bool) -> Take<'_, T> {
        Take {
            chan: &self.inner,
            mode: TakeMode { timeout, on_stop },
            deadline: None,
            wait: Wait::new(),
        }
    }

    /// A `Send` handle for offering from other threads. Items offered once the group has
    /// finished go to `on_reject` if set (else they are dropped with a warning).
    pub fn sender(&self) -> ChannelSender<T>
    where
        T: Send,
    {
        self.sender_inner(None)
    }

    /// Like [`FiberChannel::sender`] with a handler for items that arrive after the group
    /// finished; it runs on the dispatcher thread (or in the offering thread when the
    /// rejection is noticed there).
    pub fn sender_with_reject(
        &self,
        on_reject: impl Fn(T, FiberError) + Send + Sync + 'static,
    ) -> ChannelSender<T>
    where
        T: Send,
    {
        self.sender_inner(Some(Box::new(on_reject)))
    }

    fn sender_inner(&self, on_reject: Option<RejectFn<T>>) -> ChannelSender<T>
    where
        T: Send,
    {
        if on_reject.is_none() {
            if let Some(s) = self.inner.remote.borrow().upgrade() {
                return ChannelSender { inner: s };
            }
        }
        let q = {
            let mut q = self.inner.remote_q.borrow_mut();
            q.get_or_insert_with(|| {
                Arc::new(RemoteQueue {
                    state: Mutex::new(RemoteState {
                        items: Vec::new(),
                        scheduled: false,
                    }),
                })
            })
            .clone()
        };
        self.inner.has_remote.set(true);
        let g = &self.inner.group;
        let slot = g.register_remote(self.inner.clone()).ok();
        let inner = Arc::new(SenderInner {
            disp: g.core().shared.clone(),
            group: g.shared.clone(),
            slot,
            q,
            on_reject,
        });
        if inner.on_reject.is_none() {
            *self.inner.remote.borrow_mut() = Arc::downgrade(&inner);
        }
        ChannelSender { inner }
    }
}

/// The future of [`FiberChannel::take`].
#[must_use = "futures do nothing unless awaited"]
pub struct Take<'a, T> {
    chan: &'a ChanInner<T>,
    mode: TakeMode,
    deadline: Option<i64>,
    wait: Wait,
}

impl<T> Take<'_, T> {
    /// `Ok(Some)` with an item, `Ok(None)` on timeout / stop.
    fn poll_opt(&mut self) -> Poll<Result<Option<T>, FiberError>> {
        loop {
            if let Some(v) = self.chan.queue.borrow_mut().pop_front() {
                return Poll::Ready(Ok(Some(v)));
            }
            if !self.mode.on_stop && self.mode.timeout.is_none() {
                match self.wait.poll(&[&self.chan.not_empty], None) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(_)) => {
                        self.wait = Wait::new();
                        continue;
                    }
                }
            }
            let Some(group) = context::current_group() else {
                return Poll::Ready(Err(FiberError::NotInFiber));
            };
            if self.mode.on_stop && group.should_stop() {
                return Poll::Ready(Ok(None));
            }
            let timeout = match self.mode.timeout {
                None => None,
                Some(d) => {
                    let now = group.core().now().nano_time;
                    let dl = *self.deadline.get_or_insert_with(|| {
                        now.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                    });
                    Some(Duration::from_nanos((dl - now).max(0) as u64))
                }
            };
            let r = if self.mode.on_stop {
                self.wait
                    .poll(&[&self.chan.not_empty, group.stop_list()], timeout)
            } else {
                self.wait.poll(&[&self.chan.not_empty], timeout)
            };
            match r {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(Outcome::Timeout)) => {
                    return Poll::Ready(Ok(self.chan.queue.borrow_mut().pop_front()));
                }
                Poll::Ready(Ok(_)) => {
                    self.wait = Wait::new();
                }
            }
        }
    }
}

impl<T> Future for Take<'_, T> {
    type Output = Result<T, FiberError>;
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Fast path, inlined into the awaiting fiber: an item is there.
        if let Some(v) = this.chan.queue.borrow_mut().pop_front() {
            return Poll::Ready(Ok(v));
        }
        // A plain take with nothing queued: wait for the channel (first poll), or learn
        // that the wait is still pending.
        if !this.mode.on_stop && this.mode.timeout.is_none() {
            match this.wait.poll_end(&[&this.chan.not_empty], None) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(WaitEnd::Done(_)) => this.wait = Wait::new(),
                Poll::Ready(e) => {
                    if let Err(e) = e.into_result() {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
        this.poll_slow()
    }
}

impl<T> Take<'_, T> {
    fn poll_slow(&mut self) -> Poll<Result<T, FiberError>> {
        match self.poll_opt() {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(v))) => Poll::Ready(Ok(v)),
            Poll::Ready(Ok(None)) => Poll::Ready(Err(FiberError::Timeout {
                what: "channel item",
            })),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

/// The future of [`FiberChannel::take_timeout`] and [`FiberChannel::take_or_stop`].
#[must_use = "futures do nothing unless awaited"]
pub struct TakeOpt<'a, T> {
    t: Take<'a, T>,
}

impl<T> Future for TakeOpt<'_, T> {
    type Output = Result<Option<T>, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().t.poll_opt()
    }
}

/// The future of [`FiberChannel::take_all`].
#[must_use = "futures do nothing unless awaited"]
pub struct TakeAll<'a, T> {
    t: Take<'a, T>,
    out: &'a mut Vec<T>,
}

impl<T> Future for TakeAll<'_, T> {
    type Output = Result<usize, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.t.poll_opt() {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(None)) => Poll::Ready(Ok(0)),
            Poll::Ready(Ok(Some(first))) => {
                let mut q = this.t.chan.queue.borrow_mut();
                let n = 1 + q.len();
                if this.out.is_empty() && !q.is_empty() {
                    // Swap buffers rather than move each item: the queue (whose first
                    // item was just taken from its front) becomes `out` in place when its
                    // items start at its buffer's start, as after `drain_remote`.
                    q.push_front(first);
                    let taken =
                        std::mem::replace(&mut *q, VecDeque::from(std::mem::take(this.out)));
                    *this.out = Vec::from(taken);
                } else {
                    this.out.push(first);
                    this.out.extend(q.drain(..));
                }
                Poll::Ready(Ok(n))
            }
        }
    }
}

struct SenderInner<T> {
    disp: Arc<DispatcherShared>,
    group: Arc<GroupShared>,
    slot: Option<usize>,
    q: Arc<RemoteQueue<T>>,
    on_reject: Option<RejectFn<T>>,
}

impl<T> SenderInner<T> {
    fn reject(&self, v: T, e: FiberError) {
        match &self.on_reject {
            Some(f) => f(v, e),
            None => log::warn!("channel item for group '{}' dropped: {e}", self.group.name),
        }
    }

    fn reject_queued(&self, e: &FiberError) {
        let items = {
            let mut st = self.q.lock();
            st.scheduled = false;
            std::mem::take(&mut st.items)
        };
        for v in items {
            self.reject(v, e.clone());
        }
    }
}

/// Drains the queued items into the channel on the group's thread (posted by
/// [`ChannelSender::offer`] once per batch), or rejects them when the group is gone.
impl<T: Send + 'static> GroupJob for SenderInner<T> {
    fn run(&self, g: Option<&Rc<GroupInner>>) {
        let slot = self.slot.unwrap_or(usize::MAX);
        let chan = g
            .and_then(|g| g.remote_get(slot))
            .and_then(|a| a.downcast::<ChanInner<T>>().ok());
        match chan {
            Some(c) => c.drain_remote(true),
            None => self.reject_queued(&FiberError::GroupFinished {
                group: self.group.name.clone(),
            }),
        }
    }
}

impl<T> Drop for SenderInner<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let _ = self.disp.post_group(
                self.group.id,
                Box::new(move |g: Option<&Rc<GroupInner>>| {
                    if let Some(g) = g {
                        drop(g.remote_remove(slot));
                    }
                }),
            );
        }
    }
}

/// An item a [`ChannelSender`] could not deliver, handed back with the reason.
#[derive(Debug)]
pub struct Rejected<T> {
    /// The item.
    pub item: T,
    /// Why it was rejected.
    pub reason: FiberError,
}

/// Offers items into a [`FiberChannel`] from any thread.
///
/// Items go into a lock-free queue; the dispatcher is poked once per batch, not once per
/// item, so many threads can fire into one group cheaply.
pub struct ChannelSender<T> {
    inner: Arc<SenderInner<T>>,
}

impl<T> Clone for ChannelSender<T> {
    fn clone(&self) -> Self {
        ChannelSender {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for ChannelSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSender")
            .field("group", &self.inner.group.name)
            .finish()
    }
}

impl<T: Send + 'static> ChannelSender<T> {
    /// Offers an item. Rejected at once (item handed back) when the group has finished or
    /// the dispatcher stopped; an item accepted here but arriving after the group
    /// finished goes to the reject handler.
    pub fn offer(&self, v: T) -> Result<(), Rejected<T>> {
        let s = &self.inner;
        if s.group.is_finished() || s.slot.is_none() {
            return Err(Rejected {
                item: v,
                reason: FiberError::GroupFinished {
                    group: s.group.name.clone(),
                },
            });
        }
        if s.disp.is_stopped() {
            return Err(Rejected {
                item: v,
                reason: s.disp.stopped_error(),
            });
        }
        let need_task = {
            let mut st = s.q.lock();
            st.items.push(v);
            !std::mem::replace(&mut st.scheduled, true)
        };
        if need_task {
            // the sender itself is the drain job: posting it clones an Arc, no box
            let posted = s.disp.post_group_job(s.group.id, self.inner.clone());
            if let Err(e) = posted {
                s.reject_queued(&e);
            }
        }
        Ok(())
    }
}
