//! `winlayer serve`: the containerd proxy snapshotter and differ daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use winlayer_core::{Error, Result};
use winlayer_snapshotter::config::{
    Config, Settings, default_address, default_containerd_address, default_mode, default_root,
};
use winlayer_snapshotter::{Mode, server};

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML file with any of the keys `root`, `address`, `mode`, `containerd_address`,
    /// `enable_layer_integrity`, `append_vhd_footer`, `unformatted_scratch` (the flags win over it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the metadata database (metadata.redb) and the snapshot directories live.
    #[arg(long, value_name = "DIR", help = format!("Where metadata.redb and snapshots/ live [default: {}]", default_root().display()))]
    root: Option<PathBuf>,
    /// The unix socket (or, on Windows, named pipe) containerd's proxy_plugins address names.
    #[arg(long, value_name = "ADDR", help = format!("The socket (or Windows named pipe) to serve on [default: {}]", default_address()))]
    address: Option<String>,
    /// Layout and mount shapes: windows (windows-layer mounts for hcsshim), cimfs (CimFS
    /// mounts), blockcim (BlockCIM mounts, containerd 2.2's block CIM layout), linux
    /// (bind/overlay mounts that work on Linux). A root keeps its mode.
    #[arg(long, value_parser = parse_mode, long_help = format!(
        "Layout and mount shapes: windows (windows-layer mounts for hcsshim), cimfs (CimFS mounts), \
         blockcim (BlockCIM mounts: containerd 2.2's block CIM layout; merged CIMs and BlockCIM layers are \
         written by Windows' cimfs.dll, so on other systems only its bookkeeping works), \
         linux (bind/overlay mounts that work on Linux). A root keeps its mode [default: {}]",
        default_mode()
    ))]
    mode: Option<Mode>,
    /// containerd's own socket (or pipe): the differ reads layer blobs from, and writes diffs
    /// to, its content service.
    #[arg(long, value_name = "ADDR", help = format!(
        "containerd's own socket, whose content service the differ reads and writes [default: {}]",
        default_containerd_address()
    ))]
    containerd_address: Option<String>,
    /// blockcim mode: layer and merged CIMs are verified CIMs, sealed when written; mounts
    /// carry `enable_layer_integrity` (containerd's blockcim setting of that name).
    #[arg(long)]
    enable_layer_integrity: bool,
    /// blockcim mode: a fixed-VHD footer after every layer and merged CIM; mounts carry
    /// `append_vhd_footer` (containerd's blockcim setting of that name).
    #[arg(long)]
    append_vhd_footer: bool,
    /// blockcim mode: unformatted scratch disks, 40 GiB unless a larger size is asked for
    /// (containerd's blockcim setting `unformatted_scratch`).
    #[arg(long)]
    unformatted_scratch: bool,
    /// What to log on standard error: error, warn, info (start-up, every Apply and Diff, every
    /// failed request), debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing::Level,
    /// Print the containerd 2.x configuration that uses this daemon as snapshotter and differ,
    /// then exit.
    #[arg(long)]
    print_config: bool,
}

fn parse_mode(s: &str) -> std::result::Result<Mode, String> {
    s.parse().map_err(|e: winlayer_snapshotter::Error| e.message().to_owned())
}

/// Runs the daemon until SIGINT or SIGTERM (or prints containerd's configuration).
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let failed = |e: winlayer_snapshotter::Error| Error::Invalid(crate::io::one_line(e.message()));
    let file = match &args.config {
        Some(path) => Config::load(path).map_err(failed)?,
        None => Config::default(),
    };
    let settings = file.merge(Config {
        root: args.root,
        address: args.address,
        mode: args.mode,
        containerd_address: args.containerd_address,
        enable_layer_integrity: args.enable_layer_integrity.then_some(true),
        append_vhd_footer: args.append_vhd_footer.then_some(true),
        unformatted_scratch: args.unformatted_scratch.then_some(true),
    });
    settings.block.check(settings.mode).map_err(failed)?;
    if args.print_config {
        print!("{}", containerd_config(&settings));
        return Ok(ExitCode::SUCCESS);
    }
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    server::run(&settings, |_| {
        tracing::info!(
            mode = %settings.mode,
            root = %settings.root.display(),
            address = %settings.address,
            containerd_address = %settings.containerd_address,
            "winlayer serve: listening"
        );
    })
    .map_err(failed)?;
    tracing::info!("winlayer serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The containerd 2.x configuration (version 3) for a daemon with `settings`: the snapshotter
/// and the differ as proxy plugins on the one socket, the differ first in the diff service's
/// order (containerd's own next, for the images winlayer does not take), and the transfer
/// service unpacking windows/amd64 images with both.
fn containerd_config(settings: &Settings) -> String {
    let fallback = if cfg!(windows) { "windows" } else { "walking" };
    let address = settings.address.replace('\\', "\\\\");
    format!(
        "# containerd 2.x (config version 3); winlayer serve --mode {mode} --root {root}{flags}\n\
         version = 3\n\
         \n\
         [proxy_plugins.winlayer]\n\
         \x20 type = \"snapshot\"\n\
         \x20 address = \"{address}\"\n\
         \n\
         [proxy_plugins.winlayer-diff]\n\
         \x20 type = \"diff\"\n\
         \x20 address = \"{address}\"\n\
         \n\
         [plugins.\"io.containerd.service.v1.diff-service\"]\n\
         \x20 default = [\"winlayer-diff\", \"{fallback}\"]\n\
         \n\
         [[plugins.\"io.containerd.transfer.v1.local\".unpack_config]]\n\
         \x20 platform = \"windows/amd64\"\n\
         \x20 snapshotter = \"winlayer\"\n\
         \x20 differ = \"winlayer-diff\"\n{layer_types}",
        mode = settings.mode,
        root = settings.root.display(),
        flags = settings.block.flags().iter().map(|f| format!(" {f}")).collect::<String>(),
        layer_types = if settings.mode == Mode::Cimfs {
            format!(
                "\x20 # pre-converted CIM layers (docs/converted-layers.md): containerd >= 2.1 unpacks them, 2.0 \
                 ignores this\n\x20 layer_types = [\"{}\"]\n",
                winlayer_layers::converted::MEDIA_TYPE
            )
        } else {
            String::new()
        },
    )
}
