//! offreg.dll against the test double.

mod common;

use std::path::Path;

use common::{Double, hex};
use serde_json::json;
use win32::offreg::{OfflineRegistry, Value};

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
}

#[test]
fn builds_and_merges_hives() {
    let d = Double::new();
    d.script(json!({"ORGetValue": {"type": 1, "data": hex(&utf16z("20348"))}}));
    let reg = OfflineRegistry::load(&d.source()).unwrap();
    let hive = reg.create_hive().unwrap();
    let key = hive.create_key(r"Microsoft\Windows NT\CurrentVersion").unwrap();
    key.set_value("CurrentBuild", &Value::String("20348".into())).unwrap();
    key.set_value("UBR", &Value::Dword(2031)).unwrap();
    key.set_value("Big", &Value::Qword(1 << 40)).unwrap();
    key.set_value("List", &Value::MultiString(vec!["a".into(), "b".into()])).unwrap();
    key.set_value("Path", &Value::ExpandString("%SystemRoot%".into())).unwrap();
    key.set_value("Raw", &Value::Binary(vec![1, 2])).unwrap();
    key.set_value("Odd", &Value::Other { kind: 0x99, data: vec![7] }).unwrap();
    assert_eq!(key.value(None, "CurrentBuild").unwrap(), Some(Value::String("20348".into())));
    key.delete_value("Odd").unwrap();
    drop(key);
    hive.delete_key("Old").unwrap();
    let opened = reg.open_hive(Path::new(r"C:\l\Hives\Software_Delta")).unwrap();
    let sub = opened.open_key("Classes").unwrap();
    drop(sub);
    let merged = reg.merge_hives(&[&hive, &opened]).unwrap();
    merged.save(Path::new(r"C:\l\Hives\SOFTWARE_BASE"), 10, 0).unwrap();
    drop((merged, opened, hive));

    assert_eq!(d.args_of("ORCreateHive"), [json!({"handle": "hive1"})]);
    assert_eq!(
        d.args_of("ORCreateKey"),
        [json!({
            "key": "hive1", "subkey": r"Microsoft\Windows NT\CurrentVersion", "class": null, "options": 0,
            "security_null": true, "disposition_null": false, "handle": "key1",
        })]
    );
    let set: Vec<_> = d
        .args_of("ORSetValue")
        .into_iter()
        .map(|a| (a["name"].clone(), a["type"].clone(), a["data"].clone()))
        .collect();
    assert_eq!(
        set,
        [
            (json!("CurrentBuild"), json!(1), json!(hex(&utf16z("20348")))),
            (json!("UBR"), json!(4), json!("ef070000")),
            (json!("Big"), json!(11), json!("0000000000010000")),
            (json!("List"), json!(7), json!(hex(&[utf16z("a"), utf16z("b"), vec![0, 0]].concat()))),
            (json!("Path"), json!(2), json!(hex(&utf16z("%SystemRoot%")))),
            (json!("Raw"), json!(3), json!("0102")),
            (json!("Odd"), json!(0x99), json!("07")),
        ]
    );
    assert_eq!(
        d.args_of("ORGetValue"),
        [json!({"key": "key1", "subkey": null, "name": "CurrentBuild", "size_in": 256, "data_null": false})]
    );
    assert_eq!(d.args_of("ORDeleteValue"), [json!({"key": "key1", "name": "Odd"})]);
    assert_eq!(d.args_of("ORDeleteKey"), [json!({"key": "hive1", "subkey": "Old"})]);
    assert_eq!(d.args_of("OROpenHive"), [json!({"path": r"C:\l\Hives\Software_Delta", "handle": "hive2"})]);
    assert_eq!(d.args_of("OROpenKey"), [json!({"key": "hive2", "subkey": "Classes", "handle": "key2"})]);
    assert_eq!(d.args_of("ORMergeHives"), [json!({"hives": ["hive1", "hive2"], "handle": "hive3"})]);
    assert_eq!(
        d.args_of("ORSaveHive"),
        [json!({"hive": "hive3", "path": r"C:\l\Hives\SOFTWARE_BASE", "os_major": 10, "os_minor": 0})]
    );
    // Keys close with ORCloseKey, hives with ORCloseHive, each once.
    assert_eq!(d.args_of("ORCloseKey"), [json!({"key": "key1"}), json!({"key": "key2"})]);
    assert_eq!(
        d.args_of("ORCloseHive"),
        [json!({"hive": "hive3"}), json!({"hive": "hive2"}), json!({"hive": "hive1"})]
    );
    d.assert_covered("offreg.dll");
}

#[test]
fn values_grow_their_buffer_and_missing_ones_are_none() {
    let d = Double::new();
    let big = vec![0xAB; 1000];
    d.script(json!({"ORGetValue": {"type": 3, "data": hex(&big)}}));
    let reg = OfflineRegistry::load(&d.source()).unwrap();
    let hive = reg.create_hive().unwrap();
    assert_eq!(hive.value(Some("Sub"), "Blob").unwrap(), Some(Value::Binary(big)));
    let sizes: Vec<_> = d.args_of("ORGetValue").iter().map(|a| (a["size_in"].clone(), a["subkey"].clone())).collect();
    assert_eq!(sizes, [(json!(256), json!("Sub")), (json!(1000), json!("Sub"))]);

    let d = Double::new();
    d.script(json!({"ORGetValue": {"missing": true}}));
    let reg = OfflineRegistry::load(&d.source()).unwrap();
    assert_eq!(reg.create_hive().unwrap().value(None, "Nope").unwrap(), None);
}

#[test]
fn keys_are_not_hives() {
    let d = Double::new();
    let reg = OfflineRegistry::load(&d.source()).unwrap();
    let hive = reg.create_hive().unwrap();
    let key = hive.create_key("K").unwrap();
    assert!(key.save(Path::new("x"), 10, 0).unwrap_err().to_string().contains("is a key, not a hive"));
    assert!(reg.merge_hives(&[&hive, &key]).is_err());
    assert!(d.args_of("ORSaveHive").is_empty() && d.args_of("ORMergeHives").is_empty());
}
