//! A full check of an open disk: what opening verified, plus both copies of the headers and
//! region tables, the log, every metadata item and every BAT entry (state, alignment, inside
//! the file, no two objects sharing bytes).

use winlayer_core::{Problem, Result};

use crate::disk::Vhdx;
use crate::format::*;

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Errors and warnings, in file order.
    pub problems: Vec<Problem>,
    /// Payload blocks allocated in the file (fully or partially present).
    pub allocated_blocks: u64,
    /// Of those, partially present blocks.
    pub partial_blocks: u64,
    /// Sector bitmap blocks allocated in the file.
    pub bitmap_blocks: u64,
}

impl Report {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == winlayer_core::Severity::Error)
    }
}

/// Which 1 MiB units of the file are taken, to find objects that share bytes.
struct Occupancy {
    units: Vec<u64>,
}

impl Occupancy {
    /// Marks `length` bytes at `offset`; returns false when some were already taken.
    fn take(&mut self, offset: u64, length: u64) -> bool {
        let mut free = true;
        for unit in offset / MIB..(offset + length).div_ceil(MIB) {
            let (word, bit) = ((unit / 64) as usize, unit % 64);
            if word >= self.units.len() {
                self.units.resize(word + 1, 0);
            }
            free &= self.units[word] >> bit & 1 == 0;
            self.units[word] |= 1 << bit;
        }
        free
    }
}

impl Vhdx {
    /// Checks everything, listing every problem rather than stopping at the first. Only I/O
    /// errors fail the call.
    pub fn check(&self) -> Result<Report> {
        let mut report = Report::default();
        let problems = &mut report.problems;
        let file_size = self
            .storage
            .len()
            .map_err(|e| winlayer_core::Error::io(format!("{}: reading its length", self.name), e))?;

        let other = 1 - self.current_header;
        let mut buf = vec![0u8; HEADER_SIZE];
        self.read_file(&mut buf, HEADER_OFFSETS[other], "a header")?;
        if let Err(e) = Header::parse(&buf) {
            problems.push(
                Problem::warning(
                    format!("header {}", other + 1),
                    format!("{e}; header {} is current", self.current_header + 1),
                )
                .at(HEADER_OFFSETS[other]),
            );
        }
        let mut tables = Vec::new();
        for (i, offset) in REGION_TABLE_OFFSETS.into_iter().enumerate() {
            let mut buf = vec![0u8; REGION_TABLE_SIZE];
            self.read_file(&mut buf, offset, "a region table")?;
            match parse_region_table(&buf) {
                Ok(t) => tables.push(t),
                Err(e) => problems.push(Problem::warning(format!("region table {}", i + 1), e).at(offset)),
            }
        }
        if tables.len() == 2 && tables[0] != tables[1] {
            problems.push(
                Problem::warning("region table 2".to_string(), "differs from region table 1")
                    .at(REGION_TABLE_OFFSETS[1]),
            );
        }
        if !self.header.log_guid.is_nil() {
            problems.push(Problem::warning(
                "log".to_string(),
                format!("LogGuid {} is set but the log holds no valid entry", self.header.log_guid.hyphenated()),
            ));
        }
        self.check_metadata(problems);
        self.check_bat(&mut report, file_size)?;
        Ok(report)
    }

    fn check_metadata(&self, problems: &mut Vec<Problem>) {
        let mut items: Vec<(u32, u32, usize)> = Vec::new();
        for (i, e) in self.metadata_entries.iter().enumerate() {
            let at = self.metadata.offset + e.offset as u64;
            if let Some((_, _, j)) =
                items.iter().find(|(o, l, _)| e.length > 0 && e.offset < o + l && *o < e.offset + e.length)
            {
                problems
                    .push(Problem::error(format!("metadata entry {i}"), format!("overlaps metadata entry {j}")).at(at));
            }
            items.push((e.offset, e.length, i));
            if !guids::METADATA_ITEMS.contains(&e.item) {
                let kind = if e.is_user { "user" } else { "system" };
                problems.push(
                    Problem::warning(
                        format!("metadata entry {i}"),
                        format!("unknown optional {kind} item {}", e.item.hyphenated()),
                    )
                    .at(at),
                );
            }
            if e.item == guids::PARENT_LOCATOR && !self.geometry.has_parent {
                problems.push(
                    Problem::warning(format!("metadata entry {i}"), "a parent locator in a disk without HasParent")
                        .at(at),
                );
            }
        }
    }

    fn check_bat(&self, report: &mut Report, file_size: u64) -> Result<()> {
        let g = self.geometry;
        let mut taken = Occupancy { units: Vec::new() };
        taken.take(0, HEADER_SECTION);
        taken.take(self.header.log_offset, self.header.log_length as u64);
        taken.take(self.metadata.offset, self.metadata.length as u64);
        taken.take(self.bat.offset, self.bat.length as u64);
        let total = g.bat_entries();
        let mut chunk_partial = false;
        let mut buf = vec![0u8; total.saturating_mul(8).min(MIB) as usize];
        let mut index = 0;
        while index < total {
            let n = ((total - index) * 8).min(MIB) as usize;
            self.read_file(&mut buf[..n], self.bat.offset + index * 8, "the BAT")?;
            let mut next = 0;
            while next < n {
                if !chunk_partial {
                    // All-zero entries (not present) change nothing while no block of the chunk
                    // is partially present: skip them in bulk, so a mostly empty BAT of
                    // millions of entries is checked at memory speed.
                    let skip = zero_prefix(&buf[next..n]) / 8 * 8;
                    next += skip;
                    index += skip as u64 / 8;
                    if next == n {
                        break;
                    }
                }
                let entry = BatEntry(u64_at(&buf[next..next + 8], 0));
                next += 8;
                let at = self.bat.offset + index * 8;
                let (is_bitmap, number) = g.entry_kind(index);
                let mut problem = |error: bool, msg: String| {
                    let what = if is_bitmap {
                        format!("BAT entry {index} (sector bitmap of chunk {number})")
                    } else {
                        format!("BAT entry {index} (payload block {number})")
                    };
                    let p = if error { Problem::error(what, msg) } else { Problem::warning(what, msg) };
                    report.problems.push(p.at(at));
                };
                if entry.0 >> 3 & 0x1_FFFF != 0 {
                    problem(false, format!("reserved bits are set (0x{:016x})", entry.0));
                }
                let state = entry.state();
                let (allocated, length) = if is_bitmap {
                    match state {
                        bitmap::NOT_PRESENT => {
                            if chunk_partial {
                                problem(true, "not present, but a block of its chunk is partially present".into());
                            }
                            (false, 0)
                        }
                        bitmap::PRESENT if g.has_parent => (true, MIB),
                        bitmap::PRESENT => {
                            problem(true, "sector bitmaps are only valid in differencing disks".into());
                            (false, 0)
                        }
                        s => {
                            problem(true, format!("state {s} is reserved for sector bitmap entries"));
                            (false, 0)
                        }
                    }
                } else {
                    match state {
                        payload::FULLY_PRESENT | payload::PARTIALLY_PRESENT if number >= g.data_blocks() => {
                            problem(false, "allocated past the end of the virtual disk".into());
                            (true, g.block_size as u64)
                        }
                        payload::FULLY_PRESENT => (true, g.block_size as u64),
                        payload::PARTIALLY_PRESENT if g.has_parent => {
                            chunk_partial = true;
                            report.partial_blocks += 1;
                            (true, g.block_size as u64)
                        }
                        payload::PARTIALLY_PRESENT => {
                            problem(true, "partially present is only valid in differencing disks".into());
                            (false, 0)
                        }
                        payload::NOT_PRESENT | payload::UNDEFINED | payload::ZERO | payload::UNMAPPED => (false, 0),
                        s => {
                            problem(true, format!("state {s} is reserved for payload entries"));
                            (false, 0)
                        }
                    }
                };
                if is_bitmap {
                    chunk_partial = false;
                }
                if allocated {
                    let offset = entry.offset();
                    if is_bitmap {
                        report.bitmap_blocks += 1
                    } else {
                        report.allocated_blocks += 1
                    }
                    if offset < HEADER_SECTION {
                        problem(true, format!("points into the header section (byte {offset})"));
                    } else if offset.checked_add(length).is_none_or(|end| end > file_size) {
                        problem(
                            true,
                            format!("{length} bytes at byte {offset} go past the end of the file ({file_size} bytes)"),
                        );
                    } else if !taken.take(offset, length) {
                        problem(true, format!("{length} bytes at byte {offset} overlap a region or another block"));
                    }
                }
                index += 1;
            }
        }
        Ok(())
    }
}

/// How many zero bytes `bytes` starts with (compared a page at a time, as `memcmp` does it).
fn zero_prefix(bytes: &[u8]) -> usize {
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut n = 0;
    while let Some(page) = bytes.get(n..n + ZEROS.len()) {
        if page != ZEROS {
            break;
        }
        n += ZEROS.len();
    }
    n + bytes[n..].iter().take_while(|&&b| b == 0).count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_prefix_counts_across_pages() {
        let mut bytes = vec![0u8; 4096 + 13];
        bytes.push(1);
        bytes.extend([0; 5]);
        assert_eq!(super::zero_prefix(&bytes), 4096 + 13);
        assert_eq!(super::zero_prefix(&bytes[4096 + 14..]), 5);
        assert_eq!(super::zero_prefix(&[7]), 0);
        assert_eq!(super::zero_prefix(&[]), 0);
    }
}
