//! tar -> CIM -> tar gives back the canonical form of the input, in every Windows attribute a
//! CIM keeps.

mod common;

use common::*;
use winlayer_core::{EntryKind, FileTime, Metadata, attrs};

fn round_trip(layer: &Layer) {
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("layer.tar");
    std::fs::write(&tar, layer.tar()).unwrap();
    create(&tar, &t.path().join("layer.cim"), None);
    assert_same_tar(&canonical(&tar), &export(&t.path().join("layer.cim")));
}

#[test]
fn generated_layers_round_trip() {
    let t = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("small", &["--profile", "small", "--seed", "7"][..]),
        ("base", &["--profile", "base", "--files", "600", "--mib", "6", "--seed", "2"][..]),
    ] {
        let tar = gen_layer(&t.path().join(format!("{name}.tar")), args);
        let cim = t.path().join(format!("{name}.cim"));
        create(&tar, &cim, None);
        assert_same_tar(&canonical(&tar), &export(&cim));
    }
}

#[test]
fn sizes_around_every_boundary() {
    let mut l = Layer::default();
    l.dir("Files");
    let sizes = [0, 1, 7, 8, 9, 4095, 4096, 4097, 8191, 8192, 8193, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20];
    for (i, size) in sizes.into_iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|b| (b as u32 * 31 + i as u32) as u8).collect();
        l.file(&format!("Files/size-{size}"), &data);
    }
    // Identical content under two names is stored once; an all-zero sparse file not at all.
    l.file("Files/dup-a", &vec![5u8; 9000]).file("Files/dup-b", &vec![5u8; 9000]);
    l.file_with("Files/sparse", &vec![0u8; 3 << 20], attrs::SPARSE_FILE | attrs::ARCHIVE, &[]);
    l.file_with("Files/sparse-small", &[0u8; 100], attrs::SPARSE_FILE, &[]);
    l.file_with("Files/not-sparse-zeros", &vec![0u8; 5000], attrs::ARCHIVE, &[]);
    round_trip(&l);
}

#[test]
fn names_paths_and_metadata_edge_cases() {
    let mut l = Layer::default();
    l.dir("Files").dir("Files/Ünïcödé ñame").file("Files/Ünïcödé ñame/日本語.txt", b"kanji");
    l.file("Files/Ünïcödé ñame/emoji 🦀.rs", b"crab").file("Files/Ünïcödé ñame/ǅ title", b"dz");
    l.file("Files/MixedCase.TXT", b"M").file("Files/lower", b"l").file("Files/UPPER", b"U").file("Files/_under", b"_");
    l.file("Files/\u{E000}private", b"pua").file("Files/µ micro", b"mu").file("Files/ı dotless", b"i");
    let mut deep = String::from("Files");
    for i in 0..40 {
        deep.push_str(&format!("/level {i} {}", "d".repeat(40)));
        l.dir(&deep);
    }
    l.file(&format!("{deep}/{}", "n".repeat(255)), b"long name at the bottom");
    // Streams on a directory and on a hard-linked file; EAs; junctions; links; old times.
    l.dir("Files/dirwithstreams").stream("Files/dirwithstreams", "a", b"first").stream(
        "Files/dirwithstreams",
        "B",
        b"",
    );
    l.file_with(
        "Files/withstreams",
        b"body",
        attrs::ARCHIVE | attrs::HIDDEN | attrs::SYSTEM | attrs::READONLY,
        &[("NAME", b"v"), ("$KERNEL.PURGE", &[1, 2, 3])],
    );
    l.stream("Files/withstreams", "Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3").stream(
        "Files/withstreams",
        "big",
        &vec![1u8; 70_000],
    );
    l.link("Files/link-to-streams", "Files/withstreams");
    l.symlink("Files/j", "C:\\ProgramData", true, true).symlink("Files/rel", "..\\up\\there", false, false);
    l.symlink("Files/unc", "\\\\server\\share\\x", false, false).symlink("Files/dirsym", "dirwithstreams", false, true);
    let mut old = Metadata { attributes: attrs::ARCHIVE, ..l.meta(0) };
    (old.last_access, old.creation) = (FileTime::from_ticks(0).unwrap(), FileTime::from_ticks(1).unwrap());
    old.last_write = FileTime::parse_pax("-1.5").unwrap();
    old.change = FileTime::parse_pax("1700000000.0000001").unwrap();
    l.push("Files/old", EntryKind::File { size: 3 }, old, b"old");
    l.dir("Hives").file("Hives/System_Delta", b"regf");
    round_trip(&l);
}

#[test]
fn attributes_a_cim_cannot_keep_are_dropped_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let mut l = Layer::default();
    l.dir("Files").file_with(
        "Files/indexed",
        b"x",
        attrs::ARCHIVE | attrs::NOT_CONTENT_INDEXED | attrs::TEMPORARY,
        &[],
    );
    l.file_with("Files/plain", b"y", 0, &[]);
    let s = create_layer(&l, &t.path().join("a.cim"), None);
    assert!(s.warnings.iter().any(|w| w.message.contains("0x2100")), "{:?}", s.warnings);
    let cim = cimfs::Cim::open(&t.path().join("a.cim")).unwrap();
    let r = cim.record(cim.resolve("files/INDEXED").unwrap()).unwrap();
    assert_eq!(r.attributes(), attrs::ARCHIVE);
    let plain = cim.record(cim.resolve("Files/plain").unwrap()).unwrap();
    assert_eq!(cim.metadata(0, &plain).unwrap().attributes, attrs::NORMAL);
    // An object without a security descriptor gets the one hcsshim substitutes.
    let mut bare = Layer::default();
    bare.dir("Files").push(
        "Files/bare",
        EntryKind::File { size: 0 },
        Metadata::with_times(attrs::ARCHIVE, FileTime::UNIX_EPOCH),
        b"",
    );
    create_layer(&bare, &t.path().join("b.cim"), None);
    let cim = cimfs::Cim::open(&t.path().join("b.cim")).unwrap();
    let sd = cim.stat("Files/bare", cim.resolve("Files/bare").unwrap()).unwrap().security.unwrap();
    assert_eq!(sd, "D:NO_ACCESS_CONTROL");
}

#[test]
fn same_input_gives_identical_bytes() {
    let t = tempfile::tempdir().unwrap();
    let tar = gen_layer(&t.path().join("l.tar"), &["--profile", "small", "--seed", "11"]);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        create(&tar, &d.join("img.cim"), None);
    }
    let files = |d: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v.into_iter().map(|p| (p.file_name().unwrap().to_owned(), std::fs::read(&p).unwrap())).collect::<Vec<_>>()
    };
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.len(), 7, "one .cim, three regions, three object-ID files");
    assert!(fa == fb, "two runs over the same input differ");
}
