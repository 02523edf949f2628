//! Converted CIM layers: a chain imported on one "machine", packed, and unpacked on another
//! gives the same layer directories and CIMs byte for byte; the archives are the same bytes
//! every time and read as ordinary tars by GNU tar and Python's tarfile; and every hostile
//! archive is refused with nothing left behind.
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cims::Layer;
use common::*;
use regf::{Hive, Value};
use winlayer_core::dir::{DirOptions, DirSource};
use winlayer_core::{LayerSource, Result};
use winlayer_layers::converted::{UnpackSummary, pack, unpack};
use winlayer_layers::{BaseLayerBuilder, Parent};

/// A base layer tar (makebaselayer's rules, so it has the five hives), with `extra` files.
fn base_tar(dir: &Path, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("app")).unwrap();
    fs::write(tree.join("app/tool.exe"), b"MZ the tool").unwrap();
    fs::write(tree.join("app/readme.txt"), vec![b'r'; 70_000]).unwrap();
    for (path, bytes) in extra {
        fs::create_dir_all(tree.join(path).parent().unwrap()).unwrap();
        fs::write(tree.join(path), bytes).unwrap();
    }
    let mut builder = BaseLayerBuilder::new("BA", Some(1_700_000_000));
    let options = DirOptions { base: true, owner: "BA".into(), source_date_epoch: Some(1_700_000_000) };
    DirSource::new(&tree, options).send_to(&mut builder).unwrap();
    wcow_tar::write_sorted(builder.finish().unwrap().0, Vec::new()).unwrap()
}

fn app_tar(n: u8) -> Vec<u8> {
    let mut delta = Hive::empty_delta("ROOT");
    delta.root.create(&format!("Software\\App{n}")).values = vec![Value::dword("Level", n as u32)];
    let mut l = Layer::default();
    l.dir("Files")
        .dir("Files/app")
        .file(&format!("Files/app/v{n}.txt"), &vec![n; 3000])
        .whiteout("Files/app/readme.txt");
    l.dir("Hives").file("Hives/Software_Delta", &delta.to_bytes().unwrap());
    l.tar()
}

/// A chain root laid out as the cimfs snapshotter lays it out: layer directories and one
/// directory of CIMs.
struct Root {
    dirs: PathBuf,
    cims: PathBuf,
}

impl Root {
    fn new(at: &Path) -> Root {
        let root = Root { dirs: at.join("snapshots"), cims: at.join("snapshots/cim-layers") };
        fs::create_dir_all(&root.cims).unwrap();
        root
    }
    fn dir(&self, i: usize) -> PathBuf {
        self.dirs.join(i.to_string())
    }
    fn cim(&self, i: usize) -> PathBuf {
        self.cims.join(format!("{i}.cim"))
    }
    /// Layers 1..=n, immediate parent first.
    fn parents(&self, n: usize) -> Vec<Parent> {
        (1..=n).rev().map(|i| parent(&self.dir(i), &self.cim(i))).collect()
    }
    fn unpack(&self, i: usize, archive: &[u8]) -> Result<UnpackSummary> {
        unpack(&mut &archive[..], &self.dir(i), &self.cim(i), &self.parents(i - 1))
    }
    /// Every file below the root with its bytes.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = tree(&self.dirs)
            .into_iter()
            .filter(|p| !p.ends_with('/'))
            .map(|p| {
                let bytes = fs::read(self.dirs.join(&p)).unwrap();
                (p, bytes)
            })
            .collect();
        out.sort();
        out
    }
}

/// Imports the layers into `root`, returning each layer's archive.
fn convert(root: &Root, tars: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut archives = Vec::new();
    for (i, tar) in tars.iter().enumerate() {
        let n = i + 1;
        import(tar, &root.dir(n), &root.cim(n), &root.parents(n - 1)).unwrap();
        let mut archive = Vec::new();
        let summary = pack(&root.dir(n), &root.cim(n), &mut archive).unwrap();
        assert_eq!(summary.bytes, archive.len() as u64);
        archives.push(archive);
    }
    archives
}

fn chain(t: &Path) -> Vec<Vec<u8>> {
    vec![base_tar(t, &[]), app_tar(2), app_tar(3)]
}

#[test]
fn unpacked_layers_are_the_imported_layers_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let tars = chain(t.path());
    let (a, b) = (Root::new(&t.path().join("a")), Root::new(&t.path().join("b")));
    let archives = convert(&a, &tars);
    for (i, archive) in archives.iter().enumerate() {
        // containerd prepares an empty directory for the differ.
        fs::create_dir(b.dir(i + 1)).unwrap();
        let s = b.unpack(i + 1, archive).unwrap();
        assert_eq!(s.base, i == 0);
        assert!(s.file_data > 0, "{s:?}");
    }
    assert_eq!(a.files(), b.files(), "the unpacked root is the imported root");
    assert_eq!(export(&b.dir(3), &b.cim(3)).unwrap(), export(&a.dir(3), &a.cim(3)).unwrap());
    // Packing the unpacked layers gives the same archives; converting again elsewhere too.
    for i in 1..=3 {
        let mut again = Vec::new();
        pack(&b.dir(i), &b.cim(i), &mut again).unwrap();
        assert!(again == archives[i - 1], "layer {i}: the archive is not the same bytes");
    }
    let c = Root::new(&t.path().join("c"));
    assert!(convert(&c, &tars) == archives, "a second conversion wrote other bytes");
    // The base layer's merged hives are hard links to its config hives, in the archive too.
    let base = t.path().join("base.tar");
    fs::write(&base, &archives[0]).unwrap();
    let gnu = Command::new("tar").arg("-tvf").arg(&base).output().unwrap();
    assert!(gnu.status.success(), "{}", String::from_utf8_lossy(&gnu.stderr));
    let listing = String::from_utf8(gnu.stdout).unwrap();
    assert!(
        listing.lines().any(|l| l.contains("layer/Hives/SAM_BASE link to layer/Files/Windows/System32/config/SAM")),
        "{listing}"
    );
    assert!(listing.lines().last().unwrap().ends_with("cim/layer.cim"), "{listing}");
    let py = Command::new("python3").args(["-c", PY_CHECK]).arg(&base).arg(a.dir(1)).arg(&a.cims).output().unwrap();
    assert!(
        py.status.success(),
        "python tarfile: {}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
}

/// Python's tarfile reads every member and finds each file's bytes where the layer has them.
const PY_CHECK: &str = r#"
import sys, tarfile, os
archive, layer, cims = sys.argv[1:4]
with tarfile.open(archive) as t:
    members = t.getmembers()
    assert members[-1].name == "cim/layer.cim", members[-1].name
    for m in members:
        assert m.mode == 0o644 and m.uid == 0 and m.mtime == 0, m.name
        if m.islnk():
            assert m.linkname.startswith("layer/"), m.linkname
            continue
        assert m.isfile(), m.name
        data = t.extractfile(m).read()
        if m.name.startswith("layer/"):
            on_disk = open(os.path.join(layer, m.name[6:]), "rb").read()
        elif m.name == "cim/layer.cim":
            on_disk = open(os.path.join(cims, "1.cim"), "rb").read()
        else:
            on_disk = open(os.path.join(cims, m.name[4:]), "rb").read()
        assert data == on_disk, m.name
print(len(members), "members")
"#;

/// A tar member as a test writes it (ustar, like the archive's).
fn member(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    reseal(&mut h);
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Sets a header's checksum for what it now holds.
fn reseal(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// The archive's members as (header block offset, name), by walking its headers.
fn members(archive: &[u8]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= archive.len() && archive[at] != 0 {
        let h = &archive[at..at + 512];
        let name = String::from_utf8(h[..100].iter().take_while(|&&b| b != 0).copied().collect()).unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        out.push((at, name));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let tars = chain(t.path());
    let a = Root::new(&t.path().join("a"));
    let archives = convert(&a, &tars);
    let b = Root::new(&t.path().join("b"));
    b.unpack(1, &archives[0]).unwrap();
    let before = tree(&b.dirs);
    let layer2 = &archives[1];
    let ms = members(layer2);
    let start_of = |name: &str| ms.iter().find(|(_, n)| n == name).map(|(at, _)| *at).unwrap();
    let end = layer2.len() - 1024;
    let image_at = start_of("cim/layer.cim");
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // Members put before the real ones: (case, name, type, link target, what the error says).
    let first: [(&str, &str, u8, &str, &str); 7] = [
        ("traversal", "layer/../escape", b'0', "", "not a file a CIM layer directory holds"),
        ("absolute", "/etc/passwd", b'0', "", "neither layer/"),
        ("cim traversal", "cim/../../escape", b'0', "", "not a name a converted layer's CIM has"),
        ("ordinary file", "layer/Files/app/new.txt", b'0', "", "not a file a CIM layer directory holds"),
        ("symlink", "layer/Hives/SAM_BASE", b'2', "/etc/shadow", "only files and hard links"),
        ("link outside", "layer/Hives/SAM_BASE", b'1', "layer/../../../etc/shadow", "not an earlier layer file"),
        ("directory", "layer/Hives/", b'5', "", "only files and hard links"),
    ];
    for (what, name, kind, link, want) in first {
        let data: &[u8] = if kind == b'0' { b"x" } else { b"" };
        cases.push((what, [member(name, kind, link, data), layer2.clone()].concat(), want));
    }
    cases.push((
        "duplicate",
        [&layer2[..image_at], &member("layer/Hives/SOFTWARE_DELTA", b'0', "", b"x"), &layer2[image_at..]].concat(),
        "a second member of that name",
    ));
    cases.push(("truncated", layer2[..image_at + 512 + 100].to_vec(), "ends early"));
    cases.push(("no image", [&layer2[..image_at], &[0u8; 1024][..]].concat(), "has no cim/layer.cim"));
    cases.push(("trailing data", [&layer2[..], b"junk"].concat(), "data after its end"));
    let mut flipped = layer2.clone();
    flipped[image_at + 10] ^= 1;
    cases.push(("bad checksum", flipped, "checksum"));
    let mut huge = layer2.clone();
    huge[image_at + 124..image_at + 136]
        .copy_from_slice(&[0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    reseal(&mut huge[image_at..image_at + 512]);
    cases.push(("absurd size", huge, "ends early"));
    // Layer 3's archive where layer 2 belongs: its CIM is a fork of another parent.
    cases.push(("wrong parent", archives[2].clone(), "other parent layers"));
    // A layer file that is not the CIM's copy of it.
    let hive_at = start_of("layer/Hives/SOFTWARE_BASE");
    let mut changed = layer2.clone();
    changed[hive_at + 512 + 100] ^= 0xff;
    cases.push(("hive differs from the CIM's", changed, "is not the CIM's"));
    // A region file of another set.
    let foreign = "cim/region_00000000-0000-0000-0000-000000000000_0";
    cases.push((
        "stray region",
        [&layer2[..image_at], &member(foreign, b'0', "", b"x"), &layer2[image_at..]].concat(),
        "is not a file of the image's region set",
    ));
    cases.push((
        "member after the image",
        [&layer2[..end], &member(foreign, b'0', "", b"x"), &[0u8; 1024][..]].concat(),
        "comes last",
    ));
    let mut garbage_cim = layer2.clone();
    for b in &mut garbage_cim[image_at + 512..image_at + 512 + 64] {
        *b = 0xAA;
    }
    cases.push(("garbage image", garbage_cim, ""));
    for (what, archive, want) in cases {
        fs::create_dir(b.dir(2)).unwrap();
        let err = b.unpack(2, &archive).map(|_| ()).expect_err(what).to_string();
        assert!(err.contains(want), "{what}: {err}");
        assert!(!b.cim(2).exists(), "{what}: an image was left");
        fs::remove_dir(b.dir(2)).unwrap_or_else(|e| panic!("{what}: the snapshot directory is not empty: {e}"));
        assert_eq!(tree(&b.dirs), before, "{what}: something was left");
        assert!(!t.path().join("escape").exists() && !b.dirs.join("escape").exists(), "{what}");
    }
    // A base layer where the snapshot has parents, and a fork where it has none.
    fs::create_dir(b.dir(2)).unwrap();
    let err = unpack(&mut &archives[0][..], &b.dir(2), &b.cim(2), &b.parents(1)).unwrap_err().to_string();
    assert!(err.contains("not a fork of the snapshot's parent"), "{err}");
    let c = Root::new(&t.path().join("c"));
    let err = c.unpack(1, &archives[1]).unwrap_err().to_string();
    assert!(err.contains("other parent layers"), "{err}");
    // After all that, the real layer still unpacks.
    b.unpack(2, layer2).unwrap();
}

#[test]
fn a_base_layer_whose_hive_does_not_parse_is_refused() {
    let t = tempfile::tempdir().unwrap();
    // makebaselayer keeps a config hive the tree brings; this one is not a hive.
    let tar = base_tar(t.path(), &[("Windows/System32/config/SAM", b"not a registry hive")]);
    let a = Root::new(&t.path().join("a"));
    let archives = convert(&a, &[tar]);
    let b = Root::new(&t.path().join("b"));
    let err = b.unpack(1, &archives[0]).unwrap_err().to_string();
    assert!(err.contains("is not a registry hive"), "{err}");
    assert!(!b.dir(1).exists() && !b.cim(1).exists());
    assert_eq!(tree(&b.cims), Vec::<String>::new());
}
