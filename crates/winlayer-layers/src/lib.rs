//! Windows base layers and CimFS container layers, laid out as hcsshim lays them out.
//!
//! * [`apply`]: a layer applied onto a Linux directory (a browsable view with OCI whiteouts
//!   and Windows metadata as `user.windows.*` attributes), staged until committed.
//! * [`dir_diff`]: what a directory tree changes against another, as a layer (whiteouts
//!   for what it lacks), read as `tar from-dir` reads a tree.
//! * [`base`]: what `wclayer makebaselayer` (hcsshim's `ConvertToBaseLayer`) prepares before
//!   Windows processes a base layer — valid empty registry hives where a tree has none, the
//!   utility VM's boot store required — for a layer directory in place, and for any layer
//!   stream (a tar, a plain directory) turned into a base-layer tar.
//! * [`import`]: a layer tar as a CIM container layer for containerd's `cimfs` snapshotter —
//!   a CIM forked from the parent's, and a layer directory holding the hives (merged with
//!   [`regf::merge`] for non-base layers), exactly the files hcsshim's importer writes.
//! * [`export`]: such a layer back to a layer tar: the base layer as imported, or what a
//!   non-base layer changes in its parent's view.
//!
//! The names hcsshim treats specially are in [`names`]; docs/layers.md says what is known,
//! what is assumed, and where winlayer departs from hcsshim.

#[cfg(unix)]
pub mod apply;
pub mod base;
pub mod converted;
pub mod dir_diff;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod import;
pub mod names;

pub use base::{BaseLayerBuilder, BaseReport, make_base_layer};
pub use export::{ExportSummary, export_cim};
pub use import::{CimLayerImport, ImportSummary, Parent};
