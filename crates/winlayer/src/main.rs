//! `winlayer`: Windows container image layers on any OS.

mod cim;
mod cim_block;
mod cmdline;
mod hive;
mod image;
mod io;
mod layers;
mod serve;
mod tar;
mod version;
mod vhdx;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "winlayer",
    version,
    about = "Windows container image layers, handled natively on any OS",
    long_about = "winlayer reads, writes, checks and converts Windows container image layers \
                  (the OCI Windows layer tar dialect) without Windows.\n\n\
                  Layer tars, hives, JSON and VHDX disks may be '-' for standard input or output; \
                  CIMs and directories may not (a CIM's regions are found beside it by name). \
                  Compressed input (gzip, zstd) is detected from its bytes. Interrupted runs \
                  (SIGINT, SIGTERM) leave nothing behind."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Windows layer tars: list, check, rewrite canonically, build from a directory.
    #[command(subcommand)]
    Tar(tar::TarCommand),
    /// CimFS images: create (from a tar or directory, forked or not), inspect, extract,
    /// export as a layer tar, mount with FUSE.
    #[command(subcommand)]
    Cim(cim::CimCommand),
    /// VHDX virtual disks: create, inspect, check, resize, convert, scratch templates.
    #[command(subcommand)]
    Vhdx(vhdx::VhdxCommand),
    /// Registry hives: create (empty or from JSON), dump, merge a layer's differencing hive.
    #[command(subcommand)]
    Hive(hive::HiveCommand),
    /// Windows command lines: compose one from arguments, split one, derive a container's
    /// from an image config (Entrypoint, Cmd, ArgsEscaped).
    #[command(subcommand)]
    Cmdline(cmdline::CmdlineCommand),
    /// winlayer's version; on Windows also the real OS build and the Windows backends available.
    Version(version::VersionArgs),
    /// Serve containerd's snapshots API as a proxy plugin (windows, cimfs, blockcim or linux layout).
    ///
    /// containerd reaches it through `[proxy_plugins.NAME] type = "snapshot"`, `address = ADDR`.
    /// Metadata lives in ROOT/metadata.redb, snapshots in ROOT/snapshots/<id>. Stops cleanly on
    /// SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Windows images: pull, push, copy, inspect, append, from-scratch, squash (registries and
    /// OCI image layouts).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Base layers and CIM container layers (makebaselayer, import, export), as hcsshim's
    /// wclayer lays them out.
    #[command(flatten)]
    Layers(layers::LayerCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemons handle signals themselves; every other command writes its outputs through
    // temporaries that an interruption must not leave behind.
    if !matches!(cli.command, Command::Serve(_) | Command::Cim(cim::CimCommand::Mount { .. })) {
        io::clean_up_on_signals();
    }
    let result = match cli.command {
        Command::Tar(command) => tar::run(command),
        Command::Cim(command) => cim::run(command),
        Command::Vhdx(command) => vhdx::run(command),
        Command::Hive(command) => hive::run(command),
        Command::Cmdline(command) => cmdline::run(command),
        Command::Version(args) => version::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Layers(command) => layers::run(command),
        Command::Image(command) => image::run(command),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`winlayer tar ls x | head`) is the reader's choice, not a failure.
        Err(winlayer_core::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("winlayer: {e}");
            ExitCode::from(2)
        }
    }
}
