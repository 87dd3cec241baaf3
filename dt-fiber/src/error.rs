//! The error type of fiber operations.

use std::fmt;
use std::sync::Arc;

use dt_common::DtError;

/// Why a fiber operation did not produce its value.
///
/// It is `Clone` because one failure may be delivered to several waiters (every fiber
/// awaiting a failed [`FiberFuture`](crate::FiberFuture) sees it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FiberError {
    /// A wait with a timeout ran out of time.
    Timeout {
        /// What was being waited for.
        what: &'static str,
    },
    /// The waiting fiber was interrupted with [`Fiber::interrupt`](crate::Fiber::interrupt).
    Interrupted,
    /// The group has finished (or is unknown to its dispatcher) and takes no more work.
    GroupFinished {
        /// The group's name.
        group: String,
    },
    /// The dispatcher has stopped and takes no more work.
    DispatcherStopped {
        /// The dispatcher's name.
        dispatcher: String,
    },
    /// The operation was cancelled, e.g. the other side of a cross-thread completion was
    /// dropped without completing.
    Cancelled(String),
    /// The producer failed the operation with this error.
    Failed(Arc<DtError>),
    /// A fiber, task or blocking job panicked.
    Panicked {
        /// The fiber, task or job name.
        name: String,
        /// The panic message.
        message: String,
    },
    /// The value of a [`FiberFuture`](crate::FiberFuture) was already moved out by `take`.
    ResultTaken,
    /// A fiber primitive was awaited outside a fiber (not on a dispatcher thread, or not
    /// inside a fiber's poll). Await it from a fiber spawned into a group.
    NotInFiber,
    /// A configuration value is invalid; checked when the dispatcher or pool is built,
    /// before any thread starts.
    InvalidConfig {
        /// The field or parameter, e.g. `"DispatcherConfig.name"` or `"IoPool threads"`.
        field: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// The operating system refused to start a thread.
    ThreadStart {
        /// The thread's name.
        thread: String,
        /// The operating system's error.
        message: String,
    },
    /// An unrecoverable error was reported with
    /// [`FiberGroup::fatal`](crate::FiberGroup::fatal); the group is shutting down.
    Fatal {
        /// The group's name.
        group: String,
        /// What went wrong.
        message: String,
    },
}

impl FiberError {
    /// Wraps a [`DtError`] as the failure of a fiber operation.
    pub fn failed(e: DtError) -> Self {
        FiberError::Failed(Arc::new(e))
    }
}

impl fmt::Display for FiberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FiberError::Timeout { what } => write!(f, "timed out waiting for {what}"),
            FiberError::Interrupted => write!(f, "fiber interrupted while waiting"),
            FiberError::GroupFinished { group } => {
                write!(f, "fiber group '{group}' has finished and takes no more work")
            }
            FiberError::DispatcherStopped { dispatcher } => {
                write!(f, "dispatcher '{dispatcher}' has stopped and takes no more work")
            }
            FiberError::Cancelled(m) => write!(f, "cancelled: {m}"),
            FiberError::Failed(e) => write!(f, "failed: {e}"),
            FiberError::Panicked { name, message } => write!(f, "'{name}' panicked: {message}"),
            FiberError::ResultTaken => {
                write!(f, "the future's value was already taken by another awaiter; use get() to share it")
            }
            FiberError::NotInFiber => write!(
                f,
                "fiber primitive used outside a fiber; await it from a fiber spawned into a FiberGroup"
            ),
            FiberError::InvalidConfig { field, reason } => {
                write!(f, "invalid fiber configuration: {field}: {reason}")
            }
            FiberError::ThreadStart { thread, message } => {
                write!(f, "cannot start thread '{thread}': {message}")
            }
            FiberError::Fatal { group, message } => {
                write!(f, "fatal error in fiber group '{group}', which is shutting down: {message}")
            }
        }
    }
}

impl std::error::Error for FiberError {}

impl From<FiberError> for DtError {
    fn from(e: FiberError) -> Self {
        match e {
            FiberError::Timeout { what } => DtError::timeout(what),
            FiberError::Interrupted => DtError::Cancelled("fiber interrupted".into()),
            FiberError::GroupFinished { .. } | FiberError::DispatcherStopped { .. } => {
                DtError::Stopped(e.to_string())
            }
            FiberError::Cancelled(m) => DtError::Cancelled(m),
            FiberError::Failed(inner) => match Arc::try_unwrap(inner) {
                Ok(d) => d,
                Err(shared) => DtError::Bug(format!("shared failure: {shared}")),
            },
            FiberError::InvalidConfig { .. } => DtError::InvalidArgument(e.to_string()),
            FiberError::ThreadStart { .. } => DtError::Io(std::io::Error::other(e.to_string())),
            FiberError::Fatal { .. } => DtError::Stopped(e.to_string()),
            FiberError::Panicked { .. } | FiberError::ResultTaken | FiberError::NotInFiber => {
                DtError::Bug(e.to_string())
            }
        }
    }
}

/// Checks a name that becomes an OS thread name (or its prefix): not empty (it names the
/// threads in logs and stack dumps) and without NUL bytes (which the OS refuses).
pub(crate) fn check_thread_name(field: &'static str, name: &str) -> Result<(), FiberError> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.contains('\0') {
        "must not contain a NUL byte"
    } else {
        return Ok(());
    };
    Err(FiberError::InvalidConfig {
        field,
        reason: format!("{name:?} {reason}"),
    })
}

/// Extracts a readable message from a panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do_and_convert_to_dt_error() {
        let e = FiberError::NotInFiber;
        assert!(e.to_string().contains("spawned into a FiberGroup"));
        let e = FiberError::Fatal {
            group: "raft-1".into(),
            message: "log write failed".into(),
        };
        assert!(e.to_string().contains("raft-1"));
        assert!(matches!(DtError::from(e), DtError::Stopped(_)));
        assert!(matches!(
            DtError::from(FiberError::Timeout { what: "x" }),
            DtError::Timeout { .. }
        ));
        let inner = FiberError::failed(DtError::Codec("bad".into()));
        assert!(matches!(DtError::from(inner), DtError::Codec(_)));
        assert!(matches!(
            DtError::from(FiberError::Interrupted),
            DtError::Cancelled(_)
        ));
    }
}
