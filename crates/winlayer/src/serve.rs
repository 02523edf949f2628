//! `winlayer serve`: the containerd proxy snapshotter daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use winlayer_core::{Error, Result};
use winlayer_snapshotter::config::{Config, default_address, default_mode, default_root};
use winlayer_snapshotter::{Mode, server};

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML file with any of the keys `root`, `address`, `mode` (the flags win over it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the metadata database (metadata.redb) and the snapshot directories live.
    #[arg(long, value_name = "DIR", help = format!("Where metadata.redb and snapshots/ live [default: {}]", default_root().display()))]
    root: Option<PathBuf>,
    /// The unix socket (or, on Windows, named pipe) containerd's proxy_plugins address names.
    #[arg(long, value_name = "ADDR", help = format!("The socket (or Windows named pipe) to serve on [default: {}]", default_address()))]
    address: Option<String>,
    /// Layout and mount shapes: windows (windows-layer mounts for hcsshim), cimfs (CimFS
    /// mounts), linux (bind/overlay mounts that work on Linux). A root keeps its mode.
    #[arg(long, value_parser = parse_mode, long_help = format!(
        "Layout and mount shapes: windows (windows-layer mounts for hcsshim), cimfs (CimFS mounts), \
         linux (bind/overlay mounts that work on Linux). A root keeps its mode [default: {}]",
        default_mode()
    ))]
    mode: Option<Mode>,
}

fn parse_mode(s: &str) -> std::result::Result<Mode, String> {
    s.parse().map_err(|e: winlayer_snapshotter::Error| e.message().to_owned())
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let failed = |e: winlayer_snapshotter::Error| Error::Invalid(crate::io::one_line(e.message()));
    let file = match &args.config {
        Some(path) => Config::load(path).map_err(failed)?,
        None => Config::default(),
    };
    let settings = file.merge(Config { root: args.root, address: args.address, mode: args.mode });
    server::run(&settings, |_| {
        eprintln!(
            "winlayer serve: {} mode, root {}, listening on {}",
            settings.mode,
            settings.root.display(),
            settings.address
        );
    })
    .map_err(failed)?;
    eprintln!("winlayer serve: stopped");
    Ok(ExitCode::SUCCESS)
}
