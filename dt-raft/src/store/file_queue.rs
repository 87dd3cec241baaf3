//! `FileQueue`: a directory of fixed-size, pre-allocated files named by the 20-digit
//! absolute start position they cover (`docs/storage-format.md` §2, §3). Log segments
//! and index files are both kept this way.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{StoreError, StoreResult};
use super::faults::{allocate_through, sync_through, write_through, Faults};

/// One file of a [`FileQueue`]. Positional reads and writes take `&self`, so IO threads
/// can share it through an `Arc`; the queue treats a file whose `Arc` is held elsewhere
/// as "in use" and does not delete it.
#[derive(Debug)]
pub struct DtFile {
    /// Absolute start position (the number in the file name).
    pub start: u64,
    /// Path of the file.
    pub path: PathBuf,
    file: File,
    faults: Faults,
    /// The file system's device number (`st_dev`; 0 if it could not be read): files
    /// with the same one can share one `syncfs` ([`super::fsync_batcher`]).
    dev: u64,
    /// Whether pages of appends made durable are dropped from the page cache
    /// ([`DtFile::drop_synced_pages`]).
    drop_pages: AtomicBool,
    /// End (offset in the file) of the appends written so far ([`DtFile::note_appended`]).
    appended_end: AtomicU64,
    /// Pages below this offset have been dropped from the page cache.
    dropped_to: AtomicU64,
}

/// Pages of a log segment are dropped from the page cache in steps of this many bytes
/// (one `posix_fadvise` per step). 2 MiB, the largest folio the page cache makes on
/// x86-64: a folio is aligned to its size, so a step never splits one (the kernel
/// keeps a folio that reaches outside the range it is asked to drop; a single 3 MiB
/// `pwrite` is cached in 2 MiB folios, and with 1 MiB steps those stayed).
pub const PAGE_DROP_STEP: u64 = 2 << 20;

impl DtFile {
    fn new(start: u64, path: PathBuf, file: File, faults: Faults) -> DtFile {
        let dev = file.metadata().map_or(0, |m| m.dev());
        DtFile {
            start,
            path,
            file,
            faults,
            dev,
            drop_pages: AtomicBool::new(false),
            appended_end: AtomicU64::new(0),
            dropped_to: AtomicU64::new(0),
        }
    }

    /// Turns on (or off) dropping the page cache of appends once they are durable
    /// ([`DtFile::drop_synced_pages`]).
    pub fn set_drop_synced_pages(&self, on: bool) {
        self.drop_pages.store(on, Ordering::Relaxed);
    }

    /// Records that the file holds appended data up to `end` (an offset in the file),
    /// written before this call. Only the log's own appends are noted (not zeros
    /// written ahead of them), so that pages still to be appended to are never dropped.
    pub fn note_appended(&self, end: u64) {
        self.appended_end.fetch_max(end, Ordering::Release);
    }

    /// The log's tail was cut back to `end` (an offset in the file; 0 for a segment
    /// wholly past the cut): later appends rewrite from there, so only what they write
    /// counts as appended again. Call it with no write job in flight.
    pub fn note_truncated(&self, end: u64) {
        self.appended_end.store(end, Ordering::Release);
    }

    /// The end of the appends noted so far: take it before an fsync and hand it to
    /// [`DtFile::drop_synced_pages`] once the fsync succeeded.
    pub fn appended_mark(&self) -> u64 {
        self.appended_end.load(Ordering::Acquire)
    }

    /// After an fsync that began once the appends up to `mark` were written: drops the
    /// whole [`PAGE_DROP_STEP`]s below `mark` from the page cache (when turned on).
    /// They are clean, and a log reads its recent entries from memory (the tail cache)
    /// and older ones rarely, so keeping them only fills memory: on a VM whose host
    /// takes back the guest's free memory, each new page-cache page then costs a
    /// host-side fault on first touch (~25 us per 4 KiB page on the test machine), and
    /// elsewhere the page cache grows until reclaim must scan it. Dropped pages are
    /// reused by the next appends. Advice only: an error is ignored.
    pub fn drop_synced_pages(&self, mark: u64) {
        if !self.drop_pages.load(Ordering::Relaxed) {
            return;
        }
        let to = mark & !(PAGE_DROP_STEP - 1);
        let from = self.dropped_to.fetch_max(to, Ordering::AcqRel);
        if to > from {
            sys::drop_pages(&self.file, from, to - from);
        }
    }

    /// The device number of the file system holding the file (0 if unknown).
    pub fn device(&self) -> u64 {
        self.dev
    }

    /// Runs the fault-injection hook of an fsync of this file, without syncing (for a
    /// sync that covers the file some other way, such as `syncfs`).
    pub fn check_sync_fault(&self) -> StoreResult<()> {
        sync_through(&self.faults, &self.path, || Ok(()))
            .map_err(|e| StoreError::io("fdatasync", &self.path, e))
    }

    /// Reads exactly `buf.len()` bytes at `offset` inside the file.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<()> {
        if let Some(f) = &self.faults {
            f.before_read(&self.path, buf.len())
                .map_err(|e| StoreError::io("read", &self.path, e))?;
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| StoreError::io("read", &self.path, e))
    }

    /// Writes all of `buf` at `offset` inside the file.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> StoreResult<()> {
        write_through(&self.faults, &self.path, buf, |b| {
            self.file.write_all_at(b, offset)
        })
        .map_err(|e| StoreError::io("write", &self.path, e))
    }

    /// Data-only fsync (fdatasync); then drops the pages of appends it made durable
    /// from the page cache when that is turned on ([`DtFile::drop_synced_pages`]).
    pub fn sync_data(&self) -> StoreResult<()> {
        let mark = self.appended_mark();
        sync_through(&self.faults, &self.path, || self.file.sync_data())
            .map_err(|e| StoreError::io("fdatasync", &self.path, e))?;
        self.drop_synced_pages(mark);
        Ok(())
    }

    /// Full fsync (data and metadata, such as the size).
    pub fn sync_all(&self) -> StoreResult<()> {
        sync_through(&self.faults, &self.path, || self.file.sync_all())
            .map_err(|e| StoreError::io("fsync", &self.path, e))
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Frees the blocks of a file already deleted (unlinked), [`RELEASE_STEP`] at a
    /// time from its end, before it is closed; returns the number of truncations.
    /// Only when nothing else holds the file (a reader keeps its data whole): then it
    /// does nothing and the blocks go when the last holder closes it.
    ///
    /// Closing a deleted 1 GiB segment frees all its blocks in one file-system
    /// operation, and an fsync of another file (the log's next appends) waits for the
    /// journal commit that carries it: measured on ext4 here, fdatasyncs of 64 KiB
    /// appends running beside the deletion took up to 62–80 ms (0.25 ms otherwise), and
    /// up to 5 ms with 8 MiB steps, the deletion itself taking as long (~0.25 s). Best
    /// effort: a failed truncation stops the steps, and closing frees the rest.
    pub fn release_blocks(self: Arc<Self>) -> usize {
        let Ok(f) = Arc::try_unwrap(self) else {
            return 0;
        };
        release_blocks_of(&f.file, &f.path)
    }
}

/// Bytes freed per truncation by [`DtFile::release_blocks`].
pub const RELEASE_STEP: u64 = 8 << 20;

/// Truncates `file` (opened for writing, its name already unlinked) [`RELEASE_STEP`]
/// at a time from its end; returns the number of truncations. Best effort: a failed
/// step stops, and closing the file frees the rest. The caller makes sure nothing else
/// still reads the file.
pub(crate) fn release_blocks_of(file: &File, path: &Path) -> usize {
    let mut len = match file.metadata() {
        Ok(m) => m.len(),
        Err(_) => return 0,
    };
    let mut steps = 0;
    while len > 0 {
        len = len.saturating_sub(RELEASE_STEP);
        if let Err(e) = file.set_len(len) {
            log::debug!("freeing {} in steps: {e}", path.display());
            break;
        }
        steps += 1;
    }
    steps
}

/// Formats a start position as a 20-digit file name.
pub fn file_name(start: u64) -> String {
    format!("{start:020}")
}

/// Parses a 20-digit file name; anything else is `None` (such files are ignored).
pub fn parse_file_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync dir", dir, e))
}

/// An ordered set of contiguous fixed-size files in one directory.
#[derive(Debug)]
pub struct FileQueue {
    /// Shared with the queue's snapshots and makers: a write job or a read takes no
    /// copy of the path.
    dir: Arc<Path>,
    file_size: u64,
    sync: bool,
    files: VecDeque<Arc<DtFile>>,
    faults: Faults,
    allocate: bool,
    drop_pages: bool,
}

impl FileQueue {
    /// Opens (creating the directory if needed) and validates the files of `dir`:
    /// every 20-digit file must be exactly `file_size` bytes, start at a multiple of
    /// it, and follow its predecessor without a gap.
    pub fn open(dir: &Path, file_size: u64, sync: bool) -> StoreResult<FileQueue> {
        Self::open_with(dir, file_size, sync, None)
    }

    /// [`FileQueue::open`] with a fault-injection hook under every write and fsync.
    pub fn open_with(
        dir: &Path,
        file_size: u64,
        sync: bool,
        faults: Faults,
    ) -> StoreResult<FileQueue> {
        Self::open_inner(dir, file_size, sync, faults, false)
    }

    /// [`FileQueue::open_with`] for the index files: new files, and the completion
    /// of a short last file, are allocated in full (see
    /// [`FileQueue::allocate_new_files`]).
    pub fn open_allocated(
        dir: &Path,
        file_size: u64,
        sync: bool,
        faults: Faults,
    ) -> StoreResult<FileQueue> {
        Self::open_inner(dir, file_size, sync, faults, true)
    }

    fn open_inner(
        dir: &Path,
        file_size: u64,
        sync: bool,
        faults: Faults,
        allocate: bool,
    ) -> StoreResult<FileQueue> {
        if !file_size.is_power_of_two() {
            return Err(StoreError::InvalidArgument(format!(
                "file size {file_size} is not a power of two"
            )));
        }
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        let mut starts = Vec::new();
        for ent in fs::read_dir(dir).map_err(|e| StoreError::io("list dir", dir, e))? {
            let ent = ent.map_err(|e| StoreError::io("list dir", dir, e))?;
            if let Some(start) = ent.file_name().to_str().and_then(parse_file_name) {
                starts.push(start);
            }
        }
        starts.sort_unstable();
        let mut files = VecDeque::with_capacity(starts.len());
        for (i, &start) in starts.iter().enumerate() {
            let path = dir.join(file_name(start));
            if start % file_size != 0 {
                return Err(StoreError::BadLayout {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "{} does not start at a multiple of {file_size}",
                        path.display()
                    ),
                });
            }
            if i > 0 && starts[i - 1] + file_size != start {
                return Err(StoreError::BadLayout {
                    dir: dir.to_path_buf(),
                    reason: format!("gap before {}", path.display()),
                });
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| StoreError::io("open", &path, e))?;
            let len = file
                .metadata()
                .map_err(|e| StoreError::io("stat", &path, e))?
                .len();
            if len < file_size && i + 1 == starts.len() {
                // Only the last file can be short: a crash between creating it and
                // pre-allocating it. Nothing was ever written there (writes start
                // after the allocation is durable), so finishing the allocation is safe.
                log::warn!(
                    "{} is {len} bytes, expected {file_size}: completing its pre-allocation",
                    path.display()
                );
                size_file(&file, &path, &faults, len, file_size, allocate, sync)?;
            } else if len != file_size {
                return Err(StoreError::BadFileSize {
                    file: path,
                    expected: file_size,
                    actual: len,
                });
            }
            files.push_back(Arc::new(DtFile::new(start, path, file, faults.clone())));
        }
        Ok(FileQueue {
            dir: Arc::from(dir),
            file_size,
            sync,
            files,
            faults,
            allocate,
            drop_pages: false,
        })
    }

    /// Makes the queue's files (open and new ones) drop the pages of their appends
    /// from the page cache once an fsync made them durable ([`DtFile::drop_synced_pages`]).
    pub fn drop_synced_pages(&mut self, on: bool) {
        self.drop_pages = on;
        for f in &self.files {
            f.set_drop_synced_pages(on);
        }
    }

    /// Makes new files really allocated (`posix_fallocate`) instead of sparse, so that
    /// a full file system shows when a file is made (ENOSPC from the allocation), not
    /// later in a write that must not fail half-way (an index flush). On ext4 the
    /// allocation writes nothing: an 8 MiB index file took 0.5 ms to make and fsync,
    /// against ~20 ms with zeros written, and the log's fdatasyncs beside it stayed
    /// under 1 ms where they waited up to ~20 ms for the zeros.
    pub fn allocate_new_files(&mut self, allocate: bool) {
        self.allocate = allocate;
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of every file.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The files in order.
    pub fn files(&self) -> impl Iterator<Item = &Arc<DtFile>> {
        self.files.iter()
    }

    /// Start of the first file.
    pub fn first_start(&self) -> Option<u64> {
        self.files.front().map(|f| f.start)
    }

    /// End (exclusive) of the last file.
    pub fn end(&self) -> Option<u64> {
        self.files.back().map(|f| f.start + self.file_size)
    }

    /// Start of the file containing `pos`.
    pub fn file_start_of(&self, pos: u64) -> u64 {
        pos & !(self.file_size - 1)
    }

    /// The file containing absolute position `pos`, if it exists.
    pub fn get(&self, pos: u64) -> Option<Arc<DtFile>> {
        let first = self.first_start()?;
        if pos < first {
            return None;
        }
        self.files
            .get(((pos - first) / self.file_size) as usize)
            .cloned()
    }

    /// The file containing `pos`, creating (and pre-allocating) it and any missing
    /// file between the current last file and it.
    pub fn ensure(&mut self, pos: u64) -> StoreResult<Arc<DtFile>> {
        if let Some(f) = self.get(pos) {
            return Ok(f);
        }
        let target = self.file_start_of(pos);
        if let Some(first) = self.first_start() {
            if target < first {
                return Err(StoreError::InvalidArgument(format!(
                    "position {pos} is before the first file {first} of {}",
                    self.dir.display()
                )));
            }
        }
        let mut next = self.end().unwrap_or(target);
        while next <= target {
            self.create(next)?;
            next += self.file_size;
        }
        Ok(self.get(pos).expect("just created"))
    }

    fn create(&mut self, start: u64) -> StoreResult<()> {
        let f = self.maker().create(start)?;
        self.files.push_back(f);
        Ok(())
    }

    /// What creating a file of this queue takes, to do it on another thread (an IO
    /// thread) while the queue stays with its owner; the owner adds the result with
    /// [`FileQueue::push_created`].
    pub fn maker(&self) -> FileMaker {
        FileMaker {
            dir: self.dir.clone(),
            file_size: self.file_size,
            sync: self.sync,
            faults: self.faults.clone(),
            allocate: self.allocate,
            drop_pages: self.drop_pages,
        }
    }

    /// Adds a file made by [`FileQueue::maker`]; it must be the one just after the
    /// last file (or the first one of an empty queue).
    pub fn push_created(&mut self, f: Arc<DtFile>) -> StoreResult<()> {
        if self.end().is_some_and(|end| end != f.start) {
            return Err(StoreError::InvalidArgument(format!(
                "{} does not follow the last file of {}",
                f.path.display(),
                self.dir.display()
            )));
        }
        self.files.push_back(f);
        Ok(())
    }

    /// The starts of the files [`FileQueue::ensure`] would create for `pos` (none if
    /// the file exists).
    pub fn missing_for(&self, pos: u64) -> Vec<u64> {
        if self.get(pos).is_some() {
            return Vec::new();
        }
        let target = self.file_start_of(pos);
        let mut next = self.end().unwrap_or(target);
        let mut v = Vec::new();
        while next <= target {
            v.push(next);
            next += self.file_size;
        }
        v
    }

    /// A copy of the queue sharing the same open files: handed to an IO thread for
    /// reads, it keeps the files it holds from being deleted while it exists.
    pub fn snapshot(&self) -> FileQueue {
        FileQueue {
            dir: self.dir.clone(),
            file_size: self.file_size,
            sync: self.sync,
            files: self.files.clone(),
            faults: self.faults.clone(),
            allocate: self.allocate,
            drop_pages: self.drop_pages,
        }
    }

    /// Removes the first file from the queue without deleting it (the caller deletes
    /// it, for example on an IO thread, with [`FileQueue::delete_file`]).
    pub fn pop_first(&mut self) -> Option<Arc<DtFile>> {
        self.files.pop_front()
    }

    /// Deletes a file taken off a queue with [`FileQueue::pop_first`] (and fsyncs its
    /// directory when `sync`).
    pub fn delete_file(f: &DtFile, sync: bool) -> StoreResult<()> {
        fs::remove_file(&f.path).map_err(|e| StoreError::io("delete", &f.path, e))?;
        if sync {
            if let Some(dir) = f.path.parent() {
                sync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Whether the first file is referenced outside the queue (by a reader or writer).
    pub fn first_in_use(&self) -> bool {
        self.files.front().is_some_and(|f| Arc::strong_count(f) > 1)
    }

    /// Deletes the first file.
    pub fn delete_first(&mut self) -> StoreResult<()> {
        if let Some(f) = self.files.pop_front() {
            fs::remove_file(&f.path).map_err(|e| StoreError::io("delete", &f.path, e))?;
            if self.sync {
                sync_dir(&self.dir)?;
            }
        }
        Ok(())
    }

    /// Deletes every file whose name is 20 digits (install begin). The queue's files
    /// are freed in steps once deleted ([`DtFile::release_blocks`]): an install may
    /// wipe gigabytes while other groups on the disk go on writing.
    pub fn delete_all(&mut self) -> StoreResult<()> {
        let held: Vec<Arc<DtFile>> = self.files.drain(..).collect();
        for ent in fs::read_dir(&self.dir).map_err(|e| StoreError::io("list dir", &self.dir, e))? {
            let ent = ent.map_err(|e| StoreError::io("list dir", &self.dir, e))?;
            if ent.file_name().to_str().and_then(parse_file_name).is_some() {
                let p = ent.path();
                fs::remove_file(&p).map_err(|e| StoreError::io("delete", &p, e))?;
            }
        }
        if self.sync {
            sync_dir(&self.dir)?;
        }
        for f in held {
            f.release_blocks();
        }
        Ok(())
    }
}

/// Creates (and pre-allocates) files of one [`FileQueue`] wherever file IO may block;
/// see [`FileQueue::maker`].
#[derive(Clone, Debug)]
pub struct FileMaker {
    dir: Arc<Path>,
    file_size: u64,
    sync: bool,
    faults: Faults,
    allocate: bool,
    drop_pages: bool,
}

impl FileMaker {
    /// Creates the file starting at `start`, sized (and fsynced with its directory
    /// when `sync`).
    pub fn create(&self, start: u64) -> StoreResult<Arc<DtFile>> {
        let path = self.dir.join(file_name(start));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("create", &path, e))?;
        let f = DtFile::new(start, path, file, self.faults.clone());
        f.set_drop_synced_pages(self.drop_pages);
        let sized = size_file(
            &f.file,
            &f.path,
            &self.faults,
            0,
            self.file_size,
            self.allocate,
            self.sync,
        );
        if let Err(e) = sized {
            // Leave no half-made file behind: the next open would take it for a torn
            // creation and complete it, which is harmless, but a full disk is better
            // served by not holding on to the space.
            let _ = fs::remove_file(&f.path);
            return Err(e);
        }
        if self.sync {
            sync_dir(&self.dir)?;
        }
        Ok(Arc::new(f))
    }
}

/// Brings `file` (now `from` bytes long) to `size` bytes: allocated in full when
/// `allocate` (an allocated queue must own its blocks, see
/// [`FileQueue::allocate_new_files`]), sparse otherwise; then fsynced when `sync`.
fn size_file(
    file: &File,
    path: &Path,
    faults: &Faults,
    from: u64,
    size: u64,
    allocate: bool,
    sync: bool,
) -> StoreResult<()> {
    if allocate {
        allocate_through(faults, path, size.saturating_sub(from), |n| {
            sys::allocate(file, from, n)
        })
    } else {
        file.set_len(size)
    }
    .map_err(|e| StoreError::io("preallocate", path, e))?;
    if sync {
        sync_through(faults, path, || file.sync_all())
            .map_err(|e| StoreError::io("fsync", path, e))?;
    }
    Ok(())
}

// `off_t` is 64 bits only on 64-bit Linux targets; elsewhere the advice is skipped.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::raw::c_int;
    use std::os::unix::io::AsRawFd;

    const POSIX_FADV_DONTNEED: c_int = 4;

    extern "C" {
        fn posix_fadvise(fd: c_int, offset: i64, len: i64, advice: c_int) -> c_int;
        fn posix_fallocate(fd: c_int, offset: i64, len: i64) -> c_int;
    }

    /// Allocates the blocks of `len` bytes at `offset` (reading as zeros), extending
    /// the file if needed: `posix_fallocate`, which writes nothing on file systems that
    /// allocate without writing (ext4, XFS); on the others glibc emulates it by
    /// writing into every block.
    pub fn allocate(f: &File, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `posix_fallocate` reads only its integer arguments and a descriptor
        // kept open by the borrow of `f`; it touches no memory of ours. It returns an
        // error number (not -1 and errno).
        match unsafe { posix_fallocate(f.as_raw_fd(), offset, len) } {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    /// Asks the kernel to drop the clean cached pages of `len` bytes at `offset`.
    pub fn drop_pages(f: &File, offset: u64, len: u64) {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: `posix_fadvise` reads only its integer arguments and a descriptor
        // kept open by the borrow of `f`; it touches no memory of ours. Its result is
        // advice only and deliberately ignored.
        let _ = unsafe { posix_fadvise(f.as_raw_fd(), offset, len, POSIX_FADV_DONTNEED) };
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod sys {
    use std::os::unix::fs::FileExt;

    /// Allocates `len` bytes at `offset` by writing zeros.
    pub fn allocate(f: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; 64 * 1024];
        let mut off = offset;
        while off < offset + len {
            let n = (offset + len - off).min(zeros.len() as u64) as usize;
            f.write_all_at(&zeros[..n], off)?;
            off += n as u64;
        }
        Ok(())
    }

    /// No page-cache advice outside 64-bit Linux.
    pub fn drop_pages(_f: &std::fs::File, _offset: u64, _len: u64) {}
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Which 4 KiB pages of `f` (its first `len` bytes) are in the page cache, by
    /// `mincore` over a read-only mapping.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    pub(crate) fn resident_pages(f: &File, len: usize) -> Vec<bool> {
        use std::os::raw::{c_int, c_void};
        use std::os::unix::io::AsRawFd;
        extern "C" {
            fn mmap(a: *mut c_void, l: usize, p: c_int, f: c_int, fd: c_int, o: i64)
                -> *mut c_void;
            fn munmap(a: *mut c_void, l: usize) -> c_int;
            fn mincore(a: *mut c_void, l: usize, v: *mut u8) -> c_int;
        }
        const PROT_READ: c_int = 1;
        const MAP_SHARED: c_int = 1;
        let mut v = vec![0u8; len.div_ceil(4096)];
        // SAFETY: a fresh read-only shared mapping of an open descriptor, never read
        // through; `mincore` writes one byte per page into `v`, which has that many;
        // the mapping is unmapped before returning.
        unsafe {
            let a = mmap(
                std::ptr::null_mut(),
                len,
                PROT_READ,
                MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(a as usize, usize::MAX, "mmap failed");
            assert_eq!(mincore(a, len, v.as_mut_ptr()), 0, "mincore failed");
            munmap(a, len);
        }
        v.iter().map(|b| b & 1 == 1).collect()
    }

    /// A temporary directory whose file system can drop pages from the page cache;
    /// `None` (and a message saying so) on tmpfs, whose pages are the data.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    pub(crate) fn page_cache_dir() -> Option<tempfile::TempDir> {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let tmpfs = mounts
            .lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                let _dev = it.next()?;
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .filter(|(mnt, _)| dir.starts_with(mnt))
            .max_by_key(|(mnt, _)| mnt.len())
            .is_some_and(|(_, ty)| ty == "tmpfs");
        if tmpfs {
            eprintln!(
                "page-cache residency not checked: {} is on tmpfs",
                dir.display()
            );
            return None;
        }
        Some(d)
    }

    /// Writes 1.75 steps of appends (in 256 KiB pieces) and then a quarter step of
    /// zeros ahead of them (not noted as appended) into a new segment, fsyncs it, and
    /// returns its page residency.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn appended_then_synced(drop: bool) -> Option<Vec<bool>> {
        let d = page_cache_dir()?;
        let mut q = FileQueue::open(d.path(), 4 * PAGE_DROP_STEP, true).unwrap();
        q.drop_synced_pages(drop);
        let f = q.maker().create(0).unwrap();
        let chunk = vec![7u8; 256 * 1024];
        let appended = PAGE_DROP_STEP * 7 / 4;
        let mut off = 0;
        while off < appended {
            f.write_all_at(&chunk, off).unwrap();
            off += chunk.len() as u64;
            f.note_appended(off);
        }
        let zeros = vec![0u8; (PAGE_DROP_STEP / 4) as usize];
        f.write_all_at(&zeros, appended).unwrap();
        f.sync_data().unwrap();
        Some(resident_pages(f.file(), 2 * PAGE_DROP_STEP as usize))
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn an_fsync_drops_the_whole_steps_of_appends_it_made_durable_from_the_page_cache() {
        let Some(pages) = appended_then_synced(true) else {
            return;
        };
        let step = (PAGE_DROP_STEP / 4096) as usize;
        assert!(
            pages[..step].iter().all(|r| !r),
            "appends of the first step still cached"
        );
        // the rest of the appends (the step still appended to) and the zeros ahead of
        // them stay
        assert!(pages[step..].iter().all(|r| *r), "{:?}", &pages[step..]);
        // turned off, everything written stays cached (this test could fail)
        let kept = appended_then_synced(false).unwrap();
        assert!(kept.iter().all(|r| *r));
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn after_a_tail_cut_only_what_was_appended_again_is_dropped() {
        let Some(d) = page_cache_dir() else {
            return;
        };
        let step = PAGE_DROP_STEP;
        let mut q = FileQueue::open(d.path(), 4 * step, true).unwrap();
        q.drop_synced_pages(true);
        let f = q.maker().create(0).unwrap();
        // one large write: the page cache keeps it in the largest folios
        let data = vec![3u8; 3 * step as usize];
        f.write_all_at(&data, 0).unwrap();
        f.note_appended(3 * step);
        // cut back to a step + 100 before any fsync, then append 100 bytes there
        f.note_truncated(step + 100);
        f.write_all_at(&[4u8; 100], step + 100).unwrap();
        f.note_appended(step + 200);
        f.sync_data().unwrap();
        let pages = resident_pages(f.file(), 3 * step as usize);
        let n = (step / 4096) as usize;
        assert!(
            pages[..n].iter().all(|r| !r),
            "the first step is durable: dropped"
        );
        assert!(
            pages[n..].iter().all(|r| *r),
            "pages past the cut were dropped"
        );
    }

    #[test]
    fn names() {
        assert_eq!(file_name(1073741824), "00000000001073741824");
        assert_eq!(parse_file_name("00000000001073741824"), Some(1073741824));
        assert_eq!(parse_file_name("0000000000107374182"), None);
        assert_eq!(parse_file_name("0000000000107374182x"), None);
        assert_eq!(parse_file_name("00000000001073741824.tmp"), None);
    }

    /// An index file is allocated in full when it is made: the allocation counts
    /// against the disk's space, and one that does not fit fails then, leaving no file.
    #[test]
    fn an_allocation_past_the_disk_budget_fails_at_creation_and_leaves_no_file() {
        use crate::store::faults::{DiskFaults, ENOSPC};
        let d = tempfile::tempdir().unwrap();
        let disk = DiskFaults::with_space(100 * 1024);
        let mut q =
            FileQueue::open_allocated(d.path(), 64 * 1024, false, Some(disk.clone())).unwrap();
        q.ensure(0).unwrap();
        assert_eq!(disk.space(), 36 * 1024, "the allocation counts as written");
        match q.ensure(64 * 1024) {
            Err(StoreError::Io { op, source, .. }) => {
                assert_eq!((op, source.raw_os_error()), ("preallocate", Some(ENOSPC)))
            }
            other => panic!("expected ENOSPC at creation, got {other:?}"),
        }
        assert_eq!(q.len(), 1);
        assert!(!d.path().join(file_name(64 * 1024)).exists());
    }

    /// Files of an allocated queue (index files) own their blocks, also
    /// when a short last file is completed; a plain queue's are sparse.
    #[test]
    fn allocated_files_are_not_sparse() {
        use std::os::unix::fs::MetadataExt;
        let blocks = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
        let d = tempfile::tempdir().unwrap();
        let mut q = FileQueue::open_allocated(d.path(), 64 * 1024, false, None).unwrap();
        let f = q.ensure(0).unwrap();
        assert!(blocks(&f.path) >= 64 * 1024);
        drop(f);
        drop(q);
        let short = d.path().join(file_name(64 * 1024));
        fs::write(&short, b"short").unwrap();
        let q = FileQueue::open_allocated(d.path(), 64 * 1024, false, None).unwrap();
        assert_eq!(q.len(), 2);
        assert!(blocks(&short) >= 64 * 1024);
        assert_eq!(&fs::read(&short).unwrap()[..5], b"short");
        let d2 = tempfile::tempdir().unwrap();
        let mut q = FileQueue::open(d2.path(), 64 * 1024, false).unwrap();
        let f = q.ensure(0).unwrap();
        assert!(blocks(&f.path) < 64 * 1024, "plain files stay sparse");
    }

    #[test]
    fn create_validate_delete() {
        let d = tempfile::tempdir().unwrap();
        let mut q = FileQueue::open(d.path(), 4096, true).unwrap();
        assert!(q.is_empty());
        let f = q.ensure(3 * 4096 + 5).unwrap();
        assert_eq!(f.start, 3 * 4096);
        assert_eq!(q.len(), 1);
        q.ensure(5 * 4096).unwrap();
        assert_eq!(q.len(), 3);
        fs::write(d.path().join("junk"), b"x").unwrap();
        drop(f);
        let mut q = FileQueue::open(d.path(), 4096, true).unwrap();
        assert_eq!(q.len(), 3);
        assert!(q.get(4096).is_none());
        let held = q.get(3 * 4096).unwrap();
        assert!(q.first_in_use());
        drop(held);
        assert!(!q.first_in_use());
        q.delete_first().unwrap();
        assert_eq!(q.first_start(), Some(4 * 4096));
        // a short last file is completed
        fs::write(d.path().join(file_name(6 * 4096)), b"short").unwrap();
        let q2 = FileQueue::open(d.path(), 4096, true).unwrap();
        assert_eq!(q2.len(), 3);
        drop(q2);
        // a short file that is not the last is fatal
        fs::write(d.path().join(file_name(6 * 4096)), b"short").unwrap();
        fs::write(d.path().join(file_name(7 * 4096)), vec![0u8; 4096]).unwrap();
        assert!(matches!(
            FileQueue::open(d.path(), 4096, true),
            Err(StoreError::BadFileSize { .. })
        ));
        fs::remove_file(d.path().join(file_name(6 * 4096))).unwrap();
        fs::remove_file(d.path().join(file_name(7 * 4096))).unwrap();
        // gap
        fs::write(d.path().join(file_name(8 * 4096)), vec![0u8; 4096]).unwrap();
        assert!(matches!(
            FileQueue::open(d.path(), 4096, true),
            Err(StoreError::BadLayout { .. })
        ));
        let mut q = FileQueue::open(d.path().join("other").as_path(), 4096, true).unwrap();
        let probe = q.ensure(0).unwrap().file().try_clone().unwrap();
        assert_eq!(probe.metadata().unwrap().len(), 4096);
        q.delete_all().unwrap();
        assert!(q.is_empty());
        assert_eq!(
            probe.metadata().unwrap().len(),
            0,
            "the queue's file was freed through its descriptor"
        );
        assert!(d.path().join("junk").exists());
    }

    /// A deleted segment's blocks are freed in steps through the open file (the
    /// length read through another descriptor of the same file ends at 0), but only
    /// when nothing else holds it: a file still held keeps its data.
    #[test]
    fn release_blocks_truncates_a_deleted_file_in_steps_only_when_unshared() {
        let d = tempfile::tempdir().unwrap();
        let size = 4 * RELEASE_STEP;
        let q = FileQueue::open(d.path(), size, false).unwrap();
        let f = q.maker().create(0).unwrap();
        f.write_all_at(&[7u8; 4096], size - 4096).unwrap();
        let probe = f.file().try_clone().unwrap();
        FileQueue::delete_file(&f, false).unwrap();
        assert!(!f.path.exists());

        let held = f.clone();
        assert_eq!(f.release_blocks(), 0, "another holder: nothing freed");
        let mut last = [0u8; 4096];
        held.read_exact_at(&mut last, size - 4096).unwrap();
        assert_eq!(last, [7u8; 4096], "the holder still reads its data");
        assert_eq!(probe.metadata().unwrap().len(), size);

        assert_eq!(held.release_blocks(), 4, "one truncation per step");
        assert_eq!(probe.metadata().unwrap().len(), 0);
    }
}
