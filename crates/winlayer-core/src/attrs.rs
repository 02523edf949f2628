//! Win32 file attribute bits (`FILE_ATTRIBUTE_*`).

/// FILE_ATTRIBUTE_READONLY.
pub const READONLY: u32 = 0x1;
/// FILE_ATTRIBUTE_HIDDEN.
pub const HIDDEN: u32 = 0x2;
/// FILE_ATTRIBUTE_SYSTEM.
pub const SYSTEM: u32 = 0x4;
/// FILE_ATTRIBUTE_DIRECTORY.
pub const DIRECTORY: u32 = 0x10;
/// FILE_ATTRIBUTE_ARCHIVE.
pub const ARCHIVE: u32 = 0x20;
/// FILE_ATTRIBUTE_NORMAL.
pub const NORMAL: u32 = 0x80;
/// FILE_ATTRIBUTE_TEMPORARY.
pub const TEMPORARY: u32 = 0x100;
/// FILE_ATTRIBUTE_SPARSE_FILE.
pub const SPARSE_FILE: u32 = 0x200;
/// FILE_ATTRIBUTE_REPARSE_POINT.
pub const REPARSE_POINT: u32 = 0x400;
/// FILE_ATTRIBUTE_COMPRESSED.
pub const COMPRESSED: u32 = 0x800;
/// FILE_ATTRIBUTE_OFFLINE.
pub const OFFLINE: u32 = 0x1000;
/// FILE_ATTRIBUTE_NOT_CONTENT_INDEXED.
pub const NOT_CONTENT_INDEXED: u32 = 0x2000;
/// FILE_ATTRIBUTE_ENCRYPTED.
pub const ENCRYPTED: u32 = 0x4000;
/// FILE_ATTRIBUTE_INTEGRITY_STREAM.
pub const INTEGRITY_STREAM: u32 = 0x8000;

/// One letter per attribute, in the order listings show them (`attrib`-like).
const LETTERS: &[(u32, char)] = &[
    (READONLY, 'R'),
    (HIDDEN, 'H'),
    (SYSTEM, 'S'),
    (DIRECTORY, 'D'),
    (ARCHIVE, 'A'),
    (NORMAL, 'N'),
    (TEMPORARY, 'T'),
    (SPARSE_FILE, 'P'),
    (REPARSE_POINT, 'L'),
    (COMPRESSED, 'C'),
    (OFFLINE, 'O'),
    (NOT_CONTENT_INDEXED, 'I'),
    (ENCRYPTED, 'E'),
    (INTEGRITY_STREAM, 'V'),
];

/// The attribute letters of `attrs` (`RHSDANTPLCOIEV`), `-` when none is set; bits without a
/// letter are only visible in the hex form.
pub fn letters(attrs: u32) -> String {
    let s: String = LETTERS.iter().filter(|(bit, _)| attrs & bit != 0).map(|(_, c)| *c).collect();
    if s.is_empty() { "-".to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_letters() {
        assert_eq!(letters(DIRECTORY), "D");
        assert_eq!(letters(ARCHIVE | SYSTEM | HIDDEN), "HSA");
        assert_eq!(letters(REPARSE_POINT | DIRECTORY), "DL");
        assert_eq!(letters(0), "-");
        assert_eq!(letters(0x10_0000), "-");
    }
}
