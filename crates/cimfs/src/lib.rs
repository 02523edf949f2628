//! Classic CimFS images (format 2.0) on any OS.
//!
//! A CIM is a read-only file system image: a small `<name>.cim` file that names region sets,
//! and `region_<guid>_<n>` files holding every object (file tables, directory tables, security
//! descriptors, data). [`CimWriter`] is a [`winlayer_core::LayerSink`] that writes one,
//! optionally forked from a parent CIM so that only the layer's changes are stored;
//! [`Cim`] opens one with its parents, and [`CimSource`] sends its merged view as an entry
//! stream ([`Changes`]: only what a fork changes in its parent's view). The layout follows
//! Microsoft's own reader (see `docs/cimfs.md`).

pub mod changes;
#[cfg(unix)]
pub mod extract;
pub mod format;
#[cfg(target_os = "linux")]
pub mod fuse;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod reader;
pub mod source;
pub mod upcase;
pub mod writer;

pub use changes::Changes;
pub use reader::{Cim, DirEntry, FileId, destroy};
pub use source::CimSource;
pub use writer::{CimWriter, Summary};
