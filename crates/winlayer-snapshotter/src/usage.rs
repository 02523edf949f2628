//! Disk usage of a snapshot directory, as containerd's `fs.DiskUsage` measures it: every
//! distinct inode once, its allocated blocks (512-byte units) as the size.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::snapshot::Usage;

/// Measures `root` and everything under it without following symbolic links. Entries that
/// vanish while it runs (a concurrent Remove) are skipped.
pub fn disk_usage(root: &Path) -> Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    let mut pending: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("measuring", &path, e)),
        };
        if let Some(size) = count(&mut seen, &meta) {
            usage.inodes += 1;
            usage.size = usage.size.saturating_add(size);
        }
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("listing", &path, e)),
            };
            for entry in entries {
                pending.push(entry.map_err(|e| Error::io("listing", &path, e))?.path());
            }
        }
    }
    Ok(usage)
}

/// The bytes of a not yet seen inode.
#[cfg(unix)]
fn count(seen: &mut HashSet<(u64, u64)>, meta: &fs::Metadata) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    seen.insert((meta.dev(), meta.ino())).then(|| (meta.blocks() as i64).saturating_mul(512))
}

/// Elsewhere every entry counts once, with its length (hard links are counted per name).
#[cfg(not(unix))]
fn count(_: &mut HashSet<(u64, u64)>, meta: &fs::Metadata) -> Option<i64> {
    Some(meta.len() as i64)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn counts_inodes_once_and_allocated_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fs");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/file"), vec![7u8; 10_000]).unwrap();
        fs::hard_link(root.join("a/file"), root.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.join("dangling")).unwrap();
        let usage = disk_usage(&root).unwrap();
        // fs, a, a/b, the file (two names), the symlink.
        assert_eq!(usage.inodes, 5);
        let blocks: u64 = ["", "a", "a/b", "a/file", "dangling"]
            .iter()
            .map(|p| fs::symlink_metadata(root.join(p)).unwrap().blocks() * 512)
            .sum();
        assert_eq!(usage.size, blocks as i64);
        assert!(usage.size >= 10_000);
        assert_eq!(disk_usage(&dir.path().join("missing")).unwrap(), Usage::default());
    }
}
