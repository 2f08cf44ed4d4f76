//! Writers of the outputs of SPEC §4, written atomically into `--out`.
//!
//! - [`Staging`] makes the output folder atomic (SPEC §1): every file is written into a
//!   hidden temporary folder beside `--out`, which replaces `--out` with renames at
//!   [`Staging::commit`]. A run that fails or is killed leaves the previous outputs in place.
//! - [`Row`] describes a table once (column names, types and how to read each cell); Parquet
//!   and CSV are both derived from that one list, so the two formats cannot drift apart.
//!   Implemented for [`Outcome`] (`acts`), [`PatientYear`] (`patients`), [`SummaryRow`]
//!   (`summary`), [`YearCounter`] (`counters`) and [`Reject`] (`rejects`).
//! - [`TableWriter`] streams rows into one table file in chunks. Encoding a chunk
//!   ([`encode`], [`to_batch`]) is a pure function, so a caller may encode several chunks in
//!   parallel and hand them to the writer in order ([`TableWriter::write_encoded`]).
//!
//! Extension point: a new table (e.g. `discrepancies` for `audit`: `act_id`, `recorded_amo`,
//! `amo_paid`, `difference`, `explanation`) only needs an `impl Row` with its column list;
//! writers, formats and tests come with it.
//!
//! Determinism: Parquet files carry no timestamp, and rows are re-cut into fixed chunks of
//! [`CHUNK_ROWS`] before encoding, so the bytes depend only on the rows and their order, not on
//! how the caller sliced them (nor on the number of threads).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lock::{LockError, OutputLock};
use crate::interrupt::Cleanup;

use arrow::array::{
    ArrayRef, AsArray, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::model::{Id, Outcome, Reject, YearCounter};
use crate::report::{PatientYear, SummaryRow};

/// Rows per Parquet row group, unless the table says otherwise ([`Row::ROW_GROUP_ROWS`]). A
/// [`TableWriter`] holds the Arrow batches of at most one row group before it encodes them:
/// the writer's share of `--memory-limit`. DuckDB's row groups are about this size too.
pub const ROW_GROUP_ROWS: usize = 1 << 17;

/// Bytes of carried values (`--keep-columns`) that end a row group of a carrying table
/// before [`ROW_GROUP_ROWS`]: checked at the end of each block of [`BLOCK_ROWS`] rows, so a
/// row group holds at most this and one block more. A row group is held whole, as Arrow and then encoded, before it is
/// written: 131 072 rows of a 2 000-character column would be 260 MB twice over. The spec's
/// columns of 131 072 acts take about 30 MB as Arrow. The cut depends only on the rows, so the
/// bytes stay the same whatever the thread count or `--memory-limit`.
pub const ROW_GROUP_CARRIED_BYTES: usize = 16 << 20;

/// Rows that [`to_batches`] hands to one core at a time (blocks in parallel), and the pieces in
/// which the Parquet writer encodes a row group ([`write_row_group`]): a divisor of
/// [`CHUNK_ROWS`], so that row groups start on a block.
const BLOCK_ROWS: usize = 2048;
const _: () = assert!(CHUNK_ROWS / BLOCK_ROWS * BLOCK_ROWS == CHUNK_ROWS);

/// Rows per encoded chunk (Arrow batch or CSV block). Row groups are a multiple of it.
pub const CHUNK_ROWS: usize = 1 << 16;

// ---------------------------------------------------------------------------------------------
// Format

/// Output format of the tables (`--format`). `rejects.csv` and `manifest.json` are always
/// CSV and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    #[default]
    Parquet,
    Csv,
}

impl Format {
    pub const ALL: &'static [Format] = &[Format::Parquet, Format::Csv];

    /// `"parquet"` or `"csv"`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// The spelling of `--format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }

    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        Format::parse(text).ok_or_else(|| format!("unknown format {text:?} (parquet or csv)"))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A row that cannot be encoded (pure; no file involved yet).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("table {table}, column {column}, row {key}: {value} is not {expected}")]
    Value {
        table: &'static str,
        column: &'static str,
        /// The row's id (`act_id`, `patient_id`, …).
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

/// An output that could not be written; every message names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// `"cannot create"`, `"cannot write"`, …
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rename {} to {}: {source}", .from.display(), .to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: EncodeError,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "another run is writing {} (it holds the lock on {}; on a file system without locks, a run killed midway leaves that file: remove it if no run is active)",
        .out.display(),
        .lock.display()
    )]
    Locked { out: PathBuf, lock: PathBuf },
    #[error(
        "refusing to replace {}: it is a non-empty folder that is not a rac output (no \
         manifest.json); choose another output folder or empty it",
        .out.display()
    )]
    NotRacOutput { out: PathBuf },
    /// A rac output folder that also holds files no run writes: a run replaces the whole
    /// folder, and they would be deleted with it.
    #[error(
        "refusing to replace {}: besides a rac run's outputs it holds {files}, which rac did not write and a run would delete (it replaces the whole folder); move them out, or choose another output folder",
        .out.display()
    )]
    ForeignFiles { out: PathBuf, files: String },
    #[error("{} exists and is not a folder", .out.display())]
    NotAFolder { out: PathBuf },
    #[error("{} cannot be an output folder (it has no folder name)", .out.display())]
    BadOutPath { out: PathBuf },
    /// The run may not write beside `out` (permissions, a read-only file system).
    #[error(
        "cannot write the output folder {}: {action} {}: {source}",
        .out.display(),
        .path.display()
    )]
    OutNotWritable {
        out: PathBuf,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An input that changed during the run, found when its SHA-256 was taken.
    #[error("{}: {message}", .path.display())]
    Changed { path: PathBuf, message: String },
    #[error("internal error writing {}: {message}", .path.display())]
    Internal { path: PathBuf, message: String },
}

impl WriteError {
    /// Errors of the user's configuration (`--out`), rather than of the disk: the run should
    /// stop before computing (exit code 2, nothing written).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            WriteError::Locked { .. }
                | WriteError::NotRacOutput { .. }
                | WriteError::ForeignFiles { .. }
                | WriteError::NotAFolder { .. }
                | WriteError::BadOutPath { .. }
                | WriteError::OutNotWritable { .. }
        )
    }

    fn io(action: &'static str, path: &Path, source: io::Error) -> WriteError {
        WriteError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Atomic output folder

/// The output folder being written: a temporary folder beside `out` that replaces `out` on
/// [`commit`](Staging::commit), under a lock file that keeps two runs (e.g. overlapping cron
/// jobs) from writing the same `out`.
///
/// Files, for `out = /data/results`:
/// - `/data/.results.lock`: the lock ([`OutputLock`]: held by the run while it lives, released
///   by the system however it ends; the file holds the pid);
/// - `/data/.results.tmp-<pid>`: the folder to write into ([`Staging::path`]);
/// - `/data/.results.old-<pid>`: the previous outputs, for the instant between the two
///   renames of the commit.
///
/// Crash safety: until the commit, `out` is untouched. The commit fsyncs every file, gives the
/// temporary folder the permission bits and group of the `out` it replaces, swaps the two in
/// one step (Linux `renameat2(RENAME_EXCHANGE)`) and removes the previous outputs (now at the
/// temporary path; a crash before that leaves them there, and the next run removes them).
/// Where the swap is not available, it renames `out` away, then the temporary folder to
/// `out`: a crash between the two renames leaves `out` missing and the previous outputs in
/// `.results.old-<pid>`; the next run puts them back before anything else. So `out` always
/// holds either the previous outputs or the new ones, never a mix.
///
/// Dropping a `Staging` without committing removes the temporary folder and the lock.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    tmp: PathBuf,
    old: PathBuf,
    lock: Option<OutputLock>,
    /// The temporary folder, removed if a signal stops the run (the lock file is the lock's
    /// own, [`OutputLock`]).
    _cleanup: Cleanup,
    /// Name of `out` (the file-name part), for the sibling names.
    name: String,
    done: bool,
}

/// Whether process `pid` is gone (Linux: no `/proc/<pid>`; elsewhere, never judged so).
fn pid_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

impl Staging {
    /// Takes the lock for `out` and creates the temporary folder (creating `out`'s parent if
    /// needed). Fails if another run holds the lock, if `out` is a file, or if `out` is a
    /// non-empty folder without a `manifest.json` (not a rac output: never deleted).
    /// A folder this run may not write (permissions, a read-only file system) fails with
    /// [`WriteError::OutNotWritable`]: a configuration error, as the others.
    pub fn begin(out: &Path) -> Result<Staging, WriteError> {
        Staging::lock_and_create(out).map_err(|e| match e {
            WriteError::Io {
                action,
                path,
                source,
            } if super::is_denied(&source) => WriteError::OutNotWritable {
                out: out.to_path_buf(),
                action,
                path,
                source,
            },
            e => e,
        })
    }

    /// [`Staging::begin`], its IO errors as they come.
    fn lock_and_create(out: &Path) -> Result<Staging, WriteError> {
        // `out` a symbolic link (`results/latest -> /data/2024-01`): the folder it points to
        // is the one replaced (staged beside it, on its file system), the link left as it is.
        // `results/latest/` (a slash at the end, as shells complete a folder) names `latest`.
        let out: PathBuf = out.components().collect();
        let target = resolve_link(&out)?;
        let out = target.as_deref().unwrap_or(&out);
        let name = match out.file_name().and_then(|n| n.to_str()) {
            Some(name) if name != "." && name != ".." => name.to_string(),
            _ => {
                return Err(WriteError::BadOutPath {
                    out: out.to_path_buf(),
                });
            }
        };
        let parent = parent_of(out);
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).map_err(|e| {
                use io::ErrorKind::{AlreadyExists, NotADirectory};
                // A file where a folder of the path should be (`--out afile/sub`): a
                // configuration error, as `--out afile` is.
                if matches!(e.kind(), AlreadyExists | NotADirectory) {
                    WriteError::OutNotWritable {
                        out: out.to_path_buf(),
                        action: "cannot create folder",
                        path: parent.to_path_buf(),
                        source: e,
                    }
                } else {
                    WriteError::io("cannot create folder", parent, e)
                }
            })?;
        }
        check_replaceable(out)?;

        let lock_path = out.with_file_name(format!(".{name}.lock"));
        let lock = OutputLock::take(&lock_path).map_err(|e| match e {
            LockError::Held(_) => WriteError::Locked {
                out: out.to_path_buf(),
                lock: lock_path.clone(),
            },
            LockError::Io(e) => WriteError::io("cannot create lock file", &lock_path, e),
        })?;
        let pid = std::process::id();
        // From here on, dropping `staging` (or a signal) removes the lock (and the temporary
        // folder).
        let tmp = out.with_file_name(format!(".{name}.tmp-{pid}"));
        let old = out.with_file_name(format!(".{name}.old-{pid}"));
        let staging = Staging {
            out: out.to_path_buf(),
            _cleanup: Cleanup::register(&[&tmp]),
            tmp,
            old,
            lock: Some(lock),
            name,
            done: false,
        };

        staging.recover()?;
        {
            // Under the guard a signal's clean-up holds: not made just after it passed.
            let _creating = Cleanup::hold();
            fs::create_dir(&staging.tmp)
                .map_err(|e| WriteError::io("cannot create folder", &staging.tmp, e))?;
        }
        Ok(staging)
    }

    /// The folder to write the outputs into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The output folder that [`commit`](Staging::commit) will replace.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Cleans what crashed runs left beside `out` (we hold the lock, so they are dead): puts
    /// back previous outputs renamed away by a commit that did not finish, removes old and
    /// temporary folders.
    fn recover(&self) -> Result<(), WriteError> {
        let parent = parent_of(&self.out);
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let entries =
            fs::read_dir(dir).map_err(|e| WriteError::io("cannot read folder", dir, e))?;
        let mut olds = Vec::new();
        let mut tmps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| WriteError::io("cannot read folder", dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let path = self.out.with_file_name(file_name);
            if self.is_sibling(file_name, "old") {
                olds.push(path);
            } else if self.is_sibling(file_name, "tmp") {
                tmps.push(path);
            } else if self.is_sibling(file_name, "lockpid") {
                // The pid file of a run of rac 0.1 before the lock was a `flock`, killed
                // before it linked it to the lock.
                let pid = file_name.rsplit('-').next().and_then(|p| p.parse().ok());
                if pid.is_some_and(pid_gone) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        olds.sort();
        if !exists(&self.out) && olds.len() == 1 {
            let old = olds.pop().unwrap_or_default();
            fs::rename(&old, &self.out).map_err(|source| WriteError::Rename {
                from: old,
                to: self.out.clone(),
                source,
            })?;
        }
        if exists(&self.out) {
            for old in olds {
                remove_gone(&old)?;
            }
        }
        for tmp in tmps {
            remove_gone(&tmp)?;
        }
        Ok(())
    }

    /// `.<name>.<kind>-<digits>`
    fn is_sibling(&self, file_name: &str, kind: &str) -> bool {
        file_name
            .strip_prefix('.')
            .and_then(|rest| rest.strip_prefix(self.name.as_str()))
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_prefix(kind))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Makes the written files durable, then replaces `out` by them and releases the lock.
    pub fn commit(mut self) -> Result<(), WriteError> {
        sync_tree(&self.tmp)?;
        // A signal waits until both renames are done (or undone).
        let mut renaming = Cleanup::hold();
        check_replaceable(&self.out)?;
        let replaced = exists(&self.out);
        if replaced {
            keep_access(&self.out, &self.tmp);
            // One step where the system allows it: `out` is never missing, even for a crash.
            if exchange(&self.tmp, &self.out) {
                self.done = true;
                crate::interrupt::mark_outputs_in_place();
                // The previous outputs are now at the temporary folder's path.
                renaming.push(self.tmp.clone());
                drop(renaming);
                self.finish(&self.tmp.clone());
                return Ok(());
            }
            fs::rename(&self.out, &self.old).map_err(|source| WriteError::Rename {
                from: self.out.clone(),
                to: self.old.clone(),
                source,
            })?;
        }
        if let Err(source) = fs::rename(&self.tmp, &self.out) {
            if replaced {
                // Put the previous outputs back; if even that fails, the next run will.
                let _ = fs::rename(&self.old, &self.out);
            }
            return Err(WriteError::Rename {
                from: self.tmp.clone(),
                to: self.out.clone(),
                source,
            });
        }
        self.done = true;
        crate::interrupt::mark_outputs_in_place();
        // The previous outputs, renamed away: removed below, or by a signal meanwhile (a run
        // stopped now leaves no copy of them behind).
        if replaced {
            renaming.push(self.old.clone());
        }
        drop(renaming);
        if replaced {
            self.finish(&self.old.clone());
        } else {
            self.finish_new();
        }
        Ok(())
    }

    /// After the new outputs are in place: syncs the parent folder, removes the previous
    /// outputs (at `previous`) and releases the lock. Housekeeping: a failure of it must not
    /// turn a successful run into a failed one.
    fn finish(&mut self, previous: &Path) {
        // Removed under the lock: a run that took it meanwhile would find them and remove
        // them too (the lock outlives what it guards).
        let _ = fs::remove_dir_all(previous);
        Cleanup::forget(previous);
        self.finish_new();
    }

    /// [`Staging::finish`] with no previous outputs.
    fn finish_new(&mut self) {
        let parent = parent_of(&self.out);
        let _ = sync_dir(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        });
        if let Some(lock) = self.lock.take() {
            lock.release();
        }
    }
}

/// Removes a folder a dead run left; one already gone is no error (its run was removing it).
fn remove_gone(path: &Path) -> Result<(), WriteError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(WriteError::io("cannot remove", path, e))
        }
        _ => Ok(()),
    }
}

/// Swaps `a` and `b` in one step (Linux `renameat2(RENAME_EXCHANGE)`); `false` where the
/// system or the file system cannot, and nothing was changed (the caller then renames `b`
/// away and `a` into its place, two steps: a crash between them leaves `b` missing until the
/// next run puts it back).
fn exchange(a: &Path, b: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let (Ok(a), Ok(b)) = (
            std::ffi::CString::new(a.as_os_str().as_bytes()),
            std::ffi::CString::new(b.as_os_str().as_bytes()),
        ) else {
            return false;
        };
        // SAFETY: two NUL-terminated paths that outlive the call; the flag only swaps them.
        let done = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        done == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        false
    }
}

/// Gives the new output folder `new` the permission bits and group of the folder `old` it
/// replaces, and its files that group (Unix): a folder of health data kept to one group stays
/// so after the nightly run, and the group can read the outputs (the new folder had the
/// umask's bits and the user's group; its files, under a `umask 027`, were unreadable to
/// the group). Best effort: a group the user is not in cannot be given, and the run goes on.
fn keep_access(old: &Path, new: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(meta) = fs::metadata(old) else {
            return;
        };
        let group = Some(meta.gid());
        if let Ok(entries) = fs::read_dir(new) {
            for entry in entries.flatten() {
                let _ = std::os::unix::fs::lchown(entry.path(), None, group);
            }
        }
        let _ = std::os::unix::fs::chown(new, None, group);
        let mut mode = meta.mode() & 0o7777;
        // Without that group (the user is not in it), its bits would open the folder to the
        // user's own group instead: none are given.
        if !fs::metadata(new).is_ok_and(|m| m.gid() == meta.gid()) {
            mode &= !0o2070;
        }
        let _ = fs::set_permissions(new, fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    {
        let _ = (old, new);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
            if let Some(lock) = self.lock.take() {
                lock.release();
            }
        }
    }
}

/// Where `path` points if it is a symbolic link (followed to the end; a dangling link, to the
/// path it names); `None` if it is not a link.
fn resolve_link(path: &Path) -> Result<Option<PathBuf>, WriteError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {}
        _ => return Ok(None),
    }
    if let Ok(target) = fs::canonicalize(path) {
        return Ok(Some(target));
    }
    let mut target = path.to_path_buf();
    // A dangling link (or a chain ending in one): followed by hand, a few links at most.
    for _ in 0..40 {
        match fs::read_link(&target) {
            Ok(next) => target = parent_of(&target).join(next),
            Err(_) => {
                // Its folder, without `..` (the file name is what the staging is named after).
                let name = target.file_name().map(|n| n.to_os_string());
                if let (Ok(parent), Some(name)) = (fs::canonicalize(parent_of(&target)), name) {
                    target = parent.join(name);
                }
                return Ok(Some(target));
            }
        }
    }
    Err(WriteError::io(
        "cannot follow the links of",
        path,
        io::Error::other("too many levels of symbolic links"),
    ))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// Exists, without following a final symbolic link.
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// `out` may be replaced if it does not exist, is an empty folder, or holds a `manifest.json`.
fn check_replaceable(out: &Path) -> Result<(), WriteError> {
    let meta = match fs::metadata(out) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(WriteError::io("cannot read", out, e)),
    };
    if !meta.is_dir() {
        return Err(WriteError::NotAFolder {
            out: out.to_path_buf(),
        });
    }
    let entries: Vec<std::ffi::OsString> = fs::read_dir(out)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|e| WriteError::io("cannot read folder", out, e))?;
    if entries.is_empty() {
        return Ok(());
    }
    if !out.join(MANIFEST_FILE).is_file() {
        return Err(WriteError::NotRacOutput {
            out: out.to_path_buf(),
        });
    }
    let mut foreign: Vec<String> = entries
        .iter()
        .filter(|name| !name.to_str().is_some_and(is_output_name))
        .map(|name| format!("{:?}", name.to_string_lossy()))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let files = match foreign.len() {
        n @ 6.. => format!("{} and {} more", foreign[..5].join(", "), n - 5),
        _ => foreign.join(", "),
    };
    Err(WriteError::ForeignFiles {
        out: out.to_path_buf(),
        files,
    })
}

/// The manifest of a run, in its output folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `rac audit`'s report of the discrepancies by cause, beside their table.
pub const DISCREPANCIES_REPORT_FILE: &str = "discrepancies.md";
/// `rac audit --profile damir`'s report, as JSON.
pub const DAMIR_REPORT_FILE: &str = "damir_report.json";

/// The files a run writes into its output folder (any command, any format): the tables
/// (`rejects` always CSV), the reports, the manifest.
fn is_output_name(name: &str) -> bool {
    let tables = [
        Outcome::TABLE,
        PatientYear::TABLE,
        SummaryRow::TABLE,
        YearCounter::TABLE,
        crate::audit::Discrepancy::TABLE,
    ];
    match name.rsplit_once('.') {
        Some((table, "parquet" | "csv")) if tables.contains(&table) => true,
        Some((table, "csv")) => table == Reject::TABLE,
        _ => [MANIFEST_FILE, DISCREPANCIES_REPORT_FILE, DAMIR_REPORT_FILE].contains(&name),
    }
}

/// Asks the kernel to start writing `file`'s bytes written so far to disk, without waiting
/// for it: the fsync of the commit ([`Staging::commit`]) then finds little left to write.
/// Before, it waited for the whole of each file at the end of the run: 0.66 s for 10 M acts
/// (`strace`: 0.52 s for `acts.parquet`, 220 MB). A hint: a failure is left to that fsync.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on an open descriptor; offset 0 and length 0 mean the
        // whole file, and SYNC_FILE_RANGE_WRITE only starts the writing of dirty pages.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// fsyncs every file under `dir`, then the folders themselves.
fn sync_tree(dir: &Path) -> Result<(), WriteError> {
    let entries = fs::read_dir(dir).map_err(|e| WriteError::io("cannot read folder", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WriteError::io("cannot read folder", dir, e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| WriteError::io("cannot read", &path, e))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(|e| WriteError::io("cannot sync", &path, e))?;
        }
    }
    sync_dir(dir).map_err(|e| WriteError::io("cannot sync", dir, e))
}

/// fsyncs a folder (its entries); a no-op where folders cannot be opened (Windows).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Table description

/// The type of a column, in Arrow terms (CSV renders it as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Utf8,
    Int32,
    Int64,
    /// Fixed-point decimal; CSV writes exactly `scale` decimals.
    Decimal(Fixed),
    Date32,
}

/// A fixed-point decimal type: `Decimal128(precision, scale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub precision: u8,
    pub scale: i8,
}

/// Amounts in euros: `Decimal128(18, 2)`.
pub const MONEY: Fixed = Fixed {
    precision: 18,
    scale: 2,
};

/// Rates in percent (`70.00`): `Decimal128(7, 2)`.
pub const RATE: Fixed = Fixed {
    precision: 7,
    scale: 2,
};

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Decimal(Fixed { precision, scale }) => {
                DataType::Decimal128(precision, scale)
            }
            ColumnType::Date32 => DataType::Date32,
        }
    }
}

/// How a column's value is read from a row. The variant is the column's type: a row type
/// cannot give a column a value of another type, and the encoders check nothing per cell but
/// an amount's decimals.
pub enum Get<R> {
    Str(fn(&R) -> &str),
    /// Rule ids or flags, written `;`-joined (empty string if none).
    Tags(fn(&R) -> &[&'static str]),
    /// Ids, written as [`crate::model::write_ids`] does: `;`-joined, escaped (empty string if
    /// none).
    Ids(fn(&R) -> &[String]),
    /// Ids with a date each, written as [`crate::model::write_dated`] does: `id=YYYY-MM-DD`,
    /// `;`-joined, escaped (empty string if none).
    Dated(fn(&R) -> &[(String, NaiveDate)]),
    /// Text its own function writes (a counter's open stays).
    Text(fn(&R, &mut String)),
    Int32(fn(&R) -> i32),
    Int64(fn(&R) -> i64),
    /// An amount in euros ([`MONEY`]).
    Money(fn(&R) -> Decimal),
    /// An amount, or null (empty in CSV).
    OptMoney(fn(&R) -> Option<Decimal>),
    /// A rate in percent ([`RATE`]).
    Rate(fn(&R) -> Decimal),
    Date(fn(&R) -> NaiveDate),
    /// A date, or null (empty in CSV).
    OptDate(fn(&R) -> Option<NaiveDate>),
}

impl<R> Get<R> {
    pub fn ty(&self) -> ColumnType {
        match self {
            Get::Str(_) | Get::Tags(_) | Get::Ids(_) | Get::Dated(_) | Get::Text(_) => {
                ColumnType::Utf8
            }
            Get::Int32(_) => ColumnType::Int32,
            Get::Int64(_) => ColumnType::Int64,
            Get::Money(_) | Get::OptMoney(_) => ColumnType::Decimal(MONEY),
            Get::Rate(_) => ColumnType::Decimal(RATE),
            Get::Date(_) | Get::OptDate(_) => ColumnType::Date32,
        }
    }

    pub fn nullable(&self) -> bool {
        matches!(self, Get::OptMoney(_) | Get::OptDate(_))
    }
}

/// A count as an `Int64` value (saturated; no count comes near).
pub fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One column of a table: its name, and how to read it (and so its type) from a row.
pub struct Column<R> {
    pub name: &'static str,
    pub get: Get<R>,
}

/// A row type that can be written as a table.
pub trait Row: Sized + Sync + 'static {
    /// The file stem: `acts`, `patients`, `summary`, `counters`, `rejects`.
    const TABLE: &'static str;

    /// The columns, in output order (SPEC §4).
    fn columns() -> &'static [Column<Self>];

    /// Rows per Parquet row group: a multiple of [`CHUNK_ROWS`].
    const ROW_GROUP_ROWS: usize = ROW_GROUP_ROWS;

    /// The text column the rows are written in the order of (`patient_id` for the tables of
    /// acts and patients, `month` for the summary). Its Parquet statistics let a reader skip
    /// row groups and pages; those of the other text columns, whose values are spread over
    /// every row group, would not, and are not written ([`parquet_properties`]).
    const SORTED_BY: &'static str;

    /// The row's id, for error messages.
    fn key(&self) -> &str;

    /// The values of the carried columns (`--keep-columns`), written after
    /// [`Row::columns`] by a writer created with their names ([`TableWriter::create_carrying`]).
    fn carried(&self) -> &[Option<Id>] {
        &[]
    }
}

/// The Arrow schema of a table.
pub fn schema<R: Row>() -> SchemaRef {
    schema_carrying::<R>(&[])
}

/// The Arrow schema of a table followed by `carried` columns (nullable strings).
pub fn schema_carrying<R: Row>(carried: &[String]) -> SchemaRef {
    let fields: Vec<Field> = R::columns()
        .iter()
        .map(|c| Field::new(c.name, c.get.ty().data_type(), c.get.nullable()))
        .chain(
            carried
                .iter()
                .map(|name| Field::new(name, DataType::Utf8, true)),
        )
        .collect();
    Arc::new(Schema::new(fields))
}

/// The column names, in order.
pub fn column_names<R: Row>() -> Vec<&'static str> {
    R::columns().iter().map(|c| c.name).collect()
}

/// `column!("name", Kind, getter)`: a [`Column`] read by `Get::Kind(getter)`.
macro_rules! column {
    ($name:literal, $kind:ident, $get:expr) => {
        Column {
            name: $name,
            get: Get::$kind($get),
        }
    };
}

static ACT_COLUMNS: &[Column<Outcome>] = &[
    column!("act_id", Str, |o| o.act_id.as_str()),
    column!("patient_id", Str, |o| o.patient_id.as_str()),
    column!("care_date", Date, |o| o.care_date),
    column!("category", Str, |o| o.category.as_str()),
    column!("quantity", Int64, |o| i64::from(o.quantity)),
    column!("base", Money, |o| o.base),
    column!("billed", Money, |o| o.billed),
    column!("overbilling", Money, |o| o.overbilling),
    column!("situation", Str, |o| o.situation.as_str()),
    column!("rate", Rate, |o| o.rate),
    column!("amo_gross", Money, |o| o.amo_gross),
    column!("copayment", Money, |o| o.copayment),
    column!("majoration", Money, |o| o.majoration),
    column!("pal", Money, |o| o.pal),
    column!("pf", Money, |o| o.pf),
    column!("franchise", Money, |o| o.franchise),
    column!("flat_fee", Money, |o| o.flat_fee),
    column!("amo_paid", Money, |o| o.amo_paid),
    column!("rac", Money, |o| o.rac),
    column!("rules", Tags, |o| o.rules.as_slice()),
    column!("flags", Tags, |o| o.flags.as_slice()),
    column!("recorded_amo", OptMoney, |o| o.recorded_amo),
];

impl Row for Outcome {
    const TABLE: &'static str = "acts";
    const SORTED_BY: &'static str = "patient_id";

    /// Half the default: `acts` rows are the widest (about 300 bytes as Arrow arrays), and
    /// the row group being filled is most of the writer's memory. 10 M acts, six alternated
    /// runs each: peak RSS 459–461 MiB in five runs with the default (427 in one), 419–429
    /// MiB in five with this (453 in one), the same time; the file is 2.4 % larger.
    const ROW_GROUP_ROWS: usize = 1 << 16;

    fn columns() -> &'static [Column<Outcome>] {
        ACT_COLUMNS
    }

    fn carried(&self) -> &[Option<Id>] {
        self.carried.values()
    }

    fn key(&self) -> &str {
        &self.act_id
    }
}

static PATIENT_COLUMNS: &[Column<PatientYear>] = &[
    column!("patient_id", Str, |p| p.patient_id.as_str()),
    column!("year", Int32, |p| p.year),
    column!("acts", Int64, |p| count(p.acts)),
    column!("billed", Money, |p| p.billed),
    column!("base", Money, |p| p.base),
    column!("amo_paid", Money, |p| p.amo_paid),
    column!("rac", Money, |p| p.rac),
    column!("pf", Money, |p| p.pf),
    column!("franchise", Money, |p| p.franchise),
    column!("pal", Money, |p| p.pal),
    column!("flat_fee", Money, |p| p.flat_fee),
    column!("overbilling", Money, |p| p.overbilling),
    column!("pf_cap_reached_on", OptDate, |p| p.pf_cap_reached_on),
    column!("franchise_cap_reached_on", OptDate, |p| p
        .franchise_cap_reached_on),
];

impl Row for PatientYear {
    const TABLE: &'static str = "patients";
    const SORTED_BY: &'static str = "patient_id";

    fn columns() -> &'static [Column<PatientYear>] {
        PATIENT_COLUMNS
    }

    fn key(&self) -> &str {
        &self.patient_id
    }
}

static SUMMARY_COLUMNS: &[Column<SummaryRow>] = &[
    column!("month", Str, |s| s.month.as_str()),
    column!("category", Str, |s| s.category.as_str()),
    column!("situation", Str, |s| s.situation.as_str()),
    column!("acts", Int64, |s| count(s.acts)),
    column!("billed", Money, |s| s.billed),
    column!("base", Money, |s| s.base),
    column!("amo_paid", Money, |s| s.amo_paid),
    column!("rac", Money, |s| s.rac),
    column!("pf", Money, |s| s.pf),
    column!("franchise", Money, |s| s.franchise),
    column!("pal", Money, |s| s.pal),
    column!("flat_fee", Money, |s| s.flat_fee),
    column!("overbilling", Money, |s| s.overbilling),
];

impl Row for SummaryRow {
    const TABLE: &'static str = "summary";
    const SORTED_BY: &'static str = "month";

    fn columns() -> &'static [Column<SummaryRow>] {
        SUMMARY_COLUMNS
    }

    fn key(&self) -> &str {
        &self.month
    }
}

static COUNTER_COLUMNS: &[Column<YearCounter>] = &[
    column!("patient_id", Str, |c| c.patient_id.as_str()),
    column!("year", Int32, |c| c.year),
    column!("pf_used", Money, |c| c.pf_used),
    column!("franchise_used", Money, |c| c.franchise_used),
    column!("charged_stays", Ids, |c| c.charged_stays.as_slice()),
    column!("pf_cap_reached_on", OptDate, |c| c.pf_cap_reached_on),
    column!("franchise_cap_reached_on", OptDate, |c| c
        .franchise_cap_reached_on),
    column!("stay_starts", Dated, |c| c.stay_starts.as_slice()),
    column!("open_stays", Text, |c, out| crate::model::write_stay_sums(
        out,
        &c.open_stays
    )),
];

impl Row for YearCounter {
    const TABLE: &'static str = "counters";
    const SORTED_BY: &'static str = "patient_id";

    fn columns() -> &'static [Column<YearCounter>] {
        COUNTER_COLUMNS
    }

    fn key(&self) -> &str {
        &self.patient_id
    }
}

static REJECT_COLUMNS: &[Column<Reject>] = &[
    column!("file", Str, |r| r.file.as_str()),
    column!("row", Int64, |r| count(r.row)),
    column!("act_id", Str, |r| r.act_id.as_str()),
    column!("column", Str, |r| r.column.as_str()),
    column!("reason", Str, |r| r.reason.as_str()),
    column!("value", Str, |r| r.value.as_str()),
];

impl Row for Reject {
    const TABLE: &'static str = "rejects";
    const SORTED_BY: &'static str = "file";

    fn columns() -> &'static [Column<Reject>] {
        REJECT_COLUMNS
    }

    fn key(&self) -> &str {
        &self.act_id
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (pure)

/// `value` as an integer number of `10^-scale`, if it has at most `scale` significant decimals
/// and at most `precision` digits.
#[inline(always)]
fn scaled(value: Decimal, ty: Fixed) -> Option<i128> {
    let target = u32::try_from(ty.scale).ok()?;
    let current = value.scale();
    let mantissa = value.mantissa();
    // Most amounts: no more decimals than the column, a 64-bit mantissa, and a column of at
    // most 18 digits, so that 64-bit integers suffice (a product past them is past 18 digits).
    if current <= target && ty.precision <= 18 {
        let factor = POW10
            .get((target - current) as usize)
            .and_then(|&factor| i64::try_from(factor).ok());
        if let (Ok(small), Some(factor)) = (i64::try_from(mantissa), factor) {
            return match small.checked_mul(factor) {
                Some(units)
                    if u128::from(units.unsigned_abs()) < POW10[usize::from(ty.precision)] =>
                {
                    Some(i128::from(units))
                }
                _ => None,
            };
        }
    }
    scaled_wide(value, ty)
}

/// [`scaled`] in 128-bit integers, for any decimal.
fn scaled_wide(value: Decimal, ty: Fixed) -> Option<i128> {
    let target = u32::try_from(ty.scale).ok()?;
    let current = value.scale();
    let mantissa = value.mantissa();
    // Powers of ten from a table.
    let pow10 = |n: u32| POW10.get(n as usize).map(|&p| p as i128);
    let units = if current == target {
        mantissa
    } else if current < target {
        mantissa.checked_mul(pow10(target - current)?)?
    } else {
        let factor = pow10(current - target)?;
        if mantissa % factor != 0 {
            return None;
        }
        mantissa / factor
    };
    (units.unsigned_abs() < *POW10.get(usize::from(ty.precision))?).then_some(units)
}

/// `10^n` for every `n` an Arrow Decimal128 precision or a `Decimal` scale can take.
const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut n = 1;
    while n < 39 {
        table[n] = table[n - 1] * 10;
        n += 1;
    }
    table
};

fn expected_decimal(ty: Fixed) -> &'static str {
    match ty {
        MONEY => "an amount with at most 2 decimals and 16 integer digits",
        RATE => "a rate with at most 2 decimals and 5 integer digits",
        _ => "a decimal of the column's precision and scale",
    }
}

/// `value` in units of the column's last decimal, or the error naming the row and column.
/// In line: it runs for every amount of every output row, and the error is rare.
#[inline(always)]
fn units<R: Row>(
    column: &Column<R>,
    row: &R,
    value: Decimal,
    ty: Fixed,
) -> Result<i128, EncodeError> {
    match scaled(value, ty) {
        Some(units) => Ok(units),
        None => Err(decimal_error(column, row, value, ty)),
    }
}

#[cold]
#[inline(never)]
fn decimal_error<R: Row>(column: &Column<R>, row: &R, value: Decimal, ty: Fixed) -> EncodeError {
    EncodeError::Value {
        table: R::TABLE,
        column: column.name,
        key: row.key().to_string(),
        value: value.to_string(),
        expected: expected_decimal(ty),
    }
}

/// Writes `parts` joined by `;` into `out` (cleared first).
fn join_into<'s>(out: &mut String, parts: impl Iterator<Item = &'s str>) {
    out.clear();
    for (i, part) in parts.enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(part);
    }
}

/// Writes `ids` as [`crate::model::write_ids`] does into `out` (cleared first).
fn join_ids_into(out: &mut String, ids: &[String]) {
    out.clear();
    crate::model::write_ids(out, ids.iter().map(String::as_str));
}

/// Writes `dated` as [`crate::model::write_dated`] does into `out` (cleared first).
fn join_dated_into(out: &mut String, dated: &[(String, NaiveDate)]) {
    out.clear();
    crate::model::write_dated(out, dated);
}

/// One column's array being built, with the getter that feeds it.
enum Builder<R: 'static> {
    Str(StringBuilder, fn(&R) -> &str),
    Tags(StringBuilder, fn(&R) -> &[&'static str]),
    Ids(StringBuilder, fn(&R) -> &[String]),
    Dated(StringBuilder, fn(&R) -> &[(String, NaiveDate)]),
    Text(StringBuilder, fn(&R, &mut String)),
    Int32(Int32Builder, fn(&R) -> i32),
    Int64(Int64Builder, fn(&R) -> i64),
    Decimal(Decimal128Builder, fn(&R) -> Decimal, Fixed),
    OptDecimal(Decimal128Builder, fn(&R) -> Option<Decimal>, Fixed),
    Date(Date32Builder, fn(&R) -> NaiveDate),
    OptDate(Date32Builder, fn(&R) -> Option<NaiveDate>),
}

impl<R: Row> Builder<R> {
    fn new(get: &Get<R>, rows: usize) -> Result<Builder<R>, EncodeError> {
        // Bytes per value, guessed from the acts table (ids of 11–13 bytes, rule lists of 31
        // on average): a builder that grows copies its values again.
        let strings = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        let decimals = |ty: Fixed| {
            Decimal128Builder::with_capacity(rows).with_precision_and_scale(ty.precision, ty.scale)
        };
        Ok(match *get {
            Get::Str(get) => Builder::Str(strings(16), get),
            Get::Tags(get) => Builder::Tags(strings(32), get),
            Get::Ids(get) => Builder::Ids(strings(32), get),
            Get::Dated(get) => Builder::Dated(strings(32), get),
            Get::Text(get) => Builder::Text(strings(32), get),
            Get::Int32(get) => Builder::Int32(Int32Builder::with_capacity(rows), get),
            Get::Int64(get) => Builder::Int64(Int64Builder::with_capacity(rows), get),
            Get::Money(get) => Builder::Decimal(decimals(MONEY)?, get, MONEY),
            Get::Rate(get) => Builder::Decimal(decimals(RATE)?, get, RATE),
            Get::OptMoney(get) => Builder::OptDecimal(decimals(MONEY)?, get, MONEY),
            Get::Date(get) => Builder::Date(Date32Builder::with_capacity(rows), get),
            Get::OptDate(get) => Builder::OptDate(Date32Builder::with_capacity(rows), get),
        })
    }

    /// Appends `column`'s value of `row`; `joined` is scratch space for `;`-joined lists.
    fn append(
        &mut self,
        column: &Column<R>,
        row: &R,
        joined: &mut String,
    ) -> Result<(), EncodeError> {
        match self {
            Builder::Str(b, get) => b.append_value(get(row)),
            Builder::Tags(b, get) => {
                join_into(joined, get(row).iter().copied());
                b.append_value(&*joined);
            }
            Builder::Ids(b, get) => {
                join_ids_into(joined, get(row));
                b.append_value(&*joined);
            }
            Builder::Dated(b, get) => {
                join_dated_into(joined, get(row));
                b.append_value(&*joined);
            }
            Builder::Text(b, get) => {
                joined.clear();
                get(row, joined);
                b.append_value(&*joined);
            }
            Builder::Int32(b, get) => b.append_value(get(row)),
            Builder::Int64(b, get) => b.append_value(get(row)),
            Builder::Decimal(b, get, ty) => b.append_value(units(column, row, get(row), *ty)?),
            Builder::OptDecimal(b, get, ty) => match get(row) {
                Some(value) => b.append_value(units(column, row, value, *ty)?),
                None => b.append_null(),
            },
            Builder::Date(b, get) => b.append_value(Date32Type::from_naive_date(get(row))),
            Builder::OptDate(b, get) => {
                b.append_option(get(row).map(Date32Type::from_naive_date));
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Str(mut b, _)
            | Builder::Tags(mut b, _)
            | Builder::Ids(mut b, _)
            | Builder::Dated(mut b, _)
            | Builder::Text(mut b, _) => Arc::new(b.finish()),
            Builder::Int32(mut b, _) => Arc::new(b.finish()),
            Builder::Int64(mut b, _) => Arc::new(b.finish()),
            Builder::Decimal(mut b, ..) | Builder::OptDecimal(mut b, ..) => Arc::new(b.finish()),
            Builder::Date(mut b, _) | Builder::OptDate(mut b, _) => Arc::new(b.finish()),
        }
    }
}

/// Every column's array for `rows`, a row at a time: each row is read from memory once,
/// its cells appended to every column. Taking one column at a time over the rows read each
/// row once per column, and stalled on those reads: `cargo bench --bench write`, 65 536 acts
/// to Arrow on 2 cores, 19.1 → 10.4 ms.
fn column_arrays<R: Row>(
    columns: &[Column<R>],
    carried: usize,
    rows: &[R],
) -> Result<Vec<ArrayRef>, EncodeError> {
    let mut builders = columns
        .iter()
        .map(|column| Builder::new(&column.get, rows.len()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut joined = String::new();
    for row in rows {
        for (builder, column) in builders.iter_mut().zip(columns) {
            builder.append(column, row, &mut joined)?;
        }
    }
    let mut arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
    arrays.extend((0..carried).map(|k| carried_array(rows, k)));
    Ok(arrays)
}

/// The `k`-th carried column of `rows` (null where a row has no value).
fn carried_array<R: Row>(rows: &[R], k: usize) -> ArrayRef {
    fn value<R: Row>(row: &R, k: usize) -> Option<&str> {
        row.carried().get(k).and_then(|v| v.as_deref())
    }
    let bytes = rows
        .iter()
        .map(|row| value(row, k).map_or(0, str::len))
        .sum();
    let mut b = StringBuilder::with_capacity(rows.len(), bytes);
    for row in rows {
        b.append_option(value(row, k));
    }
    Arc::new(b.finish())
}

/// The rows as Arrow batches of [`BLOCK_ROWS`] rows (the last one fewer), built on every core
/// (the writer would otherwise be the slowest stage of a run). Pure: callers may build several
/// at once. The Parquet writer encodes the blocks as they are; a caller that needs one batch
/// joins them ([`to_batch`]).
/// The results are gathered before the first error is taken, so that the error is the first
/// bad row's whatever the timing (as in CSV).
pub fn to_batches<R: Row>(rows: &[R]) -> Result<Vec<RecordBatch>, EncodeError> {
    to_batches_after(rows, 0, &schema::<R>())
}

/// [`to_batches`] for rows that follow `before` rows of their table: the blocks end where the
/// table's rows reach a multiple of [`BLOCK_ROWS`] (the first block may be shorter), so that
/// the Parquet writer takes them as they are ([`write_row_group`]).
/// `schema` is [`schema_carrying`]'s: its columns past [`Row::columns`] are the carried ones.
fn to_batches_after<R: Row>(
    rows: &[R],
    before: u64,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, EncodeError> {
    let columns = R::columns();
    let carried = schema.fields().len() - columns.len();
    let batch = |block: &[R]| -> Result<RecordBatch, EncodeError> {
        let options = RecordBatchOptions::new().with_row_count(Some(block.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            column_arrays(columns, carried, block)?,
            &options,
        )?)
    };
    let first = BLOCK_ROWS - (before % BLOCK_ROWS as u64) as usize;
    if rows.len() <= first {
        return Ok(vec![batch(rows)?]);
    }
    let (head, tail) = rows.split_at(first);
    let blocks: Vec<&[R]> = std::iter::once(head)
        .chain(tail.chunks(BLOCK_ROWS))
        .collect();
    blocks
        .into_par_iter()
        .map(batch)
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// The rows as one Arrow batch of [`schema::<R>()`](schema): [`to_batches`], joined (the
/// batch is the same whatever the split).
pub fn to_batch<R: Row>(rows: &[R]) -> Result<RecordBatch, EncodeError> {
    let mut batches = to_batches(rows)?;
    if batches.len() == 1 {
        return Ok(batches.remove(0));
    }
    let columns = R::columns();
    let arrays = (0..columns.len())
        .into_par_iter()
        .map(|i| {
            let pieces: Vec<&dyn arrow::array::Array> =
                batches.iter().map(|b| b.column(i).as_ref()).collect();
            arrow::compute::concat(&pieces)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        schema::<R>(),
        arrays,
        &options,
    )?)
}

fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

/// The CSV header line of a table.
pub fn csv_header<R: Row>() -> Vec<u8> {
    csv_header_carrying::<R>(&[])
}

/// The CSV header line of a table followed by `carried` columns.
fn csv_header_carrying<R: Row>(carried: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = csv_writer(&mut out);
        let names = R::columns().iter().map(|c| c.name);
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(names.chain(carried.iter().map(String::as_str)));
        let _ = writer.flush();
    }
    out
}

/// Appends `units × 10^-scale` with exactly `scale` decimals: `1750, 2` → `17.50`.
fn push_fixed(out: &mut String, units: i128, scale: i8) {
    if units < 0 {
        out.push('-');
    }
    let magnitude = units.unsigned_abs();
    match u32::try_from(scale) {
        Ok(scale) if scale > 0 => {
            let factor = 10u128.pow(scale);
            let width = scale as usize;
            let _ = write!(out, "{}.{:0width$}", magnitude / factor, magnitude % factor);
        }
        _ => {
            let _ = write!(out, "{magnitude}");
        }
    }
}

/// Appends the rows to `out` as CSV records (no header), in the same columns and with the
/// same checks as [`to_batch`]: amounts with exactly their column's decimals (`17.50`,
/// `-1.00`), rates like `70.00`, ISO dates, empty cells for nulls, `\n` line ends. Pure.
pub fn to_csv<R: Row>(rows: &[R], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    to_csv_carrying(rows, 0, out)
}

/// [`to_csv`], each row followed by its first `carried` carried values (empty cells where it
/// has none).
fn to_csv_carrying<R: Row>(
    rows: &[R],
    carried: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let columns = R::columns();
    let mut writer = csv_writer(out);
    let mut text = String::new();
    for row in rows {
        for column in columns {
            text.clear();
            let decimal = |text: &mut String, value: Decimal, ty: Fixed| {
                units(column, row, value, ty).map(|units| push_fixed(text, units, ty.scale))
            };
            match column.get {
                Get::Str(get) => {
                    writer.write_field(get(row))?;
                    continue;
                }
                Get::Tags(get) => join_into(&mut text, get(row).iter().copied()),
                Get::Ids(get) => join_ids_into(&mut text, get(row)),
                Get::Dated(get) => join_dated_into(&mut text, get(row)),
                Get::Text(get) => get(row, &mut text),
                Get::Int32(get) => {
                    let _ = write!(text, "{}", get(row));
                }
                Get::Int64(get) => {
                    let _ = write!(text, "{}", get(row));
                }
                Get::Money(get) => decimal(&mut text, get(row), MONEY)?,
                Get::Rate(get) => decimal(&mut text, get(row), RATE)?,
                Get::OptMoney(get) => {
                    if let Some(value) = get(row) {
                        decimal(&mut text, value, MONEY)?;
                    }
                }
                Get::Date(get) => {
                    let _ = write!(text, "{}", get(row).format("%Y-%m-%d"));
                }
                Get::OptDate(get) => {
                    if let Some(date) = get(row) {
                        let _ = write!(text, "{}", date.format("%Y-%m-%d"));
                    }
                }
            }
            writer.write_field(&text)?;
        }
        for k in 0..carried {
            let value = row.carried().get(k).and_then(|v| v.as_deref());
            writer.write_field(value.unwrap_or_default())?;
        }
        writer.write_record(None::<&[u8]>)?;
    }
    writer.flush().map_err(csv::Error::from)?;
    Ok(())
}

/// Rows of table `R`, encoded for one format, ready for [`TableWriter::write_encoded`].
#[derive(Debug)]
pub struct Encoded<R> {
    rows: usize,
    body: Body,
    _row: PhantomData<fn() -> R>,
}

#[derive(Debug)]
enum Body {
    Batch(RecordBatch),
    Csv(Vec<u8>),
}

impl<R> Encoded<R> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Encodes rows for `format`. Pure and `Send`: encode chunks in parallel (e.g. with rayon),
/// then write them in order.
pub fn encode<R: Row>(format: Format, rows: &[R]) -> Result<Encoded<R>, EncodeError> {
    let body = match format {
        Format::Parquet => Body::Batch(to_batch(rows)?),
        Format::Csv => {
            let mut out = Vec::with_capacity(rows.len() * 64);
            to_csv(rows, &mut out)?;
            Body::Csv(out)
        }
    };
    Ok(Encoded {
        rows: rows.len(),
        body,
        _row: PhantomData,
    })
}

// ---------------------------------------------------------------------------------------------
// Table writer

/// The Parquet settings of a table: snappy, [`Row::ROW_GROUP_ROWS`] rows per row group, and
/// the library's fixed `created_by` (no timestamp anywhere: same rows, same bytes).
///
/// Two kinds of work are left out where they buy nothing (10 M acts, `acts.parquet` encoded on
/// one thread: 3.9 → 3.4 s, the file 0.6 % larger):
/// - statistics of the text columns other than [`Row::SORTED_BY`]: `act_id`, `rules`,
///   `category`… take most of their values in every row group, so their minimum and maximum
///   skip nothing, and computing them compares every string (0.07–0.27 s a column);
/// - the dictionary of `act_id` (one row per act) and `patient_id` (one row per patient and
///   year, or a patient's acts side by side, which snappy compresses as well): it would be
///   built to be dropped, or to save nothing.
pub fn parquet_properties<R: Row>() -> WriterProperties {
    const { assert!(R::ROW_GROUP_ROWS % CHUNK_ROWS == 0) };
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(R::ROW_GROUP_ROWS))
        .set_column_dictionary_enabled(ColumnPath::from("act_id"), false)
        .set_column_dictionary_enabled(ColumnPath::from("patient_id"), false);
    for column in R::columns() {
        if column.get.ty() == ColumnType::Utf8 && column.name != R::SORTED_BY {
            builder = builder.set_column_statistics_enabled(
                ColumnPath::from(column.name),
                EnabledStatistics::None,
            );
        }
    }
    builder.build()
}

enum Sink {
    Parquet {
        writer: Box<SerializedFileWriter<File>>,
        factory: ArrowRowGroupWriterFactory,
        schema: SchemaRef,
        /// Batches of the row group being filled, fewer than [`Row::ROW_GROUP_ROWS`] rows in
        /// all.
        pending: VecDeque<RecordBatch>,
        pending_rows: usize,
        row_groups: usize,
    },
    Csv(BufWriter<File>),
}

/// Streams rows of table `R` into one file (`<dir>/<R::TABLE>.<ext>`), chunk by chunk.
pub struct TableWriter<R: Row> {
    path: PathBuf,
    sink: Sink,
    /// Number of carried columns after the table's own.
    carried: usize,
    /// The same file, to start writing its bytes to disk as they come ([`start_writeback`]).
    file: File,
    rows: u64,
    csv_buffer: Vec<u8>,
    _row: PhantomData<fn(&R)>,
}

impl<R: Row> std::fmt::Debug for TableWriter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<R: Row> TableWriter<R> {
    /// Creates `<dir>/<R::TABLE>.<ext>`.
    pub fn create(dir: &Path, format: Format) -> Result<TableWriter<R>, WriteError> {
        TableWriter::create_named(dir, R::TABLE, format)
    }

    /// Creates `<dir>/<R::TABLE>.<ext>` whose columns are followed by the `carried` ones
    /// (`--keep-columns`): nullable strings, each row's [`Row::carried`] values.
    pub fn create_carrying(
        dir: &Path,
        format: Format,
        carried: &[String],
    ) -> Result<TableWriter<R>, WriteError> {
        TableWriter::create_inner(dir, R::TABLE, format, carried)
    }

    /// Creates `<dir>/<name>.<ext>` (same columns, another file name).
    pub fn create_named(
        dir: &Path,
        name: &str,
        format: Format,
    ) -> Result<TableWriter<R>, WriteError> {
        TableWriter::create_inner(dir, name, format, &[])
    }

    fn create_inner(
        dir: &Path,
        name: &str,
        format: Format,
        carried: &[String],
    ) -> Result<TableWriter<R>, WriteError> {
        let schema = schema_carrying::<R>(carried);
        let path = dir.join(format!("{name}.{}", format.extension()));
        let file = File::create(&path).map_err(|e| WriteError::io("cannot create", &path, e))?;
        let handle = file
            .try_clone()
            .map_err(|e| WriteError::io("cannot open", &path, e))?;
        let sink = match format {
            Format::Parquet => {
                let parquet_error = |source| WriteError::Parquet {
                    path: path.clone(),
                    source,
                };
                // ArrowWriter sets up the file (schema, Arrow metadata); its serialized writer
                // and factory let each row group's columns be encoded on every core.
                let properties = Some(parquet_properties::<R>());
                let (writer, factory) = ArrowWriter::try_new(file, Arc::clone(&schema), properties)
                    .and_then(ArrowWriter::into_serialized_writer)
                    .map_err(parquet_error)?;
                Sink::Parquet {
                    writer: Box::new(writer),
                    factory,
                    schema,
                    pending: VecDeque::new(),
                    pending_rows: 0,
                    row_groups: 0,
                }
            }
            Format::Csv => {
                let mut out = BufWriter::with_capacity(1 << 20, file);
                out.write_all(&csv_header_carrying::<R>(carried))
                    .map_err(|e| WriteError::io("cannot write", &path, e))?;
                Sink::Csv(out)
            }
        };
        Ok(TableWriter {
            path,
            sink,
            carried: carried.len(),
            file: handle,
            rows: 0,
            csv_buffer: Vec::new(),
            _row: PhantomData,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        match self.sink {
            Sink::Parquet { .. } => Format::Parquet,
            Sink::Csv(_) => Format::Csv,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows handed to the file so far: [`Self::rows`] but those of the Parquet row group
    /// being filled.
    pub fn rows_in_file(&self) -> u64 {
        match &self.sink {
            Sink::Parquet { pending_rows, .. } => self.rows - *pending_rows as u64,
            Sink::Csv(_) => self.rows,
        }
    }

    /// Appends rows (encoded here, [`CHUNK_ROWS`] at a time).
    pub fn write(&mut self, rows: &[R]) -> Result<(), WriteError> {
        for chunk in rows.chunks(CHUNK_ROWS) {
            match &mut self.sink {
                Sink::Csv(out) => {
                    self.csv_buffer.clear();
                    to_csv_carrying(chunk, self.carried, &mut self.csv_buffer).map_err(
                        |source| WriteError::Encode {
                            path: self.path.clone(),
                            source,
                        },
                    )?;
                    out.write_all(&self.csv_buffer)
                        .map_err(|e| WriteError::io("cannot write", &self.path, e))?;
                    self.rows += chunk.len() as u64;
                    start_writeback(&self.file);
                }
                Sink::Parquet { schema, .. } => {
                    // In blocks that end where the row group's pieces do (write_row_group).
                    let batches = to_batches_after(chunk, self.rows, schema).map_err(|source| {
                        WriteError::Encode {
                            path: self.path.clone(),
                            source,
                        }
                    })?;
                    for batch in batches {
                        self.push_batch(batch)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends rows encoded by [`encode`] (possibly on another thread), in the order given.
    pub fn write_encoded(&mut self, encoded: Encoded<R>) -> Result<(), WriteError> {
        match (&mut self.sink, encoded.body) {
            (Sink::Csv(out), Body::Csv(bytes)) => {
                out.write_all(&bytes)
                    .map_err(|e| WriteError::io("cannot write", &self.path, e))?;
                self.rows += encoded.rows as u64;
                start_writeback(&self.file);
                Ok(())
            }
            (Sink::Parquet { .. }, Body::Batch(batch)) => self.push_batch(batch),
            _ => Err(WriteError::Internal {
                path: self.path.clone(),
                message: "rows encoded for the other format".into(),
            }),
        }
    }

    /// Queues a batch and writes every full row group ([`Row::ROW_GROUP_ROWS`] rows, cut in
    /// chunks of [`CHUNK_ROWS`], or fewer once [`ROW_GROUP_CARRIED_BYTES`] of carried values
    /// are reached at a block's end): the Parquet bytes then do not depend on how the caller
    /// cut the rows.
    fn push_batch(&mut self, batch: RecordBatch) -> Result<(), WriteError> {
        let Sink::Parquet {
            writer,
            factory,
            schema,
            pending,
            pending_rows,
            row_groups,
        } = &mut self.sink
        else {
            return Ok(());
        };
        self.rows += batch.num_rows() as u64;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        *pending_rows += batch.num_rows();
        pending.push_back(batch);
        // Wide carried values end a row group early, at a block's end: there, what the row
        // group holds depends only on the rows before (the batches of `write` end on blocks).
        let carried_full = self.carried > 0
            && self.rows.is_multiple_of(BLOCK_ROWS as u64)
            && carried_bytes(pending, R::columns().len()) >= ROW_GROUP_CARRIED_BYTES;
        while *pending_rows >= R::ROW_GROUP_ROWS || (carried_full && *pending_rows > 0) {
            let rows = (*pending_rows).min(R::ROW_GROUP_ROWS);
            *pending_rows -= rows;
            write_row_group(writer, factory, schema, *row_groups, pending, rows).map_err(
                |source| WriteError::Parquet {
                    path: self.path.clone(),
                    source,
                },
            )?;
            *row_groups += 1;
            start_writeback(&self.file);
        }
        Ok(())
    }

    /// Writes what is left and closes the file (Parquet: writes the footer). Returns the
    /// number of rows written. The file is flushed but not fsynced ([`Staging::commit`] does).
    pub fn finish(self) -> Result<u64, WriteError> {
        let path = self.path;
        match self.sink {
            Sink::Parquet {
                mut writer,
                factory,
                schema,
                mut pending,
                pending_rows,
                row_groups,
            } => {
                let parquet_error = |source: ParquetError| WriteError::Parquet {
                    path: path.clone(),
                    source,
                };
                if pending_rows > 0 {
                    write_row_group(
                        &mut writer,
                        &factory,
                        &schema,
                        row_groups,
                        &mut pending,
                        pending_rows,
                    )
                    .map_err(parquet_error)?;
                }
                writer.close().map_err(parquet_error)?;
            }
            Sink::Csv(out) => {
                out.into_inner()
                    .map_err(|e| WriteError::io("cannot write", &path, e.into_error()))?;
            }
        }
        Ok(self.rows)
    }
}

/// Encodes the next `rows` rows of `pending` as one row group, its columns in parallel. The
/// rows go to the column writers in pieces of [`BLOCK_ROWS`] rows counted from the row group's
/// first (the last piece may be shorter), so the bytes depend only on the rows, not on how the
/// caller cut them. The blocks of [`TableWriter::write`] are those pieces already: a piece is
/// joined from two batches only where one call's rows end and the next call's begin (the
/// row group used to be joined whole first, copying every value once more).
fn write_row_group(
    writer: &mut SerializedFileWriter<File>,
    factory: &ArrowRowGroupWriterFactory,
    schema: &SchemaRef,
    index: usize,
    pending: &mut VecDeque<RecordBatch>,
    rows: usize,
) -> Result<(), ParquetError> {
    let mut batches = Vec::with_capacity(rows.div_ceil(BLOCK_ROWS));
    let mut left = rows;
    while left > 0 {
        let n = left.min(BLOCK_ROWS);
        batches.push(take_rows(pending, n)?);
        left -= n;
    }
    let writers = factory.create_column_writers(index)?;
    let chunks: Vec<ArrowColumnChunk> = writers
        .into_par_iter()
        .enumerate()
        .map(|(i, mut w)| {
            let field = schema.field(i);
            for batch in &batches {
                for leaf in compute_leaves(field, batch.column(i))? {
                    w.write(&leaf)?;
                }
            }
            w.close()
        })
        .collect::<Result<_, ParquetError>>()?;
    let mut group = writer.next_row_group()?;
    for chunk in chunks {
        chunk.append_to_row_group(&mut group)?;
    }
    group.close()?;
    Ok(())
}

/// Bytes of the values in the columns of `batches` from `first` on (the carried ones, Utf8).
fn carried_bytes(batches: &VecDeque<RecordBatch>, first: usize) -> usize {
    batches
        .iter()
        .flat_map(|batch| batch.columns().get(first..).unwrap_or_default())
        .filter_map(|column| column.as_string_opt::<i32>())
        .map(|strings| {
            let offsets = strings.value_offsets();
            (offsets[offsets.len() - 1] - offsets[0]) as usize
        })
        .sum()
}

/// Removes the first `n` rows from `pending` (which holds at least `n`), as one batch.
fn take_rows(pending: &mut VecDeque<RecordBatch>, n: usize) -> Result<RecordBatch, ArrowError> {
    let mut parts = Vec::new();
    let mut missing = n;
    while missing > 0 {
        let Some(front) = pending.pop_front() else {
            break;
        };
        if front.num_rows() <= missing {
            missing -= front.num_rows();
            parts.push(front);
        } else {
            parts.push(front.slice(0, missing));
            pending.push_front(front.slice(missing, front.num_rows() - missing));
            missing = 0;
        }
    }
    match parts.len() {
        1 => Ok(parts.remove(0)),
        _ => {
            let schema = parts
                .first()
                .map(RecordBatch::schema)
                .ok_or_else(|| ArrowError::InvalidArgumentError("no rows to take".into()))?;
            arrow::compute::concat_batches(&schema, &parts)
        }
    }
}

/// Writes a whole table at once: `<dir>/<R::TABLE>.<ext>`; returns the number of rows.
pub fn write_table<R: Row>(dir: &Path, format: Format, rows: &[R]) -> Result<u64, WriteError> {
    let mut writer = TableWriter::create(dir, format)?;
    writer.write(rows)?;
    writer.finish()
}

/// Writes `<dir>/rejects.csv` (always CSV: `file,row,act_id,column,reason,value`), with its
/// header even when there is no reject. Returns the number of rows.
pub fn write_rejects_csv(dir: &Path, rejects: &[Reject]) -> Result<u64, WriteError> {
    write_table(dir, Format::Csv, rejects)
}

/// Writes `<dir>/manifest.json`: pretty JSON and a trailing newline.
pub fn write_manifest(dir: &Path, manifest: &serde_json::Value) -> Result<(), WriteError> {
    let path = dir.join(MANIFEST_FILE);
    let file = File::create(&path).map_err(|e| WriteError::io("cannot create", &path, e))?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, manifest).map_err(|source| WriteError::Json {
        path: path.clone(),
        source,
    })?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(|e| WriteError::io("cannot write", &path, e))
}

/// The SHA-256 of a file's content, in lower-case hex (for the manifest's input files).
pub fn sha256_file(path: &Path) -> Result<String, WriteError> {
    sha256_and_size(path).map(|(hex, _)| hex)
}

/// The SHA-256 of a file's content, in lower-case hex, and its size in bytes: both of the
/// same read, even if the file changes.
pub fn sha256_and_size(path: &Path) -> Result<(String, u64), WriteError> {
    let mut file = File::open(path).map_err(|e| WriteError::io("cannot read", path, e))?;
    // The file the run read, not one moved into place since (nor written to).
    let changed = || WriteError::Changed {
        path: path.to_path_buf(),
        message: super::unchanged::changed(),
    };
    super::unchanged::note(path, &file).map_err(|_| changed())?;
    let digest = sha256_hex(&mut file, path)?;
    // Written to while hashed: the digest is of neither version.
    if super::unchanged::note(path, &file).is_err() {
        return Err(changed());
    }
    Ok(digest)
}

/// [`sha256_and_size`] of a file this run wrote (not an input: nothing to note).
pub fn sha256_of_output(path: &Path) -> Result<(String, u64), WriteError> {
    let mut file = File::open(path).map_err(|e| WriteError::io("cannot read", path, e))?;
    sha256_hex(&mut file, path)
}

/// The SHA-256, in lower-case hex, and the size of what `file` (at `path`) holds from where
/// it is.
fn sha256_hex(file: &mut File, path: &Path) -> Result<(String, u64), WriteError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::io("cannot read", path, e)),
        };
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Bytes (a digest) in lowercase hexadecimal, as the manifest writes them.
pub fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    /// Two folders swapped in one step (Linux; elsewhere `exchange` declines and changes
    /// nothing): the commit's replacement of `out`, with no instant where `out` is missing.
    #[test]
    fn exchange_swaps_two_folders_or_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        for (dir, text) in [(&a, "new"), (&b, "old")] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("acts.csv"), text).unwrap();
        }
        // Linux file systems without RENAME_EXCHANGE (some FUSE, 9p, NFS) decline it too.
        let swapped = super::exchange(&a, &b);
        assert!(cfg!(target_os = "linux") || !swapped);
        let text = |dir: &std::path::Path| std::fs::read_to_string(dir.join("acts.csv")).unwrap();
        if swapped {
            assert_eq!((text(&a), text(&b)), ("old".into(), "new".into()));
        } else {
            assert_eq!((text(&a), text(&b)), ("new".into(), "old".into()));
        }
        // A missing side: declined, nothing changed.
        assert!(!super::exchange(&root.path().join("missing"), &b));
        assert!(b.exists());
    }

    use super::*;
    use crate::model::{Category, Situation};
    use rust_decimal_macros::dec;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn outcome(id: &str) -> Outcome {
        Outcome {
            act_id: id.into(),
            patient_id: "p,1".into(),
            care_date: date(2024, 3, 1),
            category: Category::Consultation,
            quantity: 1,
            base: dec!(30),
            billed: dec!(30.0),
            overbilling: dec!(0),
            situation: Situation::Ordinary,
            rate: dec!(70),
            amo_gross: dec!(21.00),
            copayment: dec!(9.000),
            majoration: dec!(0.00),
            pal: dec!(0),
            pf: dec!(2),
            franchise: dec!(0),
            flat_fee: dec!(0),
            amo_paid: dec!(19.00),
            rac: dec!(11.00),
            rules: vec!["pf", "rate"].into(),
            flags: vec![],
            recorded_amo: None,
            carried: Default::default(),
        }
    }

    /// A row type with a column of each kind of [`Get`].
    struct Every {
        id: &'static str,
        tags: Vec<&'static str>,
        ids: Vec<String>,
        count: u64,
        amount: Option<Decimal>,
        date: Option<NaiveDate>,
    }

    impl Row for Every {
        const TABLE: &'static str = "every";
        const SORTED_BY: &'static str = "str";

        fn columns() -> &'static [Column<Every>] {
            const COLUMNS: &[Column<Every>] = &[
                column!("str", Str, |r| r.id),
                column!("tags", Tags, |r| r.tags.as_slice()),
                column!("ids", Ids, |r| r.ids.as_slice()),
                column!("int32", Int32, |r| r.count as i32 - 1),
                column!("int64", Int64, |r| count(r.count)),
                column!("money", Money, |r| r.amount.unwrap_or_default()),
                column!("opt_money", OptMoney, |r| r.amount),
                column!("rate", Rate, |r| Decimal::new(r.count as i64, 0)),
                column!("date", Date, |r| r.date.unwrap_or_default()),
                column!("opt_date", OptDate, |r| r.date),
            ];
            COLUMNS
        }

        fn key(&self) -> &str {
            self.id
        }
    }

    #[test]
    fn every_kind_of_column_is_written_alike_in_csv_and_arrow() {
        use arrow::array::AsArray;
        let rows = [
            Every {
                id: "x,1",
                tags: vec!["pf", "rate"],
                ids: vec!["s1".into(), "s2".into()],
                count: 70,
                amount: Some(dec!(-17.5)),
                date: Some(date(2024, 3, 1)),
            },
            Every {
                id: "x2",
                tags: vec![],
                ids: vec![],
                count: 100_000,
                amount: None,
                date: None,
            },
        ];
        let mut out = Vec::new();
        to_csv(&rows[..1], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"x,1\",pf;rate,s1;s2,69,70,-17.50,-17.50,70.00,2024-03-01,2024-03-01\n"
        );
        // The second row's rate, 100 000, is past Decimal128(7, 2): refused in both formats.
        let mut second = Vec::new();
        let err = to_csv(&rows[1..], &mut second).unwrap_err().to_string();
        assert!(err.contains("column rate, row x2"), "{err}");
        let err = to_batch(&rows[..]).unwrap_err().to_string();
        assert!(err.contains("column rate, row x2"), "{err}");

        let batch = to_batch(&rows[..1]).unwrap();
        let schema = batch.schema();
        let types: Vec<(&str, DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(
            types,
            [
                ("str", DataType::Utf8, false),
                ("tags", DataType::Utf8, false),
                ("ids", DataType::Utf8, false),
                ("int32", DataType::Int32, false),
                ("int64", DataType::Int64, false),
                ("money", DataType::Decimal128(18, 2), false),
                ("opt_money", DataType::Decimal128(18, 2), true),
                ("rate", DataType::Decimal128(7, 2), false),
                ("date", DataType::Date32, false),
                ("opt_date", DataType::Date32, true),
            ]
        );
        let text = |i: usize| batch.column(i).as_string::<i32>().value(0).to_string();
        assert_eq!(
            (text(0), text(1), text(2)),
            ("x,1".into(), "pf;rate".into(), "s1;s2".into())
        );
        assert_eq!(
            batch
                .column(3)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(0),
            69
        );
        assert_eq!(
            batch
                .column(4)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            70
        );
        let decimal = |i: usize| {
            batch
                .column(i)
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(0)
        };
        assert_eq!((decimal(5), decimal(6), decimal(7)), (-1750, -1750, 7000));
        let day = Date32Type::from_naive_date(date(2024, 3, 1));
        let date_of = |i: usize| batch.column(i).as_primitive::<Date32Type>().value(0);
        assert_eq!((date_of(8), date_of(9)), (day, day));

        // Nulls and empty lists: a row whose every value fits.
        let empty = [Every {
            count: 1,
            ..rows.into_iter().nth(1).unwrap()
        }];
        let mut out = Vec::new();
        to_csv(&empty, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x2,,,0,1,0.00,,1.00,1970-01-01,\n"
        );
        let batch = to_batch(&empty).unwrap();
        assert!(batch.column(6).is_null(0));
        assert!(batch.column(9).is_null(0));
        assert!(!batch.column(5).is_null(0));
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "");
    }

    #[test]
    fn format_parses_its_names() {
        assert_eq!(Format::parse("parquet"), Some(Format::Parquet));
        assert_eq!(Format::parse("csv"), Some(Format::Csv));
        assert_eq!(Format::parse("CSV"), None);
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert!("xlsx".parse::<Format>().is_err());
        assert_eq!(Format::Parquet.extension(), "parquet");
        assert_eq!(Format::default(), Format::Parquet);
    }

    #[test]
    fn scaled_is_exact_or_refuses() {
        assert_eq!(scaled(dec!(17.5), MONEY), Some(1750));
        assert_eq!(scaled(dec!(17.500), MONEY), Some(1750));
        assert_eq!(scaled(dec!(-1), MONEY), Some(-100));
        assert_eq!(scaled(dec!(0), MONEY), Some(0));
        assert_eq!(scaled(dec!(1.005), MONEY), None);
        assert_eq!(scaled(dec!(70), RATE), Some(7000));
        assert_eq!(scaled(dec!(99999.99), RATE), Some(9_999_999));
        assert_eq!(scaled(dec!(100000), RATE), None);
        assert_eq!(
            scaled(dec!(9999999999999999.99), MONEY),
            Some(999_999_999_999_999_999)
        );
        assert_eq!(scaled(dec!(10000000000000000), MONEY), None);
    }

    proptest::proptest! {
        #[test]
        fn scaled_in_64_bits_agrees_with_128(
            mantissa in proptest::prop_oneof![
                -100_000i128..100_000,
                i128::from(i64::MIN)..=i128::from(i64::MAX),
                -(1i128 << 95)..(1i128 << 95),
            ],
            scale in 0u32..=28,
            ty in proptest::prop_oneof![
                proptest::strategy::Just(MONEY),
                proptest::strategy::Just(RATE),
                proptest::strategy::Just(Fixed { precision: 38, scale: 10 }),
                proptest::strategy::Just(Fixed { precision: 18, scale: 0 }),
            ],
        ) {
            let value = Decimal::from_i128_with_scale(mantissa, scale);
            proptest::prop_assert_eq!(scaled(value, ty), scaled_wide(value, ty));
        }
    }

    #[test]
    fn fixed_text_has_exactly_the_scale() {
        let text = |units, scale| {
            let mut s = String::new();
            push_fixed(&mut s, units, scale);
            s
        };
        assert_eq!(text(1750, 2), "17.50");
        assert_eq!(text(-100, 2), "-1.00");
        assert_eq!(text(-5, 2), "-0.05");
        assert_eq!(text(0, 2), "0.00");
        assert_eq!(text(7000, 2), "70.00");
        assert_eq!(text(42, 0), "42");
    }

    #[test]
    fn csv_rows_are_formatted_and_quoted() {
        let mut first = outcome("a1");
        first.recorded_amo = Some(dec!(19));
        first.flags = vec!["recorded_differs"];
        let rows = vec![first, outcome("a\"2")];
        let mut out = Vec::new();
        to_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "a1,\"p,1\",2024-03-01,consultation,1,30.00,30.00,0.00,ordinary,70.00,21.00,9.00,\
             0.00,0.00,2.00,0.00,0.00,19.00,11.00,pf;rate,recorded_differs,19.00\n\
             \"a\"\"2\",\"p,1\",2024-03-01,consultation,1,30.00,30.00,0.00,ordinary,70.00,21.00,\
             9.00,0.00,0.00,2.00,0.00,0.00,19.00,11.00,pf;rate,,\n"
        );
        assert_eq!(
            String::from_utf8(csv_header::<Outcome>()).unwrap(),
            "act_id,patient_id,care_date,category,quantity,base,billed,overbilling,situation,\
             rate,amo_gross,copayment,majoration,pal,pf,franchise,flat_fee,amo_paid,rac,rules,\
             flags,recorded_amo\n"
        );
    }

    #[test]
    fn sub_cent_amounts_are_refused_with_the_row_named() {
        let mut bad = outcome("a9");
        bad.pf = dec!(0.125);
        let err = to_batch(&[bad.clone()]).unwrap_err().to_string();
        assert_eq!(
            err,
            "table acts, column pf, row a9: 0.125 is not an amount with at most 2 decimals \
             and 16 integer digits"
        );
        let err = to_csv(&[bad], &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("column pf, row a9: 0.125"), "{err}");
    }

    #[test]
    fn batch_has_the_spec_types() {
        let batch = to_batch(&[outcome("a1")]).unwrap();
        let schema = batch.schema();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            schema.field_with_name("base").unwrap().data_type(),
            &DataType::Decimal128(18, 2)
        );
        assert_eq!(
            schema.field_with_name("rate").unwrap().data_type(),
            &DataType::Decimal128(7, 2)
        );
        assert_eq!(
            schema.field_with_name("care_date").unwrap().data_type(),
            &DataType::Date32
        );
        assert!(
            schema
                .field_with_name("recorded_amo")
                .unwrap()
                .is_nullable()
        );
        assert!(!schema.field_with_name("amo_paid").unwrap().is_nullable());
        assert_eq!(to_batch::<Outcome>(&[]).unwrap().num_rows(), 0);
    }

    #[test]
    fn batches_built_by_blocks_equal_batches_built_whole() {
        // More rows than a block, not a multiple of it; values that differ row by row, nulls.
        let rows: Vec<Outcome> = (0..2 * BLOCK_ROWS + 37)
            .map(|i| {
                let mut o = outcome(&format!("a{i}"));
                o.patient_id = format!("p{}", i / 7).into();
                o.base = Decimal::new(i as i64, 2);
                o.rules = if i % 3 == 0 {
                    crate::model::RuleIds::new()
                } else {
                    vec!["pf", "rate"].into()
                };
                o.recorded_amo = (i % 5 == 0).then(|| Decimal::new(i as i64, 1));
                o
            })
            .collect();
        let batch = to_batch(&rows).unwrap();
        assert_eq!(batch.num_rows(), rows.len());
        // Pieces smaller than a block: each is built whole, on one core.
        let pieces: Vec<RecordBatch> = rows
            .chunks(BLOCK_ROWS - 1)
            .map(|chunk| to_batch(chunk).unwrap())
            .collect();
        let whole = arrow::compute::concat_batches(&schema::<Outcome>(), &pieces).unwrap();
        assert_eq!(batch, whole);
        // Unjoined (for the Parquet writer): whole blocks, then the rest, the same rows.
        let blocks = to_batches(&rows).unwrap();
        let sizes: Vec<usize> = blocks.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [BLOCK_ROWS, BLOCK_ROWS, 37]);
        let joined = arrow::compute::concat_batches(&schema::<Outcome>(), &blocks).unwrap();
        assert_eq!(batch, joined);
        let bases = batch
            .column(5)
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(
            bases.value(2 * BLOCK_ROWS + 36),
            (2 * BLOCK_ROWS + 36) as i128
        );
        // A bad value in a later block is still refused, naming its row.
        let mut bad = rows;
        bad[BLOCK_ROWS + 5].base = dec!(1.005);
        let err = to_batch(&bad).unwrap_err().to_string();
        assert!(err.contains(&format!("a{}", BLOCK_ROWS + 5)), "{err}");
        // Two bad rows: the last of the first half's blocks, the first of the second half's
        // (the halves go to two cores, and the second finds its bad row first). The first in
        // row order is named, whichever block fails first.
        let mut bad: Vec<Outcome> = (0..8 * BLOCK_ROWS)
            .map(|i| outcome(&format!("a{i}")))
            .collect();
        let (first, second) = (4 * BLOCK_ROWS - 1, 4 * BLOCK_ROWS + 1);
        bad[first].base = dec!(1.005);
        bad[second].rate = dec!(1.005);
        for _ in 0..50 {
            let err = to_batch(&bad).unwrap_err().to_string();
            assert!(err.contains(&format!("row a{first}:")), "{err}");
        }
    }

    #[test]
    fn take_rows_recuts_batches() {
        let rows: Vec<Outcome> = (0..10).map(|i| outcome(&format!("a{i}"))).collect();
        let mut pending: VecDeque<RecordBatch> = [&rows[..3], &rows[3..4], &rows[4..]]
            .iter()
            .map(|chunk| to_batch(chunk).unwrap())
            .collect();
        let first = take_rows(&mut pending, 5).unwrap();
        assert_eq!(first, to_batch(&rows[..5]).unwrap());
        let rest = take_rows(&mut pending, 5).unwrap();
        assert_eq!(rest, to_batch(&rows[5..]).unwrap());
        assert!(pending.is_empty());
    }

    #[test]
    fn statistics_only_where_they_skip_data_and_no_dictionary_for_ids() {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let rows: Vec<Outcome> = (0..50)
            .map(|i| Outcome {
                patient_id: format!("P{:02}", i / 5).into(),
                ..outcome(&format!("A{i:02}"))
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut writer = TableWriter::<Outcome>::create(dir.path(), Format::Parquet).unwrap();
        writer.write(&rows).unwrap();
        writer.finish().unwrap();
        let file = File::open(dir.path().join("acts.parquet")).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.metadata().row_group(0);
        let chunk = |name: &str| {
            (group.columns().iter())
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        // The sort key and the numbers keep their minimum and maximum...
        let stats = chunk("patient_id")
            .statistics()
            .expect("patient_id statistics");
        assert_eq!(stats.min_bytes_opt(), Some(&b"P00"[..]));
        assert_eq!(stats.max_bytes_opt(), Some(&b"P09"[..]));
        assert!(chunk("care_date").statistics().is_some());
        assert!(chunk("amo_paid").statistics().is_some());
        // ...the other text columns have none.
        for name in ["act_id", "category", "situation", "rules", "flags"] {
            assert!(chunk(name).statistics().is_none(), "{name} has statistics");
        }
        // Ids are written plain, the other text columns with a dictionary.
        for name in ["act_id", "patient_id"] {
            assert!(chunk(name).dictionary_page_offset().is_none(), "{name}");
            assert!(
                !chunk(name)
                    .encodings()
                    .any(|e| e == Encoding::RLE_DICTIONARY)
            );
        }
        assert!(chunk("category").dictionary_page_offset().is_some());
    }

    #[test]
    fn wide_carried_values_end_row_groups_early_however_the_rows_are_cut() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        // 3 000 bytes of carried values a row: ROW_GROUP_CARRIED_BYTES is reached in the
        // 5 593rd row, in the third block of BLOCK_ROWS rows, far before ROW_GROUP_ROWS.
        let wide = "w".repeat(3000);
        let rows: Vec<Outcome> = (0..4 * BLOCK_ROWS + 5)
            .map(|i| Outcome {
                carried: [Some(Id::from(wide.as_str())), None].into_iter().collect(),
                ..outcome(&format!("A{i:05}"))
            })
            .collect();
        let carried = ["note".to_string(), "code".to_string()];
        let write = |cut: usize| {
            let dir = tempfile::tempdir().unwrap();
            let mut writer =
                TableWriter::<Outcome>::create_carrying(dir.path(), Format::Parquet, &carried)
                    .unwrap();
            for part in rows.chunks(cut) {
                writer.write(part).unwrap();
            }
            assert_eq!(writer.finish().unwrap(), rows.len() as u64);
            let path = dir.path().join("acts.parquet");
            let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let groups: Vec<i64> = (reader.metadata().row_groups().iter())
                .map(|g| g.num_rows())
                .collect();
            (groups, fs::read(&path).unwrap())
        };
        let (groups, whole) = write(rows.len());
        // Before the end, the file holds the first row group only.
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            TableWriter::<Outcome>::create_carrying(dir.path(), Format::Parquet, &carried).unwrap();
        writer.write(&rows).unwrap();
        assert_eq!(writer.rows(), rows.len() as u64);
        assert_eq!(writer.rows_in_file(), 3 * BLOCK_ROWS as u64);
        // In CSV, every row written is in the file.
        let mut writer = TableWriter::<Outcome>::create(dir.path(), Format::Csv).unwrap();
        writer.write(&rows[..7]).unwrap();
        assert_eq!(writer.rows_in_file(), 7);
        // The row group ends with that block, wherever the writes end.
        assert_eq!(groups, [3 * BLOCK_ROWS as i64, BLOCK_ROWS as i64 + 5]);
        for cut in [1000, 5600, BLOCK_ROWS, 3 * BLOCK_ROWS] {
            // (not assert_eq: the files are megabytes)
            assert!(write(cut).1 == whole, "rows written {cut} at a time");
        }
    }
}
