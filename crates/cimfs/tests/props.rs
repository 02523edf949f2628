//! Property tests on random trees: an image, and a fork of it, export exactly the reference
//! model of the layers applied in order, and what the fork changes rebuilds it from the base.

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use winlayer_core::path::fold_case;

/// Names that collide case-insensitively (a/A, é/É) and sort differently by bytes and by the
/// Windows collation (_ and ~ around letters).
const NAMES: [&str; 8] = ["a", "A", "b", "é", "É", "_z", "~q", "Ab"];

/// One random object: a path of name indexes, a kind, a size and a content seed.
type Spec = (Vec<usize>, u8, u16, u8);

fn spec() -> impl Strategy<Value = Spec> {
    (proptest::collection::vec(0..NAMES.len(), 1..4), 0u8..6, 0u16..9000, any::<u8>())
}

/// A valid layer from random specs: parents first, no case-insensitive duplicates, every
/// parent directory present, links to earlier files of this layer or to `lower` files.
fn layer(specs: &[Spec], lower: &[String], deletions: &[usize]) -> Layer {
    let mut l = Layer::default();
    l.dir("Files");
    let mut taken: BTreeSet<String> = BTreeSet::from([fold_case("Files")]);
    let mut dirs: BTreeSet<String> = BTreeSet::from(["Files".to_string()]);
    let mut files: Vec<String> = Vec::new();
    // Lower files this layer links to: adding them again after the link would break the rule
    // that link targets come first.
    let mut linked_lower: BTreeSet<String> = BTreeSet::new();
    for &d in deletions {
        if let Some(victim) = lower.get(d % lower.len().max(1))
            && taken.insert(fold_case(&format!("{victim}\0wh")))
        {
            l.whiteout(victim);
        }
    }
    for (path, kind, size, seed) in specs {
        let mut at = "Files".to_string();
        for (i, &n) in path.iter().enumerate() {
            let next = format!("{at}/{}", NAMES[n]);
            let last = i == path.len() - 1;
            if dirs.contains(&next) {
                at = next;
                continue;
            }
            if linked_lower.contains(&fold_case(&next)) || !taken.insert(fold_case(&next)) {
                break;
            }
            if !last {
                l.dir(&next);
                dirs.insert(next.clone());
                at = next;
                continue;
            }
            let data: Vec<u8> = (0..*size as usize).map(|i| (i as u8).wrapping_mul(*seed | 1)).collect();
            match kind {
                0 => {
                    l.dir(&next);
                    dirs.insert(next.clone());
                }
                1 if !files.is_empty() => {
                    l.link(&next, &files[*seed as usize % files.len()].clone());
                }
                2 if !lower.is_empty() && !taken.contains(&fold_case(&lower[*seed as usize % lower.len()])) => {
                    let target = lower[*seed as usize % lower.len()].clone();
                    linked_lower.insert(fold_case(&target));
                    l.link(&next, &target);
                }
                3 => {
                    l.symlink(&next, "C:\\Windows", seed % 2 == 0, seed % 3 == 0);
                }
                _ => {
                    l.file(&next, &data);
                    if seed % 4 == 0 {
                        l.stream(&next, "s", &data[..data.len() / 3]);
                    }
                    files.push(next.clone());
                }
            }
            break;
        }
    }
    l
}

fn files_of(l: &Layer) -> Vec<String> {
    l.entries
        .iter()
        .filter(|(e, _)| matches!(e.kind, winlayer_core::EntryKind::File { .. }))
        .map(|(e, _)| e.path.to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_images_and_forks_export_the_model(
        base in proptest::collection::vec(spec(), 1..30),
        top in proptest::collection::vec(spec(), 0..20),
        deletions in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let t = tempfile::tempdir().unwrap();
        let base = layer(&base, &[], &[]);
        let lower = files_of(&base);
        let top = layer(&top, &lower, &deletions);
        let mut model = Model::default();
        model.apply(&base);
        create_layer(&base, &t.path().join("base.cim"), None);
        assert_same_tar(&model.canonical_tar(), &export(&t.path().join("base.cim")));
        let mut rebuilt = model.clone();
        model.apply(&top);
        create_layer(&top, &t.path().join("top.cim"), Some(&t.path().join("base.cim")));
        assert_same_tar(&model.canonical_tar(), &export(&t.path().join("top.cim")));
        // What the fork changes, applied onto the base, gives the fork's view.
        rebuilt.apply(&changes(&t.path().join("top.cim")));
        assert_same_tar(&model.canonical_tar(), &rebuilt.canonical_tar());
    }
}
