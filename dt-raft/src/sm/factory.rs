//! [`RaftFactory`]: what a server needs to build each group (raft.md §16.4).

use std::marker::PhantomData;
use std::sync::Arc;

use super::input::RaftError;
use super::state_machine::StateMachine;
use crate::driver::{RaftGroupConfig, SnapshotManager};
use crate::raft_log::{DefaultRaftLog, Executor, RaftLog};
use crate::store::StoreConfig;

/// Builds the parts of each Raft group. Shared by all groups of a server (`Send +
/// Sync`); its `create_*` methods run on the group's dispatcher thread, so what they
/// return need not be `Send`.
pub trait RaftFactory: Send + Sync + 'static {
    /// The state machine of the groups.
    type Sm: StateMachine;

    /// The state machine of group `cfg.group_id` (on the group's thread).
    fn create_state_machine(&self, cfg: &RaftGroupConfig) -> Result<Self::Sm, RaftError>;

    /// The log (and status file) of group `cfg.group_id` (on the group's thread).
    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError>;

    /// The snapshot files of group `cfg.group_id` (raft.md §16.2): periodic saves,
    /// save on close, recovery at init, log deletion after a save. The default keeps
    /// them in `<data_dir>/snapshot`; `None` runs the group without snapshot files
    /// (installs from a leader still work; an in-memory log has no use for them).
    fn create_snapshot_manager(&self, cfg: &RaftGroupConfig) -> Option<SnapshotManager> {
        Some(SnapshotManager::new(
            &cfg.data_dir,
            cfg.sync,
            cfg.max_keep_snapshots,
        ))
    }

    /// The configuration of a group added at run time (RAFT_ADMIN_ADD_GROUP). The
    /// default refuses, like the reference's.
    fn create_config(
        &self,
        group_id: i32,
        members: &[u32],
        observers: &[u32],
    ) -> Result<RaftGroupConfig, RaftError> {
        let _ = (members, observers);
        Err(RaftError::InvalidInput(format!(
            "this factory cannot create a configuration for group {group_id}"
        )))
    }
}

/// The store configuration a group's [`RaftGroupConfig`] selects.
pub fn store_config(cfg: &RaftGroupConfig) -> StoreConfig {
    StoreConfig {
        log_file_size: cfg.log_file_size,
        idx_items_per_file: cfg.idx_items_per_file,
        idx_cache_size: cfg.idx_cache_size,
        idx_flush_threshold: cfg.idx_flush_threshold,
        sync: cfg.sync,
        sync_force: cfg.sync_force,
        drop_synced_pages: cfg.drop_synced_pages,
        prefill_bytes: cfg.prefill_bytes,
        status_file_name: cfg.status_file.clone(),
        fsync_batcher: cfg.fsync_batcher.clone(),
        perf: cfg.perf.clone(),
        ..StoreConfig::default()
    }
}

/// The default factory: a user function builds the state machine, the log is a
/// [`DefaultRaftLog`] in `cfg.data_dir` whose file work runs on a shared executor (the
/// reference's shared blocking-IO pool).
pub struct DefaultRaftFactory<S, F> {
    io: Arc<dyn Executor>,
    make_sm: F,
    _sm: PhantomData<fn() -> S>,
}

impl<S, F> DefaultRaftFactory<S, F>
where
    S: StateMachine,
    F: Fn(&RaftGroupConfig) -> Result<S, RaftError> + Send + Sync + 'static,
{
    /// A factory whose logs run their file work on `io` and whose state machines are
    /// built by `make_sm`.
    pub fn new(io: Arc<dyn Executor>, make_sm: F) -> Self {
        DefaultRaftFactory {
            io,
            make_sm,
            _sm: PhantomData,
        }
    }
}

impl<S, F> RaftFactory for DefaultRaftFactory<S, F>
where
    S: StateMachine,
    F: Fn(&RaftGroupConfig) -> Result<S, RaftError> + Send + Sync + 'static,
{
    type Sm = S;

    fn create_state_machine(&self, cfg: &RaftGroupConfig) -> Result<S, RaftError> {
        (self.make_sm)(cfg)
    }

    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError> {
        Ok(Box::new(DefaultRaftLog::new(
            &cfg.data_dir,
            store_config(cfg),
            self.io.clone(),
        )))
    }
}
