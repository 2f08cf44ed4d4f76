//! The rejected rows of a run, in bounded memory: `rejects.csv` lists them in file and row
//! order, but a run may reject every one of its acts (a beneficiaries file of another month
//! makes each act's patient unknown). Past a budget, the rejects held are sorted and written
//! to a run file; at the end the run files are merged into `rejects.csv`, the same bytes as
//! one sort of them all in memory.
//!
//! A reject takes about 200 bytes in memory (10 M acts all rejected: 1.1 GB of `rejects.csv`);
//! held in the store, they are a 32nd of the memory limit at most, 64 MiB.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::spill::SpillError;
use crate::io::write::{Format, TableWriter, WriteError};
use crate::model::Reject;

/// Run files merged at once: more are merged a group at a time first, so that the open files
/// and their read buffers stay few, whatever the count of rejects.
const MERGE_WIDTH: usize = 64;

/// Read and write buffer of a run file.
const RUN_BUFFER: usize = 64 << 10;

/// Rejects written to `rejects.csv` at a time, once merged.
const WRITE_ROWS: usize = 4096;

/// The bytes of rejects held at most, for a run of `memory_limit` bytes: a 32nd of it, from
/// 1 MiB to 64 MiB (about 250 000 rejects of an acts file named in 60 bytes: about 270 bytes
/// each in memory).
pub(crate) fn budget(memory_limit: u64) -> usize {
    (memory_limit / 32).clamp(1 << 20, 64 << 20) as usize
}

/// A run's rejects: held up to a budget of bytes, then sorted into run files in `folder`.
#[derive(Debug)]
pub(crate) struct RejectStore {
    held: Vec<Reject>,
    /// Bytes of `held`: the rejects, and their strings' buffers.
    held_bytes: usize,
    budget: usize,
    /// Where the run files go (made with the first); `None`: everything is held.
    folder: Option<PathBuf>,
    /// The run files, in the order their rejects came.
    runs: Vec<PathBuf>,
    /// Run files made so far (their names' numbers).
    made: usize,
    count: u64,
    /// Rejects of rows of the beneficiaries and rights files, among `count`.
    other: u64,
    /// About the bytes of `rejects.csv` for the rejects added so far ([`csv_bytes`]).
    csv_bytes: u64,
}

impl RejectStore {
    /// A store that holds up to `budget` bytes of rejects, then sorts them into files in
    /// `folder` (removed by [`RejectStore::write`]).
    pub(crate) fn spilling(folder: PathBuf, budget: usize) -> RejectStore {
        RejectStore::new(Some(folder), budget)
    }

    /// A store that holds every reject (a run whose acts are all in memory anyway).
    pub(crate) fn held() -> RejectStore {
        RejectStore::new(None, usize::MAX)
    }

    fn new(folder: Option<PathBuf>, budget: usize) -> RejectStore {
        RejectStore {
            held: Vec::new(),
            held_bytes: 0,
            budget,
            folder,
            runs: Vec::new(),
            made: 0,
            count: 0,
            other: 0,
            csv_bytes: 0,
        }
    }

    /// Adds rejects, of which `other` are rows of the beneficiaries and rights files.
    pub(crate) fn add(
        &mut self,
        rejects: impl IntoIterator<Item = Reject>,
        other: u64,
    ) -> Result<(), SpillError> {
        self.other += other;
        for reject in rejects {
            // Grown by a quarter, not doubled: its spare room (not counted, kept between spills
            // and reused) stays a small part of the budget.
            if self.held.len() == self.held.capacity() {
                self.held.reserve_exact(self.held.capacity() / 4 + 64);
            }
            self.held_bytes += std::mem::size_of::<Reject>() + string_bytes(&reject);
            self.csv_bytes += csv_bytes(&reject);
            self.held.push(reject);
            self.count += 1;
            if self.held_bytes > self.budget {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Every reject added.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Rejects of rows of the beneficiaries and rights files.
    pub(crate) fn other(&self) -> u64 {
        self.other
    }

    /// About the bytes `rejects.csv` will take for the rejects added so far (written at the
    /// end, beside the run files it is merged from), for the outputs' room.
    pub(crate) fn csv_bytes(&self) -> u64 {
        self.csv_bytes
    }

    /// Run files written so far (while computing: the merge's are not counted yet).
    pub(crate) fn runs(&self) -> usize {
        self.made
    }

    /// Sorts the held rejects into the next run file.
    fn spill(&mut self) -> Result<(), SpillError> {
        let Some(folder) = &self.folder else {
            return Ok(());
        };
        if self.runs.is_empty() {
            std::fs::create_dir_all(folder).map_err(|e| spill_error(folder, e))?;
        }
        self.held.sort_by(Reject::order);
        let path = self.next_path();
        let mut out = create(&path)?;
        for reject in self.held.drain(..) {
            put(&mut out, &reject).map_err(|e| spill_error(&path, e))?;
        }
        out.flush().map_err(|e| spill_error(&path, e))?;
        self.held_bytes = 0;
        self.runs.push(path);
        Ok(())
    }

    fn next_path(&mut self) -> PathBuf {
        let folder = self.folder.as_deref().unwrap_or(Path::new("."));
        self.made += 1;
        folder.join(format!("rejects-{:06}.bin", self.made))
    }

    /// Writes `<dir>/rejects.csv` (in file, row and column order; rejects of one row and
    /// column in the order they came), removes the run files, and returns the rows written.
    pub(crate) fn write(mut self, dir: &Path) -> Result<u64, RejectsError> {
        let mut writer = TableWriter::<Reject>::create(dir, Format::Csv)?;
        if self.runs.is_empty() {
            self.held.sort_by(Reject::order);
            writer.write(&self.held)?;
            return Ok(writer.finish()?);
        }
        self.spill()?;
        self.held = Vec::new();
        // Level by level, each group of consecutive runs merged into one in its place (the
        // order of the runs holds), until one merge takes them all: each reject is rewritten
        // once a level.
        while self.runs.len() > MERGE_WIDTH {
            let level = std::mem::take(&mut self.runs);
            for group in level.chunks(MERGE_WIDTH) {
                if let [run] = group {
                    // A last group of one run: as it is.
                    self.runs.push(run.clone());
                    continue;
                }
                let path = self.next_path();
                let mut out = create(&path)?;
                merge(group, |reject| {
                    put(&mut out, &reject).map_err(|e| spill_error(&path, e).into())
                })?;
                out.flush().map_err(|e| spill_error(&path, e))?;
                self.runs.push(path);
            }
        }
        let mut rows = Vec::with_capacity(WRITE_ROWS);
        merge(&self.runs, |reject| {
            rows.push(reject);
            if rows.len() == WRITE_ROWS {
                writer.write(&rows)?;
                rows.clear();
            }
            Ok(())
        })?;
        writer.write(&rows)?;
        let written = writer.finish()?;
        if let Some(folder) = self.folder.take() {
            std::fs::remove_dir_all(&folder).map_err(|e| spill_error(&folder, e))?;
        }
        Ok(written)
    }
}

impl Drop for RejectStore {
    /// Run files left by a run that failed (a finished store has removed its folder).
    fn drop(&mut self) {
        if let Some(folder) = &self.folder
            && self.made > 0
        {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// What writing `rejects.csv` can fail on: a run file, or the table.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RejectsError {
    #[error(transparent)]
    Spill(#[from] SpillError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl From<RejectsError> for super::RunError {
    fn from(e: RejectsError) -> super::RunError {
        match e {
            RejectsError::Spill(e) => e.into(),
            RejectsError::Write(e) => e.into(),
        }
    }
}

/// The strings of a reject, in the order of a run file.
fn strings(r: &Reject) -> [&String; 5] {
    [&r.file, &r.act_id, &r.column, &r.reason, &r.value]
}

/// About the bytes of a reject's line in `rejects.csv`: its strings, its row's digits, five
/// delimiters and the line end (quotes, rare, not counted).
fn csv_bytes(r: &Reject) -> u64 {
    let strings: usize = strings(r).iter().map(|s| s.len()).sum();
    (strings + r.row.max(1).ilog10() as usize + 1 + 6) as u64
}

/// The bytes of a reject's strings' buffers.
fn string_bytes(r: &Reject) -> usize {
    strings(r).iter().map(|s| s.capacity()).sum()
}

fn spill_error(path: &Path, e: impl std::fmt::Display) -> SpillError {
    SpillError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn create(path: &Path) -> Result<BufWriter<File>, SpillError> {
    let file = File::create(path).map_err(|e| spill_error(path, e))?;
    Ok(BufWriter::with_capacity(RUN_BUFFER, file))
}

/// Appends a reject to a run file: its row, then each string's length and bytes.
fn put(out: &mut impl Write, r: &Reject) -> io::Result<()> {
    out.write_all(&r.row.to_le_bytes())?;
    for s in strings(r) {
        out.write_all(&(s.len() as u64).to_le_bytes())?;
        out.write_all(s.as_bytes())?;
    }
    Ok(())
}

/// The next reject of a run file, `None` at its end.
fn take(input: &mut impl BufRead) -> io::Result<Option<Reject>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let row = u64_of(input)?;
    let mut text = || -> io::Result<String> {
        let len = usize::try_from(u64_of(input)?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut bytes = vec![0; len];
        input.read_exact(&mut bytes)?;
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    Ok(Some(Reject {
        file: text()?,
        row,
        act_id: text()?,
        column: text()?,
        reason: text()?,
        value: text()?,
    }))
}

fn u64_of(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// The next reject of a run: the smallest on top, ties to the earlier run (each run holds
/// later rejects than the runs before it: a stable sort of them all).
struct Head {
    reject: Reject,
    run: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Head) -> Ordering {
        other
            .reject
            .order(&self.reject)
            .then(other.run.cmp(&self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// Hands the rejects of the sorted `runs` to `each` in order, and removes the runs' files.
fn merge(
    runs: &[PathBuf],
    mut each: impl FnMut(Reject) -> Result<(), RejectsError>,
) -> Result<(), RejectsError> {
    let mut inputs = runs
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(|e| spill_error(path, e))?;
            Ok(BufReader::with_capacity(RUN_BUFFER, file))
        })
        .collect::<Result<Vec<_>, SpillError>>()?;
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (run, input) in inputs.iter_mut().enumerate() {
        if let Some(reject) = take(input).map_err(|e| spill_error(&runs[run], e))? {
            heap.push(Head { reject, run });
        }
    }
    while let Some(Head { reject, run }) = heap.pop() {
        each(reject)?;
        if let Some(next) = take(&mut inputs[run]).map_err(|e| spill_error(&runs[run], e))? {
            heap.push(Head { reject: next, run });
        }
    }
    drop(inputs);
    for path in runs {
        std::fs::remove_file(path).map_err(|e| spill_error(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::write::write_rejects_csv;

    fn reject(file: &str, row: u64, column: &str, value: &str) -> Reject {
        Reject {
            file: file.into(),
            row,
            act_id: format!("A{row}"),
            column: column.into(),
            reason: "bad_date".into(),
            value: value.into(),
        }
    }

    /// Rejects in no order, with rows rejected more than once in one column (told apart by
    /// their value, in the order they come).
    fn shuffled(n: u64) -> Vec<Reject> {
        let files = ["b.csv", "a.csv", "c,d.csv"];
        let columns = ["care_date", "act_id"];
        (0..n)
            .map(|i| {
                let k = i.wrapping_mul(2_654_435_761) % 997;
                reject(
                    files[(k % 3) as usize],
                    k / 3,
                    columns[(k % 2) as usize],
                    &format!("v{i}"),
                )
            })
            .collect()
    }

    #[test]
    fn rejects_sorted_in_files_and_merged_are_the_bytes_of_one_stable_sort_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let rejects = shuffled(5_000);
        let mut sorted = rejects.clone();
        sorted.sort_by(Reject::order);
        let expected = tmp.path().join("expected");
        std::fs::create_dir(&expected).unwrap();
        write_rejects_csv(&expected, &sorted).unwrap();
        let expected = std::fs::read(expected.join("rejects.csv")).unwrap();
        // Ties kept in the order they came: the values of one row and column rise.
        assert!(sorted.windows(2).any(|w| w[0].order(&w[1]).is_eq()));

        // Held (no folder), one file, a few, and more than are merged at once (merged a group
        // at a time first, level by level).
        for (budget, files) in [(usize::MAX, 0..=0), (1 << 30, 0..=0), (200_000, 2..=8)]
            .into_iter()
            .chain([(8_000, MERGE_WIDTH + 1..=usize::MAX)])
            // A run a reject: merged in two levels (79 groups, the last of 8; then 2).
            .chain([(1, 5_000..=5_000)])
        {
            let folder = tmp.path().join(format!("runs-{budget}"));
            let out = tmp.path().join(format!("out-{budget}"));
            std::fs::create_dir(&out).unwrap();
            let mut store = if budget == usize::MAX {
                RejectStore::held()
            } else {
                RejectStore::spilling(folder.clone(), budget)
            };
            for (i, part) in rejects.chunks(700).enumerate() {
                store.add(part.to_vec(), (i == 0) as u64 * 3).unwrap();
            }
            assert_eq!((store.len(), store.other()), (5_000, 3));
            assert!(
                files.contains(&store.runs()),
                "{budget}: {} runs",
                store.runs()
            );
            let estimate = store.csv_bytes();
            assert_eq!(store.write(&out).unwrap(), 5_000);
            assert!(
                std::fs::read(out.join("rejects.csv")).unwrap() == expected,
                "budget {budget}"
            );
            // The estimate leaves out the header and the quotes (of `c,d.csv`, a third).
            let header = "file,row,act_id,column,reason,value\n".len() as u64;
            let quotes = 2 * rejects.iter().filter(|r| r.file.contains(',')).count() as u64;
            assert_eq!(estimate + header + quotes, expected.len() as u64);
            assert!(!folder.exists(), "{} left", folder.display());
        }
    }

    #[test]
    fn a_run_file_reads_back_every_string_and_says_where_it_is_cut() {
        let odd = Reject {
            file: "dir/é,\"q\".csv".into(),
            row: u64::MAX,
            act_id: String::new(),
            column: "line\nbreak".into(),
            reason: "🙂".into(),
            value: "x".repeat(70_000),
        };
        let plain = reject("a.csv", 0, "care_date", "");
        let mut bytes = Vec::new();
        for r in [&odd, &plain] {
            put(&mut bytes, r).unwrap();
        }
        let mut input = &bytes[..];
        assert_eq!(take(&mut input).unwrap(), Some(odd));
        assert_eq!(take(&mut input).unwrap(), Some(plain));
        assert_eq!(take(&mut input).unwrap(), None);
        let mut cut = &bytes[..bytes.len() - 1];
        take(&mut cut).unwrap();
        let error = take(&mut cut).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_store_dropped_before_its_rejects_are_written_removes_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("runs");
        let mut store = RejectStore::spilling(folder.clone(), 1_000);
        store.add(shuffled(100), 0).unwrap();
        assert!(store.runs() > 1);
        assert!(folder.join("rejects-000001.bin").exists());
        drop(store);
        assert!(!folder.exists());
    }

    #[test]
    fn the_budget_is_a_32nd_of_the_limit_from_1_to_64_mib() {
        assert_eq!(budget(0), 1 << 20);
        assert_eq!(budget(32 << 20), 1 << 20);
        assert_eq!(budget(1 << 30), 32 << 20);
        assert_eq!(budget(12 << 30), 64 << 20);
    }
}
