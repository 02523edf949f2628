//! `winlayer tar …`: thin commands over the tar dialect crate.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use std::process::ExitCode;

use base64::Engine as _;
use serde_json::{Value, json};
use wcow_tar::importer::{ClampTimes, TimeWarnings};
use wcow_tar::{Compression, Input, LayerReader, Mode};
use winlayer_core::dir::{DirOptions, DirSource};
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{
    Checker, Collector, Data, Entry, EntryKind, Error, LayerSink, LayerSource, Result, Severity, Sorted, attrs,
};

use crate::io::{Naming, WithProgress, bar, check_output, reading_bar, write_output};

#[derive(Subcommand)]
pub enum TarCommand {
    /// List every entry with its Windows metadata.
    ///
    /// For each entry: kind, size, attributes (letters and hex), the four times, the security
    /// descriptor as SDDL, extended attributes, alternate data streams and link targets.
    /// Attribute letters: R read-only, H hidden, S system, D directory, A archive, N normal,
    /// T temporary, P sparse, L reparse point, C compressed, O offline, I not indexed,
    /// E encrypted, V integrity.
    Ls {
        /// The layer tar (plain, gzip or zstd), or '-'.
        layer: PathBuf,
        /// One JSON array of entry objects instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite a layer into the canonical form, losing no Windows metadata.
    ///
    /// Canonical: PAX headers, depth-first order with names in byte order, streams right after
    /// their owner, hard links after the name that carries the data, atime, ctime and creation
    /// time always present, mode 0755/0644, owner 0. Normalizing the output again gives the
    /// same bytes. Nothing is written when the input breaks a layer rule.
    Normalize {
        /// The layer tar (plain, gzip or zstd), or '-'.
        input: PathBuf,
        /// Where to write the canonical tar, or '-'.
        #[arg(short, long)]
        output: PathBuf,
        /// Move times Windows' importer cannot carry (before 1677-09-21 or after 2262-04-11,
        /// where Go's UnixNano overflows; `verify` warns about them) to the nearest it can.
        #[arg(long)]
        clamp_times: bool,
        #[command(flatten)]
        compression: CompressionArgs,
    },
    /// Check a layer against every rule of the dialect and list every problem.
    ///
    /// Exit status: 0 when there are no errors (warnings are printed but allowed), 1 when
    /// there are errors, 2 when the input cannot be read at all.
    Verify {
        /// The layer tar (plain, gzip or zstd), or '-'.
        input: PathBuf,
        /// A JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Build a Windows layer from a plain directory tree.
    ///
    /// The tree becomes Files/ (the container's C:\); a tree that already holds Files/
    /// (and optionally Hives/, UtilityVM/) is taken as a layer as it is. Every object gets
    /// Windows' default attributes and a security descriptor giving Administrators and SYSTEM
    /// full control and Users read and execute; symlinks become Windows symlinks (absolute
    /// targets as C:\…), hard links stay hard links. Times come from the files' modification
    /// times, clamped to SOURCE_DATE_EPOCH when it is set. The same tree gives the same bytes.
    FromDir {
        /// The directory.
        dir: PathBuf,
        /// Where to write the layer tar, or '-'.
        #[arg(short, long)]
        output: PathBuf,
        /// Make a base layer (no Hives/ directory).
        #[arg(long)]
        base: bool,
        /// Owner of every object: a SID in SDDL form (BA, BU, SY, S-1-5-…).
        #[arg(long, default_value = "BA", value_name = "SDDL")]
        owner: String,
        #[command(flatten)]
        compression: CompressionArgs,
    },
}

#[derive(Args)]
#[group(multiple = false)]
pub struct CompressionArgs {
    /// Compress the output with gzip.
    #[arg(long)]
    gzip: bool,
    /// Compress the output with zstd.
    #[arg(long)]
    zstd: bool,
}

impl CompressionArgs {
    /// The chosen compression.
    pub fn get(&self) -> Compression {
        match (self.gzip, self.zstd) {
            (true, _) => Compression::Gzip,
            (_, true) => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// Runs a `tar` subcommand.
pub fn run(command: TarCommand) -> Result<ExitCode> {
    match command {
        TarCommand::Ls { layer, json } => ls(&layer, json),
        TarCommand::Normalize { input, output, clamp_times, compression } => {
            normalize(&input, &output, clamp_times, compression.get())
        }
        TarCommand::Verify { input, json } => verify(&input, json),
        TarCommand::FromDir { dir, output, base, owner, compression } => {
            from_dir(&dir, &output, base, &owner, compression.get())
        }
    }
}

fn open(path: &Path) -> Result<Input> {
    Input::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Renders listings; security descriptors are rendered once per distinct descriptor.
struct Listing<W: Write> {
    out: W,
    json: bool,
    first: bool,
    sddl: HashMap<Vec<u8>, String>,
}

impl<W: Write> Listing<W> {
    fn sddl(&mut self, sd: &[u8]) -> String {
        self.sddl
            .entry(sd.to_vec())
            .or_insert_with(|| {
                SecurityDescriptor::from_bytes(sd).map(|s| s.to_sddl()).unwrap_or_else(|e| format!("<{e}>"))
            })
            .clone()
    }

    fn json_entry(&mut self, e: &Entry) -> Value {
        let mut v = json!({ "path": e.path.as_str(), "kind": e.kind.name() });
        match &e.kind {
            EntryKind::File { size } => v["size"] = json!(size),
            EntryKind::Stream { name, size } => {
                v["stream"] = json!(name);
                v["size"] = json!(size);
            }
            EntryKind::Symlink(link) => {
                v["target"] = json!(link.target);
                v["junction"] = json!(link.junction);
            }
            EntryKind::HardLink { target } => v["target"] = json!(target.as_str()),
            _ => {}
        }
        if e.kind.has_metadata() {
            let m = &e.meta;
            v["attributes"] = json!(m.attributes);
            v["attributes_hex"] = json!(format!("0x{:08x}", m.attributes));
            v["attribute_letters"] = json!(attrs::letters(m.attributes));
            v["times"] = json!({
                "created": m.creation.to_rfc3339(),
                "modified": m.last_write.to_rfc3339(),
                "accessed": m.last_access.to_rfc3339(),
                "changed": m.change.to_rfc3339(),
            });
            let b64 = base64::engine::general_purpose::STANDARD;
            v["security"] = match &m.security {
                Some(sd) => json!({ "sddl": self.sddl(sd), "base64": b64.encode(sd) }),
                None => Value::Null,
            };
            v["eas"] = m
                .eas
                .iter()
                .map(|ea| json!({ "name": String::from_utf8_lossy(&ea.name), "value_base64": b64.encode(&ea.value) }))
                .collect();
        }
        v
    }

    fn text_entry(&mut self, e: &Entry) -> io::Result<()> {
        let m = &e.meta;
        let (letters, hex) = if e.kind.has_metadata() {
            (attrs::letters(m.attributes), format!("0x{:08x}", m.attributes))
        } else {
            (String::new(), String::new())
        };
        let modified = if e.kind.has_metadata() { m.last_write.to_string() } else { String::new() };
        let name = match &e.kind {
            EntryKind::Stream { name, .. } => format!("{}:{name}", e.path),
            EntryKind::Symlink(link) => format!("{} -> {}", e.path, link.target),
            EntryKind::HardLink { target } => format!("{} => {target}", e.path),
            _ => e.path.to_string(),
        };
        writeln!(
            self.out,
            "{:<8} {:<6} {:<10} {:>12} {:<28} {name}",
            e.kind.name(),
            letters,
            hex,
            e.kind.data_len(),
            modified
        )?;
        if e.kind.has_metadata() {
            writeln!(self.out, "    created {}  accessed {}  changed {}", m.creation, m.last_access, m.change)?;
            if let Some(sd) = &m.security {
                let sddl = self.sddl(sd).to_string();
                writeln!(self.out, "    security {sddl}")?;
            }
            for ea in &m.eas {
                writeln!(
                    self.out,
                    "    ea {} = {}",
                    String::from_utf8_lossy(&ea.name),
                    base64::engine::general_purpose::STANDARD.encode(&ea.value)
                )?;
            }
        }
        Ok(())
    }
}

impl<W: Write> LayerSink for Listing<W> {
    fn entry(&mut self, entry: &Entry, _data: &mut Data<'_>) -> Result<()> {
        let result = if self.json {
            let v = self.json_entry(entry);
            let sep = if std::mem::take(&mut self.first) { "[\n" } else { ",\n" };
            write!(self.out, "{sep}{v}")
        } else {
            self.text_entry(entry)
        };
        result.map_err(|e| Error::io("writing the listing", e))
    }
}

/// `tar ls`.
fn ls(layer: &Path, json: bool) -> Result<ExitCode> {
    let mut listing = Listing { out: BufWriter::new(io::stdout().lock()), json, first: true, sddl: HashMap::new() };
    let mut reader = LayerReader::new(open(layer)?, Mode::Strict);
    reader.read_into(&mut listing)?;
    let end = if !json {
        ""
    } else if listing.first {
        "[]\n"
    } else {
        "\n]\n"
    };
    write!(listing.out, "{end}").and_then(|_| listing.out.flush()).map_err(|e| Error::io("writing the listing", e))?;
    for p in reader.problems() {
        eprintln!("winlayer: {p}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `tar normalize`.
fn normalize(input: &Path, output: &Path, clamp_times: bool, compression: Compression) -> Result<ExitCode> {
    check_output(output)?;
    let input = open(input)?;
    let total = input.remaining();
    let mut collector = Collector::new();
    let mut reader = LayerReader::new(input, Mode::Strict);
    let reading = reading_bar(&mut reader, total, "reading");
    if clamp_times {
        let mut clamp = ClampTimes::new(&mut collector);
        reader.read_into(&mut Naming { inner: &mut clamp, bar: &reading })?;
        if clamp.clamped > 0 {
            eprintln!(
                "winlayer: moved times of {} entr{} into 1677-09-21..2262-04-11 (--clamp-times)",
                clamp.clamped,
                if clamp.clamped == 1 { "y" } else { "ies" }
            );
        }
    } else {
        reader.read_into(&mut Naming { inner: &mut collector, bar: &reading })?;
    }
    reading.finish_and_clear();
    for p in reader.problems() {
        eprintln!("winlayer: {p}");
    }
    write_sorted(collector, output, compression)
}

/// Sorts, checks and writes a collected layer, showing progress.
pub fn write_sorted(collector: Collector, output: &Path, compression: Compression) -> Result<ExitCode> {
    write_canonical(collector.finish()?, output, compression)
}

/// Checks and writes a sorted layer (warnings to standard error), showing progress; nothing
/// is written when the layer breaks a rule.
pub fn write_canonical(sorted: Sorted, output: &Path, compression: Compression) -> Result<ExitCode> {
    let total = sorted.entries().map(|e| e.kind.data_len()).sum();
    let problems = sorted.check();
    for p in problems.iter().filter(|p| p.severity == Severity::Warning) {
        eprintln!("winlayer: {p}");
    }
    let errors: Vec<_> = problems.into_iter().filter(|p| p.severity == Severity::Error).collect();
    if !errors.is_empty() {
        return Err(Error::Problems(errors));
    }
    let writing = bar(Some(total), "writing");
    write_output(output, compression, |out| {
        let mut writer = wcow_tar::TarWriter::new(out);
        sorted.send_to(&mut WithProgress { inner: &mut writer, bar: &writing })?;
        writer.finish().map(|_| ())
    })?;
    writing.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

/// `tar verify`.
fn verify(input: &Path, json: bool) -> Result<ExitCode> {
    let input = open(input)?;
    let total = input.remaining();
    let mut reader = LayerReader::new(input, Mode::Collect);
    let progress = reading_bar(&mut reader, total, "checking");
    let mut checker = Checker::new();
    let mut importer = TimeWarnings::new(&mut checker);
    let framing = reader.read_into(&mut Naming { inner: &mut importer, bar: &progress });
    let importer_warnings = importer.warnings;
    progress.finish_and_clear();
    let mut problems = reader.take_problems();
    problems.extend(importer_warnings);
    // Not a tar from its first block on (or not readable): nothing could be checked.
    let unreadable = match &framing {
        Err(Error::Io { .. }) => true,
        Err(_) => !reader.saw_tar(),
        Ok(()) => false,
    };
    if let Err(e) = framing {
        problems.push(winlayer_core::Problem::error(None, e.to_string()));
    }
    problems.extend(checker.finish());
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = problems.len() - errors;
    let entries = reader.entries();
    let mut out = io::stdout().lock();
    let written = if json {
        let report = json!({ "ok": errors == 0, "entries": entries, "errors": errors, "warnings": warnings, "problems": problems });
        writeln!(out, "{report:#}")
    } else {
        problems
            .iter()
            .try_for_each(|p| writeln!(out, "{p}"))
            .and_then(|_| writeln!(out, "{entries} entries: {errors} error(s), {warnings} warning(s)"))
    };
    written.map_err(|e| Error::io("writing the report", e))?;
    Ok(if unreadable {
        ExitCode::from(2)
    } else if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `SOURCE_DATE_EPOCH`, when set: the latest time a directory source may carry.
pub fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds"))),
        Err(_) => Ok(None),
    }
}

/// `tar from-dir`.
fn from_dir(dir: &Path, output: &Path, base: bool, owner: &str, compression: Compression) -> Result<ExitCode> {
    check_output(output)?;
    let options = DirOptions { base, owner: owner.to_string(), source_date_epoch: source_date_epoch()? };
    let mut collector = Collector::new();
    DirSource::new(dir, options).send_to(&mut collector)?;
    write_sorted(collector, output, compression)
}

/// Sends a layer tar (plain, gzip or zstd; or '-') or a directory (read with `options`) into
/// `sink`, with a progress bar; the reader's warnings go to standard error.
pub fn read_layer(from: &Path, options: DirOptions, sink: &mut dyn LayerSink, verb: &'static str) -> Result<()> {
    let is_dir = from.as_os_str() != "-"
        && std::fs::metadata(from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?.is_dir();
    if is_dir {
        let progress = bar(None, verb);
        DirSource::new(from, options).send_to(&mut WithProgress { inner: sink, bar: &progress })?;
        progress.finish_and_clear();
    } else {
        let input = open(from)?;
        let total = input.remaining();
        let mut reader = LayerReader::new(input, Mode::Strict);
        let progress = reading_bar(&mut reader, total, verb);
        reader.read_into(&mut Naming { inner: sink, bar: &progress })?;
        progress.finish_and_clear();
        reader.problems().iter().for_each(|p| eprintln!("winlayer: {p}"));
    }
    Ok(())
}
