//! The gRPC service end to end over a unix socket: status codes, field masks, streamed List,
//! many concurrent clients, an owner-only socket and a clean shutdown.
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

async fn connect(path: PathBuf) -> SnapshotsClient<Channel> {
    let channel = Endpoint::try_from("http://winlayer.invalid")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap();
    SnapshotsClient::new(channel)
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
    let socket = dir.path().join("run/winlayer.sock");
    let snapshotter = Arc::new(Snapshotter::open(&dir.path().join("root"), Mode::Linux).unwrap());
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

    // 242 snapshots stream in batches of at most 100.
    let (messages, infos) = list(&mut client, &[]).await.unwrap();
    assert_eq!(infos.len(), 242);
    assert_eq!(messages, 3);
    let (_, committed) = list(&mut client, &["kind==committed,parent==base"]).await.unwrap();
    assert_eq!(committed.len(), 240);

    let usage =
        client.usage(pb::UsageRequest { key: "child".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(usage.inodes, 1);
    client.cleanup(pb::CleanupRequest::default()).await.unwrap();

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket is removed on shutdown");
}
