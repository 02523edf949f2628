//! Every file of the `snapshot_filter` fuzz corpus (fuzz/corpus/snapshot_filter), fed to the
//! filter parser as the fuzz target does: each gives filters or an InvalidArgument error that
//! shows where the input went wrong; none panics.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use winlayer_snapshotter::{ErrorKind, Filters, Info, Kind, Time};

#[test]
fn filter_corpus_parses_or_fails_clearly() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/snapshot_filter");
    let info = Info {
        name: "n".into(),
        parent: "p".into(),
        kind: Kind::Active,
        created: Time::default(),
        updated: Time::default(),
        labels: BTreeMap::from([("a.b".to_string(), "v".to_string())]),
    };
    let (mut parsed, mut refused) = (0, 0);
    for entry in fs::read_dir(&corpus).expect("the corpus is checked in") {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
        let filters: Vec<&str> = text.split('\n').collect();
        match Filters::parse(&filters) {
            Ok(f) => {
                f.matches(&info);
                parsed += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}: {e}", path.display());
                assert!(e.message().starts_with("filters: parse error: ["), "{}: {e}", path.display());
                refused += 1;
            }
        }
    }
    assert!(parsed >= 10 && refused >= 10, "{parsed} parsed, {refused} refused: the corpus lost its variety");
}

/// A damaged metadata database is refused with an error naming it, never a panic.
#[test]
fn damaged_database_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    {
        let s = winlayer_snapshotter::Snapshotter::open(&root, winlayer_snapshotter::Mode::Linux).unwrap();
        for i in 0..50 {
            s.prepare(&format!("k{i}"), "", &BTreeMap::new()).unwrap();
        }
    }
    let db = root.join("metadata.redb");
    let good = fs::read(&db).unwrap();
    let mut damaged =
        vec![Vec::new(), good[..good.len() / 2].to_vec(), b"not a database at all".repeat(100), vec![0xff; good.len()]];
    for offset in [0, 100, 600, 4096, good.len() / 2, good.len() - 100] {
        let mut flipped = good.clone();
        for b in &mut flipped[offset..(offset + 64).min(good.len())] {
            *b ^= 0x5a;
        }
        damaged.push(flipped);
    }
    let mut errors = 0;
    for (i, bytes) in damaged.iter().enumerate() {
        fs::write(&db, bytes).unwrap();
        let result = std::panic::catch_unwind(|| {
            winlayer_snapshotter::Snapshotter::open(&root, winlayer_snapshotter::Mode::Linux)
                .and_then(|s| s.stat("k1").map(|_| ()))
        });
        let result = result.unwrap_or_else(|_| panic!("damaged database #{i} made the store panic"));
        if let Err(e) = result {
            assert!(e.message().contains("metadata"), "#{i}: {e}");
            errors += 1;
        }
    }
    // Damage outside the pages in use may go unnoticed; the whole-file damage may not.
    assert!(errors >= 4, "only {errors} damaged databases were refused");
}
