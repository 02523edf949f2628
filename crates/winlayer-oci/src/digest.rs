//! SHA-256 digests: computed while bytes stream past, checked before anything is kept.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::{Result, invalid};

pub use oci_spec::image::Digest;

/// Parses `sha256:<64 hex>`; other algorithms are refused (winlayer verifies every blob).
pub fn parse(text: &str, what: &str) -> Result<Digest> {
    let digest: Digest = text.parse().map_err(|e| invalid(format!("{what}: digest {text:?}: {e}")))?;
    if digest.algorithm().as_ref() != "sha256" {
        return Err(invalid(format!("{what}: digest {text}: only sha256 is supported")));
    }
    Ok(digest)
}

/// The digest of `bytes`.
pub fn of(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(io::sink());
    h.write_all(bytes).expect("a sink never fails");
    h.digest()
}

/// Hashes what is written through it (and counts it) on its way to `inner`.
pub struct Hasher<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W> Hasher<W> {
    /// A hasher in front of `inner`.
    pub fn new(inner: W) -> Self {
        Hasher { inner, sha: Sha256::new(), len: 0 }
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing passed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of what passed.
    pub fn digest(&self) -> Digest {
        let hex = format!("sha256:{:x}", self.sha.clone().finalize());
        hex.parse().expect("a sha256 digest is valid")
    }

    /// The inner writer back.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for Hasher<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Checks what a hasher saw against the descriptor's digest and size; `what` names the blob
/// and where it came from.
pub fn verify<W>(seen: &Hasher<W>, digest: &Digest, size: u64, what: &str) -> Result<()> {
    if digest.algorithm().as_ref() != "sha256" {
        return Err(invalid(format!("{what}: digest {digest}: only sha256 is supported")));
    }
    if seen.len() != size {
        let how = if seen.len() < size { "truncated" } else { "longer than its descriptor" };
        return Err(invalid(format!("{what}: {how}: {} bytes, the descriptor says {size}", seen.len())));
    }
    let got = seen.digest();
    if &got != digest {
        return Err(invalid(format!("{what}: digest mismatch: the content hashes to {got}")));
    }
    Ok(())
}
