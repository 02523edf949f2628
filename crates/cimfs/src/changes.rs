//! What a forked CIM changes in its parent's view, as a layer: the entries a layer applied onto
//! the parent image must hold to give the fork's view. Without a parent, the whole view.
//!
//! The two views are walked side by side, matching names with the image's collation. A path
//! the fork shows is part of the layer when the parent has nothing there, when it names
//! another object than the parent's (a fork gives every object a layer adds a FileID of its
//! own, even when its content equals the parent's), when its record or the spelling of its
//! name differs, or — for a directory that keeps the parent's FileID — when its metadata or
//! streams differ. Directories are sent as well when anything below them is (importers need
//! every parent), paths only the parent has become whiteouts, and a directory the fork
//! re-created (a new FileID over a parent directory: deleted and added again) becomes a
//! whiteout followed by the whole new directory. A new name of a file the parent already has
//! becomes a hard link to one of the file's names in the parent — the first the layer does not
//! itself take, since importers resolve a link target in the layer first, then below it.
//!
//! Not recoverable from the images, so not sent: whiteouts of paths the parent never had,
//! and directories a layer restated without changing them or anything below them.

use std::collections::{HashMap, HashSet};

use winlayer_core::{Data, Entry, EntryKind, LayerPath, LayerSink, LayerSource, Metadata, Result};

use crate::format::FileRecord;
use crate::reader::{Cim, DirEntry, FileId};
use crate::source::{layer_path, link_entry, object_entry, send_object};

/// Says which paths (given as names) to leave out.
type Skip<'a> = Box<dyn Fn(&[String]) -> bool + 'a>;

/// The changes of a CIM against its parent, as an entry stream: depth first, names in byte
/// order, a directory's whiteouts before its children, the first name of a file the layer adds
/// carrying its data; names of files the parent has come last. A
/// [`winlayer_core::Collector`] puts it in canonical order.
pub struct Changes<'a> {
    cim: &'a Cim,
    parent: Option<&'a Cim>,
    skip: Skip<'a>,
}

impl<'a> Changes<'a> {
    /// What `cim` changes in `parent`'s view (`None`: everything `cim` shows). `parent` must
    /// be the image `cim` was forked from ([`Cim::is_fork_of`]).
    pub fn new(cim: &'a Cim, parent: Option<&'a Cim>) -> Self {
        Changes { cim, parent, skip: Box::new(|_| false) }
    }

    /// Leaves out, in both views, every path for which `skip` (given the path's names as each
    /// image spells them) says so, and everything below it.
    pub fn skipping(self, skip: impl Fn(&[String]) -> bool + 'a) -> Self {
        Changes { skip: Box::new(skip), ..self }
    }
}

/// An object of the fork still to visit, with what the parent has at its path.
struct Item {
    names: Vec<String>,
    id: FileId,
    record: FileRecord,
    /// The parent's object at this path: its FileID, record and name.
    lower: Option<(FileId, FileRecord, String)>,
}

/// A directory on the way down: sent once it or something below it is.
struct Ancestor {
    entry: Entry,
    record: FileRecord,
    sent: bool,
}

struct Walk<'a, 's> {
    cim: &'a Cim,
    parent: Option<&'a Cim>,
    skip: &'s dyn Fn(&[String]) -> bool,
    sink: &'s mut dyn LayerSink,
    chain: Vec<Ancestor>,
    /// The first name sent of every file this layer adds.
    first_names: HashMap<FileId, LayerPath>,
    /// Every path the layer sends an object or link for (case-folded): an importer resolves a
    /// link target there in the layer itself, so such a path cannot name a parent's file.
    taken: HashSet<String>,
    /// Names of files the parent already has, sent once every taken path is known.
    parent_files: Vec<(LayerPath, FileId, FileRecord)>,
    stack: Vec<Item>,
}

/// A directory that is not a link (directory links are objects, not containers).
fn is_container(record: &FileRecord) -> bool {
    record.is_dir() && record.reparse_offset.get() == 0
}

impl LayerSource for Changes<'_> {
    fn send_to(self, sink: &mut dyn LayerSink) -> Result<()> {
        let mut walk = Walk {
            cim: self.cim,
            parent: self.parent,
            skip: &*self.skip,
            sink,
            chain: Vec::new(),
            first_names: HashMap::new(),
            taken: HashSet::new(),
            parent_files: Vec::new(),
            stack: Vec::new(),
        };
        walk.directory(&[], self.cim.root(), self.parent.map(Cim::root))?;
        while let Some(item) = walk.stack.pop() {
            walk.visit(item)?;
        }
        walk.parent_files()
    }
}

impl Walk<'_, '_> {
    /// Sends the directories on the way down that were not sent yet.
    fn send_chain(&mut self) -> Result<()> {
        for a in self.chain.iter_mut().filter(|a| !a.sent) {
            self.taken.insert(a.entry.path.folded());
            send_object(self.cim, self.sink, &a.entry, &a.record)?;
            a.sent = true;
        }
        Ok(())
    }

    /// Sends a file or link the layer adds: its data the first time, a hard link after.
    fn send_file(&mut self, path: LayerPath, id: FileId, record: &FileRecord) -> Result<()> {
        self.taken.insert(path.folded());
        if let Some(first) = self.first_names.get(&id) {
            let entry = link_entry(path, first.clone(), self.cim.metadata(id, record)?);
            return self.sink.entry(&entry, &mut Data::empty());
        }
        self.first_names.insert(id, path.clone());
        send_object(self.cim, self.sink, &object_entry(self.cim, path, id, record)?, record)
    }

    fn visit(&mut self, item: Item) -> Result<()> {
        let Item { names, id, record, lower } = item;
        self.chain.truncate(names.len() - 1);
        let path = layer_path(self.cim, &names)?;
        if is_container(&record) {
            let (changed, merged_with) = match (&lower, self.parent) {
                (Some((lower_id, lower_record, lower_name)), Some(parent))
                    if *lower_id == id && is_container(lower_record) =>
                {
                    let differs = lower_name != names.last().expect("a name")
                        || self.cim.metadata(id, &record)? != parent.metadata(id, lower_record)?
                        || self.cim.streams(&record)? != parent.streams(lower_record)?;
                    (differs, Some(id))
                }
                // New, re-created (its whiteout is sent already), or over a non-directory.
                _ => (true, None),
            };
            let entry = object_entry(self.cim, path, id, &record)?;
            self.chain.push(Ancestor { entry, record, sent: false });
            if changed {
                self.send_chain()?;
            }
            return self.directory(&names, id, merged_with);
        }
        let name = names.last().expect("a name");
        if lower.as_ref().is_some_and(|(lower_id, lower_record, lower_name)| {
            *lower_id == id && *lower_record == record && lower_name == name
        }) {
            return Ok(());
        }
        self.send_chain()?;
        let in_parent = match self.parent {
            Some(parent) => parent.record_location(id).is_some() && parent.record(id)? == record,
            None => false,
        };
        if in_parent {
            self.taken.insert(path.folded());
            self.parent_files.push((path, id, record));
            return Ok(());
        }
        self.send_file(path, id, &record)
    }

    /// Compares directory `id` of the fork with the parent's `lower` at the same path: sends
    /// the whiteouts, queues the children.
    fn directory(&mut self, names: &[String], id: FileId, lower: Option<FileId>) -> Result<()> {
        let upcase = self.cim.upcase();
        let mut below: HashMap<String, DirEntry> = match (lower, self.parent) {
            (Some(lower), Some(parent)) => parent.dir(lower)?.into_iter().map(|e| (upcase.key(&e.name), e)).collect(),
            _ => HashMap::new(),
        };
        let with = |name: &str| names.iter().cloned().chain([name.to_string()]).collect::<Vec<_>>();
        let mut items = Vec::new();
        let mut whiteouts = Vec::new();
        for child in self.cim.dir(id)? {
            let matched = below.remove(&upcase.key(&child.name));
            let child_names = with(&child.name);
            if (self.skip)(&child_names) {
                continue;
            }
            let record = self.cim.record(child.id)?;
            let lower = match (matched, self.parent) {
                (Some(e), Some(parent)) => {
                    let lower_record = parent.record(e.id)?;
                    if e.id != child.id && is_container(&record) && is_container(&lower_record) {
                        whiteouts.push(e.name.clone());
                    }
                    Some((e.id, lower_record, e.name))
                }
                _ => None,
            };
            items.push(Item { names: child_names, id: child.id, record, lower });
        }
        whiteouts.extend(below.into_values().map(|e| e.name).filter(|n| !(self.skip)(&with(n))));
        if !whiteouts.is_empty() {
            self.send_chain()?;
            whiteouts.sort();
            for name in whiteouts {
                let entry = Entry {
                    path: layer_path(self.cim, &with(&name))?,
                    kind: EntryKind::Whiteout,
                    meta: Metadata::default(),
                };
                self.sink.entry(&entry, &mut Data::empty())?;
            }
        }
        // Popped in byte order of the names.
        items.sort_by(|a, b| b.names.last().cmp(&a.names.last()));
        self.stack.extend(items);
        Ok(())
    }

    /// Sends the names the layer gives files the parent already has, as hard links to a name
    /// of the file in the parent that the layer does not take; a file whose every parent name
    /// the layer takes is sent whole.
    fn parent_files(mut self) -> Result<()> {
        let (Some(parent), false) = (self.parent, self.parent_files.is_empty()) else { return Ok(()) };
        let wanted: HashSet<FileId> = self.parent_files.iter().map(|(_, id, _)| *id).collect();
        let mut names: HashMap<FileId, Vec<LayerPath>> = HashMap::new();
        parent.walk(|path, id, r| {
            if !r.is_dir() && wanted.contains(&id) && !(1..=path.len()).any(|n| (self.skip)(&path[..n])) {
                names.entry(id).or_default().push(layer_path(parent, path)?);
            }
            Ok(())
        })?;
        for (path, id, record) in std::mem::take(&mut self.parent_files) {
            let free = names.get(&id).and_then(|n| n.iter().find(|p| !self.taken.contains(&p.folded())));
            match free {
                Some(target) if !self.first_names.contains_key(&id) => {
                    let entry = link_entry(path, target.clone(), self.cim.metadata(id, &record)?);
                    self.sink.entry(&entry, &mut Data::empty())?;
                }
                _ => self.send_file(path, id, &record)?,
            }
        }
        Ok(())
    }
}
