//! Replays the `vhdx_open` fuzz corpus (seeds and what fuzzing found) as a regular test:
//! every input opens or fails with a message naming the disk, and never panics.

use std::fs;
use std::path::Path;

use winlayer_core::Error;

#[test]
fn every_corpus_input_opens_or_fails_clearly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/vhdx_open");
    let mut opened = Vec::new();
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match vhdx::fuzzing::exercise(&fs::read(&path).unwrap()) {
            Ok(()) => opened.push(name),
            Err(Error::Invalid(message)) => {
                assert!(message.starts_with("fuzz: ") && message.len() > 10, "{name}: {message}")
            }
            Err(e @ Error::Io { .. }) => assert!(e.to_string().starts_with("fuzz: "), "{name}: {e}"),
            Err(e) => panic!("{name}: unexpected {e}"),
        }
        count += 1;
    }
    assert!(count >= 9, "only {count} corpus files in {}", dir.display());
    for seed in ["dynamic-512", "dynamic-4096-2m", "grown-bat-moved", "header-2-checksum", "qemu-dynamic"] {
        assert!(opened.iter().any(|n| n == seed), "seed {seed} should open, read and write cleanly");
    }
}
