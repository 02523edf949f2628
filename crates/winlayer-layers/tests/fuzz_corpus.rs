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

/// The `converted_layer` target's corpus: no input panics (nothing left by a refused archive,
/// an accepted layer exports), and the seeds — a base layer and a layer converted onto the
/// target's fixed base — are accepted where they belong.
#[test]
fn converted_layer_corpus_replays_cleanly() {
    use winlayer_layers::fuzzing::check_converted;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/converted_layer");
    let mut count = 0;
    for item in std::fs::read_dir(&dir).unwrap() {
        let path = item.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let accepted = std::panic::catch_unwind(|| check_converted(&bytes));
        let accepted = accepted.unwrap_or_else(|_| panic!("{} panicked", path.display()));
        match path.file_name().unwrap().to_str().unwrap() {
            "seed-base" => assert_eq!(accepted, (true, false), "the base seed"),
            "seed-app" => assert_eq!(accepted, (false, true), "the app seed"),
            _ => {}
        }
        count += 1;
    }
    assert!(count >= 2, "the corpus at {} has only {count} inputs", dir.display());
}
