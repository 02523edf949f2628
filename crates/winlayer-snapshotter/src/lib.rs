//! winlayer's containerd snapshotter: containerd's snapshot semantics, persistent in one redb
//! file, served over containerd's proxy-plugin gRPC API.
//!
//! * [`Snapshotter`]: the state machine (Prepare, View, Mounts, Commit, Remove, Stat, Update,
//!   Walk, Usage, Cleanup) with containerd's error classes and crash-safe directory work;
//! * [`Mode`]/[`layout`]: what differs between the `windows`, `cimfs`, `blockcim` and `linux` modes — the
//!   directories and the mount shapes only; [`scratch`]: container scratch disks;
//! * [`service`]: the `containerd.services.snapshots.v1.Snapshots` gRPC service;
//!   [`requests`]: oversized and undecodable requests answered with containerd's codes;
//!   [`private`]: everything under the root owner-only;
//! * [`diff`]: the `containerd.services.diff.v1.Diff` service (Apply, Diff) on the same socket,
//!   reading and writing blobs through containerd's content service;
//! * [`server`]: the daemon — configuration, owner-only socket or pipe, clean shutdown.

pub mod config;
pub mod diff;
pub mod error;
pub mod filter;
pub mod layout;
pub mod private;
pub mod proto;
pub mod requests;
pub mod scratch;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod snapshotter;
pub mod store;
pub mod usage;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use filter::Filters;
pub use layout::{BlockCimOptions, Mode, ScratchProvider, ScratchRequest};
pub use snapshot::{Info, Kind, Mount, Time, Usage};
pub use snapshotter::{Options, Snapshotter};
