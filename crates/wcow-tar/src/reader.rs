//! Reads a Windows layer tar into the entry stream: tar framing (ustar, GNU long names, PAX)
//! first, then the Windows dialect (PAX `MSWINDOWS.*` records, streams, links, whiteouts).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use base64::Engine as _;
use winlayer_core::attrs;
use winlayer_core::check::Problem;
use winlayer_core::ea::ExtendedAttribute;
use winlayer_core::path::{LayerPath, check_stream_name};
use winlayer_core::reparse::Link;
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{Data, Entry, EntryKind, Error, FileTime, LayerSink, LayerSource, Metadata, Result};

use crate::header::{BLOCK, Header, parse_pax};
use crate::input::Input;

/// PAX extended headers larger than this are refused rather than buffered.
const MAX_PAX_HEADER: u64 = 1 << 20;
/// GNU long names larger than this are refused.
const MAX_LONG_NAME: u64 = 64 * 1024;

/// The PAX keys of the dialect.
pub mod keys {
    /// Win32 file attributes, decimal.
    pub const FILEATTR: &str = "MSWINDOWS.fileattr";
    /// Base64 self-relative security descriptor.
    pub const RAWSD: &str = "MSWINDOWS.rawsd";
    /// Legacy SDDL security descriptor.
    pub const SD: &str = "MSWINDOWS.sd";
    /// Present on junctions.
    pub const MOUNTPOINT: &str = "MSWINDOWS.mountpoint";
    /// Prefix of extended-attribute records (value base64).
    pub const XATTR: &str = "MSWINDOWS.xattr.";
    /// Creation time.
    pub const CREATIONTIME: &str = "LIBARCHIVE.creationtime";
}

/// How a reader reacts to a broken entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Stop at the first error.
    Strict,
    /// Record the problem and go on (dropping the broken field or entry), so every problem
    /// can be listed. Errors in the tar framing itself still stop the reader.
    Collect,
}

/// A tar entry as the framing layer delivers it.
struct Raw {
    offset: u64,
    header: Header,
    pax: Vec<(String, Vec<u8>)>,
    name: Vec<u8>,
    link: Vec<u8>,
}

impl Raw {
    fn pax(&self, key: &str) -> Option<&[u8]> {
        self.pax.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }
}

/// Counts of harmless but non-canonical traits, reported once per archive.
#[derive(Default)]
struct Tally {
    no_times: (u64, Option<String>),
    trailing_slash: (u64, Option<String>),
    dot_slash: (u64, Option<String>),
    stream_suffix: (u64, Option<String>),
}

fn tally(slot: &mut (u64, Option<String>), name: &str) {
    slot.0 += 1;
    slot.1.get_or_insert_with(|| name.to_string());
}

/// Reads a layer tar as an entry stream.
pub struct LayerReader {
    input: Input,
    mode: Mode,
    problems: Vec<Problem>,
    tally: Tally,
    entries: u64,
    /// Checked descriptors by their base64 text: layers reuse a handful of descriptors, so each
    /// is decoded and checked once and shared.
    descriptors: HashMap<Vec<u8>, Arc<[u8]>>,
    /// Told the uncompressed position after each entry (for progress bars).
    progress: Option<Box<dyn FnMut(u64) + Send>>,
    /// Tar headers that parsed.
    headers: u64,
}

impl LayerReader {
    /// A reader over `input`.
    pub fn new(input: Input, mode: Mode) -> Self {
        LayerReader {
            input,
            mode,
            problems: Vec::new(),
            tally: Tally::default(),
            entries: 0,
            progress: None,
            headers: 0,
            descriptors: HashMap::new(),
        }
    }

    /// Problems found so far (all of them in [`Mode::Collect`]; warnings in either mode).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems found.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Entries read (tar entries describing objects, streams, links and whiteouts).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The input, positioned after the end-of-archive marker (what follows is padding).
    pub fn into_input(self) -> Input {
        self.input
    }

    /// Bytes of uncompressed tar consumed so far.
    pub fn position(&self) -> u64 {
        self.input.position()
    }

    /// Whether any tar header parsed: when reading fails before one did, the input is not a
    /// tar at all.
    pub fn saw_tar(&self) -> bool {
        self.headers > 0
    }

    /// Calls `report` with [`position`](Self::position) after each entry.
    pub fn on_progress(&mut self, report: impl FnMut(u64) + Send + 'static) {
        self.progress = Some(Box::new(report));
    }

    /// `NAME: ` of the input, for messages (empty for an unnamed reader).
    fn file(&self) -> String {
        self.input.name().map_or_else(String::new, |n| format!("{n}: "))
    }

    fn framing(&self, offset: u64, message: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{}tar framing at byte {offset}: {message}", self.file()))
    }

    fn io(&self, what: String, e: std::io::Error) -> Error {
        Error::io(format!("{}{what}", self.file()), e)
    }

    /// Records a problem; in strict mode an error ends reading.
    fn problem(&mut self, p: Problem) -> Result<()> {
        if self.mode == Mode::Strict && p.severity == winlayer_core::Severity::Error {
            return Err(Error::Invalid(format!("{}{}", self.file(), p.text())));
        }
        self.problems.push(p);
        Ok(())
    }

    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
        let at = self.input.position();
        let n = self.input.read_full(block).map_err(|e| self.io(format!("reading the tar at byte {at}"), e))?;
        match n {
            0 if at == 0 => Err(self.framing(at, "the input is empty")),
            0 => Err(self.framing(at, "the archive ends without its end-of-archive blocks (truncated?)")),
            BLOCK => Ok(true),
            _ => Err(self.framing(at, format!("the archive is truncated inside a header ({n} of 512 bytes)"))),
        }
    }

    fn read_small(&mut self, size: u64, limit: u64, what: &str, offset: u64) -> Result<Vec<u8>> {
        if size > limit {
            return Err(self.framing(offset, format!("{what} of {size} bytes is larger than the {limit}-byte limit")));
        }
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut buf = vec![0u8; padded as usize];
        let n =
            self.input.read_full(&mut buf).map_err(|e| self.io(format!("reading the {what} at byte {offset}"), e))?;
        if n < buf.len() {
            return Err(self.framing(offset, format!("the archive is truncated inside a {what}")));
        }
        buf.truncate(size as usize);
        Ok(buf)
    }

    /// The next entry of the tar framing; `None` at the end-of-archive marker.
    fn next_raw(&mut self) -> Result<Option<Raw>> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let offset = self.input.position();
            self.read_block(&mut block)?;
            if Header::is_zero(&block) {
                if !pax.is_empty() || long_name.is_some() || long_link.is_some() {
                    return Err(self.framing(offset, "an extended header is not followed by the entry it describes"));
                }
                return Ok(None);
            }
            let header = Header::parse(&block).map_err(|e| self.framing(offset, e))?;
            self.headers += 1;
            match header.typeflag {
                b'x' => {
                    let blob = self.read_small(header.size, MAX_PAX_HEADER, "PAX extended header", offset)?;
                    for (k, v) in parse_pax(&blob).map_err(|e| self.framing(offset, e))? {
                        pax.retain(|(key, _)| *key != k);
                        pax.push((k, v));
                    }
                }
                b'g' => {
                    return Err(self.framing(
                        offset,
                        "PAX global header: global records are not part of the Windows layer dialect",
                    ));
                }
                b'L' | b'K' => {
                    let mut name = self.read_small(header.size, MAX_LONG_NAME, "GNU long name", offset)?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    if header.typeflag == b'L' { long_name = Some(name) } else { long_link = Some(name) }
                }
                _ => {
                    let mut header = header;
                    if let Some(size) = pax.iter().find(|(k, _)| k == "size").map(|(_, v)| v.clone()) {
                        header.size = std::str::from_utf8(&size)
                            .ok()
                            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| self.framing(offset, "PAX size record is not a decimal number"))?;
                    }
                    let name = pax
                        .iter()
                        .find(|(k, _)| k == "path")
                        .map(|(_, v)| v.clone())
                        .or(long_name)
                        .unwrap_or_else(|| header.name.clone());
                    let link = pax
                        .iter()
                        .find(|(k, _)| k == "linkpath")
                        .map(|(_, v)| v.clone())
                        .or(long_link)
                        .unwrap_or_else(|| header.linkname.clone());
                    return Ok(Some(Raw { offset, header, pax, name, link }));
                }
            }
        }
    }

    /// Reads the whole archive into `sink`.
    pub fn read_into(&mut self, sink: &mut dyn LayerSink) -> Result<()> {
        while let Some(raw) = self.next_raw()? {
            let size = raw.header.size;
            let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
            if let Some(left) = self.input.remaining()
                && padded > left
            {
                return Err(self.framing(
                    raw.offset,
                    format!("entry claims {size} bytes of data but only {left} bytes remain in the archive"),
                ));
            }
            self.entries += 1;
            let entry = match self.interpret(&raw) {
                Ok(entry) => entry,
                Err(problem) => {
                    self.problem(problem.at(raw.offset))?;
                    None
                }
            };
            let origin = self.input.origin();
            let mut consumed = 0;
            if let Some(entry) = entry {
                let len = entry.kind.data_len();
                let mut limited = (&mut self.input).take(len);
                let mut data = Data::from_reader(&mut limited, len, origin);
                sink.entry(&entry, &mut data)?;
                consumed = len - limited.limit();
            }
            let rest = padded - consumed;
            let skipped =
                self.input.skip(rest).map_err(|e| self.io(format!("reading entry data at byte {}", raw.offset), e))?;
            if skipped != rest {
                return Err(self.framing(
                    raw.offset,
                    format!("the archive is truncated inside the data of {}", String::from_utf8_lossy(&raw.name)),
                ));
            }
            if let Some(report) = self.progress.as_mut() {
                report(self.input.position());
            }
        }
        // What follows the end-of-archive block is padding: the whole input is read.
        let end = self.input.position() + self.input.remaining().unwrap_or(0);
        if let Some(report) = self.progress.as_mut() {
            report(end);
        }
        self.summarize();
        Ok(())
    }

    fn summarize(&mut self) {
        let t = std::mem::take(&mut self.tally);
        let notes = [
            (
                t.no_times,
                "entries lack atime or ctime records; Windows' importer would stamp those times 1754-08-30 (winlayer uses mtime)",
            ),
            (
                t.trailing_slash,
                "entries end in '/'; hcsshim compares some names literally (UtilityVM/Files/ is not recognised), \
                 and go-winio's importer does not attach a `dir:stream` entry to a directory written as `dir/` \
                 (it imports the stream as a separate file)",
            ),
            (t.dot_slash, "entries start with './'; hcsshim compares some names literally"),
            (t.stream_suffix, "stream entries end in ':$DATA', which go-winio's importer does not expect"),
        ];
        for ((count, example), text) in notes {
            if count > 0 {
                let example = example.unwrap_or_default();
                self.problems.push(Problem::warning(None, format!("{count} {text} (first: {example})")));
            }
        }
    }

    /// Interprets one tar entry as a dialect entry; field problems are recorded (and the field
    /// dropped), entry problems are returned. `Ok(None)` skips the entry.
    fn interpret(&mut self, raw: &Raw) -> Result<Option<Entry>, Problem> {
        let name = std::str::from_utf8(&raw.name)
            .map_err(|_| Problem::error(String::from_utf8_lossy(&raw.name).into_owned(), "name is not valid UTF-8"))?;
        let mut name = name;
        if let Some(rest) = name.strip_prefix("./") {
            tally(&mut self.tally.dot_slash, name);
            name = rest;
        }
        if name.is_empty() || name == "." {
            self.problems.push(
                Problem::warning(Some("./".into()), "entry for the archive root ignored: a layer has no root entry")
                    .at(raw.offset),
            );
            return Ok(None);
        }
        if name.len() > 1 && name.ends_with('/') {
            tally(&mut self.tally.trailing_slash, name);
            name = name.trim_end_matches('/');
        }
        let err = |message: String| Problem::error(name.to_string(), message);
        let (dir, base) = name.rsplit_once('/').map_or(("", name), |(d, b)| (d, b));
        let join = |leaf: &str| {
            if dir.is_empty() { leaf.to_string() } else { format!("{dir}/{leaf}") }
        };
        // The entry's own name is said once, as the problem's path.
        let parse = |p: &str| {
            LayerPath::parse(p)
                .map_err(|e| Problem::error(name.to_string(), if e.path == name { e.rule } else { e.to_string() }))
        };

        if let Some(deleted) = base.strip_prefix(".wh.") {
            return Ok(Some(if deleted == ".wh..opq" {
                let dir = parse(dir)?;
                Entry { path: dir, kind: EntryKind::Opaque, meta: Metadata::default() }
            } else {
                Entry { path: parse(&join(deleted))?, kind: EntryKind::Whiteout, meta: Metadata::default() }
            }));
        }

        let regular = matches!(raw.header.typeflag, b'0' | 0 | b'7');
        if let Some((owner, stream)) = base.split_once(':') {
            let stream =
                match stream.len().checked_sub(6).filter(|&i| stream.is_char_boundary(i)).map(|i| stream.split_at(i)) {
                    Some((s, suffix)) if suffix.eq_ignore_ascii_case(":$DATA") => {
                        tally(&mut self.tally.stream_suffix, name);
                        s
                    }
                    _ => stream,
                };
            if stream.contains(':') {
                return Err(err(format!("stream {stream:?}: only $DATA streams can be stored")));
            }
            check_stream_name(stream).map_err(err)?;
            if !regular {
                return Err(err("an alternate data stream must be a regular-file tar entry".into()));
            }
            let path = parse(&join(owner))?;
            return Ok(Some(Entry {
                path,
                kind: EntryKind::Stream { name: stream.to_string(), size: raw.header.size },
                meta: Metadata::default(),
            }));
        }

        let path = parse(name)?;
        let header_only = |what: &str| {
            if raw.header.size != 0 {
                Err(err(format!(
                    "a {what} entry must have size 0, not {} (tar readers disagree about whether data follows)",
                    raw.header.size
                )))
            } else {
                Ok(())
            }
        };
        let kind = match raw.header.typeflag {
            _ if regular => EntryKind::File { size: raw.header.size },
            b'5' => {
                header_only("directory")?;
                EntryKind::Directory
            }
            b'2' => {
                header_only("symlink")?;
                let target =
                    std::str::from_utf8(&raw.link).map_err(|_| err("link target is not valid UTF-8".into()))?;
                EntryKind::Symlink(Link {
                    target: target.replace('/', "\\"),
                    junction: raw.pax(keys::MOUNTPOINT).is_some(),
                })
            }
            b'1' => {
                header_only("hard link")?;
                let target =
                    std::str::from_utf8(&raw.link).map_err(|_| err("hard link target is not valid UTF-8".into()))?;
                let target = target.strip_prefix("./").unwrap_or(target);
                let target = LayerPath::parse(target).map_err(|e| err(format!("hard link target: {e}")))?;
                EntryKind::HardLink { target }
            }
            b'3' | b'4' | b'6' => {
                return Err(err("character devices, block devices and FIFOs have no Windows form".into()));
            }
            b'S' => {
                return Err(err("GNU sparse entries are not part of the Windows layer dialect".into()));
            }
            t => return Err(err(format!("unsupported tar entry type {:?}", t as char))),
        };
        let meta = self.metadata(raw, &path, &kind).map_err(|p| p.at(raw.offset))?;
        Ok(Some(Entry { path, kind, meta }))
    }

    /// The Windows metadata of an object entry. Broken fields are reported and dropped.
    fn metadata(&mut self, raw: &Raw, path: &LayerPath, kind: &EntryKind) -> Result<Metadata, Problem> {
        let name = path.to_string();
        let mut dropped: Vec<Problem> = Vec::new();
        let field_error = |message: String| Problem::error(name.clone(), message).at(raw.offset);
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let time = |key: &str| -> Result<Option<FileTime>, Problem> {
            match raw.pax(key) {
                None => Ok(None),
                Some(v) => std::str::from_utf8(v)
                    .map_err(|_| "not UTF-8".to_string())
                    .and_then(|s| FileTime::parse_pax(s).map_err(|e| e.to_string()))
                    .map(Some)
                    .map_err(|e| Problem::error(name.clone(), format!("{key}: {e}"))),
            }
        };
        let mtime = match time("mtime")? {
            Some(t) => t,
            None => FileTime::from_unix(raw.header.mtime, 0)
                .ok_or_else(|| Problem::error(name.clone(), format!("mtime {} is before 1601", raw.header.mtime)))?,
        };
        let (atime, ctime) = (time("atime")?, time("ctime")?);
        if atime.is_none() || ctime.is_none() {
            tally(&mut self.tally.no_times, &name);
        }
        let mut meta = Metadata {
            attributes: if *kind == EntryKind::Directory { attrs::DIRECTORY } else { 0 },
            creation: time(keys::CREATIONTIME)?.unwrap_or(mtime),
            last_write: mtime,
            last_access: atime.unwrap_or(mtime),
            change: ctime.unwrap_or(mtime),
            security: None,
            eas: Vec::new(),
        };
        if let Some(v) = raw.pax(keys::FILEATTR) {
            match std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
            {
                Some(a) => meta.attributes = a,
                None => dropped.push(field_error(format!(
                    "{}: {:?} is not a decimal 32-bit attribute value",
                    keys::FILEATTR,
                    text(v)
                ))),
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Some(v) = raw.pax(keys::RAWSD) {
            if let Some(known) = self.descriptors.get(v) {
                meta.security = Some(known.clone());
            } else {
                match b64.decode(v) {
                    Err(e) => dropped.push(field_error(format!("{}: bad base64 ({e})", keys::RAWSD))),
                    Ok(bytes) => match SecurityDescriptor::from_bytes(&bytes) {
                        Ok(_) => {
                            let sd: Arc<[u8]> = Arc::from(bytes);
                            self.descriptors.insert(v.to_vec(), sd.clone());
                            meta.security = Some(sd);
                        }
                        Err(e) => dropped.push(field_error(format!("{}: {e}", keys::RAWSD))),
                    },
                }
            }
        } else if let Some(v) = raw.pax(keys::SD) {
            match std::str::from_utf8(v)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(|s| SecurityDescriptor::from_sddl(s).map_err(|e| e.to_string()))
            {
                Ok(sd) => meta.security = Some(Arc::from(sd.to_bytes())),
                Err(e) => dropped.push(field_error(format!("{}: {e}", keys::SD))),
            }
        }
        for (key, value) in &raw.pax {
            if let Some(ea_name) = key.strip_prefix(keys::XATTR) {
                match b64.decode(value) {
                    Ok(v) => meta.eas.push(ExtendedAttribute { name: ea_name.as_bytes().to_vec(), value: v }),
                    Err(e) => dropped.push(field_error(format!("{key}: bad base64 ({e})"))),
                }
            } else if key.starts_with("GNU.sparse.") {
                return Err(Problem::error(name.clone(), "PAX sparse files are not part of the Windows layer dialect"));
            } else if (key.starts_with("MSWINDOWS.") || key.starts_with("LIBARCHIVE."))
                && ![keys::FILEATTR, keys::RAWSD, keys::SD, keys::MOUNTPOINT, keys::CREATIONTIME]
                    .contains(&key.as_str())
            {
                dropped.push(
                    Problem::warning(
                        name.clone(),
                        format!("unknown record {key} is not part of the dialect and is dropped"),
                    )
                    .at(raw.offset),
                );
            }
        }
        meta.eas.sort();
        for p in dropped {
            if self.mode == Mode::Strict && p.severity == winlayer_core::Severity::Error {
                return Err(p);
            }
            self.problems.push(p);
        }
        Ok(meta)
    }
}

impl LayerSource for LayerReader {
    fn send_to(mut self, sink: &mut dyn LayerSink) -> Result<()> {
        self.read_into(sink)
    }
}

/// Reads all of `input` strictly, returning the entries (for tests and small layers).
pub fn read_all(input: Input) -> Result<Vec<(Entry, Vec<u8>)>> {
    struct Gather(Vec<(Entry, Vec<u8>)>);
    impl LayerSink for Gather {
        fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
            let mut bytes = Vec::new();
            data.read_to_end(&mut bytes).map_err(|e| Error::io(format!("reading {}", entry.path), e))?;
            if bytes.len() as u64 != entry.kind.data_len() {
                return Err(Error::Invalid(format!(
                    "{}: data ends after {} of {} bytes",
                    entry.path,
                    bytes.len(),
                    entry.kind.data_len()
                )));
            }
            self.0.push((entry.clone(), bytes));
            Ok(())
        }
    }
    let mut gather = Gather(Vec::new());
    LayerReader::new(input, Mode::Strict).read_into(&mut gather)?;
    Ok(gather.0)
}

/// Convenience: a reader over bytes in memory ([`Input::from_bytes`]).
pub fn from_bytes(bytes: Vec<u8>) -> io::Result<Input> {
    Input::from_bytes(bytes)
}
