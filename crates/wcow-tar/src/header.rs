//! The 512-byte tar header block (ustar, GNU and v7 layouts) and PAX extended-header records.

use std::fmt::Write as _;

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Largest value an 11-digit octal field holds.
pub const OCTAL_11_MAX: u64 = 0o777_7777_7777;

/// Offsets and lengths of the header fields.
mod field {
    pub const NAME: (usize, usize) = (0, 100);
    pub const MODE: (usize, usize) = (100, 8);
    pub const UID: (usize, usize) = (108, 8);
    pub const GID: (usize, usize) = (116, 8);
    pub const SIZE: (usize, usize) = (124, 12);
    pub const MTIME: (usize, usize) = (136, 12);
    pub const CHKSUM: (usize, usize) = (148, 8);
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: (usize, usize) = (157, 100);
    pub const MAGIC: (usize, usize) = (257, 8);
    pub const DEVMAJOR: (usize, usize) = (329, 8);
    pub const DEVMINOR: (usize, usize) = (337, 8);
    pub const PREFIX: (usize, usize) = (345, 155);
}

/// The fields of a header block that the layer dialect uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Name (ustar prefix joined), as bytes.
    pub name: Vec<u8>,
    /// Type flag.
    pub typeflag: u8,
    /// Size of the data that follows.
    pub size: u64,
    /// Modification time, whole seconds since 1970.
    pub mtime: i64,
    /// Link target.
    pub linkname: Vec<u8>,
}

fn slice(block: &[u8; BLOCK], (at, len): (usize, usize)) -> &[u8] {
    &block[at..at + len]
}

fn cstr(bytes: &[u8]) -> &[u8] {
    bytes.iter().position(|&b| b == 0).map_or(bytes, |n| &bytes[..n])
}

/// Parses a numeric field: octal (space/NUL padded) or GNU base-256.
fn number(bytes: &[u8], what: &str) -> Result<i64, String> {
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        // Base-256: big-endian two's complement, first byte's top bit is the marker.
        let negative = bytes[0] & 0x40 != 0;
        let mut v: i128 = if negative { -1 } else { 0 };
        for (i, &b) in bytes.iter().enumerate() {
            let b = if i == 0 { b & 0x7F | if negative { 0x80 } else { 0 } } else { b };
            v = (v << 8) | b as i128;
            if !(i64::MIN as i128..=i64::MAX as i128).contains(&v) {
                return Err(format!("{what} field overflows 64 bits"));
            }
        }
        return Ok(v as i64);
    }
    // Octal digits, optionally surrounded by spaces and ended by NUL or space.
    let digits = bytes.iter().skip_while(|&&b| b == b' ').take_while(|&&b| b != 0 && b != b' ');
    let mut value: i64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            let shown = if bytes.iter().all(|b| b.is_ascii_graphic() || matches!(b, b' ' | 0)) {
                format!("{:?}", String::from_utf8_lossy(bytes).trim_end_matches('\0'))
            } else {
                bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
            };
            return Err(format!("{what} field ({shown}) is not octal"));
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add((b - b'0') as i64))
            .ok_or_else(|| format!("{what} field overflows"))?;
    }
    Ok(value)
}

impl Header {
    /// Whether the block is all zeros (an end-of-archive marker).
    pub fn is_zero(block: &[u8; BLOCK]) -> bool {
        block.iter().all(|&b| b == 0)
    }

    /// Parses a header block, checking its checksum and magic.
    pub fn parse(block: &[u8; BLOCK]) -> Result<Header, String> {
        let stored = number(slice(block, field::CHKSUM), "checksum")
            .map_err(|e| format!("{e}: not a tar header, or corrupt"))?;
        // The checksum counts its own field as eight spaces; old writers summed signed bytes.
        let field = slice(block, field::CHKSUM);
        let unsigned =
            block.iter().map(|&b| b as i64).sum::<i64>() - field.iter().map(|&b| b as i64).sum::<i64>() + 8 * 32;
        if stored != unsigned {
            let signed = block.iter().map(|&b| b as i8 as i64).sum::<i64>()
                - field.iter().map(|&b| b as i8 as i64).sum::<i64>()
                + 8 * 32;
            if stored != signed {
                return Err(format!(
                    "header checksum mismatch (stored {stored}, computed {unsigned}): not a tar header, or corrupt"
                ));
            }
        }
        let magic = slice(block, field::MAGIC);
        let ustar = magic == b"ustar\x0000";
        let gnu = magic == b"ustar  \x00";
        if !ustar && !gnu && magic.iter().any(|&b| b != 0) {
            return Err(format!("unknown header magic {:?}", String::from_utf8_lossy(magic)));
        }
        let mut name = cstr(slice(block, field::NAME)).to_vec();
        if ustar {
            let prefix = cstr(slice(block, field::PREFIX));
            if !prefix.is_empty() {
                name = [prefix, b"/", &name].concat();
            }
        }
        let size = number(slice(block, field::SIZE), "size")?;
        if size < 0 {
            return Err("negative size".into());
        }
        Ok(Header {
            name,
            typeflag: block[field::TYPEFLAG],
            size: size as u64,
            mtime: number(slice(block, field::MTIME), "mtime")?,
            linkname: cstr(slice(block, field::LINKNAME)).to_vec(),
        })
    }
}

/// Writes header blocks in the one layout the canonical form uses: POSIX ustar, uid/gid 0,
/// empty user and group names.
pub struct HeaderBuilder {
    block: [u8; BLOCK],
}

impl HeaderBuilder {
    /// A ustar header with the given name (at most 100 bytes), type, permission bits, size and
    /// modification time; sizes past 8 GiB are stored base-256.
    pub fn new(name: &[u8], typeflag: u8, mode: u32, size: u64, mtime: u64) -> Self {
        let mut h = HeaderBuilder { block: [0; BLOCK] };
        h.bytes(field::NAME, name);
        h.octal(field::MODE, mode as u64);
        h.octal(field::UID, 0);
        h.octal(field::GID, 0);
        if size <= OCTAL_11_MAX {
            h.octal(field::SIZE, size);
        } else {
            let (at, len) = field::SIZE;
            h.block[at] = 0x80;
            h.block[at + len - 8..at + len].copy_from_slice(&size.to_be_bytes());
        }
        h.octal(field::MTIME, mtime.min(OCTAL_11_MAX));
        h.block[field::TYPEFLAG] = typeflag;
        h.bytes(field::MAGIC, b"ustar\x0000");
        h.octal(field::DEVMAJOR, 0);
        h.octal(field::DEVMINOR, 0);
        h
    }

    /// Sets the link name (at most 100 bytes).
    pub fn linkname(mut self, linkname: &[u8]) -> Self {
        self.bytes(field::LINKNAME, linkname);
        self
    }

    fn bytes(&mut self, (at, len): (usize, usize), value: &[u8]) {
        let n = value.len().min(len);
        self.block[at..at + n].copy_from_slice(&value[..n]);
    }

    fn octal(&mut self, (at, len): (usize, usize), value: u64) {
        let text = format!("{value:0width$o}", width = len - 1);
        self.block[at..at + len - 1].copy_from_slice(text.as_bytes());
        self.block[at + len - 1] = 0;
    }

    /// The finished block, checksum filled in.
    pub fn finish(mut self) -> [u8; BLOCK] {
        self.block[148..156].fill(b' ');
        let sum: u32 = self.block.iter().map(|&b| b as u32).sum();
        let text = format!("{sum:06o}\0 ");
        self.block[148..156].copy_from_slice(text.as_bytes());
        self.block
    }
}

/// Parses a PAX extended header: `"<len> <key>=<value>\n"` records, each length counting the
/// whole record. Later records for the same key replace earlier ones.
pub fn parse_pax(blob: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        // Some writers pad the blob with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest.iter().take(20).position(|&b| b == b' ').ok_or("PAX record without a length")?;
        let len_text =
            std::str::from_utf8(&rest[..space]).ok().filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
        let len: usize = len_text.and_then(|t| t.parse().ok()).ok_or("PAX record length is not a decimal number")?;
        if len <= space + 1 || len > rest.len() {
            return Err(format!("PAX record length {len} does not fit the {} bytes left", rest.len()));
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").ok_or("PAX record does not end with a newline (length is wrong)")?;
        let eq = record.iter().position(|&b| b == b'=').ok_or("PAX record without '='")?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| "PAX record key is not UTF-8")?;
        if key.is_empty() {
            return Err("PAX record with an empty key".into());
        }
        let value = record[eq + 1..].to_vec();
        match records.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => records.push((key.to_string(), value)),
        }
        rest = &rest[len..];
    }
    Ok(records)
}

/// Encodes one PAX record; the length prefix counts itself.
pub fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + body.to_string().len();
    if len.to_string().len() != (len - body) {
        len += 1;
    }
    let mut prefix = String::new();
    let _ = write!(prefix, "{len} {key}=");
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_round_trips_through_parser() {
        let block = HeaderBuilder::new(b"Files/a", b'0', 0o644, 1234, 1_600_000_000).linkname(b"x").finish();
        let h = Header::parse(&block).unwrap();
        assert_eq!(
            (h.name.as_slice(), h.typeflag, h.size, h.mtime, h.linkname.as_slice()),
            (&b"Files/a"[..], b'0', 1234, 1_600_000_000, &b"x"[..])
        );
        let big = Header::parse(&HeaderBuilder::new(b"f", b'0', 0o644, 1 << 40, 0).finish()).unwrap();
        assert_eq!(big.size, 1 << 40);
    }

    #[test]
    fn checksum_and_magic_are_checked() {
        let mut block = HeaderBuilder::new(b"f", b'0', 0o644, 1, 0).finish();
        block[0] = b'g';
        assert!(Header::parse(&block).unwrap_err().contains("checksum"));
        let mut block = HeaderBuilder::new(b"f", b'0', 0o644, 1, 0).finish();
        block[257..265].copy_from_slice(b"notustar");
        assert!(Header::parse(&block).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0", "m").unwrap(), 0o644);
        assert_eq!(number(b"  644 \0", "m").unwrap(), 0o644);
        assert_eq!(number(&[0xFF; 12], "m").unwrap(), -1);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "m").unwrap(), 256);
        assert!(number(b"0009\0", "m").is_err());
        assert!(number(&[0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], "m").is_err());
    }

    #[test]
    fn pax_records() {
        let mut blob = Vec::new();
        for (k, v) in [("path", &b"Files/x"[..]), ("MSWINDOWS.fileattr", b"32"), ("k", &[b'v'; 95][..])] {
            pax_record(&mut blob, k, v);
        }
        let parsed = parse_pax(&blob).unwrap();
        assert_eq!(parsed[0], ("path".to_string(), b"Files/x".to_vec()));
        assert_eq!(parsed[2].1.len(), 95);
        assert!(blob.starts_with(b"16 path=Files/x\n"));
        // 95 + "k" + 3 = 99 body bytes: the length becomes 102 (three digits).
        assert!(blob.ends_with(b"v\n") && std::str::from_utf8(&blob).unwrap().contains("\n102 k="));
        for bad in [&b"5 a=b\n"[..], b"99 a=b\n", b"x a=b\n", b"6 ab\n\n", b"7 =bcd\n", b"6 a=bc", b"7 a=bc!"] {
            assert!(parse_pax(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
