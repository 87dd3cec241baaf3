//! FiberFuture: a value completed once, awaited by fibers.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::dispatcher::DispatcherShared;
use crate::error::FiberError;
use crate::group::{FiberGroup, GroupInner};
use crate::wait::{Outcome, Wait, WaitList};

type Callback<T> = Box<dyn FnOnce(&Result<T, FiberError>)>;

pub(crate) struct FutInner<T> {
    group: Rc<GroupInner>,
    result: RefCell<Option<Result<T, FiberError>>>,
    done: Cell<bool>,
    waiters: WaitList,
    callbacks: RefCell<Vec<Callback<T>>>,
}

impl<T> FutInner<T> {
    fn complete(&self, r: Result<T, FiberError>) -> bool {
        if self.done.get() {
            return false;
        }
        self.done.set(true);
        *self.result.borrow_mut() = Some(r);
        let cbs = std::mem::take(&mut *self.callbacks.borrow_mut());
        if !cbs.is_empty() {
            let res = self.result.borrow();
            if let Some(r) = res.as_ref() {
                for cb in cbs {
                    cb(r);
                }
            }
        }
        self.waiters.signal_all(true);
        true
    }
}

/// A future completed once — by a fiber of its group ([`FiberFuture::complete`]) or by
/// another thread through a [`FutureCompleter`] — and awaited by any number of fibers.
/// The first completion wins; later ones are ignored.
///
/// Await the value with [`FiberFuture::get`] (clones it) or by value with `.await` /
/// [`FiberFuture::take`] (moves it out; for values that are not `Clone`).
///
/// The future belongs to the group it was created in. If that group finishes while the
/// future is still pending, nothing can complete it any more: waits on it (from fibers
/// of other groups, or started later) fail with [`FiberError::GroupFinished`] naming the
/// owning group. A value completed before the group finished stays readable.
pub struct FiberFuture<T> {
    inner: Rc<FutInner<T>>,
}

impl<T> Clone for FiberFuture<T> {
    fn clone(&self) -> Self {
        FiberFuture {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for FiberFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberFuture")
            .field("done", &self.inner.done.get())
            .finish()
    }
}

impl<T: 'static> FiberFuture<T> {
    /// A new pending future owned by `group`.
    pub fn new(group: &FiberGroup) -> Self {
        FiberFuture {
            inner: Rc::new(FutInner {
                group: group.inner.clone(),
                result: RefCell::new(None),
                done: Cell::new(false),
                waiters: WaitList::new(),
                callbacks: RefCell::new(Vec::new()),
            }),
        }
    }

    /// A future already completed with `v`.
    pub fn completed(group: &FiberGroup, v: T) -> Self {
        let f = Self::new(group);
        f.complete(v);
        f
    }

    /// A future already failed with `e`.
    pub fn failed(group: &FiberGroup, e: FiberError) -> Self {
        let f = Self::new(group);
        f.fail(e);
        f
    }

    /// Completes with a value. Returns false if it was already completed.
    pub fn complete(&self, v: T) -> bool {
        self.inner.complete(Ok(v))
    }

    /// Completes with an error. Returns false if it was already completed.
    pub fn fail(&self, e: FiberError) -> bool {
        self.inner.complete(Err(e))
    }

    /// Completes with a result.
    pub fn complete_with(&self, r: Result<T, FiberError>) -> bool {
        self.inner.complete(r)
    }

    /// Whether it has completed.
    pub fn is_done(&self) -> bool {
        self.inner.done.get()
    }

    /// Registers a callback run synchronously at completion (at once if already done).
    pub fn on_complete(&self, f: impl FnOnce(&Result<T, FiberError>) + 'static) {
        if self.inner.done.get() {
            let r = self.inner.result.borrow();
            match r.as_ref() {
                Some(r) => f(r),
                None => f(&Err(FiberError::ResultTaken)),
            }
        } else {
            self.inner.callbacks.borrow_mut().push(Box::new(f));
        }
    }

    /// A future completed with `f(&value)` when this one completes (errors pass through).
    pub fn map<U: 'static>(&self, f: impl FnOnce(&T) -> U + 'static) -> FiberFuture<U> {
        let out = FiberFuture::<U> {
            inner: Rc::new(FutInner {
                group: self.inner.group.clone(),
                result: RefCell::new(None),
                done: Cell::new(false),
                waiters: WaitList::new(),
                callbacks: RefCell::new(Vec::new()),
            }),
        };
        let o2 = out.clone();
        self.on_complete(move |r| {
            o2.complete_with(r.as_ref().map(f).map_err(|e| e.clone()));
        });
        out
    }

    /// A future completed when all of `futs` completed successfully, or failed with the
    /// first failure. Completes at once for an empty slice.
    pub fn all_of(group: &FiberGroup, futs: &[FiberFuture<T>]) -> FiberFuture<()> {
        let out = FiberFuture::<()>::new(group);
        let left = Rc::new(Cell::new(futs.len()));
        if futs.is_empty() {
            out.complete(());
        }
        for f in futs {
            let o2 = out.clone();
            let left = left.clone();
            f.on_complete(move |r| match r {
                Ok(_) => {
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        o2.complete(());
                    }
                }
                Err(e) => {
                    o2.fail(e.clone());
                }
            });
        }
        out
    }

    /// Moves the value out when completed. Later `take`/`get` calls see
    /// [`FiberError::ResultTaken`].
    pub fn take(&self) -> Take<T> {
        Take {
            inner: self.inner.clone(),
            timeout: None,
            wait: Wait::new(),
        }
    }

    /// Like [`FiberFuture::take`], failing with [`FiberError::Timeout`] after `d`.
    pub fn take_timeout(&self, d: Duration) -> Take<T> {
        Take {
            inner: self.inner.clone(),
            timeout: Some(d),
            wait: Wait::new(),
        }
    }

    /// A `Send` handle that completes this future from any thread (an IO thread, a
    /// network worker). The completion is delivered on the dispatcher thread. If the
    /// completer is dropped without completing, the future fails with
    /// [`FiberError::Cancelled`].
    pub fn completer(&self) -> Result<FutureCompleter<T>, FiberError>
    where
        T: Send,
    {
        let g = &self.inner.group;
        let slot = g.register_remote(self.inner.clone())?;
        Ok(FutureCompleter {
            disp: g.core().shared.clone(),
            gid: g.id(),
            slot,
            done: false,
            _t: PhantomData,
        })
    }
}

impl<T: Clone + 'static> FiberFuture<T> {
    /// Waits for completion and returns a clone of the value (or the error).
    pub fn get(&self) -> Get<T> {
        Get {
            inner: self.inner.clone(),
            timeout: None,
            wait: Wait::new(),
        }
    }

    /// Like [`FiberFuture::get`], failing with [`FiberError::Timeout`] after `d`.
    pub fn get_timeout(&self, d: Duration) -> Get<T> {
        Get {
            inner: self.inner.clone(),
            timeout: Some(d),
            wait: Wait::new(),
        }
    }
}

/// Waits until `inner` is completed.
///
/// A future is completed by its own group (directly, or by a [`FutureCompleter`] whose
/// completion is delivered there). Once that group has finished nothing can complete it
/// any more, so a pending future of a finished group fails its waiters with
/// [`FiberError::GroupFinished`] naming the owning group, instead of leaving them
/// waiting forever. A fiber of another group registers on the owning group's finish list
/// as well, so it is woken when that group finishes while it waits.
fn poll_done<T>(
    inner: &FutInner<T>,
    wait: &mut Wait,
    timeout: Option<Duration>,
) -> Poll<Result<(), FiberError>> {
    loop {
        if inner.done.get() {
            return Poll::Ready(Ok(()));
        }
        let owner = &inner.group;
        if owner.is_finished() {
            return Poll::Ready(Err(FiberError::GroupFinished {
                group: owner.name().to_string(),
            }));
        }
        let same_group = crate::context::with_group_ref(|g| {
            g.is_some_and(|g| std::ptr::eq(g, Rc::as_ptr(owner)))
        });
        let r = if same_group {
            // The waiter goes away with the group: no need to watch it finish.
            wait.poll(&[&inner.waiters], timeout)
        } else {
            wait.poll(&[&inner.waiters, owner.finish_list()], timeout)
        };
        match r {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Outcome::Timeout)) => {
                return Poll::Ready(if inner.done.get() {
                    Ok(())
                } else {
                    Err(FiberError::Timeout {
                        what: "fiber future",
                    })
                })
            }
            Poll::Ready(Ok(_)) => {
                if !inner.done.get() {
                    *wait = Wait::new();
                }
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        }
    }
}

/// The future of [`FiberFuture::get`].
#[must_use = "futures do nothing unless awaited"]
pub struct Get<T> {
    inner: Rc<FutInner<T>>,
    timeout: Option<Duration>,
    wait: Wait,
}

impl<T: Clone> Future for Get<T> {
    type Output = Result<T, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match poll_done(&this.inner, &mut this.wait, this.timeout) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => Poll::Ready(match this.inner.result.borrow().as_ref() {
                Some(Ok(v)) => Ok(v.clone()),
                Some(Err(e)) => Err(e.clone()),
                None => Err(FiberError::ResultTaken),
            }),
        }
    }
}

/// The future of [`FiberFuture::take`] and of `.await` on a [`FiberFuture`].
#[must_use = "futures do nothing unless awaited"]
pub struct Take<T> {
    inner: Rc<FutInner<T>>,
    timeout: Option<Duration>,
    wait: Wait,
}

impl<T> Future for Take<T> {
    type Output = Result<T, FiberError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match poll_done(&this.inner, &mut this.wait, this.timeout) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let mut r = this.inner.result.borrow_mut();
                Poll::Ready(match r.take() {
                    Some(Ok(v)) => {
                        *r = Some(Err(FiberError::ResultTaken));
                        Ok(v)
                    }
                    Some(Err(e)) => {
                        *r = Some(Err(e.clone()));
                        Err(e)
                    }
                    None => Err(FiberError::ResultTaken),
                })
            }
        }
    }
}

impl<T: 'static> IntoFuture for FiberFuture<T> {
    type Output = Result<T, FiberError>;
    type IntoFuture = Take<T>;
    fn into_future(self) -> Take<T> {
        self.take()
    }
}

/// Completes a [`FiberFuture`] from any thread. Obtained from
/// [`FiberFuture::completer`]. Dropping it without completing fails the future with
/// [`FiberError::Cancelled`].
pub struct FutureCompleter<T: 'static> {
    disp: Arc<DispatcherShared>,
    gid: u64,
    slot: usize,
    done: bool,
    _t: PhantomData<fn(T)>,
}

impl<T: 'static> fmt::Debug for FutureCompleter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutureCompleter")
            .field("group", &self.gid)
            .finish()
    }
}

impl<T: Send + 'static> FutureCompleter<T> {
    /// Completes the future with `v` (delivered on the dispatcher thread).
    /// Fails when the dispatcher has stopped.
    pub fn complete(self, v: T) -> Result<(), FiberError> {
        self.complete_with(Ok(v))
    }

    /// Fails the future with `e`.
    pub fn fail(self, e: FiberError) -> Result<(), FiberError> {
        self.complete_with(Err(e))
    }

    /// Completes the future with a result.
    pub fn complete_with(mut self, r: Result<T, FiberError>) -> Result<(), FiberError> {
        self.done = true;
        deliver(&self.disp, self.gid, self.slot, r)
    }
}

fn deliver<T: Send + 'static>(
    disp: &DispatcherShared,
    gid: u64,
    slot: usize,
    r: Result<T, FiberError>,
) -> Result<(), FiberError> {
    disp.post_group(
        gid,
        Box::new(move |g: Option<&Rc<GroupInner>>| {
            let Some(g) = g else { return };
            let Some(any) = g.remote_remove(slot) else {
                return;
            };
            if let Ok(inner) = any.downcast::<FutInner<T>>() {
                inner.complete(r);
            }
        }),
    )
}

impl<T: 'static> Drop for FutureCompleter<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let slot = self.slot;
        let _ = self.disp.post_group(
            self.gid,
            Box::new(move |g: Option<&Rc<GroupInner>>| {
                let Some(g) = g else { return };
                let Some(any) = g.remote_remove(slot) else {
                    return;
                };
                if let Ok(inner) = any.downcast::<FutInner<T>>() {
                    inner.complete(Err(FiberError::Cancelled(
                        "the completer was dropped without completing".into(),
                    )));
                }
            }),
        );
    }
}
