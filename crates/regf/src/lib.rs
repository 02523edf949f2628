//! Windows registry hives (the "regf" format), natively.
//!
//! * [`Hive::parse`] reads a hive strictly: every offset and length is bounds-checked, every
//!   cell may serve one structure only (so loops are errors, not hangs), subkey indexes of
//!   every kind (`li`, `lf`, `lh`, `ri`) and big data (`db`) are read, security descriptors
//!   are checked, and a dirty hive (one needing its transaction logs) is refused.
//! * [`Hive::to_bytes`] writes one deterministically, laid out as Windows lays out a fresh
//!   hive: the root key node is the first cell, its security cell the next, cells are packed
//!   into 4 KiB bins, subkeys are indexed in Windows' order (`lh`/`lf` leaves, under an `ri`
//!   when one leaf is not enough), long values are split into big data, and every distinct
//!   security descriptor is stored once. [`Hive::empty`] is a valid empty hive.
//! * [`merge`] applies a layer's differencing hive (`Hives/<H>_Delta`) onto its parent's full
//!   hive (`Hives/<H>_BASE`), as Windows' `ORMergeHives` does for container layers.
//!
//! The format facts come from Maxim Suhanov's "Windows registry file format specification";
//! docs/regf.md says what is known, what is assumed and what was checked against which reader.

mod error;
mod format;
mod merge;
mod model;
mod reader;
mod writer;

pub use error::{Error, Result};
pub use format::{LeafKind, compare_names, name_key};
pub use merge::{merge, merge_bytes};
pub use model::*;
pub use reader::{BaseBlock, ReadOptions};
pub use writer::{DEFAULT_ROOT_SDDL, WriteOptions};

pub mod fuzzing {
    //! The oracle shared by the fuzz target and the corpus regression test.
    use super::*;

    /// Reads `bytes` every way winlayer reads hives. Panics only on a real bug: a panic inside
    /// the reader, writer or merge, or a hive that, once read and written, does not read back
    /// to the same bytes.
    pub fn check(bytes: &[u8]) {
        let _ = Hive::parse(bytes);
        let Ok(hive) = Hive::parse_with(bytes, ReadOptions { allow_dirty: true }) else { return };
        if let Ok(out) = hive.to_bytes() {
            let again = Hive::parse(&out).expect("a written hive must read back");
            assert!(again.to_bytes().expect("a read hive must write again") == out, "rewriting changed the hive");
        }
        let _ = merge(Hive::empty("BASE"), hive.clone()).and_then(|m| m.to_bytes());
        if !hive.layered {
            let mut delta = hive.clone();
            delta.layered = true;
            let _ = merge(hive, delta).and_then(|m| m.to_bytes());
        }
    }
}
