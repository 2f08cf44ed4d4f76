//! Input files must stay as they were while a run reads them.
//!
//! A run opens an input file more than once (a first pass over the acts, the partitioning, the
//! SHA-256 of the manifest): a file replaced in between (a new extract moved into place over
//! the old one) or written to would be read in part from each, and the manifest would record
//! the digest of a file other than the one computed. Every open of an input is noted here; an
//! open that finds another file than the first one under the same path fails the run.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// What tells one version of a file from another: where it is stored, its size and its last
/// change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Identity {
    /// The identity of an open file.
    pub fn of(file: &File) -> std::io::Result<Identity> {
        let meta = file.metadata()?;
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Ok(Identity {
            device,
            inode,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// The identity of each input as first opened.
#[derive(Debug, Default)]
struct Seen(HashMap<PathBuf, Identity>);

impl Seen {
    fn note(&mut self, path: &Path, identity: Identity) -> Result<(), String> {
        match self.0.get(path) {
            Some(seen) if *seen != identity => Err(changed()),
            Some(_) => Ok(()),
            None => {
                self.0.insert(path.to_path_buf(), identity);
                Ok(())
            }
        }
    }
}

/// The run's inputs; `None` before [`watch`].
static FIRST: Mutex<Option<Seen>> = Mutex::new(None);

/// Starts noting the inputs' identities: called once by a command that runs (`compute`,
/// `audit`), for the process's one run. Before it, [`note`] notes nothing (a program that
/// runs the library several times, on files it rewrites in between, is not refused).
pub fn watch() {
    let mut first = FIRST.lock().unwrap_or_else(|p| p.into_inner());
    *first = Some(Seen::default());
}

/// Notes that `file` was opened as `path`; an error (the message) if `path` was opened before
/// as another file, or as this one before a change.
pub fn note(path: &Path, file: &File) -> Result<(), String> {
    let mut first = FIRST.lock().unwrap_or_else(|p| p.into_inner());
    match first.as_mut() {
        Some(seen) => seen.note(path, Identity::of(file).map_err(|e| e.to_string())?),
        None => Ok(()),
    }
}

/// The message of a file that changed during the run.
pub fn changed() -> String {
    "changed during the run (replaced, or written to): the outputs would not match it; run again once it no longer changes".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_replaced_or_written_to_after_its_first_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Seen::default();
        let open = |seen: &mut Seen, path: &Path| {
            seen.note(path, Identity::of(&File::open(path).unwrap()).unwrap())
        };
        let path = dir.path().join("acts.csv");
        std::fs::write(&path, "a\n1\n").unwrap();
        open(&mut seen, &path).unwrap();
        open(&mut seen, &path).unwrap();
        // Replaced by another file (moved into place).
        let new = dir.path().join("new.csv");
        std::fs::write(&new, "a\n1\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(open(&mut seen, &path), Err(changed()));
        // Written to.
        let other = dir.path().join("other.csv");
        std::fs::write(&other, "a\n1\n").unwrap();
        open(&mut seen, &other).unwrap();
        std::fs::write(&other, "a\n1\n2\n").unwrap();
        assert_eq!(open(&mut seen, &other), Err(changed()));
    }
}
