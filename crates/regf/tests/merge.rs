//! Merging differencing hives: a base, then a delta, then another delta on the result (as a
//! layer chain does), with keys and values added, changed and deleted; every merged hive is
//! written, then read by independent readers and compared with the tree each step should give.

mod common;

use std::path::Path;

use common::*;
use regf::{Hive, Key, LayerSemantics, Value, merge_bytes};

fn keyed(path: &str, root: &mut Key, values: Vec<Value>) {
    root.create(path).values = values;
}

fn layered<'a>(root: &'a mut Key, path: &str, semantics: LayerSemantics) -> &'a mut Key {
    let key = root.create(path);
    key.layer = semantics;
    key
}

fn base() -> Hive {
    let mut hive = Hive { last_written: time(1_600_000_000), ..Hive::empty("SOFTWARE") };
    let r = &mut hive.root;
    keyed("App", r, vec![Value::string("Version", "1.0"), Value::dword("Mode", 1), Value::string("Old", "x")]);
    keyed("App\\Plugins\\A", r, vec![Value::dword("v", 1)]);
    keyed("App\\Plugins\\B", r, vec![Value::dword("v", 2)]);
    keyed("Remove\\Me\\Deep", r, vec![Value::binary("blob", pattern(40_000))]);
    keyed("Keep", r, vec![Value::multi_string("list", &["a", "b"])]);
    r.create("Keep").last_written = time(100);
    r.create("App").last_written = time(200);
    keyed("Replace", r, vec![Value::dword("a", 1), Value::dword("b", 2)]);
    keyed("Replace\\Child", r, vec![Value::dword("c", 3)]);
    keyed("Local", r, vec![Value::dword("a", 1)]);
    keyed("Local\\Sub", r, vec![Value::string("s", "kept")]);
    for i in 0..900 {
        keyed(&format!("Many\\K{i:03}"), r, vec![Value::dword("i", i)]);
    }
    hive
}

fn delta1() -> Hive {
    let mut hive = Hive { last_written: time(1_650_000_000), ..Hive::empty_delta("DELTA1") };
    let r = &mut hive.root;
    // Values changed, deleted and added in a key that merges.
    keyed("app", r, vec![Value::string("Version", "2.0"), Value::tombstone("OLD"), Value::qword("New", 5)]);
    r.create("app").last_written = time(300);
    layered(r, "App\\Plugins\\B", LayerSemantics::Tombstone);
    keyed("App\\Plugins\\C", r, vec![Value::dword("v", 3)]);
    layered(r, "Remove", LayerSemantics::Tombstone);
    let replace = layered(r, "Replace", LayerSemantics::SupersedeTree);
    replace.values = vec![Value::dword("z", 26)];
    layered(r, "Replace\\Fresh", LayerSemantics::SupersedeTree).values = vec![Value::string("f", "new")];
    layered(r, "Local", LayerSemantics::SupersedeLocal).values = vec![Value::dword("b", 2)];
    keyed("Added\\Nested", r, vec![Value::expand_string("path", "%ProgramFiles%\\x")]);
    layered(r, "NeverExisted", LayerSemantics::Tombstone);
    for i in (0..900).step_by(3) {
        layered(r, &format!("Many\\K{i:03}"), LayerSemantics::Tombstone);
    }
    for i in 900..1000 {
        keyed(&format!("Many\\K{i:03}"), r, vec![Value::dword("i", i)]);
    }
    hive
}

/// What base + delta1 gives, spelled out.
fn after_delta1() -> Hive {
    let mut hive = Hive { last_written: time(1_650_000_000), ..Hive::empty("SOFTWARE") };
    let r = &mut hive.root;
    keyed("app", r, vec![Value::string("Version", "2.0"), Value::dword("Mode", 1), Value::qword("New", 5)]);
    r.create("app").last_written = time(300);
    r.create("Keep").last_written = time(100);
    keyed("app\\Plugins\\A", r, vec![Value::dword("v", 1)]);
    keyed("app\\Plugins\\C", r, vec![Value::dword("v", 3)]);
    keyed("Keep", r, vec![Value::multi_string("list", &["a", "b"])]);
    keyed("Replace", r, vec![Value::dword("z", 26)]);
    keyed("Replace\\Fresh", r, vec![Value::string("f", "new")]);
    keyed("Local", r, vec![Value::dword("b", 2)]);
    keyed("Local\\Sub", r, vec![Value::string("s", "kept")]);
    keyed("Added\\Nested", r, vec![Value::expand_string("path", "%ProgramFiles%\\x")]);
    for i in (0..1000).filter(|i| i % 3 != 0 || *i >= 900) {
        keyed(&format!("Many\\K{i:03}"), r, vec![Value::dword("i", i)]);
    }
    hive
}

fn delta2() -> Hive {
    let mut hive = Hive { last_written: time(1_700_000_000), ..Hive::empty_delta("DELTA2") };
    let r = &mut hive.root;
    keyed("App", r, vec![Value::tombstone("version"), Value::dword("Mode", 2)]);
    keyed("App\\Plugins\\A\\Deeper", r, vec![Value::binary("b", vec![9; 10])]);
    // A key deleted below comes back, with new content.
    keyed("Remove", r, vec![Value::dword("Back", 1)]);
    layered(r, "Added", LayerSemantics::Tombstone);
    layered(r, "Local\\Sub", LayerSemantics::Tombstone);
    hive
}

/// What (base + delta1) + delta2 gives, spelled out.
fn after_delta2() -> Hive {
    let mut hive = after_delta1();
    hive.last_written = time(1_700_000_000);
    let r = &mut hive.root;
    r.subkeys.retain(|k| k.name != "Added");
    let app = r.subkey_mut("app").unwrap();
    app.name = "App".into();
    app.values = vec![Value::dword("Mode", 2), Value::qword("New", 5)];
    keyed("App\\Plugins\\A\\Deeper", r, vec![Value::binary("b", vec![9; 10])]);
    keyed("Remove", r, vec![Value::dword("Back", 1)]);
    r.subkey_mut("Local").unwrap().subkeys.clear();
    hive
}

/// Reads a merged hive with winlayer and independent readers and compares it with the tree it
/// should be.
fn check(step: &str, merged: &Path, want: &Hive) {
    let read = Hive::parse(&std::fs::read(merged).unwrap()).unwrap();
    assert!(!read.layered, "{step}: a merged hive is an ordinary hive");
    assert_eq!(read.last_written, want.last_written, "{step}");
    assert_eq!(expected(&read), expected(want), "{step}: winlayer's reader");
    for reader in ["hivex", "dissect", "libregf"] {
        assert_same(reader, step, &read_with(reader, &[merged])[0], &expected(want));
    }
}

#[test]
fn base_delta_delta_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("base"), base().to_bytes().unwrap()).unwrap();
    std::fs::write(path("delta1"), delta1().to_bytes().unwrap()).unwrap();
    std::fs::write(path("delta2"), delta2().to_bytes().unwrap()).unwrap();

    let merged1 = merge_bytes(&std::fs::read(path("base")).unwrap(), &std::fs::read(path("delta1")).unwrap()).unwrap();
    std::fs::write(path("merged1"), &merged1).unwrap();
    check("base + delta1", &path("merged1"), &after_delta1());

    let merged2 = merge_bytes(&merged1, &std::fs::read(path("delta2")).unwrap()).unwrap();
    std::fs::write(path("merged2"), &merged2).unwrap();
    check("base + delta1 + delta2", &path("merged2"), &after_delta2());

    // Merging is deterministic.
    assert_eq!(merged2, merge_bytes(&merged1, &std::fs::read(path("delta2")).unwrap()).unwrap());
}

#[test]
fn security_and_class_follow_the_upper_layer() {
    let mut base = Hive::empty("ROOT");
    let k = base.root.create("K");
    k.security = Some(sd("O:BAG:SYD:P(A;CI;KA;;;BA)"));
    k.class = Some(b"L\0o\0w\0".to_vec());
    k.last_written = time(1_000);
    let mut delta = Hive::empty_delta("D");
    let k = delta.root.create("K");
    k.security = Some(sd("O:SYG:SYD:P(A;CI;KA;;;SY)"));
    k.inherit_class = true;
    k.last_written = time(500);
    let merged = Hive::parse(&merge_bytes(&base.to_bytes().unwrap(), &delta.to_bytes().unwrap()).unwrap()).unwrap();
    let k = merged.root.find("K").unwrap();
    assert_eq!(k.security, Some(sd("O:SYG:SYD:P(A;CI;KA;;;SY)")));
    assert_eq!(k.class.as_deref(), Some(&b"L\0o\0w\0"[..]), "inherited from below");
    assert_eq!(k.last_written, time(1_000), "the newer of the two");
    assert!(!k.inherit_class && k.layer == LayerSemantics::Merge);
}

#[test]
fn windows_made_hive_as_base() {
    let base = std::fs::read(testdata("windows-empty-hive.dat")).unwrap();
    let mut delta = Hive::empty_delta("D");
    delta.root.create("Software\\Vendor").set_value(Value::string("Installed", "yes"));
    let merged = Hive::parse(&merge_bytes(&base, &delta.to_bytes().unwrap()).unwrap()).unwrap();
    assert_eq!(merged.root.name, "TempEmpty_DEFAULT");
    let value = merged.root.find("Software\\Vendor").unwrap().value("installed").unwrap();
    assert_eq!(value, &Value::string("Installed", "yes"));
}
