//! Hives winlayer writes, read by five independent readers (hivex, regipy, python-registry,
//! dissect.regf, libregf); hives Windows and hivex wrote, read by winlayer.

mod common;

use std::path::Path;

use common::*;
use regf::{Hive, LayerSemantics, LeafKind, Value, WriteOptions};

/// Every hive shape the writer produces, as files in `dir`.
fn written_hives(dir: &Path) -> Vec<(String, Hive, std::path::PathBuf)> {
    let mut delta = Hive::empty_delta("DELTA");
    delta.root.create("Gone").layer = LayerSemantics::Tombstone;
    let kept = delta.root.create("Kept");
    kept.values = vec![Value::tombstone("old"), Value::string("new", "value")];
    kept.inherit_class = true;
    delta.root.create("Fresh").layer = LayerSemantics::SupersedeTree;
    delta.root.create("Local").layer = LayerSemantics::SupersedeLocal;
    let cases = [
        ("empty", Hive::empty("ROOT"), WriteOptions::default()),
        ("full 1.5 (lh, big data)", full_hive(5), WriteOptions::default()),
        ("full 1.3 (lf, no big data)", full_hive(3), WriteOptions::default()),
        ("full 1.5 with li leaves", full_hive(5), WriteOptions { leaf_kind: Some(LeafKind::Li) }),
        ("differencing", delta, WriteOptions::default()),
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (what, hive, options))| {
            let path = dir.join(format!("hive{i}"));
            std::fs::write(&path, hive.to_bytes_with(options).unwrap()).unwrap();
            (what.to_string(), hive, path)
        })
        .collect()
}

#[test]
fn every_reader_sees_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let hives = written_hives(dir.path());
    for reader in READERS {
        // hivexml gives up on a whole hive when a value has no data cell (how Windows stores
        // tombstone values), so it does not read the differencing hive; python3-hivex does.
        let readable: Vec<_> =
            hives.iter().filter(|(what, ..)| !(reader == "hivexml" && what == "differencing")).collect();
        let paths: Vec<&Path> = readable.iter().map(|(_, _, p)| p.as_path()).collect();
        let seen = read_with(reader, &paths);
        for ((what, hive, _), seen) in readable.iter().zip(&seen) {
            assert_same(reader, what, seen, &expected(hive));
        }
    }
}

#[test]
fn winlayer_reads_back_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    for (what, hive, path) in written_hives(dir.path()) {
        let read = Hive::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(expected(&read), expected(&hive), "{what}");
        assert_eq!(read.layered, hive.layered, "{what}");
        // Writing what was read gives the same bytes: the layout depends only on the tree.
        if !what.contains("li") {
            assert!(read.to_bytes().unwrap() == std::fs::read(&path).unwrap(), "{what}: rewritten bytes differ");
        }
    }
}

#[test]
fn output_is_deterministic_and_compact() {
    let a = full_hive(5).to_bytes().unwrap();
    assert_eq!(a, full_hive(5).to_bytes().unwrap());
    // Cells are packed: little of the hive bins is left free.
    let (mut free, mut at) = (0, 4096);
    while at < a.len() {
        let bin_end = at + u32::from_le_bytes(a[at + 8..at + 12].try_into().unwrap()) as usize;
        let mut cell = at + 32;
        while cell < bin_end {
            let size = i32::from_le_bytes(a[cell..cell + 4].try_into().unwrap());
            free += size.max(0) as usize;
            cell += size.unsigned_abs() as usize;
        }
        at = bin_end;
    }
    assert!(free * 10 < a.len(), "{free} of {} bytes free", a.len());
    let empty = Hive::empty("ROOT").to_bytes().unwrap();
    assert_eq!(empty.len(), 8192, "a base block and one hive bin");
}

/// The empty hive Windows wrote (`reg load` + `reg unload`), read, then written again with
/// the same root name, security and time: the hive bins come out byte for byte the same,
/// but for two fields Windows leaves unspecified.
#[test]
fn windows_made_empty_hive() {
    let original = std::fs::read(testdata("windows-empty-hive.dat")).unwrap();
    let hive = Hive::parse(&original).unwrap();
    assert_eq!(hive.root.name, "TempEmpty_DEFAULT");
    assert_eq!(hive.minor_version, 3);
    assert!(hive.root.subkeys.is_empty() && hive.root.values.is_empty());
    let sddl = winlayer_core::security::SecurityDescriptor::from_bytes(hive.root.security.as_deref().unwrap())
        .unwrap()
        .to_sddl();
    assert!(sddl.starts_with("O:BAG:S-1-5-21-"), "{sddl}");
    for reader in READERS {
        let seen = &read_with(reader, &[&testdata("windows-empty-hive.dat")])[0];
        assert_same(reader, "the Windows-made hive", seen, &expected(&hive));
    }

    let rewritten = hive.to_bytes().unwrap();
    assert_eq!(rewritten.len(), original.len());
    let mut differing: Vec<usize> = (4096..original.len()).filter(|&i| original[i] != rewritten[i]).collect();
    // Root key node at 0x20 (+4 for its size field): byte 12 is the access bits (2: accessed
    // since boot; ours 0), bytes 16..20 the parent, meaningless for a root (ours 0xffffffff).
    let node = 4096 + 0x20 + 4;
    differing.retain(|&i| i != node + 12 && !(node + 16..node + 20).contains(&i));
    assert!(differing.is_empty(), "hive bins differ at file offsets {differing:x?}");
}

/// Hives written by hivex (through python3-hivex, onto the Windows-made hive): winlayer reads
/// the keys and values hivex reads.
#[test]
fn hives_written_by_hivex() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hivex.dat");
    let script = r#"
import sys, hivex
h = hivex.Hivex(sys.argv[1], write=True)
root = h.root()
def u16(s): return (s + "\0").encode("utf-16-le")
t = h.node_add_child(root, "Types")
h.node_set_values(t, [
    {"key": "", "t": 1, "value": u16("default")},
    {"key": "sz", "t": 1, "value": u16("hello")},
    {"key": "expand", "t": 2, "value": u16("%TEMP%")},
    {"key": "multi", "t": 7, "value": u16("a") + u16("bc") + b"\0\0"},
    {"key": "dword", "t": 4, "value": (0x12345678).to_bytes(4, "little")},
    {"key": "qword", "t": 11, "value": (2**40 + 3).to_bytes(8, "little")},
    {"key": "binary", "t": 3, "value": bytes(range(200))},
    {"key": "none", "t": 0, "value": b"\1\2\3"},
    {"key": "large", "t": 3, "value": bytes(i % 251 for i in range(40000))},
])
many = h.node_add_child(root, "Many")
for i in range(600):
    c = h.node_add_child(many, "K%04d" % i)
    h.node_set_value(c, {"key": "n", "t": 4, "value": i.to_bytes(4, "little")})
deep = root
for i in range(20):
    deep = h.node_add_child(deep, "D%d" % i)
h.commit(sys.argv[2])
"#;
    let python = std::env::var("WINLAYER_SYSTEM_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let status = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(testdata("windows-empty-hive.dat"))
        .arg(&out)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "writing a hive with python3-hivex (Debian package python3-hivex) failed");

    let hive = Hive::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(hive.root.find("Many").unwrap().subkeys.len(), 600);
    assert_eq!(hive.root.find("Types").unwrap().value("large").unwrap().data.len(), 40000);
    let ours = expected(&hive);
    for reader in ["hivex", "dissect", "libregf"] {
        assert_same(reader, "the hivex-written hive", &read_with(reader, &[&out])[0], &ours);
    }
}
