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

/// The base layer converted-layer inputs are unpacked onto, imported once per process (as
/// [`base_layer_tar`] gives it, so seeds converted onto it fit).
struct ConvertedBase {
    root: tempfile::TempDir,
    layer: Parent,
}

fn converted_base() -> &'static ConvertedBase {
    static BASE: std::sync::OnceLock<ConvertedBase> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let root = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(root.path().join("cims")).expect("a directory");
        let layer = Parent { dir: root.path().join("base"), cim: root.path().join("cims/base.cim") };
        let tar = base_layer_tar();
        import(root.path(), &tar, &layer, &[]).expect("the fixed base layer imports");
        ConvertedBase { root, layer }
    })
}

/// A minimal base layer (an empty tree by makebaselayer's rules): what converted-layer seeds
/// are converted onto.
pub fn base_layer_tar() -> Vec<u8> {
    let builder = BaseLayerBuilder::new("BA", Some(0));
    let (sorted, _) = builder.finish().expect("an empty tree makes a base layer");
    wcow_tar::write_sorted(sorted, Vec::new()).expect("a base layer writes")
}

/// The converted-layer archive of `tar` imported onto the fixed base (for seeds).
pub fn converted_over_base(tar: &[u8]) -> Result<Vec<u8>> {
    let base = converted_base();
    let layer = Parent { dir: base.root.path().join("seed"), cim: base.root.path().join("cims/seed.cim") };
    import(base.root.path(), tar, &layer, std::slice::from_ref(&base.layer))?;
    let mut archive = Vec::new();
    let packed = crate::converted::pack(&layer.dir, &layer.cim, &mut archive);
    cimfs::destroy(&layer.cim)?;
    std::fs::remove_dir_all(&layer.dir).map_err(|e| Error::io("removing the seed layer", e))?;
    packed.map(|_| archive)
}

/// Takes `bytes` as a converted-layer archive (the differ's fast path): unpacked as a base
/// layer and as a layer over the fixed base. Panics only on a real bug: a panic inside, a
/// refused archive that leaves something behind, an accepted one whose layer does not open or
/// export. Returns whether it was accepted alone and over the base.
pub fn check_converted(bytes: &[u8]) -> (bool, bool) {
    let own = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(own.path().join("cims")).expect("a directory");
    let alone = Parent { dir: own.path().join("layer"), cim: own.path().join("cims/layer.cim") };
    let as_base = unpack_checked(own.path(), bytes, &alone, &[]);
    let base = converted_base();
    let over = Parent { dir: base.root.path().join("layer"), cim: base.root.path().join("cims/layer.cim") };
    let as_layer = unpack_checked(base.root.path(), bytes, &over, std::slice::from_ref(&base.layer));
    if as_layer {
        cimfs::destroy(&over.cim).expect("an unpacked layer's CIM is removed");
        std::fs::remove_dir_all(&over.dir).expect("an unpacked layer directory is removed");
    }
    (as_base, as_layer)
}

/// Unpacks `bytes` into `layer`; a refusal must leave `root` as it was, an accepted layer must
/// export. Returns whether it was accepted.
fn unpack_checked(root: &Path, bytes: &[u8], layer: &Parent, parents: &[Parent]) -> bool {
    let before = listing(root);
    match crate::converted::unpack(&mut &bytes[..], &layer.dir, &layer.cim, parents) {
        Ok(_) => {
            let parent = parents.first().map(|p| p.cim.as_path());
            export_cim(&layer.dir, &layer.cim, parent).expect("an unpacked converted layer exports");
            true
        }
        Err(_) => {
            assert_eq!(listing(root), before, "a refused converted layer left files behind");
            false
        }
    }
}
