//! Pre-converted CIM layers: everything a CimFS snapshot of one layer holds — its forked CIM
//! (the `.cim` and its own region and object-ID files) and its layer directory (the hives,
//! `layout`, the utility VM's boot files) — as one archive that travels through a registry, so
//! a node unpacks a Windows image by writing files instead of parsing tars and building CIMs.
//!
//! The archive is a plain ustar tar with a fixed set of member names (docs/converted-layers.md):
//!
//! * `layer/<path>` — a file of the layer directory: a std file (`Hives/<H>_DELTA`, the config
//!   hives, the utility VM's hives, `BCD`, `bootmgfw.efi`) or a generated one (`Hives/<H>_BASE`,
//!   `layout`); a base layer's `Hives/<H>_BASE` is a hard link to its config hive, as the
//!   importer links them;
//! * `cim/region_<set>_<n>` and `cim/objectid_<set>_<n>` — the image's own region set;
//! * `cim/layer.cim` — the image, last.
//!
//! Members are regular files or hard links, in that order, with every header field fixed (mode
//! 0644, owner 0, time 0), so the same layer gives the same bytes. [`unpack`] trusts nothing:
//! names outside the set, links anywhere but to an earlier layer file, a CIM that is not a fork
//! of the snapshot's parent, hives that do not parse or differ from the CIM's copies — each is
//! refused with nothing left behind.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use cimfs::Cim;
use cimfs::format::{objectid_file_name, region_file_name};
use winlayer_core::{Error, Result};

use crate::export::export_cim;
use crate::host::find_file;
use crate::import::{Parent, check_parents, list_files, new_or_empty, place_dir, unplace_dir};
use crate::names::{self, HIVES, LAYOUT, LAYOUT_CONTENT, config_path, is_generated, is_std_file, same_name};

/// The media type of a converted layer blob (the archive, zstd-compressed).
pub const MEDIA_TYPE: &str = "application/vnd.winlayer.cimfs.layer.v1.tar+zstd";
/// Annotation: the digest of the source layer blob the layer was converted from.
pub const SOURCE_DIGEST: &str = "io.winlayer.cimfs.source.digest";
/// Annotation: the source layer's diffID (the digest of its uncompressed tar), which the
/// image config lists and containerd checks.
pub const SOURCE_DIFF_ID: &str = "io.winlayer.cimfs.source.diffid";
/// Annotation: the size of the source layer's uncompressed tar, in decimal.
pub const SOURCE_SIZE: &str = "io.winlayer.cimfs.source.size";

/// The archive's name for the image.
const CIM_MEMBER: &str = "cim/layer.cim";
/// A layer file larger than this is not a hive or boot file (real `SOFTWARE` hives are a few
/// hundred MiB).
const MAX_LAYER_FILE: u64 = 4 << 30;
/// Region files a set may have (the format counts them in 16 bits).
const MAX_SET_FILES: u64 = u16::MAX as u64;

/// What [`pack`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PackSummary {
    /// Files of the layer directory (hard links included).
    pub host_files: u64,
    /// The `.cim` and its own region and object-ID files.
    pub cim_files: u64,
    /// Bytes of the archive.
    pub bytes: u64,
}

/// Writes the CimFS container layer at `layer_dir` and `cim` (what
/// [`crate::CimLayerImport::finish`] wrote) as a converted-layer archive, a plain tar the
/// caller compresses.
pub fn pack(layer_dir: &Path, cim: &Path, out: &mut dyn Write) -> Result<PackSummary> {
    let image = Cim::open(cim)?;
    let own = image.sets().last().expect("an open image has its own set").set;
    let files = list_files(layer_dir)?;
    let base = files.iter().any(|f| f == LAYOUT);
    let mut tar = TarOut { out, written: 0 };
    let mut host_files = 0;
    for file in &files {
        let names: Vec<String> = file.split('/').map(str::to_string).collect();
        if !is_std_file(file) && !is_generated(&names) {
            return Err(Error::Invalid(format!(
                "{}: {file} is not a file a CIM layer directory holds",
                layer_dir.display()
            )));
        }
        let path = layer_dir.join(file);
        // A base layer's merged hives are its config hives, linked as the importer links them.
        let link = match (base, names.as_slice()) {
            (true, [hives, name]) if same_name(hives, "Hives") => names::base_hive(name).map(config_path),
            _ => None,
        };
        match link.map(|c| find_file(layer_dir, &c)).transpose()?.flatten() {
            Some(target) => {
                let relative = target.strip_prefix(layer_dir).expect("found below the layer").to_string_lossy();
                if fs::read(&target).ok() != fs::read(&path).ok() {
                    return Err(Error::Invalid(format!(
                        "{}: {file} is not its config hive {relative}, as an imported base layer's is",
                        layer_dir.display()
                    )));
                }
                tar.link(&format!("layer/{file}"), &format!("layer/{}", relative.replace('\\', "/")))?;
            }
            None => tar.file(&format!("layer/{file}"), &path)?,
        }
        host_files += 1;
    }
    let dir = cim.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let count = own.count.get();
    let mut set_files: Vec<String> =
        (0..count).flat_map(|n| [objectid_file_name(own.id, n), region_file_name(own.id, n)]).collect();
    set_files.sort();
    let mut cim_files = 1;
    for name in &set_files {
        // Object-ID files exist only for regions that hold objects with IDs.
        let path = dir.join(name);
        if name.starts_with("objectid_") && fs::symlink_metadata(&path).is_err() {
            continue;
        }
        tar.file(&format!("cim/{name}"), &path)?;
        cim_files += 1;
    }
    tar.file(CIM_MEMBER, cim)?;
    tar.finish()?;
    Ok(PackSummary { host_files, cim_files, bytes: tar.written })
}

/// What [`unpack`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UnpackSummary {
    /// The layer directory.
    pub layer_dir: PathBuf,
    /// The `.cim`.
    pub cim: PathBuf,
    /// Whether the layer is a base layer.
    pub base: bool,
    /// The layer directory's files, as layer paths.
    pub host_files: Vec<String>,
    /// Region and object-ID files written (those already present, from an identical layer,
    /// are kept).
    pub region_files: u64,
    /// Bytes of file data in the merged view (every record, stream table and stream end read back).
    pub file_data: u64,
    /// Bytes of archive members.
    pub bytes: u64,
}

/// A member's kind and where its bytes went.
enum Member {
    Layer(String),
    Set { name: String, temp: tempfile::NamedTempFile },
    Image(tempfile::NamedTempFile),
}

/// Removes what an unpack wrote beside the parents' CIMs unless it is committed.
struct Written {
    files: Vec<PathBuf>,
    committed: bool,
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.committed {
            for f in &self.files {
                let _ = fs::remove_file(f);
            }
        }
    }
}

/// Reads a converted-layer archive (a plain tar) into the new or empty directory
/// `layer_dir` and the new image `cim`, which goes beside its parents' CIMs: [`stage`], then
/// [`Staged::commit`].
pub fn unpack(archive: &mut dyn Read, layer_dir: &Path, cim: &Path, parents: &[Parent]) -> Result<UnpackSummary> {
    stage(archive, layer_dir, cim, parents)?.commit()
}

/// A converted layer read and checked, not yet in place: [`Staged::commit`] puts it there,
/// dropping it leaves everything as it was.
pub struct Staged {
    dir: tempfile::TempDir,
    image: tempfile::NamedTempFile,
    written: Written,
    replaces_empty: bool,
    summary: UnpackSummary,
}

impl Staged {
    /// Moves the layer directory into place, then the image (last: without it the region
    /// files are unreferenced).
    pub fn commit(mut self) -> Result<UnpackSummary> {
        let (layer_dir, cim) = (self.summary.layer_dir.clone(), self.summary.cim.clone());
        place_dir(self.dir, &layer_dir, self.replaces_empty)?;
        if let Err(e) = self.image.persist_noclobber(&cim) {
            unplace_dir(&layer_dir, self.replaces_empty);
            return Err(Error::io(format!("creating {}", cim.display()), e.error));
        }
        self.written.committed = true;
        Ok(self.summary)
    }
}

/// Reads a converted-layer archive for `layer_dir` and `cim` to its end and checks it.
/// `parents` are the snapshot's chain, immediate parent first, as for
/// [`crate::CimLayerImport::start`]: the archive's CIM must be a fork of the first (or a base
/// layer's image when there are none).
///
/// Checked before anything is put in place: member names; the image opened by the CIM reader
/// and its whole merged view read back short of the bytes inside each stream
/// ([`Cim::verify_structure`]); each layer file equal to the CIM's copy and each hive
/// parsed; the layer's changes against its parent read as an export reads them. Its own region files are written beside the parents' CIMs under their names (they
/// are named after their content) and removed again unless the layer is committed.
pub fn stage(archive: &mut dyn Read, layer_dir: &Path, cim: &Path, parents: &[Parent]) -> Result<Staged> {
    let replaces_empty = new_or_empty(layer_dir)?;
    if fs::symlink_metadata(cim).is_ok() {
        return Err(Error::Invalid(format!("{} exists; a layer is unpacked into a new image", cim.display())));
    }
    check_parents(parents)?;
    let cim_dir = cim.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let beside = layer_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staged = winlayer_core::temp::dir_in(beside)
        .map_err(|e| Error::io(format!("creating a temporary directory in {}", beside.display()), e))?;

    let mut members = Vec::new();
    let mut names_seen = HashSet::new();
    let mut bytes = 0u64;
    let mut reader = TarIn { input: archive, offset: 0 };
    while let Some(header) = reader.next_header()? {
        let what = format!("archive member {:?} (at byte {})", header.name, header.at);
        if !names_seen.insert(header.name.to_ascii_lowercase()) {
            return Err(Error::Invalid(format!("{what}: a second member of that name")));
        }
        if let Some(target) = header.link {
            let (Some(path), Some(target)) = (header.name.strip_prefix("layer/"), target.strip_prefix("layer/")) else {
                return Err(Error::Invalid(format!("{what}: only layer files may be hard links")));
            };
            check_layer_path(path, &what)?;
            let source = staged.path().join(target);
            let is_earlier_file = members.iter().any(|m| matches!(m, Member::Layer(p) if p == target));
            if !is_earlier_file {
                return Err(Error::Invalid(format!("{what}: links to {target:?}, not an earlier layer file")));
            }
            let dest = host_dir(staged.path(), path)?;
            fs::hard_link(&source, &dest).map_err(|e| Error::io(format!("{what}: linking"), e))?;
            members.push(Member::Layer(path.to_string()));
            continue;
        }
        bytes += header.size;
        if let Some(path) = header.name.strip_prefix("layer/") {
            check_layer_path(path, &what)?;
            if header.size > MAX_LAYER_FILE {
                return Err(Error::Invalid(format!("{what}: {} bytes is not a hive or boot file", header.size)));
            }
            let dest = host_dir(staged.path(), path)?;
            let mut file = File::create_new(&dest).map_err(|e| Error::io(format!("{what}: creating"), e))?;
            reader.data(header.size, &mut file, &what)?;
            members.push(Member::Layer(path.to_string()));
        } else if let Some(name) = header.name.strip_prefix("cim/") {
            if !members.iter().all(|m| !matches!(m, Member::Image(_))) {
                return Err(Error::Invalid(format!("{what}: after {CIM_MEMBER}, which comes last")));
            }
            let mut temp = winlayer_core::temp::file_in(&cim_dir)
                .map_err(|e| Error::io(format!("creating a temporary file in {}", cim_dir.display()), e))?;
            reader.data(header.size, temp.as_file_mut(), &what)?;
            if header.name == CIM_MEMBER {
                members.push(Member::Image(temp));
            } else if is_set_file(name) {
                members.push(Member::Set { name: name.to_string(), temp });
            } else {
                return Err(Error::Invalid(format!("{what}: not a name a converted layer's CIM has")));
            }
        } else {
            return Err(Error::Invalid(format!("{what}: neither layer/… nor cim/…")));
        }
    }

    let mut set_files = BTreeMap::new();
    let mut image = None;
    let mut host_files = Vec::new();
    for m in members {
        match m {
            Member::Layer(p) => host_files.push(p),
            Member::Set { name, temp } => {
                set_files.insert(name, temp);
            }
            Member::Image(temp) => image = Some(temp),
        }
    }
    let Some(image) = image else {
        return Err(Error::Invalid(format!("the archive has no {CIM_MEMBER}")));
    };
    // The set's files under their own names (named after their content, so one already there
    // came from the same layer and must be byte for byte the same).
    let mut written = Written { files: Vec::new(), committed: false };
    let mut region_files = 0;
    for (name, temp) in set_files.iter() {
        let path = cim_dir.join(name);
        if path.exists() {
            if !same_bytes(temp.path(), &path)? {
                return Err(Error::Invalid(format!(
                    "{} exists with other content than the archive's {name} (the same name means the same content)",
                    path.display()
                )));
            }
            continue;
        }
        fs::hard_link(temp.path(), &path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        written.files.push(path);
        region_files += 1;
    }
    let opened = Cim::open(image.path()).map_err(|e| {
        Error::Invalid(format!(
            "the converted layer's CIM does not open beside the snapshot's parent CIMs in {}: {e} (was it converted \
             onto other parent layers?)",
            cim_dir.display()
        ))
    })?;
    let own = opened.sets().last().expect("an open image has its own set").set;
    let expected: HashSet<String> =
        (0..own.count.get()).flat_map(|n| [region_file_name(own.id, n), objectid_file_name(own.id, n)]).collect();
    if let Some(stray) = set_files.keys().find(|n| !expected.contains(*n)) {
        return Err(Error::Invalid(format!(
            "the archive's cim/{stray} is not a file of the image's region set {}",
            own.id
        )));
    }
    let is_fork = match parents.first() {
        Some(parent) => opened.is_fork_of(&Cim::open(&parent.cim)?),
        None => opened.sets().len() == 1,
    };
    if !is_fork {
        return Err(Error::Invalid(match parents.first() {
            Some(parent) => format!(
                "the converted layer's CIM is not a fork of the snapshot's parent {} (it was converted onto other \
                 parent layers, or by a converter that writes other bytes)",
                parent.cim.display()
            ),
            None => "the converted layer's CIM is a fork, but the snapshot has no parent".into(),
        }));
    }
    // Everything an export or a mount will read, short of the bytes between each stream's ends.
    let file_data = opened.verify_structure()?;
    check_host_files(&opened, staged.path(), &host_files, parents.is_empty())?;
    drop(opened);
    // The layer as a Windows layer: its changes against the parent in the entry model (names,
    // links, reparse data), as an export and a mount will see them.
    export_cim(staged.path(), image.path(), parents.first().map(|p| p.cim.as_path()))
        .map_err(|e| Error::Invalid(format!("the converted layer does not read back as a Windows layer: {e}")))?;
    let summary = UnpackSummary {
        layer_dir: layer_dir.to_path_buf(),
        cim: cim.to_path_buf(),
        base: parents.is_empty(),
        host_files,
        region_files,
        file_data,
        bytes,
    };
    Ok(Staged { dir: staged, image, written, replaces_empty, summary })
}

/// A layer file's path must be one a CIM layer directory holds.
fn check_layer_path(path: &str, what: &str) -> Result<()> {
    let names: Vec<String> = path.split('/').map(str::to_string).collect();
    if is_std_file(path) || is_generated(&names) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{what}: not a file a CIM layer directory holds (hives, layout, boot files)")))
    }
}

/// Whether `name` is `region_<guid>_<n>` or `objectid_<guid>_<n>` (the image says which set).
fn is_set_file(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("region_").or_else(|| name.strip_prefix("objectid_")) else { return false };
    let Some((guid, n)) = rest.rsplit_once('_') else { return false };
    let guid_ok = guid.len() == 36
        && guid
            .char_indices()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
    guid_ok
        && !n.is_empty()
        && n.len() <= 5
        && n.bytes().all(|b| b.is_ascii_digit())
        && n.parse::<u64>().is_ok_and(|n| n < MAX_SET_FILES)
}

/// Creates the directories of `path` below `root`; returns the file's path.
fn host_dir(root: &Path, path: &str) -> Result<PathBuf> {
    let dest = root.join(path);
    let dir = dest.parent().expect("a file below the root");
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(dest)
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).map_err(|e| Error::io(format!("reading {}", p.display()), e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let len = |f: &File, p: &Path| {
        f.metadata().map(|m| m.len()).map_err(|e| Error::io(format!("reading {}", p.display()), e))
    };
    if len(&fa, a)? != len(&fb, b)? {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fa.read(&mut ba).map_err(|e| Error::io(format!("reading {}", a.display()), e))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).map_err(|e| Error::io(format!("reading {}", b.display()), e))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Each layer file must be the CIM's file of the same path (the importer adds every one to the
/// image), hives must parse, and the layer must be a base layer exactly when it has no parent.
fn check_host_files(image: &Cim, dir: &Path, files: &[String], base: bool) -> Result<()> {
    for file in files {
        let host = fs::read(dir.join(file)).map_err(|e| Error::io(format!("reading the layer's {file}"), e))?;
        let in_cim = match image.find(file)? {
            Some(id) => {
                let record = image.record(id)?;
                let mut data = Vec::new();
                image
                    .reader(record.default_stream)
                    .read_to_end(&mut data)
                    .map_err(|e| Error::io(format!("reading {file} in the CIM"), e))?;
                Some(data)
            }
            None => None,
        };
        if in_cim.as_deref() != Some(host.as_slice()) {
            return Err(Error::Invalid(format!("the layer's {file} is not the CIM's {file}")));
        }
        if file == LAYOUT && host != LAYOUT_CONTENT {
            return Err(Error::Invalid(format!("the base layer's {LAYOUT} is not {LAYOUT_CONTENT:?}")));
        }
        let hive = file.starts_with("Hives/") || HIVES.iter().any(|h| same_name(file, &config_path(h)));
        if hive {
            regf::Hive::parse(&host)
                .map_err(|e| Error::Invalid(format!("the layer's {file} is not a registry hive: {e}")))?;
        }
    }
    let has = |p: &str| files.iter().any(|f| same_name(f, p));
    if base {
        if !has(LAYOUT) || HIVES.iter().any(|h| !has(&format!("Hives/{}", h.base))) {
            return Err(Error::Invalid(format!(
                "the snapshot has no parent, but the converted layer is not a base layer (no {LAYOUT} and five Hives/<H>_BASE)"
            )));
        }
    } else if has(LAYOUT) {
        return Err(Error::Invalid(format!(
            "the converted layer is a base layer ({LAYOUT}), but the snapshot has parents"
        )));
    }
    Ok(())
}

/// A deterministic ustar writer for the archive's two kinds of members.
struct TarOut<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl TarOut<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::io("writing the converted layer", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn header(&mut self, name: &str, size: u64, link: Option<&str>) -> Result<()> {
        let mut h = [0u8; 512];
        let field = |h: &mut [u8; 512], at: usize, len: usize, text: &str, what: &str| -> Result<()> {
            if text.len() > len {
                return Err(Error::Invalid(format!("{what} {text:?} is longer than a tar header holds ({len} bytes)")));
            }
            h[at..at + text.len()].copy_from_slice(text.as_bytes());
            Ok(())
        };
        field(&mut h, 0, 100, name, "the name")?;
        field(&mut h, 100, 7, "0000644", "")?;
        field(&mut h, 108, 7, "0000000", "")?;
        field(&mut h, 116, 7, "0000000", "")?;
        put_size(&mut h[124..136], size);
        field(&mut h, 136, 11, "00000000000", "")?;
        h[156] = if link.is_some() { b'1' } else { b'0' };
        if let Some(link) = link {
            field(&mut h, 157, 100, link, "the link target")?;
        }
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        self.put(&h)
    }

    fn file(&mut self, name: &str, path: &Path) -> Result<()> {
        let mut file = File::open(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let size = file.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?.len();
        self.header(name, size, None)?;
        let copied = io::copy(&mut (&mut file).take(size), &mut self.out)
            .map_err(|e| Error::io(format!("copying {} into the converted layer", path.display()), e))?;
        if copied != size {
            return Err(Error::Invalid(format!("{} shrank while it was read", path.display())));
        }
        self.written += size;
        self.put(&vec![0u8; padding(size)])
    }

    fn link(&mut self, name: &str, target: &str) -> Result<()> {
        self.header(name, 0, Some(target))
    }

    fn finish(&mut self) -> Result<()> {
        self.put(&[0u8; 1024])
    }
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Sizes as 11 octal digits, or base-256 past 8 GiB (as GNU tar writes them).
fn put_size(field: &mut [u8], size: u64) {
    if size < 1 << 33 {
        field[..11].copy_from_slice(format!("{size:011o}").as_bytes());
    } else {
        field[0] = 0x80;
        field[4..].copy_from_slice(&size.to_be_bytes());
    }
}

/// A member header as read.
struct Header {
    name: String,
    size: u64,
    link: Option<String>,
    at: u64,
}

/// A strict reader of what [`TarOut`] writes.
struct TarIn<'a> {
    input: &'a mut dyn Read,
    offset: u64,
}

impl TarIn<'_> {
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Invalid(format!("the converted layer ends early, in {what} (at byte {})", self.offset))
            } else {
                Error::io(format!("reading the converted layer at byte {}", self.offset), e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn next_header(&mut self) -> Result<Option<Header>> {
        let at = self.offset;
        let mut h = [0u8; 512];
        self.fill(&mut h, "a member header")?;
        if h.iter().all(|&b| b == 0) {
            // The end: a second zero block, then nothing but zeros.
            self.fill(&mut h, "the end-of-archive blocks")?;
            let mut rest = Vec::new();
            self.input.read_to_end(&mut rest).map_err(|e| Error::io("reading the converted layer's end", e))?;
            if h.iter().chain(&rest).any(|&b| b != 0) {
                return Err(Error::Invalid(format!("the converted layer has data after its end (at byte {at})")));
            }
            return Ok(None);
        }
        let bad = |m: String| Error::Invalid(format!("the converted layer's header at byte {at}: {m}"));
        let mut sum: u32 = h.iter().map(|&b| b as u32).sum();
        sum -= h[148..156].iter().map(|&b| b as u32).sum::<u32>();
        sum += 8 * b' ' as u32;
        let stored = octal(&h[148..156]).ok_or_else(|| bad("an unreadable checksum".into()))?;
        if stored != sum as u64 {
            return Err(bad(format!("checksum {stored} but the header sums to {sum}")));
        }
        if &h[257..263] != b"ustar\0" || &h[263..265] != b"00" {
            return Err(bad("not a ustar header".into()));
        }
        if h[345..500].iter().any(|&b| b != 0) {
            return Err(bad("a name prefix (the archive's names are short)".into()));
        }
        let text = |field: &[u8], what: &str| -> Result<String> {
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            String::from_utf8(field[..end].to_vec()).map_err(|_| bad(format!("the {what} is not UTF-8")))
        };
        let name = text(&h[..100], "name")?;
        let size = if h[124] & 0x80 != 0 {
            if h[124..128] != [0x80, 0, 0, 0] {
                return Err(bad("a size past 64 bits".into()));
            }
            u64::from_be_bytes(h[128..136].try_into().expect("8 bytes"))
        } else {
            octal(&h[124..136]).ok_or_else(|| bad("an unreadable size".into()))?
        };
        let link = match h[156] {
            b'0' | 0 => None,
            b'1' if size == 0 => Some(text(&h[157..257], "link target")?),
            b'1' => return Err(bad("a hard link with data".into())),
            t => return Err(bad(format!("member type {:?}: only files and hard links belong here", t as char))),
        };
        Ok(Some(Header { name, size, link, at }))
    }

    /// Copies a member's `size` bytes (then its padding) into `out`.
    fn data(&mut self, size: u64, out: &mut File, what: &str) -> Result<()> {
        let copied =
            io::copy(&mut (&mut self.input).take(size), out).map_err(|e| Error::io(format!("{what}: writing"), e))?;
        self.offset += copied;
        if copied != size {
            return Err(Error::Invalid(format!("the converted layer ends early, in {what}")));
        }
        let mut pad = vec![0u8; padding(size)];
        self.fill(&mut pad, what)
    }
}

/// An octal field (digits, then spaces or NULs).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}
