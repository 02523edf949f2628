//! Manifests, indexes and configs: media types, strict parsing, and JSON written the same way
//! every time.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

use crate::platform::Platform;
use crate::{Result, invalid};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every manifest and index type, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                          application/vnd.docker.distribution.manifest.list.v2+json, \
                          application/vnd.docker.distribution.manifest.v2+json";

/// Whether a layer of this media type is nondistributable ("foreign"): it is fetched from its
/// `urls`, never from a registry, and copied as a reference only.
pub fn is_foreign(media_type: &str) -> bool {
    media_type.contains(".foreign.") || media_type.contains(".nondistributable.")
}

/// Whether a layer media type is one winlayer reads (tar, gzip or zstd; OCI or Docker).
pub fn is_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// A parsed manifest or index.
pub enum Parsed {
    /// An image index or manifest list, with each entry's platform (read from the JSON itself:
    /// oci-spec 0.10 spells the descriptor's `os.version` as `os_version` and would lose it).
    Index(Box<ImageIndex>, Vec<Option<Platform>>),
    /// An image manifest.
    Manifest(Box<ImageManifest>),
}

/// Parses a manifest or index; `media_type` is what the server or the parent descriptor said
/// (the document's own `mediaType` must agree), `what` names it for errors.
pub fn parse(bytes: &[u8], media_type: Option<&str>, what: &str) -> Result<Parsed> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("{what}: not JSON: {e}")))?;
    let own = value.get("mediaType").and_then(|m| m.as_str());
    if let (Some(own), Some(said)) = (own, media_type)
        && own != said
        && said != "application/json"
        && !said.is_empty()
    {
        return Err(invalid(format!("{what}: served as {said} but says it is {own}")));
    }
    let kind = own
        .or(media_type)
        .map(str::to_string)
        .unwrap_or_else(|| if value.get("manifests").is_some() { OCI_INDEX.into() } else { OCI_MANIFEST.into() });
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(invalid(format!("{what}: schemaVersion is not 2 (Docker schema 1 manifests are not supported)")));
    }
    match kind.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let platforms = match value.get("manifests").and_then(|m| m.as_array()) {
                Some(entries) => entries.iter().map(|e| e.get("platform").and_then(platform_of)).collect(),
                None => Vec::new(),
            };
            let index: ImageIndex =
                serde_json::from_value(value).map_err(|e| invalid(format!("{what}: not an image index: {e}")))?;
            Ok(Parsed::Index(Box::new(index), platforms))
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: ImageManifest =
                serde_json::from_value(value).map_err(|e| invalid(format!("{what}: not an image manifest: {e}")))?;
            Ok(Parsed::Manifest(Box::new(m)))
        }
        other => Err(invalid(format!("{what}: media type {other} is neither an image manifest nor an index"))),
    }
}

/// A descriptor's `platform` object (`os`, `architecture`, `variant`, `os.version`).
pub fn platform_of(value: &serde_json::Value) -> Option<Platform> {
    let s = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(Platform {
        os: s("os")?,
        architecture: s("architecture")?,
        variant: s("variant"),
        os_version: s("os.version"),
    })
}

/// A descriptor as JSON, with a `platform` and annotations when given.
pub fn descriptor_json(
    desc: &Descriptor,
    platform: Option<&Platform>,
    annotations: &[(&str, &str)],
) -> serde_json::Value {
    let mut value = serde_json::json!({
        "mediaType": desc.media_type().to_string(),
        "digest": desc.digest().to_string(),
        "size": desc.size(),
    });
    if let Some(p) = platform {
        value["platform"] = serde_json::to_value(p).expect("a platform serializes");
    }
    if !annotations.is_empty() {
        value["annotations"] = annotations.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
    }
    value
}

/// Serializes with sorted object keys and no whitespace: the same value always gives the same
/// bytes (so the same digest), whatever order maps were built in.
pub fn canonical_json(value: &impl Serialize) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("image documents serialize");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// The image config's facts winlayer needs, checked: a JSON object with `os`, `architecture`
/// and `rootfs.diff_ids`.
#[derive(Debug)]
pub struct Config {
    /// The whole document, unknown fields included.
    pub value: serde_json::Value,
}

impl Config {
    /// Parses and checks a config blob.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Config> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("{what}: the config is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(invalid(format!("{what}: the config is not a JSON object")));
        }
        let config = Config { value };
        for field in ["os", "architecture"] {
            if config.value.get(field).and_then(|v| v.as_str()).is_none() {
                return Err(invalid(format!("{what}: the config has no {field:?}")));
            }
        }
        config.diff_ids().map_err(|e| invalid(format!("{what}: {e}")))?;
        Ok(config)
    }

    /// `os`/`architecture`/`variant` and `os.version`.
    pub fn platform(&self) -> Platform {
        let s = |k: &str| self.value.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Platform {
            os: s("os").unwrap_or_default(),
            architecture: s("architecture").unwrap_or_default(),
            variant: s("variant"),
            os_version: s("os.version"),
        }
    }

    /// `rootfs.diff_ids`.
    pub fn diff_ids(&self) -> std::result::Result<Vec<String>, String> {
        let ids = self
            .value
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
            .ok_or("the config has no rootfs.diff_ids")?;
        ids.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| "a diff_id is not a string".into())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_documents_are_refused_with_their_reason() {
        let cases: [(&[u8], Option<&str>, &str); 6] = [
            (b"{", None, "not JSON"),
            (br#"{"schemaVersion":1,"name":"x"}"#, None, "schemaVersion is not 2"),
            (br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None, "neither an image manifest nor an index"),
            (
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
                None,
                "not an image manifest",
            ),
            (
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                Some(OCI_MANIFEST),
                "served as",
            ),
            (
                br#"{"schemaVersion":2,"manifests":[{"mediaType":"x/y","digest":"sha256:1","size":1}]}"#,
                None,
                "not an image index",
            ),
        ];
        for (bytes, said, needle) in cases {
            let e = parse(bytes, said, "m").err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn configs_need_os_architecture_and_diff_ids() {
        assert!(Config::parse(b"<html>", "c").unwrap_err().to_string().contains("not JSON"));
        assert!(Config::parse(b"[]", "c").unwrap_err().to_string().contains("not a JSON object"));
        assert!(Config::parse(br#"{"os":"windows"}"#, "c").unwrap_err().to_string().contains("architecture"));
        let c = Config::parse(br#"{"os":"windows","architecture":"amd64","os.version":"10.0.20348.1","rootfs":{"type":"layers","diff_ids":["sha256:ab"]}}"#, "c").unwrap();
        assert_eq!(c.platform().to_string(), "windows/amd64:10.0.20348.1");
    }
}
