//! A CIM container layer back to a layer: a base layer's whole view, a non-base layer's
//! changes to its parent's view, without what the importer generated (`layout`,
//! `Hives/<H>_BASE`, and a base layer's `Hives/`), checked against the layer directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use cimfs::{Changes, Cim};
use winlayer_core::{Collector, EntryKind, Error, LayerPath, LayerSource, Result, Sorted};

use crate::host::find_file;
use crate::names::{HIVES, LAYOUT, LAYOUT_CONTENT, is_generated, is_std_file, same_name, std_file_paths};

/// What an export found.
#[derive(Debug, serde::Serialize)]
pub struct ExportSummary {
    /// Whether the layer is a base layer (its CIM has no parent).
    pub base: bool,
    /// The parent CIM the changes were taken against.
    pub parent: Option<PathBuf>,
    /// Entries of the layer.
    pub entries: usize,
    /// Std files of the layer, checked equal in the layer directory and the CIM.
    pub host_files: Vec<String>,
}

/// The layer `cim` (imported with its directory `layer_dir`) holds, sorted into canonical
/// order. The parent is `parent` when given (it must be the image `cim` was forked from),
/// else the `.cim` beside `cim` with its parent region sets. The std files the layer carried
/// are the ones in `layer_dir`; they must also be this layer's in the CIM, with the same bytes.
pub fn export_cim(layer_dir: &Path, cim: &Path, parent: Option<&Path>) -> Result<(Sorted, ExportSummary)> {
    if !layer_dir.is_dir() {
        return Err(Error::Invalid(format!("{} is not a layer directory", layer_dir.display())));
    }
    let image = Cim::open(cim)?;
    let parent_path = match parent {
        Some(p) => Some(p.to_path_buf()),
        None => image.find_parent()?,
    };
    let parent = parent_path.as_deref().map(Cim::open).transpose()?;
    let base = parent.is_none();
    if let Some(p) = &parent
        && !image.is_fork_of(p)
    {
        return Err(Error::Invalid(format!("{} is not forked from {}", cim.display(), p.path().display())));
    }
    check_generated(layer_dir, base)?;
    let mut collector = Collector::new();
    let skip = |names: &[String]| is_generated(names) || (base && same_name(&names[0], "Hives"));
    Changes::new(&image, parent.as_ref()).skipping(skip).send_to(&mut collector)?;
    let sorted = collector.finish()?;

    // The std files: those of the changes against those of the layer directory.
    let mut in_cim: BTreeMap<String, LayerPath> = BTreeMap::new();
    for e in sorted.entries() {
        match &e.kind {
            EntryKind::File { .. } if is_std_file(e.path.as_str()) => {
                in_cim.insert(e.path.folded(), e.path.clone());
            }
            EntryKind::HardLink { .. } if is_std_file(e.path.as_str()) => {
                return Err(Error::Invalid(format!(
                    "{}: {} is a hard link there, which hcsshim never writes",
                    cim.display(),
                    e.path
                )));
            }
            _ => {}
        }
    }
    let mut host_files = Vec::new();
    for path in std_file_paths() {
        let folded = LayerPath::parse(&path).expect("valid").folded();
        match (find_file(layer_dir, &path)?, in_cim.remove(&folded)) {
            (None, None) => {}
            (Some(host), Some(path)) => {
                same_bytes(&host, &image, path.as_str())?;
                host_files.push(path.to_string());
            }
            (Some(host), None) => {
                return Err(Error::Invalid(format!(
                    "{} is in the layer directory, but {} does not add {path} (do the directory and the CIM belong together?)",
                    host.display(),
                    cim.display()
                )));
            }
            (None, Some(path)) => {
                return Err(Error::Invalid(format!(
                    "{} adds {path}, but {} lacks it (do the directory and the CIM belong together?)",
                    cim.display(),
                    layer_dir.display()
                )));
            }
        }
    }
    let entries = sorted.entries().count();
    Ok((sorted, ExportSummary { base, parent: parent_path, entries, host_files }))
}

/// Checks what the importer generated in the layer directory: a base layer's `layout` and
/// its five `Hives/<H>_BASE`; a non-base layer's `Hives/<H>_BASE` for each delta it has.
fn check_generated(layer_dir: &Path, base: bool) -> Result<()> {
    let missing = |what: &str| {
        Err(Error::Invalid(format!(
            "{} lacks {what}, which the import of a {} layer writes",
            layer_dir.display(),
            if base { "base" } else { "non-base" }
        )))
    };
    if base {
        match find_file(layer_dir, LAYOUT)? {
            Some(p)
                if fs::read(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))? == LAYOUT_CONTENT => {}
            Some(p) => return Err(Error::Invalid(format!("{} does not hold {LAYOUT_CONTENT:?}", p.display()))),
            None => return missing(LAYOUT),
        }
    }
    for hive in &HIVES {
        let wanted = base || find_file(layer_dir, &format!("Hives/{}", hive.delta))?.is_some();
        if wanted && find_file(layer_dir, &format!("Hives/{}", hive.base))?.is_none() {
            return missing(&format!("Hives/{}", hive.base));
        }
    }
    Ok(())
}

/// Checks that the host file and the CIM's file at `path` hold the same bytes.
fn same_bytes(host: &Path, cim: &Cim, path: &str) -> Result<()> {
    let record = cim.record(cim.resolve(path)?)?;
    let differ = || Error::Invalid(format!("{} and {path} in {} differ", host.display(), cim.path().display()));
    let host_err = |e| Error::io(format!("reading {}", host.display()), e);
    let mut file = File::open(host).map_err(host_err)?;
    let mut left = file.metadata().map_err(host_err)?.len();
    if left != record.default_stream.len() {
        return Err(differ());
    }
    let mut stream = cim.reader(record.default_stream);
    let (mut a, mut b) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    while left > 0 {
        let n = left.min(a.len() as u64) as usize;
        file.read_exact(&mut a[..n]).map_err(host_err)?;
        stream.read_exact(&mut b[..n]).map_err(|e| Error::io(format!("reading {path}"), e))?;
        if a[..n] != b[..n] {
            return Err(differ());
        }
        left -= n as u64;
    }
    Ok(())
}
