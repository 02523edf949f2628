//! winlayer as a Unix tool, checked the way a newcomer meets it: output modes from the umask,
//! nothing left behind by an interrupted run, `-` where the format allows it, one-line errors
//! naming the file once, exit status 2 for input that cannot be read, and the warnings about
//! what Windows' importer would do differently.
#![cfg(unix)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_winlayer");

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN).args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap()
}

fn ok(args: &[&str], dir: &Path) -> Output {
    let out = run(args, dir);
    assert!(out.status.success(), "winlayer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs winlayer under `umask`.
fn with_umask(umask: &str, args: &[&str], dir: &Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "winlayer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn python() -> Command {
    Command::new(std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into()))
}

fn generate(out: &Path, args: &[&str]) {
    let status = python()
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-layer.py"))
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "gen-layer.py {args:?}");
}

fn tree(d: &Path) {
    std::fs::create_dir_all(d.join("tree/app")).unwrap();
    std::fs::write(d.join("tree/app/tool.exe"), b"MZ tool").unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success());
}

/// Waits until `dir` holds something (the run's temporaries), at most 20 s.
fn wait_for_files(dir: &Path, child: &mut Child) {
    let started = Instant::now();
    while names(dir).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it wrote anything");
        assert!(started.elapsed() < Duration::from_secs(20), "nothing appeared in {}", dir.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `cim create --from -` with standard input held open: it has made its temporaries and waits.
fn waiting_cim_create(out: &Path) -> (Child, std::process::ChildStdin) {
    let mut child = Command::new(BIN)
        .args(["cim", "create", "--from", "-", "c.cim"])
        .current_dir(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    wait_for_files(out, &mut child);
    (child, stdin)
}

#[test]
fn outputs_get_the_mode_the_umask_gives() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    tree(d);
    std::fs::create_dir(d.join("cims")).unwrap();
    for args in [
        &["tar", "from-dir", "tree", "-o", "a.tar"][..],
        &["tar", "normalize", "a.tar", "-o", "b.tar"],
        &["hive", "create", "h.hive"],
        &["vhdx", "create", "--size", "8MiB", "d.vhdx"],
        &["cim", "create", "--from", "a.tar", "cims/c.cim"],
        &["cim", "export", "cims/c.cim", "-o", "e.tar"],
        &["makebaselayer", "--from", "tree", "-o", "m.tar"],
        &["import", "-i", "m.tar", "L", "--cim", "cims/i.cim"],
    ] {
        with_umask("027", args, d);
    }
    for file in ["a.tar", "b.tar", "h.hive", "d.vhdx", "e.tar", "m.tar", "L/Hives"] {
        let want = if d.join(file).is_dir() { 0o750 } else { 0o640 };
        assert_eq!(mode(&d.join(file)), want, "{file} under umask 027");
    }
    assert_eq!(mode(&d.join("L")), 0o750, "the layer directory under umask 027");
    for file in names(&d.join("cims")) {
        assert_eq!(mode(&d.join("cims").join(&file)), 0o640, "{file} under umask 027");
    }
    // In place: the file keeps the mode a new file gets, whatever the temporary had.
    std::fs::set_permissions(d.join("b.tar"), std::fs::Permissions::from_mode(0o644)).unwrap();
    with_umask("022", &["tar", "normalize", "b.tar", "-o", "b.tar"], d);
    assert_eq!(mode(&d.join("b.tar")), 0o644);
}

#[test]
fn sigint_and_sigterm_remove_what_the_run_made() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let (mut child, stdin) = waiting_cim_create(&out);
    signal(&child, "INT");
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(2), "ends as SIGINT ends a process: {status}");
    assert_eq!(names(&out), Vec::<String>::new(), "nothing left in the output directory");

    // tar normalize: its temporary appears when it writes (gzip makes that take a while).
    let layer = t.path().join("big.tar");
    generate(&layer, &["--profile", "base", "--files", "400", "--mib", "48"]);
    let mut child = Command::new(BIN)
        .args(["tar", "normalize", layer.to_str().unwrap(), "--gzip", "-o", "n.tar.gz"])
        .current_dir(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_files(&out, &mut child);
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(15), "{status}");
    assert_eq!(names(&out), Vec::<String>::new());
}

#[test]
fn what_a_killed_run_leaves_is_recognised_and_removed_by_the_next() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    tree(d);
    ok(&["tar", "from-dir", "tree", "-o", "a.tar"], d);
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let (mut child, stdin) = waiting_cim_create(&out);
    let pid = child.id();
    signal(&child, "KILL");
    child.wait().unwrap();
    drop(stdin);
    let left = names(&out);
    assert!(!left.is_empty() && left.iter().all(|n| n.starts_with(&format!(".winlayer-{pid}-"))), "{left:?}");
    let next = ok(&["cim", "create", "--from", "../a.tar", "c.cim"], &out);
    let said = String::from_utf8_lossy(&next.stderr);
    assert!(said.contains(&format!("removed {} temporary file(s) an interrupted run left", left.len())), "{said}");
    let now = names(&out);
    assert!(now.iter().all(|n| !n.starts_with('.')), "{now:?}");
    assert!(now.contains(&"c.cim".to_string()));
}

#[test]
fn dash_works_where_the_format_allows_and_says_why_not_elsewhere() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // A VHDX written to standard output and read back from standard input.
    let disk = ok(&["vhdx", "create", "--size", "8MiB", "--seed", "x", "-"], d).stdout;
    let from_stdin = |args: &[&str]| {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(d)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&disk).unwrap();
        child.wait_with_output().unwrap()
    };
    let checked = from_stdin(&["vhdx", "check", "-"]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("0 error(s)"));
    let info: serde_json::Value = serde_json::from_slice(&from_stdin(&["vhdx", "info", "--json", "-"]).stdout).unwrap();
    assert_eq!(info["virtual_size"], 8 << 20);
    ok(&["vhdx", "create", "--size", "8MiB", "--seed", "x", "file.vhdx"], d);
    assert_eq!(std::fs::read(d.join("file.vhdx")).unwrap(), disk, "the same bytes as to a file");
    from_stdin(&["vhdx", "to-raw", "-", "raw.img"]);
    assert_eq!(std::fs::metadata(d.join("raw.img")).unwrap().len(), 8 << 20);
    // A CIM cannot be: its regions are found beside it.
    for args in [&["cim", "ls", "-"][..], &["cim", "create", "--from", "x.tar", "-"]] {
        let out = run(args, d);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "winlayer: a CIM cannot be standard input or output: its region files sit beside the .cim and are found by name; give its path\n"
        );
    }
    assert!(!d.join("-").exists());
}

/// stderr of a failing run: one line, starting "winlayer: ".
fn one_error(args: &[&str], dir: &Path) -> String {
    let out = run(args, dir);
    assert_eq!(out.status.code(), Some(2), "winlayer {args:?}");
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.starts_with("winlayer: ") && text.ends_with('\n') && text.lines().count() == 1, "{args:?}: {text:?}");
    text.trim_end().strip_prefix("winlayer: ").unwrap().to_string()
}

#[test]
fn errors_say_what_is_wrong_with_which_file_once() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("empty"), b"").unwrap();
    let mut noise: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    noise[148..156].copy_from_slice(&[0x01, 0x7f, b'9', 0x1b, b'x', 0x02, 0x03, 0x04]); // the checksum field
    std::fs::write(d.join("random.bin"), &noise).unwrap();
    std::fs::create_dir_all(d.join("plain/etc")).unwrap();
    std::fs::write(d.join("plain/etc/hostname"), b"box\n").unwrap();
    assert!(
        Command::new("tar").args(["-C", "plain", "-cf", "linux.tar", "etc"]).current_dir(d).status().unwrap().success()
    );
    std::fs::create_dir(d.join("adir")).unwrap();

    assert_eq!(one_error(&["tar", "ls", "empty"], d), "empty: tar framing at byte 0: the input is empty");
    assert_eq!(
        one_error(&["tar", "normalize", "linux.tar", "-o", "o.tar"], d),
        "linux.tar: etc: top-level name \"etc\" is not Files, Hives or UtilityVM (entry at byte 0)"
    );
    assert_eq!(one_error(&["cim", "ls", "empty"], d), "empty: 0 bytes, shorter than the 72-byte header of a CIM file");
    assert_eq!(
        one_error(&["vhdx", "create", "--size", "100", "out.vhdx"], d),
        "out.vhdx: virtual size 100 is not a non-zero multiple of 512 bytes up to 64 TiB"
    );
    assert!(!d.join("out.vhdx").exists());
    let hive = one_error(&["hive", "dump", "random.bin"], d);
    assert!(hive.starts_with("random.bin: not a registry hive: signature bytes "), "{hive}");
    assert!(hive.is_ascii(), "{hive}");
    let tar = String::from_utf8(run(&["tar", "verify", "random.bin"], d).stdout).unwrap();
    assert!(
        tar.starts_with(
            "error: random.bin: tar framing at byte 0: checksum field (01 7f 39 1b 78 02 03 04) is not octal"
        ),
        "{tar}"
    );
    assert_eq!(
        one_error(&["cim", "create", "--from", "linux.tar", "adir"], d),
        "adir is a directory; name the .cim file to create (its regions are written beside it)"
    );
    assert_eq!(
        one_error(&["tar", "normalize", "empty", "-o", "adir"], d),
        "adir: is a directory; give the path of the file to write",
        "refused before the input is read (the input here is not even a tar)"
    );
    assert_eq!(
        one_error(&["tar", "from-dir", "plain", "-o", "missing/x.tar"], d),
        "missing/x.tar: its directory missing does not exist"
    );
    std::fs::write(d.join("bad.toml"), "root = [\n").unwrap();
    let serve = one_error(&["serve", "--config", "bad.toml"], d);
    assert!(serve.starts_with("bad.toml: ") && !serve.ends_with("invalid argument"), "{serve}");
    let serve = one_error(&["serve", "--root", "empty/root", "--address", "s.sock"], d);
    assert!(serve.contains("empty/root") && !serve.ends_with(": internal"), "{serve}");
    let serve = one_error(&["serve", "--mode", "cimfs", "--append-vhd-footer", "--print-config"], d);
    assert!(serve.contains("blockcim mode's settings, not cimfs mode's"), "{serve}");
    let config =
        ok(&["serve", "--mode", "blockcim", "--unformatted-scratch", "--enable-layer-integrity", "--print-config"], d);
    let config = String::from_utf8(config.stdout).unwrap();
    assert!(
        config
            .lines()
            .next()
            .unwrap()
            .ends_with("--mode blockcim --root /var/lib/winlayer --enable-layer-integrity --unformatted-scratch"),
        "{config}"
    );
    // Human text, not Rust's debug form.
    tree(d);
    ok(&["cim", "create", "--from", "tree", "c.cim"], d);
    let info = String::from_utf8(ok(&["cim", "info", "c.cim"], d).stdout).unwrap();
    assert!(info.contains("(metadata, ") && !info.contains("Some("), "{info}");
}

#[test]
fn input_that_cannot_be_read_at_all_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("empty"), b"").unwrap();
    std::fs::write(d.join("random.bin"), vec![0x5a; 2 << 20]).unwrap();
    tree(d);
    ok(&["tar", "from-dir", "tree", "-o", "a.tar"], d);
    let tar = std::fs::read(d.join("a.tar")).unwrap();
    std::fs::write(d.join("truncated.tar"), &tar[..2048]).unwrap();
    for (args, code) in [
        (&["tar", "verify", "random.bin"][..], 2),
        (&["tar", "verify", "empty"], 2),
        (&["tar", "verify", "--json", "empty"], 2),
        (&["tar", "verify", "truncated.tar"], 1),
        (&["tar", "verify", "a.tar"], 0),
        (&["vhdx", "check", "empty"], 2),
        (&["vhdx", "check", "random.bin"], 2),
        (&["vhdx", "check", "missing.vhdx"], 2),
    ] {
        assert_eq!(run(args, d).status.code(), Some(code), "winlayer {args:?}");
    }
}

#[test]
fn a_plain_tar_is_refused_with_how_to_use_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("plain/etc")).unwrap();
    std::fs::write(d.join("plain/etc/hostname"), b"box\n").unwrap();
    assert!(
        Command::new("tar").args(["-C", "plain", "-cf", "linux.tar", "etc"]).current_dir(d).status().unwrap().success()
    );
    let said = one_error(&["makebaselayer", "--from", "linux.tar", "-o", "base.tar"], d);
    let how = "mkdir tree && tar -xf linux.tar -C tree && winlayer makebaselayer --from tree -o BASE.tar";
    assert!(said.contains("linux.tar is not a Windows layer tar") && said.contains(how), "{said}");
    // What it says works.
    std::fs::create_dir(d.join("tree")).unwrap();
    assert!(Command::new("tar").args(["-xf", "linux.tar", "-C", "tree"]).current_dir(d).status().unwrap().success());
    ok(&["makebaselayer", "--from", "tree", "-o", "base.tar"], d);
    let listing = String::from_utf8(ok(&["tar", "ls", "base.tar"], d).stdout).unwrap();
    assert!(listing.contains("Files/etc/hostname") && listing.contains("Files/Windows/System32/config/SYSTEM"));
}

/// A layer written by Python's tarfile with times Go's UnixNano cannot hold (FILETIME 0 and
/// the year 3000) and a directory named with a trailing '/' followed by its stream.
fn out_of_range_layer(path: &Path) {
    let script = r#"
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
def add(name, kind, data=b"", pax=None):
    i = tarfile.TarInfo(name)
    i.type, i.size, i.mtime = kind, len(data), 1600000000
    i.pax_headers = dict(pax or {}, **{"MSWINDOWS.fileattr": "16" if kind == tarfile.DIRTYPE else "32"})
    t.addfile(i, io.BytesIO(data))
add("Files", tarfile.DIRTYPE)
add("Files/old.txt", tarfile.REGTYPE, b"old", {"LIBARCHIVE.creationtime": "-11644473600", "atime": "1600000000", "ctime": "1600000000"})
add("Files/far.txt", tarfile.REGTYPE, b"far", {"atime": "32503680000", "ctime": "1600000000"})
add("Files/edge.txt", tarfile.REGTYPE, b"edge", {"LIBARCHIVE.creationtime": "-9223372036.8547758", "atime": "9223372036.8547758", "ctime": "1600000000"})
add("Files/d", tarfile.DIRTYPE)
add("Files/d:meta", tarfile.REGTYPE, b"stream")
t.close()
"#;
    assert!(python().arg("-c").arg(script).arg(path).status().unwrap().success());
}

#[test]
fn verify_warns_where_windows_importer_would_change_times_and_normalize_can_clamp_them() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    out_of_range_layer(&d.join("l.tar"));
    let report: serde_json::Value =
        serde_json::from_slice(&ok(&["tar", "verify", "--json", "l.tar"], d).stdout).unwrap();
    let warnings: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap_or("").to_string(), p["message"].as_str().unwrap().to_string()))
        .collect();
    let about = |path: &str| warnings.iter().find(|(p, _)| p == path).map(|(_, m)| m.clone());
    let old = about("Files/old.txt").expect("a warning naming Files/old.txt");
    assert!(old.contains("creation time 1601-01-01T00:00:00Z would arrive as 2185-07-21T"), "{old}");
    let far = about("Files/far.txt").expect("a warning naming Files/far.txt");
    assert!(far.contains("last-access time 3000-01-01T00:00:00Z"), "{far}");
    // -9223372036.8547758 s and 9223372036.8547758 s are the first and last 100 ns ticks of
    // Go's range: no warning.
    assert_eq!(about("Files/edge.txt"), None, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|(_, m)| m.contains("does not attach a `dir:stream` entry to a directory written as `dir/`")),
        "{warnings:?}"
    );

    ok(&["tar", "normalize", "l.tar", "-o", "plain.tar"], d);
    let kept: serde_json::Value = serde_json::from_slice(&ok(&["tar", "ls", "--json", "plain.tar"], d).stdout).unwrap();
    let created = |listing: &serde_json::Value, path: &str| {
        let e = listing.as_array().unwrap().iter().find(|e| e["path"] == path).unwrap().clone();
        (e["times"]["created"].as_str().unwrap().to_string(), e["times"]["accessed"].as_str().unwrap().to_string())
    };
    assert_eq!(created(&kept, "Files/old.txt").0, "1601-01-01T00:00:00Z", "without the flag nothing changes");
    let said = ok(&["tar", "normalize", "--clamp-times", "l.tar", "-o", "clamped.tar"], d);
    assert!(String::from_utf8_lossy(&said.stderr).contains("moved times of 2 entries"));
    let clamped: serde_json::Value =
        serde_json::from_slice(&ok(&["tar", "ls", "--json", "clamped.tar"], d).stdout).unwrap();
    assert_eq!(created(&clamped, "Files/old.txt").0, "1677-09-21T00:12:43.1452242Z");
    assert_eq!(created(&clamped, "Files/far.txt").1, "2262-04-11T23:47:16.8547758Z");
    let report: serde_json::Value =
        serde_json::from_slice(&ok(&["tar", "verify", "--json", "clamped.tar"], d).stdout).unwrap();
    assert_eq!(report["warnings"], 0, "{report}");
}

#[test]
fn run_sh_shows_the_build() {
    // A stand-in cargo on PATH records how run.sh calls it, and stops the script there.
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("cargo");
    std::fs::write(&fake, "#!/bin/sh\necho \"cargo $*\" >\"$RECORD\"\nexit 3\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let record = t.path().join("record");
    let script: PathBuf = [env!("CARGO_MANIFEST_DIR"), "../../scripts/run.sh"].iter().collect();
    let out = Command::new("bash")
        .arg(script)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .env("RECORD", &record)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let call = std::fs::read_to_string(&record).unwrap();
    assert!(call.starts_with("cargo build"), "{call}");
    assert!(!call.split_whitespace().any(|a| a == "-q" || a == "--quiet"), "the build runs quietly: {call}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("== cargo build"), "the build is announced");
}

#[test]
fn example_names_are_unique_across_the_workspace() {
    // Two examples of one name collide in target/debug/examples (cargo warns on every build).
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            if target["kind"].as_array().unwrap().iter().any(|k| k == "example") {
                let name = target["name"].as_str().unwrap().to_string();
                if let Some(other) = seen.insert(name.clone(), package["name"].clone()) {
                    panic!("example {name} is in both {other} and {}", package["name"]);
                }
            }
        }
    }
    assert!(!seen.is_empty());
}
