//! The oracle shared by the fuzz target and the corpus regression test.

use std::path::Path;

use wcow_tar::{Input, LayerReader, Mode};
use winlayer_core::{EntryKind, Error, LayerSource, Result};

use crate::{BaseLayerBuilder, CimLayerImport, Parent, export_cim};

/// Takes `bytes` as a layer tar every way this crate takes layers: into a base-layer tar, as
/// a base layer, and as a layer over a base layer. Panics only on a real bug: a panic inside,
/// a failed import that leaves something behind, a successful import that does not export,
/// or a base layer that does not export back to its canonical tar.
pub fn check(bytes: &[u8]) {
    let t = tempfile::tempdir().expect("a temporary directory");
    let root = t.path();
    std::fs::create_dir(root.join("cims")).expect("a directory");
    let mut builder = BaseLayerBuilder::new("BA", Some(0));
    let made = read(bytes).and_then(|r| r.send_to(&mut builder)).and_then(|_| builder.finish());
    let base = made.ok().and_then(|(sorted, _)| wcow_tar::write_sorted(sorted, Vec::new()).ok());
    let base_layer = base.and_then(|tar| round_trip(root, "made", &tar));
    round_trip(root, "raw", bytes);
    if let Some(base) = base_layer {
        let layer = Parent { dir: root.join("layer"), cim: root.join("cims/layer.cim") };
        if import(root, bytes, &layer, std::slice::from_ref(&base)).is_ok() {
            export_cim(&layer.dir, &layer.cim, None).expect("an imported layer exports");
        }
    }
}

/// Imports `tar` as the base layer `name`; if that works, its export must be the canonical
/// tar, when the CIM could keep everything (every attribute bit, a security descriptor on
/// every object: a CIM gives objects without one `D:NO_ACCESS_CONTROL`, files without
/// attributes read as FILE_ATTRIBUTE_NORMAL). Returns the layer
/// when it imported.
fn round_trip(root: &Path, name: &str, tar: &[u8]) -> Option<Parent> {
    let layer = Parent { dir: root.join(name), cim: root.join("cims").join(format!("{name}.cim")) };
    let summary = import(root, tar, &layer, &[]).ok()?;
    let (sorted, _) = export_cim(&layer.dir, &layer.cim, None).expect("an imported base layer exports");
    let exported = wcow_tar::write_sorted(sorted, Vec::new()).expect("an exported layer writes");
    let input = Input::from_bytes(tar.to_vec()).expect("imported, so readable");
    let canonical = wcow_tar::canonicalize(input).expect("imported, so readable");
    let objects_have_security = canonical.entries().all(|e| {
        !matches!(e.kind, EntryKind::Directory | EntryKind::File { .. } | EntryKind::Symlink(_))
            || e.meta.security.is_some()
    });
    // A file without attribute bits reads back from a CIM as FILE_ATTRIBUTE_NORMAL, as
    // Windows reports it.
    let files_have_attributes =
        canonical.entries().all(|e| !matches!(e.kind, EntryKind::File { .. }) || e.meta.attributes != 0);
    if summary.cim.warnings.is_empty() && objects_have_security && files_have_attributes {
        let canonical = wcow_tar::write_sorted(canonical, Vec::new()).expect("imported, so valid");
        assert!(exported == canonical, "a base layer did not export to its canonical tar");
    }
    Some(layer)
}

/// Imports `tar`; a failure must leave `root` as it was.
fn import(root: &Path, tar: &[u8], layer: &Parent, parents: &[Parent]) -> Result<crate::ImportSummary> {
    let before = listing(root);
    let result = CimLayerImport::start(&layer.dir, &layer.cim, parents).and_then(|mut import| {
        read(tar)?.send_to(&mut import)?;
        import.finish()
    });
    if result.is_err() {
        assert_eq!(listing(root), before, "a failed import left files behind");
    }
    result
}

/// A strict reader of a layer tar in memory.
fn read(tar: &[u8]) -> Result<LayerReader> {
    let input = Input::from_bytes(tar.to_vec()).map_err(|e| Error::io("reading the layer", e))?;
    Ok(LayerReader::new(input, Mode::Strict))
}

fn listing(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for item in std::fs::read_dir(&dir).expect("readable") {
            let path = item.expect("readable").path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}
