//! `image inspect`: an image's platform, config, conversions and, for each layer, what a Windows host
//! cares about — read by streaming every distributable layer through winlayer's strict tar
//! reader (nothing is written to disk).

use std::io;

use oci_spec::image::Descriptor;
use serde_json::Value;
use wcow_tar::{Input, LayerReader, Mode};
use winlayer_core::{Data, Entry, EntryKind, LayerSink};

use crate::manifest;
use crate::platform::Platform;
use crate::store::{self, Progress, Source};
use crate::{Error, Result, invalid};

/// The registry hives a base layer carries in `Files/Windows/System32/config`.
const CONFIG_HIVES: [&str; 5] = ["DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"];

/// One layer's facts.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LayerFacts {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: String,
    /// The blob's size.
    pub size: u64,
    /// Nondistributable: not read (its `urls` say where it lives).
    pub foreign: bool,
    /// Where a foreign layer is fetched from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Bytes of file data (uncompressed), when read.
    pub data_bytes: Option<u64>,
    /// Entries, files, whiteouts, when read.
    pub entries: Option<u64>,
    /// Regular files.
    pub files: Option<u64>,
    /// Whiteouts (deletions from lower layers).
    pub whiteouts: Option<u64>,
    /// The config hives it carries (`Files/Windows/System32/config/<H>`).
    pub config_hives: Vec<String>,
    /// Its differencing hives (`Hives/<H>_Delta`).
    pub delta_hives: Vec<String>,
    /// Whether it carries a utility VM (`UtilityVM/Files`).
    pub utility_vm: bool,
    /// A base layer: the first, with all five config hives, no `Hives/` and no whiteouts.
    pub base: bool,
    /// A pre-converted CIM layer (not read: its annotations say what it was converted from).
    pub converted: bool,
    /// For a converted layer, the source layer it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::convert::SourceLayer>,
}

/// An image's facts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageFacts {
    /// The image, as given.
    pub name: String,
    /// The manifest's digest.
    pub manifest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// The platform (from the config; `os.version` from the index when the config lacks it).
    pub platform: Platform,
    /// The config's digest.
    pub config_digest: String,
    /// The config's `config` object (Entrypoint, Cmd, Env, …).
    pub config: Value,
    /// The config's `created`.
    pub created: Option<String>,
    /// The layers, lowest first.
    pub layers: Vec<LayerFacts>,
    /// The manifest's `artifactType` (a converted image's is
    /// `application/vnd.winlayer.cimfs.image.v1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// For a converted image, the source manifest it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<String>,
    /// The conversions of this image stored as its referrers.
    pub conversions: Vec<crate::convert::ConversionFacts>,
    /// Why the conversions could not be listed (a registry's broken referrers answer, say):
    /// the image is inspected all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversions_error: Option<String>,
}

/// Counts what a layer holds.
#[derive(Default)]
struct Counter {
    facts: LayerFacts,
    has_hives_dir: bool,
}

impl LayerSink for Counter {
    fn entry(&mut self, entry: &Entry, _data: &mut Data<'_>) -> winlayer_core::Result<()> {
        let f = &mut self.facts;
        *f.entries.get_or_insert(0) += 1;
        let path = entry.path.as_str();
        match &entry.kind {
            EntryKind::File { size } => {
                *f.files.get_or_insert(0) += 1;
                *f.data_bytes.get_or_insert(0) += size;
            }
            EntryKind::Stream { size, .. } => *f.data_bytes.get_or_insert(0) += size,
            EntryKind::Whiteout | EntryKind::Opaque => *f.whiteouts.get_or_insert(0) += 1,
            _ => {}
        }
        let mut parts = path.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(h), None, _) if h.eq_ignore_ascii_case("Hives") => self.has_hives_dir = true,
            (Some(h), Some(name), None) if h.eq_ignore_ascii_case("Hives") => {
                self.has_hives_dir = true;
                f.delta_hives.push(name.to_string());
            }
            (Some(u), Some(files), _) if u.eq_ignore_ascii_case("UtilityVM") && files.eq_ignore_ascii_case("Files") => {
                f.utility_vm = true
            }
            _ => {}
        }
        if matches!(entry.kind, EntryKind::File { .. } | EntryKind::HardLink { .. }) {
            let folded = path.to_ascii_lowercase();
            if let Some(name) = folded.strip_prefix("files/windows/system32/config/")
                && let Some(h) = CONFIG_HIVES.iter().find(|h| h.eq_ignore_ascii_case(name))
            {
                f.config_hives.push(h.to_string());
            }
        }
        Ok(())
    }
}

/// Reads one layer blob into `sink` through the strict reader while it streams from the
/// source (the reader runs on a thread of its own, fed through a pipe); gives the sink back.
pub fn stream_layer<S: LayerSink + Send + 'static>(
    source: &mut dyn Source,
    desc: &Descriptor,
    mut sink: S,
    progress: &dyn Progress,
) -> Result<S> {
    let (reader, mut writer) = io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
    let what = format!("{}: layer {}", source.name(), desc.digest());
    let worker = std::thread::spawn(move || -> Result<S> {
        let input = Input::from_reader(reader).map_err(|e| Error::io("reading the layer", e))?;
        LayerReader::new(input, Mode::Strict).read_into(&mut sink)?;
        Ok(sink)
    });
    let sent = source.blob(desc, &mut writer, progress);
    drop(writer);
    let read = worker.join().map_err(|_| invalid(format!("{what}: the reader thread panicked")))?;
    // A source error explains a reader error (a broken pipe, a short tar), so it goes first.
    sent?;
    progress.end(desc.digest(), "read");
    read.map_err(|e| invalid(format!("{what}: {e}")))
}

/// Inspects the image `source` names for `platform`.
pub fn inspect(source: &mut dyn Source, platform: &Platform, progress: &dyn Progress) -> Result<ImageFacts> {
    let resolved = store::resolve(source, platform)?;
    let mut layers = Vec::new();
    for (i, desc) in resolved.manifest.layers().iter().enumerate() {
        let media_type = desc.media_type().to_string();
        let mut facts = LayerFacts {
            media_type: media_type.clone(),
            digest: desc.digest().to_string(),
            size: desc.size(),
            urls: desc.urls().clone().unwrap_or_default(),
            ..Default::default()
        };
        if let Some(from) = crate::convert::source_layer(desc) {
            facts.converted = true;
            facts.source = Some(from);
        } else if manifest::is_foreign(&media_type) {
            facts.foreign = true;
            facts.base = i == 0;
        } else if !manifest::is_layer(&media_type) {
            return Err(invalid(format!(
                "{}: layer {} has media type {media_type}, not a layer",
                source.name(),
                desc.digest()
            )));
        } else {
            let counter = stream_layer(source, desc, Counter::default(), progress)?;
            let mut f = counter.facts;
            f.config_hives.sort();
            f.config_hives.dedup();
            f.base =
                i == 0 && f.config_hives.len() == CONFIG_HIVES.len() && !counter.has_hives_dir && f.whiteouts.is_none();
            f.whiteouts.get_or_insert(0);
            f.files.get_or_insert(0);
            f.entries.get_or_insert(0);
            f.data_bytes.get_or_insert(0);
            facts = LayerFacts { media_type, digest: facts.digest, size: facts.size, urls: facts.urls, ..f };
        }
        layers.push(facts);
    }
    let value: Value = serde_json::from_slice(&resolved.fetched.bytes).expect("parsed by resolve");
    let artifact_type = value.get("artifactType").and_then(|t| t.as_str()).map(str::to_string);
    let converted_from = (artifact_type.as_deref() == Some(crate::convert::ARTIFACT_TYPE))
        .then(|| {
            value
                .pointer("/subject/digest")
                .or_else(|| value.get("annotations").and_then(|a| a.get(crate::convert::SOURCE_MANIFEST)))
        })
        .flatten()
        .and_then(|d| d.as_str())
        .map(str::to_string);
    let (conversions, conversions_error) = match crate::convert::conversions(source, &resolved.fetched.digest) {
        Ok(found) => (found, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let config = resolved.config.value;
    Ok(ImageFacts {
        artifact_type,
        converted_from,
        conversions,
        conversions_error,
        name: source.name(),
        manifest: resolved.fetched.digest.to_string(),
        media_type: resolved.fetched.media_type.clone(),
        platform: resolved.platform,
        config_digest: resolved.manifest.config().digest().to_string(),
        created: config.get("created").and_then(|c| c.as_str()).map(str::to_string),
        config: config.get("config").cloned().unwrap_or(Value::Null),
        layers,
    })
}
