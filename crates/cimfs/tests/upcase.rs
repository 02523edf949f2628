//! The upcase table winlayer writes equals the `$UpCase` file ntfs-3g's `mkntfs` writes, an
//! independent reproduction of Windows' NTFS table.

use std::process::Command;

use cimfs::upcase::Upcase;

fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian package ntfs-3g) is needed for this test: {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn table_matches_mkntfs() {
    let t = tempfile::tempdir().unwrap();
    let image = t.path().join("ntfs.img");
    std::fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
    let image = image.to_str().unwrap();
    run("mkntfs", &["-F", "-q", "-f", image]);
    // MFT record 10 is $UpCase.
    let theirs = run("ntfscat", &["-i", "10", image]);
    let ours = Upcase::windows().to_le_bytes();
    assert_eq!(theirs.len(), ours.len());
    let differ: Vec<usize> =
        (0..ours.len() / 2).filter(|&c| ours[2 * c..2 * c + 2] != theirs[2 * c..2 * c + 2]).collect();
    assert!(differ.is_empty(), "{} code units differ, first U+{:04X}", differ.len(), differ[0]);
}
