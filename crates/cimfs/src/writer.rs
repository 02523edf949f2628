//! Writes a classic CIM (format 2.0) from an entry stream, optionally forked from a parent CIM.
//!
//! As entries arrive, file data goes straight from the source into the data regions (shared
//! by content: a BLAKE3 digest per object) and security descriptors, EAs, reparse buffers and
//! stream tables into the metadata region; only a 96-byte record and a name per object are
//! held until [`CimWriter::finish`], which merges the layer into the parent's view, writes the
//! directory and file tables, the object-ID files and, last, the `.cim` itself, renamed into
//! place so that a crash never leaves an image that looks complete. Region-set GUIDs derive
//! from the content, so the same input gives byte-identical files.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use winlayer_core::check::{Checker, Problem, Severity};
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{Data, Entry, EntryKind, Error, LayerPath, LayerSink, Result, attrs, ea};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::format::*;
use crate::reader::{Cim, FileId};
use crate::upcase::Upcase;

/// Data of this size or less is read whole before it is stored, so a duplicate is never
/// written; longer data is streamed and taken back when it turns out to be a duplicate.
const IN_MEMORY: u64 = 1 << 20;

/// Bytes of a parent's object read back at a time to confirm it is the same content.
const CHECK_CHUNK: usize = 256 << 10;
/// The type of each region of this image's own set (region `<n>` holds type `n`).
const OWN_REGIONS: [RegionType; 3] = [RegionType::Metadata, RegionType::Data, RegionType::SmallData];

/// The security descriptor stored for objects that have none: `D:NO_ACCESS_CONTROL`, as
/// hcsshim substitutes (an image without one is "in a weird state" on Windows).
pub fn default_security() -> Vec<u8> {
    SecurityDescriptor::from_sddl("D:NO_ACCESS_CONTROL").expect("valid SDDL").to_bytes()
}

/// What a finished image holds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// The `.cim` written.
    pub cim: PathBuf,
    /// This image's region set GUID.
    pub region_set: String,
    /// Files, directories and links (objects with a record) written into this image.
    pub records: u64,
    /// Names added by hard links.
    pub hard_links: u64,
    /// Alternate data streams written.
    pub streams: u64,
    /// Paths deleted from the parent's view.
    pub deleted: u64,
    /// Bytes of file and stream data received.
    pub data_bytes: u64,
    /// Bytes of data stored in this image's regions (the rest was shared or sparse).
    pub stored_bytes: u64,
    /// Warnings about the layer (attributes a CIM cannot keep, order differences, …).
    pub warnings: Vec<Problem>,
}

/// A region file being written (under a temporary name until the image is committed).
struct RegionOut {
    temp: tempfile::NamedTempFile,
    out: BufWriter<File>,
    pos: u64,
    kind: RegionType,
    /// Global index (parents' regions first).
    index: u16,
    /// The object-ID file, entries written as objects are stored (its header comes last).
    ids: BufWriter<tempfile::NamedTempFile>,
    id_count: u32,
    /// Digest of the entries, part of the region set's GUID.
    id_digest: blake3::Hasher,
}

/// A region file and its object-ID file, written and waiting for their names.
struct ClosedRegion {
    region: tempfile::NamedTempFile,
    len: u64,
    ids: tempfile::NamedTempFile,
    id_count: u32,
    id_digest: blake3::Hash,
}

impl RegionOut {
    /// Region `kind as u16` of this image's set, whose first region has global index `first`.
    fn new(dir: &Path, kind: RegionType, first: u16) -> Result<RegionOut> {
        let temp = temp_in(dir)?;
        let file = temp.as_file().try_clone().map_err(|e| Error::io("opening a region file", e))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let n = kind as u16;
        let mut ids = BufWriter::new(temp_in(dir)?);
        ids.write_all(&[0; size_of::<ObjectIdHeader>()]).map_err(|e| Error::io("writing an object-ID file", e))?;
        let id_digest = blake3::Hasher::new();
        let mut region = RegionOut { temp, out, pos: 0, kind, index: first + n, ids, id_count: 0, id_digest };
        region.put(RegionHeader::new(n, kind).as_bytes())?;
        Ok(region)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::io("writing a region file", e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Pads with zeros to the region's alignment; returns where the next object starts.
    fn align(&mut self) -> Result<u64> {
        let align = if self.kind == RegionType::Data { PAGE_SIZE } else { SMALL_ALIGN };
        let pad = (align - self.pos % align) % align;
        self.put(&[0u8; PAGE_SIZE as usize][..pad as usize])?;
        Ok(self.pos)
    }

    /// Appends an object at the region's next aligned offset.
    fn place(&mut self, object: &[u8]) -> Result<RegionOffset> {
        let at = self.align()?;
        self.put(object)?;
        Ok(RegionOffset::new(self.index, at))
    }

    /// Appends a u16-counted object.
    fn place_counted16(&mut self, object: &[u8]) -> Result<RegionOffset> {
        let mut counted = (object.len() as u16).to_le_bytes().to_vec();
        counted.extend_from_slice(object);
        self.place(&counted)
    }

    /// Forgets everything written from `pos` on.
    fn rewind(&mut self, pos: u64) -> Result<()> {
        self.out.seek(SeekFrom::Start(pos)).map_err(|e| Error::io("rewinding a region file", e))?;
        self.pos = pos;
        Ok(())
    }

    /// Records the ID of an object just stored at byte `offset`.
    fn record_id(&mut self, len: u64, digest: &[u8; 32], offset: u64) -> Result<()> {
        let mut prefix = [0u8; 24];
        prefix.copy_from_slice(&digest[..24]);
        let entry = ObjectIdEntry { length: U64::new(len), digest: prefix, offset: U64::new(offset) };
        self.ids.write_all(entry.as_bytes()).map_err(|e| Error::io("writing an object-ID file", e))?;
        self.id_digest.update(entry.as_bytes());
        self.id_count += 1;
        Ok(())
    }

    /// Flushes both files, cuts the region at its last object and writes the object-ID header.
    fn close(mut self) -> Result<ClosedRegion> {
        let io = |e: io::Error| Error::io("writing a region file", e);
        self.out.flush().map_err(io)?;
        self.temp.as_file().set_len(self.pos).map_err(io)?;
        let header = ObjectIdHeader {
            common: CommonHeader::new(FileType::ObjectId, size_of::<ObjectIdHeader>()),
            index: U16::new(self.kind as u16),
            region_type: self.kind as u8,
            reserved: 0,
            reserved2: U32::ZERO,
            table_offset: U32::new(size_of::<ObjectIdHeader>() as u32),
            count: U32::new(self.id_count),
        };
        let mut ids = self.ids.into_inner().map_err(|e| io(e.into_error()))?;
        ids.seek(SeekFrom::Start(0)).and_then(|_| ids.write_all(header.as_bytes())).map_err(io)?;
        let (region, len, id_count, id_digest) = (self.temp, self.pos, self.id_count, self.id_digest.finalize());
        Ok(ClosedRegion { region, len, ids, id_count, id_digest })
    }
}

enum What {
    /// A directory the layer has no entry for (it holds whiteouts, or parents of entries).
    Implicit,
    /// A file, directory or link: its record, complete but for the directory table and the
    /// parent FileID, which the merge decides.
    Object(FileRecord),
    HardLink(LayerPath),
}

struct Node {
    parent: usize,
    name: Box<str>,
    what: What,
    /// A whiteout deletes this path from the parent's view.
    deleted: bool,
    id: Option<FileId>,
}

/// A name in a directory of the new image.
#[derive(Clone, Copy)]
enum Child {
    /// An object as the parent image has it (its FileID).
    Parent(FileId),
    /// A node of this layer.
    Node(usize),
}

/// A directory of the new image whose table (and so record) this image writes.
struct DirOut {
    id: FileId,
    node: usize,
    /// The parent image's record it updates, if any.
    parent_record: Option<FileRecord>,
    /// The directory that holds it.
    container: FileId,
    entries: Vec<(String, Child)>,
}

/// Parent objects by length and digest prefix.
type ObjectIds = HashMap<(u64, [u8; 24]), Vec<RegionOffset>>;

/// Writes a CIM; feed it entries, then call [`CimWriter::finish`].
pub struct CimWriter {
    dir: PathBuf,
    target: PathBuf,
    parent: Option<Cim>,
    upcase: Upcase,
    meta: RegionOut,
    data: RegionOut,
    small: RegionOut,
    /// Content already stored, by length and half its digest (128 bits of BLAKE3 leave no
    /// practical room for a collision).
    contents: HashMap<(u64, [u8; 16]), RegionOffset>,
    /// Parent objects by the object IDs of their regions; checked before they are shared.
    parent_objects: ObjectIds,
    nodes: Vec<Node>,
    /// Nodes by parent and name under the collation; only node numbers are stored, the keys
    /// come from the nodes themselves (memory per name matters for big layers).
    children: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    /// The last directory an entry was placed in, by path (entries come in tree order).
    last_dir: Option<(String, usize)>,
    last_object: Option<usize>,
    /// Alternate streams of the last object, written when its entries end.
    streams: Vec<(String, Stream)>,
    /// Security descriptors already written.
    sds: HashMap<Arc<[u8]>, RegionOffset>,
    upcase_at: RegionOffset,
    checker: Checker,
    dropped_attributes: BTreeMap<u32, (u64, String)>,
    summary: Summary,
    /// Data read and written: short data whole, long data in pieces (never allocated per file).
    buf: Vec<u8>,
    /// A parent's object read back for comparison (kept apart from `buf`, which may hold the
    /// data being compared).
    check_buf: Vec<u8>,
    durable: bool,
}

impl CimWriter {
    /// Starts `target` (`<dir>/<name>.cim`), forked from `parent` when given (which must lie in
    /// the same directory). Refuses to replace an existing image.
    pub fn create(target: &Path, parent: Option<&Path>) -> Result<CimWriter> {
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        if target.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is a directory; name the .cim file to create (its regions are written beside it)",
                target.display()
            )));
        }
        if target.exists() {
            return Err(Error::Invalid(format!(
                "{} exists; remove it (and regions no other image uses) first",
                target.display()
            )));
        }
        let parent = match parent {
            None => None,
            Some(p) => {
                let same_dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let canon = |d: &Path| d.canonicalize().map_err(|e| Error::io(format!("resolving {}", d.display()), e));
                if canon(same_dir)? != canon(&dir)? {
                    return Err(Error::Invalid(format!(
                        "parent {} must lie in the same directory as {} (a fork refers to its parent's region files by name)",
                        p.display(),
                        target.display()
                    )));
                }
                Some(Cim::open(p)?)
            }
        };
        let first_region = parent.as_ref().map_or(0, |p| p.regions().len());
        if first_region + OWN_REGIONS.len() > MAX_REGIONS {
            return Err(Error::Invalid("the parent chain already uses all 65536 region indexes".into()));
        }
        let first_region = first_region as u16;
        let upcase = parent.as_ref().map_or_else(Upcase::windows, |p| p.upcase().clone());
        let parent_objects = match &parent {
            Some(p) => load_object_ids(p)?,
            None => HashMap::new(),
        };
        let root = Node { parent: 0, name: "".into(), what: What::Implicit, deleted: false, id: None };
        let mut meta = RegionOut::new(&dir, RegionType::Metadata, first_region)?;
        let upcase_at = match &parent {
            Some(p) => RegionOffset(p.filesystem().upcase_table_offset.get()),
            None => meta.place(&upcase.to_le_bytes())?,
        };
        Ok(CimWriter {
            meta,
            data: RegionOut::new(&dir, RegionType::Data, first_region)?,
            small: RegionOut::new(&dir, RegionType::SmallData, first_region)?,
            dir,
            target: target.to_path_buf(),
            parent,
            upcase,
            contents: HashMap::new(),
            parent_objects,
            nodes: vec![root],
            children: hashbrown::HashTable::new(),
            hasher: std::hash::RandomState::new(),
            last_dir: None,
            last_object: None,
            streams: Vec::new(),
            sds: HashMap::new(),
            upcase_at,
            checker: Checker::new(),
            dropped_attributes: BTreeMap::new(),
            summary: Summary::default(),
            buf: Vec::new(),
            check_buf: Vec::new(),
            durable: true,
        })
    }

    /// Whether files are synced before the `.cim` is renamed into place (the default). Without
    /// it, writing is faster, a process crash still leaves no image, but a power loss may
    /// leave one whose regions lack data.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// The hash of a name in directory node `parent`, under the collation.
    fn name_hash(hasher: &std::hash::RandomState, upcase: &Upcase, parent: usize, name: &str) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = hasher.build_hasher();
        parent.hash(&mut h);
        // The folded characters go to the hasher a few at a time: one call per character
        // cost more than the rest of a lookup.
        let (mut chunk, mut n) = ([0u8; 64], 0);
        for c in upcase.chars(name) {
            chunk[n..n + 4].copy_from_slice(&(c as u32).to_le_bytes());
            n += 4;
            if n == chunk.len() {
                h.write(&chunk);
                n = 0;
            }
        }
        h.write(&chunk[..n]);
        h.finish()
    }

    /// The child `name` of node `parent`, if the layer has one.
    fn child(&self, parent: usize, name: &str) -> Option<usize> {
        let hash = Self::name_hash(&self.hasher, &self.upcase, parent, name);
        let (nodes, upcase) = (&self.nodes, &self.upcase);
        let same = |&i: &u32| {
            let n = &nodes[i as usize];
            n.parent == parent && upcase.chars(&n.name).eq(upcase.chars(name))
        };
        self.children.find(hash, same).map(|&i| i as usize)
    }

    /// The node at `path`, creating implicit directories on the way.
    fn node_at(&mut self, path: &LayerPath) -> usize {
        let parent = path.parent();
        let (mut at, parts) = match (&self.last_dir, &parent) {
            (Some((last, n)), Some(p)) if last == p.as_str() => (*n, vec![path.file_name()]),
            _ => (0, path.components().collect()),
        };
        for part in parts {
            at = match self.child(at, part) {
                Some(n) => n,
                None => {
                    let node = Node { parent: at, name: part.into(), what: What::Implicit, deleted: false, id: None };
                    self.nodes.push(node);
                    let n = self.nodes.len() - 1;
                    let hash = Self::name_hash(&self.hasher, &self.upcase, at, part);
                    let (nodes, upcase, hasher) = (&self.nodes, &self.upcase, &self.hasher);
                    let rehash = |&i: &u32| {
                        let n = &nodes[i as usize];
                        Self::name_hash(hasher, upcase, n.parent, &n.name)
                    };
                    self.children.insert_unique(hash, n as u32, rehash);
                    n
                }
            };
        }
        if let Some(p) = parent {
            let n = self.nodes[at].parent;
            self.last_dir = Some((p.as_str().to_string(), n));
        }
        at
    }

    /// The node at `path` if the layer has one.
    fn find_node(&self, path: &LayerPath) -> Option<usize> {
        path.components().try_fold(0, |at, part| self.child(at, part))
    }

    /// Stores `len` bytes of data: nothing for all-zero data of a sparse file, a reference
    /// for content already stored, else the bytes (in the data region from 4 KiB on).
    fn store(&mut self, data: &mut dyn Read, len: u64, sparse: bool, what: &LayerPath) -> Result<Stream> {
        self.summary.data_bytes += len;
        if len == 0 {
            return Ok(Stream::new(StreamType::Data, RegionOffset::NULL, 0));
        }
        let short = |got: u64| Error::Invalid(format!("{what}: data ends after {got} of {len} bytes"));
        let read_err = |e: io::Error| Error::io(format!("reading the data of {what}"), e);
        // Grown as data needs it, to at most IN_MEMORY: an image of small files never zeroes
        // the whole buffer.
        let need = len.min(IN_MEMORY) as usize;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let mut hasher = blake3::Hasher::new();
        // Short data is read whole and written only if new; long data is written as it is
        // read, from `start` (padded from `before`), and taken back if it is not new.
        let (whole, before, start, zero) = if len <= IN_MEMORY {
            let whole = &mut self.buf[..len as usize];
            let mut got = 0;
            while got < whole.len() {
                match data.read(&mut whole[got..]).map_err(read_err)? {
                    0 => return Err(short(got as u64)),
                    n => got += n,
                }
            }
            hasher.update(whole);
            let zero = sparse && whole.iter().all(|&b| b == 0);
            (true, 0, 0, zero)
        } else {
            let before = self.data.pos;
            let start = self.data.align()?;
            let (mut left, mut zero) = (len, sparse);
            while left > 0 {
                let want = left.min(self.buf.len() as u64) as usize;
                let n = data.read(&mut self.buf[..want]).map_err(read_err)?;
                if n == 0 {
                    return Err(short(len - left));
                }
                let chunk = &self.buf[..n];
                hasher.update(chunk);
                zero = zero && chunk.iter().all(|&b| b == 0);
                self.data.put(chunk)?;
                left -= n as u64;
            }
            (false, before, start, zero)
        };
        let digest = *hasher.finalize().as_bytes();
        let shared = if zero { None } else { self.shared(len, &digest)? };
        if !whole && (zero || shared.is_some()) {
            self.data.rewind(before)?;
        }
        if zero {
            return Ok(Stream::sparse(len));
        }
        if let Some(at) = shared {
            return Ok(Stream::new(StreamType::Data, at, len));
        }
        let region = if len < PAGE_SIZE { &mut self.small } else { &mut self.data };
        let at = if whole { region.place(&self.buf[..len as usize])? } else { RegionOffset::new(region.index, start) };
        region.record_id(len, &digest, at.offset())?;
        self.contents.insert(content_key(len, &digest), at);
        self.summary.stored_bytes += len;
        Ok(Stream::new(StreamType::Data, at, len))
    }

    /// Where identical content already lies: in this image, or in a parent region whose bytes
    /// are read back and checked.
    fn shared(&mut self, len: u64, digest: &[u8; 32]) -> Result<Option<RegionOffset>> {
        if let Some(&at) = self.contents.get(&content_key(len, digest)) {
            return Ok(Some(at));
        }
        let mut short = [0u8; 24];
        short.copy_from_slice(&digest[..24]);
        let (Some(parent), Some(candidates)) = (&self.parent, self.parent_objects.get(&(len, short))) else {
            return Ok(None);
        };
        for &at in candidates {
            let stream = Stream::new(StreamType::Data, at, len);
            let mut hasher = blake3::Hasher::new();
            let mut pos = 0;
            let ok = loop {
                if pos == len {
                    break hasher.finalize().as_bytes() == digest;
                }
                let want = (len - pos).min(CHECK_CHUNK as u64) as usize;
                self.check_buf.resize(want.max(self.check_buf.len()), 0);
                match parent.read_stream(&stream, pos, &mut self.check_buf[..want]) {
                    Ok(n) if n > 0 => {
                        hasher.update(&self.check_buf[..n]);
                        pos += n as u64;
                    }
                    _ => break false,
                }
            };
            if ok {
                self.contents.insert(content_key(len, digest), at);
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Where a security descriptor lies, written the first time it is seen; an object without
    /// one gets [`default_security`].
    fn sd_offset(&mut self, sd: Option<&Arc<[u8]>>) -> Result<RegionOffset> {
        let sd = sd.cloned().unwrap_or_else(|| Arc::from(default_security()));
        if let Some(&at) = self.sds.get(&sd) {
            return Ok(at);
        }
        let at = self.meta.place_counted16(&sd)?;
        self.sds.insert(sd, at);
        Ok(at)
    }

    /// Writes the stream table of the last object, once its stream entries have ended.
    fn flush_streams(&mut self) -> Result<()> {
        let streams = std::mem::take(&mut self.streams);
        let Some(n) = self.last_object.take().filter(|_| !streams.is_empty()) else { return Ok(()) };
        let mut list: Vec<(String, Vec<u16>, Stream)> =
            streams.iter().map(|(n, s)| (self.upcase.key(n), n.encode_utf16().collect(), *s)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let refs: Vec<(&[u16], &[u8])> = list.iter().map(|(_, n, s)| (n.as_slice(), s.as_bytes())).collect();
        let table = encode_link_table(&refs, size_of::<Stream>());
        let mut counted = (table.len() as u32).to_le_bytes().to_vec();
        counted.extend_from_slice(&table);
        let at = self.meta.place(&counted)?;
        if let What::Object(r) = &mut self.nodes[n].what {
            r.stream_table_offset = U64::new(at.0);
        }
        Ok(())
    }

    /// The record of an object entry, with its data, security descriptor, EAs and reparse
    /// buffer written; a directory's table and every parent FileID come with the merge.
    fn object(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<FileRecord> {
        let meta = &entry.meta;
        let a = meta.attributes;
        let structural = attrs::DIRECTORY | attrs::REPARSE_POINT | attrs::NORMAL;
        let lost = a & !(FLAG_ATTRIBUTES.iter().map(|(_, a)| a).sum::<u32>() | structural);
        if lost != 0 {
            self.dropped_attributes.entry(lost).or_insert((0, entry.path.to_string())).0 += 1;
        }
        let mut r = FileRecord {
            flags: U16::new(flags_from_attributes(a)),
            creation_time: U64::new(meta.creation.ticks() as u64),
            last_write_time: U64::new(meta.last_write.ticks() as u64),
            change_time: U64::new(meta.change.ticks() as u64),
            last_access_time: U64::new(meta.last_access.ticks() as u64),
            sd_offset: U64::new(self.sd_offset(meta.security.as_ref())?.0),
            ..FileRecord::default()
        };
        if !meta.eas.is_empty() {
            let buf = ea::encode_list(&meta.eas);
            if buf.len() > u16::MAX as usize {
                let n = buf.len();
                return Err(Error::Invalid(format!("{}: {n} bytes of EAs (a CIM holds at most 65535)", entry.path)));
            }
            r.ea_length = U16::new(buf.len() as u16);
            r.ea_offset = U64::new(self.meta.place(&buf)?.0);
        }
        let directory = Stream::new(StreamType::LinkTable, RegionOffset::NULL, 0);
        match &entry.kind {
            EntryKind::Directory => r.default_stream = directory,
            EntryKind::Symlink(link) => {
                let buf = link.to_reparse_buffer();
                r.reparse_tag = U32::new(u32::from_le_bytes(buf[0..4].try_into().expect("8-byte header")));
                r.reparse_offset = U64::new(self.meta.place_counted16(&buf)?.0);
                if a & attrs::DIRECTORY != 0 {
                    r.default_stream = directory;
                }
            }
            EntryKind::File { size } => {
                r.default_stream = self.store(data, *size, a & attrs::SPARSE_FILE != 0, &entry.path)?;
            }
            _ => unreachable!("only objects reach here"),
        }
        Ok(r)
    }

    /// Merges the layer into the parent's view and commits the image.
    pub fn finish(mut self) -> Result<Summary> {
        self.flush_streams()?;
        // Sharing ends with the data; the merge needs the memory more.
        (self.contents, self.parent_objects) = (HashMap::new(), HashMap::new());
        let mut problems = std::mem::take(&mut self.checker).finish();
        for (bits, (count, first)) in std::mem::take(&mut self.dropped_attributes) {
            problems.push(Problem::warning(
                first,
                format!("{count} entr(y/ies) carry attribute bits 0x{bits:x} a CIM cannot store; they are dropped"),
            ));
        }
        let errors: Vec<_> = problems.iter().filter(|p| p.severity == Severity::Error).cloned().collect();
        if !errors.is_empty() {
            return Err(Error::Problems(errors));
        }
        self.summary.warnings = problems;
        let plan = self.merge()?;
        self.commit(plan)
    }

    /// Works out every directory of the new image that this image rewrites, assigning FileIDs.
    fn merge(&mut self) -> Result<Vec<DirOut>> {
        let mut layer_children: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            layer_children[n.parent].push(i);
        }
        for list in &mut layer_children {
            list.sort_by_cached_key(|&i| self.upcase.key(&self.nodes[i].name));
        }
        // New FileIDs start at a whole table past the parent's (its last table stays shared).
        let mut next_id = self.parent.as_ref().map_or(0, |p| p.tables().len() as u64 * FILES_PER_TABLE as u64);
        let mut new_id = || {
            next_id += 1;
            FileId::try_from(next_id).map_err(|_| Error::Invalid("the image would need more than 2^32 FileIDs".into()))
        };
        let (root_id, root_parent) = match &self.parent {
            Some(p) => (p.root(), Some(p.root())),
            None => (new_id()?, None),
        };
        self.nodes[0].id = Some(root_id);
        let mut work = vec![(0usize, root_parent, root_id, root_id)];
        let mut out = Vec::new();
        while let Some((node, parent_dir, id, container)) = work.pop() {
            let mut names: BTreeMap<String, (String, Child)> = BTreeMap::new();
            let mut parent_record = None;
            if let (Some(p), Some(pid)) = (&self.parent, parent_dir) {
                parent_record = Some(p.record(pid)?);
                for e in p.dir(pid)? {
                    let key = self.upcase.key(&e.name);
                    if names.insert(key, (e.name, Child::Parent(e.id))).is_some() {
                        return Err(Error::Invalid(format!("parent image: directory FileID {pid} lists a name twice")));
                    }
                }
            }
            for &c in &layer_children[node] {
                let key = self.upcase.key(&self.nodes[c].name);
                if self.nodes[c].deleted && names.remove(&key).is_some() {
                    self.summary.deleted += 1;
                }
                let existing_dir = match names.get(&key) {
                    Some((_, Child::Parent(pid))) => match &self.parent {
                        Some(p) if p.record(*pid)?.is_dir() => Some(*pid),
                        _ => None,
                    },
                    _ => None,
                };
                let name = self.nodes[c].name.to_string();
                match &self.nodes[c].what {
                    What::Implicit => {
                        if let Some(pid) = existing_dir {
                            self.nodes[c].id = Some(pid);
                            work.push((c, Some(pid), pid, id));
                        } else if self.has_objects(c, &layer_children) {
                            return Err(Error::Invalid(format!(
                                "{}: parent directory is neither in this layer nor in the parent image",
                                self.path_of(c)
                            )));
                        }
                    }
                    What::Object(r) if r.is_dir() && r.reparse_offset.get() == 0 => {
                        let (cid, from) = match existing_dir {
                            Some(pid) if !self.nodes[c].deleted => (pid, Some(pid)),
                            _ => (new_id()?, None),
                        };
                        self.nodes[c].id = Some(cid);
                        names.insert(key, (name, Child::Node(c)));
                        work.push((c, from, cid, id));
                    }
                    What::Object(_) => {
                        self.nodes[c].id = Some(new_id()?);
                        if self.has_objects(c, &layer_children) {
                            return Err(Error::Invalid(format!(
                                "{}: has entries below it but is not a directory",
                                self.path_of(c)
                            )));
                        }
                        names.insert(key, (name, Child::Node(c)));
                    }
                    What::HardLink(_) => {
                        names.insert(key, (name, Child::Node(c)));
                    }
                }
            }
            out.push(DirOut { id, node, parent_record, container, entries: names.into_values().collect() });
        }
        // Hard links name FileIDs that are all known now.
        for i in 0..self.nodes.len() {
            if matches!(self.nodes[i].what, What::HardLink(_)) {
                let id = self.link_target(i)?;
                self.nodes[i].id = Some(id);
                self.summary.hard_links += 1;
            }
        }
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    /// Whether anything but whiteouts lies at or below node `n`.
    fn has_objects(&self, n: usize, children: &[Vec<usize>]) -> bool {
        let mut todo = children[n].clone();
        while let Some(c) = todo.pop() {
            if !matches!(self.nodes[c].what, What::Implicit) {
                return true;
            }
            todo.extend_from_slice(&children[c]);
        }
        false
    }

    fn path_of(&self, mut n: usize) -> String {
        let mut parts = Vec::new();
        while n != 0 {
            parts.push(&*self.nodes[n].name);
            n = self.nodes[n].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// The FileID a hard link names: the file at its target in this layer, or else in the
    /// parent image as it was (as Windows' importer resolves links).
    fn link_target(&self, link: usize) -> Result<FileId> {
        let mut at = link;
        for _ in 0..self.nodes.len() {
            let What::HardLink(target) = &self.nodes[at].what else { break };
            let fail = |why: &str| Err(Error::Invalid(format!("hard link {} -> {target}: {why}", self.path_of(link))));
            match self.find_node(target).map(|n| (n, &self.nodes[n].what)) {
                Some((n, What::HardLink(_))) if n != at => at = n,
                Some((n, What::Object(r))) => {
                    if r.is_dir() {
                        return fail("the target is a directory");
                    }
                    return match self.nodes[n].id {
                        Some(id) => Ok(id),
                        None => fail("the target is not part of the image"),
                    };
                }
                _ => {
                    let found = match &self.parent {
                        Some(p) => p.find(target.as_str())?.map(|id| (id, p.record(id))),
                        None => None,
                    };
                    return match found {
                        Some((_, Ok(r))) if r.is_dir() => fail("the target is a directory"),
                        Some((id, Ok(_))) => Ok(id),
                        Some((_, Err(e))) => Err(e),
                        None => fail("the target is neither in this layer nor in the parent image"),
                    };
                }
            }
        }
        Err(Error::Invalid(format!("hard link {}: its targets form a loop", self.path_of(link))))
    }

    /// Writes the metadata region, the object-ID files and the `.cim`.
    fn commit(mut self, dirs: Vec<DirOut>) -> Result<Summary> {
        let mut records: Vec<(FileId, FileRecord)> = Vec::with_capacity(self.nodes.len());
        let mut dir_of: HashMap<usize, FileId> = HashMap::new();
        for d in &dirs {
            for (_, child) in &d.entries {
                if let Child::Node(n) = child {
                    dir_of.entry(*n).or_insert(d.id);
                }
            }
        }
        for d in &dirs {
            let mut entries: Vec<(Vec<u16>, [u8; 4])> = Vec::with_capacity(d.entries.len());
            for (name, child) in &d.entries {
                let id = match child {
                    Child::Parent(id) => *id,
                    Child::Node(n) => self.nodes[*n].id.expect("every placed node has a FileID"),
                };
                entries.push((name.encode_utf16().collect(), id.to_le_bytes()));
            }
            self.check_order(d, &entries);
            let refs: Vec<(&[u16], &[u8])> = entries.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            let table = encode_link_table(&refs, 4);
            let stream = Stream::new(StreamType::LinkTable, self.meta.place(&table)?, table.len() as u64);
            let container = U32::new(d.container);
            let record = match (&self.nodes[d.node].what, &d.parent_record) {
                (What::Object(r), _) => FileRecord { default_stream: stream, parent_file_id: container, ..*r },
                (_, Some(r)) => FileRecord { default_stream: stream, ..*r },
                // A new image's root: no times, the default security descriptor, its own parent.
                _ => FileRecord {
                    default_stream: stream,
                    sd_offset: U64::new(self.sd_offset(None)?.0),
                    parent_file_id: container,
                    ..FileRecord::default()
                },
            };
            records.push((d.id, record));
        }
        let empty = encode_link_table(&[], 4);
        let empty_dir = Stream::new(StreamType::LinkTable, self.meta.place(&empty)?, empty.len() as u64);
        let written: std::collections::HashSet<FileId> = records.iter().map(|(id, _)| *id).collect();
        for (n, node) in self.nodes.iter().enumerate() {
            if let (What::Object(r), Some(id), Some(&container)) = (&node.what, node.id, dir_of.get(&n))
                && !written.contains(&id)
            {
                let stream = if r.is_dir() { empty_dir } else { r.default_stream };
                records.push((id, FileRecord { default_stream: stream, parent_file_id: U32::new(container), ..*r }));
            }
        }
        records.sort_unstable_by_key(|(id, _)| *id);
        self.summary.records = records.len() as u64;
        let (ftd_at, ftd_len) = self.file_tables(&records)?;
        let fs = Filesystem {
            upcase_table_offset: U64::new(self.upcase_at.0),
            file_table_directory_offset: U64::new(ftd_at.0),
            file_table_directory_length: U32::new(ftd_len),
            root_directory: U32::new(self.nodes[0].id.expect("root has a FileID")),
        };
        let fs_at = self.meta.place(fs.as_bytes())?;
        self.write_files(fs_at)
    }

    /// Warns where NTFS-style ordering (upcased UTF-16 units) would differ from the code-point
    /// ordering of Microsoft's reader, which this writer follows.
    fn check_order(&mut self, d: &DirOut, entries: &[(Vec<u16>, [u8; 4])]) {
        let units = entries.iter().map(|(n, _)| n.iter().map(|&u| self.upcase.unit(u)).collect::<Vec<_>>());
        let mut previous: Option<Vec<u16>> = None;
        for name in units {
            if previous.as_ref().is_some_and(|p| *p > name) {
                self.summary.warnings.push(Problem::warning(
                    self.path_of(d.node),
                    "names mix supplementary characters with U+E000..U+FFFF: NTFS-style UTF-16 order differs from the code-point order written here",
                ));
                return;
            }
            previous = Some(name);
        }
    }

    /// Writes the file tables: parent tables that hold no changed record are shared, the others
    /// copied with their changes; returns the file table directory's place and length.
    fn file_tables(&mut self, records: &[(FileId, FileRecord)]) -> Result<(RegionOffset, u32)> {
        let parent_tables = self.parent.as_ref().map_or(&[][..], |p| p.tables());
        let last = records.last().map_or(0, |(id, _)| *id);
        let count = (parent_tables.len() as u32).max(last.div_ceil(FILES_PER_TABLE));
        let mut directory = Vec::new();
        for t in 0..count {
            let first = t * FILES_PER_TABLE + 1;
            let from = records.partition_point(|(id, _)| *id < first);
            let to = records.partition_point(|(id, _)| *id < first + FILES_PER_TABLE);
            let changed = &records[from..to];
            let inherited = parent_tables.get(t as usize);
            let entry = match (inherited, changed.is_empty()) {
                (Some(e), true) => *e,
                _ => {
                    let parent = self.parent.as_ref();
                    let old = inherited.map_or(0, |e| e.count.get() as u32);
                    let n = old.max(changed.last().map_or(0, |(id, _)| *id - first + 1));
                    let mut table = Vec::with_capacity(n as usize * FILE_RECORD_LEN);
                    let mut changed = changed.iter().peekable();
                    for slot in 0..n {
                        let id = first + slot;
                        let record = match changed.next_if(|(c, _)| *c == id) {
                            Some((_, r)) => *r,
                            None if slot < old => parent.expect("inherited table").record(id)?,
                            None => FileRecord::default(),
                        };
                        table.extend_from_slice(record.as_bytes());
                    }
                    FileTableDirectoryEntry {
                        offset: U64::new(self.meta.place(&table)?.0),
                        count: U16::new(n as u16),
                        entry_size: U16::new(FILE_RECORD_LEN as u16),
                        reserved: U32::ZERO,
                    }
                }
            };
            directory.extend_from_slice(entry.as_bytes());
        }
        Ok((self.meta.place(&directory)?, count))
    }

    /// Names the region set after the content, renames the regions into place, writes the
    /// object-ID files and finally the `.cim`.
    fn write_files(mut self, fs_at: RegionOffset) -> Result<Summary> {
        let parent_sets: Vec<RegionSet> =
            self.parent.as_ref().map_or_else(Vec::new, |p| p.sets().iter().map(|s| s.set).collect());
        let closed = [self.meta.close()?, self.data.close()?, self.small.close()?];
        let mut id = blake3::Hasher::new();
        id.update(b"winlayer classic CIM 2.0 region set");
        parent_sets.iter().for_each(|s| {
            id.update(s.as_bytes());
        });
        let mut meta = closed[0].region.reopen().map_err(|e| Error::io("reading the metadata region back", e))?;
        io::copy(&mut meta, &mut id).map_err(|e| Error::io("reading the metadata region back", e))?;
        for c in &closed {
            id.update(&c.len.to_le_bytes());
            id.update(&c.id_count.to_le_bytes());
            id.update(c.id_digest.as_bytes());
        }
        let guid = Guid::from_digest(id.finalize().as_bytes());
        for (n, c) in closed.into_iter().enumerate() {
            let path = self.dir.join(region_file_name(guid, n as u16));
            if self.durable {
                c.region.as_file().sync_all().map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
            }
            c.region.persist(&path).map_err(|e| Error::io(format!("renaming into {}", path.display()), e.error))?;
            // Object IDs are hints (every shared object is checked), so they need no sync.
            let ids = self.dir.join(objectid_file_name(guid, n as u16));
            c.ids.persist(&ids).map_err(|e| Error::io(format!("renaming into {}", ids.display()), e.error))?;
        }
        let header = FilesystemHeader {
            common: CommonHeader::new(FileType::Filesystem, size_of::<FilesystemHeader>()),
            regions: RegionSet {
                id: guid,
                count: U16::new(OWN_REGIONS.len() as u16),
                reserved: U16::ZERO,
                reserved1: U32::ZERO,
            },
            filesystem_offset: U64::new(fs_at.0),
            reserved: U32::ZERO,
            reserved1: U16::ZERO,
            parent_count: U16::new(parent_sets.len() as u16),
        };
        let mut bytes = header.as_bytes().to_vec();
        parent_sets.iter().for_each(|s| bytes.extend_from_slice(s.as_bytes()));
        commit_file(&self.dir, &self.target, &bytes, self.durable)?;
        self.summary.cim = self.target.clone();
        self.summary.region_set = guid.to_string();
        Ok(self.summary)
    }
}

/// The key content is shared by: its length and the first half of its digest.
fn content_key(len: u64, digest: &[u8; 32]) -> (u64, [u8; 16]) {
    let mut half = [0u8; 16];
    half.copy_from_slice(&digest[..16]);
    (len, half)
}

/// A temporary file in `dir` (mode from the umask, removed on a signal, recognised by the next
/// run after a kill: `winlayer_core::temp`).
fn temp_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    winlayer_core::temp::file_in(dir).map_err(|e| Error::io(format!("creating a file in {}", dir.display()), e))
}

/// Writes the `.cim` through a temporary file (synced when `durable`) renamed into place,
/// never replacing an existing file: the commit of the image.
fn commit_file(dir: &Path, path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let mut temp = temp_in(dir)?;
    temp.write_all(bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    if durable {
        temp.as_file().sync_all().map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    }
    temp.persist_noclobber(path).map_err(|e| Error::io(format!("renaming into {}", path.display()), e.error))?;
    Ok(())
}

/// The object IDs of every region of `cim` that has an object-ID file (absent files are
/// fine: Windows' tools treat them as optional).
fn load_object_ids(cim: &Cim) -> Result<ObjectIds> {
    let dir = cim.path().parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut map: ObjectIds = HashMap::new();
    for s in cim.sets() {
        for n in 0..s.set.count.get() {
            let path = dir.join(objectid_file_name(s.set.id, n));
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let bad = |m: &str| Error::Invalid(format!("{}: {m}", path.display()));
            let header = ObjectIdHeader::read_from_prefix(&bytes).map_err(|_| bad("shorter than its header"))?.0;
            header.common.check(FileType::ObjectId).map_err(|m| bad(&m))?;
            let at = header.table_offset.get() as usize;
            let len = header.count.get() as usize * size_of::<ObjectIdEntry>();
            let table = bytes.get(at..at.saturating_add(len)).ok_or_else(|| bad("entry table runs past the end"))?;
            for e in <[ObjectIdEntry]>::ref_from_bytes(table).map_err(|_| bad("misaligned entry table"))? {
                let offset = e.offset.get();
                if offset == 0 || offset >= MAX_REGION_BYTES {
                    continue;
                }
                map.entry((e.length.get(), e.digest)).or_default().push(RegionOffset::new(s.first + n, offset));
            }
        }
    }
    Ok(map)
}

impl CimWriter {
    /// Adds an entry an importer generates around the layer, outside the layer rules (which
    /// check every [`LayerSink::entry`]): hcsshim's CIM container layers hold hard links
    /// `Hives\<H>_BASE` to the configuration hives and a root file `layout` (see
    /// [`LayerPath::generated_root_file`]), neither of which a layer tar may carry.
    pub fn add_generated(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        self.place(entry, data)
    }

    /// Stores one entry of the layer.
    fn place(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let path = &entry.path;
        if let EntryKind::Stream { name, size } = &entry.kind {
            if self.last_object.is_none() || self.last_object != self.find_node(path) {
                return Err(Error::Invalid(format!(
                    "{path}:{name}: an alternate stream must follow its owner's entry"
                )));
            }
            let stream = self.store(data, *size, false, path)?;
            self.streams.push((name.clone(), stream));
            self.summary.streams += 1;
            return Ok(());
        }
        self.flush_streams()?;
        let what = match &entry.kind {
            EntryKind::Directory | EntryKind::File { .. } | EntryKind::Symlink(_) => {
                What::Object(self.object(entry, data)?)
            }
            EntryKind::HardLink { target } => What::HardLink(target.clone()),
            EntryKind::Whiteout => {
                let n = self.node_at(path);
                self.nodes[n].deleted = true;
                return Ok(());
            }
            _ => return Ok(()), // Opaque markers: Windows' importers ignore them (the checker warns).
        };
        let n = self.node_at(path);
        if !matches!(self.nodes[n].what, What::Implicit) {
            return Err(Error::Invalid(format!(
                "{path}: the layer has this name twice (names compare case-insensitively)"
            )));
        }
        if matches!(what, What::Object(_)) {
            self.last_object = Some(n);
        }
        self.nodes[n].what = what;
        self.nodes[n].name = path.file_name().into();
        Ok(())
    }
}

impl LayerSink for CimWriter {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        self.checker.check(entry);
        self.place(entry, data)
    }
}
