//! Rewriting servers.properties from the live membership (the SYNC_CONFIG run).
//!
//! [`render_servers_file`] produces the new text: first `servers = ` with every known
//! node sorted by id, then an empty line, then every other key of the old file as
//! `key = value` (sorted by key: the old order and comments are not kept). For a group
//! that still exists its `nodeIdOfMembers`/`nodeIdOfObservers` lines are replaced by
//! the current sets (sorted, comma-joined); keys of groups that no longer exist are
//! dropped; groups not yet in the file are appended. Keys starting `group.` that do not
//! name a numeric group are kept as they are.
//!
//! [`ServersFileSync`] writes it crash-safely, one step at a time: the text goes to
//! `<file>.tmp` and is fsynced; the current file is copied to
//! `<file>.bak.<yyyyMMddHHmmss>` (at most ten backups are kept, the oldest by
//! modification time deleted first); the temp file is renamed over the original and
//! the directory fsynced. A crash at any point leaves the file either wholly old or
//! wholly new; a stale `.tmp` is simply overwritten by the next run. (The reference
//! stamps backups in the local time zone; we use UTC, std having no zone database.)

use super::loader::GROUP_PREFIX;
use super::servers::{format_servers, ServerNode};
use crate::props::{escape_key, escape_value, Properties, PropsError};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How many backups are kept (including the one a run makes).
pub const MAX_BACKUPS: usize = 10;

/// The current member and observer sets of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMembers {
    /// Voting members.
    pub members: BTreeSet<i32>,
    /// Observers.
    pub observers: BTreeSet<i32>,
}

fn join_ids(ids: &BTreeSet<i32>) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn write_members(out: &mut String, group_id: i32, m: &GroupMembers) {
    out.push_str(&format!(
        "{GROUP_PREFIX}{group_id}.nodeIdOfMembers = {}\n",
        join_ids(&m.members)
    ));
    out.push_str(&format!(
        "{GROUP_PREFIX}{group_id}.nodeIdOfObservers = {}\n",
        join_ids(&m.observers)
    ));
}

/// The new servers.properties text (see the module docs for the rules).
pub fn render_servers_file(
    old: &Properties,
    nodes: &[ServerNode],
    groups: &BTreeMap<i32, GroupMembers>,
) -> String {
    let mut sorted = nodes.to_vec();
    sorted.sort_by_key(|n| n.node_id);
    let mut out = format!("servers = {}\n\n", escape_value(&format_servers(&sorted)));
    let mut done = BTreeSet::new();
    for (key, entry) in old.iter() {
        if key == "servers" {
            continue;
        }
        if let Some(rest) = key.strip_prefix(GROUP_PREFIX) {
            if let Some(dot) = rest.find('.').filter(|&d| d > 0) {
                if let Ok(id) = rest[..dot].parse::<i32>() {
                    let Some(m) = groups.get(&id) else {
                        continue; // the group is gone
                    };
                    let name = &rest[dot + 1..];
                    if name == "nodeIdOfMembers" || name == "nodeIdOfObservers" {
                        if done.insert(id) {
                            write_members(&mut out, id, m);
                        }
                        continue;
                    }
                }
            }
        }
        out.push_str(&format!(
            "{} = {}\n",
            escape_key(key),
            escape_value(&entry.value)
        ));
    }
    for (&id, m) in groups {
        if done.insert(id) {
            write_members(&mut out, id, m);
        }
    }
    out
}

/// Formats a time as `yyyyMMddHHmmss` in UTC.
pub fn backup_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Why a sync run failed (the caller retries later).
#[derive(Debug)]
pub enum SyncError {
    /// The current servers.properties cannot be read or parsed.
    ReadOld(PropsError),
    /// A file operation failed.
    Io {
        /// What was being done.
        step: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::ReadOld(e) => write!(f, "servers.properties sync: {e}"),
            SyncError::Io { step, path, error } => write!(
                f,
                "servers.properties sync: cannot {step} {}: {error}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SyncError {}

/// One rewrite of a servers.properties file, step by step (or all at once with
/// [`ServersFileSync::run`]).
#[derive(Debug, Clone)]
pub struct ServersFileSync {
    path: PathBuf,
}

impl ServersFileSync {
    /// A sync of the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ServersFileSync { path: path.into() }
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `<file>.tmp`.
    pub fn temp_path(&self) -> PathBuf {
        self.dir().join(format!("{}.tmp", self.name()))
    }

    /// `<file>.bak.<stamp>` for a run at `now`.
    pub fn backup_path(&self, now: SystemTime) -> PathBuf {
        self.dir()
            .join(format!("{}.bak.{}", self.name(), backup_stamp(now)))
    }

    fn io<'p>(step: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> SyncError + 'p {
        move |error| SyncError::Io {
            step,
            path: path.to_path_buf(),
            error,
        }
    }

    /// Step 1: reads the current file and writes the new text to `<file>.tmp`, fsynced.
    pub fn write_temp(
        &self,
        nodes: &[ServerNode],
        groups: &BTreeMap<i32, GroupMembers>,
    ) -> Result<(), SyncError> {
        let old = Properties::load(&self.path).map_err(SyncError::ReadOld)?;
        let text = render_servers_file(&old, nodes, groups);
        let tmp = self.temp_path();
        let mut f = File::create(&tmp).map_err(Self::io("create", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(Self::io("write", &tmp))?;
        f.sync_all().map_err(Self::io("fsync", &tmp))?;
        Ok(())
    }

    /// Step 2: deletes the oldest backups so that, with the new one, at most
    /// [`MAX_BACKUPS`] remain, then copies the current file to `<file>.bak.<stamp>`
    /// (replacing one of the same second).
    pub fn backup(&self, now: SystemTime) -> Result<PathBuf, SyncError> {
        let dir = self.dir();
        let prefix = format!("{}.bak.", self.name());
        let mut backups: Vec<(SystemTime, PathBuf)> = Vec::new();
        for e in fs::read_dir(&dir).map_err(Self::io("list", &dir))? {
            let e = e.map_err(Self::io("list", &dir))?;
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let mtime = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                backups.push((mtime, e.path()));
            }
        }
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (_, old) in backups.iter().skip(MAX_BACKUPS - 1) {
            // A backup that cannot be deleted is not worth failing the sync for.
            let _ = fs::remove_file(old);
        }
        let bak = self.backup_path(now);
        fs::copy(&self.path, &bak).map_err(Self::io("copy to backup", &bak))?;
        Ok(bak)
    }

    /// Step 3: renames the temp file over the original and fsyncs the directory.
    pub fn commit(&self) -> Result<(), SyncError> {
        let tmp = self.temp_path();
        fs::rename(&tmp, &self.path).map_err(Self::io("rename", &tmp))?;
        let dir = self.dir();
        let d = OpenOptions::new()
            .read(true)
            .open(&dir)
            .map_err(Self::io("open directory", &dir))?;
        d.sync_all().map_err(Self::io("fsync directory", &dir))?;
        Ok(())
    }

    /// All three steps.
    pub fn run(
        &self,
        nodes: &[ServerNode],
        groups: &BTreeMap<i32, GroupMembers>,
        now: SystemTime,
    ) -> Result<(), SyncError> {
        self.write_temp(nodes, groups)?;
        self.backup(now)?;
        self.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps() {
        assert_eq!(backup_stamp(SystemTime::UNIX_EPOCH), "19700101000000");
        // 2026-12-04T07:06:53Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_368_013);
        assert_eq!(backup_stamp(t), "20261204070653");
        // 2000-02-29T23:59:59Z (leap day)
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_868_799);
        assert_eq!(backup_stamp(t), "20000229235959");
    }
}
