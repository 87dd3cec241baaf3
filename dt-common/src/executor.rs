//! [`Executor`]: the one way a layer hands work to another thread.
//!
//! dt-net's IO threads hand decoded requests to an executor (a request processor that
//! does not answer inline); dt-raft's log store hands its file work (write, fsync,
//! read) to one. dt-fiber implements it twice: for its blocking-IO pool (`IoPool`), and
//! for a fiber group (`GroupExecutor`, from `GroupHandle::executor`: the task runs on the
//! group's dispatcher thread, in the group: the reference's group executor, through
//! which a processor reaches a Raft group's fibers). A plain thread pool, or a thread per task in tests, implements it in a few
//! lines:
//!
//! ```
//! use dt_common::{Executor, Task};
//!
//! struct ThreadPerTask;
//! impl Executor for ThreadPerTask {
//!     fn execute(&self, task: Task) -> Result<(), Task> {
//!         std::thread::spawn(task);
//!         Ok(())
//!     }
//! }
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! ThreadPerTask.execute(Box::new(move || tx.send(42).unwrap())).ok().unwrap();
//! assert_eq!(rx.recv().unwrap(), 42);
//! ```

/// A unit of work handed to an [`Executor`].
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// Runs tasks handed over from other threads.
///
/// Contract for implementors:
/// * `execute` returns quickly: it queues, it never runs a long job on the caller's
///   thread, and it never runs `task` inline (the caller may hold state the task needs);
/// * every accepted task runs exactly once, eventually (a pool that is shutting down
///   may drop queued tasks; whoever waits on a dropped task's result must see it fail,
///   not hang);
/// * refusing is allowed (a full queue, a stopped pool): the task is handed back in
///   `Err` and the caller decides (dt-net answers the request FLOW_CONTROL, dt-raft's
///   log fails the operation).
pub trait Executor: Send + Sync + 'static {
    /// Queues `task` to run soon, or hands it back when refused.
    fn execute(&self, task: Task) -> Result<(), Task>;
}
