//! The error type shared by all dt layers.

use std::fmt;
use std::io;

/// Result alias using [`DtError`].
pub type DtResult<T> = Result<T, DtError>;

/// An error from any dt layer, in a shape a caller can `match` on.
///
/// Variants carry enough context to act on: what timed out, which peer failed, which
/// node is leader. Layers with richer errors of their own (the codec's `PbError`, the
/// network layer's remote response codes) convert into this type at their boundary.
#[derive(Debug)]
#[non_exhaustive]
pub enum DtError {
    /// A deadline passed before the operation completed.
    Timeout {
        /// What was being waited for.
        what: String,
    },
    /// A connection could not be made or was lost.
    Network(String),
    /// Bytes from the network or disk could not be decoded.
    Codec(String),
    /// A local or remote limit on outstanding work was reached; retry later.
    FlowControl(String),
    /// This node is not the Raft leader of the group.
    NotLeader {
        /// The leader's node id, when known.
        leader_id: Option<i32>,
    },
    /// The component is stopping or stopped and takes no more work.
    Stopped(String),
    /// The peer answered with a non-zero response code.
    Remote {
        /// The wire response code (`resp_code`).
        code: i32,
        /// The peer's message.
        msg: String,
    },
    /// An argument or a piece of configuration is invalid.
    InvalidArgument(String),
    /// An operating-system IO error.
    Io(io::Error),
    /// The operation was cancelled or interrupted.
    Cancelled(String),
    /// An internal invariant was broken: a bug in dt.
    Bug(String),
}

impl DtError {
    /// A [`DtError::Timeout`] for `what`.
    pub fn timeout(what: impl Into<String>) -> Self {
        DtError::Timeout { what: what.into() }
    }

    /// Whether retrying the same operation later may succeed (timeouts, network
    /// trouble, flow control, leadership changes, remote stop).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DtError::Timeout { .. }
                | DtError::Network(_)
                | DtError::FlowControl(_)
                | DtError::NotLeader { .. }
        )
    }
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::Timeout { what } => write!(f, "timed out: {what}"),
            DtError::Network(m) => write!(f, "network error: {m}"),
            DtError::Codec(m) => write!(f, "decode error: {m}"),
            DtError::FlowControl(m) => write!(f, "flow control: {m}"),
            DtError::NotLeader {
                leader_id: Some(id),
            } => {
                write!(f, "not the raft leader; the leader is node {id}")
            }
            DtError::NotLeader { leader_id: None } => {
                write!(f, "not the raft leader; the leader is unknown")
            }
            DtError::Stopped(m) => write!(f, "stopped: {m}"),
            DtError::Remote { code, msg } => write!(f, "peer answered code {code}: {msg}"),
            DtError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            DtError::Io(e) => write!(f, "io error: {e}"),
            DtError::Cancelled(m) => write!(f, "cancelled: {m}"),
            DtError::Bug(m) => write!(f, "internal error (a bug in dt): {m}"),
        }
    }
}

impl std::error::Error for DtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DtError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for DtError {
    fn from(e: io::Error) -> Self {
        DtError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_actionable() {
        assert_eq!(
            DtError::NotLeader { leader_id: Some(2) }.to_string(),
            "not the raft leader; the leader is node 2"
        );
        assert_eq!(
            DtError::timeout("raft commit").to_string(),
            "timed out: raft commit"
        );
        let e: DtError = io::Error::new(io::ErrorKind::NotFound, "x").into();
        assert!(matches!(e, DtError::Io(_)));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn retryable_classification() {
        assert!(DtError::timeout("x").is_retryable());
        assert!(DtError::FlowControl("x".into()).is_retryable());
        assert!(!DtError::Bug("x".into()).is_retryable());
        assert!(!DtError::Codec("x".into()).is_retryable());
    }
}
