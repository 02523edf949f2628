//! The `containerd.services.snapshots.v1.Snapshots` gRPC service over a [`Snapshotter`].
//!
//! Every call runs on tokio's blocking pool (the store and the filesystem block), so any number
//! of clients are served at once; List streams batches from one read transaction, each reply
//! bounded by its encoded size.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::error::{Error, ErrorKind, Result};
use crate::filter::Filters;
use crate::proto::snapshots::{self as pb, snapshots_server};
use crate::proto::types;
use crate::snapshot::{Info, Kind, Mount, Time};
use crate::snapshotter::Snapshotter;

/// The largest request accepted: what containerd's proxy client sends at most (its
/// `defaults.DefaultMaxSendMsgSize`). Larger ones are refused with ResourceExhausted
/// ([`crate::requests`]).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// The encoded size a List reply stays within, however many snapshots that holds: well under
/// the 16 MiB containerd's proxy client receives and the 4 MiB other gRPC clients default to.
/// A snapshot larger than that (labels up to [`MAX_REQUEST_BYTES`]) travels alone.
pub const LIST_REPLY_BYTES: usize = 1 << 20;

/// The gRPC service.
#[derive(Clone)]
pub struct SnapshotsService {
    snapshotter: Arc<Snapshotter>,
}

impl SnapshotsService {
    /// Serves `snapshotter`.
    pub fn new(snapshotter: Arc<Snapshotter>) -> Self {
        SnapshotsService { snapshotter }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> snapshots_server::SnapshotsServer<Self> {
        snapshots_server::SnapshotsServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Snapshotter) -> Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let snapshotter = self.snapshotter.clone();
        match tokio::task::spawn_blocking(move || f(&snapshotter)).await {
            Ok(result) => result.map_err(status),
            Err(e) => Err(Status::internal(format!("snapshotter task failed: {e}"))),
        }
    }
}

/// containerd's `errdefs.ToGRPC`: each class has its code; anything else is Unknown.
pub fn status(err: Error) -> Status {
    let code = match err.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotImplemented => Code::Unimplemented,
        ErrorKind::Internal => Code::Unknown,
    };
    Status::new(code, err.to_string())
}

fn mounts(mounts: Vec<Mount>) -> Vec<types::Mount> {
    mounts
        .into_iter()
        .map(|m| types::Mount { r#type: m.kind, source: m.source, target: String::new(), options: m.options })
        .collect()
}

fn timestamp(t: Time) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.seconds, nanos: t.nanos as i32 }
}

/// The proto Info. Kind is always set: containerd reads UNKNOWN as committed.
pub fn info_to_proto(info: Info) -> pb::Info {
    let kind = match info.kind {
        Kind::View => pb::Kind::View,
        Kind::Active => pb::Kind::Active,
        Kind::Committed => pb::Kind::Committed,
    };
    pb::Info {
        name: info.name,
        parent: info.parent,
        kind: kind as i32,
        created_at: Some(timestamp(info.created)),
        updated_at: Some(timestamp(info.updated)),
        labels: info.labels.into_iter().collect(),
    }
}

/// Infos gathered into List replies of at most [`LIST_REPLY_BYTES`] encoded.
#[derive(Default)]
struct ReplyBatch {
    infos: Vec<pb::Info>,
    bytes: usize,
}

impl ReplyBatch {
    /// Adds `info`; returns the reply to send first when `info` would not fit in it.
    fn push(&mut self, info: pb::Info) -> Option<Vec<pb::Info>> {
        // A repeated field's element: tag, length, message.
        let len = info.encoded_len();
        let bytes = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        let full = (!self.infos.is_empty() && self.bytes + bytes > LIST_REPLY_BYTES).then(|| self.take());
        self.infos.push(info);
        self.bytes += bytes;
        full
    }

    /// The last reply, if anything is left.
    fn finish(&mut self) -> Option<Vec<pb::Info>> {
        (!self.infos.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Vec<pb::Info> {
        self.bytes = 0;
        std::mem::take(&mut self.infos)
    }
}

fn labels(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

#[tonic::async_trait]
impl snapshots_server::Snapshots for SnapshotsService {
    async fn prepare(
        &self,
        request: Request<pb::PrepareSnapshotRequest>,
    ) -> Result<Response<pb::PrepareSnapshotResponse>, Status> {
        let r = request.into_inner();
        let m = self.run(move |s| s.prepare(&r.key, &r.parent, &labels(r.labels))).await?;
        Ok(Response::new(pb::PrepareSnapshotResponse { mounts: mounts(m) }))
    }

    async fn view(
        &self,
        request: Request<pb::ViewSnapshotRequest>,
    ) -> Result<Response<pb::ViewSnapshotResponse>, Status> {
        let r = request.into_inner();
        let m = self.run(move |s| s.view(&r.key, &r.parent, &labels(r.labels))).await?;
        Ok(Response::new(pb::ViewSnapshotResponse { mounts: mounts(m) }))
    }

    async fn mounts(&self, request: Request<pb::MountsRequest>) -> Result<Response<pb::MountsResponse>, Status> {
        let r = request.into_inner();
        let m = self.snapshotter.mounts(&r.key).map_err(status)?;
        Ok(Response::new(pb::MountsResponse { mounts: mounts(m) }))
    }

    async fn commit(&self, request: Request<pb::CommitSnapshotRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.run(move |s| {
            // containerd 2.2 may name the parent at Commit; adopting a different one (its
            // "rebase") is not offered, and the `rebase` capability is never advertised.
            if !r.parent.is_empty() {
                let current = s.stat(&r.key)?.parent;
                if current != r.parent {
                    return Err(Error::new(
                        ErrorKind::NotImplemented,
                        format!(
                            "commit {:?}: rebasing {:?} onto parent {:?} is not supported",
                            r.name, r.key, r.parent
                        ),
                    ));
                }
            }
            s.commit(&r.name, &r.key, &labels(r.labels))
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn remove(&self, request: Request<pb::RemoveSnapshotRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.run(move |s| s.remove(&r.key)).await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        request: Request<pb::StatSnapshotRequest>,
    ) -> Result<Response<pb::StatSnapshotResponse>, Status> {
        let r = request.into_inner();
        // A read of one record: cheaper inline than handed to the blocking pool (containerd's
        // Walk calls Stat once per snapshot).
        let info = self.snapshotter.stat(&r.key).map_err(status)?;
        Ok(Response::new(pb::StatSnapshotResponse { info: Some(info_to_proto(info)) }))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateSnapshotRequest>,
    ) -> Result<Response<pb::UpdateSnapshotResponse>, Status> {
        let r = request.into_inner();
        let info = r.info.ok_or_else(|| status(Error::invalid_argument("update: info is required")))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let updated = self.run(move |s| s.update(&info.name, &labels(info.labels), &paths)).await?;
        Ok(Response::new(pb::UpdateSnapshotResponse { info: Some(info_to_proto(updated)) }))
    }

    type ListStream = ReceiverStream<Result<pb::ListSnapshotsResponse, Status>>;

    async fn list(&self, request: Request<pb::ListSnapshotsRequest>) -> Result<Response<Self::ListStream>, Status> {
        let filters = Filters::parse(&request.into_inner().filters).map_err(status)?;
        let (sender, receiver) = mpsc::channel(2);
        let snapshotter = self.snapshotter.clone();
        tokio::task::spawn_blocking(move || {
            let mut batch = ReplyBatch::default();
            let send = |batch: Vec<pb::Info>| {
                sender
                    .blocking_send(Ok(pb::ListSnapshotsResponse { info: batch }))
                    .map_err(|_| Error::internal("list: the client went away"))
            };
            let walked = snapshotter.walk(&filters, |info| match batch.push(info_to_proto(info)) {
                Some(full) => send(full),
                None => Ok(()),
            });
            let result = walked.and_then(|()| match batch.finish() {
                Some(last) => send(last),
                None => Ok(()),
            });
            if let Err(e) = result {
                let _ = sender.blocking_send(Err(status(e)));
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn usage(&self, request: Request<pb::UsageRequest>) -> Result<Response<pb::UsageResponse>, Status> {
        let r = request.into_inner();
        let usage = self.run(move |s| s.usage(&r.key)).await?;
        Ok(Response::new(pb::UsageResponse { size: usage.size, inodes: usage.inodes }))
    }

    async fn cleanup(&self, _: Request<pb::CleanupRequest>) -> Result<Response<()>, Status> {
        self.run(|s| s.cleanup()).await?;
        Ok(Response::new(()))
    }
}
