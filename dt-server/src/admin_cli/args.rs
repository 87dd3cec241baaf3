//! The command line of `dt-admin`: the reference's subcommands and option names
//! (`dtkv-server.md` §13.9), parsed with clap into an [`AdminArgs`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use super::exit::AdminError;

/// A comma-separated list of node ids (`1,2,3`); blanks around ids are allowed, an
/// empty text is an empty list, duplicates are dropped (the reference reads the lists
/// into sets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList(pub Vec<i32>);

impl FromStr for IdList {
    type Err = String;
    fn from_str(s: &str) -> Result<IdList, String> {
        let mut ids: Vec<i32> = Vec::new();
        if s.trim().is_empty() {
            return Ok(IdList(ids));
        }
        for part in s.split(',') {
            let id: i32 = part
                .trim()
                .parse()
                .map_err(|_| format!("'{part}' in '{s}' is not a node id (expected e.g. 1,2,3)"))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(IdList(ids))
    }
}

impl fmt::Display for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(i32::to_string).collect();
        f.write_str(&s.join(","))
    }
}

const GENERAL_HELP: &str = "\
Exit codes: 101 usage error, 102 cannot load the servers file, 103 client init failed,
104 command failed, 105 other error.

Use \"dt-admin <subcommand> --help\" for more information about a subcommand.";

/// `dt-admin [-s <servers.properties>] [--json] <subcommand> [--option value ...]`.
#[derive(Debug, Parser)]
#[command(
    name = "dt-admin",
    about = "Administer a dt (Dongting-compatible) Raft cluster through the servers' replicate ports",
    after_help = GENERAL_HELP,
    disable_help_flag = true,
    disable_help_subcommand = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct AdminArgs {
    /// Path to servers.properties: its `servers` (replicate ports) and each
    /// `group.<id>.nodeIdOfMembers/Observers` say which nodes this tool talks to
    /// (required).
    #[arg(short = 's', value_name = "file", global = true)]
    pub servers_file: Option<PathBuf>,
    /// Print one JSON object on stdout (the result, or `{"error":...}`) instead of
    /// the human-readable lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print help (also --h).
    #[arg(long = "help", short = 'h', alias = "h", global = true, action = ArgAction::Help)]
    help: Option<bool>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `--timeout <seconds>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub struct TimeoutArg {
    /// Timeout in seconds (default: 30 for transfer-leader and prepare-change, 15 for
    /// commit-change and abort-change, else 5).
    #[arg(long = "timeout", value_name = "seconds")]
    pub seconds: Option<u32>,
}

impl TimeoutArg {
    /// The timeout, or `default` when the option is absent.
    pub fn or(self, default: Duration) -> Duration {
        self.seconds
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(default)
    }
}

/// The subcommands (names and options as the reference's `DtAdmin`).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AdminCommand {
    /// List all node definitions on specified node.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties list-nodes --node-id 1"
    )]
    ListNodes {
        /// Target node ID.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// List all raft group IDs on specified node.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties list-groups --node-id 1"
    )]
    ListGroups {
        /// Target node ID.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Query raft server status for specified group.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties query-status --node-id 1 --group-id 0 --timeout 60"
    )]
    QueryStatus {
        /// Target node ID.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Transfer raft group leader from current leader to a new leader node
    /// (default timeout 30 s).
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties transfer-leader --group-id 0 --old-leader 1 --new-leader 2 --timeout 60"
    )]
    TransferLeader {
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Current leader node ID.
        #[arg(long, value_name = "id")]
        old_leader: i32,
        /// New leader node ID.
        #[arg(long, value_name = "id")]
        new_leader: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Prepare configuration change for a raft group (default timeout 30 s); prints the
    /// prepare index for commit-change.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties prepare-change --group-id 0 --old-members 1,2,3 --new-members 2,3,4\n  dt-admin -s conf/servers.properties prepare-change --group-id 0 --old-members 1,2,3 --old-observers 4 --new-members 2,3,4 --new-observers 5"
    )]
    PrepareChange {
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Current member node IDs, comma-separated.
        #[arg(long, value_name = "ids")]
        old_members: IdList,
        /// Current observer node IDs, comma-separated.
        #[arg(long, value_name = "ids", default_value = "")]
        old_observers: IdList,
        /// New member node IDs, comma-separated.
        #[arg(long, value_name = "ids")]
        new_members: IdList,
        /// New observer node IDs, comma-separated.
        #[arg(long, value_name = "ids", default_value = "")]
        new_observers: IdList,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Commit prepared configuration change (default timeout 15 s): the leader's last
    /// config change index must equal --prepare-index.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties commit-change --group-id 0 --prepare-index 12345"
    )]
    CommitChange {
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Prepare index from prepare-change.
        #[arg(long, value_name = "idx")]
        prepare_index: i64,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Abort prepared configuration change (default timeout 15 s).
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties abort-change --group-id 0"
    )]
    AbortChange {
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Add and start a raft group on specified node. This operation should be invoked
    /// on all nodes that will host the group.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties add-group --node-id 1 --group-id 0 --members 1,2,3\n  dt-admin -s conf/servers.properties add-group --node-id 1 --group-id 0 --members 1,2,3 --observers 4,5"
    )]
    AddGroup {
        /// Target node ID.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Member node IDs, comma-separated.
        #[arg(long, value_name = "ids")]
        members: IdList,
        /// Observer node IDs, comma-separated.
        #[arg(long, value_name = "ids", default_value = "")]
        observers: IdList,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Remove and stop a raft group on specified node. This operation should be invoked
    /// on all nodes that host the group.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties remove-group --node-id 1 --group-id 0"
    )]
    RemoveGroup {
        /// Target node ID.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Raft group ID.
        #[arg(long, value_name = "id")]
        group_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Add node definition on specified node. Generally this operation should be
    /// invoked on all nodes.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties add-node --node-id 1 --add-node-id 4 --host 192.168.1.4 --port 3001"
    )]
    AddNode {
        /// Node ID to invoke.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Node ID to add.
        #[arg(long, value_name = "id")]
        add_node_id: i32,
        /// Host address of the new node.
        #[arg(long, value_name = "host")]
        host: String,
        /// Replicate port of the new node.
        #[arg(long, value_name = "port")]
        port: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Remove node definition on specified node. Generally this operation should be
    /// invoked on all nodes.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties remove-node --node-id 1 --remove-node-id 4"
    )]
    RemoveNode {
        /// Node ID to invoke.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Node ID to remove.
        #[arg(long, value_name = "id")]
        remove_node_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
    /// Manually sync configuration to servers.properties file on specified node. This
    /// makes group members change, group add/remove, node add/remove effective after
    /// node restart.
    #[command(
        after_help = "Examples:\n  dt-admin -s conf/servers.properties sync-config --node-id 1"
    )]
    SyncConfig {
        /// Target node ID.
        #[arg(long, value_name = "id")]
        node_id: i32,
        /// Timeout.
        #[command(flatten)]
        timeout: TimeoutArg,
    },
}

/// The client's default request timeout, used when a subcommand has no default of its
/// own and `--timeout` is absent (the reference's RPC timeout).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(5);

impl AdminCommand {
    /// The subcommand's name as typed (`list-nodes`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::ListNodes { .. } => "list-nodes",
            AdminCommand::ListGroups { .. } => "list-groups",
            AdminCommand::QueryStatus { .. } => "query-status",
            AdminCommand::TransferLeader { .. } => "transfer-leader",
            AdminCommand::PrepareChange { .. } => "prepare-change",
            AdminCommand::CommitChange { .. } => "commit-change",
            AdminCommand::AbortChange { .. } => "abort-change",
            AdminCommand::AddGroup { .. } => "add-group",
            AdminCommand::RemoveGroup { .. } => "remove-group",
            AdminCommand::AddNode { .. } => "add-node",
            AdminCommand::RemoveNode { .. } => "remove-node",
            AdminCommand::SyncConfig { .. } => "sync-config",
        }
    }

    /// The request timeout: `--timeout`, else the subcommand's default (30 s for
    /// transfer-leader and prepare-change, 15 s for commit-change and abort-change,
    /// [`DEFAULT_RPC_TIMEOUT`] for the others).
    pub fn timeout(&self) -> Duration {
        let (t, default) = match self {
            AdminCommand::TransferLeader { timeout, .. }
            | AdminCommand::PrepareChange { timeout, .. } => (timeout, 30),
            AdminCommand::CommitChange { timeout, .. }
            | AdminCommand::AbortChange { timeout, .. } => (timeout, 15),
            AdminCommand::ListNodes { timeout, .. }
            | AdminCommand::ListGroups { timeout, .. }
            | AdminCommand::QueryStatus { timeout, .. }
            | AdminCommand::AddGroup { timeout, .. }
            | AdminCommand::RemoveGroup { timeout, .. }
            | AdminCommand::AddNode { timeout, .. }
            | AdminCommand::RemoveNode { timeout, .. }
            | AdminCommand::SyncConfig { timeout, .. } => (timeout, 5),
        };
        t.or(Duration::from_secs(default))
    }

    /// Whether the command changes membership, groups or nodes on the servers (after
    /// which the tool notes that the local servers.properties was not rewritten).
    pub fn changes_server_config(&self) -> bool {
        matches!(
            self,
            AdminCommand::CommitChange { .. }
                | AdminCommand::AddGroup { .. }
                | AdminCommand::RemoveGroup { .. }
                | AdminCommand::AddNode { .. }
                | AdminCommand::RemoveNode { .. }
        )
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run a subcommand.
    Run(AdminArgs),
    /// Help was asked for: print this text on stdout and exit 0.
    Help(String),
}

/// Parses the command line (`args[0]` is the program name). Help (`--help`, `--h`,
/// `-h`) is [`Parsed::Help`]; every other problem, including a missing `-s`, is
/// [`AdminError::Usage`] with clap's message and the usage line.
pub fn parse<I, T>(args: I) -> Result<Parsed, AdminError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::error::ErrorKind;
    match AdminArgs::try_parse_from(args) {
        Ok(a) => {
            if a.servers_file.is_none() {
                return Err(AdminError::Usage(
                    "-s <servers.properties> is required (the file listing the servers' \
                     replicate ports and the groups)"
                        .into(),
                ));
            }
            Ok(Parsed::Run(a))
        }
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                Ok(Parsed::Help(e.render().to_string()))
            }
            // No arguments at all: the reference prints the general usage and fails.
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Err(AdminError::Usage(format!(
                "error: no subcommand given\n\n{}",
                e.render()
            ))),
            _ => Err(AdminError::Usage(e.render().to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> AdminArgs {
        match parse(std::iter::once("dt-admin").chain(args.iter().copied())).unwrap() {
            Parsed::Run(a) => a,
            Parsed::Help(h) => panic!("help: {h}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match parse(std::iter::once("dt-admin").chain(args.iter().copied())) {
            Err(AdminError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn help(args: &[&str]) -> String {
        match parse(std::iter::once("dt-admin").chain(args.iter().copied())).unwrap() {
            Parsed::Help(h) => h,
            Parsed::Run(a) => panic!("ran {a:?}"),
        }
    }

    #[test]
    fn id_lists() {
        assert_eq!("1, 2 ,3".parse::<IdList>().unwrap().0, vec![1, 2, 3]);
        assert_eq!("3,3,1".parse::<IdList>().unwrap().0, vec![3, 1]);
        assert!("".parse::<IdList>().unwrap().0.is_empty());
        assert!(" ".parse::<IdList>().unwrap().0.is_empty());
        for bad in ["1,,2", "a", "1;2", "1,"] {
            assert!(bad.parse::<IdList>().is_err(), "{bad}");
        }
        assert_eq!(IdList(vec![4, 5]).to_string(), "4,5");
    }

    #[test]
    fn reference_option_names_and_defaults() {
        let a = run(&[
            "-s",
            "x.properties",
            "transfer-leader",
            "--group-id",
            "0",
            "--old-leader",
            "1",
            "--new-leader",
            "2",
        ]);
        assert_eq!(a.servers_file.unwrap(), PathBuf::from("x.properties"));
        assert!(!a.json);
        assert_eq!(
            a.command,
            AdminCommand::TransferLeader {
                group_id: 0,
                old_leader: 1,
                new_leader: 2,
                timeout: TimeoutArg::default()
            }
        );
        assert_eq!(a.command.timeout(), Duration::from_secs(30));
        assert_eq!(a.command.name(), "transfer-leader");

        // -s and --json may come after the subcommand too.
        let a = run(&[
            "prepare-change",
            "--group-id",
            "1",
            "--old-members",
            "1,2,3",
            "--old-observers",
            "4",
            "--new-members",
            "2,3,4",
            "--new-observers",
            "",
            "--timeout",
            "7",
            "-s",
            "f",
            "--json",
        ]);
        assert!(a.json);
        match &a.command {
            AdminCommand::PrepareChange {
                group_id,
                old_members,
                old_observers,
                new_members,
                new_observers,
                ..
            } => {
                assert_eq!(*group_id, 1);
                assert_eq!(old_members.0, vec![1, 2, 3]);
                assert_eq!(old_observers.0, vec![4]);
                assert_eq!(new_members.0, vec![2, 3, 4]);
                assert!(new_observers.0.is_empty());
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(a.command.timeout(), Duration::from_secs(7));

        let t = |args: &[&str]| run(args).command.timeout().as_secs();
        assert_eq!(
            t(&[
                "-s",
                "f",
                "commit-change",
                "--group-id",
                "0",
                "--prepare-index",
                "9"
            ]),
            15
        );
        assert_eq!(t(&["-s", "f", "abort-change", "--group-id", "0"]), 15);
        assert_eq!(
            t(&[
                "-s",
                "f",
                "query-status",
                "--node-id",
                "1",
                "--group-id",
                "0"
            ]),
            5
        );
        assert_eq!(
            t(&[
                "-s",
                "f",
                "add-group",
                "--node-id",
                "1",
                "--group-id",
                "3",
                "--members",
                "1"
            ]),
            5
        );
        assert_eq!(
            t(&["-s", "f", "list-nodes", "--node-id", "1", "--timeout", "2"]),
            2
        );

        let a = run(&[
            "-s",
            "f",
            "add-node",
            "--node-id",
            "1",
            "--add-node-id",
            "4",
            "--host",
            "10.0.0.4",
            "--port",
            "4004",
        ]);
        assert!(a.command.changes_server_config());
        let a = run(&[
            "-s",
            "f",
            "remove-node",
            "--node-id",
            "1",
            "--remove-node-id",
            "4",
        ]);
        assert!(a.command.changes_server_config());
        let a = run(&["-s", "f", "sync-config", "--node-id", "2"]);
        assert!(!a.command.changes_server_config());
        let a = run(&["-s", "f", "list-groups", "--node-id", "2"]);
        assert_eq!(
            a.command,
            AdminCommand::ListGroups {
                node_id: 2,
                timeout: TimeoutArg::default()
            }
        );
        let a = run(&[
            "-s",
            "f",
            "remove-group",
            "--node-id",
            "2",
            "--group-id",
            "5",
        ]);
        assert!(a.command.changes_server_config());
    }

    #[test]
    fn usage_errors_name_the_problem() {
        assert!(usage(&["list-nodes", "--node-id", "1"])
            .contains("-s <servers.properties> is required"));
        assert!(usage(&["-s", "f", "list-nodes"]).contains("--node-id"));
        assert!(usage(&["-s", "f", "no-such-command"]).contains("no-such-command"));
        assert!(usage(&["-s", "f", "list-nodes", "--node-id", "x"]).contains("--node-id"));
        assert!(
            usage(&["-s", "f", "list-nodes", "--node-id", "1", "--timeout", "-1"]).contains("-1")
        );
        assert!(
            usage(&["-s", "f", "list-nodes", "--node-id", "1", "--timeout", "x"])
                .contains("--timeout")
        );
        let m = usage(&[
            "-s",
            "f",
            "prepare-change",
            "--group-id",
            "0",
            "--old-members",
            "1,x",
            "--new-members",
            "1",
        ]);
        assert!(m.contains("'x' in '1,x' is not a node id"), "{m}");
        assert!(
            usage(&["-s", "f", "list-nodes", "--node-id", "1", "--bogus", "2"]).contains("--bogus")
        );
        assert!(usage(&["-s"]).contains("-s"));
    }

    #[test]
    fn help_for_every_subcommand_also_as_double_dash_h() {
        let general = usage(&[]);
        assert!(
            general.contains("list-nodes") && general.contains("sync-config"),
            "{general}"
        );
        assert!(help(&["--help"]).contains("Exit codes: 101"));
        for cmd in [
            "list-nodes",
            "list-groups",
            "query-status",
            "transfer-leader",
            "prepare-change",
            "commit-change",
            "abort-change",
            "add-group",
            "remove-group",
            "add-node",
            "remove-node",
            "sync-config",
        ] {
            for flag in ["--help", "--h", "-h"] {
                let h = help(&[cmd, flag]);
                assert!(h.contains(&format!("dt-admin {cmd}")), "{cmd} {flag}: {h}");
                assert!(h.contains("Examples:"), "{cmd} {flag}: {h}");
            }
        }
        let h = help(&["-s", "f", "transfer-leader", "--h"]);
        assert!(
            h.contains("--old-leader") && h.contains("--new-leader") && h.contains("--timeout")
        );
        let h = help(&["add-node", "--help"]);
        assert!(h.contains("--add-node-id") && h.contains("--host") && h.contains("--port"));
    }
}
