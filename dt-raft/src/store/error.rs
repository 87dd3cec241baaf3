//! The typed error of the store: every failure names the file (and offset) it is about.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

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
    /// The log was closed, or a snapshot install is in progress.
    Closed,
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
            StoreError::Closed => write!(f, "the log is closed or being reinstalled"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<StoreError> for dt_common::DtError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { source, .. } => dt_common::DtError::Io(source),
            StoreError::InvalidArgument(m) => dt_common::DtError::InvalidArgument(m),
            StoreError::Closed => dt_common::DtError::Stopped("raft log closed".into()),
            other => dt_common::DtError::Codec(other.to_string()),
        }
    }
}
