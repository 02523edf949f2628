//! The upcase table a CIM carries (65536 UTF-16 units, entry `c` = upper-case form of `c`) and
//! the name collation directories are sorted by.
//!
//! The table is Windows' own NTFS mapping: it leaves alone what newer Unicode versions added
//! and the compatibility mappings Windows never applied (µ, ı, ſ, ǅ, final sigma, …). It is
//! written here as runs so it does not drift with the Unicode version of the Rust toolchain;
//! a test compares it with the `$UpCase` file `mkntfs` (ntfs-3g) writes.

use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

/// Runs of `(first, last, delta, step)`: every `step`-th unit from `first` to `last` upcases
/// to itself plus `delta`.
const RUNS: &[(u16, u16, i32, u16)] = &[
    (0x0061, 0x007A, -32, 1),
    (0x00E0, 0x00F6, -32, 1),
    (0x00F8, 0x00FE, -32, 1),
    (0x00FF, 0x00FF, 121, 1),
    (0x0101, 0x012F, -1, 2),
    (0x0133, 0x0137, -1, 2),
    (0x013A, 0x0148, -1, 2),
    (0x014B, 0x0177, -1, 2),
    (0x017A, 0x017E, -1, 2),
    (0x0180, 0x0180, 195, 1),
    (0x0183, 0x0185, -1, 2),
    (0x0188, 0x0188, -1, 1),
    (0x018C, 0x018C, -1, 1),
    (0x0192, 0x0192, -1, 1),
    (0x0195, 0x0195, 97, 1),
    (0x0199, 0x0199, -1, 1),
    (0x019A, 0x019A, 163, 1),
    (0x019E, 0x019E, 130, 1),
    (0x01A1, 0x01A5, -1, 2),
    (0x01A8, 0x01A8, -1, 1),
    (0x01AD, 0x01AD, -1, 1),
    (0x01B0, 0x01B0, -1, 1),
    (0x01B4, 0x01B6, -1, 2),
    (0x01B9, 0x01B9, -1, 1),
    (0x01BD, 0x01BD, -1, 1),
    (0x01BF, 0x01BF, 56, 1),
    (0x01C6, 0x01C6, -2, 1),
    (0x01C9, 0x01C9, -2, 1),
    (0x01CC, 0x01CC, -2, 1),
    (0x01CE, 0x01DC, -1, 2),
    (0x01DD, 0x01DD, -79, 1),
    (0x01DF, 0x01EF, -1, 2),
    (0x01F3, 0x01F3, -2, 1),
    (0x01F5, 0x01F5, -1, 1),
    (0x01F9, 0x021F, -1, 2),
    (0x0223, 0x0233, -1, 2),
    (0x023C, 0x023C, -1, 1),
    (0x0242, 0x0242, -1, 1),
    (0x0247, 0x024F, -1, 2),
    (0x0250, 0x0250, 10783, 1),
    (0x0251, 0x0251, 10780, 1),
    (0x0253, 0x0253, -210, 1),
    (0x0254, 0x0254, -206, 1),
    (0x0256, 0x0257, -205, 1),
    (0x0259, 0x0259, -202, 1),
    (0x025B, 0x025B, -203, 1),
    (0x0260, 0x0260, -205, 1),
    (0x0263, 0x0263, -207, 1),
    (0x0268, 0x0268, -209, 1),
    (0x0269, 0x0269, -211, 1),
    (0x026B, 0x026B, 10743, 1),
    (0x026F, 0x026F, -211, 1),
    (0x0271, 0x0271, 10749, 1),
    (0x0272, 0x0272, -213, 1),
    (0x0275, 0x0275, -214, 1),
    (0x027D, 0x027D, 10727, 1),
    (0x0280, 0x0280, -218, 1),
    (0x0283, 0x0283, -218, 1),
    (0x0288, 0x0288, -218, 1),
    (0x0289, 0x0289, -69, 1),
    (0x028A, 0x028B, -217, 1),
    (0x028C, 0x028C, -71, 1),
    (0x0292, 0x0292, -219, 1),
    (0x0371, 0x0373, -1, 2),
    (0x0377, 0x0377, -1, 1),
    (0x037B, 0x037D, 130, 1),
    (0x03AC, 0x03AC, -38, 1),
    (0x03AD, 0x03AF, -37, 1),
    (0x03B1, 0x03C1, -32, 1),
    (0x03C3, 0x03CB, -32, 1),
    (0x03CC, 0x03CC, -64, 1),
    (0x03CD, 0x03CE, -63, 1),
    (0x03D7, 0x03D7, -8, 1),
    (0x03D9, 0x03EF, -1, 2),
    (0x03F2, 0x03F2, 7, 1),
    (0x03F8, 0x03F8, -1, 1),
    (0x03FB, 0x03FB, -1, 1),
    (0x0430, 0x044F, -32, 1),
    (0x0450, 0x045F, -80, 1),
    (0x0461, 0x0481, -1, 2),
    (0x048B, 0x04BF, -1, 2),
    (0x04C2, 0x04CE, -1, 2),
    (0x04CF, 0x04CF, -15, 1),
    (0x04D1, 0x0523, -1, 2),
    (0x0561, 0x0586, -48, 1),
    (0x1D79, 0x1D79, 35332, 1),
    (0x1D7D, 0x1D7D, 3814, 1),
    (0x1E01, 0x1E95, -1, 2),
    (0x1EA1, 0x1EFF, -1, 2),
    (0x1F00, 0x1F07, 8, 1),
    (0x1F10, 0x1F15, 8, 1),
    (0x1F20, 0x1F27, 8, 1),
    (0x1F30, 0x1F37, 8, 1),
    (0x1F40, 0x1F45, 8, 1),
    (0x1F51, 0x1F57, 8, 2),
    (0x1F60, 0x1F67, 8, 1),
    (0x1F70, 0x1F71, 74, 1),
    (0x1F72, 0x1F75, 86, 1),
    (0x1F76, 0x1F77, 100, 1),
    (0x1F78, 0x1F79, 128, 1),
    (0x1F7A, 0x1F7B, 112, 1),
    (0x1F7C, 0x1F7D, 126, 1),
    (0x1F80, 0x1F87, 8, 1),
    (0x1F90, 0x1F97, 8, 1),
    (0x1FA0, 0x1FA7, 8, 1),
    (0x1FB0, 0x1FB1, 8, 1),
    (0x1FB3, 0x1FB3, 9, 1),
    (0x1FC3, 0x1FC3, 9, 1),
    (0x1FD0, 0x1FD1, 8, 1),
    (0x1FE0, 0x1FE1, 8, 1),
    (0x1FE5, 0x1FE5, 7, 1),
    (0x1FF3, 0x1FF3, 9, 1),
    (0x214E, 0x214E, -28, 1),
    (0x2170, 0x217F, -16, 1),
    (0x2184, 0x2184, -1, 1),
    (0x24D0, 0x24E9, -26, 1),
    (0x2C30, 0x2C5E, -48, 1),
    (0x2C61, 0x2C61, -1, 1),
    (0x2C65, 0x2C65, -10795, 1),
    (0x2C66, 0x2C66, -10792, 1),
    (0x2C68, 0x2C6C, -1, 2),
    (0x2C73, 0x2C73, -1, 1),
    (0x2C76, 0x2C76, -1, 1),
    (0x2C81, 0x2CE3, -1, 2),
    (0x2D00, 0x2D25, -7264, 1),
    (0xA641, 0xA65F, -1, 2),
    (0xA663, 0xA66D, -1, 2),
    (0xA681, 0xA697, -1, 2),
    (0xA723, 0xA72F, -1, 2),
    (0xA733, 0xA76F, -1, 2),
    (0xA77A, 0xA77C, -1, 2),
    (0xA77F, 0xA787, -1, 2),
    (0xA78C, 0xA78C, -1, 1),
    (0xFF41, 0xFF5A, -32, 1),
];

/// Entries in an upcase table: one per BMP code unit.
pub const UPCASE_LEN: usize = 0x10000;

/// An upcase table and the collation it defines.
#[derive(Clone, PartialEq, Eq)]
pub struct Upcase(Arc<[u16]>);

impl std::fmt::Debug for Upcase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upcase({})", if *self == Upcase::windows() { "windows" } else { "custom" })
    }
}

impl Upcase {
    /// Windows' table, the one winlayer writes into new images.
    pub fn windows() -> Upcase {
        static TABLE: OnceLock<Arc<[u16]>> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            let mut table: Vec<u16> = (0..=u16::MAX).collect();
            for &(first, last, delta, step) in RUNS {
                for c in (first..=last).step_by(step as usize) {
                    table[c as usize] = (c as i32 + delta) as u16;
                }
            }
            table.into()
        });
        Upcase(table.clone())
    }

    /// A table read from an image (`bytes` must hold 65536 little-endian units).
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Upcase> {
        (bytes.len() == 2 * UPCASE_LEN)
            .then(|| Upcase(bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()))
    }

    /// The table as stored.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|u| u.to_le_bytes()).collect()
    }

    /// The upper-case form of one UTF-16 unit.
    pub fn unit(&self, u: u16) -> u16 {
        self.0[u as usize]
    }

    /// The upper-case form of one code point: BMP values through the table, others as they are.
    fn up(&self, c: u32) -> u32 {
        if c < UPCASE_LEN as u32 { self.0[c as usize] as u32 } else { c }
    }

    /// The collation key of a name: the name with BMP characters upcased. Keys compare (by
    /// code point, as strings do) the way Microsoft's reader compares names, so sorting by
    /// key gives the directory order. (A table that upcases to a surrogate, which Windows'
    /// does not, leaves that character as it is.)
    pub fn key(&self, name: &str) -> String {
        self.chars(name).collect()
    }

    /// The characters of [`Upcase::key`], without collecting them.
    pub fn chars<'a>(&'a self, name: &'a str) -> impl Iterator<Item = char> + 'a {
        name.chars().map(|c| char::from_u32(self.up(c as u32)).unwrap_or(c))
    }

    /// Compares a stored UTF-16 name with a query the way Microsoft's reader does: code point
    /// by code point (surrogate pairs combined and not upcased, BMP values upcased), a prefix
    /// first. An unpaired surrogate in the stored name compares as its own value.
    pub fn cmp_stored(&self, stored: &[u16], query: &str) -> Ordering {
        let stored = char::decode_utf16(stored.iter().copied()).map(|r| match r {
            Ok(c) => self.up(c as u32),
            Err(e) => e.unpaired_surrogate() as u32,
        });
        stored.cmp(query.chars().map(|c| self.up(c as u32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_latin_and_exceptions() {
        let t = Upcase::windows();
        assert_eq!(t.key("aZ_é"), "AZ_É");
        // Mappings Windows never applied stay as they are.
        assert_eq!(t.key("µıſ"), "µıſ");
        // Supplementary characters are not upcased.
        assert_eq!(t.key("𐐨"), "𐐨");
        assert_eq!(t.cmp_stored(&"readme.TXT".encode_utf16().collect::<Vec<_>>(), "README.txt"), Ordering::Equal);
        assert_eq!(t.cmp_stored(&"a".encode_utf16().collect::<Vec<_>>(), "ab"), Ordering::Less);
        assert_eq!(t.cmp_stored(&[0xD800], "a"), Ordering::Greater);
    }
}
