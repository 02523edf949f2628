//! The disk model against a plain byte array: creation, reads, writes through differencing
//! chains, growth, raw conversion, determinism, and hostile files.

use std::fs::File;
use std::io::Write;

use vhdx::format::{self, MIB, guids};
use vhdx::raw::{from_raw, to_raw};
use vhdx::{CreateOptions, Ids, OpenOptions, ParentLink, Uuid, Vhdx};

fn memory(options: &CreateOptions) -> Vhdx {
    Vhdx::create(Box::new(Vec::<u8>::new()), "mem", options).unwrap()
}

fn bytes(disk: Vhdx) -> Vec<u8> {
    let storage = disk.into_storage();
    let mut b = vec![0u8; storage.len().unwrap() as usize];
    storage.read_at(&mut b, 0).unwrap();
    b
}

fn reopen(bytes: Vec<u8>, writable: bool) -> winlayer_core::Result<Vhdx> {
    Vhdx::open(Box::new(bytes), "mem", &OpenOptions { writable, ..OpenOptions::default() })
}

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn read_all(disk: &Vhdx) -> Vec<u8> {
    let mut b = vec![0u8; disk.virtual_size() as usize];
    disk.read_at(0, &mut b).unwrap();
    b
}

/// Random sector-aligned writes, mirrored into `model`.
fn scribble(disk: &mut Vhdx, model: &mut [u8], rng: &mut Rng, writes: usize) {
    let sector = disk.info().logical_sector_size as u64;
    let sectors = disk.virtual_size() / sector;
    for _ in 0..writes {
        let first = rng.below(sectors);
        let count = 1 + rng.below((sectors - first).min(3 * MIB / sector));
        let fill = if rng.below(5) == 0 { 0 } else { rng.next() as u8 | 1 };
        let data = vec![fill; (count * sector) as usize];
        disk.write_at(first * sector, &data).unwrap();
        model[(first * sector) as usize..((first + count) * sector) as usize].copy_from_slice(&data);
    }
}

#[test]
fn new_disks_open_with_what_was_asked() {
    for (size, block, sector) in [(64 * MIB, MIB, 512), (40 * MIB + 4096, 2 * MIB, 4096), (300 * MIB, 32 * MIB, 512)] {
        let options = CreateOptions {
            block_size: block as u32,
            logical_sector_size: sector,
            physical_sector_size: sector,
            ..CreateOptions::dynamic(size)
        };
        let disk = memory(&options);
        let info = disk.info();
        assert_eq!((info.virtual_size, info.block_size as u64, info.logical_sector_size), (size, block, sector));
        assert!(info.parent.is_none());
        let report = disk.check().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.allocated_blocks, 0);
        let reopened = reopen(bytes(disk), false).unwrap();
        assert_eq!(reopened.info().data_write_guid, info.data_write_guid);
        assert!(read_all(&reopened).iter().all(|&b| b == 0));
    }
}

#[test]
fn bad_create_options_are_refused() {
    let bad = [
        CreateOptions { block_size: 3 * MIB as u32, ..CreateOptions::dynamic(MIB) },
        CreateOptions { block_size: 512 * 1024, ..CreateOptions::dynamic(MIB) },
        CreateOptions { logical_sector_size: 1024, ..CreateOptions::dynamic(MIB) },
        CreateOptions::dynamic(1000),
        CreateOptions::dynamic(0),
        CreateOptions::dynamic(format::MAX_VIRTUAL_SIZE + 512),
        CreateOptions {
            parent: Some(ParentLink { linkage: Uuid::nil(), relative_path: None, absolute_path: None }),
            ..CreateOptions::dynamic(MIB)
        },
    ];
    for options in bad {
        let e = Vhdx::create(Box::new(Vec::<u8>::new()), "mem", &options).err().expect("refused");
        assert!(e.to_string().starts_with("mem: "), "{e}");
    }
}

#[test]
fn writes_read_back_and_zeros_stay_unallocated() {
    for sector in [512, 4096] {
        let options = CreateOptions { logical_sector_size: sector, ..CreateOptions::dynamic(24 * MIB) };
        let mut disk = memory(&options);
        let mut model = vec![0u8; disk.virtual_size() as usize];
        scribble(&mut disk, &mut model, &mut Rng(sector as u64), 60);
        assert_eq!(read_all(&disk), model);
        assert!(disk.check().unwrap().problems.is_empty());
        let disk = reopen(bytes(disk), false).unwrap();
        assert_eq!(read_all(&disk), model);
    }
    let mut disk = memory(&CreateOptions::dynamic(8 * MIB));
    disk.write_at(MIB, &vec![0u8; 2 * MIB as usize]).unwrap();
    assert_eq!(disk.check().unwrap().allocated_blocks, 0);
    let e = disk.write_at(100, &[1u8; 512]).unwrap_err().to_string();
    assert!(e.contains("whole 512-byte sectors"), "{e}");
    let e = disk.write_at(8 * MIB - 512, &[1u8; 1024]).unwrap_err().to_string();
    assert!(e.contains("beyond the virtual size"), "{e}");
}

#[test]
fn writing_changes_the_data_write_guid_once() {
    let disk = memory(&CreateOptions::dynamic(4 * MIB));
    let before = disk.info();
    let mut disk = reopen(bytes(disk), true).unwrap();
    disk.write_at(0, &[7u8; 512]).unwrap();
    disk.write_at(512, &[7u8; 512]).unwrap();
    let after = disk.info();
    assert_ne!(after.data_write_guid, before.data_write_guid);
    assert_ne!(after.file_write_guid, before.file_write_guid);
    assert_eq!(after.sequence, before.sequence + 1);
    assert_ne!(after.current_header, before.current_header);
    let reopened = reopen(bytes(disk), false).unwrap();
    assert_eq!(reopened.info().data_write_guid, after.data_write_guid);
}

fn child_of(parent: &Vhdx, block_size: u32) -> Vhdx {
    let info = parent.info();
    let options = CreateOptions {
        block_size,
        logical_sector_size: info.logical_sector_size,
        parent: Some(ParentLink {
            linkage: info.data_write_guid,
            relative_path: Some(".\\parent.vhdx".into()),
            absolute_path: None,
        }),
        ..CreateOptions::dynamic(info.virtual_size)
    };
    memory(&options)
}

#[test]
fn differencing_disks_read_through_their_parent() {
    for (sector, parent_block, child_block) in [(512, MIB, MIB), (4096, 2 * MIB, MIB), (512, MIB, 4 * MIB)] {
        let options = CreateOptions {
            block_size: parent_block as u32,
            logical_sector_size: sector,
            ..CreateOptions::dynamic(20 * MIB)
        };
        let mut parent = memory(&options);
        let mut model = vec![0u8; parent.virtual_size() as usize];
        let mut rng = Rng(0x5EED + sector as u64);
        scribble(&mut parent, &mut model, &mut rng, 30);
        let mut child = child_of(&parent, child_block as u32);
        assert!(child.read_at(0, &mut [0u8; 512]).unwrap_err().to_string().contains("parent"));
        child.attach_parent(reopen(bytes(parent), false).unwrap()).unwrap();
        assert_eq!(read_all(&child), model);
        scribble(&mut child, &mut model, &mut rng, 40);
        assert_eq!(read_all(&child), model);
        let report = child.check().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.partial_blocks > 0 && report.bitmap_blocks > 0, "{report:?}");
    }
}

#[test]
fn a_full_block_write_makes_a_partial_block_fully_present() {
    let mut parent = memory(&CreateOptions::dynamic(4 * MIB));
    parent.write_at(0, &vec![9u8; 4 * MIB as usize]).unwrap();
    let mut child = child_of(&parent, MIB as u32);
    child.attach_parent(parent).unwrap();
    child.write_at(512, &[1u8; 512]).unwrap();
    assert_eq!(child.check().unwrap().partial_blocks, 1);
    let mut sector = [0u8; 1024];
    child.read_at(0, &mut sector).unwrap();
    assert_eq!((&sector[..512], &sector[512..]), (&[9u8; 512][..], &[1u8; 512][..]));
    child.write_at(0, &vec![2u8; MIB as usize]).unwrap();
    let report = child.check().unwrap();
    assert_eq!((report.allocated_blocks, report.partial_blocks), (1, 0));
    // Zeros written to a child block hide the parent's data.
    child.write_at(MIB, &vec![0u8; 4096]).unwrap();
    let mut b = [1u8; 4096];
    child.read_at(MIB, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
}

#[test]
fn a_wrong_or_changed_parent_is_refused() {
    let parent = memory(&CreateOptions::dynamic(4 * MIB));
    let other = memory(&CreateOptions::dynamic(4 * MIB));
    let mut child = child_of(&parent, MIB as u32);
    let e = child.attach_parent(other).unwrap_err().to_string();
    assert!(e.contains("is not its parent") && e.contains("DataWriteGuid"), "{e}");
    let mut changed = reopen(bytes(parent), true).unwrap();
    changed.write_at(0, &[1u8; 512]).unwrap();
    assert!(child.attach_parent(changed).is_err());
    // The right GUID (both made from one seed) but other sectors.
    let seeded = |sector| {
        memory(&CreateOptions {
            logical_sector_size: sector,
            ids: Ids::Seeded("x".into()),
            ..CreateOptions::dynamic(4 * MIB)
        })
    };
    let mut child = child_of(&seeded(4096), MIB as u32);
    let e = child.attach_parent(seeded(512)).unwrap_err().to_string();
    assert!(e.contains("sectors"), "{e}");
}

#[test]
fn growing_keeps_data_and_moves_the_bat_when_needed() {
    // 1.5 MiB: the last block is half outside the disk, and its tail must read as zeros
    // after growing even though it was written.
    let mut disk = memory(&CreateOptions::dynamic(3 * MIB / 2));
    let mut model = vec![0u8; disk.virtual_size() as usize];
    scribble(&mut disk, &mut model, &mut Rng(3), 10);
    disk.write_at(MIB, &vec![5u8; MIB as usize / 2]).unwrap();
    model[MIB as usize..].fill(5);
    let mut disk = reopen(bytes(disk), true).unwrap();
    // 1 MiB of BAT holds 131072 entries (512 GiB of 1 MiB blocks minus bitmap entries).
    for size in [8 * MIB, 200 * 1024 * MIB, 700 * 1024 * MIB] {
        disk.resize(size).unwrap();
        assert_eq!(disk.virtual_size(), size);
        let mut b = vec![0u8; model.len() + MIB as usize];
        disk.read_at(0, &mut b).unwrap();
        assert_eq!(&b[..model.len()], &model[..]);
        assert!(b[model.len()..].iter().all(|&x| x == 0));
        assert!(disk.check().unwrap().problems.is_empty());
    }
    disk.write_at(700 * 1024 * MIB - 512, &[3u8; 512]).unwrap();
    let disk = reopen(bytes(disk), true).unwrap();
    assert_eq!(disk.virtual_size(), 700 * 1024 * MIB);
    let mut b = [0u8; 512];
    disk.read_at(700 * 1024 * MIB - 512, &mut b).unwrap();
    assert_eq!(b, [3u8; 512]);
    let mut disk = disk;
    assert!(disk.resize(MIB).unwrap_err().to_string().contains("cannot shrink"));
    assert!(disk.resize(700 * 1024 * MIB + 100).is_err());
}

#[test]
fn growing_a_differencing_copy_reads_zeros_past_the_parent() {
    let mut parent = memory(&CreateOptions::dynamic(2 * MIB));
    parent.write_at(0, &vec![4u8; 2 * MIB as usize]).unwrap();
    let mut child = child_of(&parent, MIB as u32);
    child.attach_parent(parent).unwrap();
    child.resize(6 * MIB).unwrap();
    let data = read_all(&child);
    assert!(data[..2 * MIB as usize].iter().all(|&b| b == 4));
    assert!(data[2 * MIB as usize..].iter().all(|&b| b == 0));
    assert!(child.check().unwrap().problems.is_empty());
}

#[test]
fn seeded_disks_are_byte_identical() {
    let make = || {
        let mut disk =
            memory(&CreateOptions { ids: Ids::Seeded("build-1".into()), ..CreateOptions::dynamic(16 * MIB) });
        scribble(&mut disk, &mut vec![0u8; 16 * MIB as usize], &mut Rng(11), 20);
        bytes(disk)
    };
    assert_eq!(make(), make());
    let random = || bytes(memory(&CreateOptions::dynamic(16 * MIB)));
    assert_ne!(random(), random());
}

#[test]
fn raw_images_convert_both_ways_keeping_holes() {
    let dir = tempfile::tempdir().unwrap();
    let raw_path = dir.path().join("disk.raw");
    let mut raw = File::create(&raw_path).unwrap();
    // A sparse image: data at 3 MiB and at the very end, whose length is not a sector multiple.
    raw.set_len(40 * MIB + 100).unwrap();
    use std::io::{Seek, SeekFrom};
    raw.seek(SeekFrom::Start(3 * MIB + 512)).unwrap();
    raw.write_all(&[0xAB; 5000]).unwrap();
    raw.seek(SeekFrom::Start(40 * MIB + 50)).unwrap();
    raw.write_all(&[0xCD; 50]).unwrap();
    drop(raw);
    let raw = File::open(&raw_path).unwrap();
    let mut disk = memory(&CreateOptions::dynamic(40 * MIB + 512));
    let mut seen = 0;
    from_raw(&raw, &mut disk, 0, &mut |p| seen = p).unwrap();
    assert_eq!(seen, 40 * MIB + 100);
    assert_eq!(disk.check().unwrap().allocated_blocks, 2);
    let mut out = Vec::<u8>::new();
    to_raw(&disk, &mut out, &mut |_| {}).unwrap();
    let mut expected = std::fs::read(&raw_path).unwrap();
    expected.resize(40 * MIB as usize + 512, 0);
    assert_eq!(out, expected);
    let too_big = memory(&CreateOptions::dynamic(40 * MIB));
    let mut too_big = too_big;
    assert!(from_raw(&raw, &mut too_big, 0, &mut |_| {}).unwrap_err().to_string().contains("does not fit"));
}

// ---- hostile files ----

fn sample() -> Vec<u8> {
    let mut disk = memory(&CreateOptions { ids: Ids::Seeded("hostile".into()), ..CreateOptions::dynamic(8 * MIB) });
    disk.write_at(MIB, &[1u8; 4096]).unwrap();
    bytes(disk)
}

fn open_err(bytes: Vec<u8>) -> String {
    match reopen(bytes, false) {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    }
}

fn reseal_header(b: &mut [u8], slot: usize, edit: impl FnOnce(&mut [u8])) {
    let at = format::HEADER_OFFSETS[slot] as usize;
    edit(&mut b[at..at + format::HEADER_SIZE]);
    format::seal(&mut b[at..at + format::HEADER_SIZE], 4);
}

fn reseal_regions(b: &mut [u8], edit: impl Fn(&mut [u8])) {
    for at in format::REGION_TABLE_OFFSETS {
        let t = &mut b[at as usize..at as usize + format::REGION_TABLE_SIZE];
        edit(t);
        format::seal(t, 4);
    }
}

#[test]
fn truncated_and_foreign_files_are_refused() {
    let b = sample();
    for len in [0, 100, 65536, MIB as usize - 1] {
        assert!(open_err(b[..len].to_vec()).contains("too short"));
    }
    let mut foreign = b.clone();
    foreign[..8].copy_from_slice(b"conectix");
    assert!(open_err(foreign).contains("not a VHDX file"));
    // The metadata region cut off: the file ends inside it.
    assert!(open_err(b[..2 * MIB as usize + 4096].to_vec()).contains("not inside the file"));
}

#[test]
fn header_damage_falls_back_or_is_refused() {
    let mut b = sample();
    let current = reopen(b.clone(), false).unwrap().info().current_header - 1;
    b[format::HEADER_OFFSETS[current] as usize + 200] ^= 0xFF;
    // The other header is still valid (an older sequence).
    let disk = reopen(b.clone(), false).unwrap();
    assert_eq!(disk.info().current_header - 1, 1 - current);
    assert!(disk.check().unwrap().problems.iter().any(|p| p.message.contains("checksum")));
    b[format::HEADER_OFFSETS[1 - current] as usize] = b'X';
    let e = open_err(b);
    assert!(e.contains("no valid header") && e.contains("checksum") && e.contains("signature"), "{e}");

    let mut same_sequence = sample();
    reseal_header(&mut same_sequence, 0, |h| {
        format::put_u64(h, 8, 5);
        h[20] ^= 1;
    });
    reseal_header(&mut same_sequence, 1, |h| format::put_u64(h, 8, 5));
    assert!(open_err(same_sequence).contains("both headers have sequence number 5"));

    let mut version = sample();
    reseal_header(&mut version, 0, |h| format::put_u16(h, 66, 2));
    reseal_header(&mut version, 1, |h| format::put_u16(h, 66, 2));
    assert!(open_err(version).contains("version 2"));

    let mut log = sample();
    for slot in 0..2 {
        reseal_header(&mut log, slot, |h| format::put_u64(h, 72, 1u64 << 62));
    }
    assert!(open_err(log).contains("log of"));
}

#[test]
fn region_damage_is_refused() {
    let mut overlap = sample();
    // The BAT moved onto the metadata region.
    reseal_regions(&mut overlap, |t| format::put_u64(t, 16 + 16, 2 * MIB));
    let e = open_err(overlap);
    assert!(e.contains("overlaps"), "{e}");

    let mut unknown = sample();
    reseal_regions(&mut unknown, |t| {
        format::put_u32(t, 8, 3);
        format::put_guid(t, 16 + 64, Uuid::from_u128(42));
        format::put_u64(t, 16 + 64 + 16, 4 * MIB);
        format::put_u32(t, 16 + 64 + 24, MIB as u32);
        format::put_u32(t, 16 + 64 + 28, 1);
    });
    assert!(open_err(unknown).contains("required but unknown"));

    let mut huge = sample();
    reseal_regions(&mut huge, |t| format::put_u32(t, 8, 100_000));
    assert!(open_err(huge).contains("more than the 2047"));

    let mut both_broken = sample();
    for at in format::REGION_TABLE_OFFSETS {
        both_broken[at as usize + 100] ^= 1;
    }
    assert!(open_err(both_broken).contains("no valid region table"));

    let mut backup_broken = sample();
    backup_broken[format::REGION_TABLE_OFFSETS[1] as usize + 100] ^= 1;
    let disk = reopen(backup_broken, false).unwrap();
    assert!(disk.check().unwrap().problems.iter().any(|p| p.path.as_deref() == Some("region table 2")));
}

/// The byte offset of metadata item `item`'s value.
fn item_offset(b: &[u8], item: Uuid) -> usize {
    let table = 2 * MIB as usize;
    let count = format::u16_at(b, table + 10) as usize;
    (0..count)
        .map(|i| table + 32 + 32 * i)
        .find(|&e| format::guid_at(b, e) == item)
        .map(|e| table + format::u32_at(b, e + 16) as usize)
        .unwrap()
}

#[test]
fn metadata_damage_is_refused() {
    let mut size = sample();
    let at = item_offset(&size, guids::VIRTUAL_DISK_SIZE);
    format::put_u64(&mut size, at, 1 << 45);
    let e = open_err(size);
    assert!(e.contains("BAT region holds"), "{e}");
    let mut odd = sample();
    let at = item_offset(&odd, guids::VIRTUAL_DISK_SIZE);
    format::put_u64(&mut odd, at, 1000);
    assert!(open_err(odd).contains("virtual size 1000"));
    let mut block = sample();
    let at = item_offset(&block, guids::FILE_PARAMETERS);
    format::put_u32(&mut block, at, 12345);
    assert!(open_err(block).contains("block size 12345"));
    let mut sectors = sample();
    let at = item_offset(&sectors, guids::LOGICAL_SECTOR_SIZE);
    format::put_u32(&mut sectors, at, 520);
    assert!(open_err(sectors).contains("520"));
    let mut parent_flag = sample();
    let at = item_offset(&parent_flag, guids::FILE_PARAMETERS);
    format::put_u32(&mut parent_flag, at + 4, 2);
    assert!(open_err(parent_flag).contains("without a parent locator"));
    let mut outside = sample();
    let entry = 2 * MIB as usize + 32;
    format::put_u32(&mut outside, entry + 16, 0xFFFF_FFF0);
    assert!(open_err(outside).contains("not inside the metadata region"));
    let mut missing = sample();
    format::put_u16(&mut missing, 2 * MIB as usize + 10, 2);
    assert!(open_err(missing).contains("is missing"));
    let mut signature = sample();
    signature[2 * MIB as usize] = b'X';
    assert!(open_err(signature).contains("metadata table"));
}

#[test]
fn bat_damage_is_reported_and_reads_fail_clearly() {
    let b = sample();
    let bat = 3 * MIB as usize;
    let set = |entry: u64, value: u64| {
        let mut b = b.clone();
        format::put_u64(&mut b, bat + entry as usize * 8, value);
        reopen(b, false).unwrap()
    };
    let beyond = set(0, format::BatEntry::new(6, 1 << 40).0);
    let report = beyond.check().unwrap();
    assert!(report.problems.iter().any(|p| p.message.contains("past the end of the file")), "{report:?}");
    let e = beyond.read_at(0, &mut [0u8; 512]).unwrap_err().to_string();
    assert!(e.contains("beyond the end of the file"), "{e}");

    let header_section = set(0, format::BatEntry::new(6, 0).0);
    assert!(header_section.read_at(0, &mut [0u8; 512]).unwrap_err().to_string().contains("header section"));
    let shared = set(0, b.get(bat + 8..bat + 16).map(|e| format::u64_at(e, 0)).unwrap());
    assert!(shared.check().unwrap().problems.iter().any(|p| p.message.contains("overlap")));
    let reserved = set(2, 5);
    assert!(reserved.read_at(2 * MIB, &mut [0u8; 512]).unwrap_err().to_string().contains("reserved"));
    assert!(reserved.check().unwrap().has_errors());
    let partial = set(2, 7);
    assert!(partial.read_at(2 * MIB, &mut [0u8; 512]).unwrap_err().to_string().contains("differencing"));
    let on_metadata = set(3, format::BatEntry::new(6, 2 * MIB).0);
    assert!(on_metadata.check().unwrap().problems.iter().any(|p| p.message.contains("overlap")));
}

/// A log entry with the header's LogGuid and a right checksum, at the start of the log.
fn with_log_entry(b: &mut [u8], log_guid: Uuid, valid: bool) {
    let log = MIB as usize;
    let entry = &mut b[log..log + 4096];
    entry.fill(0);
    entry[..4].copy_from_slice(b"loge");
    format::put_u32(entry, 8, 4096);
    format::put_u64(entry, 16, 1);
    format::put_guid(entry, 32, log_guid);
    format::put_u64(entry, 48, 4 * MIB);
    format::put_u64(entry, 56, 4 * MIB);
    format::seal(entry, 4);
    if !valid {
        entry[100] ^= 1;
    }
    for slot in 0..2 {
        reseal_header(b, slot, |h| format::put_guid(h, 48, log_guid));
    }
}

#[test]
fn a_log_to_replay_is_refused_and_an_empty_one_allowed() {
    let guid = Uuid::from_u128(0x1234);
    let mut pending = sample();
    with_log_entry(&mut pending, guid, true);
    let e = open_err(pending);
    assert!(e.contains("must be replayed") && e.contains("1 valid entry"), "{e}");
    let mut stale = sample();
    with_log_entry(&mut stale, guid, false);
    let disk = reopen(stale, false).unwrap();
    assert!(disk.check().unwrap().problems.iter().any(|p| p.message.contains("LogGuid")));
}

#[test]
fn parent_chains_that_loop_or_are_missing_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.vhdx");
    Vhdx::create_file(&base, &CreateOptions::dynamic(4 * MIB)).unwrap();
    let child = dir.path().join("child.vhdx");
    let parent = Vhdx::open_file(&base, &OpenOptions::default()).unwrap();
    let mut options = CreateOptions::differencing(&parent, &base, &child).unwrap();
    Vhdx::create_file(&child, &options).unwrap();
    let chain = Vhdx::open_file(&child, &OpenOptions { parents: true, ..OpenOptions::default() }).unwrap();
    assert!(chain.parent().is_some());

    // A disk naming itself as parent: its own DataWriteGuid cannot match a linkage written
    // before it existed, and a seeded one that matches still ends at the depth limit.
    let selfish = dir.path().join("self.vhdx");
    options.parent = Some(ParentLink {
        linkage: Ids::Seeded("loop".into()).guid("data-write", 0),
        relative_path: Some(".\\self.vhdx".into()),
        absolute_path: None,
    });
    options.ids = Ids::Seeded("loop".into());
    Vhdx::create_file(&selfish, &options).unwrap();
    let e =
        Vhdx::open_file(&selfish, &OpenOptions { parents: true, ..OpenOptions::default() }).err().unwrap().to_string();
    assert!(e.contains("deeper than"), "{e}");

    std::fs::remove_file(&base).unwrap();
    let e =
        Vhdx::open_file(&child, &OpenOptions { parents: true, ..OpenOptions::default() }).err().unwrap().to_string();
    assert!(e.contains("parent is not found") && e.contains("relative_path"), "{e}");
}
