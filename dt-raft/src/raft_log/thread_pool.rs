//! [`ThreadPoolIo`]: a plain std-thread [`Executor`] for the log's file work, for tests,
//! tools and embedders without dt-fiber (whose `IoPool` is the normal choice).

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};
use dt_common::{Executor, Task};

/// A fixed pool of std threads fed by a channel.
pub struct ThreadPoolIo {
    tx: Option<Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl ThreadPoolIo {
    /// Starts `n` (at least 1) threads named `dt-io-<k>`.
    pub fn new(n: usize) -> Arc<ThreadPoolIo> {
        let (tx, rx) = unbounded::<Task>();
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

impl Executor for ThreadPoolIo {
    fn execute(&self, task: Task) -> Result<(), Task> {
        match &self.tx {
            Some(tx) => tx.send(task).map_err(|e| e.0),
            None => Err(task),
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
