//! [`NetError`]: what can go wrong in the network layer, in a shape a caller can match.

use std::fmt;
use std::io;

use dt_codec::PbError;
use dt_common::DtError;

use crate::codes::CmdCodes;

/// An error of the network layer.
///
/// Each variant says what to do about it: [`NetError::Timeout`] and
/// [`NetError::FlowControl`] are worth a retry later, [`NetError::Remote`] carries the
/// peer's response code ([`CmdCodes`]), [`NetError::Stopped`] means the client or server is
/// shutting down.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// The request's deadline passed before its response arrived (or before it could be
    /// sent).
    Timeout {
        /// What timed out.
        what: &'static str,
    },
    /// A local limit on outstanding requests or bytes was reached; retry later or raise
    /// `max_out_requests` / `max_out_bytes`.
    FlowControl {
        /// Which limit, with its value.
        what: String,
    },
    /// The peer answered with a non-zero `resp_code`.
    Remote {
        /// The response code (see [`CmdCodes`]).
        code: i32,
        /// The peer's message (may be empty).
        msg: String,
    },
    /// The connection was closed (by the peer, by an error, or because the peer was
    /// removed) while the request was outstanding.
    ConnectionClosed(String),
    /// No connection could be made, or no peer is connected.
    Connect(String),
    /// The client or server is stopping or stopped.
    Stopped,
    /// The packet would exceed a size limit (the local one, or the peer's hint).
    TooLarge {
        /// The packet or body size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The response body could not be decoded, or the response did not match its request.
    Decode(String),
    /// An invalid argument (unknown peer, bad configuration).
    InvalidArgument(String),
    /// An operating-system error (bind, spawn, poll).
    Io(io::Error),
}

impl NetError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            NetError::Timeout { .. }
            | NetError::FlowControl { .. }
            | NetError::ConnectionClosed(_)
            | NetError::Connect(_) => true,
            NetError::Remote { code, .. } => matches!(
                *code,
                CmdCodes::NOT_INIT | CmdCodes::STOPPING | CmdCodes::FLOW_CONTROL
            ),
            _ => false,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Timeout { what } => write!(f, "timeout: {what}"),
            NetError::FlowControl { what } => write!(f, "flow control: {what}"),
            NetError::Remote { code, msg } => {
                write!(f, "remote error {} ({code}): {msg}", CmdCodes::name(*code))
            }
            NetError::ConnectionClosed(s) => write!(f, "connection closed: {s}"),
            NetError::Connect(s) => write!(f, "connect failed: {s}"),
            NetError::Stopped => write!(f, "stopped"),
            NetError::TooLarge { size, max } => {
                write!(f, "packet too large: {size} bytes, limit {max}")
            }
            NetError::Decode(s) => write!(f, "decode error: {s}"),
            NetError::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            NetError::Io(e) => write!(f, "io error: {e}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        NetError::Io(e)
    }
}

impl From<PbError> for NetError {
    fn from(e: PbError) -> Self {
        NetError::Decode(e.to_string())
    }
}

impl From<NetError> for DtError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Timeout { what } => DtError::timeout(what),
            NetError::FlowControl { what } => DtError::FlowControl(what),
            NetError::Remote { code, msg } => match code {
                CmdCodes::FLOW_CONTROL => DtError::FlowControl(msg),
                CmdCodes::STOPPING => DtError::Stopped(msg),
                _ => DtError::Remote { code, msg },
            },
            NetError::ConnectionClosed(s) => DtError::Network(format!("connection closed: {s}")),
            NetError::Connect(s) => DtError::Network(format!("connect failed: {s}")),
            NetError::Stopped => DtError::Stopped("network layer stopped".into()),
            e @ NetError::TooLarge { .. } => DtError::InvalidArgument(e.to_string()),
            NetError::Decode(s) => DtError::Codec(s),
            NetError::InvalidArgument(s) => DtError::InvalidArgument(s),
            NetError::Io(e) => DtError::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_dt_error() {
        let e: DtError = NetError::Remote {
            code: CmdCodes::STOPPING,
            msg: String::new(),
        }
        .into();
        assert!(matches!(e, DtError::Stopped(_)));
        let e: DtError = NetError::Timeout { what: "rpc" }.into();
        assert!(matches!(e, DtError::Timeout { .. }));
        assert!(NetError::FlowControl { what: "x".into() }.is_retryable());
        assert!(!NetError::Stopped.is_retryable());
    }
}
