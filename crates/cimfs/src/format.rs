//! The on-disk structures of a classic CIM, format 2.0, as Microsoft's own 2021 reader expects
//! them (hcsshim `internal/cimfs/format`; see docs/cimfs.md for every field's source and which
//! values are known, inferred or unknown). All integers are little-endian; every structure is
//! naturally aligned, so these `repr(C)` types are exactly the packed on-disk bytes.

use std::fmt;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `cimfile0`, the first eight bytes of every CIM file.
pub const MAGIC: [u8; 8] = *b"cimfile0";
/// The format version winlayer writes.
pub const VERSION_MAJOR: u32 = 2;
/// Majors Microsoft's readers accept (2021: only 2; since 2022: 2 and 3).
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 2..=3;
/// Data of large files is aligned to pages in data regions.
pub const PAGE_SIZE: u64 = 4096;
/// Metadata objects and small-file data are aligned to 8 bytes.
pub const SMALL_ALIGN: u64 = 8;
/// File records per file table.
pub const FILES_PER_TABLE: u32 = 1024;
/// The longest name component, in UTF-16 units.
pub const MAX_NAME_UNITS: usize = 255;
/// Region indexes are 16 bits, and a filesystem may use at most this many regions.
pub const MAX_REGIONS: usize = 0x10000;
/// Byte offsets inside a region are 48 bits.
pub const MAX_REGION_BYTES: u64 = 1 << 48;

/// The `file_type` of the common header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// The filesystem file (`<name>.cim`).
    Filesystem = 0,
    /// A region file (`region_<guid>_<n>`).
    Region = 1,
    /// An object-ID file (`objectid_<guid>_<n>`).
    ObjectId = 2,
}

/// What a region file holds (the reader ignores it; the values are the intended enumeration of
/// Microsoft's source, whose constants all evaluate to 0 by a slip).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegionType {
    /// Metadata objects, 8-byte aligned.
    Metadata = 0,
    /// Page-aligned file data.
    Data = 1,
    /// 8-byte-aligned data of small files.
    SmallData = 2,
}

impl RegionType {
    /// From the header byte.
    pub fn from_byte(b: u8) -> Option<RegionType> {
        [RegionType::Metadata, RegionType::Data, RegionType::SmallData].into_iter().find(|t| *t as u8 == b)
    }
}

/// A location: region index (bits 63..48, in the filesystem's global region list) and byte
/// offset from the start of that region file (bits 47..0). Zero means "absent".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionOffset(pub u64);

impl RegionOffset {
    /// The absent object.
    pub const NULL: RegionOffset = RegionOffset(0);

    /// Byte `offset` of region `index`.
    pub fn new(index: u16, offset: u64) -> RegionOffset {
        debug_assert!(offset < MAX_REGION_BYTES);
        RegionOffset((index as u64) << 48 | offset)
    }

    /// The region index.
    pub fn region(self) -> u16 {
        (self.0 >> 48) as u16
    }

    /// The byte offset inside the region file.
    pub fn offset(self) -> u64 {
        self.0 & (MAX_REGION_BYTES - 1)
    }

    /// Whether this is the null offset.
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for RegionOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "region {} byte 0x{:x}", self.region(), self.offset())
    }
}

/// A GUID in Windows' mixed-endian byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(transparent)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// A name-based GUID (RFC 9562 version 8) from a 32-byte digest, so the same content
    /// always gets the same GUID.
    pub fn from_digest(digest: &[u8; 32]) -> Guid {
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        // Version 8 in the high nibble of data3 (little-endian: byte 7), RFC variant in byte 8.
        b[7] = (b[7] & 0x0F) | 0x80;
        b[8] = (b[8] & 0x3F) | 0x80;
        Guid(b)
    }
}

impl fmt::Display for Guid {
    /// Lower-case `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as Microsoft's reader names region files.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let d1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let d2 = u16::from_le_bytes([b[4], b[5]]);
        let d3 = u16::from_le_bytes([b[6], b[7]]);
        write!(f, "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-", b[8], b[9])?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02x}"))
    }
}

/// The name of region file `n` of a region set.
pub fn region_file_name(id: Guid, n: u16) -> String {
    format!("region_{id}_{n}")
}

/// The name of object-ID file `n` of a region set.
pub fn objectid_file_name(id: Guid, n: u16) -> String {
    format!("objectid_{id}_{n}")
}

/// The first 32 bytes of every CIM file.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CommonHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Not checked by any known reader; winlayer writes the size of the whole fixed header.
    pub header_length: U32,
    /// A [`FileType`].
    pub file_type: u8,
    /// Zero.
    pub reserved: u8,
    /// Zero.
    pub reserved2: U16,
    /// Format major version.
    pub major: U32,
    /// Format minor version (0; ignored by readers).
    pub minor: U32,
    /// Zero.
    pub reserved3: U64,
}

impl CommonHeader {
    /// A version-2.0 header of `file_type` for a header of `len` bytes.
    pub fn new(file_type: FileType, len: usize) -> CommonHeader {
        CommonHeader {
            magic: MAGIC,
            header_length: U32::new(len as u32),
            file_type: file_type as u8,
            reserved: 0,
            reserved2: U16::ZERO,
            major: U32::new(VERSION_MAJOR),
            minor: U32::ZERO,
            reserved3: U64::ZERO,
        }
    }

    /// Checks magic, version and file type, saying what is wrong.
    pub fn check(&self, want: FileType) -> Result<(), String> {
        if self.magic != MAGIC {
            return Err(format!("not a CIM file (magic {:02x?}, expected \"cimfile0\")", self.magic));
        }
        let major = self.major.get();
        if !SUPPORTED_MAJORS.contains(&major) {
            return Err(format!("unsupported format version {major}.{} (2.x and 3.x are read)", self.minor.get()));
        }
        if self.file_type != want as u8 {
            return Err(format!("file type {} where {:?} ({}) was expected", self.file_type, want, want as u8));
        }
        Ok(())
    }
}

/// A region set: `count` region files named after `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RegionSet {
    /// The set's GUID.
    pub id: Guid,
    /// Number of region files.
    pub count: U16,
    /// Zero.
    pub reserved: U16,
    /// Zero.
    pub reserved1: U32,
}

/// The fixed part of `<name>.cim` (72 bytes); `parent_count` [`RegionSet`]s follow.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FilesystemHeader {
    /// File type 0.
    pub common: CommonHeader,
    /// This image's own region set.
    pub regions: RegionSet,
    /// Where the [`Filesystem`] object lies.
    pub filesystem_offset: U64,
    /// Zero.
    pub reserved: U32,
    /// Zero.
    pub reserved1: U16,
    /// Number of parent region sets after the header.
    pub parent_count: U16,
}

/// The header of a region file (40 bytes); objects follow.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RegionHeader {
    /// File type 1.
    pub common: CommonHeader,
    /// The region's number inside its set (the `<n>` of its name).
    pub index: U16,
    /// A [`RegionType`].
    pub region_type: u8,
    /// Zero.
    pub reserved: u8,
    /// Zero.
    pub reserved2: U32,
}

impl RegionHeader {
    /// The header of region `<n>` of a set, holding `kind` objects.
    pub fn new(n: u16, kind: RegionType) -> RegionHeader {
        RegionHeader {
            common: CommonHeader::new(FileType::Region, size_of::<RegionHeader>()),
            index: U16::new(n),
            region_type: kind as u8,
            reserved: 0,
            reserved2: U32::ZERO,
        }
    }
}

/// The header of an object-ID file (48 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ObjectIdHeader {
    /// File type 2.
    pub common: CommonHeader,
    /// As in the region header.
    pub index: U16,
    /// As in the region header.
    pub region_type: u8,
    /// Zero.
    pub reserved: u8,
    /// Zero.
    pub reserved2: U32,
    /// Byte offset of the entry table in this file.
    pub table_offset: U32,
    /// Number of entries.
    pub count: U32,
}

/// One object of a region, identified by length and digest (used at write time to share data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ObjectIdEntry {
    /// Object length in bytes.
    pub length: U64,
    /// Content digest. Windows' algorithm is not public; winlayer stores the first 24 bytes of
    /// the BLAKE3 hash and never trusts an entry without checking the bytes.
    pub digest: [u8; 24],
    /// Byte offset in the region file.
    pub offset: U64,
}

/// The filesystem object (24 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Filesystem {
    /// The [`crate::upcase::Upcase`] table (65536 u16).
    pub upcase_table_offset: U64,
    /// The array of [`FileTableDirectoryEntry`].
    pub file_table_directory_offset: U64,
    /// Entries in that array.
    pub file_table_directory_length: U32,
    /// FileID of the root directory.
    pub root_directory: U32,
}

/// Where one file table lies (16 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FileTableDirectoryEntry {
    /// The table.
    pub offset: U64,
    /// Valid records in it (at most [`FILES_PER_TABLE`]).
    pub count: U16,
    /// Bytes per record (88 in 1.0, 96 in 2.0; readers take what they know of longer ones).
    pub entry_size: U16,
    /// Zero.
    pub reserved: U32,
}

/// The kind of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamType {
    /// Bytes at the data offset.
    Data = 0,
    /// A directory's link table of FileIDs.
    LinkTable = 1,
    /// A [`PeImage`] object describing an expanded PE image.
    PeImage = 2,
}

/// A stream descriptor (16 bytes): where the data lies, its length (bits 0..48), type
/// (bits 48..56) and the sparse bit (56).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Stream {
    /// The data, link table or PE image object.
    pub data_offset: U64,
    /// Length, type and sparse bit.
    pub length_and_type: U64,
}

const SPARSE_BIT: u64 = 1 << 56;

impl Stream {
    /// A stream of `kind` at `at`, `len` bytes long.
    pub fn new(kind: StreamType, at: RegionOffset, len: u64) -> Stream {
        Stream { data_offset: U64::new(at.0), length_and_type: U64::new(len | (kind as u64) << 48) }
    }

    /// A stream of `len` zero bytes with no data.
    pub fn sparse(len: u64) -> Stream {
        Stream { data_offset: U64::ZERO, length_and_type: U64::new(len | SPARSE_BIT) }
    }

    /// Where the data is.
    pub fn at(&self) -> RegionOffset {
        RegionOffset(self.data_offset.get())
    }

    /// Logical length in bytes.
    pub fn len(&self) -> u64 {
        self.length_and_type.get() & (MAX_REGION_BYTES - 1)
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type byte.
    pub fn type_byte(&self) -> u8 {
        (self.length_and_type.get() >> 48) as u8
    }

    /// The type, when it is a known one.
    pub fn kind(&self) -> Option<StreamType> {
        [StreamType::Data, StreamType::LinkTable, StreamType::PeImage]
            .into_iter()
            .find(|t| *t as u8 == self.type_byte())
    }

    /// Whether every byte reads as zero with no data stored.
    pub fn is_sparse(&self) -> bool {
        self.length_and_type.get() & SPARSE_BIT != 0
    }
}

/// An expanded PE image (24 bytes), followed by `mapping_count` [`PeImageMapping`]s.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PeImage {
    /// The on-disk (expanded) bytes.
    pub data_offset: U64,
    /// Their length; bit 63 is cleared by the reader (its meaning is not public).
    pub data_length: U64,
    /// SizeOfImage, presumably.
    pub image_length: U32,
    /// Mappings that follow.
    pub mapping_count: U16,
    /// Not public ("ValidImage").
    pub flags: U16,
}

/// From logical `file_offset` on (until the next mapping), bytes lie `delta` further on disk.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PeImageMapping {
    /// Logical offset where the mapping starts.
    pub file_offset: U32,
    /// Added to logical offsets to find the bytes.
    pub delta: U32,
}

/// File record flag bits, and the FILE_ATTRIBUTE_* bit each one stands for.
pub const FLAG_ATTRIBUTES: [(u16, u32); 5] = [
    (1 << 0, winlayer_core::attrs::READONLY),
    (1 << 1, winlayer_core::attrs::HIDDEN),
    (1 << 2, winlayer_core::attrs::SYSTEM),
    (1 << 3, winlayer_core::attrs::ARCHIVE),
    (1 << 4, winlayer_core::attrs::SPARSE_FILE),
];

/// The record flags that keep what they can of `attributes`.
pub fn flags_from_attributes(attributes: u32) -> u16 {
    FLAG_ATTRIBUTES.iter().filter(|(_, a)| attributes & a != 0).map(|(f, _)| f).sum()
}

/// A file record (96 bytes in 2.0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FileRecord {
    /// Read-only, hidden, system, archive, sparse ([`FLAG_ATTRIBUTES`]).
    pub flags: U16,
    /// Bytes of the EA buffer.
    pub ea_length: U16,
    /// The reparse tag (repeated from the reparse buffer), 0 if none.
    pub reparse_tag: U32,
    /// FILETIME.
    pub creation_time: U64,
    /// FILETIME.
    pub last_write_time: U64,
    /// FILETIME.
    pub change_time: U64,
    /// FILETIME.
    pub last_access_time: U64,
    /// File data, a directory's link table, or a PE image.
    pub default_stream: Stream,
    /// u16-counted self-relative security descriptor.
    pub sd_offset: U64,
    /// FILE_FULL_EA_INFORMATION list of `ea_length` bytes.
    pub ea_offset: U64,
    /// u16-counted REPARSE_DATA_BUFFER.
    pub reparse_offset: U64,
    /// u32-counted link table of alternate streams.
    pub stream_table_offset: U64,
    /// FileID of the (first) directory holding the file; the root names itself.
    pub parent_file_id: U32,
    /// Not public; 0.
    pub base_region_index: U16,
    /// Zero.
    pub reserved: U16,
}

/// Size of a 2.0 file record.
pub const FILE_RECORD_LEN: usize = size_of::<FileRecord>();

impl FileRecord {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.default_stream.kind() == Some(StreamType::LinkTable)
    }

    /// The FILE_ATTRIBUTE_* bits Windows shows for the record.
    pub fn attributes(&self) -> u32 {
        let flags = self.flags.get();
        let mut a: u32 = FLAG_ATTRIBUTES.iter().filter(|(f, _)| flags & f != 0).map(|(_, a)| a).sum();
        if self.is_dir() {
            a |= winlayer_core::attrs::DIRECTORY;
        }
        if self.reparse_offset.get() != 0 {
            a |= winlayer_core::attrs::REPARSE_POINT;
        }
        a
    }
}

/// Size of a link table's header (byte length, then entry count).
pub const LINK_TABLE_HEADER: usize = 8;

/// Encodes a link table: `entries` (already in collation order) as (name, value bytes), every
/// value `value_len` bytes long.
pub fn encode_link_table(entries: &[(&[u16], &[u8])], value_len: usize) -> Vec<u8> {
    let n = entries.len();
    let names_at = LINK_TABLE_HEADER + n * (value_len + 4);
    let total = names_at + entries.iter().map(|(name, _)| 2 + 2 * name.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    entries.iter().for_each(|(_, v)| out.extend_from_slice(v));
    let mut at = names_at;
    for (name, _) in entries {
        out.extend_from_slice(&(at as u32).to_le_bytes());
        at += 2 + 2 * name.len();
    }
    for (name, _) in entries {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        name.iter().for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
    }
    debug_assert_eq!(out.len(), total);
    out
}

/// A checked view of a link table: `len()` entries, each a value and a UTF-16 name.
pub struct LinkTable<'a> {
    bytes: &'a [u8],
    count: usize,
    value_len: usize,
}

impl<'a> LinkTable<'a> {
    /// Checks the header and that the value and name-offset arrays lie inside the table.
    /// `bytes` may run past the table; only its own `length` bytes are used.
    pub fn parse(bytes: &'a [u8], value_len: usize) -> Result<LinkTable<'a>, String> {
        if bytes.len() < LINK_TABLE_HEADER {
            return Err(format!("link table of {} bytes is shorter than its 8-byte header", bytes.len()));
        }
        let length = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let count = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        if length < LINK_TABLE_HEADER || length > bytes.len() {
            return Err(format!("link table length {length} is outside 8..={}", bytes.len()));
        }
        let needed = (count as u64) * (value_len as u64 + 4) + LINK_TABLE_HEADER as u64;
        if needed > length as u64 {
            return Err(format!("link table of {length} bytes cannot hold {count} entries"));
        }
        Ok(LinkTable { bytes: &bytes[..length], count, value_len })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `i`'s value bytes.
    pub fn value(&self, i: usize) -> &'a [u8] {
        let at = LINK_TABLE_HEADER + i * self.value_len;
        &self.bytes[at..at + self.value_len]
    }

    /// Entry `i`'s name as UTF-16 units, checked to lie inside the table.
    pub fn name(&self, i: usize) -> Result<Vec<u16>, String> {
        let slot = LINK_TABLE_HEADER + self.count * self.value_len + 4 * i;
        let at = u32::from_le_bytes(self.bytes[slot..slot + 4].try_into().unwrap()) as usize;
        let len_bytes =
            self.bytes.get(at..at + 2).ok_or_else(|| format!("name {i} offset {at} is outside the table"))?;
        let units = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let raw = self
            .bytes
            .get(at + 2..at + 2 + 2 * units)
            .ok_or_else(|| format!("name {i} ({units} units at {at}) runs past the table"))?;
        Ok(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_microsofts_structs() {
        assert_eq!(size_of::<CommonHeader>(), 32);
        assert_eq!(size_of::<RegionSet>(), 24);
        assert_eq!(size_of::<FilesystemHeader>(), 72);
        assert_eq!(size_of::<RegionHeader>(), 40);
        assert_eq!(size_of::<ObjectIdHeader>(), 48);
        assert_eq!(size_of::<ObjectIdEntry>(), 40);
        assert_eq!(size_of::<Filesystem>(), 24);
        assert_eq!(size_of::<FileTableDirectoryEntry>(), 16);
        assert_eq!(size_of::<Stream>(), 16);
        assert_eq!(size_of::<PeImage>(), 24);
        assert_eq!(size_of::<PeImageMapping>(), 8);
        assert_eq!(FILE_RECORD_LEN, 96);
    }

    #[test]
    fn offsets_streams_and_guids() {
        let o = RegionOffset::new(3, 0x1234);
        assert_eq!((o.region(), o.offset()), (3, 0x1234));
        let s = Stream::new(StreamType::LinkTable, o, 77);
        assert_eq!((s.len(), s.kind(), s.is_sparse(), s.at()), (77, Some(StreamType::LinkTable), false, o));
        assert!(Stream::sparse(5).is_sparse());
        let g = Guid([0x78, 0x56, 0x34, 0x12, 0xBC, 0x9A, 0xF0, 0xDE, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(g.to_string(), "12345678-9abc-def0-0102-030405060708");
        assert_eq!(region_file_name(g, 2), "region_12345678-9abc-def0-0102-030405060708_2");
        let v8 = Guid::from_digest(&[0xFF; 32]).to_string();
        assert_eq!(&v8[14..15], "8");
        assert!(matches!(&v8[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn link_tables_round_trip_and_refuse_lies() {
        let a: Vec<u16> = "A".encode_utf16().collect();
        let bc: Vec<u16> = "bc".encode_utf16().collect();
        let t = encode_link_table(&[(&a, &7u32.to_le_bytes()), (&bc, &9u32.to_le_bytes())], 4);
        // header 8 + values 8 + offsets 8 + names (2+2) + (2+4)
        assert_eq!(t.len(), 34);
        let lt = LinkTable::parse(&t, 4).unwrap();
        assert_eq!((lt.len(), lt.value(1), lt.name(1).unwrap()), (2, &9u32.to_le_bytes()[..], bc));
        let mut lie = t.clone();
        lie[4] = 200;
        assert!(LinkTable::parse(&lie, 4).is_err());
        let mut far = t.clone();
        far[16] = 250;
        assert!(LinkTable::parse(&far, 4).unwrap().name(0).is_err());
        assert!(LinkTable::parse(&t[..7], 4).is_err());
    }
}
