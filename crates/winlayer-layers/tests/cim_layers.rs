//! The proof of CIM container layers: a base layer made from a plain Linux directory, imported
//! as a CIM container layer, and two non-base layers with differencing hives on top. The layer
//! directories and CIMs hold exactly the files hcsshim's importer writes (hcsshim
//! `internal/wclayer/cim`, docs/layers.md), every hive — the merged `_BASE` ones included — reads in five independent readers
//! (hivex, regipy, python-registry, dissect.regf, libregf), and export gives back each layer's
//! canonical tar, whiteouts and cross-layer hard links included.
// Unix files (symlinks, inodes) build the trees; the Windows cross build leaves these out.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::cims::Layer;
use common::hives::{READERS, assert_same, expected, read_with};
use common::*;
use regf::{Hive, LayerSemantics, Value};
use winlayer_core::dir::{DirOptions, DirSource};
use winlayer_core::{Entry, EntryKind, LayerSource, Metadata};
use winlayer_layers::BaseLayerBuilder;

const CONFIG: &str = "Files/Windows/System32/config";

/// A base layer tar made from a plain Linux tree by `makebaselayer --from`.
fn base_tar(dir: &Path) -> Vec<u8> {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("app/bin")).unwrap();
    fs::write(tree.join("app/bin/tool.exe"), b"MZ the tool").unwrap();
    fs::hard_link(tree.join("app/bin/tool.exe"), tree.join("app/tool-alias.exe")).unwrap();
    fs::write(tree.join("app/readme.txt"), vec![b'r'; 5000]).unwrap();
    std::os::unix::fs::symlink("bin/tool.exe", tree.join("app/current")).unwrap();
    let mut builder = BaseLayerBuilder::new("BA", Some(1_700_000_000));
    let options = DirOptions { base: true, owner: "BA".into(), source_date_epoch: Some(1_700_000_000) };
    DirSource::new(&tree, options).send_to(&mut builder).unwrap();
    let (sorted, report) = builder.finish().unwrap();
    assert_eq!(report.created.len(), 8, "{report:?}");
    wcow_tar::write_sorted(sorted, Vec::new()).unwrap()
}

/// Gives every hard link of `layer` the attributes and times of the file it names (here or in
/// `lower`), as Windows' exporter writes them and as a CIM (which keeps nothing per name)
/// gives them back.
fn links_like_targets(layer: &mut Layer, lower: &[&[(Entry, Vec<u8>)]]) {
    let metas: BTreeMap<String, Metadata> = lower
        .iter()
        .flat_map(|l| l.iter())
        .chain(layer.entries.iter())
        .filter(|(e, _)| matches!(e.kind, EntryKind::File { .. }))
        .map(|(e, _)| (e.path.to_string(), Metadata { security: None, eas: Vec::new(), ..e.meta.clone() }))
        .collect();
    for (e, _) in &mut layer.entries {
        if let EntryKind::HardLink { target } = &e.kind {
            e.meta = metas[target.as_str()].clone();
        }
    }
}

fn delta(keys: &[(&str, Vec<Value>)]) -> Hive {
    let mut hive = Hive::empty_delta("ROOT");
    for (path, values) in keys {
        hive.root.create(path).values = values.clone();
    }
    hive
}

fn bytes(hive: &Hive) -> Vec<u8> {
    hive.to_bytes().unwrap()
}

#[test]
fn base_and_non_base_layers_as_hcsshim_lays_them_out() {
    let t = tempfile::tempdir().unwrap();
    let (cims, dirs) = (t.path().join("cims"), t.path().join("layers"));
    fs::create_dir_all(&cims).unwrap();
    fs::create_dir_all(&dirs).unwrap();

    // The base layer, from a plain tree.
    let base = base_tar(t.path());
    let base_entries = cims::Layer::from_tar_bytes(&base).entries;
    let (base_dir, base_cim) = (dirs.join("1"), cims.join("1.cim"));
    let summary = import(&base, &base_dir, &base_cim, &[]).unwrap();
    assert!(summary.base);

    // Layer 2: a file, a deletion, hard links within the layer, to a lower file and to a
    // lower hive, streams, and two differencing hives (spelled as Windows exports them).
    let system2 =
        delta(&[("ControlSet001\\Services\\App", vec![Value::dword("Start", 2), Value::string("Name", "app")])]);
    let user2 = delta(&[("Software\\App", vec![Value::string("Theme", "dark")])]);
    let mut l2 = Layer::default();
    l2.dir("Files").dir("Files/app").whiteout("Files/app/readme.txt").file("Files/app/settings.ini", b"[app]\n");
    l2.file("Files/app/data.bin", &[3u8; 6000]).stream("Files/app/data.bin", "Zone.Identifier", b"[ZoneTransfer]");
    l2.link("Files/app/data-again.bin", "Files/app/data.bin").link("Files/app/tool2.exe", "Files/app/bin/tool.exe");
    l2.link("Files/app/system-hive", &format!("{CONFIG}/SYSTEM"));
    l2.dir("Files/app/cfg").file("Files/app/cfg/a.txt", b"a");
    l2.dir("Hives").file("Hives/DefaultUser_Delta", &bytes(&user2)).file("Hives/System_Delta", &bytes(&system2));
    links_like_targets(&mut l2, &[&base_entries]);
    let l2_tar = l2.tar();
    let (dir2, cim2) = (dirs.join("2"), cims.join("2.cim"));
    let summary = import(&l2_tar, &dir2, &cim2, &[parent(&base_dir, &base_cim)]).unwrap();
    assert!(!summary.base);

    // Layer 3: a deleted directory of the base, a re-created directory, a hive layer 2 does
    // not change (its parent is found in the base layer), and a delta that deletes what
    // layer 2 added to SYSTEM.
    let mut system3 = delta(&[("ControlSet001\\Services\\Other", vec![Value::qword("Q", 7)])]);
    system3.root.create("ControlSet001\\Services\\App").layer = LayerSemantics::Tombstone;
    let software3 = delta(&[("Vendor\\Product", vec![Value::multi_string("Paths", &["a", "b"])])]);
    let mut l3 = Layer::default();
    l3.dir("Files").dir("Files/app").whiteout("Files/app/bin").whiteout("Files/app/cfg").file("Files/app/v3.txt", b"3");
    l3.dir("Files/app/cfg").file("Files/app/cfg/b.txt", b"b");
    l3.dir("Hives").file("Hives/SYSTEM_DELTA", &bytes(&system3)).file("Hives/Software_Delta", &bytes(&software3));
    let l3_tar = l3.tar();
    let (dir3, cim3) = (dirs.join("3"), cims.join("3.cim"));
    let parents = [parent(&dir2, &cim2), parent(&base_dir, &base_cim)];
    import(&l3_tar, &dir3, &cim3, &parents).unwrap();

    // The layer directories hold exactly what hcsshim's importer writes there.
    let hive_names = ["DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"];
    let mut want: Vec<String> =
        strings(&["Files/", "Files/Windows/", "Files/Windows/System32/", &format!("{CONFIG}/")]);
    want.extend(hive_names.iter().map(|h| format!("{CONFIG}/{h}")));
    want.push("Hives/".into());
    want.extend(["DEFAULTUSER", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"].iter().map(|h| format!("Hives/{h}_BASE")));
    want.push("layout".into());
    want.sort();
    assert_eq!(tree(&base_dir), want);
    let l2_files =
        ["Hives/", "Hives/DEFAULTUSER_BASE", "Hives/DefaultUser_Delta", "Hives/SYSTEM_BASE", "Hives/System_Delta"];
    assert_eq!(tree(&dir2), strings(&l2_files));
    let l3_files = ["Hives/", "Hives/SOFTWARE_BASE", "Hives/SYSTEM_BASE", "Hives/SYSTEM_DELTA", "Hives/Software_Delta"];
    assert_eq!(tree(&dir3), strings(&l3_files));
    assert_eq!(fs::read(base_dir.join("layout")).unwrap(), b"vhd-with-hives\n");
    for (base_name, config) in [("DEFAULTUSER", "DEFAULT"), ("SAM", "SAM"), ("SYSTEM", "SYSTEM")] {
        let ino = |p: &str| fs::metadata(base_dir.join(p)).unwrap().ino();
        assert_eq!(ino(&format!("Hives/{base_name}_BASE")), ino(&format!("{CONFIG}/{config}")), "a hard link");
    }

    // The CIMs: the base holds the layer plus Hives/ with links to the config hives and
    // layout; the forks add exactly their layer and merged hives.
    let view1 = cim_tree(&base_cim);
    let id = |view: &[(String, u32)], path: &str| view.iter().find(|(p, _)| p == path).map(|(_, id)| *id);
    let generated = ["Hives/", "layout"].into_iter().map(String::from);
    let generated = generated.chain(want.iter().filter(|p| p.starts_with("Hives/") && p.len() > 6).cloned());
    let mut want1: Vec<String> = base_entries
        .iter()
        .map(|(e, _)| format!("{}{}", e.path, if e.kind == EntryKind::Directory { "/" } else { "" }))
        .chain(generated)
        .collect();
    want1.sort();
    want1.dedup();
    assert_eq!(view1.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), want1);
    for (base_name, config) in [("DEFAULTUSER", "DEFAULT"), ("SECURITY", "SECURITY"), ("SOFTWARE", "SOFTWARE")] {
        assert_eq!(id(&view1, &format!("Hives/{base_name}_BASE")), id(&view1, &format!("{CONFIG}/{config}")));
    }
    let hives_of = |view: &[(String, u32)]| -> Vec<String> {
        view.iter().filter(|(p, _)| p.starts_with("Hives/") && p != "Hives/").map(|(p, _)| p.clone()).collect()
    };
    let view2 = cim_tree(&cim2);
    let mut want2 = strings(&[
        "Hives/DEFAULTUSER_BASE",
        "Hives/DefaultUser_Delta",
        "Hives/SAM_BASE",
        "Hives/SECURITY_BASE",
        "Hives/SOFTWARE_BASE",
        "Hives/SYSTEM_BASE",
        "Hives/System_Delta",
    ]);
    assert_eq!(hives_of(&view2), want2);
    assert_eq!(id(&view2, "Hives/SAM_BASE"), id(&view1, "Hives/SAM_BASE"), "inherited from the base");
    assert_ne!(id(&view2, "Hives/SYSTEM_BASE"), id(&view1, "Hives/SYSTEM_BASE"), "merged in layer 2");
    assert_eq!(id(&view2, "layout"), id(&view1, "layout"));
    let view3 = cim_tree(&cim3);
    want2.extend(strings(&["Hives/SYSTEM_DELTA", "Hives/Software_Delta"]));
    want2.retain(|p| p != "Hives/System_Delta");
    want2.sort();
    assert_eq!(hives_of(&view3), want2, "layer 3's spelling of its SYSTEM delta replaces layer 2's");
    assert_eq!(id(&view3, "Hives/DEFAULTUSER_BASE"), id(&view2, "Hives/DEFAULTUSER_BASE"));
    assert!(!view3.iter().any(|(p, _)| p.starts_with("Files/app/bin")), "deleted with its directory");
    for (dir, cim) in [(&base_dir, &base_cim), (&dir2, &cim2), (&dir3, &cim3)] {
        for file in tree(dir).iter().filter(|f| !f.ends_with('/')) {
            assert_eq!(cim_file(cim, file), fs::read(dir.join(file)).unwrap(), "{file} in {}", cim.display());
        }
    }

    // Every hive reads in every independent reader as the tree it should hold.
    let empty = Hive::empty("ROOT");
    let merged = |base: &Hive, delta: &Hive| regf::merge(base.clone(), delta.clone()).unwrap();
    let system_2 = merged(&empty, &system2);
    let mut cases: Vec<(String, Hive)> =
        hive_names.iter().map(|h| (format!("1/{CONFIG}/{h}"), empty.clone())).collect();
    cases.push(("1/Hives/SAM_BASE".into(), empty.clone()));
    cases.extend([
        ("2/Hives/System_Delta".into(), system2.clone()),
        ("2/Hives/DefaultUser_Delta".into(), user2.clone()),
        ("2/Hives/SYSTEM_BASE".into(), system_2.clone()),
        ("2/Hives/DEFAULTUSER_BASE".into(), merged(&empty, &user2)),
        ("3/Hives/SYSTEM_DELTA".into(), system3.clone()),
        ("3/Hives/SYSTEM_BASE".into(), merged(&system_2, &system3)),
        ("3/Hives/SOFTWARE_BASE".into(), merged(&empty, &software3)),
    ]);
    let final_system = &cases.iter().find(|(n, _)| n == "3/Hives/SYSTEM_BASE").unwrap().1;
    assert!(final_system.root.find("ControlSet001\\Services\\App").is_none());
    assert!(final_system.root.find("ControlSet001\\Services\\Other").is_some());
    for reader in READERS {
        // hivexml gives up on a hive with a tombstone (no data cell), as on Windows' own deltas.
        let readable: Vec<_> =
            cases.iter().filter(|(n, _)| !(reader == "hivexml" && n == "3/Hives/SYSTEM_DELTA")).collect();
        let paths: Vec<_> = readable.iter().map(|(n, _)| dirs.join(n)).collect();
        let seen = read_with(reader, &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
        for ((name, hive), seen) in readable.iter().zip(&seen) {
            assert_same(reader, name, seen, &expected(hive));
        }
    }

    // Export gives back every layer's canonical tar.
    assert!(export(&base_dir, &base_cim).unwrap() == canonical(&base), "base round trip");
    cims::assert_same_tar(&canonical(&l2_tar), &export(&dir2, &cim2).unwrap());
    cims::assert_same_tar(&canonical(&l3_tar), &export(&dir3, &cim3).unwrap());
}

#[test]
fn imports_are_deterministic() {
    let t = tempfile::tempdir().unwrap();
    let base = base_tar(t.path());
    let mut files = Vec::new();
    for run in ["a", "b"] {
        let root = t.path().join(run);
        fs::create_dir_all(root.join("cims")).unwrap();
        import(&base, &root.join("layer"), &root.join("cims/base.cim"), &[]).unwrap();
        let mut all = BTreeMap::new();
        for sub in ["layer", "cims"] {
            for f in tree(&root.join(sub)).into_iter().filter(|f| !f.ends_with('/')) {
                all.insert(format!("{sub}/{f}"), fs::read(root.join(sub).join(&f)).unwrap());
            }
        }
        files.push(all);
    }
    assert_eq!(files[0], files[1]);
}

#[test]
fn the_base_layer_of_a_generated_image_round_trips() {
    // The generator's base profile: 400 files with streams, links, junctions, valid config
    // hives and a utility VM.
    let t = tempfile::tempdir().unwrap();
    let tar = cims::gen_layer(&t.path().join("base.tar"), &["--profile", "base", "--files", "400", "--mib", "2"]);
    let tar = fs::read(tar).unwrap();
    fs::create_dir(t.path().join("cims")).unwrap();
    let (dir, cim) = (t.path().join("layer"), t.path().join("cims/base.cim"));
    let summary = import(&tar, &dir, &cim, &[]).unwrap();
    let uvm: Vec<_> = summary.host_files.iter().filter(|f| f.starts_with("UtilityVM")).collect();
    assert_eq!(
        uvm,
        ["UtilityVM/Files/EFI/Microsoft/Boot/BCD", "UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi"],
        "the utility VM's BCD and boot manager are host files"
    );
    cims::assert_same_tar(&canonical(&tar), &export(&dir, &cim).unwrap());
}
