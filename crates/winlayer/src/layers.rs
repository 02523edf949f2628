//! `winlayer makebaselayer`, `import` and `export`: base layers and CIM container layers (the
//! winlayer-layers crate), named after hcsshim's `wclayer` commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use winlayer_core::dir::{DirOptions, is_layer_layout};
use winlayer_core::{Error, Result};
use winlayer_layers::{BaseLayerBuilder, BaseReport, CimLayerImport, Parent, export_cim, make_base_layer};

use crate::io::print;
use crate::tar::{CompressionArgs, read_layer, source_date_epoch, write_canonical};

#[derive(Subcommand)]
pub enum LayerCommand {
    /// Make a base layer: prepare a layer directory in place, or write a base-layer tar from
    /// any layer tar or directory.
    ///
    /// With DIR (a layer directory holding Files/, or an empty one), as `wclayer
    /// makebaselayer` does: create Files/Windows/System32/config and the registry hives
    /// DEFAULT, SAM, SECURITY, SOFTWARE and SYSTEM as valid empty hives where missing (existing
    /// hives are kept), and require UtilityVM/Files/EFI/Microsoft/Boot/BCD when
    /// UtilityVM/Files exists. Links and non-directories on the way to the hives are refused;
    /// everything is checked before anything is written. On Windows, ProcessBaseImage (and
    /// ProcessUtilityImage for a utility VM) then run, unless --no-process; elsewhere that
    /// step is left to Windows.
    ///
    /// With --from SOURCE -o BASE.tar: SOURCE is a layer tar (plain, gzip or zstd) or a
    /// directory (a plain tree becomes Files/…, as `tar from-dir` makes it; a plain,
    /// non-layer tar is unpacked into a directory first). The result is a
    /// canonical base-layer tar: the config directories and empty hives added where missing
    /// (default security descriptors, --owner, and one time for all: SOURCE_DATE_EPOCH when
    /// set, else the newest time in the layer), no Hives/ (an empty one is left out, a
    /// non-empty one refused), no whiteouts (an application layer's are dropped, with one
    /// warning: there is nothing below a base layer to delete), and a utility VM only with
    /// its BCD.
    Makebaselayer(MakeBaseLayerArgs),
    /// Import a layer tar as a CIM container layer, laid out as hcsshim lays it out for
    /// containerd's cimfs snapshotter.
    ///
    /// LAYERDIR (new) receives the files hcsshim keeps outside the image: the layer's registry
    /// hives (Hives/<H>_Delta, Files/Windows/System32/config/<H>), the utility VM's hives, BCD
    /// and boot manager; for a base layer Hives/<H>_BASE hard links to its config hives and
    /// the file `layout`; for a non-base layer Hives/<H>_BASE for every delta hive it has: the
    /// nearest parent's Hives/<H>_BASE with the delta merged onto it. NAME.cim (new) holds the
    /// whole layer and those files, forked from the first --parent-cim (which must lie in the
    /// same directory). Give every parent, immediate parent first, as --layer DIR
    /// --parent-cim CIM pairs. On failure nothing is left behind.
    Import(ImportArgs),
    /// Export a CIM container layer back to a canonical layer tar.
    ///
    /// A base layer gives its whole content without what import generated (Hives/, layout).
    /// A non-base layer gives what it changes in its parent's view: what it adds or replaces,
    /// whiteouts for what it deletes, hard links to files of lower layers, its Hives/<H>_Delta
    /// (never the generated Hives/<H>_BASE), and the parent directories of all of it. The
    /// parent is the .cim beside NAME.cim whose region sets the image forks (or --parent-cim).
    /// The hives and boot files in LAYERDIR must be exactly the ones the CIM's layer carries.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct MakeBaseLayerArgs {
    /// The layer directory to prepare in place.
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    dir: Option<PathBuf>,
    /// Write a base-layer tar from this layer tar or directory instead.
    #[arg(long, value_name = "SOURCE", requires = "output")]
    from: Option<PathBuf>,
    /// Where to write the base-layer tar, or '-'.
    #[arg(short, long, value_name = "BASE.tar", requires = "from")]
    output: Option<PathBuf>,
    /// Owner of generated objects (and of every object of a directory source), a SID in
    /// SDDL form.
    #[arg(long, default_value = "BA", value_name = "SDDL")]
    owner: String,
    #[command(flatten)]
    compression: CompressionArgs,
    /// On Windows, do not run ProcessBaseImage/ProcessUtilityImage after preparing DIR.
    #[arg(long)]
    no_process: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

/// The layer formats `import` writes.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A CIM container layer (a forked CIM and a layer directory). The legacy (WCIFS) layer
    /// format is written by Windows' vmcompute.dll only.
    Cim,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The layer format to write.
    #[arg(long, value_enum, default_value = "cim")]
    format: Format,
    /// The layer tar (plain, gzip or zstd), or '-'.
    #[arg(short, long, value_name = "LAYER.tar")]
    input: PathBuf,
    /// The layer directory to create.
    #[arg(value_name = "LAYERDIR")]
    layer_dir: PathBuf,
    /// The CIM to create.
    #[arg(long, value_name = "NAME.cim")]
    cim: PathBuf,
    /// A parent layer's directory; one per parent, immediate parent first.
    #[arg(long = "layer", value_name = "PARENTDIR")]
    layers: Vec<PathBuf>,
    /// A parent layer's CIM, in the order of --layer.
    #[arg(long = "parent-cim", value_name = "PARENT.cim")]
    parent_cims: Vec<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The layer directory.
    #[arg(value_name = "LAYERDIR")]
    layer_dir: PathBuf,
    /// The layer's CIM.
    #[arg(long, value_name = "NAME.cim")]
    cim: PathBuf,
    /// The CIM it was forked from (default: found beside it).
    #[arg(long, value_name = "PARENT.cim")]
    parent_cim: Option<PathBuf>,
    /// Where to write the tar, or '-'.
    #[arg(short, long, value_name = "OUT.tar")]
    output: PathBuf,
    #[command(flatten)]
    compression: CompressionArgs,
}

/// Runs `makebaselayer`, `import` or `export`.
pub fn run(command: LayerCommand) -> Result<ExitCode> {
    match command {
        LayerCommand::Makebaselayer(args) => match (&args.dir, &args.from, &args.output) {
            (Some(dir), ..) => make_in_place(dir, args.no_process, args.json),
            (None, Some(from), Some(output)) => make_tar(from, output, &args),
            _ => Err(Error::Invalid("give a layer directory, or --from SOURCE -o BASE.tar".into())),
        },
        LayerCommand::Import(args) => import(args),
        LayerCommand::Export(args) => {
            crate::io::check_output(&args.output)?;
            let (sorted, summary) = export_cim(&args.layer_dir, &args.cim, args.parent_cim.as_deref())?;
            let parent = summary.parent.as_ref().map_or("none (a base layer)".into(), |p| p.display().to_string());
            eprintln!("winlayer: {} entries; parent {parent}", summary.entries);
            write_canonical(sorted, &args.output, args.compression.get())
        }
    }
}

fn report_text(report: &BaseReport, out: &mut dyn Write) -> std::io::Result<()> {
    report.created.iter().try_for_each(|p| writeln!(out, "created {p}"))?;
    report.kept.iter().try_for_each(|p| writeln!(out, "kept    {p}"))?;
    report.notes.iter().try_for_each(|n| writeln!(out, "note: {n}"))?;
    report.warnings.iter().try_for_each(|w| writeln!(out, "warning: {w}"))?;
    writeln!(out, "utility VM: {}", if report.utility_vm { "yes" } else { "no" })
}

/// `makebaselayer DIR`.
fn make_in_place(dir: &Path, no_process: bool, json: bool) -> Result<ExitCode> {
    let mut report = make_base_layer(dir)?;
    if cfg!(windows) && !no_process {
        process_base_layer(dir)?;
    } else {
        report.notes.push("ProcessBaseImage not run (Windows does it when it imports the layer)".into());
    }
    print(json, &report, |out| report_text(&report, out))
}

#[cfg(windows)]
fn process_base_layer(dir: &Path) -> Result<()> {
    let vmcompute = win32::vmcompute::Vmcompute::load(&win32::Source::System)?;
    Ok(vmcompute.process_base_layer(dir)?)
}

#[cfg(not(windows))]
fn process_base_layer(_dir: &Path) -> Result<()> {
    Ok(())
}

/// `makebaselayer --from SOURCE -o BASE.tar`.
fn make_tar(from: &Path, output: &Path, args: &MakeBaseLayerArgs) -> Result<ExitCode> {
    if args.json && output.as_os_str() == "-" {
        return Err(Error::Invalid("--json and -o - both want standard output".into()));
    }
    crate::io::check_output(output)?;
    let source_date_epoch = source_date_epoch()?;
    let mut builder = BaseLayerBuilder::new(&args.owner, source_date_epoch);
    // A directory laid out as a layer with a Hives/ is read with it, so the builder can leave
    // an empty one out (and refuse a non-empty one); every other directory becomes Files/.
    let keeps_hives = from.is_dir() && is_layer_layout(from)? && from.join("Hives").exists();
    let options = DirOptions { base: !keeps_hives, owner: args.owner.clone(), source_date_epoch };
    read_layer(from, options, &mut builder, "reading").map_err(|e| match e {
        // A plain tar: its tree is taken as Files/ only from a directory, where the dir source
        // gives every object Windows' metadata.
        Error::Invalid(m) if !from.is_dir() && m.contains(winlayer_core::path::NOT_A_LAYER_ROOT) => Error::Invalid(format!(
            "{m}; {} is not a Windows layer tar: to make a base layer of a plain tree, unpack it and give the directory \
             (mkdir tree && tar -xf {0} -C tree && winlayer makebaselayer --from tree -o BASE.tar)",
            from.display()
        )),
        e => e,
    })?;
    let (sorted, report) = builder.finish()?;
    write_canonical(sorted, output, args.compression.get())?;
    if args.json {
        print(true, &report, |_| Ok(()))
    } else {
        let mut text = Vec::new();
        report_text(&report, &mut text).map_err(|e| Error::io("formatting the report", e))?;
        eprint!("{}", String::from_utf8_lossy(&text));
        Ok(ExitCode::SUCCESS)
    }
}

/// `import --format cim`.
fn import(args: ImportArgs) -> Result<ExitCode> {
    let Format::Cim = args.format;
    if args.layers.len() != args.parent_cims.len() {
        return Err(Error::Invalid(format!(
            "{} --layer and {} --parent-cim: give each parent as a --layer DIR --parent-cim CIM pair",
            args.layers.len(),
            args.parent_cims.len()
        )));
    }
    let parents: Vec<Parent> = args
        .layers
        .iter()
        .zip(&args.parent_cims)
        .map(|(dir, cim)| Parent { dir: dir.clone(), cim: cim.clone() })
        .collect();
    if args.input.is_dir() {
        return Err(Error::Invalid(format!("{} is a directory; import takes a layer tar", args.input.display())));
    }
    let mut import = CimLayerImport::start(&args.layer_dir, &args.cim, &parents)?;
    read_layer(&args.input, DirOptions::default(), &mut import, "importing")?;
    let summary = import.finish()?;
    summary.cim.warnings.iter().for_each(|p| eprintln!("winlayer: {p}"));
    print(args.json, &summary, |out| {
        let kind = if summary.base { "base" } else { "non-base" };
        writeln!(out, "{} ({kind} layer):", summary.layer_dir.display())?;
        summary.host_files.iter().try_for_each(|f| writeln!(out, "  {f}"))?;
        let c = &summary.cim;
        writeln!(
            out,
            "{}: region set {}; {} records, {} hard links, {} streams, {} deleted",
            c.cim.display(),
            c.region_set,
            c.records,
            c.hard_links,
            c.streams,
            c.deleted
        )
    })
}
