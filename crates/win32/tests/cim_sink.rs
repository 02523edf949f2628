//! A layer tar read by wcow-tar and written through cimfs.dll (the test double): the calls
//! Microsoft's writer would receive.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Double, hex};
use serde_json::{Value, json};
use wcow_tar::{LayerReader, Mode, TarWriter};
use win32::cim_sink::{CimSink, CimTarget};
use win32::cimfs::CimFs;
use winlayer_core::ea::{ExtendedAttribute, encode_list};
use winlayer_core::reparse::Link;
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{Data, Entry, EntryKind, FileTime, LayerPath, LayerSink, LayerSource, Metadata, Origin, attrs};

fn p(s: &str) -> LayerPath {
    LayerPath::parse(s).unwrap()
}

fn meta(attributes: u32) -> Metadata {
    Metadata::with_times(attributes, FileTime::from_unix(1_700_000_000, 0).unwrap())
}

fn ticks() -> i64 {
    FileTime::from_unix(1_700_000_000, 0).unwrap().ticks()
}

fn sd() -> Arc<[u8]> {
    SecurityDescriptor::from_sddl("O:BAG:SYD:(A;;FA;;;BA)").unwrap().to_bytes().into()
}

/// A small layer, written as a tar and read back: the sink sees what a real layer gives.
fn layer_tar() -> Vec<u8> {
    let ea = ExtendedAttribute { name: b"KEY".to_vec(), value: b"v".to_vec() };
    let mut dir = meta(attrs::DIRECTORY);
    dir.security = Some(sd());
    let mut file = meta(attrs::ARCHIVE | attrs::REPARSE_POINT);
    file.security = Some(sd());
    file.eas = vec![ea];
    let entries: Vec<(Entry, &[u8])> = vec![
        (Entry { path: p("Files"), kind: EntryKind::Directory, meta: dir.clone() }, b""),
        (Entry { path: p("Files/a.txt"), kind: EntryKind::File { size: 5 }, meta: file.clone() }, b"hello"),
        (
            Entry {
                path: p("Files/a.txt"),
                kind: EntryKind::Stream { name: "zone".into(), size: 2 },
                meta: Metadata::default(),
            },
            b"z1",
        ),
        (
            Entry {
                path: p("Files/b.txt"),
                kind: EntryKind::HardLink { target: p("Files/a.txt") },
                meta: meta(attrs::ARCHIVE),
            },
            b"",
        ),
        (
            Entry {
                path: p("Files/ext.txt"),
                kind: EntryKind::HardLink { target: p("Files/in-parent.txt") },
                meta: meta(attrs::ARCHIVE),
            },
            b"",
        ),
        (Entry { path: p("Files/gone"), kind: EntryKind::Whiteout, meta: Metadata::default() }, b""),
        (
            Entry {
                path: p("Files/link"),
                kind: EntryKind::Symlink(Link { target: "a.txt".into(), junction: false }),
                meta: meta(attrs::ARCHIVE),
            },
            b"",
        ),
    ];
    let mut writer = TarWriter::new(Vec::new());
    for (entry, bytes) in entries {
        let mut r: &[u8] = bytes;
        writer.entry(&entry, &mut Data::from_reader(&mut r, bytes.len() as u64, Origin::Stream)).unwrap();
    }
    writer.finish().unwrap()
}

fn write(d: &Double, target: &CimTarget) -> Option<Vec<u8>> {
    let fs = CimFs::load(&d.source()).unwrap();
    let mut sink = CimSink::create(&fs, target).unwrap();
    let input = wcow_tar::reader::from_bytes(layer_tar()).unwrap();
    LayerReader::new(input, Mode::Collect).send_to(&mut sink).unwrap();
    sink.finish().unwrap()
}

fn file_metadata(d: &Double, path: &str) -> Value {
    d.args_of("CimCreateFile").into_iter().find(|a| a["path"] == path).unwrap()["metadata"].clone()
}

#[test]
fn forked_cim_gets_hcsshims_calls() {
    let d = Double::new();
    let target =
        CimTarget::Forked { dir: PathBuf::from(r"C:\cim-layers"), name: "7.cim".into(), parent: Some("6.cim".into()) };
    assert_eq!(write(&d, &target), None);
    assert_eq!(
        d.names(),
        [
            "CimCreateImage",
            "CimCreateFile", // Files
            "CimCloseStream",
            "CimCreateFile", // Files\a.txt
            "CimWriteStream",
            "CimCloseStream",
            "CimCreateAlternateStream",
            "CimWriteStream",
            "CimCloseStream",
            "CimCreateHardLink", // b.txt, at once
            "CimCreateHardLink", // ext.txt: the parent has its target
            "CimDeletePath",
            "CimCreateFile", // Files\link
            "CimCloseStream",
            "CimCommitImage",
            "CimCloseImage",
        ]
    );
    assert_eq!(
        d.args_of("CimCreateImage")[0],
        json!({"path": r"C:\cim-layers", "existing": "6.cim", "new": "7.cim", "handle": "image1"})
    );
    let ea = encode_list(&[ExtendedAttribute { name: b"KEY".to_vec(), value: b"v".to_vec() }]);
    assert_eq!(
        file_metadata(&d, r"Files\a.txt"),
        json!({
            "attributes": attrs::ARCHIVE, // the reparse bit of a non-link is dropped
            "file_size": 5,
            "creation_time": ticks(), "last_write_time": ticks(), "change_time": ticks(), "last_access_time": ticks(),
            "security_descriptor": hex(&sd()), "reparse_data": null, "extended_attributes": hex(&ea),
        })
    );
    assert_eq!(file_metadata(&d, "Files")["attributes"], json!(attrs::DIRECTORY));
    let link = file_metadata(&d, r"Files\link");
    assert_eq!(link["attributes"], json!(attrs::ARCHIVE | attrs::REPARSE_POINT));
    assert_eq!(link["reparse_data"], json!(hex(&Link { target: "a.txt".into(), junction: false }.to_reparse_buffer())));
    // No descriptor in the layer: the NULL-DACL one.
    assert_eq!(link["security_descriptor"], json!("0100048000000000000000000000000000000000"));
    assert_eq!(d.args_of("CimWriteStream")[0]["data"], json!(hex(b"hello")));
    assert_eq!(d.args_of("CimCreateAlternateStream")[0]["path"], json!(r"Files\a.txt:zone:$DATA"));
    assert_eq!(
        d.args_of("CimCreateHardLink"),
        [
            json!({"image": "image1", "new": r"Files\b.txt", "existing": r"Files\a.txt"}),
            json!({"image": "image1", "new": r"Files\ext.txt", "existing": r"Files\in-parent.txt"}),
        ]
    );
    assert_eq!(d.args_of("CimDeletePath"), [json!({"image": "image1", "path": r"Files\gone"})]);
}

#[test]
fn block_cim_tombstones_defers_links_and_seals() {
    let d = Double::new();
    let hash = "aa".repeat(32);
    d.script(json!({"CimSealImage": {"hash": hash}}));
    let target =
        CimTarget::Block { file: PathBuf::from(r"C:\s\9\layer.vhd"), name: "layer.cim".into(), verified: true };
    assert_eq!(write(&d, &target).map(|h| hex(&h)), Some(hash));
    let names = d.names();
    let tail: Vec<&str> = names[names.len() - 6..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "CimCloseStream",
            "CimCreateHardLink",
            "CimCreateMergeLink",
            "CimCommitImage",
            "CimCloseImage",
            "CimSealImage"
        ]
    );
    assert_eq!(d.args_of("CimCreateImage2")[0]["flags"], json!(0x8 | 0x10 | 0x40));
    assert_eq!(d.args_of("CimTombstoneFile"), [json!({"image": "image1", "path": r"Files\gone"})]);
    assert!(d.args_of("CimDeletePath").is_empty());
    assert_eq!(
        d.args_of("CimCreateHardLink"),
        [json!({"image": "image1", "new": r"Files\b.txt", "existing": r"Files\a.txt"})]
    );
    assert_eq!(
        d.args_of("CimCreateMergeLink"),
        [json!({"image": "image1", "new": r"Files\ext.txt", "old": r"Files\in-parent.txt"})]
    );
    assert_eq!(d.args_of("CimSealImage"), [json!({"path": r"C:\s\9\layer.vhd", "hash_null": false})]);
}

#[test]
fn deleting_what_a_fork_never_had_is_fine_other_failures_stop() {
    let d = Double::new();
    d.script(json!({"CimDeletePath": {"ret": 0x8007_0003u32 as i32}}));
    let target = CimTarget::Forked { dir: PathBuf::from("d"), name: "n.cim".into(), parent: None };
    write(&d, &target);
    assert_eq!(d.args_of("CimCommitImage").len(), 1);

    let d = Double::new();
    d.script(json!({"CimWriteStream": {"ret": 0x8007_0026u32 as i32}}));
    let fs = CimFs::load(&d.source()).unwrap();
    let mut sink = CimSink::create(&fs, &target).unwrap();
    let input = wcow_tar::reader::from_bytes(layer_tar()).unwrap();
    let err = LayerReader::new(input, Mode::Collect).send_to(&mut sink).unwrap_err();
    assert!(err.to_string().contains(r"CimWriteStream (Files\a.txt): HRESULT 0x80070026 (ERROR_HANDLE_EOF"), "{err}");
    drop(sink);
    // Dropped without finishing: closed, never committed.
    assert!(d.args_of("CimCommitImage").is_empty());
    assert_eq!(d.args_of("CimCloseImage").len(), 1);
}

#[test]
fn short_data_is_an_error_not_a_truncated_file() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let target = CimTarget::Forked { dir: PathBuf::from("d"), name: "n.cim".into(), parent: None };
    let mut sink = CimSink::create(&fs, &target).unwrap();
    let entry = Entry { path: p("Files/x"), kind: EntryKind::File { size: 10 }, meta: meta(attrs::ARCHIVE) };
    let mut r: &[u8] = b"abc";
    let err = sink.entry(&entry, &mut Data::from_reader(&mut r, 10, Origin::Stream)).unwrap_err();
    assert!(err.to_string().contains(r"Files\x: data ends after 3 of 10 bytes"), "{err}");
}

#[test]
fn large_files_stream_in_chunks() {
    let d = Double::new();
    let fs = CimFs::load(&d.source()).unwrap();
    let target = CimTarget::Forked { dir: PathBuf::from("d"), name: "n.cim".into(), parent: None };
    let mut sink = CimSink::create(&fs, &target).unwrap();
    let data = vec![7u8; (3 << 20) + 5];
    let entry = Entry { path: p("Files/big"), kind: EntryKind::File { size: data.len() as u64 }, meta: meta(0) };
    let mut r: &[u8] = &data;
    sink.entry(&entry, &mut Data::from_reader(&mut r, data.len() as u64, Origin::Stream)).unwrap();
    let sizes: Vec<u64> = d.args_of("CimWriteStream").iter().map(|a| a["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [1 << 20, 1 << 20, 1 << 20, 5]);
}

#[test]
fn unavailable_writer_is_reported_by_name() {
    let other = if cfg!(windows) { "kernel32.dll" } else { "libc.so.6" };
    let fs = CimFs::load(&win32::Source::File(other.into())).unwrap();
    let target = CimTarget::Block { file: PathBuf::from("f"), name: "n".into(), verified: false };
    let err = CimSink::create(&fs, &target).err().unwrap();
    assert_eq!(err.to_string(), "this Windows build lacks CimCreateImage (not exported by cimfs.dll)");
}
