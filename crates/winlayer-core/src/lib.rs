//! winlayer's shared model of a Windows container layer.
//!
//! Every format winlayer reads or writes (layer tars, CIM images, plain directories) is a
//! [`LayerSource`] or a [`LayerSink`] of the same [`Entry`] stream, the shape of Windows' own
//! layer writer: objects with their metadata, further names of an object (hard links),
//! alternate data streams right after their owner, and deletions (whiteouts). Only metadata is
//! held in memory; file data flows through or is referred to where it lies.

pub mod attrs;
pub mod canonical;
pub mod check;
pub mod dir;
pub mod ea;
pub mod entry;
pub mod filetime;
pub mod path;
pub mod reparse;
pub mod security;
pub mod tap;
pub mod temp;
pub mod xattrs;

pub use canonical::{Collector, Sorted};
pub use check::{Checker, Problem, Severity};
pub use entry::{Data, Entry, EntryKind, Error, LayerSink, LayerSource, Metadata, Origin, Result};
pub use filetime::FileTime;
pub use path::LayerPath;
