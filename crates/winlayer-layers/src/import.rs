//! A layer as a CIM container layer, laid out file for file as hcsshim's forked-CIM importer
//! lays it out (`pkg/ociwclayer/cim/import.go`, `internal/wclayer/cim`) for containerd's
//! `cimfs` snapshotter and the shim:
//!
//! * the layer's entries go into a CIM forked from the immediate parent's CIM (all CIMs of a
//!   chain in one directory); whiteouts delete from the parent's view;
//! * the "std files" — `Hives/<H>_DELTA` and `Files/Windows/System32/config/<H>` (any case),
//!   the utility VM's `SYSTEM`/`SOFTWARE` hives, `BCD` and `bootmgfw.efi` (exact case) — are
//!   written to the layer directory first and added to the CIM at the end, after
//!   processing; links to them are added after them; a std file that is a link, a directory or
//!   has alternate streams is refused;
//! * a base layer (no parents) gets `Hives/` with `Hives/<H>_BASE` hard links to its config
//!   hives (`DEFAULT` → `DEFAULTUSER_BASE`) and a root file `layout` holding
//!   `vhd-with-hives\n`, on the host and in the CIM;
//! * a non-base layer gets, for each `Hives/<H>_DELTA` it carries, `Hives/<H>_BASE`: the
//!   parent's `_BASE` with the delta merged onto it (`regf::merge`), on the host and in the CIM.
//!
//! Where winlayer differs from hcsshim (see docs/layers.md): the parent's `_BASE` is taken
//! from the nearest parent layer directory that has one (hcsshim only looks in the immediate
//! parent's and fails when a layer without that delta lies between); base layers with
//! whiteouts or `Hives/` content and layers carrying a generated `Hives/<H>_BASE` are refused.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use cimfs::{Cim, CimWriter};
use winlayer_core::canonical::copy_exact;
use winlayer_core::{Data, Entry, EntryKind, Error, LayerPath, LayerSink, Metadata, Result, attrs};

use crate::base::write_new;
use crate::host::{descend, find_file};
use crate::names::{HIVES, LAYOUT, LAYOUT_CONTENT, base_hive, config_path, is_std_file};

/// A parent layer: its directory and its CIM.
#[derive(Clone, Debug)]
pub struct Parent {
    /// The layer directory (holding its hives).
    pub dir: PathBuf,
    /// Its `.cim`.
    pub cim: PathBuf,
}

/// What an import wrote.
#[derive(Debug, serde::Serialize)]
pub struct ImportSummary {
    /// The layer directory.
    pub layer_dir: PathBuf,
    /// Whether the layer is a base layer (no parents).
    pub base: bool,
    /// Every file of the layer directory, as layer paths.
    pub host_files: Vec<String>,
    /// The CIM written.
    pub cim: cimfs::Summary,
}

/// Something added to the CIM once the layer's own entries are in: a std file (data on the
/// host), a link to one, or what processing generates.
struct Pending {
    entry: Entry,
    host: Option<PathBuf>,
    /// Outside the layer rules (hive links, `layout`).
    generated: bool,
}

/// Imports a layer (a [`LayerSink`]: send it the layer's entries, then call
/// [`CimLayerImport::finish`]). Until `finish` succeeds, the layer directory is a temporary
/// directory beside it and the CIM's files have temporary names; dropping the import or a
/// failure removes them.
pub struct CimLayerImport {
    writer: CimWriter,
    temp: tempfile::TempDir,
    layer_dir: PathBuf,
    /// `layer_dir` is an empty directory the layer replaces.
    replaces_empty: bool,
    parent_dirs: Vec<PathBuf>,
    pending: Vec<Pending>,
    /// Std files of the layer by case-folded path, as the layer spells them.
    std_files: HashMap<String, LayerPath>,
    buf: Vec<u8>,
}

impl CimLayerImport {
    /// Starts importing into the new directory `layer_dir` and the new image `cim`, forked
    /// from the first parent's. `parents` are the whole chain, immediate parent first, base
    /// layer last, each with its directory (as hcsshim's `parentLayerPaths` and
    /// `parentLayerCimPaths`).
    ///
    /// `layer_dir` may also be an empty directory (what containerd's snapshotter prepares for
    /// an extraction): it is replaced by the finished layer, and is empty again after a failure.
    pub fn start(layer_dir: &Path, cim: &Path, parents: &[Parent]) -> Result<CimLayerImport> {
        let replaces_empty = new_or_empty(layer_dir)?;
        check_parents(parents)?;
        let writer = CimWriter::create(cim, parents.first().map(|p| p.cim.as_path()))?;
        let beside = layer_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = winlayer_core::temp::dir_in(beside)
            .map_err(|e| Error::io(format!("creating a temporary directory in {}", beside.display()), e))?;
        Ok(CimLayerImport {
            writer,
            temp,
            layer_dir: layer_dir.to_path_buf(),
            replaces_empty,
            parent_dirs: parents.iter().map(|p| p.dir.clone()).collect(),
            pending: Vec::new(),
            std_files: HashMap::new(),
            buf: vec![0; 256 << 10],
        })
    }

    fn base(&self) -> bool {
        self.parent_dirs.is_empty()
    }

    /// Processes the hives, adds the std files and generated files to the CIM, then moves the
    /// layer directory into place and commits the CIM (last: if it fails, the directory is
    /// removed again).
    pub fn finish(mut self) -> Result<ImportSummary> {
        if self.base() {
            self.process_base()?
        } else {
            self.process_non_base()?
        }
        for p in std::mem::take(&mut self.pending) {
            let len = p.entry.kind.data_len();
            let mut data = match &p.host {
                Some(path) => Data::from_path(path, len),
                None => Data::empty(),
            };
            if p.generated {
                self.writer.add_generated(&p.entry, &mut data)?;
            } else {
                self.writer.entry(&p.entry, &mut data)?;
            }
        }
        let host_files = list_files(self.temp.path())?;
        place_dir(self.temp, &self.layer_dir, self.replaces_empty)?;
        match self.writer.finish() {
            Ok(cim) => {
                Ok(ImportSummary { layer_dir: self.layer_dir, base: self.parent_dirs.is_empty(), host_files, cim })
            }
            Err(e) => {
                unplace_dir(&self.layer_dir, self.replaces_empty);
                Err(e)
            }
        }
    }

    /// hcsshim's `processBaseLayerHives` and `processLayoutFile`.
    fn process_base(&mut self) -> Result<()> {
        let host = self.temp.path().to_path_buf();
        let hives_dir = host.join("Hives");
        fs::create_dir(&hives_dir).map_err(|e| Error::io(format!("creating {}", hives_dir.display()), e))?;
        let dir_meta = Metadata { attributes: attrs::DIRECTORY, ..Metadata::default() };
        let hives = LayerPath::parse("Hives").expect("valid");
        self.pending.push(Pending {
            entry: Entry { path: hives.clone(), kind: EntryKind::Directory, meta: dir_meta },
            host: None,
            generated: false,
        });
        for hive in &HIVES {
            let config = config_path(hive);
            let (Some(target), Some(file)) =
                (self.std_files.get(&LayerPath::parse(&config).expect("valid").folded()), find_file(&host, &config)?)
            else {
                return Err(Error::Invalid(format!(
                    "the base layer has no {config}: a base layer needs all five registry hives there (hcsshim links \
                     them to Hives/<H>_BASE); `winlayer makebaselayer --from` adds empty ones"
                )));
            };
            let link = hives_dir.join(hive.base);
            fs::hard_link(&file, &link)
                .map_err(|e| Error::io(format!("linking {} to {}", link.display(), file.display()), e))?;
            let kind = EntryKind::HardLink { target: target.clone() };
            let path = hives.join(hive.base).expect("valid");
            self.pending.push(Pending {
                entry: Entry { path, kind, meta: Metadata::default() },
                host: None,
                generated: true,
            });
        }
        let layout = host.join(LAYOUT);
        write_new(&layout, LAYOUT_CONTENT)?;
        let entry = Entry {
            path: LayerPath::generated_root_file(LAYOUT).expect("a generated root file"),
            kind: EntryKind::File { size: LAYOUT_CONTENT.len() as u64 },
            meta: Metadata { attributes: attrs::NORMAL, ..Metadata::default() },
        };
        self.pending.push(Pending { entry, host: Some(layout), generated: true });
        Ok(())
    }

    /// hcsshim's `processNonBaseLayer`: each delta hive merged onto the parent's base hive.
    fn process_non_base(&mut self) -> Result<()> {
        let host = self.temp.path().to_path_buf();
        for hive in &HIVES {
            let Some(delta) = find_file(&host, &format!("Hives/{}", hive.delta))? else { continue };
            let base_name = format!("Hives/{}", hive.base);
            let mut parent_base = None;
            for dir in &self.parent_dirs {
                if let Some(found) = find_file(dir, &base_name)? {
                    parent_base = Some(found);
                    break;
                }
            }
            let Some(parent_base) = parent_base else {
                return Err(Error::Invalid(format!(
                    "{}: no parent layer directory has {base_name} to merge it onto (looked in {})",
                    delta.strip_prefix(&host).unwrap_or(&delta).display(),
                    self.parent_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                )));
            };
            let read = |p: &Path| fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e));
            let merged = regf::merge_bytes(&read(&parent_base)?, &read(&delta)?).map_err(|e| {
                Error::Invalid(format!("merging {} onto {}: {e}", delta.display(), parent_base.display()))
            })?;
            let out = host.join(&base_name);
            write_new(&out, &merged)?;
            let entry = Entry {
                path: LayerPath::parse(&base_name).expect("valid"),
                kind: EntryKind::File { size: merged.len() as u64 },
                meta: Metadata { attributes: attrs::NORMAL, ..Metadata::default() },
            };
            self.pending.push(Pending { entry, host: Some(out), generated: false });
        }
        Ok(())
    }

    /// Writes a std file to the layer directory and queues it for the CIM.
    fn std_file(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let path = &entry.path;
        if let Some(earlier) = self.std_files.insert(path.folded(), path.clone()) {
            return Err(Error::Invalid(format!(
                "{path}: the layer already has {earlier} (Windows treats both names as one)"
            )));
        }
        let names: Vec<&str> = path.components().collect();
        let (name, dirs) = names.split_last().expect("a path has a name");
        let dir = descend(self.temp.path(), dirs, Some(&mut Vec::new()))?.expect("created when missing");
        let host = dir.join(name);
        let mut file = File::create_new(&host).map_err(|e| Error::io(format!("creating {}", host.display()), e))?;
        copy_exact(data, entry.kind.data_len(), &mut file, path, &mut self.buf)?;
        file.sync_all().map_err(|e| Error::io(format!("syncing {}", host.display()), e))?;
        self.pending.push(Pending { entry: entry.clone(), host: Some(host), generated: false });
        Ok(())
    }
}

/// Whether `layer_dir` is an empty directory (what a layer replaces); an error when it is
/// anything but that or absent.
pub(crate) fn new_or_empty(layer_dir: &Path) -> Result<bool> {
    let replaces_empty = is_empty_dir(layer_dir)?;
    if !replaces_empty && fs::symlink_metadata(layer_dir).is_ok() {
        return Err(Error::Invalid(format!(
            "{} exists; a layer is imported into a new or empty directory",
            layer_dir.display()
        )));
    }
    Ok(replaces_empty)
}

/// Moves the staged layer directory `temp` to `layer_dir`, which is new or, with
/// `replaces_empty`, an empty directory it replaces. On failure `layer_dir` is as it was.
pub(crate) fn place_dir(temp: tempfile::TempDir, layer_dir: &Path, replaces_empty: bool) -> Result<()> {
    if replaces_empty {
        if !is_empty_dir(layer_dir)? {
            return Err(Error::Invalid(format!("{} was filled while importing", layer_dir.display())));
        }
        // rename(2) cannot replace a directory on Windows.
        if cfg!(windows) {
            fs::remove_dir(layer_dir).map_err(|e| Error::io(format!("replacing {}", layer_dir.display()), e))?;
        }
    } else if fs::symlink_metadata(layer_dir).is_ok() {
        return Err(Error::Invalid(format!("{} appeared while importing", layer_dir.display())));
    }
    let temp = temp.keep();
    if let Err(e) = fs::rename(&temp, layer_dir) {
        let _ = fs::remove_dir_all(&temp);
        if replaces_empty && cfg!(windows) {
            let _ = fs::create_dir(layer_dir);
        }
        return Err(Error::io(format!("renaming {} to {}", temp.display(), layer_dir.display()), e));
    }
    Ok(())
}

/// Takes back what [`place_dir`] did: `layer_dir` gone, or empty again when it replaced an
/// empty directory.
pub(crate) fn unplace_dir(layer_dir: &Path, replaces_empty: bool) {
    let _ = fs::remove_dir_all(layer_dir);
    if replaces_empty {
        let _ = fs::create_dir(layer_dir);
    }
}

/// Checks that `parents` are one fork chain (each the fork of the next, the last a base layer
/// whose directory has the `layout` file), each with a directory.
pub(crate) fn check_parents(parents: &[Parent]) -> Result<()> {
    let mut below: Option<Cim> = None;
    for (i, parent) in parents.iter().enumerate().rev() {
        if !parent.dir.is_dir() {
            return Err(Error::Invalid(format!("parent layer directory {} is not a directory", parent.dir.display())));
        }
        let cim = Cim::open(&parent.cim)?;
        let fits = match &below {
            Some(lower) => cim.is_fork_of(lower),
            None => cim.sets().len() == 1,
        };
        if !fits {
            let want = match &below {
                Some(lower) => format!("a fork of {}", lower.path().display()),
                None => "a base layer's image (it is a fork; the parents must reach down to the base layer)".into(),
            };
            return Err(Error::Invalid(format!(
                "parent {} ({}) is not {want}: list the parents immediate parent first, base layer last",
                i + 1,
                parent.cim.display()
            )));
        }
        if below.is_none() && find_file(&parent.dir, LAYOUT)?.is_none() {
            return Err(Error::Invalid(format!(
                "{} has no {LAYOUT} file, so it is not the base layer's directory that belongs with {}",
                parent.dir.display(),
                parent.cim.display()
            )));
        }
        below = Some(cim);
    }
    Ok(())
}

/// The files below `root`, as `/`-separated relative paths in byte order.
pub(crate) fn list_files(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for item in fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))? {
            let path = item.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `path` is a directory (not a link to one) with nothing in it.
pub(crate) fn is_empty_dir(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::read_dir(path)
            .map(|mut items| items.next().is_none())
            .map_err(|e| Error::io(format!("reading {}", path.display()), e)),
        _ => Ok(false),
    }
}

impl LayerSink for CimLayerImport {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let path = &entry.path;
        let text = path.as_str();
        let refuse = |why: String| Err(Error::Invalid(format!("{path}: {why}")));
        if path.components().next() == Some("Hives") {
            if self.base() {
                return refuse(
                    "a base layer carries nothing in Hives/ (the importer generates it); `winlayer \
                               makebaselayer --from` makes a base layer tar without it"
                        .into(),
                );
            }
            if path.parent().is_some_and(|p| p.as_str() == "Hives") && base_hive(path.file_name()).is_some() {
                return refuse("the importer generates Hives/<H>_BASE hives; a layer must not carry them".into());
            }
        }
        match &entry.kind {
            EntryKind::Whiteout | EntryKind::Opaque if self.base() => {
                refuse("a whiteout, but a base layer has nothing below it to delete".into())
            }
            EntryKind::Stream { name, .. } if is_std_file(text) => refuse(format!(
                "alternate data stream {name:?} on a file hcsshim keeps outside the CIM, which refuses streams there"
            )),
            EntryKind::HardLink { .. } if is_std_file(text) => {
                refuse("a hard link, but hcsshim keeps this file outside the CIM and refuses links there".into())
            }
            EntryKind::HardLink { target } if is_std_file(target.as_str()) => {
                // Added once its target is, as hcsshim does.
                self.pending.push(Pending { entry: entry.clone(), host: None, generated: false });
                Ok(())
            }
            EntryKind::File { .. } if is_std_file(text) => self.std_file(entry, data),
            kind if is_std_file(text) => {
                refuse(format!("a {}, but hcsshim writes this name as a plain file outside the CIM", kind.name()))
            }
            _ => self.writer.entry(entry, data),
        }
    }
}
