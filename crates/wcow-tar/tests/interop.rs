//! Interop with readers and writers winlayer did not write: Python's tarfile, Go's archive/tar
//! (the reader containerd and hcsshim use) and GNU tar. Each must read winlayer's layers with
//! every PAX record intact, and winlayer must read what each writes, losing nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::*;
use sha2::{Digest, Sha256};
use winlayer_core::{Entry, EntryKind, FileTime, attrs};

#[derive(serde::Deserialize, Debug)]
struct Dumped {
    name: String,
    typeflag: String,
    linkname: String,
    size: u64,
    mtime: String,
    pax: BTreeMap<String, String>,
    sha256: String,
    #[serde(default)]
    format: Option<String>,
}

fn here(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(cmd: &mut Command, tool: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {tool} ({e}); scripts/install-deps.sh installs it"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn python() -> Command {
    Command::new(std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into()))
}

fn go() -> Command {
    let mut cmd = Command::new("go");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    cmd.env("GOCACHE", cache).env("GOTOOLCHAIN", "local");
    cmd
}

fn dump_python(tar: &Path) -> Vec<Dumped> {
    serde_json::from_slice(&run(python().arg(here("tests/interop/tardump.py")).arg(tar), "python3 (tarfile)")).unwrap()
}

fn dump_go(tar: &Path) -> Vec<Dumped> {
    serde_json::from_slice(&run(go().arg("run").arg(here("tests/interop/tardump.go")).arg(tar), "go (golang-go)"))
        .unwrap()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The tar entry name an entry is stored under.
fn tar_name(e: &Entry) -> String {
    match &e.kind {
        EntryKind::Stream { name, .. } => format!("{}:{name}", e.path),
        EntryKind::Whiteout => match e.path.parent() {
            Some(p) => format!("{p}/.wh.{}", e.path.file_name()),
            None => format!(".wh.{}", e.path),
        },
        EntryKind::Opaque => format!("{}/.wh..wh..opq", e.path),
        _ => e.path.to_string(),
    }
}

fn time(v: Option<&String>, default: FileTime) -> FileTime {
    v.map(|t| FileTime::parse_pax(t).unwrap()).unwrap_or(default)
}

/// Checks that a foreign reader's view of a tar and winlayer's entries agree on every field
/// the dialect defines.
fn agree(ours: &[(Entry, Vec<u8>)], theirs: &[Dumped], tool: &str) {
    assert_eq!(ours.len(), theirs.len(), "{tool}: entry count");
    for ((e, data), t) in ours.iter().zip(theirs) {
        let ctx = format!("{tool}: {}", t.name);
        let name = t.name.trim_start_matches("./").trim_end_matches('/');
        assert_eq!(name, tar_name(e), "{ctx}: name");
        let flag = match &e.kind {
            EntryKind::Directory => "5",
            EntryKind::Symlink(_) => "2",
            EntryKind::HardLink { .. } => "1",
            EntryKind::File { .. } | EntryKind::Stream { .. } => "0",
            EntryKind::Whiteout | EntryKind::Opaque => t.typeflag.as_str(),
        };
        assert_eq!(t.typeflag, flag, "{ctx}: typeflag");
        match &e.kind {
            EntryKind::Symlink(link) => assert_eq!(t.linkname.replace('/', "\\"), link.target, "{ctx}: link target"),
            EntryKind::HardLink { target } => {
                assert_eq!(t.linkname.trim_start_matches("./"), target.as_str(), "{ctx}: link")
            }
            _ => {}
        }
        assert_eq!(t.size, e.kind.data_len(), "{ctx}: size");
        assert_eq!(t.sha256, sha256(data), "{ctx}: data");
        if !e.kind.has_metadata() {
            continue;
        }
        let m = &e.meta;
        let p = &t.pax;
        let default_attrs = if e.kind == EntryKind::Directory { attrs::DIRECTORY } else { 0 };
        let attrs: u32 = p.get("MSWINDOWS.fileattr").map_or(default_attrs, |v| v.parse().unwrap());
        assert_eq!(m.attributes, attrs, "{ctx}: MSWINDOWS.fileattr");
        let b64 = base64::engine::general_purpose::STANDARD;
        let sd = p.get("MSWINDOWS.rawsd").map(|v| b64.decode(v).unwrap());
        if p.contains_key("MSWINDOWS.sd") {
            assert!(m.security.is_some(), "{ctx}: MSWINDOWS.sd");
        } else {
            assert_eq!(m.security.as_deref(), sd.as_deref(), "{ctx}: MSWINDOWS.rawsd");
        }
        let mtime = FileTime::parse_pax(&t.mtime).unwrap();
        assert_eq!(m.last_write, mtime, "{ctx}: mtime");
        assert_eq!(m.last_access, time(p.get("atime"), mtime), "{ctx}: atime");
        assert_eq!(m.change, time(p.get("ctime"), mtime), "{ctx}: ctime");
        assert_eq!(m.creation, time(p.get("LIBARCHIVE.creationtime"), mtime), "{ctx}: LIBARCHIVE.creationtime");
        let junction = matches!(&e.kind, EntryKind::Symlink(l) if l.junction);
        assert_eq!(p.contains_key("MSWINDOWS.mountpoint"), junction, "{ctx}: MSWINDOWS.mountpoint");
        let eas: Vec<(Vec<u8>, Vec<u8>)> = p
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("MSWINDOWS.xattr.").map(|n| (n.as_bytes().to_vec(), b64.decode(v).unwrap()))
            })
            .collect();
        let ours_eas: Vec<_> = m.eas.iter().map(|ea| (ea.name.clone(), ea.value.clone())).collect();
        assert_eq!(ours_eas, eas, "{ctx}: MSWINDOWS.xattr.*");
        let known = [
            "MSWINDOWS.fileattr",
            "MSWINDOWS.rawsd",
            "MSWINDOWS.sd",
            "MSWINDOWS.mountpoint",
            "LIBARCHIVE.creationtime",
        ];
        for k in p.keys().filter(|k| k.starts_with("MSWINDOWS.") || k.starts_with("LIBARCHIVE.")) {
            assert!(known.contains(&k.as_str()) || k.starts_with("MSWINDOWS.xattr."), "{ctx}: unexpected record {k}");
        }
    }
}

fn temp_layer(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer.tar");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn python_and_go_read_winlayer_layers_with_every_record() {
    let (_dir, tar) = temp_layer(&write_layer(&kitchen_sink()));
    let ours = read_file(&tar);
    assert_eq!(ours, canonical(&kitchen_sink()));
    agree(&ours, &dump_python(&tar), "python tarfile");
    let go = dump_go(&tar);
    agree(&ours, &go, "go archive/tar");
    for (t, (e, _)) in go.iter().zip(&ours) {
        let expected =
            if e.kind.has_metadata() || matches!(e.kind, EntryKind::Stream { .. }) { "PAX" } else { "USTAR" };
        let format = t.format.as_deref().unwrap_or_default();
        // Go reports the union of the formats a header could be read as.
        assert!(format.contains(expected), "{}: Go read it as {format}", t.name);
    }
}

#[test]
fn gnu_tar_lists_and_extracts_winlayer_layers() {
    let entries = canonical(&kitchen_sink());
    let (dir, tar) = temp_layer(&write_layer(&kitchen_sink()));
    let listed = run(Command::new("tar").args(["--warning=no-unknown-keyword", "-tf"]).arg(&tar), "GNU tar");
    let names: Vec<String> = String::from_utf8(listed).unwrap().lines().map(str::to_string).collect();
    assert_eq!(names, entries.iter().map(|(e, _)| tar_name(e)).collect::<Vec<_>>());
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    run(Command::new("tar").args(["--warning=no-unknown-keyword", "-xf"]).arg(&tar).arg("-C").arg(&out), "GNU tar");
    for (e, data) in &entries {
        let on_disk = out.join(tar_name(e));
        match &e.kind {
            EntryKind::File { .. } | EntryKind::Stream { .. } => {
                assert_eq!(&std::fs::read(&on_disk).unwrap(), data, "{}", tar_name(e));
            }
            EntryKind::HardLink { target } => {
                use std::os::unix::fs::MetadataExt;
                let (a, b) =
                    (std::fs::metadata(&on_disk).unwrap(), std::fs::metadata(out.join(target.as_str())).unwrap());
                assert_eq!(a.ino(), b.ino(), "{} is a hard link to {target}", e.path);
            }
            EntryKind::Symlink(link) => {
                assert_eq!(std::fs::read_link(&on_disk).unwrap().to_str().unwrap(), link.target);
            }
            _ => {}
        }
        if let EntryKind::File { .. } = e.kind {
            let modified = std::fs::metadata(&on_disk).unwrap().modified().unwrap();
            let d = modified.duration_since(std::time::UNIX_EPOCH).map(|d| (d.as_secs() as i64, d.subsec_nanos()));
            if let Ok((secs, nanos)) = d {
                assert_eq!(FileTime::from_unix(secs, nanos), Some(e.meta.last_write), "{}: mtime", e.path);
            }
        }
    }
}

#[test]
fn winlayer_reads_python_written_layers() {
    let dir = tempfile::tempdir().unwrap();
    let generator = here("../../scripts/gen-layer.py");
    for (profile, files) in [("small", "300"), ("app", "400"), ("base", "300")] {
        let tar = dir.path().join(format!("{profile}.tar"));
        run(
            python().arg(&generator).args(["--profile", profile, "--files", files, "--mib", "2", "-o"]).arg(&tar),
            "scripts/gen-layer.py",
        );
        agree(&read_file(&tar), &dump_python(&tar), &format!("gen-layer.py {profile}"));
    }
}

#[test]
fn winlayer_reads_go_written_layers() {
    let (_dir, tar) = temp_layer(b"");
    run(go().arg("run").arg(here("tests/interop/mklayer.go")).arg(&tar), "go (golang-go)");
    let ours = read_file(&tar);
    agree(&ours, &dump_go(&tar), "go-written layer");
    let kinds: Vec<&str> = ours.iter().map(|(e, _)| e.kind.name()).collect();
    for kind in ["dir", "file", "stream", "hardlink", "symlink", "junction", "whiteout"] {
        assert!(kinds.contains(&kind), "the Go layer exercises {kind}");
    }
}

#[test]
fn winlayer_reads_gnu_tar_written_layers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let deep = root.join(format!("Files/{}", "d".repeat(120)));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir_all(root.join("Hives")).unwrap();
    std::fs::write(root.join("Files/a.txt"), b"alpha").unwrap();
    std::fs::write(deep.join("long-named-file.txt"), vec![7u8; 1500]).unwrap();
    std::fs::hard_link(root.join("Files/a.txt"), root.join("Files/b.txt")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("Files/c.lnk")).unwrap();
    for format in ["pax", "gnu"] {
        let tar = dir.path().join(format!("{format}.tar"));
        let mut cmd = Command::new("tar");
        cmd.args(["--sort=name", "--format", format, "-C"]).arg(&root).arg("-cf").arg(&tar);
        if format == "pax" {
            cmd.args([
                "--pax-option",
                "MSWINDOWS.rawsd:=AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA==",
            ]);
            cmd.args(["--pax-option", "LIBARCHIVE.creationtime:=1500000000.25"]);
        }
        run(cmd.args(["Files", "Hives"]), "GNU tar");
        let ours = read_file(&tar);
        agree(&ours, &dump_python(&tar), &format!("GNU tar --format={format}"));
        assert!(ours.iter().any(|(e, _)| e.path.as_str().ends_with("long-named-file.txt")));
    }
}
