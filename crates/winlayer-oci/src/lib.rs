//! Windows container images: OCI image layouts, manifests, configs and indexes, a registry
//! client that streams every blob, Windows platform matching by `os.version`, and the image
//! operations of `winlayer image` (copy, inspect, append, squash, convert) built on winlayer's
//! layer crates, and OCI 1.1 referrers (the API and the tag schema).
//!
//! Every blob passes through [`digest::Hasher`] on its way to a file and is checked against its
//! descriptor before it is renamed into place; nothing is ever held whole in memory but
//! manifests and configs (at most [`MAX_MANIFEST`] bytes).

pub mod append;
pub mod auth;
pub mod convert;
pub mod digest;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod layout;
pub mod location;
pub mod manifest;
pub mod platform;
pub mod referrers;
pub mod registry;
pub mod squash;
pub mod store;

pub use digest::Digest;
pub use location::Location;
pub use platform::Platform;

/// The largest manifest, index or config winlayer reads (containerd's limit for manifests).
pub const MAX_MANIFEST: u64 = 4 << 20;

pub use winlayer_core::{Error, Result};

/// An error that is not I/O: the message says what, where and why.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}
