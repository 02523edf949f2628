//! Where a disk's bytes live: a file, or memory (tests and fuzzing).

use std::fs::File;
use std::io;

/// Positional reads and writes over a disk file's bytes.
#[allow(clippy::len_without_is_empty)] // a disk file is never meaningfully "empty"
pub trait Storage: Send {
    /// Fills `buf` from `offset`; reading past the end is an `UnexpectedEof` error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the storage when needed.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes written data durable.
    fn sync(&mut self) -> io::Result<()>;
}

impl Storage for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        #[cfg(unix)]
        return std::os::unix::fs::FileExt::read_exact_at(self, buf, offset);
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                match std::os::windows::fs::FileExt::seek_read(self, &mut buf[done..], offset + done as u64)? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => done += n,
                }
            }
            Ok(())
        }
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        #[cfg(unix)]
        return std::os::unix::fs::FileExt::write_all_at(self, buf, offset);
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                done += std::os::windows::fs::FileExt::seek_write(self, &buf[done..], offset + done as u64)?;
            }
            Ok(())
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// In-memory storage. Growth is capped so that a hostile size cannot exhaust memory.
impl Storage for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64).ok_or(io::Error::from(io::ErrorKind::InvalidInput))?;
        if end > self.len() as u64 {
            Storage::set_len(self, end)?;
        }
        self[offset as usize..end as usize].copy_from_slice(buf);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        const LIMIT: u64 = 1 << 30;
        if len > LIMIT {
            return Err(io::Error::other(format!("in-memory disk limited to {LIMIT} bytes, asked for {len}")));
        }
        self.resize(len as usize, 0);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}
