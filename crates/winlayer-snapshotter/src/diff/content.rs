//! A client of containerd's content service (`containerd.services.content.v1.Content`) on
//! containerd's own socket: blobs read as a blocking stream that checks its digest and size as
//! it goes, and blobs written and committed under a digest.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256, Sha512};
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Status};

use crate::proto::content::{self as pb, content_client::ContentClient};

/// The gRPC metadata key carrying the namespace, as containerd's clients send it.
pub const NAMESPACE_KEY: &str = "containerd-namespace";

/// containerd's content service at an address (a unix socket, or a named pipe on Windows).
#[derive(Clone, Debug)]
pub struct ContentStore {
    address: String,
}

impl ContentStore {
    /// The store of the containerd listening on `address`.
    pub fn new(address: &str) -> Self {
        ContentStore { address: address.to_owned() }
    }

    /// Where containerd is expected.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn connect(&self) -> Result<ContentClient<Channel>, Status> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Status::unavailable(format!("containerd's content service at {}: {e}", self.address))
        };
        let endpoint = Endpoint::try_from("http://containerd.invalid").map_err(|e| unavailable(&e))?;
        let address = self.address.clone();
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| dial(address.clone())))
            .await
            .map_err(|e| unavailable(&io_cause(&e)))?;
        Ok(ContentClient::new(channel).max_decoding_message_size(64 << 20))
    }

    /// Starts reading blob `digest` of `size` bytes in `namespace`. The first answer is
    /// awaited, so a missing blob or an unreachable containerd is an error here.
    pub async fn read(&self, namespace: Option<&str>, digest: &str, size: i64) -> Result<BlobReader, Status> {
        let verifier = Verifier::new(digest, size)?;
        let mut client = self.connect().await?;
        let request =
            with_namespace(pb::ReadContentRequest { digest: digest.to_owned(), offset: 0, size: 0 }, namespace)?;
        let mut stream = client.read(request).await.map_err(|s| self.named(s))?.into_inner();
        let first = stream.message().await.map_err(|s| self.named(s))?;
        let (sender, chunks) = mpsc::channel(4);
        let store = self.clone();
        tokio::spawn(async move {
            let mut next = first;
            while let Some(message) = next {
                if sender.send(Ok(message.data)).await.is_err() {
                    return;
                }
                next = match stream.message().await {
                    Ok(m) => m,
                    Err(s) => {
                        let _ = sender.send(Err(store.named(s))).await;
                        return;
                    }
                };
            }
        });
        Ok(BlobReader::new(chunks, verifier))
    }

    /// Writes `len` bytes from `data` as a blob under `reference` and commits it with the
    /// digest `expected` and `labels`. A blob already there counts as written.
    pub async fn write(
        &self,
        namespace: Option<&str>,
        reference: &str,
        mut data: impl Read + Send + 'static,
        len: u64,
        expected: &str,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<(), Status> {
        let mut client = self.connect().await?;
        let (sender, requests) = mpsc::channel::<pb::WriteContentRequest>(4);
        let base = pb::WriteContentRequest {
            r#ref: reference.to_owned(),
            total: len as i64,
            expected: expected.to_owned(),
            ..Default::default()
        };
        let first = pb::WriteContentRequest { action: pb::WriteAction::Stat as i32, ..base.clone() };
        let _ = sender.send(first).await;
        let request = with_namespace(tokio_stream::wrappers::ReceiverStream::new(requests), namespace)?;
        let mut answers = match client.write(request).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(self.named(s)),
        };
        let status = match answers.message().await {
            Ok(status) => status,
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(self.named(s)),
        };
        // Resuming an interrupted write of the same reference would need its bytes; start over.
        let mut offset = status.map_or(0, |s| s.offset.max(0) as u64);
        if offset > len {
            offset = 0;
        }
        let feeder = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut skip = io::copy(&mut (&mut data).take(offset), &mut io::sink())?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = data.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                let message = pb::WriteContentRequest {
                    action: pb::WriteAction::Write as i32,
                    offset: skip as i64,
                    data: buf[..n].to_vec(),
                    ..base.clone()
                };
                skip += n as u64;
                if sender.blocking_send(message).is_err() {
                    return Ok(());
                }
            }
            let commit =
                pb::WriteContentRequest { action: pb::WriteAction::Commit as i32, offset: skip as i64, labels, ..base };
            let _ = sender.blocking_send(commit);
            Ok(())
        });
        let mut result = Ok(());
        loop {
            match answers.message().await {
                Ok(Some(a)) if a.action == pb::WriteAction::Commit as i32 => break,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(s) if s.code() == Code::AlreadyExists => break,
                Err(s) => {
                    result = Err(self.named(s));
                    break;
                }
            }
        }
        drop(answers);
        match feeder.await {
            Ok(Ok(())) => result,
            Ok(Err(e)) => Err(Status::internal(format!("reading the layer written: {e}"))),
            Err(e) => Err(Status::internal(format!("writing task failed: {e}"))),
        }
    }

    /// A status from containerd, its message saying where it came from.
    fn named(&self, s: Status) -> Status {
        let code = match s.code() {
            // A transport failure surfaces as Unknown or Unavailable: containerd went away.
            Code::Unknown if s.message().contains("transport") => Code::Unavailable,
            c => c,
        };
        Status::new(code, format!("containerd's content service at {}: {}", self.address, s.message()))
    }
}

/// The deepest cause of a connection error (tonic's own message is only "transport error").
fn io_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = c.to_string();
        cause = c.source();
    }
    text
}

fn with_namespace<T>(message: T, namespace: Option<&str>) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    if let Some(ns) = namespace {
        let value = MetadataValue::try_from(ns)
            .map_err(|_| Status::invalid_argument(format!("namespace {ns:?} is not a valid metadata value")))?;
        request.metadata_mut().insert(NAMESPACE_KEY, value);
    }
    Ok(request)
}

#[cfg(unix)]
async fn dial(address: String) -> io::Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>> {
    let path = address.strip_prefix("unix://").unwrap_or(&address).to_owned();
    Ok(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
}

#[cfg(windows)]
async fn dial(
    address: String,
) -> io::Result<hyper_util::rt::TokioIo<tokio::net::windows::named_pipe::NamedPipeClient>> {
    let name = address.strip_prefix("npipe://").unwrap_or(&address).to_owned();
    Ok(hyper_util::rt::TokioIo::new(tokio::net::windows::named_pipe::ClientOptions::new().open(name)?))
}

/// A running digest of one of the algorithms containerd accepts.
#[derive(Clone)]
pub enum Hasher {
    /// `sha256:`.
    Sha256(Sha256),
    /// `sha512:`.
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for the algorithm of `digest` (`algorithm:hex`).
    pub fn for_digest(digest: &str) -> Result<Hasher, Status> {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("", ""));
        let (hasher, len) = match algorithm {
            "sha256" => (Hasher::Sha256(Sha256::new()), 64),
            "sha512" => (Hasher::Sha512(Sha512::new()), 128),
            _ => return Err(Status::invalid_argument(format!("digest {digest:?}: unsupported or missing algorithm"))),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Status::invalid_argument(format!("digest {digest:?} is malformed")));
        }
        Ok(hasher)
    }

    /// A sha256 hasher (the digest containerd gives what it computes itself).
    pub fn sha256() -> Hasher {
        Hasher::Sha256(Sha256::new())
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest so far, `algorithm:hex`.
    pub fn digest(&self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{:x}", h.clone().finalize()),
            Hasher::Sha512(h) => format!("sha512:{:x}", h.clone().finalize()),
        }
    }
}

/// What a blob must turn out to be.
struct Verifier {
    expected: String,
    size: i64,
    hasher: Hasher,
    read: u64,
}

impl Verifier {
    fn new(digest: &str, size: i64) -> Result<Verifier, Status> {
        if size < 0 {
            return Err(Status::invalid_argument(format!("blob {digest}: negative size {size}")));
        }
        Ok(Verifier { expected: digest.to_owned(), size, hasher: Hasher::for_digest(digest)?, read: 0 })
    }

    fn add(&mut self, bytes: &[u8]) -> Result<(), Status> {
        self.read += bytes.len() as u64;
        if self.size > 0 && self.read > self.size as u64 {
            return Err(Status::data_loss(format!(
                "blob {} holds more than the {} bytes its descriptor gives",
                self.expected, self.size
            )));
        }
        self.hasher.update(bytes);
        Ok(())
    }

    fn end(&self) -> Result<(), Status> {
        if self.size > 0 && self.read != self.size as u64 {
            return Err(Status::data_loss(format!(
                "blob {} is truncated: {} of the {} bytes its descriptor gives",
                self.expected, self.read, self.size
            )));
        }
        let actual = self.hasher.digest();
        if actual != self.expected {
            return Err(Status::data_loss(format!(
                "blob {} does not match its digest: its bytes are {actual}",
                self.expected
            )));
        }
        Ok(())
    }
}

/// A blob's bytes as a blocking reader (for the layer readers, which run on blocking threads).
/// The digest and size are checked as the bytes pass: a mismatch is a read error at the end,
/// and [`BlobReader::failure`] tells the status that explains it. Clones share one stream, so
/// what is left of a blob can still be read (and checked) after a decompressor gave up on it.
#[derive(Clone)]
pub struct BlobReader(Arc<Mutex<BlobState>>);

struct BlobState {
    chunks: mpsc::Receiver<Result<Vec<u8>, Status>>,
    current: Vec<u8>,
    at: usize,
    verifier: Verifier,
    failure: Option<Status>,
    ended: bool,
}

impl BlobReader {
    fn new(chunks: mpsc::Receiver<Result<Vec<u8>, Status>>, verifier: Verifier) -> BlobReader {
        BlobReader(Arc::new(Mutex::new(BlobState {
            chunks,
            current: Vec::new(),
            at: 0,
            verifier,
            failure: None,
            ended: false,
        })))
    }

    /// Why the blob could not be read, or is not the blob its descriptor names: once it has
    /// been read to its end, a digest or size mismatch is known here.
    pub fn failure(&self) -> Option<Status> {
        self.0.lock().expect("not poisoned").failure.clone()
    }
}

impl BlobState {
    fn fail(&mut self, status: Status) -> io::Error {
        let error = io::Error::new(io::ErrorKind::InvalidData, status.message().to_owned());
        self.failure.get_or_insert(status);
        error
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.lock().expect("not poisoned");
        if let Some(failure) = s.failure.clone() {
            return Err(s.fail(failure));
        }
        while s.at == s.current.len() {
            if s.ended {
                return Ok(0);
            }
            match s.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    if let Err(status) = s.verifier.add(&chunk) {
                        return Err(s.fail(status));
                    }
                    s.current = chunk;
                    s.at = 0;
                }
                Some(Err(status)) => return Err(s.fail(status)),
                None => {
                    if let Err(status) = s.verifier.end() {
                        return Err(s.fail(status));
                    }
                    s.ended = true;
                }
            }
        }
        let n = buf.len().min(s.current.len() - s.at);
        buf[..n].copy_from_slice(&s.current[s.at..s.at + n]);
        s.at += n;
        Ok(n)
    }
}
