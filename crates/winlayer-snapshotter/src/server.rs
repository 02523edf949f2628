//! The daemon: opens the root, listens where containerd's `proxy_plugins` address points (a
//! unix socket only its owner may use, or a named pipe on Windows) and serves until SIGINT or
//! SIGTERM (Ctrl-C on Windows), then stops accepting, finishes the calls under way and
//! removes its socket.

use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::config::Settings;
use crate::diff::DiffService;
use crate::error::{Error, Result};
use crate::requests;
use crate::service::SnapshotsService;
use crate::snapshotter::Snapshotter;

/// Runs the daemon on its own tokio runtime until a shutdown signal. `ready` is called once
/// the address accepts connections.
pub fn run(settings: &Settings, ready: impl FnOnce(&Snapshotter)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("winlayer-serve")
        .build()
        .map_err(|e| Error::internal(format!("starting the runtime: {e}")))?;
    runtime.block_on(async {
        let options = crate::snapshotter::Options { block: settings.block, ..Default::default() };
        let snapshotter = Arc::new(Snapshotter::open_with(&settings.root, settings.mode, options)?);
        let differ = DiffService::new(&settings.containerd_address);
        serve(snapshotter, differ, &settings.address, shutdown_signal(), ready).await
    })
}

/// Serves `snapshotter` and `differ` on `address` until `shutdown` completes.
pub async fn serve(
    snapshotter: Arc<Snapshotter>,
    differ: DiffService,
    address: &str,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&Snapshotter),
) -> Result<()> {
    let service = SnapshotsService::new(snapshotter.clone()).into_server();
    let router = tonic::transport::Server::builder()
        .layer(tower::layer::layer_fn(LogFailures))
        .layer(requests::layer())
        .add_service(service)
        .add_service(differ.into_server());
    let incoming = transport::listen(address)?;
    ready(&snapshotter);
    let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
    transport::unlisten(address);
    served.map_err(|e| Error::internal(format!("serving {address}: {e}")))
}

/// Logs every snapshots call that fails, with its method and the status (whose message names
/// the key); successful calls are not logged. The diff service logs its own calls.
#[derive(Clone)]
struct LogFailures<S>(S);

type Http<B> = tonic::codegen::http::Request<B>;

impl<S, B, R> tower::Service<Http<B>> for LogFailures<S>
where
    S: tower::Service<Http<B>, Response = tonic::codegen::http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = std::result::Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::result::Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Http<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await?;
            if !method.starts_with("/containerd.services.diff.")
                && let Some(status) = tonic::Status::from_header_map(response.headers())
                && status.code() != tonic::Code::Ok
            {
                let method = method.rsplit('/').next().unwrap_or(&method);
                tracing::warn!(method, code = ?status.code(), "{}", status.message());
            }
            Ok(response)
        })
    }
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C or a service stop on Windows).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            // Without signal handlers the default actions still end the process.
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(unix)]
mod transport {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::Path;
    use tokio_stream::wrappers::UnixListenerStream;

    /// Listens on unix socket `address`, mode 0600 from the first moment: the socket is bound
    /// in a private directory, restricted, then renamed into place. A stale socket (nobody
    /// answers) is replaced; a live one is an error.
    pub fn listen(address: &str) -> Result<UnixListenerStream> {
        let path = Path::new(address.strip_prefix("unix://").unwrap_or(address));
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io("creating", parent, e))?;
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(Error::already_exists(format!("another server is listening on {}", path.display())));
                }
                fs::remove_file(path).map_err(|e| Error::io("removing stale socket", path, e))?;
            }
            Ok(_) => {
                return Err(Error::already_exists(format!("{} exists and is not a socket", path.display())));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("checking", path, e)),
        }
        let private = parent.join(format!(".winlayer-{}", std::process::id()));
        let _ = fs::remove_dir_all(&private);
        fs::DirBuilder::new().mode(0o700).create(&private).map_err(|e| Error::io("creating", &private, e))?;
        let bound = (|| -> Result<UnixListener> {
            let temp = private.join("s");
            let listener = UnixListener::bind(&temp).map_err(|e| Error::io("listening on", &temp, e))?;
            fs::set_permissions(&temp, fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("restricting", &temp, e))?;
            fs::rename(&temp, path).map_err(|e| Error::io("moving socket to", path, e))?;
            Ok(listener)
        })();
        let _ = fs::remove_dir_all(&private);
        let listener = bound?;
        listener.set_nonblocking(true).map_err(|e| Error::io("configuring", path, e))?;
        let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| Error::io("registering", path, e))?;
        Ok(UnixListenerStream::new(listener))
    }

    /// Removes the socket.
    pub fn unlisten(address: &str) {
        let _ = fs::remove_file(address.strip_prefix("unix://").unwrap_or(address));
    }
}

#[cfg(windows)]
mod transport {
    //! Named pipes (`\\.\pipe\NAME`), as containerd dials proxy plugins on Windows. Every
    //! instance carries win32's descriptor (full control for SYSTEM and Administrators, nothing
    //! for anyone else), the first instance refuses to join a pipe another process owns, and
    //! remote clients are rejected.
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::windows::named_pipe::NamedPipeServer;
    use tokio_stream::wrappers::ReceiverStream;
    use win32::pipe::PipeListener;

    /// One client's pipe instance.
    pub struct PipeConnection(NamedPipeServer);

    impl tonic::transport::server::Connected for PipeConnection {
        type ConnectInfo = ();
        fn connect_info(&self) -> Self::ConnectInfo {}
    }

    impl AsyncRead for PipeConnection {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for PipeConnection {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// Accepts clients on pipe `address`, one pipe instance per client.
    pub fn listen(address: &str) -> Result<ReceiverStream<io::Result<PipeConnection>>> {
        let name = address.strip_prefix("npipe://").unwrap_or(address).to_owned();
        let mut listener =
            PipeListener::bind(&name).map_err(|e| Error::internal(format!("creating pipe {name}: {e}")))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let accepted = listener.accept().await.map(PipeConnection);
                let failed = accepted.is_err();
                if sender.send(accepted).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(receiver))
    }

    /// Pipes vanish with their last handle.
    pub fn unlisten(_: &str) {}
}
