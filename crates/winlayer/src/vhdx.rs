//! `winlayer vhdx …`: thin commands over the VHDX crate.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};
use vhdx::scratch::{self, Mkntfs};
use vhdx::{CreateOptions, Ids, Info, OpenOptions, Vhdx};
use winlayer_core::{Error, Problem, Result, Severity};

use crate::io::{bar, check_output, spool_stdin, write_file};

#[derive(Subcommand)]
pub enum VhdxCommand {
    /// Create an empty dynamic disk, or a differencing disk over a parent.
    ///
    /// A differencing disk takes its size and sectors from the parent and records the
    /// parent's DataWriteGuid and its path relative to the new disk and absolute, as Windows
    /// does. GUIDs are random unless --seed is given.
    Create {
        /// The disk to write, or '-'.
        out: PathBuf,
        /// Virtual size (bytes, or with K/M/G/T[iB]: binary units) [default: 10GiB, or the
        /// parent's size].
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        /// Payload block size: a power of two from 1MiB to 256MiB.
        #[arg(long, default_value = "1MiB", value_parser = parse_size)]
        block_size: u64,
        /// Logical sector size: 512 or 4096 [default: 512, or the parent's].
        #[arg(long)]
        sector: Option<u32>,
        /// Physical sector size: 512 or 4096 [default: 4096, or the parent's].
        #[arg(long)]
        physical_sector: Option<u32>,
        /// Make a differencing disk over this parent.
        #[arg(long)]
        parent: Option<PathBuf>,
        #[command(flatten)]
        seed: SeedArg,
    },
    /// Show what a disk says about itself: size, blocks, sectors, GUIDs, parent locator.
    Info {
        /// The disk, or '-' (read into a temporary file first).
        file: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every structure and BAT entry of a disk, and its parent chain.
    ///
    /// The parent of a differencing disk is found through its locator (relative path, then
    /// absolute path) and must carry the DataWriteGuid the child recorded. A disk whose log
    /// holds entries to replay is refused. Exit status: 0 without errors (warnings allowed),
    /// 1 with errors, 2 when the file cannot be read or is not a VHDX at all.
    Check {
        /// The disk, or '-' (read into a temporary file first; its parents are not checked).
        file: PathBuf,
        /// A JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Grow a disk's virtual size (shrinking is refused).
    Resize {
        /// The disk, changed in place.
        file: PathBuf,
        /// The new virtual size (bytes, or with K/M/G/T[iB]).
        #[arg(value_parser = parse_size)]
        size: u64,
        #[command(flatten)]
        seed: SeedArg,
    },
    /// Convert a raw disk image into a dynamic disk; zero blocks and holes stay unallocated.
    FromRaw {
        /// The raw image, or '-' (read into a temporary file first).
        raw: PathBuf,
        /// The disk to write, or '-'.
        out: PathBuf,
        /// Virtual size [default: the image's length rounded up to a sector].
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        /// Payload block size.
        #[arg(long, default_value = "1MiB", value_parser = parse_size)]
        block_size: u64,
        /// Logical sector size: 512 or 4096.
        #[arg(long, default_value_t = 512)]
        sector: u32,
        #[command(flatten)]
        seed: SeedArg,
    },
    /// Write a disk's contents (through its parent chain) as a sparse raw image.
    ToRaw {
        /// The disk (a differencing disk with its parents), or '-' for a disk without parents.
        input: PathBuf,
        /// The raw image to write, or '-'.
        out: PathBuf,
    },
    /// Make sure DIR holds the scratch template pair, (re)creating both when either is
    /// missing or broken.
    ///
    /// blank-base.vhdx: 10 GiB, 1 MiB blocks, a GPT with a 16 MiB Microsoft reserved
    /// partition and an NTFS basic data partition formatted by ntfs-3g's mkntfs (never yet
    /// mounted by Windows). blank.vhdx: a differencing disk over it, the file to copy per
    /// container.
    ScratchTemplate {
        /// The directory (a snapshotter's root).
        dir: PathBuf,
        /// The mkntfs program [default: /usr/sbin/mkntfs, /sbin/mkntfs or mkntfs on PATH].
        #[arg(long)]
        mkntfs: Option<PathBuf>,
        #[command(flatten)]
        seed: SeedArg,
    },
    /// Copy a template to a container's scratch disk, growing the copy to --size.
    Copy {
        /// The template (blank.vhdx).
        template: PathBuf,
        /// The scratch disk to write (sandbox.vhdx).
        dest: PathBuf,
        /// Grow the copy to this virtual size.
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
    },
}

#[derive(clap::Args)]
pub struct SeedArg {
    /// Derive every new GUID from this text instead of at random, for byte-identical output.
    /// Children detect a changed parent by its DataWriteGuid, so do not reuse a seed for
    /// different changes to the same disk.
    #[arg(long)]
    seed: Option<String>,
}

impl SeedArg {
    fn ids(&self) -> Ids {
        self.seed.clone().map_or(Ids::Random, Ids::Seeded)
    }
}

/// Parses `4096`, `10G`, `10GiB`, `1MiB` (binary units, any case).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let number: u64 = t[..digits].parse().map_err(|_| format!("{text:?} is not a size"))?;
    let shift = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        unit => return Err(format!("unknown unit {unit:?} in {text:?} (use K, M, G or T)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// Runs a `vhdx` subcommand.
pub fn run(command: VhdxCommand) -> Result<ExitCode> {
    match command {
        VhdxCommand::Create { out, size, block_size, sector, physical_sector, parent, seed } => {
            create(&out, size, block_size, sector, physical_sector, parent.as_deref(), seed.ids())
        }
        VhdxCommand::Info { file, json } => info(&file, json),
        VhdxCommand::Check { file, json } => check(&file, json),
        VhdxCommand::Resize { file, size, seed } => {
            let options = OpenOptions { writable: true, ids: seed.ids(), parents: false };
            let mut disk = Vhdx::open_file(&file, &options)?;
            disk.resize(size)?;
            disk.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::FromRaw { raw, out, size, block_size, sector, seed } => {
            from_raw(&raw, &out, size, block_size, sector, seed.ids())
        }
        VhdxCommand::ToRaw { input, out } => to_raw(&input, &out),
        VhdxCommand::ScratchTemplate { dir, mkntfs, seed } => {
            let formatter = mkntfs.map(|program| Mkntfs { program }).unwrap_or_default();
            let t = scratch::ensure_templates(&dir, &formatter, &seed.ids())?;
            let verb = match &t.created {
                Some(why) => format!("created ({why})"),
                None => "kept".into(),
            };
            writeln!(io::stdout(), "{verb} {}\n{verb} {}", t.base.display(), t.diff.display())
                .map_err(|e| Error::io("writing the report", e))?;
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Copy { template, dest, size } => {
            scratch::copy(&template, &dest, size)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn block_size(bytes: u64) -> Result<u32> {
    u32::try_from(bytes).map_err(|_| Error::Invalid(format!("block size {bytes} is larger than 256 MiB")))
}

fn create(
    out: &Path,
    size: Option<u64>,
    block: u64,
    sector: Option<u32>,
    physical_sector: Option<u32>,
    parent: Option<&Path>,
    ids: Ids,
) -> Result<ExitCode> {
    check_output(out)?;
    let mut options = match parent {
        Some(parent) => CreateOptions::differencing(&Vhdx::open_file(parent, &OpenOptions::default())?, parent, out)?,
        None => CreateOptions::dynamic(10 << 30),
    };
    options.block_size = block_size(block)?;
    options.ids = ids;
    options.virtual_size = size.unwrap_or(options.virtual_size);
    options.logical_sector_size = sector.unwrap_or(options.logical_sector_size);
    options.physical_sector_size = physical_sector.unwrap_or(options.physical_sector_size);
    write_file(out, |temp| Vhdx::create_file(temp, &options)?.flush())?;
    Ok(ExitCode::SUCCESS)
}

fn info_json(path: &Path, info: &Info) -> Value {
    let guid = |g: vhdx::Uuid| g.braced().to_string();
    json!({
        "file": path.display().to_string(),
        "type": if info.parent.is_some() { "differencing" } else if info.leave_blocks_allocated { "fixed" } else { "dynamic" },
        "virtual_size": info.virtual_size,
        "block_size": info.block_size,
        "logical_sector_size": info.logical_sector_size,
        "physical_sector_size": info.physical_sector_size,
        "file_size": info.file_size,
        "creator": info.creator,
        "disk_id": guid(info.disk_id),
        "data_write_guid": guid(info.data_write_guid),
        "file_write_guid": guid(info.file_write_guid),
        "log_guid": guid(info.log_guid),
        "current_header": info.current_header,
        "sequence": info.sequence,
        "parent": info.parent.as_ref().map(|p| json!({
            "linkage": guid(p.linkage),
            "linkage2": p.linkage2.map(guid),
            "locator": p.entries.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })),
    })
}

/// The disk at `path` as a file, and its name in messages; '-' is standard input, spooled.
fn input(path: &Path) -> Result<(File, String)> {
    if path.as_os_str() == "-" {
        return Ok((spool_stdin()?, "standard input".into()));
    }
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    Ok((file, path.display().to_string()))
}

/// Opens a disk without its parents.
fn open(path: &Path) -> Result<Vhdx> {
    let (file, name) = input(path)?;
    Vhdx::open(Box::new(file), name, &OpenOptions::default())
}

/// Opens a disk with its parent chain; a differencing disk from standard input has no
/// location to find its parent from.
fn open_with_parents(path: &Path) -> Result<Vhdx> {
    if path.as_os_str() != "-" {
        return Vhdx::open_file(path, &OpenOptions { parents: true, ..OpenOptions::default() });
    }
    let disk = open(path)?;
    if disk.info().parent.is_some() {
        return Err(Error::Invalid(
            "standard input: a differencing disk read from standard input cannot find its parent; give its path".into(),
        ));
    }
    Ok(disk)
}

fn info(path: &Path, as_json: bool) -> Result<ExitCode> {
    let info = open(path)?.info();
    let report = info_json(path, &info);
    let mut out = io::stdout().lock();
    let written = if as_json {
        writeln!(out, "{report:#}")
    } else {
        // The JSON's fields in reading order, values without quotes.
        let order = [
            "file",
            "type",
            "virtual_size",
            "block_size",
            "logical_sector_size",
            "physical_sector_size",
            "file_size",
            "creator",
            "disk_id",
            "data_write_guid",
            "file_write_guid",
            "log_guid",
            "current_header",
            "sequence",
        ];
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        order.iter().try_for_each(|key| writeln!(out, "{key:<22} {}", text(&report[key]))).and_then(|()| {
            let Some(parent) = &info.parent else { return Ok(()) };
            writeln!(out, "{:<22} {}", "parent_linkage", parent.linkage.braced())?;
            parent
                .entries
                .iter()
                .filter(|(k, _)| k != "parent_linkage")
                .try_for_each(|(k, v)| writeln!(out, "{k:<22} {v}"))
        })
    };
    written.map_err(|e| Error::io("writing the report", e))?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `file` starts as a VHDX file does: long enough for the header section, with the
/// file type signature.
fn looks_like_vhdx(file: &File) -> Result<bool> {
    let mut signature = [0u8; 8];
    let len = file.metadata().map_err(|e| Error::io("reading the disk's length", e))?.len();
    Ok(len >= vhdx::format::HEADER_SECTION
        && vhdx::Storage::read_at(file, &mut signature, 0).is_ok()
        && &signature == vhdx::format::FILE_SIGNATURE)
}

fn check(path: &Path, as_json: bool) -> Result<ExitCode> {
    let mut problems = Vec::new();
    let mut chain = Vec::new();
    let mut counts = json!(null);
    let (file, name) = input(path)?;
    let readable = looks_like_vhdx(&file)?;
    match Vhdx::open(Box::new(file), name, &OpenOptions::default()) {
        Err(e @ Error::Io { .. }) => return Err(e),
        Err(e) => problems.push(Problem::error(None, e.to_string())),
        Ok(disk) => {
            let report = disk.check()?;
            counts = json!({ "allocated_blocks": report.allocated_blocks, "partial_blocks": report.partial_blocks,
                             "bitmap_blocks": report.bitmap_blocks });
            problems.extend(report.problems);
            if disk.info().parent.is_some() && path.as_os_str() == "-" {
                problems.push(Problem::warning(
                    "parent chain".to_string(),
                    "not checked: a disk read from standard input has no location to find its parent from",
                ));
            } else if disk.info().parent.is_some() {
                match Vhdx::open_file(path, &OpenOptions { parents: true, ..OpenOptions::default() }) {
                    Err(e) => problems.push(Problem::error("parent chain".to_string(), e.to_string())),
                    Ok(disk) => {
                        let mut parent = disk.parent();
                        while let Some(p) = parent {
                            chain.push(p.name().to_string());
                            let report = p.check()?;
                            problems.extend(report.problems.into_iter().map(|mut problem| {
                                problem.path = Some(format!("{}: {}", p.name(), problem.path.unwrap_or_default()));
                                problem
                            }));
                            parent = p.parent();
                        }
                    }
                }
            }
        }
    }
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = problems.len() - errors;
    let mut out = io::stdout().lock();
    let written = if as_json {
        let report = json!({ "file": path.display().to_string(), "ok": errors == 0, "errors": errors,
                             "warnings": warnings, "problems": problems, "parents": chain, "blocks": counts });
        writeln!(out, "{report:#}")
    } else {
        problems.iter().try_for_each(|p| writeln!(out, "{p}")).and_then(|_| {
            let parents = if chain.is_empty() { String::new() } else { format!(", parents: {}", chain.join(" -> ")) };
            writeln!(out, "{}: {errors} error(s), {warnings} warning(s){parents}", path.display())
        })
    };
    written.map_err(|e| Error::io("writing the report", e))?;
    Ok(if !readable {
        ExitCode::from(2)
    } else if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn from_raw(raw: &Path, out: &Path, size: Option<u64>, block: u64, sector: u32, ids: Ids) -> Result<ExitCode> {
    check_output(out)?;
    let (image, name) = input(raw)?;
    let len = image.metadata().map_err(|e| Error::io(format!("reading {name}"), e))?.len();
    let options = CreateOptions {
        virtual_size: size.unwrap_or(len.div_ceil(sector as u64) * sector as u64),
        block_size: block_size(block)?,
        logical_sector_size: sector,
        ids,
        ..CreateOptions::dynamic(0)
    };
    let progress = bar(Some(len), "converting");
    write_file(out, |temp| {
        let mut disk = Vhdx::create_file(temp, &options)?;
        vhdx::raw::from_raw(&image, &mut disk, 0, &mut |done| progress.set_position(done))
    })?;
    progress.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

fn to_raw(input: &Path, out: &Path) -> Result<ExitCode> {
    check_output(out)?;
    let disk = open_with_parents(input)?;
    let progress = bar(Some(disk.virtual_size()), "converting");
    write_file(out, |temp| {
        let mut file =
            File::options().write(true).open(temp).map_err(|e| Error::io(format!("opening {}", temp.display()), e))?;
        vhdx::raw::to_raw(&disk, &mut file, &mut |done| progress.set_position(done))
    })?;
    progress.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2tb"), Ok(2 << 40));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("10X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }
}
