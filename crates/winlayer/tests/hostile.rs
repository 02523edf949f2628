//! Malicious and malformed layers: each is refused with its own clear message by `verify`
//! (exit 1) and by `normalize` (exit 2), and nothing is written anywhere.
// These tests drive the Linux build with Unix files (symlinks, FIFOs, inodes).
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output};

use wcow_tar::header::{BLOCK, HeaderBuilder, pax_record};

/// Builds tar bytes entry by entry, including broken ones.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    /// A layer that starts with a valid `Files` directory.
    fn layer() -> Self {
        let mut t = Tar::default();
        t.entry("Files", b'5', b"", "", &[("MSWINDOWS.fileattr", "16")]);
        t
    }

    fn pad(&mut self) {
        let n = (BLOCK - self.0.len() % BLOCK) % BLOCK;
        self.0.extend(std::iter::repeat_n(0u8, n));
    }

    fn pax(&mut self, records: &[(&str, &str)]) {
        let mut blob = Vec::new();
        for (k, v) in records {
            pax_record(&mut blob, k, v.as_bytes());
        }
        self.raw_pax(&blob);
    }

    fn raw_pax(&mut self, blob: &[u8]) {
        self.0.extend(HeaderBuilder::new(b"PaxHeaders.0/x", b'x', 0, blob.len() as u64, 0).finish());
        self.0.extend(blob);
        self.pad();
    }

    fn entry(&mut self, name: &str, typeflag: u8, data: &[u8], link: &str, records: &[(&str, &str)]) -> &mut Self {
        if !records.is_empty() {
            self.pax(records);
        }
        self.0.extend(
            HeaderBuilder::new(name.as_bytes(), typeflag, 0o644, data.len() as u64, 1_600_000_000)
                .linkname(link.as_bytes())
                .finish(),
        );
        self.0.extend(data);
        self.pad();
        self
    }

    fn file(&mut self, name: &str) -> &mut Self {
        self.entry(name, b'0', b"data", "", &[])
    }

    fn end(&mut self) -> Vec<u8> {
        self.0.extend([0u8; 2 * BLOCK]);
        self.0.clone()
    }
}

fn winlayer(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winlayer")).args(args).current_dir(dir).output().unwrap()
}

fn cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let dir = |records: &[(&str, &str)]| Tar::layer().entry("Files/d", b'5', b"", "", records).end();
    let mut truncated_data = Tar::layer().entry("Files/big", b'0', &[1u8; 2000], "", &[]).end();
    truncated_data.truncate(3 * BLOCK + 700);
    let mut truncated_header = Tar::layer().file("Files/a").end();
    truncated_header.truncate(2 * BLOCK + 100);
    let mut no_end = Tar::layer().file("Files/a").end();
    no_end.truncate(no_end.len() - 2 * BLOCK);
    let mut bad_checksum = Tar::layer().file("Files/a").end();
    bad_checksum[2 * BLOCK + 3] ^= 1;
    let mut past_end = Tar::layer().end();
    past_end.truncate(2 * BLOCK);
    past_end.extend(HeaderBuilder::new(b"Files/huge", b'0', 0o644, 1 << 40, 0).finish());
    past_end.extend([0u8; 2 * BLOCK]);
    let mut absurd_pax = Tar::layer().end();
    absurd_pax.truncate(2 * BLOCK);
    absurd_pax.extend(HeaderBuilder::new(b"PaxHeaders.0/x", b'x', 0, 1 << 33, 0).finish());
    absurd_pax.extend([0u8; 2 * BLOCK]);
    let mut malformed_pax = Tar::layer();
    malformed_pax.raw_pax(b"99 path=Files/x\n");
    malformed_pax.file("Files/x");
    let mut no_equals = Tar::layer();
    no_equals.raw_pax(b"12 pathFile\n");
    no_equals.file("Files/x");
    let mut global = Tar::layer();
    global.0.extend(HeaderBuilder::new(b"pax_global_header", b'g', 0, 0, 0).finish());
    vec![
        ("dotdot", Tar::layer().file("Files/../../etc/passwd").end(), "'..' components are not allowed"),
        ("absolute", Tar::layer().file("/Files/x").end(), "absolute path"),
        ("drive letter", Tar::layer().file("C:/Windows/x").end(), "drive-letter path"),
        ("backslash", Tar::layer().file("Files\\evil").end(), "backslash"),
        ("nul in name", Tar::layer().entry("Files/ok", b'0', b"", "", &[("path", "Files/a\0b")]).end(), "contains NUL"),
        ("control char", Tar::layer().file("Files/bell\x07").end(), "control character U+0007"),
        ("forbidden char", Tar::layer().file("Files/what?").end(), "contains '?'"),
        ("device name", Tar::layer().file("Files/con.txt").end(), "reserved Windows device name"),
        ("trailing dot", Tar::layer().file("Files/name.").end(), "ends with a dot or space"),
        ("case duplicate", Tar::layer().file("Files/readme").file("Files/README").end(), "differ only in case"),
        ("exact duplicate", Tar::layer().file("Files/a").file("Files/a").end(), "duplicate"),
        (
            "stream without owner",
            Tar::layer().file("Files/nobody:stream").end(),
            "stream of Files/nobody, which has no entry",
        ),
        ("top level", Tar::layer().file("Windows/x").end(), "is not Files, Hives or UtilityVM"),
        (
            "hard link escaping",
            Tar::layer().file("Files/a").entry("Files/l", b'1', b"", "../../etc/shadow", &[]).end(),
            "hard link target",
        ),
        ("hard link absolute", Tar::layer().entry("Files/l", b'1', b"", "/etc/shadow", &[]).end(), "hard link target"),
        (
            "hard link to hives",
            Tar::layer().entry("Files/l", b'1', b"", "Hives/x", &[]).end(),
            "must lie under Files/ or UtilityVM/Files/",
        ),
        ("missing parent", Tar::layer().file("Files/no/such/dir/x").end(), "has no entry before this one"),
        (
            "write through link",
            Tar::layer()
                .entry("Files/j", b'2', b"", "C:\\x", &[("MSWINDOWS.fileattr", "1040")])
                .file("Files/j/x")
                .end(),
            "is a directory link",
        ),
        (
            "relative junction",
            Tar::layer()
                .entry("Files/j", b'2', b"", "rel", &[("MSWINDOWS.fileattr", "1040"), ("MSWINDOWS.mountpoint", "1")])
                .end(),
            "junction must point to an absolute path",
        ),
        (
            "whiteout in hives",
            Tar::layer().entry("Hives", b'5', b"", "", &[]).file("Hives/.wh.System_Delta").end(),
            "invalid tombstone",
        ),
        ("bad fileattr", dir(&[("MSWINDOWS.fileattr", "lots")]), "is not a decimal 32-bit attribute value"),
        ("fileattr overflow", dir(&[("MSWINDOWS.fileattr", "4294967296")]), "is not a decimal 32-bit attribute value"),
        ("dir without dir attribute", dir(&[("MSWINDOWS.fileattr", "32")]), "without FILE_ATTRIBUTE_DIRECTORY"),
        ("bad base64", dir(&[("MSWINDOWS.rawsd", "!!!not base64")]), "MSWINDOWS.rawsd: bad base64"),
        ("bad descriptor", dir(&[("MSWINDOWS.rawsd", "AQAAgBQAAAA=")]), "security descriptor"),
        ("bad sddl", dir(&[("MSWINDOWS.sd", "O:BAG:SYD:(A;;FA;;;NOBODY)")]), "SDDL"),
        ("bad ea base64", dir(&[("MSWINDOWS.xattr.NAME", "%%%")]), "MSWINDOWS.xattr.NAME: bad base64"),
        ("bad time", dir(&[("atime", "yesterday")]), "atime: 'yesterday' is not a PAX time"),
        ("time before 1601", dir(&[("LIBARCHIVE.creationtime", "-99999999999")]), "outside the range"),
        ("malformed pax length", malformed_pax.end(), "PAX record length"),
        ("pax without equals", no_equals.end(), "PAX record without '='"),
        ("pax global header", global.end(), "PAX global header"),
        ("absurd pax size", absurd_pax, "larger than the"),
        ("size past the end", past_end, "bytes remain in the archive"),
        ("truncated data", truncated_data, "bytes remain in the archive"),
        ("truncated header", truncated_header, "truncated inside a header"),
        ("no end blocks", no_end, "without its end-of-archive blocks"),
        ("bad checksum", bad_checksum, "checksum mismatch"),
        ("device node", Tar::layer().entry("Files/dev", b'3', b"", "", &[]).end(), "have no Windows form"),
        ("symlink with data", Tar::layer().entry("Files/s", b'2', b"oops", "x", &[]).end(), "must have size 0"),
        (
            "sparse",
            Tar::layer().entry("Files/s", b'0', b"", "", &[("GNU.sparse.size", "10")]).end(),
            "PAX sparse files",
        ),
        ("empty input", Vec::new(), "the input is empty"),
        ("not a tar", b"This is plain text, not an archive at all.".repeat(20), "not a tar header"),
    ]
}

#[test]
fn every_hostile_layer_is_refused_with_its_own_message_and_nothing_written() {
    let mut messages = std::collections::HashSet::new();
    for (name, bytes, expected) in cases() {
        // Seeds for the fuzz corpus (fuzz/corpus/tar_reader) come from these cases.
        if let Some(corpus) = std::env::var_os("WINLAYER_WRITE_CORPUS") {
            std::fs::write(Path::new(&corpus).join(format!("hostile-{}", name.replace(' ', "-"))), &bytes).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.tar"), &bytes).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();

        let verify = winlayer(&["tar", "verify", "in.tar"], dir.path());
        let report = String::from_utf8_lossy(&verify.stdout);
        // 2 when the input is not a tar from its first block on (`tar verify --help`).
        let unreadable = matches!(name, "empty input" | "not a tar");
        assert_eq!(verify.status.code(), Some(if unreadable { 2 } else { 1 }), "{name}: verify should fail\n{report}");
        assert!(report.contains(expected), "{name}: verify should say {expected:?}, said:\n{report}");

        let normalize = winlayer(&["tar", "normalize", "in.tar", "-o", "out/layer.tar"], dir.path());
        let stderr = String::from_utf8_lossy(&normalize.stderr);
        assert_eq!(normalize.status.code(), Some(2), "{name}: normalize should fail\n{stderr}");
        assert!(stderr.contains(expected), "{name}: normalize should say {expected:?}, said:\n{stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().collect();
        assert!(left.is_empty(), "{name}: normalize left {left:?} behind");
        let first_error = report.lines().find(|l| l.starts_with("error")).unwrap_or_default().to_string();
        messages.insert(first_error);
    }
    assert!(messages.len() > 35, "each case should have its own message");
}

#[test]
fn verify_lists_every_problem_not_just_the_first() {
    let bytes = Tar::layer()
        .file("Files/CON")
        .file("Files/a")
        .file("Files/A")
        .file("Files/x:s")
        .entry("Files/d", b'5', b"", "", &[("MSWINDOWS.fileattr", "bad"), ("MSWINDOWS.rawsd", "***")])
        .end();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.tar"), bytes).unwrap();
    let out = winlayer(&["tar", "verify", "--json", "in.tar"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let messages: Vec<String> =
        report["problems"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap().to_string()).collect();
    for needle in [
        "reserved Windows device name",
        "differ only in case",
        "stream of Files/x",
        "MSWINDOWS.fileattr",
        "MSWINDOWS.rawsd",
    ] {
        assert!(messages.iter().any(|m| m.contains(needle)), "missing {needle:?} in {messages:#?}");
    }
    let errors = report["problems"].as_array().unwrap().iter().filter(|p| p["severity"] == "error");
    assert!(errors.clone().all(|p| p["path"].is_string()), "every error names its entry");
    assert_eq!(report["errors"].as_u64().unwrap() as usize, errors.count());
}

#[test]
fn from_dir_refuses_trees_windows_cannot_hold_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/aux.log"), b"").unwrap();
    std::fs::write(tree.join("a:b"), b"").unwrap();
    std::fs::write(tree.join("Same"), b"").unwrap();
    std::fs::write(tree.join("same"), b"").unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", tree.join("sub/escape")).unwrap();
    let fifo = Command::new("mkfifo").arg(tree.join("pipe")).status().unwrap();
    assert!(fifo.success());
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let out = winlayer(&["tar", "from-dir", "tree", "-o", "out/layer.tar"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in
        ["reserved Windows device name", "contains ':'", "climbs above the root", "sockets, FIFOs and devices"]
    {
        assert!(stderr.contains(needle), "missing {needle:?} in {stderr}");
    }
    assert_eq!(std::fs::read_dir(dir.path().join("out")).unwrap().count(), 0);
}
