//! Where an image lives: a registry reference (`host[:port]/repo[:tag][@digest]`) or an OCI
//! image layout directory (`oci:DIR[:TAG]`, or a path: `/…`, `./…`, `../…`, an existing
//! directory).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::digest::{self, Digest};
use crate::{Result, invalid};

/// Docker Hub's names and the host that serves them.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// An image in a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path, e.g. `library/nanoserver`.
    pub repository: String,
    /// The tag, when given (`latest` when neither tag nor digest is).
    pub tag: Option<String>,
    /// The digest, when given.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference as docker and containerd spell them.
    pub fn parse(text: &str) -> Result<Reference> {
        let bad = |why: &str| invalid(format!("image reference {text:?}: {why}"));
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(digest::parse(d, &format!("image reference {text:?}"))?)),
            None => (text, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (first.to_string(), path),
            _ => (DOCKER_HUB.to_string(), rest),
        };
        // A tag follows the last ':' after the last '/'.
        let last = path.rsplit('/').next().unwrap_or(path);
        let (repository, tag) = match last.rsplit_once(':') {
            Some((_, tag)) => (&path[..path.len() - tag.len() - 1], Some(tag.to_string())),
            None => (path, None),
        };
        if repository.is_empty() {
            return Err(bad("no repository"));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad("repository components are lower-case letters, digits and . _ -"));
        }
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && t.as_bytes()[0] != b'.'
                && t.as_bytes()[0] != b'-';
            if !ok {
                return Err(bad("a tag is up to 128 letters, digits, . _ - (not first . or -)"));
            }
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        let tag = if tag.is_none() && digest.is_none() { Some("latest".into()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The host the registry API is served on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_API } else { &self.registry }
    }

    /// What to ask the registry for: the digest when given, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A registry image or an image layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An image in a registry.
    Registry(Reference),
    /// An image in an OCI image layout; `tag` names it in `index.json`
    /// (`org.opencontainers.image.ref.name`).
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// The image's name in the layout, when given.
        tag: Option<String>,
        /// The manifest's digest (`oci:DIR@sha256:…`), for an image without a name.
        digest: Option<Digest>,
    },
}

impl Location {
    /// Parses a location: `oci:DIR[:TAG]`, a path (`/…`, `./…`, `../…`, an existing
    /// directory), or else a registry reference.
    pub fn parse(text: &str) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("oci:") {
            if let Some((path, at)) = rest.rsplit_once('@')
                && at.starts_with("sha256:")
                && !path.is_empty()
            {
                let digest = digest::parse(at, text)?;
                return Ok(Location::Layout { path: PathBuf::from(path), tag: None, digest: Some(digest) });
            }
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !p.is_empty() => (p, Some(t.to_string())),
                _ => (rest, None),
            };
            if path.is_empty() {
                return Err(invalid(format!("{text:?}: oci: needs a directory")));
            }
            return Ok(Location::Layout { path: PathBuf::from(path), tag, digest: None });
        }
        let looks_like_path = text.starts_with('/') || text.starts_with("./") || text.starts_with("../");
        if looks_like_path || Path::new(text).is_dir() || text == "." {
            return Ok(Location::Layout { path: PathBuf::from(text), tag: None, digest: None });
        }
        Reference::parse(text).map(Location::Registry)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Registry(r) => r.fmt(f),
            Location::Layout { path, digest: Some(d), .. } => write!(f, "oci:{}@{d}", path.display()),
            Location::Layout { path, tag: Some(t), .. } => write!(f, "oci:{}:{t}", path.display()),
            Location::Layout { path, tag: None, .. } => write!(f, "oci:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_docker_spells_them() {
        let r = Reference::parse("nanoserver").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/nanoserver", Some("latest"))
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        let d = "sha256:".to_string() + &"a".repeat(64);
        let r = Reference::parse(&format!("localhost/app@{d}")).unwrap();
        assert_eq!((r.tag, r.digest.unwrap().to_string()), (None, d));
        for bad in ["", "UPPER/case", "host:5000/", "a/b:", "a/b:-x", "a@sha256:zz"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layouts_and_references_are_told_apart() {
        assert_eq!(
            Location::parse("oci:out/img:v2").unwrap(),
            Location::Layout { path: "out/img".into(), tag: Some("v2".into()), digest: None }
        );
        assert_eq!(
            Location::parse("./img").unwrap(),
            Location::Layout { path: "./img".into(), tag: None, digest: None }
        );
        let d = "sha256:".to_string() + &"c".repeat(64);
        let at = Location::parse(&format!("oci:out/img@{d}")).unwrap();
        assert_eq!(at, Location::Layout { path: "out/img".into(), tag: None, digest: Some(d.parse().unwrap()) });
        assert_eq!(at.to_string(), format!("oci:out/img@{d}"));
        assert!(Location::parse("oci:out/img@sha256:zz").is_err());
        assert!(matches!(Location::parse("localhost:5000/app").unwrap(), Location::Registry(_)));
    }
}
