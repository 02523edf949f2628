//! The FUSE mount and the extraction of a fork chain's top show the layers applied in order:
//! names, kinds, data, hard links as one inode, link targets and Windows metadata as xattrs.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use winlayer_core::{EntryKind, attrs};

/// Builds the chain and returns the model of its top and the top image.
fn top(dir: &Path) -> (Model, std::path::PathBuf) {
    let mut model = Model::default();
    let mut parent: Option<std::path::PathBuf> = None;
    for (i, layer) in chain().iter().enumerate() {
        let cim = dir.join(format!("l{i}.cim"));
        create_layer(layer, &cim, parent.as_deref());
        model.apply(layer);
        parent = Some(cim);
    }
    (model, parent.unwrap())
}

/// Checks a tree on disk (a mount or an extraction) against the model.
fn check_tree(root: &Path, model: &Model, xattrs: bool) {
    let mut inodes: HashMap<usize, u64> = HashMap::new();
    let mut names_per_object: HashMap<usize, u64> = HashMap::new();
    for (_, id, ..) in model.paths() {
        *names_per_object.entry(id).or_default() += 1;
    }
    for (path, id, is_dir, data, meta) in model.paths() {
        let disk = root.join(path.as_str());
        let m = std::fs::symlink_metadata(&disk).unwrap_or_else(|e| panic!("{path}: {e}"));
        let object = model.object(id);
        match &object.kind {
            EntryKind::Symlink(link) => {
                assert!(m.file_type().is_symlink(), "{path} should be a symlink");
                let names: Vec<String> = path.components().map(String::from).collect();
                let want = cimfs::extract::posix_target(&names, &link.target);
                assert_eq!(std::fs::read_link(&disk).unwrap().to_str().unwrap(), want, "{path}");
                continue;
            }
            _ if is_dir => assert!(m.is_dir(), "{path} should be a directory"),
            _ => {
                assert!(m.is_file(), "{path} should be a file");
                assert_eq!(std::fs::read(&disk).unwrap(), data, "{path}: data");
                let ino = *inodes.entry(id).or_insert(m.ino());
                assert_eq!(ino, m.ino(), "{path}: names of one file must be one inode");
                assert_eq!(m.nlink(), names_per_object[&id], "{path}: link count");
            }
        }
        let modified = m.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
        let want = meta.last_write.ticks() - winlayer_core::FileTime::UNIX_EPOCH.ticks();
        assert_eq!(modified.as_nanos() as i64 / 100, want, "{path}: modification time");
        if xattrs {
            let get = |n: &str| xattr::get(&disk, format!("user.windows.{n}")).unwrap().unwrap_or_default();
            let keep = 0x227 | attrs::DIRECTORY;
            assert_eq!(get("attributes"), format!("0x{:08x}", meta.attributes & keep).into_bytes(), "{path}");
            assert_eq!(get("security"), meta.security.as_deref().unwrap().to_vec(), "{path}: security");
            assert_eq!(get("creation_time"), meta.creation.ticks().to_string().into_bytes(), "{path}");
            for ea in &meta.eas {
                assert_eq!(get(&format!("ea.{}", String::from_utf8_lossy(&ea.name))), ea.value, "{path}: EA");
            }
            for (name, bytes) in &object.streams {
                assert_eq!(&get(&format!("stream.{name}")), bytes, "{path}: stream {name}");
            }
        }
    }
    // Nothing more than the model: count every name on disk.
    let mut count = 0;
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            count += 1;
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    assert_eq!(count, model.paths().len(), "names on disk");
}

#[test]
fn mounted_fork_chain_shows_the_layers_applied_in_order() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the FUSE mount test needs the fuse kernel module (and root, or fusermount3 from Debian's fuse3)"
    );
    let t = tempfile::tempdir().unwrap();
    let (model, cim) = top(t.path());
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let session = cimfs::fuse::spawn(cimfs::Cim::open(&cim).unwrap(), &mnt).expect("mounting with FUSE (needs root)");
    check_tree(&mnt, &model, true);
    // Windows names are case-insensitive, and so are lookups in the mount.
    assert_eq!(std::fs::read(mnt.join("FILES/C/h3")).unwrap(), b"");
    assert!(std::fs::write(mnt.join("Files/new"), b"x").is_err(), "the mount is read-only");
    drop(session);
}

#[test]
fn extracted_fork_chain_shows_the_layers_applied_in_order() {
    let t = tempfile::tempdir().unwrap();
    let (model, cim) = top(t.path());
    let out = t.path().join("out");
    let done = cimfs::extract::extract(&cimfs::Cim::open(&cim).unwrap(), &out, true).unwrap();
    assert!(done.files > 0 && done.hard_links > 0 && done.symlinks > 0, "{done:?}");
    check_tree(&out, &model, true);
    // A second extraction into a non-empty directory is refused.
    let err = cimfs::extract::extract(&cimfs::Cim::open(&cim).unwrap(), &out, false).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn sparse_files_extract_as_holes() {
    let t = tempfile::tempdir().unwrap();
    let mut l = Layer::default();
    l.dir("Files").file_with("Files/sparse", &vec![0u8; 8 << 20], attrs::SPARSE_FILE | attrs::ARCHIVE, &[]);
    create_layer(&l, &t.path().join("s.cim"), None);
    let out = t.path().join("out");
    cimfs::extract::extract(&cimfs::Cim::open(&t.path().join("s.cim")).unwrap(), &out, false).unwrap();
    let m = std::fs::metadata(out.join("Files/sparse")).unwrap();
    assert_eq!(m.len(), 8 << 20);
    assert!(m.blocks() * 512 < 1 << 20, "{} bytes allocated for a hole", m.blocks() * 512);
    assert!(std::fs::read(out.join("Files/sparse")).unwrap().iter().all(|&b| b == 0));
}
