//! Zstandard output as independent frames of [`FRAME`] input bytes each, compressed on worker
//! threads and written in input order. A frame depends only on its own bytes, so the output
//! is the same whatever the number of workers or their timing; any zstd reader takes a
//! sequence of frames as one stream.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ruzstd::encoding::CompressionLevel;

/// Input bytes per frame: large enough that splitting costs little ratio, small enough that
/// the frames in flight stay a few MiB.
pub const FRAME: usize = 2 << 20;

/// A frame to compress, and where its compressed bytes go.
type Job = (Vec<u8>, SyncSender<Vec<u8>>);

/// A writer that compresses what it is given into zstd frames on `workers` threads.
pub struct ZstdWriter<W: Write> {
    out: BufWriter<W>,
    buf: Vec<u8>,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// Frames handed out, oldest first; at most `workers + 1`, which bounds the memory.
    pending: VecDeque<Receiver<Vec<u8>>>,
    frames: u64,
}

impl<W: Write> ZstdWriter<W> {
    /// Compresses into `inner` on as many workers as the machine has cores (at most four).
    pub fn new(inner: W) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_workers(inner, cores.min(4))
    }

    /// Compresses into `inner` on `workers` threads (at least one).
    pub fn with_workers(inner: W, workers: usize) -> Self {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..workers.max(1))
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = queue.lock().map(|q| q.recv());
                        let Ok(Ok((data, done))) = job else { return };
                        let mut frame = Vec::with_capacity(data.len() / 2);
                        ruzstd::encoding::compress(&data[..], &mut frame, CompressionLevel::Fastest);
                        // The writer gone means it gave up; nothing to report to.
                        let _ = done.send(frame);
                    }
                })
            })
            .collect();
        ZstdWriter {
            out: BufWriter::with_capacity(1 << 16, inner),
            buf: Vec::with_capacity(FRAME),
            jobs: Some(jobs),
            workers,
            pending: VecDeque::new(),
            frames: 0,
        }
    }

    /// Hands the buffered bytes to a worker as one frame, first writing out the oldest frames
    /// while too many are in flight.
    fn dispatch(&mut self) -> io::Result<()> {
        while self.pending.len() > self.workers.len() {
            self.write_oldest()?;
        }
        let (done, frame) = sync_channel(1);
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(FRAME));
        self.jobs.as_ref().expect("open until finish").send((data, done)).map_err(|_| worker_lost())?;
        self.pending.push_back(frame);
        self.frames += 1;
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let frame = self.pending.pop_front().expect("a frame in flight");
        self.out.write_all(&frame.recv().map_err(|_| worker_lost())?)
    }

    /// Compresses what is left, writes every frame in order and returns the inner writer. An
    /// empty input still gives one (empty) frame, so the output is a valid zstd stream.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.frames == 0 {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        drop(self.jobs.take());
        for worker in self.workers.drain(..) {
            worker.join().map_err(|_| worker_lost())?;
        }
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

impl<W: Write> Write for ZstdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(FRAME - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == FRAME {
            self.dispatch()?;
        }
        Ok(n)
    }

    /// Frames are cut by size alone (so the bytes never depend on when a caller flushes):
    /// this writes out only the frames already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn worker_lost() -> io::Error {
    io::Error::other("a zstd compressor thread stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], workers: usize) -> Vec<u8> {
        let mut w = ZstdWriter::with_workers(Vec::new(), workers);
        // Odd-sized writes, so frames are cut inside them.
        for chunk in data.chunks(777_777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Half compressible text, half noise.
                if (i / 4096) % 2 == 0 { b"windows layer "[i % 14] } else { x as u8 }
            })
            .collect()
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_workers() {
        let data = sample(3 * FRAME + 12_345);
        let one = compress(&data, 1);
        assert_eq!(compress(&data, 3), one);
        assert_eq!(compress(&data, 8), one);
        let mut back = Vec::new();
        io::Read::read_to_end(&mut crate::Input::from_reader(io::Cursor::new(one)).unwrap(), &mut back).unwrap();
        assert!(back == data, "frames read back as the input");
    }

    #[test]
    fn empty_input_is_one_empty_frame() {
        let blob = compress(b"", 2);
        assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let mut back = Vec::new();
        io::Read::read_to_end(&mut crate::Input::from_reader(io::Cursor::new(blob)).unwrap(), &mut back).unwrap();
        assert!(back.is_empty());
    }

    /// The zstd command-line tool (libzstd, not ours) reads the frames as one stream.
    #[test]
    fn the_zstd_tool_reads_the_frames() {
        let Ok(status) = std::process::Command::new("zstd").arg("--version").output() else {
            eprintln!("skipped: no zstd command");
            return;
        };
        assert!(status.status.success());
        let data = sample(2 * FRAME + 99);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frames.zst");
        std::fs::write(&path, compress(&data, 2)).unwrap();
        let out = std::process::Command::new("zstd").args(["-d", "-c", "-q"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == data, "zstd -d gives back the input");
    }
}
