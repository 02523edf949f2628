//! Everything serve creates under its root is its owner's alone, whatever the umask:
//! `metadata.redb` holds every key and label, and the snapshot directories hold the layers.
//! Files are 0600 and directories 0700, set explicitly (a umask can only take bits away, and
//! under umask 000 it takes none). The exceptions are containerd's own: in linux mode a
//! snapshot's `fs/` (0755, the container's root) and `work/` (0711), both inside the
//! snapshot's 0700 directory, so no one else reaches them either.
//!
//! A root that already exists must not be writable by anyone else: whoever can write it can
//! replace the database or the snapshots, so serve refuses to start on one.
//!
//! On Windows the root's ACL, which the service owns, is inherited; these are no-ops there.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// Mode of the files serve creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories serve creates.
pub const DIR_MODE: u32 = 0o700;

/// Refuses an existing `root` that others can write (group or world writable, or owned by
/// another user); creates a missing one, and its missing parents, owner-only.
pub fn prepare_root(root: &Path) -> Result<()> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => check_root(root, &meta),
        Ok(_) => Err(Error::invalid_argument(format!("root {} is not a directory", root.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_dir_all(root),
        Err(e) => Err(Error::io("checking root", root, e)),
    }
}

#[cfg(unix)]
fn check_root(root: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::invalid_argument(format!(
            "root {} is writable by other users (mode {mode:04o}): they could replace the metadata \
             database or the snapshots; make it owner-only (chmod go-w) or use another root",
            root.display()
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::invalid_argument(format!(
            "root {} belongs to uid {}, not to this user (uid {me}), who would share it; use a root of your own",
            root.display(),
            meta.uid()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_root(_: &Path, _: &fs::Metadata) -> Result<()> {
    Ok(())
}

/// Creates `path` and its missing parents, each created one owner-only; an existing `path` is
/// made owner-only.
pub fn create_dir_all(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
            .map_err(|e| Error::io("creating", path, e))?;
    }
    #[cfg(not(unix))]
    fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))?;
    restrict(path)
}

/// Creates the directory `path`, owner-only.
pub fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(|e| Error::io("creating", path, e))?;
    restrict(path)
}

/// Creates the file `path` owner-only when it is missing; makes an existing one owner-only.
pub fn touch_file(path: &Path) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path).map_err(|e| Error::io("creating", path, e))?;
    restrict(path)
}

/// Makes the file or directory `path` owner-only (0600 or 0700).
pub fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::symlink_metadata(path).map_err(|e| Error::io("checking", path, e))?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
        if meta.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("restricting", path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
