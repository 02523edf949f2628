//! `winlayer image …`: Windows images between registries and OCI image layouts (the
//! winlayer-oci crate); parse, call, print.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use winlayer_core::Result;
use winlayer_oci::append::{self, Changes, LayerInput, LayerOptions};
use winlayer_oci::inspect::{self, ImageFacts};
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
    /// not fetched.
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
    for (i, l) in f.layers.iter().enumerate() {
        writeln!(out, "layer {i}   {} {} bytes {}", l.digest, l.size, l.media_type)?;
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
