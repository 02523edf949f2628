//! Layer directories on the host: names looked up as Windows compares them (ASCII case
//! ignored, so a tree made on Linux may spell `System32` as `system32`), never through links.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use winlayer_core::{Error, Result};

use crate::names::same_name;

/// What an object on the host is, links not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (a reparse point on Windows).
    Link,
    /// A socket, FIFO or device.
    Other,
}

impl Kind {
    /// Reads the kind of `path`; `None` when nothing is there.
    pub fn of(path: &Path) -> Result<Option<Kind>> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Ok(Some(Kind::Link)),
            Ok(m) if m.is_dir() => Ok(Some(Kind::Dir)),
            Ok(m) if m.is_file() => Ok(Some(Kind::File)),
            Ok(_) => Ok(Some(Kind::Other)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// How a message names it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File => "a regular file",
            Kind::Link => "a symbolic link",
            Kind::Other => "a socket, FIFO or device",
        }
    }
}

/// The object named `name` (any ASCII case) in `dir`, with its kind. Two spellings of one name
/// are an error: Windows could not hold both.
pub fn lookup(dir: &Path, name: &str) -> Result<Option<(PathBuf, Kind)>> {
    let mut found: Vec<String> = Vec::new();
    let items = match fs::read_dir(dir) {
        Ok(items) => items,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    for item in items {
        let item = item.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        if let Some(n) = item.file_name().to_str().filter(|n| same_name(n, name)) {
            found.push(n.to_string());
        }
    }
    found.sort();
    match found.as_slice() {
        [] => Ok(None),
        [one] => {
            let path = dir.join(one);
            let kind = Kind::of(&path)?.ok_or_else(|| Error::Invalid(format!("{} vanished", path.display())))?;
            Ok(Some((path, kind)))
        }
        many => Err(Error::Invalid(format!(
            "{}: {} differ only in case, which Windows treats as one name",
            dir.display(),
            many.join(", ")
        ))),
    }
}

/// Follows the directories `names` down from `root`, each matched in any case and required to
/// be a real directory (a link could lead outside the layer). Missing ones are created when
/// `created` is given (and recorded there, parents first); otherwise `None` says one is
/// missing.
pub fn descend(root: &Path, names: &[&str], mut created: Option<&mut Vec<PathBuf>>) -> Result<Option<PathBuf>> {
    let mut at = root.to_path_buf();
    for name in names {
        at = match lookup(&at, name)? {
            Some((path, Kind::Dir)) => path,
            Some((path, kind)) => {
                let why = if kind == Kind::Link { "; links are refused here" } else { "" };
                return Err(Error::Invalid(format!("{} is {}, not a directory{why}", path.display(), kind.describe())));
            }
            None => match created.as_deref_mut() {
                Some(created) => {
                    let path = at.join(name);
                    fs::create_dir(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                    created.push(path.clone());
                    path
                }
                None => return Ok(None),
            },
        };
    }
    Ok(Some(at))
}

/// The regular file at `path` (names below `root`, any case), or `None` when a component is
/// missing; anything but directories on the way and a regular file at the end is an error.
pub fn find_file(root: &Path, path: &str) -> Result<Option<PathBuf>> {
    let names: Vec<&str> = path.split('/').collect();
    let (last, dirs) = names.split_last().expect("a path has a name");
    let Some(dir) = descend(root, dirs, None)? else { return Ok(None) };
    match lookup(&dir, last)? {
        None => Ok(None),
        Some((path, Kind::File)) => Ok(Some(path)),
        Some((path, kind)) => {
            Err(Error::Invalid(format!("{} is {}, not a regular file", path.display(), kind.describe())))
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn finds_any_spelling_and_refuses_links_and_doubles() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("Files/windows/SYSTEM32")).unwrap();
        fs::write(t.path().join("Files/windows/SYSTEM32/sam"), b"x").unwrap();
        let got = find_file(t.path(), "Files/Windows/System32/SAM").unwrap().unwrap();
        assert_eq!(got, t.path().join("Files/windows/SYSTEM32/sam"));
        assert_eq!(find_file(t.path(), "Files/Windows/System32/SYSTEM").unwrap(), None);
        assert_eq!(find_file(t.path(), "Files/Other/x").unwrap(), None);
        let err = find_file(t.path(), "Files/Windows/System32").unwrap_err().to_string();
        assert!(err.contains("is a directory, not a regular file"), "{err}");

        std::os::unix::fs::symlink("/etc", t.path().join("Files/windows/config")).unwrap();
        let err = descend(t.path(), &["Files", "Windows", "Config"], None).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link, not a directory; links are refused"), "{err}");

        fs::create_dir(t.path().join("Files/WINDOWS")).unwrap();
        let err = lookup(&t.path().join("Files"), "Windows").unwrap_err().to_string();
        assert!(err.contains("WINDOWS, windows differ only in case"), "{err}");

        let mut created = Vec::new();
        let dir = descend(t.path(), &["Hives", "deep"], Some(&mut created)).unwrap().unwrap();
        assert_eq!(created, [t.path().join("Hives"), t.path().join("Hives/deep")]);
        assert!(dir.is_dir());
    }
}
