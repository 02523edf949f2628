//! The gRPC service end to end over a unix socket: status codes, field masks, streamed List,
//! many concurrent clients, an owner-only socket and a clean shutdown; List replies bounded by
//! size, requests as large as containerd sends, and unreadable requests refused as containerd
//! refuses them.
#![cfg(unix)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};
use winlayer_snapshotter::diff::DiffService;
use winlayer_snapshotter::proto::snapshots::{self as pb, snapshots_client::SnapshotsClient};
use winlayer_snapshotter::{Mode, Snapshotter, server};

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

async fn connect(path: PathBuf) -> SnapshotsClient<Channel> {
    SnapshotsClient::new(channel(path).await)
}

/// A served root: its socket, and how to stop the server (which must then exit cleanly).
struct Served {
    socket: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<winlayer_snapshotter::Result<()>>,
}

async fn serve(dir: &std::path::Path) -> Served {
    let socket = dir.join("run/winlayer.sock");
    let snapshotter = Arc::new(Snapshotter::open(&dir.join("root"), Mode::Linux).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let address = socket.to_string_lossy().into_owned();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        server::serve(snapshotter, DiffService::new("/nonexistent/containerd.sock"), &address, shutdown, |_| {
            ready_tx.send(()).unwrap()
        })
        .await
    });
    ready_rx.await.unwrap();
    Served { socket, stop, server }
}

impl Served {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

fn prepare(key: &str, parent: &str) -> pb::PrepareSnapshotRequest {
    pb::PrepareSnapshotRequest { key: key.into(), parent: parent.into(), ..Default::default() }
}

fn commit(name: &str, key: &str) -> pb::CommitSnapshotRequest {
    pb::CommitSnapshotRequest { name: name.into(), key: key.into(), ..Default::default() }
}

async fn list(
    client: &mut SnapshotsClient<Channel>,
    filters: &[&str],
) -> Result<(usize, Vec<pb::Info>), tonic::Status> {
    let request =
        pb::ListSnapshotsRequest { filters: filters.iter().map(|f| f.to_string()).collect(), ..Default::default() };
    let mut stream = client.list(request).await?.into_inner();
    let (mut messages, mut infos) = (0, Vec::new());
    while let Some(batch) = stream.message().await? {
        messages += 1;
        infos.extend(batch.info);
    }
    Ok((messages, infos))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path()).await;
    let socket = served.socket.clone();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is owner-only");

    let mut client = connect(socket.clone()).await;
    let m = client.prepare(prepare("base-a", "")).await.unwrap().into_inner().mounts;
    assert_eq!((m[0].r#type.as_str(), &m[0].options[..]), ("bind", &["rw".to_string(), "rbind".to_string()][..]));
    client.commit(commit("base", "base-a")).await.unwrap();

    // Error classes become containerd's gRPC codes.
    let code = |r: Result<tonic::Response<_>, tonic::Status>| {
        r.map(|_: tonic::Response<pb::PrepareSnapshotResponse>| ()).unwrap_err().code()
    };
    assert_eq!(code(client.prepare(prepare("x", "missing")).await), Code::NotFound);
    assert_eq!(code(client.prepare(prepare("base", "")).await), Code::AlreadyExists);
    let err = client.remove(pb::RemoveSnapshotRequest { key: "nope".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    client.prepare(prepare("child", "base")).await.unwrap();
    let err = client.remove(pb::RemoveSnapshotRequest { key: "base".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = client.mounts(pb::MountsRequest { key: "base".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(list(&mut client, &["name=="]).await.unwrap_err().code(), Code::InvalidArgument);

    // Stat reports the kind explicitly (containerd reads UNKNOWN as committed) and times.
    let info = client.stat(pb::StatSnapshotRequest { key: "child".into(), ..Default::default() }).await.unwrap();
    let info = info.into_inner().info.unwrap();
    assert_eq!((info.kind, info.parent.as_str()), (pb::Kind::Active as i32, "base"));
    assert_eq!(info.created_at, info.updated_at);

    // Update with a field mask, as containerd's metadata layer sends it.
    let update = |labels: &[(&str, &str)], paths: &[&str]| pb::UpdateSnapshotRequest {
        info: Some(pb::Info {
            name: "child".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        ..Default::default()
    };
    client.update(update(&[("a", "1"), ("b", "2")], &[])).await.unwrap();
    let updated = client.update(update(&[("a", "3")], &["labels.a", "labels.b"])).await.unwrap().into_inner();
    assert_eq!(updated.info.unwrap().labels, HashMap::from([("a".to_string(), "3".to_string())]));
    assert_eq!(client.update(update(&[], &["parent"])).await.unwrap_err().code(), Code::InvalidArgument);
    let missing = pb::UpdateSnapshotRequest::default();
    assert_eq!(client.update(missing).await.unwrap_err().code(), Code::InvalidArgument);

    // Many clients at once, each on its own connection.
    let mut tasks = Vec::new();
    for c in 0..16 {
        let socket = socket.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = connect(socket).await;
            for i in 0..15 {
                let key = format!("c{c}-{i}");
                client.prepare(prepare(&key, "base")).await.unwrap();
                client.commit(commit(&format!("{key}-done"), &key)).await.unwrap();
                client
                    .stat(pb::StatSnapshotRequest { key: format!("{key}-done"), ..Default::default() })
                    .await
                    .unwrap();
                list(&mut client, &["kind==committed"]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // 242 small snapshots fit in one reply.
    let (messages, infos) = list(&mut client, &[]).await.unwrap();
    assert_eq!(infos.len(), 242);
    assert_eq!(messages, 1);
    let (_, committed) = list(&mut client, &["kind==committed,parent==base"]).await.unwrap();
    assert_eq!(committed.len(), 240);

    let usage =
        client.usage(pb::UsageRequest { key: "child".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(usage.inodes, 1);
    client.cleanup(pb::CleanupRequest::default()).await.unwrap();

    served.stop().await;
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

/// `count` labels of `size` bytes (key and value), as containerd accepts them (each at most
/// 4096 bytes) and forwards them (inherited: `containerd.io/snapshot/…`).
fn big_labels(prefix: &str, count: usize, size: usize) -> HashMap<String, String> {
    (0..count)
        .map(|i| {
            let key = format!("containerd.io/snapshot/{prefix}-{i:05}");
            let value = "v".repeat(size - key.len());
            (key, value)
        })
        .collect()
}

/// Every reply of a List, as encoded sizes and Info counts.
async fn list_replies(client: &mut SnapshotsClient<Channel>) -> Result<Vec<(usize, usize)>, tonic::Status> {
    use prost::Message;
    let mut stream = client.list(pb::ListSnapshotsRequest::default()).await?.into_inner();
    let mut replies = Vec::new();
    while let Some(reply) = stream.message().await? {
        replies.push((reply.encoded_len(), reply.info.len()));
    }
    Ok(replies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_replies_are_bounded_by_size_and_requests_up_to_16_mib_are_accepted() {
    use winlayer_snapshotter::service::{LIST_REPLY_BYTES, MAX_REQUEST_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path()).await;
    let mut client = connect(served.socket.clone()).await.max_decoding_message_size(MAX_REQUEST_BYTES);

    // Six snapshots of 900 labels of 3900 bytes (what made containerd's garbage collector fail):
    // 21 MB in all, more than containerd's proxy client takes in one message.
    for i in 0..6 {
        let request = pb::PrepareSnapshotRequest {
            key: format!("big-{i}"),
            labels: big_labels("l", 900, 3900),
            ..Default::default()
        };
        client.prepare(request).await.unwrap();
    }
    for i in 0..300 {
        client.prepare(prepare(&format!("small-{i}"), "")).await.unwrap();
    }
    // As containerd reads it (16 MiB) and as other gRPC clients do (tonic's and grpc-go's
    // default, 4 MiB).
    for limit in [16 << 20, 4 << 20] {
        let mut reader = connect(served.socket.clone()).await.max_decoding_message_size(limit);
        let replies = list_replies(&mut reader).await.unwrap();
        assert_eq!(replies.iter().map(|r| r.1).sum::<usize>(), 306, "limit {limit}");
        for &(bytes, infos) in &replies {
            assert!(bytes <= LIST_REPLY_BYTES || infos == 1, "a reply of {bytes} bytes holds {infos} snapshots");
        }
        // Each big snapshot alone; the small ones together, more than 100 to a reply.
        assert!(replies.len() <= 8, "{replies:?}");
        assert!(replies.iter().any(|r| r.1 > 100), "{replies:?}");
    }

    // An Update of ~10 MiB, as containerd forwards it, is accepted; the snapshot then travels
    // alone, in a reply a 16 MiB client reads.
    let update = |labels: HashMap<String, String>| pb::UpdateSnapshotRequest {
        info: Some(pb::Info { name: "big-0".into(), labels, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["labels".into()] }),
        ..Default::default()
    };
    let updated = client.update(update(big_labels("u", 2600, 4000))).await.unwrap().into_inner();
    assert_eq!(updated.info.unwrap().labels.len(), 2600);
    let replies = list_replies(&mut client).await.unwrap();
    assert!(replies.iter().any(|&(bytes, infos)| bytes > 10_000_000 && infos == 1), "{replies:?}");

    // Beyond 16 MiB: refused with ResourceExhausted and a message, and nothing changes.
    let err = client.update(update(big_labels("x", 4400, 4000))).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    let info = client.stat(pb::StatSnapshotRequest { key: "big-0".into(), ..Default::default() }).await.unwrap();
    assert_eq!(info.into_inner().info.unwrap().labels.len(), 2600);

    served.stop().await;
}

/// Requests spelled with bytes where containerd's protos have strings, to send what a
/// conforming client cannot: keys, names, labels and filters that are not UTF-8.
mod raw {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// PrepareSnapshotRequest and CommitSnapshotRequest share tags 2 (key / name) and 4 (labels).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyAndLabels {
        #[prost(bytes = "vec", tag = "2")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub third: Vec<u8>,
        #[prost(message, repeated, tag = "4")]
        pub labels: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct List {
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub filters: Vec<Vec<u8>>,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_utf8_are_invalid_arguments() {
    use tonic::codegen::http::uri::PathAndQuery;
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path()).await;
    let mut grpc = tonic::client::Grpc::new(channel(served.socket.clone()).await);
    let bad = b"key-\xff\xfe".to_vec();
    let label = |key: &[u8], value: &[u8]| raw::Label { key: key.to_vec(), value: value.to_vec() };
    let method =
        |name: &str| PathAndQuery::try_from(format!("/containerd.services.snapshots.v1.Snapshots/{name}")).unwrap();
    let cases = [
        ("Prepare", "key", raw::KeyAndLabels { key: bad.clone(), ..Default::default() }),
        ("View", "parent", raw::KeyAndLabels { key: b"v".to_vec(), third: bad.clone(), ..Default::default() }),
        (
            "Prepare",
            "label key",
            raw::KeyAndLabels { key: b"k".to_vec(), labels: vec![label(&bad, b"v")], ..Default::default() },
        ),
        (
            "Prepare",
            "label value",
            raw::KeyAndLabels { key: b"k".to_vec(), labels: vec![label(b"l", &bad)], ..Default::default() },
        ),
        ("Commit", "name", raw::KeyAndLabels { key: bad.clone(), third: b"k".to_vec(), ..Default::default() }),
    ];
    for (name, what, request) in cases {
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<raw::KeyAndLabels, ()>::default();
        let err = grpc.unary(tonic::Request::new(request), method(name), codec).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name} with a {what} that is not UTF-8: {err:?}");
        assert!(err.message().contains("UTF-8"), "{err:?}");
    }
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<raw::List, pb::ListSnapshotsResponse>::default();
    let request = raw::List { filters: vec![b"name==".iter().copied().chain(bad.clone()).collect()] };
    let err = grpc.server_streaming(tonic::Request::new(request), method("List"), codec).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "List with a filter that is not UTF-8: {err:?}");
    // Nothing was stored, and the daemon serves on.
    let mut client = connect(served.socket.clone()).await;
    assert_eq!(list(&mut client, &[]).await.unwrap().1.len(), 0);
    served.stop().await;
}
