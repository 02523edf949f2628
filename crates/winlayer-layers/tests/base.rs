//! Base layers: a layer directory prepared in place (`makebaselayer DIR`) and layer streams
//! turned into base-layer tars (`makebaselayer --from`), their hives read by the independent
//! readers, and every refusal with its reason and nothing left behind.
// Unix files (symlinks, inodes) build the trees; the Windows cross build leaves these out.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::cims::Layer;
use common::hives::{READERS, assert_same, expected, read_with};
use common::*;
use regf::Hive;
use winlayer_core::dir::{DirOptions, DirSource};
use winlayer_core::{EntryKind, Error, FileTime, LayerSource, Result};
use winlayer_layers::{BaseLayerBuilder, BaseReport, make_base_layer};

const CONFIG: &str = "Files/Windows/System32/config";
const HIVES: [&str; 5] = ["DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"];

fn config_hives(under: &str) -> Vec<String> {
    HIVES.iter().map(|h| format!("{under}/{h}")).collect()
}

#[test]
fn an_empty_directory_becomes_a_minimal_base_layer_whose_hives_every_reader_reads() {
    let t = tempfile::tempdir().unwrap();
    let report = make_base_layer(t.path()).unwrap();
    let mut created = strings(&["Files", "Files/Windows", "Files/Windows/System32", CONFIG]);
    created.extend(config_hives(CONFIG));
    assert_eq!(report, BaseReport { created, ..Default::default() });
    let paths: Vec<_> = HIVES.iter().map(|h| t.path().join(CONFIG).join(h)).collect();
    for reader in READERS {
        let seen = read_with(reader, &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
        for (path, seen) in paths.iter().zip(&seen) {
            assert_same(reader, &path.display().to_string(), seen, &expected(&Hive::empty("ROOT")));
        }
    }
    // Run again: everything is there and kept.
    let again = make_base_layer(t.path()).unwrap();
    assert!(again.created.is_empty() && again.kept == config_hives(CONFIG), "{again:?}");
}

#[test]
fn existing_hives_in_any_spelling_are_kept() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("Files/windows/SYSTEM32/Config")).unwrap();
    fs::write(t.path().join("Files/windows/SYSTEM32/Config/sam"), b"the layer's own SAM").unwrap();
    fs::create_dir_all(t.path().join("UtilityVM/Files/EFI/Microsoft/Boot")).unwrap();
    fs::write(t.path().join("UtilityVM/Files/EFI/Microsoft/Boot/BCD"), b"bcd").unwrap();
    let report = make_base_layer(t.path()).unwrap();
    assert_eq!(report.kept, ["Files/windows/SYSTEM32/Config/sam"]);
    assert_eq!(
        report.created,
        config_hives("Files/windows/SYSTEM32/Config").into_iter().filter(|p| !p.ends_with("SAM")).collect::<Vec<_>>()
    );
    assert!(report.utility_vm);
    assert_eq!(fs::read(t.path().join("Files/windows/SYSTEM32/Config/sam")).unwrap(), b"the layer's own SAM");
    assert!(!t.path().join("Files/Windows").exists(), "no second spelling of Windows");
}

/// Runs make_base_layer on a prepared tree, expecting an error with `needle`, and checks that
/// the tree is unchanged.
fn refused(prepare: impl FnOnce(&Path), needle: &str) {
    let t = tempfile::tempdir().unwrap();
    prepare(t.path());
    let before = tree(t.path());
    let err = make_base_layer(t.path()).unwrap_err().to_string();
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(tree(t.path()), before, "nothing may be left behind ({err})");
}

#[test]
fn hostile_layer_directories_are_refused_untouched() {
    refused(|d| fs::write(d.join("notes.txt"), b"x").unwrap(), "has no Files directory");
    refused(|d| fs::write(d.join("Files"), b"x").unwrap(), "is a regular file, not a directory");
    refused(
        |d| {
            fs::create_dir_all(d.join("Files")).unwrap();
            fs::create_dir_all(d.join("elsewhere")).unwrap();
            symlink(d.join("elsewhere"), d.join("Files/Windows")).unwrap();
        },
        "is a symbolic link, not a directory; links are refused",
    );
    refused(
        |d| {
            fs::create_dir_all(d.join(CONFIG)).unwrap();
            symlink("/etc/passwd", d.join(CONFIG).join("SAM")).unwrap();
        },
        "is a symbolic link; a registry hive must be a regular file",
    );
    refused(|d| fs::create_dir_all(d.join(CONFIG).join("SYSTEM")).unwrap(), "is a directory; a registry hive");
    refused(
        |d| {
            fs::create_dir_all(d.join("Files")).unwrap();
            fs::create_dir_all(d.join("UtilityVM/Files/EFI")).unwrap();
        },
        "so it must contain EFI/Microsoft/Boot/BCD",
    );
    refused(
        |d| {
            fs::create_dir_all(d.join("Files")).unwrap();
            fs::create_dir_all(d.join("UtilityVM/Files/EFI/Microsoft/Boot/BCD")).unwrap();
        },
        "is a directory, not a regular file",
    );
    refused(
        |d| {
            fs::create_dir_all(d.join("Files")).unwrap();
            fs::create_dir_all(d.join("target")).unwrap();
            symlink(d.join("target"), d.join("UtilityVM")).unwrap();
        },
        "is a symbolic link, not a directory",
    );
    refused(
        |d| {
            fs::create_dir_all(d.join("Files/Windows")).unwrap();
            fs::create_dir_all(d.join("Files/WINDOWS")).unwrap();
        },
        "differ only in case",
    );
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("file"), b"").unwrap();
    assert!(make_base_layer(&t.path().join("file")).unwrap_err().to_string().contains("is not a directory"));
}

/// A base-layer tar from entries (a hand-made layer), or the builder's refusal.
fn build(layer: &Layer) -> Result<(Vec<u8>, BaseReport)> {
    let mut builder = BaseLayerBuilder::new("BA", Some(1_600_000_000));
    layer.send(&mut builder);
    let (sorted, report) = builder.finish()?;
    Ok((wcow_tar::write_sorted(sorted, Vec::new())?, report))
}

fn problems(layer: &Layer) -> Vec<String> {
    match build(layer) {
        Err(Error::Problems(list)) => list.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected problems, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn a_plain_tree_becomes_a_deterministic_base_layer_tar() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("tree/etc")).unwrap();
    fs::write(t.path().join("tree/etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let make = || {
        let mut builder = BaseLayerBuilder::new("BA", None);
        let options = DirOptions { base: true, owner: "BA".into(), source_date_epoch: None };
        DirSource::new(t.path().join("tree"), options).send_to(&mut builder).unwrap();
        let (sorted, report) = builder.finish().unwrap();
        (wcow_tar::write_sorted(sorted, Vec::new()).unwrap(), report)
    };
    let (tar, report) = make();
    assert_eq!(make().0, tar, "the same tree gives the same bytes");
    let entries = Layer::from_tar_bytes(&tar).entries;
    let names: Vec<_> = entries.iter().map(|(e, _)| e.path.to_string()).collect();
    let mut want = strings(&["Files", "Files/Windows", "Files/Windows/System32", CONFIG]);
    want.extend(config_hives(CONFIG));
    want.extend(strings(&["Files/etc", "Files/etc/hosts"]));
    assert_eq!(names, want);
    assert_eq!(report.created.len(), 8, "Files comes from the tree");
    // Without SOURCE_DATE_EPOCH, generated objects take the newest time of the layer.
    let newest = entries.iter().map(|(e, _)| e.meta.last_write).max().unwrap();
    let hive = entries.iter().find(|(e, _)| e.path.as_str() == format!("{CONFIG}/SAM")).unwrap();
    assert_eq!(hive.0.meta.last_write, newest);
    assert_eq!(hive.1, winlayer_layers::base::empty_hive());
    assert_eq!(expected(&Hive::parse(&hive.1).unwrap()), expected(&Hive::empty("ROOT")));
}

#[test]
fn base_layer_tars_keep_hives_and_drop_an_empty_hives_directory() {
    let mut l = Layer::default();
    l.dir("Files").dir("Files/Windows").dir("Files/Windows/System32").dir(CONFIG);
    l.file(&format!("{CONFIG}/SOFTWARE"), b"regf of the layer").dir("Hives");
    let (tar, report) = build(&l).unwrap();
    assert_eq!(report.kept, [format!("{CONFIG}/SOFTWARE")]);
    assert_eq!(report.created.len(), 4);
    assert!(report.notes[0].contains("left out the empty Hives directory"), "{report:?}");
    let entries = Layer::from_tar_bytes(&tar).entries;
    assert!(!entries.iter().any(|(e, _)| e.path.as_str().starts_with("Hives")));
    let software = entries.iter().find(|(e, _)| e.path.as_str().ends_with("SOFTWARE")).unwrap();
    assert_eq!(software.1, b"regf of the layer");
    let generated = entries.iter().find(|(e, _)| e.path.as_str().ends_with("SYSTEM")).unwrap();
    assert_eq!(generated.0.meta.last_write, FileTime::from_unix(1_600_000_000, 0).unwrap(), "SOURCE_DATE_EPOCH");
}

#[test]
fn an_application_layers_whiteouts_are_dropped_with_one_warning() {
    let mut l = Layer::default();
    l.dir("Files").dir("Files/app").whiteout("Files/app/old").whiteout("Files/gone").file("Files/app/new", b"n");
    let (tar, report) = build(&l).unwrap();
    assert_eq!(
        report.warnings,
        ["dropped the whiteout Files/app/old and 1 more: a base layer has nothing below it to delete"]
    );
    let entries = Layer::from_tar_bytes(&tar).entries;
    assert!(entries.iter().all(|(e, _)| !matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque)));
    assert!(entries.iter().any(|(e, _)| e.path.as_str() == "Files/app/new"));
    let mut one = Layer::default();
    one.dir("Files").dir("Files/app").whiteout("Files/app/old");
    let (_, report) = build(&one).unwrap();
    assert_eq!(report.warnings, ["dropped the whiteout Files/app/old: a base layer has nothing below it to delete"]);
}

#[test]
fn what_a_base_layer_cannot_hold_is_refused_with_every_reason() {
    let mut l = Layer::default();
    l.dir("Files").dir("Files/app").dir("Hives").file("Hives/System_Delta", b"d");
    l.dir("UtilityVM").dir("UtilityVM/Files");
    let found = problems(&l);
    for needle in [
        "Hives/System_Delta: a base layer carries nothing in Hives/",
        "UtilityVM/Files: a utility VM needs EFI/Microsoft/Boot/BCD",
    ] {
        assert!(found.iter().any(|p| p.contains(needle)), "missing {needle:?} in {found:#?}");
    }

    let mut l = Layer::default();
    l.dir("Files").dir("Files/Windows").dir("Files/Windows/System32").dir(CONFIG);
    l.dir(&format!("{CONFIG}/SAM")).symlink(&format!("{CONFIG}/SYSTEM"), "C:\\elsewhere", false, false);
    l.file(&format!("{CONFIG}/DEFAULT"), b"h").stream(&format!("{CONFIG}/DEFAULT"), "s", b"x");
    let found = problems(&l);
    for needle in [
        "config/SAM: a dir, but hives and boot files must be regular files",
        "config/SYSTEM: a symlink, but hives and boot files must be regular files",
        "config/DEFAULT: alternate data stream \"s\": hcsshim's CIM importer refuses streams",
    ] {
        assert!(found.iter().any(|p| p.contains(needle)), "missing {needle:?} in {found:#?}");
    }

    let mut l = Layer::default();
    l.dir("Files").dir("Files/Windows").symlink("Files/Windows/System32", "C:\\x", true, true);
    let found = problems(&l);
    assert!(
        found.iter().any(|p| p.contains("Files/Windows/System32: a junction, but the registry hives go below it")),
        "{found:#?}"
    );

    // A hive sharing its data with a name that sorts first would be stored as a hard link.
    let mut l = Layer::default();
    l.dir("Files").dir("Files/Windows").dir("Files/Windows/System32").dir(CONFIG).dir("Files/A");
    l.file(&format!("{CONFIG}/SAM"), b"regf").link("Files/A/sam-copy", &format!("{CONFIG}/SAM"));
    let found = problems(&l);
    assert!(found.iter().any(|p| p.contains("config/SAM: shares its data with Files/A/sam-copy")), "{found:#?}");
    // A hard link the other way round is fine: the hive carries the data.
    let mut l = Layer::default();
    l.dir("Files").dir("Files/Windows").dir("Files/Windows/System32").dir(CONFIG).dir("Files/Z");
    l.file(&format!("{CONFIG}/SAM"), b"regf").link("Files/Z/sam-copy", &format!("{CONFIG}/SAM"));
    let (tar, _) = build(&l).unwrap();
    let link =
        Layer::from_tar_bytes(&tar).entries.into_iter().find(|(e, _)| e.path.as_str() == "Files/Z/sam-copy").unwrap();
    assert!(matches!(link.0.kind, EntryKind::HardLink { .. }));
}
