//! `winlayer hive …`: thin commands over the regf crate.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use regf::{Decoded, Hive, Key, LayerSemantics, ReadOptions, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use wcow_tar::Compression;
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{Error, FileTime, Result};

use crate::io::write_output;

#[derive(Subcommand)]
pub enum HiveCommand {
    /// Write a registry hive: a valid empty one, or one described in JSON.
    ///
    /// Without --from the hive holds only its root key, named by --root-name, whose security
    /// descriptor gives SYSTEM and Administrators full control and Users read access (what a
    /// base layer's Files/Windows/System32/config hives need). With --from, the JSON is what
    /// `winlayer hive dump --json` prints, so a dump edited by hand or by a script becomes a
    /// hive again: {"root": NAME, "keys": [{"path": "\A\B", "security": SDDL, "values":
    /// [{"name": N, "type": "REG_SZ", "data": "text"}, {"name": N, "type": "REG_BINARY", "hex":
    /// "00ff"}]}]} ("data" is text, a list of strings or a number by type; "hex" gives any type
    /// its exact bytes). Keys missing between listed ones are created; keys without "security"
    /// share their parent's. --delta makes a differencing hive (a layer's Hives/<H>_Delta), whose keys
    /// may carry "layer": "tombstone", "supersede-local" or "supersede-tree" and whose values may
    /// carry "tombstone": true. Times come from the JSON, else from SOURCE_DATE_EPOCH, else are
    /// zero: the same input always gives the same bytes. The layout follows the one Windows
    /// writes (root key first, 4 KiB bins).
    Create {
        /// Where to write the hive, or '-'.
        output: PathBuf,
        /// The root key's name [default: the JSON's "root", else ROOT].
        #[arg(long, value_name = "NAME")]
        root_name: Option<String>,
        /// A JSON description of the keys and values (the `hive dump --json` form), or '-'.
        #[arg(long, value_name = "JSON")]
        from: Option<PathBuf>,
        /// Write a differencing hive (layered keys), as a layer's Hives/<H>_Delta.
        #[arg(long)]
        delta: bool,
        /// The hive format version: 1.3 and 1.4 index subkeys with lf leaves, 1.5 and 1.6 with
        /// lh leaves; from 1.4 on long values are split into big data segments [default: the
        /// JSON's "version", else 1.5].
        #[arg(long, value_name = "1.N")]
        format_version: Option<String>,
    },
    /// List a hive's keys and values with types, data and security descriptors (as SDDL).
    ///
    /// Text: one "[\path]" line per key (with its last written time, and for differencing
    /// hives its layer semantics), its security descriptor where it differs from its
    /// parent's, then its values as `"name" = TYPE data`. --json prints the form
    /// `winlayer hive create --from` reads back: exact data ("data" in its natural form, or
    /// "hex" when no natural form holds the bytes exactly).
    Dump {
        /// The hive, or '-'.
        hive: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Read a dirty hive (one whose last write was interrupted) as its primary file holds
        /// it, without its transaction logs.
        #[arg(long)]
        allow_dirty: bool,
    },
    /// Apply a layer's differencing hive onto its parent's full hive.
    ///
    /// What the Windows offline registry library's ORMergeHives does when a container layer is
    /// imported as a CIM layer: BASE is the parent layer's Hives/<H>_BASE, DELTA this layer's
    /// Hives/<H>_Delta, the output this layer's Hives/<H>_BASE. Several deltas are applied in
    /// order (a chain of layers). Deleted keys and values (tombstones) disappear, superseded
    /// keys replace what is below them, everything else merges with the upper layer winning.
    Merge {
        /// The full hive below.
        base: PathBuf,
        /// Differencing hives, lowest first.
        #[arg(required = true)]
        deltas: Vec<PathBuf>,
        /// Where to write the merged hive, or '-'.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Runs a `hive` subcommand.
pub fn run(command: HiveCommand) -> Result<ExitCode> {
    match command {
        HiveCommand::Create { output, root_name, from, delta, format_version } => {
            create(&output, root_name, from.as_deref(), delta, format_version)
        }
        HiveCommand::Dump { hive, json, allow_dirty } => dump(&hive, json, allow_dirty),
        HiveCommand::Merge { base, deltas, output } => merge(&base, &deltas, &output),
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map(|_| ())
    };
    result.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(bytes)
}

fn read_hive(path: &Path, options: ReadOptions) -> Result<Hive> {
    Hive::parse_with(&read_input(path)?, options).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

fn write_hive(path: &Path, hive: &Hive) -> Result<()> {
    let bytes = hive.to_bytes()?;
    write_output(path, Compression::None, |out| out.write_all(&bytes).map_err(|e| Error::io("writing the hive", e)))
}

/// The JSON form of a hive (`hive dump --json`, `hive create --from`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HiveSpec {
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    layered: bool,
    #[serde(default)]
    last_written: Option<Json>,
    #[serde(default)]
    keys: Vec<KeySpec>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    /// Backslash-separated, relative to the root (`\` for the root).
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_written: Option<Json>,
    /// SDDL; absent: the parent's descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security: Option<String>,
    /// The exact descriptor, where the SDDL does not give back the same bytes (wins over it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    class_hex: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    flags: u16,
    #[serde(default, skip_serializing_if = "is_zero")]
    user_flags: u8,
    #[serde(default, skip_serializing_if = "is_zero")]
    virtualization_flags: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    inherit_class: bool,
    #[serde(default)]
    values: Vec<ValueSpec>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueSpec {
    name: String,
    #[serde(rename = "type", default = "none_type")]
    data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tombstone: bool,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn none_type() -> String {
    "REG_NONE".into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 15) as usize] as char]).collect()
}

fn unhex(text: &str, what: &str) -> Result<Vec<u8>> {
    let bad = || Error::Invalid(format!("{what}: {text:?} is not hex"));
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(bad))
        .collect()
}

/// A time as JSON: RFC 3339, or raw FILETIME ticks for the years RFC 3339 cannot write.
fn time_json(t: FileTime) -> Json {
    let text = t.to_rfc3339();
    if FileTime::parse_rfc3339(&text) == Ok(t) { Json::String(text) } else { Json::from(t.ticks()) }
}

fn time_of(json: &Json, what: &str) -> Result<FileTime> {
    let bad = |m: String| Error::Invalid(format!("{what}: {m}"));
    match json {
        Json::String(s) => FileTime::parse_rfc3339(s).map_err(|e| bad(e.to_string())),
        Json::Number(n) => {
            n.as_i64().and_then(FileTime::from_ticks).ok_or_else(|| bad(format!("{n} is not a FILETIME")))
        }
        other => Err(bad(format!("{other} is neither RFC 3339 text nor FILETIME ticks"))),
    }
}

fn sddl(sd: &[u8]) -> String {
    SecurityDescriptor::from_bytes(sd).map(|s| s.to_sddl()).unwrap_or_else(|e| format!("<{e}>"))
}

/// Calls `each` with every key, depth first, and its JSON form (security only where it
/// differs from the parent's), so listings stream instead of holding a second copy of the hive.
fn for_each_key(hive: &Hive, mut each: impl FnMut(&Key, KeySpec) -> io::Result<()>) -> io::Result<()> {
    // (path, key, the parent's security descriptor)
    type Pending<'a> = (String, &'a Key, Option<&'a Arc<[u8]>>);
    let mut stack: Vec<Pending> = vec![("\\".into(), &hive.root, None)];
    while let Some((path, key, parent_sd)) = stack.pop() {
        let sd = key.security.as_ref().or(parent_sd);
        for sub in key.subkeys.iter().rev() {
            let child = if path == "\\" { format!("\\{}", sub.name) } else { format!("{path}\\{}", sub.name) };
            stack.push((child, sub, sd));
        }
        let text_class = key.class.as_deref().and_then(class_text);
        let own_sd = key.security.as_ref().filter(|sd| Some(*sd) != parent_sd);
        let security = own_sd.map(|sd| sddl(sd));
        let exact =
            |text: &String| SecurityDescriptor::from_sddl(text).is_ok_and(|d| own_sd == Some(&d.to_bytes().into()));
        let spec = KeySpec {
            path,
            last_written: Some(time_json(key.last_written)),
            security_hex: if security.as_ref().is_some_and(|t| !exact(t)) { own_sd.map(|sd| hex(sd)) } else { None },
            security,
            class_hex: if text_class.is_none() { key.class.as_deref().map(hex) } else { None },
            class: text_class,
            flags: key.flags,
            user_flags: key.user_flags,
            virtualization_flags: key.virtualization_flags,
            layer: (key.layer != LayerSemantics::Merge).then(|| key.layer.name().to_string()),
            inherit_class: key.inherit_class,
            values: key.values.iter().map(value_spec).collect(),
        };
        each(key, spec)?;
    }
    Ok(())
}

/// A class as text, when UTF-16 text (without NULs, as Windows stores classes) holds it exactly.
fn class_text(class: &[u8]) -> Option<String> {
    if !class.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = class.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).ok().filter(|s| !s.contains('\0'))
}

fn value_spec(v: &Value) -> ValueSpec {
    let data = v.decoded().map(|d| match d {
        Decoded::String(s) => Json::from(s),
        Decoded::MultiString(list) => Json::from(list),
        Decoded::Dword(n) => Json::from(n),
        Decoded::Qword(n) => Json::from(n),
    });
    ValueSpec {
        name: v.name.clone(),
        data_type: regf::type_name(v.data_type),
        hex: if data.is_none() && !v.tombstone { Some(hex(&v.data)) } else { None },
        data,
        tombstone: v.tombstone,
    }
}

/// Builds a hive from its JSON form.
fn hive_of(
    spec: HiveSpec,
    root_name: Option<String>,
    layered: bool,
    minor: u32,
    default_time: FileTime,
) -> Result<Hive> {
    let root = root_name.or(spec.root).unwrap_or_else(|| "ROOT".into());
    let last_written = spec.last_written.as_ref().map(|t| time_of(t, "the hive's last_written")).transpose()?;
    let mut hive = Hive {
        last_written: last_written.unwrap_or(default_time),
        minor_version: minor,
        layered: layered || spec.layered,
        ..Hive::empty(&root)
    };
    hive.root.last_written = hive.last_written;
    // Where each key is (its index at every level), by upper-cased path: JSON may list a
    // hundred thousand keys in any order.
    let mut positions: HashMap<Vec<u16>, Vec<usize>> = HashMap::new();
    for k in spec.keys {
        let what = format!("key {:?}", k.path);
        let (mut path, mut position) = (Vec::new(), Vec::new());
        for part in k.path.split('\\').filter(|p| !p.is_empty()) {
            path.push(u16::from(b'\\'));
            path.extend(regf::name_key(part));
            position = match positions.get(&path) {
                Some(p) => p.clone(),
                None => {
                    let parent = key_at(&mut hive.root, &position);
                    parent.subkeys.push(Key { last_written: default_time, ..Key::new(part) });
                    position.push(parent.subkeys.len() - 1);
                    positions.insert(path.clone(), position.clone());
                    position
                }
            };
        }
        let key = key_at(&mut hive.root, &position);
        key.last_written = match &k.last_written {
            Some(t) => time_of(t, &what)?,
            None => default_time,
        };
        if let Some(h) = &k.security_hex {
            key.security = Some(unhex(h, &what)?.into());
        } else if let Some(text) = &k.security {
            let sd = SecurityDescriptor::from_sddl(text).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
            key.security = Some(sd.to_bytes().into());
        }
        key.class = match (&k.class, &k.class_hex) {
            (Some(text), _) => Some(text.encode_utf16().flat_map(u16::to_le_bytes).collect()),
            (None, Some(h)) => Some(unhex(h, &what)?),
            (None, None) => None,
        };
        key.flags = k.flags;
        key.user_flags = k.user_flags;
        key.virtualization_flags = k.virtualization_flags;
        key.layer = match &k.layer {
            Some(name) => LayerSemantics::from_name(name).ok_or_else(|| {
                Error::Invalid(format!("{what}: layer {name:?} (merge, tombstone, supersede-local or supersede-tree)"))
            })?,
            None => LayerSemantics::Merge,
        };
        key.inherit_class = k.inherit_class;
        for v in k.values {
            key.set_value(value_of(v, &what)?);
        }
    }
    let layered_parts = hive
        .root
        .walk()
        .iter()
        .any(|(_, k)| k.layer != LayerSemantics::Merge || k.inherit_class || k.values.iter().any(|v| v.tombstone));
    if layered_parts && !hive.layered {
        return Err(Error::Invalid(
            "layer semantics and tombstones belong in a differencing hive: use --delta or \"layered\": true".into(),
        ));
    }
    Ok(hive)
}

fn key_at<'a>(root: &'a mut Key, position: &[usize]) -> &'a mut Key {
    position.iter().fold(root, |key, &i| &mut key.subkeys[i])
}

fn value_of(v: ValueSpec, key: &str) -> Result<Value> {
    let what = format!("{key}, value {:?}", v.name);
    if v.tombstone {
        return Ok(Value::tombstone(v.name));
    }
    let data_type = regf::parse_type_name(&v.data_type)
        .ok_or_else(|| Error::Invalid(format!("{what}: unknown type {:?}", v.data_type)))?;
    let data = match (&v.hex, &v.data) {
        (Some(h), _) => unhex(h, &what)?,
        (None, Some(json)) => decoded_of(json, data_type)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{what}: {json} does not fit {} (strings for REG_SZ, REG_EXPAND_SZ and REG_LINK, a list of \
                     strings for REG_MULTI_SZ, numbers for REG_DWORD and REG_QWORD, \"hex\" for the rest)",
                    v.data_type
                ))
            })?
            .encode(data_type),
        (None, None) => Vec::new(),
    };
    Ok(Value::new(v.name, data_type, data))
}

fn decoded_of(json: &Json, data_type: u32) -> Option<Decoded> {
    match data_type {
        regf::REG_SZ | regf::REG_EXPAND_SZ | regf::REG_LINK => json.as_str().map(|s| Decoded::String(s.into())),
        regf::REG_MULTI_SZ => json
            .as_array()?
            .iter()
            .map(|s| s.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect::<Option<_>>()
            .map(Decoded::MultiString),
        regf::REG_DWORD | regf::REG_DWORD_BIG_ENDIAN => json.as_u64()?.try_into().ok().map(Decoded::Dword),
        regf::REG_QWORD => json.as_u64().map(Decoded::Qword),
        _ => None,
    }
}

/// `hive create`.
fn create(
    output: &Path,
    root_name: Option<String>,
    from: Option<&Path>,
    delta: bool,
    version: Option<String>,
) -> Result<ExitCode> {
    let default_time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| FileTime::from_unix(s, 0))
            .ok_or_else(|| Error::Invalid(format!("SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds")))?,
        Err(_) => FileTime::default(),
    };
    let spec = match from {
        Some(path) => serde_json::from_slice(&read_input(path)?)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?,
        None => HiveSpec::default(),
    };
    let version = version.or(spec.version.clone()).unwrap_or_else(|| "1.5".into());
    let minor = match version.strip_prefix("1.").and_then(|m| m.parse().ok()) {
        Some(m @ 3..=6) => m,
        _ => return Err(Error::Invalid(format!("format version {version:?}: 1.3, 1.4, 1.5 or 1.6"))),
    };
    let hive = hive_of(spec, root_name, delta, minor, default_time)?;
    write_hive(output, &hive)?;
    Ok(ExitCode::SUCCESS)
}

/// `hive merge`.
fn merge(base: &Path, deltas: &[PathBuf], output: &Path) -> Result<ExitCode> {
    let mut hive = read_hive(base, ReadOptions::default())?;
    for delta in deltas {
        hive = regf::merge(hive, read_hive(delta, ReadOptions::default())?)
            .map_err(|e| Error::Invalid(format!("{}: {e}", delta.display())))?;
    }
    write_hive(output, &hive)?;
    Ok(ExitCode::SUCCESS)
}

/// `hive dump`.
fn dump(path: &Path, json: bool, allow_dirty: bool) -> Result<ExitCode> {
    let hive = read_hive(path, ReadOptions { allow_dirty })?;
    let mut out = BufWriter::new(io::stdout().lock());
    let written = if json { dump_json(&mut out, &hive) } else { dump_text(&mut out, &hive) };
    written.and_then(|_| out.flush()).map_err(|e| Error::io("writing the listing", e))?;
    Ok(ExitCode::SUCCESS)
}

/// The form `hive create --from` reads, one key per line.
fn dump_json(out: &mut impl Write, hive: &Hive) -> io::Result<()> {
    writeln!(out, "{{")?;
    writeln!(out, "  \"root\": {},", Json::from(hive.root.name.as_str()))?;
    writeln!(out, "  \"version\": \"1.{}\",", hive.minor_version)?;
    writeln!(out, "  \"layered\": {},", hive.layered)?;
    writeln!(out, "  \"last_written\": {},", time_json(hive.last_written))?;
    write!(out, "  \"keys\": [")?;
    let mut separator = "\n";
    for_each_key(hive, |_, spec| {
        write!(out, "{separator}    {}", serde_json::to_string(&spec)?)?;
        separator = ",\n";
        Ok(())
    })?;
    writeln!(out, "\n  ]\n}}")
}

fn dump_text(out: &mut impl Write, hive: &Hive) -> io::Result<()> {
    let (mut keys, mut values, mut stack) = (0, 0, vec![&hive.root]);
    while let Some(key) = stack.pop() {
        keys += 1;
        values += key.values.len();
        stack.extend(&key.subkeys);
    }
    let layered = if hive.layered { ", differencing (layered keys)" } else { "" };
    writeln!(
        out,
        "hive {:?}: format 1.{}{layered}, {keys} keys, {values} values, last written {}",
        hive.root.name, hive.minor_version, hive.last_written
    )?;
    for_each_key(hive, |key, k| {
        let layer = k.layer.as_deref().map(|l| format!("  ({l})")).unwrap_or_default();
        let inherit = if k.inherit_class { "  (inherits its class)" } else { "" };
        writeln!(out, "[{}]  {}{layer}{inherit}", k.path, key.last_written)?;
        if let Some(sd) = &k.security {
            writeln!(out, "  security {sd}")?;
        }
        if let Some(class) = &k.class {
            writeln!(out, "  class {class:?}")?;
        } else if let Some(class) = &k.class_hex {
            writeln!(out, "  class hex {class}")?;
        }
        for (v, value) in k.values.iter().zip(&key.values) {
            let data = match (&v.data, v.tombstone) {
                (_, true) => "tombstone".to_string(),
                (Some(Json::Number(n)), _) => format!("{:#x} ({n})", n.as_u64().unwrap_or_default()),
                (Some(d), _) => d.to_string(),
                (None, _) if value.data.len() > 64 => {
                    format!("hex {}… ({} bytes)", hex(&value.data[..64]), value.data.len())
                }
                (None, _) => format!("hex {}", hex(&value.data)),
            };
            writeln!(out, "  {:?} = {} {data}", v.name, v.data_type)?;
        }
        Ok(())
    })
}
