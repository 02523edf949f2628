//! `image convert --to cimfs` and `verify-conversion`: the same source converted in two work
//! directories gives the same bytes; a converted image with one changed byte fails
//! verification and an untouched one passes; sources that cannot be converted are refused by
//! name; and `--attach` through an in-process registry with the referrers API, one without it
//! (the tag schema), and registries that answer with hostile referrers indexes.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use winlayer_layers::converted;
use winlayer_oci::append::{self, Changes, LayerInput, LayerOptions};
use winlayer_oci::convert::{self, ARTIFACT_TYPE};
use winlayer_oci::layout::Layout;
use winlayer_oci::location::{Location, Reference};
use winlayer_oci::referrers;
use winlayer_oci::registry::{Options, Registry};
use winlayer_oci::store::{self, Attached, Silent, Source, Target};
use winlayer_oci::{Digest, Platform, digest};

fn platform() -> Platform {
    Platform::parse("windows/amd64").unwrap()
}

/// A two-layer Windows image (a base from a tree, an application layer) in the layout `at`,
/// named `app`.
fn source_layout(at: &Path) -> PathBuf {
    let tree = at.join("tree");
    fs::create_dir_all(tree.join("tools")).unwrap();
    fs::write(tree.join("tools/tool.exe"), b"MZ a tool").unwrap();
    fs::write(tree.join("tools/data.bin"), vec![7u8; 100_000]).unwrap();
    let app = at.join("app");
    fs::create_dir_all(app.join("bin")).unwrap();
    fs::write(app.join("bin/app.exe"), b"MZ the app").unwrap();
    let options = LayerOptions { owner: "BA".into(), source_date_epoch: Some(1_700_000_000) };
    let layout = at.join("src");
    let target = |tag: &str| {
        store::open_target(&Location::parse(&format!("oci:{}:{tag}", layout.display())).unwrap(), &Options::default())
            .unwrap()
    };
    let base_platform = Platform::parse("windows/amd64:10.0.20348.1").unwrap();
    append::from_scratch(
        &LayerInput::Dir(tree),
        &base_platform,
        &Changes::default(),
        &options,
        target("base").as_mut(),
        &Silent,
    )
    .unwrap();
    let mut base = open(&format!("oci:{}:base", layout.display()));
    append::append(
        base.as_mut(),
        &platform(),
        &[LayerInput::Dir(app)],
        &Changes::default(),
        &options,
        target("app").as_mut(),
        &Silent,
    )
    .unwrap();
    layout
}

fn open(location: &str) -> Box<dyn Source> {
    store::open_source(&Location::parse(location).unwrap(), &Options::default()).unwrap()
}

fn work(at: &Path, name: &str) -> PathBuf {
    let dir = at.join(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Verifies the converted image `converted` names, its source looked up beside it, in a work
/// directory `w` under `at`.
fn verify_alone(converted: &str, at: &Path) -> winlayer_oci::Result<convert::VerifyReport> {
    convert::verify(open(converted).as_mut(), None, &platform(), &work(at, "w"), &Silent)
}

#[test]
fn two_work_directories_give_the_same_bytes_and_verification_passes() {
    let t = tempfile::tempdir().unwrap();
    let layout = source_layout(t.path());
    let src = format!("oci:{}:app", layout.display());
    let mut reports = Vec::new();
    for (out, w) in [("out1", "w1"), ("out2", "elsewhere/w2")] {
        let mut to = store::open_target(
            &Location::parse(&format!("oci:{}", t.path().join(out).display())).unwrap(),
            &Options::default(),
        )
        .unwrap();
        let report =
            convert::convert(open(&src).as_mut(), &platform(), Some(to.as_mut()), None, &work(t.path(), w), &Silent)
                .unwrap();
        // The work directory is left empty.
        assert_eq!(fs::read_dir(t.path().join(w)).unwrap().count(), 0, "work left behind in {w}");
        reports.push(report);
    }
    let digests = |r: &convert::ConvertReport| {
        (r.manifest.clone(), r.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>())
    };
    assert_eq!(digests(&reports[0]), digests(&reports[1]));
    let r = &reports[0];
    assert_eq!(r.layers.len(), 2);
    // The blobs are the same bytes in both layouts, and the manifest is what was promised.
    for l in &r.layers {
        let hex = l.digest.strip_prefix("sha256:").unwrap();
        let a = fs::read(t.path().join("out1/blobs/sha256").join(hex)).unwrap();
        assert_eq!(a, fs::read(t.path().join("out2/blobs/sha256").join(hex)).unwrap());
        assert_eq!(digest::of(&a).to_string(), l.digest);
    }
    let hex = r.manifest.strip_prefix("sha256:").unwrap();
    let m: Value = serde_json::from_slice(&fs::read(t.path().join("out1/blobs/sha256").join(hex)).unwrap()).unwrap();
    let source: Value = {
        let mut s = open(&src);
        serde_json::from_slice(&s.top().unwrap().bytes).unwrap()
    };
    assert_eq!(m["mediaType"], json!("application/vnd.oci.image.manifest.v1+json"));
    assert_eq!(m["artifactType"], json!(ARTIFACT_TYPE));
    assert_eq!(m["config"], source["config"], "the config descriptor is the source's");
    assert_eq!(m["annotations"][convert::SOURCE_MANIFEST], json!(r.source_manifest));
    assert_eq!(m["annotations"][convert::FORMAT], json!("1"));
    assert!(m.get("subject").is_none(), "no subject without --attach");
    for (i, l) in m["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(l["mediaType"], json!(converted::MEDIA_TYPE));
        assert_eq!(l["annotations"][converted::SOURCE_DIGEST], source["layers"][i]["digest"]);
        assert_eq!(l["annotations"][converted::SOURCE_DIFF_ID], json!(r.layers[i].diff_id));
        assert_eq!(l["annotations"][converted::SOURCE_SIZE], json!(r.layers[i].source_size.to_string()));
    }
    // Verification converts again and agrees; the source is found through the annotation.
    let report = convert::verify(
        open(&format!("oci:{}", t.path().join("out1").display())).as_mut(),
        Some(open(&format!("oci:{}", layout.display())).as_ref()),
        &platform(),
        &work(t.path(), "w3"),
        &Silent,
    )
    .unwrap();
    assert!(report.ok && report.layers.iter().all(|l| l.ok), "{report:?}");
    // Without --source, the converted image's own layout is searched, and it lacks the source.
    let e = convert::verify(
        open(&format!("oci:{}", t.path().join("out1").display())).as_mut(),
        None,
        &platform(),
        &work(t.path(), "w4"),
        &Silent,
    )
    .expect_err("the source is not in out1")
    .to_string();
    assert!(e.contains(&r.source_manifest), "{e}");
}

/// Rewrites `layout`'s image `tag`: `edit` changes the manifest JSON; blobs it names must be
/// in the layout.
fn retag(layout: &Path, tag: &str, manifest: &Value) -> Digest {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let fetched = store::Fetched {
        digest: digest::of(&bytes),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes,
    };
    let mut target = Layout::open(layout).unwrap().image(Some(tag.into()));
    target.put_manifest(&fetched, &platform()).unwrap();
    fetched.digest
}

fn put_blob(layout: &Path, bytes: &[u8]) -> Value {
    let d = digest::of(bytes);
    fs::write(layout.join("blobs/sha256").join(d.digest()), bytes).unwrap();
    json!(d.to_string())
}

#[test]
fn one_changed_byte_in_a_converted_blob_fails_verification() {
    let t = tempfile::tempdir().unwrap();
    let layout = source_layout(t.path());
    let src = format!("oci:{}:app", layout.display());
    // Attached in the source's own layout: found there by subject, verified there.
    let mut attach_to = Layout::open(&layout).unwrap().image(None);
    let report =
        convert::convert(open(&src).as_mut(), &platform(), None, Some(&mut attach_to), &work(t.path(), "w"), &Silent)
            .unwrap();
    assert_eq!(report.destinations[0].how, "referrer, through index.json (no name)");
    let attached = format!("oci:{}@{}", layout.display(), report.manifest);
    let ok = verify_alone(&attached, t.path()).unwrap();
    assert!(ok.ok, "{ok:?}");
    // The source is still the layout's image `app`; the attached manifest is found as a conversion.
    let found = convert::conversions(open(&src).as_mut(), &report.source_manifest.parse().unwrap()).unwrap();
    assert_eq!((found.len(), found[0].digest.as_str(), found[0].converted_layers), (1, report.manifest.as_str(), 2));

    // One byte of the top layer's blob changed, the manifest fixed up to name the new blob.
    let hex = report.manifest.strip_prefix("sha256:").unwrap();
    let mut m: Value = serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    let top = report.layers[1].digest.strip_prefix("sha256:").unwrap().to_string();
    let mut blob = fs::read(layout.join("blobs/sha256").join(&top)).unwrap();
    let at = blob.len() / 2;
    blob[at] ^= 1;
    m["layers"][1]["digest"] = put_blob(&layout, &blob);
    retag(&layout, "tampered", &m);
    let bad = verify_alone(&format!("oci:{}:tampered", layout.display()), t.path()).unwrap();
    assert!(!bad.ok);
    assert_eq!(bad.layers.iter().map(|l| l.ok).collect::<Vec<_>>(), [true, false]);
    assert_eq!(bad.layers[1].derived.as_deref(), Some(format!("sha256:{top}").as_str()));
    assert_ne!(bad.manifest, bad.derived_manifest);

    // A layer dropped from the manifest: the missing one is a mismatch too.
    let mut short = m.clone();
    short["layers"].as_array_mut().unwrap().pop();
    let cut = digest::of(&serde_json::to_vec(&short).unwrap());
    retag(&layout, "short", &short);
    let e = verify_alone(&format!("oci:{}@{cut}", layout.display()), t.path());
    // The config lists two diffIDs, so the image does not even resolve.
    assert!(e.err().unwrap().to_string().contains("has 1 layers but its config 2 diff_ids"));

    // Not a converted image at all.
    let e = verify_alone(&src, t.path()).err().unwrap().to_string();
    assert!(e.contains("not a converted image"), "{e}");
    // A converted image whose subject and annotation disagree.
    let mut liar = m.clone();
    liar["annotations"][convert::SOURCE_MANIFEST] = json!(format!("sha256:{}", "e".repeat(64)));
    retag(&layout, "liar", &liar);
    let e = verify_alone(&format!("oci:{}:liar", layout.display()), t.path()).err().unwrap().to_string();
    assert!(e.contains("disagree"), "{e}");
}

#[test]
fn sources_that_cannot_be_converted_are_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let layout = source_layout(t.path());
    let mut s = open(&format!("oci:{}:app", layout.display()));
    let mut m: Value = serde_json::from_slice(&s.top().unwrap().bytes).unwrap();
    let config_hex = m["config"]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_string();
    let mut config: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(config_hex)).unwrap()).unwrap();
    let convert_tag = |tag: &str| {
        let mut to = Layout::open(&t.path().join("src")).unwrap().image(Some("never".into()));
        convert::convert(
            open(&format!("oci:{}:{tag}", layout.display())).as_mut(),
            &platform(),
            Some(&mut to),
            None,
            &work(t.path(), "w"),
            &Silent,
        )
        .expect_err("converted")
        .to_string()
    };
    // A config whose diffID is not the layer's tar.
    let mut wrong = config.clone();
    wrong["rootfs"]["diff_ids"][1] = json!(format!("sha256:{}", "d".repeat(64)));
    let bytes = serde_json::to_vec(&wrong).unwrap();
    let mut m2 = m.clone();
    m2["config"]["digest"] = put_blob(&layout, &bytes);
    m2["config"]["size"] = json!(bytes.len());
    retag(&layout, "wrong-diffid", &m2);
    let e = convert_tag("wrong-diffid");
    assert!(e.contains("layer 1 (sha256:") && e.contains("but the config's diff_ids[1] is sha256:dddd"), "{e}");
    // A foreign base layer.
    let foreign = format!("sha256:{}", "f".repeat(64));
    m["layers"][0] = json!({"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": foreign, "size": 5, "urls": ["https://example.com/x"]});
    config["rootfs"]["diff_ids"][0] = json!(foreign);
    let bytes = serde_json::to_vec(&config).unwrap();
    m["config"]["digest"] = put_blob(&layout, &bytes);
    m["config"]["size"] = json!(bytes.len());
    retag(&layout, "foreign", &m);
    let e = convert_tag("foreign");
    assert!(e.contains("layer 0 (sha256:ffff") && e.contains("foreign (nondistributable)"), "{e}");
    // A layer blob that is not what its descriptor says.
    let mut s = open(&format!("oci:{}:app", layout.display()));
    let mut m: Value = serde_json::from_slice(&s.top().unwrap().bytes).unwrap();
    let hex = m["layers"][1]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_string();
    let mut blob = fs::read(layout.join("blobs/sha256").join(&hex)).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    fs::write(layout.join("blobs/sha256").join(&hex), &blob).unwrap();
    m["annotations"] = json!({"x": "y"});
    retag(&layout, "corrupt", &m);
    let e = convert_tag("corrupt");
    assert!(e.contains(&format!("layer 1 (sha256:{hex})")), "{e}");
    // Nothing was left in the work directory.
    assert_eq!(fs::read_dir(t.path().join("w")).unwrap().count(), 0);
}

// ---- an in-process registry ------------------------------------------------------------

#[derive(Default)]
struct State {
    blobs: HashMap<String, Vec<u8>>,
    /// By digest: (media type, bytes).
    manifests: HashMap<String, (String, Vec<u8>)>,
    tags: HashMap<String, String>,
    uploads: usize,
    /// Requests seen: method and path.
    log: Vec<String>,
}

/// How the fake registry behaves.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// OCI 1.1: the referrers API, and `OCI-Subject` on pushes with a subject.
    Referrers,
    /// distribution 2.8: no referrers API (404).
    Plain,
}

struct Fake {
    addr: String,
    state: Arc<Mutex<State>>,
}

type Alter = dyn Fn(&str, &str) -> Option<(u16, Vec<(String, String)>, Vec<u8>)> + Send + Sync;

fn fake(kind: Kind, alter: Arc<Alter>) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = Arc::new(Mutex::new(State::default()));
    let s = state.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (s, alter) = (s.clone(), alter.clone());
            std::thread::spawn(move || serve_one(stream, kind, &s, &*alter));
        }
    });
    Fake { addr, state }
}

/// A request: method, path, headers (names in lower case), body.
type Request = (String, String, HashMap<String, String>, Vec<u8>);

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, headers, body))
}

fn serve_one(stream: TcpStream, kind: Kind, state: &Mutex<State>, alter: &Alter) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some((method, path, headers, body)) = read_request(&mut reader) else { return };
    state.lock().unwrap().log.push(format!("{method} {path}"));
    let (status, extra, out) =
        alter(&method, &path).unwrap_or_else(|| answer(kind, state, &method, &path, &headers, body));
    let mut out_stream = stream;
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", out.len());
    for (k, v) in &extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out_stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = out_stream.write_all(&out);
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn answer(
    kind: Kind,
    state: &Mutex<State>,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: Vec<u8>,
) -> Answer {
    let mut s = state.lock().unwrap();
    let none = |status: u16| (status, Vec::new(), Vec::new());
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path == "/v2/" {
        return none(200);
    }
    let rest = path.strip_prefix("/v2/team/app/").unwrap_or("");
    match (method, rest.split_once('/').unwrap_or((rest, ""))) {
        ("HEAD" | "GET", ("blobs", d)) => match s.blobs.get(d) {
            Some(b) => (200, vec![("Content-Type".into(), "application/octet-stream".into())], b.clone()),
            None => none(404),
        },
        ("POST", ("blobs", "uploads/")) => {
            s.uploads += 1;
            (202, vec![("Location".into(), format!("/v2/team/app/blobs/uploads/{}", s.uploads))], Vec::new())
        }
        ("PUT", ("blobs", _)) => {
            let d = query.split('&').find_map(|q| q.strip_prefix("digest=")).unwrap().replace("%3A", ":");
            assert_eq!(digest::of(&body).to_string(), d, "a blob pushed under another digest");
            s.blobs.insert(d, body);
            none(201)
        }
        ("PUT", ("manifests", reference)) => {
            let d = digest::of(&body).to_string();
            let media_type = headers.get("content-type").cloned().unwrap_or_default();
            let value: Value = serde_json::from_slice(&body).unwrap();
            let subject = value.pointer("/subject/digest").and_then(Value::as_str).map(str::to_string);
            s.manifests.insert(d.clone(), (media_type, body));
            if !reference.starts_with("sha256:") {
                s.tags.insert(reference.to_string(), d.clone());
            }
            let mut h = vec![("Docker-Content-Digest".to_string(), d)];
            if let (Kind::Referrers, Some(subject)) = (kind, subject) {
                h.push(("OCI-Subject".into(), subject));
            }
            (201, h, Vec::new())
        }
        ("GET" | "HEAD", ("manifests", reference)) => {
            let d = s.tags.get(reference).cloned().unwrap_or_else(|| reference.to_string());
            match s.manifests.get(&d) {
                Some((t, b)) => {
                    (200, vec![("Content-Type".into(), t.clone()), ("Docker-Content-Digest".into(), d)], b.clone())
                }
                None => none(404),
            }
        }
        ("GET", ("referrers", subject)) if kind == Kind::Referrers => {
            let mut listed: Vec<Value> = s
                .manifests
                .iter()
                .filter_map(|(d, (t, b))| {
                    let v: Value = serde_json::from_slice(b).ok()?;
                    (v.pointer("/subject/digest")?.as_str()? == subject).then(|| {
                        json!({"mediaType": t, "digest": d, "size": b.len(), "artifactType": v["artifactType"], "annotations": v["annotations"]})
                    })
                })
                .collect();
            listed.sort_by_key(|v| v["digest"].as_str().unwrap().to_string());
            let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": listed});
            (
                200,
                vec![("Content-Type".into(), "application/vnd.oci.image.index.v1+json".into())],
                serde_json::to_vec(&index).unwrap(),
            )
        }
        _ => none(404),
    }
}

fn options() -> Options {
    Options { insecure: true, attempts: 2, backoff: Duration::from_millis(5), ..Options::default() }
}

fn registry(addr: &str, tail: &str) -> Registry {
    Registry::new(Reference::parse(&format!("{addr}/team/app{tail}")).unwrap(), &options()).unwrap()
}

/// The source image pushed to the fake registry as team/app:v1.
fn pushed(fake: &Fake, at: &Path) {
    let layout = source_layout(at);
    let mut from = open(&format!("oci:{}:app", layout.display()));
    store::copy(from.as_mut(), &mut registry(&fake.addr, ":v1"), &platform(), &Silent).unwrap();
}

fn attach(fake: &Fake, at: &Path) -> winlayer_oci::Result<convert::ConvertReport> {
    let mut src = registry(&fake.addr, ":v1");
    let mut to = registry(&fake.addr, ":v1");
    convert::convert(&mut src, &platform(), None, Some(&mut to), &work(at, "w"), &Silent)
}

/// A fake registry of `kind` holding the source image as team/app:v1, and its conversion
/// attached to it.
fn attached(kind: Kind) -> (tempfile::TempDir, Fake, convert::ConvertReport) {
    let t = tempfile::tempdir().unwrap();
    let fake = fake(kind, Arc::new(|_, _| None));
    pushed(&fake, t.path());
    let report = attach(&fake, t.path()).unwrap();
    (t, fake, report)
}

#[test]
fn attach_through_the_referrers_api() {
    let (t, fake, report) = attached(Kind::Referrers);
    assert_eq!(report.destinations[0].how, format!("referrer, through {}", Attached::ReferrersApi));
    let state = fake.state.lock().unwrap();
    assert!(state.tags.keys().all(|t| !t.starts_with("sha256-")), "a tag-schema index on a registry with the API");
    assert!(state.log.contains(&format!("PUT /v2/team/app/manifests/{}", report.manifest)), "pushed by digest");
    drop(state);
    let subject: Digest = report.source_manifest.parse().unwrap();
    let found = convert::conversions(&mut registry(&fake.addr, ":v1"), &subject).unwrap();
    assert_eq!(found.iter().map(|c| c.digest.clone()).collect::<Vec<_>>(), std::slice::from_ref(&report.manifest));
    // Verified from the registry: the source is fetched by the subject's digest.
    let mut dst = registry(&fake.addr, &format!("@{}", report.manifest));
    let v = convert::verify(&mut dst, None, &platform(), &work(t.path(), "w"), &Silent).unwrap();
    assert!(v.ok, "{v:?}");
}

#[test]
fn attach_through_the_referrers_tag_schema() {
    let (t, fake, report) = attached(Kind::Plain);
    assert_eq!(report.destinations[0].how, format!("referrer, through {}", Attached::TagSchema));
    let subject: Digest = report.source_manifest.parse().unwrap();
    let tag = referrers::tag_for(&subject);
    let index = {
        let s = fake.state.lock().unwrap();
        let d = s.tags.get(&tag).expect("the tag-schema index").clone();
        s.manifests[&d].clone()
    };
    assert_eq!(index.0, "application/vnd.oci.image.index.v1+json");
    let listed = referrers::parse_index(&index.1, "index").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].digest.to_string(), listed[0].artifact_type.as_deref()),
        (report.manifest.clone(), Some(ARTIFACT_TYPE))
    );
    assert_eq!(listed[0].annotations[convert::SOURCE_MANIFEST], report.source_manifest);
    // Attached again: the same manifest, already listed; the index is not pushed again.
    let before = fake.state.lock().unwrap().log.len();
    let again = attach(&fake, t.path()).unwrap();
    assert_eq!(
        (again.manifest.as_str(), again.destinations[0].how.as_str()),
        (report.manifest.as_str(), format!("referrer, through {}", Attached::TagSchemaListed).as_str())
    );
    let log = fake.state.lock().unwrap().log[before..].to_vec();
    assert!(!log.iter().any(|l| l == &format!("PUT /v2/team/app/manifests/{tag}")), "{log:?}");
    // Another referrer of the same subject already listed: kept, ours added.
    let other = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", "9".repeat(64)), "size": 3, "artifactType": "application/x.signature"}]});
    {
        let mut s = fake.state.lock().unwrap();
        let bytes = serde_json::to_vec(&other).unwrap();
        let d = digest::of(&bytes).to_string();
        s.manifests.insert(d.clone(), ("application/vnd.oci.image.index.v1+json".into(), bytes));
        s.tags.insert(tag.clone(), d);
    }
    attach(&fake, t.path()).unwrap();
    let s = fake.state.lock().unwrap();
    let listed = referrers::parse_index(&s.manifests[&s.tags[&tag]].1, "index").unwrap();
    drop(s);
    assert_eq!(
        listed.iter().map(|r| r.artifact_type.clone().unwrap()).collect::<Vec<_>>(),
        ["application/x.signature", ARTIFACT_TYPE]
    );
    // Discovery falls back to the tag (the API answers 404) and skips other artifact types.
    let found = convert::conversions(&mut registry(&fake.addr, ":v1"), &subject).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].converted_layers, found[0].layers), (2, 2));
}

#[test]
fn hostile_referrers_indexes_are_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    // The tag-schema tag holds something that is not an index: never replaced.
    let fake_plain = fake(
        Kind::Plain,
        Arc::new(|method, path| {
            (method == "GET" && path.contains("/manifests/sha256-")).then(|| {
                (
                    200,
                    vec![("Content-Type".to_string(), "application/vnd.oci.image.index.v1+json".to_string())],
                    b"<html>".to_vec(),
                )
            })
        }),
    );
    pushed(&fake_plain, t.path());
    let e = attach(&fake_plain, t.path()).expect_err("attached over a hostile index").to_string();
    assert!(
        e.contains("team/app: the referrers index tagged sha256-")
            && e.contains("not JSON")
            && e.contains("not replaced"),
        "{e}"
    );
    assert!(!fake_plain.state.lock().unwrap().log.iter().any(|l| l.starts_with("PUT /v2/team/app/manifests/sha256-")));

    // A referrers API answering with something other than an index of well-formed descriptors.
    let answer: Arc<Mutex<(u16, Vec<u8>)>> = Arc::default();
    let fake_api = fake(Kind::Referrers, {
        let answer = answer.clone();
        Arc::new(move |method, path| {
            (method == "GET" && path.contains("/referrers/")).then(|| {
                let (status, body) = answer.lock().unwrap().clone();
                (status, vec![], body)
            })
        })
    });
    pushed(&fake_api, t.path());
    let subject = {
        let mut r = registry(&fake_api.addr, ":v1");
        r.top().unwrap().digest
    };
    let index = |manifests: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{manifests}]}}"#
        )
    };
    let cases: Vec<(u16, String, String)> = vec![
        (
            200,
            index(r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:nothex","size":1}"#),
            "manifests[0]".into(),
        ),
        (200, "<html>no</html>".into(), "not JSON".into()),
        (
            200,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.into(),
            "is not application/vnd.oci.image.index.v1+json".into(),
        ),
        (
            200,
            index(&format!(r#"{{"mediaType":"a","digest":"sha256:{}","size":"big"}}"#, "a".repeat(64))),
            "no size".into(),
        ),
        (200, "x".repeat(5 << 20), "over the 4194304-byte limit".into()),
        (500, "down".into(), "500".into()),
        (401, String::new(), "401".into()),
    ];
    for (status, body, needle) in cases {
        *answer.lock().unwrap() = (status, body.into_bytes());
        let e = convert::conversions(&mut registry(&fake_api.addr, ":v1"), &subject)
            .expect_err("a hostile referrers answer accepted")
            .to_string();
        assert!(e.contains(&format!("the referrers of {subject}")) && e.contains(&needle), "{status} {needle}: {e}");
    }
    // inspect lists no conversions it cannot read, says why, and inspects the image all the same.
    *answer.lock().unwrap() = (200, b"[]".to_vec());
    let facts = winlayer_oci::inspect::inspect(&mut registry(&fake_api.addr, ":v1"), &platform(), &Silent).unwrap();
    assert!(facts.conversions.is_empty() && !facts.layers.is_empty());
    let e = facts.conversions_error.unwrap_or_default();
    assert!(e.contains("not a JSON object"), "{e}");

    // An index listing, as a conversion of the image, a manifest whose subject is another.
    let fake_lie = fake(Kind::Referrers, Arc::new(|_, _| None));
    pushed(&fake_lie, t.path());
    let report = attach(&fake_lie, t.path()).unwrap();
    let subject: Digest = report.source_manifest.parse().unwrap();
    {
        let mut s = fake_lie.state.lock().unwrap();
        let (t, b) = s.manifests[&report.manifest].clone();
        let mut v: Value = serde_json::from_slice(&b).unwrap();
        v["subject"]["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
        let b = serde_json::to_vec(&v).unwrap();
        let d = digest::of(&b).to_string();
        s.manifests.insert(d, (t, b));
    }
    let liar = report.manifest.clone();
    let fake_lie2 = fake(Kind::Referrers, {
        let state = fake_lie.state.clone();
        let subject = subject.to_string();
        Arc::new(move |method, path| {
            (method == "GET" && path.ends_with(&format!("/referrers/{subject}"))).then(|| {
                let s = state.lock().unwrap();
                let other = s
                    .manifests
                    .iter()
                    .find(|(d, (_, b))| **d != liar && b.windows(8).any(|w| w == b"00000000"))
                    .map(|(d, (_, b))| (d.clone(), b.len()))
                    .unwrap();
                let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other.0, "size": other.1, "artifactType": ARTIFACT_TYPE}]});
                (200, vec![], serde_json::to_vec(&index).unwrap())
            })
        })
    });
    // The second fake serves the first's content for everything but the referrers list.
    {
        let copy: State = {
            let s = fake_lie.state.lock().unwrap();
            State { blobs: s.blobs.clone(), manifests: s.manifests.clone(), tags: s.tags.clone(), ..State::default() }
        };
        *fake_lie2.state.lock().unwrap() = copy;
    }
    let e = convert::conversions(&mut registry(&fake_lie2.addr, ":v1"), &subject).err().unwrap().to_string();
    assert!(e.contains("listed as a referrer, but its subject is not"), "{e}");
}
