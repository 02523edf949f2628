//! The project's layer generator (`scripts/gen-layer.py`) checked against what it claims: every
//! profile is a layer `winlayer tar verify` accepts without a warning, the same arguments give
//! the same bytes, its hives read the same with hivex (an independent reader) as with winlayer,
//! and a base layer and an app layer over it import as CIM container layers, the app's
//! differencing hives merged onto the base's.

#[path = "../../regf/tests/common/mod.rs"]
mod hives;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn generate(out: &Path, args: &[&str]) -> Vec<u8> {
    let python = std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-layer.py"))
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("running {python} (set WINLAYER_PYTHON): {e}"));
    assert!(status.success(), "gen-layer.py {args:?} failed");
    std::fs::read(out).unwrap()
}

fn winlayer(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winlayer")).args(args).current_dir(dir).output().unwrap()
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = winlayer(args, dir);
    assert!(out.status.success(), "winlayer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The files of a tar under `prefix`, extracted with GNU tar into `dir`.
fn extract(tar: &Path, prefix: &str, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("tar")
        .args(["--warning=no-unknown-keyword", "-xf"])
        .arg(tar)
        .arg("-C")
        .arg(dir)
        .arg(prefix)
        .status()
        .unwrap();
    assert!(status.success(), "tar -xf {} {prefix}", tar.display());
    let mut files: Vec<_> = std::fs::read_dir(dir.join(prefix)).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// hivex sees in every hive what winlayer's reader sees.
fn hivex_agrees(files: &[PathBuf]) {
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    for (file, seen) in files.iter().zip(hives::read_with("hivex", &paths)) {
        let hive = regf::Hive::parse(&std::fs::read(file).unwrap()).unwrap();
        hives::assert_same("hivex", &file.display().to_string(), &seen, &hives::expected(&hive));
    }
}

#[test]
fn every_profile_is_a_clean_deterministic_layer() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for profile in ["small", "base", "app"] {
        let args = ["--profile", profile, "--files", "250", "--mib", "2", "--seed", "5"];
        let tar = d.join(format!("{profile}.tar"));
        let first = generate(&tar, &args);
        assert_eq!(first, generate(&d.join("again.tar"), &args), "{profile}: same arguments, same bytes");
        assert_ne!(first, generate(&d.join("other.tar"), &["--profile", profile, "--files", "250", "--mib", "2"]));
        let report: serde_json::Value =
            serde_json::from_str(&ok(&["tar", "verify", "--json", tar.to_str().unwrap()], d)).unwrap();
        assert_eq!(report["problems"], serde_json::json!([]), "{profile}: {report}");
        let listing = ok(&["tar", "ls", tar.to_str().unwrap()], d);
        for kind in ["dir", "file", "stream", "hardlink", "symlink", "junction"] {
            assert!(listing.lines().any(|l| l.starts_with(kind)), "{profile} has a {kind}:\n{listing}");
        }
        assert_eq!(listing.lines().any(|l| l.starts_with("whiteout")), profile == "app", "{profile}: whiteouts");
        assert_eq!(listing.contains("UtilityVM/Files/EFI/Microsoft/Boot/BCD"), profile == "base");
    }
    // Compressed, to standard output: the gzip of the same tar, also deterministic.
    let python = std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into());
    let piped = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-layer.py"))
        .args(["--profile", "app", "--files", "250", "--mib", "2", "--seed", "5", "--gzip", "-o", "-"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(&piped.stdout[..2], b"\x1f\x8b");
    let file =
        generate(&d.join("app.tar.gz"), &["--profile", "app", "--files", "250", "--mib", "2", "--seed", "5", "--gzip"]);
    assert_eq!(piped.stdout, file);
    ok(&["tar", "normalize", "app.tar.gz", "-o", "from-gzip.tar"], d);
    ok(&["tar", "normalize", "app.tar", "-o", "from-plain.tar"], d);
    assert_eq!(std::fs::read(d.join("from-gzip.tar")).unwrap(), std::fs::read(d.join("from-plain.tar")).unwrap());
}

#[test]
fn generated_hives_are_valid_and_merge_on_import() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let base = d.join("base.tar");
    let app = d.join("app.tar");
    generate(&base, &["--profile", "base", "--files", "300", "--mib", "3", "--seed", "1"]);
    generate(&app, &["--profile", "app", "--files", "200", "--mib", "1", "--seed", "7"]);

    let config = extract(&base, "Files/Windows/System32/config", &d.join("x"));
    let names: Vec<_> = config.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"]);
    let mut all = config.clone();
    all.extend(
        extract(&base, "UtilityVM/Files/EFI/Microsoft/Boot", &d.join("x")).into_iter().filter(|p| p.ends_with("BCD")),
    );
    let deltas = extract(&app, "Hives", &d.join("y"));
    assert_eq!(deltas.len(), 5);
    for delta in &deltas {
        let bytes = std::fs::read(delta).unwrap();
        assert_eq!(
            u32::from_le_bytes(bytes[144..148].try_into().unwrap()),
            2,
            "{}: base block flag 0x2",
            delta.display()
        );
    }
    all.extend(deltas);
    hivex_agrees(&all);

    std::fs::create_dir(d.join("cims")).unwrap();
    ok(&["import", "--format", "cim", "-i", "base.tar", "L0", "--cim", "cims/base.cim"], d);
    ok(
        &[
            "import",
            "--format",
            "cim",
            "-i",
            "app.tar",
            "L1",
            "--cim",
            "cims/app.cim",
            "--layer",
            "L0",
            "--parent-cim",
            "cims/base.cim",
        ],
        d,
    );
    let merged = d.join("L1/Hives/SOFTWARE_BASE");
    hivex_agrees(std::slice::from_ref(&merged));
    let software = regf::Hive::parse(&std::fs::read(&merged).unwrap()).unwrap();
    let current = software.root.find("Microsoft\\Windows NT\\CurrentVersion").unwrap();
    assert!(current.value("ProductName").is_some(), "base values stay");
    assert!(current.value("InstallDate").is_none(), "the delta's tombstone deletes a base value");
    assert_eq!(current.value("UBR").unwrap().data, (2527u32 + 7).to_le_bytes(), "the delta changes a base value");
    assert!(software.root.find("Vendor\\App7").is_some(), "the delta adds a key");
    assert!(software.root.find("Microsoft\\Windows\\CurrentVersion\\Uninstall\\Legacy").is_none(), "a key tombstone");
    assert!(software.root.find("Classes\\CLSID").is_some(), "keys the delta does not name stay");
    let txt = software.root.find("Classes\\.txt").unwrap();
    assert!(txt.value("Content Type").is_none(), "supersede-local replaces the key's values");
    let update = software.root.find("Policies\\Microsoft\\Windows\\WindowsUpdate").unwrap();
    assert!(update.value("DisableWindowsUpdateAccess").is_some() && update.value("WUServer").is_none());
    assert!(update.subkeys.is_empty(), "supersede-tree replaces the subtree too");
    let system = regf::Hive::parse(&std::fs::read(d.join("L1/Hives/SYSTEM_BASE")).unwrap()).unwrap();
    assert!(system.root.find("ControlSet001\\Services\\AppSvc7").is_some());
    assert!(system.root.find("ControlSet001\\Services\\WinRM").is_some());
}
