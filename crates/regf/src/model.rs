//! The tree a hive holds: keys with values, subkeys, security and the layered-key markers of
//! differencing hives.

use std::sync::Arc;

use winlayer_core::FileTime;

use crate::format::{compare_names, utf16_string};

/// `REG_NONE`: no type.
pub const REG_NONE: u32 = 0;
/// `REG_SZ`: a NUL-terminated UTF-16LE string.
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`: a string with `%VARIABLE%` references.
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY`: bytes.
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`: a little-endian 32-bit number.
pub const REG_DWORD: u32 = 4;
/// `REG_DWORD_BIG_ENDIAN`.
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// `REG_LINK`: the target of a symbolic link key.
pub const REG_LINK: u32 = 6;
/// `REG_MULTI_SZ`: NUL-terminated strings ending with an empty one.
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_RESOURCE_LIST`.
pub const REG_RESOURCE_LIST: u32 = 8;
/// `REG_FULL_RESOURCE_DESCRIPTOR`.
pub const REG_FULL_RESOURCE_DESCRIPTOR: u32 = 9;
/// `REG_RESOURCE_REQUIREMENTS_LIST`.
pub const REG_RESOURCE_REQUIREMENTS_LIST: u32 = 10;
/// `REG_QWORD`: a little-endian 64-bit number.
pub const REG_QWORD: u32 = 11;

const TYPE_NAMES: [&str; 12] = [
    "REG_NONE",
    "REG_SZ",
    "REG_EXPAND_SZ",
    "REG_BINARY",
    "REG_DWORD",
    "REG_DWORD_BIG_ENDIAN",
    "REG_LINK",
    "REG_MULTI_SZ",
    "REG_RESOURCE_LIST",
    "REG_FULL_RESOURCE_DESCRIPTOR",
    "REG_RESOURCE_REQUIREMENTS_LIST",
    "REG_QWORD",
];

/// The name of a value type (`REG_SZ`, …), or `0x…` for types without one.
pub fn type_name(data_type: u32) -> String {
    TYPE_NAMES.get(data_type as usize).map_or_else(|| format!("{data_type:#010x}"), |n| n.to_string())
}

/// Parses a type name (`REG_SZ`, …) or a number (`7`, `0x10`).
pub fn parse_type_name(text: &str) -> Option<u32> {
    if let Some(i) = TYPE_NAMES.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Some(i as u32);
    }
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// A differencing hive's instruction for a key, relative to the same key in the layers below
/// (the spec, "Layered keys").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerSemantics {
    /// The key merges with the keys below: its values override theirs, its subkeys join theirs.
    #[default]
    Merge,
    /// The key, with everything below it, is deleted.
    Tombstone,
    /// The key replaces the key below (its values and class), but subkeys below stay visible.
    SupersedeLocal,
    /// The key and its subtree replace the key below and its whole subtree.
    SupersedeTree,
}

impl LayerSemantics {
    /// From the two low bits of the layered-key bit fields.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => LayerSemantics::Merge,
            1 => LayerSemantics::Tombstone,
            2 => LayerSemantics::SupersedeLocal,
            _ => LayerSemantics::SupersedeTree,
        }
    }

    /// The two-bit field value.
    pub fn bits(self) -> u8 {
        self as u8
    }

    /// The name used in dumps: `merge`, `tombstone`, `supersede-local`, `supersede-tree`.
    pub fn name(self) -> &'static str {
        match self {
            LayerSemantics::Merge => "merge",
            LayerSemantics::Tombstone => "tombstone",
            LayerSemantics::SupersedeLocal => "supersede-local",
            LayerSemantics::SupersedeTree => "supersede-tree",
        }
    }

    /// Parses a name from [`LayerSemantics::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Merge, Self::Tombstone, Self::SupersedeLocal, Self::SupersedeTree].into_iter().find(|s| s.name() == name)
    }
}

/// A registry value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The name; empty for the key's default value.
    pub name: String,
    /// The type (`REG_SZ`, …); any number is allowed.
    pub data_type: u32,
    /// The data, exactly as stored.
    pub data: Vec<u8>,
    /// In a differencing hive: this value deletes the value of the same name below.
    pub tombstone: bool,
}

/// A value's data in its natural form, when that form holds the bytes exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// `REG_SZ`, `REG_EXPAND_SZ`, `REG_LINK`.
    String(String),
    /// `REG_MULTI_SZ`.
    MultiString(Vec<String>),
    /// `REG_DWORD`, `REG_DWORD_BIG_ENDIAN` (as the number it means).
    Dword(u32),
    /// `REG_QWORD`.
    Qword(u64),
}

impl Decoded {
    /// The bytes of this data as a value of `data_type` stores them.
    pub fn encode(&self, data_type: u32) -> Vec<u8> {
        match self {
            Decoded::String(s) => utf16z(s),
            Decoded::MultiString(list) if list.is_empty() => vec![0, 0],
            Decoded::MultiString(list) => {
                let mut out: Vec<u8> = list.iter().flat_map(|s| utf16z(s)).collect();
                out.extend([0, 0]);
                out
            }
            Decoded::Dword(n) if data_type == REG_DWORD_BIG_ENDIAN => n.to_be_bytes().to_vec(),
            Decoded::Dword(n) => n.to_le_bytes().to_vec(),
            Decoded::Qword(n) => n.to_le_bytes().to_vec(),
        }
    }
}

/// UTF-16LE with a terminating NUL.
fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
}

impl Value {
    /// A value of any type with raw data.
    pub fn new(name: impl Into<String>, data_type: u32, data: Vec<u8>) -> Self {
        Value { name: name.into(), data_type, data, tombstone: false }
    }

    /// `REG_SZ`.
    pub fn string(name: impl Into<String>, text: &str) -> Self {
        Self::new(name, REG_SZ, utf16z(text))
    }

    /// `REG_EXPAND_SZ`.
    pub fn expand_string(name: impl Into<String>, text: &str) -> Self {
        Self::new(name, REG_EXPAND_SZ, utf16z(text))
    }

    /// `REG_MULTI_SZ`; the strings must not be empty (an empty string ends the list).
    pub fn multi_string<S: AsRef<str>>(name: impl Into<String>, strings: &[S]) -> Self {
        let list = strings.iter().map(|s| s.as_ref().to_string()).collect();
        Self::new(name, REG_MULTI_SZ, Decoded::MultiString(list).encode(REG_MULTI_SZ))
    }

    /// `REG_DWORD`.
    pub fn dword(name: impl Into<String>, n: u32) -> Self {
        Self::new(name, REG_DWORD, n.to_le_bytes().to_vec())
    }

    /// `REG_QWORD`.
    pub fn qword(name: impl Into<String>, n: u64) -> Self {
        Self::new(name, REG_QWORD, n.to_le_bytes().to_vec())
    }

    /// `REG_BINARY`.
    pub fn binary(name: impl Into<String>, data: Vec<u8>) -> Self {
        Self::new(name, REG_BINARY, data)
    }

    /// A tombstone: in a differencing hive, deletes the value `name` of the layers below.
    pub fn tombstone(name: impl Into<String>) -> Self {
        Value { name: name.into(), data_type: REG_NONE, data: Vec::new(), tombstone: true }
    }

    /// The data in its natural form for the type, or `None` when that form would not give
    /// back exactly these bytes (odd lengths, missing terminators, broken UTF-16, …).
    pub fn decoded(&self) -> Option<Decoded> {
        let d = &self.data;
        let decoded = match self.data_type {
            REG_SZ | REG_EXPAND_SZ | REG_LINK => {
                let text = utf16_string(d.strip_suffix(&[0, 0])?)?;
                // Readers stop at the first NUL; a string hiding bytes after one is not text.
                if text.contains('\0') {
                    return None;
                }
                Decoded::String(text)
            }
            REG_MULTI_SZ => {
                let body = d.strip_suffix(&[0, 0])?;
                let list = if body.is_empty() {
                    Vec::new()
                } else {
                    let text = utf16_string(body.strip_suffix(&[0, 0])?)?;
                    // An empty string ends the list for Windows, so one inside is not a list.
                    if text.split('\0').any(str::is_empty) {
                        return None;
                    }
                    text.split('\0').map(str::to_string).collect()
                };
                Decoded::MultiString(list)
            }
            REG_DWORD if d.len() == 4 => Decoded::Dword(u32::from_le_bytes(d[..4].try_into().ok()?)),
            REG_DWORD_BIG_ENDIAN if d.len() == 4 => Decoded::Dword(u32::from_be_bytes(d[..4].try_into().ok()?)),
            REG_QWORD if d.len() == 8 => Decoded::Qword(u64::from_le_bytes(d[..8].try_into().ok()?)),
            _ => return None,
        };
        // Only a form that encodes back to the same bytes is exact (this rejects, e.g., NULs
        // inside a REG_SZ or empty strings inside a REG_MULTI_SZ).
        (decoded.encode(self.data_type) == *d).then_some(decoded)
    }
}

/// A registry key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The name (1 to 255 UTF-16 units, no backslash).
    pub name: String,
    /// The class, raw (usually UTF-16LE text; Windows keeps some binary secrets there).
    pub class: Option<Vec<u8>>,
    /// When the key was last written.
    pub last_written: FileTime,
    /// The self-relative security descriptor; `None` when writing means "the parent's".
    pub security: Option<Arc<[u8]>>,
    /// `nk` flags the tree does not determine (symbolic link 0x10, virtualization 0x80–0x200).
    pub flags: u16,
    /// The four user (WOW64) flag bits.
    pub user_flags: u8,
    /// The four virtualization control flag bits.
    pub virtualization_flags: u8,
    /// In a differencing hive: how this key combines with the same key below.
    pub layer: LayerSemantics,
    /// In a differencing hive: take the class from the key below.
    pub inherit_class: bool,
    /// The values, in the order they are listed.
    pub values: Vec<Value>,
    /// The subkeys (the writer sorts them as Windows' index requires).
    pub subkeys: Vec<Key>,
}

/// Whether two names are the same key or value name (case-insensitive as Windows compares).
pub fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() { a.eq_ignore_ascii_case(b) } else { compare_names(a, b).is_eq() }
}

impl Key {
    /// An empty key.
    pub fn new(name: impl Into<String>) -> Self {
        Key {
            name: name.into(),
            class: None,
            last_written: FileTime::default(),
            security: None,
            flags: 0,
            user_flags: 0,
            virtualization_flags: 0,
            layer: LayerSemantics::Merge,
            inherit_class: false,
            values: Vec::new(),
            subkeys: Vec::new(),
        }
    }

    /// The subkey `name` (case-insensitive).
    pub fn subkey(&self, name: &str) -> Option<&Key> {
        self.subkeys.iter().find(|k| same_name(&k.name, name))
    }

    /// The subkey `name` (case-insensitive), mutable.
    pub fn subkey_mut(&mut self, name: &str) -> Option<&mut Key> {
        self.subkeys.iter_mut().find(|k| same_name(&k.name, name))
    }

    /// The key at a backslash-separated path below this one (empty: this key).
    pub fn find(&self, path: &str) -> Option<&Key> {
        path.split('\\').filter(|p| !p.is_empty()).try_fold(self, |key, part| key.subkey(part))
    }

    /// The key at a backslash-separated path below this one, created with its missing parents.
    pub fn create(&mut self, path: &str) -> &mut Key {
        let mut key = self;
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            let i = match key.subkeys.iter().position(|k| same_name(&k.name, part)) {
                Some(i) => i,
                None => {
                    key.subkeys.push(Key::new(part));
                    key.subkeys.len() - 1
                }
            };
            key = &mut key.subkeys[i];
        }
        key
    }

    /// The value `name` (case-insensitive; empty for the default value).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|v| same_name(&v.name, name))
    }

    /// Sets a value, replacing the one of the same name in place.
    pub fn set_value(&mut self, value: Value) {
        match self.values.iter_mut().find(|v| same_name(&v.name, &value.name)) {
            Some(slot) => *slot = value,
            None => self.values.push(value),
        }
    }

    /// This key and every key below it, depth first in stored order, with paths relative to
    /// this key (`\` for this key, `\A\B` below it).
    pub fn walk(&self) -> Vec<(String, &Key)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), self)];
        while let Some((path, key)) = stack.pop() {
            for sub in key.subkeys.iter().rev() {
                stack.push((format!("{path}\\{}", sub.name), sub));
            }
            out.push((if path.is_empty() { "\\".to_string() } else { path }, key));
        }
        out
    }
}

/// A registry hive: its root key and what its base block says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hive {
    /// The root key; its name is the name the hive was created or loaded under.
    pub root: Key,
    /// Format minor version (major is always 1): 3, 4, 5 or 6. From 4 on, long values are
    /// split into big-data segments; from 5 on, subkey leaves are `lh` rather than `lf`.
    pub minor_version: u32,
    /// The base block's "last written" time (also the first hive bin's time stamp).
    pub last_written: FileTime,
    /// A differencing hive: its keys and values carry layered-key semantics.
    pub layered: bool,
}

impl Hive {
    /// A valid empty hive: a root key named `root_name` with the default security descriptor,
    /// format 1.5, all times zero. Writing it gives the same bytes every time.
    pub fn empty(root_name: &str) -> Self {
        Hive { root: Key::new(root_name), minor_version: 5, last_written: FileTime::default(), layered: false }
    }

    /// An empty differencing hive (for a layer's `Hives/*_Delta`).
    pub fn empty_delta(root_name: &str) -> Self {
        Hive { layered: true, ..Self::empty(root_name) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_constructors_encode_as_windows_stores() {
        assert_eq!(Value::string("a", "hi").data, b"h\0i\0\0\0");
        assert_eq!(Value::multi_string("m", &["a", "b"]).data, b"a\0\0\0b\0\0\0\0\0");
        assert_eq!(Value::multi_string::<&str>("m", &[]).data, b"\0\0");
        assert_eq!(Value::dword("d", 0x0102_0304).data, [4, 3, 2, 1]);
        assert_eq!(Value::qword("q", 1).data, [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn decoding_is_exact_or_nothing() {
        for v in [
            Value::string("a", "text"),
            Value::expand_string("a", "%SystemRoot%"),
            Value::multi_string("m", &["x", "yz"]),
            Value::multi_string::<&str>("m", &[]),
            Value::dword("d", 7),
            Value::qword("q", u64::MAX),
        ] {
            let decoded = v.decoded().expect("decodes");
            assert_eq!(decoded.encode(v.data_type), v.data);
        }
        assert_eq!(Value::new("s", REG_SZ, b"a\0".to_vec()).decoded(), None, "missing terminator");
        assert_eq!(Value::new("s", REG_SZ, b"a\0\0\0b\0\0\0".to_vec()).decoded(), None, "inner NUL");
        assert_eq!(Value::new("m", REG_MULTI_SZ, b"a\0\0\0\0\0\0\0".to_vec()).decoded(), None, "empty item");
        assert_eq!(Value::new("d", REG_DWORD, vec![1, 2]).decoded(), None);
        assert_eq!(Value::binary("b", vec![1]).decoded(), None);
        assert_eq!(Value::new("d", REG_DWORD_BIG_ENDIAN, vec![0, 0, 0, 9]).decoded(), Some(Decoded::Dword(9)));
    }

    #[test]
    fn type_names_round_trip() {
        for t in 0..12 {
            assert_eq!(parse_type_name(&type_name(t)), Some(t));
        }
        assert_eq!(type_name(0x20), "0x00000020");
        assert_eq!(parse_type_name("0x00000020"), Some(0x20));
        assert_eq!(parse_type_name("reg_sz"), Some(REG_SZ));
        assert_eq!(parse_type_name("nonsense"), None);
    }

    #[test]
    fn paths_are_case_insensitive() {
        let mut root = Key::new("ROOT");
        root.create("Software\\Vendor").set_value(Value::dword("X", 1));
        root.create("software\\VENDOR\\Sub");
        assert_eq!(root.subkeys.len(), 1);
        let vendor = root.find("SOFTWARE\\vendor").expect("found");
        assert_eq!(vendor.subkeys.len(), 1);
        assert_eq!(vendor.value("x").map(|v| v.data.clone()), Some(vec![1, 0, 0, 0]));
        let paths: Vec<_> = root.walk().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["\\", "\\Software", "\\Software\\Vendor", "\\Software\\Vendor\\Sub"]);
    }
}
