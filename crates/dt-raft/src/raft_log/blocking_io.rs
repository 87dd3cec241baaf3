//! `BlockingIo`: where the log's file work runs. dt-fiber's blocking-IO pool implements
//! it; [`ThreadPoolIo`] is a plain std-thread implementation for tests, tools and
//! embedders without an executor.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};

/// A job for an IO thread.
pub type IoJob = Box<dyn FnOnce() + Send + 'static>;

/// Runs blocking file work off the Raft thread.
///
/// Contract: `submit` never blocks for long and never runs `job` inline on the
/// caller's thread (the caller may hold locks the job needs); every submitted job runs
/// exactly once, eventually, unless the pool is shutting down. Jobs may run
/// concurrently on several threads; the log orders its writes itself.
pub trait BlockingIo: Send + Sync + 'static {
    /// Queues `job` to run on an IO thread.
    fn submit(&self, job: IoJob);
}

/// A fixed pool of std threads fed by a channel.
pub struct ThreadPoolIo {
    tx: Option<Sender<IoJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl ThreadPoolIo {
    /// Starts `n` (at least 1) threads named `dt-io-<k>`.
    pub fn new(n: usize) -> Arc<ThreadPoolIo> {
        let (tx, rx) = unbounded::<IoJob>();
        let threads = (0..n.max(1))
            .map(|k| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("dt-io-{k}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            job();
                        }
                    })
                    .expect("spawn IO thread")
            })
            .collect();
        Arc::new(ThreadPoolIo {
            tx: Some(tx),
            threads,
        })
    }
}

impl BlockingIo for ThreadPoolIo {
    fn submit(&self, job: IoJob) {
        if let Some(tx) = &self.tx {
            // The receivers live as long as the pool; a send can only fail during drop.
            let _ = tx.send(job);
        }
    }
}

impl Drop for ThreadPoolIo {
    fn drop(&mut self) {
        self.tx = None;
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            // The last Arc may be dropped by a job on one of our own threads.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// dt-fiber's blocking-IO pool runs the log's file work: the normal setup when the log
/// belongs to a Raft group living on a dt-fiber `Dispatcher`. Jobs submitted after the
/// pool was shut down are dropped, which fails their completions.
impl BlockingIo for dt_fiber::IoPool {
    fn submit(&self, job: IoJob) {
        if let Err(e) = self.execute(job) {
            log::warn!("log store job dropped: {e}");
        }
    }
}
