//! What the fuzz target runs, shared with the test that replays its corpus.
//!
//! A VHDX file is at least a few MiB, mostly zeros, so fuzz inputs describe a file sparsely
//! (kept in [`Sparse`] pages):
//! a little-endian u32 length (capped), then runs of `offset: u32, length: u16, bytes`
//! written over zeros. Real disks encode to a few KiB and mutations stay structural.

use std::collections::BTreeMap;
use std::io;

use crate::disk::{OpenOptions, Vhdx};
use crate::format::MIB;
use crate::storage::Storage;
use winlayer_core::Result;

/// The largest file an input may describe.
pub const MAX_FILE: u64 = 16 * MIB;

const PAGE: u64 = 4096;

/// A file kept as its non-zero 4 KiB pages, so that describing (and checking) a mostly empty
/// 16 MiB file costs what its contents cost.
#[derive(Clone, Default)]
pub struct Sparse {
    len: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
}

impl Storage for Sparse {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.fill(0);
        let end = offset + buf.len() as u64;
        for (&page, bytes) in self.pages.range(offset / PAGE..end.div_ceil(PAGE)) {
            let (from, to) = ((page * PAGE).max(offset), ((page + 1) * PAGE).min(end));
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - page * PAGE) as usize..(to - page * PAGE) as usize]);
        }
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64).ok_or(io::ErrorKind::InvalidInput)?;
        if end > self.len {
            self.set_len(end)?;
        }
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let to = ((page + 1) * PAGE).min(end);
            let bytes = self.pages.entry(page).or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
            bytes[(at - page * PAGE) as usize..(to - page * PAGE) as usize]
                .copy_from_slice(&buf[(at - offset) as usize..(to - offset) as usize]);
            at = to;
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len > 4 * MAX_FILE {
            return Err(io::Error::other("the fuzzing file is limited in size"));
        }
        if len < self.len {
            let cut = len.div_ceil(PAGE);
            self.pages.split_off(&cut);
            if let Some(last) = len.checked_sub(1).map(|l| l / PAGE).and_then(|p| self.pages.get_mut(&p)) {
                last[(len % PAGE) as usize..].fill(0);
            }
        }
        self.len = len;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The file an input describes.
pub fn decode(data: &[u8]) -> Sparse {
    let mut file = Sparse::default();
    let Some((len, mut rest)) = data.split_first_chunk::<4>() else { return file };
    file.len = (u32::from_le_bytes(*len) as u64).min(MAX_FILE);
    while let Some((head, tail)) = rest.split_first_chunk::<6>() {
        let offset = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let n = (u16::from_le_bytes([head[4], head[5]]) as usize).min(tail.len());
        let end = (offset + n as u64).min(file.len);
        if offset < end {
            file.write_at(&tail[..(end - offset) as usize], offset).expect("inside the file");
        }
        rest = &tail[n..];
    }
    file
}

/// An input describing `file` (its non-zero 64-byte pieces, merged into runs).
pub fn encode(file: &[u8]) -> Vec<u8> {
    let mut out = (file.len() as u32).to_le_bytes().to_vec();
    let mut at = 0;
    while at < file.len() {
        if file[at..(at + 64).min(file.len())].iter().all(|&b| b == 0) {
            at += 64;
            continue;
        }
        let start = at;
        while at < file.len() && at - start < 60_000 && file[at..(at + 64).min(file.len())].iter().any(|&b| b != 0) {
            at += 64;
        }
        let end = at.min(file.len());
        out.extend((start as u32).to_le_bytes());
        out.extend(((end - start) as u16).to_le_bytes());
        out.extend(&file[start..end]);
    }
    out
}

/// Opens the described file, checks it, reads from its start, middle and end, and, for
/// 1 MiB-block disks, writes a sector at each end and reopens it. Any outcome but a panic,
/// a hang or a huge allocation is fine.
pub fn exercise(data: &[u8]) -> Result<()> {
    let file = decode(data);
    let disk = Vhdx::open(Box::new(file.clone()), "fuzz", &OpenOptions::default())?;
    disk.check()?;
    let size = disk.virtual_size();
    let mut buf = vec![0u8; 64 * 1024];
    let n = buf.len().min(size as usize);
    for offset in [0, size / 2 / 512 * 512, size - n as u64] {
        disk.read_at(offset, &mut buf[..n])?;
    }
    disk.known_zero(0, size.min(64 * MIB))?;
    if disk.block_size() as u64 == MIB {
        let mut disk = Vhdx::open(Box::new(file), "fuzz", &OpenOptions { writable: true, ..OpenOptions::default() })?;
        let sector = disk.info().logical_sector_size as usize;
        disk.write_at(0, &vec![0x5A; sector])?;
        disk.write_at(size - sector as u64, &vec![0xA5; sector])?;
        let storage = disk.into_storage();
        Vhdx::open(storage, "fuzz", &OpenOptions::default())?.check()?;
    }
    Ok(())
}
