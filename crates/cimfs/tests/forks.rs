//! Fork chains: each level's exported (and mounted) view equals the layers applied in order.

mod common;

use std::path::Path;

use common::*;

#[test]
fn each_level_of_a_fork_chain_equals_the_layers_applied_in_order() {
    let t = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let mut parent: Option<std::path::PathBuf> = None;
    for (i, layer) in chain().iter().enumerate() {
        let cim = t.path().join(format!("l{i}.cim"));
        create_layer(layer, &cim, parent.as_deref());
        // What the fork changes, applied onto the level below, gives the fork's view.
        let mut rebuilt = model.clone();
        rebuilt.apply(&changes(&cim));
        model.apply(layer);
        assert_same_tar(&model.canonical_tar(), &export(&cim));
        assert_same_tar(&model.canonical_tar(), &rebuilt.canonical_tar());
        parent = Some(cim);
    }
    // Every lower level is still intact after its children were written.
    let mut model = Model::default();
    for (i, layer) in chain().iter().enumerate() {
        model.apply(layer);
        assert_same_tar(&model.canonical_tar(), &export(&t.path().join(format!("l{i}.cim"))));
    }
}

#[test]
fn generated_fork_chain_equals_the_layers_applied_in_order() {
    let t = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let mut parent: Option<std::path::PathBuf> = None;
    for (i, args) in [
        &["--profile", "base", "--files", "800", "--mib", "8", "--seed", "1"][..],
        &["--profile", "app", "--files", "300", "--mib", "2", "--seed", "2"][..],
        &["--profile", "app", "--files", "300", "--mib", "2", "--seed", "3"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let tar = gen_layer(&t.path().join(format!("l{i}.tar")), args);
        let cim = t.path().join(format!("l{i}.cim"));
        create(&tar, &cim, parent.as_deref());
        let mut rebuilt = model.clone();
        rebuilt.apply(&changes(&cim));
        model.apply(&Layer::from_tar(&tar));
        assert_same_tar(&model.canonical_tar(), &export(&cim));
        assert_same_tar(&model.canonical_tar(), &rebuilt.canonical_tar());
        parent = Some(cim);
    }
}

#[test]
fn forks_share_unchanged_data_and_tables() {
    let t = tempfile::tempdir().unwrap();
    let mut base = Layer::default();
    base.dir("Files");
    for i in 0..1500 {
        base.file(&format!("Files/f{i:04}"), format!("content {i}").repeat(500).as_bytes());
    }
    create_layer(&base, &t.path().join("base.cim"), None);
    let mut top = Layer::default();
    // Same bytes as a parent file: stored once, in the parent.
    top.dir("Files").file("Files/copy", "content 7".repeat(500).as_bytes());
    let s = create_layer(&top, &t.path().join("top.cim"), Some(&t.path().join("base.cim")));
    assert_eq!((s.stored_bytes, s.data_bytes), (0, 4500));
    let cim = cimfs::Cim::open(&t.path().join("top.cim")).unwrap();
    let parent = cimfs::Cim::open(&t.path().join("base.cim")).unwrap();
    // The second parent table holds no changed record, so the fork points at the parent's.
    assert_eq!(cim.tables()[1].offset.get(), parent.tables()[1].offset.get());
    let copy = cim.record(cim.resolve("Files/copy").unwrap()).unwrap();
    let orig = cim.record(cim.resolve("Files/f0007").unwrap()).unwrap();
    assert_eq!(copy.default_stream.at(), orig.default_stream.at());
    assert_eq!(copy.default_stream.at().region(), 1, "shared data lies in the parent's data region");
}

#[test]
fn a_fork_needs_its_parent_beside_it_and_never_replaces_an_image() {
    let t = tempfile::tempdir().unwrap();
    let mut l = Layer::default();
    l.dir("Files");
    create_layer(&l, &t.path().join("a.cim"), None);
    let other = tempfile::tempdir().unwrap();
    let err = cimfs::CimWriter::create(&other.path().join("b.cim"), Some(&t.path().join("a.cim"))).err().unwrap();
    assert!(err.to_string().contains("same directory"), "{err}");
    let err = cimfs::CimWriter::create(&t.path().join("a.cim"), None).err().unwrap();
    assert!(err.to_string().contains("exists"), "{err}");
}

#[test]
fn failed_layers_leave_no_image() {
    let t = tempfile::tempdir().unwrap();
    let mut l = Layer::default();
    l.dir("Files").file("Files/x/missing-parent", b"data");
    let mut w = cimfs::CimWriter::create(&t.path().join("bad.cim"), None).unwrap();
    l.send(&mut w);
    let err = w.finish().unwrap_err().to_string();
    assert!(err.contains("parent directory"), "{err}");
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = Path::new("");
}

#[test]
fn a_fork_finds_the_image_it_was_forked_from() {
    let t = tempfile::tempdir().unwrap();
    let layers = chain();
    create_layer(&layers[0], &t.path().join("l0.cim"), None);
    create_layer(&layers[1], &t.path().join("l1.cim"), Some(&t.path().join("l0.cim")));
    create_layer(&layers[2], &t.path().join("l2.cim"), Some(&t.path().join("l1.cim")));
    let open = |n: &str| cimfs::Cim::open(&t.path().join(n)).unwrap();
    let (l0, l1, l2) = (open("l0.cim"), open("l1.cim"), open("l2.cim"));
    assert_eq!(l0.find_parent().unwrap(), None);
    assert_eq!(l2.find_parent().unwrap(), Some(t.path().join("l1.cim")));
    assert!(l2.is_fork_of(&l1) && l1.is_fork_of(&l0));
    assert!(!l2.is_fork_of(&l0) && !l0.is_fork_of(&l2) && !l1.is_fork_of(&l1));
    std::fs::rename(t.path().join("l1.cim"), t.path().join("elsewhere")).unwrap();
    let err = l2.find_parent().unwrap_err().to_string();
    assert!(err.contains("no .cim in") && err.contains("parent region sets"), "{err}");
}
