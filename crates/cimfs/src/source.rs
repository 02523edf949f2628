//! The merged view of a CIM (with its parents) as an entry stream, in canonical order:
//! depth-first, names in byte order, streams after their owner, the first name of a
//! multiply-linked file carrying its data and the others linking to it.

use std::collections::HashMap;

use winlayer_core::canonical::RangeReader;
use winlayer_core::reparse::Link;
use winlayer_core::{Data, Entry, EntryKind, Error, LayerPath, LayerSink, LayerSource, Metadata, Origin, Result};

use crate::format::Stream;
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
            let path = LayerPath::parse(&names.join("/"))
                .map_err(|e| Error::Invalid(format!("{}: {e} (not a Windows layer path)", cim.path().display())))?;
            let meta = cim.metadata(id, record)?;
            if !record.is_dir() {
                if let Some(first) = first_names.get(&id) {
                    let meta = Metadata { security: None, eas: Vec::new(), ..meta };
                    let entry = Entry { path, kind: EntryKind::HardLink { target: first.clone() }, meta };
                    return sink.entry(&entry, &mut Data::empty());
                }
                first_names.insert(id, path.clone());
            }
            let kind = match cim.reparse(record)? {
                Some(buf) => EntryKind::Symlink(
                    Link::from_reparse_buffer(&buf).map_err(|e| Error::Invalid(format!("{path}: {e}")))?,
                ),
                None if record.is_dir() => EntryKind::Directory,
                None => EntryKind::File { size: record.default_stream.len() },
            };
            let entry = Entry { path: path.clone(), kind, meta };
            match entry.kind {
                EntryKind::File { .. } => send(cim, sink, &entry, &record.default_stream)?,
                _ => sink.entry(&entry, &mut Data::empty())?,
            }
            let mut streams = cim.streams(record)?;
            streams.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, stream) in streams {
                let entry = Entry {
                    path: path.clone(),
                    kind: EntryKind::Stream { name, size: stream.len() },
                    meta: Metadata::default(),
                };
                send(cim, sink, &entry, &stream)?;
            }
            Ok(())
        })
    }
}
