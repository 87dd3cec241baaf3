//! Running a parsed subcommand with an [`AdminRaftClient`], including the checks the
//! reference makes before sending (transfer-leader, commit-change).

use std::io::Write;
use std::time::Duration;

use dt_client::admin::{AdminNode, AdminRaftClient};
use dt_client::raft::QueryStatus;

use super::args::AdminCommand;
use super::exit::CommandError;

/// What a subcommand returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// list-nodes: the nodes the server knows, sorted by id.
    Nodes(Vec<AdminNode>),
    /// list-groups: the groups the server runs, sorted.
    Groups(Vec<i32>),
    /// query-status: the node's status of the group.
    Status(Box<QueryStatus>),
    /// transfer-leader succeeded.
    Transferred {
        /// The group.
        group_id: i32,
        /// The old leader.
        old_leader: i32,
        /// The new leader.
        new_leader: i32,
    },
    /// prepare-change: the prepare index.
    Prepared(i64),
    /// commit-change: the commit entry's index.
    Committed(i64),
    /// abort-change: the abort entry's index.
    Aborted(i64),
    /// add-group succeeded on the node.
    GroupAdded,
    /// remove-group succeeded on the node.
    GroupRemoved,
    /// add-node succeeded on the node.
    NodeAdded,
    /// remove-node succeeded on the node.
    NodeRemoved,
    /// sync-config succeeded on the node.
    ConfigSynced,
}

fn say(progress: &mut dyn Write, line: std::fmt::Arguments<'_>) {
    // Progress lines are informative only: a closed stdout surfaces at the result.
    let _ = writeln!(progress, "{line}");
}

fn executing(progress: &mut dyn Write, what: &str, timeout: Duration) {
    say(
        progress,
        format_args!(
            "Executing {what} with timeout {} seconds...",
            timeout.as_secs()
        ),
    );
}

/// Runs `cmd`; `group_servers` gives a group's nodes as the servers file lists them
/// (for transfer-leader's check). Progress lines (the reference's "Executing ..."
/// lines) go to `progress`.
pub fn execute(
    client: &AdminRaftClient,
    cmd: &AdminCommand,
    group_servers: &dyn Fn(i32) -> Option<Vec<i32>>,
    progress: &mut dyn Write,
) -> Result<Outcome, CommandError> {
    let timeout = cmd.timeout();
    match cmd {
        AdminCommand::ListNodes { node_id, .. } => {
            executing(progress, "server-list-nodes", timeout);
            let mut nodes = client.server_list_nodes(*node_id, timeout).wait()?;
            nodes.sort_by_key(|n| n.node_id);
            Ok(Outcome::Nodes(nodes))
        }
        AdminCommand::ListGroups { node_id, .. } => {
            executing(progress, "server-list-groups", timeout);
            let mut groups = client.server_list_groups(*node_id, timeout).wait()?;
            groups.sort_unstable();
            Ok(Outcome::Groups(groups))
        }
        AdminCommand::QueryStatus {
            node_id, group_id, ..
        } => {
            executing(progress, "query-status", timeout);
            let s = client.query_status(*node_id, *group_id, timeout).wait()?;
            Ok(Outcome::Status(Box::new(s)))
        }
        AdminCommand::TransferLeader {
            group_id,
            old_leader,
            new_leader,
            ..
        } => {
            executing(progress, "transfer-leader", timeout);
            if old_leader == new_leader {
                return Err(CommandError::SameLeader(*old_leader));
            }
            let leader = client.raft().fetch_leader(*group_id, timeout).wait()?;
            if leader != *old_leader {
                return Err(CommandError::OldLeaderMismatch {
                    expected: *old_leader,
                    actual: leader,
                });
            }
            let servers = group_servers(*group_id).unwrap_or_default();
            if !servers.contains(new_leader) {
                return Err(CommandError::NewLeaderNotInGroup {
                    new_leader: *new_leader,
                    servers,
                });
            }
            client
                .transfer_leader(*group_id, *old_leader, *new_leader, timeout)
                .wait()?;
            Ok(Outcome::Transferred {
                group_id: *group_id,
                old_leader: *old_leader,
                new_leader: *new_leader,
            })
        }
        AdminCommand::PrepareChange {
            group_id,
            old_members,
            old_observers,
            new_members,
            new_observers,
            ..
        } => {
            executing(progress, "prepare-change", timeout);
            let index = client
                .prepare_config_change(
                    *group_id,
                    &old_members.0,
                    &old_observers.0,
                    &new_members.0,
                    &new_observers.0,
                    timeout,
                )
                .wait()?;
            Ok(Outcome::Prepared(index))
        }
        AdminCommand::CommitChange {
            group_id,
            prepare_index,
            ..
        } => {
            say(
                progress,
                format_args!("Getting leader info for group {group_id}..."),
            );
            let leader = client.raft().fetch_leader(*group_id, timeout).wait()?;
            say(
                progress,
                format_args!("Leader is node {leader}, querying status..."),
            );
            let status = client.query_status(leader, *group_id, timeout).wait()?;
            if status.last_config_change_index != *prepare_index {
                return Err(CommandError::PrepareIndexMismatch {
                    expected: *prepare_index,
                    actual: status.last_config_change_index,
                });
            }
            say(
                progress,
                format_args!("Prepare index validated: {prepare_index}"),
            );
            executing(progress, "commit-change", timeout);
            let index = client
                .commit_change(*group_id, *prepare_index, timeout)
                .wait()?;
            Ok(Outcome::Committed(index))
        }
        AdminCommand::AbortChange { group_id, .. } => {
            executing(progress, "abort-change", timeout);
            Ok(Outcome::Aborted(
                client.abort_change(*group_id, timeout).wait()?,
            ))
        }
        AdminCommand::AddGroup {
            node_id,
            group_id,
            members,
            observers,
            ..
        } => {
            executing(progress, "server-add-group", timeout);
            client
                .server_add_group(*node_id, *group_id, &members.0, &observers.0, timeout)
                .wait()?;
            Ok(Outcome::GroupAdded)
        }
        AdminCommand::RemoveGroup {
            node_id, group_id, ..
        } => {
            executing(progress, "server-remove-group", timeout);
            client
                .server_remove_group(*node_id, *group_id, timeout)
                .wait()?;
            Ok(Outcome::GroupRemoved)
        }
        AdminCommand::AddNode {
            node_id,
            add_node_id,
            host,
            port,
            ..
        } => {
            executing(progress, "server-add-node", timeout);
            client
                .server_add_node(*node_id, *add_node_id, host, *port, timeout)
                .wait()?;
            Ok(Outcome::NodeAdded)
        }
        AdminCommand::RemoveNode {
            node_id,
            remove_node_id,
            ..
        } => {
            executing(progress, "server-remove-node", timeout);
            client
                .server_remove_node(*node_id, *remove_node_id, timeout)
                .wait()?;
            Ok(Outcome::NodeRemoved)
        }
        AdminCommand::SyncConfig { node_id, .. } => {
            say(progress, format_args!("Executing sync-config..."));
            client.server_sync_config(*node_id, timeout).wait()?;
            Ok(Outcome::ConfigSynced)
        }
    }
}
