//! Writes the merged view of a CIM as plain files. Every path is built from checked names
//! below a directory this code created itself; files are created exclusively, nothing is
//! written through a symlink, and a name that could climb out (`..`, `/`, NUL) is refused.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use winlayer_core::reparse::{Link, is_absolute_target};
use winlayer_core::{Error, FileTime, Result};

use crate::format::FileRecord;
use crate::reader::{Cim, FileId};

/// What an extraction wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Extracted {
    /// Directories created.
    pub directories: u64,
    /// Regular files created.
    pub files: u64,
    /// Further names of files (hard links).
    pub hard_links: u64,
    /// Symlinks created for symlinks and junctions.
    pub symlinks: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Alternate streams left out (with `xattrs`, only those over 64 KiB).
    pub streams_skipped: u64,
}

/// Checks that a stored name is a single, harmless path component.
fn safe_name(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::Invalid(format!("refusing to extract a file named {name:?}")));
    }
    Ok(name)
}

/// The POSIX form of a link target: relative targets with `/`; targets on the container's
/// drive (`C:\…`) relative to the link, inside the extracted tree; anything else verbatim.
pub fn posix_target(link_path: &[String], target: &str) -> String {
    if !is_absolute_target(target) {
        return target.replace('\\', "/");
    }
    let drive_depth = match link_path {
        [first, ..] if first.eq_ignore_ascii_case("Files") => 1,
        [first, second, ..] if first.eq_ignore_ascii_case("UtilityVM") && second.eq_ignore_ascii_case("Files") => 2,
        _ => return target.to_string(),
    };
    let Some(rest) = target.get(2..).filter(|_| target.as_bytes()[1] == b':') else {
        return target.to_string();
    };
    let up = link_path.len().saturating_sub(drive_depth + 1);
    let parts: Vec<&str> = rest.split('\\').filter(|p| !p.is_empty()).collect();
    let mut out: Vec<&str> = vec![".."; up];
    out.extend(parts);
    if out.is_empty() { ".".to_string() } else { out.join("/") }
}

fn system_time(t: u64) -> Option<SystemTime> {
    let ft = FileTime::from_ticks(i64::try_from(t).ok()?)?;
    let unix = ft.ticks() - FileTime::UNIX_EPOCH.ticks();
    let d = Duration::from_nanos(unix.unsigned_abs() * 100);
    if unix >= 0 { SystemTime::UNIX_EPOCH.checked_add(d) } else { SystemTime::UNIX_EPOCH.checked_sub(d) }
}

fn times(r: &FileRecord) -> FileTimes {
    let mut t = FileTimes::new();
    if let Some(m) = system_time(r.last_write_time.get()) {
        t = t.set_modified(m);
    }
    if let Some(a) = system_time(r.last_access_time.get()) {
        t = t.set_accessed(a);
    }
    t
}

/// Extracts the merged view of `cim` into `dir` (created; it must not exist or be empty).
/// With `xattrs`, Windows metadata goes into `user.windows.*` extended attributes.
pub fn extract(cim: &Cim, dir: &Path, xattrs: bool) -> Result<Extracted> {
    let io_err = |what: String| move |e: io::Error| Error::io(what, e);
    match fs::read_dir(dir) {
        Ok(mut items) => {
            if items.next().is_some() {
                return Err(Error::Invalid(format!("{} is not empty; extract into a new directory", dir.display())));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(dir).map_err(io_err(format!("creating {}", dir.display())))?
        }
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    }
    let mut done = Extracted::default();
    let mut made_dirs: HashSet<PathBuf> = HashSet::from([dir.to_path_buf()]);
    let mut dir_times: Vec<(PathBuf, FileTimes)> = Vec::new();
    let mut first_names: HashMap<FileId, PathBuf> = HashMap::new();
    cim.walk(|names, id, r| {
        let mut path = dir.to_path_buf();
        for n in names {
            path.push(safe_name(n)?);
        }
        let parent = path.parent().expect("below dir").to_path_buf();
        if !made_dirs.contains(&parent) {
            return Err(Error::Invalid(format!(
                "{}: its parent is not a directory this extraction created (a link or a file); refusing to write through it",
                names.join("\\")
            )));
        }
        let reparse = cim.reparse(r)?;
        let link = reparse.as_deref().and_then(|b| Link::from_reparse_buffer(b).ok());
        if let Some(link) = link {
            std::os::unix::fs::symlink(posix_target(names, &link.target), &path)
                .map_err(io_err(format!("creating symlink {}", path.display())))?;
            done.symlinks += 1;
            return Ok(());
        }
        if r.is_dir() {
            fs::create_dir(&path).map_err(io_err(format!("creating {}", path.display())))?;
            made_dirs.insert(path.clone());
            dir_times.push((path.clone(), times(r)));
            done.directories += 1;
        } else if let Some(first) = first_names.get(&id) {
            fs::hard_link(first, &path).map_err(io_err(format!("linking {}", path.display())))?;
            done.hard_links += 1;
            return Ok(());
        } else {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err(format!("creating {}", path.display())))?;
            let len = r.default_stream.len();
            if r.default_stream.is_sparse() {
                // All zeros, nothing stored: a hole of that size, not written zeros.
                file.set_len(len).map_err(io_err(format!("sizing {}", path.display())))?;
            } else {
                let copied = io::copy(&mut cim.reader(r.default_stream), &mut file)
                    .map_err(io_err(format!("writing {}", path.display())))?;
                if copied != len {
                    return Err(Error::Invalid(format!("{}: {copied} of {len} bytes read", names.join("\\"))));
                }
            }
            file.flush().map_err(io_err(format!("writing {}", path.display())))?;
            file.set_times(times(r)).map_err(io_err(format!("setting times of {}", path.display())))?;
            first_names.insert(id, path.clone());
            done.files += 1;
            done.bytes += len;
        }
        let streams = cim.streams(r)?.len() as u64;
        if xattrs {
            let attrs = cim.xattrs(r)?;
            let shown = attrs.iter().filter(|(n, _)| n.starts_with(&winlayer_core::xattrs::stream(""))).count() as u64;
            done.streams_skipped += streams - shown;
            for (name, value) in attrs {
                xattr::set(&path, &name, &value)
                    .map_err(io_err(format!("setting {name} on {} (does the file system take user xattrs?)", path.display())))?;
            }
        } else {
            done.streams_skipped += streams;
        }
        Ok(())
    })?;
    // Directory times last, deepest first, once nothing more is written inside them.
    for (path, t) in dir_times.into_iter().rev() {
        File::open(&path)
            .and_then(|f| f.set_times(t))
            .map_err(io_err(format!("setting times of {}", path.display())))?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('/').map(String::from).collect()
    }

    #[test]
    fn link_targets_stay_inside_the_tree() {
        assert_eq!(
            posix_target(&p("Files/Windows/notepad.lnk"), "C:\\Windows\\System32\\notepad.exe"),
            "../Windows/System32/notepad.exe"
        );
        assert_eq!(posix_target(&p("Files/Users/All Users"), "C:\\ProgramData"), "../ProgramData");
        assert_eq!(posix_target(&p("Files/x"), "C:\\"), ".");
        assert_eq!(posix_target(&p("UtilityVM/Files/a/b"), "C:\\w"), "../w");
        assert_eq!(posix_target(&p("Files/a"), "..\\b\\c"), "../b/c");
        assert_eq!(posix_target(&p("Files/a"), "\\\\server\\share"), "\\\\server\\share");
        assert_eq!(posix_target(&p("Hives/a"), "C:\\x"), "C:\\x");
    }

    #[test]
    fn refuses_names_that_climb() {
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
        assert!(safe_name("ok name.txt").is_ok());
    }
}
