//! Scratch disks for Windows containers.
//!
//! containerd's CimFS snapshotter keeps one formatted base disk and one differencing disk over
//! it in its root, and copies the small differencing disk for each container's scratch
//! (containerd `plugins/snapshots/windows/cimfs.go`). [`ensure_templates`] makes that pair here:
//! `blank-base.vhdx`, a 10 GiB dynamic disk with 1 MiB blocks holding a GPT with a Microsoft
//! reserved partition and an NTFS basic data partition (the layout hcsshim expects of scratch
//! disks Windows formats), and `blank.vhdx` over it. [`copy`] makes a container's scratch from
//! a template and grows it to a requested size.
//!
//! On Linux the NTFS comes from ntfs-3g's `mkntfs` ([`Mkntfs`]); nothing here has been
//! mounted by Windows.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use uuid::{Uuid, uuid};
use winlayer_core::{Error, Result};

use crate::disk::{CreateOptions, OpenOptions, Vhdx};
use crate::format::{Crc, MIB, put_guid, put_u32, put_u64};
use crate::ids::Ids;
use crate::raw;
use crate::storage::Storage;

/// The base template's file name.
pub const BASE_NAME: &str = "blank-base.vhdx";
/// The differencing template's file name.
pub const DIFF_NAME: &str = "blank.vhdx";
/// The base template's virtual size: 10 GiB, as containerd creates it.
pub const TEMPLATE_SIZE: u64 = 10 * 1024 * MIB;
/// The templates' block size: 1 MiB, as containerd creates them.
pub const TEMPLATE_BLOCK_SIZE: u32 = MIB as u32;
const SECTOR: u32 = 512;

/// Puts a file system on a partition image.
pub trait Formatter {
    /// Formats `image` (a file of the partition's length) as NTFS for a partition that starts
    /// `partition_offset` bytes into a disk of `sector_size`-byte sectors.
    fn format(&self, image: &Path, partition_offset: u64, sector_size: u32) -> Result<()>;
}

/// Creates the base template disk (the formatted one); the differencing child is always
/// written natively. Any [`Formatter`] is one (a native disk, partitioned, its data partition
/// formatted); a Windows build can instead let Windows create and format the whole disk.
pub trait BaseMaker {
    /// Creates the base template at `path` (which may exist as an empty file).
    fn create_base(&self, path: &Path, ids: &Ids) -> Result<()>;
}

impl<F: Formatter> BaseMaker for F {
    fn create_base(&self, path: &Path, ids: &Ids) -> Result<()> {
        create_base(path, self, ids)
    }
}

/// Formats with ntfs-3g's `mkntfs`: quick format, 4 KiB clusters (Windows' default for this
/// size), the partition's start sector in the boot sector, and a zero creation time.
#[derive(Clone, Debug)]
pub struct Mkntfs {
    /// The program to run.
    pub program: PathBuf,
}

impl Default for Mkntfs {
    /// `mkntfs` from `PATH`, or from `/usr/sbin` and `/sbin` where Debian installs it.
    fn default() -> Self {
        let program = ["/usr/sbin/mkntfs", "/sbin/mkntfs"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("mkntfs"));
        Mkntfs { program }
    }
}

impl Formatter for Mkntfs {
    fn format(&self, image: &Path, partition_offset: u64, sector_size: u32) -> Result<()> {
        let output = Command::new(&self.program)
            .args(["--quiet", "--fast", "--force", "--zero-time", "--cluster-size", "4096"])
            .args(["--sector-size", &sector_size.to_string()])
            .args(["--partition-start", &(partition_offset / sector_size as u64).to_string()])
            .args(["--heads", "255", "--sectors-per-track", "63"])
            .arg(image)
            .output()
            .map_err(|e| Error::io(format!("running {} (Debian package ntfs-3g)", self.program.display()), e))?;
        if !output.status.success() {
            return Err(Error::Invalid(format!(
                "{} failed ({}): {}",
                self.program.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// A GPT partition.
struct Partition {
    type_guid: Uuid,
    unique_guid: Uuid,
    first_lba: u64,
    last_lba: u64,
    name: &'static str,
}

const MICROSOFT_RESERVED: Uuid = uuid!("E3C9E316-0B5C-4DB8-817D-F92DF00215AE");
const BASIC_DATA: Uuid = uuid!("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
const MSR_SIZE: u64 = 16 * MIB;

/// Byte offset and length of the data partition of a scratch disk of `size` bytes: after a
/// 16 MiB reserved partition at 1 MiB, up to the last whole MiB before the backup GPT.
pub fn data_partition(size: u64) -> (u64, u64) {
    let start = MIB + MSR_SIZE;
    let end = (size - 33 * SECTOR as u64) / MIB * MIB;
    (start, end - start)
}

/// Writes a protective MBR, the GPT and its backup for `partitions` (512-byte sectors).
fn write_gpt(disk: &mut Vhdx, partitions: &[Partition], disk_guid: Uuid) -> Result<()> {
    let sector = SECTOR as u64;
    let last = disk.virtual_size() / sector - 1;
    let mut mbr = vec![0u8; SECTOR as usize];
    mbr[446..454].copy_from_slice(&[0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF]);
    put_u32(&mut mbr, 454, 1);
    put_u32(&mut mbr, 458, last.min(u32::MAX as u64) as u32);
    mbr[510..].copy_from_slice(&[0x55, 0xAA]);
    disk.write_at(0, &mbr)?;

    let mut entries = vec![0u8; 128 * 128];
    for (i, p) in partitions.iter().enumerate() {
        let e = &mut entries[128 * i..128 * (i + 1)];
        put_guid(e, 0, p.type_guid);
        put_guid(e, 16, p.unique_guid);
        put_u64(e, 32, p.first_lba);
        put_u64(e, 40, p.last_lba);
        for (j, unit) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let mut crc = Crc::crc32();
    crc.update(&entries);
    let entries_crc = crc.value();
    let entry_sectors = entries.len() as u64 / sector;
    let header = |this: u64, other: u64, entries_at: u64| {
        let mut h = vec![0u8; SECTOR as usize];
        h[..8].copy_from_slice(b"EFI PART");
        put_u32(&mut h, 8, 0x0001_0000);
        put_u32(&mut h, 12, 92);
        put_u64(&mut h, 24, this);
        put_u64(&mut h, 32, other);
        put_u64(&mut h, 40, 2 + entry_sectors);
        put_u64(&mut h, 48, last - 1 - entry_sectors);
        put_guid(&mut h, 56, disk_guid);
        put_u64(&mut h, 72, entries_at);
        put_u32(&mut h, 80, 128);
        put_u32(&mut h, 84, 128);
        put_u32(&mut h, 88, entries_crc);
        let mut crc = Crc::crc32();
        crc.update(&h[..92]);
        put_u32(&mut h, 16, crc.value());
        h
    };
    disk.write_at(sector, &header(1, last, 2))?;
    disk.write_at(2 * sector, &entries)?;
    disk.write_at((last - entry_sectors) * sector, &entries)?;
    disk.write_at(last * sector, &header(last, 1, last - entry_sectors))
}

/// Creates the base template at `path`: the GPT, an empty reserved partition and a data
/// partition formatted by `formatter` (through a sparse partition image beside `path`).
pub fn create_base(path: &Path, formatter: &dyn Formatter, ids: &Ids) -> Result<()> {
    let options =
        CreateOptions { ids: ids.clone(), block_size: TEMPLATE_BLOCK_SIZE, ..CreateOptions::dynamic(TEMPLATE_SIZE) };
    let mut disk = Vhdx::create_file(path, &options)?;
    let (data_start, data_length) = data_partition(TEMPLATE_SIZE);
    let sector = SECTOR as u64;
    let partitions = [
        Partition {
            type_guid: MICROSOFT_RESERVED,
            unique_guid: ids.guid("msr-partition", 0),
            first_lba: MIB / sector,
            last_lba: (MIB + MSR_SIZE) / sector - 1,
            name: "Microsoft reserved partition",
        },
        Partition {
            type_guid: BASIC_DATA,
            unique_guid: ids.guid("data-partition", 0),
            first_lba: data_start / sector,
            last_lba: (data_start + data_length) / sector - 1,
            name: "Basic data partition",
        },
    ];
    write_gpt(&mut disk, &partitions, ids.guid("gpt-disk", 0))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let image = winlayer_core::temp::file_in(dir)
        .map_err(|e| Error::io(format!("creating a partition image in {}", dir.display()), e))?;
    image.as_file().set_len(data_length).map_err(|e| Error::io("sizing the partition image", e))?;
    formatter.format(image.path(), data_start, SECTOR)?;
    raw::from_raw(image.as_file(), &mut disk, data_start, &mut |_| {})
}

/// Creates at `write_to` the differencing disk that will live at `child`, over the disk at
/// `parent` (the locator is computed for `child`, so the file can be renamed there).
fn create_diff(parent: &Path, child: &Path, write_to: &Path, ids: &Ids) -> Result<()> {
    let base = Vhdx::open_file(parent, &OpenOptions::default())?;
    let options = CreateOptions {
        ids: ids.clone(),
        block_size: TEMPLATE_BLOCK_SIZE,
        ..CreateOptions::differencing(&base, parent, child)?
    };
    Vhdx::create_file(write_to, &options)?.flush()
}

/// The template pair in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Templates {
    /// `blank-base.vhdx`.
    pub base: PathBuf,
    /// `blank.vhdx`, the one to copy.
    pub diff: PathBuf,
    /// Why they were (re)created by this call (`None`: kept as they were).
    pub created: Option<String>,
}

/// Why the existing pair in `dir` cannot be used, or `None` when it can.
fn pair_problem(base: &Path, diff: &Path) -> Option<String> {
    if !base.is_file() || !diff.is_file() {
        return Some("missing".into());
    }
    let check = || -> Result<()> {
        let disk = Vhdx::open_file(diff, &OpenOptions { parents: true, ..OpenOptions::default() })?;
        let parent =
            disk.parent().ok_or_else(|| Error::Invalid(format!("{} is not a differencing disk", diff.display())))?;
        let same = |a: &Path, b: &Path| fs::canonicalize(a).ok() == fs::canonicalize(b).ok();
        if !same(Path::new(parent.name()), base) {
            return Err(Error::Invalid(format!(
                "{} has parent {}, not {}",
                diff.display(),
                parent.name(),
                base.display()
            )));
        }
        for d in [&disk, parent] {
            let report = d.check()?;
            if let Some(p) = report.problems.iter().find(|p| p.severity == winlayer_core::Severity::Error) {
                return Err(Error::Invalid(format!("{}: {p}", d.name())));
            }
        }
        Ok(())
    };
    check().err().map(|e| e.to_string())
}

/// Makes sure `dir` holds a usable template pair, recreating both when either is missing or
/// broken (or the differencing disk no longer matches the base). Each file is written under
/// a temporary name and renamed into place.
pub fn ensure_templates(dir: &Path, maker: &dyn BaseMaker, ids: &Ids) -> Result<Templates> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let (base, diff) = (dir.join(BASE_NAME), dir.join(DIFF_NAME));
    let Some(problem) = pair_problem(&base, &diff) else {
        return Ok(Templates { base, diff, created: None });
    };
    for path in [&diff, &base] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", path.display()), e));
            }
            _ => {}
        }
    }
    let result = (|| {
        write_atomically(&base, |temp| maker.create_base(temp, &ids.for_disk(BASE_NAME)))?;
        write_atomically(&diff, |temp| create_diff(&base, &diff, temp, &ids.for_disk(DIFF_NAME)))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&diff);
        let _ = fs::remove_file(&base);
    }
    result.map(|()| Templates { base, diff, created: Some(problem) })
}

/// Runs `make` on a temporary path beside `dest` and renames the result into place.
fn write_atomically(dest: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temp = winlayer_core::temp::file_in(dir)
        .map_err(|e| Error::io(format!("creating a temporary file in {}", dir.display()), e))?;
    make(temp.path())?;
    temp.as_file().sync_all().map_err(|e| Error::io(format!("syncing {}", dest.display()), e))?;
    temp.persist(dest).map_err(|e| Error::io(format!("renaming into place {}", dest.display()), e.error))?;
    Ok(())
}

/// Copies the template at `template` to `dest` (whole or not at all) and, when `size` is
/// given, grows the copy to it, rounded up to whole sectors. A size below the template's is
/// refused.
pub fn copy(template: &Path, dest: &Path, size: Option<u64>) -> Result<()> {
    write_atomically(dest, |temp| {
        copy_sparse(template, temp)?;
        match size {
            Some(size) => grow(temp, size),
            None => Ok(()),
        }
    })
}

/// Copies the file `from` over the empty file `to`, leaving holes where `from` has them (the
/// templates are mostly holes).
fn copy_sparse(from: &Path, to: &Path) -> Result<()> {
    let io = |what: &str, path: &Path, e| Error::io(format!("{what} {}", path.display()), e);
    let source = File::open(from).map_err(|e| io("opening", from, e))?;
    let len = source.metadata().map_err(|e| io("reading", from, e))?.len();
    let mut dest = File::options().write(true).open(to).map_err(|e| io("opening", to, e))?;
    dest.set_len(len).map_err(|e| io("sizing", to, e))?;
    let mut buf = vec![0u8; MIB as usize];
    for (start, end) in raw::data_extents(&source, len)? {
        let mut at = start;
        while at < end {
            let n = (end - at).min(MIB) as usize;
            source.read_at(&mut buf[..n], at).map_err(|e| io("reading", from, e))?;
            if buf[..n].iter().any(|&b| b != 0) {
                dest.write_at(&buf[..n], at).map_err(|e| io("writing", to, e))?;
            }
            at += n as u64;
        }
    }
    Ok(())
}

/// Grows the disk at `path` to `size` bytes rounded up to whole sectors; the same size is
/// left alone and a smaller one refused.
pub fn grow(path: &Path, size: u64) -> Result<()> {
    let mut disk = Vhdx::open_file(path, &OpenOptions { writable: true, ..OpenOptions::default() })?;
    let sector = disk.info().logical_sector_size as u64;
    disk.resize(size.div_ceil(sector) * sector)?;
    disk.flush()
}
