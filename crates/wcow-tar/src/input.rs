//! Where a layer tar comes from and goes to: plain, gzip or zstd, detected from the bytes;
//! plain files are read with seeks so data never read is never touched.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

use crate::zstd::ZstdWriter;
use winlayer_core::Origin;

/// A compression format of layer blobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed tar.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard, possibly several frames.
    Zstd,
}

impl Compression {
    /// Detects the format from the first bytes of a blob.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Headers are read through a small buffer: a large one would re-read the data it skips.
const HEADER_BUFFER: usize = 16 * 1024;

/// An uncompressed tar byte stream with its position, able to skip cheaply when it is a file.
pub struct Input {
    kind: Kind,
    pos: u64,
    compression: Compression,
    name: Option<String>,
}

enum Kind {
    File { reader: BufReader<File>, shared: Arc<File>, len: u64 },
    Stream(Box<dyn Read + Send>),
}

/// Reads every zstd frame of a stream in turn.
struct ZstdFrames<R: BufRead> {
    current: Option<StreamingDecoder<R, FrameDecoder>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let (mut source, decoder) = self.current.take().expect("decoder present").into_parts();
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.current = Some(
                StreamingDecoder::new_with_decoder(source, decoder)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?,
            );
        }
    }
}

/// The uncompressed bytes of a blob (plain, gzip or zstd, detected from its first bytes),
/// decompressed ahead on a thread of its own as [`Input::from_reader`] does.
pub fn decompress(reader: impl Read + Send + 'static) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    let mut raw = BufReader::with_capacity(1 << 16, reader);
    let compression = Compression::detect(raw.fill_buf()?);
    Ok((compression, decompressor(compression, raw, Decompress::Ahead)?))
}

/// How a compressed stream is decompressed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decompress {
    /// On a thread of its own, a few chunks ahead of the reader (while the rest of the work
    /// waits on I/O or runs on the other core).
    Ahead,
    /// On the reader's thread, as it reads: bytes in memory, where no thread may outlive the
    /// input (fuzzing with leak detection).
    Inline,
}

fn decompressor(
    compression: Compression,
    raw: impl BufRead + Send + 'static,
    how: Decompress,
) -> io::Result<Box<dyn Read + Send>> {
    let run = |inner: Box<dyn Read + Send>| -> io::Result<Box<dyn Read + Send>> {
        match how {
            Decompress::Ahead => Ok(Box::new(ReadAhead::spawn(inner)?)),
            Decompress::Inline => Ok(inner),
        }
    };
    match compression {
        Compression::None => Ok(Box::new(raw)),
        Compression::Gzip => run(Box::new(flate2::bufread::MultiGzDecoder::new(raw))),
        Compression::Zstd => {
            let dec = StreamingDecoder::new(raw)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            run(Box::new(ZstdFrames { current: Some(dec) }))
        }
    }
}

/// Bytes of one read-ahead chunk, and chunks that may wait for the reader.
const AHEAD_CHUNK: usize = 256 << 10;
const AHEAD_CHUNKS: usize = 4;

/// A reader run on a thread of its own, a few chunks ahead: decompressing a layer costs about
/// as much as everything else done with it, so it goes on the other core.
struct ReadAhead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Chunks read, handed back for reuse.
    spent: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ReadAhead {
    fn spawn(mut inner: impl Read + Send + 'static) -> io::Result<ReadAhead> {
        let (ready, chunks) = sync_channel(AHEAD_CHUNKS);
        let (spent, reuse) = sync_channel::<Vec<u8>>(AHEAD_CHUNKS + 1);
        // The thread ends at the end of the stream, on an error, or when the reader is gone.
        std::thread::Builder::new().name("layer-decompress".into()).spawn(move || {
            loop {
                let mut chunk = reuse.try_recv().unwrap_or_default();
                chunk.resize(AHEAD_CHUNK, 0);
                let (mut n, mut failed) = (0, None);
                while n < AHEAD_CHUNK {
                    match inner.read(&mut chunk[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                chunk.truncate(n);
                // Bytes before an error still count; an empty chunk marks the end.
                let end = n == 0 && failed.is_none();
                if (n > 0 || end) && ready.send(Ok(chunk)).is_err() {
                    return;
                }
                if let Some(e) = failed {
                    let _ = ready.send(Err(e));
                    return;
                }
                if end {
                    return;
                }
            }
        })?;
        Ok(ReadAhead { chunks, spent, current: Vec::new(), at: 0, ended: false })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() && !self.ended {
            let next = match self.chunks.recv() {
                Ok(result) => result?,
                Err(_) => return Err(io::Error::other("the decompression thread stopped")),
            };
            self.ended = next.is_empty();
            let done = std::mem::replace(&mut self.current, next);
            let _ = self.spent.try_send(done);
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Input {
    /// Opens a file, or standard input for `-`, detecting compression.
    pub fn open(path: &Path) -> io::Result<Input> {
        let name = Some(if path.as_os_str() == "-" { "standard input".into() } else { path.display().to_string() });
        if path.as_os_str() == "-" {
            return Ok(Input { name, ..Input::from_reader(io::stdin())? });
        }
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(Input { name, ..Input::from_reader(file)? });
        }
        let mut magic = [0u8; 4];
        let n = read_full(&mut file, &mut magic)?;
        file.seek(SeekFrom::Start(0))?;
        let compression = Compression::detect(&magic[..n]);
        if compression != Compression::None {
            return Ok(Input {
                kind: Kind::Stream(decompressor(
                    compression,
                    BufReader::with_capacity(1 << 16, file),
                    Decompress::Ahead,
                )?),
                pos: 0,
                compression,
                name,
            });
        }
        let shared = Arc::new(file.try_clone()?);
        Ok(Input {
            kind: Kind::File { reader: BufReader::with_capacity(HEADER_BUFFER, file), shared, len: meta.len() },
            pos: 0,
            compression,
            name,
        })
    }

    /// Wraps any reader, detecting compression from its first bytes.
    pub fn from_reader(reader: impl Read + Send + 'static) -> io::Result<Input> {
        let (compression, stream) = decompress(reader)?;
        Ok(Input { kind: Kind::Stream(stream), pos: 0, compression, name: None })
    }

    /// Reads a blob held in memory, detecting compression; it is decompressed as it is read,
    /// on the caller's thread, so no thread outlives the input.
    pub fn from_bytes(bytes: impl AsRef<[u8]> + Send + 'static) -> io::Result<Input> {
        let raw = io::Cursor::new(bytes);
        let compression = Compression::detect(raw.get_ref().as_ref());
        let kind = Kind::Stream(decompressor(compression, raw, Decompress::Inline)?);
        Ok(Input { kind, pos: 0, compression, name: None })
    }

    /// Wraps a reader of an uncompressed tar (for a caller that decompressed it with
    /// [`decompress`], to see the uncompressed bytes on their way).
    pub fn from_plain_reader(reader: impl Read + Send + 'static) -> Input {
        Input { kind: Kind::Stream(Box::new(reader)), pos: 0, compression: Compression::None, name: None }
    }

    /// What the input is called in messages: the path it was opened from ("standard input"
    /// for `-`); `None` for a reader.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The compression detected.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Offset in the uncompressed stream.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes left, when known (plain files).
    pub fn remaining(&self) -> Option<u64> {
        match &self.kind {
            Kind::File { len, .. } => Some(len.saturating_sub(self.pos)),
            Kind::Stream(_) => None,
        }
    }

    /// Where bytes at the current position can be read again.
    pub fn origin(&self) -> Origin {
        match &self.kind {
            Kind::File { shared, .. } => Origin::FileRange(shared.clone(), self.pos),
            Kind::Stream(_) => Origin::Stream,
        }
    }

    /// Fills `buf` unless the stream ends first; returns the bytes read.
    pub fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.kind {
            Kind::File { reader, .. } => read_full(reader, buf)?,
            Kind::Stream(r) => read_full(r, buf)?,
        };
        self.pos += n as u64;
        Ok(n)
    }

    /// Skips `n` bytes; returns how many were actually there.
    pub fn skip(&mut self, n: u64) -> io::Result<u64> {
        let skipped = match &mut self.kind {
            Kind::File { reader, len, .. } => {
                let n = n.min(len.saturating_sub(self.pos));
                reader.seek_relative(n as i64)?;
                n
            }
            Kind::Stream(r) => io::copy(&mut r.take(n), &mut io::sink())?,
        };
        self.pos += skipped;
        Ok(skipped)
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.kind {
            Kind::File { reader, .. } => reader.read(buf)?,
            Kind::Stream(r) => r.read(buf)?,
        };
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A compressing writer; [`Output::finish`] completes the stream and returns the inner writer.
pub enum Output<W: Write + Send + 'static> {
    /// No compression.
    Plain(BufWriter<W>),
    /// gzip with a fixed header (no name, time 0), so output is reproducible.
    Gzip(Box<flate2::write::GzEncoder<BufWriter<W>>>),
    /// Zstandard, frames compressed on worker threads ([`crate::zstd`]).
    Zstd(Box<ZstdWriter<W>>),
}

impl<W: Write + Send + 'static> Output<W> {
    /// Wraps `inner` with `compression`.
    pub fn new(inner: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Output::Plain(BufWriter::with_capacity(1 << 16, inner)),
            Compression::Gzip => Output::Gzip(Box::new(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(BufWriter::with_capacity(1 << 16, inner), flate2::Compression::default()),
            )),
            Compression::Zstd => Output::Zstd(Box::new(ZstdWriter::new(inner))),
        })
    }

    /// Finishes compression and flushes; returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Output::Plain(w) => w.into_inner().map_err(|e| e.into_error()),
            Output::Gzip(g) => g.finish()?.into_inner().map_err(|e| e.into_error()),
            Output::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(w) => w.write(buf),
            Output::Gzip(g) => g.write(buf),
            Output::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(w) => w.flush(),
            Output::Gzip(g) => g.flush(),
            Output::Zstd(z) => z.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: Compression) {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Output::new(Vec::new(), c).unwrap();
        out.write_all(&data).unwrap();
        let blob = out.finish().unwrap();
        assert_eq!(Compression::detect(&blob), c);
        let mut input = Input::from_reader(io::Cursor::new(blob.clone())).unwrap();
        let mut back = Vec::new();
        input.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // Same input, same bytes.
        let mut again = Output::new(Vec::new(), c).unwrap();
        again.write_all(&data).unwrap();
        assert_eq!(again.finish().unwrap(), blob);
    }

    #[test]
    fn compressions_round_trip_deterministically() {
        round_trip(Compression::None);
        round_trip(Compression::Gzip);
        round_trip(Compression::Zstd);
    }

    #[test]
    fn concatenated_members_and_frames() {
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut blob = Vec::new();
            for part in [&b"first "[..], b"second"] {
                let mut out = Output::new(Vec::new(), c).unwrap();
                out.write_all(part).unwrap();
                blob.extend(out.finish().unwrap());
            }
            let mut back = String::new();
            Input::from_reader(io::Cursor::new(blob)).unwrap().read_to_string(&mut back).unwrap();
            assert_eq!(back, "first second", "{c:?}");
        }
    }

    /// Gives `data` in reads of at most 1000 bytes, then fails.
    struct FailsAfter(io::Cursor<Vec<u8>>);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let max = buf.len().min(1000);
            match self.0.read(&mut buf[..max])? {
                0 => Err(io::Error::new(io::ErrorKind::InvalidData, "broken on purpose")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn read_ahead_keeps_every_byte_and_then_the_error() {
        // Across several chunks, and ending inside one.
        let data: Vec<u8> = (0..(AHEAD_CHUNK * 3 + 12345) as u32).map(|i| (i % 253) as u8).collect();
        let mut ahead = ReadAhead::spawn(FailsAfter(io::Cursor::new(data.clone()))).unwrap();
        let mut back = Vec::new();
        let err = ahead.read_to_end(&mut back).unwrap_err();
        assert_eq!(back, data, "every byte before the error arrives, in order");
        assert_eq!(err.to_string(), "broken on purpose");
        // A reader dropped early ends the thread rather than leaving it blocked.
        let endless = io::repeat(7);
        let mut ahead = ReadAhead::spawn(endless).unwrap();
        let mut some = [0u8; 10];
        ahead.read_exact(&mut some).unwrap();
        drop(ahead);
    }

    #[test]
    fn truncated_compressed_input_is_an_error_after_its_bytes() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 256) as u8).collect();
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut out = Output::new(Vec::new(), c).unwrap();
            out.write_all(&data).unwrap();
            let mut blob = out.finish().unwrap();
            blob.truncate(blob.len() * 2 / 3);
            let mut back = Vec::new();
            let result = Input::from_reader(io::Cursor::new(blob)).unwrap().read_to_end(&mut back);
            assert!(result.is_err(), "{c:?}: a truncated stream must not look complete");
            assert!(data.starts_with(&back), "{c:?}: what was read is the start of the data");
        }
    }

    #[test]
    fn file_input_skips_and_knows_origin() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&(0..=255u8).collect::<Vec<_>>()).unwrap();
        let mut input = Input::open(f.path()).unwrap();
        assert_eq!(input.remaining(), Some(256));
        assert_eq!(input.skip(10).unwrap(), 10);
        let mut b = [0u8; 2];
        input.read_full(&mut b).unwrap();
        assert_eq!(b, [10, 11]);
        assert!(matches!(input.origin(), Origin::FileRange(_, 12)));
        assert_eq!(input.skip(1000).unwrap(), 244);
    }
}
