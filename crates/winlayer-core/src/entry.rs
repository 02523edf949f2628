//! The entry stream every source produces and every sink consumes.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ea::ExtendedAttribute;
use crate::filetime::FileTime;
use crate::path::LayerPath;
use crate::reparse::Link;

/// One item of a layer, in the shape of Windows' layer writer: an object with its metadata, a
/// second name for an object, an alternate data stream of the previous object, or a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the entry lives. For streams, the owner's path; for whiteouts, the deleted path;
    /// for opaque markers, the directory.
    pub path: LayerPath,
    /// What the entry is.
    pub kind: EntryKind,
    /// Windows metadata (ignored for streams, whiteouts and opaque markers).
    pub meta: Metadata,
}

/// The kinds of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file of `size` bytes; its data follows.
    File {
        /// Data length.
        size: u64,
    },
    /// A symbolic link or junction (a reparse point); a directory link has DIRECTORY set in
    /// its attributes.
    Symlink(Link),
    /// A further name of the file at `target` (in this layer, or in a parent layer).
    HardLink {
        /// The first name of the file.
        target: LayerPath,
    },
    /// An alternate data stream of the object at `path`; `size` bytes of data follow.
    Stream {
        /// The stream name, without the `:$DATA` type.
        name: String,
        /// Data length.
        size: u64,
    },
    /// `path` is deleted from the layers below.
    Whiteout,
    /// Everything below the directory `path` in the layers below is hidden (`.wh..wh..opq`).
    /// Windows' own importers ignore it (docs/tar-dialect.md).
    Opaque,
}

impl EntryKind {
    /// A short lower-case name for listings.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::Directory => "dir",
            EntryKind::File { .. } => "file",
            EntryKind::Symlink(l) if l.junction => "junction",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::HardLink { .. } => "hardlink",
            EntryKind::Stream { .. } => "stream",
            EntryKind::Whiteout => "whiteout",
            EntryKind::Opaque => "opaque",
        }
    }

    /// Bytes of data that follow the entry.
    pub fn data_len(&self) -> u64 {
        match self {
            EntryKind::File { size } | EntryKind::Stream { size, .. } => *size,
            _ => 0,
        }
    }

    /// Whether the entry carries Windows metadata of its own.
    pub fn has_metadata(&self) -> bool {
        matches!(
            self,
            EntryKind::Directory | EntryKind::File { .. } | EntryKind::Symlink(_) | EntryKind::HardLink { .. }
        )
    }
}

/// The Windows metadata of an object (FILE_BASIC_INFO, security, EAs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// FILE_ATTRIBUTE_* bits; 0 means "leave Windows' default".
    pub attributes: u32,
    /// CreationTime.
    pub creation: FileTime,
    /// LastWriteTime.
    pub last_write: FileTime,
    /// LastAccessTime.
    pub last_access: FileTime,
    /// ChangeTime.
    pub change: FileTime,
    /// A checked self-relative security descriptor; `None` inherits from the parent.
    pub security: Option<Arc<[u8]>>,
    /// Extended attributes, sorted by name.
    pub eas: Vec<ExtendedAttribute>,
}

impl Metadata {
    /// Metadata whose four times are all `time`.
    pub fn with_times(attributes: u32, time: FileTime) -> Self {
        Metadata {
            attributes,
            creation: time,
            last_write: time,
            last_access: time,
            change: time,
            security: None,
            eas: Vec::new(),
        }
    }
}

/// An error from a source or a sink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What failed.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Input that breaks the format or the layer rules.
    #[error("{0}")]
    Invalid(String),
    /// Several rule violations, all listed.
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<crate::check::Problem>),
}

impl Error {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// Result alias for the entry stream.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The data that follows a file or stream entry, readable once.
///
/// Besides a reader, a source may say where the bytes live (a range of a file it opened, or a
/// path), so a sink that must reorder entries can refer to them instead of copying them.
pub struct Data<'a> {
    reader: Option<&'a mut dyn Read>,
    origin: Origin,
    opened: Option<io::Take<File>>,
    len: u64,
}

/// Where a data run lives, when it lives somewhere a sink may read it again.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Only the reader has it.
    Stream,
    /// `len` bytes at `offset` of an open file.
    FileRange(Arc<File>, u64),
    /// The whole content of a file on disk.
    Path(PathBuf),
}

impl<'a> Data<'a> {
    /// No data.
    pub fn empty() -> Self {
        Data { reader: None, origin: Origin::Stream, opened: None, len: 0 }
    }

    /// `len` bytes from a reader.
    pub fn from_reader(reader: &'a mut dyn Read, len: u64, origin: Origin) -> Self {
        Data { reader: Some(reader), origin, opened: None, len }
    }

    /// The content of a file on disk, opened on first read.
    pub fn from_path(path: &Path, len: u64) -> Self {
        Data { reader: None, origin: Origin::Path(path.to_path_buf()), opened: None, len }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the bytes live.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl Read for Data<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(r) = self.reader.as_mut() {
            return r.read(buf);
        }
        if self.opened.is_none() {
            match &self.origin {
                Origin::Path(p) => self.opened = Some(File::open(p)?.take(self.len)),
                _ => return Ok(0),
            }
        }
        self.opened.as_mut().map_or(Ok(0), |f| f.read(buf))
    }
}

/// Consumes an entry stream (a tar writer, a checker, a listing, a CIM writer, …).
pub trait LayerSink {
    /// Takes the next entry; `data` holds `entry.kind.data_len()` bytes, which the sink may
    /// leave unread.
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()>;
}

/// Produces an entry stream.
pub trait LayerSource {
    /// Sends every entry, in order, to `sink`.
    fn send_to(self, sink: &mut dyn LayerSink) -> Result<()>;
}
