//! The blocking-IO bridge: a small pool of threads for file work that fibers await.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{check_thread_name, panic_message, FiberError};
use crate::future::FiberFuture;
use crate::group::{current_group, FiberGroup};

type Job = Box<dyn FnOnce() + Send>;

struct PoolInner {
    /// Shared with every job (for its panic message) without an allocation per job.
    name: Arc<str>,
    tx: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A pool of threads for blocking work (file writes, fsync, file allocation) that must
/// never run on a dispatcher thread.
///
/// A fiber hands a closure to [`IoPool::submit`] and awaits the returned
/// [`FiberFuture`]; the closure runs on a pool thread and its result is delivered back
/// to the fiber's group on the dispatcher thread. A panicking job fails its future with
/// [`FiberError::Panicked`] and does not kill the pool thread.
///
/// The handle is cheap to clone and `Send + Sync`; one pool can serve several
/// dispatchers.
#[derive(Clone)]
pub struct IoPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for IoPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoPool")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl IoPool {
    /// Starts `threads` threads named `name-N`. Refused with
    /// [`FiberError::InvalidConfig`] naming the parameter, before any thread starts, when
    /// `threads` is 0 or `name` is empty or contains a NUL byte.
    pub fn new(name: &str, threads: usize) -> Result<IoPool, FiberError> {
        check_thread_name("IoPool name", name)?;
        if threads == 0 {
            return Err(FiberError::InvalidConfig {
                field: "IoPool threads",
                reason: format!("io pool '{name}' needs at least one thread"),
            });
        }
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx: Receiver<Job> = rx.clone();
            let thread = format!("{name}-{i}");
            let h = std::thread::Builder::new()
                .name(thread.clone())
                .spawn(move || {
                    for job in rx.iter() {
                        job();
                    }
                })
                .map_err(|e| FiberError::ThreadStart {
                    thread,
                    message: e.to_string(),
                })?;
            handles.push(h);
        }
        Ok(IoPool {
            inner: Arc::new(PoolInner {
                name: Arc::from(name),
                tx: Mutex::new(Some(tx)),
                threads: Mutex::new(handles),
            }),
        })
    }

    /// Runs `job` on a pool thread; the returned future (owned by the current fiber's
    /// group) completes with its result. Fails with [`FiberError::NotInFiber`] outside a
    /// group. Await it with `.await` (moves the value out).
    pub fn submit<T, F>(&self, job: F) -> Result<FiberFuture<T>, FiberError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let g = current_group().ok_or(FiberError::NotInFiber)?;
        Ok(self.submit_in(&g, job))
    }

    /// Like [`IoPool::submit`] for an explicit group (on its dispatcher thread).
    pub fn submit_in<T, F>(&self, group: &FiberGroup, job: F) -> FiberFuture<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let fut = FiberFuture::new(group);
        let completer = match fut.completer() {
            Ok(c) => c,
            Err(e) => {
                fut.fail(e);
                return fut;
            }
        };
        let pool = self.inner.name.clone();
        let wrapped: Job = Box::new(move || {
            let r = match catch_unwind(AssertUnwindSafe(job)) {
                Ok(v) => Ok(v),
                Err(p) => {
                    let message = panic_message(p.as_ref());
                    log::error!("io pool '{pool}' job panicked: {message}");
                    Err(FiberError::Panicked {
                        name: format!("io pool '{pool}' job"),
                        message,
                    })
                }
            };
            // The dispatcher may have stopped meanwhile; nobody is left to tell.
            let _ = completer.complete_with(r);
        });
        let sent = {
            let tx = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
            match tx.as_ref() {
                Some(tx) => tx.send(wrapped).is_ok(),
                None => false,
            }
        };
        if !sent {
            fut.fail(FiberError::Cancelled(format!(
                "io pool '{}' is shut down",
                self.inner.name
            )));
        }
        fut
    }

    /// Runs a plain `job` on a pool thread, with no completion future: for layers that
    /// bring their own completion (dt-raft's log store). A panicking job is logged and
    /// the thread survives. Fails with [`FiberError::Cancelled`] (dropping `job`) once the
    /// pool is shut down.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) -> Result<(), FiberError> {
        let pool = self.inner.name.clone();
        let wrapped: Job = Box::new(move || {
            if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
                log::error!(
                    "io pool '{pool}' job panicked: {}",
                    panic_message(p.as_ref())
                );
            }
        });
        let tx = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|tx| tx.send(wrapped)) {
            Some(Ok(())) => Ok(()),
            _ => Err(FiberError::Cancelled(format!(
                "io pool '{}' is shut down",
                self.inner.name
            ))),
        }
    }

    /// Stops accepting jobs, lets the queued ones run, and joins the threads.
    pub fn shutdown(&self) {
        drop(
            self.inner
                .tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The blocking-IO pool as the [`Executor`](dt_common::Executor) that dt-raft's log
/// store (and any other layer) hands its file work to. A task is refused once the pool
/// is shut down; a panicking task is logged and the pool thread survives.
impl dt_common::Executor for IoPool {
    fn execute(&self, task: dt_common::Task) -> Result<(), dt_common::Task> {
        let tx = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = tx.as_ref() else {
            return Err(task);
        };
        let pool = self.inner.name.clone();
        let wrapped: Job = Box::new(move || {
            if let Err(p) = catch_unwind(AssertUnwindSafe(task)) {
                log::error!(
                    "io pool '{pool}' task panicked: {}",
                    panic_message(p.as_ref())
                );
            }
        });
        // The pool's threads hold the receivers until `shutdown` clears `tx` under this
        // lock, so the send cannot fail here; if it somehow did, the task is dropped,
        // which fails whatever waits on it.
        if tx.send(wrapped).is_err() {
            log::error!("io pool '{}' lost a task", self.inner.name);
        }
        Ok(())
    }
}
