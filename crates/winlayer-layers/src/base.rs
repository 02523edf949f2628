//! Base layers from any tree: what hcsshim's `ConvertToBaseLayer` (`wclayer makebaselayer`)
//! prepares before Windows processes a base layer — the five registry hives in
//! `Files/Windows/System32/config`, and the utility VM's boot configuration when there is a
//! utility VM — for a layer directory in place ([`make_base_layer`]) and for a layer stream
//! turned into a base-layer tar ([`BaseLayerBuilder`]).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use winlayer_core::check::Problem;
use winlayer_core::dir::default_security;
use winlayer_core::{
    Collector, Data, Entry, EntryKind, Error, FileTime, LayerPath, LayerSink, Metadata, Origin, Result, Sorted, attrs,
};

use crate::host::{Kind, descend, find_file, lookup};
use crate::names::{BCD, CONFIG_DIR, HIVES, is_std_file};

/// What making a base layer did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BaseReport {
    /// Directories and hives created, as layer paths.
    pub created: Vec<String>,
    /// Hives that were there already and are kept.
    pub kept: Vec<String>,
    /// Whether the layer has a utility VM (`UtilityVM/Files`, with its BCD).
    pub utility_vm: bool,
    /// Other changes worth knowing (an empty `Hives/` left out, …).
    pub notes: Vec<String>,
    /// What was dropped that the source meant (whiteouts of an application layer), one line.
    pub warnings: Vec<String>,
}

/// The bytes of a valid empty hive (a root key only), as `ORCreateHive` + `ORSaveHive` give
/// hcsshim. The root's name is winlayer's choice: what offreg names it is not public.
pub fn empty_hive() -> Vec<u8> {
    regf::Hive::empty("ROOT").to_bytes().expect("an empty hive always writes")
}

/// Prepares the layer directory `dir` (holding `Files/`, or empty) as a base layer, as
/// `wclayer makebaselayer` does before Windows' `ProcessBaseImage`: creates
/// `Files/Windows/System32/config` and the hives `DEFAULT`, `SAM`, `SECURITY`, `SOFTWARE` and
/// `SYSTEM` where missing (keeping existing ones, where hcsshim's version fails), and requires
/// `UtilityVM/Files/EFI/Microsoft/Boot/BCD` when `UtilityVM/Files` exists. Everything is
/// checked before anything is written; a failure while writing removes what was created.
pub fn make_base_layer(dir: &Path) -> Result<BaseReport> {
    let meta = fs::metadata(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!("{} is not a directory", dir.display())));
    }
    let empty = fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?.next().is_none();
    if !empty && lookup(dir, "Files")?.is_none() {
        return Err(Error::Invalid(format!(
            "{} has no Files directory, so it is not a layer directory (a plain tree becomes a base layer tar \
             with `makebaselayer --from DIR -o BASE.tar`)",
            dir.display()
        )));
    }
    let relative = |p: &Path| p.strip_prefix(dir).unwrap_or(p).to_string_lossy().replace('\\', "/");
    let mut report = BaseReport::default();
    let config = descend(dir, &CONFIG_DIR, None)?;
    let mut missing = Vec::new();
    let mut hives: Vec<_> = HIVES.iter().map(|h| h.config).collect();
    hives.sort();
    for hive in hives {
        match config.as_deref().map(|c| lookup(c, hive)).transpose()?.flatten() {
            Some((path, Kind::File)) => report.kept.push(relative(&path)),
            Some((path, kind)) => {
                return Err(Error::Invalid(format!(
                    "{} is {}; a registry hive must be a regular file",
                    path.display(),
                    kind.describe()
                )));
            }
            None => missing.push(hive),
        }
    }
    report.utility_vm = has_utility_vm(dir)?;

    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let written = (|| {
        let config = descend(dir, &CONFIG_DIR, Some(&mut dirs))?.expect("created when missing");
        let bytes = empty_hive();
        for hive in &missing {
            files.push(write_new(&config.join(hive), &bytes)?);
        }
        Ok(())
    })();
    if let Err(e) = written {
        files.iter().for_each(|f| drop(fs::remove_file(f)));
        dirs.iter().rev().for_each(|d| drop(fs::remove_dir(d)));
        return Err(e);
    }
    report.created = dirs.iter().chain(&files).map(|p| relative(p)).collect();
    Ok(report)
}

/// Whether `dir` has a utility VM; one without its BCD is an error (Windows' processing of
/// the utility VM edits that store).
fn has_utility_vm(dir: &Path) -> Result<bool> {
    let Some(files) = descend(dir, &BCD[..2], None)? else { return Ok(false) };
    match find_file(dir, &BCD.join("/"))? {
        Some(_) => Ok(true),
        None => Err(Error::Invalid(format!(
            "{} exists, so it must contain EFI/Microsoft/Boot/BCD (the utility VM's boot configuration store)",
            files.display()
        ))),
    }
}

/// Writes a new file (never replacing one), whole or not at all, synced.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let dir = path.parent().expect("a file in a directory");
    let mut temp = winlayer_core::temp::file_in(dir).map_err(|e| io("creating", e))?;
    temp.write_all(bytes).map_err(|e| io("writing", e))?;
    temp.as_file().sync_all().map_err(|e| io("syncing", e))?;
    temp.persist_noclobber(path).map_err(|e| io("creating", e.error))?;
    Ok(path.to_path_buf())
}

/// What a base layer needs, at the paths it needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Needed {
    /// A directory of `Files/Windows/System32/config`.
    ConfigDir(usize),
    /// A config hive.
    Hive(usize),
    /// `UtilityVM/Files`.
    UtilityVm,
    /// The utility VM's BCD.
    Bcd,
}

/// Turns an entry stream into a base layer (a [`LayerSink`]; then [`BaseLayerBuilder::finish`]):
/// adds the config directories and empty hives a base layer lacks, with the default
/// security descriptors and one time for all (`SOURCE_DATE_EPOCH` when given, else the newest
/// time in the layer), drops whiteouts (there is nothing below a base layer to delete; one
/// warning counts them), and refuses what a base layer cannot hold: anything in `Hives/` (importers generate it; an empty `Hives/` is left
/// out), a utility VM without its BCD, and registry hives, BCDs or boot managers that are not
/// plain files (hcsshim's CIM importer keeps them outside the image and refuses links and
/// streams there). Data flows into a [`Collector`]; only metadata is kept.
pub struct BaseLayerBuilder {
    collector: Collector,
    owner: String,
    source_date_epoch: Option<i64>,
    needed: HashMap<String, Needed>,
    /// What the layer has at the needed paths: its spelling and kind.
    seen: HashMap<Needed, (LayerPath, &'static str)>,
    newest: Option<FileTime>,
    hives_dir: bool,
    /// Whiteouts dropped, and the first one's path.
    whiteouts: (u64, Option<LayerPath>),
    problems: Vec<Problem>,
}

impl BaseLayerBuilder {
    /// A builder giving generated objects `owner` (an SDDL SID) and, when set, the time
    /// `source_date_epoch`.
    pub fn new(owner: &str, source_date_epoch: Option<i64>) -> Self {
        let mut needed = HashMap::new();
        for i in 0..CONFIG_DIR.len() {
            needed.insert(LayerPath::parse(&CONFIG_DIR[..=i].join("/")).expect("valid").folded(), Needed::ConfigDir(i));
        }
        for (i, hive) in HIVES.iter().enumerate() {
            let path = format!("{}/{}", CONFIG_DIR.join("/"), hive.config);
            needed.insert(LayerPath::parse(&path).expect("valid").folded(), Needed::Hive(i));
        }
        needed.insert(LayerPath::parse(&BCD[..2].join("/")).expect("valid").folded(), Needed::UtilityVm);
        needed.insert(LayerPath::parse(&BCD.join("/")).expect("valid").folded(), Needed::Bcd);
        BaseLayerBuilder {
            collector: Collector::new(),
            owner: owner.to_string(),
            source_date_epoch,
            needed,
            seen: HashMap::new(),
            newest: None,
            hives_dir: false,
            whiteouts: (0, None),
            problems: Vec::new(),
        }
    }

    /// Adds what is missing and sorts the layer; every problem found is reported at once.
    pub fn finish(mut self) -> Result<(Sorted, BaseReport)> {
        let mut report = BaseReport::default();
        let time = match self.source_date_epoch {
            Some(secs) => FileTime::from_unix(secs, 0)
                .ok_or_else(|| Error::Invalid(format!("SOURCE_DATE_EPOCH={secs} is out of FILETIME's range")))?,
            None => self.newest.unwrap_or(FileTime::UNIX_EPOCH),
        };
        let security = default_security(&self.owner)?;
        // Generated objects go below the layer's own spelling of their parents.
        let mut parent = String::new();
        for (i, name) in CONFIG_DIR.iter().enumerate() {
            let path = match self.seen.get(&Needed::ConfigDir(i)) {
                Some((path, "dir")) => path.clone(),
                Some((path, kind)) => {
                    self.problems.push(Problem::error(
                        path.to_string(),
                        format!("a {kind}, but the registry hives go below it, so it must be a directory"),
                    ));
                    return Err(Error::Problems(self.problems));
                }
                None => {
                    let path = join(&parent, name);
                    let meta = Metadata {
                        security: Some(security.dir.clone()),
                        ..Metadata::with_times(attrs::DIRECTORY, time)
                    };
                    self.add(Entry { path: path.clone(), kind: EntryKind::Directory, meta }, &[])?;
                    report.created.push(path.to_string());
                    path
                }
            };
            parent = path.to_string();
        }
        let hive_bytes = empty_hive();
        let mut hives: Vec<_> = HIVES.iter().enumerate().collect();
        hives.sort_by_key(|(_, h)| h.config);
        for (i, hive) in hives {
            match self.seen.get(&Needed::Hive(i)) {
                Some((path, _)) => report.kept.push(path.to_string()),
                None => {
                    let path = join(&parent, hive.config);
                    let meta = Metadata {
                        security: Some(security.file.clone()),
                        ..Metadata::with_times(attrs::ARCHIVE, time)
                    };
                    let kind = EntryKind::File { size: hive_bytes.len() as u64 };
                    self.add(Entry { path: path.clone(), kind, meta }, &hive_bytes)?;
                    report.created.push(path.to_string());
                }
            }
        }
        if let Some((uvm, "dir")) = self.seen.get(&Needed::UtilityVm) {
            report.utility_vm = true;
            if !self.seen.contains_key(&Needed::Bcd) {
                self.problems.push(Problem::error(
                    uvm.to_string(),
                    "a utility VM needs EFI/Microsoft/Boot/BCD, its boot configuration store (Windows' processing edits it)",
                ));
            }
        }
        if self.hives_dir && self.problems.is_empty() {
            report
                .notes
                .push("left out the empty Hives directory: a base layer has none (importers generate it)".into());
        }
        if !self.problems.is_empty() {
            return Err(Error::Problems(self.problems));
        }
        if let (count, Some(first)) = &self.whiteouts {
            let more = if *count > 1 { format!(" and {} more", count - 1) } else { String::new() };
            report
                .warnings
                .push(format!("dropped the whiteout {first}{more}: a base layer has nothing below it to delete"));
        }
        let sorted = self.collector.finish()?;
        let linked: Vec<Problem> = sorted
            .entries()
            .filter_map(|e| match &e.kind {
                EntryKind::HardLink { target } if is_std_file(e.path.as_str()) => Some(Problem::error(
                    e.path.to_string(),
                    format!(
                        "shares its data with {target}, so a layer tar stores it as a hard link, and hcsshim's CIM \
                         importer refuses hives and boot files that are links"
                    ),
                )),
                _ => None,
            })
            .collect();
        if !linked.is_empty() {
            return Err(Error::Problems(linked));
        }
        Ok((sorted, report))
    }

    fn add(&mut self, entry: Entry, bytes: &[u8]) -> Result<()> {
        let mut reader = bytes;
        self.collector.entry(&entry, &mut Data::from_reader(&mut reader, bytes.len() as u64, Origin::Stream))
    }
}

fn join(parent: &str, name: &str) -> LayerPath {
    let text = if parent.is_empty() { name.to_string() } else { format!("{parent}/{name}") };
    LayerPath::parse(&text).expect("names of the config path are valid")
}

impl LayerSink for BaseLayerBuilder {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let path = &entry.path;
        let problem = |message: String| Problem::error(path.to_string(), message);
        match &entry.kind {
            EntryKind::Whiteout | EntryKind::Opaque => {
                self.whiteouts.0 += 1;
                self.whiteouts.1.get_or_insert_with(|| path.clone());
                return Ok(());
            }
            _ if path.as_str() == "Hives" && entry.kind == EntryKind::Directory => {
                self.hives_dir = true;
                return Ok(());
            }
            _ if path.components().next() == Some("Hives") => {
                self.problems.push(problem(
                    "a base layer carries nothing in Hives/ (importers generate its hives from Files/Windows/System32/config)"
                        .into(),
                ));
                return Ok(());
            }
            EntryKind::Stream { name, .. } if is_std_file(path.as_str()) => {
                self.problems.push(problem(format!(
                    "alternate data stream {name:?}: hcsshim's CIM importer refuses streams on hives and boot files"
                )));
                return Ok(());
            }
            EntryKind::Stream { .. } => {}
            kind => {
                if is_std_file(path.as_str()) && !matches!(kind, EntryKind::File { .. } | EntryKind::HardLink { .. }) {
                    self.problems.push(problem(format!(
                        "a {}, but hives and boot files must be regular files (hcsshim's CIM importer writes them as files)",
                        kind.name()
                    )));
                }
                if let Some(&needed) = self.needed.get(&path.folded()) {
                    self.seen.insert(needed, (path.clone(), kind.name()));
                }
                self.newest = self.newest.max(Some(entry.meta.last_write));
            }
        }
        self.collector.entry(entry, data)
    }
}
