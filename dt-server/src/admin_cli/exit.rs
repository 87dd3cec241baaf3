//! `dt-admin`'s failures and their exit codes (the reference's 101–105).

use std::fmt;

use dt_client::kv::KvError;

/// Exit code: bad command line (unknown subcommand, missing or malformed option).
pub const EXIT_USAGE: i32 = 101;
/// Exit code: the servers file cannot be read.
pub const EXIT_LOAD_CONFIG: i32 = 102;
/// Exit code: the admin client cannot be set up from the file (no or bad `servers`,
/// bad group lists, client start failure).
pub const EXIT_CLIENT_INIT: i32 = 103;
/// Exit code: the command was sent and failed, or a check before it failed.
pub const EXIT_COMMAND_FAILED: i32 = 104;
/// Exit code: anything else (for example stdout closed).
pub const EXIT_OTHER: i32 = 105;

/// Why a command did not succeed, after it was parsed and the client was set up.
#[derive(Debug)]
pub enum CommandError {
    /// A request failed: the server's refusal (code and message), a timeout, an
    /// unreachable node, no leader found, an unknown node or group id.
    Client(KvError),
    /// transfer-leader with the same old and new leader.
    SameLeader(i32),
    /// transfer-leader: the group's leader is not `--old-leader`.
    OldLeaderMismatch {
        /// `--old-leader`.
        expected: i32,
        /// The leader found.
        actual: i32,
    },
    /// transfer-leader: `--new-leader` is not one of the group's nodes in the servers
    /// file.
    NewLeaderNotInGroup {
        /// `--new-leader`.
        new_leader: i32,
        /// The group's members and observers in the file.
        servers: Vec<i32>,
    },
    /// commit-change: the leader's last config change index is not `--prepare-index`.
    PrepareIndexMismatch {
        /// `--prepare-index`.
        expected: i64,
        /// The leader's `lastConfigChangeIndex`.
        actual: i64,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Client(e) => write!(f, "{e}"),
            CommandError::SameLeader(id) => write!(f, "old and new leader id equals: {id}"),
            CommandError::OldLeaderMismatch { expected, actual } => write!(
                f,
                "old leader not match: the leader is node {actual}, not --old-leader {expected}"
            ),
            CommandError::NewLeaderNotInGroup {
                new_leader,
                servers,
            } => write!(
                f,
                "new leader not found in servers list: {new_leader} (the group's nodes in the \
                 servers file are {servers:?})"
            ),
            CommandError::PrepareIndexMismatch { expected, actual } => write!(
                f,
                "Prepare index mismatch: expected {expected}, but server has \
                 lastConfigChangeIndex={actual}"
            ),
        }
    }
}

impl From<KvError> for CommandError {
    fn from(e: KvError) -> Self {
        CommandError::Client(e)
    }
}

/// A `dt-admin` failure; [`AdminError::exit_code`] is the process's exit code.
#[derive(Debug)]
pub enum AdminError {
    /// The command line is wrong (101); the text is the message with the usage.
    Usage(String),
    /// The servers file cannot be read (102).
    LoadConfig {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The client cannot be set up from the file (103).
    ClientInit(String),
    /// The command failed (104).
    Command(CommandError),
    /// Anything else (105).
    Other(String),
}

impl AdminError {
    /// The reference's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Usage(_) => EXIT_USAGE,
            AdminError::LoadConfig { .. } => EXIT_LOAD_CONFIG,
            AdminError::ClientInit(_) => EXIT_CLIENT_INIT,
            AdminError::Command(_) => EXIT_COMMAND_FAILED,
            AdminError::Other(_) => EXIT_OTHER,
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Usage(m) => f.write_str(m.trim_end()),
            AdminError::LoadConfig { path, reason } => {
                write!(f, "Failed to load config file {path}: {reason}")
            }
            AdminError::ClientInit(m) => write!(f, "Failed to initialize the admin client: {m}"),
            AdminError::Command(e) => write!(f, "{e}"),
            AdminError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<CommandError> for AdminError {
    fn from(e: CommandError) -> Self {
        AdminError::Command(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_references() {
        assert_eq!(AdminError::Usage("x".into()).exit_code(), 101);
        let load = AdminError::LoadConfig {
            path: "/nope".into(),
            reason: "No such file".into(),
        };
        assert_eq!(load.exit_code(), 102);
        assert_eq!(
            load.to_string(),
            "Failed to load config file /nope: No such file"
        );
        assert_eq!(AdminError::ClientInit("x".into()).exit_code(), 103);
        let failed = AdminError::from(CommandError::PrepareIndexMismatch {
            expected: 7,
            actual: 9,
        });
        assert_eq!(failed.exit_code(), 104);
        assert!(failed.to_string().contains("lastConfigChangeIndex=9"));
        let timeout = AdminError::from(CommandError::from(KvError::InvalidArgument(
            "unknown node 9".into(),
        )));
        assert_eq!(timeout.exit_code(), 104);
        assert!(timeout.to_string().contains("unknown node 9"));
        assert_eq!(AdminError::Other("x".into()).exit_code(), 105);
        assert!(CommandError::SameLeader(2)
            .to_string()
            .contains("equals: 2"));
        assert!(CommandError::OldLeaderMismatch {
            expected: 1,
            actual: 2
        }
        .to_string()
        .contains("leader is node 2"));
        assert!(CommandError::NewLeaderNotInGroup {
            new_leader: 9,
            servers: vec![1, 2]
        }
        .to_string()
        .contains("[1, 2]"));
    }
}
