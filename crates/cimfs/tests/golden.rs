//! Golden files pin the byte layout of two small CIMs (an image and a fork of it): any change
//! to the format shows up as a diff of tests/golden/*.txt. Regenerate deliberately with
//! `WINLAYER_BLESS=1 cargo test -p cimfs --test golden`.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::*;
use winlayer_core::{EntryKind, FileTime, Metadata, attrs};

/// A hex dump of every file of the image directory, the upcase table (65536 u16 values)
/// replaced by its digest.
fn dump(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = String::new();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        writeln!(out, "== {} ({} bytes)", path.file_name().unwrap().to_string_lossy(), bytes.len()).unwrap();
        let upcase = cimfs::upcase::Upcase::windows().to_le_bytes();
        let skip = bytes.windows(upcase.len()).position(|w| w == upcase.as_slice());
        let mut at = 0;
        while at < bytes.len() {
            if Some(at) == skip {
                writeln!(out, "{at:08x}  <upcase table, {} bytes, blake3 {}>", upcase.len(), blake3::hash(&upcase))
                    .unwrap();
                at += upcase.len();
                continue;
            }
            let end = (at + 16).min(bytes.len()).min(skip.filter(|&s| s > at).unwrap_or(usize::MAX));
            let hex: Vec<String> = bytes[at..end].iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "{at:08x}  {}", hex.join(" ")).unwrap();
            at = end;
        }
    }
    out
}

fn check(name: &str, got: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.txt"));
    if std::env::var_os("WINLAYER_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing (WINLAYER_BLESS=1 writes it)", path.display()));
    if want != got {
        let first = want.lines().zip(got.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{name}: byte layout changed at line {}:\n  golden: {}\n  now:    {}",
            first + 1,
            want.lines().nth(first).unwrap_or(""),
            got.lines().nth(first).unwrap_or("")
        );
    }
}

fn fixed(attributes: u32, secs: i64) -> Metadata {
    let mut m = Metadata::with_times(attributes, FileTime::from_unix(secs, 500_000_000).unwrap());
    m.security = Some(std::sync::Arc::from(
        winlayer_core::security::SecurityDescriptor::from_sddl("O:BAG:SYD:(A;;FA;;;BA)").unwrap().to_bytes(),
    ));
    m
}

#[test]
fn small_image_and_fork_layouts_are_pinned() {
    let t = tempfile::tempdir().unwrap();
    let mut base = Layer::default();
    base.push("Files", EntryKind::Directory, fixed(attrs::DIRECTORY, 1), b"");
    base.push("Files/a.txt", EntryKind::File { size: 5 }, fixed(attrs::ARCHIVE, 2), b"hello");
    base.stream("Files/a.txt", "s", b"stream");
    base.push("Files/Big", EntryKind::File { size: 5000 }, fixed(attrs::ARCHIVE | attrs::READONLY, 3), &[0xAB; 5000]);
    base.push("Files/empty", EntryKind::File { size: 0 }, fixed(attrs::HIDDEN, 4), b"");
    let mut with_ea = fixed(attrs::SYSTEM, 5);
    with_ea.eas = vec![winlayer_core::ea::ExtendedAttribute { name: b"E".to_vec(), value: b"v".to_vec() }];
    base.push("Files/ea", EntryKind::File { size: 1 }, with_ea, b"e");
    base.link("Files/link", "Files/a.txt");
    base.symlink("Files/sym", "a.txt", false, false);
    base.push("Hives", EntryKind::Directory, fixed(attrs::DIRECTORY, 6), b"");
    create_layer(&base, &t.path().join("base.cim"), None);
    check("base", dump(t.path()));

    let mut top = Layer::default();
    top.push("Files", EntryKind::Directory, fixed(attrs::DIRECTORY, 7), b"");
    top.whiteout("Files/empty");
    top.push("Files/a.txt", EntryKind::File { size: 3 }, fixed(attrs::ARCHIVE, 8), b"new");
    top.push("Files/added", EntryKind::File { size: 5 }, fixed(attrs::ARCHIVE, 9), b"hello");
    create_layer(&top, &t.path().join("top.cim"), Some(&t.path().join("base.cim")));
    check("fork", dump(t.path()));
}

/// A layer of `files` files whose sizes cross every path the writer takes (empty, small-data
/// region, page-aligned data, read whole up to 1 MiB, streamed beyond), with duplicate
/// content, all-zero sparse files, alternate streams and hard links; `seed` varies it, file
/// names start with `prefix`.
fn generated(seed: u64, files: usize, dirs: usize, prefix: &str) -> Layer {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut layer = Layer::default();
    layer.dir("Files");
    for d in 0..dirs {
        layer.dir(&format!("Files/d{d}"));
    }
    let sizes = [0, 1, 100, 4095, 4096, 5000, 65_536, 300_000, 1 << 20, (1 << 20) + 1, 2_500_000];
    let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..files {
        let path = format!("Files/d{}/{prefix}{i}.bin", next() as usize % dirs);
        let pick = next();
        let data = match pick % 16 {
            0 if !kept.is_empty() => kept[next() as usize % kept.len()].1.clone(),
            1 => {
                let len = sizes[next() as usize % sizes.len()];
                layer.file_with(&path, &vec![0; len], attrs::ARCHIVE | attrs::SPARSE_FILE, &[]);
                continue;
            }
            _ => {
                let len = if pick % 20 == 0 { sizes[next() as usize % sizes.len()] } else { next() as usize % 20_000 };
                (0..len).map(|_| next() as u8).collect()
            }
        };
        layer.file(&path, &data);
        match pick % 23 {
            0 => {
                layer.stream(&path, "meta", &data[..data.len().min(700)]);
            }
            1 => {
                layer.link(&format!("{path}.link"), &path);
            }
            _ => {}
        }
        if data.len() < 400_000 {
            kept.push((path, data));
        }
    }
    layer
}

/// Digests of every file of an image directory.
fn digests(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = String::new();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        writeln!(out, "{name} {} blake3 {}", bytes.len(), blake3::hash(&bytes)).unwrap();
    }
    out
}

/// Images of generated layers (a base and a fork sharing much of its content) are pinned by
/// digest: a faster writer must write exactly the bytes the previous one wrote.
#[test]
fn generated_images_are_pinned_by_digest() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.cim");
    let layer = generated(41, 2000, 40, "f");
    create_layer(&layer, &base, None);
    // New files, and every tenth file of the base again (its content found in the parent).
    let mut top = generated(43, 500, 40, "g");
    let files = layer.entries.iter().filter(|(e, _)| matches!(e.kind, EntryKind::File { .. }));
    top.entries.extend(files.step_by(10).cloned());
    create_layer(&top, &t.path().join("top.cim"), Some(&base));
    check("generated", digests(t.path()));
}
