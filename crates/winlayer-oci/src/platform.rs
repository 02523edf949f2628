//! Which manifest of an index a Windows host runs, as containerd chooses it.
//!
//! A platform is `os/architecture[/variant][:os.version]`. Without an `os.version` any build
//! matches. With one, the container's major and minor version must equal the host's; a host
//! older than Windows Server 2022 (build 20348) needs the exact build, a newer host runs any
//! build from 20348 up to its own (the stable ABI of the LTSC releases). Among matches the
//! newest `os.version` wins (compared numerically, part by part; containerd compares the
//! strings, which agrees for every version Microsoft has published).

use std::cmp::Ordering;
use std::fmt;

use crate::{Result, invalid};

/// The first build with the stable container ABI (Windows Server 2022).
const STABLE_ABI_BUILD: u32 = 20348;

/// A platform wanted (`--platform windows/amd64:10.0.20348.2113`) or offered by an index entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    /// `os`, e.g. `windows`.
    pub os: String,
    /// `architecture`, e.g. `amd64`.
    pub architecture: String,
    /// `variant`, rarely set for Windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `os.version`, e.g. `10.0.20348.2113`.
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform { os: "windows".into(), architecture: "amd64".into(), variant: None, os_version: None }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        if let Some(v) = &self.os_version {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// `major.minor.build[.revision]` as numbers.
fn version_parts(v: &str) -> Option<[u32; 4]> {
    let mut parts = [0u32; 4];
    let mut n = 0;
    for (i, p) in v.split('.').enumerate() {
        if i >= 4 {
            return None;
        }
        parts[i] = p.parse().ok()?;
        n = i + 1;
    }
    (n >= 3).then_some(parts)
}

impl Platform {
    /// Parses `os/architecture[/variant][:os.version]`.
    pub fn parse(text: &str) -> Result<Platform> {
        let bad = |why: &str| invalid(format!("platform {text:?}: {why} (want os/arch[/variant][:os.version])"));
        let (names, os_version) = match text.split_once(':') {
            Some((n, v)) => {
                version_parts(v).ok_or_else(|| bad("os.version is not major.minor.build[.revision]"))?;
                (n, Some(v.to_string()))
            }
            None => (text, None),
        };
        let parts: Vec<&str> = names.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("missing or empty part"));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version,
        })
    }

    /// Whether a host of this platform runs an image made for `image`.
    pub fn matches(&self, image: &Platform) -> bool {
        if self.os != image.os || self.architecture != image.architecture {
            return false;
        }
        if self.variant.is_some() && image.variant.is_some() && self.variant != image.variant {
            return false;
        }
        let (Some(host), Some(ctr)) = (&self.os_version, &image.os_version) else { return true };
        let (Some(host), Some(ctr)) = (version_parts(host), version_parts(ctr)) else { return false };
        if self.os != "windows" {
            return host == ctr;
        }
        if host[..2] != ctr[..2] {
            return false;
        }
        if host[2] < STABLE_ABI_BUILD {
            return host[2] == ctr[2];
        }
        (STABLE_ABI_BUILD..=host[2]).contains(&ctr[2])
    }

    /// Of `candidates`, the index of the one a host of this platform runs: a match with the
    /// newest `os.version` (the first such in the list on a tie).
    pub fn choose<'a>(&self, candidates: impl IntoIterator<Item = &'a Platform>) -> Option<usize> {
        let newest = |p: &Platform| p.os_version.as_deref().and_then(version_parts).unwrap_or_default();
        let mut best: Option<(usize, [u32; 4])> = None;
        for (i, p) in candidates.into_iter().enumerate() {
            if !self.matches(p) {
                continue;
            }
            let v = newest(p);
            if best.is_none_or(|(_, b)| v.cmp(&b) == Ordering::Greater) {
                best = Some((i, v));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn os_version_matching_follows_the_stable_abi_rule() {
        let rs5 = p("windows/amd64:10.0.17763.5458");
        assert!(rs5.matches(&p("windows/amd64:10.0.17763.1")), "same build, other revision");
        assert!(!rs5.matches(&p("windows/amd64:10.0.20348.1")), "newer build on an old host");
        assert!(!rs5.matches(&p("windows/amd64:10.0.14393.1")), "older build on a pre-2022 host");
        let ws2025 = p("windows/amd64:10.0.26100.1");
        assert!(ws2025.matches(&p("windows/amd64:10.0.20348.2113")), "ltsc2022 on a 2025 host");
        assert!(!ws2025.matches(&p("windows/amd64:10.0.17763.1")), "before the stable ABI");
        assert!(!ws2025.matches(&p("windows/amd64:10.0.26200.1")), "newer than the host");
        assert!(!ws2025.matches(&p("windows/arm64:10.0.26100.1")));
        assert!(!ws2025.matches(&p("linux/amd64")));
        assert!(p("windows/amd64").matches(&p("windows/amd64:10.0.17763.1")), "no version wanted");
        assert!(ws2025.matches(&p("windows/amd64")), "no version offered");
    }

    #[test]
    fn the_newest_compatible_build_is_chosen() {
        let offered = [
            p("linux/amd64"),
            p("windows/amd64:10.0.17763.6054"),
            p("windows/amd64:10.0.20348.2582"),
            p("windows/amd64:10.0.26100.1150"),
        ];
        assert_eq!(p("windows/amd64:10.0.26100.2").choose(&offered), Some(3));
        assert_eq!(p("windows/amd64:10.0.22631.1").choose(&offered), Some(2));
        assert_eq!(p("windows/amd64:10.0.17763.1").choose(&offered), Some(1));
        assert_eq!(p("windows/amd64").choose(&offered), Some(3));
        assert_eq!(p("windows/amd64:10.0.14393.1").choose(&offered), None);
    }

    #[test]
    fn malformed_platforms_are_refused() {
        for bad in ["windows", "windows/", "/amd64", "a/b/c/d", "windows/amd64:10.0", "windows/amd64:x.y.z"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(p("windows/amd64:10.0.20348.1").to_string(), "windows/amd64:10.0.20348.1");
    }
}
