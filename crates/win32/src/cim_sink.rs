//! A [`LayerSink`] that writes a layer into a CIM through cimfs.dll: Microsoft's own writer,
//! for Windows hosts that prefer it and for the CIM kinds only it can write (block CIMs with
//! tombstones and merge links, verified CIMs).
//!
//! The mapping is hcsshim's (pkg/ociwclayer/cim): layer paths become backslash paths under
//! the image root; a file's reparse-point attribute is kept only for links; an object
//! without a security descriptor gets the NULL-DACL descriptor (an empty one leaves the CIM
//! in a bad state, per hcsshim); streams are added as `path:name:$DATA`. A whiteout deletes
//! the path from a fork (nothing to delete is fine) or tombstones it in a block CIM; in a
//! block CIM every hard link waits until all files are in, then becomes a hard link when
//! its target is in this layer and a merge link otherwise. Opaque-directory markers are
//! skipped, as Windows' importers skip them.
//!
//! What hcsshim does around the CIM — writing hives and other files it post-processes to
//! the layer folder, merging delta hives with offreg — is the caller's, not the sink's.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;

use winlayer_core::ea::encode_list;
use winlayer_core::{Data, Entry, EntryKind, Error, LayerPath, LayerSink, Metadata, attrs};

use crate::cimfs::{CimFs, FileMetadata, Image, create_flags};

/// The self-relative descriptor with a NULL DACL (revision 1, SE_SELF_RELATIVE |
/// SE_DACL_PRESENT, no owner, group or ACLs) hcsshim gives objects that have none.
const NULL_DACL: [u8; 20] = [1, 0, 0x04, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Which CIM to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CimTarget {
    /// A classic CIM `name` (e.g. `layer.cim`) in `dir`, forked from the CIM `parent` in the
    /// same directory when given (containerd keeps all of them in one directory).
    Forked {
        /// The directory holding the CIMs.
        dir: PathBuf,
        /// The new CIM's name.
        name: String,
        /// The parent CIM's name.
        parent: Option<String>,
    },
    /// A consistent single-file block CIM `name` inside `file` (e.g. `layer.vhd`); a verified
    /// one is sealed when finished.
    Block {
        /// The block file.
        file: PathBuf,
        /// The CIM's name inside it.
        name: String,
        /// Write a verified CIM and seal it.
        verified: bool,
    },
}

/// Writes an entry stream into a CIM; [`CimSink::finish`] commits it.
pub struct CimSink {
    image: Image,
    fs: CimFs,
    block: Option<(PathBuf, bool)>,
    /// Folded paths of the files added in this layer (link targets).
    added: HashSet<String>,
    /// Hard links of a block CIM, made at the end: (new, target).
    links: Vec<(LayerPath, LayerPath)>,
    buffer: Vec<u8>,
}

impl CimSink {
    /// Opens the target for writing.
    pub fn create(fs: &CimFs, target: &CimTarget) -> crate::Result<CimSink> {
        let (image, block) = match target {
            CimTarget::Forked { dir, name, parent } => {
                fs.require_writer()?;
                (fs.create_image(dir, parent.as_deref(), Some(name))?, None)
            }
            CimTarget::Block { file, name, verified } => {
                fs.require_block()?;
                let mut flags = create_flags::SINGLE_FILE_CIM | create_flags::CONSISTENT_CIM;
                if *verified {
                    flags |= create_flags::VERIFIED_CIM;
                }
                (fs.create_image2(file, flags, None, Some(name))?, Some((file.clone(), *verified)))
            }
        };
        Ok(CimSink { image, fs: fs.clone(), block, added: HashSet::new(), links: Vec::new(), buffer: vec![0; 1 << 20] })
    }

    /// Makes the deferred links, commits the image and, for a verified block CIM, seals it;
    /// returns the root hash of a sealed CIM.
    pub fn finish(mut self) -> crate::Result<Option<Vec<u8>>> {
        for (new, target) in std::mem::take(&mut self.links) {
            let (new_path, target_path) = (cim_path(&new), cim_path(&target));
            if self.added.contains(&target.folded()) {
                self.image.create_hard_link(&new_path, &target_path)?;
            } else {
                self.image.create_merge_link(&new_path, &target_path)?;
            }
        }
        self.image.commit()?;
        match self.block {
            Some((file, true)) => Ok(Some(self.fs.seal(&file)?)),
            _ => Ok(None),
        }
    }

    fn add(&mut self, entry: &Entry, meta: &Metadata, reparse: &[u8], data: &mut Data<'_>) -> crate::Result {
        let path = cim_path(&entry.path);
        let size = entry.kind.data_len();
        let mut attributes = meta.attributes;
        match entry.kind {
            EntryKind::Directory => attributes |= attrs::DIRECTORY,
            EntryKind::Symlink(_) => attributes |= attrs::REPARSE_POINT,
            _ => attributes &= !attrs::REPARSE_POINT,
        }
        let eas = encode_list(&meta.eas);
        let file = FileMetadata {
            attributes,
            size,
            creation: meta.creation,
            last_write: meta.last_write,
            change: meta.change,
            last_access: meta.last_access,
            security: meta.security.as_deref().unwrap_or(&NULL_DACL),
            reparse,
            eas: &eas,
        };
        let mut stream = self.image.create_file(&path, &file)?;
        copy(&mut stream, data, size, &path, &mut self.buffer)?;
        stream.close()
    }
}

/// A layer path as a CIM path: backslashes, relative to the image root.
fn cim_path(path: &LayerPath) -> String {
    path.as_str().replace('/', "\\")
}

fn copy(
    stream: &mut crate::cimfs::Stream<'_>,
    data: &mut Data<'_>,
    len: u64,
    path: &str,
    buffer: &mut [u8],
) -> crate::Result {
    let mut left = len;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let n = data
            .read(&mut buffer[..want])
            .map_err(|e| crate::Error::argument("CimWriteStream", format!("{path}: reading its data: {e}")))?;
        if n == 0 {
            return Err(crate::Error::argument(
                "CimWriteStream",
                format!("{path}: data ends after {} of {len} bytes", len - left),
            ));
        }
        stream.write(&buffer[..n])?;
        left -= n as u64;
    }
    Ok(())
}

impl LayerSink for CimSink {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> winlayer_core::Result<()> {
        let path = cim_path(&entry.path);
        match &entry.kind {
            EntryKind::Directory | EntryKind::File { .. } => self.add(entry, &entry.meta, &[], data)?,
            EntryKind::Symlink(link) => {
                link.check().map_err(|e| Error::Invalid(format!("{}: {e}", entry.path)))?;
                self.add(entry, &entry.meta, &link.to_reparse_buffer(), data)?;
            }
            EntryKind::Stream { name, size } => {
                let mut stream = self.image.create_alternate_stream(&format!("{path}:{name}:$DATA"), *size)?;
                copy(&mut stream, data, *size, &path, &mut self.buffer)?;
                stream.close()?;
            }
            EntryKind::HardLink { target } => {
                if self.block.is_some() {
                    self.links.push((entry.path.clone(), target.clone()));
                } else {
                    self.image.create_hard_link(&path, &cim_path(target))?;
                }
            }
            EntryKind::Whiteout => {
                if self.block.is_some() {
                    self.image.tombstone(&path)?;
                } else {
                    match self.image.delete_path(&path) {
                        Err(e) if e.is_not_found() => {}
                        other => other?,
                    }
                }
            }
            EntryKind::Opaque => {}
        }
        if matches!(entry.kind, EntryKind::File { .. } | EntryKind::Symlink(_)) {
            self.added.insert(entry.path.folded());
        }
        Ok(())
    }
}
