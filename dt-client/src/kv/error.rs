//! The error of a DtKV operation: one matchable enum that keeps the business code, the
//! server's response code and the transport error apart.

use std::fmt;

use dt_codec::PbError;
use dt_net::{CmdCodes, NetError};

use super::codes::{KvCode, KvCommands};

/// Why a DtKV operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum KvError {
    /// Refused before sending: a key, value, TTL or batch that the client rules reject
    /// (`wire-protocol.md` §6.3). Nothing was sent.
    InvalidArgument(String),
    /// The server processed the request and answered with a business code that is a
    /// failure for this command (for example NOT_OWNER for a put-temp). A write that
    /// failed this way still consumed a log index.
    Business {
        /// The command.
        command: i32,
        /// The packet's `biz_code`.
        code: KvCode,
        /// The packet's `msg` (the reason of an INVALID_TTL pre-check), often empty.
        msg: String,
    },
    /// The server answered with a non-zero response code (`CmdCodes`): not the leader
    /// (with its view of the leader, when it has one), group not found, flow control,
    /// stopping, ...
    Server {
        /// The response code.
        resp_code: i32,
        /// The message.
        msg: String,
        /// For NOT_RAFT_LEADER: the node id the server names as leader (`extra`).
        leader_hint: Option<i32>,
    },
    /// The request did not complete at the transport level (timeout, connection
    /// closed, no connection, local flow control, stopped).
    Net(NetError),
    /// The response body could not be decoded.
    Malformed(PbError),
    /// A batch's answer did not hold one result per key asked (a server fault: the
    /// batch may or may not have been done, so read the keys back before relying on it).
    ResultCount {
        /// The command (DTKV_BATCH_GET, DTKV_BATCH_PUT or DTKV_BATCH_REMOVE).
        command: i32,
        /// How many keys the request held.
        keys: usize,
        /// How many results the answer held.
        results: usize,
    },
    /// No leader could be found for the group: every configured member was asked with
    /// RAFT_QUERY_STATUS and none named a configured member as leader (or the
    /// deadline passed first). Discovery for the group then fails fast for 1 s, as the
    /// reference client's does.
    NoLeader {
        /// The group.
        group_id: i32,
        /// What the members answered.
        reason: String,
    },
}

impl KvError {
    /// The business code, when the server answered with one.
    pub fn biz_code(&self) -> Option<KvCode> {
        match self {
            KvError::Business { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            KvError::Business { command, code, msg } => {
                let c = KvCommands::name(*command).unwrap_or("DTKV command");
                write!(f, "{c} failed: {code}")?;
                if !msg.is_empty() {
                    write!(f, " ({msg})")?;
                }
                Ok(())
            }
            KvError::Server {
                resp_code,
                msg,
                leader_hint,
            } => {
                write!(f, "server answered {}", CmdCodes::name(*resp_code))?;
                if let Some(l) = leader_hint {
                    write!(f, " (leader is node {l})")?;
                }
                if !msg.is_empty() {
                    write!(f, ": {msg}")?;
                }
                Ok(())
            }
            KvError::Net(e) => write!(f, "transport error: {e}"),
            KvError::Malformed(e) => write!(f, "malformed response: {e}"),
            KvError::ResultCount {
                command,
                keys,
                results,
            } => {
                let c = KvCommands::name(*command).unwrap_or("DTKV command");
                write!(
                    f,
                    "{c}: the server answered {results} results for {keys} keys \
                     (read the keys back to learn what was done)"
                )
            }
            KvError::NoLeader { group_id, reason } => {
                write!(f, "can't find leader of group {group_id}: {reason}")
            }
        }
    }
}

impl std::error::Error for KvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KvError::Net(e) => Some(e),
            KvError::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetError> for KvError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Remote { code, msg } => KvError::Server {
                resp_code: code,
                msg,
                leader_hint: None,
            },
            e => KvError::Net(e),
        }
    }
}
