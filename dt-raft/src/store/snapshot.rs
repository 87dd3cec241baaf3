//! Snapshot files (`docs/storage-format.md` §5): `<yyyyMMdd_HHmmss>_<id>.data` holds the state
//! machine's byte stream in checksummed fixed-stride blocks, `<base>.idx` its metadata
//! in the status-file format. A snapshot counts only once its `.idx` exists: the data
//! file is fsynced first, then the idx file is written atomically.
//!
//! A snapshot being written streams into `<yyyyMMdd_HHmmss>.<n>.data.tmp`; it takes its
//! id, and its final name (with the time it is finished), when it is finished
//! ([`SnapshotWriter::finish`]). Writers can therefore stream side by side (a save and an
//! install); only their finishes must not run at once, since each takes the next id after
//! the newest snapshot. Names then sort as ids do (but within one second), which is the
//! order the reference reads them in.
//!
//! Differences from the reference, keeping the format: snapshots are ordered by their
//! numeric id (the reference sorts by file name, so id 10 sorted before id 9 within one
//! second); the time in the name is UTC (std has no time-zone database).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::crc32c::Crc32c;
use super::error::{StoreError, StoreResult};
use super::file_queue::{release_blocks_of, sync_dir};
use super::snapshot_readers::{is_read, ReaderMark};
use super::status::{prop, Props, StatusFile};

/// Default block stride (`diskSnapshotBufferSize`).
pub const DEFAULT_BUFFER_SIZE: usize = 65536;

/// Metadata of a snapshot (the keys of its `.idx` file).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    /// Last log index reflected in the snapshot.
    pub last_included_index: u64,
    /// Its term.
    pub last_included_term: u32,
    /// Voting members.
    pub members: Vec<i32>,
    /// Observers.
    pub observers: Vec<i32>,
    /// Prepared (joint consensus) members.
    pub prepared_members: Vec<i32>,
    /// Prepared observers.
    pub prepared_observers: Vec<i32>,
    /// Index of the last configuration change.
    pub last_config_change_index: u64,
    /// Block stride of the data file.
    pub buffer_size: usize,
    /// Id of this snapshot + 1.
    pub next_snapshot_id: u64,
    /// Informational save start time.
    pub save_start_time: String,
    /// Informational save end time.
    pub save_end_time: String,
}

fn ids_to_string(v: &[i32]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_ids(path: &Path, key: &str, s: Option<&str>) -> StoreResult<Vec<i32>> {
    let s = s.unwrap_or("").trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| StoreError::corrupt(path, 0, format!("bad node id {p:?} in {key}")))
        })
        .collect()
}

impl SnapshotMeta {
    fn to_props(&self) -> Props {
        vec![
            (
                "preparedObservers".into(),
                ids_to_string(&self.prepared_observers),
            ),
            ("nextSnapshotId".into(), self.next_snapshot_id.to_string()),
            (
                "lastIncludedTerm".into(),
                self.last_included_term.to_string(),
            ),
            ("saveStartTime".into(), self.save_start_time.clone()),
            ("saveEndTime".into(), self.save_end_time.clone()),
            ("members".into(), ids_to_string(&self.members)),
            (
                "preparedMembers".into(),
                ids_to_string(&self.prepared_members),
            ),
            (
                "lastConfigChangeIndex".into(),
                self.last_config_change_index.to_string(),
            ),
            (
                "lastIncludedIndex".into(),
                self.last_included_index.to_string(),
            ),
            ("observers".into(), ids_to_string(&self.observers)),
            ("bufferSize".into(), self.buffer_size.to_string()),
        ]
    }

    fn from_props(path: &Path, p: &Props) -> StoreResult<SnapshotMeta> {
        fn num<T: std::str::FromStr>(path: &Path, p: &Props, k: &str) -> StoreResult<T> {
            let v = prop(p, k)
                .ok_or_else(|| StoreError::corrupt(path, 0, format!("missing key {k}")))?;
            v.parse()
                .map_err(|_| StoreError::corrupt(path, 0, format!("bad value {v:?} for {k}")))
        }
        let m = SnapshotMeta {
            last_included_index: num(path, p, "lastIncludedIndex")?,
            last_included_term: num(path, p, "lastIncludedTerm")?,
            members: parse_ids(path, "members", prop(p, "members"))?,
            observers: parse_ids(path, "observers", prop(p, "observers"))?,
            prepared_members: parse_ids(path, "preparedMembers", prop(p, "preparedMembers"))?,
            prepared_observers: parse_ids(path, "preparedObservers", prop(p, "preparedObservers"))?,
            last_config_change_index: num(path, p, "lastConfigChangeIndex")?,
            buffer_size: num(path, p, "bufferSize")?,
            next_snapshot_id: num(path, p, "nextSnapshotId")?,
            save_start_time: prop(p, "saveStartTime").unwrap_or("").into(),
            save_end_time: prop(p, "saveEndTime").unwrap_or("").into(),
        };
        if m.buffer_size < 16 || m.buffer_size > (1 << 30) {
            return Err(StoreError::corrupt(
                path,
                0,
                format!("bufferSize {} out of range", m.buffer_size),
            ));
        }
        Ok(m)
    }
}

/// One saved snapshot on disk.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    /// The numeric id (from the file name).
    pub id: u64,
    /// The metadata file.
    pub idx_path: PathBuf,
    /// The data file.
    pub data_path: PathBuf,
    /// Its metadata.
    pub meta: SnapshotMeta,
}

impl SnapshotInfo {
    /// Reads the snapshot whose metadata file is `idx_path` (the data file is the one
    /// beside it with the same base name and `.data`), wherever it is: a copy taken for
    /// a backup, say. Checks the metadata and that the data file exists, not the data
    /// blocks (see [`SnapshotInfo::verify`]). A name outside the
    /// `<time>_<id>.idx` pattern gets id 0.
    pub fn load(idx_path: &Path) -> StoreResult<SnapshotInfo> {
        let name = idx_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(stem) = name.strip_suffix(".idx") else {
            return Err(StoreError::InvalidArgument(format!(
                "{} is not a snapshot metadata file (its name must end with .idx)",
                idx_path.display()
            )));
        };
        let data_path = idx_path.with_file_name(format!("{stem}.data"));
        if !data_path.is_file() {
            return Err(StoreError::InvalidArgument(format!(
                "{}: the snapshot's data file {} is missing",
                idx_path.display(),
                data_path.display()
            )));
        }
        let props = StatusFile::load(idx_path)?.ok_or_else(|| {
            StoreError::corrupt(
                idx_path,
                0,
                "the snapshot metadata file is missing or empty",
            )
        })?;
        let meta = SnapshotMeta::from_props(idx_path, &props)?;
        Ok(SnapshotInfo {
            id: parse_id(stem).unwrap_or(0),
            idx_path: idx_path.to_path_buf(),
            data_path,
            meta,
        })
    }

    /// Opens the data file for streaming.
    pub fn open_reader(&self) -> StoreResult<SnapshotReader> {
        SnapshotReader::open(&self.data_path, self.meta.buffer_size)
    }

    /// Reads the whole data file, checking every block.
    pub fn verify(&self) -> StoreResult<u64> {
        let mut r = self.open_reader()?;
        let mut n = 0;
        while let Some(c) = r.next_chunk()? {
            n += c.len() as u64;
        }
        Ok(n)
    }
}

/// Streams the payload of a data file block by block, verifying each block.
pub struct SnapshotReader {
    path: PathBuf,
    file: File,
    /// Keeps [`SnapshotDir::delete`] from freeing the file's blocks under this reader.
    _mark: ReaderMark,
    len: u64,
    stride: usize,
    next: u64,
    offset: u64,
}

impl SnapshotReader {
    /// Opens `path` written with block stride `stride`.
    pub fn open(path: &Path, stride: usize) -> StoreResult<SnapshotReader> {
        // Marked before it is opened: see `snapshot_readers`.
        let mark = ReaderMark::new(&fs::canonicalize(path).unwrap_or_else(|_| path.into()));
        let file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        Ok(SnapshotReader {
            path: path.to_path_buf(),
            file,
            _mark: mark,
            len,
            stride,
            next: 0,
            offset: 0,
        })
    }

    /// Stream offset of the next chunk.
    pub fn stream_offset(&self) -> u64 {
        self.offset
    }

    /// The next block's payload, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> StoreResult<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        if self.next >= self.len {
            return Ok(None);
        }
        let at = self.next;
        let mut lb = [0u8; 4];
        if self.len - at < 8 {
            return Err(StoreError::corrupt(&self.path, at, "truncated block"));
        }
        self.file
            .read_exact_at(&mut lb, at)
            .map_err(|e| StoreError::io("read", &self.path, e))?;
        let l = u32::from_be_bytes(lb) as u64;
        if l == 0 || l > (self.stride - 8) as u64 {
            return Err(StoreError::corrupt(
                &self.path,
                at,
                format!(
                    "block payload length {l} out of range 1..={}",
                    self.stride - 8
                ),
            ));
        }
        if at + 8 + l > self.len {
            return Err(StoreError::corrupt(
                &self.path,
                at,
                "block extends past the end of the file",
            ));
        }
        let mut buf = vec![0u8; l as usize + 4];
        self.file
            .read_exact_at(&mut buf, at + 4)
            .map_err(|e| StoreError::io("read", &self.path, e))?;
        let stored = u32::from_be_bytes(buf[l as usize..].try_into().expect("4 bytes"));
        let crc = Crc32c::new()
            .update(&lb)
            .update(&buf[..l as usize])
            .finish();
        if crc != stored {
            return Err(StoreError::corrupt(&self.path, at, "block crc mismatch"));
        }
        buf.truncate(l as usize);
        self.next = at + self.stride as u64;
        self.offset += l;
        Ok(Some(buf))
    }
}

/// Writes a new snapshot: stream bytes in with [`SnapshotWriter::write`], then
/// [`SnapshotWriter::finish`]. Dropping it unfinished deletes the partial file.
pub struct SnapshotWriter {
    dir: PathBuf,
    /// The partial data file (`<time>.<n>.data.tmp`) until finished.
    tmp_path: PathBuf,
    out: Option<BufWriter<File>>,
    stride: usize,
    block: Vec<u8>,
    sync: bool,
    /// Bytes written to the file since its last fdatasync (see [`SYNC_STEP`]).
    unsynced: u64,
    start_time: String,
    done: bool,
}

/// A snapshot being written is fdatasynced every this many bytes (when syncing), so
/// that its final fsync has little left to write. Left to the end, a 300 MB snapshot's
/// writeback filled the disk's queue at once and the log's fsyncs waited behind it:
/// DtKV put latency up to 0.4–0.67 s during each save of a 1-million-key state.
pub const SYNC_STEP: u64 = 8 << 20;

impl SnapshotWriter {
    /// Appends bytes of the state machine's stream.
    pub fn write(&mut self, mut data: &[u8]) -> StoreResult<()> {
        let cap = self.stride - 8;
        while !data.is_empty() {
            let n = (cap - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == cap {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> StoreResult<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let lb = (self.block.len() as u32).to_be_bytes();
        let crc = Crc32c::new().update(&lb).update(&self.block).finish();
        let out = self.out.as_mut().expect("open");
        let r = out
            .write_all(&lb)
            .and_then(|_| out.write_all(&self.block))
            .and_then(|_| out.write_all(&crc.to_be_bytes()));
        r.map_err(|e| StoreError::io("write", &self.tmp_path, e))?;
        self.unsynced += self.block.len() as u64 + 8;
        self.block.clear();
        if self.sync && self.unsynced >= SYNC_STEP {
            self.unsynced = 0;
            out.flush()
                .and_then(|_| out.get_ref().sync_data())
                .map_err(|e| StoreError::io("fdatasync", &self.tmp_path, e))?;
        }
        Ok(())
    }

    /// Completes the data file (fsync with metadata), gives it the next id after the
    /// newest snapshot and its final name, then writes the idx file atomically.
    /// `meta.buffer_size`, `next_snapshot_id` and the times are filled in. Two
    /// finishes in one directory must not run at once (they would take the same id).
    pub fn finish(mut self, mut meta: SnapshotMeta) -> StoreResult<SnapshotInfo> {
        self.flush_block()?;
        let out = self.out.take().expect("open");
        let file = out
            .into_inner()
            .map_err(|e| StoreError::io("write", &self.tmp_path, e.into_error()))?;
        if self.sync {
            file.sync_all()
                .map_err(|e| StoreError::io("fsync", &self.tmp_path, e))?;
        }
        drop(file);
        let id = next_id(&SnapshotDir::new(&self.dir, self.sync))?;
        let base = format!("{}_{id}", format_time(SystemTime::now(), false));
        let data_path = self.dir.join(format!("{base}.data"));
        fs::rename(&self.tmp_path, &data_path)
            .map_err(|e| StoreError::io("rename", &self.tmp_path, e))?;
        self.done = true;
        meta.buffer_size = self.stride;
        meta.next_snapshot_id = id.saturating_add(1);
        meta.save_start_time = self.start_time.clone();
        meta.save_end_time = format_time(SystemTime::now(), true);
        let idx_path = self.dir.join(format!("{base}.idx"));
        // the idx file's atomic save syncs the directory, the rename with it
        if let Err(e) = StatusFile::save(&idx_path, &meta.to_props(), self.sync) {
            let _ = fs::remove_file(&data_path);
            return Err(e);
        }
        Ok(SnapshotInfo {
            id,
            idx_path,
            data_path,
            meta,
        })
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.done {
            self.out = None;
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// The id a snapshot finished now takes: the one after the newest snapshot's (or its
/// recorded `nextSnapshotId`), 1 in an empty directory. Ids read from the disk at the
/// top of the range leave none: a corrupt-store error, not an overflow.
fn next_id(d: &SnapshotDir) -> StoreResult<u64> {
    let Some(s) = d.list()?.pop() else {
        return Ok(1);
    };
    match s.id.checked_add(1) {
        Some(after) if s.meta.next_snapshot_id < u64::MAX => Ok(s.meta.next_snapshot_id.max(after)),
        _ => Err(StoreError::corrupt(
            &s.idx_path,
            0,
            format!(
                "snapshot id {} / nextSnapshotId {} leave no id for a new snapshot",
                s.id, s.meta.next_snapshot_id
            ),
        )),
    }
}

/// Tells apart the partial files of writers started in the same second.
static PARTIAL_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The `snapshot/` directory of a group.
pub struct SnapshotDir {
    dir: PathBuf,
    sync: bool,
}

fn parse_id(stem: &str) -> Option<u64> {
    stem.rsplit_once('_').and_then(|(_, id)| id.parse().ok())
}

impl SnapshotDir {
    /// The directory (created on first use).
    pub fn new(dir: &Path, sync: bool) -> SnapshotDir {
        SnapshotDir {
            dir: dir.to_path_buf(),
            sync,
        }
    }

    /// Start-up: removes leftovers (zero-length idx files with their data file, idx
    /// files without data, data files without idx, temp files) and returns the valid
    /// snapshots, oldest first. An idx file with a bad checksum is skipped (and
    /// logged), not deleted.
    pub fn init(&self) -> StoreResult<Vec<SnapshotInfo>> {
        fs::create_dir_all(&self.dir).map_err(|e| StoreError::io("create dir", &self.dir, e))?;
        let mut names = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| StoreError::io("list dir", &self.dir, e))? {
            let e = e.map_err(|e| StoreError::io("list dir", &self.dir, e))?;
            if let Some(n) = e.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        let mut changed = false;
        for n in &names {
            let p = self.dir.join(n);
            if let Some(stem) = n.strip_suffix(".data") {
                if !names.iter().any(|m| m == &format!("{stem}.idx")) {
                    log::warn!("deleting snapshot data without metadata: {}", p.display());
                    fs::remove_file(&p).map_err(|e| StoreError::io("delete", &p, e))?;
                    changed = true;
                }
            } else if n.ends_with(".idx.tmp") || n.ends_with(".data.tmp") {
                fs::remove_file(&p).map_err(|e| StoreError::io("delete", &p, e))?;
                changed = true;
            } else if let Some(stem) = n.strip_suffix(".idx") {
                let data = self.dir.join(format!("{stem}.data"));
                let empty = fs::metadata(&p).map(|m| m.len() == 0).unwrap_or(false);
                if empty || !data.exists() {
                    log::warn!("deleting incomplete snapshot {}", p.display());
                    fs::remove_file(&p).map_err(|e| StoreError::io("delete", &p, e))?;
                    let _ = fs::remove_file(&data);
                    changed = true;
                }
            }
        }
        if changed && self.sync {
            sync_dir(&self.dir)?;
        }
        self.list()
    }

    /// The valid snapshots, oldest first (ordered by id).
    pub fn list(&self) -> StoreResult<Vec<SnapshotInfo>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io("list dir", &self.dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| StoreError::io("list dir", &self.dir, e))?;
            let Some(n) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(stem) = n.strip_suffix(".idx") else {
                continue;
            };
            let Some(id) = parse_id(stem) else { continue };
            let idx_path = self.dir.join(&n);
            let data_path = self.dir.join(format!("{stem}.data"));
            if !data_path.exists() {
                continue;
            }
            let meta = StatusFile::load(&idx_path)
                .and_then(|p| SnapshotMeta::from_props(&idx_path, &p.unwrap_or_default()));
            match meta {
                Ok(meta) => out.push(SnapshotInfo {
                    id,
                    idx_path,
                    data_path,
                    meta,
                }),
                Err(err) => log::warn!("ignoring invalid snapshot: {err}"),
            }
        }
        out.sort_by(|a, b| (a.id, &a.idx_path).cmp(&(b.id, &b.idx_path)));
        Ok(out)
    }

    /// The newest snapshot whose metadata is valid.
    pub fn latest(&self) -> StoreResult<Option<SnapshotInfo>> {
        Ok(self.list()?.pop())
    }

    /// The newest snapshot whose metadata and every data block are valid.
    pub fn latest_verified(&self) -> StoreResult<Option<SnapshotInfo>> {
        let mut l = self.list()?;
        while let Some(s) = l.pop() {
            match s.verify() {
                Ok(_) => return Ok(Some(s)),
                Err(e) => log::warn!("skipping snapshot {}: {e}", s.data_path.display()),
            }
        }
        Ok(None)
    }

    /// Starts a new snapshot with block stride `buffer_size` (a power of two ≥ 16); it
    /// takes its id when finished.
    pub fn create(&self, buffer_size: usize) -> StoreResult<SnapshotWriter> {
        if !buffer_size.is_power_of_two() || buffer_size < 16 {
            return Err(StoreError::InvalidArgument(format!(
                "snapshot buffer size {buffer_size} must be a power of two >= 16"
            )));
        }
        fs::create_dir_all(&self.dir).map_err(|e| StoreError::io("create dir", &self.dir, e))?;
        let now = SystemTime::now();
        let time = format_time(now, false);
        let (file, tmp_path) = loop {
            let n = PARTIAL_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = self.dir.join(format!("{time}.{n}.data.tmp"));
            match OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => break (f, p),
                // left by an earlier process (init removes such files)
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create", &p, e)),
            }
        };
        Ok(SnapshotWriter {
            dir: self.dir.clone(),
            tmp_path,
            out: Some(BufWriter::with_capacity(buffer_size, file)),
            stride: buffer_size,
            block: Vec::with_capacity(buffer_size - 8),
            sync: self.sync,
            unsynced: 0,
            start_time: format_time(now, true),
            done: false,
        })
    }

    /// Deletes one snapshot (idx first, so a crash leaves only an orphan data file).
    ///
    /// The data file's blocks are then freed
    /// [`RELEASE_STEP`](super::file_queue::RELEASE_STEP) at a time, as a deleted log
    /// segment's are ([`DtFile::release_blocks`](super::file_queue::DtFile::release_blocks)):
    /// one release of a large file holds up the fsyncs of every file on the disk (a
    /// 300 MB file on ext4 here: fdatasyncs beside it up to 131–147 ms, against
    /// 11–18 ms in steps). Unless a [`SnapshotReader`] of this process still reads it:
    /// then its blocks go when the reader closes it.
    pub fn delete(&self, s: &SnapshotInfo) -> StoreResult<()> {
        fs::remove_file(&s.idx_path).map_err(|e| StoreError::io("delete", &s.idx_path, e))?;
        // Held open across the unlink to free its blocks afterwards; a file that cannot
        // be opened for writing is only unlinked.
        let canonical = fs::canonicalize(&s.data_path).ok();
        let held = OpenOptions::new().write(true).open(&s.data_path).ok();
        match fs::remove_file(&s.data_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("delete", &s.data_path, e)),
        }
        if self.sync {
            sync_dir(&self.dir)?;
        }
        if let (Some(file), Some(canonical)) = (held, canonical) {
            if !is_read(&canonical) {
                release_blocks_of(&file, &s.data_path);
            }
        }
        Ok(())
    }

    /// Deletes the oldest snapshots until at most `max(1, keep)` remain. Returns the
    /// last included index of the oldest kept snapshot (the log may be truncated up to
    /// it).
    pub fn keep(&self, keep: usize) -> StoreResult<Option<u64>> {
        let mut l = self.list()?;
        let keep = keep.max(1);
        while l.len() > keep {
            let s = l.remove(0);
            self.delete(&s)?;
        }
        Ok(l.first().map(|s| s.meta.last_included_index))
    }
}

/// `yyyyMMdd_HHmmss` (file names) or `yyyy-MM-dd HH:mm:ss,SSS` (metadata), in UTC.
pub fn format_time(t: SystemTime, long: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86400) as i64);
    let s = secs % 86400;
    let (hh, mm, ss) = (s / 3600, s % 3600 / 60, s % 60);
    if long {
        format!(
            "{y:04}-{m:02}-{day:02} {hh:02}:{mm:02}:{ss:02},{:03}",
            d.subsec_millis()
        )
    } else {
        format!("{y:04}{m:02}{day:02}_{hh:02}{mm:02}{ss:02}")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(i: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_included_index: i,
            last_included_term: 2,
            members: vec![1, 2, 3],
            observers: vec![4],
            ..Default::default()
        }
    }

    #[test]
    fn time_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_747_421_054);
        assert_eq!(format_time(t, false), "20261127_024341");
        assert_eq!(format_time(t, true), "2026-11-27 02:43:41,054");
        assert_eq!(format_time(UNIX_EPOCH, false), "19700101_000000");
    }

    #[test]
    fn save_list_read_keep() {
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path(), true);
        assert!(sd.init().unwrap().is_empty());
        let stream: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
        for k in 0..12u64 {
            let mut w = sd.create(64).unwrap();
            w.write(&stream[..(k as usize * 90)]).unwrap();
            w.write(&stream[(k as usize * 90)..]).unwrap();
            let info = w.finish(meta(100 + k)).unwrap();
            assert_eq!(info.id, k + 1);
            // length: full blocks of 64 + last block
            let len = fs::metadata(&info.data_path).unwrap().len();
            assert_eq!(len, (1000 / 56) * 64 + (1000 % 56) + 8);
        }
        let l = sd.list().unwrap();
        assert_eq!(l.len(), 12);
        // ordered by id, not by name: id 10 after id 9
        assert_eq!(
            l.iter().map(|s| s.id).collect::<Vec<_>>(),
            (1..=12).collect::<Vec<_>>()
        );
        let latest = sd.latest().unwrap().unwrap();
        assert_eq!(latest.meta.last_included_index, 111);
        assert_eq!(latest.meta.members, vec![1, 2, 3]);
        let mut r = latest.open_reader().unwrap();
        let mut back = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            back.extend(c);
        }
        assert_eq!(back, stream);
        assert_eq!(sd.keep(2).unwrap(), Some(110));
        assert_eq!(sd.list().unwrap().len(), 2);
        // corrupt the newest data: latest_verified falls back to the older one
        let mut data = fs::read(&latest.data_path).unwrap();
        data[70] ^= 1;
        fs::write(&latest.data_path, data).unwrap();
        assert!(latest.verify().is_err());
        assert_eq!(
            sd.latest_verified()
                .unwrap()
                .unwrap()
                .meta
                .last_included_index,
            110
        );
    }

    #[test]
    fn empty_stream_and_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path(), true);
        let w = sd.create(4096).unwrap();
        let info = w.finish(meta(5)).unwrap();
        assert_eq!(fs::metadata(&info.data_path).unwrap().len(), 0);
        assert_eq!(info.verify().unwrap(), 0);
        // an abandoned writer leaves nothing
        let mut w = sd.create(4096).unwrap();
        w.write(b"abc").unwrap();
        drop(w);
        // leftovers: zero-length idx, orphan data
        fs::write(d.path().join("20200101_000000_7.idx"), b"").unwrap();
        fs::write(d.path().join("20200101_000000_7.data"), b"x").unwrap();
        fs::write(d.path().join("20200101_000000_8.data"), b"x").unwrap();
        fs::write(d.path().join("20200101_000000.3.data.tmp"), b"x").unwrap();
        let l = sd.init().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn writers_stream_side_by_side_and_take_ids_when_finished() {
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path(), true);
        let mut a = sd.create(64).unwrap();
        let mut b = sd.create(64).unwrap();
        let mut c = sd.create(64).unwrap();
        a.write(b"first started").unwrap();
        b.write(b"second started").unwrap();
        c.write(b"abandoned").unwrap();
        // nothing is a snapshot before it is finished
        assert!(sd.list().unwrap().is_empty());
        let names = |d: &Path| {
            let mut n: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(d.path()).len(), 3);
        assert!(names(d.path()).iter().all(|n| n.ends_with(".data.tmp")));
        // the one finished first takes id 1, though started second
        let fb = b.finish(meta(20)).unwrap();
        let fa = a.finish(meta(10)).unwrap();
        assert_eq!((fb.id, fa.id), (1, 2));
        assert_eq!(fa.meta.next_snapshot_id, 3);
        assert!(fb.data_path.to_str().unwrap().ends_with("_1.data"));
        drop(c);
        let l = sd.list().unwrap();
        assert_eq!(
            l.iter()
                .map(|s| (s.id, s.meta.last_included_index))
                .collect::<Vec<_>>(),
            vec![(1, 20), (2, 10)]
        );
        let mut r = l[1].open_reader().unwrap();
        assert_eq!(r.next_chunk().unwrap().unwrap(), b"first started");
        // the abandoned writer's partial file is gone: two snapshots, two files each
        let left = names(d.path());
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().all(|n| !n.ends_with(".tmp")));
    }

    #[test]
    fn deleting_a_snapshot_frees_its_blocks_unless_a_reader_holds_it() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path(), true);
        let write = |n: u64| {
            let mut w = sd.create(4096).unwrap();
            for i in 0..200u32 {
                w.write(&[i as u8; 3000]).unwrap();
            }
            w.finish(meta(n)).unwrap()
        };
        let unread = write(10);
        let read = write(20);
        // Descriptors opened beside the store's readers see what happens to the inodes.
        let probe_unread = File::open(&unread.data_path).unwrap();
        let probe_read = File::open(&read.data_path).unwrap();
        let size = probe_read.metadata().unwrap().len();
        assert!(size > 600_000);

        let expected: Vec<u8> = (0..200u32).flat_map(|i| [i as u8; 3000]).collect();
        let mut reader = read.open_reader().unwrap();
        let mut got = reader.next_chunk().unwrap().unwrap();
        sd.delete(&unread).unwrap();
        sd.delete(&read).unwrap();
        assert!(sd.list().unwrap().is_empty());
        assert!(!unread.data_path.exists() && !read.data_path.exists());

        // Nobody read the first one: its blocks are freed through the held descriptor.
        assert_eq!(probe_unread.metadata().unwrap().len(), 0);
        let mut b = [0u8; 1];
        assert_eq!(probe_unread.read_at(&mut b, 0).unwrap(), 0);
        // The second one stays whole for its reader, which reads it to the end.
        assert_eq!(probe_read.metadata().unwrap().len(), size);
        while let Some(c) = reader.next_chunk().unwrap() {
            got.extend_from_slice(&c);
        }
        assert!(got == expected, "the reader read {} bytes", got.len());
    }

    #[test]
    fn an_id_at_the_top_of_the_range_is_an_error_not_an_overflow() {
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path(), false);
        let w = sd.create(64).unwrap();
        let info = w.finish(meta(1)).unwrap();
        let top = format!("20200101_000000_{}", u64::MAX);
        fs::rename(&info.data_path, d.path().join(format!("{top}.data"))).unwrap();
        fs::rename(&info.idx_path, d.path().join(format!("{top}.idx"))).unwrap();
        let w = sd.create(64).unwrap();
        assert!(matches!(w.finish(meta(2)), Err(StoreError::Corrupt { .. })));
        assert_eq!(sd.list().unwrap().len(), 1, "nothing new was named");
    }

    #[test]
    fn bad_blocks_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path(), true);
        let mut w = sd.create(32).unwrap();
        w.write(&[7u8; 100]).unwrap();
        let info = w.finish(meta(1)).unwrap();
        let good = fs::read(&info.data_path).unwrap();
        for i in 0..good.len() {
            for cut in [true, false] {
                let mut b = good.clone();
                if cut {
                    b.truncate(i);
                } else {
                    b[i] ^= 0x40;
                }
                fs::write(&info.data_path, &b).unwrap();
                let r = info.verify();
                if cut && i % 32 == 0 {
                    // a cut at a block boundary is a shorter valid stream
                    assert!(r.is_ok());
                } else {
                    assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{i} {cut}");
                }
            }
        }
    }
}
