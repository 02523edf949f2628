//! Wrong registry answers, from an in-process fake registry: each gives an error naming the
//! image, the blob and the reason, and a pull leaves the layout without anything half-written
//! (no index.json, no blob that was not checked, no temporary files).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use winlayer_oci::digest;
use winlayer_oci::location::{Location, Reference};
use winlayer_oci::registry::Options;
use winlayer_oci::store::{self, Silent};
use winlayer_oci::{Platform, Result};

/// What the fake registry answers.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (Content-Length still says all).
    cut: Option<usize>,
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply { status, headers: Vec::new(), body: body.into(), cut: None }
}

impl Reply {
    fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

struct Request {
    path: String,
    headers: HashMap<String, String>,
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// Serves `handler` on 127.0.0.1; the second argument counts requests so far.
fn serve(handler: Arc<Handler>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            let count = count.clone();
            std::thread::spawn(move || handle(stream, &*handler, &count));
        }
    });
    addr
}

fn handle(stream: TcpStream, handler: &Handler, count: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let path = parts.nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let n = count.fetch_add(1, Ordering::SeqCst);
    let r = handler(&Request { path, headers }, n);
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n", r.status, r.body.len());
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let body = &r.body[..r.cut.unwrap_or(r.body.len()).min(r.body.len())];
    let _ = out.write_all(body);
    let _ = out.flush();
}

/// A small Windows image: one layer, its config, its manifest.
struct Image {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

fn image(os: &str) -> Image {
    let layer = b"not parsed by a copy".to_vec();
    let config = serde_json::to_vec(&json!({
        "os": os, "architecture": "amd64", "os.version": "10.0.20348.1",
        "rootfs": {"type": "layers", "diff_ids": [digest::of(&layer).to_string()]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest::of(&layer).to_string(), "size": layer.len()}]
    }))
    .unwrap();
    Image { layer, config, manifest }
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Answers like a registry holding `img` as team/app:v1, unless `alter` answers first.
fn registry(img: Image, alter: impl Fn(&Request, usize, &Image) -> Option<Reply> + Send + Sync + 'static) -> String {
    let blobs = |img: &Image| -> HashMap<String, Vec<u8>> {
        [img.layer.clone(), img.config.clone()]
            .into_iter()
            .map(|b| (format!("/v2/team/app/blobs/{}", digest::of(&b)), b))
            .collect()
    };
    serve(Arc::new(move |req: &Request, n| {
        if let Some(r) = alter(req, n, &img) {
            return r;
        }
        if req.path == "/v2/team/app/manifests/v1" {
            return reply(200, img.manifest.clone()).header("Content-Type", MANIFEST_TYPE);
        }
        match blobs(&img).get(&req.path) {
            Some(b) => reply(200, b.clone()),
            None => reply(404, r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#),
        }
    }))
}

fn options() -> Options {
    Options { insecure: true, attempts: 3, backoff: Duration::from_millis(5), ..Options::default() }
}

/// Pulls addr/team/app:v1 into a new layout under `dir`.
fn pull(addr: &str, dir: &Path) -> Result<store::CopyReport> {
    let reference = Reference::parse(&format!("{addr}/team/app:v1")).unwrap();
    let mut source = store::open_source(&Location::Registry(reference), &options())?;
    let mut target =
        store::open_target(&Location::Layout { path: dir.join("layout"), tag: None, digest: None }, &options())?;
    store::copy(source.as_mut(), target.as_mut(), &Platform::parse("windows/amd64").unwrap(), &Silent)
}

/// Every file under the layout's blobs, and whether index.json exists.
fn left_behind(dir: &Path) -> (Vec<String>, bool) {
    let blobs = dir.join("layout/blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&blobs)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    (names, dir.join("layout/index.json").exists())
}

/// Pulls and expects an error containing every needle, and nothing half-written.
fn refused(addr: &str, needles: &[&str]) {
    let t = tempfile::tempdir().unwrap();
    let e = pull(addr, t.path()).err().unwrap_or_else(|| panic!("pull succeeded; wanted {needles:?}")).to_string();
    for n in needles {
        assert!(e.contains(n), "{e:?} lacks {n:?}");
    }
    let (names, index) = left_behind(t.path());
    assert!(!index, "index.json written after: {e}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "temporary files left: {names:?}");
}

#[test]
fn a_good_registry_is_pulled_and_the_layout_holds_every_blob() {
    let img = image("windows");
    let want: Vec<String> =
        [&img.layer, &img.config, &img.manifest].iter().map(|b| digest::of(b).digest().to_string()).collect();
    let addr = registry(img, |_, _, _| None);
    let t = tempfile::tempdir().unwrap();
    let report = pull(&addr, t.path()).unwrap();
    assert_eq!(report.blobs.iter().map(|b| b.outcome).collect::<Vec<_>>(), ["copied", "copied"]);
    let (mut names, index) = left_behind(t.path());
    let mut want = want;
    want.sort();
    names.sort();
    assert_eq!((names, index), (want, true));
}

#[test]
fn a_manifests_blobs_are_transferred_at_once() {
    // The config's second fetch (the copy's, after resolve's) is answered only once the
    // layer's download has begun: a copy sending one blob after the other cannot finish.
    let img = image("windows");
    let (layer, config) = (
        format!("/v2/team/app/blobs/{}", digest::of(&img.layer)),
        format!("/v2/team/app/blobs/{}", digest::of(&img.config)),
    );
    let layer_started = Arc::new(AtomicBool::new(false));
    let config_fetches = AtomicUsize::new(0);
    let addr = registry(img, move |req, _, _| {
        if req.path == layer {
            layer_started.store(true, Ordering::SeqCst);
        } else if req.path == config && config_fetches.fetch_add(1, Ordering::SeqCst) > 0 {
            for _ in 0..200 {
                if layer_started.load(Ordering::SeqCst) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            return Some(reply(500, "the config was fetched alone"));
        }
        None
    });
    let t = tempfile::tempdir().unwrap();
    let report = pull(&addr, t.path()).unwrap();
    assert_eq!(report.blobs.iter().map(|b| b.outcome).collect::<Vec<_>>(), ["copied", "copied"]);
    assert!(left_behind(t.path()).1, "no index.json");
}

#[test]
fn authentication_failures_name_the_reason() {
    // 401 with no challenge.
    let addr = registry(image("windows"), |_, _, _| Some(reply(401, "")));
    refused(&addr, &["team/app:v1: manifest", "401 Unauthorized", "no challenge"]);
    // A token that the registry keeps refusing.
    let realm = Arc::new(Mutex::new(String::new()));
    let r = realm.clone();
    let addr = registry(image("windows"), move |req, _, _| {
        if req.path.starts_with("/token") {
            return Some(reply(200, r#"{"token":"t0k3n"}"#));
        }
        let challenge =
            format!(r#"Bearer realm="{}",service="fake",scope="repository:team/app:pull""#, r.lock().unwrap());
        Some(
            reply(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                .header("WWW-Authenticate", &challenge),
        )
    });
    *realm.lock().unwrap() = format!("http://{addr}/token");
    refused(&addr, &["team/app:v1: manifest", "401 Unauthorized", "anonymous access refused", "UNAUTHORIZED"]);
    // The token endpoint itself refuses.
    let addr = registry(image("windows"), |req, _, _| {
        if req.path.starts_with("/token") {
            return Some(reply(401, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#));
        }
        let challenge = format!(r#"Bearer realm="http://{}/token""#, req.headers["host"]);
        Some(reply(401, "").header("WWW-Authenticate", &challenge))
    });
    refused(&addr, &["getting a token from http://", "401"]);
    // 403 with a token.
    let addr = registry(image("windows"), |req, _, _| {
        if req.path.starts_with("/token") {
            return Some(reply(200, r#"{"access_token":"abc"}"#));
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer abc") {
            let challenge = format!(r#"Bearer realm="http://{}/token""#, req.headers["host"]);
            return Some(reply(401, "").header("WWW-Authenticate", &challenge));
        }
        Some(reply(403, r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#))
    });
    refused(&addr, &["team/app:v1: manifest", "403 Forbidden: access denied", "DENIED"]);
    // 403 without any token.
    let addr = registry(image("windows"), |_, _, _| Some(reply(403, "")));
    refused(&addr, &["team/app:v1: manifest", "403 Forbidden"]);
}

#[test]
fn a_bearer_token_is_fetched_and_used() {
    let addr = registry(image("windows"), |req, _, _| {
        if req.path.starts_with("/token") {
            assert!(req.path.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{}", req.path);
            return Some(reply(200, r#"{"token":"good"}"#));
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer good") {
            let challenge =
                format!(r#"Bearer realm="http://{}/token",scope="repository:team/app:pull""#, req.headers["host"]);
            return Some(reply(401, "").header("WWW-Authenticate", &challenge));
        }
        None
    });
    let t = tempfile::tempdir().unwrap();
    pull(&addr, t.path()).unwrap();
}

#[test]
fn missing_throttled_and_failing_registries() {
    let addr = registry(image("windows"), |req, _, _| {
        req.path
            .contains("/manifests/")
            .then(|| reply(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#))
    });
    refused(&addr, &["team/app:v1: manifest", "404 Not Found", "MANIFEST_UNKNOWN"]);
    let addr = registry(image("windows"), |_, _, _| Some(reply(429, "").header("Retry-After", "0")));
    refused(&addr, &["team/app:v1: manifest", "429 Too Many Requests", "after 3 attempts"]);
    let addr = registry(image("windows"), |_, _, _| Some(reply(503, "")));
    refused(&addr, &["503 Service Unavailable", "after 3 attempts"]);
    // Throttled and failing once each: retried, then pulled.
    let addr = registry(image("windows"), |_, n, _| match n {
        0 => Some(reply(429, "")),
        1 => Some(reply(502, "")),
        _ => None,
    });
    let t = tempfile::tempdir().unwrap();
    pull(&addr, t.path()).unwrap();
}

#[test]
fn blobs_that_are_not_what_their_descriptor_says() {
    let layer_path = |img: &Image| format!("/v2/team/app/blobs/{}", digest::of(&img.layer));
    let addr = registry(image("windows"), move |req, _, img| {
        (req.path == layer_path(img)).then(|| reply(200, "other bytes, same length!"))
    });
    let img = image("windows");
    let layer = digest::of(&img.layer).to_string();
    refused(&addr, &["team/app:v1: blob", &layer, "longer than its descriptor"]);
    let addr = registry(image("windows"), move |req, _, img| {
        (req.path == format!("/v2/team/app/blobs/{}", digest::of(&img.layer)))
            .then(|| reply(200, vec![b'x'; img.layer.len()]))
    });
    refused(&addr, &[&layer, "digest mismatch"]);
    // Cut short, every time: resumed with Range, then given up.
    let addr = registry(image("windows"), move |req, _, img| {
        (req.path == format!("/v2/team/app/blobs/{}", digest::of(&img.layer))).then(|| {
            let mut r = reply(200, img.layer.clone());
            r.cut = Some(5);
            r
        })
    });
    refused(&addr, &[&layer, "truncated", "instead of resuming"]);
    // Cut short once, then resumed where it broke.
    let addr = registry(image("windows"), move |req, _, img| {
        (req.path == format!("/v2/team/app/blobs/{}", digest::of(&img.layer))).then(|| match req.headers.get("range") {
            Some(range) => {
                assert_eq!(range, "bytes=5-");
                reply(206, img.layer[5..].to_vec())
            }
            None => {
                let mut r = reply(200, img.layer.clone());
                r.cut = Some(5);
                r
            }
        })
    });
    let t = tempfile::tempdir().unwrap();
    pull(&addr, t.path()).unwrap();
}

#[test]
fn manifests_for_other_platforms_and_oversized_or_broken_documents() {
    let addr = registry(image("linux"), |_, _, _| None);
    refused(&addr, &["team/app:v1: manifest sha256:", "is for linux/amd64:10.0.20348.1, not windows/amd64"]);
    let addr = registry(image("windows"), |req, _, _| {
        (req.path == "/v2/team/app/manifests/v1").then(|| {
            let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
                {"mediaType": MANIFEST_TYPE, "digest": format!("sha256:{}", "a".repeat(64)), "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": MANIFEST_TYPE, "digest": format!("sha256:{}", "b".repeat(64)), "size": 10, "platform": {"os": "linux", "architecture": "arm64"}}]});
            reply(200, serde_json::to_vec(&index).unwrap()).header("Content-Type", "application/vnd.oci.image.index.v1+json")
        })
    });
    refused(
        &addr,
        &["team/app:v1: the index sha256:", "has no manifest for windows/amd64", "offers linux/amd64, linux/arm64"],
    );
    let addr = registry(image("windows"), |req, _, _| {
        (req.path == "/v2/team/app/manifests/v1")
            .then(|| reply(200, vec![b' '; (4 << 20) + 1]).header("Content-Type", MANIFEST_TYPE))
    });
    refused(&addr, &["team/app:v1: manifest", "over the 4194304-byte limit"]);
    let addr = registry(image("windows"), |req, _, img| {
        (req.path == "/v2/team/app/manifests/v1")
            .then(|| {
                let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
                let config = b"<html>not json</html>";
                m["config"]["digest"] = json!(digest::of(config).to_string());
                m["config"]["size"] = json!(config.len());
                reply(200, serde_json::to_vec(&m).unwrap()).header("Content-Type", MANIFEST_TYPE)
            })
            .or_else(|| {
                (req.path.ends_with(&digest::of(b"<html>not json</html>").to_string()))
                    .then(|| reply(200, "<html>not json</html>"))
            })
    });
    let config = digest::of(b"<html>not json</html>").to_string();
    refused(&addr, &["team/app:v1: config", &config, "the config is not JSON"]);
    // A manifest whose Docker-Content-Digest disagrees with its bytes.
    let addr = registry(image("windows"), |req, _, img| {
        (req.path == "/v2/team/app/manifests/v1").then(|| {
            reply(200, img.manifest.clone())
                .header("Content-Type", MANIFEST_TYPE)
                .header("Docker-Content-Digest", &format!("sha256:{}", "c".repeat(64)))
        })
    });
    refused(&addr, &["team/app:v1: manifest", "digest mismatch: Docker-Content-Digest says"]);
}

#[test]
fn foreign_layers_stay_references_and_are_never_fetched() {
    let foreign = format!("sha256:{}", "f".repeat(64));
    let f = foreign.clone();
    let addr = registry(image("windows"), move |req, _, img| {
        assert!(!req.path.contains(&f), "a foreign layer was fetched: {}", req.path);
        (req.path == "/v2/team/app/manifests/v1").then(|| {
            let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
            let layers = m["layers"].as_array_mut().unwrap();
            layers.insert(0, json!({"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": f, "size": 1 << 30,
                "urls": ["https://mcr.microsoft.com/v2/windows/nanoserver/blobs/x"]}));
            let mut c: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
            c["rootfs"]["diff_ids"].as_array_mut().unwrap().insert(0, json!(f));
            let config = serde_json::to_vec(&c).unwrap();
            m["config"]["digest"] = json!(digest::of(&config).to_string());
            m["config"]["size"] = json!(config.len());
            reply(200, serde_json::to_vec(&m).unwrap()).header("Content-Type", MANIFEST_TYPE)
        })
        .or_else(|| {
            let mut c: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
            c["rootfs"]["diff_ids"].as_array_mut().unwrap().insert(0, json!(f));
            let config = serde_json::to_vec(&c).unwrap();
            (req.path == format!("/v2/team/app/blobs/{}", digest::of(&config))).then(|| reply(200, config))
        })
    });
    let t = tempfile::tempdir().unwrap();
    let report = pull(&addr, t.path()).unwrap();
    let outcomes: Vec<_> = report.blobs.iter().map(|b| (b.digest.clone(), b.outcome)).collect();
    assert_eq!(outcomes[1], (foreign.clone(), "foreign"), "{outcomes:?}");
    assert!(!t.path().join("layout/blobs/sha256").join("f".repeat(64)).exists());
}

/// A registry taking pushes to team/app: `put` answers each blob PUT (by count), manifests
/// are recorded in `manifests`.
fn push_registry(put: impl Fn(usize) -> Reply + Send + Sync + 'static, manifests: Arc<Mutex<Vec<String>>>) -> String {
    let puts = Arc::new(AtomicUsize::new(0));
    serve(Arc::new(move |req: &Request, _| {
        let path = req.path.as_str();
        if path.starts_with("/v2/team/app/blobs/uploads/") && !path.contains("digest=") {
            return reply(202, "")
                .header("Location", &format!("/v2/team/app/blobs/uploads/{}", puts.load(Ordering::SeqCst)));
        }
        if path.contains("digest=") {
            return put(puts.fetch_add(1, Ordering::SeqCst));
        }
        if path.starts_with("/v2/team/app/manifests/") {
            manifests.lock().unwrap().push(path.to_string());
            return reply(201, "");
        }
        reply(404, "")
    }))
}

fn push(from: &Path, addr: &str) -> Result<store::CopyReport> {
    let reference = Reference::parse(&format!("{addr}/team/app:v1")).unwrap();
    let mut source =
        store::open_source(&Location::Layout { path: from.to_path_buf(), tag: None, digest: None }, &options())?;
    let mut target = store::open_target(&Location::Registry(reference), &options())?;
    store::copy(source.as_mut(), target.as_mut(), &Platform::parse("windows/amd64").unwrap(), &Silent)
}

#[test]
fn pushes_restart_broken_uploads_and_never_tag_a_half_pushed_image() {
    let t = tempfile::tempdir().unwrap();
    pull(&registry(image("windows"), |_, _, _| None), t.path()).unwrap();
    let layout = t.path().join("layout");
    // The first PUT fails with 500: a new upload, then accepted; the manifest goes last.
    let manifests = Arc::new(Mutex::new(Vec::new()));
    let addr = push_registry(|n| if n == 0 { reply(500, "") } else { reply(201, "") }, manifests.clone());
    let report = push(&layout, &addr).unwrap();
    assert_eq!(report.blobs.iter().map(|b| b.outcome).collect::<Vec<_>>(), ["copied", "copied"]);
    assert_eq!(*manifests.lock().unwrap(), ["/v2/team/app/manifests/v1"]);
    // A refused blob: the error names it and why, and no manifest is pushed.
    let manifests = Arc::new(Mutex::new(Vec::new()));
    let addr = push_registry(
        |_| {
            reply(
                400,
                r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}"#,
            )
        },
        manifests.clone(),
    );
    let e = push(&layout, &addr).unwrap_err().to_string();
    for needle in ["team/app:v1: pushing blob sha256:", "400 Bad Request", "DIGEST_INVALID"] {
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    }
    assert!(manifests.lock().unwrap().is_empty(), "a manifest was pushed after a refused blob");
}
