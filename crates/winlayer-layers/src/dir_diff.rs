//! What a directory tree changes against another, as a layer: the entries of `upper` read as
//! `tar from-dir` reads a tree (a plain tree becomes `Files/…`, a tree laid out as a layer is
//! taken as one; default Windows metadata), without what `lower` already holds the same, plus
//! whiteouts for what `lower` has and `upper` lacks. Every change comes with its parent
//! directories, as importers want them.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use winlayer_core::dir::{DirOptions, DirSource, is_layer_layout};
use winlayer_core::{
    Collector, Data, Entry, EntryKind, Error, LayerPath, LayerSink, LayerSource, Metadata, Result, Sorted,
};

use crate::host::Kind;

/// The layer of what `upper` changes against `lower`, sorted into canonical order.
pub fn dir_changes(lower: &Path, upper: &Path, options: DirOptions) -> Result<Sorted> {
    let layered = is_layer_layout(upper)? || is_layer_layout(lower)?;
    let mut collector = Collector::new();
    let mut changes =
        Changes { lower, upper, layered, sink: &mut collector, dirs: HashMap::new(), sent: HashSet::new() };
    DirSource::new(upper, options).send_to(&mut changes)?;
    changes.whiteouts(lower, upper, &mut PathBuf::new())?;
    collector.finish()
}

struct Changes<'a> {
    lower: &'a Path,
    upper: &'a Path,
    /// Layer paths are host paths (else a plain tree's `x` is `Files/x`).
    layered: bool,
    sink: &'a mut dyn LayerSink,
    /// Directories of `upper` not sent (yet): sent once something below them changes.
    dirs: HashMap<LayerPath, Entry>,
    sent: HashSet<LayerPath>,
}

impl Changes<'_> {
    /// The host path below a tree root of a layer path; `None` for what the tree has no
    /// object for (a plain tree's `Files` and `Hives`).
    fn host(&self, path: &LayerPath) -> Option<PathBuf> {
        let mut names = path.components();
        if !self.layered && names.next() != Some("Files") {
            return None;
        }
        let rel: PathBuf = names.collect();
        (!rel.as_os_str().is_empty() || self.layered).then_some(rel)
    }

    fn layer_path(&self, rel: &Path) -> Result<LayerPath> {
        let text = rel.to_string_lossy().replace('\\', "/");
        let text = if self.layered { text } else { format!("Files/{text}") };
        LayerPath::parse(&text).map_err(|e| Error::Invalid(format!("{}: {e}", rel.display())))
    }

    /// Sends the unsent directories above `path`, top first.
    fn parents(&mut self, path: &LayerPath) -> Result<()> {
        let mut chain = Vec::new();
        let mut at = path.parent();
        while let Some(p) = at {
            at = p.parent();
            chain.push(p);
        }
        for dir in chain.into_iter().rev() {
            if let Some(entry) = self.dirs.remove(&dir) {
                self.sink.entry(&entry, &mut Data::empty())?;
                self.sent.insert(dir);
            }
        }
        Ok(())
    }

    fn send(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        self.parents(&entry.path)?;
        self.sent.insert(entry.path.clone());
        self.sink.entry(entry, data)
    }

    /// Whiteouts for what `lower/rel` holds and `upper/rel` lacks (only the topmost of a
    /// deleted tree).
    fn whiteouts(&mut self, lower: &Path, upper: &Path, rel: &mut PathBuf) -> Result<()> {
        let dir = lower.join(&*rel);
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
        };
        let mut names: Vec<_> = items
            .map(|i| i.map(|i| i.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        names.sort();
        for name in names {
            rel.push(&name);
            let (there, here) = (Kind::of(&upper.join(&*rel))?, Kind::of(&lower.join(&*rel))?);
            match (here, there) {
                (_, None) => {
                    let path = self.layer_path(rel)?;
                    let entry = Entry { path, kind: EntryKind::Whiteout, meta: Metadata::default() };
                    self.send(&entry, &mut Data::empty())?;
                }
                (Some(Kind::Dir), Some(Kind::Dir)) => self.whiteouts(lower, upper, rel)?,
                _ => {}
            }
            rel.pop();
        }
        Ok(())
    }
}

/// Whether two regular files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).map_err(|e| Error::io(format!("reading {}", p.display()), e));
    let (mut x, mut y) = (open(a)?, open(b)?);
    let (mut bx, mut by) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut x, &mut bx).map_err(|e| Error::io(format!("reading {}", a.display()), e))?;
        let m = read_full(&mut y, &mut by).map_err(|e| Error::io(format!("reading {}", b.display()), e))?;
        if n != m || bx[..n] != by[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}

impl LayerSink for Changes<'_> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let Some(rel) = self.host(&entry.path) else {
            // A plain tree's synthetic top directories: sent with what changes below them.
            self.dirs.insert(entry.path.clone(), entry.clone());
            return Ok(());
        };
        let (below, here) = (self.lower.join(&rel), self.upper.join(&rel));
        let same_file = |below: &Path| -> Result<bool> {
            let same_len = |p: &Path| {
                fs::metadata(p).map(|m| m.len()).map_err(|e| Error::io(format!("reading {}", p.display()), e))
            };
            Ok(Kind::of(below)? == Some(Kind::File)
                && same_len(below)? == same_len(&here)?
                && same_bytes(&here, below)?)
        };
        let unchanged = match &entry.kind {
            EntryKind::Directory => {
                if Kind::of(&below)? == Some(Kind::Dir) {
                    self.dirs.insert(entry.path.clone(), entry.clone());
                    return Ok(());
                }
                false
            }
            EntryKind::File { .. } => same_file(&below)?,
            EntryKind::Symlink(_) => {
                Kind::of(&below)? == Some(Kind::Link) && fs::read_link(&below).ok() == fs::read_link(&here).ok()
            }
            // A further name of a file whose first name is unchanged: nothing, if the same
            // bytes are below under this name too.
            EntryKind::HardLink { target } => !self.sent.contains(target) && same_file(&below)?,
            _ => false,
        };
        if unchanged { Ok(()) } else { self.send(entry, data) }
    }
}
