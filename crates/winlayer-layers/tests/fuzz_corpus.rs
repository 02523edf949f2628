//! The `layer_import` fuzz target's checked-in corpus, run as a regular test: every input
//! goes through the import and export oracle without a panic (nothing left behind by a
//! failed import, a successful one exports, a base layer exports to its canonical tar).

#[test]
fn fuzz_corpus_replays_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/layer_import");
    let mut count = 0;
    for item in std::fs::read_dir(&dir).unwrap() {
        let path = item.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| winlayer_layers::fuzzing::check(&bytes));
        assert!(result.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count >= 25, "the corpus at {} has only {count} inputs", dir.display());
}
