//! The `image_manifest` fuzz target's checked-in corpus, run as a regular test: every input
//! goes through the parsers without a panic, and what parses reads back to itself.

#[test]
fn fuzz_corpus_replays_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/image_manifest");
    let mut count = 0;
    for item in std::fs::read_dir(&dir).unwrap() {
        let path = item.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| winlayer_oci::fuzzing::check(&bytes));
        assert!(result.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count >= 12, "the corpus at {} has only {count} inputs", dir.display());
}
