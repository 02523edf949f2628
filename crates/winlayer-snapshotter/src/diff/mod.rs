//! The `containerd.services.diff.v1.Diff` gRPC service: winlayer as containerd's differ (a
//! `diff` proxy plugin, containerd ≥ 2.0 and 1.7.4+), served beside the snapshots service.
//!
//! * **Apply** reads the layer blob from containerd's content service (containerd's own
//!   socket; the caller's namespace passed on), checks its digest and size as it streams,
//!   computes the uncompressed digest (the diffID containerd compares with the image config)
//!   and applies by mount type: `CimFS` through winlayer-layers' CIM import (what `winlayer
//!   import --format cim` runs), `BlockCIM` through Windows' cimwriter.dll (win32::block_cim,
//!   what `winlayer cim create --block` runs: on other systems only a test double stands in,
//!   and without one Apply is NotImplemented), `bind` and `overlay` through its directory apply
//!   (a Linux view with OCI whiteouts and `user.windows.*` attributes). Nothing is left in the
//!   snapshot when Apply fails.
//! * **Diff** writes a canonical Windows layer tar into containerd's content store: of a `CimFS`
//!   layer against its parent (what `winlayer export` writes), or of a `bind` directory against
//!   another (read as `tar from-dir` reads a tree, whiteouts for what is gone).
//!
//! A pre-converted CIM layer (docs/converted-layers.md) is applied to a `CimFS` mount by writing
//! its files as they are, once the blob's digest and the archive's checks pass; Apply returns
//! the source layer's diffID from the descriptor's annotations.
//!
//! Other mount types are NotImplemented, so containerd's diff service moves on to the next
//! differ in its order.

pub mod content;
pub mod media;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tonic::{Request, Response, Status};
use wcow_tar::{Input, LayerReader};
use win32::block_cim::BlockLayer;
use winlayer_core::dir::DirOptions;
use winlayer_core::{Data, Entry, FileTime, LayerSink, LayerSource};
use winlayer_layers::converted;

use crate::proto::diff::{self as pb, diff_server};
use crate::proto::types;
use content::{BlobReader, ContentStore, Hasher, NAMESPACE_KEY};
use media::{LayerMedia, OCI_LAYER};
use winlayer_core::tap::Tap;

/// The label containerd reads the uncompressed digest of a layer blob from.
pub const UNCOMPRESSED_LABEL: &str = "containerd.io/uncompressed";

/// The gRPC service.
#[derive(Clone)]
pub struct DiffService {
    content: ContentStore,
    /// Where `BlockCIM` Apply loads the CIM DLLs from.
    cims: win32::Source,
}

impl DiffService {
    /// A differ reading and writing blobs through the containerd at `containerd_address`.
    pub fn new(containerd_address: &str) -> Self {
        DiffService { content: ContentStore::new(containerd_address), cims: win32::Source::System }
    }

    /// The same, with `BlockCIM` layers written through the CIM DLLs of `source` (Windows' own
    /// by default, which exist only on Windows; a test double anywhere).
    pub fn with_cims(self, source: win32::Source) -> Self {
        DiffService { cims: source, ..self }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> diff_server::DiffServer<Self> {
        diff_server::DiffServer::new(self)
    }
}

fn namespace<T>(request: &Request<T>) -> Option<String> {
    request.metadata().get(NAMESPACE_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The one mount a differ is given, with its options by key.
struct TheMount {
    kind: String,
    source: PathBuf,
    options: Vec<String>,
}

impl TheMount {
    fn from(mounts: &[types::Mount]) -> Result<TheMount, Status> {
        match mounts {
            [m] => {
                Ok(TheMount { kind: m.r#type.clone(), source: PathBuf::from(&m.source), options: m.options.clone() })
            }
            _ => Err(Status::invalid_argument(format!("expected exactly one mount, got {}", mounts.len()))),
        }
    }

    fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }

    /// A JSON array of paths option (`parentLayerPaths=`, `parentCimPaths=`); absent is empty.
    fn paths(&self, key: &str) -> Result<Vec<PathBuf>, Status> {
        match self.option(key) {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str::<Vec<PathBuf>>(text)
                .map_err(|e| Status::invalid_argument(format!("mount option {key}={text}: {e}"))),
        }
    }

    fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Where Apply writes, decided from the mount before any byte is read.
enum Target {
    Cim {
        layer_dir: PathBuf,
        cim: PathBuf,
        parents: Vec<winlayer_layers::Parent>,
    },
    /// A single-file block CIM, written through the CIM DLLs of `cims`.
    Block {
        layer: BlockLayer,
        parents: usize,
        cims: win32::Source,
    },
    #[cfg(unix)]
    Dir {
        dir: PathBuf,
        lowers: Vec<PathBuf>,
        whiteouts: winlayer_layers::apply::Whiteouts,
    },
}

impl Target {
    fn of(mount: &TheMount, cims: &win32::Source) -> Result<Target, Status> {
        if mount.read_only() {
            return Err(Status::invalid_argument(format!("the {} mount is read-only", mount.kind)));
        }
        match mount.kind.as_str() {
            "CimFS" => {
                let cim = mount
                    .option("cimpath")
                    .ok_or_else(|| Status::invalid_argument("the CimFS mount has no cimpath= option"))?;
                let dirs = mount.paths("parentLayerPaths")?;
                let cims = mount.paths("parentCimPaths")?;
                if dirs.len() != cims.len() {
                    return Err(Status::invalid_argument(format!(
                        "the CimFS mount names {} parent layers but {} parent CIMs",
                        dirs.len(),
                        cims.len()
                    )));
                }
                let parents =
                    dirs.into_iter().zip(cims).map(|(dir, cim)| winlayer_layers::Parent { dir, cim }).collect();
                Ok(Target::Cim { layer_dir: mount.source.clone(), cim: PathBuf::from(cim), parents })
            }
            #[cfg(not(unix))]
            "bind" | "overlay" => Err(Status::unimplemented("bind and overlay mounts are Linux mounts")),
            #[cfg(unix)]
            "bind" => Ok(Target::Dir {
                dir: mount.source.clone(),
                lowers: vec![mount.source.clone()],
                whiteouts: winlayer_layers::apply::Whiteouts::Remove,
            }),
            #[cfg(unix)]
            "overlay" => {
                let upper = mount
                    .option("upperdir")
                    .ok_or_else(|| Status::invalid_argument("the overlay mount has no upperdir= (a read-only view)"))?;
                let lowers = mount.option("lowerdir").map_or(Vec::new(), |l| l.split(':').map(PathBuf::from).collect());
                Ok(Target::Dir {
                    dir: PathBuf::from(upper),
                    lowers,
                    whiteouts: winlayer_layers::apply::Whiteouts::Overlay,
                })
            }
            "windows-layer" => Err(Status::unimplemented(if cfg!(windows) {
                "winlayer does not apply windows-layer mounts yet; containerd's windows differ (next in its order) does"
            } else {
                "windows-layer mounts are applied by Windows' own layer writer (vmcompute), which exists only on \
                 Windows; containerd's windows differ handles them there"
            })),
            "BlockCIM" => Target::block(mount, cims),
            other => Err(Status::unimplemented(format!("mount type {other:?} is not one winlayer applies layers to"))),
        }
    }
}

impl Target {
    /// A `BlockCIM` mount as containerd's blockcim snapshotter returns it for an extraction
    /// snapshot: the source is `<block file>/<name>.cim`, `blockCIMType=file` (the only kind
    /// containerd extracts into; an absent option is taken as it, as containerd does),
    /// `parentCimPaths=` the layers below, and the settings' flags.
    fn block(mount: &TheMount, cims: &win32::Source) -> Result<Target, Status> {
        match mount.option("blockCIMType") {
            None | Some("file") => {}
            Some(other) => {
                return Err(Status::invalid_argument(format!(
                    "the BlockCIM mount has blockCIMType={other}: layers are extracted into single-file block CIMs \
                     (blockCIMType=file) only"
                )));
            }
        }
        let parents = mount.paths("parentCimPaths")?.len();
        let name =
            mount.source.file_name().and_then(|n| n.to_str()).filter(|n| n.to_ascii_lowercase().ends_with(".cim"));
        let (Some(name), Some(file)) = (name, mount.source.parent().filter(|p| !p.as_os_str().is_empty())) else {
            return Err(Status::invalid_argument(format!(
                "the BlockCIM mount's source {} is not a CIM inside a block file (…/layer.vhd/layer.cim)",
                mount.source.display()
            )));
        };
        if !cfg!(windows) && *cims == win32::Source::System {
            return Err(Status::unimplemented(format!("BlockCIM Apply: {}", win32::block_cim::NEEDS_WINDOWS)));
        }
        let flag = |f: &str| mount.options.iter().any(|o| o == f);
        let layer = BlockLayer {
            file: file.to_path_buf(),
            name: name.to_owned(),
            integrity: flag("enable_layer_integrity"),
            vhd_footer: flag("append_vhd_footer"),
        };
        Ok(Target::Block { layer, parents, cims: cims.clone() })
    }
}

/// Hashes and counts, into `state`, what passes through a [`Tap`].
fn tally(state: &Arc<Mutex<(Hasher, u64)>>) -> impl FnMut(&[u8]) + Send + 'static {
    let state = state.clone();
    move |bytes| {
        let mut state = state.lock().expect("not poisoned");
        state.0.update(bytes);
        state.1 += bytes.len() as u64;
    }
}

/// What an Apply wrote: the uncompressed descriptor and a line for the log.
struct Applied {
    diff_id: String,
    uncompressed: u64,
    summary: String,
}

/// Reads the blob as a layer into `sink`, to the last byte; returns the uncompressed digest and
/// size. A blob that does not match its descriptor is DataLoss, a layer the reader refuses
/// InvalidArgument.
fn read_layer(blob: BlobReader, sink: &mut dyn LayerSink) -> Result<(String, u64), Status> {
    let rest = blob.clone();
    let state = Arc::new(Mutex::new((Hasher::sha256(), 0u64)));
    let result = (|| -> winlayer_core::Result<()> {
        let (_, plain) =
            wcow_tar::input::decompress(blob).map_err(|e| winlayer_core::Error::io("reading the blob", e))?;
        let input = Input::from_plain_reader(Tap::new(plain, tally(&state)));
        let mut reader = LayerReader::new(input, wcow_tar::Mode::Strict);
        reader.read_into(sink)?;
        // The rest (the archive's padding) belongs to the diffID too, and the blob's digest is
        // known only at its end.
        io::copy(&mut reader.into_input(), &mut io::sink())
            .map_err(|e| winlayer_core::Error::io("reading the end of the layer", e))?;
        Ok(())
    })();
    if result.is_err() {
        // A blob the layer reader or decompressor gave up on may also not be the blob named:
        // read the rest, so a digest mismatch is told as such.
        let _ = io::copy(&mut rest.clone(), &mut io::sink());
    }
    if let Some(status) = rest.failure() {
        return Err(status);
    }
    result.map_err(|e| Status::invalid_argument(format!("the layer is refused: {e}")))?;
    let state = state.lock().expect("not poisoned");
    Ok((state.0.digest(), state.1))
}

fn apply_blocking(target: Target, blob: BlobReader) -> Result<Applied, Status> {
    let internal = |e: winlayer_core::Error| match e {
        winlayer_core::Error::Io { .. } => Status::internal(e.to_string()),
        _ => Status::invalid_argument(format!("the layer is refused: {e}")),
    };
    match target {
        Target::Cim { layer_dir, cim, parents } => {
            let mut import = winlayer_layers::CimLayerImport::start(&layer_dir, &cim, &parents).map_err(internal)?;
            let (diff_id, uncompressed) = read_layer(blob, &mut import)?;
            let summary = import.finish().map_err(internal)?;
            let c = &summary.cim;
            Ok(Applied {
                diff_id,
                uncompressed,
                summary: format!(
                    "{}: {} records, {} hard links, {} deleted",
                    c.cim.display(),
                    c.records,
                    c.hard_links,
                    c.deleted
                ),
            })
        }
        Target::Block { layer, parents, cims } => {
            let dlls = win32::block_cim::load(&cims)
                .map_err(|e| Status::failed_precondition(format!("BlockCIM Apply: loading the CIM DLLs: {e}")))?;
            // What the blob itself did wrong (its digest, its archive) keeps its own code;
            // what the writer refused is told as the writer said.
            let mut read = None;
            let written = win32::block_cim::write_layer(&dlls, &layer, |sink| {
                let outcome = read_layer(blob, sink);
                let failed = outcome.as_ref().err().map(|s| winlayer_core::Error::Invalid(s.message().to_owned()));
                read = Some(outcome);
                failed.map_or(Ok(()), Err)
            });
            let hash = match (read, written) {
                (Some(Err(status)), _) => return Err(status),
                (_, Err(e)) => return Err(Status::internal(format!("writing the block CIM: {e}"))),
                (Some(Ok(read)), Ok(hash)) => (read, hash),
                (None, Ok(_)) => {
                    return Err(Status::internal("the block CIM writer finished without reading the layer"));
                }
            };
            let ((diff_id, uncompressed), hash) = hash;
            let mut summary = format!(
                "{} ({}) over {parents} layers, written by {}",
                layer.file.display(),
                layer.name,
                dlls.writer_dll()
            );
            if let Some(hash) = hash {
                summary.push_str(&format!("; sealed, root hash {}", win32::block_cim::hex(&hash)));
            }
            if layer.vhd_footer {
                summary.push_str("; VHD footer appended");
            }
            Ok(Applied { diff_id, uncompressed, summary })
        }
        #[cfg(unix)]
        Target::Dir { dir, lowers, whiteouts } => {
            let mut apply = winlayer_layers::apply::DirApply::start(&dir, &lowers, whiteouts).map_err(internal)?;
            let (diff_id, uncompressed) = read_layer(blob, &mut apply)?;
            let a = apply.commit().map_err(internal)?;
            let mut summary = format!(
                "{}: {} files, {} directories, {} links, {} deletions",
                dir.display(),
                a.files,
                a.directories,
                a.hard_links + a.symlinks,
                a.deletions
            );
            if a.streams_skipped > 0 {
                summary.push_str(&format!("; {} streams over 64 KiB left out of the view", a.streams_skipped));
            }
            Ok(Applied { diff_id, uncompressed, summary })
        }
    }
}

/// The source layer a converted CIM layer stands for, from its descriptor's annotations: what
/// Apply returns, so containerd's diffID check and chain IDs are the source image's.
struct ConvertedSource {
    diff_id: String,
    size: u64,
}

impl ConvertedSource {
    /// `None` for any other media type.
    fn of(desc: &types::Descriptor) -> Result<Option<ConvertedSource>, Status> {
        if desc.media_type != converted::MEDIA_TYPE {
            return Ok(None);
        }
        let annotation = |key: &str| {
            desc.annotations.get(key).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "the converted layer {} has no {key} annotation (is its manifest one winlayer wrote?)",
                    desc.digest
                ))
            })
        };
        let diff_id = annotation(converted::SOURCE_DIFF_ID)?;
        let hex = diff_id.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Status::invalid_argument(format!(
                "the converted layer {}: {}={diff_id:?} is not a sha256 digest",
                desc.digest,
                converted::SOURCE_DIFF_ID
            )));
        }
        let size = annotation(converted::SOURCE_SIZE)?;
        let size = size.parse::<u64>().ok().filter(|s| s.to_string() == *size).ok_or_else(|| {
            Status::invalid_argument(format!(
                "the converted layer {}: {}={size:?} is not a size in bytes",
                desc.digest,
                converted::SOURCE_SIZE
            ))
        })?;
        Ok(Some(ConvertedSource { diff_id: diff_id.clone(), size }))
    }
}

/// Applies a converted CIM layer: its files written into the snapshot as they are, after the
/// blob's digest and everything [`converted::stage`] checks.
fn apply_converted(target: Target, blob: BlobReader, source: ConvertedSource) -> Result<Applied, Status> {
    let Target::Cim { layer_dir, cim, parents } = target else {
        return Err(Status::unimplemented(
            "a converted CIM layer unpacks into CimFS snapshots only (winlayer serve --mode cimfs); pull the source \
             image for other snapshotters",
        ));
    };
    let rest = blob.clone();
    let staged = (|| {
        let (_, mut plain) =
            wcow_tar::input::decompress(blob).map_err(|e| winlayer_core::Error::io("reading the blob", e))?;
        converted::stage(&mut plain, &layer_dir, &cim, &parents)
    })();
    // The blob's digest is known only at its end: nothing is placed before it is.
    let _ = io::copy(&mut rest.clone(), &mut io::sink());
    if let Some(status) = rest.failure() {
        return Err(status);
    }
    let staged = staged.map_err(|e| Status::invalid_argument(format!("the converted layer is refused: {e}")))?;
    let done = staged.commit().map_err(|e| Status::internal(e.to_string()))?;
    Ok(Applied {
        diff_id: source.diff_id,
        uncompressed: source.size,
        summary: format!(
            "{}: converted layer, {} bytes of file data checked, {} layer files, {} region files written",
            done.cim.display(),
            done.file_data,
            done.host_files.len(),
            done.region_files
        ),
    })
}

#[tonic::async_trait]
impl diff_server::Diff for DiffService {
    async fn apply(&self, request: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        let started = Instant::now();
        let ns = namespace(&request);
        let request = request.into_inner();
        let digest = request.diff.as_ref().map_or(String::new(), |d| d.digest.clone());
        let result = async {
            let desc = request.diff.as_ref().ok_or_else(|| Status::invalid_argument("no layer descriptor"))?;
            if !request.payloads.is_empty() {
                return Err(Status::unimplemented(format!(
                    "stream processor payloads ({}) are not supported",
                    request.payloads.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            let source = ConvertedSource::of(desc)?;
            if source.is_none() {
                LayerMedia::of(&desc.media_type)?;
            }
            let mount = TheMount::from(&request.mounts)?;
            let target = Target::of(&mount, &self.cims)?;
            let blob = self.content.read(ns.as_deref(), &desc.digest, desc.size).await?;
            let applied = tokio::task::spawn_blocking(move || match source {
                Some(source) => apply_converted(target, blob, source),
                None => apply_blocking(target, blob),
            })
            .await
            .map_err(|e| Status::internal(format!("apply task failed: {e}")))??;
            Ok((mount, desc.size, applied))
        }
        .await;
        match result {
            Ok((mount, size, applied)) => {
                tracing::info!(
                    method = "Apply",
                    digest = %digest,
                    mount = %mount.kind,
                    bytes = size,
                    uncompressed = applied.uncompressed,
                    diff_id = %applied.diff_id,
                    ms = started.elapsed().as_millis() as u64,
                    "applied {}",
                    applied.summary
                );
                Ok(Response::new(pb::ApplyResponse {
                    applied: Some(types::Descriptor {
                        media_type: OCI_LAYER.into(),
                        digest: applied.diff_id,
                        size: applied.uncompressed as i64,
                        annotations: HashMap::new(),
                    }),
                }))
            }
            Err(status) => {
                tracing::warn!(method = "Apply", digest = %digest, code = ?status.code(), "{}", status.message());
                Err(status)
            }
        }
    }

    async fn diff(&self, request: Request<pb::DiffRequest>) -> Result<Response<pb::DiffResponse>, Status> {
        let started = Instant::now();
        let ns = namespace(&request);
        let request = request.into_inner();
        let result = compare(&self.content, ns.as_deref(), request).await;
        match result {
            Ok(desc) => {
                tracing::info!(
                    method = "Diff",
                    digest = %desc.digest,
                    bytes = desc.size,
                    ms = started.elapsed().as_millis() as u64,
                    "layer written to the content store"
                );
                Ok(Response::new(pb::DiffResponse { diff: Some(desc) }))
            }
            Err(status) => {
                tracing::warn!(method = "Diff", code = ?status.code(), "{}", status.message());
                Err(status)
            }
        }
    }
}

/// A committed CIM layer a mount stands for: the mount's own (`cimpath=` of an existing CIM),
/// else its first parent (a view of a committed layer has no CIM of its own).
fn cim_layer(mount: &TheMount) -> Result<(PathBuf, PathBuf), Status> {
    if let Some(cim) = mount.option("cimpath").map(PathBuf::from).filter(|c| c.is_file()) {
        return Ok((mount.source.clone(), cim));
    }
    let dirs = mount.paths("parentLayerPaths")?;
    let cims = mount.paths("parentCimPaths")?;
    match (dirs.first(), cims.first()) {
        (Some(d), Some(c)) => Ok((d.clone(), c.clone())),
        _ => Err(Status::invalid_argument(format!(
            "the CimFS mount of {} holds no committed layer",
            mount.source.display()
        ))),
    }
}

async fn compare(
    content: &ContentStore,
    ns: Option<&str>,
    request: pb::DiffRequest,
) -> Result<types::Descriptor, Status> {
    let left = TheMount::from(&request.left)?;
    let right = TheMount::from(&request.right)?;
    let media = LayerMedia::for_output(&request.media_type)?;
    let compression = media.compression;
    let epoch = request.source_date_epoch.map(|t| t.seconds);
    let refused = |e: winlayer_core::Error| Status::invalid_argument(e.to_string());
    let changes: Box<dyn FnOnce() -> Result<winlayer_core::Sorted, Status> + Send> =
        match (left.kind.as_str(), right.kind.as_str()) {
            ("CimFS", "CimFS") => {
                let (layer_dir, cim) = cim_layer(&right)?;
                let (_, lower_cim) = cim_layer(&left)?;
                Box::new(move || {
                    let base = !lower_cim.exists() || lower_cim == cim;
                    let parent = (!base).then_some(lower_cim.as_path());
                    Ok(winlayer_layers::export_cim(&layer_dir, &cim, parent).map_err(refused)?.0)
                })
            }
            ("bind", "bind") => {
                let (lower, upper) = (left.source.clone(), right.source.clone());
                let options = DirOptions { base: false, owner: "BA".into(), source_date_epoch: epoch };
                Box::new(move || winlayer_layers::dir_diff::dir_changes(&lower, &upper, options).map_err(refused))
            }
            (l, r) => {
                return Err(Status::unimplemented(format!(
                    "winlayer compares CimFS layers and bind directories; got {r} against {l}"
                )));
            }
        };
    let written = tokio::task::spawn_blocking(move || export_layer(changes()?, compression, epoch))
        .await
        .map_err(|e| Status::internal(format!("diff task failed: {e}")))??;
    let mut labels = request.labels.clone();
    labels.insert(UNCOMPRESSED_LABEL.into(), written.diff_id.clone());
    let reference =
        if request.r#ref.is_empty() { format!("winlayer-diff-{}", written.digest) } else { request.r#ref.clone() };
    let file = written.file.reopen().map_err(|e| Status::internal(format!("reopening the layer written: {e}")))?;
    content.write(ns, &reference, file, written.size, &written.digest, labels).await?;
    Ok(types::Descriptor {
        media_type: media.media_type.clone(),
        digest: written.digest,
        size: written.size as i64,
        annotations: HashMap::new(),
    })
}

/// A layer tar written to a temporary file, with its digests.
struct Written {
    file: tempfile::NamedTempFile,
    digest: String,
    diff_id: String,
    size: u64,
}

/// Writes a layer as a canonical layer tar, its times clamped to `epoch`.
fn export_layer(
    sorted: winlayer_core::Sorted,
    compression: wcow_tar::Compression,
    epoch: Option<i64>,
) -> Result<Written, Status> {
    let refused = |e: winlayer_core::Error| Status::invalid_argument(e.to_string());
    let io = |e: io::Error| Status::internal(format!("writing the layer: {e}"));
    let file = tempfile::NamedTempFile::new().map_err(io)?;
    let diff_id = Arc::new(Mutex::new((Hasher::sha256(), 0u64)));
    let blob = Arc::new(Mutex::new((Hasher::sha256(), 0u64)));
    {
        let counted_blob = Tap::new(file.as_file().try_clone().map_err(io)?, tally(&blob));
        let compressed = wcow_tar::Output::new(counted_blob, compression).map_err(io)?;
        let mut writer = wcow_tar::TarWriter::new(Tap::new(compressed, tally(&diff_id)));
        let latest = epoch.and_then(|s| FileTime::from_unix(s, 0));
        sorted.send_to(&mut ClampTimes { inner: &mut writer, latest }).map_err(refused)?;
        let tee = writer.finish().map_err(refused)?;
        tee.into_inner().finish().map_err(io)?;
    }
    let (diff_id, blob) = (diff_id.lock().expect("not poisoned"), blob.lock().expect("not poisoned"));
    Ok(Written { digest: blob.0.digest(), diff_id: diff_id.0.digest(), size: blob.1, file })
}

/// Times later than `latest` become `latest` (containerd's `source_date_epoch`: what a build
/// wrote after the epoch carries the epoch).
struct ClampTimes<'a> {
    inner: &'a mut dyn LayerSink,
    latest: Option<FileTime>,
}

impl LayerSink for ClampTimes<'_> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> winlayer_core::Result<()> {
        let Some(latest) = self.latest else { return self.inner.entry(entry, data) };
        let mut entry = entry.clone();
        let m = &mut entry.meta;
        for t in [&mut m.creation, &mut m.last_write, &mut m.last_access, &mut m.change] {
            if *t > latest {
                *t = latest;
            }
        }
        self.inner.entry(&entry, data)
    }
}
