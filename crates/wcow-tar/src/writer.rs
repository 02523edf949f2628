//! Writes the canonical form of a Windows layer tar.
//!
//! Every object entry is a PAX extended header followed by a ustar header: records sorted by
//! key, `MSWINDOWS.fileattr`, `LIBARCHIVE.creationtime`, `atime` and `ctime` always present,
//! `mtime` only when it has a fraction or does not fit the header, `path`/`linkpath` only when
//! the name is not ASCII or longer than 100 bytes. Permission bits are 0755 for directories,
//! 0644 for files and hard links, 0777 for symlinks; owner 0/0 with no names. Streams follow
//! their owner with the owner's times; whiteouts are bare ustar entries with time 0. The
//! archive ends with two zero blocks and no further padding. The order is the caller's: feed
//! it a [`winlayer_core::Sorted`] stream for the canonical order.

use std::io::Write;

use base64::Engine as _;
use winlayer_core::canonical::copy_exact;
use winlayer_core::{Data, Entry, EntryKind, Error, FileTime, LayerSink, Metadata, Result};

use crate::header::{BLOCK, HeaderBuilder, OCTAL_11_MAX, pax_record};
use crate::reader::keys;

/// A [`LayerSink`] that writes a layer tar.
pub struct TarWriter<W: Write> {
    out: W,
    /// Copy buffer for entry data, large enough that big files move in few system calls.
    buf: Vec<u8>,
    /// Metadata and mode of the last object, which stream entries copy.
    owner: Option<(Metadata, u32)>,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    /// A writer into `out` (wrap it in a buffer).
    pub fn new(out: W) -> Self {
        TarWriter { out, buf: vec![0; 256 * 1024], owner: None, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the end-of-archive blocks and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(|e| Error::io("flushing the tar", e))?;
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::io("writing the tar", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let pad = (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64;
        self.put(&[0u8; BLOCK][..pad as usize])
    }

    /// Writes one tar entry: the PAX header when there are records, then the ustar header.
    fn header(&mut self, head: Head<'_>, mut records: Vec<(String, Vec<u8>)>) -> Result<()> {
        let Head { name, typeflag, mode, size, mtime, link } = head;
        let short = |s: &str| s.len() <= 100 && s.is_ascii();
        if !short(name) {
            records.push(("path".into(), name.as_bytes().to_vec()));
        }
        if !short(link) {
            records.push(("linkpath".into(), link.as_bytes().to_vec()));
        }
        if size > OCTAL_11_MAX {
            records.push(("size".into(), size.to_string().into_bytes()));
        }
        let header_mtime = match mtime {
            Some(t) if !t.has_fraction() && (0..=OCTAL_11_MAX as i64).contains(&t.unix_seconds()) => {
                t.unix_seconds() as u64
            }
            Some(t) => {
                records.push(("mtime".into(), t.to_pax().into_bytes()));
                t.unix_seconds().clamp(0, OCTAL_11_MAX as i64) as u64
            }
            None => 0,
        };
        if !records.is_empty() {
            records.sort();
            let mut blob = Vec::new();
            for (k, v) in &records {
                pax_record(&mut blob, k, v);
            }
            let (dir, base) = name.rsplit_once('/').map_or(("", name), |(d, b)| (d, b));
            let pax_name =
                if dir.is_empty() { format!("PaxHeaders.0/{base}") } else { format!("{dir}/PaxHeaders.0/{base}") };
            let block = HeaderBuilder::new(&ascii_prefix(&pax_name), b'x', 0, blob.len() as u64, 0).finish();
            self.put(&block)?;
            self.put(&blob)?;
            self.pad(blob.len() as u64)?;
        }
        let block = HeaderBuilder::new(&ascii_prefix(name), typeflag, mode, size, header_mtime)
            .linkname(&ascii_prefix(link))
            .finish();
        self.put(&block)
    }
}

/// The header fields of one tar entry.
struct Head<'a> {
    name: &'a str,
    typeflag: u8,
    mode: u32,
    size: u64,
    mtime: Option<FileTime>,
    link: &'a str,
}

impl<'a> Head<'a> {
    fn new(name: &'a str, typeflag: u8, mode: u32, size: u64, mtime: Option<FileTime>) -> Self {
        Head { name, typeflag, mode, size, mtime, link: "" }
    }

    fn link(self, link: &'a str) -> Self {
        Head { link, ..self }
    }
}

/// The ustar name field for a name: ASCII (other characters as `_`), at most 100 bytes; the
/// full name then travels in a PAX record.
fn ascii_prefix(name: &str) -> Vec<u8> {
    name.chars().map(|c| if c.is_ascii() && c != '\0' { c as u8 } else { b'_' }).take(100).collect()
}

/// The PAX records of an object: attributes, times, and for full objects security and EAs.
fn object_records(meta: &Metadata, full: bool) -> Vec<(String, Vec<u8>)> {
    let mut r = vec![
        (keys::FILEATTR.to_string(), meta.attributes.to_string().into_bytes()),
        (keys::CREATIONTIME.to_string(), meta.creation.to_pax().into_bytes()),
        ("atime".to_string(), meta.last_access.to_pax().into_bytes()),
        ("ctime".to_string(), meta.change.to_pax().into_bytes()),
    ];
    if full {
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Some(sd) = &meta.security {
            r.push((keys::RAWSD.to_string(), b64.encode(sd).into_bytes()));
        }
        for ea in &meta.eas {
            r.push((
                format!("{}{}", keys::XATTR, String::from_utf8_lossy(&ea.name)),
                b64.encode(&ea.value).into_bytes(),
            ));
        }
    }
    r
}

impl<W: Write> LayerSink for TarWriter<W> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        let path = entry.path.as_str();
        let meta = &entry.meta;
        match &entry.kind {
            EntryKind::Directory => {
                self.header(Head::new(path, b'5', 0o755, 0, Some(meta.last_write)), object_records(meta, true))?;
                self.owner = Some((meta.clone(), 0o755));
            }
            EntryKind::File { size } => {
                self.header(Head::new(path, b'0', 0o644, *size, Some(meta.last_write)), object_records(meta, true))?;
                copy_exact(data, *size, &mut self.out, &entry.path, &mut self.buf)?;
                self.written += size;
                self.pad(*size)?;
                self.owner = Some((meta.clone(), 0o644));
            }
            EntryKind::Symlink(link) => {
                let mut records = object_records(meta, true);
                if link.junction {
                    records.push((keys::MOUNTPOINT.to_string(), b"1".to_vec()));
                }
                self.header(Head::new(path, b'2', 0o777, 0, Some(meta.last_write)).link(&link.target), records)?;
                self.owner = Some((meta.clone(), 0o777));
            }
            EntryKind::HardLink { target } => {
                let head = Head::new(path, b'1', 0o644, 0, Some(meta.last_write)).link(target.as_str());
                self.header(head, object_records(meta, false))?;
                self.owner = None;
            }
            EntryKind::Stream { name, size } => {
                let (owner, mode) = self
                    .owner
                    .clone()
                    .ok_or_else(|| Error::Invalid(format!("{path}:{name}: stream without an owner before it")))?;
                let records = vec![
                    ("atime".to_string(), owner.last_access.to_pax().into_bytes()),
                    ("ctime".to_string(), owner.change.to_pax().into_bytes()),
                ];
                self.header(Head::new(&format!("{path}:{name}"), b'0', mode, *size, Some(owner.last_write)), records)?;
                copy_exact(data, *size, &mut self.out, &entry.path, &mut self.buf)?;
                self.written += size;
                self.pad(*size)?;
            }
            EntryKind::Whiteout | EntryKind::Opaque => {
                let name = match (&entry.kind, entry.path.parent()) {
                    (EntryKind::Opaque, _) => format!("{path}/.wh..wh..opq"),
                    (_, Some(parent)) => format!("{parent}/.wh.{}", entry.path.file_name()),
                    (_, None) => format!(".wh.{path}"),
                };
                self.header(Head::new(&name, b'0', 0, 0, None), Vec::new())?;
                self.owner = None;
            }
        }
        Ok(())
    }
}
