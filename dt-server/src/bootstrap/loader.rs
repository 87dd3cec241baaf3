//! The bootstrap's configuration steps, in the reference's order and with its exit
//! codes: command line (101), loading both files (102), server values (104), `servers`
//! present (105), group keys (105), each group's values (104) and data directory (103),
//! at least one group (105); then [`BootConfig::check_start`] runs the checks the Raft
//! server's construction makes and reads each group's DtKV options (106).

use super::config::{
    GroupConfig, KvConfig, ServerConfig, DEFAULT_REPLICATE_PORT, DEFAULT_SERVICE_PORT,
};
use super::exit::{BootstrapError, StartProblem};
use super::servers::{check_unique, parse_member_ids, parse_servers, ServerNode};
use crate::props::{PropReader, Properties, VarSource};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// The key prefix of per-group settings in servers.properties.
pub const GROUP_PREFIX: &str = "group.";

/// The two files named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapArgs {
    /// `-c <config.properties>`.
    pub config_file: PathBuf,
    /// `-s <servers.properties>`.
    pub servers_file: PathBuf,
}

/// Finds `-c <file>` and `-s <file>` (first occurrence of each; the word after the
/// option is taken whatever it is; other arguments are ignored). `-c` is looked for
/// first, so a command line missing both reports `-c`.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<BootstrapArgs, BootstrapError> {
    fn find<S: AsRef<str>>(args: &[S], opt: &'static str) -> Result<PathBuf, BootstrapError> {
        match args.iter().position(|a| a.as_ref() == opt) {
            Some(i) => match args.get(i + 1) {
                Some(v) => Ok(PathBuf::from(v.as_ref())),
                None => Err(BootstrapError::MissingOptionValue(opt)),
            },
            None => Err(BootstrapError::MissingOption(opt)),
        }
    }
    let config_file = find(args, "-c")?;
    let servers_file = find(args, "-s")?;
    Ok(BootstrapArgs {
        config_file,
        servers_file,
    })
}

/// What to do with each group's data directory while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirCheck {
    /// Create it if missing and prove it writable by creating and deleting a file
    /// named `check` (the reference's check; exit 103 on failure).
    CreateAndProbe,
    /// Touch nothing (tools that only read the configuration).
    Skip,
}

/// Creates `dir` if needed and checks it is a writable directory.
pub fn ensure_data_dir(dir: &Path) -> Result<(), BootstrapError> {
    let bad = |reason: String| BootstrapError::BadDataDir {
        dir: dir.to_path_buf(),
        reason,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create it: {e}")))?;
    }
    if !dir.is_dir() {
        return Err(bad("exists but is not a directory".into()));
    }
    let check = dir.join("check");
    if !check.exists() {
        std::fs::File::create(&check).map_err(|e| bad(format!("write check failed: {e}")))?;
    }
    std::fs::remove_file(&check).map_err(|e| bad(format!("write check failed: {e}")))?;
    Ok(())
}

/// The group ids named by `group.<id>.<name>` keys, sorted; each must have a non-empty
/// `nodeIdOfMembers`.
pub fn parse_group_ids(servers: &Properties) -> Result<Vec<i32>, BootstrapError> {
    let mut ids = BTreeSet::new();
    for (key, entry) in servers.iter() {
        let Some(rest) = key.strip_prefix(GROUP_PREFIX) else {
            continue;
        };
        let bad = || BootstrapError::BadGroupKey {
            key: key.to_string(),
            line: entry.line,
        };
        let dot = match rest.find('.') {
            Some(d) if d > 0 => d,
            _ => return Err(bad()),
        };
        let id: i32 = rest[..dot].parse().map_err(|_| bad())?;
        ids.insert(id);
    }
    for &id in &ids {
        match servers.get(&format!("{GROUP_PREFIX}{id}.nodeIdOfMembers")) {
            Some(m) if !m.is_empty() => {}
            _ => return Err(BootstrapError::MissingMembers(id)),
        }
    }
    Ok(ids.into_iter().collect())
}

/// A loaded server configuration: the files, the typed settings and the variable
/// source (kept to build groups added at runtime the same way).
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// config.properties as read.
    pub config_props: Properties,
    /// servers.properties as read.
    pub servers_props: Properties,
    /// Where servers.properties lives (rewritten by the configuration sync).
    pub servers_file: PathBuf,
    /// Where `${NAME}` values come from.
    pub vars: VarSource,
    /// The server settings (ports defaulted, `servers` from servers.properties).
    pub server: ServerConfig,
    /// One entry per group, sorted by id; `data_dir` is the group's own directory.
    pub groups: Vec<GroupConfig>,
}

impl BootConfig {
    /// Loads both files named by `args` and builds the configuration.
    pub fn load(
        args: &BootstrapArgs,
        vars: VarSource,
        dir_check: DataDirCheck,
    ) -> Result<BootConfig, BootstrapError> {
        let config_props =
            Properties::load(&args.config_file).map_err(BootstrapError::LoadConfig)?;
        let servers_props =
            Properties::load(&args.servers_file).map_err(BootstrapError::LoadConfig)?;
        Self::from_properties(
            config_props,
            servers_props,
            args.servers_file.clone(),
            vars,
            dir_check,
        )
    }

    /// Builds the configuration from already parsed files.
    pub fn from_properties(
        config_props: Properties,
        servers_props: Properties,
        servers_file: PathBuf,
        vars: VarSource,
        dir_check: DataDirCheck,
    ) -> Result<BootConfig, BootstrapError> {
        let mut server = ServerConfig::default();
        server
            .apply(&PropReader::new(&config_props, &vars, ""))
            .map_err(BootstrapError::BadValue)?;
        // `servers` is taken as written in servers.properties (no substitution).
        server.servers = match servers_props.get("servers") {
            Some(s) => s.to_string(),
            None => {
                return Err(BootstrapError::NoServers {
                    file: servers_props.source.clone(),
                })
            }
        };
        if server.replicate_port == 0 {
            server.replicate_port = DEFAULT_REPLICATE_PORT;
        }
        if server.service_port == 0 {
            server.service_port = DEFAULT_SERVICE_PORT;
        }
        let mut cfg = BootConfig {
            config_props,
            servers_props,
            servers_file,
            vars,
            server,
            groups: Vec::new(),
        };
        for id in parse_group_ids(&cfg.servers_props)? {
            let members = cfg
                .servers_props
                .get(&format!("{GROUP_PREFIX}{id}.nodeIdOfMembers"))
                .unwrap_or_default()
                .to_string();
            let observers = cfg
                .servers_props
                .get(&format!("{GROUP_PREFIX}{id}.nodeIdOfObservers"))
                .map(str::to_string);
            let g = cfg.create_group_config(id, &members, observers.as_deref(), dir_check)?;
            cfg.groups.push(g);
        }
        if cfg.groups.is_empty() {
            return Err(BootstrapError::NoGroups);
        }
        Ok(cfg)
    }

    /// Builds one group's configuration as the bootstrap does, also for a group added
    /// at runtime: defaults, then config.properties, then `group.<id>.*`; the DtKV
    /// options from `group.<id>.*` only; `data_dir` becomes `<dataDir>/<id>` and is
    /// checked per `dir_check`. The DtKV options are not read here: the reference
    /// reads them when it builds the group's state machine, see
    /// [`BootConfig::read_kv_config`].
    pub fn create_group_config(
        &self,
        group_id: i32,
        node_id_of_members: &str,
        node_id_of_observers: Option<&str>,
        dir_check: DataDirCheck,
    ) -> Result<GroupConfig, BootstrapError> {
        let mut g = GroupConfig::new(group_id, node_id_of_members, node_id_of_observers);
        let prefix = format!("{GROUP_PREFIX}{group_id}");
        g.apply(&PropReader::new(&self.config_props, &self.vars, ""))
            .map_err(BootstrapError::BadValue)?;
        let group_reader = PropReader::new(&self.servers_props, &self.vars, &prefix);
        g.apply(&group_reader).map_err(BootstrapError::BadValue)?;
        g.kv.apply(&group_reader)
            .map_err(BootstrapError::BadValue)?;
        g.data_dir = format!("{}/{}", g.data_dir, group_id);
        if dir_check == DataDirCheck::CreateAndProbe {
            ensure_data_dir(Path::new(&g.data_dir))?;
        }
        Ok(g)
    }

    /// The DtKV options of a group: defaults, then `group.<id>.*` of
    /// servers.properties (never config.properties). A bad value is a start failure
    /// (106), as in the reference, which reads them while building the state machine.
    pub fn read_kv_config(&self, group_id: i32) -> Result<KvConfig, BootstrapError> {
        let mut kv = KvConfig::default();
        let prefix = format!("{GROUP_PREFIX}{group_id}");
        kv.apply(&PropReader::new(&self.servers_props, &self.vars, &prefix))
            .map_err(BootstrapError::BadKvValue)?;
        Ok(kv)
    }

    /// The checks the Raft server makes when it is built (exit 106), in its order:
    /// positive `nodeId` and `replicatePort`, a parsable `servers` list with unique ids
    /// and addresses containing this node; then per group (in id order) members and
    /// observers that are known, unique, non-empty and disjoint, power-of-two file
    /// sizes, and its DtKV options, which are stored in the group's `kv`. Returns the
    /// parsed server list.
    pub fn check_start(&mut self) -> Result<Vec<ServerNode>, BootstrapError> {
        let (nodes, ids) = check_server(&self.server).map_err(BootstrapError::Start)?;
        for i in 0..self.groups.len() {
            check_group(&self.groups[i], &ids).map_err(BootstrapError::Start)?;
            let kv = self.read_kv_config(self.groups[i].group_id)?;
            self.groups[i].kv = kv;
        }
        Ok(nodes)
    }
}

/// The server-level start checks; returns the parsed list and its ids.
fn check_server(server: &ServerConfig) -> Result<(Vec<ServerNode>, HashSet<i32>), StartProblem> {
    if server.node_id <= 0 {
        return Err(StartProblem::NodeIdNotPositive(server.node_id));
    }
    if server.replicate_port <= 0 {
        return Err(StartProblem::ReplicatePortNotPositive(
            server.replicate_port,
        ));
    }
    let nodes = parse_servers(&server.servers)?;
    check_unique(&nodes)?;
    let ids: HashSet<i32> = nodes.iter().map(|n| n.node_id).collect();
    if !ids.contains(&server.node_id) {
        return Err(StartProblem::SelfNotInServers(server.node_id));
    }
    Ok((nodes, ids))
}

/// One group's start checks against the known node ids.
fn check_group(g: &GroupConfig, ids: &HashSet<i32>) -> Result<(), StartProblem> {
    let members = parse_member_ids(&g.node_id_of_members, g.group_id, ids)?;
    if members.is_empty() {
        return Err(StartProblem::NoMember(g.group_id));
    }
    if let Some(obs) = g.node_id_of_observers.as_deref() {
        if !obs.trim().is_empty() {
            let observers = parse_member_ids(obs, g.group_id, ids)?;
            if let Some(&id) = members.iter().find(|m| observers.contains(m)) {
                return Err(StartProblem::MemberIsObserver {
                    group_id: g.group_id,
                    node_id: id,
                });
            }
        }
    }
    let pow2 = |v: i64| v > 0 && (v & (v - 1)) == 0;
    if !pow2(g.idx_items_per_file as i64) {
        return Err(StartProblem::NotPowerOfTwo {
            group_id: g.group_id,
            key: "idxItemsPerFile",
            value: g.idx_items_per_file as i64,
        });
    }
    if !pow2(g.log_file_size) {
        return Err(StartProblem::NotPowerOfTwo {
            group_id: g.group_id,
            key: "logFileSize",
            value: g.log_file_size,
        });
    }
    g.dispatcher_cpu_set()?;
    Ok(())
}

/// The Raft server's checks of [`BootConfig::check_start`] on plain structs
/// (without the DtKV options).
pub fn check_start(
    server: &ServerConfig,
    groups: &[GroupConfig],
) -> Result<Vec<ServerNode>, StartProblem> {
    let (nodes, ids) = check_server(server)?;
    for g in groups {
        check_group(g, &ids)?;
    }
    Ok(nodes)
}
