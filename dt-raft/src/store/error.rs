//! The typed error of the store: every failure names the file (and offset) it is about.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Result alias using [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong in the store, in a shape a caller can `match` on.
///
/// Corruption variants carry the file and the byte offset inside it, so an operator
/// can inspect (or restore) exactly that place.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system call failed.
    Io {
        /// The operation (`"open"`, `"write"`, `"fsync"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Bytes on disk are not what the format allows and cannot be explained by a torn
    /// write at the tail (a CRC-valid header with impossible lengths, a broken chain
    /// before data known to be committed, a bad checksum in the middle of the log, ...).
    Corrupt {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Offset of the bad structure inside `file`.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A segment or index file does not have the fixed size of its kind.
    BadFileSize {
        /// The file.
        file: PathBuf,
        /// The size required by the configuration.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// The set of files in a directory is inconsistent (gap, misaligned start, ...).
    BadLayout {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An entry that the caller asked for is not (or no longer) in the log.
    NotFound {
        /// The Raft index asked for.
        index: u64,
        /// Why it is not available.
        reason: String,
    },
    /// A caller passed an argument that violates the contract of the call.
    InvalidArgument(String),
    /// The log was closed (by `close`, or dropped while the operation was pending).
    Closed,
    /// An earlier write or fsync failed, so the store stopped taking work (fail-stop):
    /// after a failed write the files may hold a hole, and after a failed fsync the
    /// page cache may have dropped data, so nothing later could be acknowledged
    /// honestly. `cause` is that first failure (operation, path, OS error kind). Free
    /// the space or fix the device, then restart the group: recovery keeps every
    /// acknowledged entry.
    Failed {
        /// The error that stopped the store.
        cause: Arc<StoreError>,
    },
    /// A snapshot install is in progress (or required before the log can be used):
    /// the log has no entries to read or append to until the install finishes.
    Installing,
    /// Another `LogStore` (in this or another process) holds the data directory.
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file that could not be locked.
        lock_file: PathBuf,
    },
    /// A configuration value is out of range.
    InvalidConfig {
        /// The field of [`StoreConfig`](super::StoreConfig).
        field: &'static str,
        /// The value given.
        value: String,
        /// What the field requires.
        requirement: &'static str,
    },
}

impl StoreError {
    /// An [`StoreError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A [`StoreError::Corrupt`].
    pub fn corrupt(file: impl AsRef<Path>, offset: u64, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            file: file.as_ref().to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// [`StoreError::Failed`] with `cause`.
    pub fn failed(cause: Arc<StoreError>) -> Self {
        StoreError::Failed { cause }
    }

    /// The OS error kind behind this error (through [`StoreError::Failed`]), if an OS
    /// call failed: `StorageFull` for ENOSPC, ... Use [`StoreError::raw_os_error`] for
    /// the errno itself (EIO has no kind of its own).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            StoreError::Failed { cause } => cause.io_kind(),
            _ => None,
        }
    }

    /// The errno behind this error (through [`StoreError::Failed`]), if an OS call
    /// failed with one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            StoreError::Io { source, .. } => source.raw_os_error(),
            StoreError::Failed { cause } => cause.raw_os_error(),
            _ => None,
        }
    }

    /// Whether this error is about bad bytes on disk (as opposed to an OS failure or a
    /// caller error).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::BadFileSize { .. }
                | StoreError::BadLayout { .. }
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { op, path, source } => {
                write!(f, "{op} failed on {}: {source}", path.display())
            }
            StoreError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corrupt data in {} at offset {offset}: {reason}; refusing to continue \
                 (inspect or restore the file, or reinstall this node from a snapshot)",
                file.display()
            ),
            StoreError::BadFileSize {
                file,
                expected,
                actual,
            } => write!(
                f,
                "{} has size {actual}, expected {expected} (was the file size setting changed?)",
                file.display()
            ),
            StoreError::BadLayout { dir, reason } => {
                write!(f, "bad file layout in {}: {reason}", dir.display())
            }
            StoreError::NotFound { index, reason } => {
                write!(f, "log entry {index} not available: {reason}")
            }
            StoreError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            StoreError::Closed => write!(f, "the log is closed"),
            StoreError::Failed { cause } => write!(
                f,
                "the log stopped taking work after a failed write or fsync (free space \
                 or fix the device, then restart the group; recovery keeps every \
                 acknowledged entry): {cause}"
            ),
            StoreError::Installing => write!(
                f,
                "a snapshot install is in progress; the log has no entries until it finishes"
            ),
            StoreError::Locked { dir, lock_file } => write!(
                f,
                "the data directory {} is in use by another log store (in this or another \
                 process): {} is locked; stop the other user first",
                dir.display(),
                lock_file.display()
            ),
            StoreError::InvalidConfig {
                field,
                value,
                requirement,
            } => write!(
                f,
                "invalid store configuration: {field} = {value}: it must be {requirement}"
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Failed { cause } => Some(&**cause),
            _ => None,
        }
    }
}

impl From<StoreError> for dt_common::DtError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { source, .. } => dt_common::DtError::Io(source),
            StoreError::InvalidArgument(m) => dt_common::DtError::InvalidArgument(m),
            e @ StoreError::InvalidConfig { .. } => {
                dt_common::DtError::InvalidArgument(e.to_string())
            }
            StoreError::Closed => dt_common::DtError::Stopped("raft log closed".into()),
            e @ StoreError::Failed { .. } => match e.io_kind() {
                Some(kind) => dt_common::DtError::Io(io::Error::new(kind, e.to_string())),
                None => dt_common::DtError::Stopped(e.to_string()),
            },
            e @ (StoreError::Installing | StoreError::Locked { .. }) => {
                dt_common::DtError::Stopped(e.to_string())
            }
            other => dt_common::DtError::Codec(other.to_string()),
        }
    }
}
