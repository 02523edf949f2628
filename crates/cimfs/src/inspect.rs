//! What `ls`, `stat` and `info` show about an image: plain serializable values, so a caller
//! can print them as text or JSON.

use serde::Serialize;
use winlayer_core::reparse::{Link, TAG_MOUNT_POINT, TAG_SYMLINK};
use winlayer_core::security::SecurityDescriptor;
use winlayer_core::{FileTime, Result, attrs, xattrs};

use crate::format::{FILES_PER_TABLE, FileRecord, RegionType, Stream, StreamType};
use crate::reader::{Cim, FileId};

/// One object of an image.
#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    /// The path it was reached by (`\`-separated, no leading separator; empty for the root).
    pub path: String,
    /// Its FileID.
    pub id: FileId,
    /// `dir`, `file`, `symlink`, `junction` or `reparse` (another reparse tag).
    pub kind: &'static str,
    /// Length of the default stream (for directories, of the directory table).
    pub size: u64,
    /// FILE_ATTRIBUTE_* bits as Windows shows them.
    pub attributes: u32,
    /// The same, as `attrib`-like letters.
    pub attribute_letters: String,
    /// The four times, RFC 3339 UTC (empty when 0, "no time").
    pub times: Times,
    /// The security descriptor as SDDL.
    pub security: Option<String>,
    /// Extended attributes: name and value length.
    pub eas: Vec<(String, usize)>,
    /// Reparse tag (hex) and, for links, the target.
    pub reparse: Option<Reparse>,
    /// Alternate data streams: name and length.
    pub streams: Vec<(String, u64)>,
    /// Where the default stream's bytes lie.
    pub placement: String,
    /// The record's parent FileID.
    pub parent_id: FileId,
}

/// The four times of a record.
#[derive(Clone, Debug, Serialize)]
pub struct Times {
    /// CreationTime.
    pub created: String,
    /// LastWriteTime.
    pub modified: String,
    /// LastAccessTime.
    pub accessed: String,
    /// ChangeTime.
    pub changed: String,
}

/// A reparse point.
#[derive(Clone, Debug, Serialize)]
pub struct Reparse {
    /// The tag, `0x…`.
    pub tag: String,
    /// The link target, for symlinks and junctions.
    pub target: Option<String>,
}

fn time(t: u64) -> String {
    match i64::try_from(t).ok().and_then(FileTime::from_ticks) {
        Some(t) if t.ticks() != 0 => t.to_rfc3339(),
        Some(_) => String::new(),
        None => format!("invalid ({t})"),
    }
}

/// Where a stream's bytes are, in words.
pub fn placement(stream: &Stream) -> String {
    if stream.is_sparse() {
        return format!("sparse ({} zero bytes, none stored)", stream.len());
    }
    match stream.kind() {
        _ if stream.is_empty() => "empty".into(),
        Some(StreamType::LinkTable) => format!("directory table at {}", stream.at()),
        Some(StreamType::PeImage) => format!("expanded PE image described at {}", stream.at()),
        _ => format!("{}", stream.at()),
    }
}

impl Cim {
    /// Everything about FileID `id`, reached by `path`.
    pub fn stat(&self, path: &str, id: FileId) -> Result<Stat> {
        let r: FileRecord = self.record(id)?;
        let reparse = self.reparse(&r)?;
        let tag = r.reparse_tag.get();
        let kind = match (&reparse, tag) {
            (None, _) if r.is_dir() => "dir",
            (None, _) => "file",
            (Some(_), TAG_SYMLINK) => "symlink",
            (Some(_), TAG_MOUNT_POINT) => "junction",
            (Some(_), _) => "reparse",
        };
        let security = self.security(&r)?.map(|sd| match SecurityDescriptor::from_bytes(&sd) {
            Ok(sd) => sd.to_sddl(),
            Err(e) => format!("<{e}>"),
        });
        Ok(Stat {
            path: path.to_string(),
            id,
            kind,
            size: r.default_stream.len(),
            attributes: r.attributes(),
            attribute_letters: attrs::letters(r.attributes()),
            times: Times {
                created: time(r.creation_time.get()),
                modified: time(r.last_write_time.get()),
                accessed: time(r.last_access_time.get()),
                changed: time(r.change_time.get()),
            },
            security,
            eas: self
                .eas(&r)?
                .into_iter()
                .map(|ea| (String::from_utf8_lossy(&ea.name).into_owned(), ea.value.len()))
                .collect(),
            reparse: reparse.map(|buf| Reparse {
                tag: format!("0x{tag:08x}"),
                target: Link::from_reparse_buffer(&buf).ok().map(|l| l.target),
            }),
            streams: self.streams(&r)?.into_iter().map(|(n, s)| (n, s.len())).collect(),
            placement: placement(&r.default_stream),
            parent_id: r.parent_file_id.get(),
        })
    }

    /// The image's structure and what its tree holds.
    pub fn info(&self) -> Result<Info> {
        let dir = self.path().parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let own = self.sets().len() - 1;
        let sets = self
            .sets()
            .iter()
            .enumerate()
            .map(|(i, s)| SetSummary {
                guid: s.set.id.to_string(),
                regions: s.set.count.get(),
                first_index: s.first,
                role: if i == own { "own" } else { "parent" },
            })
            .collect();
        let regions = self
            .regions()
            .iter()
            .map(|r| RegionSummary { file: dir.join(&r.name).display().to_string(), kind: r.kind, bytes: r.len })
            .collect();
        let mut c = Counts::default();
        let mut seen = std::collections::HashSet::new();
        self.walk(|_, id, r| {
            c.names += 1;
            c.streams += self.streams(r)?.len() as u64;
            if !seen.insert(id) {
                return Ok(());
            }
            match (r.is_dir(), r.reparse_offset.get() != 0) {
                (_, true) => c.reparse_points += 1,
                (true, false) => c.directories += 1,
                (false, false) => {
                    c.files += 1;
                    c.file_bytes += r.default_stream.len();
                }
            }
            Ok(())
        })?;
        Ok(Info {
            cim: self.path().display().to_string(),
            version: format!("{}.0", self.major()),
            root_id: self.root(),
            file_tables: self.tables().len(),
            file_id_capacity: self.tables().len() as u64 * FILES_PER_TABLE as u64,
            region_sets: sets,
            regions,
            counts: c,
        })
    }
}

/// Summary of an image (`cim info`).
#[derive(Clone, Debug, Serialize)]
pub struct Info {
    /// The `.cim`.
    pub cim: String,
    /// Format version from the header.
    pub version: String,
    /// The root's FileID.
    pub root_id: FileId,
    /// Number of file tables.
    pub file_tables: usize,
    /// FileIDs the tables can hold.
    pub file_id_capacity: u64,
    /// Region sets, parents first.
    pub region_sets: Vec<SetSummary>,
    /// Region files in global index order.
    pub regions: Vec<RegionSummary>,
    /// What the merged tree holds.
    pub counts: Counts,
}

/// A region set.
#[derive(Clone, Debug, Serialize)]
pub struct SetSummary {
    /// Its GUID.
    pub guid: String,
    /// Region files in it.
    pub regions: u16,
    /// Global index of its first region.
    pub first_index: u16,
    /// `parent` or `own`.
    pub role: &'static str,
}

/// A region file.
#[derive(Clone, Debug, Serialize)]
pub struct RegionSummary {
    /// Its path.
    pub file: String,
    /// Its declared type.
    pub kind: Option<RegionType>,
    /// Its size.
    pub bytes: u64,
}

/// Counts over the merged tree.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Directory entries, counting every name of a hard-linked file.
    pub names: u64,
    /// Distinct directories.
    pub directories: u64,
    /// Distinct regular files.
    pub files: u64,
    /// Symlinks, junctions and other reparse points.
    pub reparse_points: u64,
    /// Alternate data streams (per name).
    pub streams: u64,
    /// Logical bytes of the distinct regular files.
    pub file_bytes: u64,
}

impl Cim {
    /// The Windows metadata of a record as Linux extended attributes (`winlayer_core::xattrs`),
    /// streams up to 64 KiB included.
    pub fn xattrs(&self, r: &FileRecord) -> Result<Vec<(String, Vec<u8>)>> {
        let times = [r.creation_time, r.last_write_time, r.last_access_time, r.change_time].map(|t| t.get());
        let (security, reparse, eas) = (self.security(r)?, self.reparse(r)?, self.eas(r)?);
        let mut out = xattrs::ObjectXattrs {
            attributes: r.attributes(),
            times,
            security: security.as_deref(),
            reparse: reparse.as_deref(),
            eas: &eas,
        }
        .to_vec();
        for (name, stream) in self.streams(r)? {
            if stream.len() <= xattrs::MAX_STREAM {
                let mut data = vec![0u8; stream.len() as usize];
                self.read_stream(&stream, 0, &mut data)?;
                out.push((xattrs::stream(&name), data));
            }
        }
        Ok(out)
    }
}

impl Cim {
    /// Reads everything reachable: every record with its metadata, security descriptor, EAs,
    /// reparse data and every byte of every stream. Returns the bytes of data read.
    pub fn verify(&self) -> Result<u64> {
        let mut buf = vec![0u8; 1 << 16];
        self.visit_streams(|s| self.read_all(s, &mut buf))
    }

    /// What [`Cim::verify`] checks except the data between each stream's first and last byte:
    /// every record's metadata, security descriptor, EAs, reparse data and stream table, and
    /// each stored stream's ends. Costs a few reads per file, whatever the bytes. Returns the
    /// bytes of data the streams hold.
    pub fn verify_structure(&self) -> Result<u64> {
        let mut buf = vec![0u8; 1 << 16];
        self.visit_streams(|s| {
            if s.kind() == Some(StreamType::PeImage) {
                // Each mapping of an expanded PE image lies elsewhere: only reading it all checks them.
                self.read_all(s, &mut buf)?;
            } else {
                self.read_stream(s, 0, &mut buf[..1])?;
                self.read_stream(s, s.len() - 1, &mut buf[..1])?;
            }
            Ok(())
        })
    }

    fn read_all(&self, s: &Stream, buf: &mut [u8]) -> Result<()> {
        let mut pos = 0;
        while pos < s.len() {
            pos += self.read_stream(s, pos, buf)? as u64;
        }
        Ok(())
    }

    /// Walks every record, reading its metadata and reparse data, and hands each stored
    /// (non-empty, non-sparse) stream to `check`; returns the bytes those streams hold.
    fn visit_streams(&self, mut check: impl FnMut(&Stream) -> Result<()>) -> Result<u64> {
        let mut bytes = 0u64;
        self.walk(|_, id, r| {
            self.metadata(id, r)?;
            self.reparse(r)?;
            let streams = self.streams(r)?.into_iter().map(|(_, s)| s);
            let default = (!r.is_dir()).then_some(r.default_stream);
            // Sparse streams store nothing to read (and may claim up to 256 TiB of zeros).
            for s in default.into_iter().chain(streams).filter(|s| !s.is_sparse() && !s.is_empty()) {
                check(&s)?;
                bytes += s.len();
            }
            Ok(())
        })?;
        Ok(bytes)
    }
}
