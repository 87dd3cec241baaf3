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
    /// An invalid argument (unknown peer, started twice).
    InvalidArgument(String),
    /// A setting of [`crate::NioServerConfig`] or [`crate::NioClientConfig`] cannot work;
    /// returned by `start`.
    Config(ConfigError),
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

    /// Whether this is a bind failing because the address is already in use (another
    /// process, or an earlier instance, holds the port).
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, NetError::Io(e) if e.kind() == io::ErrorKind::AddrInUse)
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
            NetError::Config(e) => write!(f, "{e}"),
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

/// A setting that cannot work: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field of the config struct.
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad setting {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for NetError {
    fn from(e: ConfigError) -> Self {
        NetError::Config(e)
    }
}

/// Checks shared by the server's and the client's settings.
pub(crate) fn check_common(
    name: &str,
    max_packet_size: usize,
    max_body_size: usize,
    write_high_water: usize,
) -> Result<(), ConfigError> {
    if name.contains('\0') {
        return Err(ConfigError::new(
            "name",
            "contains a NUL byte (it names threads)",
        ));
    }
    if max_packet_size == 0 || max_packet_size > i32::MAX as usize {
        return Err(ConfigError::new(
            "max_packet_size",
            format!("{max_packet_size} is not in 1..=2^31-1 (the frame length is an i32)"),
        ));
    }
    if max_body_size == 0 || max_body_size > max_packet_size {
        return Err(ConfigError::new(
            "max_body_size",
            format!("{max_body_size} is not in 1..=max_packet_size ({max_packet_size})"),
        ));
    }
    if write_high_water == 0 {
        return Err(ConfigError::new(
            "write_high_water",
            "0 would never read a connection that has output pending",
        ));
    }
    Ok(())
}

/// A flow-control limit: 0 (unlimited) or positive.
pub(crate) fn check_limit(field: &'static str, v: i64) -> Result<(), ConfigError> {
    if v < 0 {
        return Err(ConfigError::new(
            field,
            format!("{v} is negative (0 means unlimited)"),
        ));
    }
    Ok(())
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
            e @ NetError::Config(_) => DtError::InvalidArgument(e.to_string()),
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
