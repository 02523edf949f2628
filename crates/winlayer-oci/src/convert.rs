//! `image convert --to cimfs` and `image verify-conversion`: an image's layers pre-converted
//! to CimFS container layers (docs/converted-layers.md), in a manifest of their own that keeps
//! the source's config, so a node with winlayer's differ unpacks it by writing files.
//!
//! Each source layer, lowest first, streams from its source (digest checked) through the
//! strict layer reader into [`CimLayerImport`] — a CIM forked from the layer below's, and its
//! layer directory — in a temporary directory; the uncompressed tar's digest must be the
//! config's diffID. The layer is then packed ([`converted::pack`]), compressed with zstd and
//! hashed into a temporary file, which is what gets pushed. Nothing depends on the machine,
//! the time or the temporary directory, so the same source gives the same blobs and manifest
//! anywhere: `verify-conversion` converts again and compares digests.
//!
//! The converted manifest is an OCI image manifest with `artifactType`
//! [`ARTIFACT_TYPE`], the source's config descriptor unchanged, one converted layer per source
//! layer (media type [`converted::MEDIA_TYPE`], annotated with the source layer's digest,
//! diffID and size), the annotations [`SOURCE_MANIFEST`] and [`FORMAT`], and with `attach` a
//! `subject`: the source manifest, whose referrer it then is (OCI 1.1).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use wcow_tar::{Compression, Input, LayerReader, Mode, Output};
use winlayer_layers::{CimLayerImport, Parent, converted};

use crate::digest::{self, Digest, Hasher};
use crate::layout::fetched_descriptor;
use crate::manifest::{self, OCI_MANIFEST, canonical_json};
use crate::platform::Platform;
use crate::referrers::Referrer;
use crate::store::{self, Attached, Fetched, Progress, Resolved, Source, Target};
use crate::{Error, Result, invalid};
use winlayer_core::tap::Tap;

/// The `artifactType` of a converted image's manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.winlayer.cimfs.image.v1";
/// Manifest annotation: the digest of the source image's manifest.
pub const SOURCE_MANIFEST: &str = "io.winlayer.cimfs.source.manifest";
/// Manifest annotation: the version of the conversion format ([`FORMAT_VERSION`]). It changes
/// only when the same source would convert to different bytes, never with winlayer's version.
pub const FORMAT: &str = "io.winlayer.cimfs.format";
/// The conversion format this winlayer writes.
pub const FORMAT_VERSION: &str = "1";

/// One converted layer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    /// The source layer blob's digest.
    pub source_digest: String,
    /// The source layer's diffID (checked against the config).
    pub diff_id: String,
    /// The source layer's uncompressed size.
    pub source_size: u64,
    /// The converted blob's digest.
    pub digest: String,
    /// The converted blob's size (zstd).
    pub size: u64,
    /// Files of the layer directory in the archive.
    pub host_files: u64,
    /// CIM files (the `.cim`, its region and object-ID files) in the archive.
    pub cim_files: u64,
}

/// A conversion made in a temporary directory (removed when this is dropped).
pub struct Conversion {
    /// The source, as given.
    pub source: String,
    /// The source manifest's descriptor.
    pub source_manifest: Descriptor,
    /// The image's platform.
    pub platform: Platform,
    /// The config's descriptor (the source's).
    pub config: Descriptor,
    /// The converted layers, lowest first.
    pub layers: Vec<LayerReport>,
    /// Their descriptors, annotations included.
    pub descriptors: Vec<Descriptor>,
    /// The converted manifest.
    pub manifest: Fetched,
    /// Whether the manifest has a `subject` (the source manifest).
    pub subject: bool,
    blobs: Vec<PathBuf>,
    _work: tempfile::TempDir,
}

/// What a conversion did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConvertReport {
    /// The source, as given.
    pub source: String,
    /// The source manifest's digest.
    pub source_manifest: String,
    /// The platform.
    pub platform: Platform,
    /// The converted manifest's digest.
    pub manifest: String,
    /// Its `artifactType`.
    pub artifact_type: &'static str,
    /// The converted layers.
    pub layers: Vec<LayerReport>,
    /// Where it went.
    pub destinations: Vec<Destination>,
}

/// One place a converted image was written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Destination {
    /// The destination, as given.
    pub name: String,
    /// `tagged` (a `-t` destination), else how the referrer was attached.
    pub how: String,
}

/// The source layer that a converted layer's descriptor names in its annotations.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceLayer {
    /// The source layer blob's digest.
    pub digest: String,
    /// Its diffID.
    pub diff_id: String,
    /// Its uncompressed size.
    pub size: Option<u64>,
}

/// Reads a converted layer descriptor's annotations; `None` when it is not a converted layer.
pub fn source_layer(desc: &Descriptor) -> Option<SourceLayer> {
    if desc.media_type().to_string() != converted::MEDIA_TYPE {
        return None;
    }
    let annotations = desc.annotations().clone().unwrap_or_default();
    Some(SourceLayer {
        digest: annotations.get(converted::SOURCE_DIGEST).cloned().unwrap_or_default(),
        diff_id: annotations.get(converted::SOURCE_DIFF_ID).cloned().unwrap_or_default(),
        size: annotations.get(converted::SOURCE_SIZE).and_then(|s| s.parse().ok()),
    })
}

/// Whether an error is a write into a pipe whose reader gave up (the reader's error explains).
fn broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

/// Streams the source layer `desc` (fetched on a thread of its own, digest checked) through the
/// strict reader into `import`; returns the uncompressed tar's digest and size.
fn read_layer(
    source: &dyn Source,
    desc: &Descriptor,
    import: &mut CimLayerImport,
    progress: &dyn Progress,
) -> Result<(Digest, u64)> {
    let (reader, writer) = io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
    let mut fork = source.fork();
    let state = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let (sent, read) = std::thread::scope(|scope| {
        let fetch = scope.spawn(move || {
            let mut writer = writer;
            fork.blob(desc, &mut writer, progress)
        });
        let read = (|| -> Result<()> {
            let (_, plain) = wcow_tar::input::decompress(reader).map_err(|e| Error::io("decompressing", e))?;
            let tally = {
                let state = state.clone();
                move |bytes: &[u8]| {
                    let mut state = state.lock().expect("not poisoned");
                    state.0.update(bytes);
                    state.1 += bytes.len() as u64;
                }
            };
            let input = Input::from_plain_reader(Tap::new(plain, tally));
            let mut reader = LayerReader::new(input, Mode::Strict);
            reader.read_into(import)?;
            // The archive's padding after its end belongs to the diffID too.
            io::copy(&mut reader.into_input(), &mut io::sink()).map_err(|e| Error::io("reading the layer's end", e))?;
            Ok(())
        })();
        // The reader is dropped by now, so a fetch still writing stops with a broken pipe.
        (fetch.join(), read)
    });
    let sent = sent.map_err(|_| invalid("the download thread panicked"))?;
    match (sent, read) {
        (Ok(()), Ok(())) => {}
        // A source error (a digest mismatch, a broken connection) explains a reader error.
        (Err(e), _) if !broken_pipe(&e) => return Err(e),
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(())) => return Err(e),
    }
    let state = state.lock().expect("not poisoned");
    let hex = format!("sha256:{:x}", state.0.clone().finalize());
    Ok((hex.parse().expect("a sha256 digest"), state.1))
}

/// Converts the resolved image: each layer imported and packed in a temporary directory under
/// `work_root`; with `subject`, the manifest names the source manifest as its subject.
pub fn derive(
    source: &mut dyn Source,
    resolved: &Resolved,
    subject: bool,
    work_root: &Path,
    progress: &dyn Progress,
) -> Result<Conversion> {
    let name = source.name();
    let work = winlayer_core::temp::dir_in(work_root)
        .map_err(|e| Error::io(format!("creating a temporary directory in {}", work_root.display()), e))?;
    let (layers_dir, cims_dir, blobs_dir) =
        (work.path().join("layers"), work.path().join("cims"), work.path().join("blobs"));
    for d in [&layers_dir, &cims_dir, &blobs_dir] {
        std::fs::create_dir(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let diff_ids = resolved.config.diff_ids().map_err(|e| invalid(format!("{name}: config: {e}")))?;
    let source_layers = resolved.manifest.layers();
    let (mut layers, mut descriptors, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
    for (i, desc) in source_layers.iter().enumerate() {
        let what = format!("{name}: layer {i} ({})", desc.digest());
        let media_type = desc.media_type().to_string();
        if manifest::is_foreign(&media_type) {
            return Err(invalid(format!(
                "{what}: a foreign (nondistributable) layer; its converted layer would hold its content, which may \
                 not be distributed, so images with foreign layers are not converted (copy the base with its \
                 layers made distributable first)"
            )));
        }
        if !manifest::is_layer(&media_type) {
            return Err(invalid(format!("{what}: media type {media_type} is not a layer winlayer converts")));
        }
        let layer_dir = layers_dir.join(i.to_string());
        let cim = cims_dir.join(format!("{i}.cim"));
        let parents: Vec<Parent> = (0..i)
            .rev()
            .map(|j| Parent { dir: layers_dir.join(j.to_string()), cim: cims_dir.join(format!("{j}.cim")) })
            .collect();
        let mut import = CimLayerImport::start(&layer_dir, &cim, &parents)?;
        let (diff_id, source_size) =
            read_layer(&*source, desc, &mut import, progress).map_err(|e| invalid(format!("{what}: {e}")))?;
        if diff_id.to_string() != diff_ids[i] {
            return Err(invalid(format!(
                "{what}: its uncompressed tar hashes to {diff_id}, but the config's diff_ids[{i}] is {}",
                diff_ids[i]
            )));
        }
        import.finish().map_err(|e| invalid(format!("{what}: {e}")))?;
        progress.end(desc.digest(), "converted");

        let blob_path = blobs_dir.join(i.to_string());
        let file = File::create(&blob_path).map_err(|e| Error::io(format!("creating {}", blob_path.display()), e))?;
        let mut zstd = Output::new(Hasher::new(BufWriter::with_capacity(1 << 16, file)), Compression::Zstd)
            .map_err(|e| Error::io("starting zstd", e))?;
        let packed = converted::pack(&layer_dir, &cim, &mut zstd).map_err(|e| invalid(format!("{what}: {e}")))?;
        let blob = zstd.finish().map_err(|e| Error::io(format!("{what}: compressing"), e))?;
        let (digest, size) = (blob.digest(), blob.len());
        blob.into_inner().flush().map_err(|e| Error::io(format!("writing {}", blob_path.display()), e))?;
        let annotations: std::collections::HashMap<String, String> = [
            (converted::SOURCE_DIGEST, desc.digest().to_string()),
            (converted::SOURCE_DIFF_ID, diff_id.to_string()),
            (converted::SOURCE_SIZE, source_size.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        descriptors.push(
            DescriptorBuilder::default()
                .media_type(MediaType::from(converted::MEDIA_TYPE))
                .digest(digest.clone())
                .size(size)
                .annotations(annotations)
                .build()
                .expect("all required fields set"),
        );
        layers.push(LayerReport {
            source_digest: desc.digest().to_string(),
            diff_id: diff_id.to_string(),
            source_size,
            digest: digest.to_string(),
            size,
            host_files: packed.host_files,
            cim_files: packed.cim_files,
        });
        blobs.push(blob_path);
    }
    let source_manifest = fetched_descriptor(&resolved.fetched);
    let source_json: Value = serde_json::from_slice(&resolved.fetched.bytes).expect("parsed by resolve");
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        // Unchanged, so the diffIDs and chain IDs are the source's.
        "config": source_json["config"].clone(),
        "layers": descriptors.iter().map(layer_json).collect::<Vec<_>>(),
        "annotations": {
            SOURCE_MANIFEST: resolved.fetched.digest.to_string(),
            FORMAT: FORMAT_VERSION,
        },
    });
    if subject {
        m["subject"] = manifest::descriptor_json(&source_manifest, None, &[]);
    }
    let bytes = canonical_json(&m);
    let manifest = Fetched { digest: digest::of(&bytes), media_type: OCI_MANIFEST.into(), bytes };
    Ok(Conversion {
        source: name,
        source_manifest,
        platform: resolved.platform.clone(),
        config: resolved.manifest.config().clone(),
        layers,
        descriptors,
        manifest,
        subject,
        blobs,
        _work: work,
    })
}

/// A converted layer's descriptor as JSON, its annotations included.
fn layer_json(desc: &Descriptor) -> Value {
    let annotations: BTreeMap<String, String> = desc.annotations().clone().unwrap_or_default().into_iter().collect();
    let pairs: Vec<(&str, &str)> = annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    manifest::descriptor_json(desc, None, &pairs)
}

impl Conversion {
    /// Sends the config (from `source`) and the converted blobs that `target` lacks.
    fn send_blobs(&self, source: &mut dyn Source, target: &mut dyn Target, progress: &dyn Progress) -> Result<()> {
        store::send_blob(source, target, &self.config, progress)?;
        for (desc, path) in self.descriptors.iter().zip(&self.blobs) {
            if target.has_blob(desc)? {
                progress.end(desc.digest(), "exists");
                continue;
            }
            let file = path.clone();
            target.put_blob(desc, Some(path.clone()), &mut |out| store::copy_file(&file, out), progress)?;
            progress.end(desc.digest(), "pushed");
        }
        Ok(())
    }

    /// Writes the converted image to `target` under its name (a `-t` destination).
    pub fn write(&self, source: &mut dyn Source, target: &mut dyn Target, progress: &dyn Progress) -> Result<()> {
        self.send_blobs(source, target, progress)?;
        target.put_manifest(&self.manifest, &self.platform)
    }

    /// The converted manifest as a referrers index lists it.
    pub fn referrer(&self) -> Referrer {
        Referrer {
            media_type: OCI_MANIFEST.into(),
            digest: self.manifest.digest.clone(),
            size: self.manifest.bytes.len() as u64,
            artifact_type: Some(ARTIFACT_TYPE.into()),
            annotations: [
                (SOURCE_MANIFEST.to_string(), self.source_manifest.digest().to_string()),
                (FORMAT.to_string(), FORMAT_VERSION.to_string()),
            ]
            .into(),
        }
    }

    /// Stores the converted image in `target` — the source's own repository or layout — as a
    /// referrer of the source manifest.
    pub fn attach(
        &self,
        source: &mut dyn Source,
        target: &mut dyn Target,
        progress: &dyn Progress,
    ) -> Result<Attached> {
        if !self.subject {
            return Err(invalid("a conversion made without a subject cannot be attached"));
        }
        self.send_blobs(source, target, progress)?;
        target.attach(&self.manifest, &self.referrer(), self.source_manifest.digest())
    }

    /// The report of what was converted, before any destination is added.
    pub fn report(&self) -> ConvertReport {
        ConvertReport {
            source: self.source.clone(),
            source_manifest: self.source_manifest.digest().to_string(),
            platform: self.platform.clone(),
            manifest: self.manifest.digest.to_string(),
            artifact_type: ARTIFACT_TYPE,
            layers: self.layers.clone(),
            destinations: Vec::new(),
        }
    }
}

/// Converts the image `source` names (for `platform`): written to `target` when given, and with
/// `attach` stored as a referrer of the source in `attach_to` (the source's repository or
/// layout, opened for writing).
pub fn convert(
    source: &mut dyn Source,
    platform: &Platform,
    target: Option<&mut dyn Target>,
    attach_to: Option<&mut dyn Target>,
    work_root: &Path,
    progress: &dyn Progress,
) -> Result<ConvertReport> {
    let resolved = store::resolve(source, platform)?;
    let conversion = derive(source, &resolved, attach_to.is_some(), work_root, progress)?;
    let mut report = conversion.report();
    if let Some(target) = target {
        conversion.write(source, target, progress)?;
        report.destinations.push(Destination { name: target.name(), how: "tagged".into() });
    }
    if let Some(target) = attach_to {
        let how = conversion.attach(source, target, progress)?;
        report.destinations.push(Destination { name: target.name(), how: format!("referrer, through {how}") });
    }
    Ok(report)
}

/// A converted image read back: its manifest and which source it claims.
pub struct ConvertedImage {
    /// The resolved converted image.
    pub resolved: Resolved,
    /// Its whole manifest.
    pub manifest: Value,
    /// The source manifest it names (its `subject`, else the [`SOURCE_MANIFEST`] annotation).
    pub source_manifest: Digest,
    /// Whether it has a `subject`.
    pub subject: bool,
}

/// Reads the converted image `converted` names; refuses an image that is not one.
pub fn read_converted(converted: &mut dyn Source, platform: &Platform) -> Result<ConvertedImage> {
    let name = converted.name();
    let resolved = store::resolve(converted, platform)?;
    let manifest: Value = serde_json::from_slice(&resolved.fetched.bytes).expect("parsed by resolve");
    let what = format!("{name}: manifest {}", resolved.fetched.digest);
    if manifest.get("artifactType").and_then(Value::as_str) != Some(ARTIFACT_TYPE) {
        return Err(invalid(format!(
            "{what}: not a converted image (its artifactType is not {ARTIFACT_TYPE}); `winlayer image convert` makes one"
        )));
    }
    let subject = manifest.pointer("/subject/digest").and_then(Value::as_str);
    let annotated =
        manifest.pointer(&format!("/annotations/{}", SOURCE_MANIFEST.replace('/', "~1"))).and_then(Value::as_str);
    let claimed = match (subject, annotated) {
        (Some(s), Some(a)) if s != a => {
            return Err(invalid(format!("{what}: its subject {s} and its {SOURCE_MANIFEST} annotation {a} disagree")));
        }
        (Some(s), _) => s,
        (None, Some(a)) => a,
        (None, None) => {
            return Err(invalid(format!("{what}: names no source (no subject, no {SOURCE_MANIFEST} annotation)")));
        }
    };
    let source_manifest = digest::parse(claimed, &what)?;
    Ok(ConvertedImage { resolved, subject: subject.is_some(), manifest, source_manifest })
}

/// One layer compared.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerCheck {
    /// The layer's position.
    pub index: usize,
    /// The digest the converted manifest lists (none past its end).
    pub listed: Option<String>,
    /// The digest the conversion gives again (none past the source's end).
    pub derived: Option<String>,
    /// Whether they are the same.
    pub ok: bool,
}

/// What `verify-conversion` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    /// The converted image, as given.
    pub converted: String,
    /// Its manifest's digest.
    pub manifest: String,
    /// The source, where it was read from.
    pub source: String,
    /// The source manifest's digest.
    pub source_manifest: String,
    /// The manifest digest the conversion gives again.
    pub derived_manifest: String,
    /// Each layer.
    pub layers: Vec<LayerCheck>,
    /// Whether everything is the same: the converted image is what converting its source gives.
    pub ok: bool,
}

/// Converts the source of the converted image again (in a temporary directory under
/// `work_root`, nothing written anywhere else) and compares every layer digest and the
/// manifest digest. `source` is where the source is read from: the converted image's own
/// repository or layout unless given; either way the source manifest is fetched by the digest
/// the converted image names.
pub fn verify(
    converted: &mut dyn Source,
    source: Option<&dyn Source>,
    platform: &Platform,
    work_root: &Path,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let image = read_converted(converted, platform)?;
    let mut source = match source {
        Some(s) => s.sibling(&image.source_manifest),
        None => converted.sibling(&image.source_manifest),
    };
    let resolved = store::resolve(source.as_mut(), &image.resolved.platform)?;
    if resolved.fetched.digest != image.source_manifest {
        return Err(invalid(format!(
            "{}: resolves to manifest {}, not the converted image's source {}",
            source.name(),
            resolved.fetched.digest,
            image.source_manifest
        )));
    }
    let again = derive(source.as_mut(), &resolved, image.subject, work_root, progress)?;
    let listed = image.resolved.manifest.layers();
    let n = listed.len().max(again.layers.len());
    let layers: Vec<LayerCheck> = (0..n)
        .map(|i| {
            let listed = listed.get(i).map(|d| d.digest().to_string());
            let derived = again.layers.get(i).map(|l| l.digest.clone());
            LayerCheck { index: i, ok: listed.is_some() && listed == derived, listed, derived }
        })
        .collect();
    let manifest = image.resolved.fetched.digest.to_string();
    let derived_manifest = again.manifest.digest.to_string();
    Ok(VerifyReport {
        converted: converted.name(),
        ok: layers.iter().all(|l| l.ok) && manifest == derived_manifest,
        manifest,
        source: source.name(),
        source_manifest: image.source_manifest.to_string(),
        derived_manifest,
        layers,
    })
}

/// A conversion of an image, as found among its referrers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConversionFacts {
    /// The converted manifest's digest.
    pub digest: String,
    /// Its layers.
    pub layers: usize,
    /// How many of them are converted layers.
    pub converted_layers: usize,
    /// The source layer digests they name, in order.
    pub source_layers: Vec<String>,
}

/// The conversions of the manifest `subject` that `source`'s repository or layout holds: its
/// referrers with [`ARTIFACT_TYPE`], each read and checked to name `subject`.
pub fn conversions(source: &mut dyn Source, subject: &Digest) -> Result<Vec<ConversionFacts>> {
    let name = source.name();
    let mut found = Vec::new();
    for r in source.referrers(subject)? {
        if r.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
            continue;
        }
        let what = format!("{name}: referrer {} of {subject}", r.digest);
        let desc = DescriptorBuilder::default()
            .media_type(MediaType::from(r.media_type.as_str()))
            .digest(r.digest.clone())
            .size(r.size)
            .build()
            .expect("all required fields set");
        let bytes = source.small(&desc)?;
        let m: oci_spec::image::ImageManifest = match manifest::parse(&bytes, Some(&r.media_type), &what)? {
            manifest::Parsed::Manifest(m) => *m,
            manifest::Parsed::Index(..) => return Err(invalid(format!("{what}: an index, not a converted image"))),
        };
        let value: Value = serde_json::from_slice(&bytes).expect("parsed");
        if value.pointer("/subject/digest").and_then(Value::as_str) != Some(subject.as_ref()) {
            return Err(invalid(format!("{what}: listed as a referrer, but its subject is not {subject}")));
        }
        let sources: Vec<String> = m.layers().iter().filter_map(source_layer).map(|s| s.digest).collect();
        found.push(ConversionFacts {
            digest: r.digest.to_string(),
            layers: m.layers().len(),
            converted_layers: sources.len(),
            source_layers: sources,
        });
    }
    Ok(found)
}
