//! The diff service over its socket, with containerd's content service played by a small
//! in-process stub: layers applied into CimFS and bind/overlay snapshots prepared through the
//! snapshots service, the diffIDs computed independently here, Diff written back to the stub,
//! and every kind of bad blob refused with its code while the snapshot stays as it was.
#![cfg(unix)]

/// The test double of crates/win32 (`cargo test` builds it beside every test binary).
#[path = "../../win32/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Response, Status, Streaming};
use winlayer_core::dir::{DirOptions, DirSource};
use winlayer_core::{Collector, Entry, EntryKind, LayerPath, LayerSink, LayerSource, Metadata, attrs};
use winlayer_snapshotter::diff::DiffService;
use winlayer_snapshotter::proto::content::{self as cpb, content_server};
use winlayer_snapshotter::proto::diff::{self as dpb, diff_client::DiffClient};
use winlayer_snapshotter::proto::snapshots::{self as spb, snapshots_client::SnapshotsClient};
use winlayer_snapshotter::proto::types;
use winlayer_snapshotter::{Mode, Snapshotter, server};

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// A base layer as `makebaselayer --from` writes it, from a small plain tree.
fn base_layer() -> Vec<u8> {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("hello.txt"), b"hello from the base").unwrap();
    std::fs::create_dir(tree.path().join("sub")).unwrap();
    std::fs::write(tree.path().join("sub/keep.txt"), b"kept").unwrap();
    let mut builder = winlayer_layers::BaseLayerBuilder::new("BA", Some(1_000_000_000));
    let options = DirOptions { base: true, owner: "BA".into(), source_date_epoch: Some(1_000_000_000) };
    DirSource::new(tree.path(), options).send_to(&mut builder).unwrap();
    let (sorted, _) = builder.finish().unwrap();
    wcow_tar::write_sorted(sorted, Vec::new()).unwrap()
}

/// A layer over the base: a new file, a hard link to a base file, a deletion.
fn app_layer() -> Vec<u8> {
    let meta =
        |attributes| Metadata::with_times(attributes, winlayer_core::FileTime::from_unix(1_000_000_100, 0).unwrap());
    let path = |p: &str| LayerPath::parse(p).unwrap();
    let mut c = Collector::new();
    let mut add = |entry: Entry, data: &[u8]| {
        let mut reader: &[u8] = data;
        let mut data = winlayer_core::Data::from_reader(&mut reader, data.len() as u64, winlayer_core::Origin::Stream);
        c.entry(&entry, &mut data).unwrap();
    };
    add(Entry { path: path("Files"), kind: EntryKind::Directory, meta: meta(attrs::DIRECTORY) }, b"");
    add(Entry { path: path("Files/sub"), kind: EntryKind::Directory, meta: meta(attrs::DIRECTORY) }, b"");
    add(Entry { path: path("Files/new.txt"), kind: EntryKind::File { size: 3 }, meta: meta(attrs::ARCHIVE) }, b"new");
    add(
        Entry {
            path: path("Files/sub/again.txt"),
            kind: EntryKind::HardLink { target: path("Files/sub/keep.txt") },
            meta: meta(attrs::ARCHIVE),
        },
        b"",
    );
    add(Entry { path: path("Files/hello.txt"), kind: EntryKind::Whiteout, meta: Metadata::default() }, b"");
    wcow_tar::write_sorted(c.finish().unwrap(), Vec::new()).unwrap()
}

/// containerd's content service, just enough of it: blobs by digest for Read, and Write that
/// keeps what is committed under the digest it is committed with.
#[derive(Clone, Default)]
struct ContentStub {
    blobs: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    labels: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    namespaces: Arc<Mutex<Vec<String>>>,
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl content_server::Content for ContentStub {
    async fn info(&self, _: Request<cpb::InfoRequest>) -> Result<Response<cpb::InfoResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn update(&self, _: Request<cpb::UpdateRequest>) -> Result<Response<cpb::UpdateResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    type ListStream = Boxed<cpb::ListContentResponse>;
    async fn list(&self, _: Request<cpb::ListContentRequest>) -> Result<Response<Self::ListStream>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn delete(&self, _: Request<cpb::DeleteContentRequest>) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("stub"))
    }
    type ReadStream = Boxed<cpb::ReadContentResponse>;
    async fn read(&self, request: Request<cpb::ReadContentRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let ns = request.metadata().get("containerd-namespace").map(|v| v.to_str().unwrap().to_owned());
        self.namespaces.lock().unwrap().push(ns.unwrap_or_default());
        let digest = request.into_inner().digest;
        let blob = self.blobs.lock().unwrap().get(&digest).cloned();
        let blob = blob.ok_or_else(|| Status::not_found(format!("content digest {digest}: not found")))?;
        // Several messages, as containerd sends blobs in chunks.
        let chunks: Vec<_> = blob
            .chunks(7000)
            .enumerate()
            .map(|(i, c)| Ok(cpb::ReadContentResponse { offset: (i * 7000) as i64, data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
    async fn status(&self, _: Request<cpb::StatusRequest>) -> Result<Response<cpb::StatusResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn list_statuses(
        &self,
        _: Request<cpb::ListStatusesRequest>,
    ) -> Result<Response<cpb::ListStatusesResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    type WriteStream = Boxed<cpb::WriteContentResponse>;
    async fn write(
        &self,
        request: Request<Streaming<cpb::WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        let mut requests = request.into_inner();
        let (sender, answers) = tokio::sync::mpsc::channel(16);
        let stub = self.clone();
        tokio::spawn(async move {
            let mut data = Vec::new();
            while let Ok(Some(r)) = requests.message().await {
                let answer =
                    cpb::WriteContentResponse { action: r.action, offset: data.len() as i64, ..Default::default() };
                if r.action == cpb::WriteAction::Write as i32 {
                    assert_eq!(r.offset as usize, data.len(), "writes arrive in order");
                    data.extend_from_slice(&r.data);
                }
                if r.action == cpb::WriteAction::Commit as i32 {
                    let digest = sha256(&data);
                    if digest != r.expected || data.len() as i64 != r.total {
                        let _ = sender.send(Err(Status::failed_precondition("unexpected commit digest"))).await;
                        return;
                    }
                    stub.blobs.lock().unwrap().insert(digest.clone(), std::mem::take(&mut data));
                    stub.labels.lock().unwrap().insert(digest.clone(), r.labels);
                    let _ = sender.send(Ok(cpb::WriteContentResponse { digest, ..answer })).await;
                    return;
                }
                let _ = sender.send(Ok(answer)).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(answers))))
    }
    async fn abort(&self, _: Request<cpb::AbortRequest>) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("stub"))
    }
}

async fn channel(path: PathBuf) -> Channel {
    Endpoint::try_from("http://winlayer.invalid")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

/// A running winlayer serve (snapshots and diff) and a content stub, in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    content: ContentStub,
    snapshots: SnapshotsClient<Channel>,
    diff: DiffClient<Channel>,
}

impl Fixture {
    async fn start(mode: Mode) -> Fixture {
        Fixture::start_with(mode, win32::Source::System).await
    }

    /// The same, with the differ's `BlockCIM` layers written through the CIM DLLs of `cims`.
    async fn start_with(mode: Mode, cims: win32::Source) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let content = ContentStub::default();
        let content_socket = dir.path().join("containerd.sock");
        let listener = tokio::net::UnixListener::bind(&content_socket).unwrap();
        let stub = content.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(content_server::ContentServer::new(stub))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
        });
        let socket = dir.path().join("winlayer.sock");
        let snapshotter = Arc::new(Snapshotter::open(&dir.path().join("root"), mode).unwrap());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let address = socket.to_string_lossy().into_owned();
        let differ = DiffService::new(&content_socket.to_string_lossy()).with_cims(cims);
        tokio::spawn(async move {
            server::serve(snapshotter, differ, &address, std::future::pending(), |_| ready_tx.send(()).unwrap()).await
        });
        ready_rx.await.unwrap();
        let ch = channel(socket).await;
        Fixture { dir, content, snapshots: SnapshotsClient::new(ch.clone()), diff: DiffClient::new(ch) }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Stores a blob and returns its descriptor.
    fn put(&self, blob: Vec<u8>, media_type: &str) -> types::Descriptor {
        let desc = types::Descriptor {
            media_type: media_type.into(),
            digest: sha256(&blob),
            size: blob.len() as i64,
            annotations: HashMap::new(),
        };
        self.content.blobs.lock().unwrap().insert(desc.digest.clone(), blob);
        desc
    }

    async fn prepare(&mut self, key: &str, parent: &str) -> Vec<types::Mount> {
        let request = spb::PrepareSnapshotRequest { key: key.into(), parent: parent.into(), ..Default::default() };
        self.snapshots.prepare(request).await.unwrap().into_inner().mounts
    }

    async fn commit(&mut self, name: &str, key: &str) {
        let request = spb::CommitSnapshotRequest { name: name.into(), key: key.into(), ..Default::default() };
        self.snapshots.commit(request).await.unwrap();
    }

    /// Applies each case's blob to `mounts` (a CimFS snapshot) and checks the code, the
    /// message, and that neither the snapshot nor the CIM directory changed.
    async fn assert_refused(&mut self, cases: Vec<(&str, types::Descriptor, Code, &str)>, mounts: &[types::Mount]) {
        let state = |f: &Fixture| (tree(Path::new(&mounts[0].source)), tree(&f.root().join("snapshots/cim-layers")));
        let before = state(self);
        for (what, desc, code, needle) in cases {
            let status = self.apply(&desc, mounts.to_vec()).await.expect_err(what);
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(status.message().contains(needle), "{what}: {:?} lacks {needle:?}", status.message());
            assert_eq!(state(self), before, "{what}: nothing is left behind");
        }
    }

    async fn apply(
        &mut self,
        desc: &types::Descriptor,
        mounts: Vec<types::Mount>,
    ) -> Result<types::Descriptor, Status> {
        let mut request = Request::new(dpb::ApplyRequest { diff: Some(desc.clone()), mounts, ..Default::default() });
        request.metadata_mut().insert("containerd-namespace", "winlayer-test".parse().unwrap());
        Ok(self.diff.apply(request).await?.into_inner().applied.unwrap())
    }
}

/// Everything below `root`, as sorted relative paths.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

fn option<'a>(mount: &'a types::Mount, key: &str) -> &'a str {
    mount.options.iter().find_map(|o| o.strip_prefix(key)?.strip_prefix('=')).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cimfs_layers_applied_as_the_cim_import_writes_them() {
    let mut f = Fixture::start(Mode::Cimfs).await;
    let (base, app) = (base_layer(), app_layer());
    let base_desc = f.put(gzip(&base), GZIP_LAYER);
    let app_desc = f.put(app.clone(), TAR_LAYER);

    let mounts = f.prepare("extract-1 base", "").await;
    assert_eq!(mounts[0].r#type, "CimFS");
    let applied = f.apply(&base_desc, mounts.clone()).await.unwrap();
    assert_eq!((applied.digest.as_str(), applied.size), (sha256(&base).as_str(), base.len() as i64), "the diffID");
    assert_eq!(applied.media_type, TAR_LAYER);
    assert_eq!(f.content.namespaces.lock().unwrap().as_slice(), ["winlayer-test"], "the namespace is passed on");
    f.commit("base", "extract-1 base").await;

    let mounts = f.prepare("extract-2 app", "base").await;
    let applied = f.apply(&app_desc, mounts.clone()).await.unwrap();
    assert_eq!(applied.digest, sha256(&app));
    let cim = cimfs::Cim::open(Path::new(option(&mounts[0], "cimpath"))).unwrap();
    let mut view = Vec::new();
    cim.walk(|names, _, _| {
        view.push(names.join("/"));
        Ok(())
    })
    .unwrap();
    assert!(
        view.contains(&"Files/new.txt".to_string()) && view.contains(&"Files/sub/again.txt".to_string()),
        "{view:?}"
    );
    assert!(!view.contains(&"Files/hello.txt".to_string()), "the whiteout deletes from the parent's view");
    assert!(view.contains(&"Files/Windows/System32/config/SYSTEM".to_string()));
    f.commit("app", "extract-2 app").await;

    // Diff of the app layer against the base: a gzip'd canonical layer in the content store,
    // the uncompressed label its diffID, its changes those the app layer made.
    let view = |key: &str, parent: &str| spb::ViewSnapshotRequest {
        key: key.into(),
        parent: parent.into(),
        ..Default::default()
    };
    let lower = f.snapshots.view(view("v-base", "base")).await.unwrap().into_inner().mounts;
    let upper = f.snapshots.view(view("v-app", "app")).await.unwrap().into_inner().mounts;
    let request = dpb::DiffRequest { left: lower, right: upper, media_type: GZIP_LAYER.into(), ..Default::default() };
    let desc = f.diff.diff(request).await.unwrap().into_inner().diff.unwrap();
    assert_eq!(desc.media_type, GZIP_LAYER);
    let blob = f.content.blobs.lock().unwrap().get(&desc.digest).cloned().expect("the diff is in the store");
    assert_eq!((sha256(&blob), blob.len() as i64), (desc.digest.clone(), desc.size));
    let tar = gunzip(&blob);
    let labels = f.content.labels.lock().unwrap().get(&desc.digest).cloned().unwrap();
    assert_eq!(labels.get("containerd.io/uncompressed"), Some(&sha256(&tar)));
    let entries = wcow_tar::reader::read_all(wcow_tar::reader::from_bytes(tar).unwrap()).unwrap();
    let names: Vec<String> = entries.iter().map(|(e, _)| format!("{} {}", e.kind.name(), e.path)).collect();
    for expected in ["file Files/new.txt", "whiteout Files/hello.txt", "hardlink Files/sub/again.txt"] {
        assert!(names.contains(&expected.to_string()), "{expected} in {names:?}");
    }

    // Removing the snapshots removes their CIMs with their region and object-ID files.
    for key in ["v-app", "v-base", "app", "base"] {
        let request = spb::RemoveSnapshotRequest { key: key.into(), ..Default::default() };
        f.snapshots.remove(request).await.unwrap();
    }
    assert_eq!(tree(&f.root().join("snapshots/cim-layers")), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_blobs_are_refused_and_leave_the_snapshot_as_it_was() {
    let mut f = Fixture::start(Mode::Cimfs).await;
    let base = base_layer();
    let good = gzip(&base);

    // A path climbing out, in an otherwise well-formed tar.
    let mut hostile =
        wcow_tar::header::HeaderBuilder::new(b"Files/../../escape.txt", b'0', 0o644, 5, 0).finish().to_vec();
    hostile.extend_from_slice(b"gotcha");
    hostile.resize(512 * 4, 0);
    let truncated_tar = base[..base.len() / 2].to_vec();

    let mounts = f.prepare("extract-1 bad", "").await;

    let mut cases: Vec<(&str, types::Descriptor, Code, &str)> = Vec::new();
    cases.push(("hostile entry name", f.put(gzip(&hostile), GZIP_LAYER), Code::InvalidArgument, "escape.txt"));
    cases.push(("tar cut in half", f.put(truncated_tar, TAR_LAYER), Code::InvalidArgument, "data ends"));
    let mut cut = f.put(good[..good.len() - 100].to_vec(), GZIP_LAYER);
    cut.size = good.len() as i64;
    cases.push(("blob shorter than its descriptor", cut, Code::DataLoss, "truncated"));
    let mut wrong = f.put(good.clone(), GZIP_LAYER);
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    f.content.blobs.lock().unwrap().insert(wrong.digest.clone(), flipped);
    cases.push(("bytes not matching the digest", wrong.clone(), Code::DataLoss, "does not match its digest"));
    wrong.media_type = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted".into();
    cases.push(("media type with a stream processor", wrong.clone(), Code::Unimplemented, "encrypted"));
    wrong.media_type = "application/vnd.example.unknown".into();
    cases.push(("unknown media type", wrong.clone(), Code::Unimplemented, "unknown"));
    let mut missing = f.put(Vec::new(), GZIP_LAYER);
    missing.digest = sha256(b"not stored");
    f.content.blobs.lock().unwrap().remove(&sha256(b""));
    cases.push(("blob not in the store", missing, Code::NotFound, "not found"));

    f.assert_refused(cases, &mounts).await;
    let mut windows_layer = mounts[0].clone();
    windows_layer.r#type = "windows-layer".into();
    let status = f.apply(&f.put(good.clone(), GZIP_LAYER), vec![windows_layer]).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("only on Windows"), "{status:?}");
    assert_eq!(f.apply(&f.put(good.clone(), GZIP_LAYER), vec![]).await.unwrap_err().code(), Code::InvalidArgument);

    // The daemon still serves, and the same snapshot still takes the good layer.
    let applied = f.apply(&f.put(good, GZIP_LAYER), mounts).await.unwrap();
    assert_eq!(applied.digest, sha256(&base));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_unreachable_is_unavailable_naming_the_address() {
    let mut f = Fixture::start(Mode::Cimfs).await;
    let mounts = f.prepare("extract-1 x", "").await;
    let desc = f.put(gzip(&base_layer()), GZIP_LAYER);
    let gone = f.dir.path().join("no-containerd.sock");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let other = f.dir.path().join("other.sock");
    let address = other.to_string_lossy().into_owned();
    let snapshotter = Arc::new(Snapshotter::open(&f.dir.path().join("root2"), Mode::Cimfs).unwrap());
    let differ = DiffService::new(&gone.to_string_lossy());
    tokio::spawn(async move {
        server::serve(snapshotter, differ, &address, std::future::pending(), |_| ready_tx.send(()).unwrap()).await
    });
    ready_rx.await.unwrap();
    let mut client = DiffClient::new(channel(other).await);
    let status = client.apply(dpb::ApplyRequest { diff: Some(desc), mounts, ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(&*gone.to_string_lossy()), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linux_mode_applies_a_browsable_view_with_windows_metadata() {
    let mut f = Fixture::start(Mode::Linux).await;
    let (base, app) = (base_layer(), app_layer());
    let base_desc = f.put(gzip(&base), GZIP_LAYER);
    let mounts = f.prepare("extract-1 base", "").await;
    assert_eq!(mounts[0].r#type, "bind");
    let applied = f.apply(&base_desc, mounts.clone()).await.unwrap();
    assert_eq!(applied.digest, sha256(&base));
    let fs = PathBuf::from(&mounts[0].source);
    assert_eq!(std::fs::read(fs.join("Files/hello.txt")).unwrap(), b"hello from the base");
    let attributes = xattr_get(&fs.join("Files/hello.txt"), "user.windows.attributes");
    assert!(attributes.starts_with("0x"), "{attributes}");
    assert!(!xattr_get(&fs.join("Files/hello.txt"), "user.windows.security").is_empty());
    assert!(fs.join("Files/Windows/System32/config/SYSTEM").is_file());
    f.commit("base", "extract-1 base").await;

    // The second layer comes as an overlay mount: applied into its upper directory with
    // overlayfs whiteouts (a character device needs CAP_MKNOD: root).
    let mounts = f.prepare("extract-2 app", "base").await;
    assert_eq!(mounts[0].r#type, "overlay");
    let upper = PathBuf::from(option(&mounts[0], "upperdir"));
    let result = f.apply(&f.put(app.clone(), TAR_LAYER), mounts.clone()).await;
    if !is_root() {
        assert!(result.unwrap_err().message().contains("CAP_MKNOD"));
        assert!(tree(&upper).is_empty(), "nothing left behind");
        eprintln!("skipped the overlay whiteout checks: not root");
        return;
    }
    assert_eq!(result.unwrap().digest, sha256(&app));
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let whiteout = std::fs::symlink_metadata(upper.join("Files/hello.txt")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert_eq!(std::fs::read(upper.join("Files/new.txt")).unwrap(), b"new");
    assert_eq!(std::fs::read(upper.join("Files/sub/again.txt")).unwrap(), b"kept", "a link below is copied up");

    // In a bind view (no overlay), the same layer removes what it deletes.
    let view = tempfile::tempdir().unwrap();
    let fs_copy = view.path().join("fs");
    copy_tree(&fs, &fs_copy);
    let bind = types::Mount {
        r#type: "bind".into(),
        source: fs_copy.to_string_lossy().into(),
        target: String::new(),
        options: vec!["rw".into(), "rbind".into()],
    };
    f.apply(&f.put(app, TAR_LAYER), vec![bind]).await.unwrap();
    assert!(!fs_copy.join("Files/hello.txt").exists());
    assert_eq!(std::fs::read(fs_copy.join("Files/sub/again.txt")).unwrap(), b"kept");
    assert!(fs_copy.join("Files/Windows/System32/config/SYSTEM").is_file(), "the rest stays");

    // Diff of the two bind directories: what the second adds and deletes, nothing it keeps.
    let bind_of = |dir: &Path| types::Mount {
        r#type: "bind".into(),
        source: dir.to_string_lossy().into(),
        target: String::new(),
        options: vec!["ro".into(), "rbind".into()],
    };
    let request = dpb::DiffRequest {
        left: vec![bind_of(&fs)],
        right: vec![bind_of(&fs_copy)],
        media_type: TAR_LAYER.into(),
        ..Default::default()
    };
    let desc = f.diff.diff(request).await.unwrap().into_inner().diff.unwrap();
    let tar = f.content.blobs.lock().unwrap().get(&desc.digest).cloned().expect("the diff is in the store");
    let entries = wcow_tar::reader::read_all(wcow_tar::reader::from_bytes(tar).unwrap()).unwrap();
    let names: Vec<String> = entries.iter().map(|(e, _)| format!("{} {}", e.kind.name(), e.path)).collect();
    for expected in ["file Files/new.txt", "whiteout Files/hello.txt", "file Files/sub/again.txt", "dir Files/sub"] {
        assert!(names.contains(&expected.to_string()), "{expected} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("keep.txt") || n.contains("SYSTEM")),
        "unchanged files are left out: {names:?}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// An extended attribute as Python's os.getxattr reads it.
fn xattr_get(path: &Path, name: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], sys.argv[2]))"])
        .arg(path)
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{name} on {}", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

/// Layers converted as `winlayer image convert` converts them: imported into a chain of their
/// own, packed, zstd-compressed; descriptors carry the source's diffID and size.
fn convert(tars: &[Vec<u8>]) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    use winlayer_layers::converted;
    let t = tempfile::tempdir().unwrap();
    let mut parents: Vec<winlayer_layers::Parent> = Vec::new();
    let mut out = Vec::new();
    for (i, tar) in tars.iter().enumerate() {
        let (dir, cim) = (t.path().join(format!("layer{i}")), t.path().join(format!("{i}.cim")));
        let mut import = winlayer_layers::CimLayerImport::start(&dir, &cim, &parents).unwrap();
        let input = wcow_tar::reader::from_bytes(tar.clone()).unwrap();
        wcow_tar::LayerReader::new(input, wcow_tar::Mode::Strict).send_to(&mut import).unwrap();
        import.finish().unwrap();
        let mut zstd = wcow_tar::Output::new(Vec::new(), wcow_tar::Compression::Zstd).unwrap();
        converted::pack(&dir, &cim, &mut zstd).unwrap();
        let annotations = HashMap::from([
            (converted::SOURCE_DIGEST.to_string(), sha256(&gzip(tar))),
            (converted::SOURCE_DIFF_ID.to_string(), sha256(tar)),
            (converted::SOURCE_SIZE.to_string(), tar.len().to_string()),
        ]);
        out.push((zstd.finish().unwrap(), annotations));
        parents.insert(0, winlayer_layers::Parent { dir, cim });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn converted_layers_unpack_as_their_source_would() {
    use winlayer_layers::converted::{MEDIA_TYPE, SOURCE_DIFF_ID, SOURCE_SIZE};
    let tars = [base_layer(), app_layer()];
    let converted = convert(&tars);
    // The same layers the ordinary way, for comparison.
    let mut plain = Fixture::start(Mode::Cimfs).await;
    let mut f = Fixture::start(Mode::Cimfs).await;
    let mut parent = String::new();
    for (i, (tar, (blob, annotations))) in tars.iter().zip(&converted).enumerate() {
        let key = format!("extract-{i} layer{i}");
        let mounts = plain.prepare(&key, &parent).await;
        plain.apply(&plain.put(tar.clone(), TAR_LAYER), mounts).await.unwrap();
        plain.commit(&format!("layer{i}"), &key).await;
        let mounts = f.prepare(&key, &parent).await;
        let mut desc = f.put(blob.clone(), MEDIA_TYPE);
        desc.annotations = annotations.clone();
        let applied = f.apply(&desc, mounts).await.unwrap();
        assert_eq!((applied.digest.clone(), applied.size), (sha256(tar), tar.len() as i64), "the source's diffID");
        f.commit(&format!("layer{i}"), &key).await;
        parent = format!("layer{i}");
    }
    let files = |root: PathBuf| -> Vec<(String, Vec<u8>)> {
        tree(&root)
            .into_iter()
            .filter(|p| root.join(p).is_file())
            .map(|p| (p.clone(), std::fs::read(root.join(&p)).unwrap()))
            .collect()
    };
    let (got, want) = (files(f.root().join("snapshots")), files(plain.root().join("snapshots")));
    assert!(
        !want.is_empty() && got == want,
        "the snapshots are not what the tars give:\n{:?}\n{:?}",
        got.iter().map(|f| &f.0).collect::<Vec<_>>(),
        want.iter().map(|f| &f.0).collect::<Vec<_>>()
    );

    // Bad converted blobs: refused with their code, the snapshot as it was.
    let mounts = f.prepare("extract-bad", "layer0").await;
    let (blob, annotations) = &converted[1];
    let with = |f: &Fixture, blob: Vec<u8>, edit: &dyn Fn(&mut HashMap<String, String>)| {
        let mut desc = f.put(blob, MEDIA_TYPE);
        desc.annotations = annotations.clone();
        edit(&mut desc.annotations);
        desc
    };
    let mut cases: Vec<(&str, types::Descriptor, Code, &str)> = Vec::new();
    cases.push((
        "no diffID",
        with(&f, blob.clone(), &|a| drop(a.remove(SOURCE_DIFF_ID))),
        Code::InvalidArgument,
        SOURCE_DIFF_ID,
    ));
    cases.push((
        "bad diffID",
        with(&f, blob.clone(), &|a| drop(a.insert(SOURCE_DIFF_ID.into(), "sha256:xyz".into()))),
        Code::InvalidArgument,
        "not a sha256 digest",
    ));
    cases.push((
        "bad size",
        with(&f, blob.clone(), &|a| drop(a.insert(SOURCE_SIZE.into(), "-1".into()))),
        Code::InvalidArgument,
        "not a size",
    ));
    let wrong = with(&f, blob.clone(), &|_| ());
    let mut flipped = blob.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    f.content.blobs.lock().unwrap().insert(wrong.digest.clone(), flipped);
    cases.push(("bytes not matching the digest", wrong, Code::DataLoss, "does not match its digest"));
    let mut hostile = wcow_tar::header::HeaderBuilder::new(b"layer/../../escape", b'0', 0o644, 1, 0).finish().to_vec();
    hostile.extend_from_slice(&[b'x'; 512]);
    hostile.resize(512 * 4, 0);
    cases.push((
        "hostile member",
        with(&f, hostile, &|_| ()),
        Code::InvalidArgument,
        "not a file a CIM layer directory holds",
    ));
    cases.push((
        "the base where the app belongs",
        with(&f, converted[0].0.clone(), &|_| ()),
        Code::InvalidArgument,
        "snapshot's parent",
    ));
    f.assert_refused(cases, &mounts).await;
    // Linux mode's bind mounts do not take converted layers: containerd moves on.
    let mut linux = Fixture::start(Mode::Linux).await;
    let mounts = linux.prepare("extract-1 base", "").await;
    let mut desc = linux.put(converted[0].0.clone(), MEDIA_TYPE);
    desc.annotations = converted[0].1.clone();
    let status = linux.apply(&desc, mounts).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

/// BlockCIM extraction snapshots as containerd's blockcim differ takes them: without Windows'
/// cimwriter.dll (here: no double) NotImplemented before the blob is read and nothing written;
/// through the test double the layer streams into the block CIM writer to its last byte and
/// the diffID comes back; mounts that are no single-file extraction are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blockcim_layers_applied_through_the_cim_writer() {
    let base = base_layer();
    let mut f = Fixture::start(Mode::Blockcim).await;
    let desc = f.put(gzip(&base), GZIP_LAYER);
    let mounts = f.prepare("extract-1 base", "").await;
    assert_eq!((mounts[0].r#type.as_str(), option(&mounts[0], "blockCIMType")), ("BlockCIM", "file"));
    let status = f.apply(&desc, mounts).await.expect_err("needs Windows");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(status.message().contains("block CIMs need Windows"), "{status:?}");
    assert_eq!(tree(&f.root().join("snapshots/1")), Vec::<String>::new(), "nothing written");

    let mut f = Fixture::start_with(Mode::Blockcim, win32::Source::File(common::double_path())).await;
    let desc = f.put(gzip(&base), GZIP_LAYER);
    let mounts = f.prepare("extract-1 base", "").await;
    let block = f.root().join("snapshots/1/layer.vhd");
    assert_eq!(PathBuf::from(&mounts[0].source), block.join("layer.cim"));
    let applied = f.apply(&desc, mounts.clone()).await.unwrap();
    assert_eq!((applied.digest.as_str(), applied.size), (sha256(&base).as_str(), base.len() as i64), "the diffID");

    let with = |options: &[&str], source: &str| {
        let mut m = mounts[0].clone();
        m.options = options.iter().map(|o| o.to_string()).collect();
        m.source = source.into();
        vec![m]
    };
    let source = mounts[0].source.clone();
    let dir = f.root().join("snapshots/1").display().to_string();
    let bad = [
        (with(&["parentCimPaths=[]", "blockCIMType=device"], &source), "blockCIMType=device"),
        (with(&["parentCimPaths=[]", "blockCIMType=file"], &dir), "not a CIM inside a block file"),
        (with(&["parentCimPaths={", "blockCIMType=file"], &source), "parentCimPaths"),
    ];
    for (mounts, needle) in bad {
        let status = f.apply(&desc, mounts).await.expect_err(needle);
        assert_eq!(status.code(), Code::InvalidArgument, "{needle}: {status:?}");
        assert!(status.message().contains(needle), "{needle}: {status:?}");
    }
    // A blob that is not the one named keeps its own code through the block writer.
    let mut wrong = desc.clone();
    wrong.digest = sha256(b"another blob");
    f.content.blobs.lock().unwrap().insert(wrong.digest.clone(), gzip(&base));
    let fresh = f.prepare("extract-2 base", "").await;
    let status = f.apply(&wrong, fresh).await.expect_err("digest mismatch");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
}
