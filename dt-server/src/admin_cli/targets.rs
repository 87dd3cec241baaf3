//! Which nodes `dt-admin` talks to: the `servers` list (replicate ports) and each
//! `group.<id>.nodeIdOfMembers` / `nodeIdOfObservers` of servers.properties, read as
//! the reference's admin tool reads them (no `${...}` substitution; keys whose group id
//! is not a number are ignored; a group without members is skipped).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use dt_client::admin::AdminRaftClient;
use dt_client::raft::RaftNode;

use super::exit::AdminError;
use crate::bootstrap::GROUP_PREFIX;
use crate::props::Properties;

/// The nodes and groups named by a servers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTargets {
    /// `servers`: id and replicate address of each node.
    pub nodes: Vec<RaftNode>,
    /// Per group id: its members followed by its observers.
    pub groups: BTreeMap<i32, Vec<i32>>,
}

fn parse_ids(text: &str, key: &str) -> Result<Vec<i32>, AdminError> {
    text.split(',')
        .map(|p| {
            p.trim().parse::<i32>().map_err(|_| {
                AdminError::ClientInit(format!("{key} = {text}: '{p}' is not a node id"))
            })
        })
        .collect()
}

impl AdminTargets {
    /// Reads the file: a missing or unreadable file is [`AdminError::LoadConfig`]
    /// (102); a bad `servers` or id list is [`AdminError::ClientInit`] (103).
    pub fn load(path: &Path) -> Result<AdminTargets, AdminError> {
        let props = Properties::load(path).map_err(|e| AdminError::LoadConfig {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_properties(&props)
    }

    /// Reads parsed properties (see [`AdminTargets::load`]).
    pub fn from_properties(props: &Properties) -> Result<AdminTargets, AdminError> {
        let servers = props
            .get("servers")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                AdminError::ClientInit(
                    "servers property is required (servers = id,host:replicatePort;...)".into(),
                )
            })?;
        let nodes = RaftNode::parse_list(servers)
            .map_err(|e| AdminError::ClientInit(format!("servers = {servers}: {e}")))?;
        let mut groups = BTreeMap::new();
        for (key, _) in props.iter() {
            let Some(rest) = key.strip_prefix(GROUP_PREFIX) else {
                continue;
            };
            let Some(dot) = rest.find('.').filter(|&d| d > 0) else {
                continue;
            };
            let Ok(id) = rest[..dot].parse::<i32>() else {
                continue;
            };
            if groups.contains_key(&id) {
                continue;
            }
            let mkey = format!("{GROUP_PREFIX}{id}.nodeIdOfMembers");
            let okey = format!("{GROUP_PREFIX}{id}.nodeIdOfObservers");
            let Some(members) = props.get(&mkey).filter(|m| !m.trim().is_empty()) else {
                continue;
            };
            let mut all = parse_ids(members, &mkey)?;
            if let Some(obs) = props.get(&okey).filter(|o| !o.trim().is_empty()) {
                all.extend(parse_ids(obs, &okey)?);
            }
            groups.insert(id, all);
        }
        Ok(AdminTargets { nodes, groups })
    }

    /// Registers the nodes and groups with an admin client.
    pub fn register(&self, client: &AdminRaftClient) -> Result<(), AdminError> {
        client
            .raft()
            .add_or_update_nodes(&self.nodes)
            .map_err(|e| AdminError::ClientInit(e.to_string()))?;
        for (&g, ids) in &self.groups {
            client
                .raft()
                .add_or_update_group(g, ids)
                .map_err(|e| AdminError::ClientInit(format!("group {g}: {e}")))?;
        }
        Ok(())
    }
}

/// The file's modification time (None when it cannot be read), to tell afterwards
/// whether a command rewrote it.
pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(text: &str) -> Result<AdminTargets, AdminError> {
        AdminTargets::from_properties(&Properties::parse_str(text).unwrap())
    }

    #[test]
    fn servers_and_groups() {
        let t = targets(
            "servers = 1,127.0.0.1:4001;2,127.0.0.1:4002;3,127.0.0.1:4003;4,127.0.0.1:4004\n\
             group.0.nodeIdOfMembers = 1, 2,3\n\
             group.0.nodeIdOfObservers = 4\n\
             group.0.dataDir = x\n\
             group.7.nodeIdOfMembers = 2\n\
             group.8.dataDir = no-members\n\
             group.x.nodeIdOfMembers = 1\n\
             group..y = 1\n",
        )
        .unwrap();
        assert_eq!(t.nodes.len(), 4);
        assert_eq!(t.nodes[3].node_id, 4);
        assert_eq!(t.nodes[3].addr.port(), 4004);
        assert_eq!(t.groups.len(), 2);
        assert_eq!(t.groups[&0], vec![1, 2, 3, 4]);
        assert_eq!(t.groups[&7], vec![2]);
    }

    #[test]
    fn bad_files_are_client_init_failures() {
        for (text, want) in [
            ("x = 1\n", "servers property is required"),
            ("servers = \n", "servers property is required"),
            ("servers = 1,nohostport\n", "servers = 1,nohostport"),
            (
                "servers = 1,127.0.0.1:4001\ngroup.0.nodeIdOfMembers = 1,a\n",
                "group.0.nodeIdOfMembers = 1,a: 'a' is not a node id",
            ),
        ] {
            match targets(text) {
                Err(e @ AdminError::ClientInit(_)) => {
                    assert_eq!(e.exit_code(), 103);
                    assert!(e.to_string().contains(want), "{e}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_file_is_a_load_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.properties");
        let e = AdminTargets::load(&p).unwrap_err();
        assert_eq!(e.exit_code(), 102);
        assert!(e.to_string().contains("none.properties"), "{e}");
        assert!(modified(&p).is_none());
        std::fs::write(&p, "servers = 1,127.0.0.1:1\n").unwrap();
        assert!(modified(&p).is_some());
        assert_eq!(AdminTargets::load(&p).unwrap().nodes.len(), 1);
    }
}
