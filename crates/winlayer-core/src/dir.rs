//! A plain directory tree as a layer source: the tree becomes `Files/…` (or, when it already
//! holds `Files/`, `Hives/`, `UtilityVM/`, is taken as a layer), with default Windows metadata.

use std::collections::HashMap;
use std::fs::{self, Metadata as FsMetadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::attrs;
use crate::check::Problem;
use crate::entry::{Data, Entry, EntryKind, Error, LayerSink, LayerSource, Metadata, Result};
use crate::filetime::FileTime;
use crate::path::{LayerPath, TOP_LEVEL};
use crate::reparse::Link;
use crate::security::{SecurityDescriptor, Sid};

/// How a directory becomes a layer.
#[derive(Clone, Debug)]
pub struct DirOptions {
    /// A base layer: no `Hives/` entry.
    pub base: bool,
    /// Owner of every object, as an SDDL SID (`BA`, `BU`, `S-1-…`).
    pub owner: String,
    /// Clamp every time to at most this many seconds since 1970 (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

impl Default for DirOptions {
    fn default() -> Self {
        DirOptions { base: false, owner: "BA".into(), source_date_epoch: None }
    }
}

/// Security descriptors for new files and directories.
#[derive(Debug)]
pub struct DefaultSecurity {
    /// For files and symlinks.
    pub file: Arc<[u8]>,
    /// For directories.
    pub dir: Arc<[u8]>,
}

/// The descriptors Windows gives new files and directories under `C:\`, with the chosen
/// owner: full control for Administrators and SYSTEM, read and execute for Users.
pub fn default_security(owner: &str) -> Result<DefaultSecurity, Error> {
    let owner = Sid::parse(owner).map_err(|e| Error::Invalid(format!("--owner: {e}")))?.to_sddl();
    let file = format!("O:{owner}G:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)");
    let dir = format!(
        "O:{owner}G:SYD:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;LC;;;BU)(A;CI;DC;;;BU)"
    );
    let bytes = |s: &str| {
        SecurityDescriptor::from_sddl(s).map(|sd| Arc::from(sd.to_bytes())).map_err(|e| Error::Invalid(e.to_string()))
    };
    Ok(DefaultSecurity { file: bytes(&file)?, dir: bytes(&dir)? })
}

/// Whether `root` is laid out as a layer: a `Files` directory and nothing but the layer's
/// top-level names beside it.
pub fn is_layer_layout(root: &Path) -> Result<bool> {
    let mut has_files = false;
    for item in fs::read_dir(root).map_err(|e| Error::io(format!("reading {}", root.display()), e))? {
        let item = item.map_err(|e| Error::io(format!("reading {}", root.display()), e))?;
        let name = item.file_name();
        match name.to_str() {
            Some(n) if TOP_LEVEL.contains(&n) => has_files |= n == "Files" && item.path().is_dir(),
            _ => return Ok(false),
        }
    }
    Ok(has_files)
}

/// A directory tree read as a layer.
pub struct DirSource {
    root: PathBuf,
    options: DirOptions,
}

impl DirSource {
    /// Reads `root` with `options`.
    pub fn new(root: impl Into<PathBuf>, options: DirOptions) -> Self {
        DirSource { root: root.into(), options }
    }
}

struct Walk<'a> {
    sink: &'a mut dyn LayerSink,
    options: DirOptions,
    file_sd: Arc<[u8]>,
    dir_sd: Arc<[u8]>,
    /// Root of the container's C: drive on disk, for resolving symlink targets.
    drive_root: PathBuf,
    /// First name of every multiply-linked file, by (device, inode). Windows builds do not
    /// detect hard links: std exposes no stable file index there.
    #[cfg_attr(not(unix), allow(dead_code))]
    inodes: HashMap<(u64, u64), LayerPath>,
    problems: Vec<Problem>,
}

impl LayerSource for DirSource {
    fn send_to(self, sink: &mut dyn LayerSink) -> Result<()> {
        let meta = fs::metadata(&self.root).map_err(|e| Error::io(format!("reading {}", self.root.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!("{} is not a directory", self.root.display())));
        }
        let layered = is_layer_layout(&self.root)?;
        let DefaultSecurity { file: file_sd, dir: dir_sd } = default_security(&self.options.owner)?;
        let drive_root = if layered { self.root.join("Files") } else { self.root.clone() };
        let mut walk = Walk {
            sink,
            options: self.options.clone(),
            file_sd,
            dir_sd,
            drive_root,
            inodes: HashMap::new(),
            problems: Vec::new(),
        };
        let root_time = walk.time(&meta);
        if layered {
            if self.options.base && self.root.join("Hives").exists() {
                walk.problems.push(Problem::error(
                    "Hives".to_string(),
                    "a base layer carries no Hives/ (Windows generates it on import)",
                ));
            }
            walk.children(&self.root, None)?;
            if !self.options.base && !self.root.join("Hives").exists() {
                walk.synthetic_dir("Hives", root_time)?;
            }
        } else {
            walk.synthetic_dir("Files", root_time)?;
            if !self.options.base {
                walk.synthetic_dir("Hives", root_time)?;
            }
            let files = LayerPath::parse("Files").expect("valid");
            walk.children(&self.root, Some(&files))?;
        }
        if walk.problems.is_empty() { Ok(()) } else { Err(Error::Problems(walk.problems)) }
    }
}

impl Walk<'_> {
    fn time(&self, meta: &FsMetadata) -> FileTime {
        let (secs, nanos) = match meta.modified().ok().map(|t| t.duration_since(UNIX_EPOCH)) {
            Some(Ok(d)) => (d.as_secs() as i64, d.subsec_nanos()),
            Some(Err(before)) => {
                let d = before.duration();
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            }
            None => (0, 0),
        };
        let (secs, nanos) = match self.options.source_date_epoch {
            Some(limit) if secs >= limit => (limit, 0),
            _ => (secs, nanos),
        };
        FileTime::from_unix(secs, nanos).unwrap_or(FileTime::UNIX_EPOCH)
    }

    fn meta(&self, attributes: u32, time: FileTime, dir: bool) -> Metadata {
        let mut m = Metadata::with_times(attributes, time);
        m.security = Some(if dir { self.dir_sd.clone() } else { self.file_sd.clone() });
        m
    }

    fn synthetic_dir(&mut self, name: &str, time: FileTime) -> Result<()> {
        let entry = Entry {
            path: LayerPath::parse(name).expect("top-level name"),
            kind: EntryKind::Directory,
            meta: self.meta(attrs::DIRECTORY, time, true),
        };
        self.sink.entry(&entry, &mut Data::empty())
    }

    /// Sends the children of `dir` (sorted by name bytes), each below `parent` in the layer.
    fn children(&mut self, dir: &Path, parent: Option<&LayerPath>) -> Result<()> {
        let mut names = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))? {
            names.push(item.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?.file_name());
        }
        names.sort();
        for name in names {
            let disk = dir.join(&name);
            let Some(name) = name.to_str() else {
                self.problems.push(Problem::error(
                    disk.display().to_string(),
                    "file name is not valid UTF-8, so Windows cannot store it",
                ));
                continue;
            };
            let text = match parent {
                Some(p) => format!("{p}/{name}"),
                None => name.to_string(),
            };
            match LayerPath::parse(&text) {
                Ok(path) => self.object(&disk, path)?,
                Err(e) => self.problems.push(Problem::error(text, e.rule)),
            }
        }
        Ok(())
    }

    fn object(&mut self, disk: &Path, path: LayerPath) -> Result<()> {
        let meta = fs::symlink_metadata(disk).map_err(|e| Error::io(format!("reading {}", disk.display()), e))?;
        let time = self.time(&meta);
        let kind = meta.file_type();
        if kind.is_dir() {
            let entry =
                Entry { path: path.clone(), kind: EntryKind::Directory, meta: self.meta(attrs::DIRECTORY, time, true) };
            self.sink.entry(&entry, &mut Data::empty())?;
            return self.children(disk, Some(&path));
        }
        if let Some(first) = self.earlier_name(&meta, &path) {
            let entry = Entry {
                path,
                kind: EntryKind::HardLink { target: first },
                meta: Metadata::with_times(attrs::ARCHIVE, time),
            };
            return self.sink.entry(&entry, &mut Data::empty());
        }
        if kind.is_symlink() {
            return match self.link(disk, &path) {
                Ok((link, is_dir)) => {
                    let attributes = attrs::REPARSE_POINT | if is_dir { attrs::DIRECTORY } else { attrs::ARCHIVE };
                    let entry =
                        Entry { path, kind: EntryKind::Symlink(link), meta: self.meta(attributes, time, false) };
                    self.sink.entry(&entry, &mut Data::empty())
                }
                Err(rule) => {
                    self.problems.push(Problem::error(path.to_string(), rule));
                    Ok(())
                }
            };
        }
        if !kind.is_file() {
            self.problems.push(Problem::error(
                path.to_string(),
                "not a regular file, directory or symlink (sockets, FIFOs and devices have no Windows form)",
            ));
            return Ok(());
        }
        let size = meta.len();
        let entry = Entry { path, kind: EntryKind::File { size }, meta: self.meta(attrs::ARCHIVE, time, false) };
        self.sink.entry(&entry, &mut Data::from_path(disk, size))
    }

    #[cfg(unix)]
    fn earlier_name(&mut self, meta: &FsMetadata, path: &LayerPath) -> Option<LayerPath> {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() < 2 {
            return None;
        }
        match self.inodes.entry((meta.dev(), meta.ino())) {
            std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(path.clone());
                None
            }
        }
    }

    #[cfg(not(unix))]
    fn earlier_name(&mut self, _meta: &FsMetadata, _path: &LayerPath) -> Option<LayerPath> {
        None
    }

    /// The Windows form of a symlink's target, and whether it names a directory in the tree.
    fn link(&self, disk: &Path, path: &LayerPath) -> Result<(Link, bool), String> {
        let target = fs::read_link(disk).map_err(|e| format!("reading the link: {e}"))?;
        let target = target.to_str().ok_or("link target is not valid UTF-8")?.to_string();
        if target.is_empty() {
            return Err("empty link target".into());
        }
        // Resolve against the container's C:\ (the Files root), lexically, refusing escapes.
        let mut stack: Vec<&str> =
            if target.starts_with('/') { Vec::new() } else { path.components().skip(1).collect::<Vec<_>>() };
        if !target.starts_with('/') {
            stack.pop();
        }
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if stack.pop().is_none() {
                        return Err(format!("link target {target:?} climbs above the root of the layer's drive"));
                    }
                }
                p => stack.push(p),
            }
        }
        let windows = if target.starts_with('/') {
            format!(
                "C:\\{}",
                target.trim_start_matches('/').split('/').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\\")
            )
        } else {
            target.split('/').filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("\\")
        };
        let is_dir = resolves_to_dir(&self.drive_root, &stack);
        let link = Link { target: windows, junction: false };
        link.check().map_err(|e| e.to_string())?;
        Ok((link, is_dir))
    }
}

/// Whether `parts` (below `root`) names a directory, following symlinks only inside `root`.
fn resolves_to_dir(root: &Path, parts: &[&str]) -> bool {
    let mut todo: Vec<String> = parts.iter().rev().map(|s| s.to_string()).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate: PathBuf = resolved.iter().chain([&part]).fold(root.to_path_buf(), |p, c| p.join(c));
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                let Ok(next) = fs::read_link(&candidate) else {
                    return false;
                };
                let Some(next) = next.to_str() else {
                    return false;
                };
                if hops > 40 {
                    return false;
                }
                if next.starts_with('/') {
                    resolved.clear();
                }
                todo.extend(next.split('/').rev().map(str::to_string));
            }
            Ok(_) => resolved.push(part),
            Err(_) => return false,
        }
    }
    fs::symlink_metadata(resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c))).is_ok_and(|m| m.is_dir())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::canonical::Collector;
    use std::os::unix::fs::symlink;

    fn collect(root: &Path, options: DirOptions) -> Result<Vec<Entry>> {
        let mut c = Collector::new();
        DirSource::new(root, options).send_to(&mut c)?;
        Ok(c.finish()?.entries().cloned().collect())
    }

    #[test]
    fn plain_tree_becomes_files() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("app/bin")).unwrap();
        fs::write(t.path().join("app/bin/tool.exe"), b"MZ").unwrap();
        fs::hard_link(t.path().join("app/bin/tool.exe"), t.path().join("app/alias.exe")).unwrap();
        symlink("bin", t.path().join("app/bindir")).unwrap();
        symlink("/app/bin/tool.exe", t.path().join("app/abs")).unwrap();
        let entries = collect(t.path(), DirOptions { source_date_epoch: Some(1000), ..Default::default() }).unwrap();
        let listing: Vec<_> = entries.iter().map(|e| format!("{} {}", e.kind.name(), e.path)).collect();
        assert_eq!(
            listing,
            [
                "dir Files",
                "dir Files/app",
                "symlink Files/app/abs",
                "file Files/app/alias.exe",
                "dir Files/app/bin",
                "hardlink Files/app/bin/tool.exe",
                "symlink Files/app/bindir",
                "dir Hives"
            ]
        );
        let by_name = |n: &str| entries.iter().find(|e| e.path.as_str() == n).unwrap();
        assert_eq!(
            by_name("Files/app/bindir").kind,
            EntryKind::Symlink(Link { target: "bin".into(), junction: false })
        );
        assert_eq!(by_name("Files/app/bindir").meta.attributes, attrs::REPARSE_POINT | attrs::DIRECTORY);
        assert_eq!(
            by_name("Files/app/abs").kind,
            EntryKind::Symlink(Link { target: "C:\\app\\bin\\tool.exe".into(), junction: false })
        );
        assert_eq!(by_name("Files/app/abs").meta.attributes, attrs::REPARSE_POINT | attrs::ARCHIVE);
        assert!(entries.iter().all(|e| e.meta.last_write == FileTime::from_unix(1000, 0).unwrap()));
        let sd =
            SecurityDescriptor::from_bytes(by_name("Files/app/alias.exe").meta.security.as_deref().unwrap()).unwrap();
        assert_eq!(sd.to_sddl(), "O:BAG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)");
    }

    #[test]
    fn layer_layout_and_base() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("Files/Windows")).unwrap();
        fs::create_dir_all(t.path().join("UtilityVM/Files")).unwrap();
        let entries = collect(t.path(), DirOptions { base: true, ..Default::default() }).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(names, ["Files", "Files/Windows", "UtilityVM", "UtilityVM/Files"]);
    }

    #[test]
    fn reports_every_unstorable_name() {
        let t = tempfile::tempdir().unwrap();
        for bad in ["con", "a:b", "trailing.", "q?"] {
            fs::write(t.path().join(bad), b"").unwrap();
        }
        symlink("../../outside", t.path().join("escape")).unwrap();
        let Err(Error::Problems(problems)) = collect(t.path(), DirOptions::default()) else {
            panic!("expected problems")
        };
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems.iter().any(|p| p.message.contains("climbs above")));
    }

    #[test]
    fn owner_option() {
        assert!(default_security("BU").is_ok());
        assert!(default_security("nobody").unwrap_err().to_string().contains("--owner"));
    }
}
