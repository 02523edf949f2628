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
