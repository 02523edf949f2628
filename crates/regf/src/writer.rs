//! A deterministic hive writer, laid out as Windows lays out a fresh hive: the root key node
//! is the first cell (0x20), its security cell the next, then each key's class, values and
//! subkey nodes and index, depth first; cells packed into 4 KiB hive bins. Security
//! descriptors are stored once and shared by every key that has them.

use std::collections::HashMap;

use winlayer_core::security::SecurityDescriptor;

use crate::error::{Error, Result};
use crate::format::*;
use crate::model::{Hive, Key, REG_NONE, Value};

/// The security descriptor of a root key that has none: full control for SYSTEM and
/// Administrators, read for Users, inherited by subkeys. winlayer's choice; what Windows'
/// offline registry library gives a new hive's root is not published.
pub const DEFAULT_ROOT_SDDL: &str = "O:BAG:SYD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)";

/// Longest key name, in UTF-16 units.
const MAX_KEY_NAME: usize = 255;
/// Longest value name, in UTF-16 units.
const MAX_VALUE_NAME: usize = 16383;

/// Choices the format leaves to the writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// The subkey leaf kind; by default the one Windows uses for the hive's version (`lh` from
    /// 1.5 on, `lf` before). `li` is accepted for testing readers.
    pub leaf_kind: Option<LeafKind>,
}

impl Hive {
    /// Writes the hive.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_with(WriteOptions::default())
    }

    /// Writes the hive with explicit choices.
    pub fn to_bytes_with(&self, options: WriteOptions) -> Result<Vec<u8>> {
        if !(3..=6).contains(&self.minor_version) {
            return Err(Error::Unwritable(format!(
                "format version 1.{} (1.3 to 1.6 can be written)",
                self.minor_version
            )));
        }
        let default_sd = SecurityDescriptor::from_sddl(DEFAULT_ROOT_SDDL).expect("the default SDDL parses").to_bytes();
        let mut w = Writer {
            cells: Cells::new(self.last_written.ticks() as u64),
            minor: self.minor_version,
            leaf: options.leaf_kind.unwrap_or(LeafKind::for_minor(self.minor_version)),
            security: HashMap::new(),
            sk_cells: Vec::new(),
            path: Vec::new(),
        };
        let root = w.tree(&self.root, &default_sd)?;
        w.link_security();
        let mut out = w.cells.finish();
        let bins_size = (out.len() - BASE_BLOCK_LEN) as u32;
        out[base::SIGNATURE..4].copy_from_slice(b"regf");
        put32(&mut out, base::PRIMARY_SEQUENCE, 1);
        put32(&mut out, base::SECONDARY_SEQUENCE, 1);
        put64(&mut out, base::LAST_WRITTEN, self.last_written.ticks() as u64);
        put32(&mut out, base::MAJOR, 1);
        put32(&mut out, base::MINOR, self.minor_version);
        put32(&mut out, base::FILE_FORMAT, 1);
        put32(&mut out, base::ROOT_CELL, root);
        put32(&mut out, base::BINS_SIZE, bins_size);
        put32(&mut out, base::CLUSTERING, 1);
        put32(&mut out, base::FLAGS, if self.layered { HIVE_FLAG_LAYERED } else { 0 });
        // Zero resource-manager GUIDs with the signature Windows always writes beside them.
        out[base::GUID_SIGNATURE..base::GUID_SIGNATURE + 4].copy_from_slice(b"rmtm");
        let sum = checksum(&out);
        put32(&mut out, base::CHECKSUM, sum);
        Ok(out)
    }
}

/// Hive bins being filled, after room for the base block: cells go into the current bin while
/// they fit; a cell that does not fit closes the bin (its rest becomes one free cell) and opens
/// one large enough. Cell offsets are relative to the hive bins, as the format stores them.
struct Cells {
    buf: Vec<u8>,
    pos: usize,
    bin_end: usize,
    stamp: u64,
}

impl Cells {
    fn new(stamp: u64) -> Self {
        Cells { buf: vec![0; BASE_BLOCK_LEN], pos: BASE_BLOCK_LEN, bin_end: BASE_BLOCK_LEN, stamp }
    }

    fn alloc(&mut self, data_len: usize) -> Result<u32> {
        let size = cell_size(data_len);
        if self.pos + size > self.bin_end {
            self.close_bin();
            let start = self.buf.len();
            let bin = (size + BIN_HEADER_LEN).next_multiple_of(BIN_ALIGN);
            if start + bin > u32::MAX as usize {
                return Err(Error::Unwritable("the hive would be larger than 4 GiB".into()));
            }
            self.buf.resize(start + bin, 0);
            self.buf[start..start + 4].copy_from_slice(b"hbin");
            put32(&mut self.buf, start + 4, (start - BASE_BLOCK_LEN) as u32);
            put32(&mut self.buf, start + 8, bin as u32);
            if start == BASE_BLOCK_LEN {
                // The first bin keeps a copy of the base block's time stamp.
                put64(&mut self.buf, start + 20, self.stamp);
            }
            self.pos = start + BIN_HEADER_LEN;
            self.bin_end = start + bin;
        }
        let at = self.pos;
        put32(&mut self.buf, at, (size as i32).wrapping_neg() as u32);
        self.pos += size;
        Ok((at - BASE_BLOCK_LEN) as u32)
    }

    /// The data of an allocated cell.
    fn data(&mut self, cell: u32) -> &mut [u8] {
        let at = cell as usize + BASE_BLOCK_LEN;
        let size = (le32(&self.buf, at) as i32).unsigned_abs() as usize;
        &mut self.buf[at + 4..at + size]
    }

    fn close_bin(&mut self) {
        if self.pos < self.bin_end {
            put32(&mut self.buf, self.pos, (self.bin_end - self.pos) as u32);
        }
    }

    /// The whole file: an empty base block, then the hive bins.
    fn finish(mut self) -> Vec<u8> {
        self.close_bin();
        self.buf
    }
}

struct Writer<'a> {
    cells: Cells,
    minor: u32,
    leaf: LeafKind,
    /// Descriptor bytes to their index in `sk_cells`.
    security: HashMap<&'a [u8], usize>,
    /// Security cells in allocation order, with their reference counts.
    sk_cells: Vec<(u32, u32)>,
    path: Vec<&'a str>,
}

/// A key's subkey, ready to index: its node cell.
struct Child<'a> {
    key: &'a Key,
    cell: u32,
}

impl<'a> Writer<'a> {
    fn bad(&self, message: impl std::fmt::Display) -> Error {
        Error::Unwritable(format!("key \\{}: {message}", self.path.join("\\")))
    }

    /// Allocates a key's node cell (filled once its parts are placed).
    fn alloc_key(&mut self, key: &'a Key) -> Result<u32> {
        let units = key.name.encode_utf16().count();
        if units == 0 || units > MAX_KEY_NAME || key.name.contains('\\') {
            return Err(self.bad(format!(
                "subkey name {:?} must be 1 to {MAX_KEY_NAME} characters without a backslash",
                key.name
            )));
        }
        self.cells.alloc(nk::NAME + encode_name(&key.name).0.len())
    }

    /// Writes the tree depth first with an explicit stack (512 levels must not exhaust a
    /// thread's stack); returns the root's cell.
    fn tree(&mut self, root: &'a Key, default_sd: &'a [u8]) -> Result<u32> {
        let root_cell = self.alloc_key(root)?;
        let mut stack = vec![(root, root_cell, None, default_sd, 0usize)];
        while let Some((key, at, parent, inherited_sd, depth)) = stack.pop() {
            // Depth first: the path so far holds this key's ancestors.
            self.path.truncate(depth.saturating_sub(1));
            if depth > 0 {
                self.path.push(&key.name);
            }
            if depth > MAX_DEPTH {
                return Err(self.bad(format!("keys nest deeper than {MAX_DEPTH} levels")));
            }
            let (children, sd) = self.key(key, at, parent, inherited_sd)?;
            stack.extend(children.iter().rev().map(|c| (c.key, c.cell, Some(at), sd, depth + 1)));
        }
        Ok(root_cell)
    }

    /// Writes one key node and its class, values and subkey index; returns its subkeys (their
    /// node cells allocated, in index order) and its security descriptor.
    fn key(
        &mut self,
        key: &'a Key,
        at: u32,
        parent: Option<u32>,
        inherited_sd: &'a [u8],
    ) -> Result<(Vec<Child<'a>>, &'a [u8])> {
        let sd = key.security.as_deref().unwrap_or(inherited_sd);
        let security = self.security_cell(sd)?;
        let class = match &key.class {
            Some(class) if !class.is_empty() => {
                if class.len() > u16::MAX as usize {
                    return Err(self.bad(format!("a {}-byte class is longer than 65535 bytes", class.len())));
                }
                let cell = self.cells.alloc(class.len())?;
                self.cells.data(cell)[..class.len()].copy_from_slice(class);
                cell
            }
            _ => NO_CELL,
        };
        let value_list = self.values(&key.values)?;

        // Subkeys in index order from the start, so the layout does not depend on the order
        // the tree lists them in.
        let mut children: Vec<_> = key.subkeys.iter().map(|sub| Child { key: sub, cell: NO_CELL }).collect();
        children.sort_by(|a, b| compare_names(&a.key.name, &b.key.name));
        if let Some(pair) = children.windows(2).find(|p| compare_names(&p[0].key.name, &p[1].key.name).is_eq()) {
            return Err(
                self.bad(format!("subkeys {:?} and {:?} have the same name", pair[0].key.name, pair[1].key.name))
            );
        }
        for child in &mut children {
            child.cell = self.alloc_key(child.key)?;
        }
        let index = self.index(&children)?;

        let (name, compressed) = encode_name(&key.name);
        let max_name = children.iter().map(|c| c.key.name.encode_utf16().count() * 2).max().unwrap_or(0);
        let max_class = children.iter().map(|c| c.key.class.as_ref().map_or(0, Vec::len)).max().unwrap_or(0);
        let max_value_name = key.values.iter().map(|v| v.name.encode_utf16().count() * 2).max().unwrap_or(0);
        let max_value_data = key.values.iter().map(|v| v.data.len()).max().unwrap_or(0);
        let mut flags = key.flags & !KEY_DERIVED_FLAGS;
        if compressed {
            flags |= KEY_COMP_NAME;
        }
        if parent.is_none() {
            flags |= KEY_HIVE_ENTRY | KEY_NO_DELETE;
        }
        let layer_bits = key.layer.bits() | if key.inherit_class { LAYER_INHERIT_CLASS } else { 0 };
        let bit_fields =
            max_name as u32 | ((key.virtualization_flags as u32 & 0xF) << 16) | ((key.user_flags as u32 & 0xF) << 20);

        let d = self.cells.data(at);
        d[..2].copy_from_slice(b"nk");
        put16(d, nk::FLAGS, flags);
        put64(d, nk::LAST_WRITTEN, key.last_written.ticks() as u64);
        d[nk::LAYER_BITS] = layer_bits;
        put32(d, nk::PARENT, parent.unwrap_or(NO_CELL));
        put32(d, nk::SUBKEY_COUNT, children.len() as u32);
        put32(d, nk::SUBKEY_LIST, index);
        put32(d, nk::VOLATILE_SUBKEY_LIST, NO_CELL);
        put32(d, nk::VALUE_COUNT, key.values.len() as u32);
        put32(d, nk::VALUE_LIST, value_list);
        put32(d, nk::SECURITY, security);
        put32(d, nk::CLASS, class);
        put32(d, nk::MAX_SUBKEY_NAME, bit_fields);
        put32(d, nk::MAX_SUBKEY_CLASS, max_class as u32);
        put32(d, nk::MAX_VALUE_NAME, max_value_name as u32);
        put32(d, nk::MAX_VALUE_DATA, max_value_data as u32);
        put16(d, nk::NAME_LEN, name.len() as u16);
        put16(d, nk::CLASS_LEN, key.class.as_ref().map_or(0, Vec::len) as u16);
        d[nk::NAME..nk::NAME + name.len()].copy_from_slice(&name);

        Ok((children, sd))
    }

    /// The shared security cell for a descriptor, allocated on first use.
    fn security_cell(&mut self, sd: &'a [u8]) -> Result<u32> {
        if let Some(&i) = self.security.get(sd) {
            self.sk_cells[i].1 += 1;
            return Ok(self.sk_cells[i].0);
        }
        SecurityDescriptor::from_bytes(sd).map_err(|e| self.bad(e))?;
        let cell = self.cells.alloc(sk::DESCRIPTOR + sd.len())?;
        let d = self.cells.data(cell);
        d[..2].copy_from_slice(b"sk");
        put32(d, sk::DESCRIPTOR_LEN, sd.len() as u32);
        d[sk::DESCRIPTOR..sk::DESCRIPTOR + sd.len()].copy_from_slice(sd);
        self.security.insert(sd, self.sk_cells.len());
        self.sk_cells.push((cell, 1));
        Ok(cell)
    }

    /// Links the security cells into their circular list and sets reference counts.
    fn link_security(&mut self) {
        let n = self.sk_cells.len();
        for i in 0..n {
            let (cell, refs) = self.sk_cells[i];
            let (next, prev) = (self.sk_cells[(i + 1) % n].0, self.sk_cells[(i + n - 1) % n].0);
            let d = self.cells.data(cell);
            put32(d, sk::FLINK, next);
            put32(d, sk::BLINK, prev);
            put32(d, sk::REFERENCE_COUNT, refs);
        }
    }

    fn values(&mut self, values: &'a [Value]) -> Result<u32> {
        if values.is_empty() {
            return Ok(NO_CELL);
        }
        let mut names: Vec<_> = values.iter().map(|v| v.name.as_str()).collect();
        names.sort_by(|a, b| compare_names(a, b));
        if names.windows(2).any(|p| compare_names(p[0], p[1]).is_eq()) {
            return Err(self.bad("two values have the same name"));
        }
        let list = self.cells.alloc(values.len() * 4)?;
        for (i, value) in values.iter().enumerate() {
            let cell = self.value(value)?;
            put32(self.cells.data(list), i * 4, cell);
        }
        Ok(list)
    }

    fn value(&mut self, value: &Value) -> Result<u32> {
        let units = value.name.encode_utf16().count();
        if units > MAX_VALUE_NAME {
            return Err(self.bad(format!("a value name of {units} characters is longer than {MAX_VALUE_NAME}")));
        }
        let data = &value.data;
        if value.tombstone && !data.is_empty() {
            return Err(self.bad(format!("value {:?}: a tombstone carries no data", value.name)));
        }
        if data.len() >= DATA_INLINE as usize {
            return Err(self.bad(format!("value {:?}: {} bytes is too much data", value.name, data.len())));
        }
        let (name, compressed) = encode_name(&value.name);
        let cell = self.cells.alloc(vk::NAME + name.len())?;
        let (size, field) = if value.tombstone {
            // As the spec describes tombstones: type REG_NONE, no data, no data cell.
            (0, NO_CELL)
        } else if data.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..data.len()].copy_from_slice(data);
            (data.len() as u32 | DATA_INLINE, u32::from_le_bytes(inline))
        } else if self.minor >= 4 && data.len() > BIG_DATA_SEGMENT {
            (data.len() as u32, self.big_data(data, &value.name)?)
        } else {
            let at = self.cells.alloc(data.len())?;
            self.cells.data(at)[..data.len()].copy_from_slice(data);
            (data.len() as u32, at)
        };
        let mut flags = if compressed { VALUE_COMP_NAME } else { 0 };
        if value.tombstone {
            flags |= VALUE_TOMBSTONE;
        }
        let d = self.cells.data(cell);
        d[..2].copy_from_slice(b"vk");
        put16(d, vk::NAME_LEN, name.len() as u16);
        put32(d, vk::DATA_SIZE, size);
        put32(d, vk::DATA, field);
        put32(d, vk::TYPE, if value.tombstone { REG_NONE } else { value.data_type });
        put16(d, vk::FLAGS, flags);
        d[vk::NAME..vk::NAME + name.len()].copy_from_slice(&name);
        Ok(cell)
    }

    /// A `db` cell, its segment list and the segments.
    fn big_data(&mut self, data: &[u8], name: &str) -> Result<u32> {
        let count = data.len().div_ceil(BIG_DATA_SEGMENT);
        if count > u16::MAX as usize {
            return Err(self.bad(format!("value {name:?}: {} bytes need more than 65535 segments", data.len())));
        }
        let db = self.cells.alloc(8)?;
        let list = self.cells.alloc(count * 4)?;
        for (i, chunk) in data.chunks(BIG_DATA_SEGMENT).enumerate() {
            // Every segment cell full size, the last one zero-padded: hivex and libregf take
            // a segment's length from its cell (size − 8) and lose the end of a shorter one.
            let segment = self.cells.alloc(BIG_DATA_SEGMENT)?;
            self.cells.data(segment)[..chunk.len()].copy_from_slice(chunk);
            put32(self.cells.data(list), i * 4, segment);
        }
        let d = self.cells.data(db);
        d[..2].copy_from_slice(b"db");
        put16(d, 2, count as u16);
        put32(d, 4, list);
        Ok(db)
    }

    /// The subkey index: one leaf, or an index root over leaves of at most a bin's worth.
    fn index(&mut self, children: &[Child<'_>]) -> Result<u32> {
        if children.is_empty() {
            return Ok(NO_CELL);
        }
        let capacity = LEAF_CAPACITY * 8 / self.leaf.entry_len();
        let leaves = children.len().div_ceil(capacity);
        if leaves > u16::MAX as usize {
            return Err(self.bad(format!("{} subkeys are more than one index can hold", children.len())));
        }
        // Leaves of even size, as full as a bin allows.
        let per_leaf = children.len().div_ceil(leaves);
        let mut cells = Vec::with_capacity(leaves);
        for chunk in children.chunks(per_leaf) {
            cells.push(self.leaf(chunk)?);
        }
        if cells.len() == 1 {
            return Ok(cells[0]);
        }
        let root = self.cells.alloc(4 + cells.len() * 4)?;
        let d = self.cells.data(root);
        d[..2].copy_from_slice(b"ri");
        put16(d, 2, cells.len() as u16);
        for (i, leaf) in cells.iter().enumerate() {
            put32(d, 4 + i * 4, *leaf);
        }
        Ok(root)
    }

    fn leaf(&mut self, children: &[Child<'_>]) -> Result<u32> {
        let kind = self.leaf;
        let step = kind.entry_len();
        let cell = self.cells.alloc(4 + children.len() * step)?;
        let d = self.cells.data(cell);
        d[..2].copy_from_slice(kind.signature());
        put16(d, 2, children.len() as u16);
        for (i, child) in children.iter().enumerate() {
            let at = 4 + i * step;
            put32(d, at, child.cell);
            match kind {
                LeafKind::Li => {}
                LeafKind::Lf => d[at + 4..at + 8].copy_from_slice(&name_hint(&child.key.name)),
                LeafKind::Lh => put32(d, at + 4, name_hash(&child.key.name)),
            }
        }
        Ok(cell)
    }
}
