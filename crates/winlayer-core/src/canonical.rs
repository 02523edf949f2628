//! The canonical order of a layer, and a sink that gathers any entry stream and replays it in
//! that order: metadata in memory, file data left where it is or spooled to a temporary file.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::check::{Checker, Problem};
use crate::entry::{Data, Entry, EntryKind, Error, LayerSink, LayerSource, Metadata, Origin, Result};
use crate::path::LayerPath;

/// Sort key: one `(class, name)` pair per level. Within a directory come, in this order, its
/// streams (class 0), its opaque marker (1), the whiteouts of its children (2), then its
/// children (3), each group by byte order of the name, so the walk is depth-first, pre-order.
fn canonical_key(entry: &Entry) -> impl Iterator<Item = (u8, &str)> {
    let path = entry.path.as_str();
    let (object, last) = match &entry.kind {
        EntryKind::Stream { name, .. } => (path, Some((0, name.as_str()))),
        EntryKind::Opaque => (path, Some((1, ""))),
        EntryKind::Whiteout => match path.rsplit_once('/') {
            Some((parent, name)) => (parent, Some((2, name))),
            None => ("", Some((2, path))),
        },
        _ => (path, None),
    };
    object.split('/').filter(|c| !c.is_empty()).map(|c| (3, c)).chain(last)
}

/// Compares two entries in canonical order.
pub fn canonical_cmp(a: &Entry, b: &Entry) -> Ordering {
    canonical_key(a).cmp(canonical_key(b))
}

/// Where a collected entry's data is kept until it is replayed.
#[derive(Clone, Debug)]
enum Stored {
    None,
    Range(Arc<File>, u64, u64),
    Path(PathBuf, u64),
    Spool(u64, u64),
}

/// Gathers an entry stream in any order (a [`LayerSink`]); [`Collector::finish`] sorts it.
pub struct Collector {
    items: Vec<(Entry, Stored)>,
    spool: Option<BufWriter<File>>,
    spool_len: u64,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Collector { items: Vec::new(), spool: None, spool_len: 0 }
    }

    /// Sorts into canonical order: every hard-link group carried by its first name in that
    /// order (data, security, EAs and streams move with it), the other names linking to it.
    pub fn finish(self) -> Result<Sorted> {
        let spool = match self.spool {
            Some(w) => {
                Some(Arc::new(w.into_inner().map_err(|e| Error::io("flushing the spool file", e.into_error()))?))
            }
            None => None,
        };
        let mut items = self.items;
        resolve_links(&mut items);
        items.sort_by(|a, b| canonical_cmp(&a.0, &b.0));
        Ok(Sorted { items, spool })
    }
}

/// Metadata a hard-link entry carries: the file's attributes and times, no security or EAs.
fn link_metadata(meta: &Metadata) -> Metadata {
    Metadata { security: None, eas: Vec::new(), ..meta.clone() }
}

fn resolve_links(items: &mut [(Entry, Stored)]) {
    let mut objects: HashMap<String, usize> = HashMap::new();
    let mut streams: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, (e, _)) in items.iter().enumerate() {
        match e.kind {
            EntryKind::File { .. } | EntryKind::Symlink(_) | EntryKind::HardLink { .. } => {
                objects.entry(e.path.folded()).or_insert(i);
            }
            EntryKind::Stream { .. } => streams.entry(e.path.folded()).or_default().push(i),
            _ => {}
        }
    }
    // Root of each link: the file it finally names, following chains, refusing loops.
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, (e, _)) in items.iter().enumerate() {
        let EntryKind::HardLink { target } = &e.kind else {
            continue;
        };
        let mut cur = target.clone();
        for _ in 0..items.len() {
            let Some(&j) = objects.get(&cur.folded()) else {
                break;
            };
            match &items[j].0.kind {
                EntryKind::HardLink { target } if j != i => cur = target.clone(),
                EntryKind::File { .. } | EntryKind::Symlink(_) => {
                    groups.entry(j).or_default().push(i);
                    break;
                }
                _ => break,
            }
        }
    }
    let mut roots: Vec<_> = groups.into_iter().collect();
    roots.sort();
    for (root, links) in roots {
        let primary = links
            .iter()
            .copied()
            .chain([root])
            .min_by(|&a, &b| canonical_cmp(&items[a].0, &items[b].0))
            .unwrap_or(root);
        if primary != root {
            let (kind, meta, data) = (items[root].0.kind.clone(), items[root].0.meta.clone(), items[root].1.clone());
            let new_path = items[primary].0.path.clone();
            for &s in streams.get(&items[root].0.path.folded()).map(Vec::as_slice).unwrap_or(&[]) {
                items[s].0.path = new_path.clone();
            }
            items[primary] = (Entry { path: new_path, kind, meta }, data);
            items[root].1 = Stored::None;
        }
        let target = items[primary].0.path.clone();
        let meta = link_metadata(&items[primary].0.meta);
        for i in links.into_iter().chain([root]).filter(|&i| i != primary) {
            items[i].0.kind = EntryKind::HardLink { target: target.clone() };
            items[i].0.meta = meta.clone();
        }
    }
}

impl LayerSink for Collector {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let len = entry.kind.data_len();
        let stored = if len == 0 {
            Stored::None
        } else {
            match data.origin().clone() {
                Origin::FileRange(file, offset) => Stored::Range(file, offset, len),
                Origin::Path(path) => Stored::Path(path, len),
                Origin::Stream => {
                    if self.spool.is_none() {
                        let file =
                            tempfile::tempfile().map_err(|e| Error::io("creating a spool file for entry data", e))?;
                        self.spool = Some(BufWriter::with_capacity(1 << 20, file));
                    }
                    let spool = self.spool.as_mut().expect("spool was just created");
                    let copied = io::copy(&mut data.take(len), spool)
                        .map_err(|e| Error::io(format!("spooling the data of {}", entry.path), e))?;
                    if copied != len {
                        return Err(Error::Invalid(format!("{}: data ends after {copied} of {len} bytes", entry.path)));
                    }
                    let at = self.spool_len;
                    self.spool_len += len;
                    Stored::Spool(at, len)
                }
            }
        };
        self.items.push((entry.clone(), stored));
        Ok(())
    }
}

/// A layer in canonical order, ready to be checked and replayed.
pub struct Sorted {
    items: Vec<(Entry, Stored)>,
    spool: Option<Arc<File>>,
}

impl Sorted {
    /// The entries, in canonical order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.items.iter().map(|(e, _)| e)
    }

    /// Every rule violation of the layer as it will be written.
    pub fn check(&self) -> Vec<Problem> {
        let mut checker = Checker::new();
        self.entries().for_each(|e| checker.check(e));
        checker.finish()
    }
}

impl LayerSource for Sorted {
    fn send_to(self, sink: &mut dyn LayerSink) -> Result<()> {
        for (entry, stored) in &self.items {
            let mut reader = match stored {
                Stored::None => None,
                Stored::Range(file, offset, len) => Some(RangeReader::new(file.clone(), *offset, *len)),
                Stored::Spool(offset, len) => {
                    Some(RangeReader::new(self.spool.clone().expect("spooled data without a spool"), *offset, *len))
                }
                Stored::Path(..) => None,
            };
            let mut data = match (stored, reader.as_mut()) {
                (Stored::Path(path, len), _) => Data::from_path(path, *len),
                (_, Some(r)) => {
                    let origin = Origin::FileRange(r.file.clone(), r.pos);
                    let len = r.end - r.pos;
                    Data::from_reader(r, len, origin)
                }
                _ => Data::empty(),
            };
            sink.entry(entry, &mut data)?;
        }
        Ok(())
    }
}

/// Reads a byte range of a shared file with positional reads, so many readers can share it.
pub struct RangeReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl RangeReader {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> Self {
        RangeReader { file, pos: offset, end: offset + len }
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, &mut buf[..want], self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than the entry's data"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Copies `len` bytes of data into a writer through `buf`, so a short source is an error, not a
/// silently truncated entry.
pub fn copy_exact(data: &mut dyn Read, len: u64, out: &mut dyn Write, what: &LayerPath, buf: &mut [u8]) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = match data.read(&mut buf[..want]) {
            Ok(0) => return Err(Error::Invalid(format!("{what}: data ends after {} of {len} bytes", len - left))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("copying the data of {what}"), e)),
        };
        out.write_all(&buf[..n]).map_err(|e| Error::io(format!("writing the data of {what}"), e))?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs;
    use crate::filetime::FileTime;

    fn p(s: &str) -> LayerPath {
        LayerPath::parse(s).unwrap()
    }
    fn meta(attributes: u32, secs: i64) -> Metadata {
        let mut m = Metadata::with_times(attributes, FileTime::from_unix(secs, 0).unwrap());
        m.security = Some(Arc::from(&b"sd"[..]));
        m
    }

    struct Record(Vec<(Entry, Vec<u8>)>);
    impl LayerSink for Record {
        fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
            let mut buf = Vec::new();
            data.read_to_end(&mut buf).unwrap();
            self.0.push((entry.clone(), buf));
            Ok(())
        }
    }

    fn feed(c: &mut Collector, path: &str, kind: EntryKind, m: Metadata, bytes: &[u8]) {
        let mut r: &[u8] = bytes;
        let len = bytes.len() as u64;
        c.entry(&Entry { path: p(path), kind, meta: m }, &mut Data::from_reader(&mut r, len, Origin::Stream)).unwrap();
    }

    #[test]
    fn sorts_and_moves_link_groups_to_their_first_name() {
        let mut c = Collector::new();
        feed(&mut c, "Files", EntryKind::Directory, meta(attrs::DIRECTORY, 1), b"");
        feed(&mut c, "Files/z", EntryKind::File { size: 4 }, meta(attrs::ARCHIVE, 2), b"data");
        feed(&mut c, "Files/z", EntryKind::Stream { name: "s".into(), size: 2 }, Metadata::default(), b"ss");
        feed(&mut c, "Files/m", EntryKind::HardLink { target: p("Files/z") }, meta(0, 9), b"");
        feed(&mut c, "Files/a", EntryKind::HardLink { target: p("Files/m") }, meta(0, 9), b"");
        feed(&mut c, "Files/q", EntryKind::Whiteout, Metadata::default(), b"");
        let sorted = c.finish().unwrap();
        assert_eq!(sorted.check(), vec![]);
        let mut rec = Record(Vec::new());
        sorted.send_to(&mut rec).unwrap();
        let got: Vec<_> = rec.0.iter().map(|(e, d)| (e.path.to_string(), e.kind.name(), d.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("Files".into(), "dir", vec![]),
                ("Files/q".into(), "whiteout", vec![]),
                ("Files/a".into(), "file", b"data".to_vec()),
                ("Files/a".into(), "stream", b"ss".to_vec()),
                ("Files/m".into(), "hardlink", vec![]),
                ("Files/z".into(), "hardlink", vec![]),
            ]
        );
        let links: Vec<_> = rec.0.iter().filter(|(e, _)| matches!(e.kind, EntryKind::HardLink { .. })).collect();
        for (e, _) in links {
            assert_eq!(e.kind, EntryKind::HardLink { target: p("Files/a") });
            assert_eq!(e.meta, link_metadata(&meta(attrs::ARCHIVE, 2)));
        }
        assert_eq!(rec.0[2].0.meta, meta(attrs::ARCHIVE, 2));
    }

    #[test]
    fn link_loops_and_external_targets_stay_links() {
        let mut c = Collector::new();
        feed(&mut c, "Files", EntryKind::Directory, meta(attrs::DIRECTORY, 1), b"");
        feed(&mut c, "Files/b", EntryKind::HardLink { target: p("Files/c") }, meta(0, 1), b"");
        feed(&mut c, "Files/c", EntryKind::HardLink { target: p("Files/b") }, meta(0, 1), b"");
        feed(&mut c, "Files/d", EntryKind::HardLink { target: p("Files/parent-layer") }, meta(0, 1), b"");
        let sorted = c.finish().unwrap();
        let kinds: Vec<_> = sorted.entries().map(|e| e.kind.clone()).collect();
        assert_eq!(kinds[1], EntryKind::HardLink { target: p("Files/c") });
        assert_eq!(kinds[3], EntryKind::HardLink { target: p("Files/parent-layer") });
        // The loop is reported by the checker rather than resolved.
        assert!(sorted.check().iter().any(|p| p.message.contains("comes after the link")));
    }
}
