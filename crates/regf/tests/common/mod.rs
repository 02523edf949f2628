//! Shared test helpers: the independent readers (through tests/readers.py), the canonical
//! form of a hive tree they are compared in, and the test hives.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use regf::{Hive, Key, REG_NONE, Value};
use serde_json::{Value as Json, json};
use winlayer_core::FileTime;
use winlayer_core::security::SecurityDescriptor;

/// Every independent reader tests/readers.py drives.
pub const READERS: [&str; 6] = ["hivex", "hivexml", "regipy", "python-registry", "dissect", "libregf"];

/// A file of the regf tests' data (`crates/regf/tests/data`, described in its README); through
/// ../regf so that other crates including this helper find it too.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../regf/tests/data")).join(name)
}

/// Runs one independent reader over hives; returns what it saw for each, in order.
pub fn read_with(reader: &str, hives: &[&Path]) -> Vec<Json> {
    // python3-hivex is a Debian package for the system interpreter; the others live in the
    // virtual environment scripts/install-deps.sh makes.
    let python = match reader {
        "hivex" | "hivexml" => std::env::var("WINLAYER_SYSTEM_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into()),
        _ => std::env::var("WINLAYER_PYTHON").unwrap_or_else(|_| "python3".into()),
    };
    // Through ../regf so that other crates including this helper find the script too.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../regf/tests/readers.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(reader)
        .args(hives)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} for the {reader} reader: {e}"));
    assert!(
        out.status.success(),
        "the {reader} reader failed on {hives:?} (is it installed? scripts/install-deps.sh installs \
         hivex, regipy, python-registry, dissect.regf and libregf-python):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader script prints JSON")
}

/// The canonical data form readers.py prints.
fn canon(data_type: u32, data: &[u8]) -> Json {
    let utf16 =
        || String::from_utf16(&data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>());
    match (data_type, data.len()) {
        (1 | 2, _) => {
            let text = utf16().expect("UTF-16 test strings");
            json!(text.strip_suffix('\0').unwrap_or(&text))
        }
        (7, _) => {
            json!(utf16().expect("UTF-16 test strings").split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>())
        }
        (4, 4) => json!(u32::from_le_bytes(data.try_into().unwrap())),
        (11, 8) => json!(u64::from_le_bytes(data.try_into().unwrap())),
        _ => json!(data.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// What a reader should see in a hive built from `hive` (computed from the tree given to the
/// writer, not from winlayer's reader).
pub fn expected(hive: &Hive) -> Json {
    let mut keys = serde_json::Map::new();
    let default_sd = SecurityDescriptor::from_sddl(regf::DEFAULT_ROOT_SDDL).unwrap().to_bytes();
    let mut stack: Vec<(String, &Key, Vec<u8>)> = vec![("\\".into(), &hive.root, default_sd)];
    while let Some((path, key, inherited)) = stack.pop() {
        let sd = key.security.as_deref().map(<[u8]>::to_vec).unwrap_or(inherited);
        let mut values: Vec<_> = key.values.iter().collect();
        values.sort_by(|a, b| a.name.cmp(&b.name));
        let mut tombstones: Vec<_> = key.values.iter().filter(|v| v.tombstone).map(|v| v.name.clone()).collect();
        tombstones.sort();
        keys.insert(
            path.clone(),
            json!({
                "values": values.iter().map(|v| {
                    let t = if v.tombstone { REG_NONE } else { v.data_type };
                    json!([v.name, t, canon(t, &v.data)])
                }).collect::<Vec<_>>(),
                "timestamp": key.last_written.ticks(),
                "security": sd.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "layer_bits": key.layer.bits() | if key.inherit_class { 0x80 } else { 0 },
                "tombstones": tombstones,
                // Not a reader field: the values some readers misread (see `deviations`).
                "short_values": key.values.iter().filter(|v| (1..4).contains(&v.data.len())).map(|v| v.name.clone()).collect::<Vec<_>>(),
            }),
        );
        for sub in &key.subkeys {
            let child = if path == "\\" { format!("\\{}", sub.name) } else { format!("{path}\\{}", sub.name) };
            stack.push((child, sub, sd.clone()));
        }
    }
    json!({ "root": hive.root.name, "keys": keys })
}

/// Asserts a reader saw `expected`: the same root name and keys, every field the reader
/// reports equal (after setting aside the readers' own known deviations, see `deviations`).
pub fn assert_same(reader: &str, what: &str, seen: &Json, expected: &Json) {
    let (seen, expected) = (deviations(reader, seen, expected), deviations(reader, expected, expected));
    assert_eq!(seen["root"], expected["root"], "{reader} on {what}: root name");
    let (seen_keys, want_keys) = (seen["keys"].as_object().unwrap(), expected["keys"].as_object().unwrap());
    let missing: Vec<_> = want_keys.keys().filter(|k| !seen_keys.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = seen_keys.keys().filter(|k| !want_keys.contains_key(*k)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{reader} on {what}: keys missing {missing:?}, unexpected {extra:?}"
    );
    for (path, record) in seen_keys {
        for (field, value) in record.as_object().unwrap() {
            let want = &want_keys[path][field];
            assert!(value == want, "{reader} on {what}: key {path}, {field}: {}", difference(value, want));
        }
    }
}

/// Removes from `json` (what a reader saw, or what it should see) what the reader is known to
/// get wrong, as found by these tests:
/// * libregf reads 1 to 3 bytes of data stored inline from the end of the 4-byte field, where
///   the spec, hivex and the other readers take them from its start; python-registry returns
///   all 4 bytes of the field for strings that short;
/// * regipy decodes names stored compressed as ASCII, where Windows stores Latin-1, so names
///   with characters U+0080 to U+00FF come out as U+FFFD.
fn deviations(reader: &str, json: &Json, expected: &Json) -> Json {
    let mut json = json.clone();
    let latin1 = |s: &str| s.chars().any(|c| ('\u{80}'..='\u{ff}').contains(&c) || c == '\u{fffd}');
    let keys = json["keys"].as_object_mut().unwrap();
    if reader == "regipy" {
        keys.retain(|path, _| !latin1(path));
    }
    for (path, record) in keys.iter_mut() {
        let short = &expected["keys"][path]["short_values"];
        let is_short = |name: &Json| short.as_array().is_some_and(|names| names.contains(name));
        record["values"].as_array_mut().unwrap().retain(|v| match reader {
            "libregf" | "python-registry" => !is_short(&v[0]),
            "regipy" => !latin1(v[0].as_str().unwrap()),
            _ => true,
        });
    }
    json
}

/// Where two JSON texts first differ, with some context.
fn difference(seen: &Json, want: &Json) -> String {
    let (a, b): (Vec<char>, Vec<char>) = (seen.to_string().chars().collect(), want.to_string().chars().collect());
    let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let cut = |s: &[char]| s[at.saturating_sub(120).min(s.len())..(at + 80).min(s.len())].iter().collect::<String>();
    format!("first difference at character {at}:\n  saw  …{}…\n  want …{}…", cut(&a), cut(&b))
}

pub fn sd(sddl: &str) -> Arc<[u8]> {
    SecurityDescriptor::from_sddl(sddl).unwrap().to_bytes().into()
}

pub fn time(unix: i64) -> FileTime {
    FileTime::from_unix(unix, 0).unwrap()
}

/// A hive with every common value type, big data, a key with 1200 subkeys (an index root over
/// several leaves), names that sort differently upper- and lower-cased, non-Latin names,
/// a deep chain, a class, and keys with their own and with inherited security.
pub fn full_hive(minor_version: u32) -> Hive {
    let mut hive = Hive { minor_version, last_written: time(1_700_000_000), ..Hive::empty("FULL") };
    let root = &mut hive.root;
    root.last_written = time(1_700_000_001);
    let types = root.create("Types");
    types.last_written = time(1_700_000_002);
    types.values = vec![
        Value::string("", "the default value"),
        Value::string("sz", "hello"),
        Value::string("text", "Gr\u{fc}\u{df}e \u{65e5}\u{672c}"),
        Value::string("empty_sz", ""),
        Value::expand_string("expand", "%SystemRoot%\\system32"),
        Value::multi_string("multi", &["one", "two", "three"]),
        Value::multi_string::<&str>("empty_multi", &[]),
        Value::dword("dword", 0xDEAD_BEEF),
        Value::qword("qword", 0x0123_4567_89AB_CDEF),
        Value::binary("binary", (0..=255).collect()),
        Value::binary("small", vec![1, 2]),
        Value::binary("empty_bin", vec![]),
        Value::new("none", REG_NONE, vec![1, 2, 3, 4, 5]),
        Value::dword("caf\u{e9}", 1),
        Value::dword("\u{540d}\u{524d}", 2),
    ];
    let big = root.create("Big");
    big.values = vec![
        Value::binary("exact", pattern(16344)),
        Value::binary("just_over", pattern(16345)),
        Value::binary("large", pattern(100_000)),
        Value::string("long_text", &"abcdefghij".repeat(2000)),
    ];
    let many = root.create("Many");
    for i in 0..1200 {
        many.create(&format!("Sub{i:04}")).set_value(Value::dword("i", i));
    }
    for name in ["a_b", "AB", "aa", "Zz", "_x", "[y", "\u{e9}t\u{e9}", "\u{540d}"] {
        many.create(name);
    }
    let mut deep = root.create("Deep");
    for level in 0..40 {
        deep = deep.create(&format!("L{level}"));
    }
    deep.set_value(Value::string("bottom", "reached"));
    let secure = root.create("Secure");
    secure.security = Some(sd("O:SYG:SYD:P(A;CI;KA;;;SY)"));
    secure.create("Inherits").set_value(Value::dword("x", 1));
    let other = root.create("Secure2");
    other.security = Some(sd("O:SYG:SYD:P(A;CI;KA;;;SY)"));
    let classy = root.create("Classy");
    classy.class = Some("MyClass".encode_utf16().flat_map(u16::to_le_bytes).collect());
    hive
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
