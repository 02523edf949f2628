//! Images read from and written to a registry or a layout, and `copy` between any two.
//!
//! A copy resolves the source to one manifest (choosing from an index by platform), checks its
//! config, and sends every blob the destination lacks, up to four at once (each on its own
//! thread with its own source and destination handle): mounted from another repository of the
//! same registry when it can be, else streamed through a file (a layout's own blob file, or a
//! temporary one) with its digest and size checked. Foreign layers stay references. The
//! manifest goes last, after every blob is in, so a destination never names a blob it does not
//! hold.

use std::io::Write;
use std::path::PathBuf;

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::layout::Layout;
use crate::location::{Location, Reference};
use crate::manifest::{self, Config, Parsed};
use crate::platform::Platform;
use crate::registry::{Options, Registry};
use crate::{Result, invalid};

/// Follows blob transfers, e.g. with progress bars. Every method has a silent default.
/// Several blobs move at once (from several threads), each told apart by its digest.
pub trait Progress: Sync {
    /// A transfer of `size` bytes of `digest` starts (`verb`: pulling, pushing, copying).
    fn begin(&self, _digest: &Digest, _size: u64, _verb: &str) {}
    /// `n` more bytes moved.
    fn advance(&self, _digest: &Digest, _n: u64) {}
    /// The transfer ended (`outcome`: copied, exists, mounted, …).
    fn end(&self, _digest: &Digest, _outcome: &str) {}
}

/// No progress shown.
pub struct Silent;
impl Progress for Silent {}

/// A document fetched whole: a manifest, an index or a config.
pub struct Fetched {
    /// Its bytes, exactly as stored (they are what the digest covers).
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
}

/// Where images are read from.
pub trait Source {
    /// The image's name, for messages.
    fn name(&self) -> String;
    /// The manifest or index the location names.
    fn top(&mut self) -> Result<Fetched>;
    /// A manifest, index or config by descriptor (at most [`crate::MAX_MANIFEST`] bytes),
    /// checked against it.
    fn small(&mut self, desc: &Descriptor) -> Result<Vec<u8>>;
    /// Streams a blob into `out`, checked against `desc`.
    fn blob(&mut self, desc: &Descriptor, out: &mut dyn Write, progress: &dyn Progress) -> Result<()>;
    /// Where the blob already lies as a file, when it does (a layout).
    fn blob_file(&self, _desc: &Descriptor) -> Option<PathBuf> {
        None
    }
    /// The registry reference, when the source is a registry (for cross-repository mounts).
    fn reference(&self) -> Option<&Reference> {
        None
    }
    /// Another handle on the same image, for a transfer on another thread.
    fn fork(&self) -> Box<dyn Source + Send>;
    /// The manifest `digest` in the same repository or layout (e.g. a converted image's
    /// source).
    fn sibling(&self, digest: &Digest) -> Box<dyn Source>;
    /// The manifests that name `subject` as theirs (OCI 1.1 referrers): a registry's
    /// referrers API, else the referrers tag schema; a layout's `index.json`.
    fn referrers(&mut self, subject: &Digest) -> Result<Vec<crate::referrers::Referrer>>;
}

/// How a referrer was attached to its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attached {
    /// The registry's referrers API took it (it answered the push with `OCI-Subject`).
    ReferrersApi,
    /// Listed in the referrers tag schema's index (`sha256-<hex>`), which was updated.
    TagSchema,
    /// The tag schema's index listed it already.
    TagSchemaListed,
    /// Listed in a layout's `index.json`, without a name.
    LayoutIndex,
}

impl std::fmt::Display for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attached::ReferrersApi => "the referrers API",
            Attached::TagSchema => "the referrers tag schema (index updated)",
            Attached::TagSchemaListed => "the referrers tag schema (index listed it already)",
            Attached::LayoutIndex => "index.json (no name)",
        })
    }
}

/// Where images are written.
pub trait Target {
    /// The image's name, for messages.
    fn name(&self) -> String;
    /// Whether the blob is there already.
    fn has_blob(&mut self, desc: &Descriptor) -> Result<bool>;
    /// Makes the blob present without sending it (a cross-repository mount); false when it
    /// cannot.
    fn mount(&mut self, _desc: &Descriptor, _from: &Reference) -> Result<bool> {
        Ok(false)
    }
    /// Stores a blob; `fill` streams it (checked) into the writer given.
    fn put_blob(
        &mut self,
        desc: &Descriptor,
        file: Option<PathBuf>,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
        progress: &dyn Progress,
    ) -> Result<()>;
    /// Stores a blob built in a temporary file (from [`Target::scratch_dir`] when given).
    fn put_built(&mut self, desc: &Descriptor, file: tempfile::NamedTempFile, progress: &dyn Progress) -> Result<()> {
        let path = file.path().to_path_buf();
        self.put_blob(desc, Some(path.clone()), &mut |out| copy_file(&path, out), progress)
    }
    /// Where blobs are best built so that [`Target::put_built`] can rename them into place.
    fn scratch_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Stores the image's manifest and names it; the last step of a copy.
    fn put_manifest(&mut self, manifest: &Fetched, platform: &Platform) -> Result<()>;
    /// Stores `manifest`, whose `subject` is `subject`, as a referrer of it (by digest, no
    /// tag); `referrer` is its descriptor as a referrers index lists it.
    fn attach(
        &mut self,
        manifest: &Fetched,
        referrer: &crate::referrers::Referrer,
        subject: &Digest,
    ) -> Result<Attached>;
    /// Another handle on the same destination, for a transfer on another thread.
    fn fork(&self) -> Box<dyn Target + Send>;
}

/// Copies a file into `out`.
pub(crate) fn copy_file(path: &std::path::Path, out: &mut dyn Write) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| crate::Error::io(format!("reading {}", path.display()), e))?;
    std::io::copy(&mut file, out).map_err(|e| crate::Error::io(format!("copying {}", path.display()), e))?;
    Ok(())
}

/// Opens a location for reading.
pub fn open_source(location: &Location, options: &Options) -> Result<Box<dyn Source>> {
    Ok(match location {
        Location::Registry(r) => Box::new(Registry::new(r.clone(), options)?),
        Location::Layout { path, digest: Some(d), .. } => Box::new(Layout::open(path)?.image_at(d.clone())),
        Location::Layout { path, tag, digest: None } => Box::new(Layout::open(path)?.image(tag.clone())),
    })
}

/// Opens a location for writing (a layout is created when missing).
pub fn open_target(location: &Location, options: &Options) -> Result<Box<dyn Target>> {
    Ok(match location {
        Location::Registry(r) => Box::new(Registry::new(r.clone(), options)?),
        Location::Layout { digest: Some(_), .. } => {
            return Err(invalid(format!(
                "{location}: a layout image is written under a name (oci:DIR[:TAG]), not a digest"
            )));
        }
        Location::Layout { path, tag, digest: None } => Box::new(Layout::create(path)?.image(tag.clone())),
    })
}

/// One image resolved to its manifest.
pub struct Resolved {
    /// The manifest.
    pub manifest: oci_spec::image::ImageManifest,
    /// Its bytes, media type and digest.
    pub fetched: Fetched,
    /// The config.
    pub config: Config,
    /// The config's bytes.
    pub config_bytes: Vec<u8>,
    /// The platform, from the index entry or else the config.
    pub platform: Platform,
}

/// Resolves the source to the manifest for `wanted`: from an index the matching entry with
/// the newest compatible `os.version`; a single manifest must be for a matching platform.
pub fn resolve(source: &mut dyn Source, wanted: &Platform) -> Result<Resolved> {
    let name = source.name();
    let mut fetched = source.top()?;
    let mut from_index = None;
    for _depth in 0..4 {
        let what = format!("{name}: manifest {}", fetched.digest);
        match manifest::parse(&fetched.bytes, Some(&fetched.media_type), &what)? {
            Parsed::Index(index, platforms) => {
                let entries: Vec<(&Descriptor, Platform)> =
                    index.manifests().iter().zip(platforms).filter_map(|(d, p)| p.map(|p| (d, p))).collect();
                let Some(i) = wanted.choose(entries.iter().map(|(_, p)| p)) else {
                    let offered: Vec<String> = entries.iter().map(|(_, p)| p.to_string()).collect();
                    let offered = if offered.is_empty() { "no platforms".into() } else { offered.join(", ") };
                    return Err(invalid(format!(
                        "{name}: the index {} has no manifest for {wanted} (it offers {offered})",
                        fetched.digest
                    )));
                };
                let (desc, platform) = &entries[i];
                let bytes = source.small(desc)?;
                from_index = Some(platform.clone());
                fetched = Fetched { bytes, media_type: desc.media_type().to_string(), digest: desc.digest().clone() };
            }
            Parsed::Manifest(m) => {
                let what = format!("{name}: config {}", m.config().digest());
                let config_bytes = source.small(m.config())?;
                let config = Config::parse(&config_bytes, &what)?;
                let mut platform = config.platform();
                if platform.os_version.is_none() {
                    platform.os_version = from_index.and_then(|p| p.os_version);
                }
                if !wanted.matches(&platform) {
                    return Err(invalid(format!(
                        "{name}: manifest {} is for {platform}, not {wanted}",
                        fetched.digest
                    )));
                }
                let diff_ids = config.diff_ids().map_err(|e| invalid(format!("{what}: {e}")))?;
                if diff_ids.len() != m.layers().len() {
                    return Err(invalid(format!(
                        "{name}: manifest {} has {} layers but its config {} diff_ids",
                        fetched.digest,
                        m.layers().len(),
                        diff_ids.len()
                    )));
                }
                return Ok(Resolved { manifest: *m, fetched, config, config_bytes, platform });
            }
        }
    }
    Err(invalid(format!("{name}: indexes nested more than 4 deep")))
}

/// What happened to one blob in a copy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BlobReport {
    /// The blob's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// `copied`, `exists`, `mounted` or `foreign` (kept as a reference).
    pub outcome: &'static str,
}

/// What a copy did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CopyReport {
    /// The source, as given.
    pub source: String,
    /// The destination, as given.
    pub destination: String,
    /// The platform of the image copied.
    pub platform: Platform,
    /// The manifest's digest (the image's digest at the destination).
    pub manifest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// Config and layers, in manifest order (config first).
    pub blobs: Vec<BlobReport>,
}

/// Copies the image `source` names (for `platform`) to `target`.
pub fn copy(
    source: &mut dyn Source,
    target: &mut dyn Target,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let resolved = resolve(source, platform)?;
    let m = &resolved.manifest;
    let descs: Vec<&Descriptor> = std::iter::once(m.config()).chain(m.layers()).collect();
    // Each distinct blob is sent once; a digest listed again is there by then ("exists").
    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<&Descriptor> = descs
        .iter()
        .copied()
        .filter(|d| !manifest::is_foreign(d.media_type().to_string().as_str()) && seen.insert(d.digest().clone()))
        .collect();
    let mut outcomes = send_blobs(&*source, &*target, &wanted, progress)?.into_iter();
    let mut sent = std::collections::HashSet::new();
    let blobs = descs
        .iter()
        .map(|desc| {
            let media_type = desc.media_type().to_string();
            let outcome = if manifest::is_foreign(&media_type) {
                "foreign"
            } else if sent.insert(desc.digest().clone()) {
                outcomes.next().expect("one outcome per distinct blob")
            } else {
                "exists"
            };
            BlobReport { digest: desc.digest().to_string(), media_type, size: desc.size(), outcome }
        })
        .collect();
    target.put_manifest(&resolved.fetched, &resolved.platform)?;
    Ok(CopyReport {
        source: source.name(),
        destination: target.name(),
        platform: resolved.platform.clone(),
        manifest: resolved.fetched.digest.to_string(),
        media_type: resolved.fetched.media_type.clone(),
        blobs,
    })
}

/// Blobs sent at once by a copy: enough to overlap round trips and hashing, few enough to be
/// polite to a registry.
const TRANSFERS: usize = 4;

/// Sends `descs` on up to [`TRANSFERS`] threads, each with its own source and target handle;
/// returns what was done to each, in order. After a failure no new blob is started, and the
/// first failing blob (in `descs` order) is the error.
fn send_blobs(
    source: &dyn Source,
    target: &dyn Target,
    descs: &[&Descriptor],
    progress: &dyn Progress,
) -> Result<Vec<&'static str>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<&'static str>>>> = descs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..TRANSFERS.min(descs.len()) {
            let (mut source, mut target) = (source.fork(), target.fork());
            let (next, failed, results) = (&next, &failed, &results);
            scope.spawn(move || {
                while !failed.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(desc) = descs.get(i) else { break };
                    let result = send_blob(source.as_mut(), target.as_mut(), desc, progress);
                    failed.fetch_or(result.is_err(), Ordering::SeqCst);
                    *results[i].lock().expect("no panic while held") = Some(result);
                }
            });
        }
    });
    let mut outcomes = Vec::with_capacity(descs.len());
    for result in results {
        match result.into_inner().expect("no panic while held") {
            Some(result) => outcomes.push(result?),
            None => unreachable!("a blob left unsent without an earlier failure"),
        }
    }
    Ok(outcomes)
}

/// Sends one blob unless the target has it; returns what was done.
pub fn send_blob(
    source: &mut dyn Source,
    target: &mut dyn Target,
    desc: &Descriptor,
    progress: &dyn Progress,
) -> Result<&'static str> {
    if target.has_blob(desc)? {
        progress.end(desc.digest(), "exists");
        return Ok("exists");
    }
    if let Some(from) = source.reference().cloned()
        && target.mount(desc, &from)?
    {
        progress.end(desc.digest(), "mounted");
        return Ok("mounted");
    }
    let file = source.blob_file(desc);
    target.put_blob(desc, file, &mut |out| source.blob(desc, out, progress), progress)?;
    progress.end(desc.digest(), "copied");
    Ok("copied")
}
