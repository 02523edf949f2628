//! The on-disk structures of a registry hive, shared by the reader and the writer.
//!
//! Source of every layout fact here: Maxim Suhanov, "Windows registry file format
//! specification" (github.com/msuhanov/regf, commit 88e878d, 2018-10-28), cited below as
//! "the spec". Offsets inside cells are relative to the cell data (after the 4-byte size).

/// The base block (file header) is one 4 KiB block.
pub const BASE_BLOCK_LEN: usize = 4096;
/// Hive bins are multiples of 4 KiB.
pub const BIN_ALIGN: usize = 4096;
/// The `hbin` header.
pub const BIN_HEADER_LEN: usize = 32;
/// An offset that points nowhere.
pub const NO_CELL: u32 = u32::MAX;
/// Windows nests keys at most 512 levels deep.
pub const MAX_DEPTH: usize = 512;

/// Base block field offsets.
pub mod base {
    pub const SIGNATURE: usize = 0;
    pub const PRIMARY_SEQUENCE: usize = 4;
    pub const SECONDARY_SEQUENCE: usize = 8;
    pub const LAST_WRITTEN: usize = 12;
    pub const MAJOR: usize = 20;
    pub const MINOR: usize = 24;
    pub const FILE_TYPE: usize = 28;
    pub const FILE_FORMAT: usize = 32;
    pub const ROOT_CELL: usize = 36;
    pub const BINS_SIZE: usize = 40;
    pub const CLUSTERING: usize = 44;
    pub const FLAGS: usize = 144;
    pub const GUID_SIGNATURE: usize = 164;
    /// XOR-32 of the 508 bytes before it.
    pub const CHECKSUM: usize = 508;
}

/// Base block flag: the hive supports layered keys (a differencing hive).
pub const HIVE_FLAG_LAYERED: u32 = 0x2;

/// `nk` field offsets.
pub mod nk {
    pub const FLAGS: usize = 2;
    pub const LAST_WRITTEN: usize = 4;
    /// One byte of access bits, then one byte of layered-key bit fields.
    pub const LAYER_BITS: usize = 13;
    pub const PARENT: usize = 16;
    pub const SUBKEY_COUNT: usize = 20;
    pub const SUBKEY_LIST: usize = 28;
    pub const VOLATILE_SUBKEY_LIST: usize = 32;
    pub const VALUE_COUNT: usize = 36;
    pub const VALUE_LIST: usize = 40;
    pub const SECURITY: usize = 44;
    pub const CLASS: usize = 48;
    /// Low 16 bits: largest subkey name (bytes, as UTF-16); bits 16–19 virtualization control
    /// flags; bits 20–23 user flags; bits 24–31 debug.
    pub const MAX_SUBKEY_NAME: usize = 52;
    pub const MAX_SUBKEY_CLASS: usize = 56;
    pub const MAX_VALUE_NAME: usize = 60;
    pub const MAX_VALUE_DATA: usize = 64;
    pub const NAME_LEN: usize = 72;
    pub const CLASS_LEN: usize = 74;
    pub const NAME: usize = 76;
}

/// `nk` flags.
pub const KEY_VOLATILE: u16 = 0x0001;
pub const KEY_HIVE_EXIT: u16 = 0x0002;
pub const KEY_HIVE_ENTRY: u16 = 0x0004;
pub const KEY_NO_DELETE: u16 = 0x0008;
pub const KEY_COMP_NAME: u16 = 0x0020;
/// The flags a writer derives from the tree itself rather than keeping from the model.
pub const KEY_DERIVED_FLAGS: u16 = KEY_VOLATILE | KEY_HIVE_EXIT | KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME;

/// Layered-key bit fields (byte 13 of `nk`): the top bit is "inherit class", the low two bits
/// the layer semantics.
pub const LAYER_INHERIT_CLASS: u8 = 0x80;
pub const LAYER_SEMANTICS_MASK: u8 = 0x03;

/// `vk` field offsets.
pub mod vk {
    pub const NAME_LEN: usize = 2;
    pub const DATA_SIZE: usize = 4;
    pub const DATA: usize = 8;
    pub const TYPE: usize = 12;
    pub const FLAGS: usize = 16;
    pub const NAME: usize = 20;
}

/// `vk` flags.
pub const VALUE_COMP_NAME: u16 = 0x0001;
pub const VALUE_TOMBSTONE: u16 = 0x0002;
/// Set in a `vk` data size when the data (at most 4 bytes) sits in the data offset field.
pub const DATA_INLINE: u32 = 0x8000_0000;
/// Largest data cell; longer data is split into `db` segments of this size (hives 1.4 and later).
pub const BIG_DATA_SEGMENT: usize = 16344;

/// `sk` field offsets.
pub mod sk {
    pub const FLINK: usize = 4;
    pub const BLINK: usize = 8;
    pub const REFERENCE_COUNT: usize = 12;
    pub const DESCRIPTOR_LEN: usize = 16;
    pub const DESCRIPTOR: usize = 20;
}

/// Most entries in one `lf`/`lh` leaf such that the leaf fits a 4 KiB bin: (4096 − 32 bin
/// header − 4 cell size − 4 list header) / 8. Windows splits a fuller leaf under an `ri`.
pub const LEAF_CAPACITY: usize = 507;

/// The kinds of subkey list cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// `li`: bare key node offsets.
    Li,
    /// `lf`: offsets with the first four name characters (hives 1.3 and 1.4).
    Lf,
    /// `lh`: offsets with a hash of the upper-cased name (hives 1.5 and later).
    Lh,
}

impl LeafKind {
    /// The cell signature.
    pub fn signature(self) -> &'static [u8; 2] {
        match self {
            LeafKind::Li => b"li",
            LeafKind::Lf => b"lf",
            LeafKind::Lh => b"lh",
        }
    }

    /// Bytes per entry.
    pub fn entry_len(self) -> usize {
        if self == LeafKind::Li { 4 } else { 8 }
    }

    /// The leaf Windows writes for a hive of this minor version.
    pub fn for_minor(minor: u32) -> Self {
        if minor >= 5 { LeafKind::Lh } else { LeafKind::Lf }
    }
}

pub fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The base block checksum: XOR of the first 508 bytes as 32-bit words, with 0 and −1
/// replaced by 1 and −2 (the spec, "Base block", note 2).
pub fn checksum(block: &[u8]) -> u32 {
    let x = (0..base::CHECKSUM).step_by(4).fold(0u32, |c, at| c ^ le32(block, at));
    match x {
        0xFFFF_FFFF => 0xFFFF_FFFE,
        0 => 1,
        x => x,
    }
}

/// Encodes a key or value name: as "compressed" Latin-1 bytes when every character is below
/// U+0100 (what Windows does), otherwise as UTF-16LE. Returns the bytes and whether compressed.
pub fn encode_name(name: &str) -> (Vec<u8>, bool) {
    if name.chars().all(|c| (c as u32) < 0x100) {
        (name.chars().map(|c| c as u8).collect(), true)
    } else {
        (name.encode_utf16().flat_map(u16::to_le_bytes).collect(), false)
    }
}

/// Decodes a name stored compressed (Latin-1) or as UTF-16LE; `None` for broken UTF-16.
pub fn decode_name(raw: &[u8], compressed: bool) -> Option<String> {
    if compressed { Some(raw.iter().map(|&b| b as char).collect()) } else { utf16_string(raw) }
}

/// UTF-16LE bytes as a string; `None` for an odd length or unpaired surrogates.
pub fn utf16_string(raw: &[u8]) -> Option<String> {
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    char::decode_utf16(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]))).collect::<Result<_, _>>().ok()
}

/// Upper-cases one UTF-16 code unit the way the key index orders names. ASCII is exact;
/// elsewhere Unicode's simple uppercase mapping stands in for Windows' NLS table (an
/// assumption documented in docs/regf.md), and units with no single-unit uppercase stay.
pub fn upcase(unit: u16) -> u16 {
    if unit < 0x80 {
        return (unit as u8).to_ascii_uppercase() as u16;
    }
    let Some(c) = char::from_u32(unit as u32) else { return unit };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if (u as u32) <= 0xFFFF => u as u16,
        _ => unit,
    }
}

/// The name as upper-cased UTF-16 units: the sort and comparison key of the subkey index (two
/// names are the same key or value name when their keys are equal).
pub fn name_key(name: &str) -> Vec<u16> {
    name.encode_utf16().map(upcase).collect()
}

/// Orders names as the subkey index does (by upper-cased UTF-16 units), without allocating.
pub fn compare_names(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.bytes().map(|c| c.to_ascii_uppercase()).cmp(b.bytes().map(|c| c.to_ascii_uppercase()));
    }
    a.encode_utf16().map(upcase).cmp(b.encode_utf16().map(upcase))
}

/// The `lh` hash: H = 37·H + c over the upper-cased UTF-16 units (the spec, "Hash leaf").
pub fn name_hash(name: &str) -> u32 {
    name.encode_utf16().fold(0u32, |h, c| h.wrapping_mul(37).wrapping_add(upcase(c) as u32))
}

/// The `lf` hint: the first four characters as Latin-1 bytes, zero-padded; all zero when one
/// of them does not fit a byte (the spec, "Fast leaf").
pub fn name_hint(name: &str) -> [u8; 4] {
    let mut hint = [0u8; 4];
    for (slot, unit) in hint.iter_mut().zip(name.encode_utf16()) {
        if unit > 0xFF {
            return [0; 4];
        }
        *slot = unit as u8;
    }
    hint
}

/// Rounds a cell length (including its 4-byte size field) up to the 8-byte cell alignment.
pub fn cell_size(data_len: usize) -> usize {
    (data_len + 4).next_multiple_of(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_the_spec_algorithm() {
        // H = 37·H + c over "ABC": ((65·37)+66)·37+67.
        assert_eq!(name_hash("abc"), (65 * 37 + 66) * 37 + 67);
        assert_eq!(name_hash("Abc"), name_hash("aBC"));
        assert_eq!(name_hash(""), 0);
    }

    #[test]
    fn hints_are_the_first_four_latin1_characters() {
        assert_eq!(name_hint("Software"), *b"Soft");
        assert_eq!(name_hint("ab"), [b'a', b'b', 0, 0]);
        assert_eq!(name_hint("é1234"), [0xE9, b'1', b'2', b'3']);
        assert_eq!(name_hint("a\u{3b1}bc"), [0; 4]);
    }

    #[test]
    fn names_compress_only_when_every_character_fits_a_byte() {
        assert_eq!(encode_name("Caf\u{e9}"), (vec![b'C', b'a', b'f', 0xE9], true));
        let (raw, compressed) = encode_name("\u{3b1}");
        assert!(!compressed);
        assert_eq!(raw, vec![0xB1, 0x03]);
        assert_eq!(decode_name(&raw, false).as_deref(), Some("\u{3b1}"));
        assert_eq!(decode_name(&[0xE9], true).as_deref(), Some("\u{e9}"));
        assert_eq!(decode_name(&[0x00, 0xD8], false), None, "an unpaired surrogate");
    }

    #[test]
    fn upcase_orders_as_windows_does_for_ascii() {
        // Upper-casing (not lower-casing) decides where '_' sorts relative to letters.
        assert!(name_key("AB") < name_key("a_"));
        assert_eq!(compare_names("AB", "a_"), std::cmp::Ordering::Less);
        assert_eq!(compare_names("\u{e9}T\u{c9}", "\u{c9}t\u{e9}"), std::cmp::Ordering::Equal);
        assert_eq!(compare_names("Abc", "abd"), name_key("Abc").cmp(&name_key("abd")));
        assert_eq!(upcase('\u{e9}' as u16), '\u{c9}' as u16);
        assert_eq!(upcase('\u{df}' as u16), '\u{df}' as u16, "ß has no single-unit uppercase");
    }

    #[test]
    fn checksum_special_values() {
        let mut block = vec![0u8; 512];
        assert_eq!(checksum(&block), 1);
        put32(&mut block, 0, 0xFFFF_FFFF);
        assert_eq!(checksum(&block), 0xFFFF_FFFE);
        put32(&mut block, 4, 0x0000_00FF);
        assert_eq!(checksum(&block), 0xFFFF_FF00);
    }
}
