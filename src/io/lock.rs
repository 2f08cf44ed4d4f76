//! The lock that keeps two runs from writing one output folder at once.
//!
//! The lock is an exclusive `flock` on `.<out>.lock`, held for the whole run: the kernel
//! releases it when the process ends, however it ends (killed with `-9`, by the OOM killer, as
//! a container's pid 1), so a crashed run never blocks the next one, and nothing has to judge
//! whether a pid written in a file is still the run that wrote it. (Pids are used again: by the
//! next boot, or by the next container, where every run is pid 1; a lock judged by its pid
//! blocked every later run after such a crash.) The file holds the pid, for people. Locks are
//! advisory: only rac runs take them. On a network file system `flock` needs the server's lock
//! service (NFSv4, or lockd).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::interrupt::Cleanup;

/// An output folder's lock, held until dropped (or [`OutputLock::release`]d).
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    /// The locked file; closing it releases the lock.
    file: Option<File>,
    /// The lock file's name, removed if a signal stops the run while it holds the lock (not
    /// after: the name may then be the next run's lock).
    cleanup: Option<Cleanup>,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another run holds it; the pid it wrote, if readable.
    Held(Option<u32>),
    Io(io::Error),
}

impl OutputLock {
    /// Takes the lock at `path` (created if needed), without waiting: fails with
    /// [`LockError::Held`] if another run holds it.
    pub fn take(path: &Path) -> Result<OutputLock, LockError> {
        let held = || {
            let pid = fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            LockError::Held(pid)
        };
        loop {
            // Created here, or there already: left by a run that ended, or another run's.
            let options = || {
                let mut options = OpenOptions::new();
                options.read(true).write(true);
                options
            };
            let (mut file, created) = match options().create_new(true).open(path) {
                Ok(file) => (file, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match options().open(path) {
                    Ok(file) => (file, false),
                    // Removed meanwhile by the run that held it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(LockError::Io(e)),
                },
                Err(e) => return Err(LockError::Io(e)),
            };
            match try_lock(&file).map_err(LockError::Io)? {
                Flock::Held => return Err(held()),
                // The run before may have removed the file between our open and our lock (it
                // removes the lock's name, then releases): then the lock taken is on a file no
                // longer there, and a third run could lock a new one. Lock the one at `path`.
                Flock::Taken if !same_file(&file, path) => continue,
                Flock::Taken => {}
                // A file system without locks (NFSv3 without lockd, some FUSE mounts): the
                // file's existence is the lock, as before rac took `flock`s; one that a run
                // killed midway left must then be removed by hand.
                Flock::Unsupported if created => {}
                Flock::Unsupported => return Err(held()),
            }
            file.set_len(0).map_err(LockError::Io)?;
            writeln!(file, "{}", std::process::id()).map_err(LockError::Io)?;
            return Ok(OutputLock {
                path: path.to_path_buf(),
                file: Some(file),
                cleanup: Some(Cleanup::register(&[path])),
            });
        }
    }

    /// Removes the lock file and releases the lock.
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        // No longer removed by a signal (one being acted on now is waited for: it removes
        // the name while this run still holds the lock).
        drop(self.cleanup.take());
        if let Some(file) = self.file.take() {
            // The name first, then the lock: see `take`.
            let _ = fs::remove_file(&self.path);
            drop(file);
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        self.release_inner();
    }
}

/// Whether `file` is the file at `path` now.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// What asking for a file's lock gave.
#[derive(Debug, PartialEq, Eq)]
enum Flock {
    Taken,
    /// Another open file holds it.
    Held,
    /// The file system (or system) has no such locks.
    Unsupported,
}

/// Asks for an exclusive lock on `file`, without waiting.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<Flock> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor owned by `file` for the call's duration.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if status == 0 {
        return Ok(Flock::Taken);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(Flock::Held),
        Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
            Ok(Flock::Unsupported)
        }
        _ => Err(error),
    }
}

/// Elsewhere, the file's existence is the lock.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<Flock> {
    Ok(Flock::Unsupported)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_left_file_is_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".out.lock");
        // A file left by a run that died (or by an earlier rac, which wrote its pid): no lock.
        fs::write(&path, "1\n").unwrap();
        let first = OutputLock::take(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        // Another open of the same file, even in this process, cannot take it.
        match OutputLock::take(&path) {
            Err(LockError::Held(pid)) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        first.release();
        assert!(!path.exists());
        let again = OutputLock::take(&path).unwrap();
        drop(again);
        assert!(!path.exists());
    }

    #[test]
    fn a_lock_taken_on_a_file_removed_meanwhile_is_taken_again_on_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".out.lock");
        // What a run sees when the one before removes the name between its open and its lock.
        let stale = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(try_lock(&stale).unwrap(), Flock::Taken);
        assert!(!same_file(&stale, &path));
        let lock = OutputLock::take(&path).unwrap();
        assert!(same_file(lock.file.as_ref().unwrap(), &path));
    }
}
