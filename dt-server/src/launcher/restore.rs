//! `dt-server --restore-snapshot <file.idx> --group-id <id> [-c ... -s ...]`: writes a
//! new directory for one group from a copied snapshot pair, offline, with the settings
//! the server would run the group with (its data directory, log and index file sizes,
//! fsync), then exits. See [`dt_raft::store::restore`] for what is written and
//! `docs/operations.md` (backups and restore) for the procedure: every member of the
//! group, stopped, restored from the same snapshot.

use std::fmt;
use std::path::PathBuf;

use dt_raft::sm::store_config;
use dt_raft::store::restore::{restore_from_snapshot, RestoreError, Restored};

use super::ServerPlan;
use crate::bootstrap::{BootstrapArgs, BootstrapError, ExitCode};
use crate::props::VarSource;

/// The restore's command line.
#[derive(Debug, Clone)]
pub struct RestoreArgs {
    /// The snapshot's metadata file (`<time>_<id>.idx`, its `.data` file beside it).
    pub snapshot: PathBuf,
    /// The group to restore.
    pub group_id: i32,
    /// `-c` and `-s` with the `${NAME}` source; `None`: the embedded defaults.
    pub files: Option<(BootstrapArgs, VarSource)>,
}

/// Why a restore did not happen, with the bootstrap's exit codes.
#[derive(Debug)]
pub enum RestoreFailure {
    /// The configuration could not be loaded (its own exit code, 101–106).
    Config(BootstrapError),
    /// The group is not in the configuration (105).
    UnknownGroup {
        /// The group asked for.
        group_id: i32,
        /// The groups configured.
        configured: Vec<i32>,
    },
    /// The snapshot, the target directory or the writing (102 for a snapshot that
    /// cannot be used, 103 for the directory).
    Restore(RestoreError),
}

impl RestoreFailure {
    /// The process exit status.
    pub fn exit_code(&self) -> i32 {
        match self {
            RestoreFailure::Config(e) => e.exit_code(),
            RestoreFailure::UnknownGroup { .. } => ExitCode::BadConfig.exit_code(),
            RestoreFailure::Restore(RestoreError::BadSnapshot(_)) => {
                ExitCode::LoadConfig.exit_code()
            }
            RestoreFailure::Restore(_) => ExitCode::BadDataDir.exit_code(),
        }
    }
}

impl fmt::Display for RestoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreFailure::Config(e) => e.fmt(f),
            RestoreFailure::UnknownGroup {
                group_id,
                configured,
            } => write!(
                f,
                "group {group_id} is not configured on this node (groups: {configured:?}); \
                 restore a group of servers.properties"
            ),
            RestoreFailure::Restore(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RestoreFailure {}

/// Loads the configuration as a start would (without starting anything) and restores
/// the group's directory from the snapshot.
pub fn restore(args: &RestoreArgs) -> Result<(Restored, PathBuf), RestoreFailure> {
    let plan = match &args.files {
        None => ServerPlan::embedded(),
        Some((files, vars)) => ServerPlan::from_files(files, vars.clone()),
    }
    .map_err(RestoreFailure::Config)?;
    let groups = &plan.config.groups;
    let group = groups
        .iter()
        .find(|g| g.group_id == args.group_id)
        .ok_or_else(|| RestoreFailure::UnknownGroup {
            group_id: args.group_id,
            configured: groups.iter().map(|g| g.group_id).collect(),
        })?;
    // the settings the server would run the group with
    let cfg = plan.config.raft_config_of(group);
    let dir = cfg.data_dir.clone();
    let restored = restore_from_snapshot(&args.snapshot, &dir, store_config(&cfg))
        .map_err(RestoreFailure::Restore)?;
    Ok((restored, dir))
}

/// What the program prints after a restore.
pub fn describe(r: &Restored, dir: &std::path::Path, group_id: i32) -> String {
    format!(
        "restored group {group_id} into {}: the snapshot at index {} (term {}), {} bytes \
         of state, members {:?}, observers {:?}.\n\
         Restore every member of the group from this same snapshot, then start them; \
         the group continues after index {}.",
        dir.display(),
        r.last_included_index,
        r.last_included_term,
        r.data_bytes,
        r.members,
        r.observers,
        r.last_included_index
    )
}
