//! Conversion between raw images and VHDX disks, streaming: memory stays at one buffer, holes
//! in the raw image are skipped without reading them (where the OS reports them), and blocks
//! of zeros stay unallocated.

use std::fs::File;

use winlayer_core::{Error, Result};

use crate::disk::Vhdx;
use crate::format::MIB;
use crate::storage::Storage;

/// The largest buffer used, whatever the block size.
const BUFFER: u64 = 4 * MIB;

/// The byte ranges of `raw` that may hold data, in order.
pub(crate) fn data_extents(raw: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    #[cfg(unix)]
    {
        use rustix::fs::{SeekFrom, seek};
        let mut extents = Vec::new();
        let mut pos = 0;
        while pos < len {
            let start = match seek(raw, SeekFrom::Data(pos)) {
                Ok(start) => start,
                Err(rustix::io::Errno::NXIO) => break,
                // A file system without hole reporting: all of it may be data.
                Err(_) => return Ok(vec![(0, len)]),
            };
            let end = seek(raw, SeekFrom::Hole(start)).unwrap_or(len).min(len);
            extents.push((start, end));
            pos = end;
        }
        Ok(extents)
    }
    #[cfg(not(unix))]
    {
        let _ = raw;
        Ok(vec![(0, len)])
    }
}

/// Copies the raw image `raw` into `disk` from virtual byte `at` (a sector multiple), skipping
/// holes and all-zero blocks. `progress` is told how far into the image the copy is.
pub fn from_raw(raw: &File, disk: &mut Vhdx, at: u64, progress: &mut dyn FnMut(u64)) -> Result<()> {
    let len = raw.metadata().map_err(|e| Error::io("reading the raw image's length", e))?.len();
    let sector = disk.info().logical_sector_size as u64;
    let padded = len.div_ceil(sector) * sector;
    if !at.is_multiple_of(sector) || at.checked_add(padded).is_none_or(|end| end > disk.virtual_size()) {
        return Err(Error::Invalid(format!(
            "a raw image of {len} bytes at byte {at} does not fit {} ({} bytes)",
            disk.name(),
            disk.virtual_size()
        )));
    }
    // Work in pieces that never straddle a payload block, so a zero piece is a whole block or
    // the part of one that the image covers.
    let piece = (disk.block_size() as u64).min(BUFFER);
    let mut buf = vec![0u8; piece as usize];
    let mut next = 0;
    for (start, end) in data_extents(raw, len)? {
        let first = start.max(next);
        let mut pos = ((at + first) / piece * piece).saturating_sub(at).max(next);
        while pos < end {
            let stop = (((at + pos) / piece + 1) * piece - at).min(padded);
            let n = (stop - pos) as usize;
            let readable = (len.min(stop) - pos) as usize;
            buf[readable..n].fill(0);
            raw.read_at(&mut buf[..readable], pos)
                .map_err(|e| Error::io(format!("reading the raw image at byte {pos}"), e))?;
            if buf[..n].iter().any(|&b| b != 0) {
                disk.write_at(at + pos, &buf[..n])?;
            }
            pos = stop;
            progress(pos);
        }
        next = pos;
    }
    progress(len);
    disk.flush()
}

/// Writes the virtual disk (through its parent chain) into `out` as a raw image, leaving
/// holes where the disk reads as zeros. `progress` is told how far the copy is.
pub fn to_raw(disk: &Vhdx, out: &mut dyn Storage, progress: &mut dyn FnMut(u64)) -> Result<()> {
    let size = disk.virtual_size();
    let piece = (disk.block_size() as u64).min(BUFFER);
    let mut buf = vec![0u8; piece as usize];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(piece) as usize;
        if !disk.known_zero(pos, n as u64)? {
            disk.read_at(pos, &mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_at(&buf[..n], pos)
                    .map_err(|e| Error::io(format!("writing the raw image at byte {pos}"), e))?;
            }
        }
        pos += n as u64;
        progress(pos);
    }
    out.set_len(size).map_err(|e| Error::io("setting the raw image's length", e))?;
    out.sync().map_err(|e| Error::io("syncing the raw image", e))
}
