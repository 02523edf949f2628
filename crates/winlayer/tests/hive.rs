//! The `winlayer hive` commands end to end: created and merged hives checked with the
//! independent hivexml (Debian libhivex-bin), JSON round trips, determinism, clear errors.

use std::path::Path;
use std::process::{Command, Output};

fn winlayer(args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winlayer"))
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = winlayer(args, dir, &[]);
    assert!(out.status.success(), "winlayer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// What hivexml (an independent reader) prints for a hive.
fn hivexml(hive: &Path) -> String {
    let out = Command::new("hivexml")
        .arg(hive)
        .output()
        .unwrap_or_else(|e| panic!("cannot run hivexml ({e}): it is in the Debian package libhivex-bin"));
    assert!(out.status.success(), "hivexml {}: {}", hive.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn create_empty_hives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["hive", "create", "SYSTEM", "--root-name", "SYSTEM"], d);
    ok(&["hive", "create", "SYSTEM2", "--root-name", "SYSTEM"], d);
    let bytes = std::fs::read(d.join("SYSTEM")).unwrap();
    assert_eq!(bytes.len(), 8192);
    assert_eq!(bytes, std::fs::read(d.join("SYSTEM2")).unwrap(), "the same input gives the same bytes");
    assert!(hivexml(&d.join("SYSTEM")).contains("<node name=\"SYSTEM\" root=\"1\">"));
    let text = ok(&["hive", "dump", "SYSTEM"], d);
    assert!(text.starts_with("hive \"SYSTEM\": format 1.5, 1 keys, 0 values"), "{text}");
    assert!(text.contains("security O:BAG:SYD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)"), "{text}");
}

const SPEC: &str = r#"{"root": "SOFTWARE", "keys": [
  {"path": "\\Vendor\\App", "values": [
    {"name": "", "type": "REG_SZ", "data": "default"},
    {"name": "Version", "type": "REG_DWORD", "data": 3},
    {"name": "Path", "type": "REG_EXPAND_SZ", "data": "%ProgramFiles%\\App"},
    {"name": "List", "type": "REG_MULTI_SZ", "data": ["a", "b"]},
    {"name": "Blob", "type": "REG_BINARY", "hex": "00ff10"},
    {"name": "Max", "type": "REG_QWORD", "data": 18446744073709551615},
    {"name": "Odd", "type": "0x00001234", "hex": "0102030405"}
  ]},
  {"path": "\\Vendor\\Locked", "security": "O:SYG:SYD:P(A;CI;KA;;;SY)", "class": "MyClass"},
  {"path": "\\Vendor\\OwnerFirst", "security_hex": "0100048014000000000000000000000024000000010200000000000520000000200200000200080000000000"}
]}"#;

#[test]
fn json_round_trip_and_hivexml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("spec.json"), SPEC).unwrap();
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    assert!(winlayer(&["hive", "create", "a.hive", "--from", "spec.json"], d, &epoch).status.success());
    let json = ok(&["hive", "dump", "--json", "a.hive"], d);
    std::fs::write(d.join("dump.json"), &json).unwrap();
    ok(&["hive", "create", "b.hive", "--from", "dump.json"], d);
    assert_eq!(std::fs::read(d.join("a.hive")).unwrap(), std::fs::read(d.join("b.hive")).unwrap(), "dump → create");
    assert!(json.contains("\"last_written\":\"2023-11-14T22:13:20Z\""), "{json}");
    // A descriptor laid out unlike SDDL's encoding keeps its exact bytes beside its SDDL.
    assert!(json.contains("\"security\":\"O:BAD:\",\"security_hex\":\"0100048014"), "{json}");

    let xml = hivexml(&d.join("a.hive"));
    for needle in [
        "<node name=\"SOFTWARE\" root=\"1\">",
        "<node name=\"App\">",
        "<value type=\"string\" default=\"1\" value=\"default\">",
        "<value type=\"int32\" key=\"Version\" value=\"3\">",
        "<value type=\"expand\" key=\"Path\" value=\"%ProgramFiles%\\App\">",
        "<value type=\"string-list\" key=\"List\"><string>a</string><string>b</string>",
        "<value type=\"binary\" encoding=\"base64\" key=\"Blob\" value=\"AP8Q\">",
        "<value type=\"int64\" key=\"Max\" value=\"-1\">",
        "<value type=\"unknown\" encoding=\"base64\" key=\"Odd\" value=\"AQIDBAU=\">",
        "<node name=\"Locked\">",
    ] {
        assert!(xml.contains(needle), "hivexml output lacks {needle}:\n{xml}");
    }
}

/// The Windows-made hive (the regf tests' fixture) survives dump --json → create → dump --json
/// unchanged.
#[test]
fn windows_made_hive_round_trips_through_json() {
    let fixture = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../regf/tests/data/windows-empty-hive.dat"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = ok(&["hive", "dump", "--json", fixture.to_str().unwrap()], d);
    assert!(json.contains("\"version\": \"1.3\"") && json.contains("TempEmpty_DEFAULT"), "{json}");
    std::fs::write(d.join("w.json"), &json).unwrap();
    ok(&["hive", "create", "w.hive", "--from", "w.json"], d);
    assert_eq!(ok(&["hive", "dump", "--json", "w.hive"], d), json);
}

#[test]
fn merge_a_layer_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("spec.json"), SPEC).unwrap();
    std::fs::write(
        d.join("d1.json"),
        r#"{"keys": [
            {"path": "\\Vendor\\App", "values": [{"name": "Version", "type": "REG_DWORD", "data": 4}, {"name": "Blob", "tombstone": true}]},
            {"path": "\\Vendor\\Locked", "layer": "tombstone"},
            {"path": "\\Vendor\\New", "values": [{"name": "x", "type": "REG_SZ", "data": "y"}]}
        ]}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("d2.json"),
        r#"{"keys": [{"path": "\\Vendor\\App", "layer": "supersede-local", "values": [{"name": "Only", "type": "REG_DWORD", "data": 1}]}]}"#,
    )
    .unwrap();
    ok(&["hive", "create", "base", "--from", "spec.json"], d);
    ok(&["hive", "create", "d1", "--delta", "--from", "d1.json"], d);
    ok(&["hive", "create", "d2", "--delta", "--from", "d2.json"], d);
    assert!(ok(&["hive", "dump", "d1"], d).contains("[\\Vendor\\Locked]  1601-01-01T00:00:00Z  (tombstone)"));

    ok(&["hive", "merge", "base", "d1", "-o", "m1"], d);
    let m1 = hivexml(&d.join("m1"));
    assert!(m1.contains("key=\"Version\" value=\"4\"") && !m1.contains("key=\"Blob\""), "{m1}");
    assert!(!m1.contains("Locked") && m1.contains("<node name=\"New\">"), "{m1}");
    assert!(m1.contains("key=\"List\""), "untouched values stay: {m1}");

    ok(&["hive", "merge", "base", "d1", "d2", "-o", "m2"], d);
    ok(&["hive", "merge", "m1", "d2", "-o", "m2-stepwise"], d);
    assert_eq!(std::fs::read(d.join("m2")).unwrap(), std::fs::read(d.join("m2-stepwise")).unwrap());
    let m2 = hivexml(&d.join("m2"));
    assert!(m2.contains("key=\"Only\"") && !m2.contains("key=\"Version\"") && !m2.contains("key=\"List\""), "{m2}");
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("junk"), vec![7u8; 9000]).unwrap();
    let fails = |args: &[&str], words: &[&str]| {
        let out = winlayer(args, d, &[]);
        assert_eq!(out.status.code(), Some(2), "winlayer {args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        for w in words {
            assert!(err.contains(w), "winlayer {args:?}: {err:?} does not mention {w:?}");
        }
    };
    fails(&["hive", "dump", "junk"], &["junk", "not a registry hive", "regf"]);
    fails(&["hive", "dump", "missing"], &["missing"]);
    std::fs::write(
        d.join("bad.json"),
        r#"{"keys": [{"path": "\\K", "values": [{"name": "v", "type": "REG_DWORD", "data": "x"}]}]}"#,
    )
    .unwrap();
    fails(&["hive", "create", "out", "--from", "bad.json"], &["key \"\\\\K\", value \"v\"", "does not fit REG_DWORD"]);
    std::fs::write(d.join("layered.json"), r#"{"keys": [{"path": "\\K", "layer": "tombstone"}]}"#).unwrap();
    fails(&["hive", "create", "out", "--from", "layered.json"], &["--delta"]);
    fails(&["hive", "create", "out", "--format-version", "1.9"], &["1.9"]);
    assert!(!d.join("out").exists(), "nothing is written on failure");
}
