//! The merged view of a CIM (with its parents) as an entry stream, in canonical order:
//! depth-first, names in byte order, streams after their owner, the first name of a
//! multiply-linked file carrying its data and the others linking to it.

use std::collections::HashMap;

use winlayer_core::canonical::RangeReader;
use winlayer_core::reparse::Link;
use winlayer_core::{Data, Entry, EntryKind, Error, LayerPath, LayerSink, LayerSource, Metadata, Origin, Result};

use crate::format::{FileRecord, Stream};
use crate::reader::{Cim, FileId};

/// Sends the tree of an open CIM to a sink.
pub struct CimSource<'a> {
    cim: &'a Cim,
}

impl<'a> CimSource<'a> {
    /// The merged view of `cim`.
    pub fn new(cim: &'a Cim) -> Self {
        CimSource { cim }
    }
}

/// The layer path of a name list of `cim` (layer paths, and the root files importers generate).
pub(crate) fn layer_path(cim: &Cim, names: &[String]) -> Result<LayerPath> {
    let text = names.join("/");
    LayerPath::parse(&text).or_else(|e| {
        LayerPath::generated_root_file(&text)
            .ok_or_else(|| Error::Invalid(format!("{}: {e} (not a Windows layer path)", cim.path().display())))
    })
}

/// The entry of an object of `cim` at `path` (a directory, a file or a link) with its metadata.
pub(crate) fn object_entry(cim: &Cim, path: LayerPath, id: FileId, record: &FileRecord) -> Result<Entry> {
    let meta = cim.metadata(id, record)?;
    let kind = match cim.reparse(record)? {
        Some(buf) => {
            EntryKind::Symlink(Link::from_reparse_buffer(&buf).map_err(|e| Error::Invalid(format!("{path}: {e}")))?)
        }
        None if record.is_dir() => EntryKind::Directory,
        None => EntryKind::File { size: record.default_stream.len() },
    };
    Ok(Entry { path, kind, meta })
}

/// The entry naming `target` again at `path`: a hard link carries the file's attributes and
/// times (a CIM keeps nothing per name), no security or EAs.
pub(crate) fn link_entry(path: LayerPath, target: LayerPath, meta: Metadata) -> Entry {
    Entry { path, kind: EntryKind::HardLink { target }, meta: Metadata { security: None, eas: Vec::new(), ..meta } }
}

/// Sends an object entry, its data and its alternate streams (in name order).
pub(crate) fn send_object(cim: &Cim, sink: &mut dyn LayerSink, entry: &Entry, record: &FileRecord) -> Result<()> {
    match entry.kind {
        EntryKind::File { .. } => send(cim, sink, entry, &record.default_stream)?,
        _ => sink.entry(entry, &mut Data::empty())?,
    }
    let mut streams = cim.streams(record)?;
    streams.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, stream) in streams {
        let entry = Entry {
            path: entry.path.clone(),
            kind: EntryKind::Stream { name, size: stream.len() },
            meta: Metadata::default(),
        };
        send(cim, sink, &entry, &stream)?;
    }
    Ok(())
}

/// Sends one entry with a stream's bytes, referring to them where they lie when they are
/// contiguous in a region file.
fn send(cim: &Cim, sink: &mut dyn LayerSink, entry: &Entry, stream: &Stream) -> Result<()> {
    let len = stream.len();
    match cim.contiguous(stream) {
        Some((file, at)) => {
            let mut reader = RangeReader::new(file.clone(), at, len);
            sink.entry(entry, &mut Data::from_reader(&mut reader, len, Origin::FileRange(file, at)))
        }
        None => {
            let mut reader = cim.reader(*stream);
            sink.entry(entry, &mut Data::from_reader(&mut reader, len, Origin::Stream))
        }
    }
}

impl LayerSource for CimSource<'_> {
    fn send_to(self, sink: &mut dyn LayerSink) -> Result<()> {
        let cim = self.cim;
        let mut first_names: HashMap<FileId, LayerPath> = HashMap::new();
        cim.walk(|names, id, record| {
            let path = layer_path(cim, names)?;
            if !record.is_dir() {
                if let Some(first) = first_names.get(&id) {
                    let entry = link_entry(path, first.clone(), cim.metadata(id, record)?);
                    return sink.entry(&entry, &mut Data::empty());
                }
                first_names.insert(id, path.clone());
            }
            send_object(cim, sink, &object_entry(cim, path, id, record)?, record)
        })
    }
}
