//! `image append`: new layers (from directories or layer tars, written canonically) and a new
//! config on top of a base image.
//!
//! A layer is read into winlayer's [`Collector`] (metadata in memory, data left in place or
//! spooled), written as the canonical tar through two hashers — the tar's (its `diff_id`) and,
//! after gzip, the blob's — into a temporary file, and sent from there: memory grows with the
//! number of files, never with their bytes. With `SOURCE_DATE_EPOCH` the same inputs give
//! the same image digest.

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use serde_json::{Value, json};
use wcow_tar::{Compression, Input, LayerReader, Mode, Output, TarWriter};
use wincmdline::image::{ImageCommand, Overrides, Runtime, resolve as resolve_command};
use wincmdline::{Dialect, parse as parse_line};
use winlayer_core::dir::{DirOptions, DirSource};
use winlayer_core::{Collector, Error, LayerSink, LayerSource, Severity};
use winlayer_layers::BaseLayerBuilder;

use crate::digest::{Digest, Hasher};
use crate::manifest::{self, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_GZIP, canonical_json};
use crate::platform::Platform;
use crate::store::{self, Fetched, Progress, Resolved, Source, Target};
use crate::{Result, invalid};

/// A command given for `Entrypoint` or `Cmd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Exec form: the program and its arguments, escaped by the runtime.
    Exec(Vec<String>),
    /// A Windows command line, run verbatim (stored as one element with `ArgsEscaped`, as
    /// moby's builder stores a shell-form command on Windows).
    Line(String),
}

impl Command {
    /// A JSON array of strings is the exec form; anything else is a command line.
    pub fn parse(text: &str) -> Result<Command> {
        if text.trim_start().starts_with('[') {
            let args: Vec<String> = serde_json::from_str(text)
                .map_err(|e| invalid(format!("{text:?}: not a JSON array of strings: {e}")))?;
            return Ok(Command::Exec(args));
        }
        if text.trim().is_empty() {
            return Err(invalid("an empty command line (give [] to clear)"));
        }
        Ok(Command::Line(text.to_string()))
    }

    fn args(&self) -> Vec<String> {
        match self {
            Command::Exec(a) => a.clone(),
            Command::Line(l) => parse_line(l, Dialect::CommandLineToArgvW),
        }
    }
}

/// What to change in the config.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// A new `Entrypoint` (resets `Cmd` unless a new one is given, as a Dockerfile's does).
    pub entrypoint: Option<Command>,
    /// A new `Cmd`.
    pub cmd: Option<Command>,
    /// `K=V` pairs set in `Env` (replacing the same `K`).
    pub env: Vec<String>,
    /// A new `WorkingDir`.
    pub workdir: Option<String>,
    /// A new `User` (e.g. `ContainerUser`).
    pub user: Option<String>,
}

/// A layer to append.
#[derive(Clone, Debug)]
pub enum LayerInput {
    /// A directory: a plain tree (becomes `Files/…`) or one laid out as a layer.
    Dir(PathBuf),
    /// A layer tar (plain, gzip or zstd), normalized.
    Tar(PathBuf),
}

impl LayerInput {
    /// A directory or a tar, by what `path` is.
    pub fn from_path(path: &Path) -> Result<LayerInput> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Ok(if meta.is_dir() { LayerInput::Dir(path.into()) } else { LayerInput::Tar(path.into()) })
    }

    fn path(&self) -> &Path {
        match self {
            LayerInput::Dir(p) | LayerInput::Tar(p) => p,
        }
    }
}

/// How layers are made.
#[derive(Clone, Debug)]
pub struct LayerOptions {
    /// Owner of every object of a directory, an SDDL SID.
    pub owner: String,
    /// `SOURCE_DATE_EPOCH`: clamps file times and dates the config and history.
    pub source_date_epoch: Option<i64>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions { owner: "BA".into(), source_date_epoch: None }
    }
}

/// A layer written to a temporary file.
pub struct BuiltLayer {
    /// The gzip'd blob.
    pub file: tempfile::NamedTempFile,
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Entries in the layer.
    pub entries: u64,
    /// Warnings from the layer rules.
    pub warnings: Vec<String>,
}

/// Writes `input` as a canonical gzip'd layer tar into a temporary file in `dir`; with `base`,
/// as a base layer by makebaselayer's rules (config hives added, whiteouts dropped, no
/// `Hives/`).
pub fn build_layer(
    input: &LayerInput,
    base: bool,
    options: &LayerOptions,
    media_type: &str,
    dir: &Path,
) -> Result<BuiltLayer> {
    let path = input.path();
    let dir_options = DirOptions { base, owner: options.owner.clone(), source_date_epoch: options.source_date_epoch };
    let mut feed = |sink: &mut dyn LayerSink| -> Result<()> {
        match input {
            LayerInput::Dir(_) => DirSource::new(path, dir_options.clone()).send_to(sink),
            LayerInput::Tar(_) => {
                let input = Input::open(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                LayerReader::new(input, Mode::Strict).read_into(sink)
            }
        }
    };
    build_from(&mut feed, &path.display().to_string(), base, options, media_type, dir)
}

/// Writes the entries `feed` sends as a canonical gzip'd layer tar into a temporary file in
/// `dir` (with `base`, through makebaselayer's rules); `label` names the source in warnings.
pub fn build_from(
    feed: &mut dyn FnMut(&mut dyn LayerSink) -> Result<()>,
    label: &str,
    base: bool,
    options: &LayerOptions,
    media_type: &str,
    dir: &Path,
) -> Result<BuiltLayer> {
    let mut collector = Collector::new();
    let mut builder = BaseLayerBuilder::new(&options.owner, options.source_date_epoch);
    feed(if base { &mut builder } else { &mut collector })?;
    let mut notes = Vec::new();
    let sorted = if base {
        let (sorted, report) = builder.finish()?;
        notes.extend(report.warnings);
        sorted
    } else {
        collector.finish()?
    };
    let problems = sorted.check();
    let (errors, warnings): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| p.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(Error::Problems(errors));
    }
    let entries = sorted.entries().count() as u64;
    let temp = tempfile::Builder::new()
        .prefix(".winlayer-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("creating a temporary file in {}", dir.display()), e))?;
    let file = temp.as_file().try_clone().map_err(|e| Error::io("opening the layer file", e))?;
    let gzip = Output::new(Hasher::new(BufWriter::with_capacity(1 << 16, file)), Compression::Gzip)
        .map_err(|e| Error::io("starting gzip", e))?;
    let mut writer = TarWriter::new(Hasher::new(gzip));
    sorted.send_to(&mut writer)?;
    let tar = writer.finish()?;
    let diff_id = tar.digest();
    let blob = tar.into_inner().finish().map_err(|e| Error::io(format!("compressing {label}"), e))?;
    let digest = blob.digest();
    let size = blob.len();
    io::Write::flush(&mut blob.into_inner()).map_err(|e| Error::io("writing the layer file", e))?;
    let descriptor = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest)
        .size(size)
        .build()
        .expect("all required fields set");
    Ok(BuiltLayer {
        file: temp,
        descriptor,
        diff_id,
        entries,
        warnings: warnings.iter().map(|p| p.to_string()).chain(notes).map(|w| format!("{label}: {w}")).collect(),
    })
}

/// RFC 3339 UTC for seconds since 1970.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The entrypoint and command a config says, each with whether it is a pre-escaped line.
fn current(config: &Value) -> (Vec<String>, Vec<String>, bool) {
    let list = |k: &str| -> Vec<String> {
        config
            .pointer(&format!("/config/{k}"))
            .and_then(|v| v.as_array())
            .map_or(Vec::new(), |a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
    };
    let escaped = config.pointer("/config/ArgsEscaped").and_then(|v| v.as_bool()).unwrap_or(false);
    (list("Entrypoint"), list("Cmd"), escaped)
}

/// Applies `changes` to the config's command: `ArgsEscaped` is true exactly when the first
/// element (the entrypoint's, else the command's) is a pre-escaped command line, which is
/// when containerd and moby run it verbatim; any other line is split into arguments.
fn apply_command(config: &mut Value, changes: &Changes) {
    let (base_entry, base_cmd, base_escaped) = current(config);
    // Which of the base's lists is the escaped line, if any.
    let base_entry_line = base_escaped && !base_entry.is_empty();
    let base_cmd_line = base_escaped && base_entry.is_empty();
    let (entry, entry_line) = match &changes.entrypoint {
        Some(Command::Line(l)) => (vec![l.clone()], true),
        Some(Command::Exec(a)) => (a.clone(), false),
        None => (base_entry, base_entry_line),
    };
    let (cmd, cmd_line) = match (&changes.cmd, &changes.entrypoint) {
        (Some(Command::Line(l)), _) if entry.is_empty() => (vec![l.clone()], true),
        (Some(c), _) => (c.args(), false),
        // A new entrypoint resets the command, as in a Dockerfile.
        (None, Some(_)) => (Vec::new(), false),
        (None, None) => (base_cmd, base_cmd_line),
    };
    let escaped = if entry.is_empty() { cmd_line } else { entry_line };
    let inner = config.as_object_mut().expect("checked: an object").entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    let list = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    inner["Entrypoint"] = list(entry);
    inner["Cmd"] = list(cmd);
    if escaped {
        inner["ArgsEscaped"] = json!(true);
    } else if let Some(o) = inner.as_object_mut() {
        o.remove("ArgsEscaped");
    }
}

/// Applies env, working directory and user.
fn apply_settings(config: &mut Value, changes: &Changes) -> Result<()> {
    let inner = &mut config["config"];
    for pair in &changes.env {
        let (key, _) = pair.split_once('=').ok_or_else(|| invalid(format!("--env {pair:?}: want KEY=VALUE")))?;
        if key.is_empty() {
            return Err(invalid(format!("--env {pair:?}: empty name")));
        }
        let mut env: Vec<String> = inner
            .get("Env")
            .and_then(|v| v.as_array())
            .map_or(Vec::new(), |a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect());
        // Windows environment names are case-insensitive.
        let same = |e: &String| e.split_once('=').is_some_and(|(k, _)| k.eq_ignore_ascii_case(key));
        match env.iter_mut().find(|e| same(e)) {
            Some(e) => *e = pair.clone(),
            None => env.push(pair.clone()),
        }
        inner["Env"] = json!(env);
    }
    if let Some(w) = &changes.workdir {
        inner["WorkingDir"] = json!(w);
    }
    if let Some(u) = &changes.user {
        inner["User"] = json!(u);
    }
    Ok(())
}

/// One appended layer, reported.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    /// Where it came from.
    pub source: String,
    /// The blob's digest.
    pub digest: String,
    /// The uncompressed tar's digest.
    pub diff_id: String,
    /// The blob's size.
    pub size: u64,
    /// Entries in the layer.
    pub entries: u64,
}

/// What `append` or `from_scratch` made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppendReport {
    /// The base, as given.
    pub base: String,
    /// Where the image went.
    pub destination: String,
    /// The new image's manifest digest.
    pub manifest: String,
    /// Its platform.
    pub platform: Platform,
    /// The new layers.
    pub layers: Vec<LayerReport>,
    /// The command line containerd starts for the new config (none when it names no program).
    pub command_line: Option<String>,
    /// Warnings (layer rules; command lines that likely differ from what was meant).
    pub warnings: Vec<String>,
}

/// A temporary directory for layer files: the target's own blob directory when it has one
/// (so the finished blob is renamed, not copied), else the system's.
fn scratch_dir(target: &dyn Target) -> PathBuf {
    target.scratch_dir().unwrap_or_else(std::env::temp_dir)
}

/// An image being made: its manifest and config so far.
pub(crate) struct Draft {
    /// Where it starts from, for the report.
    pub(crate) base: String,
    pub(crate) manifest: Value,
    pub(crate) config: Value,
    pub(crate) media_type: String,
    pub(crate) config_type: MediaType,
    pub(crate) layer_type: &'static str,
    /// Whether to add history entries (a base without history keeps none, as it must match
    /// its layers).
    pub(crate) history: bool,
}

/// Appends `layers` to the image `base` names and writes the result to `target`.
pub fn append(
    base: &mut dyn Source,
    platform: &Platform,
    layers: &[LayerInput],
    changes: &Changes,
    options: &LayerOptions,
    target: &mut dyn Target,
    progress: &dyn Progress,
) -> Result<AppendReport> {
    let Resolved { fetched, config, manifest: base_manifest, .. } = store::resolve(base, platform)?;
    let manifest: Value = serde_json::from_slice(&fetched.bytes).expect("parsed by resolve");
    let docker = fetched.media_type == DOCKER_MANIFEST
        || manifest.get("mediaType").and_then(|m| m.as_str()) == Some(DOCKER_MANIFEST);
    // The base's blobs first (what the target has, or can mount, is not sent).
    for desc in base_manifest.layers() {
        if !manifest::is_foreign(desc.media_type().as_ref()) {
            store::send_blob(base, target, desc, progress)?;
        }
    }
    let history = config.value.get("history").is_some_and(|h| h.is_array()) || base_manifest.layers().is_empty();
    let draft = Draft {
        base: base.name(),
        manifest,
        config: config.value,
        media_type: fetched.media_type.clone(),
        config_type: base_manifest.config().media_type().clone(),
        layer_type: if docker { DOCKER_LAYER_GZIP } else { OCI_LAYER_GZIP },
        history,
    };
    let mut pending: Vec<Pending> = layers.iter().map(|l| Pending::Input(l.clone(), false)).collect();
    finish(draft, &mut pending, changes, options, target, progress)
}

/// Makes a base image (`FROM scratch`) of one layer from `input`, made a base layer by
/// makebaselayer's rules, for `platform` (whose `os.version` is required: Windows refuses an
/// image it cannot match to its build).
pub fn from_scratch(
    input: &LayerInput,
    platform: &Platform,
    changes: &Changes,
    options: &LayerOptions,
    target: &mut dyn Target,
    progress: &dyn Progress,
) -> Result<AppendReport> {
    let Some(os_version) = &platform.os_version else {
        return Err(invalid(format!(
            "--platform {platform}: a Windows base image needs its os.version (e.g. windows/amd64:10.0.20348.1)"
        )));
    };
    let mut config = json!({
        "architecture": platform.architecture, "os": platform.os, "os.version": os_version,
        "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": [],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    let draft = Draft {
        base: "scratch".into(),
        manifest: json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": {}, "layers": []}),
        config,
        media_type: manifest::OCI_MANIFEST.into(),
        config_type: MediaType::from(manifest::OCI_CONFIG),
        layer_type: OCI_LAYER_GZIP,
        history: true,
    };
    finish(draft, &mut [Pending::Input(input.clone(), true)], changes, options, target, progress)
}

/// A layer still to be written.
pub(crate) enum Pending<'a> {
    /// A directory or tar, and whether it is made a base layer.
    Input(LayerInput, bool),
    /// Entries from `feed`, made a base layer; `label` names them.
    Base { label: String, feed: &'a mut dyn FnMut(&mut dyn LayerSink) -> Result<()> },
}

/// Writes `layers`, the changed config and the manifest to `target`.
pub(crate) fn finish(
    mut draft: Draft,
    layers: &mut [Pending<'_>],
    changes: &Changes,
    options: &LayerOptions,
    target: &mut dyn Target,
    progress: &dyn Progress,
) -> Result<AppendReport> {
    let mut warnings = Vec::new();
    let mut reports = Vec::new();
    let mut new_layers = Vec::new();
    let dir = scratch_dir(target);
    for layer in layers.iter_mut() {
        let (built, source) = match layer {
            Pending::Input(input, base) => {
                (build_layer(input, *base, options, draft.layer_type, &dir)?, input.path().display().to_string())
            }
            Pending::Base { label, feed } => {
                (build_from(*feed, label, true, options, draft.layer_type, &dir)?, label.clone())
            }
        };
        warnings.extend(built.warnings.iter().cloned());
        reports.push(LayerReport {
            source,
            digest: built.descriptor.digest().to_string(),
            diff_id: built.diff_id.to_string(),
            size: built.descriptor.size(),
            entries: built.entries,
        });
        let diff_ids = draft.config.pointer_mut("/rootfs/diff_ids").and_then(|v| v.as_array_mut()).expect("checked");
        diff_ids.push(json!(built.diff_id.to_string()));
        new_layers.push(built.descriptor.clone());
        if !target.has_blob(&built.descriptor)? {
            target.put_built(&built.descriptor, built.file, progress)?;
        }
        progress.end(built.descriptor.digest(), "copied");
    }

    let config = &mut draft.config;
    apply_command(config, changes);
    apply_settings(config, changes)?;
    let created = options.source_date_epoch.map(rfc3339);
    if let Some(c) = &created {
        config["created"] = json!(c);
    }
    if draft.history {
        let history = config.as_object_mut().expect("an object").entry("history").or_insert_with(|| json!([]));
        for r in &reports {
            let name = Path::new(&r.source).file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
            let mut entry = json!({"created_by": format!("winlayer image {name}"), "comment": "winlayer"});
            if let Some(c) = &created {
                entry["created"] = json!(c);
            }
            history.as_array_mut().expect("an array").push(entry);
        }
    }

    // The command line containerd derives, and the pitfalls wincmdline knows.
    let image_command: ImageCommand = serde_json::from_value(config["config"].clone()).unwrap_or_default();
    let command_line = match resolve_command(&image_command, &Overrides::default(), Runtime::Containerd) {
        Ok(p) => {
            warnings.extend(p.warnings.iter().cloned());
            Some(p.line().map_err(|e| invalid(format!("the new command cannot be a Windows command line: {e}")))?)
        }
        Err(_) => None,
    };

    let config_bytes = canonical_json(config);
    let config_desc = DescriptorBuilder::default()
        .media_type(draft.config_type.clone())
        .digest(crate::digest::of(&config_bytes))
        .size(config_bytes.len() as u64)
        .build()
        .expect("all required fields set");
    if !target.has_blob(&config_desc)? {
        target.put_blob(
            &config_desc,
            None,
            &mut |out| out.write_all(&config_bytes).map_err(|e| Error::io("writing the config", e)),
            progress,
        )?;
    }

    let manifest_json = &mut draft.manifest;
    manifest_json["config"] = manifest::descriptor_json(&config_desc, None, &[]);
    let layers_json = manifest_json["layers"].as_array_mut().expect("a manifest has layers");
    layers_json.extend(new_layers.iter().map(|d| manifest::descriptor_json(d, None, &[])));
    let bytes = canonical_json(manifest_json);
    let new_manifest = Fetched { digest: crate::digest::of(&bytes), media_type: draft.media_type.clone(), bytes };
    let new_platform = manifest::Config::parse(&config_bytes, "the new config")?.platform();
    target.put_manifest(&new_manifest, &new_platform)?;
    Ok(AppendReport {
        base: draft.base,
        destination: target.name(),
        manifest: new_manifest.digest.to_string(),
        platform: new_platform,
        layers: reports,
        command_line,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(inner: Value) -> Value {
        json!({"os": "windows", "architecture": "amd64", "config": inner, "rootfs": {"type": "layers", "diff_ids": []}})
    }

    fn changed(base: Value, changes: Changes) -> Value {
        let mut c = config(base);
        apply_command(&mut c, &changes);
        apply_settings(&mut c, &changes).unwrap();
        c["config"].clone()
    }

    #[test]
    fn args_escaped_marks_exactly_a_pre_escaped_first_element() {
        let line = |s: &str| Some(Command::Line(s.into()));
        let exec = |a: &[&str]| Some(Command::Exec(a.iter().map(|s| s.to_string()).collect()));
        // A command line alone: one element, escaped.
        let c = changed(json!({}), Changes { cmd: line(r#"cmd /S /C "echo hi""#), ..Default::default() });
        assert_eq!(c["Cmd"], json!([r#"cmd /S /C "echo hi""#]));
        assert_eq!(c["ArgsEscaped"], json!(true));
        // Exec form: not escaped.
        let c = changed(json!({}), Changes { cmd: exec(&[r"C:\Program Files\app.exe", "a b"]), ..Default::default() });
        assert_eq!(c.get("ArgsEscaped"), None);
        // An escaped entrypoint line with exec-form arguments: containerd runs the line and
        // escapes the arguments after it.
        let c = changed(
            json!({}),
            Changes { entrypoint: line(r#""C:\app dir\x.exe" -v"#), cmd: exec(&["a b"]), ..Default::default() },
        );
        assert_eq!(
            (c["Entrypoint"].clone(), c["Cmd"].clone(), c["ArgsEscaped"].clone()),
            (json!([r#""C:\app dir\x.exe" -v"#]), json!(["a b"]), json!(true))
        );
        // A line as Cmd under an exec entrypoint is split into arguments.
        let c = changed(
            json!({}),
            Changes { entrypoint: exec(&["app.exe"]), cmd: line(r#"--name "a b""#), ..Default::default() },
        );
        assert_eq!(c["Cmd"], json!(["--name", "a b"]));
        assert_eq!(c.get("ArgsEscaped"), None);
        // A new entrypoint resets the base's command; keeping the base entrypoint keeps its
        // escapedness.
        let base = json!({"Entrypoint": ["cmd /S /C run.bat"], "Cmd": ["x"], "ArgsEscaped": true});
        let c = changed(base.clone(), Changes { entrypoint: exec(&["new.exe"]), ..Default::default() });
        assert_eq!(
            (c["Entrypoint"].clone(), c["Cmd"].clone(), c.get("ArgsEscaped").cloned()),
            (json!(["new.exe"]), Value::Null, None)
        );
        let c = changed(base, Changes { cmd: exec(&["y"]), ..Default::default() });
        assert_eq!((c["Cmd"].clone(), c["ArgsEscaped"].clone()), (json!(["y"]), json!(true)));
    }

    #[test]
    fn env_workdir_and_user_are_set() {
        let c = changed(
            json!({"Env": ["Path=C:\\Windows", "A=1"]}),
            Changes {
                env: vec!["PATH=C:\\app;C:\\Windows".into(), "B=2".into()],
                workdir: Some("C:\\app".into()),
                user: Some("ContainerUser".into()),
                ..Default::default()
            },
        );
        assert_eq!(c["Env"], json!(["PATH=C:\\app;C:\\Windows", "A=1", "B=2"]));
        assert_eq!((c["WorkingDir"].clone(), c["User"].clone()), (json!("C:\\app"), json!("ContainerUser")));
        let mut bad = config(json!({}));
        assert!(apply_settings(&mut bad, &Changes { env: vec!["NOEQUALS".into()], ..Default::default() }).is_err());
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn commands_parse_as_json_arrays_or_lines() {
        assert_eq!(Command::parse(r#"["a","b c"]"#).unwrap(), Command::Exec(vec!["a".into(), "b c".into()]));
        assert_eq!(Command::parse("a.exe /x").unwrap(), Command::Line("a.exe /x".into()));
        assert!(Command::parse("[1,2]").is_err());
        assert!(Command::parse("  ").is_err());
    }
}
