//! Helpers shared by the integration tests: generated layers, CIM creation and export.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cimfs::{Cim, CimSource, CimWriter, Summary};
use wcow_tar::{Input, LayerReader, Mode};
use winlayer_core::{Collector, LayerSource};

/// `shared/tools/gen-wcow-layer.py`, found beside the repository or one of its ancestors.
pub fn generator() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo.ancestors()
        .skip(1)
        .map(|a| a.join("shared/tools/gen-wcow-layer.py"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("gen-wcow-layer.py not found in shared/tools beside {} or above", repo.display()))
}

/// Runs the layer generator (through WINLAYER_PYTHON, default python3).
pub fn gen_layer(out: &Path, args: &[&str]) -> PathBuf {
    let python = std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .arg(generator())
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("running {python} (set WINLAYER_PYTHON): {e}"));
    assert!(status.success(), "gen-wcow-layer.py {args:?} failed");
    out.to_path_buf()
}

/// Writes `cim` from a layer tar, forked from `parent` when given.
pub fn create(tar: &Path, cim: &Path, parent: Option<&Path>) -> Summary {
    let mut writer = CimWriter::create(cim, parent).unwrap();
    LayerReader::new(Input::open(tar).unwrap(), Mode::Strict).send_to(&mut writer).unwrap();
    writer.finish().unwrap()
}

/// The canonical tar of a layer tar.
pub fn canonical(tar: &Path) -> Vec<u8> {
    let sorted = wcow_tar::canonicalize(Input::open(tar).unwrap()).unwrap();
    wcow_tar::write_sorted(sorted, Vec::new()).unwrap()
}

/// The merged view of a CIM as a canonical tar.
pub fn export(cim: &Path) -> Vec<u8> {
    let cim = Cim::open(cim).unwrap();
    let mut collector = Collector::new();
    CimSource::new(&cim).send_to(&mut collector).unwrap();
    wcow_tar::write_sorted(collector.finish().unwrap(), Vec::new()).unwrap()
}

/// Entries of a tar, one line each (kind, path, attributes, size, link target), for readable diffs.
pub fn listing(tar: &[u8]) -> Vec<String> {
    wcow_tar::reader::read_all(wcow_tar::reader::from_bytes(tar.to_vec()).unwrap())
        .unwrap()
        .into_iter()
        .map(|(e, d)| {
            format!("{} {} {:#x} {} {:?} {:?}", e.kind.name(), e.path, e.meta.attributes, d.len(), e.kind, e.meta)
        })
        .collect()
}
