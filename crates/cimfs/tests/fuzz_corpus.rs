//! Every file of the `cim_reader` fuzz corpus (valid images, and hostile ones: offset loops,
//! absurd counts, truncations, bad names) is read to the end or refused with a clear error.

use std::path::Path;

/// Hostile inputs and a fragment of the error each must give.
const EXPECTED: &[(&str, &str)] = &[
    ("dir-loop-to-root", "reached again"),
    ("dir-reached-twice", "reached again"),
    ("ftd-length-huge", "more FileIDs than 32 bits"),
    ("file-table-count-huge", "claims 65535 records"),
    ("link-count-huge", "cannot hold"),
    ("link-length-huge", "link table length"),
    ("name-offset-outside", "outside the table"),
    ("name-unpaired-surrogate", "not valid UTF-16"),
    ("fs-offset-past-end", "run past the end"),
    ("fs-offset-header", "null offset"),
    ("fs-offset-region-missing", "no such region"),
    ("region-count-max", "opening region"),
    ("version-4", "unsupported format version 4"),
    ("bad-magic", "not a CIM file"),
    ("stream-length-huge", "run past the end"),
    ("stream-type-unknown", "unknown stream type 7"),
    ("times-max", "past what a FILETIME holds"),
    ("pe-unsorted-mappings", "not sorted"),
    ("pe-delta-outside", "run past the end"),
    ("child-fileid-zero", "FileID 0 is not in"),
    ("empty", "header"),
];

#[test]
fn corpus_files_are_read_or_refused_clearly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cim_reader");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = cimfs::fuzzing::exercise(&std::fs::read(&path).unwrap());
        match (name.as_str(), &result) {
            ("image" | "fork" | "pe-image", r) => assert!(r.is_ok(), "{name}: {r:?}"),
            (_, Err(e)) => assert!(!e.to_string().is_empty(), "{name}: empty error"),
            _ => {}
        }
        if let Some((_, fragment)) = EXPECTED.iter().find(|(n, _)| *n == name) {
            let message = result.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(fragment), "{name}: expected an error about {fragment:?}, got {result:?}");
        }
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} corpus files in {}", dir.display());
}

/// The fuzz target opens images from memory; the same files written to a directory must read
/// the same way (the same bytes, or an error both times with the same message past the path).
#[test]
fn images_in_memory_read_as_on_disk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cim_reader");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let cimfs::reader::ImageFiles::Memory(files) = cimfs::fuzzing::unpack(&input) else { unreachable!() };
        let disk = tempfile::tempdir().unwrap();
        for (name, bytes) in &files {
            std::fs::write(disk.path().join(name), bytes.as_slice()).unwrap();
        }
        let read = |cim: winlayer_core::Result<cimfs::Cim>| {
            let cim = cim?;
            let bytes = cim.verify()?;
            let mut sink = winlayer_core::Checker::new();
            winlayer_core::LayerSource::send_to(cimfs::CimSource::new(&cim), &mut sink)?;
            Ok::<_, winlayer_core::Error>(bytes)
        };
        let from_memory = read(cimfs::Cim::open_in(cimfs::reader::ImageFiles::Memory(files), cimfs::fuzzing::CIM_NAME));
        let from_disk = read(cimfs::Cim::open(&disk.path().join(cimfs::fuzzing::CIM_NAME)));
        use winlayer_core::Error::Io;
        let prefix = format!("{}/", disk.path().display());
        match (from_memory, from_disk) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", path.display()),
            // I/O errors agree on what failed and how, not on the operating system's wording.
            (Err(Io { context: a, source: e }), Err(Io { context: b, source: f })) => {
                assert_eq!((a, e.kind()), (b.replace(&prefix, ""), f.kind()), "{}", path.display())
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string().replace(&prefix, ""), "{}", path.display()),
            (a, b) => panic!("{}: from memory {a:?}, from disk {b:?}", path.display()),
        }
    }
}
