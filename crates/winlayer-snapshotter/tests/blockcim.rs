//! `blockcim` mode through the snapshotter: what each kind of snapshot gets on disk, the
//! merged CIM a scratch over more than one layer needs (built through crates/win32's test
//! double, standing in for cimfs.dll; on Linux without it, NotImplemented and nothing left),
//! and the settings refused outside the mode.

/// The test double of crates/win32 (`cargo test` builds it beside every test binary).
#[path = "../../win32/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::json;
use win32::block_cim::{self, BlockLayer};
use win32::cimfs::CimFs;
use winlayer_snapshotter::scratch::VhdxScratch;
use winlayer_snapshotter::{BlockCimOptions, ErrorKind, Mode, Options, Snapshotter};

/// Stands in for mkntfs (the scratch template's file system is not what is tested here).
struct NoFilesystem;

impl vhdx::scratch::Formatter for NoFilesystem {
    fn format(&self, _: &Path, _: u64, _: u32) -> winlayer_core::Result<()> {
        Ok(())
    }
}

fn open(root: &Path, cims: win32::Source, block: BlockCimOptions) -> Snapshotter {
    let scratch = Box::new(VhdxScratch::new(Box::new(NoFilesystem)));
    Snapshotter::open_with(root, Mode::Blockcim, Options { scratch, block, cims }).unwrap()
}

/// Commits layers `names` (base first), each written as the differ writes it: a block CIM
/// in the extraction snapshot's `layer.vhd`, through `fs` when given (the double keeps what
/// it wrote), else as bytes only.
fn layers(s: &Snapshotter, fs: Option<&CimFs>, names: &[&str]) {
    let none = BTreeMap::new();
    let mut parent = String::new();
    for name in names {
        let key = format!("extract-{name}");
        let m = s.prepare(&key, &parent, &none).unwrap();
        let file = Path::new(&m[0].source).parent().unwrap().to_path_buf();
        assert_eq!(file.file_name().unwrap(), "layer.vhd");
        match fs {
            Some(fs) => {
                let layer = BlockLayer { file, name: "layer.cim".into(), integrity: false, vhd_footer: false };
                block_cim::write_layer(fs, &layer, |_| Ok(())).unwrap();
            }
            None => fs::write(&file, b"block").unwrap(),
        }
        s.commit(name, &key, &none).unwrap();
        parent = name.to_string();
    }
}

#[test]
fn scratch_over_layers_mounts_their_merged_cim() {
    let d = common::Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), d.source(), BlockCimOptions::default());
    let none = BTreeMap::new();
    layers(&s, Some(&fs), &["a", "b"]);
    let snapshots = s.snapshots_dir().to_path_buf();
    let cim = |id: u64| snapshots.join(id.to_string()).join("layer.vhd").join("layer.cim");

    // Over one layer: no merge.
    let before = d.calls().len();
    let m = s.prepare("one", "a", &none).unwrap();
    assert_eq!(d.calls().len(), before, "a scratch over one layer merges nothing");
    assert!(Path::new(&m[0].source).join("sandbox.vhdx").is_file());
    assert!(!m[0].options.iter().any(|o| o.starts_with("mergedCIMPath=")), "{:?}", m[0].options);

    // Over two: merged into the immediate parent's directory, topmost first.
    let m = s.prepare("two", "b", &none).unwrap();
    let added: Vec<_> = d.args_of("CimAddFsToMergedImage2").iter().map(|a| a["path"].clone()).collect();
    assert_eq!(added, [json!(cim(2).to_str().unwrap()), json!(cim(1).to_str().unwrap())]);
    let merged = snapshots.join("2").join("merged.vhd");
    assert_eq!(d.args_of("CimCreateImage2").last().unwrap()["new"], json!("merged.cim"));
    let expected = format!("mergedCIMPath={}", merged.join("merged.cim").display());
    assert_eq!(m[0].options.last(), Some(&expected));
    assert_eq!(s.mounts("two").unwrap(), m);

    // The double writes no block file; once one is there, it is used as it is (the double
    // would refuse a second merged CIM in that block file).
    fs::write(&merged, b"merged").unwrap();
    let before = d.calls().len();
    s.prepare("again", "b", &none).unwrap();
    let view = s.view("look", "b", &none).unwrap();
    assert_eq!(view[0].options.last(), Some(&expected), "a view is a scratch too");
    assert_eq!(d.calls().len(), before, "an existing merged CIM is not rebuilt");
}

#[test]
fn a_failed_merge_fails_the_prepare_and_leaves_nothing() {
    let d = common::Double::new();
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), d.source(), BlockCimOptions::default());
    // Layers the double never wrote: cimfs.dll (here: the double) refuses to merge them.
    layers(&s, None, &["a", "b"]);
    let err = s.prepare("two", "b", &BTreeMap::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    assert!(err.message().contains("merged CIM") && err.message().contains("CimAddFsToMergedImage2"), "{err}");
    assert_eq!(s.stat("two").unwrap_err().kind(), ErrorKind::NotFound);
    let mut left: Vec<_> = fs::read_dir(s.snapshots_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["1", "2"], "no scratch directory left");
    assert!(!s.snapshots_dir().join("2/merged.vhd").exists());
}

#[cfg(not(windows))]
#[test]
fn without_windows_only_the_merge_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), win32::Source::System, BlockCimOptions::default());
    let none = BTreeMap::new();
    layers(&s, None, &["a", "b"]);
    s.prepare("one", "a", &none).unwrap();
    let err = s.prepare("two", "b", &none).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented, "{err}");
    assert!(err.message().contains("block CIMs need Windows"), "{err}");
    assert_eq!(s.stat("two").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn unformatted_scratches_and_the_settings_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let block = BlockCimOptions { unformatted_scratch: true, ..BlockCimOptions::default() };
    let s = open(tmp.path(), win32::Source::System, block);
    // One 40 GiB unformatted template, made at start.
    let template = vhdx::Vhdx::open_file(&tmp.path().join("blank.vhdx"), &vhdx::OpenOptions::default()).unwrap();
    assert_eq!((template.virtual_size(), template.info().parent.is_none()), (40 << 30, true));
    assert!(!tmp.path().join("blank-base.vhdx").exists());
    layers(&s, None, &["a"]);
    let size = |gb: u64| BTreeMap::from([(winlayer_snapshotter::layout::SIZE_GB_LABEL.to_owned(), gb.to_string())]);
    let err = s.prepare("small", "a", &size(39)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.message().contains("at least 40 GiB"), "{err}");
    let m = s.prepare("big", "a", &size(41)).unwrap();
    let disk =
        vhdx::Vhdx::open_file(&Path::new(&m[0].source).join("sandbox.vhdx"), &vhdx::OpenOptions::default()).unwrap();
    assert_eq!(disk.virtual_size(), 41 << 30, "a new disk of the size asked for");
    drop(s);

    let other = tempfile::tempdir().unwrap();
    let scratch = Box::new(VhdxScratch::new(Box::new(NoFilesystem)));
    let options = Options { scratch, block, cims: win32::Source::System };
    let err = Snapshotter::open_with(other.path(), Mode::Cimfs, options).err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("blockcim mode's settings"), "{err}");
}
