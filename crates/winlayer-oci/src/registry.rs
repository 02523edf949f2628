//! A registry client (the OCI distribution API) that streams every blob.
//!
//! Anonymous access, bearer tokens (the `WWW-Authenticate` challenge answered at its realm,
//! with docker's stored credentials when there are some) and basic authentication; retries
//! with backoff on 429, 5xx and dropped connections; downloads resumed with `Range` after a
//! broken connection and checked against their descriptor; uploads skipped when the blob is
//! there (HEAD) or mountable from another repository, else sent from a file in one `PUT`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::image::Descriptor;
use ureq::http::{self, Response};

use crate::auth::{self, Challenge, Credentials};
use crate::digest::{self, Digest, Hasher};
use crate::location::Reference;
use crate::manifest::{ACCEPT, OCI_INDEX};
use crate::platform::Platform;
use crate::referrers::{self, Referrer};
use crate::store::{Attached, Fetched, Progress, Source, Target};
use crate::{Error, MAX_MANIFEST, Result, invalid};
use winlayer_core::tap::Tap;

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// Plain HTTP instead of HTTPS (for a registry on localhost).
    pub insecure: bool,
    /// Credentials to use instead of docker's configuration.
    pub credentials: Option<Credentials>,
    /// Attempts per request before giving up on 429, 5xx and broken connections.
    pub attempts: u32,
    /// The first wait between attempts; doubled after each.
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { insecure: false, credentials: None, attempts: 5, backoff: Duration::from_millis(200) }
    }
}

/// A request body.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8], &'a str),
    /// A file sent whole, counted into the progress of `digest`.
    File(&'a Path, u64, &'a Digest, &'a dyn Progress),
}

/// One repository of one registry: a [`Source`] and a [`Target`].
#[derive(Clone)]
pub struct Registry {
    agent: ureq::Agent,
    reference: Reference,
    origin: String,
    credentials: Option<Credentials>,
    authorization: Option<String>,
    options: Options,
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The registry's own explanation in an error body (`errors[0].code: message`), if any.
fn explanation(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match value.pointer("/errors/0") {
        Some(e) => {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!(" ({code}: {message})")
        }
        None => String::new(),
    }
}

fn status_text(status: http::StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""))
}

fn retriable_status(status: http::StatusCode) -> bool {
    status.as_u16() == 429 || status.is_server_error()
}

fn retriable_error(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) | ureq::Error::Protocol(_))
}

/// Reads the start of an error body (registries explain there).
fn error_body(response: Response<ureq::Body>) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = response.into_body().into_reader().take(64 << 10).read_to_end(&mut out);
    out
}

impl Registry {
    /// A client for `reference`'s repository.
    pub fn new(reference: Reference, options: &Options) -> Result<Registry> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .user_agent(concat!("winlayer/", env!("CARGO_PKG_VERSION")))
            .build();
        let scheme = if options.insecure { "http" } else { "https" };
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => auth::lookup(&reference.registry)?,
        };
        Ok(Registry {
            agent: config.into(),
            origin: format!("{scheme}://{}", reference.api_host()),
            reference,
            credentials,
            authorization: None,
            options: options.clone(),
        })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.origin, self.reference.repository)
    }

    /// Makes a URL the registry returned (`Location`) absolute.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}/{}", self.origin, location.trim_start_matches('/'))
        }
    }

    fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> std::result::Result<Response<ureq::Body>, ureq::Error> {
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        if let Some(a) = &self.authorization {
            builder = builder.header("Authorization", a);
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        match body {
            Body::Empty => self.agent.run(builder.body(())?),
            Body::Bytes(bytes, content_type) => {
                self.agent.run(builder.header("Content-Type", *content_type).body(bytes.to_vec())?)
            }
            Body::File(path, size, digest, progress) => {
                let file = File::open(path).map_err(ureq::Error::Io)?;
                let mut reader = Tap::new(file, |bytes: &[u8]| progress.advance(digest, bytes.len() as u64));
                let request = builder
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", size.to_string())
                    .body(ureq::SendBody::from_reader(&mut reader))?;
                self.agent.run(request)
            }
        }
    }

    /// Sends a request, answering authentication challenges and retrying what can be retried;
    /// `what` names the operation in errors. Returns the final response whatever its status.
    fn send(
        &mut self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
        what: &str,
    ) -> Result<Response<ureq::Body>> {
        let attempts = self.options.attempts;
        self.send_tries(method, url, headers, body, what, attempts)
    }

    /// [`Registry::send`] with at most `attempts` attempts.
    fn send_tries(
        &mut self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
        what: &str,
        attempts: u32,
    ) -> Result<Response<ureq::Body>> {
        let mut wait = self.options.backoff;
        let mut answered: Option<String> = None;
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(&method, url, headers, &body);
            let response = match outcome {
                Err(e) if retriable_error(&e) && attempt < attempts => {
                    attempt += 1;
                    std::thread::sleep(wait);
                    wait *= 2;
                    continue;
                }
                Err(e) => {
                    return Err(invalid(format!("{what}: {e} (after {attempt} attempt(s))")));
                }
                Ok(r) => r,
            };
            let status = response.status();
            if status.as_u16() == 401 {
                let header =
                    response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
                let explained = explanation(&error_body(response));
                let challenge = header.as_deref().and_then(auth::parse_challenge);
                let key = header.clone().unwrap_or_default();
                if answered.as_deref() == Some(&key) || challenge.is_none() {
                    let why = match (&challenge, answered.is_some(), &self.credentials) {
                        (None, _, _) => "no challenge it can answer".to_string(),
                        (Some(_), true, Some(c)) => format!("the credentials of {} were refused", c.username),
                        (Some(_), true, None) => format!(
                            "anonymous access refused; no credentials for {} in {}",
                            self.reference.registry,
                            auth::docker_config_path().map_or("the docker config".into(), |p| p.display().to_string())
                        ),
                        (Some(_), false, _) => "refused".into(),
                    };
                    return Err(invalid(format!("{what}: 401 Unauthorized: {why}{explained}")));
                }
                self.authorize(challenge.expect("checked"), what)?;
                answered = Some(key);
                continue;
            }
            if retriable_status(status) && attempt < attempts {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(10)));
                drop(error_body(response));
                attempt += 1;
                std::thread::sleep(retry_after.unwrap_or(wait).max(wait));
                wait *= 2;
                continue;
            }
            if retriable_status(status) {
                let explained = explanation(&error_body(response));
                return Err(invalid(format!("{what}: {}{explained} after {attempt} attempts", status_text(status))));
            }
            return Ok(response);
        }
    }

    /// Answers a challenge: a token from the realm, or basic credentials.
    fn authorize(&mut self, challenge: Challenge, what: &str) -> Result<()> {
        match challenge {
            Challenge::Basic => match &self.credentials {
                Some(c) => {
                    self.authorization = Some(c.basic());
                    Ok(())
                }
                None => Err(invalid(format!(
                    "{what}: 401 Unauthorized: the registry wants a user name and password and docker's config has none for {}",
                    self.reference.registry
                ))),
            },
            Challenge::Bearer { realm, service, scope } => {
                let mut url = realm.clone();
                let mut sep = if url.contains('?') { '&' } else { '?' };
                for (k, v) in [("service", service), ("scope", scope)] {
                    if let Some(v) = v {
                        url.push_str(&format!("{sep}{k}={}", encode(&v)));
                        sep = '&';
                    }
                }
                let mut request = self.agent.get(&url);
                if let Some(c) = &self.credentials {
                    request = request.header("Authorization", c.basic());
                }
                let context = format!("{what}: getting a token from {realm}");
                let response = request.call().map_err(|e| invalid(format!("{context}: {e}")))?;
                let status = response.status();
                if !status.is_success() {
                    let explained = explanation(&error_body(response));
                    return Err(invalid(format!("{context}: {}{explained}", status_text(status))));
                }
                let mut bytes = Vec::new();
                response
                    .into_body()
                    .into_reader()
                    .take(1 << 20)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io(context.clone(), e))?;
                let value: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("{context}: the answer is not JSON: {e}")))?;
                let token = value
                    .get("token")
                    .or_else(|| value.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| invalid(format!("{context}: the answer has no token")))?;
                self.authorization = Some(format!("Bearer {token}"));
                Ok(())
            }
        }
    }

    /// Fails with the status and the registry's explanation unless the response is `ok`.
    fn expect(response: Response<ureq::Body>, ok: &[u16], what: &str) -> Result<Response<ureq::Body>> {
        let status = response.status();
        if ok.contains(&status.as_u16()) {
            return Ok(response);
        }
        let explained = explanation(&error_body(response));
        let hint = match status.as_u16() {
            403 => ": access denied",
            404 => ": not found",
            _ => "",
        };
        Err(invalid(format!("{what}: {}{hint}{explained}", status_text(status))))
    }

    /// Reads a manifest by tag or digest; `expected` is checked when given.
    fn manifest(&mut self, reference: &str, expected: Option<&Digest>, what: &str) -> Result<Fetched> {
        let tail = format!("manifests/{reference}");
        Ok(self.document(&tail, ACCEPT, expected, false, what)?.expect("missing documents are errors here"))
    }

    /// Reads a manifest, an index or a referrers list at `tail` (at most [`MAX_MANIFEST`]
    /// bytes); `expected` is checked when given, as is `Docker-Content-Digest`. With
    /// `missing_ok`, a 404 is `None`.
    fn document(
        &mut self,
        tail: &str,
        accept: &str,
        expected: Option<&Digest>,
        missing_ok: bool,
        what: &str,
    ) -> Result<Option<Fetched>> {
        let url = self.url(tail);
        let response = self.send(http::Method::GET, &url, &[("Accept", accept)], Body::Empty, what)?;
        if missing_ok && response.status().as_u16() == 404 {
            drop(error_body(response));
            return Ok(None);
        }
        let response = Self::expect(response, &[200], what)?;
        let media_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let header_digest =
            response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        if let Some(len) = response.body().content_length()
            && len > MAX_MANIFEST
        {
            return Err(invalid(format!("{what}: {len} bytes, over the {MAX_MANIFEST}-byte limit for manifests")));
        }
        let mut hasher = Hasher::new(Vec::new());
        io::copy(&mut response.into_body().into_reader().take(MAX_MANIFEST + 1), &mut hasher)
            .map_err(|e| Error::io(format!("{what}: reading"), e))?;
        if hasher.len() > MAX_MANIFEST {
            return Err(invalid(format!("{what}: over the {MAX_MANIFEST}-byte limit for manifests")));
        }
        let digest = hasher.digest();
        if let Some(expected) = expected
            && &digest != expected
        {
            return Err(invalid(format!("{what}: digest mismatch: the manifest hashes to {digest}")));
        }
        if let Some(said) = header_digest
            && said != digest.to_string()
            && tail.starts_with("manifests/")
        {
            return Err(invalid(format!(
                "{what}: digest mismatch: Docker-Content-Digest says {said}, the manifest hashes to {digest}"
            )));
        }
        Ok(Some(Fetched { bytes: hasher.into_inner(), media_type, digest }))
    }

    /// Pushes a manifest or index as `reference` (a tag or its digest); returns the
    /// `OCI-Subject` header of the answer, which a registry with the referrers API sends for a
    /// manifest with a `subject`.
    fn put_manifest_as(&mut self, reference: &str, manifest: &Fetched, what: &str) -> Result<Option<String>> {
        let url = self.url(&format!("manifests/{reference}"));
        let response =
            self.send(http::Method::PUT, &url, &[], Body::Bytes(&manifest.bytes, &manifest.media_type), what)?;
        let response = Self::expect(response, &[201, 200], what)?;
        let subject = response.headers().get("oci-subject").and_then(|v| v.to_str().ok()).map(str::to_string);
        drop(error_body(response));
        Ok(subject)
    }

    /// Streams a blob into `out`, resuming with `Range` after a broken connection.
    fn download(&mut self, desc: &Descriptor, out: &mut dyn Write, progress: &dyn Progress, what: &str) -> Result<()> {
        let url = self.url(&format!("blobs/{}", desc.digest()));
        let size = desc.size();
        let mut hasher = Hasher::new(out);
        let mut buf = vec![0u8; 1 << 16];
        progress.begin(desc.digest(), size, "pulling");
        let mut resumes = 0;
        loop {
            let offset = hasher.len();
            let range = format!("bytes={offset}-");
            let headers: &[(&str, &str)] = if offset > 0 { &[("Range", range.as_str())] } else { &[] };
            let response = self.send(http::Method::GET, &url, headers, Body::Empty, what)?;
            if offset > 0 && response.status().as_u16() != 206 {
                let status = status_text(response.status());
                return Err(invalid(format!(
                    "{what}: truncated: the connection broke after {offset} of {size} bytes, and the registry \
                     answered {status} instead of resuming (206)"
                )));
            }
            let response = Self::expect(response, &[200, 206], what)?;
            let mut reader = response.into_body().into_reader();
            let broken = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => {
                        let room = (size + 1 - hasher.len()).min(n as u64) as usize;
                        hasher.write_all(&buf[..room]).map_err(|e| Error::io(format!("{what}: writing"), e))?;
                        progress.advance(desc.digest(), room as u64);
                        if hasher.len() > size {
                            break None;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(e),
                }
            };
            match broken {
                Some(e) if resumes + 1 < self.options.attempts => {
                    resumes += 1;
                    let _ = e;
                    std::thread::sleep(self.options.backoff);
                }
                Some(e) => {
                    return Err(invalid(format!(
                        "{what}: truncated: the connection broke after {} of {size} bytes ({e}), {} attempts",
                        hasher.len(),
                        resumes + 1
                    )));
                }
                None => break,
            }
        }
        digest::verify(&hasher, desc.digest(), size, what)
    }

    /// Sends a file as a blob: a new upload, then one `PUT` with the digest. A `PUT` that
    /// breaks or meets 429/5xx starts over with a new upload (a broken session is not reused).
    fn upload(&mut self, desc: &Descriptor, path: &Path, progress: &dyn Progress, what: &str) -> Result<()> {
        let mut attempt = 1;
        loop {
            let url = self.url("blobs/uploads/");
            let response = self.send(http::Method::POST, &url, &[("Content-Length", "0")], Body::Empty, what)?;
            let response = Self::expect(response, &[202], what)?;
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| invalid(format!("{what}: the registry started an upload without a Location")))?;
            let location = self.absolute(location);
            drop(error_body(response));
            let sep = if location.contains('?') { '&' } else { '?' };
            let put = format!("{location}{sep}digest={}", encode(desc.digest().as_ref()));
            progress.begin(desc.digest(), desc.size(), "pushing");
            let body = Body::File(path, desc.size(), desc.digest(), progress);
            match self.send_tries(http::Method::PUT, &put, &[], body, what, 1) {
                // A refusal (4xx: a wrong digest, a denied push) is final.
                Ok(r) => return Self::expect(r, &[201], what).map(|r| drop(error_body(r))),
                Err(_) if attempt < self.options.attempts => {
                    attempt += 1;
                    std::thread::sleep(self.options.backoff);
                }
                Err(e) => return Err(invalid(format!("{e}; gave up after {attempt} uploads"))),
            }
        }
    }
}

impl Source for Registry {
    fn name(&self) -> String {
        self.reference.to_string()
    }

    fn top(&mut self) -> Result<Fetched> {
        let what = format!("{}: manifest", self.reference);
        let reference = self.reference.manifest_ref();
        let expected = self.reference.digest.clone();
        self.manifest(&reference, expected.as_ref(), &what)
    }

    fn small(&mut self, desc: &Descriptor) -> Result<Vec<u8>> {
        let what = format!("{}: blob {}", self.reference, desc.digest());
        if desc.size() > MAX_MANIFEST {
            return Err(invalid(format!(
                "{what}: {} bytes, over the {MAX_MANIFEST}-byte limit for manifests and configs",
                desc.size()
            )));
        }
        let media_type = desc.media_type().to_string();
        if media_type.contains("manifest") || media_type.contains("index") {
            let what = format!("{}: manifest {}", self.reference, desc.digest());
            let fetched = self.manifest(desc.digest().as_ref(), Some(desc.digest()), &what)?;
            if fetched.bytes.len() as u64 != desc.size() {
                return Err(invalid(format!(
                    "{what}: {} bytes, the descriptor says {}",
                    fetched.bytes.len(),
                    desc.size()
                )));
            }
            return Ok(fetched.bytes);
        }
        let mut out = Vec::new();
        self.download(desc, &mut out, &crate::store::Silent, &what)?;
        Ok(out)
    }

    fn blob(&mut self, desc: &Descriptor, out: &mut dyn Write, progress: &dyn Progress) -> Result<()> {
        let what = format!("{}: blob {}", self.reference, desc.digest());
        self.download(desc, out, progress, &what)
    }

    fn reference(&self) -> Option<&Reference> {
        Some(&self.reference)
    }

    fn fork(&self) -> Box<dyn Source + Send> {
        Box::new(self.clone())
    }

    fn sibling(&self, digest: &Digest) -> Box<dyn Source> {
        let mut other = self.clone();
        other.reference.tag = None;
        other.reference.digest = Some(digest.clone());
        Box::new(other)
    }

    fn referrers(&mut self, subject: &Digest) -> Result<Vec<Referrer>> {
        let repository = self.repository_name();
        let what = format!("{repository}: the referrers of {subject}");
        let accept = OCI_INDEX;
        if let Some(list) = self.document(&format!("referrers/{subject}"), accept, None, true, &what)? {
            return referrers::parse_index(&list.bytes, &what);
        }
        // 404: no referrers API; the tag schema, if anyone kept it.
        let tag = referrers::tag_for(subject);
        let what = format!("{repository}: the referrers index tagged {tag}");
        match self.document(&format!("manifests/{tag}"), ACCEPT, None, true, &what)? {
            Some(index) => referrers::parse_index(&index.bytes, &what),
            None => Ok(Vec::new()),
        }
    }
}

impl Registry {
    /// `host/repository`, for messages about the repository rather than one image.
    fn repository_name(&self) -> String {
        format!("{}/{}", self.reference.registry, self.reference.repository)
    }
}

impl Target for Registry {
    fn name(&self) -> String {
        self.reference.to_string()
    }

    fn has_blob(&mut self, desc: &Descriptor) -> Result<bool> {
        let what = format!("{}: checking for blob {}", self.reference, desc.digest());
        let url = self.url(&format!("blobs/{}", desc.digest()));
        let response = self.send(http::Method::HEAD, &url, &[], Body::Empty, &what)?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Self::expect(response, &[200, 404], &what).map(|_| false),
        }
    }

    fn mount(&mut self, desc: &Descriptor, from: &Reference) -> Result<bool> {
        if from.api_host() != self.reference.api_host() || from.repository == self.reference.repository {
            return Ok(false);
        }
        let what = format!("{}: mounting blob {} from {}", self.reference, desc.digest(), from.repository);
        let url = self.url(&format!(
            "blobs/uploads/?mount={}&from={}",
            encode(desc.digest().as_ref()),
            encode(&from.repository)
        ));
        let response = self.send(http::Method::POST, &url, &[("Content-Length", "0")], Body::Empty, &what)?;
        match response.status().as_u16() {
            201 => Ok(true),
            202 => {
                // The registry started an ordinary upload instead; cancel it.
                if let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok()) {
                    let location = self.absolute(location);
                    let _ = self.send(http::Method::DELETE, &location, &[], Body::Empty, &what);
                }
                Ok(false)
            }
            _ => Self::expect(response, &[201, 202], &what).map(|_| false),
        }
    }

    fn put_blob(
        &mut self,
        desc: &Descriptor,
        file: Option<PathBuf>,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let what = format!("{}: pushing blob {}", self.reference, desc.digest());
        if let Some(path) = file {
            return self.upload(desc, &path, progress, &what);
        }
        // From another registry: through a temporary file, checked on the way in.
        let temp = tempfile::NamedTempFile::new().map_err(|e| Error::io("creating a temporary file", e))?;
        let mut out = io::BufWriter::with_capacity(1 << 16, temp.as_file());
        fill(&mut out)?;
        out.flush().map_err(|e| Error::io(format!("{what}: spooling"), e))?;
        drop(out);
        self.upload(desc, temp.path(), progress, &what)
    }

    fn put_manifest(&mut self, manifest: &Fetched, _platform: &Platform) -> Result<()> {
        if let Some(d) = &self.reference.digest
            && d != &manifest.digest
        {
            return Err(invalid(format!(
                "{}: the manifest is {}, not the digest given",
                self.reference, manifest.digest
            )));
        }
        let what = format!("{}: pushing manifest {}", self.reference, manifest.digest);
        let reference = self.reference.tag.clone().unwrap_or_else(|| manifest.digest.to_string());
        self.put_manifest_as(&reference, manifest, &what).map(drop)
    }

    fn attach(&mut self, manifest: &Fetched, referrer: &Referrer, subject: &Digest) -> Result<Attached> {
        let repository = self.repository_name();
        let what = format!("{repository}: pushing referrer {}", manifest.digest);
        let said = self.put_manifest_as(manifest.digest.as_ref(), manifest, &what)?;
        if said.as_deref() == Some(subject.as_ref()) {
            return Ok(Attached::ReferrersApi);
        }
        // No referrers API: the tag schema's index, fetched (or started), extended, pushed back.
        let tag = referrers::tag_for(subject);
        let what = format!("{repository}: the referrers index tagged {tag}");
        let existing = self.document(&format!("manifests/{tag}"), ACCEPT, None, true, &what)?;
        let Some(bytes) = referrers::add(existing.as_ref().map(|f| f.bytes.as_slice()), referrer, &what)? else {
            return Ok(Attached::TagSchemaListed);
        };
        let index = Fetched { digest: digest::of(&bytes), media_type: OCI_INDEX.into(), bytes };
        self.put_manifest_as(&tag, &index, &format!("{what}: pushing it"))?;
        Ok(Attached::TagSchema)
    }

    fn fork(&self) -> Box<dyn Target + Send> {
        Box::new(self.clone())
    }
}
