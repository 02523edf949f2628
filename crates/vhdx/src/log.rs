//! Whether a disk's log holds entries that must be replayed ([MS-VHDX] §2.3).
//!
//! The log is a circular buffer of 4 KiB sectors. An entry counts when its header carries the
//! LogGuid of the current file header and its CRC-32C over the whole entry is right; such an
//! entry means a writer stopped before its metadata updates reached their places, so reading
//! the file as it is would see stale metadata. Replay is not implemented: such disks are
//! refused.

use std::io;

use crate::format::{Crc, Header, LOG_SECTOR, LogEntryHeader, MIB};
use crate::storage::Storage;

/// Bytes of candidate entries checksummed at most, in log lengths, so that a hostile log full
/// of entry headers claiming huge lengths cannot make the scan quadratic. Real entries do not
/// overlap, so all of them fit in one log length.
const CHECKSUM_BUDGET: u64 = 2;

/// A description of the valid entries in the log, or `None` when there are none.
pub(crate) fn pending(storage: &dyn Storage, header: &Header) -> io::Result<Option<String>> {
    let (start, length) = (header.log_offset, header.log_length as u64);
    let mut budget = CHECKSUM_BUDGET * length;
    let mut sequences = Vec::new();
    let mut head = [0u8; 64];
    for sector in (0..length).step_by(LOG_SECTOR as usize) {
        storage.read_at(&mut head, start + sector)?;
        let Some(entry) = LogEntryHeader::parse(&head) else { continue };
        let size = entry.entry_length as u64;
        // One 4 KiB sector holds the header and up to 126 descriptors, later ones 128 each.
        let descriptor_sectors = (entry.descriptor_count as u64 + 2).div_ceil(128);
        if entry.log_guid != header.log_guid
            || entry.sequence == 0
            || size == 0
            || !size.is_multiple_of(LOG_SECTOR)
            || size > length
            || descriptor_sectors * LOG_SECTOR > size
        {
            continue;
        }
        if size > budget {
            return Ok(Some(format!(
                "more log entries than can be verified (from log sector {})",
                sector / LOG_SECTOR
            )));
        }
        budget -= size;
        if checksum(storage, start, length, sector, size)? == entry.checksum {
            sequences.push(entry.sequence);
        }
    }
    Ok(match (sequences.iter().min(), sequences.iter().max()) {
        (Some(first), Some(last)) => Some(format!(
            "{} valid entr{} (sequence {first} to {last})",
            sequences.len(),
            if sequences.len() == 1 { "y" } else { "ies" }
        )),
        _ => None,
    })
}

/// CRC-32C of the `size`-byte entry at `sector` of the circular log, its checksum field zero.
fn checksum(storage: &dyn Storage, start: u64, length: u64, sector: u64, size: u64) -> io::Result<u32> {
    let mut crc = Crc::crc32c();
    let mut buf = vec![0u8; MIB.min(size) as usize];
    let mut done = 0;
    while done < size {
        let at = (sector + done) % length;
        let n = (size - done).min(length - at).min(buf.len() as u64) as usize;
        storage.read_at(&mut buf[..n], start + at)?;
        if done == 0 {
            buf[4..8].fill(0);
        }
        crc.update(&buf[..n]);
        done += n as u64;
    }
    Ok(crc.value())
}
