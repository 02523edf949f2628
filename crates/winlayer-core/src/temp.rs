//! Temporary files and directories that become outputs once renamed into place.
//!
//! They are created in the destination's directory (so the rename is atomic) with the mode the
//! umask gives any new file, so nothing of the temporary leaks into the result. Their names,
//! `.winlayer-<pid>-<random>`, say which process made them: a run killed outright (SIGKILL,
//! power loss) leaves them behind, and the next run that writes into the same directory removes
//! those whose process is gone. Every one is also recorded, so that a signal handler can remove
//! what an interrupted run made ([`remove_created`]).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How every temporary name starts.
pub const PREFIX: &str = ".winlayer-";

/// Paths of the temporaries this process made that may still exist: those renamed or dropped
/// since are forgotten at the next creation, so a long-running `serve` keeps only what it has
/// in flight.
static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Directories recently searched for leftovers of dead runs, the latest [`SWEPT_KEPT`]: a
/// daemon writes into ever new directories, and sweeping one again costs only a `readdir`.
static SWEPT: Mutex<VecDeque<PathBuf>> = Mutex::new(VecDeque::new());
const SWEPT_KEPT: usize = 64;

fn builder(prefix: &str, mode: u32) -> tempfile::Builder<'_, '_> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
    #[cfg(not(unix))]
    let _ = mode;
    b
}

/// A new temporary file in `dir`, mode 0666 less the umask.
pub fn file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    sweep_once(dir);
    // Created and recorded under the lock, so that [`remove_created`] misses none.
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    let file = builder(&own_prefix(), 0o666).tempfile_in(dir)?;
    record(&mut created, file.path());
    Ok(file)
}

/// A new temporary directory in `dir`, mode 0777 less the umask.
pub fn dir_in(dir: &Path) -> io::Result<tempfile::TempDir> {
    sweep_once(dir);
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    let made = builder(&own_prefix(), 0o777).tempdir_in(dir)?;
    record(&mut created, made.path());
    Ok(made)
}

fn record(created: &mut Vec<PathBuf>, path: &Path) {
    created.retain(|p| std::fs::symlink_metadata(p).is_ok());
    created.push(absolute(path));
}

fn own_prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Removes every temporary this process made that still exists, and makes any further one
/// wait forever: for a signal handler that ends the process right after.
pub fn remove_created() {
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    for path in created.drain(..) {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(&path)),
            Ok(_) => drop(std::fs::remove_file(&path)),
            Err(_) => {}
        }
    }
    // Keep the lock: a temporary created after this could outlive the process.
    std::mem::forget(created);
}

/// The process that made a temporary, from its name; `None` for other names.
pub fn maker(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix(PREFIX)?.split_once('-')?;
    (!rest.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.parse().ok()).flatten()
}

/// Whether process `pid` still runs (on platforms where that cannot be asked: assumed so).
fn running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        match i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
            Some(p) => !matches!(rustix::process::test_kill_process(p), Err(rustix::io::Errno::SRCH)),
            None => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes from `dir` the temporaries of runs whose process is gone; returns their names.
pub fn sweep(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = maker(&name) else { continue };
        if pid == std::process::id() || running(pid) {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if gone.is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// [`sweep`]s `dir` the first time this process writes there (again once it is no longer among
/// the latest swept), telling what it removed.
fn sweep_once(dir: &Path) {
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if swept.contains(&key) {
            return;
        }
        if swept.len() == SWEPT_KEPT {
            swept.pop_front();
        }
        swept.push_back(key);
    }
    let removed = sweep(dir);
    if let Some(first) = removed.first() {
        eprintln!(
            "winlayer: removed {} temporary file(s) an interrupted run left in {} (first: {first})",
            removed.len(),
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_who_made_them() {
        assert_eq!(maker(".winlayer-123-abc"), Some(123));
        assert_eq!(maker(".winlayer-123-"), None);
        assert_eq!(maker(".winlayer-abc"), None, "names of older versions carry no process");
        assert_eq!(maker(".winlayer-12x-abc"), None);
        assert_eq!(maker("winlayer-1-a"), None);
        let dir = tempfile::tempdir().unwrap();
        let made = file_in(dir.path()).unwrap();
        assert_eq!(maker(&made.path().file_name().unwrap().to_string_lossy()), Some(std::process::id()));
    }

    #[test]
    fn sweep_removes_what_dead_runs_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A process that has exited: its id is free (and, here, not reused so quickly).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(d.join(format!(".winlayer-{dead}-x1")), b"partial").unwrap();
        std::fs::create_dir(d.join(format!(".winlayer-{dead}-x2"))).unwrap();
        std::fs::write(d.join(format!(".winlayer-{dead}-x2/region")), b"partial").unwrap();
        let mine = file_in(d).unwrap();
        std::fs::write(d.join(".winlayer-oldstyle"), b"").unwrap();
        std::fs::write(d.join("out.tar"), b"").unwrap();
        let mut left: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(mine.path().exists(), "a live process's temporary stays");
        assert!(d.join(".winlayer-oldstyle").exists() && d.join("out.tar").exists());
    }

    #[test]
    fn only_temporaries_that_still_exist_stay_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = |path: &Path| CREATED.lock().unwrap().contains(&absolute(path));
        let renamed = file_in(dir.path()).unwrap();
        let first = renamed.path().to_path_buf();
        renamed.persist(dir.path().join("out")).unwrap();
        let dropped = dir_in(dir.path()).unwrap();
        let second = dropped.path().to_path_buf();
        drop(dropped);
        let kept = file_in(dir.path()).unwrap();
        assert!(!recorded(&first) && !recorded(&second), "renamed and dropped ones are forgotten");
        assert!(recorded(kept.path()));
    }

    #[test]
    fn swept_directories_are_remembered_up_to_a_bound() {
        let dirs: Vec<_> = (0..SWEPT_KEPT + 3).map(|_| tempfile::tempdir().unwrap()).collect();
        for d in &dirs {
            drop(file_in(d.path()).unwrap());
        }
        assert!(SWEPT.lock().unwrap().len() <= SWEPT_KEPT);
    }

    #[cfg(unix)]
    #[test]
    fn temporaries_get_the_mode_the_umask_gives() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let expected = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        let temp = file_in(dir.path()).unwrap();
        assert_eq!(temp.as_file().metadata().unwrap().permissions().mode() & 0o777, expected);
    }
}
