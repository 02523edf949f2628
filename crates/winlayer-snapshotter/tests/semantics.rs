//! containerd's snapshot semantics (docs/snapshotter.md), error class by
//! error class, and recovery from a crash at each point of the directory work.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use winlayer_snapshotter::layout::{SIZE_BYTES_LABEL, SIZE_GB_LABEL, UVM_SCRATCH_LABEL};
use winlayer_snapshotter::{ErrorKind, Filters, Kind, Mode, Snapshotter};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn none() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn kind_of<T: std::fmt::Debug>(r: winlayer_snapshotter::Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

fn dirs(s: &Snapshotter) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(s.snapshots_dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn open(root: &Path) -> Snapshotter {
    Snapshotter::open(root, Mode::Linux).unwrap()
}

#[test]
fn lifecycle_and_error_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());

    s.prepare("base-active", "", &labels(&[("keep", "no")])).unwrap();
    assert_eq!(s.stat("base-active").unwrap().kind, Kind::Active);
    assert_eq!(kind_of(s.prepare("base-active", "", &none())), ErrorKind::AlreadyExists);
    assert_eq!(kind_of(s.view("base-active", "", &none())), ErrorKind::AlreadyExists);

    // Commit: labels come only from Commit, the ID (directory) stays.
    let before = s.mounts("base-active").unwrap();
    s.commit("base", "base-active", &labels(&[("l", "1"), ("empty", "")])).unwrap();
    let base = s.stat("base").unwrap();
    assert_eq!((base.kind, base.parent.as_str()), (Kind::Committed, ""));
    assert_eq!(base.labels, labels(&[("l", "1")]));
    assert_eq!(base.created, base.updated);
    assert_eq!(kind_of(s.stat("base-active")), ErrorKind::NotFound);
    assert!(Path::new(&before[0].source).is_dir(), "commit keeps the directory");

    // Commit's order of checks: name taken first, then key missing, then key not active.
    s.prepare("a", "base", &none()).unwrap();
    s.view("v", "base", &none()).unwrap();
    assert_eq!(kind_of(s.commit("base", "missing", &none())), ErrorKind::AlreadyExists);
    assert_eq!(kind_of(s.commit("a", "a", &none())), ErrorKind::AlreadyExists);
    assert_eq!(kind_of(s.commit("x", "missing", &none())), ErrorKind::NotFound);
    assert_eq!(kind_of(s.commit("x", "v", &none())), ErrorKind::FailedPrecondition);
    assert_eq!(kind_of(s.commit("x", "base", &none())), ErrorKind::FailedPrecondition);

    // Prepare's order: parent missing, parent not committed, then key taken.
    assert_eq!(kind_of(s.prepare("a", "nope", &none())), ErrorKind::NotFound);
    assert_eq!(kind_of(s.prepare("a", "v", &none())), ErrorKind::InvalidArgument);
    assert_eq!(kind_of(s.prepare("a", "base", &none())), ErrorKind::AlreadyExists);
    assert_eq!(kind_of(s.prepare("", "", &none())), ErrorKind::InvalidArgument);

    // Mounts: active and view only.
    assert_eq!(kind_of(s.mounts("base")), ErrorKind::FailedPrecondition);
    assert_eq!(kind_of(s.mounts("nope")), ErrorKind::NotFound);
    assert_eq!(s.mounts("v").unwrap()[0].options, ["ro", "rbind"]);

    // Remove: children first.
    let err = s.remove("base").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("remove"), "{err}");
    assert_eq!(kind_of(s.remove("nope")), ErrorKind::NotFound);
    s.remove("a").unwrap();
    s.remove("v").unwrap();
    s.remove("base").unwrap();
    assert!(dirs(&s).is_empty(), "{:?}", dirs(&s));

    // A key is free again after Remove; IDs are not reused.
    let m = s.prepare("a", "", &none()).unwrap();
    assert!(m[0].source.ends_with("/snapshots/4/fs"), "{}", m[0].source);
}

#[test]
fn parents_are_ordered_immediate_first() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let mut parent = String::new();
    for i in 0..4 {
        let key = format!("l{i}-active");
        s.prepare(&key, &parent, &none()).unwrap();
        parent = format!("l{i}");
        s.commit(&parent, &key, &none()).unwrap();
    }
    let m = s.prepare("top", &parent, &none()).unwrap();
    let root = s.snapshots_dir().display().to_string();
    let lower = (1..=4).rev().map(|id| format!("{root}/{id}/fs")).collect::<Vec<_>>().join(":");
    assert_eq!(m[0].options.last().unwrap(), &format!("lowerdir={lower}"));
    assert_eq!(s.stat("top").unwrap().parent, "l3");
}

#[test]
fn update_follows_field_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.prepare("a", "", &labels(&[("l1", "v1"), ("l2", "v2")])).unwrap();
    let created = s.stat("a").unwrap().created;

    // No paths: replace all.
    let info = s.update("a", &labels(&[("l1", "x"), ("l3", "y")]), &[]).unwrap();
    assert_eq!(info.labels, labels(&[("l1", "x"), ("l3", "y")]));
    assert_eq!(info.created, created);
    assert!(info.updated >= created);

    // labels.<k>: set one, delete one that is absent from the input (containerd's proxy sends
    // only inherited labels, so an absent key means "delete").
    let info = s.update("a", &labels(&[("l1", "z")]), &["labels.l1".into(), "labels.l3".into()]).unwrap();
    assert_eq!(info.labels, labels(&[("l1", "z")]));
    let info = s.update("a", &labels(&[("l1", "")]), &["labels.l1".into()]).unwrap();
    assert!(info.labels.is_empty());

    // labels: replace the map.
    let info = s.update("a", &labels(&[("m", "1")]), &["labels".into()]).unwrap();
    assert_eq!(info.labels, labels(&[("m", "1")]));

    // Anything else is InvalidArgument and changes nothing.
    for path in ["parent", "name", "kind", "created"] {
        assert_eq!(kind_of(s.update("a", &none(), &["labels.m".into(), path.into()])), ErrorKind::InvalidArgument);
    }
    assert_eq!(s.stat("a").unwrap().labels, labels(&[("m", "1")]));
    assert_eq!(kind_of(s.update("nope", &none(), &[])), ErrorKind::NotFound);
    assert_eq!(s.stat("a").unwrap().kind, Kind::Active, "kind never changes");
}

#[test]
fn usage_is_live_for_actives_and_recorded_at_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let m = s.prepare("a", "", &none()).unwrap();
    let empty = s.usage("a").unwrap();
    assert_eq!(empty.inodes, 1);
    fs::write(Path::new(&m[0].source).join("f"), vec![1u8; 100_000]).unwrap();
    let written = s.usage("a").unwrap();
    assert_eq!(written.inodes, 2);
    assert!(written.size >= empty.size + 100_000, "{written:?}");
    s.commit("c", "a", &none()).unwrap();
    assert_eq!(s.usage("c").unwrap(), written);
    s.view("v", "c", &none()).unwrap();
    assert_eq!(s.usage("v").unwrap(), Default::default());
    assert_eq!(kind_of(s.usage("nope")), ErrorKind::NotFound);
}

#[test]
fn walk_filters_and_bad_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.prepare("p-a", "", &none()).unwrap();
    s.commit("p", "p-a", &labels(&[("l", "1")])).unwrap();
    s.prepare("a", "p", &labels(&[("l", "2")])).unwrap();
    s.view("v", "p", &none()).unwrap();
    let walk = |f: &[&str]| {
        let mut names = Vec::new();
        s.walk(&Filters::parse(f).unwrap(), |i| {
            names.push(i.name);
            Ok(())
        })
        .unwrap();
        names
    };
    assert_eq!(walk(&[]), ["a", "p", "v"]);
    assert_eq!(walk(&["parent==p"]), ["a", "v"]);
    assert_eq!(walk(&["labels.l==2", "kind==view"]), ["a", "v"]);
    assert_eq!(kind_of(Filters::parse(&["parent=="])), ErrorKind::InvalidArgument);
}

#[test]
fn state_survives_reopening_and_a_root_keeps_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let s = open(tmp.path());
        s.prepare("a", "", &labels(&[("x", "y")])).unwrap();
        s.commit("b", "a", &labels(&[("k", "v")])).unwrap();
        s.prepare("c", "b", &none()).unwrap();
    }
    let s = open(tmp.path());
    let b = s.stat("b").unwrap();
    assert_eq!((b.kind, b.labels.clone()), (Kind::Committed, labels(&[("k", "v")])));
    assert_eq!(s.stat("c").unwrap().parent, "b");
    // The next ID continues the sequence.
    assert!(s.prepare("d", "", &none()).unwrap()[0].source.ends_with("/3/fs"));
    drop(s);
    let err = Snapshotter::open(tmp.path(), Mode::Windows).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("created for mode linux"), "{err}");
}

#[test]
fn a_root_is_served_by_one_process_only() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = open(tmp.path());
    let err = Snapshotter::open(tmp.path(), Mode::Linux).err().unwrap();
    assert!(err.message().contains("metadata"), "{err}");
}

/// A crash can leave, around committed metadata: a staging directory (`new-<id>`), a
/// directory renamed into place whose transaction never committed (`<id>` with no record, and
/// the ID sequence not advanced), a removal renamed away whose transaction never committed
/// (`rm-<id>` of a live snapshot), or one whose deletion never finished (`rm-<id>` of a
/// forgotten one). Each is recreated here by hand, then the root is reopened.
#[test]
fn every_crash_point_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshots = {
        let s = open(tmp.path());
        s.prepare("a-active", "", &none()).unwrap(); // id 1
        s.commit("a", "a-active", &none()).unwrap();
        s.prepare("b", "a", &none()).unwrap(); // id 2
        s.snapshots_dir().to_owned()
    };
    fs::write(snapshots.join("1/fs/data"), "committed").unwrap();
    // Remove of "b" crashed after its rename, before its commit.
    fs::rename(snapshots.join("2"), snapshots.join("rm-2")).unwrap();
    // Prepare crashed after its rename into place (id 3, never committed).
    fs::create_dir_all(snapshots.join("3/fs")).unwrap();
    // Prepare crashed while building (id 4).
    fs::create_dir_all(snapshots.join("new-4/fs")).unwrap();
    // A removal whose deletion never finished (id 9 forgotten long ago).
    fs::create_dir_all(snapshots.join("rm-9/fs")).unwrap();

    let s = open(tmp.path());
    assert!(snapshots.join("2/fs").is_dir(), "an uncommitted removal is undone");
    assert_eq!(s.mounts("b").unwrap()[0].options[1], format!("upperdir={}/2/fs", snapshots.display()));
    // IDs seen on disk are never given again.
    let m = s.prepare("c", "", &none()).unwrap();
    assert_eq!(m[0].source, format!("{}/10/fs", snapshots.display()));

    let cleaned = s.cleanup().unwrap();
    let removed: Vec<String> =
        cleaned.removed.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(removed, ["3", "new-4", "rm-9"]);
    assert_eq!(dirs(&s), ["1", "10", "2"]);
    assert_eq!(fs::read_to_string(snapshots.join("1/fs/data")).unwrap(), "committed");
    assert!(s.cleanup().unwrap().removed.is_empty(), "cleanup is idempotent");
}

#[test]
fn failed_prepare_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(tmp.path(), Mode::Windows).unwrap();
    s.prepare("base-active", "", &none()).unwrap();
    s.commit("base", "base-active", &none()).unwrap();
    // A container scratch copies the base layer's blank.vhdx, which Windows' import writes:
    // without it the Prepare is refused, and nothing is recorded or left.
    let err = s.prepare("container", "base", &none()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.message().contains("has no blank.vhdx"), "{err}");
    assert_eq!(kind_of(s.stat("container")), ErrorKind::NotFound);
    assert_eq!(dirs(&s), ["1"]);
    // Malformed size labels are refused before any disk is touched.
    let err = s.prepare("c2", "base", &labels(&[(SIZE_BYTES_LABEL, "x")])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(dirs(&s), ["1"]);
}

fn virtual_size(path: &Path) -> u64 {
    vhdx::Vhdx::open_file(path, &vhdx::OpenOptions::default()).unwrap().virtual_size()
}

#[test]
fn windows_mode_scratch_copies_the_base_layers_templates() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(tmp.path(), Mode::Windows).unwrap();
    s.prepare("base-active", "", &none()).unwrap();
    s.commit("base", "base-active", &none()).unwrap();
    // What Windows' base layer import leaves: blank.vhdx, and a utility VM template.
    let base = s.snapshots_dir().join("1");
    vhdx::Vhdx::create_file(&base.join("blank.vhdx"), &vhdx::CreateOptions::dynamic(64 << 20)).unwrap();
    fs::create_dir_all(base.join("UtilityVM")).unwrap();
    vhdx::Vhdx::create_file(&base.join("UtilityVM/SystemTemplate.vhdx"), &vhdx::CreateOptions::dynamic(32 << 20))
        .unwrap();

    let m = s.prepare("container", "base", &labels(&[(SIZE_GB_LABEL, "1"), (UVM_SCRATCH_LABEL, "")])).unwrap();
    let dir = Path::new(&m[0].source);
    assert_eq!(virtual_size(&dir.join("sandbox.vhdx")), 1 << 30, "grown to the size label");
    assert_eq!(virtual_size(&dir.join("vm/sandbox.vhdx")), 32 << 20);
    let m = s.view("inspect", "base", &none()).unwrap();
    assert_eq!(virtual_size(&Path::new(&m[0].source).join("sandbox.vhdx")), 64 << 20);
    assert!(!Path::new(&m[0].source).join("vm").exists());
    // A size below the template's is the caller's error.
    let err = s.prepare("small", "base", &labels(&[(SIZE_BYTES_LABEL, "4096")])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

/// Stands in for mkntfs in this test (the suite formats with the real one).
struct NoFilesystem;

impl vhdx::scratch::Formatter for NoFilesystem {
    fn format(&self, _: &Path, _: u64, _: u32) -> winlayer_core::Result<()> {
        Ok(())
    }
}

#[test]
fn cimfs_mode_scratch_copies_the_roots_template() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = winlayer_snapshotter::scratch::VhdxScratch::new(Box::new(NoFilesystem));
    let s = Snapshotter::with_scratch(tmp.path(), Mode::Cimfs, Box::new(scratch)).unwrap();
    // Made at start, as containerd's cimfs snapshotter makes them at init.
    assert!(tmp.path().join("blank.vhdx").is_file() && tmp.path().join("blank-base.vhdx").is_file());
    // A Prepare that finds the pair broken remakes both.
    fs::remove_file(tmp.path().join("blank-base.vhdx")).unwrap();
    s.prepare("extract-1 sha256:a", "", &none()).unwrap();
    s.commit("sha256:a", "extract-1 sha256:a", &none()).unwrap();
    let m = s.prepare("container", "sha256:a", &none()).unwrap();
    let sandbox = Path::new(&m[0].source).join("sandbox.vhdx");
    let disk = vhdx::Vhdx::open_file(&sandbox, &vhdx::OpenOptions { parents: true, ..Default::default() }).unwrap();
    assert_eq!(disk.virtual_size(), 10 << 30, "containerd's 10 GiB template");
    assert!(disk.parent().unwrap().name().ends_with("blank-base.vhdx"));
    assert!(tmp.path().join("blank.vhdx").is_file() && tmp.path().join("blank-base.vhdx").is_file());
    // containerd's cimfs commits extraction snapshots only.
    assert_eq!(kind_of(s.commit("layer", "container", &none())), ErrorKind::NotImplemented);
    // The templates stay in the root, outside what Cleanup looks at.
    s.cleanup().unwrap();
    assert!(tmp.path().join("blank.vhdx").is_file());
}

/// A formatter that fails, as mkntfs does when it is missing.
struct BrokenFormatter;

impl vhdx::scratch::Formatter for BrokenFormatter {
    fn format(&self, _: &Path, _: u64, _: u32) -> winlayer_core::Result<()> {
        Err(winlayer_core::Error::Invalid("mkntfs: not installed".into()))
    }
}

#[test]
fn cimfs_mode_refuses_to_start_without_its_templates() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = winlayer_snapshotter::scratch::VhdxScratch::new(Box::new(BrokenFormatter));
    let err = Snapshotter::with_scratch(tmp.path(), Mode::Cimfs, Box::new(scratch)).err().expect("must not start");
    assert!(err.message().contains("making the scratch templates") && err.message().contains("mkntfs"), "{err}");
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().contains("vhdx")), "half-made templates left: {left:?}");
}

#[test]
fn windows_mode_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(tmp.path(), Mode::Windows).unwrap();
    let m = s.prepare("base-active", "", &none()).unwrap();
    assert!(Path::new(&m[0].source).join("Files").is_dir(), "a new base layer gets Files/");
    s.commit("base", "base-active", &none()).unwrap();
    let m = s.prepare("default/3/extract-1 sha256:aa", "base", &none()).unwrap();
    let dir = Path::new(&m[0].source);
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "an extraction target is an empty directory");
    assert_eq!(m[0].kind, "windows-layer");
    let parent = s.snapshots_dir().join("1");
    assert_eq!(m[0].options, ["rw".to_string(), format!("parentLayerPaths=[{:?}]", parent.display().to_string())]);
    s.commit("layer", "default/3/extract-1 sha256:aa", &none()).unwrap();
}

#[test]
fn cimfs_mode_layout_and_cleanup_of_cims() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Snapshotter::open(tmp.path(), Mode::Cimfs).unwrap();
    assert_eq!(kind_of(s.prepare("scratch", "", &none())), ErrorKind::InvalidArgument);
    let m = s.prepare("extract-1 sha256:aa", "", &none()).unwrap();
    let cims = s.snapshots_dir().join("cim-layers");
    assert_eq!(m[0].kind, "CimFS");
    assert_eq!(m[0].options[1], format!("cimpath={}/1.cim", cims.display()));
    // The differ writes the CIM; stand in for it with bytes.
    fs::write(cims.join("1.cim"), [0u8; 4096]).unwrap();
    s.commit("sha256:aa", "extract-1 sha256:aa", &none()).unwrap();
    assert!(s.usage("sha256:aa").unwrap().size >= 4096);
    fs::write(cims.join("77.cim"), b"orphan").unwrap();
    fs::write(cims.join("region_x_0"), b"shared region file").unwrap();
    let removed = s.cleanup().unwrap().removed;
    assert_eq!(removed, [cims.join("77.cim")]);
    s.remove("sha256:aa").unwrap();
    assert!(!cims.join("1.cim").exists());
    assert!(cims.join("region_x_0").exists(), "region files are the CIM writer's to manage");
}
