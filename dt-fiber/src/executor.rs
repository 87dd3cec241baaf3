//! A fiber group as a [`dt_common::Executor`]: the reference's group executor.

use std::fmt;
use std::sync::Arc;

use dt_common::{Executor, Task};

use crate::dispatcher::DispatcherShared;
use crate::handle::{GroupHandle, GroupShared};

/// The [`Executor`] of one fiber group: a task handed to it runs on the group's dispatcher
/// thread, inside the group.
///
/// This is how work from other threads reaches a group's fibers when the caller only
/// knows the [`Executor`] trait; in particular it is what dt-net's request processors
/// are given for `RunOn::Executor` (`RunOn::Executor(Arc::new(handle.executor()))`): the
/// IO thread decodes a request and executes the handler through the Raft group's
/// `GroupExecutor`, so the handler runs on the group's dispatcher thread with the group's
/// `!Send` state at hand.
///
/// Inside a task, [`current_group`](crate::current_group) is the group: the task may
/// spawn fibers into it, create channels, futures and conditions, and reach
/// thread-local group state, exactly like a closure given to [`GroupHandle::execute`].
/// Tasks are run in the order they were queued (FIFO with other work posted to the same
/// dispatcher), so the tasks of one submitting thread run in submission order.
///
/// Refusal: `execute` hands the task back (`Err(task)`) once shutdown of the group was
/// requested, the group has finished, or the dispatcher is stopping or stopped. A task
/// accepted just before that may still be dropped without running (it is never run
/// outside its group); dropping it releases what it captured, so a waiter on its result
/// sees the failure instead of hanging. A panicking task is contained like a panicking
/// fiber: it is logged and the group is shut down with a fatal error.
///
/// The executor is cheap to clone, `Send + Sync`, and may outlive the group.
///
/// ```
/// use dt_common::Executor;
/// use dt_fiber::{Dispatcher, DispatcherConfig};
/// use std::sync::mpsc;
/// use std::time::Duration;
///
/// let dispatcher = Dispatcher::start(DispatcherConfig::new("dispatcher")).unwrap();
/// let group = dispatcher.start_group("raft-group-1").unwrap();
/// let exec: Box<dyn Executor> = Box::new(group.executor());
/// let (tx, rx) = mpsc::channel();
/// exec.execute(Box::new(move || {
///     // On the dispatcher thread, inside the group: start a fiber there.
///     let g = dt_fiber::current_group().unwrap();
///     g.spawn("handler", async move { tx.send(7).unwrap() }).unwrap();
/// }))
/// .ok()
/// .unwrap();
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
/// group.request_shutdown().unwrap();
/// assert!(exec.execute(Box::new(|| {})).is_err());
/// assert!(dispatcher.stop(Duration::from_secs(5)).stopped);
/// ```
#[derive(Clone)]
pub struct GroupExecutor {
    group: Arc<GroupShared>,
    disp: Arc<DispatcherShared>,
}

impl GroupExecutor {
    /// The group's name.
    pub fn group_name(&self) -> &str {
        &self.group.name
    }

    /// Whether `execute` refuses tasks now: group shutdown requested or finished, or the
    /// dispatcher stopping or stopped.
    pub fn is_closed(&self) -> bool {
        self.group.is_finished()
            || self
                .group
                .should_stop
                .load(std::sync::atomic::Ordering::Acquire)
            || self.disp.is_stop_requested()
            || self.disp.is_stopped()
    }
}

impl fmt::Debug for GroupExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupExecutor")
            .field("group", &self.group.name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Executor for GroupExecutor {
    fn execute(&self, task: Task) -> Result<(), Task> {
        if self.is_closed() {
            return Err(task);
        }
        self.disp.post_task(self.group.id, task)
    }
}

impl GroupHandle {
    /// The group as an [`Executor`] (see [`GroupExecutor`]): what dt-net's request
    /// processors are given to run requests on this group's fibers.
    pub fn executor(&self) -> GroupExecutor {
        GroupExecutor {
            group: self.shared.clone(),
            disp: self.disp.clone(),
        }
    }
}
