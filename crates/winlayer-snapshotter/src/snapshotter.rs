//! The snapshotter: containerd's snapshot state machine over the store, with crash-safe
//! directory work.
//!
//! Every operation is one store transaction. Directories change only in ways a crash cannot
//! make inconsistent with the committed metadata:
//! * Prepare/View build `snapshots/new-<id>` and rename it to `snapshots/<id>` before the
//!   transaction commits: a committed snapshot always has its whole directory; a crash before
//!   the commit leaves an orphan directory.
//! * Remove renames `snapshots/<id>` to `snapshots/rm-<id>` before the transaction commits
//!   (renaming it back when the commit fails) and deletes it after.
//! * Opening the root undoes a rename whose Remove never committed, and moves the ID sequence
//!   past every ID found on disk, so an orphan's ID is never given again.
//! * Cleanup deletes everything under `snapshots/` that no snapshot owns.
//!
//! In `blockcim` mode a scratch over more than one layer also needs the merged CIM of its
//! parents, kept in its immediate parent's directory and shared by every scratch on that
//! parent. It is built (through Windows' cimfs.dll, [`win32::block_cim::merge`]) inside the
//! Prepare's transaction, so merges never run side by side and a failed one fails the Prepare
//! and leaves nothing; one already there is used as it is, as containerd does.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use win32::cimfs::ImagePath;

use crate::error::{Error, ErrorKind, Result};
use crate::filter::Filters;
use crate::layout::{BlockCimOptions, CIM_LAYERS, LAYER_CIM, Layout, MERGED_CIM, Mode, ScratchProvider};
use crate::private;
use crate::scratch::VhdxScratch;
use crate::snapshot::{Info, Kind, Mount, Usage};
use crate::store::Store;
use crate::usage::disk_usage;

/// The metadata file under the root.
pub const DATABASE: &str = "metadata.redb";

/// A snapshotter over one root.
pub struct Snapshotter {
    layout: Layout,
    store: Store,
    scratch: Box<dyn ScratchProvider>,
    /// Where `blockcim` mode's merges load the CIM DLLs from.
    cims: win32::Source,
    /// Operations that create or remove directories share it; Cleanup takes it alone, so it
    /// never mistakes a directory being built or removed for an orphan.
    dirs: RwLock<()>,
}

/// How a root is served beyond its mode.
pub struct Options {
    /// Makes the scratch disks of the Windows modes.
    pub scratch: Box<dyn ScratchProvider>,
    /// `blockcim` mode's settings (refused in the other modes).
    pub block: BlockCimOptions,
    /// Where `blockcim` mode's merges load the CIM DLLs from: Windows' own
    /// ([`win32::Source::System`], which exists only on Windows), or a test double.
    pub cims: win32::Source,
}

impl Default for Options {
    /// Scratch disks from the `vhdx` crate, containerd's default settings, Windows' DLLs.
    fn default() -> Self {
        Options {
            scratch: Box::new(VhdxScratch::default()),
            block: BlockCimOptions::default(),
            cims: win32::Source::System,
        }
    }
}

/// What Cleanup removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Paths removed.
    pub removed: Vec<PathBuf>,
}

/// A name under `snapshots/`.
enum Entry {
    Live(u64),
    Staging(u64),
    Removed(u64),
    Other,
}

fn classify(name: &str) -> Entry {
    let id = |s: &str| s.parse::<u64>().ok().filter(|id| s == id.to_string());
    if let Some(id) = id(name) {
        Entry::Live(id)
    } else if let Some(id) = name.strip_prefix("new-").and_then(id) {
        Entry::Staging(id)
    } else if let Some(id) = name.strip_prefix("rm-").and_then(id) {
        Entry::Removed(id)
    } else {
        Entry::Other
    }
}

fn remove_path(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Snapshotter {
    /// Opens (or creates) the root for `mode`, recovering from any crash; scratch disks come
    /// from the `vhdx` crate, formatted with `mkntfs`.
    pub fn open(root: &Path, mode: Mode) -> Result<Snapshotter> {
        Snapshotter::open_with(root, mode, Options::default())
    }

    /// Opens the root with a provider of scratch disks for the Windows modes.
    pub fn with_scratch(root: &Path, mode: Mode, scratch: Box<dyn ScratchProvider>) -> Result<Snapshotter> {
        Snapshotter::open_with(root, mode, Options { scratch, ..Options::default() })
    }

    /// Opens the root with `options`.
    pub fn open_with(root: &Path, mode: Mode, options: Options) -> Result<Snapshotter> {
        let Options { scratch, block, cims } = options;
        block.check(mode)?;
        let root = std::path::absolute(root).map_err(|e| Error::io("resolving", root, e))?;
        private::prepare_root(&root)?;
        let layout = Layout::with_block(mode, &root, block);
        for dir in layout.fixed_dirs() {
            private::create_dir_all(&dir)?;
        }
        let database = root.join(DATABASE);
        // redb starts afresh in an empty file; beside existing snapshots that would make every
        // directory an orphan for Cleanup to delete.
        let emptied = fs::metadata(&database).is_ok_and(|m| m.len() == 0);
        if emptied && fs::read_dir(layout.snapshots_dir()).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::internal(format!(
                "metadata database {} is empty but snapshots exist: refusing to start",
                database.display()
            )));
        }
        // redb would create it as the umask says.
        private::touch_file(&database)?;
        let store = Store::open(&database, mode.name())?;
        let snapshotter = Snapshotter { layout, store, scratch, cims, dirs: RwLock::new(()) };
        snapshotter.recover()?;
        snapshotter.scratch.prepare_root(&root, mode, block.unformatted_scratch)?;
        Ok(snapshotter)
    }

    /// The mode served.
    pub fn mode(&self) -> Mode {
        self.layout.mode()
    }

    /// `<root>/snapshots`.
    pub fn snapshots_dir(&self) -> &Path {
        self.layout.snapshots_dir()
    }

    fn recover(&self) -> Result<()> {
        let read = self.store.read()?;
        let live = read.ids()?;
        let mut max_seen = 0;
        for (name, path) in self.entries()? {
            match classify(&name) {
                Entry::Live(id) | Entry::Staging(id) => max_seen = max_seen.max(id),
                Entry::Removed(id) => {
                    max_seen = max_seen.max(id);
                    let dir = self.layout.dir(id);
                    // A Remove renamed it, then its transaction never committed.
                    if live.contains(&id) && !dir.exists() {
                        fs::rename(&path, &dir).map_err(|e| Error::io("restoring", &dir, e))?;
                    }
                }
                Entry::Other => {}
            }
        }
        if max_seen >= read.next_id()? {
            self.store.write(|tx| tx.advance_ids_to(max_seen + 1))?;
        }
        Ok(())
    }

    fn entries(&self) -> Result<Vec<(String, PathBuf)>> {
        let dir = self.layout.snapshots_dir();
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            entries.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
        }
        Ok(entries)
    }

    /// Prepare: a new active snapshot on `parent` ("" for none), and its mounts.
    pub fn prepare(&self, key: &str, parent: &str, labels: &BTreeMap<String, String>) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels)
    }

    /// View: a new read-only snapshot on `parent`, and its mounts.
    pub fn view(&self, key: &str, parent: &str, labels: &BTreeMap<String, String>) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels)
    }

    fn create(&self, kind: Kind, key: &str, parent: &str, labels: &BTreeMap<String, String>) -> Result<Vec<Mount>> {
        let _shared = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        let mut made: Option<PathBuf> = None;
        let result = self.store.write(|tx| {
            let record = tx.create(kind, key, parent, labels)?;
            let (staging, dir) = (self.layout.staging_dir(record.id), self.layout.dir(record.id));
            // The ID is unused by any committed snapshot: whatever carries it is the leftover
            // of an aborted attempt whose own cleanup failed.
            for leftover in [&staging, &dir] {
                remove_path(leftover).map_err(|e| Error::io("removing leftover", leftover, e))?;
            }
            private::create_dir(&staging)?;
            made = Some(staging.clone());
            self.layout.build(&staging, kind, key, &record.parent_ids, labels, &*self.scratch)?;
            self.merge_parents(key, &record.parent_ids)?;
            fs::rename(&staging, &dir).map_err(|e| Error::io("renaming into place", &dir, e))?;
            made = Some(dir);
            Ok(record)
        });
        match result {
            Ok(record) => Ok(self.layout.mounts(kind, record.id, &record.parent_ids)),
            Err(e) => {
                // Nothing refers to it; if this fails too, Cleanup removes it.
                if let Some(path) = made {
                    let _ = remove_path(&path);
                }
                Err(e)
            }
        }
    }

    /// `blockcim` mode: the merged CIM a new scratch over `parent_ids` mounts, unless it is
    /// there already (another scratch on the same parent made it).
    fn merge_parents(&self, key: &str, parent_ids: &[u64]) -> Result<()> {
        let Some((out, sources)) = self.layout.merge_for(key, parent_ids) else { return Ok(()) };
        if out.symlink_metadata().is_ok() {
            return Ok(());
        }
        let failed = |kind: ErrorKind, e: winlayer_core::Error| {
            Error::new(
                kind,
                format!(
                    "blockcim mode: scratch {key:?} needs the merged CIM of its {} parent layers ({}), which \
                     could not be built: {e}",
                    sources.len(),
                    out.display()
                ),
            )
        };
        let elsewhere = !cfg!(windows) && self.cims == win32::Source::System;
        let dlls = win32::block_cim::load(&self.cims).map_err(|e| {
            failed(if elsewhere { ErrorKind::NotImplemented } else { ErrorKind::FailedPrecondition }, e)
        })?;
        let image = ImagePath { dir: out.clone(), name: MERGED_CIM.into() };
        let sources: Vec<ImagePath> =
            sources.iter().map(|dir| ImagePath { dir: dir.clone(), name: LAYER_CIM.into() }).collect();
        let block = self.layout.block();
        win32::block_cim::merge(&dlls, &image, &sources, block.enable_layer_integrity, block.append_vhd_footer)
            .map_err(|e| failed(ErrorKind::Internal, e))?;
        Ok(())
    }

    /// Mounts of an active or view snapshot.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let record = self.store.read()?.get(key)?;
        if record.kind == Kind::Committed {
            return Err(Error::failed_precondition(format!("snapshot {key:?} is not active or view")));
        }
        Ok(self.layout.mounts(record.kind, record.id, &record.parent_ids))
    }

    /// Commit: active `key` becomes committed `name` with `labels` (the active snapshot's own
    /// labels are not kept), recording its usage.
    pub fn commit(&self, name: &str, key: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.layout.check_commit(key)?;
        loop {
            // Measure outside the write transaction: walking a big layer must not stall
            // every other writer. The transaction checks the ID is still the one measured.
            let measured = match self.store.read()?.get(key) {
                Ok(record) if record.kind == Kind::Active => Some((record.id, self.measure(record.id)?)),
                _ => None,
            };
            let result = self.store.write(|tx| {
                let current = tx.get(key).ok().filter(|r| r.kind == Kind::Active).map(|r| r.id);
                if current.is_some() && current != measured.map(|(id, _)| id) {
                    return Ok(false);
                }
                tx.commit(name, key, labels, measured.map(|(_, usage)| usage).unwrap_or_default())?;
                Ok(true)
            })?;
            if result {
                return Ok(());
            }
        }
    }

    fn measure(&self, id: u64) -> Result<Usage> {
        let mut usage = disk_usage(&self.layout.usage_dir(id))?;
        if self.mode() == Mode::Cimfs {
            // The layer's CIM file; its region files may be shared with other layers and are
            // counted by none.
            if let Ok(meta) = fs::metadata(self.layout.cim_path(id)) {
                usage.size = usage.size.saturating_add(meta.len() as i64);
                usage.inodes += 1;
            }
        }
        Ok(usage)
    }

    /// Remove: forgets `key` and deletes its directory. Children must go first.
    pub fn remove(&self, key: &str) -> Result<()> {
        let _shared = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        let mut moved: Option<(PathBuf, PathBuf)> = None;
        let result = self.store.write(|tx| {
            let record = tx.remove(key)?;
            let (dir, removed) = (self.layout.dir(record.id), self.layout.removed_dir(record.id));
            match fs::rename(&dir, &removed) {
                Ok(()) => moved = Some((dir, removed)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // In use (Windows keeps attached layers open): refuse, as containerd does, so
                // its garbage collector skips it and carries on.
                Err(e) => {
                    return Err(Error::failed_precondition(format!(
                        "cannot remove snapshot {key:?}: renaming {}: {e}",
                        dir.display()
                    )));
                }
            }
            Ok(record)
        });
        match result {
            Ok(record) => {
                // Failures here leave only orphans, which Cleanup removes.
                if let Some((_, removed)) = moved {
                    let _ = remove_path(&removed);
                }
                if self.mode() == Mode::Cimfs {
                    let _ = cimfs::destroy(&self.layout.cim_path(record.id));
                }
                Ok(())
            }
            Err(e) => {
                if let Some((dir, removed)) = moved {
                    let _ = fs::rename(removed, dir);
                }
                Err(e)
            }
        }
    }

    /// Stat: the Info of any snapshot.
    pub fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.store.read()?.get(key)?.info(key))
    }

    /// Update: changes labels as `fieldpaths` say (see [`crate::store::WriteTx::update`]).
    pub fn update(&self, name: &str, labels: &BTreeMap<String, String>, fieldpaths: &[String]) -> Result<Info> {
        let record = self.store.write(|tx| tx.update(name, labels, fieldpaths))?;
        Ok(record.info(name))
    }

    /// Usage: live for active snapshots, recorded at commit for committed ones, zero for views.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let record = self.store.read()?.get(key)?;
        match record.kind {
            Kind::Active => self.measure(record.id),
            Kind::View | Kind::Committed => Ok(record.usage),
        }
    }

    /// Walk: calls `f` with every snapshot `filters` match, from one consistent view, in key
    /// order, without holding anything other operations wait for.
    pub fn walk(&self, filters: &Filters, mut f: impl FnMut(Info) -> Result<()>) -> Result<()> {
        self.store.read()?.walk(|key, record| {
            let info = record.info(key);
            if filters.matches(&info) { f(info) } else { Ok(()) }
        })
    }

    /// Cleanup: deletes every directory and CIM under `snapshots/` that no snapshot owns
    /// (left by crashes or by failed deletions).
    pub fn cleanup(&self) -> Result<Cleaned> {
        let _exclusive = self.dirs.write().unwrap_or_else(|e| e.into_inner());
        let live: HashSet<u64> = self.store.read()?.ids()?;
        let mut cleaned = Cleaned::default();
        let mut remove = |path: PathBuf| -> Result<()> {
            remove_path(&path).map_err(|e| Error::io("removing orphan", &path, e))?;
            cleaned.removed.push(path);
            Ok(())
        };
        for (name, path) in self.entries()? {
            match classify(&name) {
                Entry::Live(id) if live.contains(&id) => {}
                _ if self.mode() == Mode::Cimfs && name == CIM_LAYERS => {
                    for entry in fs::read_dir(&path).map_err(|e| Error::io("listing", &path, e))? {
                        let entry = entry.map_err(|e| Error::io("listing", &path, e))?;
                        let file = entry.file_name().to_string_lossy().into_owned();
                        let owner = file.strip_suffix(".cim").map(classify);
                        if matches!(owner, Some(Entry::Live(id)) if !live.contains(&id)) {
                            remove(entry.path())?;
                        }
                    }
                }
                Entry::Live(_) | Entry::Staging(_) | Entry::Removed(_) | Entry::Other => remove(path)?,
            }
        }
        cleaned.removed.sort();
        Ok(cleaned)
    }
}
