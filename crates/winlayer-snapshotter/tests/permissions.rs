//! Everything serve creates under its root is owner-only whatever the umask (metadata.redb
//! holds every key and label), and a root other users can write is refused. One test in its
//! own binary: the umask is the process's.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::Mode as Umask;
use winlayer_snapshotter::layout::UVM_SCRATCH_LABEL;
use winlayer_snapshotter::scratch::VhdxScratch;
use winlayer_snapshotter::{ErrorKind, Mode, Snapshotter};

/// Stands in for mkntfs (the suite formats with the real one).
struct NoFilesystem;

impl vhdx::scratch::Formatter for NoFilesystem {
    fn format(&self, _: &Path, _: u64, _: u32) -> winlayer_core::Result<()> {
        Ok(())
    }
}

fn open(root: &Path, mode: Mode) -> winlayer_snapshotter::Result<Snapshotter> {
    Snapshotter::with_scratch(root, mode, Box::new(VhdxScratch::new(Box::new(NoFilesystem))))
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every path under `root` (relative) with its mode, not descending into a linux snapshot's
/// `fs/` and `work/` (the container's own tree).
fn modes(root: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            found.push((rel.clone(), mode_of(&path)));
            let container = rel.starts_with("snapshots/") && (rel.ends_with("/fs") || rel.ends_with("/work"));
            if path.is_dir() && !container {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A base layer's templates as Windows' import leaves them (written by the differ, not serve).
fn windows_base_layer_templates(base: &Path) {
    vhdx::Vhdx::create_file(&base.join("blank.vhdx"), &vhdx::CreateOptions::dynamic(64 << 20)).unwrap();
    fs::create_dir_all(base.join("UtilityVM")).unwrap();
    vhdx::Vhdx::create_file(&base.join("UtilityVM/SystemTemplate.vhdx"), &vhdx::CreateOptions::dynamic(32 << 20))
        .unwrap();
    for path in [base.join("blank.vhdx"), base.join("UtilityVM/SystemTemplate.vhdx"), base.join("UtilityVM")] {
        winlayer_snapshotter::private::restrict(&path).unwrap();
    }
}

/// Makes snapshots of every kind in `mode` (scratch disks included), removes one and cleans up.
fn exercise(root: &Path, mode: Mode) {
    let none = BTreeMap::new();
    let s = open(root, mode).unwrap();
    match mode {
        Mode::Linux => {
            s.prepare("base-a", "", &none).unwrap();
            s.commit("base", "base-a", &none).unwrap();
            s.prepare("child", "base", &none).unwrap();
            s.view("view", "base", &none).unwrap();
        }
        Mode::Windows => {
            s.prepare("base-a", "", &none).unwrap();
            s.commit("base", "base-a", &none).unwrap();
            windows_base_layer_templates(&s.snapshots_dir().join("1"));
            let uvm = BTreeMap::from([(UVM_SCRATCH_LABEL.to_owned(), "1".to_owned())]);
            s.prepare("container", "base", &uvm).unwrap();
        }
        Mode::Cimfs | Mode::Blockcim => {
            s.prepare("extract-1 sha256:a", "", &none).unwrap();
            s.commit("sha256:a", "extract-1 sha256:a", &none).unwrap();
            s.prepare("container", "sha256:a", &none).unwrap();
        }
    }
    s.prepare("gone", "", &BTreeMap::from([("k".to_owned(), "v".to_owned())])).ok();
    s.remove("gone").ok();
    s.cleanup().unwrap();
}

/// Files 0600 and directories 0700, but a linux snapshot's `fs/` (0755) and `work/` (0711),
/// as containerd's overlay snapshotter makes them.
fn assert_owner_only(root: &Path, what: &str) {
    let found = modes(root);
    assert!(found.iter().any(|(p, _)| p == "metadata.redb"), "{what}: {found:?}");
    for (path, mode) in &found {
        let expected = if path.ends_with("/fs") {
            0o755
        } else if path.ends_with("/work") {
            0o711
        } else if root.join(path).is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(*mode, expected, "{what}: {path} has mode {mode:04o}");
    }
}

#[test]
fn everything_under_the_root_is_owner_only_whatever_the_umask() {
    for umask in [0o000, 0o022] {
        rustix::process::umask(Umask::from_raw_mode(umask));
        for mode in Mode::ALL {
            let tmp = tempfile::tempdir().unwrap();
            // A fresh root, made by serve (its parents too).
            let fresh = tmp.path().join("new/root");
            exercise(&fresh, mode);
            assert_owner_only(&fresh, &format!("fresh root, umask {umask:03o}, {mode}"));
            assert_eq!(mode_of(&fresh), 0o700);
            assert_eq!(mode_of(&tmp.path().join("new")), 0o700);

            // A root that exists, readable by everyone (as a package might make /var/lib/winlayer).
            let existing = tmp.path().join("existing");
            fs::create_dir(&existing).unwrap();
            fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
            exercise(&existing, mode);
            assert_owner_only(&existing, &format!("existing root, umask {umask:03o}, {mode}"));
            assert_eq!(mode_of(&existing), 0o755, "the root itself is the operator's");

            // A root an earlier version left under umask 000: opening it makes it owner-only.
            fs::set_permissions(existing.join("metadata.redb"), fs::Permissions::from_mode(0o666)).unwrap();
            fs::set_permissions(existing.join("snapshots"), fs::Permissions::from_mode(0o777)).unwrap();
            drop(open(&existing, mode).unwrap());
            assert_eq!(mode_of(&existing.join("metadata.redb")), 0o600);
            assert_eq!(mode_of(&existing.join("snapshots")), 0o700);
        }
    }
    rustix::process::umask(Umask::from_raw_mode(0o022));

    // A root other users can write is refused, with the reason, and left untouched.
    for writable in [0o777, 0o775, 0o1777] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(writable)).unwrap();
        let err = open(&root, Mode::Linux).err().expect("a root others can write is refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("writable by other users"), "{err}");
        assert!(err.message().contains(&format!("{writable:04o}")), "{err}");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "nothing is created in a refused root");
    }
    // So is one that belongs to another user (only root can make one to try).
    if rustix::process::geteuid().is_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
        let err = open(&root, Mode::Linux).err().expect("another user's root is refused");
        assert!(err.message().contains("belongs to uid 65534"), "{err}");
        assert_eq!(fs::metadata(&root).unwrap().uid(), 65534);
    }
    // A file is no root.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("file"), b"").unwrap();
    assert!(open(&tmp.path().join("file"), Mode::Linux).err().unwrap().message().contains("not a directory"));
}
