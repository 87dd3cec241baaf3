//! The server's business thread: one thread running tasks in order (admin commands, the
//! reference's `bizThreads = 1`). Work that may block briefly (name resolution, waiting
//! for a group to start) runs here, never on an IO thread.

use std::sync::Mutex;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};
use dt_common::{Executor, Task};

/// A single-thread executor.
pub(crate) struct BizExecutor {
    tx: Mutex<Option<Sender<Task>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl BizExecutor {
    pub fn start(name: String) -> std::io::Result<BizExecutor> {
        let (tx, rx) = unbounded::<Task>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            for t in rx {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(t)).is_err() {
                    log::error!("a server business task panicked");
                }
            }
        })?;
        Ok(BizExecutor {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Lets queued tasks finish and joins the thread.
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Executor for BizExecutor {
    fn execute(&self, task: Task) -> Result<(), Task> {
        match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send(task).map_err(|e| e.into_inner()),
            None => Err(task),
        }
    }
}
