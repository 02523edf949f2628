//! A reader or writer that shows every byte passing through it to a closure: a stream hashed,
//! counted or reported on its way somewhere else.

use std::io::{self, Read, Write};

/// Passes reads or writes through to `inner`, handing `see` each chunk that went through.
pub struct Tap<T, F> {
    inner: T,
    see: F,
}

impl<T, F: FnMut(&[u8])> Tap<T, F> {
    /// Taps `inner`.
    pub fn new(inner: T, see: F) -> Self {
        Tap { inner, see }
    }

    /// The reader or writer tapped.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Read, F: FnMut(&[u8])> Read for Tap<T, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.see)(&buf[..n]);
        Ok(n)
    }
}

impl<T: Write, F: FnMut(&[u8])> Write for Tap<T, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.see)(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_through_is_seen_once() {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        io::copy(&mut Tap::new(&b"hello, tap"[..], |b: &[u8]| seen.extend_from_slice(b)), &mut out).unwrap();
        assert_eq!((seen.as_slice(), out.as_slice()), (&b"hello, tap"[..], &b"hello, tap"[..]));

        let mut seen = 0;
        let mut writer = Tap::new(Vec::new(), |b: &[u8]| seen += b.len());
        writer.write_all(b"twelve bytes").unwrap();
        assert_eq!(writer.into_inner(), b"twelve bytes");
        assert_eq!(seen, 12);
    }
}
