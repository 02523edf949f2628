//! Output files written whole or not at all, progress bars on a terminal, and reports as text
//! or JSON.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;
use wcow_tar::{Compression, LayerReader, Output};
use winlayer_core::{Data, Entry, Error, LayerSink, Result};

/// Refuses, before any work is done, an output path that cannot become the file: a directory,
/// or a path whose directory does not exist.
pub fn check_output(path: &Path) -> Result<()> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    if path.is_dir() {
        return Err(Error::Invalid(format!("{}: is a directory; give the path of the file to write", path.display())));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Invalid(format!("{}: its directory {} does not exist", path.display(), dir.display())));
    }
    Ok(())
}

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
/// succeeds. For `-` the temporary is in the temporary directory and copied to standard
/// output. Errors name `path`, never the temporary.
pub fn write_file(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if path.as_os_str() == "-" {
        let temp = winlayer_core::temp::file_in(&std::env::temp_dir())
            .map_err(|e| Error::io("creating a temporary file for standard output", e))?;
        write(temp.path()).map_err(|e| told_as(e, temp.path(), "standard output"))?;
        let mut file = temp.reopen().map_err(|e| Error::io("reading back what goes to standard output", e))?;
        io::copy(&mut file, &mut io::stdout().lock()).map_err(|e| Error::io("writing to standard output", e))?;
        return Ok(());
    }
    let temp = temp_beside(path)?;
    write(temp.path()).map_err(|e| told_as(e, temp.path(), &path.display().to_string()))?;
    temp.as_file().sync_all().map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    temp.persist(path).map_err(|e| Error::io(format!("renaming into place {}", path.display()), e.error))?;
    Ok(())
}

/// An error about a temporary file, told about the file it was to become.
fn told_as(e: Error, temp: &Path, name: &str) -> Error {
    let temp = temp.display().to_string();
    match e {
        Error::Invalid(m) => Error::Invalid(m.replace(&temp, name)),
        Error::Io { context, source } => Error::Io { context: context.replace(&temp, name), source },
        other => other,
    }
}

/// Standard input copied into an unnamed temporary file, for formats read by position.
pub fn spool_stdin() -> Result<std::fs::File> {
    let mut file = tempfile::tempfile().map_err(|e| Error::io("creating a temporary file for standard input", e))?;
    io::copy(&mut io::stdin().lock(), &mut file).map_err(|e| Error::io("reading standard input", e))?;
    Ok(file)
}

/// A new temporary file in `path`'s directory, to be renamed to `path`.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    winlayer_core::temp::file_in(dir)
        .map_err(|e| Error::io(format!("creating a temporary file beside {}", path.display()), e))
}

/// On SIGINT or SIGTERM, removes the temporary files and directories this run made (see
/// `winlayer_core::temp`), then ends the process as the signal would have.
pub fn clean_up_on_signals() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                winlayer_core::temp::remove_created();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
            }
        });
    }
}

/// A byte-counting progress bar on standard error, drawn only on a terminal.
pub fn bar(total: Option<u64>, verb: &'static str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {rate} {wide_msg}"
    } else {
        "{prefix} {spinner} {bytes} {rate} {wide_msg}"
    };
    let style = ProgressStyle::with_template(template)
        .expect("valid template")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(s.pos(), s.elapsed()));
        })
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(verb);
    bar
}

/// The average rate so far ("12.50 MiB/s"); nothing until there is something to average
/// (a first estimate of 0 B/s says nothing true).
fn rate(done: u64, elapsed: std::time::Duration) -> String {
    if done == 0 || elapsed < std::time::Duration::from_millis(200) {
        return String::new();
    }
    format!("{}/s", indicatif::BinaryBytes((done as f64 / elapsed.as_secs_f64()) as u64))
}

/// A progress bar over what `reader` reads: its position in the uncompressed tar against the
/// input's size (`total`, when known), so it ends at 100%.
pub fn reading_bar(reader: &mut LayerReader, total: Option<u64>, verb: &'static str) -> ProgressBar {
    let bar = bar(total, verb);
    let position = bar.clone();
    reader.on_progress(move |at| position.set_position(at));
    bar
}

/// Passes entries on to `inner`, advancing `bar` by each entry's data (for writing, and for
/// a directory source, which has no size to count against).
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

/// Passes entries on to `inner`, naming each on `bar`, which the reader advances
/// ([`reading_bar`]).
pub struct Naming<'a> {
    pub inner: &'a mut dyn LayerSink,
    pub bar: &'a ProgressBar,
}

impl LayerSink for Naming<'_> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        self.inner.entry(entry, data)?;
        self.bar.set_message(entry.path.to_string());
        Ok(())
    }
}

/// A message on one line: its lines joined with ": ", leaving out the source excerpts some
/// parsers draw under their message (lines of `|` and `^`).
pub fn one_line(message: &str) -> String {
    let excerpt = |l: &str| l.starts_with('|') || l.contains(" | ");
    message.lines().map(str::trim).filter(|l| !l.is_empty() && !excerpt(l)).collect::<Vec<_>>().join(": ")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use winlayer_core::dir::{DirOptions, DirSource};
    use winlayer_core::{Collector, LayerSource};

    #[test]
    fn a_reading_bar_ends_at_the_size_of_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a.bin"), vec![7u8; 5000]).unwrap();
        std::fs::write(tree.join("sub/b.txt"), b"b").unwrap();
        let mut collector = Collector::new();
        DirSource::new(&tree, DirOptions::default()).send_to(&mut collector).unwrap();
        let tar = dir.path().join("l.tar");
        let bytes = wcow_tar::write_sorted(collector.finish().unwrap(), Vec::new()).unwrap();
        std::fs::write(&tar, &bytes).unwrap();

        let input = wcow_tar::Input::open(&tar).unwrap();
        let total = input.remaining();
        assert_eq!(total, Some(bytes.len() as u64));
        let mut reader = LayerReader::new(input, wcow_tar::Mode::Strict);
        let bar = reading_bar(&mut reader, total, "reading");
        reader.read_into(&mut Naming { inner: &mut Collector::new(), bar: &bar }).unwrap();
        // Headers, padding and the end-of-archive blocks count too, not just file data.
        assert_eq!(bar.position(), bytes.len() as u64);
        assert_eq!(bar.length(), Some(bytes.len() as u64));
    }

    #[test]
    fn the_rate_shows_once_there_is_one() {
        assert_eq!(rate(0, Duration::from_secs(3)), "", "nothing read yet: no 0 B/s");
        assert_eq!(rate(1 << 20, Duration::from_millis(50)), "", "too early to average");
        assert_eq!(rate(10 << 20, Duration::from_secs(2)), "5.00 MiB/s");
    }

    #[test]
    fn messages_fold_onto_one_line() {
        let toml = "TOML parse error at line 1, column 8\n  |\n1 | root = [\n  |        ^\nunclosed array\n";
        assert_eq!(one_line(toml), "TOML parse error at line 1, column 8: unclosed array");
        assert_eq!(one_line("plain"), "plain");
    }
}
