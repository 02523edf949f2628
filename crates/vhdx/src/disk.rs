//! A VHDX disk: open (checking every structure reading depends on), create, read through the
//! parent chain, write sectors (allocating blocks), grow.
//!
//! Writes do not use the log: data goes first, then the sector bitmap, then the BAT entry, each
//! an in-place write, so a crash leaves at worst an allocated block nothing points to. Before
//! the first change of a session the non-current header is rewritten with a new FileWriteGuid
//! and DataWriteGuid and a higher sequence number, as [MS-VHDX] §2.2.2 requires.

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use uuid::Uuid;
use winlayer_core::{Error, Result};

use crate::format::*;
use crate::ids::Ids;
use crate::log;
use crate::storage::Storage;

/// Deepest parent chain followed; deeper chains are taken for loops.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// How to open a disk.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Allow writes and resizing.
    pub writable: bool,
    /// Where the GUIDs of changes come from.
    pub ids: Ids,
    /// Find, open and check the parent chain of a differencing disk (read-only).
    pub parents: bool,
}

/// What a new disk looks like.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Virtual size in bytes, a multiple of the logical sector size.
    pub virtual_size: u64,
    /// Payload block size: a power of two from 1 MiB to 256 MiB.
    pub block_size: u32,
    /// 512 or 4096.
    pub logical_sector_size: u32,
    /// 512 or 4096.
    pub physical_sector_size: u32,
    /// Where the GUIDs come from.
    pub ids: Ids,
    /// Makes a differencing disk.
    pub parent: Option<ParentLink>,
}

/// What a differencing disk records about its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentLink {
    /// The parent's DataWriteGuid when the child was made.
    pub linkage: Uuid,
    /// The parent's path relative to the child's directory, `\`-separated.
    pub relative_path: Option<String>,
    /// The parent's absolute path.
    pub absolute_path: Option<String>,
}

impl CreateOptions {
    /// A dynamic disk with Windows' defaults: 1 MiB blocks, 512-byte logical and 4096-byte
    /// physical sectors, random GUIDs.
    pub fn dynamic(virtual_size: u64) -> Self {
        CreateOptions {
            virtual_size,
            block_size: MIB as u32,
            logical_sector_size: 512,
            physical_sector_size: 4096,
            ids: Ids::Random,
            parent: None,
        }
    }

    /// A differencing disk at `child_path` over the disk `parent` opened from `parent_path`:
    /// same size and sectors, 1 MiB blocks, the parent located by a relative and an absolute
    /// path.
    pub fn differencing(parent: &Vhdx, parent_path: &Path, child_path: &Path) -> Result<Self> {
        let absolute =
            fs::canonicalize(parent_path).map_err(|e| Error::io(format!("resolving {}", parent_path.display()), e))?;
        let child_dir = match child_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let child_dir =
            fs::canonicalize(child_dir).map_err(|e| Error::io(format!("resolving {}", child_dir.display()), e))?;
        let info = parent.info();
        Ok(CreateOptions {
            virtual_size: info.virtual_size,
            logical_sector_size: info.logical_sector_size,
            physical_sector_size: info.physical_sector_size,
            parent: Some(ParentLink {
                linkage: info.data_write_guid,
                relative_path: relative_locator(&child_dir, &absolute),
                absolute_path: Some(absolute.to_string_lossy().into_owned()),
            }),
            ..CreateOptions::dynamic(info.virtual_size)
        })
    }
}

/// `to` relative to the directory `from` in the locator's form (`.\x` or `..\x`), or `None`
/// when no relative path leads there (different Windows volumes).
fn relative_locator(from: &Path, to: &Path) -> Option<String> {
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    if from.first() != to.first() {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec![".".into()];
    if common < from.len() {
        parts = vec!["..".into(); from.len() - common];
    }
    for c in &to[common..] {
        match c {
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
            _ => return None,
        }
    }
    Some(parts.join("\\"))
}

/// What a disk says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Payload block size in bytes.
    pub block_size: u32,
    /// Logical sector size in bytes.
    pub logical_sector_size: u32,
    /// Physical sector size in bytes.
    pub physical_sector_size: u32,
    /// The virtual disk id.
    pub disk_id: Uuid,
    /// The current header's DataWriteGuid (what children link to).
    pub data_write_guid: Uuid,
    /// The current header's FileWriteGuid.
    pub file_write_guid: Uuid,
    /// The current header's LogGuid (nil: no log).
    pub log_guid: Uuid,
    /// The current header's sequence number.
    pub sequence: u64,
    /// Which header is current (1 or 2).
    pub current_header: usize,
    /// A fixed disk.
    pub leave_blocks_allocated: bool,
    /// The file's creator, from the file type identifier.
    pub creator: String,
    /// The file's length in bytes.
    pub file_size: u64,
    /// Where the parent is and which parent, for a differencing disk.
    pub parent: Option<ParentInfo>,
}

/// A differencing disk's parent locator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentInfo {
    /// The DataWriteGuid the parent must have.
    pub linkage: Uuid,
    /// An alternative DataWriteGuid the parent may have.
    pub linkage2: Option<Uuid>,
    /// Every key and value of the locator.
    pub entries: Vec<(String, String)>,
}

/// An open VHDX disk.
pub struct Vhdx {
    pub(crate) storage: Box<dyn Storage>,
    pub(crate) name: String,
    path: Option<PathBuf>,
    writable: bool,
    ids: Ids,
    pub(crate) header: Header,
    pub(crate) current_header: usize,
    pub(crate) regions: Vec<Region>,
    pub(crate) bat: Region,
    pub(crate) metadata: Region,
    pub(crate) metadata_entries: Vec<MetadataEntry>,
    params: FileParameters,
    pub(crate) geometry: Geometry,
    disk_id: Uuid,
    physical_sector_size: u32,
    locator: Option<ParentLocator>,
    creator: String,
    file_end: u64,
    updated: bool,
    parent: Option<Box<Vhdx>>,
}

impl Vhdx {
    /// Opens a disk from `storage`, named `name` in messages. Every structure reading depends
    /// on is checked here; [`Vhdx::check`] goes through the rest (every BAT entry).
    pub fn open(storage: Box<dyn Storage>, name: impl Into<String>, options: &OpenOptions) -> Result<Vhdx> {
        let name = name.into();
        let bad = |msg: String| Error::Invalid(format!("{name}: {msg}"));
        let read = |len: usize, offset: u64, what: &str| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; len];
            storage.read_at(&mut buf, offset).map_err(|e| Error::io(format!("{name}: reading {what}"), e))?;
            Ok(buf)
        };
        let file_size = storage.len().map_err(|e| Error::io(format!("{name}: reading its length"), e))?;
        if file_size < HEADER_SECTION {
            return Err(bad(format!("{file_size} bytes, too short for a VHDX file (its header section is 1 MiB)")));
        }
        let identifier = read(8 + 512, 0, "the file type identifier")?;
        if &identifier[..8] != FILE_SIGNATURE {
            return Err(bad("not a VHDX file: it does not start with \"vhdxfile\"".into()));
        }

        let (current_header, header) =
            Self::current_header(&name, |i| read(HEADER_SIZE, HEADER_OFFSETS[i], "a header"))?;
        if header.version != 1 {
            return Err(bad(format!(
                "header {}: version {}, only version 1 exists",
                current_header + 1,
                header.version
            )));
        }
        let log_end = header.log_offset.checked_add(header.log_length as u64);
        if !(header.log_length as u64).is_multiple_of(MIB)
            || header.log_offset % MIB != 0
            || (header.log_length > 0 && header.log_offset < HEADER_SECTION)
            || log_end.is_none_or(|end| end > file_size)
        {
            return Err(bad(format!(
                "header {}: log of {} bytes at byte {} is not 1 MiB-aligned or not inside the file",
                current_header + 1,
                header.log_length,
                header.log_offset
            )));
        }
        if !header.log_guid.is_nil()
            && let Some(pending) =
                log::pending(&*storage, &header).map_err(|e| Error::io(format!("{name}: reading the log"), e))?
        {
            return Err(bad(format!(
                "the log holds {pending} that must be replayed before the disk can be used; replaying is not \
                     implemented: let Windows (Hyper-V, Mount-VHD) or `qemu-img check -r all` open it read-write once"
            )));
        }

        let mut table_errors = Vec::new();
        let mut regions = None;
        for (i, &offset) in REGION_TABLE_OFFSETS.iter().enumerate() {
            match parse_region_table(&read(REGION_TABLE_SIZE, offset, "a region table")?) {
                Ok(r) => {
                    regions = Some(r);
                    break;
                }
                Err(e) => table_errors.push(format!("region table {} at byte {offset}: {e}", i + 1)),
            }
        }
        let regions = regions.ok_or_else(|| bad(format!("no valid region table: {}", table_errors.join("; "))))?;
        let (bat, metadata) = Self::known_regions(&regions, &header, file_size).map_err(bad)?;

        let table = read(METADATA_TABLE_SIZE, metadata.offset, "the metadata table")?;
        let metadata_entries = parse_metadata_table(&table)
            .map_err(|e| bad(format!("metadata table at byte {}: {e}", metadata.offset)))?;
        let mut items: [Option<Vec<u8>>; 6] = Default::default();
        for (i, entry) in metadata_entries.iter().enumerate() {
            let what = format!("metadata entry {i} ({})", entry.item.hyphenated());
            if entry.length == 0 && entry.offset != 0 {
                return Err(bad(format!("{what}: empty but at offset {}", entry.offset)));
            }
            if entry.length > 0
                && (entry.offset < METADATA_TABLE_SIZE as u32
                    || entry.length as u64 > MIB
                    || entry.offset as u64 + entry.length as u64 > metadata.length as u64)
            {
                return Err(bad(format!(
                    "{what}: {} bytes at offset {} are not inside the metadata region (after its table, at most 1 MiB)",
                    entry.length, entry.offset
                )));
            }
            match guids::METADATA_ITEMS.iter().position(|g| *g == entry.item) {
                Some(k) if items[k].is_some() => return Err(bad(format!("{what}: the item appears twice"))),
                Some(k) => items[k] = Some(read(entry.length as usize, metadata.offset + entry.offset as u64, &what)?),
                None if entry.is_required => {
                    return Err(bad(format!("{what}: the item is required but unknown to this reader")));
                }
                None => {}
            }
        }
        let item = |k: usize, len: usize, name: &str| -> Result<&[u8]> {
            match &items[k] {
                None => Err(bad(format!("the required metadata item {name} is missing"))),
                Some(b) if b.len() != len => Err(bad(format!("metadata item {name} is {} bytes, not {len}", b.len()))),
                Some(b) => Ok(b),
            }
        };
        let params =
            FileParameters::parse(item(0, 8, "file parameters")?).map_err(|e| bad(format!("file parameters: {e}")))?;
        let virtual_size = u64_at(item(1, 8, "virtual disk size")?, 0);
        let disk_id = guid_at(item(2, 16, "virtual disk id")?, 0);
        let logical_sector_size = sector_size(u32_at(item(3, 4, "logical sector size")?, 0), "logical").map_err(bad)?;
        let physical_sector_size =
            sector_size(u32_at(item(4, 4, "physical sector size")?, 0), "physical").map_err(bad)?;
        if virtual_size == 0
            || !virtual_size.is_multiple_of(logical_sector_size as u64)
            || virtual_size > MAX_VIRTUAL_SIZE
        {
            return Err(bad(format!(
                "virtual size {virtual_size} is not a non-zero multiple of the {logical_sector_size}-byte sector up to 64 TiB"
            )));
        }
        let locator = match (&items[5], params.has_parent) {
            (Some(b), true) => Some(Self::parse_locator(b).map_err(|e| bad(format!("parent locator: {e}")))?),
            (None, true) => return Err(bad("a differencing disk (HasParent) without a parent locator".into())),
            (_, false) => None,
        };
        let geometry = Geometry {
            virtual_size,
            block_size: params.block_size,
            logical_sector_size,
            has_parent: params.has_parent,
        };
        let needed = geometry.bat_entries() * 8;
        if needed > bat.length as u64 {
            return Err(bad(format!(
                "the BAT region holds {} bytes but {virtual_size} bytes in {}-byte blocks need {needed}",
                bat.length, params.block_size
            )));
        }

        Ok(Vhdx {
            storage,
            path: None,
            writable: options.writable,
            ids: options.ids.clone(),
            header,
            current_header,
            regions,
            bat,
            metadata,
            metadata_entries,
            params,
            geometry,
            disk_id,
            physical_sector_size,
            locator,
            creator: creator(&identifier),
            file_end: round_up(file_size, MIB),
            updated: false,
            parent: None,
            name,
        })
    }

    /// Picks the current header: the valid one with the higher sequence number.
    fn current_header(name: &str, read: impl Fn(usize) -> Result<Vec<u8>>) -> Result<(usize, Header)> {
        let parsed = [Header::parse(&read(0)?), Header::parse(&read(1)?)];
        match parsed {
            [Ok(a), Ok(b)] if a.sequence == b.sequence && a != b => Err(Error::Invalid(format!(
                "{name}: both headers have sequence number {} but differ, so neither is current",
                a.sequence
            ))),
            [Ok(a), Ok(b)] => Ok(if b.sequence > a.sequence { (1, b) } else { (0, a) }),
            [Ok(a), Err(_)] => Ok((0, a)),
            [Err(_), Ok(b)] => Ok((1, b)),
            [Err(a), Err(b)] => Err(Error::Invalid(format!(
                "{name}: no valid header: header 1 at byte {}: {a}; header 2 at byte {}: {b}",
                HEADER_OFFSETS[0], HEADER_OFFSETS[1]
            ))),
        }
    }

    /// Finds the BAT and metadata regions, refusing unknown required regions, misplaced
    /// regions and regions that overlap each other or the log.
    fn known_regions(regions: &[Region], header: &Header, file_size: u64) -> Result<(Region, Region), String> {
        let mut placed: Vec<(u64, u64, String)> = Vec::new();
        if header.log_length > 0 {
            placed.push((header.log_offset, header.log_length as u64, "the log".into()));
        }
        let (mut bat, mut metadata) = (None, None);
        for (i, r) in regions.iter().enumerate() {
            let what = format!("region {i} ({})", r.guid.hyphenated());
            let slot = match r.guid {
                guids::BAT => &mut bat,
                guids::METADATA => &mut metadata,
                _ if r.required => return Err(format!("{what} is required but unknown to this reader")),
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!("{what} appears twice"));
            }
            let end = r.offset.checked_add(r.length as u64);
            if r.offset % MIB != 0
                || !(r.length as u64).is_multiple_of(MIB)
                || r.length == 0
                || r.offset < HEADER_SECTION
                || end.is_none_or(|e| e > file_size)
            {
                return Err(format!(
                    "{what}: {} bytes at byte {} are not 1 MiB-aligned, empty, or not inside the file",
                    r.length, r.offset
                ));
            }
            if let Some((_, _, other)) =
                placed.iter().find(|(o, l, _)| r.offset < o + l && *o < r.offset + r.length as u64)
            {
                return Err(format!("{what} at byte {} overlaps {other}", r.offset));
            }
            placed.push((r.offset, r.length as u64, what));
            *slot = Some(*r);
        }
        match (bat, metadata) {
            (Some(b), Some(m)) => Ok((b, m)),
            (None, _) => Err("the region table has no BAT region".into()),
            (_, None) => Err("the region table has no metadata region".into()),
        }
    }

    fn parse_locator(b: &[u8]) -> Result<ParentLocator, String> {
        let locator = ParentLocator::parse(b)?;
        if locator.locator_type != guids::VHDX_LOCATOR_TYPE {
            return Err(format!("type {} is not the VHDX locator type", locator.locator_type.hyphenated()));
        }
        let linkage = locator.get("parent_linkage").ok_or("no parent_linkage entry")?;
        parse_linkage(linkage).ok_or_else(|| format!("parent_linkage {linkage:?} is not a GUID in braces"))?;
        if let Some(l2) = locator.get("parent_linkage2") {
            parse_linkage(l2).ok_or_else(|| format!("parent_linkage2 {l2:?} is not a GUID in braces"))?;
        }
        if !["relative_path", "volume_path", "absolute_win32_path"].iter().any(|k| locator.get(k).is_some()) {
            return Err("no relative_path, volume_path or absolute_win32_path entry to find the parent by".into());
        }
        Ok(locator)
    }

    /// Opens the disk file at `path`; with `options.parents`, also its parent chain.
    pub fn open_file(path: &Path, options: &OpenOptions) -> Result<Vhdx> {
        Self::open_chain(path, options, 0)
    }

    fn open_chain(path: &Path, options: &OpenOptions, depth: usize) -> Result<Vhdx> {
        let file = File::options()
            .read(true)
            .write(options.writable)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let mut disk = Vhdx::open(Box::new(file), path.display().to_string(), options)?;
        disk.path = Some(path.to_path_buf());
        if options.parents && disk.params.has_parent {
            if depth >= MAX_CHAIN_DEPTH {
                return Err(Error::Invalid(format!(
                    "{}: the parent chain is deeper than {MAX_CHAIN_DEPTH} disks (a loop?)",
                    disk.name
                )));
            }
            let parent_path = disk.find_parent()?;
            let parent_options = OpenOptions { writable: false, ids: Ids::Random, parents: true };
            let parent = Self::open_chain(&parent_path, &parent_options, depth + 1)?;
            disk.attach_parent(parent)?;
        }
        Ok(disk)
    }

    /// Where the parent file is, trying the locator's paths in the order [MS-VHDX] §2.6.2.6.3
    /// gives: relative, volume, absolute. Windows paths are taken with `\` as separator.
    pub fn find_parent(&self) -> Result<PathBuf> {
        let locator = self.locator.as_ref().ok_or_else(|| self.invalid("not a differencing disk"))?;
        let base = self.path.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
        let native = |p: &str| if cfg!(windows) { PathBuf::from(p) } else { PathBuf::from(p.replace('\\', "/")) };
        let mut tried = Vec::new();
        for key in ["relative_path", "volume_path", "absolute_win32_path"] {
            let Some(value) = locator.get(key) else { continue };
            let candidate = if key == "relative_path" { base.join(native(value)) } else { native(value) };
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(format!("{key} {value:?} ({})", candidate.display()));
        }
        Err(self.invalid(format!("its parent is not found: tried {}", tried.join(", "))))
    }

    /// Makes `parent` the disk this differencing disk reads through to, after checking it is
    /// the parent the child was made from (its DataWriteGuid equals the parent linkage).
    pub fn attach_parent(&mut self, parent: Vhdx) -> Result<()> {
        let link = self.info().parent.ok_or_else(|| self.invalid("not a differencing disk"))?;
        let found = parent.header.data_write_guid;
        if found != link.linkage && Some(found) != link.linkage2 {
            return Err(self.invalid(format!(
                "{} is not its parent: the parent linkage is {} but that disk's DataWriteGuid is {} (another \
                 disk, or the parent changed after the child was made)",
                parent.name,
                format_linkage(link.linkage),
                format_linkage(found)
            )));
        }
        if parent.geometry.logical_sector_size != self.geometry.logical_sector_size {
            return Err(self.invalid(format!(
                "its {}-byte sectors differ from parent {}'s {}-byte sectors",
                self.geometry.logical_sector_size, parent.name, parent.geometry.logical_sector_size
            )));
        }
        self.parent = Some(Box::new(parent));
        Ok(())
    }

    /// The parent this disk reads through to, once attached.
    pub fn parent(&self) -> Option<&Vhdx> {
        self.parent.as_deref()
    }

    /// The name used in messages (the path for files).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the disk says about itself.
    pub fn info(&self) -> Info {
        let parent = self.locator.as_ref().map(|l| ParentInfo {
            linkage: l.get("parent_linkage").and_then(parse_linkage).unwrap_or_default(),
            linkage2: l.get("parent_linkage2").and_then(parse_linkage),
            entries: l.entries.clone(),
        });
        Info {
            virtual_size: self.geometry.virtual_size,
            block_size: self.geometry.block_size,
            logical_sector_size: self.geometry.logical_sector_size,
            physical_sector_size: self.physical_sector_size,
            disk_id: self.disk_id,
            data_write_guid: self.header.data_write_guid,
            file_write_guid: self.header.file_write_guid,
            log_guid: self.header.log_guid,
            sequence: self.header.sequence,
            current_header: self.current_header + 1,
            leave_blocks_allocated: self.params.leave_blocks_allocated,
            creator: self.creator.clone(),
            file_size: self.storage.len().unwrap_or(0),
            parent,
        }
    }

    /// The virtual size in bytes.
    pub fn virtual_size(&self) -> u64 {
        self.geometry.virtual_size
    }

    /// The payload block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.geometry.block_size
    }

    /// Creates a disk in `storage` (emptied first), named `name` in messages.
    pub fn create(mut storage: Box<dyn Storage>, name: impl Into<String>, options: &CreateOptions) -> Result<Vhdx> {
        let name = name.into();
        let bad = |msg: String| Error::Invalid(format!("{name}: {msg}"));
        block_size(options.block_size).map_err(bad)?;
        let logical = sector_size(options.logical_sector_size, "logical").map_err(bad)?;
        sector_size(options.physical_sector_size, "physical").map_err(bad)?;
        let size = options.virtual_size;
        if size == 0 || !size.is_multiple_of(logical as u64) || size > MAX_VIRTUAL_SIZE {
            return Err(bad(format!("virtual size {size} is not a non-zero multiple of {logical} bytes up to 64 TiB")));
        }
        let geometry = Geometry {
            virtual_size: size,
            block_size: options.block_size,
            logical_sector_size: logical,
            has_parent: options.parent.is_some(),
        };
        // The layout QEMU and Windows use: log, metadata and BAT in that order after the
        // header section, each 1 MiB-aligned; the BAT is zero (every block not present).
        let (log, metadata_offset, bat_offset) = (MIB, 2 * MIB, 3 * MIB);
        let bat_length = round_up(geometry.bat_entries() * 8, MIB).max(MIB);
        let bat_length =
            u32::try_from(bat_length).map_err(|_| bad(format!("a BAT of {bat_length} bytes is too large")))?;
        let io = |e| Error::io(format!("{name}: writing"), e);
        storage.set_len(0).map_err(io)?;
        storage.set_len(bat_offset + bat_length as u64).map_err(io)?;
        storage.write_at(&file_identifier("winlayer"), 0).map_err(io)?;
        let header = Header {
            sequence: 0,
            file_write_guid: options.ids.guid("file-write", 0),
            data_write_guid: options.ids.guid("data-write", 0),
            log_guid: Uuid::nil(),
            log_version: 0,
            version: 1,
            log_length: MIB as u32,
            log_offset: log,
        };
        storage.write_at(&header.encode(), HEADER_OFFSETS[0]).map_err(io)?;
        storage.write_at(&Header { sequence: 1, ..header }.encode(), HEADER_OFFSETS[1]).map_err(io)?;
        let regions = [
            Region { guid: guids::BAT, offset: bat_offset, length: bat_length, required: true },
            Region { guid: guids::METADATA, offset: metadata_offset, length: MIB as u32, required: true },
        ];
        let table = encode_region_table(&regions);
        for offset in REGION_TABLE_OFFSETS {
            storage.write_at(&table, offset).map_err(io)?;
        }

        let params = FileParameters {
            block_size: options.block_size,
            leave_blocks_allocated: false,
            has_parent: options.parent.is_some(),
        };
        let mut disk_id = [0u8; 16];
        put_guid(&mut disk_id, 0, options.ids.guid("virtual-disk-id", 0));
        let mut items: Vec<(Uuid, bool, Vec<u8>)> = vec![
            (guids::FILE_PARAMETERS, false, params.encode().to_vec()),
            (guids::VIRTUAL_DISK_SIZE, true, size.to_le_bytes().to_vec()),
            (guids::VIRTUAL_DISK_ID, true, disk_id.to_vec()),
            (guids::LOGICAL_SECTOR_SIZE, true, logical.to_le_bytes().to_vec()),
            (guids::PHYSICAL_SECTOR_SIZE, true, options.physical_sector_size.to_le_bytes().to_vec()),
        ];
        if let Some(link) = &options.parent {
            let mut entries = vec![("parent_linkage".to_string(), format_linkage(link.linkage))];
            entries.extend(link.relative_path.clone().map(|p| ("relative_path".to_string(), p)));
            entries.extend(link.absolute_path.clone().map(|p| ("absolute_win32_path".to_string(), p)));
            if entries.len() == 1 {
                return Err(bad("a differencing disk needs a relative or absolute path to its parent".into()));
            }
            let locator = ParentLocator { locator_type: guids::VHDX_LOCATOR_TYPE, entries }.encode();
            if locator.len() as u64 > MIB - METADATA_TABLE_SIZE as u64 {
                return Err(bad("the parent paths are too long for the metadata region".into()));
            }
            items.push((guids::PARENT_LOCATOR, false, locator));
        }
        let mut entries = Vec::new();
        let mut offset = METADATA_TABLE_SIZE as u32;
        for (item, is_virtual_disk, bytes) in &items {
            storage.write_at(bytes, metadata_offset + offset as u64).map_err(io)?;
            entries.push(MetadataEntry {
                item: *item,
                offset,
                length: bytes.len() as u32,
                is_user: false,
                is_virtual_disk: *is_virtual_disk,
                is_required: true,
            });
            offset += bytes.len() as u32;
        }
        storage.write_at(&encode_metadata_table(&entries), metadata_offset).map_err(io)?;
        storage.sync().map_err(io)?;

        let mut disk =
            Vhdx::open(storage, name, &OpenOptions { writable: true, ids: options.ids.clone(), parents: false })?;
        // A new disk needs no second header update before its first write.
        disk.updated = true;
        disk.allocate_bitmaps(0)?;
        Ok(disk)
    }

    /// Creates a disk file at `path` (replacing what is there).
    pub fn create_file(path: &Path, options: &CreateOptions) -> Result<Vhdx> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let mut disk = Vhdx::create(Box::new(file), path.display().to_string(), options)?;
        disk.path = Some(path.to_path_buf());
        Ok(disk)
    }

    pub(crate) fn invalid(&self, msg: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}: {msg}", self.name))
    }

    fn io(&self, what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
        let context = format!("{}: {what}", self.name);
        move |e| Error::io(context, e)
    }

    /// Reads from the file, naming `what` when the bytes are beyond its end.
    pub(crate) fn read_file(&self, buf: &mut [u8], offset: u64, what: impl std::fmt::Display) -> Result<()> {
        match self.storage.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.invalid(format!("{what} at byte {offset} lies beyond the end of the file")))
            }
            r => r.map_err(self.io(&format!("reading {what}"))),
        }
    }

    fn write_file(&mut self, buf: &[u8], offset: u64, what: &str) -> Result<()> {
        let name = &self.name;
        self.storage.write_at(buf, offset).map_err(|e| Error::io(format!("{name}: writing {what}"), e))
    }

    /// BAT entry `index`.
    pub(crate) fn bat_entry(&self, index: u64) -> Result<BatEntry> {
        let mut b = [0u8; 8];
        self.read_file(&mut b, self.bat.offset + index * 8, format_args!("BAT entry {index}"))?;
        Ok(BatEntry(u64::from_le_bytes(b)))
    }

    fn set_bat_entry(&mut self, index: u64, entry: BatEntry) -> Result<()> {
        self.write_file(&entry.0.to_le_bytes(), self.bat.offset + index * 8, "the BAT")
    }

    /// The file offset of an allocated block, checked to be a real place for one.
    fn block_offset(&self, entry: BatEntry, what: impl std::fmt::Display) -> Result<u64> {
        let offset = entry.offset();
        if offset < HEADER_SECTION {
            return Err(self.invalid(format!("{what} points into the header section (byte {offset})")));
        }
        if offset >= self.file_end {
            return Err(self.invalid(format!("{what} at byte {offset} lies beyond the end of the file")));
        }
        Ok(offset)
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.geometry.virtual_size => Ok(()),
            _ => Err(self.invalid(format!(
                "{len} bytes at byte {offset} are beyond the virtual size {}",
                self.geometry.virtual_size
            ))),
        }
    }

    /// Reads virtual disk bytes, through the parent chain where this disk has no data.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        let block_size = self.geometry.block_size as u64;
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / block_size, pos % block_size);
            let n = ((block_size - within) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            let index = self.geometry.payload_index(block);
            let entry = self.bat_entry(index)?;
            match entry.state() {
                payload::FULLY_PRESENT => {
                    let at = self.block_offset(entry, format_args!("payload block {block}"))?;
                    self.read_file(out, at + within, format_args!("payload block {block}"))?;
                }
                payload::PARTIALLY_PRESENT if self.geometry.has_parent => self.read_partial(entry, block, pos, out)?,
                payload::NOT_PRESENT if self.geometry.has_parent => self.read_parent(pos, out)?,
                payload::NOT_PRESENT | payload::ZERO | payload::UNDEFINED | payload::UNMAPPED => out.fill(0),
                state => {
                    return Err(self.invalid(format!(
                        "BAT entry {index} (payload block {block}) has state {state}, which is {}",
                        if state == payload::PARTIALLY_PRESENT {
                            "only valid in differencing disks"
                        } else {
                            "reserved"
                        }
                    )));
                }
            }
            done += n;
        }
        Ok(())
    }

    fn read_parent(&self, pos: u64, out: &mut [u8]) -> Result<()> {
        let parent =
            self.parent.as_ref().ok_or_else(|| self.invalid("reading it needs its parent, which is not open"))?;
        let present = parent.geometry.virtual_size.saturating_sub(pos).min(out.len() as u64) as usize;
        if present > 0 {
            parent.read_at(pos, &mut out[..present])?;
        }
        out[present..].fill(0);
        Ok(())
    }

    /// The sector bitmap bytes covering `len` sectors from `first_sector` of payload block
    /// `block`'s chunk, and the bit of `first_sector` in the first byte.
    fn bitmap_bytes(&self, block: u64, first_sector: u64, len: u64) -> Result<(Vec<u8>, u64, u64)> {
        let index = self.geometry.bitmap_index(block);
        let entry = self.bat_entry(index)?;
        if entry.state() != bitmap::PRESENT {
            return Err(self.invalid(format!(
                "payload block {block} is partially present but its sector bitmap (BAT entry {index}) is not present"
            )));
        }
        let at = self.block_offset(entry, format_args!("sector bitmap block {index}"))?;
        let chunk_first_sector = block / self.geometry.chunk_ratio() * SECTORS_PER_BITMAP_BLOCK;
        let bit = first_sector - chunk_first_sector;
        let mut bytes = vec![0u8; ((bit % 8 + len).div_ceil(8)) as usize];
        self.read_file(&mut bytes, at + bit / 8, format_args!("sector bitmap block {index}"))?;
        Ok((bytes, bit % 8, at + bit / 8))
    }

    fn read_partial(&self, entry: BatEntry, block: u64, pos: u64, out: &mut [u8]) -> Result<()> {
        let at = self.block_offset(entry, format_args!("payload block {block}"))?;
        let sector = self.geometry.logical_sector_size as u64;
        let block_start = block * self.geometry.block_size as u64;
        let (first, last) = (pos / sector, (pos + out.len() as u64 - 1) / sector);
        let (bits, shift, _) = self.bitmap_bytes(block, first, last - first + 1)?;
        let present = |s: u64| {
            let bit = s - first + shift;
            bits[(bit / 8) as usize] >> (bit % 8) & 1 == 1
        };
        let mut s = first;
        while s <= last {
            let kind = present(s);
            let mut run_end = s + 1;
            while run_end <= last && present(run_end) == kind {
                run_end += 1;
            }
            let start = (s * sector).max(pos);
            let end = (run_end * sector).min(pos + out.len() as u64);
            let piece = &mut out[(start - pos) as usize..(end - pos) as usize];
            if kind {
                self.read_file(piece, at + start - block_start, format_args!("payload block {block}"))?;
            } else {
                self.read_parent(start, piece)?;
            }
            s = run_end;
        }
        Ok(())
    }

    /// Whether `len` bytes at `offset` are known to read as zeros without reading them: no
    /// disk in the chain has data there.
    pub fn known_zero(&self, offset: u64, len: u64) -> Result<bool> {
        let block_size = self.geometry.block_size as u64;
        let end = offset.saturating_add(len).min(self.geometry.virtual_size);
        let mut pos = offset;
        while pos < end {
            let block = pos / block_size;
            let next = ((block + 1) * block_size).min(end);
            match self.bat_entry(self.geometry.payload_index(block))?.state() {
                payload::FULLY_PRESENT | payload::PARTIALLY_PRESENT => return Ok(false),
                payload::NOT_PRESENT => {
                    if let Some(parent) = &self.parent
                        && !parent.known_zero(pos, next - pos)?
                    {
                        return Ok(false);
                    }
                }
                _ => {}
            }
            pos = next;
        }
        Ok(true)
    }

    fn require_writable(&self) -> Result<()> {
        if self.writable { Ok(()) } else { Err(self.invalid("opened read-only")) }
    }

    /// Before the first change of a session: rewrites the non-current header with new write
    /// GUIDs and the next sequence number, so it becomes current.
    fn begin_update(&mut self) -> Result<()> {
        self.require_writable()?;
        if self.updated {
            return Ok(());
        }
        let sequence = self.header.sequence.checked_add(1).ok_or_else(|| self.invalid("header sequence exhausted"))?;
        let next = Header {
            sequence,
            file_write_guid: self.ids.guid("file-write", sequence),
            data_write_guid: self.ids.guid("data-write", sequence),
            ..self.header.clone()
        };
        let slot = 1 - self.current_header;
        self.write_file(&next.encode(), HEADER_OFFSETS[slot], "a header")?;
        self.storage.sync().map_err(self.io("syncing"))?;
        (self.header, self.current_header, self.updated) = (next, slot, true);
        Ok(())
    }

    /// Appends `len` zero bytes (whole MiB) to the file and returns where they start.
    fn allocate(&mut self, len: u64) -> Result<u64> {
        let at = self.file_end;
        let end = at + len;
        self.storage.set_len(end).map_err(self.io("extending the file"))?;
        self.file_end = end;
        Ok(at)
    }

    /// Writes whole logical sectors at `offset`, allocating blocks as needed. On a dynamic disk
    /// zeros written to an unallocated block leave it unallocated.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, data.len())?;
        let sector = self.geometry.logical_sector_size as u64;
        if !offset.is_multiple_of(sector) || !(data.len() as u64).is_multiple_of(sector) {
            return Err(self.invalid(format!(
                "writes must be whole {sector}-byte sectors, not {} bytes at byte {offset}",
                data.len()
            )));
        }
        self.begin_update()?;
        let block_size = self.geometry.block_size as u64;
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / block_size, pos % block_size);
            let n = ((block_size - within) as usize).min(data.len() - done);
            let piece = &data[done..done + n];
            done += n;
            let index = self.geometry.payload_index(block);
            let entry = self.bat_entry(index)?;
            match entry.state() {
                payload::FULLY_PRESENT => {
                    let at = self.block_offset(entry, format_args!("payload block {block}"))?;
                    self.write_file(piece, at + within, "a payload block")?;
                }
                payload::PARTIALLY_PRESENT if self.geometry.has_parent => {
                    let at = self.block_offset(entry, format_args!("payload block {block}"))?;
                    self.write_file(piece, at + within, "a payload block")?;
                    if self.mark_sectors(block, pos, n as u64, false)? {
                        self.set_bat_entry(index, BatEntry::new(payload::FULLY_PRESENT, at))?;
                    }
                }
                state @ (payload::NOT_PRESENT | payload::ZERO | payload::UNDEFINED | payload::UNMAPPED) => {
                    let through_to_parent = self.geometry.has_parent && state == payload::NOT_PRESENT;
                    if !through_to_parent && piece.iter().all(|&b| b == 0) {
                        continue;
                    }
                    let at = self.allocate(block_size)?;
                    self.write_file(piece, at + within, "a payload block")?;
                    let whole = n as u64 == block_size
                        || !through_to_parent
                        || self.mark_sectors(block, pos, n as u64, true)?;
                    let state = if whole { payload::FULLY_PRESENT } else { payload::PARTIALLY_PRESENT };
                    self.set_bat_entry(index, BatEntry::new(state, at))?;
                }
                state => return Err(self.invalid(format!("BAT entry {index} has invalid state {state}"))),
            }
        }
        Ok(())
    }

    /// Gives every chunk from `first` on of a differencing disk an allocated, all-zero sector
    /// bitmap (the file stays sparse). The format allows leaving it unallocated until a block
    /// of the chunk becomes partially present, but libvhdi (20260901) then reads the bitmap
    /// from file offset 0 and takes header bytes for present sectors.
    fn allocate_bitmaps(&mut self, first: u64) -> Result<()> {
        if !self.geometry.has_parent {
            return Ok(());
        }
        for chunk in first..self.geometry.bitmap_blocks() {
            let index = self.geometry.bitmap_index(chunk * self.geometry.chunk_ratio());
            if self.bat_entry(index)?.state() != bitmap::PRESENT {
                let at = self.allocate(MIB)?;
                self.set_bat_entry(index, BatEntry::new(bitmap::PRESENT, at))?;
            }
        }
        Ok(())
    }

    /// Sets the sector bitmap bits of `len` bytes at `pos` in payload block `block` (clearing
    /// the block's other bits first when `fresh`), allocating the bitmap block if needed.
    /// Returns whether every sector of the block is now present.
    fn mark_sectors(&mut self, block: u64, pos: u64, len: u64, fresh: bool) -> Result<bool> {
        let index = self.geometry.bitmap_index(block);
        if self.bat_entry(index)?.state() != bitmap::PRESENT {
            let at = self.allocate(MIB)?;
            self.set_bat_entry(index, BatEntry::new(bitmap::PRESENT, at))?;
        }
        let sector = self.geometry.logical_sector_size as u64;
        let per_block = self.geometry.sectors_per_block();
        let block_first = block * per_block;
        let (mut bits, _, at) = self.bitmap_bytes(block, block_first, per_block)?;
        if fresh {
            bits.fill(0);
        }
        for s in pos / sector..(pos + len) / sector {
            let bit = s - block_first;
            bits[(bit / 8) as usize] |= 1 << (bit % 8);
        }
        self.write_file(&bits, at, "a sector bitmap")?;
        let in_disk = (self.geometry.virtual_size / sector - block_first).min(per_block);
        Ok((0..in_disk).all(|bit| bits[(bit / 8) as usize] >> (bit % 8) & 1 == 1))
    }

    /// Grows the virtual size to `new_size` bytes (a multiple of the logical sector size),
    /// moving the BAT to the end of the file when it is too small. Shrinking is refused.
    pub fn resize(&mut self, new_size: u64) -> Result<()> {
        self.require_writable()?;
        let old = self.geometry;
        let sector = old.logical_sector_size as u64;
        if new_size < old.virtual_size {
            return Err(self.invalid(format!("cannot shrink from {} to {new_size} bytes", old.virtual_size)));
        }
        if !new_size.is_multiple_of(sector) || new_size > MAX_VIRTUAL_SIZE {
            return Err(self.invalid(format!("{new_size} bytes is not a multiple of {sector} bytes up to 64 TiB")));
        }
        if new_size == old.virtual_size {
            return Ok(());
        }
        self.begin_update()?;
        let new = Geometry { virtual_size: new_size, ..old };
        let needed = new.bat_entries() * 8;
        if needed > self.bat.length as u64 {
            self.relocate_bat(round_up(needed, MIB))?;
        }
        // Entries past the old end must read "not present", whatever another writer left.
        let zeros = vec![0u8; (needed - old.bat_entries() * 8).min(MIB) as usize];
        let mut at = self.bat.offset + old.bat_entries() * 8;
        while at < self.bat.offset + needed {
            let n = (self.bat.offset + needed - at).min(zeros.len() as u64) as usize;
            self.write_file(&zeros[..n], at, "the BAT")?;
            at += n as u64;
        }
        // The old last block's bytes past the old end become visible: make them zeros.
        let block_size = old.block_size as u64;
        if !old.virtual_size.is_multiple_of(block_size) {
            let block = old.virtual_size / block_size;
            let entry = self.bat_entry(old.payload_index(block))?;
            if entry.state() == payload::FULLY_PRESENT {
                let at = self.block_offset(entry, format_args!("payload block {block}"))?;
                let tail = (block + 1) * block_size - old.virtual_size;
                self.write_file(&vec![0u8; tail as usize], at + old.virtual_size % block_size, "a payload block")?;
            }
        }
        let item = self
            .metadata_entries
            .iter()
            .find(|e| e.item == guids::VIRTUAL_DISK_SIZE)
            .map(|e| self.metadata.offset + e.offset as u64)
            .expect("checked at open");
        let old_chunks = old.bitmap_blocks();
        self.geometry = new;
        self.allocate_bitmaps(old_chunks)?;
        self.storage.sync().map_err(self.io("syncing"))?;
        self.write_file(&new_size.to_le_bytes(), item, "the virtual disk size")?;
        self.storage.sync().map_err(self.io("syncing"))?;
        Ok(())
    }

    /// Moves the BAT to a new region of `length` bytes at the end of the file.
    fn relocate_bat(&mut self, length: u64) -> Result<()> {
        let length =
            u32::try_from(length).map_err(|_| self.invalid(format!("a BAT of {length} bytes is too large")))?;
        let at = self.allocate(length as u64)?;
        let mut buf = vec![0u8; MIB as usize];
        let used = self.geometry.bat_entries() * 8;
        let mut copied = 0;
        while copied < used {
            let n = (used - copied).min(MIB) as usize;
            self.read_file(&mut buf[..n], self.bat.offset + copied, "the BAT")?;
            self.write_file(&buf[..n], at + copied, "the BAT")?;
            copied += n as u64;
        }
        self.storage.sync().map_err(self.io("syncing"))?;
        let bat = Region { offset: at, length, ..self.bat };
        let regions: Vec<Region> = self.regions.iter().map(|r| if r.guid == guids::BAT { bat } else { *r }).collect();
        let table = encode_region_table(&regions);
        for offset in REGION_TABLE_OFFSETS.into_iter().rev() {
            self.write_file(&table, offset, "a region table")?;
            self.storage.sync().map_err(self.io("syncing"))?;
        }
        (self.regions, self.bat) = (regions, bat);
        Ok(())
    }

    /// Makes everything written durable.
    pub fn flush(&mut self) -> Result<()> {
        self.storage.sync().map_err(self.io("syncing"))
    }

    /// Gives back the storage.
    pub fn into_storage(self) -> Box<dyn Storage> {
        self.storage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locators() {
        let r = |a: &str, b: &str| relative_locator(Path::new(a), Path::new(b));
        assert_eq!(r("/x/y", "/x/y/base.vhdx").as_deref(), Some(".\\base.vhdx"));
        assert_eq!(r("/x/y/snapshots/3", "/x/y/base.vhdx").as_deref(), Some("..\\..\\base.vhdx"));
        assert_eq!(r("/x/a", "/x/b/c.vhdx").as_deref(), Some("..\\b\\c.vhdx"));
    }
}
