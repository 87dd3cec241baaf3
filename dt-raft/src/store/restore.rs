//! Restoring a group's directory from a snapshot alone (`docs/operations.md`, backups
//! and restore).
//!
//! A snapshot's `.data` / `.idx` pair can be copied from a running node at any time,
//! but it is not a group directory: a node also needs its status file and a log that
//! continues the snapshot. [`restore_from_snapshot`] writes that directory, offline:
//! the snapshot (re-written block by block, each block's checksum checked on the way),
//! then the state a node has right after it installed that snapshot from a leader
//! (`docs/storage-format.md` §7): no log entry yet, the next entry the snapshot's last
//! included index + 1, the term the snapshot's, no vote. A node started on it loads the
//! snapshot and continues from there, as after an install.
//!
//! This is a whole-group operation: restore *every* member of the group from the
//! *same* snapshot, with every member stopped, and start them; they elect a leader in a
//! new term and the group continues from the snapshot's state (writes after it are
//! gone). Restoring only some members of a live group would make them forget votes
//! and entries the others count on: replace a lost node instead.
//!
//! The directory written is dt's: the reference reads it as "waiting for an install"
//! (it does not know the status key `dtFirstValidTerm`), so a reference node needs a dt
//! leader to send it the snapshot.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::config::StoreConfig;
use super::error::StoreError;
use super::log_store::LogStore;
use super::snapshot::{SnapshotDir, SnapshotInfo};

/// What [`restore_from_snapshot`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The snapshot's last included index: the group continues after it.
    pub last_included_index: u64,
    /// Its term (the restored node's current term).
    pub last_included_term: u32,
    /// The voting members the snapshot records.
    pub members: Vec<i32>,
    /// The observers it records.
    pub observers: Vec<i32>,
    /// Bytes of state-machine data copied (the snapshot stream, without block framing).
    pub data_bytes: u64,
    /// The snapshot's metadata file in the group directory.
    pub snapshot_idx: PathBuf,
}

/// Why [`restore_from_snapshot`] refused or failed. The target is left as it was when
/// the snapshot is refused (even by a bad block found while copying) or cannot be
/// copied; it may hold a partial restore when writing the log and status failed
/// (delete it and run the restore again).
#[derive(Debug)]
pub enum RestoreError {
    /// The source snapshot cannot be used: a missing or bad metadata file, a missing
    /// data file, a data block with a bad checksum, or a snapshot of nothing (index 0).
    BadSnapshot(StoreError),
    /// The group directory exists and is not empty (a restore never overwrites data).
    NotEmpty(PathBuf),
    /// Writing the group directory failed.
    Write(StoreError),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::BadSnapshot(e) => write!(f, "cannot restore from this snapshot: {e}"),
            RestoreError::NotEmpty(d) => write!(
                f,
                "{} is not empty: a restore writes a new group directory; stop the node \
                 and move the old directory away first",
                d.display()
            ),
            RestoreError::Write(e) => write!(
                f,
                "writing the restored group directory failed (delete what it left and \
                 run the restore again): {e}"
            ),
        }
    }
}

impl std::error::Error for RestoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RestoreError::BadSnapshot(e) | RestoreError::Write(e) => Some(e),
            RestoreError::NotEmpty(_) => None,
        }
    }
}

/// Writes a new group directory `group_dir` (absent or empty) holding the snapshot
/// whose metadata file is `snapshot_idx` (its `.data` file beside it), as a node that
/// just installed it; `cfg` is the store configuration the group will run with (its
/// log file size, index file size and fsync setting). See the module documentation for
/// when this is safe.
///
/// ```
/// use dt_raft::store::restore::{restore_from_snapshot, RestoreError};
/// use dt_raft::store::StoreConfig;
///
/// let dir = std::env::temp_dir().join(format!("dt-restore-doc-{}", std::process::id()));
/// // a metadata file that does not exist is refused before anything is written
/// let r = restore_from_snapshot(&dir.join("missing.idx"), &dir.join("0"), StoreConfig::default());
/// assert!(matches!(r, Err(RestoreError::BadSnapshot(_))));
/// assert!(!dir.join("0").exists());
/// ```
pub fn restore_from_snapshot(
    snapshot_idx: &Path,
    group_dir: &Path,
    cfg: StoreConfig,
) -> Result<Restored, RestoreError> {
    let src = SnapshotInfo::load(snapshot_idx).map_err(RestoreError::BadSnapshot)?;
    let meta = &src.meta;
    if meta.last_included_index == 0 {
        return Err(RestoreError::BadSnapshot(StoreError::InvalidArgument(
            format!(
                "{} is a snapshot of an empty group (lastIncludedIndex 0): nothing to restore",
                snapshot_idx.display()
            ),
        )));
    }
    let Some(next_index) = meta.last_included_index.checked_add(1) else {
        return Err(RestoreError::BadSnapshot(StoreError::corrupt(
            snapshot_idx,
            0,
            format!(
                "lastIncludedIndex {} leaves no index after it",
                meta.last_included_index
            ),
        )));
    };
    if meta.members.is_empty() {
        return Err(RestoreError::BadSnapshot(StoreError::corrupt(
            snapshot_idx,
            0,
            "the snapshot records no voting member",
        )));
    }
    if !meta.buffer_size.is_power_of_two() {
        return Err(RestoreError::BadSnapshot(StoreError::corrupt(
            snapshot_idx,
            0,
            format!("bufferSize {} is not a power of two", meta.buffer_size),
        )));
    }
    let created = match fs::read_dir(group_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::NotEmpty(group_dir.to_path_buf()));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(group_dir)
                .map_err(|e| RestoreError::Write(StoreError::io("create dir", group_dir, e)))?;
            true
        }
        Err(e) => {
            return Err(RestoreError::Write(StoreError::io(
                "list dir", group_dir, e,
            )))
        }
    };
    // 1. The snapshot, block by block, each block checked as it is read: a bad block
    //    (or a failed write) takes back what this call created, so a refused snapshot
    //    leaves the target as it was; a crash here leaves at most a partial data file,
    //    which a start deletes (it has no metadata file yet).
    let snapshot_dir = group_dir.join("snapshot");
    let (kept, data_bytes) = copy_snapshot(&src, &snapshot_dir, cfg.sync).inspect_err(|_| {
        let _ = if created {
            fs::remove_dir_all(group_dir)
        } else {
            fs::remove_dir_all(&snapshot_dir)
        };
    })?;
    // 2. The log and status of a node that has just installed it.
    let index = meta.last_included_index;
    let term = meta.last_included_term;
    let mut log = LogStore::open(group_dir, cfg).map_err(RestoreError::Write)?;
    let written = log
        .begin_install(None)
        .and_then(|()| log.finish_install_with_term(next_index, 0, Some(term)))
        .and_then(|()| log.persist_term_vote(term, 0));
    let closed = log.close();
    written.and(closed).map_err(RestoreError::Write)?;
    Ok(Restored {
        last_included_index: index,
        last_included_term: term,
        members: meta.members.clone(),
        observers: meta.observers.clone(),
        data_bytes,
        snapshot_idx: kept.idx_path,
    })
}

/// Streams `src` into a new snapshot in `dir`, checking each block as it is read;
/// returns the new snapshot and the stream's length.
fn copy_snapshot(
    src: &SnapshotInfo,
    dir: &Path,
    sync: bool,
) -> Result<(SnapshotInfo, u64), RestoreError> {
    let mut w = SnapshotDir::new(dir, sync)
        .create(src.meta.buffer_size)
        .map_err(RestoreError::Write)?;
    let mut r = src.open_reader().map_err(RestoreError::BadSnapshot)?;
    let mut n = 0u64;
    while let Some(chunk) = r.next_chunk().map_err(RestoreError::BadSnapshot)? {
        n += chunk.len() as u64;
        w.write(&chunk).map_err(RestoreError::Write)?;
    }
    let kept = w.finish(src.meta.clone()).map_err(RestoreError::Write)?;
    Ok((kept, n))
}
