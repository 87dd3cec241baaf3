//! The status file (`docs/storage-format.md` §4): `StatusFile` reads and atomically replaces a small
//! checksummed `key=value` file; `StatusManager` holds the typed keys of `raft.status`.
//!
//! Atomicity: the new content is written to `<name>.tmp`, fsynced, renamed over
//! `<name>`, and the directory is fsynced. A reader therefore sees either the old or
//! the new complete file, never a torn one; a torn temp file is ignored.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::crc32c::crc32c;
use super::error::{StoreError, StoreResult};
use super::faults::{sync_through, write_through, Faults};
use super::file_queue::sync_dir;

/// Maximum size of a status file.
pub const MAX_STATUS_FILE_SIZE: usize = 4096;

/// Ordered key/value pairs of a status-format file.
pub type Props = Vec<(String, String)>;

/// Looks a key up in `props`.
pub fn prop<'a>(props: &'a Props, key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Reads and atomically replaces one status-format file.
pub struct StatusFile;

impl StatusFile {
    /// Loads `path`. A missing file, or a zero-length one (left by a crash of the
    /// reference right after creating it), reads as `None`; a bad size or checksum is
    /// [`StoreError::Corrupt`].
    pub fn load(path: &Path) -> StoreResult<Option<Props>> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
        if data.is_empty() {
            log::warn!(
                "status file {} is empty; treating it as absent",
                path.display()
            );
            return Ok(None);
        }
        Self::parse(path, &data).map(Some)
    }

    /// Parses status-file bytes; `path` is only used in errors.
    pub fn parse(path: &Path, data: &[u8]) -> StoreResult<Props> {
        if data.len() <= 8 || data.len() > MAX_STATUS_FILE_SIZE {
            return Err(StoreError::corrupt(
                path,
                0,
                format!("illegal status file size {}", data.len()),
            ));
        }
        let hex = std::str::from_utf8(&data[..8])
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| StoreError::corrupt(path, 0, "checksum is not 8 hex digits"))?;
        let actual = crc32c(&data[8..]);
        if hex != actual {
            return Err(StoreError::corrupt(
                path,
                0,
                format!("checksum mismatch: stored {hex:08x}, computed {actual:08x}"),
            ));
        }
        let text = std::str::from_utf8(&data[8..])
            .map_err(|_| StoreError::corrupt(path, 8, "content is not UTF-8"))?;
        let mut props = Vec::new();
        let mut rest = text;
        // Only complete lines count; a trailing line without '\n' is ignored.
        while let Some(nl) = rest.find('\n') {
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            if let Some(eq) = line.find('=') {
                props.push((line[..eq].to_string(), line[eq + 1..].to_string()));
            }
        }
        Ok(props)
    }

    /// Encodes props in the status format.
    pub fn encode(props: &Props) -> Vec<u8> {
        let mut body = String::from("\n");
        for (k, v) in props {
            body.push_str(k);
            body.push('=');
            body.push_str(v);
            body.push('\n');
        }
        let mut out = format!("{:08x}", crc32c(body.as_bytes())).into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }

    /// Atomically replaces `path` with `props` (temp file, fsync, rename, fsync of the
    /// directory; the fsyncs are skipped when `sync` is false).
    pub fn save(path: &Path, props: &Props, sync: bool) -> StoreResult<()> {
        Self::save_with(path, props, sync, &None)
    }

    /// [`StatusFile::save`] with a fault-injection hook under the write and fsync.
    pub fn save_with(path: &Path, props: &Props, sync: bool, faults: &Faults) -> StoreResult<()> {
        let data = Self::encode(props);
        if data.len() > MAX_STATUS_FILE_SIZE {
            return Err(StoreError::InvalidArgument(format!(
                "status content of {} bytes exceeds {MAX_STATUS_FILE_SIZE}",
                data.len()
            )));
        }
        let tmp = tmp_path(path);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        write_through(faults, &tmp, &data, |b| f.write_all(b))
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        if sync {
            sync_through(faults, &tmp, || f.sync_all())
                .map_err(|e| StoreError::io("fsync", &tmp, e))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
        if sync {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
        }
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Keys of `raft.status`.
pub mod keys {
    /// Raft term.
    pub const CURRENT_TERM: &str = "currentTerm";
    /// Voted-for node id (0 = none).
    pub const VOTED_FOR: &str = "votedFor";
    /// Last known commit index.
    pub const COMMIT_INDEX: &str = "commitIndex";
    /// Install in progress / required.
    pub const INSTALL_SNAPSHOT: &str = "installSnapshot";
    /// First index this node may hold.
    pub const FIRST_VALID_INDEX: &str = "firstValidIndex";
    /// Recovery anchor written by the index queue.
    pub const PERSIST_IDX_INDEX: &str = "persistIdxIndex";
    /// Position of the first valid item after an install.
    pub const FIRST_VALID_POS: &str = "firstValidPos";
    /// dt only (the reference ignores it): while an install is under way, the last
    /// log term the node votes with (see [`super::RaftStatus::install_vote`]).
    pub const INSTALL_VOTE_TERM: &str = "dtInstallVoteTerm";
    /// dt only: the last log index that goes with [`INSTALL_VOTE_TERM`].
    pub const INSTALL_VOTE_INDEX: &str = "dtInstallVoteIndex";
    /// dt only (the reference ignores it): after an install, the term of entry
    /// `firstValidIndex - 1` (see [`super::RaftStatus::first_valid_term`]).
    pub const FIRST_VALID_TERM: &str = "dtFirstValidTerm";
}

/// The typed content of `raft.status`, plus any unknown keys (kept and rewritten).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    /// Raft term.
    pub current_term: u32,
    /// Voted-for node id (0 = none).
    pub voted_for: i32,
    /// Last known commit index (parsed as 64 bits, unlike the reference).
    pub commit_index: u64,
    /// An install is in progress / required.
    pub install_snapshot: bool,
    /// First index this node may hold (1 unless a snapshot was installed).
    pub first_valid_index: u64,
    /// For every index ≤ this, index entry and log item are durable.
    pub persist_idx_index: u64,
    /// Position of the first valid item after an install (0 otherwise).
    pub first_valid_pos: u64,
    /// dt only: with `install_snapshot`, the (last log term, last log index) the node
    /// votes with while its log is dropped: the later of its log's last entry when the
    /// install began and the snapshot's last included entry (both cover every
    /// committed entry the node held, so a vote with it is as safe as with the log).
    /// Written with `installSnapshot = true` before the log is deleted; absent in a
    /// reference file, and then the node grants no votes until the install, as the
    /// reference.
    pub install_vote: Option<(u32, u64)>,
    /// dt only: after an install (without `install_snapshot`), the term of entry
    /// `first_valid_index - 1`, the snapshot's lastIncludedTerm. Recovery then reports
    /// a log with nothing written since the install as an empty log after that entry
    /// instead of "install required" (the reference's rule, which leaves such a node
    /// refusing votes until the leader installs again). Absent in a reference file.
    pub first_valid_term: Option<u32>,
    /// Keys this version does not know, preserved as read.
    pub extra: Props,
}

impl Default for RaftStatus {
    fn default() -> Self {
        RaftStatus {
            current_term: 0,
            voted_for: 0,
            commit_index: 0,
            install_snapshot: false,
            first_valid_index: 1,
            persist_idx_index: 0,
            first_valid_pos: 0,
            install_vote: None,
            first_valid_term: None,
            extra: Vec::new(),
        }
    }
}

impl RaftStatus {
    fn from_props(path: &Path, props: Props) -> StoreResult<RaftStatus> {
        let mut s = RaftStatus::default();
        let (mut vote_term, mut vote_index) = (None, None);
        for (k, v) in props {
            let bad =
                |what: &str| StoreError::corrupt(path, 0, format!("bad value {v:?} for {what}"));
            match k.as_str() {
                keys::CURRENT_TERM => s.current_term = v.parse().map_err(|_| bad(&k))?,
                keys::VOTED_FOR => s.voted_for = v.parse().map_err(|_| bad(&k))?,
                keys::COMMIT_INDEX => s.commit_index = v.parse().map_err(|_| bad(&k))?,
                keys::INSTALL_SNAPSHOT => s.install_snapshot = v == "true",
                keys::FIRST_VALID_INDEX => s.first_valid_index = v.parse().map_err(|_| bad(&k))?,
                keys::PERSIST_IDX_INDEX => s.persist_idx_index = v.parse().map_err(|_| bad(&k))?,
                keys::FIRST_VALID_POS => s.first_valid_pos = v.parse().map_err(|_| bad(&k))?,
                keys::INSTALL_VOTE_TERM => vote_term = Some(v.parse().map_err(|_| bad(&k))?),
                keys::INSTALL_VOTE_INDEX => vote_index = Some(v.parse().map_err(|_| bad(&k))?),
                keys::FIRST_VALID_TERM => {
                    s.first_valid_term = Some(v.parse().map_err(|_| bad(&k))?)
                }
                _ => s.extra.push((k, v)),
            }
        }
        if let (Some(t), Some(i), true) = (vote_term, vote_index, s.install_snapshot) {
            s.install_vote = Some((t, i));
        }
        Ok(s)
    }

    fn to_props(&self) -> Props {
        let mut p: Props = vec![
            (keys::VOTED_FOR.into(), self.voted_for.to_string()),
            (
                keys::INSTALL_SNAPSHOT.into(),
                self.install_snapshot.to_string(),
            ),
            (keys::CURRENT_TERM.into(), self.current_term.to_string()),
            (
                keys::FIRST_VALID_INDEX.into(),
                self.first_valid_index.to_string(),
            ),
            (
                keys::PERSIST_IDX_INDEX.into(),
                self.persist_idx_index.to_string(),
            ),
            (keys::COMMIT_INDEX.into(), self.commit_index.to_string()),
        ];
        if self.first_valid_pos != 0 {
            p.push((
                keys::FIRST_VALID_POS.into(),
                self.first_valid_pos.to_string(),
            ));
        }
        if let (Some((t, i)), true) = (self.install_vote, self.install_snapshot) {
            p.push((keys::INSTALL_VOTE_TERM.into(), t.to_string()));
            p.push((keys::INSTALL_VOTE_INDEX.into(), i.to_string()));
        }
        if let (Some(t), false) = (self.first_valid_term, self.install_snapshot) {
            p.push((keys::FIRST_VALID_TERM.into(), t.to_string()));
        }
        p.extend(self.extra.iter().cloned());
        p
    }
}

/// The Raft state a log persists besides the entries (raft.md §4, what the reference's
/// StatusManager keeps for Raft), as
/// [`RaftLog::persisted_state`](crate::raft_log::RaftLog::persisted_state)
/// reports it.
///
/// The default is a fresh log's: term 0, no vote, nothing committed, first valid
/// index 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistedState {
    /// `currentTerm`: the latest term this node has seen.
    pub current_term: u32,
    /// `votedFor`: the node voted for in `current_term` (0 = none).
    pub voted_for: i32,
    /// `commitIndex`: a committed index this node knows of (persisted lazily, so it
    /// may lag; never ahead of what this node holds durably).
    pub commit_index: u64,
    /// `installSnapshot`: an install is in progress or required.
    pub install_snapshot: bool,
    /// `firstValidIndex`: the first index this node may hold entries for (1, or
    /// lastIncludedIndex + 1 after an install).
    pub first_valid_index: u64,
    /// With `install_snapshot`: the position the node votes with while its log is
    /// dropped ([`RaftStatus::install_vote`]), if recorded.
    pub install_vote: Option<(u32, u64)>,
}

impl Default for PersistedState {
    fn default() -> Self {
        (&RaftStatus::default()).into()
    }
}

impl From<&RaftStatus> for PersistedState {
    fn from(s: &RaftStatus) -> Self {
        PersistedState {
            current_term: s.current_term,
            voted_for: s.voted_for,
            commit_index: s.commit_index,
            install_snapshot: s.install_snapshot,
            first_valid_index: s.first_valid_index,
            install_vote: s.install_vote,
        }
    }
}

/// Owns `raft.status`: load at start-up, change fields in memory, `persist` to make them
/// durable. Every persist rewrites all keys.
#[derive(Debug)]
pub struct StatusManager {
    path: PathBuf,
    sync: bool,
    faults: Faults,
    /// The current in-memory values.
    pub status: RaftStatus,
    persisted: RaftStatus,
}

impl StatusManager {
    /// Loads `path` (a missing or empty file gives the defaults). A stale `.tmp` file
    /// next to it is left alone; it is overwritten by the next persist.
    pub fn load(path: &Path, sync: bool) -> StoreResult<StatusManager> {
        Self::load_with(path, sync, None)
    }

    /// [`StatusManager::load`] with a fault-injection hook under later writes.
    pub fn load_with(path: &Path, sync: bool, faults: Faults) -> StoreResult<StatusManager> {
        let status = match StatusFile::load(path)? {
            Some(p) => RaftStatus::from_props(path, p)?,
            None => RaftStatus::default(),
        };
        Ok(StatusManager {
            path: path.to_path_buf(),
            sync,
            faults,
            persisted: status.clone(),
            status,
        })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the current values atomically and durably.
    pub fn persist(&mut self) -> StoreResult<()> {
        let p = self.pending();
        p.write()?;
        self.mark_persisted(p.status);
        Ok(())
    }

    /// The values last written.
    pub fn persisted(&self) -> &RaftStatus {
        &self.persisted
    }

    /// Whether the in-memory values differ from the file.
    pub fn is_dirty(&self) -> bool {
        self.status != self.persisted
    }

    /// A copy of the current values to be written elsewhere (off a lock) with
    /// [`PendingStatus::write`], then recorded with [`StatusManager::mark_persisted`].
    /// Callers must serialize writes of the same file.
    pub fn pending(&self) -> PendingStatus {
        PendingStatus {
            path: self.path.clone(),
            sync: self.sync,
            faults: self.faults.clone(),
            status: self.status.clone(),
        }
    }

    /// Records that `status` (from [`StatusManager::pending`]) is on disk.
    pub fn mark_persisted(&mut self, status: RaftStatus) {
        self.persisted = status;
    }
}

/// A status-file version ready to be written (see [`StatusManager::pending`]).
#[derive(Clone, Debug)]
pub struct PendingStatus {
    path: PathBuf,
    sync: bool,
    faults: Faults,
    /// The values to write.
    pub status: RaftStatus,
}

impl PendingStatus {
    /// Writes it atomically.
    pub fn write(&self) -> StoreResult<()> {
        StatusFile::save_with(&self.path, &self.status.to_props(), self.sync, &self.faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_example() {
        let text = b"a4dde2f6\nvotedFor=1\ninstallSnapshot=false\ncurrentTerm=1\nfirstValidIndex=1\npersistIdxIndex=2003\ncommitIndex=2003\n";
        let p = StatusFile::parse(Path::new("x"), text).unwrap();
        assert_eq!(prop(&p, "persistIdxIndex"), Some("2003"));
        // upper-case hex is accepted
        let mut up = text.to_vec();
        up[..8].copy_from_slice(b"A4DDE2F6");
        assert!(StatusFile::parse(Path::new("x"), &up).is_ok());
        // and re-encoding in the same order gives the same bytes
        assert_eq!(StatusFile::encode(&p), text.to_vec());
    }

    #[test]
    fn rejects_bad_crc_and_sizes_accepts_empty() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("raft.status");
        assert!(StatusFile::load(&path).unwrap().is_none());
        fs::write(&path, b"").unwrap();
        assert!(StatusFile::load(&path).unwrap().is_none());
        fs::write(&path, b"12345678").unwrap();
        assert!(matches!(
            StatusFile::load(&path),
            Err(StoreError::Corrupt { .. })
        ));
        fs::write(&path, vec![b'a'; 5000]).unwrap();
        assert!(StatusFile::load(&path).is_err());
        let mut good = StatusFile::encode(&vec![("a".into(), "1".into())]);
        good[9] = b'b';
        fs::write(&path, &good).unwrap();
        assert!(matches!(
            StatusFile::load(&path),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn trailing_incomplete_line_ignored_and_value_with_equals() {
        let body = "\nk=v=w\npartial=1";
        let mut data = format!("{:08x}", crc32c(body.as_bytes())).into_bytes();
        data.extend_from_slice(body.as_bytes());
        let p = StatusFile::parse(Path::new("x"), &data).unwrap();
        assert_eq!(p, vec![("k".to_string(), "v=w".to_string())]);
    }

    #[test]
    fn manager_round_trip_with_64_bit_commit_index_and_extra_keys() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("raft.status");
        let mut m = StatusManager::load(&path, true).unwrap();
        assert_eq!(m.status, RaftStatus::default());
        m.status.current_term = 7;
        m.status.commit_index = 5_000_000_000;
        m.status.first_valid_pos = 123;
        m.status.extra.push(("custom".into(), "x".into()));
        m.persist().unwrap();
        let m2 = StatusManager::load(&path, true).unwrap();
        assert_eq!(m2.status, m.status);
        assert!(!d.path().join("raft.status.tmp").exists());
    }

    /// The term of the entry before firstValidIndex after an install (dt only) is
    /// written once the install is done and read back; not while installing.
    #[test]
    fn first_valid_term_round_trips_after_an_install() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("raft.status");
        let mut m = StatusManager::load(&path, true).unwrap();
        m.status.first_valid_index = 41;
        m.status.first_valid_term = Some(7);
        m.persist().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("dtFirstValidTerm=7\n"), "{text}");
        assert_eq!(
            StatusManager::load(&path, true)
                .unwrap()
                .status
                .first_valid_term,
            Some(7)
        );
        m.status.install_snapshot = true;
        m.persist().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("dtFirstValidTerm"), "{text}");
    }

    /// The position an installing node votes with (dt only) is written with
    /// `installSnapshot = true` and read back; a file without it (the reference's) or
    /// with the install done gives none, and the keys are not written then.
    #[test]
    fn install_vote_round_trips_only_while_installing() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("raft.status");
        let mut m = StatusManager::load(&path, true).unwrap();
        m.status.install_snapshot = true;
        m.status.install_vote = Some((3, 40));
        m.persist().unwrap();
        let m2 = StatusManager::load(&path, true).unwrap();
        assert_eq!(m2.status.install_vote, Some((3, 40)));
        assert_eq!(PersistedState::from(&m2.status).install_vote, Some((3, 40)));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("dtInstallVoteTerm=3\n") && text.contains("dtInstallVoteIndex=40\n"));
        m.status.install_snapshot = false;
        m.persist().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("dtInstallVote"), "{text}");
        assert_eq!(
            StatusManager::load(&path, true)
                .unwrap()
                .status
                .install_vote,
            None
        );
        // the reference's file while installing: no position
        let p = StatusFile::parse(
            Path::new("x"),
            &StatusFile::encode(&vec![("installSnapshot".into(), "true".into())]),
        )
        .unwrap();
        let st = RaftStatus::from_props(Path::new("x"), p).unwrap();
        assert!(st.install_snapshot && st.install_vote.is_none());
    }

    /// Atomicity: whatever prefix of a new version reached the temp file, and whether
    /// or not the rename happened, a load sees exactly the old or the new version.
    #[test]
    fn atomic_replace_never_reads_torn() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("raft.status");
        let mut m = StatusManager::load(&path, true).unwrap();
        m.status.current_term = 1;
        m.persist().unwrap();
        let old = m.status.clone();
        let mut new = old.clone();
        new.current_term = 2;
        new.commit_index = 99;
        let new_bytes = StatusFile::encode(&new.to_props());
        let tmp = tmp_path(&path);
        for cut in 0..=new_bytes.len() {
            // crash while writing the temp file: the main file is untouched
            fs::write(&tmp, &new_bytes[..cut]).unwrap();
            let got = StatusManager::load(&path, true).unwrap().status;
            assert_eq!(got, old);
        }
        // crash after the rename: the new version
        fs::rename(&tmp, &path).unwrap();
        assert_eq!(StatusManager::load(&path, true).unwrap().status, new);
        // a torn main file (impossible with rename, but checked) is detected, not read
        let full = fs::read(&path).unwrap();
        for cut in 1..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            match StatusManager::load(&path, true) {
                Err(StoreError::Corrupt { .. }) => {}
                Ok(m) => panic!("torn file at {cut} read as valid: {:?}", m.status),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
