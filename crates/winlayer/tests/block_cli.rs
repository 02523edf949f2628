//! `cim create --block`, `cim merge --block`, `cim mount --block` and `cim umount --volume`
//! where no block CIM can be made: on Linux they fail at once saying block CIMs need Windows;
//! under wine (scripts/suites/win32.sh) they get as far as loading cimfs.dll, which wine does
//! not have, and say so. Either way nothing is written.

use std::path::Path;
use std::process::Command;

fn fails(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_winlayer")).args(args).current_dir(dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "winlayer {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn block_commands_fail_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("src")).unwrap();
    std::fs::write(d.join("src").join("a.txt"), b"a").unwrap();
    std::fs::create_dir(d.join("1")).unwrap();
    let before = listing(d);
    let volume = "11111111-2222-3333-4444-555555555555";
    let commands: [&[&str]; 5] = [
        &["cim", "create", "--block", "1/layer.vhd", "--from", "src", "--integrity", "--vhd-footer"],
        &["cim", "merge", "--block", "1/merged.vhd", "2/layer.vhd", "1/layer.vhd"],
        &["cim", "mount", "--block", "1/merged.vhd/merged.cim", "--layer", "2/layer.vhd", "--volume", volume],
        &["cim", "mount", "--block", "1/layer.vhd", "--verified", "--volume", volume],
        &["cim", "umount", "--volume", volume],
    ];
    for args in commands {
        let err = fails(args, d);
        if cfg!(windows) {
            assert!(err.contains("cimfs.dll"), "{args:?}: {err}");
        } else {
            assert!(err.contains("block CIMs need Windows: their on-disk format is not public"), "{args:?}: {err}");
        }
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_eq!(listing(d), before, "{args:?} wrote something");
        assert!(listing(&d.join("1")).is_empty(), "{args:?} wrote into 1/");
    }
}

#[test]
fn misplaced_block_options_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    // A merge of one layer, --integrity without --block, --block with OUT.cim, a mount without a volume.
    for args in [
        &["cim", "merge", "--block", "m.vhd", "1/layer.vhd"][..],
        &["cim", "create", "--from", "src", "--integrity", "out.cim"],
        &["cim", "create", "--from", "src", "--block", "l.vhd", "out.cim"],
        &["cim", "mount", "--block", "l.vhd"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_winlayer")).args(args).current_dir(tmp.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:") || err.contains("give --block FILE"), "{args:?}: {err}");
    }
    assert!(listing(tmp.path()).is_empty());
}
