//! Paths inside a Windows layer, and the rules that make a name storable on Windows.

use std::cmp::Ordering;
use std::fmt;

/// The top-level names a Windows layer may contain.
pub const TOP_LEVEL: [&str; 3] = ["Files", "Hives", "UtilityVM"];

/// Files importers generate at the root of a layer folder or image, beside the layer's own
/// top-level names: hcsshim writes `layout` into base layers (processed, and CIM container
/// layers). Never part of a layer tar; the layer rules refuse them.
pub const GENERATED_ROOT_FILES: [&str; 1] = ["layout"];

/// A checked path inside a layer: `/`-separated, relative, every component a name Windows can
/// store, rooted at `Files`, `Hives` or `UtilityVM` (and below `UtilityVM` only at `Files`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LayerPath(String);

/// How the rule for a path outside every layer root ends: what a plain (non-layer) tar breaks.
pub const NOT_A_LAYER_ROOT: &str = "is not Files, Hives or UtilityVM";

/// Why a path cannot be part of a Windows layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path {path:?}: {rule}")]
pub struct PathError {
    /// The offending path as given.
    pub path: String,
    /// The rule it breaks.
    pub rule: String,
}

/// Why a single name cannot be stored by Windows.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty path component ('//' or a trailing '/')".into());
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' components are not allowed"));
    }
    // One pass over the bytes: every character Windows refuses is ASCII.
    for &b in name.as_bytes() {
        match b {
            0 => return Err("contains NUL".into()),
            1..=0x1F => return Err(format!("contains control character U+{b:04X}")),
            b'\\' => return Err("contains a backslash (tar paths use '/')".into()),
            b'<' | b'>' | b':' | b'"' | b'|' | b'?' | b'*' => {
                return Err(format!("contains '{}', which Windows file names cannot", b as char));
            }
            _ => {}
        }
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("ends with a dot or space, which Windows strips".into());
    }
    if is_reserved_device_name(name) {
        return Err(format!("'{name}' is a reserved Windows device name"));
    }
    // UTF-16 never needs more units than UTF-8 needs bytes, so count only long names.
    if name.len() > 255 && name.encode_utf16().count() > 255 {
        return Err("component longer than 255 UTF-16 units".into());
    }
    Ok(())
}

/// Why a stream name cannot be stored by NTFS.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty stream name".into());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '\0' | '/' | '\\' | ':')) {
        return Err(format!("stream name contains {c:?}"));
    }
    if name.encode_utf16().count() > 255 {
        return Err("stream name longer than 255 UTF-16 units".into());
    }
    Ok(())
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9` (also with superscript digits),
/// `CONIN$`, `CONOUT$`: reserved with or without an extension, in any case.
fn is_reserved_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    let is = |word: &str| stem.eq_ignore_ascii_case(word);
    if is("CON") || is("PRN") || is("AUX") || is("NUL") || is("CONIN$") || is("CONOUT$") {
        return true;
    }
    let (Some(prefix), Some(digit)) = (stem.get(..3), stem.get(3..)) else { return false };
    (prefix.eq_ignore_ascii_case("COM") || prefix.eq_ignore_ascii_case("LPT"))
        && matches!(digit, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
}

/// The case-folded form NTFS compares names by: each UTF-16 unit of the BMP mapped through a
/// simple (one-to-one) upper-case mapping, like the volume's upcase table.
pub fn fold_case(name: &str) -> String {
    name.chars().map(fold_char).collect()
}

/// One character of [`fold_case`].
pub fn fold_char(c: char) -> char {
    if (c as u32) > 0xFFFF {
        return c;
    }
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) if (u as u32) <= 0xFFFF => u,
        _ => c,
    }
}

impl LayerPath {
    /// Checks `path` against every naming rule of the layer format.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let fail = |rule: String| PathError { path: path.to_string(), rule };
        if path.is_empty() {
            return Err(fail("empty path".into()));
        }
        if path.starts_with('/') {
            return Err(fail("absolute path (must be relative to the layer root)".into()));
        }
        let b = path.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return Err(fail("drive-letter path".into()));
        }
        if path.contains('\\') {
            return Err(fail("contains a backslash (tar paths use '/')".into()));
        }
        if path.len() > 32_000 && path.encode_utf16().count() > 32_000 {
            return Err(fail("longer than Windows' 32,767-character path limit".into()));
        }
        for name in path.split('/') {
            check_name(name).map_err(|rule| fail(format!("component {name:?}: {rule}")))?;
        }
        let mut parts = path.split('/');
        let top = parts.next().unwrap_or("");
        if !TOP_LEVEL.contains(&top) {
            let hint = TOP_LEVEL
                .iter()
                .find(|t| t.eq_ignore_ascii_case(top))
                .map(|t| format!(" (spelled exactly '{t}')"))
                .unwrap_or_default();
            return Err(fail(format!("top-level name {top:?} {NOT_A_LAYER_ROOT}{hint}")));
        }
        if top == "UtilityVM"
            && let Some(second) = parts.next()
            && second != "Files"
        {
            return Err(fail(format!("only UtilityVM/Files may exist below UtilityVM, not {second:?}")));
        }
        Ok(LayerPath(path.to_string()))
    }

    /// The path of a file importers generate at the root of a layer image (one of
    /// [`GENERATED_ROOT_FILES`]), which [`LayerPath::parse`] refuses.
    pub fn generated_root_file(name: &str) -> Option<LayerPath> {
        GENERATED_ROOT_FILES.contains(&name).then(|| LayerPath(name.to_string()))
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components.
    pub fn components(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// The parent path, `None` at the top level.
    pub fn parent(&self) -> Option<LayerPath> {
        self.0.rsplit_once('/').map(|(p, _)| LayerPath(p.to_string()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit_once('/').map_or(&self.0, |(_, n)| n)
    }

    /// A child of this path; the name must already satisfy [`check_name`].
    pub fn join(&self, name: &str) -> Result<LayerPath, PathError> {
        LayerPath::parse(&format!("{}/{name}", self.0))
    }

    /// The case-folded path, for case-insensitive comparisons.
    pub fn folded(&self) -> String {
        fold_case(&self.0)
    }

    /// Whether the path lies under `UtilityVM/Files` (or is it).
    pub fn in_utility_vm(&self) -> bool {
        self.0 == "UtilityVM/Files" || self.0.starts_with("UtilityVM/Files/")
    }

    /// Depth-first tree order: component by component, names compared byte-wise.
    pub fn tree_cmp(&self, other: &LayerPath) -> Ordering {
        self.components().cmp(other.components())
    }
}

impl fmt::Display for LayerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LayerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl serde::Serialize for LayerPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_layer_paths() {
        for p in [
            "Files",
            "Files/Windows/System32/notepad.exe",
            "Hives/System_Delta",
            "UtilityVM",
            "UtilityVM/Files/EFI",
            "Files/ünï côdé",
            "Files/.hidden",
            "Files/a b",
        ] {
            LayerPath::parse(p).unwrap();
        }
    }

    #[test]
    fn refuses_each_rule() {
        for (p, needle) in [
            ("", "empty"),
            ("/Files/x", "absolute"),
            ("C:/Files", "drive"),
            ("c:", "drive"),
            ("Files\\x", "backslash"),
            ("Files/../etc", "'..'"),
            ("Files/./x", "'.'"),
            ("Files//x", "empty path component"),
            ("Files/x/", "empty path component"),
            ("Files/a\0b", "NUL"),
            ("Files/a\x07b", "U+0007"),
            ("Files/a<b", "'<'"),
            ("Files/a:b", "':'"),
            ("Files/a?", "'?'"),
            ("Files/a*", "'*'"),
            ("Files/a|b", "'|'"),
            ("Files/a\"b", "'\"'"),
            ("Files/name.", "dot or space"),
            ("Files/name ", "dot or space"),
            ("Files/CON", "reserved"),
            ("Files/aux.txt", "reserved"),
            ("Files/Com1", "reserved"),
            ("Files/LPT9.log", "reserved"),
            ("Files/COM¹", "reserved"),
            ("Files/conout$", "reserved"),
            ("Other/x", "top-level"),
            ("files/x", "spelled exactly 'Files'"),
            ("UtilityVM/Other", "only UtilityVM/Files"),
        ] {
            let err = LayerPath::parse(p).unwrap_err().to_string();
            assert!(err.contains(needle), "{p:?}: {err}");
        }
        assert!(LayerPath::parse(&format!("Files/{}", "a".repeat(256))).is_err());
        assert!(LayerPath::parse("Files/COM10").is_ok());
        assert!(LayerPath::parse("Files/CONSOLE").is_ok());
        assert!(LayerPath::parse("layout").is_err());
        assert_eq!(LayerPath::generated_root_file("layout").map(|p| p.to_string()), Some("layout".into()));
        assert!(LayerPath::generated_root_file("Files/x").is_none());
    }

    #[test]
    fn folding_and_order() {
        assert_eq!(fold_case("Straße.txt"), "STRAßE.TXT");
        assert_eq!(fold_case("äbc"), "ÄBC");
        let a = LayerPath::parse("Files/a b/x").unwrap();
        let b = LayerPath::parse("Files/a/x").unwrap();
        // Tree order puts "a" (and its subtree) before "a b", unlike plain string order.
        assert_eq!(b.tree_cmp(&a), Ordering::Less);
        assert!(a.as_str() < b.as_str());
    }

    #[test]
    fn stream_names() {
        assert!(check_stream_name("Zone.Identifier").is_ok());
        assert!(check_stream_name("a:b").is_err());
        assert!(check_stream_name("").is_err());
    }
}
