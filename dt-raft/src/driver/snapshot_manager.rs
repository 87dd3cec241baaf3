//! The group's snapshot files (raft.md §16.2, storage.md §5): recovery of the newest
//! valid snapshot at init, saving a state-machine snapshot with fsync, retention of
//! `maxKeepSnapshots`.
//!
//! The file work is blocking, so the driver runs it off the dispatcher thread
//! ([`off_thread`]) and awaits the result; this type only holds the settings.
//!
//! A [`SnapshotStore`] of one's own (a simulation's disk) replaces the files:
//! [`SnapshotManager::with_store`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use crate::sm::SnapshotInfo;
use crate::store::snapshot::{SnapshotDir, SnapshotMeta, DEFAULT_BUFFER_SIZE};

/// A snapshot read back from its store: what it covers and its payload in blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// What the snapshot covers.
    pub info: SnapshotInfo,
    /// The payload, in the order it was saved.
    pub chunks: Vec<Bytes>,
}

/// The future of a [`SnapshotStore`] operation (not `Send`: awaited on the group's
/// dispatcher thread); errors are messages for the log.
pub type SnapshotStoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>>>>;

/// Where a group keeps its saved snapshots, when not in snapshot files (a
/// simulation's disk). Called on the group's dispatcher thread; the futures must not
/// block it.
pub trait SnapshotStore {
    /// The newest complete snapshot, if any (at group init).
    fn recover(&self) -> SnapshotStoreFuture<Option<SavedSnapshot>>;

    /// Saves a snapshot covering `info` with payload `chunks`, durably (a crash before
    /// the future resolves keeps the previous one). Resolves with the last included
    /// index of the oldest snapshot kept: the log may be deleted up to it.
    fn save(&self, info: SnapshotInfo, chunks: Vec<Bytes>) -> SnapshotStoreFuture<u64>;
}

/// The snapshot files of one group (`<data_dir>/snapshot`) and their settings, made
/// by [`RaftFactory::create_snapshot_manager`](crate::sm::RaftFactory::create_snapshot_manager).
/// The group's driver uses it: it recovers the newest valid snapshot at init, saves
/// one every `saveSnapshotSeconds`, after an install and on close, keeps
/// `maxKeepSnapshots`.
#[derive(Clone)]
pub struct SnapshotManager {
    files: Option<SnapshotFiles>,
    store: Option<Rc<dyn SnapshotStore>>,
}

impl std::fmt::Debug for SnapshotManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotManager")
            .field("files", &self.files)
            .field("custom_store", &self.store.is_some())
            .finish()
    }
}

/// The file settings (`Send`: the file work runs off the dispatcher thread).
#[derive(Clone, Debug)]
struct SnapshotFiles {
    dir: PathBuf,
    sync: bool,
    keep: usize,
}

fn to_u32(v: &[i32]) -> Vec<u32> {
    v.iter().filter(|&&x| x > 0).map(|&x| x as u32).collect()
}

fn to_i32(v: &[u32]) -> Vec<i32> {
    v.iter().map(|&x| x as i32).collect()
}

impl SnapshotManager {
    /// The manager of `<data_dir>/snapshot`, fsyncing if `sync`, keeping at most
    /// `max(1, keep)` snapshots.
    pub fn new(data_dir: &std::path::Path, sync: bool, keep: usize) -> Self {
        SnapshotManager {
            files: Some(SnapshotFiles {
                dir: data_dir.join("snapshot"),
                sync,
                keep,
            }),
            store: None,
        }
    }

    /// A manager keeping the snapshots in `store` instead of files.
    pub fn with_store(store: Rc<dyn SnapshotStore>) -> Self {
        SnapshotManager {
            files: None,
            store: Some(store),
        }
    }

    /// Start-up: the newest valid snapshot (from the files off the dispatcher thread,
    /// or from the store).
    pub(crate) async fn load(&self) -> Result<Option<SavedSnapshot>, String> {
        if let Some(s) = &self.store {
            return s.recover().await;
        }
        let Some(f) = self.files.clone() else {
            return Ok(None);
        };
        off_thread("dt-snapshot-load", move || f.recover())
            .await
            .ok_or_else(|| "snapshot recovery panicked".to_string())?
    }

    /// Saves a snapshot (see [`SnapshotStore::save`]).
    pub(crate) async fn store(
        &self,
        info: SnapshotInfo,
        chunks: Vec<Bytes>,
    ) -> Result<u64, String> {
        if let Some(s) = &self.store {
            return s.save(info, chunks).await;
        }
        let Some(f) = self.files.clone() else {
            return Ok(info.last_included_index);
        };
        off_thread("dt-snapshot-save", move || f.save(&info, &chunks))
            .await
            .ok_or_else(|| "snapshot save panicked".to_string())?
    }
}

impl SnapshotFiles {
    fn snapshot_dir(&self) -> SnapshotDir {
        SnapshotDir::new(&self.dir, self.sync)
    }

    /// Start-up (blocking): cleans leftovers and reads the newest snapshot whose
    /// metadata and blocks are valid.
    fn recover(&self) -> Result<Option<SavedSnapshot>, String> {
        let d = self.snapshot_dir();
        d.init().map_err(|e| format!("snapshot dir: {e}"))?;
        let Some(s) = d
            .latest_verified()
            .map_err(|e| format!("listing snapshots: {e}"))?
        else {
            return Ok(None);
        };
        let mut r = s
            .open_reader()
            .map_err(|e| format!("opening snapshot {}: {e}", s.data_path.display()))?;
        let mut chunks = Vec::new();
        while let Some(c) = r
            .next_chunk()
            .map_err(|e| format!("reading snapshot {}: {e}", s.data_path.display()))?
        {
            chunks.push(Bytes::from(c));
        }
        let m = &s.meta;
        let info = SnapshotInfo {
            last_included_index: m.last_included_index,
            last_included_term: m.last_included_term,
            members: to_u32(&m.members),
            observers: to_u32(&m.observers),
            prepared_members: to_u32(&m.prepared_members),
            prepared_observers: to_u32(&m.prepared_observers),
            last_config_change_index: m.last_config_change_index,
        };
        Ok(Some(SavedSnapshot { info, chunks }))
    }

    /// Saves (blocking) a snapshot covering `info` with payload `chunks`: the data
    /// file is fsynced, then the idx file written atomically; then the oldest
    /// snapshots beyond `maxKeepSnapshots` are deleted. Returns the last included
    /// index of the oldest kept snapshot (the log may be deleted up to it).
    fn save(&self, info: &SnapshotInfo, chunks: &[Bytes]) -> Result<u64, String> {
        let d = self.snapshot_dir();
        let mut w = d
            .create(DEFAULT_BUFFER_SIZE)
            .map_err(|e| format!("creating a snapshot file: {e}"))?;
        for c in chunks {
            w.write(c)
                .map_err(|e| format!("writing a snapshot file: {e}"))?;
        }
        let meta = SnapshotMeta {
            last_included_index: info.last_included_index,
            last_included_term: info.last_included_term,
            members: to_i32(&info.members),
            observers: to_i32(&info.observers),
            prepared_members: to_i32(&info.prepared_members),
            prepared_observers: to_i32(&info.prepared_observers),
            last_config_change_index: info.last_config_change_index,
            ..Default::default()
        };
        w.finish(meta)
            .map_err(|e| format!("finishing a snapshot file: {e}"))?;
        let oldest = d
            .keep(self.keep)
            .map_err(|e| format!("deleting old snapshots: {e}"))?;
        Ok(oldest.unwrap_or(info.last_included_index))
    }
}

/// Runs blocking `f` on a new thread and resolves with its result (`None` if it
/// panicked). The dispatcher thread is not blocked.
pub(crate) async fn off_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = super::oneshot::oneshot();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || tx.send(f()));
    if spawned.is_err() {
        return None;
    }
    rx.await
}
