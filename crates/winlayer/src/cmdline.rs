//! `winlayer cmdline …`: thin commands over the wincmdline crate.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use wincmdline::image::{ImageCommand, Overrides, Runtime, resolve};
use wincmdline::{Dialect, compose, escape_args, parse};
use winlayer_core::{Error, Result};

#[derive(Subcommand)]
pub enum CmdlineCommand {
    /// Compose the Windows command line that passes ARG... to a program unchanged.
    ///
    /// The first ARG is the program: quoted when it holds a space (it cannot hold '"').
    /// Every other argument is quoted only when empty or holding a space or tab, each '"'
    /// gets a backslash and the backslashes before a quote or the closing quote are doubled,
    /// so both the C runtime and CommandLineToArgvW give the arguments back. The line is
    /// refused when it holds NUL or exceeds CreateProcess's 32,766 characters.
    ///
    /// Example: winlayer cmdline compose -- 'C:\Program Files\app.exe' --name 'a "b"'
    Compose {
        /// Escape the program like any argument, as containerd, moby and hcsshim join
        /// process.args (Go's EscapeArg on every element; Python's subprocess.list2cmdline).
        #[arg(long)]
        escape_all: bool,
        /// Read one JSON array of strings per line from standard input and write one JSON
        /// string (the line) per line, instead of taking ARG....
        #[arg(long, conflicts_with = "args")]
        batch: bool,
        /// The program and its arguments.
        #[arg(required_unless_present = "batch", num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
        args: Vec<String>,
    },
    /// Split a Windows command line into arguments, as a Windows program would.
    ///
    /// One argument per line, numbered; control characters are shown as \u{..} (use --json
    /// for the exact text).
    Parse {
        /// Whose rules: the Microsoft C runtime (2008 and later: C/C++, Rust and Go programs)
        /// or CommandLineToArgvW. They differ on "" inside quotes and on quotes in the program.
        #[arg(long, value_enum, default_value_t = DialectArg::CRuntime)]
        dialect: DialectArg,
        /// A JSON array of strings instead of text.
        #[arg(long)]
        json: bool,
        /// The command line.
        line: String,
    },
    /// The command line a Windows container runs for an image config's Entrypoint, Cmd and
    /// ArgsEscaped, by containerd's, its CRI plugin's or moby's rules.
    ///
    /// CONFIG is an image config JSON file (the whole config blob with "config", docker
    /// inspect's "Config", or the inner object), or '-'. Prints the line; warnings (such as
    /// BuildKit's ArgsEscaped on an exec-form command whose program has a space) go to
    /// standard error.
    FromImage {
        /// The image config.
        config: PathBuf,
        /// Whose rules apply.
        #[arg(long, value_enum, default_value_t = RuntimeArg::Containerd)]
        runtime: RuntimeArg,
        /// Replace the entrypoint (repeat for each element).
        #[arg(long = "entrypoint", value_name = "ARG", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// Clear the entrypoint.
        #[arg(long, conflicts_with = "entrypoint")]
        no_entrypoint: bool,
        /// A JSON object (args, commandLine, line, warnings) instead of the line.
        #[arg(long)]
        json: bool,
        /// Arguments replacing the image's Cmd.
        #[arg(last = true, value_name = "ARG")]
        args: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DialectArg {
    /// The Microsoft C runtime.
    CRuntime,
    /// shell32!CommandLineToArgvW.
    CommandLineToArgvW,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    /// containerd (ctr, nerdctl): oci.WithImageConfigArgs.
    Containerd,
    /// containerd's CRI plugin (Kubernetes).
    Cri,
    /// moby (docker run).
    Moby,
}

/// Runs a `cmdline` subcommand.
pub fn run(command: CmdlineCommand) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let write_err = |e: io::Error| Error::io("writing the output", e);
    match command {
        CmdlineCommand::Compose { escape_all, batch, args } => {
            let join = |args: &[String]| {
                let line = if escape_all { escape_args(args) } else { compose(args) };
                line.map_err(|e| Error::Invalid(e.to_string()))
            };
            if !batch {
                writeln!(out, "{}", join(&args)?).map_err(write_err)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = io::BufWriter::new(out);
            for (n, input) in io::stdin().lock().lines().enumerate() {
                let input = input.map_err(|e| Error::io("reading standard input", e))?;
                let args: Vec<String> = serde_json::from_str(&input)
                    .map_err(|e| Error::Invalid(format!("line {}: not a JSON array of strings: {e}", n + 1)))?;
                let line = join(&args).map_err(|e| Error::Invalid(format!("line {}: {e}", n + 1)))?;
                writeln!(out, "{}", Value::from(line)).map_err(write_err)?;
            }
            out.flush().map_err(write_err)?;
        }
        CmdlineCommand::Parse { dialect, json, line } => {
            let dialect = match dialect {
                DialectArg::CRuntime => Dialect::CRuntime,
                DialectArg::CommandLineToArgvW => Dialect::CommandLineToArgvW,
            };
            let args = parse(&line, dialect);
            if json {
                writeln!(out, "{}", Value::from(args)).map_err(write_err)?;
            } else {
                for (i, arg) in args.iter().enumerate() {
                    writeln!(out, "{i}: {}", visible(arg)).map_err(write_err)?;
                }
            }
        }
        CmdlineCommand::FromImage { config, runtime, entrypoint, no_entrypoint, json, args } => {
            let image = read_image_command(&config)?;
            let entrypoint = if no_entrypoint { Some(Vec::new()) } else { Some(entrypoint).filter(|e| !e.is_empty()) };
            let runtime = match runtime {
                RuntimeArg::Containerd => Runtime::Containerd,
                RuntimeArg::Cri => Runtime::Cri,
                RuntimeArg::Moby => Runtime::Moby,
            };
            let process = resolve(&image, &Overrides { entrypoint, cmd: args }, runtime)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let line = process.line().map_err(|e| Error::Invalid(e.to_string()))?;
            if json {
                let mut v = serde_json::to_value(&process).expect("serializable");
                v["line"] = json!(line);
                writeln!(out, "{v}").map_err(write_err)?;
            } else {
                for warning in &process.warnings {
                    eprintln!("winlayer: warning: {warning}");
                }
                writeln!(out, "{line}").map_err(write_err)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The text with control characters escaped, so a listing cannot drive the terminal.
fn visible(arg: &str) -> String {
    arg.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// The Entrypoint/Cmd/ArgsEscaped of an image config file.
fn read_image_command(path: &Path) -> Result<ImageCommand> {
    let mut text = Vec::new();
    let what = format!("reading {}", path.display());
    if path.as_os_str() == "-" {
        io::stdin().read_to_end(&mut text).map_err(|e| Error::io(what, e))?;
    } else {
        text = std::fs::read(path).map_err(|e| Error::io(what, e))?;
    }
    let bad = |e: serde_json::Error| Error::Invalid(format!("{}: not an image config: {e}", path.display()));
    let value: Value = serde_json::from_slice(&text).map_err(bad)?;
    let inner = ["config", "Config"].iter().find_map(|k| value.get(k).filter(|v| v.is_object())).unwrap_or(&value);
    serde_json::from_value(inner.clone()).map_err(bad)
}
