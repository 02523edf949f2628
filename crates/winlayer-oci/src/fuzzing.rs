//! The oracle shared by the `image_manifest` fuzz target and its corpus regression test: image
//! manifests, indexes, configs, platforms, references and referrers indexes.

use crate::location::{Location, Reference};
use crate::manifest::{self, Config, OCI_INDEX, OCI_MANIFEST, Parsed, canonical_json};
use crate::platform::Platform;
use crate::referrers::{self, Referrer};

/// Reads `bytes` as every document and name winlayer takes from a registry or a user.
/// Panics only on a real bug: a panic inside a parser, or a parsed value that does not read
/// back to itself.
pub fn check(bytes: &[u8]) {
    for said in [None, Some(OCI_MANIFEST), Some(OCI_INDEX), Some(manifest::DOCKER_LIST)] {
        match manifest::parse(bytes, said, "fuzz") {
            Ok(Parsed::Manifest(m)) => {
                let again = manifest::parse(&canonical_json(&m), said, "again");
                let Ok(Parsed::Manifest(again)) = again else { panic!("a manifest did not read back") };
                assert_eq!(again, m, "a manifest changed on the way back");
            }
            Ok(Parsed::Index(index, platforms)) => {
                assert_eq!(index.manifests().len(), platforms.len(), "one platform slot per entry");
                let offered: Vec<Platform> = platforms.into_iter().flatten().collect();
                for host in ["windows/amd64", "windows/amd64:10.0.26100.1", "windows/amd64:10.0.17763.1"] {
                    if let Some(i) = Platform::parse(host).expect("valid").choose(&offered) {
                        assert!(i < offered.len());
                    }
                }
            }
            Err(_) => {}
        }
    }
    // A referrers index that reads takes one more referrer, and lists it after the others.
    if let Ok(listed) = referrers::parse_index(bytes, "fuzz") {
        let mut one = listed.first().cloned().unwrap_or_else(|| Referrer {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "0".repeat(64)).parse().expect("a digest"),
            size: 0,
            artifact_type: None,
            annotations: Default::default(),
        });
        one.digest = format!("sha256:{}", "f".repeat(64)).parse().expect("a digest");
        match referrers::add(Some(bytes), &one, "fuzz").expect("a referrers index that reads takes a referrer") {
            Some(grown) => {
                let again = referrers::parse_index(&grown, "again").expect("an index written reads back");
                assert_eq!(
                    again.split_last(),
                    Some((&one, listed.as_slice())),
                    "the referrer added last, the rest kept"
                );
            }
            None => assert!(listed.iter().any(|r| r.digest == one.digest), "an index said to list it already"),
        }
    }
    if let Ok(config) = Config::parse(bytes, "fuzz") {
        let _ = config.platform().to_string();
    }
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(p) = Platform::parse(text) {
        assert_eq!(Platform::parse(&p.to_string()).expect("a platform reads back"), p);
    }
    if let Ok(r) = Reference::parse(text) {
        assert_eq!(Reference::parse(&r.to_string()).expect("a reference reads back"), r);
    }
    let _ = Location::parse(text);
}
