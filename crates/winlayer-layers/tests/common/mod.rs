//! Helpers shared by the tests: layers built by hand (the cimfs tests' builder), the
//! independent hive readers (the regf tests' helpers), import and export through the crate.
#![allow(dead_code)]

#[path = "../../../cimfs/tests/common/mod.rs"]
pub mod cims;
#[path = "../../../regf/tests/common/mod.rs"]
pub mod hives;

use std::fs;
use std::path::{Path, PathBuf};

use wcow_tar::{LayerReader, Mode};
use winlayer_core::{LayerSource, Result};
use winlayer_layers::{CimLayerImport, ImportSummary, Parent, export_cim};

/// Imports a layer tar into `dir` and `cim`, over `parents` (immediate parent first).
pub fn import(tar: &[u8], dir: &Path, cim: &Path, parents: &[Parent]) -> Result<ImportSummary> {
    let mut import = CimLayerImport::start(dir, cim, parents)?;
    let input = wcow_tar::reader::from_bytes(tar.to_vec()).unwrap();
    LayerReader::new(input, Mode::Strict).send_to(&mut import)?;
    import.finish()
}

/// Exports a layer as a canonical tar.
pub fn export(dir: &Path, cim: &Path) -> Result<Vec<u8>> {
    let (sorted, _) = export_cim(dir, cim, None)?;
    wcow_tar::write_sorted(sorted, Vec::new())
}

/// The canonical form of a layer tar (what `tar normalize` writes).
pub fn canonical(tar: &[u8]) -> Vec<u8> {
    let sorted = wcow_tar::canonicalize(wcow_tar::reader::from_bytes(tar.to_vec()).unwrap()).unwrap();
    wcow_tar::write_sorted(sorted, Vec::new()).unwrap()
}

/// Everything below `root` as sorted relative paths, directories ending in '/'.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for item in fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                out.push(format!("{rel}/"));
                todo.push(path);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// The merged view of a CIM as sorted paths (directories ending in '/'), with the FileID.
pub fn cim_tree(cim: &Path) -> Vec<(String, u32)> {
    let cim = cimfs::Cim::open(cim).unwrap();
    let mut out = Vec::new();
    cim.walk(|names, id, r| {
        out.push((format!("{}{}", names.join("/"), if r.is_dir() { "/" } else { "" }), id));
        Ok(())
    })
    .unwrap();
    out.sort();
    out
}

/// The bytes of a file of a CIM's merged view.
pub fn cim_file(cim: &Path, path: &str) -> Vec<u8> {
    use std::io::Read;
    let cim = cimfs::Cim::open(cim).unwrap();
    let record = cim.record(cim.resolve(path).unwrap()).unwrap();
    let mut bytes = Vec::new();
    cim.reader(record.default_stream).read_to_end(&mut bytes).unwrap();
    bytes
}

/// Paths in a list, as strings.
pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A parent layer.
pub fn parent(dir: &Path, cim: &Path) -> Parent {
    Parent { dir: dir.to_path_buf(), cim: cim.to_path_buf() }
}

/// The path of a file beside others.
pub fn at(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
