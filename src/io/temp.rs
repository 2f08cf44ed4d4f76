//! A run's own folder for its spill files under `--temp-dir` (a scratch disk), instead of the
//! temporary output folder beside `--out`.
//!
//! Several runs may share one `--temp-dir` (a cron job per month, per caisse). Each makes
//! `rac-spill-<pid>-<n>/` there, after taking the lock `rac-spill-<pid>-<n>.lock` beside it (an
//! exclusive `flock`, [`OutputLock`]), and removes both when it ends, fails, or is stopped by
//! a signal (the folder first, then the lock). A run killed with `SIGKILL` cannot: its lock is
//! then released by the system, and the next run that uses the same `--temp-dir` removes the
//! folder of every lock it can take, and every run folder left without a lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::lock::{LockError, OutputLock};
use crate::interrupt::Cleanup;

/// The prefix of the folders (and their locks) runs make in a `--temp-dir`.
const PREFIX: &str = "rac-spill-";

/// This run's folder in a `--temp-dir`, removed when dropped (then its lock released).
#[derive(Debug)]
pub struct TempSpace {
    path: PathBuf,
    /// Dropped after the folder is removed: a later run removes the folder of a lock it takes.
    lock: Option<OutputLock>,
    /// The folder, removed if a signal stops the run (the lock file is the lock's own).
    _cleanup: Cleanup,
}

/// Why no folder was made.
#[derive(Debug)]
pub enum TempError {
    /// `--temp-dir` is missing (`exists` false), or not a folder ([`TempError::not_a_folder`]).
    NotAFolder {
        path: PathBuf,
        exists: bool,
    },
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

impl TempError {
    /// `dir` is not a folder: whether something else is there is judged now.
    pub fn not_a_folder(dir: &Path) -> TempError {
        TempError::NotAFolder {
            path: dir.to_path_buf(),
            exists: fs::symlink_metadata(dir).is_ok(),
        }
    }
}

impl std::fmt::Display for TempError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A file there is named for what it is (QA: "no such folder" for a file).
            TempError::NotAFolder { path, exists: true } => {
                write!(f, "--temp-dir {}: not a folder", path.display())
            }
            TempError::NotAFolder { path, .. } => {
                write!(f, "--temp-dir {}: no such folder", path.display())
            }
            TempError::Io { path, error } => {
                write!(f, "--temp-dir: cannot write {}: {error}", path.display())
            }
        }
    }
}

impl TempSpace {
    /// Makes this run's folder in `dir` (which must exist), after removing what killed runs
    /// left there.
    pub fn create(dir: &Path) -> Result<TempSpace, TempError> {
        TempSpace::clean(dir)?;
        let pid = std::process::id();
        // Another run of this pid (in another pid namespace) may hold `-0`: the next number.
        for n in 0u32.. {
            let path = dir.join(format!("{PREFIX}{pid}-{n}"));
            let lock = match OutputLock::take(&lock_path(&path)) {
                Ok(lock) => lock,
                Err(LockError::Held(_)) => continue,
                Err(LockError::Io(error)) => {
                    return Err(TempError::Io {
                        path: lock_path(&path),
                        error,
                    });
                }
            };
            // A folder of that name whose lock we hold was left by a killed run.
            remove_folder(&path)?;
            let cleanup = Cleanup::register(&[&path]);
            // Under the guard a signal's clean-up holds: not made just after it passed.
            let _creating = Cleanup::hold();
            fs::create_dir(&path).map_err(|error| TempError::Io {
                path: path.clone(),
                error,
            })?;
            return Ok(TempSpace {
                path,
                lock: Some(lock),
                _cleanup: cleanup,
            });
        }
        unreachable!("a free number below 2^32")
    }

    /// Removes what killed runs left in `dir` (which must exist), for a run that makes no
    /// folder there (one small enough to be held in memory): the next run that uses a
    /// `--temp-dir` cleans it, whatever its size.
    pub fn clean(dir: &Path) -> Result<(), TempError> {
        if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(TempError::not_a_folder(dir));
        }
        remove_leftovers(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempSpace {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        drop(self.lock.take());
    }
}

/// Bytes free for this user on the file system of `path` (`statvfs`), if known.
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a plain system call on a nul-terminated path and a buffer owned here; the buffer
    // is read only when the call filled it.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between systems
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

fn lock_path(folder: &Path) -> PathBuf {
    let mut name = folder.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn remove_folder(path: &Path) -> Result<(), TempError> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(TempError::Io {
            path: path.to_path_buf(),
            error,
        }),
        _ => Ok(()),
    }
}

/// Removes the folders of runs that no longer hold their lock (killed), with their locks.
/// A run holds its lock before it makes its folder and until it has removed it (a signal
/// removes the folder first too), so a folder whose lock is free, or that has no lock file,
/// is nobody's. Only names of the form `rac-spill-<pid>-<n>` are judged.
fn remove_leftovers(dir: &Path) -> Result<(), TempError> {
    let read_error = |error| TempError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut folders = std::collections::BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let name = entry.map_err(read_error)?.file_name();
        let Some(name) = name.to_str() else { continue };
        let folder = name.strip_suffix(".lock").unwrap_or(name);
        if is_run_folder(folder) {
            folders.insert(folder.to_string());
        }
    }
    for folder in folders {
        let folder = dir.join(folder);
        // Held: a live run's. Anything else (gone meanwhile, unreadable): left alone.
        if let Ok(lock) = OutputLock::take(&lock_path(&folder)) {
            // Registered after the lock: a signal removes the folder, then the lock.
            let cleanup = Cleanup::register(&[&folder]);
            let removed = remove_folder(&folder);
            drop(cleanup);
            drop(lock);
            match removed {
                // Another user's, in a shared folder: theirs to remove.
                Err(TempError::Io { ref error, .. }) if crate::io::is_denied(error) => {}
                removed => removed?,
            }
        }
    }
    Ok(())
}

/// Whether `name` is `rac-spill-<pid>-<n>`.
fn is_run_folder(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(pid, n)| digits(pid) && digits(n))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_run_s_folder_and_lock_are_removed_when_it_ends_and_a_live_run_s_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = TempSpace::create(dir.path()).unwrap();
        fs::write(first.path().join("acts-0.arrow"), b"spilled").unwrap();
        let pid = std::process::id();
        assert_eq!(
            names(dir.path()),
            [
                format!("rac-spill-{pid}-0"),
                format!("rac-spill-{pid}-0.lock")
            ]
        );
        // A second run beside it (its lock is held): its own folder, the first one kept.
        let second = TempSpace::create(dir.path()).unwrap();
        assert_eq!(second.path(), dir.path().join(format!("rac-spill-{pid}-1")));
        assert!(first.path().join("acts-0.arrow").exists());
        drop(first);
        drop(second);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn what_a_killed_run_left_is_removed_by_the_next_and_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        // A run killed midway: its folder, and its lock file that nobody holds.
        let dead = dir.path().join("rac-spill-999999-0");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("acts-3.arrow"), b"spilled").unwrap();
        fs::write(dir.path().join("rac-spill-999999-0.lock"), "999999\n").unwrap();
        // A folder a signal's removal left without its lock (as rac did before the lock was
        // removed last): nobody's either.
        let unlocked = dir.path().join("rac-spill-999998-2");
        fs::create_dir_all(unlocked.join("spill")).unwrap();
        // Files of other programs, and names not of the run folders' form, are not judged.
        fs::write(dir.path().join("other.tmp"), b"x").unwrap();
        fs::create_dir(dir.path().join("rac-spill-orphan")).unwrap();
        fs::write(dir.path().join("rac-spill-notes.lock"), b"x").unwrap();
        let space = TempSpace::create(dir.path()).unwrap();
        let pid = std::process::id();
        assert_eq!(
            names(dir.path()),
            [
                "other.tmp".to_string(),
                format!("rac-spill-{pid}-0"),
                format!("rac-spill-{pid}-0.lock"),
                "rac-spill-notes.lock".to_string(),
                "rac-spill-orphan".to_string(),
            ]
        );
        drop(space);
        assert_eq!(
            names(dir.path()),
            ["other.tmp", "rac-spill-notes.lock", "rac-spill-orphan"]
        );
    }

    #[test]
    fn a_missing_temp_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("scratch");
        let error = TempSpace::create(&missing).unwrap_err();
        assert!(
            matches!(error, TempError::NotAFolder { ref path, exists: false } if *path == missing)
        );
        assert_eq!(
            error.to_string(),
            format!("--temp-dir {}: no such folder", missing.display())
        );
        let file = dir.path().join("afile");
        fs::write(&file, "").unwrap();
        assert_eq!(
            TempSpace::create(&file).unwrap_err().to_string(),
            format!("--temp-dir {}: not a folder", file.display())
        );
        // A folder it cannot write in (read-only, another user's) names the flag too.
        let denied = TempError::Io {
            path: missing.join("rac-spill-1-0.lock"),
            error: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(
            denied
                .to_string()
                .starts_with(&format!("--temp-dir: cannot write {}", missing.display())),
            "{denied}"
        );
        fs::write(&missing, b"a file").unwrap();
        assert!(matches!(
            TempSpace::create(&missing),
            Err(TempError::NotAFolder { .. })
        ));
    }
}
