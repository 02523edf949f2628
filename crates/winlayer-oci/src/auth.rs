//! Registry credentials (`~/.docker/config.json`: `auths`, `credHelpers`, `credsStore`) and the
//! `WWW-Authenticate` challenges of the distribution token protocol.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::{Result, invalid};

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (`<token>` for an identity token).
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization: Basic …` value.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

#[derive(serde::Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// Where docker keeps its configuration: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The names docker may have stored `registry` under.
fn keys_for(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        return vec!["https://index.docker.io/v1/".into(), "index.docker.io".into(), "docker.io".into()];
    }
    vec![registry.into(), format!("https://{registry}"), format!("http://{registry}")]
}

/// The credentials docker's configuration holds for `registry`, if any; a configuration that
/// cannot be read is an error naming it (a silent anonymous fallback would hide it).
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    match docker_config_path() {
        Some(path) => lookup_in(&path, registry),
        None => Ok(None),
    }
}

/// The credentials the docker configuration at `path` holds for `registry`, if any.
pub fn lookup_in(path: &std::path::Path, registry: &str) -> Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::Error::io(format!("reading {}", path.display()), e)),
    };
    let config: DockerConfig =
        serde_json::from_str(&text).map_err(|e| invalid(format!("{}: not a docker config: {e}", path.display())))?;
    let keys = keys_for(registry);
    let helper = keys.iter().find_map(|k| config.cred_helpers.get(k)).or(config.creds_store.as_ref());
    if let Some(helper) = helper
        && let Some(c) = from_helper(helper, &keys[0])?
    {
        return Ok(Some(c));
    }
    let Some(entry) = keys.iter().find_map(|k| config.auths.get(k)) else { return Ok(None) };
    if let Some(token) = &entry.identity_token {
        return Ok(Some(Credentials { username: "<token>".into(), password: token.clone() }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials { username: u.clone(), password: p.clone() }));
    }
    let Some(auth) = &entry.auth else { return Ok(None) };
    let bad = || invalid(format!("{}: the auth of {registry} is not base64 of user:password", path.display()));
    let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (u, p) = raw.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credentials { username: u.into(), password: p.into() }))
}

/// Asks `docker-credential-<helper> get` for `server`'s credentials.
fn from_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let spawned =
        Command::new(&program).arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::Error::io(format!("running {program}"), e)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| crate::Error::io(format!("running {program}"), e))?;
    if !out.status.success() {
        // "credentials not found" is the helper's way of saying none.
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| invalid(format!("{program} get {server}: not a credential answer: {e}")))?;
    Ok(Some(Credentials { username: answer.username, password: answer.secret }))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm=…,service=…,scope=…`: get a token from the realm.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// `service`, passed back.
        service: Option<String>,
        /// `scope`, passed back.
        scope: Option<String>,
    },
    /// `Basic realm=…`: send the credentials with every request.
    Basic,
}

/// Parses `WWW-Authenticate` (one challenge; parameters quoted or not).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut map = BTreeMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        map.insert(key, value.to_string());
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer { realm: map.remove("realm")?, service: map.remove("service"), scope: map.remove("scope") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_quoted_and_bare() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into())
            })
        );
        assert_eq!(parse_challenge("Basic realm=\"x\""), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge("bearer realm=http://h/t"),
            Some(Challenge::Bearer { realm: "http://h/t".into(), service: None, scope: None })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn credentials_come_from_the_docker_config() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("config.json"),
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYTpzcw=="},"https://index.docker.io/v1/":{"username":"hub","password":"pw"}}}"#,
        )
        .unwrap();
        let path = t.path().join("config.json");
        let c = lookup_in(&path, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pa:ss"));
        assert_eq!(lookup_in(&path, "docker.io").unwrap().unwrap().username, "hub");
        assert_eq!(lookup_in(&path, "other.example").unwrap(), None);
        std::fs::write(&path, "{not json").unwrap();
        assert!(lookup_in(&path, "x").unwrap_err().to_string().contains("not a docker config"));
    }
}
