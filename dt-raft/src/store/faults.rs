//! Fault injection under the store's file writes, fsyncs and reads.
//!
//! Every write and fsync of log segments, index files and the status file goes through
//! [`FileFaults`] when [`StoreConfig::faults`](super::StoreConfig::faults) is set. The
//! hook runs before the real system call and may let it through, cut it short (write a
//! prefix, then fail, as a disk that fills up mid-write does) or fail it. It changes
//! nothing else: the bytes that get through are really written, so a test can reopen
//! the directory and see exactly what a real failure would have left.
//!
//! Positional reads of log segments and index files (recovery, iteration, term
//! lookups, tail truncation) go through [`FileFaults::before_read`] too, so a test can
//! also see on which thread a read runs or make it fail.
//!
//! [`DiskFaults`] is the implementation the tests use: a disk with a byte budget
//! (ENOSPC once it is spent) whose fsyncs can be made to fail (EIO). A deterministic
//! simulation can implement [`FileFaults`] itself.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

/// `ENOSPC` on Linux: no space left on device.
pub const ENOSPC: i32 = 28;
/// `EIO` on Linux: input/output error.
pub const EIO: i32 = 5;

/// A hook under the store's file writes, fsyncs and reads (see the module documentation).
///
/// Called from whichever thread does the IO; implementations must be thread-safe.
pub trait FileFaults: Send + Sync + fmt::Debug {
    /// Before `len` bytes are written to `path`. `Ok(())` lets the write through;
    /// `Err((n, e))` writes only the first `n` bytes (`n < len`) and then fails the
    /// write with `e`.
    fn before_write(&self, path: &Path, len: usize) -> Result<(), (usize, io::Error)> {
        let _ = (path, len);
        Ok(())
    }

    /// Before an fsync (or fdatasync) of `path`; an error fails the fsync.
    fn before_sync(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }

    /// Before a positional read of `len` bytes of `path` (a log segment or an index
    /// file); an error fails the read.
    fn before_read(&self, path: &Path, len: usize) -> io::Result<()> {
        let _ = (path, len);
        Ok(())
    }
}

/// The optional hook as the store carries it.
pub type Faults = Option<Arc<dyn FileFaults>>;

/// A disk with a byte budget and fsyncs that can be made to fail.
///
/// ```
/// use dt_raft::store::faults::{DiskFaults, FileFaults, ENOSPC};
/// use std::path::Path;
///
/// let disk = DiskFaults::with_space(10);
/// assert!(disk.before_write(Path::new("f"), 6).is_ok());
/// let (written, e) = disk.before_write(Path::new("f"), 6).unwrap_err();
/// assert_eq!((written, e.raw_os_error()), (4, Some(ENOSPC)));
/// disk.set_space(u64::MAX); // the operator freed space
/// assert!(disk.before_write(Path::new("f"), 6).is_ok());
/// ```
#[derive(Debug)]
pub struct DiskFaults {
    /// Bytes that may still be written (`u64::MAX`: unlimited).
    space: AtomicU64,
    /// errno returned by every fsync (0: fsyncs succeed).
    sync_errno: AtomicI32,
}

impl DiskFaults {
    /// A disk on which `bytes` more bytes can be written before writes fail with
    /// ENOSPC.
    pub fn with_space(bytes: u64) -> Arc<DiskFaults> {
        Arc::new(DiskFaults {
            space: AtomicU64::new(bytes),
            sync_errno: AtomicI32::new(0),
        })
    }

    /// A disk without faults (until told otherwise).
    pub fn healthy() -> Arc<DiskFaults> {
        Self::with_space(u64::MAX)
    }

    /// Sets the space left (`u64::MAX`: unlimited).
    pub fn set_space(&self, bytes: u64) {
        self.space.store(bytes, Ordering::SeqCst);
    }

    /// The space left.
    pub fn space(&self) -> u64 {
        self.space.load(Ordering::SeqCst)
    }

    /// Makes every later fsync fail with `errno` (for example [`EIO`]), or succeed
    /// again with `None`.
    pub fn fail_syncs(&self, errno: Option<i32>) {
        self.sync_errno.store(errno.unwrap_or(0), Ordering::SeqCst);
    }
}

impl FileFaults for DiskFaults {
    fn before_write(&self, _path: &Path, len: usize) -> Result<(), (usize, io::Error)> {
        let want = len as u64;
        let mut left = self.space.load(Ordering::SeqCst);
        loop {
            if left == u64::MAX {
                return Ok(());
            }
            let granted = want.min(left);
            match self.space.compare_exchange(
                left,
                left - granted,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) if granted == want => return Ok(()),
                Ok(_) => {
                    return Err((granted as usize, io::Error::from_raw_os_error(ENOSPC)));
                }
                Err(now) => left = now,
            }
        }
    }

    fn before_sync(&self, _path: &Path) -> io::Result<()> {
        match self.sync_errno.load(Ordering::SeqCst) {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Runs the hook (if any) for a write of `buf`, then `write` with what it lets through.
pub(crate) fn write_through(
    faults: &Faults,
    path: &Path,
    buf: &[u8],
    write: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    match faults.as_ref().map(|f| f.before_write(path, buf.len())) {
        None | Some(Ok(())) => write(buf),
        Some(Err((n, e))) => {
            write(&buf[..n.min(buf.len())])?;
            Err(e)
        }
    }
}

/// Runs the hook (if any) for `len` bytes about to be allocated to `path` (counted as a
/// write of that many bytes), then `allocate` with what it lets through.
pub(crate) fn allocate_through(
    faults: &Faults,
    path: &Path,
    len: u64,
    allocate: impl FnOnce(u64) -> io::Result<()>,
) -> io::Result<()> {
    let asked = usize::try_from(len).unwrap_or(usize::MAX);
    match faults.as_ref().map(|f| f.before_write(path, asked)) {
        None | Some(Ok(())) => allocate(len),
        Some(Err((n, e))) => {
            if n > 0 {
                allocate((n as u64).min(len))?;
            }
            Err(e)
        }
    }
}

/// Runs the hook (if any) for an fsync of `path`, then `sync`.
pub(crate) fn sync_through(
    faults: &Faults,
    path: &Path,
    sync: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    if let Some(f) = faults {
        f.before_sync(path)?;
    }
    sync()
}
