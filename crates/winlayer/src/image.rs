//! `winlayer image …`: Windows images between registries and OCI image layouts (the
//! winlayer-oci crate); parse, call, print.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use winlayer_core::Result;
use winlayer_oci::append::{self, Changes, LayerInput, LayerOptions};
use winlayer_oci::convert::{self, ConvertReport, VerifyReport};
use winlayer_oci::inspect::{self, ImageFacts};
use winlayer_oci::layout::Layout;
use winlayer_oci::registry::Options;
use winlayer_oci::store::{self, CopyReport, Progress};
use winlayer_oci::{Digest, Location, Platform};

use crate::io::print;
use crate::tar::source_date_epoch;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry into an OCI image layout.
    ///
    /// REF is host[:port]/repository[:tag][@digest]. From an index the manifest for
    /// --platform is chosen (see `image copy --help`). LAYOUT is a directory (created when
    /// missing) or oci:DIR[:TAG]; the image is named TAG (default latest) in its index.json,
    /// which is written last and atomically. Blobs already in the layout are not fetched
    /// again; every blob fetched is checked against its digest and size before it is kept.
    Pull {
        /// The image in the registry.
        #[arg(value_name = "REF")]
        reference: String,
        /// The image layout to write.
        #[arg(short, long, value_name = "LAYOUT")]
        output: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Push an image from an OCI image layout to a registry.
    ///
    /// LAYOUT is a directory or oci:DIR[:TAG] (without TAG: its only image, or the one named
    /// latest). Blobs the registry has are not sent (HEAD); the manifest goes last, so the
    /// tag never names an image the registry does not hold whole.
    Push {
        /// The image layout to read.
        #[arg(value_name = "LAYOUT")]
        layout: String,
        /// Where to push it.
        #[arg(value_name = "REF")]
        reference: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Copy an image between any two registries and image layouts.
    ///
    /// SRC and DST are registry references or layouts (oci:DIR[:TAG], or a path starting
    /// with /, ./ or ../). The Windows platform is chosen as containerd chooses it: with
    /// --platform windows/amd64:10.0.20348.2113 an image of the same build, or on Windows
    /// Server 2022 and later any build from 20348 up to the host's, the newest such.
    /// Nondistributable (foreign) layers are kept as references and never fetched. Between
    /// repositories of one registry, blobs are mounted instead of sent.
    Copy {
        /// Where the image is.
        #[arg(value_name = "SRC")]
        source: String,
        /// Where it goes.
        #[arg(value_name = "DST")]
        destination: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Show an image: platform, os.version, config, and each layer's media type, sizes, file
    /// count and Windows facts (a base layer or not, config hives, delta hives, whiteouts,
    /// utility VM).
    ///
    /// Every distributable layer is streamed through the strict layer reader (a layer that
    /// breaks the dialect is an error naming it); foreign layers are listed with their URLs,
    /// not fetched. The image's conversions (`image convert --attach`: its referrers with
    /// artifactType application/vnd.winlayer.cimfs.image.v1) are listed; for a converted
    /// image, each layer's source layer digest and diffID (converted layers are not read).
    Inspect {
        /// A registry reference or a layout.
        #[arg(value_name = "REF|LAYOUT")]
        image: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Append layers to a base image and set its command: a Windows image built on any OS.
    ///
    /// Each --layer is a directory (a plain tree becomes Files/…, as `tar from-dir` makes it:
    /// the security descriptors Windows gives new files, owner --owner) or a layer tar
    /// (plain, gzip or zstd), written canonically and checked against the layer rules. The
    /// config gets the layers' diff_ids and history entries, and the changes asked for.
    ///
    /// --entrypoint and --cmd take a JSON array (exec form: each element one argument,
    /// escaped by the runtime) or a Windows command line (run verbatim: stored as one element
    /// with ArgsEscaped, as moby's builder stores a shell-form command, which containerd and
    /// moby then run as written). A new --entrypoint resets Cmd. The command line containerd
    /// will start is printed. With SOURCE_DATE_EPOCH, file times are clamped and the config
    /// dated, so the same inputs give the same image digest.
    ///
    /// Example: winlayer image append --base localhost:5000/base:ltsc2022 --layer ./app
    ///   --entrypoint '["C:\\app\\app.exe"]' --env APP_MODE=prod -t localhost:5000/app:1 --insecure
    Append {
        /// The base image: a registry reference or a layout.
        #[arg(long, value_name = "REF|LAYOUT")]
        base: String,
        /// A directory or layer tar to append; repeat for several layers, lowest first.
        #[arg(long = "layer", value_name = "DIR|TAR", required = true)]
        layers: Vec<std::path::PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
        /// Where the new image goes: a registry reference or a layout.
        #[arg(short = 't', long = "tag", value_name = "REF|LAYOUT")]
        target: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Make a base image (FROM scratch) from any tree or layer tar.
    ///
    /// SOURCE becomes one base layer by makebaselayer's rules: a plain tree becomes Files/…,
    /// the config hives are added where missing (valid empty hives), an application layer's
    /// whiteouts are dropped with one warning, Hives/ may not hold anything. The config is
    /// for --platform, which must carry the os.version the image is for (Windows runs only
    /// images it can match to its build): e.g. --platform windows/amd64:10.0.20348.1.
    FromScratch {
        /// A directory or layer tar.
        #[arg(value_name = "DIR|TAR")]
        source: std::path::PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
        /// Where the image goes: a registry reference or a layout.
        #[arg(short = 't', long = "tag", value_name = "REF|LAYOUT")]
        target: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Flatten an image's whole chain into one base layer: a custom base image.
    ///
    /// The layers are applied lowest first (whiteouts delete, upper objects replace lower
    /// ones, each Hives/<H>_Delta is merged onto Files/Windows/System32/config/<H> as Windows
    /// merges a layer's delta onto its parent's hives), and the result is made a base layer
    /// by makebaselayer's rules. The config keeps its command, environment and platform, with
    /// one diff_id and one history entry. Foreign layers are refused (their content is not
    /// fetched). Data is spooled to one temporary file, never held in memory.
    Squash {
        /// The image to flatten: a registry reference or a layout.
        #[arg(value_name = "REF|LAYOUT")]
        image: String,
        /// Owner of objects makebaselayer adds, a SID in SDDL form.
        #[arg(long, default_value = "BA", value_name = "SDDL")]
        owner: String,
        /// Where the flattened image goes: a registry reference or a layout.
        #[arg(short = 't', long = "tag", value_name = "REF|LAYOUT")]
        target: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Pre-convert an image's layers to CimFS layers, so winlayer's differ unpacks it without
    /// reading a tar or building a CIM.
    ///
    /// A converted image holds, for each layer of SRC, one blob with everything a CimFS
    /// snapshot of that layer holds — its CIM, forked from the layer below's, and its layer
    /// directory's hives and files (media type application/vnd.winlayer.cimfs.layer.v1.tar+zstd,
    /// docs/converted-layers.md) — under an OCI image manifest with artifactType
    /// application/vnd.winlayer.cimfs.image.v1 and SRC's config unchanged, so its diffIDs and
    /// chain IDs, and the snapshots containerd names after them, are SRC's. Who can use it:
    /// containerd 2.1 or later with winlayer's differ (`winlayer serve --mode cimfs`; its
    /// --print-config gives the unpack_config layer_types lines). Every other node keeps
    /// pulling SRC, which conversion never changes.
    ///
    /// -t DST writes the converted image under a name of its own (a registry reference or a
    /// layout). --attach stores it in SRC's repository (or layout) as a referrer of SRC (OCI
    /// 1.1 `subject`): through the registry's referrers API, or on registries without it
    /// through the referrers tag schema (an index tagged sha256-<hex of SRC's digest>); in a
    /// layout, listed in index.json without a name. `winlayer image inspect SRC` then lists
    /// it. Give -t, --attach or both.
    ///
    /// The conversion is reproducible: the same SRC gives byte-identical blobs and manifest on
    /// any machine, so nobody has to trust the converter — pin the converted manifest's digest,
    /// or check it with `winlayer image verify-conversion`. Each source layer is checked
    /// against its digest and the config's diffID; images with foreign (nondistributable)
    /// layers are refused. The layer directories and CIMs of the chain are built in a
    /// temporary directory (--work-dir, default the system's), removed afterwards.
    ///
    /// Example: winlayer image convert localhost:5000/app:1 --to cimfs --attach --insecure
    #[command(group(clap::ArgGroup::new("destination").required(true).multiple(true).args(["target", "attach"])))]
    Convert {
        /// The image to convert: a registry reference or a layout.
        #[arg(value_name = "SRC")]
        source: String,
        /// The layer format to convert to.
        #[arg(long = "to", value_enum, value_name = "FORMAT")]
        to: ConvertTo,
        /// Where the converted image goes: a registry reference or a layout.
        #[arg(short = 't', long = "tag", value_name = "REF|LAYOUT")]
        target: Option<String>,
        /// Store the converted image as a referrer of SRC, in SRC's repository or layout.
        #[arg(long)]
        attach: bool,
        /// Where to build the layers (default: the system's temporary directory).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Check that a converted image is exactly what converting its source gives.
    ///
    /// The source is the manifest the converted image names (its subject, else its
    /// io.winlayer.cimfs.source.manifest annotation), fetched by that digest from the
    /// converted image's repository or layout, or from --source's. It is converted again in a
    /// temporary directory (nothing is written anywhere else) and every layer digest and the
    /// manifest digest are compared. Prints each layer ok or MISMATCH; exits 1 when anything
    /// differs (the converted image is then not its source's conversion: do not use it), 2
    /// when the check could not be made.
    ///
    /// Example: winlayer image verify-conversion localhost:5000/app@sha256:… --insecure
    VerifyConversion {
        /// The converted image: a registry reference or a layout (oci:DIR@sha256:… for an
        /// attached one).
        #[arg(value_name = "DST")]
        converted: String,
        /// Where the source image is (its repository or layout; the digest is the one the
        /// converted image names).
        #[arg(long, value_name = "REF|LAYOUT")]
        source: Option<String>,
        /// Where to build the layers (default: the system's temporary directory).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Formats `image convert` converts to.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ConvertTo {
    /// CimFS container layers (containerd's cimfs snapshotter, winlayer's differ).
    Cimfs,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// The new Entrypoint: a JSON array or a Windows command line.
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// The new Cmd: a JSON array or a Windows command line.
    #[arg(long, value_name = "CMD")]
    cmd: Option<String>,
    /// Set an environment variable (replacing one of the same name, ignoring case).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// The new working directory, e.g. C:\app.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// The user the container runs as, e.g. ContainerUser.
    #[arg(long)]
    user: Option<String>,
    /// Owner of every file of a directory layer, a SID in SDDL form.
    #[arg(long, default_value = "BA", value_name = "SDDL")]
    owner: String,
}

impl ConfigArgs {
    fn changes(&self) -> Result<Changes> {
        Ok(Changes {
            entrypoint: self.entrypoint.as_deref().map(append::Command::parse).transpose()?,
            cmd: self.cmd.as_deref().map(append::Command::parse).transpose()?,
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
        })
    }

    fn layer_options(&self) -> Result<LayerOptions> {
        Ok(LayerOptions { owner: self.owner.clone(), source_date_epoch: source_date_epoch()? })
    }
}

#[derive(Args)]
pub struct CommonArgs {
    /// The platform to choose from an index: os/arch[/variant][:os.version].
    #[arg(long, default_value = "windows/amd64", value_name = "PLATFORM")]
    platform: String,
    /// Speak plain HTTP to the registry (a registry on localhost).
    #[arg(long)]
    insecure: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

impl CommonArgs {
    fn options(&self) -> Options {
        Options { insecure: self.insecure, ..Options::default() }
    }
}

/// A layout argument: `oci:DIR[:TAG]` or a plain directory path.
fn layout(text: &str) -> Result<Location> {
    if text.starts_with("oci:") {
        return Location::parse(text);
    }
    Ok(Location::Layout { path: text.into(), tag: None, digest: None })
}

/// A registry argument, refused when it names a layout.
fn registry(text: &str) -> Result<Location> {
    match Location::parse(text)? {
        l @ Location::Registry(_) => Ok(l),
        Location::Layout { .. } => Err(winlayer_core::Error::Invalid(format!(
            "{text}: a layout, but a registry reference (host/repository[:tag]) is wanted here; use `image copy`"
        ))),
    }
}

/// One progress bar per blob, on a terminal.
struct Bars {
    multi: MultiProgress,
    bars: std::sync::Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), bars: Default::default() }
    }
}

impl Progress for Bars {
    fn begin(&self, digest: &Digest, size: u64, verb: &str) {
        let bar = self.multi.add(ProgressBar::new(size));
        let style = ProgressStyle::with_template("{prefix} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(verb.to_string());
        bar.set_message(digest.digest()[..12].to_string());
        if let Some(old) = self.bars.lock().expect("no panic while held").insert(digest.to_string(), bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, digest: &Digest, n: u64) {
        if let Some(bar) = self.bars.lock().expect("no panic while held").get(&digest.to_string()) {
            bar.inc(n);
        }
    }

    fn end(&self, digest: &Digest, _outcome: &str) {
        if let Some(bar) = self.bars.lock().expect("no panic while held").remove(&digest.to_string()) {
            bar.finish_and_clear();
        }
    }
}

/// Runs an `image` command.
pub fn run(command: ImageCommand) -> Result<ExitCode> {
    match command {
        ImageCommand::Pull { reference, output, common } => copy(registry(&reference)?, layout(&output)?, &common),
        ImageCommand::Push { layout: from, reference, common } => copy(layout(&from)?, registry(&reference)?, &common),
        ImageCommand::Copy { source, destination, common } => {
            copy(Location::parse(&source)?, Location::parse(&destination)?, &common)
        }
        ImageCommand::Inspect { image, common } => {
            let platform = Platform::parse(&common.platform)?;
            let mut source = store::open_source(&Location::parse(&image)?, &common.options())?;
            let facts = inspect::inspect(source.as_mut(), &platform, &Bars::new())?;
            print(common.json, &facts, |out| inspect_text(&facts, out))
        }
        ImageCommand::Append { base, layers, config, target, common } => {
            let inputs = layers.iter().map(|l| LayerInput::from_path(l)).collect::<Result<Vec<_>>>()?;
            let platform = Platform::parse(&common.platform)?;
            let mut from = store::open_source(&Location::parse(&base)?, &common.options())?;
            let mut to = store::open_target(&Location::parse(&target)?, &common.options())?;
            let (changes, options) = (config.changes()?, config.layer_options()?);
            let report =
                append::append(from.as_mut(), &platform, &inputs, &changes, &options, to.as_mut(), &Bars::new())?;
            built(&report, common.json)
        }
        ImageCommand::Squash { image, owner, target, common } => {
            let platform = Platform::parse(&common.platform)?;
            let mut from = store::open_source(&Location::parse(&image)?, &common.options())?;
            let mut to = store::open_target(&Location::parse(&target)?, &common.options())?;
            let options = LayerOptions { owner, source_date_epoch: source_date_epoch()? };
            let report = winlayer_oci::squash::squash(from.as_mut(), &platform, &options, to.as_mut(), &Bars::new())?;
            built(&report, common.json)
        }
        ImageCommand::Convert { source, to: ConvertTo::Cimfs, target, attach, work_dir, common } => {
            let platform = Platform::parse(&common.platform)?;
            let options = common.options();
            let from = Location::parse(&source)?;
            let mut src = store::open_source(&from, &options)?;
            let mut to = target.as_deref().map(|t| store::open_target(&Location::parse(t)?, &options)).transpose()?;
            let mut attach_to: Option<Box<dyn store::Target>> = match (attach, &from) {
                (false, _) => None,
                (true, Location::Registry(_)) => Some(store::open_target(&from, &options)?),
                (true, Location::Layout { path, .. }) => Some(Box::new(Layout::open(path)?.image(None))),
            };
            let work = work_dir.unwrap_or_else(std::env::temp_dir);
            let report = convert::convert(
                src.as_mut(),
                &platform,
                to.as_deref_mut().map(|t| t as &mut dyn store::Target),
                attach_to.as_deref_mut().map(|t| t as &mut dyn store::Target),
                &work,
                &Bars::new(),
            )?;
            print(common.json, &report, |out| convert_text(&report, out))
        }
        ImageCommand::VerifyConversion { converted, source, work_dir, common } => {
            let platform = Platform::parse(&common.platform)?;
            let options = common.options();
            let mut dst = store::open_source(&Location::parse(&converted)?, &options)?;
            let src = source.as_deref().map(|s| store::open_source(&Location::parse(s)?, &options)).transpose()?;
            let work = work_dir.unwrap_or_else(std::env::temp_dir);
            let report = convert::verify(dst.as_mut(), src.as_deref(), &platform, &work, &Bars::new())?;
            print(common.json, &report, |out| verify_text(&report, out))?;
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ImageCommand::FromScratch { source, config, target, common } => {
            let platform = Platform::parse(&common.platform)?;
            let mut to = store::open_target(&Location::parse(&target)?, &common.options())?;
            let (changes, options) = (config.changes()?, config.layer_options()?);
            let input = LayerInput::from_path(&source)?;
            let report = append::from_scratch(&input, &platform, &changes, &options, to.as_mut(), &Bars::new())?;
            built(&report, common.json)
        }
    }
}

/// Prints what `append` or `from-scratch` made.
fn built(report: &append::AppendReport, json: bool) -> Result<ExitCode> {
    report.warnings.iter().for_each(|w| eprintln!("winlayer: warning: {w}"));
    print(json, report, |out| {
        for l in &report.layers {
            writeln!(out, "layer {} {:>12} {} entries from {}", l.digest, l.size, l.entries, l.source)?;
        }
        if let Some(line) = &report.command_line {
            writeln!(out, "command line: {line}")?;
        }
        writeln!(out, "{} ({}) -> {} as {}", report.base, report.platform, report.destination, report.manifest)
    })
}

fn copy(source: Location, destination: Location, common: &CommonArgs) -> Result<ExitCode> {
    let platform = Platform::parse(&common.platform)?;
    let options = common.options();
    let mut from = store::open_source(&source, &options)?;
    let mut to = store::open_target(&destination, &options)?;
    let bars = Bars::new();
    let report = store::copy(from.as_mut(), to.as_mut(), &platform, &bars)?;
    print(common.json, &report, |out| copy_text(&report, out))
}

fn copy_text(report: &CopyReport, out: &mut dyn Write) -> std::io::Result<()> {
    for b in &report.blobs {
        let outcome = if b.outcome == "foreign" { "foreign (kept as a reference)" } else { b.outcome };
        writeln!(out, "{:<8} {} {:>12} {}", outcome, b.digest, b.size, b.media_type)?;
    }
    writeln!(out, "{} ({}) -> {} as {}", report.source, report.platform, report.destination, report.manifest)
}

fn convert_text(report: &ConvertReport, out: &mut dyn Write) -> std::io::Result<()> {
    for (i, l) in report.layers.iter().enumerate() {
        writeln!(
            out,
            "layer {i} {} -> {} {:>12} ({} layer files, {} CIM files)",
            l.source_digest, l.digest, l.size, l.host_files, l.cim_files
        )?;
    }
    writeln!(out, "{} ({}) converted to cimfs as {}", report.source, report.platform, report.manifest)?;
    for d in &report.destinations {
        writeln!(out, "  -> {}: {}", d.name, d.how)?;
    }
    Ok(())
}

fn verify_text(report: &VerifyReport, out: &mut dyn Write) -> std::io::Result<()> {
    let none = || "(none)".to_string();
    for l in &report.layers {
        if l.ok {
            writeln!(out, "layer {} ok       {}", l.index, l.listed.clone().unwrap_or_else(none))?;
        } else {
            writeln!(
                out,
                "layer {} MISMATCH the image lists {}, converting the source gives {}",
                l.index,
                l.listed.clone().unwrap_or_else(none),
                l.derived.clone().unwrap_or_else(none)
            )?;
        }
    }
    if report.manifest == report.derived_manifest {
        writeln!(out, "manifest ok       {}", report.manifest)?;
    } else {
        writeln!(
            out,
            "manifest MISMATCH {}, converting the source gives {}",
            report.manifest, report.derived_manifest
        )?;
    }
    if report.ok {
        writeln!(out, "{} is the conversion of {} ({})", report.converted, report.source, report.source_manifest)
    } else {
        writeln!(
            out,
            "{} is NOT what converting {} ({}) gives",
            report.converted, report.source, report.source_manifest
        )
    }
}

fn inspect_text(f: &ImageFacts, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "image     {}", f.name)?;
    writeln!(out, "manifest  {} ({})", f.manifest, f.media_type)?;
    writeln!(out, "platform  {}", f.platform)?;
    writeln!(out, "config    {}", f.config_digest)?;
    if let Some(c) = &f.created {
        writeln!(out, "created   {c}")?;
    }
    if let Some(config) = f.config.as_object() {
        for (k, v) in config {
            writeln!(out, "  {k}: {v}")?;
        }
    }
    if let Some(from) = &f.converted_from {
        writeln!(out, "converted from {from} (a winlayer cimfs conversion)")?;
    }
    for c in &f.conversions {
        writeln!(out, "conversion {} (cimfs): {} of {} layers converted", c.digest, c.converted_layers, c.layers)?;
    }
    if let Some(e) = &f.conversions_error {
        writeln!(out, "conversions not listed: {e}")?;
    }
    for (i, l) in f.layers.iter().enumerate() {
        writeln!(out, "layer {i}   {} {} bytes {}", l.digest, l.size, l.media_type)?;
        if let Some(s) = &l.source {
            writeln!(out, "  converted from {} (diffID {})", s.digest, s.diff_id)?;
            continue;
        }
        if l.foreign {
            writeln!(
                out,
                "  foreign (not fetched){}",
                if l.urls.is_empty() { String::new() } else { format!(": {}", l.urls.join(" ")) }
            )?;
            continue;
        }
        let n = |v: Option<u64>| v.unwrap_or(0);
        writeln!(
            out,
            "  {} entries, {} files, {} bytes of data, {} whiteouts{}{}",
            n(l.entries),
            n(l.files),
            n(l.data_bytes),
            n(l.whiteouts),
            if l.base { ", a base layer" } else { "" },
            if l.utility_vm { ", utility VM" } else { "" }
        )?;
        if !l.config_hives.is_empty() {
            writeln!(out, "  config hives: {}", l.config_hives.join(" "))?;
        }
        if !l.delta_hives.is_empty() {
            writeln!(out, "  delta hives: {}", l.delta_hives.join(" "))?;
        }
    }
    Ok(())
}
