//! The server bootstrap's failures and their process exit codes (101–106).

use crate::props::{PropsError, ValueError};
use dt_common::cpu_set::CpuListError;
use std::fmt;
use std::path::PathBuf;

/// The exit codes of the server bootstrap, as the reference's `Bootstrap` uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// 101: a required command-line option (`-c`, `-s`) or its value is missing.
    CommandLine,
    /// 102: a configuration file cannot be read or parsed.
    LoadConfig,
    /// 103: a group's data directory cannot be created or written.
    BadDataDir,
    /// 104: any other bootstrap failure (for example a value of the wrong type).
    BootstrapFail,
    /// 105: bad configuration: no `servers`, no groups, a bad `group.` key.
    BadConfig,
    /// 106: the server could not be built or started (the checks of the Raft server).
    StartFail,
}

impl ExitCode {
    /// The process exit status.
    pub fn exit_code(self) -> i32 {
        match self {
            ExitCode::CommandLine => 101,
            ExitCode::LoadConfig => 102,
            ExitCode::BadDataDir => 103,
            ExitCode::BootstrapFail => 104,
            ExitCode::BadConfig => 105,
            ExitCode::StartFail => 106,
        }
    }
}

/// A check the Raft server's construction makes on the configuration (exit 106).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartProblem {
    /// `nodeId` is not positive.
    NodeIdNotPositive(i32),
    /// `replicatePort` is not positive.
    ReplicatePortNotPositive(i32),
    /// The `servers` list cannot be parsed; the text says where.
    BadServers(String),
    /// Two entries of `servers` have the same id.
    DuplicateServerId(i32),
    /// Two entries of `servers` have the same host and port.
    DuplicateServerHost(String),
    /// This node's `nodeId` is not in `servers`.
    SelfNotInServers(i32),
    /// A member or observer id of a group is not a number.
    BadMemberId {
        /// The group.
        group_id: i32,
        /// The text that is not a number.
        text: String,
    },
    /// A member or observer of a group is not in `servers`.
    MemberNotInServers {
        /// The group.
        group_id: i32,
        /// The unknown node id.
        node_id: i32,
    },
    /// A node id appears twice in a group's members (or observers).
    DuplicateMember {
        /// The group.
        group_id: i32,
        /// The repeated node id.
        node_id: i32,
    },
    /// A group has no member.
    NoMember(i32),
    /// A node is both member and observer of a group.
    MemberIsObserver {
        /// The group.
        group_id: i32,
        /// The node.
        node_id: i32,
    },
    /// A numeric setting is outside the range it can take.
    OutOfRange {
        /// The group, for a group setting.
        group_id: Option<i32>,
        /// The key.
        key: &'static str,
        /// The value.
        value: i64,
        /// The range it must be in, for a person.
        expected: &'static str,
    },
    /// A group's DtKV option has a value it cannot take.
    BadKvOption {
        /// The group.
        group_id: i32,
        /// What is wrong (names the key).
        reason: String,
    },
    /// `dispatcherCpus` is not a CPU list, or names a CPU the process may not use.
    BadCpus {
        /// The group.
        group_id: i32,
        /// What is wrong with the list.
        error: CpuListError,
    },
    /// A size that must be a power of two is not. (The reference finds this only
    /// while initialising the group, after start, and then hangs with the group
    /// failed; we refuse to start instead.)
    NotPowerOfTwo {
        /// The group.
        group_id: i32,
        /// The key (`idxItemsPerFile` or `logFileSize`).
        key: &'static str,
        /// The value.
        value: i64,
    },
}

impl fmt::Display for StartProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartProblem::NodeIdNotPositive(v) => {
                write!(
                    f,
                    "nodeId must be a positive number (got {v}); set nodeId in config.properties"
                )
            }
            StartProblem::ReplicatePortNotPositive(v) => {
                write!(f, "replicatePort must be positive (got {v})")
            }
            StartProblem::BadServers(s) => {
                write!(f, "bad servers list: {s} (expected id,host:port;...)")
            }
            StartProblem::DuplicateServerId(id) => {
                write!(f, "duplicate server id in servers: {id}")
            }
            StartProblem::DuplicateServerHost(h) => {
                write!(f, "duplicate server host in servers: {h}")
            }
            StartProblem::SelfNotInServers(id) => {
                write!(f, "this node's id {id} (nodeId) is not in the servers list")
            }
            StartProblem::BadMemberId { group_id, text } => {
                write!(
                    f,
                    "group {group_id}: member/observer id '{text}' is not a number"
                )
            }
            StartProblem::MemberNotInServers { group_id, node_id } => {
                write!(
                    f,
                    "group {group_id}: member/observer id {node_id} is not in the servers list"
                )
            }
            StartProblem::DuplicateMember { group_id, node_id } => {
                write!(f, "group {group_id}: node id {node_id} listed twice")
            }
            StartProblem::NoMember(g) => write!(f, "group {g}: nodeIdOfMembers lists no node"),
            StartProblem::MemberIsObserver { group_id, node_id } => {
                write!(
                    f,
                    "group {group_id}: node {node_id} is both member and observer"
                )
            }
            StartProblem::OutOfRange {
                group_id,
                key,
                value,
                expected,
            } => {
                if let Some(g) = group_id {
                    write!(f, "group {g}: ")?;
                }
                write!(f, "{key} must be {expected} (got {value})")
            }
            StartProblem::BadKvOption { group_id, reason } => {
                write!(f, "group {group_id}: {reason}")
            }
            StartProblem::BadCpus { group_id, error } => {
                write!(f, "group {group_id}: dispatcherCpus: {error}")
            }
            StartProblem::NotPowerOfTwo {
                group_id,
                key,
                value,
            } => {
                write!(
                    f,
                    "group {group_id}: {key} must be a power of two (got {value})"
                )
            }
        }
    }
}

/// Why the server bootstrap stopped; [`BootstrapError::exit`] gives the exit code.
#[derive(Debug)]
pub enum BootstrapError {
    /// `-c` or `-s` is missing (101).
    MissingOption(&'static str),
    /// `-c` or `-s` is the last argument, without a file (101).
    MissingOptionValue(&'static str),
    /// Another command-line problem (101); the text says what and how to fix it.
    Usage(String),
    /// A configuration file cannot be read or parsed (102).
    LoadConfig(PropsError),
    /// A group's data directory cannot be created or written (103).
    BadDataDir {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A value cannot be converted to its field's type (104).
    BadValue(ValueError),
    /// servers.properties has no `servers` key (105).
    NoServers {
        /// The servers file.
        file: Option<PathBuf>,
    },
    /// A `group.` key without a second `.` or with a non-integer group id (105).
    BadGroupKey {
        /// The key.
        key: String,
        /// Its line in servers.properties.
        line: usize,
    },
    /// A group has keys but no (or an empty) `group.<id>.nodeIdOfMembers` (105).
    MissingMembers(i32),
    /// servers.properties defines no group (105).
    NoGroups,
    /// The Raft server's construction checks failed (106).
    Start(StartProblem),
    /// A group's DtKV option has a bad value (106: the reference reads these while it
    /// builds the state machines, inside the Raft server's construction).
    BadKvValue(ValueError),
    /// The server could not be built or started: a port taken, the self check failed,
    /// a group could not be created or initialised (106).
    Server(dt_raft::server::RaftServerError),
}

impl BootstrapError {
    /// The exit code category of this failure.
    pub fn exit(&self) -> ExitCode {
        match self {
            BootstrapError::MissingOption(_)
            | BootstrapError::MissingOptionValue(_)
            | BootstrapError::Usage(_) => ExitCode::CommandLine,
            BootstrapError::LoadConfig(_) => ExitCode::LoadConfig,
            BootstrapError::BadDataDir { .. } => ExitCode::BadDataDir,
            BootstrapError::BadValue(_) => ExitCode::BootstrapFail,
            BootstrapError::NoServers { .. }
            | BootstrapError::BadGroupKey { .. }
            | BootstrapError::MissingMembers(_)
            | BootstrapError::NoGroups => ExitCode::BadConfig,
            BootstrapError::Start(_)
            | BootstrapError::BadKvValue(_)
            | BootstrapError::Server(_) => ExitCode::StartFail,
        }
    }

    /// The process exit status (101–106).
    pub fn exit_code(&self) -> i32 {
        self.exit().exit_code()
    }
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapError::MissingOption(o) => {
                write!(f, "config file not specified: use {o} <file>")
            }
            BootstrapError::MissingOptionValue(o) => {
                write!(f, "{o} option requires a config file path")
            }
            BootstrapError::Usage(m) => f.write_str(m),
            BootstrapError::LoadConfig(e) => write!(f, "failed to load config file: {e}"),
            BootstrapError::BadDataDir { dir, reason } => {
                write!(f, "data directory {}: {reason}", dir.display())
            }
            BootstrapError::BadValue(e) => write!(f, "bad config value: {e}"),
            BootstrapError::NoServers { file } => match file {
                Some(p) => write!(f, "{}: the servers property is required", p.display()),
                None => write!(f, "the servers property is required"),
            },
            BootstrapError::BadGroupKey { key, line } => write!(
                f,
                "servers.properties:{line}: invalid group key '{key}': expected group.<numeric id>.<name>"
            ),
            BootstrapError::MissingMembers(g) => {
                write!(f, "group {g}: group.{g}.nodeIdOfMembers is required")
            }
            BootstrapError::NoGroups => write!(
                f,
                "no group configured: add group.<id>.nodeIdOfMembers to servers.properties"
            ),
            BootstrapError::Start(p) => write!(f, "cannot start the server: {p}"),
            BootstrapError::BadKvValue(e) => write!(f, "cannot start the server: bad DtKV option: {e}"),
            BootstrapError::Server(e) => write!(f, "cannot start the server: {e}"),
        }
    }
}

impl std::error::Error for BootstrapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BootstrapError::LoadConfig(e) => Some(e),
            BootstrapError::BadValue(e) | BootstrapError::BadKvValue(e) => Some(e),
            BootstrapError::Server(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_references() {
        let all = [
            (ExitCode::CommandLine, 101),
            (ExitCode::LoadConfig, 102),
            (ExitCode::BadDataDir, 103),
            (ExitCode::BootstrapFail, 104),
            (ExitCode::BadConfig, 105),
            (ExitCode::StartFail, 106),
        ];
        for (c, n) in all {
            assert_eq!(c.exit_code(), n);
        }
        assert_eq!(BootstrapError::MissingOption("-c").exit_code(), 101);
        assert_eq!(BootstrapError::NoGroups.exit_code(), 105);
        assert_eq!(
            BootstrapError::Start(StartProblem::NoMember(1)).exit_code(),
            106
        );
    }
}
