//! Errors with containerd's classes, so callers across gRPC see exactly what containerd's own
//! snapshotters return (`errdefs` classes map one-to-one onto gRPC codes).

use std::fmt;
use std::io;
use std::path::Path;

/// containerd's error classes (`errdefs`), as far as a snapshotter uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ErrNotFound`: the key, name or parent does not exist.
    NotFound,
    /// `ErrAlreadyExists`: the key or name is taken.
    AlreadyExists,
    /// `ErrFailedPrecondition`: the snapshot is in the wrong state (not active, has children).
    FailedPrecondition,
    /// `ErrInvalidArgument`: the request itself is wrong (bad filter, immutable field).
    InvalidArgument,
    /// `ErrNotImplemented`: a feature this build cannot provide yet.
    NotImplemented,
    /// Anything else: I/O or database failures.
    Internal,
}

impl ErrorKind {
    /// The suffix containerd's errdefs classes print (`"…: not found"`).
    fn suffix(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A snapshotter error: a class and a message saying what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of class `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    /// `ErrNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// `ErrAlreadyExists`.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::AlreadyExists, message)
    }

    /// `ErrFailedPrecondition`.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::FailedPrecondition, message)
    }

    /// `ErrInvalidArgument`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An internal failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// An I/O failure on `path` while doing `what`.
    pub fn io(what: &str, path: &Path, err: io::Error) -> Self {
        Error::internal(format!("{what} {}: {err}", path.display()))
    }

    /// The class.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the class suffix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.kind.suffix())
    }
}

impl std::error::Error for Error {}

/// Database failures are internal errors naming the database.
impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Self {
        Error::internal(format!("metadata database: {err}"))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::from(redb::Error::from(err))
            }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// The result of every snapshotter operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
