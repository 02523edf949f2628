//! Hostile and mistaken input to import and export: each refused with its own reason, and
//! nothing left behind (no layer directory, no CIM or region file, no temporary file).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::cims::Layer;
use common::*;
use regf::{Hive, Value};
use winlayer_layers::{BaseLayerBuilder, Parent, export_cim};

/// A base layer (imported) and the directories new layers go to.
struct Chain {
    _t: tempfile::TempDir,
    root: PathBuf,
    base: Parent,
}

/// A base layer tar holding Files/app/x with `content`.
fn base_tar(content: &[u8]) -> Vec<u8> {
    let mut l = Layer::default();
    l.dir("Files").dir("Files/app").file("Files/app/x", content);
    let mut builder = BaseLayerBuilder::new("BA", Some(0));
    l.send(&mut builder);
    wcow_tar::write_sorted(builder.finish().unwrap().0, Vec::new()).unwrap()
}

impl Chain {
    fn new() -> Chain {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        fs::create_dir_all(root.join("cims")).unwrap();
        fs::create_dir_all(root.join("layers")).unwrap();
        let tar = base_tar(b"x");
        let base = parent(&root.join("layers/base"), &root.join("cims/base.cim"));
        import(&tar, &base.dir, &base.cim, &[]).unwrap();
        Chain { _t: t, root, base }
    }

    /// Imports `tar` as layer `name` over `parents`, expecting an error with `needle` and an
    /// unchanged tree.
    fn refused(&self, name: &str, tar: &[u8], parents: &[Parent], needle: &str) {
        let before = tree(&self.root);
        let err = import(
            tar,
            &self.root.join("layers").join(name),
            &self.root.join("cims").join(format!("{name}.cim")),
            parents,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert_eq!(tree(&self.root), before, "left behind after: {err}");
    }

    fn import(&self, name: &str, tar: &[u8], parents: &[Parent]) -> Parent {
        let p = parent(&self.root.join("layers").join(name), &self.root.join("cims").join(format!("{name}.cim")));
        import(tar, &p.dir, &p.cim, parents).unwrap();
        p
    }
}

fn delta_bytes() -> Vec<u8> {
    let mut hive = Hive::empty_delta("ROOT");
    hive.root.create("Key").set_value(Value::dword("v", 1));
    hive.to_bytes().unwrap()
}

/// A non-base layer: Files/app plus whatever `more` adds.
fn layer(more: impl FnOnce(&mut Layer)) -> Vec<u8> {
    let mut l = Layer::default();
    l.dir("Files").dir("Files/app").file("Files/app/y", b"y").dir("Hives");
    more(&mut l);
    l.tar()
}

const CONFIG: &str = "Files/Windows/System32/config";

#[test]
fn hostile_layers_are_refused_and_leave_nothing_behind() {
    let c = Chain::new();
    let base = std::slice::from_ref(&c.base);
    let bare_base = |more: &dyn Fn(&mut Layer)| {
        let mut l = Layer::default();
        l.dir("Files");
        more(&mut l);
        l.tar()
    };
    c.refused("b", &bare_base(&|_| {}), &[], "a base layer needs all five registry hives");
    c.refused(
        "b",
        &bare_base(&|l| {
            l.whiteout("Files/gone");
        }),
        &[],
        "a whiteout, but a base layer has nothing",
    );
    c.refused(
        "b",
        &bare_base(&|l| {
            l.dir("Hives");
        }),
        &[],
        "a base layer carries nothing in Hives/",
    );

    c.refused(
        "l",
        &layer(|l| {
            l.file("Hives/SYSTEM_BASE", b"x");
        }),
        base,
        "the importer generates Hives/<H>_BASE",
    );
    let config_dirs = |l: &mut Layer| {
        l.dir("Files/Windows").dir("Files/Windows/System32").dir(CONFIG);
    };
    c.refused(
        "l",
        &layer(|l| {
            config_dirs(l);
            l.symlink(&format!("{CONFIG}/SAM"), "C:\\Windows\\elsewhere", false, false);
        }),
        base,
        "a symlink, but hcsshim writes this name as a plain file",
    );
    c.refused(
        "l",
        &layer(|l| {
            l.dir("Hives/System_Delta");
        }),
        base,
        "a dir, but hcsshim writes this name",
    );
    c.refused(
        "l",
        &layer(|l| {
            config_dirs(l);
            l.link(&format!("{CONFIG}/SAM"), "Files/app/y");
        }),
        base,
        "a hard link, but hcsshim keeps this file outside the CIM",
    );
    c.refused(
        "l",
        &layer(|l| {
            l.file("Hives/System_Delta", &delta_bytes()).stream("Hives/System_Delta", "ads", b"x");
        }),
        base,
        "alternate data stream \"ads\"",
    );
    c.refused(
        "l",
        &layer(|l| {
            l.file("Hives/SYSTEM_DELTA", &delta_bytes()).file("Hives/System_Delta", &delta_bytes());
        }),
        base,
        "the layer already has Hives/SYSTEM_DELTA",
    );
    c.refused(
        "l",
        &layer(|l| {
            l.file("Hives/System_Delta", b"not a hive");
        }),
        base,
        "merging",
    );
    // A std file below a directory link: written to the layer directory (never through the
    // link, which only the CIM holds), then refused by the layer rules.
    c.refused(
        "l",
        &layer(|l| {
            l.symlink("Files/Windows", "C:\\Elsewhere", true, true).dir("Files/Windows/System32").dir(CONFIG);
            l.file(&format!("{CONFIG}/SAM"), b"x");
        }),
        base,
        "parent Files/Windows is a directory link",
    );
    // A link target climbing out of the layer stops the tar reader.
    let mut bad = layer(|_| {});
    bad.truncate(bad.len() - 1024);
    let link = wcow_tar::header::HeaderBuilder::new(b"Files/app/escape", b'1', 0o644, 0, 0)
        .linkname(b"Files/../../etc/passwd");
    bad.extend_from_slice(&link.finish());
    bad.extend_from_slice(&[0u8; 1024]);
    c.refused("l", &bad, base, "'..' components are not allowed");

    // The layer directory must be new or empty (as containerd's snapshotter prepares it).
    fs::create_dir(c.root.join("layers/taken")).unwrap();
    fs::write(c.root.join("layers/taken/kept"), b"").unwrap();
    c.refused("taken", &layer(|_| {}), base, "exists; a layer is imported into a new or empty directory");
}

#[test]
fn parents_must_be_the_whole_chain_in_order_with_their_hives() {
    let c = Chain::new();
    let l2 = c.import("l2", &layer(|_| {}), std::slice::from_ref(&c.base));
    let tar = layer(|l| {
        l.file("Hives/System_Delta", &delta_bytes());
    });
    c.refused("l3", &tar, &[c.base.clone(), l2.clone()], "is not a base layer's image");
    let other_base = c.import("other", &base_tar(b"another base"), &[]);
    c.refused("l3", &tar, &[l2.clone(), other_base], "is not a fork of");
    c.refused("l3", &tar, std::slice::from_ref(&l2), "is not a base layer's image");
    c.refused("l3", &tar, &[l2.clone(), parent(&l2.dir, &c.base.cim)], "has no layout file");
    let elsewhere = c.root.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let before = tree(&c.root);
    let err =
        import(&tar, &c.root.join("layers/l3"), &elsewhere.join("l3.cim"), &[l2.clone(), c.base.clone()]).unwrap_err();
    assert!(err.to_string().contains("must lie in the same directory"), "{err}");
    assert_eq!(tree(&c.root), before);
    // Without the base's SYSTEM_BASE, the delta has nothing to be merged onto.
    fs::remove_file(c.base.dir.join("Hives/SYSTEM_BASE")).unwrap();
    c.refused("l3", &tar, &[l2, c.base.clone()], "no parent layer directory has Hives/SYSTEM_BASE");
}

#[test]
fn export_checks_the_directory_against_the_cim() {
    let c = Chain::new();
    let tar = layer(|l| {
        l.file("Hives/System_Delta", &delta_bytes());
    });
    let l2 = c.import("l2", &tar, std::slice::from_ref(&c.base));
    let l3 = c.import(
        "l3",
        &layer(|l| {
            l.file("Files/app/z", b"z");
        }),
        &[l2.clone(), c.base.clone()],
    );
    let fails = |dir: &Path, cim: &Path, parent: Option<&Path>, needle: &str| {
        let err = export_cim(dir, cim, parent).err().expect("an error").to_string();
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    };
    fails(&l3.dir, &l2.cim, None, "do the directory and the CIM belong together");
    fails(&l2.dir, &l3.cim, None, "do the directory and the CIM belong together");
    fails(&c.base.dir, &l2.cim, None, "do the directory and the CIM belong together");
    fails(&l2.dir, &l2.cim, Some(&l3.cim), "is not forked from");
    fails(&l2.dir, &c.base.cim, None, "lacks layout");
    fs::write(l2.dir.join("Hives/System_Delta"), delta_bytes().iter().map(|b| b ^ 1).collect::<Vec<_>>()).unwrap();
    fails(&l2.dir, &l2.cim, None, "differ");
    fs::remove_file(l2.dir.join("Hives/SYSTEM_BASE")).unwrap();
    fails(&l2.dir, &l2.cim, None, "lacks Hives/SYSTEM_BASE");
    fs::rename(&l2.cim, c.root.join("cims/moved")).unwrap();
    fails(&l3.dir, &l3.cim, None, "no .cim in");
}
