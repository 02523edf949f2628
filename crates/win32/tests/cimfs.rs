//! cimfs.dll bindings against the test double: every function, every argument decoded.

mod common;

use std::path::{Path, PathBuf};

use common::{Double, hex};
use serde_json::json;
use win32::cimfs::{CimFs, FileMetadata, ImagePath, create_flags, merge_flags, mount_flags};
use win32::{Code, Error, Guid};
use winlayer_core::FileTime;

fn volume() -> Guid {
    "4ad5e5fb-8c1b-4f3e-9d70-4c1c3b6b2f01".parse().unwrap()
}

#[test]
fn writes_a_forked_image() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    fs.require_writer().unwrap();
    let mut image = fs.create_image(Path::new(r"C:\cims"), Some("parent.cim"), Some("child.cim")).unwrap();
    let sd = [1u8, 0, 4, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let meta = FileMetadata {
        attributes: 0x20,
        size: 5,
        creation: FileTime::from_ticks(1).unwrap(),
        last_write: FileTime::from_ticks(2).unwrap(),
        change: FileTime::from_ticks(3).unwrap(),
        last_access: FileTime::from_ticks(4).unwrap(),
        security: &sd,
        reparse: &[],
        eas: &[9, 9, 9, 9],
    };
    let mut stream = image.create_file(r"Files\dir\a.txt\", &meta).unwrap();
    stream.write(b"he").unwrap();
    stream.write(b"llo").unwrap();
    stream.close().unwrap();
    let mut ads = image.create_alternate_stream(r"Files\dir\a.txt:zone:$DATA", 2).unwrap();
    ads.write(b"ok").unwrap();
    ads.close().unwrap();
    image.create_hard_link(r"Files\b.txt", r"Files\dir\a.txt").unwrap();
    image.delete_path(r"Files\gone").unwrap();
    image.commit().unwrap();

    let calls = d.calls();
    let names: Vec<&str> = calls.iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "CimCreateImage",
            "CimCreateFile",
            "CimWriteStream",
            "CimWriteStream",
            "CimCloseStream",
            "CimCreateAlternateStream",
            "CimWriteStream",
            "CimCloseStream",
            "CimCreateHardLink",
            "CimDeletePath",
            "CimCommitImage",
            "CimCloseImage",
        ]
    );
    assert_eq!(
        calls[0]["args"],
        json!({"path": r"C:\cims", "existing": "parent.cim", "new": "child.cim", "handle": "image1"})
    );
    assert_eq!(
        calls[1]["args"],
        json!({
            "image": "image1", "path": r"Files\dir\a.txt", "handle": "stream1",
            "metadata": {
                "attributes": 0x20, "file_size": 5,
                "creation_time": 1, "last_write_time": 2, "change_time": 3, "last_access_time": 4,
                "security_descriptor": hex(&sd), "reparse_data": null, "extended_attributes": "09090909",
            },
        })
    );
    assert_eq!(calls[2]["args"]["data"], hex(b"he"));
    assert_eq!(calls[3]["args"]["data"], hex(b"llo"));
    assert_eq!(calls[4]["args"], json!({"stream": "stream1"}));
    assert_eq!(
        calls[5]["args"],
        json!({"image": "image1", "path": r"Files\dir\a.txt:zone:$DATA", "size": 2, "handle": "stream2"})
    );
    assert_eq!(calls[8]["args"], json!({"image": "image1", "new": r"Files\b.txt", "existing": r"Files\dir\a.txt"}));
    assert_eq!(calls[9]["args"], json!({"image": "image1", "path": r"Files\gone"}));
    assert_eq!(calls[11]["args"], json!({"image": "image1"}));
}

#[test]
fn new_images_pass_null_not_empty_names() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    drop(fs.create_image(Path::new("d"), None, Some("new.cim")).unwrap());
    drop(fs.create_image(Path::new("d"), Some(""), Some("other.cim")).unwrap());
    let created = d.args_of("CimCreateImage");
    assert_eq!(created[0]["existing"], json!(null));
    assert_eq!(created[1]["existing"], json!(null));
    assert!(matches!(fs.create_image(Path::new("d"), None, None), Err(Error::Argument { .. })));
}

/// Writes a committed, closed single-file block CIM `name` in `block`.
fn block_cim(fs: &CimFs, block: &str, name: &str, flags: u32) {
    let mut image = fs.create_image2(Path::new(block), flags, None, Some(name)).unwrap();
    drop(image.create_file("Files", &FileMetadata { attributes: 0x10, ..Default::default() }).unwrap());
    image.commit().unwrap();
}

fn refused(d: &Double, call: &str) -> Vec<String> {
    d.args_of(call).iter().filter_map(|a| a["refused"].as_str().map(String::from)).collect()
}

const INVALID: Code = Code::HResult(0x8007_0057u32 as i32);

#[test]
fn block_images_merges_tombstones_and_merge_links() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    fs.require_block().unwrap();
    let flags = create_flags::SINGLE_FILE_CIM | create_flags::CONSISTENT_CIM;
    block_cim(&fs, r"C:\b\base.vhd", "base.cim", flags);
    let mut image = fs.create_image2(Path::new(r"C:\l\layer.vhd"), flags, None, Some("layer.cim")).unwrap();
    image.tombstone(r"Files\old").unwrap();
    image.create_merge_link(r"Files\link", r"Files\in-parent").unwrap();
    assert_eq!(image.delete_path(r"Files\x").unwrap_err().code(), Some(INVALID), "block CIMs tombstone");
    image.commit().unwrap();
    let mut merged =
        fs.create_image2(Path::new(r"C:\m\merged.vhd"), create_flags::SINGLE_FILE_CIM, None, Some("m.cim")).unwrap();
    merged.add_to_merge(Path::new(r"C:\l\layer.vhd\layer.cim"), Some(merge_flags::SINGLE_FILE)).unwrap();
    assert!(merged.add_to_merge(Path::new(r"C:\b\base.vhd\base.cim"), None).is_err(), "the first API has no flags");
    let wrong = merged.add_to_merge(Path::new(r"C:\b\base.vhd\base.cim"), Some(merge_flags::BLOCK_DEVICE));
    assert_eq!(wrong.unwrap_err().code(), Some(INVALID));
    let missing = merged.add_to_merge(Path::new(r"C:\b\base.vhd\other.cim"), Some(merge_flags::SINGLE_FILE));
    assert!(missing.unwrap_err().is_not_found(), "a name the block file does not hold");
    merged.add_to_merge(Path::new(r"C:\b\base.vhd\base.cim"), Some(merge_flags::SINGLE_FILE)).unwrap();
    assert!(merged.create_file("f", &FileMetadata::default()).is_err(), "a merged CIM holds only its sources");
    merged.commit().unwrap();

    assert_eq!(
        d.args_of("CimCreateImage2")[1],
        json!({"path": r"C:\l\layer.vhd", "flags": 0x18, "existing": null, "new": "layer.cim", "handle": "image2"})
    );
    assert_eq!(d.args_of("CimTombstoneFile"), [json!({"image": "image2", "path": r"Files\old"})]);
    assert_eq!(
        d.args_of("CimCreateMergeLink"),
        [json!({"image": "image2", "new": r"Files\link", "old": r"Files\in-parent"})]
    );
    let added: Vec<_> = d.args_of("CimAddFsToMergedImage2").into_iter().filter(|a| a["refused"].is_null()).collect();
    assert_eq!(
        added,
        [
            json!({"image": "image3", "path": r"C:\l\layer.vhd\layer.cim", "flags": 1}),
            json!({"image": "image3", "path": r"C:\b\base.vhd\base.cim", "flags": 1}),
        ]
    );
    assert_eq!(refused(&d, "CimAddFsToMergedImage").len(), 1);
}

#[test]
fn the_double_refuses_what_cimfs_would() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let p = Path::new(r"C:\l\layer.vhd");
    let code = |r: win32::Result<win32::cimfs::Image>| r.err().and_then(|e| e.code());
    assert_eq!(code(fs.create_image2(p, 0x20 | 0x8, None, Some("a.cim"))), Some(INVALID), "unknown flag 0x20");
    assert_eq!(code(fs.create_image2(p, 0x4 | 0x8, None, Some("a.cim"))), Some(INVALID), "two block kinds");
    assert_eq!(code(fs.create_image2(p, 0x40, None, Some("a.cim"))), Some(INVALID), "verified, not block");
    assert_eq!(code(fs.create_image2(p, 0x8, None, Some(r"x\a.cim"))), Some(INVALID), "a path as the name");
    assert_eq!(code(fs.create_image2(p, 0x8, Some("p.cim"), Some("a.cim"))), Some(INVALID), "a fork");
    let mut one = fs.create_image2(Path::new(r"C:\m.vhd"), 0x8, None, Some("m.cim")).unwrap();
    block_cim(&fs, r"C:\a.vhd", "a.cim", 0x8);
    one.add_to_merge(Path::new(r"C:\a.vhd\a.cim"), Some(1)).unwrap();
    assert_eq!(one.commit().unwrap_err().code(), Some(INVALID), "one source is no merge");
    let mut classic = fs.create_image(Path::new(r"C:\c"), None, Some("c.cim")).unwrap();
    assert_eq!(classic.tombstone("x").unwrap_err().code(), Some(INVALID), "tombstones need a block CIM");
    assert_eq!(refused(&d, "CimCreateImage2").len(), 5);
}

#[test]
fn mounts_seals_and_verifies() {
    let d = Double::new();
    let hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    d.script(json!({
        "CimSealImage": {"hash": hash, "fixed_header_size": 4096},
        "CimGetVerificationInformation": {"sealed": 1, "hash": hash, "signature_size": 7, "fixed_header_size": 4096},
    }));
    let fs = CimFs::load(&d.source()).unwrap();
    let image = ImagePath { dir: PathBuf::from(r"C:\cims"), name: "layer.cim".into() };
    let path = fs.mount(&image, mount_flags::ENABLE_DAX, volume()).unwrap();
    assert_eq!(path, r"\\?\Volume{4ad5e5fb-8c1b-4f3e-9d70-4c1c3b6b2f01}\");
    fs.dismount(volume()).unwrap();
    let verified = create_flags::SINGLE_FILE_CIM | create_flags::CONSISTENT_CIM | create_flags::VERIFIED_CIM;
    let open = fs.create_image2(Path::new(r"C:\l\top.vhd"), verified, None, Some("top.cim")).unwrap();
    assert_eq!(fs.seal(Path::new(r"C:\l\top.vhd")).unwrap_err().code(), Some(INVALID), "sealed while open");
    drop(open);
    block_cim(&fs, r"C:\l\top.vhd", "top.cim", verified);
    block_cim(&fs, r"C:\l\base.vhd", "base.cim", verified);
    let root = fs.seal(Path::new(r"C:\l\top.vhd")).unwrap();
    assert_eq!(hex(&root), hash);
    fs.seal(Path::new(r"C:\l\base.vhd")).unwrap();
    let mut m = fs.create_image2(Path::new(r"C:\m\merged.vhd"), 0x48, None, Some("m.cim")).unwrap();
    m.add_to_merge(Path::new(r"C:\l\top.vhd\top.cim"), Some(merge_flags::SINGLE_FILE | merge_flags::VERIFIED)).unwrap();
    m.add_to_merge(Path::new(r"C:\l\base.vhd\base.cim"), Some(merge_flags::SINGLE_FILE | merge_flags::VERIFIED))
        .unwrap();
    m.commit().unwrap();
    assert_eq!(fs.seal(Path::new(r"C:\m\merged.vhd")).unwrap(), root);
    let merged = [
        ImagePath { dir: PathBuf::from(r"C:\m\merged.vhd"), name: "m.cim".into() },
        ImagePath { dir: PathBuf::from(r"C:\l\top.vhd"), name: "top.cim".into() },
        ImagePath { dir: PathBuf::from(r"C:\l\base.vhd"), name: "base.cim".into() },
    ];
    let info = fs.verification(Path::new(r"C:\l\top.vhd")).unwrap();
    assert!(info.sealed);
    assert_eq!((hex(&info.hash), info.signature_size, info.fixed_header_size), (hash.to_string(), 7, 4096));
    fs.mount_verified(&merged[1], mount_flags::SINGLE_FILE_CIM, volume(), &root).unwrap();
    fs.merge_mount_verified(&merged, mount_flags::SINGLE_FILE_CIM, volume(), &root).unwrap();
    // Refused: sources out of merge order, a wrong root hash, block-device flags, unsealed mount of a sealed CIM.
    let reversed = [merged[0].clone(), merged[2].clone(), merged[1].clone()];
    assert!(fs.merge_mount_verified(&reversed, mount_flags::SINGLE_FILE_CIM, volume(), &root).is_err());
    let bad = [0u8; 32];
    assert!(fs.mount_verified(&merged[1], mount_flags::SINGLE_FILE_CIM, volume(), &bad).is_err());
    assert!(fs.mount_verified(&merged[1], mount_flags::BLOCK_DEVICE_CIM, volume(), &root).is_err());
    assert!(fs.merge_mount(&merged, mount_flags::SINGLE_FILE_CIM, volume()).is_err());
    assert_eq!(refused(&d, "CimMountVerifiedImage").len(), 2);
    assert!(refused(&d, "CimMergeMountVerifiedImage")[0].contains("in its order"));
    assert!(refused(&d, "CimMountVerifiedImage").iter().any(|r| r.contains("integrity violation")));

    let g = volume().to_string();
    assert_eq!(d.args_of("CimMountImage"), [json!({"path": r"C:\cims", "name": "layer.cim", "flags": 2, "volume": g})]);
    assert_eq!(d.args_of("CimDismountImage"), [json!({"volume": g})]);
    let images = json!([
        {"dir": r"C:\m\merged.vhd", "name": "m.cim"},
        {"dir": r"C:\l\top.vhd", "name": "top.cim"},
        {"dir": r"C:\l\base.vhd", "name": "base.cim"},
    ]);
    assert_eq!(d.args_of("CimSealImage")[1], json!({"path": r"C:\l\top.vhd", "hash_null": false}));
    assert_eq!(
        d.args_of("CimGetVerificationInformation"),
        [json!({"path": r"C:\l\top.vhd", "hash_null": false, "signature_null": true})]
    );
    assert_eq!(
        d.args_of("CimMountVerifiedImage")[0],
        json!({"path": r"C:\l\top.vhd", "name": "top.cim", "flags": 0x20, "volume": g, "hash_size": 32, "hash": hash})
    );
    assert_eq!(
        d.args_of("CimMergeMountVerifiedImage")[0],
        json!({"images": images, "flags": 0x20, "volume": g, "hash_size": 32, "hash": hash})
    );
}

#[test]
fn every_cimfs_function_is_exercised() {
    // One pass through the whole API in one thread, so the double's log covers it.
    let d = Double::new();
    d.script(json!({"CimSealImage": {"hash": "ab"}, "CimGetVerificationInformation": {"hash": "ab"}}));
    let fs = CimFs::load(&d.source()).unwrap();
    let p = Path::new("x");
    let img = ImagePath { dir: p.into(), name: "n".into() };
    let mut a = fs.create_image(p, None, Some("a")).unwrap();
    drop(a.create_file("f", &FileMetadata::default()).unwrap());
    let mut s = a.create_alternate_stream("f:s", 1).unwrap();
    s.write(b"x").unwrap();
    s.close().unwrap();
    a.delete_path("g").unwrap();
    a.create_hard_link("h", "f").unwrap();
    a.commit().unwrap();
    let verified = create_flags::SINGLE_FILE_CIM | create_flags::VERIFIED_CIM;
    let mut b = fs.create_image2(Path::new("b.vhd"), verified, None, Some("b.cim")).unwrap();
    b.tombstone("t").unwrap();
    b.create_merge_link("m", "f").unwrap();
    b.commit().unwrap();
    block_cim(&fs, "c.vhd", "c.cim", verified);
    let mut m = fs.create_image2(Path::new("m.vhd"), verified, None, Some("m.cim")).unwrap();
    let _ = m.add_to_merge(Path::new(r"b.vhd\b.cim"), None);
    m.add_to_merge(Path::new(r"b.vhd\b.cim"), Some(5)).unwrap();
    m.add_to_merge(Path::new(r"c.vhd\c.cim"), Some(5)).unwrap();
    m.commit().unwrap();
    fs.mount(&img, 0, Guid::NIL).unwrap();
    fs.dismount(Guid::NIL).unwrap();
    let block = |d: &str, n: &str| ImagePath { dir: d.into(), name: n.into() };
    let images = [block("m.vhd", "m.cim"), block("b.vhd", "b.cim"), block("c.vhd", "c.cim")];
    fs.merge_mount(&images, 0x20, Guid::NIL).unwrap();
    let root = fs.seal(Path::new("b.vhd")).unwrap();
    fs.seal(Path::new("m.vhd")).unwrap();
    fs.verification(Path::new("b.vhd")).unwrap();
    fs.mount_verified(&images[1], 0x20, Guid::NIL, &root).unwrap();
    fs.merge_mount_verified(&images, 0x20, Guid::NIL, &root).unwrap();
    d.assert_covered("cimfs.dll");
}

#[test]
fn failures_name_the_call_and_the_path() {
    let d = Double::new();
    d.script(json!({"CimCreateFile": {"ret": 0x8007_0005u32 as i32}, "CimDeletePath": {"ret": 0x8007_0002u32 as i32}}));
    let fs = CimFs::load(&d.source()).unwrap();
    let mut image = fs.create_image(Path::new("d"), None, Some("n")).unwrap();
    let err = image.create_file(r"Files\x", &FileMetadata::default()).err().unwrap();
    assert_eq!(err.to_string(), r"CimCreateFile (Files\x): HRESULT 0x80070005 (ERROR_ACCESS_DENIED: access is denied)");
    let err = image.delete_path(r"Files\y").unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some(Code::HResult(0x8007_0002u32 as i32)));
}

#[test]
fn streams_refuse_extra_bytes_and_report_missing_ones() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let mut image = fs.create_image(Path::new("d"), None, Some("n")).unwrap();
    let meta = FileMetadata { size: 3, ..Default::default() };
    let mut stream = image.create_file("f", &meta).unwrap();
    assert!(stream.write(b"four").unwrap_err().to_string().contains("1 more bytes than its declared size"));
    stream.write(b"ab").unwrap();
    assert!(stream.close().unwrap_err().to_string().contains("closed with 1 bytes unwritten"));
    // The double saw only the write that fit, and exactly one close.
    assert_eq!(d.args_of("CimWriteStream").len(), 1);
    assert_eq!(d.args_of("CimCloseStream").len(), 1);
}

#[test]
fn strings_with_nul_are_refused_before_the_call() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let mut image = fs.create_image(Path::new("d"), None, Some("n")).unwrap();
    let err = image.delete_path("a\0b").unwrap_err();
    assert!(matches!(err, Error::Argument { call: "CimDeletePath", .. }), "{err}");
    assert!(d.args_of("CimDeletePath").is_empty());
}
