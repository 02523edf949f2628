//! A layer applied onto a Linux directory, so a Linux host has a browsable view of a Windows
//! image (`Files/…`, `Hives/…`): what a differ does for containerd's `bind` and `overlay`
//! mounts. Windows metadata goes into the `user.windows.*` extended attributes the CIM FUSE
//! mount shows ([`winlayer_core::xattrs`]); links become POSIX symlinks as `cim extract`
//! makes them.
//!
//! Deletions follow the OCI rules in one of two forms ([`Whiteouts`]): removed from the
//! directory (a `bind` mount holds the whole view), or recorded as overlayfs whiteouts (a
//! character device 0/0, `trusted.overlay.opaque=y`) in an overlay's upper directory, as
//! containerd's own applier does for overlay mounts.
//!
//! Nothing touches the directory until [`DirApply::commit`]: the layer is written into a
//! staging directory beside it, so a layer that fails half way (or whose blob turns out not to
//! match its digest) leaves the directory as it was. Commit then removes what the layer deletes
//! and renames the staged objects into place. Names are checked single components, created
//! only below directories this apply made or found to be real directories, never through a
//! link.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cimfs::extract::posix_target;
use winlayer_core::canonical::copy_exact;
use winlayer_core::xattrs::{self, ObjectXattrs};
use winlayer_core::{Data, Entry, EntryKind, Error, FileTime, LayerPath, LayerSink, Metadata, Result};

use crate::host::Kind;

/// How deletions are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// The directory is the whole view: deleted paths are removed from it.
    Remove,
    /// The directory is an overlay's upper directory: deletions are overlayfs whiteouts.
    Overlay,
}

/// What an apply wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Applied {
    /// Directories created or updated.
    pub directories: u64,
    /// Regular files written.
    pub files: u64,
    /// Hard links made (or files copied from a lower layer for a link to one).
    pub hard_links: u64,
    /// Symlinks made for symlinks and junctions.
    pub symlinks: u64,
    /// Whiteouts and opaque directories.
    pub deletions: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Alternate streams kept as extended attributes.
    pub streams: u64,
    /// Alternate streams over 64 KiB, which an extended attribute cannot hold: left out.
    pub streams_skipped: u64,
}

/// Applies one layer (a [`LayerSink`]; then [`DirApply::commit`], or drop it to leave the
/// directory untouched).
pub struct DirApply {
    target: PathBuf,
    /// Where a hard link to a file of a lower layer finds it, nearest first.
    lowers: Vec<PathBuf>,
    whiteouts: Whiteouts,
    stage: tempfile::TempDir,
    /// Staged directories, as paths relative to the stage; `true` for those the layer
    /// describes (their metadata is the layer's), `false` for parents made to hold them.
    dirs: HashMap<PathBuf, bool>,
    /// Staged regular files, for links to them and their streams.
    files: HashSet<PathBuf>,
    /// `Remove` mode: paths to delete (`false`) or directories to empty (`true`) at commit.
    deletions: Vec<(PathBuf, bool)>,
    dir_times: Vec<(PathBuf, FileTimes)>,
    applied: Applied,
    buf: Vec<u8>,
}

impl DirApply {
    /// Starts applying onto the existing directory `target`. `lowers` are the directories a
    /// hard link to a file below this layer is looked up in, nearest first (for a `bind` view,
    /// `target` itself; for an overlay, its lower directories).
    pub fn start(target: &Path, lowers: &[PathBuf], whiteouts: Whiteouts) -> Result<DirApply> {
        if Kind::of(target)? != Some(Kind::Dir) {
            return Err(Error::Invalid(format!("{} is not a directory to apply a layer onto", target.display())));
        }
        let beside = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let stage = tempfile::Builder::new()
            .prefix(".winlayer-apply-")
            .tempdir_in(beside)
            .map_err(|e| Error::io(format!("creating a staging directory in {}", beside.display()), e))?;
        Ok(DirApply {
            target: target.to_path_buf(),
            lowers: lowers.to_vec(),
            whiteouts,
            stage,
            dirs: HashMap::from([(PathBuf::new(), false)]),
            files: HashSet::new(),
            deletions: Vec::new(),
            dir_times: Vec::new(),
            applied: Applied::default(),
            buf: vec![0; 256 << 10],
        })
    }

    /// The layer path as a relative host path of checked single components.
    fn relative(path: &LayerPath) -> Result<PathBuf> {
        let mut out = PathBuf::new();
        for name in path.components() {
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
                return Err(Error::Invalid(format!("{path}: refusing to apply a name like {name:?}")));
            }
            out.push(name);
        }
        Ok(out)
    }

    /// Makes sure every parent of `rel` is a staged directory, creating the missing ones; a
    /// parent the layer made something else, or that is not a real directory below, is refused.
    fn parents(&mut self, path: &LayerPath, rel: &Path) -> Result<()> {
        let mut at = PathBuf::new();
        for name in rel.parent().into_iter().flat_map(Path::components) {
            at.push(name);
            if self.dirs.contains_key(&at) {
                continue;
            }
            if self.files.contains(&at) || Kind::of(&self.stage.path().join(&at))?.is_some() {
                return Err(Error::Invalid(format!("{path}: its parent {} is not a directory", at.display())));
            }
            if self.whiteouts == Whiteouts::Remove
                && let Some(kind) = Kind::of(&self.target.join(&at))?.filter(|k| *k != Kind::Dir)
            {
                return Err(Error::Invalid(format!(
                    "{path}: its parent {} is {} below; refusing to write through it",
                    at.display(),
                    kind.describe()
                )));
            }
            let staged = self.stage.path().join(&at);
            fs::create_dir(&staged).map_err(|e| Error::io(format!("creating {}", staged.display()), e))?;
            self.dirs.insert(at.clone(), false);
        }
        Ok(())
    }

    fn new_name(&mut self, path: &LayerPath, rel: &Path) -> Result<PathBuf> {
        self.parents(path, rel)?;
        let staged = self.stage.path().join(rel);
        if self.dirs.contains_key(rel) || Kind::of(&staged)?.is_some() {
            return Err(Error::Invalid(format!("{path}: the layer holds it twice")));
        }
        Ok(staged)
    }

    fn set_metadata(&mut self, staged: &Path, meta: &Metadata, reparse: Option<&[u8]>) -> Result<()> {
        let times = [meta.creation, meta.last_write, meta.last_access, meta.change].map(|t| t.ticks() as u64);
        let all = ObjectXattrs {
            attributes: meta.attributes,
            times,
            security: meta.security.as_deref(),
            reparse,
            eas: &meta.eas,
        }
        .to_vec();
        for (name, value) in all {
            set_xattr(staged, &name, &value)?;
        }
        Ok(())
    }

    /// A file below this layer that a hard link names, found in the lower directories.
    fn lower_file(&self, path: &LayerPath, target: &LayerPath) -> Result<PathBuf> {
        let rel = Self::relative(target)?;
        for lower in &self.lowers {
            let mut at = lower.clone();
            let mut ok = true;
            for (i, name) in rel.components().enumerate() {
                at.push(name);
                let kind = Kind::of(&at)?;
                let last = i + 1 == rel.components().count();
                if kind != Some(if last { Kind::File } else { Kind::Dir }) {
                    ok = false;
                    break;
                }
            }
            if ok {
                return Ok(at);
            }
        }
        Err(Error::Invalid(format!("{path}: hard link to {target}, which is neither in the layer nor a file below it")))
    }

    /// Removes what the layer deletes, moves the staged objects into the directory and sets
    /// the directories' times.
    pub fn commit(mut self) -> Result<Applied> {
        for (rel, t) in self.dir_times.iter().rev() {
            set_times(&self.stage.path().join(rel), *t)?;
        }
        for (rel, empty) in std::mem::take(&mut self.deletions) {
            remove_below(&self.target, &rel, empty)?;
        }
        merge(self.stage.path(), &self.target, Path::new(""), &self.dirs)?;
        Ok(self.applied)
    }
}

impl LayerSink for DirApply {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let path = &entry.path;
        let rel = Self::relative(path)?;
        match &entry.kind {
            EntryKind::Directory => {
                let staged = self.stage.path().join(&rel);
                match self.dirs.get(&rel) {
                    Some(true) => return Err(Error::Invalid(format!("{path}: the layer holds it twice"))),
                    Some(false) => {}
                    None => {
                        let staged = self.new_name(path, &rel)?;
                        fs::create_dir(&staged).map_err(|e| Error::io(format!("creating {}", staged.display()), e))?;
                    }
                }
                self.dirs.insert(rel.clone(), true);
                self.set_metadata(&staged, &entry.meta, None)?;
                self.dir_times.push((rel, times(&entry.meta)));
                self.applied.directories += 1;
            }
            EntryKind::File { size } => {
                let staged = self.new_name(path, &rel)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&staged)
                    .map_err(|e| Error::io(format!("creating {}", staged.display()), e))?;
                copy_exact(data, *size, &mut file, path, &mut self.buf)?;
                file.flush().map_err(|e| Error::io(format!("writing {}", staged.display()), e))?;
                file.set_times(times(&entry.meta))
                    .map_err(|e| Error::io(format!("setting times of {}", staged.display()), e))?;
                self.set_metadata(&staged, &entry.meta, None)?;
                self.files.insert(rel);
                self.applied.files += 1;
                self.applied.bytes += size;
            }
            EntryKind::Symlink(link) => {
                let staged = self.new_name(path, &rel)?;
                let names: Vec<String> = path.components().map(str::to_owned).collect();
                std::os::unix::fs::symlink(posix_target(&names, &link.target), &staged)
                    .map_err(|e| Error::io(format!("creating symlink {}", staged.display()), e))?;
                self.applied.symlinks += 1;
            }
            EntryKind::HardLink { target } => {
                let staged = self.new_name(path, &rel)?;
                let target_rel = Self::relative(target)?;
                if self.files.contains(&target_rel) {
                    fs::hard_link(self.stage.path().join(&target_rel), &staged)
                        .map_err(|e| Error::io(format!("linking {}", staged.display()), e))?;
                } else {
                    // A file of a lower layer: the view gets a copy (an overlay's upper
                    // directory cannot link into its lowers).
                    let lower = self.lower_file(path, target)?;
                    fs::copy(&lower, &staged)
                        .map_err(|e| Error::io(format!("copying {} to {}", lower.display(), staged.display()), e))?;
                    copy_xattrs(&lower, &staged)?;
                    let meta =
                        fs::metadata(&lower).map_err(|e| Error::io(format!("reading {}", lower.display()), e))?;
                    let t = FileTimes::new().set_modified(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                    set_times(&staged, t)?;
                }
                self.files.insert(rel);
                self.applied.hard_links += 1;
            }
            EntryKind::Stream { name, size } => {
                if !self.files.contains(&rel) && self.dirs.get(&rel) != Some(&true) {
                    return Err(Error::Invalid(format!(
                        "{path}:{name}: a stream of something this layer does not hold"
                    )));
                }
                if *size > xattrs::MAX_STREAM {
                    self.applied.streams_skipped += 1;
                    return Ok(());
                }
                let mut value = Vec::with_capacity(*size as usize);
                copy_exact(data, *size, &mut value, path, &mut self.buf)?;
                set_xattr(&self.stage.path().join(&rel), &xattrs::stream(name), &value)?;
                self.applied.streams += 1;
            }
            EntryKind::Whiteout | EntryKind::Opaque => {
                let opaque = entry.kind == EntryKind::Opaque;
                self.applied.deletions += 1;
                match self.whiteouts {
                    Whiteouts::Remove => self.deletions.push((rel, opaque)),
                    Whiteouts::Overlay if opaque => {
                        if !self.dirs.contains_key(&rel) {
                            let staged = self.new_name(path, &rel)?;
                            fs::create_dir(&staged)
                                .map_err(|e| Error::io(format!("creating {}", staged.display()), e))?;
                            self.dirs.insert(rel.clone(), false);
                        }
                        set_xattr(&self.stage.path().join(&rel), "trusted.overlay.opaque", b"y")?;
                    }
                    Whiteouts::Overlay => {
                        let staged = self.new_name(path, &rel)?;
                        overlay_whiteout(&staged)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn system_time(t: FileTime) -> SystemTime {
    let unix = t.ticks() - FileTime::UNIX_EPOCH.ticks();
    let d = Duration::from_nanos(unix.unsigned_abs().saturating_mul(100));
    let at = if unix >= 0 { SystemTime::UNIX_EPOCH.checked_add(d) } else { SystemTime::UNIX_EPOCH.checked_sub(d) };
    at.unwrap_or(SystemTime::UNIX_EPOCH)
}

fn times(meta: &Metadata) -> FileTimes {
    FileTimes::new().set_modified(system_time(meta.last_write)).set_accessed(system_time(meta.last_access))
}

fn set_times(path: &Path, t: FileTimes) -> Result<()> {
    File::open(path)
        .and_then(|f| f.set_times(t))
        .map_err(|e| Error::io(format!("setting times of {}", path.display()), e))
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    xattr::set(path, name, value).map_err(|e| {
        Error::io(format!("setting {name} on {} (does the file system take user xattrs?)", path.display()), e)
    })
}

fn copy_xattrs(from: &Path, to: &Path) -> Result<()> {
    let names = xattr::list(from).map_err(|e| Error::io(format!("listing attributes of {}", from.display()), e))?;
    for name in names.filter(|n| n.to_string_lossy().starts_with(xattrs::PREFIX)) {
        if let Some(value) =
            xattr::get(from, &name).map_err(|e| Error::io(format!("reading attributes of {}", from.display()), e))?
        {
            set_xattr(to, &name.to_string_lossy(), &value)?;
        }
    }
    Ok(())
}

/// overlayfs' whiteout: a character device 0/0.
fn overlay_whiteout(path: &Path) -> Result<()> {
    use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};
    mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), makedev(0, 0))
        .map_err(|e| Error::io(format!("creating the overlay whiteout {} (needs CAP_MKNOD)", path.display()), e.into()))
}

/// Removes `rel` below `root` (or, with `empty`, everything in the directory `rel`), never
/// following a link on the way; a path that is not there is nothing to remove.
fn remove_below(root: &Path, rel: &Path, empty: bool) -> Result<()> {
    let mut at = root.to_path_buf();
    let count = rel.components().count();
    for (i, name) in rel.components().enumerate() {
        at.push(name);
        let last = i + 1 == count;
        match Kind::of(&at)? {
            None => return Ok(()),
            Some(Kind::Dir) => {}
            Some(_) if last && !empty => {}
            Some(_) => return Ok(()),
        }
    }
    let remove = |p: &Path| -> Result<()> {
        let result = if Kind::of(p)? == Some(Kind::Dir) { fs::remove_dir_all(p) } else { fs::remove_file(p) };
        result.map_err(|e| Error::io(format!("removing {}", p.display()), e))
    };
    if !empty {
        return remove(&at);
    }
    for item in fs::read_dir(&at).map_err(|e| Error::io(format!("reading {}", at.display()), e))? {
        remove(&item.map_err(|e| Error::io(format!("reading {}", at.display()), e))?.path())?;
    }
    Ok(())
}

/// Moves what `stage/rel` holds into `target/rel`: directories present on both sides are
/// merged (taking the layer's metadata when the layer describes them), anything else replaces
/// what was there.
fn merge(stage: &Path, target: &Path, rel: &Path, dirs: &HashMap<PathBuf, bool>) -> Result<()> {
    let from = stage.join(rel);
    let items = fs::read_dir(&from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
    for item in items {
        let name = item.map_err(|e| Error::io(format!("reading {}", from.display()), e))?.file_name();
        let child = rel.join(&name);
        let (staged, there) = (stage.join(&child), target.join(&child));
        let described = dirs.get(&child).copied();
        match (described, Kind::of(&there)?) {
            (Some(layer_meta), Some(Kind::Dir)) => {
                merge(stage, target, &child, dirs)?;
                if layer_meta {
                    copy_xattrs(&staged, &there)?;
                    let meta =
                        fs::metadata(&staged).map_err(|e| Error::io(format!("reading {}", staged.display()), e))?;
                    let mut t = FileTimes::new();
                    if let Ok(m) = meta.modified() {
                        t = t.set_modified(m);
                    }
                    if let Ok(a) = meta.accessed() {
                        t = t.set_accessed(a);
                    }
                    set_times(&there, t)?;
                }
            }
            (_, existing) => {
                if let Some(kind) = existing {
                    let removed = if kind == Kind::Dir { fs::remove_dir_all(&there) } else { fs::remove_file(&there) };
                    removed.map_err(|e| Error::io(format!("replacing {}", there.display()), e))?;
                }
                fs::rename(&staged, &there)
                    .map_err(|e| Error::io(format!("moving {} into place", there.display()), e))?;
            }
        }
    }
    Ok(())
}
