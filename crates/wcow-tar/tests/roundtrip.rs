//! Property tests on random layers: entries -> tar -> entries is the identity (up to canonical
//! order), normalizing canonical output changes nothing, and the input order does not matter.

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use wcow_tar::reader::{from_bytes, read_all};
use winlayer_core::ea::ExtendedAttribute;
use winlayer_core::path::fold_case;
use winlayer_core::reparse::Link;
use winlayer_core::{Entry, EntryKind, FileTime, LayerPath, Metadata, attrs};

/// One step of building a random layer; indices pick among what exists so far.
#[derive(Clone, Debug)]
enum Op {
    Dir(usize, String),
    File(usize, String, Vec<u8>),
    Stream(usize, String, Vec<u8>),
    HardLink(usize, usize, String),
    Symlink(usize, String, String, bool),
    Whiteout(usize, String),
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "B",
        "ab",
        "Ab",
        "ü",
        "Ü",
        "x y",
        "長い名前",
        "z.txt",
        "Z.TXT",
        "data.bin",
        "-",
        "_1",
    ])
    .prop_flat_map(|base| (Just(base), 0u8..4))
    .prop_map(|(base, n)| if n == 0 { base.to_string() } else { format!("{base}{n}") })
}

fn op() -> impl Strategy<Value = Op> {
    let data = prop::collection::vec(any::<u8>(), 0..1100);
    prop_oneof![
        3 => (any::<usize>(), name()).prop_map(|(i, n)| Op::Dir(i, n)),
        4 => (any::<usize>(), name(), data.clone()).prop_map(|(i, n, d)| Op::File(i, n, d)),
        1 => (any::<usize>(), name(), data).prop_map(|(i, n, d)| Op::Stream(i, n, d)),
        1 => (any::<usize>(), any::<usize>(), name()).prop_map(|(i, j, n)| Op::HardLink(i, j, n)),
        1 => (any::<usize>(), name(), "[a-zA-Z\\\\.]{1,20}", any::<bool>()).prop_map(|(i, n, t, d)| Op::Symlink(i, n, t, d)),
        1 => (any::<usize>(), name()).prop_map(|(i, n)| Op::Whiteout(i, n)),
    ]
}

fn metadata(seed: u64, attributes: u32) -> Metadata {
    let sddl = ["O:BAG:SYD:(A;;FA;;;BA)", "O:SYG:SYD:PAI(A;OICI;FA;;;SY)(A;;0x1200a9;;;BU)", "D:NO_ACCESS_CONTROL"];
    let time = |k: u64| FileTime::from_ticks(((seed.wrapping_mul(k) >> 8) % 200_000_000_000_000_000) as i64).unwrap();
    Metadata {
        attributes,
        creation: time(3),
        last_write: time(5),
        last_access: time(7),
        change: time(11),
        security: (seed % 4 != 3).then(|| Arc::from(sd(sddl[(seed % 3) as usize]).to_vec())),
        eas: if seed.is_multiple_of(5) {
            vec![ExtendedAttribute { name: b"EA".to_vec(), value: seed.to_le_bytes().to_vec() }]
        } else {
            vec![]
        },
    }
}

/// Builds a valid layer from random steps: parents exist, names are unique ignoring case,
/// streams name existing objects, hard links name existing files.
fn build(ops: &[Op]) -> Vec<(Entry, Vec<u8>)> {
    let mut out =
        vec![(Entry { path: path("Files"), kind: EntryKind::Directory, meta: metadata(1, attrs::DIRECTORY) }, vec![])];
    let mut dirs = vec![path("Files")];
    let mut files: Vec<LayerPath> = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for (seed, op) in ops.iter().enumerate() {
        let seed = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(17);
        let mut fresh = |parent: &LayerPath, name: &str| {
            let p = parent.join(name).ok()?;
            taken.insert(fold_case(p.as_str())).then_some(p)
        };
        let entry = |path: LayerPath, kind, meta| Entry { path, kind, meta };
        match op {
            Op::Dir(i, n) => {
                let Some(p) = fresh(&dirs[i % dirs.len()].clone(), n) else { continue };
                out.push((entry(p.clone(), EntryKind::Directory, metadata(seed, attrs::DIRECTORY)), vec![]));
                dirs.push(p);
            }
            Op::File(i, n, d) => {
                let Some(p) = fresh(&dirs[i % dirs.len()].clone(), n) else { continue };
                out.push((
                    entry(p.clone(), EntryKind::File { size: d.len() as u64 }, metadata(seed, attrs::ARCHIVE)),
                    d.clone(),
                ));
                files.push(p);
            }
            Op::Stream(i, n, d) => {
                let owners: Vec<&LayerPath> = files.iter().chain(&dirs).collect();
                let owner = owners[i % owners.len()].clone();
                if !taken.insert(format!("{}:{}", fold_case(owner.as_str()), fold_case(n))) {
                    continue;
                }
                out.push((
                    entry(owner, EntryKind::Stream { name: n.clone(), size: d.len() as u64 }, Metadata::default()),
                    d.clone(),
                ));
            }
            Op::HardLink(i, j, n) if !files.is_empty() => {
                let target = files[j % files.len()].clone();
                let Some(p) = fresh(&dirs[i % dirs.len()].clone(), n) else { continue };
                out.push((entry(p, EntryKind::HardLink { target }, metadata(seed, attrs::ARCHIVE)), vec![]));
            }
            Op::Symlink(i, n, target, is_dir) => {
                let Some(p) = fresh(&dirs[i % dirs.len()].clone(), n) else { continue };
                let a = attrs::REPARSE_POINT | if *is_dir { attrs::DIRECTORY } else { attrs::ARCHIVE };
                let link = Link { target: target.clone(), junction: false };
                out.push((entry(p, EntryKind::Symlink(link), metadata(seed, a)), vec![]));
            }
            Op::Whiteout(i, n) => {
                let Some(p) = fresh(&dirs[i % dirs.len()].clone(), n) else { continue };
                out.push((entry(p, EntryKind::Whiteout, Metadata::default()), vec![]));
            }
            Op::HardLink(..) => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn entries_tar_entries_is_identity(ops in prop::collection::vec(op(), 0..40)) {
        let layer = build(&ops);
        let tar = write_layer(&layer);
        prop_assert_eq!(read_all(from_bytes(tar).unwrap()).unwrap(), canonical(&layer));
    }

    #[test]
    fn normalize_is_idempotent_and_order_free(ops in prop::collection::vec(op(), 0..40), seed in any::<u64>()) {
        let layer = build(&ops);
        let tar = write_layer(&layer);
        let again = wcow_tar::write_sorted(wcow_tar::canonicalize(from_bytes(tar.clone()).unwrap()).unwrap(), Vec::new()).unwrap();
        prop_assert_eq!(&again, &tar);
        let mut shuffled = layer.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(write_layer(&shuffled), tar);
    }
}

#[test]
fn kitchen_sink_round_trips_and_normalizes_to_itself() {
    let layer = kitchen_sink();
    let tar = write_layer(&layer);
    assert_eq!(read_all(from_bytes(tar.clone()).unwrap()).unwrap(), canonical(&layer));
    let again =
        wcow_tar::write_sorted(wcow_tar::canonicalize(from_bytes(tar.clone()).unwrap()).unwrap(), Vec::new()).unwrap();
    assert_eq!(again, tar);
}
