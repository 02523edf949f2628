//! The input format of the `cim_reader` fuzz target and its corpus test: one byte string
//! holding a `.cim` and its region files, so a fuzzer can mutate headers, offsets and objects
//! alike.
//!
//! Layout: u16 length `n`, then `n` bytes of `img.cim`, then the region files of every set
//! the `.cim` lists (in global order), separated by [`SEPARATOR`]; missing ones are absent.
//! The image is opened from memory: an input never touches the file system.
//!
//! Almost every image holds Windows' 128 KiB upcase table, which would make inputs ten times
//! larger than the rest of the image and cost libFuzzer (which copies, hashes and mutates every
//! byte) most of its time: inside a region file, [`UPCASE_MARKER`] stands for that table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{FilesystemHeader, RegionSet, region_file_name};
use crate::reader::ImageFiles;
use crate::upcase::Upcase;
use zerocopy::FromBytes;

/// The name of the `.cim` in an unpacked input.
pub const CIM_NAME: &str = "img.cim";

/// Separates region files in the input.
pub const SEPARATOR: &[u8] = b"\n--region--\n";
/// At most this many region files are written (the rest of the input is ignored).
const MAX_FILES: usize = 16;
/// Stands for Windows' upcase table inside a region file.
pub const UPCASE_MARKER: &[u8] = b"\n--windows-upcase--\n";
/// At most this many markers of one region file are expanded (the rest stay as they are), so
/// an input cannot ask for unbounded memory.
const MAX_TABLES: usize = 4;

/// The files `input` describes: the `.cim` ([`CIM_NAME`]) and the region files present.
pub fn unpack(input: &[u8]) -> ImageFiles {
    let n = input.get(..2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let cim = input.get(2..2 + n).unwrap_or(input.get(2..).unwrap_or(&[]));
    let rest = input.get(2 + n..).unwrap_or(&[]);
    let mut names = Vec::new();
    if let Ok((h, tail)) = FilesystemHeader::read_from_prefix(cim) {
        let parents = (0..h.parent_count.get() as usize)
            .filter_map(|i| RegionSet::read_from_prefix(tail.get(i * 24..)?).ok())
            .map(|(s, _)| s);
        for set in parents.chain([h.regions]) {
            names.extend((0..set.count.get()).map(|i| region_file_name(set.id, i)).take(MAX_FILES));
        }
    }
    let mut files = BTreeMap::from([(CIM_NAME.to_string(), Arc::new(cim.to_vec()))]);
    // A later duplicate name replaces an earlier one, as writing the files did.
    files.extend(names.into_iter().take(MAX_FILES).zip(split(rest)).map(|(name, chunk)| (name, expand(chunk))));
    ImageFiles::Memory(files)
}

/// A region file with its first [`MAX_TABLES`] markers replaced by the table.
fn expand(chunk: &[u8]) -> Arc<Vec<u8>> {
    let finder = memchr::memmem::Finder::new(UPCASE_MARKER);
    if finder.find(chunk).is_none() {
        return Arc::new(chunk.to_vec());
    }
    let table = windows_table();
    let mut out = Vec::with_capacity(chunk.len() + table.len());
    let mut rest = chunk;
    for _ in 0..MAX_TABLES {
        let Some(i) = finder.find(rest) else { break };
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(table);
        rest = &rest[i + UPCASE_MARKER.len()..];
    }
    out.extend_from_slice(rest);
    Arc::new(out)
}

/// Windows' upcase table as stored, made once.
fn windows_table() -> &'static [u8] {
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| Upcase::windows().to_le_bytes())
}

/// A region file with Windows' upcase table, where it holds one, replaced by the marker.
fn compact(region: &[u8]) -> Vec<u8> {
    let table = windows_table();
    match memchr::memmem::find(region, table) {
        Some(i) => [&region[..i], UPCASE_MARKER, &region[i + table.len()..]].concat(),
        None => region.to_vec(),
    }
}

/// Builds an input from an image directory (the table written as the marker): the inverse of
/// [`unpack`].
pub fn pack(cim: &Path, regions: &[PathBuf]) -> std::io::Result<Vec<u8>> {
    let head = std::fs::read(cim)?;
    let mut out = (head.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(&head);
    for (i, r) in regions.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(&compact(&std::fs::read(r)?));
    }
    Ok(out)
}

fn split(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // memchr's search looks at many bytes per step: a byte-by-byte loop, instrumented for
        // coverage, cost the fuzz target more than reading the image.
        match memchr::memmem::find(rest, SEPARATOR) {
            Some(i) => {
                let chunk = &rest[..i];
                rest = &rest[i + SEPARATOR.len()..];
                Some(chunk)
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

/// Opens the image in `input` and reads all of it, as the fuzz target does; any result is
/// fine as long as it comes back.
pub fn exercise(input: &[u8]) -> winlayer_core::Result<u64> {
    let cim = crate::Cim::open_in(unpack(input), CIM_NAME)?;
    let bytes = cim.verify()?;
    cim.info()?;
    for name in ["Files", "files/a", "FILES\\Windows\\System32", "Files/link"] {
        if let Some(id) = cim.find(name)? {
            cim.stat(name, id)?;
            cim.xattrs(&cim.record(id)?)?;
        }
    }
    let mut sink = winlayer_core::Checker::new();
    winlayer_core::LayerSource::send_to(crate::CimSource::new(&cim), &mut sink)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_stands_for_the_windows_table() {
        let region = [b"head".as_slice(), windows_table(), b"tail"].concat();
        let compacted = compact(&region);
        assert_eq!(compacted, [b"head".as_slice(), UPCASE_MARKER, b"tail"].concat());
        assert_eq!(&*expand(&compacted), region.as_slice());
        // A region without the table is kept as it is.
        assert_eq!(compact(b"no table"), b"no table");
    }

    #[test]
    fn markers_past_the_limit_stay_as_they_are() {
        let chunk = UPCASE_MARKER.repeat(MAX_TABLES + 1);
        let expanded = expand(&chunk);
        assert_eq!(expanded.len(), MAX_TABLES * windows_table().len() + UPCASE_MARKER.len());
        assert!(expanded.ends_with(UPCASE_MARKER));
    }
}
