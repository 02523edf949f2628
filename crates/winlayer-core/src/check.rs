//! The rules a Windows layer's entry stream must follow, checked entry by entry so that every
//! problem is found, not just the first.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use crate::attrs;
use crate::entry::{Data, Entry, EntryKind, LayerSink, Result};
use crate::path::{LayerPath, fold_case, fold_char};

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Windows would refuse or mis-handle the layer.
    Error,
    /// Legal, but worth knowing (differences between importers, lost precision, …).
    Warning,
}

/// One finding about a layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// The entry it concerns, when there is one.
    pub path: Option<String>,
    /// Byte offset of the entry's header in the (uncompressed) input, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// What is wrong, and which rule says so.
    pub message: String,
}

impl Problem {
    /// An error about `path`.
    pub fn error(path: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Problem { severity: Severity::Error, path: path.into(), offset: None, message: message.into() }
    }

    /// A warning about `path`.
    pub fn warning(path: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Problem { severity: Severity::Warning, path: path.into(), offset: None, message: message.into() }
    }

    /// The same problem, located at a byte offset.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

impl Problem {
    /// What is wrong where, without the severity: `PATH: MESSAGE (entry at byte N)`.
    pub fn text(&self) -> String {
        let mut text = self.path.as_ref().map_or_else(String::new, |path| format!("{path}: "));
        text.push_str(&self.message);
        if let Some(offset) = self.offset {
            text.push_str(&format!(" (entry at byte {offset})"));
        }
        text
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}", self.text())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Directory,
    DirectoryLink,
    File,
    HardLink,
}

/// A case-folded path as the checker remembers it: a 128-bit digest, keyed afresh for each
/// checker, so a crafted layer cannot aim for a collision and an accidental one has a 2^-128
/// chance. Every path of a layer is remembered, so a digest rather than the folded string
/// saves most of the checker's memory on big layers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Folded(u64, u64);

/// Makes [`Folded`] keys.
#[derive(Default)]
struct Folder {
    keys: (RandomState, RandomState),
    /// Reused for the folded string.
    buf: String,
}

impl Folder {
    fn key(&mut self, path: &str) -> Folded {
        self.buf.clear();
        self.buf.extend(path.chars().map(fold_char));
        Folded(self.keys.0.hash_one(&self.buf), self.keys.1.hash_one(&self.buf))
    }
}

/// Checks an entry stream against the layer rules, collecting every problem.
///
/// Order rules (parents first, streams right after their owner, link targets before links) are
/// checked as the entries arrive; what can only be known at the end (links whose target never
/// came) is checked by [`Checker::finish`].
#[derive(Default)]
pub struct Checker {
    /// Every path seen, as it was written.
    seen: HashMap<Folded, (Box<str>, Seen)>,
    folder: Folder,
    whiteouts: HashSet<Folded>,
    owner: Option<(LayerPath, HashSet<String>)>,
    pending_links: Vec<(LayerPath, LayerPath)>,
    problems: Vec<Problem>,
    has_files: bool,
    entries: u64,
}

impl Checker {
    /// A checker with no entries seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem found elsewhere (by a reader), so one list holds everything.
    pub fn report(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Problems found so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Whether an error has been found so far.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    fn error(&mut self, path: &LayerPath, message: impl Into<String>) {
        self.problems.push(Problem::error(path.to_string(), message));
    }

    fn warning(&mut self, path: &LayerPath, message: impl Into<String>) {
        self.problems.push(Problem::warning(path.to_string(), message));
    }

    /// What `path` was, if it was seen (names compared case-insensitively).
    fn seen_as(&mut self, path: &str) -> Option<Seen> {
        let key = self.folder.key(path);
        self.seen.get(&key).map(|(_, s)| *s)
    }

    /// Checks one entry.
    pub fn check(&mut self, entry: &Entry) {
        self.entries += 1;
        let path = &entry.path;
        match &entry.kind {
            EntryKind::Stream { name, .. } => return self.check_stream(path, name),
            EntryKind::Whiteout | EntryKind::Opaque => {
                self.owner = None;
                return self.check_whiteout(entry);
            }
            _ => {}
        }
        self.owner = None;
        let folded = self.folder.key(path.as_str());
        if let Some((other, _)) = self.seen.get(&folded) {
            let other = other.clone();
            if *other == *path.as_str() {
                self.error(path, "duplicate path: the layer already has an entry with this name");
            } else {
                self.error(
                    path,
                    format!("names differ only in case from {other}, which Windows treats as the same name"),
                );
            }
            return;
        }
        if self.whiteouts.contains(&folded) {
            self.warning(path, "also deleted by a whiteout in this layer: Windows' importer deletes the added entry, OCI tools keep it");
        }
        if path.file_name().starts_with(".wh.") {
            self.error(path, "names starting with .wh. are reserved for whiteouts in layer tars");
        }
        self.check_parent(path);
        self.check_metadata(entry);
        let seen = match &entry.kind {
            EntryKind::Directory => Seen::Directory,
            EntryKind::Symlink(_) if entry.meta.attributes & attrs::DIRECTORY != 0 => Seen::DirectoryLink,
            EntryKind::HardLink { target } => {
                self.check_link(path, target);
                Seen::HardLink
            }
            _ => Seen::File,
        };
        if path.parent().is_none() || path.as_str() == "UtilityVM/Files" {
            if seen != Seen::Directory {
                self.error(path, format!("{path} must be a directory, not a {}", entry.kind.name()));
            }
            self.has_files |= path.as_str() == "Files";
        }
        if matches!(entry.kind, EntryKind::Directory | EntryKind::File { .. } | EntryKind::Symlink(_)) {
            self.owner = Some((path.clone(), HashSet::new()));
        }
        self.seen.insert(folded, (path.as_str().into(), seen));
    }

    fn check_parent(&mut self, path: &LayerPath) {
        let Some(parent) = path.parent() else { return };
        match self.seen_as(parent.as_str()) {
            Some(Seen::Directory) => {}
            None => self.error(
                path,
                format!("parent directory {parent} has no entry before this one (importers create no missing parents)"),
            ),
            Some(Seen::DirectoryLink) => {
                self.error(path, format!("parent {parent} is a directory link; writing through it is refused"))
            }
            Some(_) => self.error(path, format!("parent {parent} is not a directory")),
        }
    }

    fn check_metadata(&mut self, entry: &Entry) {
        let (path, a) = (&entry.path, entry.meta.attributes);
        match &entry.kind {
            EntryKind::Directory if a & attrs::DIRECTORY == 0 => {
                self.error(path, format!("directory without FILE_ATTRIBUTE_DIRECTORY in its attributes (0x{a:x})"))
            }
            EntryKind::File { .. } if a & attrs::DIRECTORY != 0 => {
                self.error(path, format!("regular file with FILE_ATTRIBUTE_DIRECTORY in its attributes (0x{a:x})"))
            }
            EntryKind::Directory | EntryKind::File { .. } if a & attrs::REPARSE_POINT != 0 => self.error(
                path,
                format!(
                    "FILE_ATTRIBUTE_REPARSE_POINT set (0x{a:x}) but the entry is not a link, so it has no reparse data"
                ),
            ),
            EntryKind::Symlink(link) => {
                if let Err(e) = link.check() {
                    self.error(path, e.to_string());
                }
            }
            _ => {}
        }
        for ea in &entry.meta.eas {
            if let Err(e) = ea.check() {
                self.error(path, e.to_string());
            }
        }
    }

    fn check_link(&mut self, path: &LayerPath, target: &LayerPath) {
        let linkable = |p: &LayerPath| p.as_str().starts_with("Files/") || p.as_str().starts_with("UtilityVM/Files/");
        if !linkable(path) || !linkable(target) {
            self.error(
                path,
                format!(
                    "hard link {path} -> {target}: links and their targets must lie under Files/ or UtilityVM/Files/"
                ),
            );
            return;
        }
        if target == path {
            self.error(path, "hard link to itself");
            return;
        }
        match self.seen_as(target.as_str()) {
            Some(Seen::File) | Some(Seen::HardLink) => {}
            Some(Seen::Directory) | Some(Seen::DirectoryLink) => {
                self.error(path, format!("hard link to {target}, which is a directory"))
            }
            None => self.pending_links.push((path.clone(), target.clone())),
        }
    }

    fn check_stream(&mut self, path: &LayerPath, name: &str) {
        let display = format!("{path}:{name}");
        match self.owner.as_mut() {
            Some((owner, names)) if owner == path => {
                if !names.insert(fold_case(name)) {
                    self.problems.push(Problem::error(
                        display,
                        "the same stream appears twice (names compare case-insensitively)",
                    ));
                }
            }
            _ => {
                let message = if self.seen_as(path.as_str()).is_some() {
                    format!("stream does not directly follow its owner {path}")
                } else {
                    format!("stream of {path}, which has no entry before it")
                };
                self.problems.push(Problem::error(display, message));
            }
        }
    }

    fn check_whiteout(&mut self, entry: &Entry) {
        let path = &entry.path;
        let deletable = path.as_str().starts_with("Files/") || path.as_str().starts_with("UtilityVM/Files/");
        let opaque = entry.kind == EntryKind::Opaque;
        if opaque {
            if path.in_utility_vm() {
                self.error(path, "opaque whiteout under UtilityVM/Files: Windows' importer fails on it");
            } else if path.as_str() == "Files" || path.as_str().starts_with("Files/") {
                self.warning(path, "opaque whiteout (.wh..wh..opq): Windows' importers ignore it, so lower-layer content stays visible on Windows");
            } else {
                self.error(path, "opaque whiteout outside Files/ and UtilityVM/Files/");
            }
            return;
        }
        if !deletable {
            self.error(
                path,
                "whiteout outside Files/ and UtilityVM/Files/ (Windows rejects it as an invalid tombstone)",
            );
            return;
        }
        let folded = self.folder.key(path.as_str());
        if !self.whiteouts.insert(folded) {
            self.error(path, "the same whiteout appears twice");
        } else if self.seen.contains_key(&folded) {
            self.warning(
                path,
                "deletes an entry added earlier in this layer: Windows' importer deletes it, OCI tools keep it",
            );
        }
    }

    /// Ends the stream: checks what needed every entry, and returns all problems.
    pub fn finish(mut self) -> Vec<Problem> {
        if self.entries > 0 && !self.has_files {
            self.problems.push(Problem::error(None, "the layer has no Files directory entry"));
        }
        for (link, target) in std::mem::take(&mut self.pending_links) {
            if self.seen_as(target.as_str()).is_some() {
                self.error(
                    &link,
                    format!("hard link target {target} comes after the link (targets must precede their links)"),
                );
            } else {
                self.warning(&link, format!("hard link to {target}, which is not in this layer: Windows resolves it in a parent layer, and the import fails if none has it"));
            }
        }
        self.problems
    }
}

impl LayerSink for Checker {
    fn entry(&mut self, entry: &Entry, _data: &mut Data<'_>) -> Result<()> {
        self.check(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Metadata;
    use crate::reparse::Link;

    fn p(s: &str) -> LayerPath {
        LayerPath::parse(s).unwrap()
    }
    fn dir(s: &str) -> Entry {
        Entry {
            path: p(s),
            kind: EntryKind::Directory,
            meta: Metadata { attributes: attrs::DIRECTORY, ..Default::default() },
        }
    }
    fn file(s: &str) -> Entry {
        Entry {
            path: p(s),
            kind: EntryKind::File { size: 0 },
            meta: Metadata { attributes: attrs::ARCHIVE, ..Default::default() },
        }
    }
    fn with(kind: EntryKind, s: &str) -> Entry {
        Entry { path: p(s), kind, meta: Metadata::default() }
    }
    fn run(entries: &[Entry]) -> Vec<Problem> {
        let mut c = Checker::new();
        entries.iter().for_each(|e| c.check(e));
        c.finish()
    }
    fn messages(entries: &[Entry]) -> Vec<String> {
        run(entries).iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn clean_layer_has_no_problems() {
        let layer = [
            dir("Files"),
            dir("Files/a"),
            file("Files/a/x"),
            with(EntryKind::Stream { name: "s".into(), size: 1 }, "Files/a/x"),
            with(EntryKind::HardLink { target: p("Files/a/x") }, "Files/a/y"),
            with(EntryKind::Whiteout, "Files/a/gone"),
            dir("Hives"),
        ];
        assert_eq!(run(&layer), vec![]);
    }

    #[test]
    fn finds_every_problem() {
        let layer = [
            dir("Files"),
            file("Files/A"),
            file("Files/a"),
            file("Files/a"),
            file("Files/missing/x"),
            with(EntryKind::Stream { name: "s".into(), size: 0 }, "Files/A"),
            with(EntryKind::Stream { name: "s".into(), size: 0 }, "Files/nobody"),
            with(EntryKind::HardLink { target: p("Files") }, "Files/l1"),
            with(EntryKind::HardLink { target: p("Files/later") }, "Files/l2"),
            with(EntryKind::HardLink { target: p("Files/elsewhere") }, "Files/l3"),
            file("Files/later"),
            with(EntryKind::Whiteout, "Hives/x"),
            with(EntryKind::Opaque, "UtilityVM/Files/x"),
            Entry {
                path: p("Files/d2"),
                kind: EntryKind::Directory,
                meta: Metadata { attributes: attrs::ARCHIVE, ..Default::default() },
            },
            Entry {
                path: p("Files/j"),
                kind: EntryKind::Symlink(Link { target: "relative".into(), junction: true }),
                meta: Metadata { attributes: attrs::DIRECTORY | attrs::REPARSE_POINT, ..Default::default() },
            },
            file("Files/j/under"),
            file("Hives"),
            file("Files/.wh.name"),
        ];
        let found = messages(&layer);
        for needle in [
            "Files/a: names differ only in case from Files/A",
            "Files/missing/x: parent directory Files/missing has no entry",
            "Files/A:s: stream does not directly follow its owner",
            "Files/nobody:s: stream of Files/nobody, which has no entry",
            "hard link Files/l1 -> Files: links and their targets must lie under",
            "Files/l2: hard link target Files/later comes after the link",
            "warning: Files/l3: hard link to Files/elsewhere, which is not in this layer",
            "Hives/x: whiteout outside Files/",
            "UtilityVM/Files/x: opaque whiteout under UtilityVM/Files",
            "Files/d2: directory without FILE_ATTRIBUTE_DIRECTORY",
            "junction must point to an absolute path",
            "Files/j/under: parent Files/j is a directory link",
            "Hives must be a directory, not a file",
            "Files/.wh.name: names starting with .wh. are reserved",
        ] {
            assert!(
                found.iter().any(|m| m.contains(needle) || m.replace("error: ", "").contains(needle)),
                "missing {needle:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn whiteout_interplay_and_missing_files() {
        let found = messages(&[
            dir("Hives"),
            dir("Files"),
            file("Files/x"),
            with(EntryKind::Whiteout, "Files/x"),
            with(EntryKind::Opaque, "Files"),
        ]);
        assert!(found.iter().any(|m| m.starts_with("warning: Files/x: deletes an entry added earlier")), "{found:?}");
        assert!(found.iter().any(|m| m.starts_with("warning: Files: opaque whiteout")), "{found:?}");
        let found = messages(&[dir("Hives")]);
        assert!(found.iter().any(|m| m.contains("no Files directory")));
    }
}
