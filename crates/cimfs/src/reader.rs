//! Opens a CIM with its parent region sets and reads it: every offset, length and count is
//! checked against the region files before it is used, so a hostile image gives an error
//! naming the object and where it should lie, never a panic or an allocation the files
//! cannot back.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use winlayer_core::ea::{self, ExtendedAttribute};
use winlayer_core::{Error, FileTime, Metadata, Result, attrs};
use zerocopy::{FromBytes, FromZeros};

use crate::format::*;
use crate::upcase::{UPCASE_LEN, Upcase};

/// Link and stream tables larger than this are refused (about a million entries).
pub const MAX_TABLE_BYTES: u64 = 64 << 20;

/// Metadata regions up to this size are read into memory when an image is opened.
const METADATA_IN_MEMORY: u64 = 64 << 20;

/// A FileID: 1-based index of a file record.
pub type FileId = u32;

/// Bytes an image is read from: an open file, or a buffer in memory (the fuzz target's images,
/// so that hostile inputs never touch the file system).
#[derive(Clone, Debug)]
pub enum Storage {
    /// A file on disk.
    File(Arc<File>),
    /// Bytes in memory (a `Vec`, so that bytes read or made whole are shared without a copy).
    Memory(Arc<Vec<u8>>),
}

impl Storage {
    /// Fills `buf` from `offset`; running past the end is an `UnexpectedEof` error.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Storage::File(file) => read_exact_at(file, buf, offset),
            Storage::Memory(bytes) => {
                let start = usize::try_from(offset).ok().filter(|&s| s <= bytes.len());
                let src = start.and_then(|s| bytes.get(s..s.checked_add(buf.len())?));
                buf.copy_from_slice(src.ok_or(io::ErrorKind::UnexpectedEof)?);
                Ok(())
            }
        }
    }

    /// The length in bytes.
    pub fn size(&self) -> io::Result<u64> {
        match self {
            Storage::File(file) => Ok(file.metadata()?.len()),
            Storage::Memory(bytes) => Ok(bytes.len() as u64),
        }
    }
}

/// Where an image's files (the `.cim` and its region files) are found: a directory, or named
/// buffers in memory.
#[derive(Clone, Debug)]
pub enum ImageFiles {
    /// Files in a directory.
    Dir(PathBuf),
    /// Files by name.
    Memory(BTreeMap<String, Arc<Vec<u8>>>),
}

impl ImageFiles {
    /// Opens `name`, or a file whose name differs only in ASCII case (Windows may spell GUIDs
    /// in upper case; its file system does not care); returns it with the name found.
    fn open(&self, name: &str) -> io::Result<(Storage, String)> {
        match self {
            ImageFiles::Dir(dir) => match File::open(dir.join(name)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    for found in self.names()? {
                        if found.eq_ignore_ascii_case(name) {
                            return Ok((Storage::File(Arc::new(File::open(dir.join(&found))?)), found));
                        }
                    }
                    Err(e)
                }
                other => other.map(|f| (Storage::File(Arc::new(f)), name.to_string())),
            },
            ImageFiles::Memory(files) => {
                let found =
                    files.get_key_value(name).or_else(|| files.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)));
                let (found, bytes) = found.ok_or(io::ErrorKind::NotFound)?;
                Ok((Storage::Memory(bytes.clone()), found.clone()))
            }
        }
    }

    /// The names of the files there (those that are valid UTF-8), in byte order.
    fn names(&self) -> io::Result<Vec<String>> {
        match self {
            ImageFiles::Dir(dir) => {
                let mut names = Vec::new();
                for item in fs::read_dir(dir)? {
                    names.extend(item?.file_name().into_string().ok());
                }
                names.sort();
                Ok(names)
            }
            ImageFiles::Memory(files) => Ok(files.keys().cloned().collect()),
        }
    }

    /// The path of `name` there, for messages (a bare name for files in memory, or in the
    /// current directory, as the caller spelt it).
    fn path(&self, name: &str) -> PathBuf {
        match self {
            ImageFiles::Dir(dir) if dir == Path::new(".") => PathBuf::from(name),
            ImageFiles::Dir(dir) => dir.join(name),
            ImageFiles::Memory(_) => PathBuf::from(name),
        }
    }
}

/// One region file of the image's global region list.
#[derive(Debug)]
pub struct Region {
    /// Its bytes.
    pub data: Storage,
    /// Its length in bytes.
    pub len: u64,
    /// Its file name.
    pub name: String,
    /// The type its header declares (unknown values are shown as `None`).
    pub kind: Option<RegionType>,
}

/// A region set as the `.cim` lists it, with the global index of its first region.
#[derive(Clone, Copy, Debug)]
pub struct SetInfo {
    /// The set.
    pub set: RegionSet,
    /// Global index of region 0 of the set.
    pub first: u16,
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name as stored.
    pub name: String,
    /// The file it names.
    pub id: FileId,
}

/// An open CIM: the image and every region it refers to.
#[derive(Debug)]
pub struct Cim {
    path: PathBuf,
    files: ImageFiles,
    major: u32,
    sets: Vec<SetInfo>,
    regions: Vec<Region>,
    filesystem: Filesystem,
    tables: Vec<FileTableDirectoryEntry>,
    upcase: Upcase,
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_exact_at(file, buf, offset);
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], offset + done as u64)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

/// Reads a fixed-size header from the start of a file.
fn read_header<T: FromBytes>(file: &Storage, what: &Path) -> Result<T> {
    let mut buf = vec![0u8; size_of::<T>()];
    file.read_exact_at(&mut buf, 0).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Invalid(format!(
            "{}: {} bytes, shorter than the {}-byte header of a CIM file",
            what.display(),
            file.size().unwrap_or(0),
            buf.len()
        )),
        _ => Error::io(format!("{}: reading the {}-byte header", what.display(), buf.len()), e),
    })?;
    Ok(T::read_from_bytes(&buf).expect("buffer has the header's size"))
}

/// Removes the image `cim` and the region and object-ID files of its own region set, unless
/// another `.cim` beside it lists that set (sets are named after their content, so two imports
/// of one layer onto one parent share theirs). Parents' sets are left alone. A `cim` that is
/// not there is nothing to remove.
pub fn destroy(cim: &Path) -> Result<()> {
    if fs::symlink_metadata(cim).is_err() {
        return Ok(());
    }
    let dir = cim.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let files = ImageFiles::Dir(dir.to_path_buf());
    // The header and region sets of a `.cim` in `dir`, when it reads as one.
    let sets_of = |name: &std::ffi::OsStr| name.to_str().and_then(|name| read_sets(&files, name).ok());
    // Unreadable: the image goes, its regions (unknown) stay for a human to judge.
    let own = sets_of(cim.file_name().unwrap_or_default()).map(|(header, _)| header.regions);
    fs::remove_file(cim).map_err(|e| Error::io(format!("removing {}", cim.display()), e))?;
    let Some(own) = own else { return Ok(()) };
    for item in fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))? {
        let other = item.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?.path();
        let is_cim = other.extension().is_some_and(|e| e.eq_ignore_ascii_case("cim"));
        let shares = || {
            sets_of(other.file_name().unwrap_or_default()).is_some_and(|(_, sets)| sets.iter().any(|s| s.id == own.id))
        };
        if is_cim && shares() {
            return Ok(());
        }
    }
    for n in 0..own.count.get() {
        for name in [region_file_name(own.id, n), objectid_file_name(own.id, n)] {
            match fs::remove_file(dir.join(&name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("removing {}", dir.join(&name).display()), e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Reads a `.cim`'s header and the region sets it lists: its parents' in order, then its own.
fn read_sets(files: &ImageFiles, name: &str) -> Result<(FilesystemHeader, Vec<RegionSet>)> {
    let path = &files.path(name);
    let (file, _) = files.open(name).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let header: FilesystemHeader = read_header(&file, path)?;
    header.common.check(FileType::Filesystem).map_err(|m| Error::Invalid(format!("{}: {m}", path.display())))?;
    let parents = header.parent_count.get() as usize;
    let mut buf = vec![0u8; parents * size_of::<RegionSet>()];
    file.read_exact_at(&mut buf, size_of::<FilesystemHeader>() as u64)
        .map_err(|e| Error::io(format!("{}: reading {parents} parent region sets", path.display()), e))?;
    let mut list: Vec<RegionSet> =
        buf.chunks_exact(size_of::<RegionSet>()).map(|c| RegionSet::read_from_bytes(c).unwrap()).collect();
    list.push(header.regions);
    Ok((header, list))
}

impl Cim {
    /// Opens `path` (`<dir>/<name>.cim`) and the region files of every set it lists.
    pub fn open(path: &Path) -> Result<Cim> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::Invalid(format!("{}: not a file name winlayer can read (UTF-8 expected)", path.display()))
        })?;
        Cim::open_in(ImageFiles::Dir(dir.to_path_buf()), name)
    }

    /// Opens the `.cim` named `name` in `files` and the region files of every set it lists.
    pub fn open_in(files: ImageFiles, name: &str) -> Result<Cim> {
        let path = &files.path(name);
        let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
        let (header, list) = read_sets(&files, name)?;
        let total: usize = list.iter().map(|s| s.count.get() as usize).sum();
        if total == 0 || total > MAX_REGIONS {
            return Err(bad(format!("{total} regions in all (1 to {MAX_REGIONS} are possible)")));
        }
        let mut sets = Vec::new();
        let mut regions = Vec::with_capacity(total);
        for set in list {
            sets.push(SetInfo { set, first: regions.len() as u16 });
            for n in 0..set.count.get() {
                let name = region_file_name(set.id, n);
                let (data, name) = files
                    .open(&name)
                    .map_err(|e| Error::io(format!("opening region {}", files.path(&name).display()), e))?;
                let rpath = files.path(&name);
                let len = data.size().map_err(|e| Error::io(format!("reading {}", rpath.display()), e))?;
                let rh: RegionHeader = read_header(&data, &rpath)?;
                rh.common.check(FileType::Region).map_err(|m| Error::Invalid(format!("{}: {m}", rpath.display())))?;
                let kind = RegionType::from_byte(rh.region_type);
                // Metadata is read in many small pieces (records, names, tables, descriptors):
                // held in memory it costs no system call per piece, and grows with file count.
                let data = match (&data, kind) {
                    (Storage::File(_), Some(RegionType::Metadata)) if len <= METADATA_IN_MEMORY => {
                        let mut bytes = vec![0u8; len as usize];
                        data.read_exact_at(&mut bytes, 0)
                            .map_err(|e| Error::io(format!("reading {}", rpath.display()), e))?;
                        Storage::Memory(Arc::new(bytes))
                    }
                    _ => data,
                };
                regions.push(Region { data, len, name, kind });
            }
        }
        let mut cim = Cim {
            path: path.to_path_buf(),
            files,
            major: header.common.major.get(),
            sets,
            regions,
            filesystem: Filesystem::new_zeroed(),
            tables: Vec::new(),
            upcase: Upcase::windows(),
        };
        let fs_at = RegionOffset(header.filesystem_offset.get());
        cim.filesystem = cim.object(fs_at, "filesystem object")?;
        let fs = cim.filesystem;
        let count = fs.file_table_directory_length.get() as u64;
        if count > (u32::MAX / FILES_PER_TABLE) as u64 {
            return Err(bad(format!("{count} file tables hold more FileIDs than 32 bits can name")));
        }
        let ftd = cim.bytes(RegionOffset(fs.file_table_directory_offset.get()), count * 16, "file table directory")?;
        cim.tables = ftd.chunks_exact(16).map(|c| FileTableDirectoryEntry::read_from_bytes(c).unwrap()).collect();
        for (t, entry) in cim.tables.iter().enumerate() {
            let at = RegionOffset(entry.offset.get());
            let (n, size) = (entry.count.get() as u64, entry.entry_size.get() as u64);
            if n > FILES_PER_TABLE as u64 {
                return Err(bad(format!("file table {t} claims {n} records (at most {FILES_PER_TABLE})")));
            }
            if n > 0 && size == 0 {
                return Err(bad(format!("file table {t} has records of 0 bytes")));
            }
            if n > 0 {
                cim.check_range(at, 0, n * size, &format!("file table {t}"))?;
            }
        }
        let table = cim.bytes(RegionOffset(fs.upcase_table_offset.get()), 2 * UPCASE_LEN as u64, "upcase table")?;
        cim.upcase = Upcase::from_le_bytes(&table).expect("read with the table's size");
        let root = cim.record(cim.root())?;
        if !root.is_dir() {
            return Err(bad(format!("the root (FileID {}) is not a directory", cim.root())));
        }
        Ok(cim)
    }

    /// The `.cim` path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image this one was forked from: the `.cim` beside it whose region sets are exactly
    /// this image's parent sets (the first in name order, should copies exist). `None` for an
    /// image without parents; an error when no `.cim` in the directory fits.
    pub fn find_parent(&self) -> Result<Option<PathBuf>> {
        let Some((_, parents)) = self.sets.split_last() else { return Ok(None) };
        if parents.is_empty() {
            return Ok(None);
        }
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let own = self.path.file_name().and_then(|n| n.to_str());
        let names = self.files.names().map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let want: Vec<RegionSet> = parents.iter().map(|s| s.set).collect();
        for name in names {
            let is_cim = name.len() > 4 && name.get(name.len() - 4..).is_some_and(|e| e.eq_ignore_ascii_case(".cim"));
            if is_cim && Some(name.as_str()) != own && read_sets(&self.files, &name).is_ok_and(|(_, sets)| sets == want)
            {
                return Ok(Some(self.files.path(&name)));
            }
        }
        Err(Error::Invalid(format!(
            "{}: no .cim in {} has this image's parent region sets (was the parent moved or removed?)",
            self.path.display(),
            dir.display()
        )))
    }

    /// Whether `parent` is the image this one was forked from (its region sets are exactly
    /// this image's parent sets).
    pub fn is_fork_of(&self, parent: &Cim) -> bool {
        let own: Vec<RegionSet> = self.sets.iter().map(|s| s.set).collect();
        let theirs: Vec<RegionSet> = parent.sets.iter().map(|s| s.set).collect();
        own.split_last().is_some_and(|(_, parents)| parents == theirs.as_slice())
    }

    /// The format major version in the header.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The region sets: parents first (in the order the `.cim` lists them), this image's own last.
    pub fn sets(&self) -> &[SetInfo] {
        &self.sets
    }

    /// The global region list.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The file table directory.
    pub fn tables(&self) -> &[FileTableDirectoryEntry] {
        &self.tables
    }

    /// The filesystem object.
    pub fn filesystem(&self) -> &Filesystem {
        &self.filesystem
    }

    /// The image's upcase table (its collation).
    pub fn upcase(&self) -> &Upcase {
        &self.upcase
    }

    /// The root directory's FileID.
    pub fn root(&self) -> FileId {
        self.filesystem.root_directory.get()
    }

    fn corrupt(&self, what: &str, at: RegionOffset, problem: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}: {what} at {at}: {problem}", self.path.display()))
    }

    /// Checks that `len` bytes at `extra` past `at` lie inside an existing region.
    fn check_range(&self, at: RegionOffset, extra: u64, len: u64, what: &str) -> Result<&Region> {
        if at.is_null() {
            return Err(self.corrupt(what, at, "null offset"));
        }
        let region = self
            .regions
            .get(at.region() as usize)
            .ok_or_else(|| self.corrupt(what, at, format!("no such region (the image has {})", self.regions.len())))?;
        if at.offset() == 0 {
            return Err(self.corrupt(what, at, "points at the region header"));
        }
        let end = at.offset().checked_add(extra).and_then(|s| s.checked_add(len));
        match end {
            Some(end) if end <= region.len => Ok(region),
            _ => Err(self.corrupt(
                what,
                at,
                format!("{len} bytes at +{extra} run past the end of {} ({} bytes)", region.name, region.len),
            )),
        }
    }

    /// Reads `len` bytes at `extra` past `at` into `buf`.
    fn read_into(&self, at: RegionOffset, extra: u64, buf: &mut [u8], what: &str) -> Result<()> {
        let region = self.check_range(at, extra, buf.len() as u64, what)?;
        region
            .data
            .read_exact_at(buf, at.offset() + extra)
            .map_err(|e| Error::io(format!("{}: reading {what} at {at}", self.path.display()), e))
    }

    /// Reads an object of `len` bytes.
    pub fn bytes(&self, at: RegionOffset, len: u64, what: &str) -> Result<Vec<u8>> {
        self.check_range(at, 0, len, what)?;
        let mut buf = vec![0u8; len as usize];
        self.read_into(at, 0, &mut buf, what)?;
        Ok(buf)
    }

    fn object<T: FromBytes>(&self, at: RegionOffset, what: &str) -> Result<T> {
        let buf = self.bytes(at, size_of::<T>() as u64, what)?;
        Ok(T::read_from_bytes(&buf).expect("read with the object's size"))
    }

    /// Reads a counted object: a little-endian count of `count_len` bytes, then that many bytes.
    fn counted(&self, at: RegionOffset, count_len: usize, limit: u64, what: &str) -> Result<Vec<u8>> {
        let mut count = [0u8; 4];
        self.read_into(at, 0, &mut count[..count_len], what)?;
        let n = u32::from_le_bytes(count) as u64;
        if n > limit {
            return Err(self.corrupt(what, at, format!("{n} bytes is more than the {limit}-byte limit")));
        }
        self.check_range(at, count_len as u64, n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.read_into(at, count_len as u64, &mut buf, what)?;
        Ok(buf)
    }

    /// The location of FileID `id`'s record and its size on disk.
    pub fn record_location(&self, id: FileId) -> Option<(RegionOffset, u16)> {
        let t = (id.checked_sub(1)? / FILES_PER_TABLE) as usize;
        let slot = (id - 1) % FILES_PER_TABLE;
        let table = self.tables.get(t)?;
        if slot >= table.count.get() as u32 {
            return None;
        }
        let size = table.entry_size.get();
        Some((RegionOffset(table.offset.get() + slot as u64 * size as u64), size))
    }

    /// The record of FileID `id` (older, shorter records are zero-extended; newer, longer ones
    /// cut to the fields of format 2.0).
    pub fn record(&self, id: FileId) -> Result<FileRecord> {
        let (at, size) = self.record_location(id).ok_or_else(|| {
            Error::Invalid(format!("{}: FileID {id} is not in the image's file tables", self.path.display()))
        })?;
        let mut buf = [0u8; FILE_RECORD_LEN];
        let n = (size as usize).min(FILE_RECORD_LEN);
        self.read_into(at, 0, &mut buf[..n], &format!("the record of FileID {id}"))?;
        let record = FileRecord::read_from_bytes(&buf).expect("record size");
        let stream = record.default_stream;
        match stream.kind() {
            Some(_) => Ok(record),
            None => Err(self.corrupt(
                &format!("the record of FileID {id}"),
                at,
                format!("unknown stream type {}", stream.type_byte()),
            )),
        }
    }

    fn table<'a>(&self, bytes: &'a [u8], value_len: usize, what: &str, at: RegionOffset) -> Result<LinkTable<'a>> {
        LinkTable::parse(bytes, value_len).map_err(|e| self.corrupt(what, at, e))
    }

    fn name(&self, table: &LinkTable<'_>, i: usize, what: &str, at: RegionOffset) -> Result<String> {
        let units = table.name(i).map_err(|e| self.corrupt(what, at, e))?;
        if units.is_empty() || units.len() > MAX_NAME_UNITS {
            return Err(self.corrupt(what, at, format!("entry {i} has a name of {} UTF-16 units", units.len())));
        }
        String::from_utf16(&units).map_err(|_| self.corrupt(what, at, format!("entry {i}'s name is not valid UTF-16")))
    }

    /// The bytes of a directory's link table (empty for an empty directory).
    fn link_table_bytes(&self, record: &FileRecord, id: FileId) -> Result<Vec<u8>> {
        let stream = record.default_stream;
        if !record.is_dir() {
            return Err(Error::Invalid(format!("{}: FileID {id} is not a directory", self.path.display())));
        }
        if stream.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("the directory table of FileID {id}");
        if stream.len() > MAX_TABLE_BYTES {
            return Err(self.corrupt(
                &what,
                stream.at(),
                format!("{} bytes is more than the {MAX_TABLE_BYTES}-byte limit", stream.len()),
            ));
        }
        self.bytes(stream.at(), stream.len(), &what)
    }

    /// The entries of directory `id`, in the image's (collation) order.
    pub fn dir(&self, id: FileId) -> Result<Vec<DirEntry>> {
        let record = self.record(id)?;
        let bytes = self.link_table_bytes(&record, id)?;
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let (what, at) = (format!("the directory table of FileID {id}"), record.default_stream.at());
        let table = self.table(&bytes, 4, &what, at)?;
        (0..table.len())
            .map(|i| {
                let child = u32::from_le_bytes(table.value(i).try_into().unwrap());
                Ok(DirEntry { name: self.name(&table, i, &what, at)?, id: child })
            })
            .collect()
    }

    /// Finds `name` in directory `id` with the image's case-insensitive collation (a binary
    /// search, as Windows does).
    pub fn child(&self, id: FileId, name: &str) -> Result<Option<FileId>> {
        let record = self.record(id)?;
        let bytes = self.link_table_bytes(&record, id)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let (what, at) = (format!("the directory table of FileID {id}"), record.default_stream.at());
        let table = self.table(&bytes, 4, &what, at)?;
        let (mut lo, mut hi) = (0, table.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let stored = table.name(mid).map_err(|e| self.corrupt(&what, at, e))?;
            match self.upcase.cmp_stored(&stored, name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(u32::from_le_bytes(table.value(mid).try_into().unwrap()))),
            }
        }
        Ok(None)
    }

    /// Resolves a path (`/` or `\` separated, from the root, case-insensitively); `None` when a
    /// component is missing. A file in the middle of the path is an error.
    pub fn find(&self, path: &str) -> Result<Option<FileId>> {
        let mut id = self.root();
        for part in path.split(['/', '\\']).filter(|p| !p.is_empty()) {
            if !self.record(id)?.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: {path}: a component before {part:?} is not a directory",
                    self.path.display()
                )));
            }
            match self.child(id, part)? {
                Some(next) => id = next,
                None => return Ok(None),
            }
        }
        Ok(Some(id))
    }

    /// Like [`Cim::find`], but a missing path is an error.
    pub fn resolve(&self, path: &str) -> Result<FileId> {
        self.find(path)?
            .ok_or_else(|| Error::Invalid(format!("{}: {path}: no such file or directory", self.path.display())))
    }

    /// The alternate data streams of a record, in the image's order.
    pub fn streams(&self, record: &FileRecord) -> Result<Vec<(String, Stream)>> {
        let at = RegionOffset(record.stream_table_offset.get());
        if at.is_null() {
            return Ok(Vec::new());
        }
        let what = "an alternate stream table";
        let bytes = self.counted(at, 4, MAX_TABLE_BYTES, what)?;
        let table = self.table(&bytes, size_of::<Stream>(), what, at)?;
        (0..table.len())
            .map(|i| {
                let stream = Stream::read_from_bytes(table.value(i)).unwrap();
                if stream.kind() != Some(StreamType::Data) {
                    return Err(self.corrupt(
                        what,
                        at,
                        format!(
                            "stream {i} has type {} (only data streams can be alternate streams)",
                            stream.type_byte()
                        ),
                    ));
                }
                Ok((self.name(&table, i, what, at)?, stream))
            })
            .collect()
    }

    /// The raw security descriptor.
    pub fn security(&self, record: &FileRecord) -> Result<Option<Vec<u8>>> {
        let at = RegionOffset(record.sd_offset.get());
        (!at.is_null()).then(|| self.counted(at, 2, u16::MAX as u64, "a security descriptor")).transpose()
    }

    /// The raw FILE_FULL_EA_INFORMATION list.
    pub fn ea_buffer(&self, record: &FileRecord) -> Result<Option<Vec<u8>>> {
        let at = RegionOffset(record.ea_offset.get());
        (!at.is_null()).then(|| self.bytes(at, record.ea_length.get() as u64, "an EA buffer")).transpose()
    }

    /// The extended attributes, decoded.
    pub fn eas(&self, record: &FileRecord) -> Result<Vec<ExtendedAttribute>> {
        match self.ea_buffer(record)? {
            None => Ok(Vec::new()),
            Some(buf) => {
                ea::decode_list(&buf).map_err(|e| self.corrupt("an EA buffer", RegionOffset(record.ea_offset.get()), e))
            }
        }
    }

    /// The raw REPARSE_DATA_BUFFER.
    pub fn reparse(&self, record: &FileRecord) -> Result<Option<Vec<u8>>> {
        let at = RegionOffset(record.reparse_offset.get());
        (!at.is_null()).then(|| self.counted(at, 2, u16::MAX as u64, "a reparse buffer")).transpose()
    }

    /// The Windows metadata of a record as the entry model holds it. A file with no attribute
    /// bits reads as FILE_ATTRIBUTE_NORMAL, as Windows reports it.
    pub fn metadata(&self, id: FileId, record: &FileRecord) -> Result<Metadata> {
        let time = |t: u64| {
            i64::try_from(t).ok().and_then(FileTime::from_ticks).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: FileID {id} has a time ({t}) past what a FILETIME holds",
                    self.path.display()
                ))
            })
        };
        let mut attributes = record.attributes();
        if attributes == 0 {
            attributes = attrs::NORMAL;
        }
        let mut eas = self.eas(record)?;
        eas.sort();
        Ok(Metadata {
            attributes,
            creation: time(record.creation_time.get())?,
            last_write: time(record.last_write_time.get())?,
            last_access: time(record.last_access_time.get())?,
            change: time(record.change_time.get())?,
            security: self.security(record)?.map(Arc::from),
            eas,
        })
    }

    /// Reads bytes of a stream from `pos` into `buf` (filling it unless the stream ends first);
    /// returns how many bytes were read.
    pub fn read_stream(&self, stream: &Stream, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let len = stream.len();
        if pos >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - pos).min(usize::MAX as u64) as usize);
        let buf = &mut buf[..n];
        if stream.is_sparse() {
            buf.fill(0);
            return Ok(n);
        }
        match stream.kind() {
            Some(StreamType::Data) => {
                self.read_into(stream.at(), pos, buf, "file data")?;
                Ok(n)
            }
            Some(StreamType::PeImage) => self.read_pe(stream, pos, buf),
            _ => Err(self.corrupt("a stream", stream.at(), format!("type {} holds no file data", stream.type_byte()))),
        }
    }

    /// Reads an expanded PE image: the logical range is split at each mapping's file offset,
    /// and bytes of a segment lie `delta` further on disk.
    fn read_pe(&self, stream: &Stream, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let what = "a PE image descriptor";
        let image: PeImage = self.object(stream.at(), what)?;
        let count = image.mapping_count.get() as u64;
        let raw = self.bytes(RegionOffset(stream.at().0 + size_of::<PeImage>() as u64), count * 8, what)?;
        let mappings: Vec<PeImageMapping> =
            raw.chunks_exact(8).map(|c| PeImageMapping::read_from_bytes(c).unwrap()).collect();
        if mappings.windows(2).any(|w| w[0].file_offset.get() > w[1].file_offset.get()) {
            return Err(self.corrupt(what, stream.at(), "mappings are not sorted by file offset"));
        }
        let data_len = image.data_length.get() & !(1 << 63);
        let data_at = RegionOffset(image.data_offset.get());
        let mut done = 0;
        while done < buf.len() {
            let at = pos + done as u64;
            let next = mappings.iter().position(|m| m.file_offset.get() as u64 > at).unwrap_or(mappings.len());
            let delta = if next == 0 { 0 } else { mappings[next - 1].delta.get() as u64 };
            let end = mappings.get(next).map_or(data_len, |m| m.file_offset.get() as u64);
            if end <= at {
                return Err(self.corrupt(what, stream.at(), format!("no on-disk bytes for logical offset {at}")));
            }
            let n = ((end - at).min((buf.len() - done) as u64)) as usize;
            self.read_into(data_at, at + delta, &mut buf[done..done + n], "PE image data")?;
            done += n;
        }
        Ok(done)
    }

    /// Where a plain data stream's bytes lie: the region file and the absolute offset (`None`
    /// for images in memory).
    pub fn contiguous(&self, stream: &Stream) -> Option<(Arc<File>, u64)> {
        if stream.is_sparse() || stream.kind() != Some(StreamType::Data) || stream.is_empty() {
            return None;
        }
        match &self.check_range(stream.at(), 0, stream.len(), "file data").ok()?.data {
            Storage::File(file) => Some((file.clone(), stream.at().offset())),
            Storage::Memory(_) => None,
        }
    }

    /// A reader over a stream, from its start.
    pub fn reader<'a>(&'a self, stream: Stream) -> StreamReader<'a> {
        StreamReader { cim: self, stream, pos: 0 }
    }

    /// Visits every name of the tree depth-first, parents before children, children (and
    /// streams, by the caller) in byte order of their names. Each directory is entered once:
    /// a directory reachable by two names, or a loop, is an error.
    pub fn walk(&self, visit: impl FnMut(&[String], FileId, &FileRecord) -> Result<()>) -> Result<()> {
        self.walk_from(self.root(), &[], visit)
    }

    /// [`Cim::walk`] below directory `start`, reached by the names `prefix`.
    pub fn walk_from(
        &self,
        start: FileId,
        prefix: &[String],
        mut visit: impl FnMut(&[String], FileId, &FileRecord) -> Result<()>,
    ) -> Result<()> {
        let mut seen_dirs = std::collections::HashSet::new();
        seen_dirs.insert(start);
        let mut stack: Vec<(Vec<String>, FileId)> = Vec::new();
        let push_children = |stack: &mut Vec<(Vec<String>, FileId)>, path: &[String], id: FileId| -> Result<()> {
            let mut children = self.dir(id)?;
            children.sort_by(|a, b| b.name.cmp(&a.name));
            for c in children {
                let mut p = path.to_vec();
                p.push(c.name);
                stack.push((p, c.id));
            }
            Ok(())
        };
        push_children(&mut stack, prefix, start)?;
        while let Some((path, id)) = stack.pop() {
            let record = self.record(id)?;
            visit(&path, id, &record)?;
            if record.is_dir() {
                if !seen_dirs.insert(id) {
                    return Err(Error::Invalid(format!(
                        "{}: directory FileID {id} is reached again at {} (a loop or a directory with two names)",
                        self.path.display(),
                        path.join("\\")
                    )));
                }
                push_children(&mut stack, &path, id)?;
            }
        }
        Ok(())
    }
}

/// Reads a stream sequentially.
pub struct StreamReader<'a> {
    cim: &'a Cim,
    stream: Stream,
    pos: u64,
}

impl io::Read for StreamReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.cim.read_stream(&self.stream, self.pos, buf).map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}
