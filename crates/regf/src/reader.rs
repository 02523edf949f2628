//! A strict hive reader: every offset and length is checked before use, every cell may be
//! used by one structure only (security cells excepted, which keys share), so loops and
//! overlapping structures are errors rather than hangs, and memory stays within the size of
//! the input.

use std::collections::HashMap;
use std::sync::Arc;

use winlayer_core::FileTime;
use winlayer_core::security::SecurityDescriptor;

use crate::error::{Error, Result};
use crate::format::*;
use crate::model::{Hive, Key, LayerSemantics, Value};

/// What a hive's base block says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseBlock {
    /// Incremented when a write starts.
    pub primary_sequence: u32,
    /// Incremented when a write ends; equal to the primary one in a clean hive.
    pub secondary_sequence: u32,
    /// The last written time.
    pub last_written: FileTime,
    /// Format minor version (major is 1).
    pub minor_version: u32,
    /// Offset of the root key node in the hive bins data.
    pub root_cell: u32,
    /// Size of the hive bins data.
    pub bins_size: u32,
    /// Base block flags (0x2: the hive supports layered keys).
    pub flags: u32,
    /// Whether the stored checksum matches.
    pub checksum_ok: bool,
}

impl BaseBlock {
    /// Reads and checks the base block (not yet the hive bins).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let not = |m: String| Error::NotAHive(m);
        if bytes.len() < BASE_BLOCK_LEN {
            return Err(not(format!("{} bytes, shorter than the 4096-byte base block", bytes.len())));
        }
        if &bytes[..4] != b"regf" {
            return Err(not(format!("signature {}, not \"regf\"", shown(&bytes[..4]))));
        }
        let (major, minor) = (le32(bytes, base::MAJOR), le32(bytes, base::MINOR));
        if major != 1 || !(3..=6).contains(&minor) {
            return Err(not(format!("format version {major}.{minor}; versions 1.3 to 1.6 are supported")));
        }
        match le32(bytes, base::FILE_TYPE) {
            0 => {}
            t @ (1 | 2 | 6) => return Err(not(format!("file type {t} is a transaction log, not a primary hive"))),
            t => return Err(not(format!("file type {t} (0 is a primary hive)"))),
        }
        if le32(bytes, base::FILE_FORMAT) != 1 {
            return Err(not(format!("file format {} (1 is the only one)", le32(bytes, base::FILE_FORMAT))));
        }
        let bins_size = le32(bytes, base::BINS_SIZE);
        if bins_size == 0 || !(bins_size as usize).is_multiple_of(BIN_ALIGN) {
            return Err(Error::Malformed(format!(
                "hive bins data size {bins_size:#x} is not a positive multiple of 4096"
            )));
        }
        if BASE_BLOCK_LEN + bins_size as usize > bytes.len() {
            return Err(Error::Malformed(format!(
                "the base block promises {bins_size:#x} bytes of hive bins, but the file ends {:#x} bytes after it",
                bytes.len() - BASE_BLOCK_LEN
            )));
        }
        let stamp = le64(bytes, base::LAST_WRITTEN);
        Ok(BaseBlock {
            primary_sequence: le32(bytes, base::PRIMARY_SEQUENCE),
            secondary_sequence: le32(bytes, base::SECONDARY_SEQUENCE),
            last_written: filetime(stamp).ok_or_else(|| Error::Malformed(format!("last written time {stamp:#x}")))?,
            minor_version: minor,
            root_cell: le32(bytes, base::ROOT_CELL),
            bins_size,
            flags: le32(bytes, base::FLAGS),
            checksum_ok: checksum(bytes) == le32(bytes, base::CHECKSUM),
        })
    }

    /// Why the hive is dirty (needs its transaction logs), if it is: a wrong checksum or
    /// differing sequence numbers (the spec, "Dirty state of a hive").
    pub fn dirty(&self) -> Option<String> {
        if !self.checksum_ok {
            Some("its base block checksum is wrong".to_string())
        } else if self.primary_sequence != self.secondary_sequence {
            Some(format!("sequence numbers {} and {} differ", self.primary_sequence, self.secondary_sequence))
        } else {
            None
        }
    }

    /// Whether the hive supports layered keys (a differencing hive).
    pub fn layered(&self) -> bool {
        self.flags & HIVE_FLAG_LAYERED != 0
    }
}

/// How strictly to read.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Read a dirty hive's primary file as it is instead of refusing it. What it holds may be
    /// older than what Windows would show after replaying the transaction logs.
    pub allow_dirty: bool,
}

impl Hive {
    /// Reads a hive, refusing dirty ones.
    pub fn parse(bytes: &[u8]) -> Result<Hive> {
        Self::parse_with(bytes, ReadOptions::default())
    }

    /// Reads a hive.
    pub fn parse_with(bytes: &[u8], options: ReadOptions) -> Result<Hive> {
        let header = BaseBlock::parse(bytes)?;
        if let Some(reason) = header.dirty()
            && !options.allow_dirty
        {
            return Err(Error::Dirty(reason));
        }
        let bins = &bytes[BASE_BLOCK_LEN..BASE_BLOCK_LEN + header.bins_size as usize];
        let mut reader = Reader::new(bins, header.minor_version)?;
        let root = reader.tree(header.root_cell)?;
        Ok(Hive {
            root,
            minor_version: header.minor_version,
            last_written: header.last_written,
            layered: header.layered(),
        })
    }
}

/// A signature as it reads: quoted when it is printable ASCII, else its bytes in hex.
fn shown(signature: &[u8]) -> String {
    if signature.iter().all(|b| b.is_ascii_graphic()) {
        format!("{:?}", String::from_utf8_lossy(signature))
    } else {
        let hex: Vec<String> = signature.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

fn filetime(raw: u64) -> Option<FileTime> {
    i64::try_from(raw).ok().and_then(FileTime::from_ticks)
}

/// One bit per 8-byte slot of the hive bins data.
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Bits(vec![0; (len / 8).div_ceil(64)])
    }
    fn get(&self, offset: usize) -> bool {
        let slot = offset / 8;
        self.0[slot / 64] & (1 << (slot % 64)) != 0
    }
    fn set(&mut self, offset: usize) {
        let slot = offset / 8;
        self.0[slot / 64] |= 1 << (slot % 64);
    }
}

/// A subkey list entry: the key node and what the list says about its name.
struct Entry {
    cell: u32,
    check: NameCheck,
}

enum NameCheck {
    None,
    Hint([u8; 4]),
    Hash(u32),
}

/// A key being read: its subkeys so far, and its index entries.
struct Node {
    key: Key,
    offset: u32,
    entries: Vec<Entry>,
    /// The entry of the next subkey to read.
    next: usize,
}

struct Reader<'a> {
    bins: &'a [u8],
    minor: u32,
    /// Offsets where allocated cells start.
    allocated: Bits,
    /// Cells already taken by a structure.
    used: Bits,
    security: HashMap<u32, Arc<[u8]>>,
    /// Names from the root to the key being read, for error messages.
    path: Vec<String>,
}

impl<'a> Reader<'a> {
    /// Walks every hive bin and cell header, recording where allocated cells start.
    fn new(bins: &'a [u8], minor: u32) -> Result<Self> {
        let mut allocated = Bits::new(bins.len());
        let mut pos = 0;
        while pos < bins.len() {
            let bad = |m: String| Error::Malformed(format!("hive bin at {pos:#x}: {m}"));
            if &bins[pos..pos + 4] != b"hbin" {
                return Err(bad(format!("signature {}, not \"hbin\"", shown(&bins[pos..pos + 4]))));
            }
            let (offset, size) = (le32(bins, pos + 4) as usize, le32(bins, pos + 8) as usize);
            if offset != pos {
                return Err(bad(format!("its header says it is at {offset:#x}")));
            }
            if size < BIN_ALIGN || !size.is_multiple_of(BIN_ALIGN) || size > bins.len() - pos {
                return Err(bad(format!(
                    "size {size:#x} is not a multiple of 4096 that fits the {:#x} bytes of hive bins left",
                    bins.len() - pos
                )));
            }
            let end = pos + size;
            let mut cell = pos + BIN_HEADER_LEN;
            while cell < end {
                let raw = le32(bins, cell) as i32;
                let len = raw.unsigned_abs() as usize;
                if len < 8 || !len.is_multiple_of(8) || len > end - cell {
                    return Err(Error::Malformed(format!(
                        "cell at {cell:#x}: size {raw} is not a multiple of 8 that fits its hive bin (which ends at {end:#x})"
                    )));
                }
                if raw < 0 {
                    allocated.set(cell);
                }
                cell += len;
            }
            pos = end;
        }
        Ok(Reader { bins, minor, allocated, used: Bits::new(bins.len()), security: HashMap::new(), path: Vec::new() })
    }

    /// An error about the key being read.
    fn bad(&self, message: impl std::fmt::Display) -> Error {
        Error::Malformed(format!("key \\{}: {message}", self.path.join("\\")))
    }

    /// The data of the allocated cell at `offset`.
    fn cell(&self, offset: u32, what: &str) -> Result<&'a [u8]> {
        let at = offset as usize;
        if offset == NO_CELL {
            return Err(self.bad(format!("{what} is missing (offset 0xffffffff)")));
        }
        if !at.is_multiple_of(8) || at >= self.bins.len() || !self.allocated.get(at) {
            return Err(self.bad(format!("{what} at {offset:#x} is not an allocated cell")));
        }
        let len = (le32(self.bins, at) as i32).unsigned_abs() as usize;
        Ok(&self.bins[at + 4..at + len])
    }

    /// The cell at `offset`, which no other structure may have used before.
    fn claim(&mut self, offset: u32, what: &str) -> Result<&'a [u8]> {
        let data = self.cell(offset, what)?;
        if self.used.get(offset as usize) {
            return Err(self.bad(format!("{what} at {offset:#x} is a cell already used elsewhere (a loop or overlap)")));
        }
        self.used.set(offset as usize);
        Ok(data)
    }

    /// The claimed cell at `offset`, which must hold a `signature` record of `min_len` bytes
    /// or more.
    fn record(&mut self, offset: u32, signature: &[u8; 2], min_len: usize, what: &str) -> Result<&'a [u8]> {
        let c = self.claim(offset, what)?;
        if c.len() < min_len || &c[..2] != signature {
            let sig = String::from_utf8_lossy(signature);
            return Err(self.bad(format!("cell {offset:#x} is not a {what} ({sig})")));
        }
        Ok(c)
    }

    /// The `len`-byte name at `at` in the `what` record at `offset`, stored compressed (Latin-1)
    /// or as UTF-16.
    fn name(&self, c: &[u8], at: usize, len: u16, compressed: bool, what: &str, offset: u32) -> Result<String> {
        let raw = c
            .get(at..at + len as usize)
            .ok_or_else(|| self.bad(format!("{what} {offset:#x}: its {len}-byte name overruns the cell")))?;
        decode_name(raw, compressed)
            .ok_or_else(|| self.bad(format!("{what} {offset:#x}: its name is not valid UTF-16")))
    }

    /// The tree below the key node at `root`, walked with an explicit stack: a hive 512 levels
    /// deep must not exhaust a thread's stack.
    fn tree(&mut self, root: u32) -> Result<Key> {
        let mut stack = vec![self.node(root, None)?];
        loop {
            let top = stack.last_mut().expect("the root stays until the end");
            if let Some(entry) = top.entries.get(top.next) {
                let (cell, parent) = (entry.cell, top.offset);
                top.next += 1;
                if stack.len() > MAX_DEPTH {
                    return Err(self.bad(format!("keys nest deeper than {MAX_DEPTH} levels")));
                }
                let child = self.node(cell, Some(parent))?;
                stack.push(child);
                continue;
            }
            let done = stack.pop().expect("not empty");
            self.check_index(&done.entries, &done.key.subkeys)?;
            match stack.last_mut() {
                Some(parent) => {
                    self.path.pop();
                    parent.key.subkeys.push(done.key);
                }
                None => return Ok(done.key),
            }
        }
    }

    /// A key node with its values and the entries of its subkey list (its subkeys are read
    /// by [`Reader::tree`]).
    fn node(&mut self, offset: u32, parent: Option<u32>) -> Result<Node> {
        let c = self.record(offset, b"nk", nk::NAME, "key node")?;
        let flags = le16(c, nk::FLAGS);
        let name = self.name(c, nk::NAME, le16(c, nk::NAME_LEN), flags & KEY_COMP_NAME != 0, "key node", offset)?;
        if name.contains('\\') || (name.is_empty() && parent.is_some()) {
            return Err(self.bad(format!("key node {offset:#x}: name {name:?} is empty or contains a backslash")));
        }
        if let Some(parent) = parent {
            self.path.push(name.clone());
            let stored = le32(c, nk::PARENT);
            if stored != parent {
                return Err(self.bad(format!("its parent field is {stored:#x}, but its parent is at {parent:#x}")));
            }
        }
        let stamp = le64(c, nk::LAST_WRITTEN);
        let last_written = filetime(stamp).ok_or_else(|| self.bad(format!("last written time {stamp:#x}")))?;
        let security = Some(self.security(le32(c, nk::SECURITY))?);
        let class = match le16(c, nk::CLASS_LEN) as usize {
            0 => None,
            n => {
                let cell = self.claim(le32(c, nk::CLASS), "class name")?;
                Some(cell.get(..n).ok_or_else(|| self.bad(format!("its {n}-byte class overruns its cell")))?.to_vec())
            }
        };
        let values = match le32(c, nk::VALUE_COUNT) as usize {
            0 => Vec::new(),
            n => {
                let list = self.claim(le32(c, nk::VALUE_LIST), "value list")?;
                if n > list.len() / 4 {
                    return Err(self.bad(format!("{n} values do not fit its {}-byte value list", list.len())));
                }
                (0..n).map(|i| self.value(le32(list, i * 4))).collect::<Result<_>>()?
            }
        };
        let entries = match le32(c, nk::SUBKEY_COUNT) as usize {
            0 => Vec::new(),
            n => self.subkey_list(le32(c, nk::SUBKEY_LIST), n)?,
        };
        let layer_bits = c[nk::LAYER_BITS];
        let bit_fields = le32(c, nk::MAX_SUBKEY_NAME);
        let key = Key {
            name,
            class,
            last_written,
            security,
            flags: flags & !KEY_DERIVED_FLAGS,
            user_flags: (bit_fields >> 20) as u8 & 0xF,
            virtualization_flags: (bit_fields >> 16) as u8 & 0xF,
            layer: LayerSemantics::from_bits(layer_bits & LAYER_SEMANTICS_MASK),
            inherit_class: layer_bits & LAYER_INHERIT_CLASS != 0,
            values,
            subkeys: Vec::with_capacity(entries.len()),
        };
        Ok(Node { key, offset, entries, next: 0 })
    }

    /// The entries of a subkey list (a leaf, or an index root of leaves).
    fn subkey_list(&mut self, offset: u32, count: usize) -> Result<Vec<Entry>> {
        let c = self.claim(offset, "subkey list")?;
        let mut entries = Vec::new();
        if c.len() >= 4 && &c[..2] == b"ri" {
            let n = le16(c, 2) as usize;
            if 4 + n * 4 > c.len() {
                return Err(self.bad(format!("its index root at {offset:#x} lists {n} leaves in {} bytes", c.len())));
            }
            for i in 0..n {
                let leaf_at = le32(c, 4 + i * 4);
                let leaf = self.claim(leaf_at, "subkey leaf")?;
                if leaf.starts_with(b"ri") {
                    return Err(
                        self.bad(format!("index root {offset:#x} points to another index root at {leaf_at:#x}"))
                    );
                }
                self.leaf(leaf, leaf_at, &mut entries)?;
            }
        } else {
            self.leaf(c, offset, &mut entries)?;
        }
        if entries.len() != count {
            return Err(
                self.bad(format!("it says it has {count} subkeys, but its subkey list holds {}", entries.len()))
            );
        }
        Ok(entries)
    }

    fn leaf(&self, c: &[u8], offset: u32, entries: &mut Vec<Entry>) -> Result<()> {
        let kind = match c.get(..2) {
            Some(b"li") => LeafKind::Li,
            Some(b"lf") => LeafKind::Lf,
            Some(b"lh") => LeafKind::Lh,
            _ => return Err(self.bad(format!("cell {offset:#x} is not a subkey list (li, lf, lh or ri)"))),
        };
        let n = if c.len() >= 4 { le16(c, 2) as usize } else { 0 };
        let step = kind.entry_len();
        if c.len() < 4 || 4 + n * step > c.len() {
            return Err(self.bad(format!("subkey list {offset:#x} does not fit its {}-byte cell", c.len())));
        }
        entries.extend((0..n).map(|i| {
            let at = 4 + i * step;
            let check = match kind {
                LeafKind::Li => NameCheck::None,
                LeafKind::Lf => NameCheck::Hint(c[at + 4..at + 8].try_into().expect("4 bytes")),
                LeafKind::Lh => NameCheck::Hash(le32(c, at + 4)),
            };
            Entry { cell: le32(c, at), check }
        }));
        Ok(())
    }

    /// Checks what the index says about names (hints, hashes) and its order: strictly
    /// ascending by upper-cased name, as Windows' binary search needs. Names outside ASCII
    /// are skipped, since this reader's upper-casing may differ from Windows' there.
    fn check_index(&self, entries: &[Entry], subkeys: &[Key]) -> Result<()> {
        for (entry, key) in entries.iter().zip(subkeys) {
            if !key.name.is_ascii() {
                continue;
            }
            let ok = match entry.check {
                NameCheck::None => true,
                NameCheck::Hint(hint) => hint == name_hint(&key.name),
                NameCheck::Hash(hash) => hash == name_hash(&key.name),
            };
            if !ok {
                return Err(self.bad(format!("the index's name hint or hash for subkey {:?} is wrong", key.name)));
            }
        }
        for pair in subkeys.windows(2) {
            let (a, b) = (&pair[0].name, &pair[1].name);
            if a.is_ascii() && b.is_ascii() && compare_names(a, b).is_ge() {
                return Err(self.bad(format!(
                    "subkeys {a:?} and {b:?} are out of order or duplicates (the index must be sorted by upper-case name)"
                )));
            }
        }
        Ok(())
    }

    fn value(&mut self, offset: u32) -> Result<Value> {
        let c = self.record(offset, b"vk", vk::NAME, "value")?;
        let flags = le16(c, vk::FLAGS);
        let name = self.name(c, vk::NAME, le16(c, vk::NAME_LEN), flags & VALUE_COMP_NAME != 0, "value", offset)?;
        let size = le32(c, vk::DATA_SIZE);
        let field = le32(c, vk::DATA);
        let data = if size & DATA_INLINE != 0 {
            let len = (size & !DATA_INLINE) as usize;
            if len > 4 {
                return Err(self.bad(format!("value {name:?}: {len} bytes cannot be stored inline (4 at most)")));
            }
            field.to_le_bytes()[..len].to_vec()
        } else if size == 0 {
            Vec::new()
        } else if self.minor >= 4 && size as usize > BIG_DATA_SEGMENT {
            self.big_data(field, size as usize, &name)?
        } else {
            let cell = self.claim(field, "value data")?;
            let data = cell.get(..size as usize);
            data.ok_or_else(|| self.bad(format!("value {name:?}: {size} bytes of data overrun their cell")))?.to_vec()
        };
        Ok(Value { name, data_type: le32(c, vk::TYPE), data, tombstone: flags & VALUE_TOMBSTONE != 0 })
    }

    /// Data longer than one cell holds, in `db` segments (hives 1.4 and later).
    fn big_data(&mut self, offset: u32, size: usize, name: &str) -> Result<Vec<u8>> {
        let db = self.claim(offset, "big data")?;
        if db.len() < 8 || &db[..2] != b"db" {
            return Err(self.bad(format!("value {name:?}: its {size} bytes need a big data cell (db) at {offset:#x}")));
        }
        let count = le16(db, 2) as usize;
        if count != size.div_ceil(BIG_DATA_SEGMENT) {
            return Err(self.bad(format!("value {name:?}: {count} big data segments cannot hold exactly {size} bytes")));
        }
        let list = self.claim(le32(db, 4), "big data segment list")?;
        if count * 4 > list.len() {
            return Err(self.bad(format!("value {name:?}: {count} segments do not fit their list")));
        }
        // Capacity from what the input can hold, not from what it claims.
        let mut data = Vec::with_capacity(size.min(self.bins.len()));
        for i in 0..count {
            let segment = self.claim(le32(list, i * 4), "big data segment")?;
            let want = BIG_DATA_SEGMENT.min(size - data.len());
            let part = segment.get(..want);
            data.extend_from_slice(part.ok_or_else(|| self.bad(format!("value {name:?}: segment {i} is too short")))?);
        }
        Ok(data)
    }

    /// A key's security descriptor; cells are shared, so each is read and checked once.
    fn security(&mut self, offset: u32) -> Result<Arc<[u8]>> {
        if let Some(sd) = self.security.get(&offset) {
            return Ok(sd.clone());
        }
        let c = self.record(offset, b"sk", sk::DESCRIPTOR, "security cell")?;
        for (field, what) in [(sk::FLINK, "next"), (sk::BLINK, "previous")] {
            let link = le32(c, field);
            if !self.cell(link, "linked security cell")?.starts_with(b"sk") {
                return Err(
                    self.bad(format!("security cell {offset:#x}: its {what} link {link:#x} is not a security cell"))
                );
            }
        }
        let len = le32(c, sk::DESCRIPTOR_LEN) as usize;
        let sd = c
            .get(sk::DESCRIPTOR..sk::DESCRIPTOR.saturating_add(len))
            .ok_or_else(|| self.bad(format!("security cell {offset:#x}: a {len}-byte descriptor overruns the cell")))?;
        SecurityDescriptor::from_bytes(sd).map_err(|e| self.bad(format!("security cell {offset:#x}: {e}")))?;
        let sd: Arc<[u8]> = sd.into();
        self.security.insert(offset, sd.clone());
        Ok(sd)
    }
}
