//! `winlayer cim …`: thin commands over the cimfs crate.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cimfs::inspect::Stat;
use cimfs::{Cim, CimSource, CimWriter};
use clap::{Subcommand, ValueEnum};
use winlayer_core::dir::DirOptions;
use winlayer_core::{Collector, Error, LayerSource, Result};

use crate::io::check_output;
use crate::io::print;
use crate::tar::{CompressionArgs, read_layer, source_date_epoch, write_sorted};

#[derive(Subcommand)]
pub enum CimCommand {
    /// Write a classic CIM (format 2.0) from a layer tar or a directory.
    ///
    /// The image is OUT.cim plus region_<guid>_<n> and objectid_<guid>_<n> files beside it;
    /// the GUID derives from the content, so the same input gives the same bytes. With
    /// --parent, the image is a fork: it lists the parent's region sets and stores only what
    /// the layer adds or changes; whiteouts in a tar delete paths from the parent's view, hard
    /// links may name files of the parent. A directory source gets the same default Windows
    /// metadata as `tar from-dir` (and honours SOURCE_DATE_EPOCH). Attribute bits a CIM cannot
    /// keep (anything but read-only, hidden, system, archive, sparse) are dropped with a
    /// warning. OUT.cim is written last, so a failed run leaves no image behind.
    Create {
        /// A Windows layer tar (plain, gzip or zstd) or a directory.
        #[arg(long, value_name = "SOURCE")]
        from: PathBuf,
        /// Fork from this CIM (in the same directory as OUT.cim).
        #[arg(long, value_name = "PARENT.cim")]
        parent: Option<PathBuf>,
        /// Directory source only: make a base layer (no Hives/).
        #[arg(long)]
        base: bool,
        /// Directory source only: owner of every object, a SID in SDDL form.
        #[arg(long, default_value = "BA", value_name = "SDDL")]
        owner: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Do not sync the files before the .cim is renamed into place: faster; a crash of
        /// winlayer still leaves no image, but a power loss may leave a broken one.
        #[arg(long)]
        no_sync: bool,
        /// Which writer makes the image: winlayer's own (`native`), Windows' cimfs.dll
        /// (`windows`, on Windows only), or `auto`: cimfs.dll when this Windows has a CIM
        /// writer, winlayer's own otherwise.
        #[arg(long, value_enum, default_value_t = Writer::Auto)]
        writer: Writer,
        /// The image to write.
        #[arg(value_name = "OUT.cim")]
        out: PathBuf,
    },
    /// List a directory of the merged view (the root by default).
    ///
    /// Columns: kind, attribute letters (see `tar ls --help`), size, last-write time, name
    /// (and a link's target). Paths use '/' or '\' and are matched case-insensitively.
    Ls {
        /// The image.
        cim: PathBuf,
        /// A directory inside it.
        path: Option<String>,
        /// Recurse into subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// One JSON array of objects (the fields of `stat --json`).
        #[arg(long)]
        json: bool,
    },
    /// Show everything about one path: FileID, attributes, times, security descriptor (SDDL),
    /// EAs, reparse data, alternate streams and where its data lies.
    Stat {
        /// The image.
        cim: PathBuf,
        /// The path.
        path: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a file's data (or PATH:STREAM, an alternate data stream) to standard output.
    Cat {
        /// The image.
        cim: PathBuf,
        /// The file, optionally with `:stream`.
        path: String,
    },
    /// Show the image's version, region sets, region files and what its tree holds.
    Info {
        /// The image.
        cim: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the merged view as plain files into DIR (created; must be empty).
    ///
    /// Symlinks and junctions become symlinks (targets on the container's drive, C:\…, made
    /// relative inside DIR). Nothing is written outside DIR: no link is followed and names
    /// that could climb out are refused. Alternate streams and Windows metadata are kept only
    /// with --xattrs (as user.windows.* extended attributes; streams up to 64 KiB).
    Extract {
        /// The image.
        cim: PathBuf,
        /// Where to extract.
        dir: PathBuf,
        /// Keep Windows metadata and streams as user.windows.* extended attributes.
        #[arg(long)]
        xattrs: bool,
    },
    /// Write the merged view as a canonical Windows layer tar (all metadata, hard links and
    /// streams; `tar -> cim -> tar` gives the canonical form of the input).
    Export {
        /// The image.
        cim: PathBuf,
        /// Where to write the tar, or '-'.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        compression: CompressionArgs,
    },
    /// Mount the merged view read-only with FUSE (Linux; as root, or with fusermount3).
    ///
    /// Hard links are one inode; symlinks and junctions are symlinks; Windows metadata is in
    /// user.windows.* extended attributes (getfattr -d -m - FILE). Names are looked up
    /// case-insensitively. Returns once the mount is up; `winlayer cim umount` ends it.
    Mount {
        /// The image.
        cim: PathBuf,
        /// An existing directory.
        mountpoint: PathBuf,
        /// Serve in the foreground until unmounted.
        #[arg(long)]
        foreground: bool,
        /// The background server `cim mount` starts: once mounted it lets go of its standard
        /// error, the caller's only descriptor it had.
        #[arg(long, hide = true, conflicts_with = "foreground")]
        detached: bool,
    },
    /// Unmount a `cim mount`.
    Umount {
        /// The mountpoint.
        mountpoint: PathBuf,
    },
}

/// The CIM writers `cim create` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Writer {
    /// cimfs.dll when available, winlayer's own writer otherwise.
    Auto,
    /// winlayer's own writer (classic CIM, format 2.0), on any OS.
    Native,
    /// Windows' cimfs.dll.
    Windows,
}

/// cimfs.dll, loaded and able to write, or why not.
fn windows_writer() -> Result<win32::cimfs::CimFs> {
    let fs = win32::cimfs::CimFs::load(&win32::Source::System).map_err(|e| Error::Invalid(e.to_string()))?;
    fs.require_writer().map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(fs)
}

/// Runs a `cim` subcommand.
pub fn run(command: CimCommand) -> Result<ExitCode> {
    match command {
        CimCommand::Create { from, parent, base, owner, json, no_sync, writer, out } => {
            not_stdio(&out)?;
            parent.as_deref().map_or(Ok(()), not_stdio)?;
            let windows = match writer {
                Writer::Native => None,
                Writer::Windows => Some(windows_writer()?),
                Writer::Auto => cfg!(windows).then(windows_writer).and_then(Result::ok),
            };
            match windows {
                Some(fs) => create_with_windows(&fs, &from, parent.as_deref(), base, &owner, &out),
                None => {
                    let mut writer = CimWriter::create(&out, parent.as_deref())?;
                    writer.set_durable(!no_sync);
                    create(writer, &from, base, &owner, json)
                }
            }
        }
        CimCommand::Ls { cim, path, recursive, json } => {
            ls(&open(&cim)?, path.as_deref().unwrap_or(""), recursive, json)
        }
        CimCommand::Stat { cim, path, json } => {
            let cim = open(&cim)?;
            let stat = cim.stat(&path, cim.resolve(&path)?)?;
            print(json, &stat, |out| write_stat(out, &stat))
        }
        CimCommand::Cat { cim, path } => cat(&open(&cim)?, &path),
        CimCommand::Info { cim, json } => {
            let info = open(&cim)?.info()?;
            print(json, &info, |out| {
                writeln!(out, "{} (format {}), root FileID {}", info.cim, info.version, info.root_id)?;
                for s in &info.region_sets {
                    writeln!(
                        out,
                        "  {} region set {}: {} region(s) from index {}",
                        s.role, s.guid, s.regions, s.first_index
                    )?;
                }
                for (i, r) in info.regions.iter().enumerate() {
                    let kind = match r.kind {
                        Some(cimfs::format::RegionType::Metadata) => "metadata",
                        Some(cimfs::format::RegionType::Data) => "data",
                        Some(cimfs::format::RegionType::SmallData) => "small data",
                        None => "unknown type",
                    };
                    writeln!(out, "  region {i}: {} ({kind}, {} bytes)", r.file, r.bytes)?;
                }
                let c = &info.counts;
                writeln!(
                    out,
                    "  {} file table(s); {} names: {} directories, {} files ({} bytes), {} reparse points, {} streams",
                    info.file_tables, c.names, c.directories, c.files, c.file_bytes, c.reparse_points, c.streams
                )
            })
        }
        #[cfg(not(unix))]
        CimCommand::Extract { .. } => Err(Error::Invalid("extract needs a Unix system (symlinks, xattrs)".into())),
        #[cfg(unix)]
        CimCommand::Extract { cim, dir, xattrs } => {
            let done = cimfs::extract::extract(&open(&cim)?, &dir, xattrs)?;
            eprintln!(
                "winlayer: {} directories, {} files ({} bytes), {} hard links, {} symlinks{}",
                done.directories,
                done.files,
                done.bytes,
                done.hard_links,
                done.symlinks,
                if done.streams_skipped > 0 {
                    format!("; {} alternate stream(s) not kept", done.streams_skipped)
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        CimCommand::Export { cim, output, compression } => {
            check_output(&output)?;
            let cim = open(&cim)?;
            let mut collector = Collector::new();
            CimSource::new(&cim).send_to(&mut collector)?;
            write_sorted(collector, &output, compression.get())
        }
        #[cfg(target_os = "linux")]
        CimCommand::Mount { cim, mountpoint, foreground: true, .. } => mounting::foreground(&cim, &mountpoint),
        #[cfg(target_os = "linux")]
        CimCommand::Mount { cim, mountpoint, detached: true, .. } => mounting::detached(&cim, &mountpoint),
        #[cfg(target_os = "linux")]
        CimCommand::Mount { cim, mountpoint, .. } => mounting::mount(&cim, &mountpoint),
        #[cfg(target_os = "linux")]
        CimCommand::Umount { mountpoint } => mounting::umount(&mountpoint),
        #[cfg(not(target_os = "linux"))]
        CimCommand::Mount { .. } | CimCommand::Umount { .. } => {
            Err(Error::Invalid("mounting a CIM needs Linux (FUSE)".into()))
        }
    }
}

/// Why a CIM is never `-`: its region files are found beside it by name.
fn not_stdio(path: &Path) -> Result<()> {
    if path.as_os_str() == "-" {
        return Err(Error::Invalid(
            "a CIM cannot be standard input or output: its region files sit beside the .cim and are found by name; give its path".into(),
        ));
    }
    Ok(())
}

fn open(path: &Path) -> Result<Cim> {
    not_stdio(path)?;
    Cim::open(path)
}

fn create(mut writer: CimWriter, from: &Path, base: bool, owner: &str, json: bool) -> Result<ExitCode> {
    let options = DirOptions { base, owner: owner.to_string(), source_date_epoch: source_date_epoch()? };
    read_layer(from, options, &mut writer, "writing")?;
    let summary = writer.finish()?;
    summary.warnings.iter().for_each(|p| eprintln!("winlayer: {p}"));
    print(json, &summary, |o| {
        writeln!(
            o,
            "{}: region set {}; {} records, {} hard links, {} streams, {} deleted; {} of {} data bytes stored",
            summary.cim.display(),
            summary.region_set,
            summary.records,
            summary.hard_links,
            summary.streams,
            summary.deleted,
            summary.stored_bytes,
            summary.data_bytes
        )
    })
}

/// Writes OUT.cim with cimfs.dll: a fork when a parent is given (it must sit in OUT.cim's
/// directory, as cimfs.dll forks by name there).
fn create_with_windows(
    fs: &win32::cimfs::CimFs,
    from: &Path,
    parent: Option<&Path>,
    base: bool,
    owner: &str,
    out: &Path,
) -> Result<ExitCode> {
    let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let parent_name = match parent {
        Some(p) if p.parent().map(|d| d.canonicalize().ok()) != Some(dir.canonicalize().ok()) => {
            return Err(Error::Invalid(format!(
                "cimfs.dll forks only within one directory: {} is not in {}",
                p.display(),
                dir.display()
            )));
        }
        Some(p) => Some(name(p).ok_or_else(|| Error::Invalid(format!("bad parent name {}", p.display())))?),
        None => None,
    };
    let target = win32::cim_sink::CimTarget::Forked {
        dir,
        name: name(out).ok_or_else(|| Error::Invalid(format!("bad image name {}", out.display())))?,
        parent: parent_name,
    };
    let mut sink = win32::cim_sink::CimSink::create(fs, &target).map_err(|e| Error::Invalid(e.to_string()))?;
    let options = DirOptions { base, owner: owner.to_string(), source_date_epoch: source_date_epoch()? };
    read_layer(from, options, &mut sink, "writing")?;
    sink.finish().map_err(|e| Error::Invalid(e.to_string()))?;
    eprintln!("winlayer: {} written by cimfs.dll", out.display());
    Ok(ExitCode::SUCCESS)
}

fn write_stat(out: &mut dyn Write, s: &Stat) -> io::Result<()> {
    writeln!(
        out,
        "{}  FileID {} ({}), parent {}",
        if s.path.is_empty() { "\\" } else { &s.path },
        s.id,
        s.kind,
        s.parent_id
    )?;
    writeln!(
        out,
        "  size {}  attributes {} (0x{:08x})  data: {}",
        s.size, s.attribute_letters, s.attributes, s.placement
    )?;
    let t = &s.times;
    writeln!(out, "  created {}  modified {}  accessed {}  changed {}", t.created, t.modified, t.accessed, t.changed)?;
    if let Some(sd) = &s.security {
        writeln!(out, "  security {sd}")?;
    }
    for (name, len) in &s.eas {
        writeln!(out, "  ea {name} ({len} bytes)")?;
    }
    if let Some(r) = &s.reparse {
        writeln!(out, "  reparse tag {} target {}", r.tag, r.target.as_deref().unwrap_or("-"))?;
    }
    for (name, len) in &s.streams {
        writeln!(out, "  stream :{name} ({len} bytes)")?;
    }
    Ok(())
}

fn ls(cim: &Cim, path: &str, recursive: bool, json: bool) -> Result<ExitCode> {
    let start = cim.resolve(path)?;
    let prefix: Vec<String> = path.split(['/', '\\']).filter(|p| !p.is_empty()).map(String::from).collect();
    let mut stats = Vec::new();
    if recursive {
        cim.walk_from(start, &prefix, |names, id, _| {
            stats.push(cim.stat(&names.join("\\"), id)?);
            Ok(())
        })?;
    } else {
        let mut children = cim.dir(start)?;
        children.sort_by(|a, b| a.name.cmp(&b.name));
        for c in children {
            let names = [prefix.as_slice(), &[c.name]].concat();
            stats.push(cim.stat(&names.join("\\"), c.id)?);
        }
    }
    print(json, &stats, |out| {
        for s in &stats {
            let target =
                s.reparse.as_ref().and_then(|r| r.target.as_ref()).map(|t| format!(" -> {t}")).unwrap_or_default();
            writeln!(
                out,
                "{:<8} {:<6} {:>12} {:<28} {}{target}",
                s.kind, s.attribute_letters, s.size, s.times.modified, s.path
            )?;
        }
        Ok(())
    })
}

fn cat(cim: &Cim, path: &str) -> Result<ExitCode> {
    let (file, stream) = match path.rsplit_once(':') {
        Some((f, s)) if !s.contains(['/', '\\']) => (f, Some(s)),
        _ => (path, None),
    };
    let record = cim.record(cim.resolve(file)?)?;
    let data = match stream {
        None if record.is_dir() => return Err(Error::Invalid(format!("{file} is a directory"))),
        None => record.default_stream,
        Some(name) => {
            let key = cim.upcase().key(name);
            cim.streams(&record)?
                .into_iter()
                .find(|(n, _)| cim.upcase().key(n) == key)
                .map(|(_, s)| s)
                .ok_or_else(|| Error::Invalid(format!("{file} has no stream {name:?}")))?
        }
    };
    let mut out = io::stdout().lock();
    io::copy(&mut cim.reader(data), &mut out)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(ExitCode::SUCCESS)
}

/// `cim mount` and `cim umount` (Linux only: FUSE).
#[cfg(target_os = "linux")]
mod mounting {
    use std::path::Path;
    use std::process::{Command, ExitCode, Stdio};
    use std::time::{Duration, Instant};

    use winlayer_core::{Error, Result};

    use super::open;

    /// Whether `dir` is a mountpoint (a different device from its parent).
    fn is_mounted(dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        match (dev(dir), dev(&dir.join(".."))) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }

    pub fn foreground(cim: &Path, mountpoint: &Path) -> Result<ExitCode> {
        cimfs::fuse::mount(open(cim)?, mountpoint)?;
        Ok(ExitCode::SUCCESS)
    }

    /// Starts the server as a detached copy of this program (`--detached`) and returns once
    /// the mount is up. The server's standard error is a pipe read here: its messages, if it
    /// fails, are passed on; end of file with the server alive means it is mounted and no
    /// longer holds anything of ours.
    pub fn mount(cim: &Path, mountpoint: &Path) -> Result<ExitCode> {
        open(cim)?;
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().map_err(|e| Error::io("finding this program", e))?;
        let mut child = Command::new(exe)
            .args(["cim", "mount", "--detached"])
            .arg(cim)
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("starting the FUSE server", e))?;
        let mut messages = child.stderr.take().expect("piped");
        let (done, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = messages.read_to_end(&mut text);
            let _ = done.send(text);
        });
        let text = said
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| Error::Invalid(format!("{} did not appear as a mount within 30 s", mountpoint.display())))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Some(status) = child.try_wait().map_err(|e| Error::io("waiting for the FUSE server", e))? {
                // It said why (one line, already naming the file); pass that on as it is.
                std::io::Write::write_all(&mut std::io::stderr(), &text)
                    .map_err(|e| Error::io("writing to standard error", e))?;
                return Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(2)));
            }
            if is_mounted(mountpoint) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(Error::Invalid(format!("{} did not appear as a mount", mountpoint.display())))
    }

    /// The background server: mounts, then drops the caller's standard error (its end of the
    /// pipe `mount` reads) and serves until unmounted.
    pub fn detached(cim: &Path, mountpoint: &Path) -> Result<ExitCode> {
        close_inherited();
        let session = cimfs::fuse::spawn(open(cim)?, mountpoint)?;
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .and_then(|null| rustix::stdio::dup2_stderr(&null).map_err(std::io::Error::from))
            .map_err(|e| Error::io("redirecting standard error to /dev/null", e));
        if let Err(e) = null {
            drop(session);
            return Err(e);
        }
        session.join().map_err(|e| Error::io(format!("serving {}", mountpoint.display()), e))?;
        Ok(ExitCode::SUCCESS)
    }

    /// Closes every descriptor above standard error: at the start of the detached server,
    /// before it opens anything, those are all the caller's (a shell's redirections, say).
    #[allow(unsafe_code)]
    fn close_inherited() {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
        let fds: Vec<i32> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        // The listing's own descriptor is closed by now: only those still open are closed.
        let open = |fd: &i32| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok();
        for fd in fds.into_iter().filter(|fd| *fd > 2 && open(fd)) {
            // SAFETY: nothing in this process owns these descriptors: it has opened none yet.
            unsafe { rustix::io::close(fd) };
        }
    }

    pub fn umount(mountpoint: &Path) -> Result<ExitCode> {
        for (tool, args) in [("fusermount3", &["-u"][..]), ("fusermount", &["-u"][..]), ("umount", &[][..])] {
            let status = Command::new(tool).args(args).arg(mountpoint).stderr(Stdio::null()).status();
            if status.is_ok_and(|s| s.success()) {
                return Ok(ExitCode::SUCCESS);
            }
        }
        Err(Error::Invalid(format!(
            "could not unmount {} (tried fusermount3, fusermount and umount)",
            mountpoint.display()
        )))
    }
}
