//! `winlayer version`: winlayer's version, and on Windows the real OS build and which
//! Windows backends this machine offers.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};
use win32::Source;
use winlayer_core::{Error, Result};

#[derive(Args)]
pub struct VersionArgs {
    /// A JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `winlayer version`.
pub fn run(args: VersionArgs) -> Result<ExitCode> {
    let version = env!("CARGO_PKG_VERSION");
    let windows = if cfg!(windows) { Some(windows_report()?) } else { None };
    let mut out = io::stdout().lock();
    let write_err = |e: io::Error| Error::io("writing the output", e);
    if args.json {
        let v = json!({ "winlayer": version, "platform": std::env::consts::OS, "windows": windows });
        writeln!(out, "{v}").map_err(write_err)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "winlayer {version}").map_err(write_err)?;
    let Some(w) = windows else {
        writeln!(
            out,
            "not running on Windows ({}): no Windows version to report, and no Windows backends here",
            std::env::consts::OS
        )
        .map_err(write_err)?;
        return Ok(ExitCode::SUCCESS);
    };
    writeln!(
        out,
        "Windows {} (told to this process: {})",
        w["version"].as_str().unwrap_or("?"),
        w["reported_to_process"].as_str().unwrap_or("?")
    )
    .map_err(write_err)?;
    writeln!(out, "backends:").map_err(write_err)?;
    for b in w["backends"].as_array().into_iter().flatten() {
        let state = b["unavailable"].as_str().map_or("available".to_string(), |why| format!("unavailable: {why}"));
        writeln!(out, "  {}: {state}", b["name"].as_str().unwrap_or("?")).map_err(write_err)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The OS version (RtlGetVersion, the UBR, what GetVersionExW tells this process) and the
/// backends' availability.
fn windows_report() -> Result<Value> {
    let os = win32::system::os_version(&Source::System)?;
    Ok(json!({
        "version": os.to_string(),
        "major": os.version.major,
        "minor": os.version.minor,
        "build": os.version.build,
        "revision": os.revision,
        "reported_to_process": os.reported_to_process.to_string(),
        "backends": win32::available(&Source::System),
    }))
}
