//! Referrers (OCI distribution 1.1): manifests that name another manifest as their `subject`,
//! such as winlayer's converted images.
//!
//! A registry with the referrers API lists them at `GET /v2/<name>/referrers/<digest>` (an
//! image index) and tells a client that pushed a manifest with a `subject` by answering with an
//! `OCI-Subject` header. A registry without it (Debian's distribution 2.8, for one) gets the
//! *referrers tag schema*: the client keeps an image index tagged `sha256-<hex of the subject's
//! digest>` listing every referrer, and updates it after each push. An image layout lists a
//! referrer in `index.json` without a name; it is found by reading the manifests there.
//!
//! Every index read here is checked (JSON, an image index, each entry a well-formed descriptor)
//! and an index that is something else is never overwritten.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::digest::{self, Digest};
use crate::manifest::{OCI_INDEX, canonical_json};
use crate::{Result, invalid};

/// One manifest that names a subject, as an index lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Referrer {
    /// The manifest's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its `artifactType`, when the index says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The annotations the index copies from the manifest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Referrer {
    /// The descriptor as an index entry lists it.
    pub fn entry(&self) -> Value {
        let mut v = json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size});
        if let Some(t) = &self.artifact_type {
            v["artifactType"] = json!(t);
        }
        if !self.annotations.is_empty() {
            v["annotations"] = json!(self.annotations);
        }
        v
    }
}

/// The tag of the referrers tag schema for `subject`: `<algorithm>-<hex>`.
pub fn tag_for(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_ref(), subject.digest())
}

/// Reads a referrers index (an image index); `what` names it for errors.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<Vec<Referrer>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("{what}: not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid(format!("{what}: not a JSON object, so not an image index")));
    };
    if object.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid(format!("{what}: schemaVersion is not 2, so not an image index")));
    }
    match object.get("mediaType") {
        None => {}
        Some(Value::String(t)) if t == OCI_INDEX => {}
        Some(other) => {
            return Err(invalid(format!("{what}: media type {other} is not {OCI_INDEX}")));
        }
    }
    let Some(entries) = object.get("manifests").and_then(Value::as_array) else {
        return Err(invalid(format!("{what}: no manifests array, so not an image index")));
    };
    entries.iter().enumerate().map(|(i, e)| referrer(e, &format!("{what}: manifests[{i}]"))).collect()
}

/// One index entry, checked.
fn referrer(entry: &Value, what: &str) -> Result<Referrer> {
    let text = |k: &str| -> Result<Option<String>> {
        match entry.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(format!("{what}: {k} is {other}, not a string"))),
        }
    };
    if !entry.is_object() {
        return Err(invalid(format!("{what}: not a descriptor (a JSON object)")));
    }
    let media_type = text("mediaType")?.ok_or_else(|| invalid(format!("{what}: no mediaType")))?;
    let digest_text = text("digest")?.ok_or_else(|| invalid(format!("{what}: no digest")))?;
    let digest = digest::parse(&digest_text, what)?;
    let size = entry
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(format!("{what}: no size (a non-negative integer)")))?;
    let artifact_type = text("artifactType")?;
    let mut annotations = BTreeMap::new();
    match entry.get("annotations") {
        None => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = v.as_str().ok_or_else(|| invalid(format!("{what}: annotation {k} is {v}, not a string")))?;
                annotations.insert(k.clone(), v.to_string());
            }
        }
        Some(other) => return Err(invalid(format!("{what}: annotations is {other}, not an object"))),
    }
    Ok(Referrer { media_type, digest, size, artifact_type, annotations })
}

/// `existing` (the index tagged for the subject, if any) with `referrer` added: `None` when it
/// lists the referrer already. An existing document that is not a referrers index is an error
/// (it is not replaced).
pub fn add(existing: Option<&[u8]>, referrer: &Referrer, what: &str) -> Result<Option<Vec<u8>>> {
    let mut index = match existing {
        Some(bytes) => {
            let listed = parse_index(bytes, what).map_err(|e| {
                invalid(format!("{e}; it is not replaced (remove the tag if it is not a referrers index)"))
            })?;
            if listed.iter().any(|r| r.digest == referrer.digest) {
                return Ok(None);
            }
            serde_json::from_slice::<Value>(bytes).expect("parsed above")
        }
        None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    index["manifests"].as_array_mut().expect("checked by parse_index").push(referrer.entry());
    if index.get("mediaType").is_none() {
        index["mediaType"] = json!(OCI_INDEX);
    }
    Ok(Some(canonical_json(&index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(hex: char) -> Referrer {
        Referrer {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: format!("sha256:{}", hex.to_string().repeat(64)).parse().unwrap(),
            size: 10,
            artifact_type: Some("application/x.test".into()),
            annotations: [("k".to_string(), "v".to_string())].into(),
        }
    }

    #[test]
    fn the_tag_names_the_subject() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(tag_for(&d), format!("sha256-{}", "ab".repeat(32)));
    }

    #[test]
    fn an_index_is_started_extended_and_left_alone_when_it_lists_the_referrer() {
        let first = add(None, &one('a'), "t").unwrap().unwrap();
        assert_eq!(parse_index(&first, "t").unwrap(), vec![one('a')]);
        assert_eq!(add(Some(&first), &one('a'), "t").unwrap(), None);
        let second = add(Some(&first), &one('b'), "t").unwrap().unwrap();
        assert_eq!(parse_index(&second, "t").unwrap(), vec![one('a'), one('b')]);
        // Other fields of an existing index survive.
        let other = br#"{"schemaVersion":2,"manifests":[],"annotations":{"x":"y"}}"#;
        let grown: Value = serde_json::from_slice(&add(Some(other), &one('c'), "t").unwrap().unwrap()).unwrap();
        assert_eq!((grown["annotations"]["x"].clone(), grown["mediaType"].clone()), (json!("y"), json!(OCI_INDEX)));
    }

    #[test]
    fn hostile_indexes_are_refused_and_never_replaced() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let cases: Vec<(String, &str)> = vec![
            ("<html>".into(), "not JSON"),
            ("[]".into(), "not a JSON object"),
            (r#"{"schemaVersion":1,"manifests":[]}"#.into(), "schemaVersion is not 2"),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#.into(),
                "is not application/vnd.oci.image.index.v1+json",
            ),
            (r#"{"schemaVersion":2}"#.into(), "no manifests array"),
            (r#"{"schemaVersion":2,"manifests":[7]}"#.into(), "manifests[0]: not a descriptor"),
            (format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}","size":1}}]}}"#), "no mediaType"),
            (r#"{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"md5:00","size":1}]}"#.into(), "digest"),
            (format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"a","digest":"{d}","size":-1}}]}}"#), "no size"),
            (
                format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"a","digest":"{d}","size":1,"artifactType":3}}]}}"#
                ),
                "artifactType is 3",
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"a","digest":"{d}","size":1,"annotations":{{"k":1}}}}]}}"#
                ),
                "annotation k is 1",
            ),
        ];
        for (doc, needle) in cases {
            let e = parse_index(doc.as_bytes(), "tag x").unwrap_err().to_string();
            assert!(e.starts_with("tag x") && e.contains(needle), "{doc}: {e:?} lacks {needle:?}");
            let e = add(Some(doc.as_bytes()), &one('a'), "tag x").unwrap_err().to_string();
            assert!(e.contains("it is not replaced"), "{e}");
        }
    }
}
