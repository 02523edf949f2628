//! Output files written whole or not at all, progress bars on a terminal, and reports as text
//! or JSON.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use wcow_tar::{Compression, Output};
use winlayer_core::{Data, Entry, Error, LayerSink, Result};

/// Writes `path` (or standard output for `-`) through `compression`. A file is written under
/// a temporary name in its directory and renamed into place only when `write` succeeds, so a
/// failure leaves nothing behind.
pub fn write_output(
    path: &Path,
    compression: Compression,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let io_err = |what: &str, e: io::Error| Error::io(format!("{what} {}", path.display()), e);
    if path.as_os_str() == "-" {
        let mut out = Output::new(io::stdout(), compression).map_err(|e| io_err("writing", e))?;
        write(&mut out)?;
        out.finish().map_err(|e| io_err("writing", e))?;
        return Ok(());
    }
    let temp = temp_beside(path)?;
    let mut out = Output::new(temp, compression).map_err(|e| io_err("writing", e))?;
    write(&mut out)?;
    let temp = out.finish().map_err(|e| io_err("writing", e))?;
    temp.as_file().sync_all().map_err(|e| io_err("syncing", e))?;
    temp.persist(path).map_err(|e| io_err("renaming into place", e.error))?;
    Ok(())
}

/// Writes the file `path` through `write`, which gets a temporary path beside it (for formats
/// written by position rather than as a stream); renamed into place only when `write`
/// succeeds.
pub fn write_file(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let temp = temp_beside(path)?;
    write(temp.path())?;
    temp.as_file().sync_all().map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    temp.persist(path).map_err(|e| Error::io(format!("renaming into place {}", path.display()), e.error))?;
    Ok(())
}

/// A new temporary file in `path`'s directory, to be renamed to `path`.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".winlayer-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("creating a temporary file beside {}", path.display()), e))
}

/// A byte-counting progress bar on standard error, drawn only on a terminal.
pub fn bar(total: Option<u64>, verb: &'static str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}"
    } else {
        "{prefix} {spinner} {bytes} {bytes_per_sec} {wide_msg}"
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    bar.set_prefix(verb);
    bar
}

/// Passes entries on to `inner`, advancing `bar` by each entry's data.
pub struct WithProgress<'a> {
    pub inner: &'a mut dyn LayerSink,
    pub bar: &'a ProgressBar,
}

impl LayerSink for WithProgress<'_> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        self.inner.entry(entry, data)?;
        self.bar.inc(entry.kind.data_len());
        self.bar.set_message(entry.path.to_string());
        Ok(())
    }
}

/// Prints `value` to standard output as JSON, or as text through `text`.
pub fn print<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<ExitCode> {
    let mut out = BufWriter::new(io::stdout().lock());
    let written = if json {
        serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from).and_then(|_| writeln!(out))
    } else {
        text(&mut out)
    };
    written.and_then(|_| out.flush()).map_err(|e| Error::io("writing to standard output", e))?;
    Ok(ExitCode::SUCCESS)
}
