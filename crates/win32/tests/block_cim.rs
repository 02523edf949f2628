//! Block CIM layers, merges and mounts through the test double: the order of the calls, what
//! is left on disk (integrity_checksum, the VHD footer) and that a failure leaves nothing.
//! The double writes no files, so each test stands in for cimfs.dll's block file by writing
//! one while the image is open.

mod common;

use std::path::{Path, PathBuf};

use common::{Double, hex};
use serde_json::json;
use win32::Guid;
use win32::block_cim::{self, BlockLayer, INTEGRITY_CHECKSUM};
use win32::cimfs::{CimFs, ImagePath};
use winlayer_core::{Data, Entry, EntryKind, FileTime, LayerPath, LayerSink, Metadata, Origin, attrs};

const HASH: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn layer(dir: &Path, id: &str, integrity: bool, vhd_footer: bool) -> BlockLayer {
    std::fs::create_dir_all(dir.join(id)).unwrap();
    BlockLayer { file: dir.join(id).join("layer.vhd"), name: "layer.cim".into(), integrity, vhd_footer }
}

/// Sends a directory, a file and a whiteout, and writes `block` as cimfs.dll would.
fn fill(block: PathBuf) -> impl FnOnce(&mut win32::cim_sink::CimSink) -> winlayer_core::Result<()> {
    move |sink| {
        let meta = Metadata::with_times(attrs::DIRECTORY, FileTime::from_unix(1_700_000_000, 0).unwrap());
        let dir = Entry { path: LayerPath::parse("Files").unwrap(), kind: EntryKind::Directory, meta };
        sink.entry(&dir, &mut Data::empty())?;
        let file = Entry {
            path: LayerPath::parse("Files/a.txt").unwrap(),
            kind: EntryKind::File { size: 2 },
            meta: Metadata::default(),
        };
        let mut r: &[u8] = b"hi";
        sink.entry(&file, &mut Data::from_reader(&mut r, 2, Origin::Stream))?;
        let gone = Entry {
            path: LayerPath::parse("Files/gone").unwrap(),
            kind: EntryKind::Whiteout,
            meta: Metadata::default(),
        };
        sink.entry(&gone, &mut Data::empty())?;
        std::fs::write(&block, vec![0xC1u8; 8192]).unwrap();
        Ok(())
    }
}

#[test]
fn a_verified_layer_with_a_footer() {
    let d = Double::new();
    d.script(json!({"CimSealImage": {"hash": HASH}}));
    let fs = CimFs::load(&d.source()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let l = layer(tmp.path(), "7", true, true);
    let hash = block_cim::write_layer(&fs, &l, fill(l.file.clone())).unwrap().unwrap();
    assert_eq!(hex(&hash), HASH);
    let names = d.names();
    assert_eq!(&names[names.len() - 3..], ["CimCommitImage", "CimCloseImage", "CimSealImage"]);
    assert_eq!(d.args_of("CimCreateImage2")[0]["flags"], json!(0x8 | 0x10 | 0x40));
    assert_eq!(d.args_of("CimCreateImage2")[0]["new"], json!("layer.cim"));
    assert_eq!(d.args_of("CimTombstoneFile")[0]["path"], json!(r"Files\gone"));
    assert_eq!(std::fs::read_to_string(tmp.path().join("7").join(INTEGRITY_CHECKSUM)).unwrap(), HASH);
    assert_eq!(block_cim::read_checksum(&l.file).unwrap(), hash);
    // The footer follows the sealed image: 8192 bytes of CIM, then 512 of footer.
    let bytes = std::fs::read(&l.file).unwrap();
    assert_eq!(bytes.len(), 8192 + 512);
    assert_eq!(&bytes[8192..8200], b"conectix");
    assert_eq!(&bytes[8192 + 48..8192 + 56], &8192u64.to_be_bytes());
}

#[test]
fn a_failed_layer_leaves_nothing_and_an_existing_one_is_refused() {
    let d = Double::new();
    d.script(json!({"CimSealImage": {"ret": 0x8007_0005u32 as i32}}));
    let fs = CimFs::load(&d.source()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let l = layer(tmp.path(), "1", true, true);
    let err = block_cim::write_layer(&fs, &l, fill(l.file.clone())).unwrap_err();
    assert!(err.to_string().contains("CimSealImage"), "{err}");
    assert!(!l.file.exists() && !tmp.path().join("1").join(INTEGRITY_CHECKSUM).exists());

    std::fs::write(&l.file, b"x").unwrap();
    let err = block_cim::write_layer(&fs, &l, |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&l.file).unwrap(), b"x", "left as it was");
}

#[test]
fn merged_layers_topmost_first_and_mounted_in_the_same_order() {
    let d = Double::new();
    d.script(json!({"CimSealImage": {"hash": HASH}}));
    let fs = CimFs::load(&d.source()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (base, top) = (layer(tmp.path(), "1", true, false), layer(tmp.path(), "2", true, false));
    for l in [&base, &top] {
        block_cim::write_layer(&fs, l, fill(l.file.clone())).unwrap();
    }
    let out = ImagePath { dir: tmp.path().join("2").join("merged.vhd"), name: "merged.cim".into() };
    let sources = [top.image(), base.image()];
    let root = block_cim::merge(&fs, &out, &sources, true, false).unwrap().unwrap();
    let merged = d.args_of("CimCreateImage2");
    assert_eq!(merged[2]["flags"], json!(0x8 | 0x40));
    let added: Vec<_> =
        d.args_of("CimAddFsToMergedImage2").iter().map(|a| (a["path"].clone(), a["flags"].clone())).collect();
    let path = |l: &BlockLayer| json!(l.file.join("layer.cim").to_str().unwrap());
    assert_eq!(added, [(path(&top), json!(5)), (path(&base), json!(5))]);

    let volume: Guid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
    block_cim::mount(&fs, &out, &sources, Some(&root), volume).unwrap();
    let mount = &d.args_of("CimMergeMountVerifiedImage")[0];
    let dirs: Vec<_> = mount["images"].as_array().unwrap().iter().map(|i| i["name"].clone()).collect();
    assert_eq!(dirs, [json!("merged.cim"), json!("layer.cim"), json!("layer.cim")]);
    assert_eq!(mount["images"][1]["dir"], json!(top.file.to_str().unwrap()));
    assert!(mount["refused"].is_null(), "{mount}");
    // The other order is not the merge's: cimfs refuses it (here: the double).
    let reversed = [base.image(), top.image()];
    assert!(block_cim::mount(&fs, &out, &reversed, Some(&root), volume).is_err());
    block_cim::mount(&fs, &top.image(), &[], Some(&root), volume).unwrap();

    let err = block_cim::merge(&fs, &out, &sources[..1], false, false).unwrap_err();
    assert!(err.to_string().contains("at least two layers"), "{err}");
}

#[test]
fn a_failed_merge_leaves_no_block_file() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = ImagePath { dir: tmp.path().join("merged.vhd"), name: "merged.cim".into() };
    let never = |n: &str| ImagePath { dir: tmp.path().join(n), name: "layer.cim".into() };
    let err = block_cim::merge(&fs, &out, &[never("a"), never("b")], false, false).unwrap_err();
    assert!(err.to_string().contains("CimAddFsToMergedImage2"), "{err}");
    assert!(!out.dir.exists());
}
