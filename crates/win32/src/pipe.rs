//! The snapshotter's named pipe: `\\.\pipe\winlayer`, open to Administrators and SYSTEM only.
//!
//! For `winlayer serve` on Windows: bind once, then accept in a loop; each accepted instance
//! is one client connection (a tokio `NamedPipeServer`, `AsyncRead + AsyncWrite`). To serve
//! gRPC with tonic, wrap each instance in a type implementing tonic's `Connected` and feed
//! them to `Server::serve_with_incoming` as a stream:
//!
//! ```ignore
//! let mut listener = win32::pipe::PipeListener::bind(win32::pipe::PIPE_NAME)?;
//! let incoming = async_stream::stream! { loop { yield listener.accept().await.map(Pipe); } };
//! tonic::transport::Server::builder().add_service(svc).serve_with_incoming(incoming).await?;
//! ```
//!
//! Every instance is created with the same descriptor ([`crate::security::PIPE_SDDL`]); the
//! first with FILE_FLAG_FIRST_PIPE_INSTANCE, so binding fails when another process already
//! owns the name (instead of silently joining its pipe), and remote clients are refused.

use std::ffi::c_void;
use std::io;

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;

use crate::security::pipe_security_descriptor;

/// The pipe `winlayer serve` listens on.
pub const PIPE_NAME: &str = r"\\.\pipe\winlayer";

/// A named pipe accepting clients one instance at a time.
pub struct PipeListener {
    name: String,
    /// The security descriptor, in a buffer aligned as Windows requires.
    descriptor: Vec<u64>,
    next: NamedPipeServer,
}

impl PipeListener {
    /// Creates the pipe's first instance; must run inside a tokio runtime.
    pub fn bind(name: &str) -> io::Result<PipeListener> {
        let bytes = pipe_security_descriptor();
        let mut descriptor = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `descriptor` holds at least `bytes.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), descriptor.as_mut_ptr().cast::<u8>(), bytes.len()) };
        let next = create(name, &mut descriptor, true)?;
        Ok(PipeListener { name: name.to_string(), descriptor, next })
    }

    /// Waits for the next client and returns its connected instance.
    pub async fn accept(&mut self) -> io::Result<NamedPipeServer> {
        self.next.connect().await?;
        let fresh = create(&self.name, &mut self.descriptor, false)?;
        Ok(std::mem::replace(&mut self.next, fresh))
    }

    /// The instance waiting for the next client (to inspect its security in tests).
    pub fn pending(&self) -> &NamedPipeServer {
        &self.next
    }
}

fn create(name: &str, descriptor: &mut [u64], first: bool) -> io::Result<NamedPipeServer> {
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor.as_mut_ptr().cast::<c_void>(),
        bInheritHandle: 0,
    };
    let mut options = ServerOptions::new();
    options.first_pipe_instance(first).reject_remote_clients(true);
    // SAFETY: `attributes` and the descriptor it points to (a valid self-relative descriptor,
    // 8-byte aligned) live until CreateNamedPipeW returns inside this call.
    unsafe { options.create_with_security_attributes_raw(name, (&raw mut attributes).cast()) }
}
