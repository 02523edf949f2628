//! Block CIM layers as hcsshim writes them for containerd's `blockcim` snapshotter: one
//! consistent single-file block CIM per layer (`layer.vhd` holding `layer.cim`), optionally
//! verified (sealed, its root hash written as hex to `integrity_checksum` beside the block
//! file) and optionally with a fixed-VHD footer appended after sealing, so a utility VM can
//! attach the file as a disk; merged CIMs over such layers; and their mounts.
//!
//! The block format is not public, so everything but the footer goes through Microsoft's
//! DLLs ([`CimFs`]); this module only orders the calls the way the format's users do.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use winlayer_core::{Error, Result};

use crate::cim_sink::{CimSink, CimTarget};
use crate::cimfs::{CimFs, ImagePath, create_flags, merge_flags, mount_flags};
use crate::{Guid, Source};

/// Why block CIMs are Windows-only: what every caller says when asked for one elsewhere.
pub const NEEDS_WINDOWS: &str = "block CIMs need Windows: their on-disk format is not public, so winlayer writes, \
                                 merges and mounts them only through Windows' cimwriter.dll and cimfs.dll";

/// The CIM DLLs from `source` for block CIM work. Windows' own DLLs exist only on Windows:
/// elsewhere [`Source::System`] is refused at once with [`NEEDS_WINDOWS`] (a test double, a
/// [`Source::File`], loads anywhere).
pub fn load(source: &Source) -> Result<CimFs> {
    if !cfg!(windows) && *source == Source::System {
        return Err(Error::Invalid(NEEDS_WINDOWS.into()));
    }
    CimFs::load(source).map_err(win)
}

/// The file, beside a verified layer's block file, holding its root hash in hex.
pub const INTEGRITY_CHECKSUM: &str = "integrity_checksum";

/// A block CIM layer to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayer {
    /// The block file (`…/layer.vhd`); it must not exist yet.
    pub file: PathBuf,
    /// The CIM's name inside it (`layer.cim`).
    pub name: String,
    /// Write a verified CIM, seal it and keep its root hash in [`INTEGRITY_CHECKSUM`].
    pub integrity: bool,
    /// Append a fixed-VHD footer once the CIM is finished.
    pub vhd_footer: bool,
}

impl BlockLayer {
    /// The layer as a mountable image (block file and name).
    pub fn image(&self) -> ImagePath {
        ImagePath { dir: self.file.clone(), name: self.name.clone() }
    }
}

fn win(e: crate::Error) -> Error {
    Error::Invalid(e.to_string())
}

/// Removes what a failed write may have left, and passes the error on.
fn undo(paths: &[&Path], e: Error) -> Error {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
    e
}

fn checksum_path(file: &Path) -> PathBuf {
    file.with_file_name(INTEGRITY_CHECKSUM)
}

fn refuse_existing(file: &Path) -> Result<()> {
    match file.symlink_metadata() {
        Ok(_) => Err(Error::Invalid(format!("{} already exists; a block CIM layer is written fresh", file.display()))),
        Err(_) => Ok(()),
    }
}

/// Writes `layer`: `fill` sends the layer's entries into the sink (whiteouts become
/// tombstones, hard links are made at the end, as merge links when their target is in a
/// lower layer). Returns the root hash of a verified layer. On failure nothing is left.
pub fn write_layer(
    fs: &CimFs,
    layer: &BlockLayer,
    fill: impl FnOnce(&mut CimSink) -> Result<()>,
) -> Result<Option<Vec<u8>>> {
    refuse_existing(&layer.file)?;
    let checksum = checksum_path(&layer.file);
    if layer.integrity {
        refuse_existing(&checksum)?;
    }
    let target = CimTarget::Block { file: layer.file.clone(), name: layer.name.clone(), verified: layer.integrity };
    let written = (|| {
        let mut sink = CimSink::create(fs, &target).map_err(win)?;
        fill(&mut sink)?;
        let hash = sink.finish().map_err(win)?;
        if let Some(hash) = &hash {
            std::fs::write(&checksum, hex(hash))
                .map_err(|e| Error::io(format!("writing {}", checksum.display()), e))?;
        }
        if layer.vhd_footer {
            append_footer(&layer.file)?;
        }
        Ok(hash)
    })();
    written.map_err(|e| undo(&[&layer.file, &checksum], e))
}

fn append_footer(file: &Path) -> Result<()> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .map_err(|e| Error::io(format!("opening {} for its VHD footer", file.display()), e))?;
    vhdx::vhd::append_fixed_footer(&mut f, None).map(drop)
}

/// Lower-case hex, as hcsshim writes the root hash.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The flags a merge of layers of this kind takes, and the create flags of the merged image.
fn merge_kind(verified: bool) -> (u32, u32) {
    match verified {
        true => (
            merge_flags::SINGLE_FILE | merge_flags::VERIFIED,
            create_flags::SINGLE_FILE_CIM | create_flags::VERIFIED_CIM,
        ),
        false => (merge_flags::SINGLE_FILE, create_flags::SINGLE_FILE_CIM),
    }
}

/// Merges `sources` (topmost first, at least two) into the block CIM `out`; a verified merge
/// (of verified layers) is sealed and its root hash returned; with `vhd_footer` a fixed-VHD
/// footer follows (after sealing, as for layers). On failure nothing is left.
pub fn merge(
    fs: &CimFs,
    out: &ImagePath,
    sources: &[ImagePath],
    verified: bool,
    vhd_footer: bool,
) -> Result<Option<Vec<u8>>> {
    if sources.len() < 2 {
        return Err(Error::Invalid(format!("a merged CIM needs at least two layers, not {}", sources.len())));
    }
    refuse_existing(&out.dir)?;
    let (merge, create) = merge_kind(verified);
    let merged = (|| {
        fs.require_block().map_err(win)?;
        let mut image = fs.create_image2(&out.dir, create, None, Some(&out.name)).map_err(win)?;
        for source in sources {
            image.add_to_merge(&source.dir.join(&source.name), Some(merge)).map_err(win)?;
        }
        image.commit().map_err(win)?;
        let hash = match verified {
            true => Some(fs.seal(&out.dir).map_err(win)?),
            false => None,
        };
        if vhd_footer {
            append_footer(&out.dir)?;
        }
        Ok(hash)
    })();
    merged.map_err(|e| undo(&[&out.dir], e))
}

/// Mounts a block CIM layer, or a merged one with its `sources` (topmost first, as merged),
/// as volume `volume`; with `root_hash`, verified against it. Returns the volume path.
pub fn mount(
    fs: &CimFs,
    image: &ImagePath,
    sources: &[ImagePath],
    root_hash: Option<&[u8]>,
    volume: Guid,
) -> Result<String> {
    let flags = mount_flags::SINGLE_FILE_CIM;
    let images: Vec<ImagePath> = std::iter::once(image.clone()).chain(sources.iter().cloned()).collect();
    let mounted = match (sources.is_empty(), root_hash) {
        (true, None) => fs.mount(image, flags, volume),
        (true, Some(hash)) => fs.mount_verified(image, flags, volume, hash),
        (false, None) => fs.merge_mount(&images, flags, volume),
        (false, Some(hash)) => fs.merge_mount_verified(&images, flags, volume, hash),
    };
    mounted.map_err(win)
}

/// The root hash in a verified layer's [`INTEGRITY_CHECKSUM`] file.
pub fn read_checksum(file: &Path) -> Result<Vec<u8>> {
    let path = checksum_path(file);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse_hex(text.trim()).ok_or_else(|| Error::Invalid(format!("{}: not a hex root hash", path.display())))
}

/// Bytes from hex (either case); `None` unless the text is whole hex bytes.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}
