//! What can go wrong reading, writing or merging a hive.

/// A hive that cannot be read, or a tree that cannot be written as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not a primary registry hive of a supported version.
    #[error("not a registry hive: {0}")]
    NotAHive(String),
    /// The base block says a write was interrupted: the data needs its transaction logs.
    #[error(
        "the hive is dirty ({0}): an interrupted write left it needing its transaction logs \
         (.LOG1/.LOG2), which winlayer does not replay; load it once on Windows to recover it"
    )]
    Dirty(String),
    /// A structure inside the hive is broken.
    #[error("malformed hive: {0}")]
    Malformed(String),
    /// The tree breaks a rule of the format or of Windows (names, sizes, duplicates).
    #[error("cannot write the hive: {0}")]
    Unwritable(String),
    /// The hives cannot be merged as a base and a differencing hive.
    #[error("cannot merge: {0}")]
    Merge(String),
}

/// Result alias for hive operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for winlayer_core::Error {
    fn from(e: Error) -> Self {
        winlayer_core::Error::Invalid(e.to_string())
    }
}
