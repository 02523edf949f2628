//! The on-disk structures of [MS-VHDX] (section numbers are those of the published
//! specification): little-endian fields, CRC-32C checksums, GUIDs in Windows' mixed-endian
//! layout, and the arithmetic that places payload and sector-bitmap blocks in the BAT.
//!
//! Parsers take byte slices and return `Err(String)` saying what is wrong; the disk code adds
//! where (file, structure, byte offset).

use uuid::{Uuid, uuid};

/// One kibibyte.
pub const KIB: u64 = 1024;
/// One mebibyte: the alignment of every object in a VHDX file.
pub const MIB: u64 = 1024 * KIB;
/// The largest virtual disk the format allows (§2.6.2.2).
pub const MAX_VIRTUAL_SIZE: u64 = 64 * 1024 * 1024 * MIB;
/// The file type identifier's signature at byte 0 (§2.2.1).
pub const FILE_SIGNATURE: &[u8; 8] = b"vhdxfile";
/// Where the two headers live (§2.2).
pub const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
/// The part of a header the checksum covers.
pub const HEADER_SIZE: usize = 4096;
/// Where the two copies of the region table live (§2.2).
pub const REGION_TABLE_OFFSETS: [u64; 2] = [192 * KIB, 256 * KIB];
/// The size of a region table, all of it checksummed.
pub const REGION_TABLE_SIZE: usize = 64 * KIB as usize;
/// The header section: file identifier, headers, region tables, reserved space.
pub const HEADER_SECTION: u64 = MIB;
/// The size of the metadata table at the start of the metadata region (§2.6.1).
pub const METADATA_TABLE_SIZE: usize = 64 * KIB as usize;
/// Most entries a region table or a metadata table may hold.
pub const MAX_TABLE_ENTRIES: u32 = 2047;
/// Sectors described by one sector bitmap block (§2.5): 2^23, one bit each in 1 MiB.
pub const SECTORS_PER_BITMAP_BLOCK: u64 = 1 << 23;
/// Log sectors are 4 KiB (§2.3).
pub const LOG_SECTOR: u64 = 4096;

/// The GUIDs the format defines (verified against QEMU, libvhdi and dissect.hypervisor).
pub mod guids {
    use super::*;
    /// Region: block allocation table.
    pub const BAT: Uuid = uuid!("2DC27766-F623-4200-9D64-115E9BFD4A08");
    /// Region: metadata.
    pub const METADATA: Uuid = uuid!("8B7CA206-4790-4B9A-B8FE-575F050F886E");
    /// Metadata item: block size and flags.
    pub const FILE_PARAMETERS: Uuid = uuid!("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    /// Metadata item: virtual disk size.
    pub const VIRTUAL_DISK_SIZE: Uuid = uuid!("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    /// Metadata item: virtual disk id (SCSI page 83 data).
    pub const VIRTUAL_DISK_ID: Uuid = uuid!("BECA12AB-B2E6-4523-93EF-C309E000C746");
    /// Metadata item: logical sector size.
    pub const LOGICAL_SECTOR_SIZE: Uuid = uuid!("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    /// Metadata item: physical sector size.
    pub const PHYSICAL_SECTOR_SIZE: Uuid = uuid!("CDA348C7-445D-4471-9CC9-E9885251C556");
    /// Metadata item: parent locator.
    pub const PARENT_LOCATOR: Uuid = uuid!("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
    /// The one parent locator type the specification defines: another VHDX file.
    pub const VHDX_LOCATOR_TYPE: Uuid = uuid!("B04AEFB7-D19E-4A81-B789-25B8E9445913");
    /// Every metadata item the specification defines, in the order this crate keeps them.
    pub const METADATA_ITEMS: [Uuid; 6] = [
        FILE_PARAMETERS,
        VIRTUAL_DISK_SIZE,
        VIRTUAL_DISK_ID,
        LOGICAL_SECTOR_SIZE,
        PHYSICAL_SECTOR_SIZE,
        PARENT_LOCATOR,
    ];
}

/// Payload block states (§2.5.1.1).
pub mod payload {
    /// Not in this file: zeros, or the parent's data in a differencing disk.
    pub const NOT_PRESENT: u8 = 0;
    /// Contents undefined.
    pub const UNDEFINED: u8 = 1;
    /// Reads as zeros.
    pub const ZERO: u8 = 2;
    /// Unmapped by a trim; contents undefined.
    pub const UNMAPPED: u8 = 3;
    /// All of the block is in this file.
    pub const FULLY_PRESENT: u8 = 6;
    /// Differencing disks only: the sector bitmap says which sectors are in this file.
    pub const PARTIALLY_PRESENT: u8 = 7;
}

/// Sector bitmap block states (§2.5.1.2).
pub mod bitmap {
    /// Not allocated.
    pub const NOT_PRESENT: u8 = 0;
    /// Allocated (differencing disks only).
    pub const PRESENT: u8 = 6;
}

/// The tables of slicing-by-8: `[0]` is the classic byte table, `[k]` advances a byte
/// followed by `k` zero bytes, so eight input bytes take eight lookups and one step.
const fn crc_tables(polynomial: u32) -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ polynomial } else { crc >> 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
}

/// A reflected CRC-32 with its own polynomial, fed in pieces.
#[derive(Clone, Copy)]
pub struct Crc {
    tables: &'static [[u32; 256]; 8],
    state: u32,
}

static CRC32C_TABLES: [[u32; 256]; 8] = crc_tables(0x82F6_3B78);
static CRC32_TABLES: [[u32; 256]; 8] = crc_tables(0xEDB8_8320);

impl Crc {
    /// CRC-32C (Castagnoli), which VHDX uses.
    pub fn crc32c() -> Self {
        Crc { tables: &CRC32C_TABLES, state: !0 }
    }

    /// The common CRC-32 (IEEE 802.3), which GPT uses.
    pub fn crc32() -> Self {
        Crc { tables: &CRC32_TABLES, state: !0 }
    }

    /// Adds bytes, eight at a time (a 64 KiB region table is checksummed on every open).
    pub fn update(&mut self, data: &[u8]) {
        let t = self.tables;
        let mut crc = self.state;
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let low = crc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            crc = t[7][(low & 0xFF) as usize]
                ^ t[6][(low >> 8 & 0xFF) as usize]
                ^ t[5][(low >> 16 & 0xFF) as usize]
                ^ t[4][(low >> 24) as usize]
                ^ t[3][w[4] as usize]
                ^ t[2][w[5] as usize]
                ^ t[1][w[6] as usize]
                ^ t[0][w[7] as usize];
        }
        for &b in words.remainder() {
            crc = t[0][((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// The checksum of everything added.
    pub fn value(&self) -> u32 {
        !self.state
    }
}

/// CRC-32C of `data` with the four bytes at `field` taken as zero, as every VHDX checksum is
/// computed.
pub fn checksum(data: &[u8], field: usize) -> u32 {
    let mut crc = Crc::crc32c();
    crc.update(&data[..field]);
    crc.update(&[0; 4]);
    crc.update(&data[field + 4..]);
    crc.value()
}

/// Writes the checksum of `data` into its field.
pub fn seal(data: &mut [u8], field: usize) {
    let sum = checksum(data, field);
    put_u32(data, field, sum);
}

fn verify(data: &[u8], field: usize) -> Result<(), String> {
    let stored = u32_at(data, field);
    let computed = checksum(data, field);
    if stored == computed {
        Ok(())
    } else {
        Err(format!("checksum 0x{stored:08x} does not match the contents (CRC-32C 0x{computed:08x})"))
    }
}

/// Reads a little-endian u16.
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
/// Reads a little-endian u32.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
/// Reads a little-endian u64.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
/// Reads a GUID stored in Windows' layout.
pub fn guid_at(b: &[u8], at: usize) -> Uuid {
    Uuid::from_bytes_le(b[at..at + 16].try_into().expect("16 bytes"))
}
/// Writes a little-endian u16.
pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian u32.
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian u64.
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
/// Writes a GUID in Windows' layout.
pub fn put_guid(b: &mut [u8], at: usize, g: Uuid) {
    b[at..at + 16].copy_from_slice(&g.to_bytes_le());
}

/// The file type identifier at byte 0 (§2.2.1): a signature and the creator's name.
pub fn file_identifier(creator: &str) -> Vec<u8> {
    let mut b = vec![0u8; 8 + 512];
    b[..8].copy_from_slice(FILE_SIGNATURE);
    for (i, unit) in creator.encode_utf16().take(255).enumerate() {
        put_u16(&mut b, 8 + 2 * i, unit);
    }
    b
}

/// The creator named in a file type identifier, lossily decoded.
pub fn creator(identifier: &[u8]) -> String {
    let units: Vec<u16> = identifier[8..8 + 512]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// A header (§2.2.2). The current one is the valid header with the higher sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Higher wins.
    pub sequence: u64,
    /// Changed the first time a file is opened for writing.
    pub file_write_guid: Uuid,
    /// Changed before the disk's visible contents change; children name it as their parent
    /// linkage.
    pub data_write_guid: Uuid,
    /// Non-zero when the log may hold entries to replay.
    pub log_guid: Uuid,
    /// Must be 0.
    pub log_version: u16,
    /// Must be 1.
    pub version: u16,
    /// Bytes, a multiple of 1 MiB.
    pub log_length: u32,
    /// Byte offset, a multiple of 1 MiB.
    pub log_offset: u64,
}

impl Header {
    /// Parses and verifies a header's 4 KiB.
    pub fn parse(b: &[u8]) -> Result<Header, String> {
        if &b[..4] != b"head" {
            return Err(format!("signature {:?} is not \"head\"", String::from_utf8_lossy(&b[..4])));
        }
        verify(&b[..HEADER_SIZE], 4)?;
        Ok(Header {
            sequence: u64_at(b, 8),
            file_write_guid: guid_at(b, 16),
            data_write_guid: guid_at(b, 32),
            log_guid: guid_at(b, 48),
            log_version: u16_at(b, 64),
            version: u16_at(b, 66),
            log_length: u32_at(b, 68),
            log_offset: u64_at(b, 72),
        })
    }

    /// The header's 4 KiB, checksummed.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        b[..4].copy_from_slice(b"head");
        put_u64(&mut b, 8, self.sequence);
        put_guid(&mut b, 16, self.file_write_guid);
        put_guid(&mut b, 32, self.data_write_guid);
        put_guid(&mut b, 48, self.log_guid);
        put_u16(&mut b, 64, self.log_version);
        put_u16(&mut b, 66, self.version);
        put_u32(&mut b, 68, self.log_length);
        put_u64(&mut b, 72, self.log_offset);
        seal(&mut b, 4);
        b
    }
}

/// One region table entry (§2.2.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// What the region holds.
    pub guid: Uuid,
    /// Byte offset, a multiple of 1 MiB.
    pub offset: u64,
    /// Bytes, a multiple of 1 MiB.
    pub length: u32,
    /// A reader that does not know the region must refuse the file.
    pub required: bool,
}

/// Parses and verifies a region table's 64 KiB.
pub fn parse_region_table(b: &[u8]) -> Result<Vec<Region>, String> {
    if &b[..4] != b"regi" {
        return Err(format!("signature {:?} is not \"regi\"", String::from_utf8_lossy(&b[..4])));
    }
    verify(&b[..REGION_TABLE_SIZE], 4)?;
    let count = u32_at(b, 8);
    if count > MAX_TABLE_ENTRIES {
        return Err(format!("{count} entries, more than the {MAX_TABLE_ENTRIES} allowed"));
    }
    Ok((0..count as usize)
        .map(|i| {
            let e = 16 + 32 * i;
            Region {
                guid: guid_at(b, e),
                offset: u64_at(b, e + 16),
                length: u32_at(b, e + 24),
                required: u32_at(b, e + 28) & 1 != 0,
            }
        })
        .collect())
}

/// A region table's 64 KiB, checksummed.
pub fn encode_region_table(regions: &[Region]) -> Vec<u8> {
    let mut b = vec![0u8; REGION_TABLE_SIZE];
    b[..4].copy_from_slice(b"regi");
    put_u32(&mut b, 8, regions.len() as u32);
    for (i, r) in regions.iter().enumerate() {
        let e = 16 + 32 * i;
        put_guid(&mut b, e, r.guid);
        put_u64(&mut b, e + 16, r.offset);
        put_u32(&mut b, e + 24, r.length);
        put_u32(&mut b, e + 28, r.required as u32);
    }
    seal(&mut b, 4);
    b
}

/// One metadata table entry (§2.6.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataEntry {
    /// Which item.
    pub item: Uuid,
    /// Byte offset from the start of the metadata region; at least 64 KiB unless empty.
    pub offset: u32,
    /// Bytes, at most 1 MiB.
    pub length: u32,
    /// A user item (not defined by the format).
    pub is_user: bool,
    /// Describes the virtual disk rather than the file.
    pub is_virtual_disk: bool,
    /// A reader that does not know the item must refuse the file.
    pub is_required: bool,
}

/// Parses the metadata table (the first 64 KiB of the metadata region; not checksummed).
pub fn parse_metadata_table(b: &[u8]) -> Result<Vec<MetadataEntry>, String> {
    if &b[..8] != b"metadata" {
        return Err(format!("signature {:?} is not \"metadata\"", String::from_utf8_lossy(&b[..8])));
    }
    let count = u16_at(b, 10) as u32;
    if count > MAX_TABLE_ENTRIES {
        return Err(format!("{count} entries, more than the {MAX_TABLE_ENTRIES} allowed"));
    }
    Ok((0..count as usize)
        .map(|i| {
            let e = 32 + 32 * i;
            let flags = u32_at(b, e + 24);
            MetadataEntry {
                item: guid_at(b, e),
                offset: u32_at(b, e + 16),
                length: u32_at(b, e + 20),
                is_user: flags & 1 != 0,
                is_virtual_disk: flags & 2 != 0,
                is_required: flags & 4 != 0,
            }
        })
        .collect())
}

/// The metadata table's 64 KiB.
pub fn encode_metadata_table(entries: &[MetadataEntry]) -> Vec<u8> {
    let mut b = vec![0u8; METADATA_TABLE_SIZE];
    b[..8].copy_from_slice(b"metadata");
    put_u16(&mut b, 10, entries.len() as u16);
    for (i, m) in entries.iter().enumerate() {
        let e = 32 + 32 * i;
        put_guid(&mut b, e, m.item);
        put_u32(&mut b, e + 16, m.offset);
        put_u32(&mut b, e + 20, m.length);
        put_u32(&mut b, e + 24, m.is_user as u32 | (m.is_virtual_disk as u32) << 1 | (m.is_required as u32) << 2);
    }
    b
}

/// The file parameters item (§2.6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileParameters {
    /// Payload block size in bytes: a power of two from 1 MiB to 256 MiB.
    pub block_size: u32,
    /// A fixed disk: blocks are never unallocated.
    pub leave_blocks_allocated: bool,
    /// A differencing disk.
    pub has_parent: bool,
}

impl FileParameters {
    /// Parses the 8-byte item.
    pub fn parse(b: &[u8]) -> Result<FileParameters, String> {
        let block_size = block_size(u32_at(b, 0))?;
        let flags = u32_at(b, 4);
        Ok(FileParameters { block_size, leave_blocks_allocated: flags & 1 != 0, has_parent: flags & 2 != 0 })
    }

    /// The 8-byte item.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        put_u32(&mut b, 0, self.block_size);
        put_u32(&mut b, 4, self.leave_blocks_allocated as u32 | (self.has_parent as u32) << 1);
        b
    }
}

/// Checks a payload block size: a power of two from 1 MiB to 256 MiB.
pub fn block_size(value: u32) -> Result<u32, String> {
    if value.is_power_of_two() && (MIB..=256 * MIB).contains(&(value as u64)) {
        Ok(value)
    } else {
        Err(format!("block size {value} is not a power of two from 1 MiB to 256 MiB"))
    }
}

/// Checks a logical or physical sector size: 512 or 4096.
pub fn sector_size(value: u32, what: &str) -> Result<u32, String> {
    match value {
        512 | 4096 => Ok(value),
        _ => Err(format!("{what} sector size {value} is neither 512 nor 4096")),
    }
}

/// The parent locator item (§2.6.2.6): a type and UTF-16 key/value pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentLocator {
    /// Which kind of parent; only [`guids::VHDX_LOCATOR_TYPE`] is defined.
    pub locator_type: Uuid,
    /// The pairs, in file order.
    pub entries: Vec<(String, String)>,
}

impl ParentLocator {
    /// Parses the item.
    pub fn parse(b: &[u8]) -> Result<ParentLocator, String> {
        if b.len() < 20 {
            return Err(format!("{} bytes, too short for the 20-byte locator header", b.len()));
        }
        let locator_type = guid_at(b, 0);
        let count = u16_at(b, 18) as usize;
        if 20 + 12 * count > b.len() {
            return Err(format!("{count} key/value entries do not fit in {} bytes", b.len()));
        }
        let text = |offset: u32, length: u16, what: &str, i: usize| -> Result<String, String> {
            let (offset, length) = (offset as usize, length as usize);
            if length == 0 || length % 2 != 0 || offset.checked_add(length).is_none_or(|end| end > b.len()) {
                return Err(format!(
                    "entry {i}: {what} at {offset} ({length} bytes) is empty, odd or outside the item"
                ));
            }
            let units: Vec<u16> =
                b[offset..offset + length].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).map_err(|_| format!("entry {i}: {what} is not valid UTF-16"))
        };
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let e = 20 + 12 * i;
            let key = text(u32_at(b, e), u16_at(b, e + 8), "key", i)?;
            let value = text(u32_at(b, e + 4), u16_at(b, e + 10), "value", i)?;
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("key {key:?} appears twice"));
            }
            entries.push((key, value));
        }
        Ok(ParentLocator { locator_type, entries })
    }

    /// The item's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let table = 20 + 12 * self.entries.len();
        let mut b = vec![0u8; table];
        put_guid(&mut b, 0, self.locator_type);
        put_u16(&mut b, 18, self.entries.len() as u16);
        for (i, (key, value)) in self.entries.iter().enumerate() {
            let place = |s: &str, b: &mut Vec<u8>| {
                let offset = b.len();
                b.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
                (offset as u32, (b.len() - offset) as u16)
            };
            let (key_offset, key_length) = place(key, &mut b);
            let (value_offset, value_length) = place(value, &mut b);
            let e = 20 + 12 * i;
            put_u32(&mut b, e, key_offset);
            put_u32(&mut b, e + 4, value_offset);
            put_u16(&mut b, e + 8, key_length);
            put_u16(&mut b, e + 10, value_length);
        }
        b
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses a GUID as the locator writes it (`{…}`, either case).
pub fn parse_linkage(value: &str) -> Option<Uuid> {
    let inner = value.strip_prefix('{')?.strip_suffix('}')?;
    Uuid::try_parse(inner).ok()
}

/// Formats a GUID as the locator writes it: braces, lower case ([MS-VHDX] §2.6.2.6.3).
pub fn format_linkage(guid: Uuid) -> String {
    format!("{{{}}}", guid.hyphenated())
}

/// One 64-bit BAT entry: a 3-bit state and the file offset in MiB in the top 44 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatEntry(pub u64);

impl BatEntry {
    /// An entry with `state` at byte `offset` (a multiple of 1 MiB).
    pub fn new(state: u8, offset: u64) -> Self {
        BatEntry((offset / MIB) << 20 | state as u64)
    }
    /// The state.
    pub fn state(self) -> u8 {
        (self.0 & 7) as u8
    }
    /// The block's byte offset in the file.
    pub fn offset(self) -> u64 {
        (self.0 >> 20) * MIB
    }
}

/// How a disk's blocks map onto BAT entries (§2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Virtual disk size in bytes.
    pub virtual_size: u64,
    /// Payload block size in bytes.
    pub block_size: u32,
    /// Logical sector size in bytes.
    pub logical_sector_size: u32,
    /// A differencing disk: the BAT also covers the last chunk's sector bitmap.
    pub has_parent: bool,
}

impl Geometry {
    /// Payload blocks per sector bitmap block.
    pub fn chunk_ratio(&self) -> u64 {
        SECTORS_PER_BITMAP_BLOCK * self.logical_sector_size as u64 / self.block_size as u64
    }
    /// Payload blocks covering the virtual disk.
    pub fn data_blocks(&self) -> u64 {
        self.virtual_size.div_ceil(self.block_size as u64)
    }
    /// Sector bitmap blocks covering the virtual disk.
    pub fn bitmap_blocks(&self) -> u64 {
        self.data_blocks().div_ceil(self.chunk_ratio())
    }
    /// Entries the BAT must hold.
    pub fn bat_entries(&self) -> u64 {
        let blocks = self.data_blocks();
        if self.has_parent {
            self.bitmap_blocks() * (self.chunk_ratio() + 1)
        } else if blocks == 0 {
            0
        } else {
            blocks + (blocks - 1) / self.chunk_ratio()
        }
    }
    /// The BAT index of payload block `block`.
    pub fn payload_index(&self, block: u64) -> u64 {
        block + block / self.chunk_ratio()
    }
    /// The BAT index of the sector bitmap block covering payload block `block`.
    pub fn bitmap_index(&self, block: u64) -> u64 {
        let chunk = block / self.chunk_ratio();
        chunk * (self.chunk_ratio() + 1) + self.chunk_ratio()
    }
    /// Whether BAT index `index` is a sector bitmap entry, and the block or chunk it is for.
    pub fn entry_kind(&self, index: u64) -> (bool, u64) {
        let per_chunk = self.chunk_ratio() + 1;
        let (chunk, within) = (index / per_chunk, index % per_chunk);
        if within == self.chunk_ratio() { (true, chunk) } else { (false, chunk * self.chunk_ratio() + within) }
    }
    /// Logical sectors per payload block.
    pub fn sectors_per_block(&self) -> u64 {
        self.block_size as u64 / self.logical_sector_size as u64
    }
}

/// A log entry header (§2.3.1.1), the first 64 bytes of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEntryHeader {
    /// The entry's stored checksum (over all of `entry_length`).
    pub checksum: u32,
    /// Bytes, a multiple of 4 KiB.
    pub entry_length: u32,
    /// Offset of the sequence's first entry.
    pub tail: u32,
    /// Non-zero, increasing.
    pub sequence: u64,
    /// Descriptors following the header.
    pub descriptor_count: u32,
    /// Must equal the header's LogGuid for the entry to count.
    pub log_guid: Uuid,
    /// The file size the entry was written against.
    pub flushed_file_offset: u64,
    /// The file size the entry needs.
    pub last_file_offset: u64,
}

impl LogEntryHeader {
    /// Parses the 64 bytes, or `None` when they are not a log entry header.
    pub fn parse(b: &[u8]) -> Option<LogEntryHeader> {
        (&b[..4] == b"loge").then(|| LogEntryHeader {
            checksum: u32_at(b, 4),
            entry_length: u32_at(b, 8),
            tail: u32_at(b, 12),
            sequence: u64_at(b, 16),
            descriptor_count: u32_at(b, 24),
            log_guid: guid_at(b, 32),
            flushed_file_offset: u64_at(b, 48),
            last_file_offset: u64_at(b, 56),
        })
    }
}

/// Rounds `value` up to a multiple of `unit`.
pub fn round_up(value: u64, unit: u64) -> u64 {
    value.div_ceil(unit) * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_crc32_known_answers() {
        // The standard check values: CRC of the ASCII digits "123456789".
        let mut c = Crc::crc32c();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xE306_9283);
        let mut c = Crc::crc32();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xCBF4_3926);
    }

    #[test]
    fn eight_bytes_at_a_time_is_one_byte_at_a_time() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for make in [Crc::crc32c, Crc::crc32] {
            let mut bytewise = make();
            let t = bytewise.tables;
            for &b in &data {
                bytewise.state = t[0][((bytewise.state ^ b as u32) & 0xFF) as usize] ^ (bytewise.state >> 8);
            }
            // Pieces of every length up to 17, so every alignment of the 8-byte steps is met.
            let mut pieces = make();
            let mut rest = data.as_slice();
            let mut n = 0;
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at((n % 18).min(rest.len()));
                pieces.update(piece);
                rest = tail;
                n += 1;
            }
            assert_eq!(pieces.value(), bytewise.value());
        }
    }

    #[test]
    fn header_round_trip_and_corruption() {
        let h = Header {
            sequence: 7,
            file_write_guid: Uuid::from_u128(1),
            data_write_guid: Uuid::from_u128(2),
            log_guid: Uuid::nil(),
            log_version: 0,
            version: 1,
            log_length: MIB as u32,
            log_offset: MIB,
        };
        let mut b = h.encode();
        assert_eq!(Header::parse(&b).unwrap(), h);
        b[100] ^= 1;
        assert!(Header::parse(&b).unwrap_err().contains("checksum"));
        b[0] = b'x';
        assert!(Header::parse(&b).unwrap_err().contains("signature"));
    }

    #[test]
    fn guid_layout_is_windows_mixed_endian() {
        let mut b = [0u8; 16];
        put_guid(&mut b, 0, guids::BAT);
        assert_eq!(&b[..4], &[0x66, 0x77, 0xC2, 0x2D]);
        assert_eq!(&b[8..], &[0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08]);
    }

    #[test]
    fn bat_layout_interleaves_bitmap_entries() {
        // 1 MiB blocks, 512-byte sectors: 4096 payload blocks per chunk.
        let g =
            Geometry { virtual_size: 10 << 30, block_size: MIB as u32, logical_sector_size: 512, has_parent: false };
        assert_eq!(g.chunk_ratio(), 4096);
        assert_eq!(g.data_blocks(), 10240);
        assert_eq!(g.bat_entries(), 10240 + 2);
        assert_eq!(g.payload_index(4096), 4097);
        assert_eq!(g.bitmap_index(4095), 4096);
        assert_eq!(g.entry_kind(4096), (true, 0));
        assert_eq!(g.entry_kind(4097), (false, 4096));
        let d = Geometry { has_parent: true, ..g };
        assert_eq!(d.bat_entries(), 3 * 4097);
        let s4k = Geometry { logical_sector_size: 4096, ..g };
        assert_eq!(s4k.chunk_ratio(), 32768);
    }

    #[test]
    fn parent_locator_round_trip_and_bounds() {
        let l = ParentLocator {
            locator_type: guids::VHDX_LOCATOR_TYPE,
            entries: vec![
                ("parent_linkage".into(), format_linkage(Uuid::from_u128(5))),
                ("relative_path".into(), ".\\base.vhdx".into()),
            ],
        };
        let b = l.encode();
        assert_eq!(ParentLocator::parse(&b).unwrap(), l);
        assert_eq!(parse_linkage(l.get("parent_linkage").unwrap()), Some(Uuid::from_u128(5)));
        assert!(ParentLocator::parse(&b[..b.len() - 2]).unwrap_err().contains("outside the item"));
        assert!(ParentLocator::parse(&b[..10]).is_err());
    }
}
