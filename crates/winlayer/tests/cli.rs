//! The `winlayer tar` commands end to end: determinism, standard input and output, compression
//! checked with the independent gzip and zstd tools, and the JSON listing.
// These tests drive the Linux build with Unix files (symlinks, FIFOs, inodes).
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn winlayer(args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_winlayer"))
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "winlayer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn tool(cmd: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} ({e}): scripts/install-deps.sh installs it"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A small tree with a nested directory, a hard link and a symlink.
fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("tree/app/bin")).unwrap();
    std::fs::write(dir.join("tree/app/bin/tool.exe"), b"MZ tool").unwrap();
    std::fs::write(dir.join("tree/app/readme.txt"), vec![b'r'; 3000]).unwrap();
    std::fs::hard_link(dir.join("tree/app/bin/tool.exe"), dir.join("tree/app/bin/alias.exe")).unwrap();
    std::os::unix::fs::symlink("bin/tool.exe", dir.join("tree/app/current")).unwrap();
}

#[test]
fn from_dir_is_deterministic_and_clean() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    let sde = [("SOURCE_DATE_EPOCH", "1700000000")];
    winlayer(&["tar", "from-dir", "tree", "-o", "a.tar"], d, &sde);
    // Touching files after the epoch changes nothing: times are clamped.
    std::fs::write(d.join("tree/app/readme.txt"), vec![b'r'; 3000]).unwrap();
    winlayer(&["tar", "from-dir", "tree", "-o", "b.tar"], d, &sde);
    assert_eq!(std::fs::read(d.join("a.tar")).unwrap(), std::fs::read(d.join("b.tar")).unwrap());
    let report = winlayer(&["tar", "verify", "a.tar"], d, &[]);
    assert!(
        String::from_utf8_lossy(&report.stdout).ends_with("0 error(s), 0 warning(s)\n"),
        "{}",
        String::from_utf8_lossy(&report.stdout)
    );
    // The canonical form is a fixed point.
    winlayer(&["tar", "normalize", "a.tar", "-o", "c.tar"], d, &[]);
    assert_eq!(std::fs::read(d.join("a.tar")).unwrap(), std::fs::read(d.join("c.tar")).unwrap());
}

#[test]
fn standard_streams_and_compression_agree_with_gzip_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    winlayer(&["tar", "from-dir", "tree", "-o", "plain.tar"], d, &[("SOURCE_DATE_EPOCH", "1")]);
    let plain = std::fs::read(d.join("plain.tar")).unwrap();
    winlayer(&["tar", "normalize", "plain.tar", "-o", "layer.tar.gz", "--gzip"], d, &[]);
    winlayer(&["tar", "normalize", "plain.tar", "-o", "layer.tar.zst", "--zstd"], d, &[]);
    assert_eq!(tool("gzip", &["-dc", "layer.tar.gz"], d), plain, "gzip reads winlayer's gzip");
    assert_eq!(tool("zstd", &["-dcq", "layer.tar.zst"], d), plain, "zstd reads winlayer's zstd");
    // And winlayer reads what gzip and zstd write, from standard input, to standard output.
    tool("gzip", &["-k", "-9", "plain.tar"], d);
    tool("zstd", &["-q", "-19", "plain.tar", "-o", "by-zstd.tar.zst"], d);
    for input in ["plain.tar.gz", "by-zstd.tar.zst"] {
        let child = Command::new(env!("CARGO_BIN_EXE_winlayer"))
            .args(["tar", "normalize", "-", "-o", "-"])
            .current_dir(d)
            .stdin(std::fs::File::open(d.join(input)).unwrap())
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(child.status.success(), "{input}: {}", String::from_utf8_lossy(&child.stderr));
        assert_eq!(child.stdout, plain, "{input}");
    }
}

#[test]
fn json_listing_carries_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    winlayer(
        &["tar", "from-dir", "tree", "-o", "layer.tar", "--owner", "BU"],
        d,
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    let out = winlayer(&["tar", "ls", "--json", "layer.tar"], d, &[]);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let by_path = |p: &str| entries.iter().find(|e| e["path"] == p).unwrap_or_else(|| panic!("{p} missing"));
    let names: Vec<&str> = entries.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/app",
            "Files/app/bin",
            "Files/app/bin/alias.exe",
            "Files/app/bin/tool.exe",
            "Files/app/current",
            "Files/app/readme.txt",
            "Hives"
        ]
    );
    let tool = by_path("Files/app/bin/alias.exe");
    assert_eq!(tool["kind"], "file");
    assert_eq!(tool["size"], 7);
    assert_eq!(tool["attributes_hex"], "0x00000020");
    assert_eq!(tool["attribute_letters"], "A");
    assert_eq!(tool["times"]["modified"], "2023-11-14T22:13:20Z");
    assert_eq!(tool["security"]["sddl"], "O:BUG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)");
    assert_eq!(by_path("Files/app/bin/tool.exe")["kind"], "hardlink");
    assert_eq!(by_path("Files/app/bin/tool.exe")["target"], "Files/app/bin/alias.exe");
    assert_eq!(by_path("Files/app/current")["target"], "bin\\tool.exe");
    assert_eq!(by_path("Files/app/current")["attribute_letters"], "AL");
    assert!(by_path("Files/app")["security"]["sddl"].as_str().unwrap().starts_with("O:BUG:SYD:(A;OICI;FA;;;BA)"));
}
