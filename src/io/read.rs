//! Readers of acts, beneficiaries, rights and counters (CSV, CSV.gz, Parquet), SPEC §2.
//!
//! # Inputs
//!
//! A path is a file, a folder (every `.csv`, `.csv.gz` and `.parquet` file in it, sorted by
//! name, hidden files skipped) or a glob with `*`/`?` in its file-name part
//! (`data/acts_2024-*.parquet`). The files are read as one table; each row remembers its file
//! ([`Sourced::file`], an index into [`Loaded::files`]) and its 1-based data row number.
//! The format comes from the extension (case-insensitive): `.parquet`, `.csv`, `.csv.gz`.
//!
//! # Two levels of problems
//!
//! - File-level problems (missing file, empty file, not CSV/Parquet, corrupt Parquet, a
//!   required column missing from the header, a Parquet column of an unusable type) stop the
//!   read with a [`ReadError`] naming the file (and the column).
//! - Row-level problems never stop the read: the row becomes one [`Reject`] (its first
//!   problem, columns checked in SPEC order) with a stable [`RejectReason`]. Always
//!   `read == rows.len() + rejects.len()`.
//!
//! The counters file is the exception: it is our own output and must be exact, so a bad row
//! there is a [`ReadError::BadCounter`].
//!
//! # Values
//!
//! Column names are exact (case-sensitive); unknown columns are ignored; nothing is trimmed.
//! CSV: a UTF-8 BOM is skipped, `\n` or `\r\n` line ends, the delimiter is the most frequent
//! of `,` `;` and tab in the header line. Dates are `YYYY-MM-DD`. Amounts have at most two
//! significant decimals (`26.50`, `26.5`, `.81`; `26.500` is fine, `26.505` is not) and are
//! returned as scale-2 `Decimal`s; `1,5` needs [`ReadOptions::decimal_comma`]. Booleans are
//! `true/false/1/0` (any case for the words). Empty means the SPEC default (or `None`).
//! Parquet types accepted for each column: see the table in `parquet_source.rs`
//! (`Decimal128` must be whole cents; `Float64` is rounded to the cent, half away from zero,
//! on its shortest decimal representation).
//!
//! # Speed
//!
//! Files are read in chunks ([`Chunks`], 65 536 rows by default) whose rows are converted in
//! parallel (rayon); numbers and dates are parsed from bytes without allocating.

pub(crate) mod csv_source;
mod parquet_source;
mod records;
mod values;

pub use records::{ActIdKey, ActKey, PatientKey, QUANTITY_RANGE};
pub use values::{MAX_CENTS, MAX_VALUE_CHARS, RejectReason, within_amount_range};

use crate::model::{Act, Beneficiary, Reject, RightPeriod, YearCounter};
use csv_source::CsvSource;
use parquet_source::ParquetSource;
use records::{Bad, ColumnSpec, Row, Table};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to read the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Accept a comma as decimal separator in CSV amounts (`--decimal-comma`): `1,5`. A dot
    /// is accepted too.
    pub decimal_comma: bool,
    /// Columns of the acts files outside SPEC §2 whose values are carried through to
    /// `acts.*` (`--keep-columns`; see [`carried_columns`]). Empty: they are ignored.
    pub carried: Arc<[String]>,
    /// Give every problem of a rejected row, each a reject of its own, not only the first
    /// (`validate`); a run's `rejects.csv` has one line per rejected row.
    pub every_problem: bool,
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    /// Index of the file in [`Loaded::files`] (or [`Chunks::files`]).
    pub file: usize,
    /// 1-based data row in that file (the header is row 0).
    pub row: u64,
    pub value: T,
}

/// A whole table, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The files read, in order, as named in rejects (the path given, joined with the file
    /// name for a folder or a glob).
    pub files: Vec<String>,
    /// The rows that converted, in file then row order.
    pub rows: Vec<Sourced<T>>,
    /// The rows that did not, in file then row order.
    pub rejects: Vec<Reject>,
    /// Data rows read: `rows.len() + rejects.len()`.
    pub read: u64,
}

impl<T> Loaded<T> {
    /// The values alone, without their origin.
    pub fn values(self) -> Vec<T> {
        self.rows.into_iter().map(|sourced| sourced.value).collect()
    }
}

/// A slice of a table read by [`Chunks`]: consecutive rows of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk<T> {
    /// Index of the file in [`Chunks::files`].
    pub file: usize,
    pub rows: Vec<Sourced<T>>,
    pub rejects: Vec<Reject>,
    /// Data rows in this chunk: `rows.len() + rejects.len()`.
    pub read: u64,
}

impl<T> Chunk<T> {
    fn from_results(file: usize, results: Vec<Converted<T>>) -> Chunk<T> {
        let read = results.len() as u64;
        let mut rejects = Vec::new();
        // Collected in place (the results' memory is reused): rows are not copied twice.
        let rows: Vec<Sourced<T>> = results
            .into_iter()
            .filter_map(|result| match result {
                Ok(row) => Some(row),
                Err(refused) => {
                    rejects.extend(refused.into_vec());
                    None
                }
            })
            .collect();
        Chunk {
            file,
            rows,
            rejects,
            read,
        }
    }
}

/// A file-level failure: nothing of the table can be trusted. The message names the file
/// (and the column when there is one).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path is neither a file, a folder nor a glob matching something.
    #[error("{path}: no such file or folder")]
    NotFound { path: String },
    /// A folder or glob without any `.csv`, `.csv.gz` or `.parquet` file.
    #[error("{path}: no .csv, .csv.gz or .parquet file found")]
    NoFiles { path: String },
    /// A file whose extension is not `.csv`, `.csv.gz` or `.parquet`.
    #[error("{file}: unsupported file type (expected .csv, .csv.gz or .parquet)")]
    UnsupportedFormat { file: String },
    /// The file could not be opened or read (including a corrupt gzip stream).
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A file of 0 bytes, or a CSV without a header line.
    #[error("{file}: empty file (no header)")]
    Empty { file: String },
    /// A CSV the parser gave up on.
    #[error("{file}: unreadable CSV: {message}")]
    Csv { file: String, message: String },
    /// A quoted field still open at the end of a CSV file: the parser, lenient, would have
    /// read every line after its opening quote as its value, and those rows would be lost
    /// without a trace.
    #[error("{file}: {}", csv_source::unclosed_quote(*.row, .column))]
    UnclosedQuote {
        file: String,
        row: u64,
        column: String,
    },
    /// Not a Parquet file, or a corrupt or truncated one.
    #[error("{file}: corrupt or unreadable Parquet file: {message}")]
    Parquet { file: String, message: String },
    /// Required columns missing from the header (`column` lists them, comma-separated).
    #[error("{file}: missing required column {column}")]
    MissingColumn { file: String, column: String },
    /// A Parquet column whose type cannot hold the column's values.
    #[error("{file}: column {column} has unsupported type {data_type} (expected {expected})")]
    UnsupportedType {
        file: String,
        column: String,
        data_type: String,
        expected: &'static str,
    },
    /// A column name twice in one header (`--keep-columns` could not tell them apart).
    #[error("{file}: column {column:?} appears twice in the header")]
    DuplicateColumn { file: String, column: String },
    /// Two rows of one patient and year in a counters file (one holds one row per patient and
    /// year): added together, they would charge the caps twice.
    #[error(
        "{file}: two rows for patient {patient} and year {year}; a counters file holds one row per patient and year (was it written twice into one file?)"
    )]
    RepeatedCounter {
        file: String,
        patient: String,
        year: i32,
    },
    /// A counters file with other rows than the run that wrote it (its manifest, beside it,
    /// says how many): cut, or changed since.
    #[error(
        "{file}: {read} rows, where the manifest beside it says the run that wrote it wrote {written}: the file was cut or changed since; pass the counters file as written"
    )]
    CountersChanged {
        file: String,
        read: u64,
        written: u64,
    },
    /// A counters file of the rows its manifest counts, but not the bytes that run wrote (the
    /// manifest beside it has their SHA-256): a value edited in place, or another file.
    #[error(
        "{file}: not the file the run that wrote it wrote (its SHA-256 is not the one in {manifest}): a value was edited or the file replaced since; pass the counters file as written (counters moved away from their manifest.json are read unchecked)"
    )]
    CountersEdited { file: String, manifest: String },
    /// An input opened again during the run and found to be another file, or changed.
    #[error("{file}: {message}")]
    Changed { file: String, message: String },
    /// A bad row in a counters file (which must be exact).
    #[error("{file}: row {row}: {}", counter_problem(.reason, .column, .value))]
    BadCounter {
        file: String,
        row: u64,
        column: String,
        reason: String,
        value: String,
    },
}

impl ReadError {
    /// The file (or path) the error is about.
    pub fn file(&self) -> &str {
        match self {
            ReadError::NotFound { path } | ReadError::NoFiles { path } => path,
            ReadError::UnsupportedFormat { file }
            | ReadError::Io { file, .. }
            | ReadError::Empty { file }
            | ReadError::Csv { file, .. }
            | ReadError::UnclosedQuote { file, .. }
            | ReadError::Parquet { file, .. }
            | ReadError::MissingColumn { file, .. }
            | ReadError::UnsupportedType { file, .. }
            | ReadError::DuplicateColumn { file, .. }
            | ReadError::RepeatedCounter { file, .. }
            | ReadError::Changed { file, .. }
            | ReadError::CountersChanged { file, .. }
            | ReadError::CountersEdited { file, .. }
            | ReadError::BadCounter { file, .. } => file,
        }
    }
}

/// A model type that an input table yields: [`Act`], [`Beneficiary`], [`RightPeriod`] and
/// [`YearCounter`], [`ActKey`] and [`PatientKey`] (first passes over the acts and the
/// beneficiaries), and [`ActIdKey`] (the acts to explain). Sealed.
pub trait Record: Table {}

impl<T: Table> Record for T {}

/// The format of one input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    CsvGz,
    Parquet,
}

fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".csv.gz") {
        Some(Format::CsvGz)
    } else if name.ends_with(".csv") {
        Some(Format::Csv)
    } else if name.ends_with(".parquet") {
        Some(Format::Parquet)
    } else {
        None
    }
}

/// Matches a file name against a pattern where `*` is any run of characters and `?` any one
/// character.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The data files of `dir` whose name passes `keep`, sorted by name, named as `prefix/name`.
fn list_dir(
    dir: &Path,
    prefix: &Path,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<Vec<PathBuf>, ReadError> {
    let listing = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = std::fs::read_dir(listing).map_err(|source| ReadError::Io {
        file: dir.display().to_string(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReadError::Io {
            file: dir.display().to_string(),
            source,
        })?;
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        let path = prefix.join(&name);
        if bytes.first() != Some(&b'.')
            && keep(bytes)
            && format_of(&path).is_some()
            && std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|name| prefix.join(name)).collect())
}

/// What a run does not read of what `path` names (see the module documentation), hidden
/// entries aside: of a folder, its subfolders and its entries that are not regular `.csv`,
/// `.csv.gz` or `.parquet` files (a `.gz` without `.csv`, a `.tsv`, a pipe…); of a glob, the
/// entries it matches that are not. Sorted by name; empty for a file. For a warning: a
/// month's file with another extension would otherwise be left out without a word.
pub fn skipped_entries(path: &Path) -> Vec<PathBuf> {
    let (dir, pattern) = if path.is_dir() {
        (path, None)
    } else if path.exists() {
        return Vec::new();
    } else {
        match path.file_name().map(|n| n.as_encoded_bytes().to_vec()) {
            Some(pattern) if pattern.iter().any(|&b| b == b'*' || b == b'?') => {
                (path.parent().unwrap_or(Path::new("")), Some(pattern))
            }
            _ => return Vec::new(),
        }
    };
    let listing = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(listing) else {
        return Vec::new();
    };
    let mut skipped: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .filter(|name| {
            let bytes = name.as_encoded_bytes();
            bytes.first() != Some(&b'.') && pattern.as_ref().is_none_or(|p| glob_match(p, bytes))
        })
        .map(|name| dir.join(name))
        .filter(|entry| {
            !(format_of(entry).is_some() && std::fs::metadata(entry).is_ok_and(|m| m.is_file()))
        })
        .collect();
    skipped.sort();
    skipped
}

/// The files a path stands for (see the module documentation).
pub fn resolve(path: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let shown = || path.display().to_string();
    let files = if path.is_dir() {
        list_dir(path, path, |_| true)?
    } else if let Ok(metadata) = std::fs::metadata(path) {
        // A pipe or a device has no length and cannot be read twice (a run reads its inputs
        // more than once); opening a pipe waited for a writer, or it was "an empty file".
        if !metadata.is_file() {
            return Err(ReadError::Io {
                file: shown(),
                source: std::io::Error::other(
                    "not a regular file (a pipe or a device): rac reads its inputs more than once",
                ),
            });
        }
        return Ok(vec![path.to_path_buf()]);
    } else {
        let name = path.file_name().map(|n| n.as_encoded_bytes().to_vec());
        match name {
            Some(pattern) if pattern.iter().any(|&b| b == b'*' || b == b'?') => {
                let dir = path.parent().unwrap_or(Path::new(""));
                if !dir.as_os_str().is_empty() && !dir.is_dir() {
                    return Err(ReadError::NotFound { path: shown() });
                }
                list_dir(dir, dir, |name| glob_match(&pattern, name))?
            }
            _ => return Err(ReadError::NotFound { path: shown() }),
        }
    };
    if files.is_empty() {
        return Err(ReadError::NoFiles { path: shown() });
    }
    Ok(files)
}

/// Fails with [`ReadError::MissingColumn`] when a required column has no index.
fn check_required(
    name: &str,
    columns: &[ColumnSpec],
    found: &[Option<usize>],
) -> Result<(), ReadError> {
    let missing: Vec<&str> = columns
        .iter()
        .zip(found)
        .filter(|(spec, index)| spec.required && index.is_none())
        .map(|(spec, _)| spec.name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ReadError::MissingColumn {
            file: name.to_string(),
            column: missing.join(", "),
        })
    }
}

/// Fails with [`ReadError::DuplicateColumn`] when one of the table's columns is named twice in
/// a file's header: which of the two holds the values would be a guess (the first was read,
/// the other ignored).
fn check_unique<'a>(
    name: &str,
    columns: &[ColumnSpec],
    header: impl Iterator<Item = &'a [u8]>,
) -> Result<(), ReadError> {
    let mut seen = vec![false; columns.len()];
    for field in header {
        if let Some(i) = columns
            .iter()
            .position(|spec| spec.name.as_bytes() == field)
        {
            if seen[i] {
                return Err(ReadError::DuplicateColumn {
                    file: name.to_string(),
                    column: columns[i].name.to_string(),
                });
            }
            seen[i] = true;
        }
    }
    Ok(())
}

/// Converts one row, or describes why not (boxed: rejects are rare, rows are not).
fn convert_row<T: Table, R: Row + ?Sized>(
    row: &R,
    opts: &ReadOptions,
    file: usize,
    name: &str,
    number: u64,
) -> Converted<T> {
    match T::from_row(row, opts) {
        Ok(value) => Ok(Sourced {
            file,
            row: number,
            value,
        }),
        Err(first) => {
            let act_id = match T::ACT_ID.map(|slot| row.cell(slot).raw()) {
                Some(values::Cell::Text(bytes)) => std::str::from_utf8(bytes)
                    .map(values::truncate)
                    .unwrap_or_default(),
                Some(values::Cell::Int(id)) => id.to_string(),
                _ => String::new(),
            };
            let problems = if opts.every_problem {
                T::problems(row, opts)
            } else {
                vec![first]
            };
            Err(problems
                .into_iter()
                .map(|Bad { slot, reason }| Reject {
                    file: name.to_string(),
                    row: number,
                    act_id: act_id.clone(),
                    column: column_name::<T>(opts, slot).to_string(),
                    reason: reason.as_str().to_string(),
                    value: row.cell(slot).render(),
                })
                .collect())
        }
    }
}

/// A converted row, or its rejects: one, or with [`ReadOptions::every_problem`] one per
/// problem (the first first).
pub(crate) type Converted<T> = Result<Sourced<T>, Box<[Reject]>>;

/// The name of the column at `slot`: the table's own, then the carried ones.
fn column_name<T: Table>(opts: &ReadOptions, slot: usize) -> &str {
    match T::COLUMNS.get(slot) {
        Some(spec) => spec.name,
        None => opts
            .carried
            .get(slot - T::COLUMNS.len())
            .map_or("", String::as_str),
    }
}

/// An open input file.
enum Source {
    Csv(Box<CsvSource>),
    Parquet(Box<ParquetSource>),
}

impl Source {
    fn open(
        path: &Path,
        name: &str,
        columns: &[ColumnSpec],
        carried: &[String],
        size: ChunkSize,
    ) -> Result<Source, ReadError> {
        let format = format_of(path).ok_or_else(|| ReadError::UnsupportedFormat {
            file: name.to_string(),
        })?;
        let metadata = std::fs::metadata(path).map_err(|source| ReadError::Io {
            file: name.to_string(),
            source,
        })?;
        if metadata.len() == 0 {
            return Err(ReadError::Empty {
                file: name.to_string(),
            });
        }
        Ok(match format {
            Format::Csv | Format::CsvGz => Source::Csv(Box::new(CsvSource::open(
                path,
                name,
                format == Format::CsvGz,
                columns,
                carried,
            )?)),
            Format::Parquet => Source::Parquet(Box::new(ParquetSource::open(
                path, name, columns, carried, size,
            )?)),
        })
    }

    /// The file's column names, in file order.
    fn names(&self) -> &[String] {
        match self {
            Source::Csv(source) => source.names(),
            Source::Parquet(source) => source.names(),
        }
    }

    fn next_chunk<T: Table>(
        &mut self,
        file: usize,
        name: &str,
        opts: &ReadOptions,
        size: ChunkSize,
    ) -> Result<Option<Chunk<T>>, ReadError> {
        match self {
            Source::Csv(source) => source.next_chunk(file, name, opts, size),
            Source::Parquet(source) => source.next_chunk(file, name, opts),
        }
    }
}

/// Default number of rows per [`Chunk`].
pub const DEFAULT_CHUNK_ROWS: usize = 65_536;

/// Default number of input bytes a [`Chunk`] is read from: a CSV's records until their bytes
/// reach it (so one record more), a Parquet row group's rows whose share of the columns read,
/// uncompressed (strings at their decoded size where the file records it), fits in it (at
/// least one). Rows of the spec's columns take 100–150 bytes, so this only cuts
/// chunks of wide rows (long columns carried with `--keep-columns`, or ignored ones in a CSV),
/// whose [`DEFAULT_CHUNK_ROWS`] would otherwise hold hundreds of MB whatever `--memory-limit`
/// says.
pub const DEFAULT_CHUNK_BYTES: usize = 16 << 20;

/// How much a [`Chunk`] holds: at most `rows` rows, and about `bytes` bytes of input (see
/// [`DEFAULT_CHUNK_BYTES`]; at least one row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSize {
    pub rows: usize,
    pub bytes: usize,
}

impl Default for ChunkSize {
    fn default() -> ChunkSize {
        ChunkSize {
            rows: DEFAULT_CHUNK_ROWS,
            bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

/// Streaming reader of a table: an iterator of [`Chunk`]s, so that the caller never holds
/// the whole table. Files are opened one after the other, when reached; the first
/// [`ReadError`] ends the iteration.
///
/// ```no_run
/// # use rac::io::read::{Chunks, ReadOptions};
/// # use rac::model::Act;
/// let mut chunks = Chunks::<Act>::open("acts.parquet".as_ref(), &ReadOptions::default())?;
/// for chunk in &mut chunks {
///     let chunk = chunk?;
///     println!("{} rows, {} rejected", chunk.rows.len(), chunk.rejects.len());
/// }
/// # Ok::<(), rac::io::read::ReadError>(())
/// ```
pub struct Chunks<T> {
    files: Vec<String>,
    paths: Vec<PathBuf>,
    opts: ReadOptions,
    size: ChunkSize,
    /// Next file to open.
    next: usize,
    current: Option<(usize, Source)>,
    finished: bool,
    table: PhantomData<fn() -> T>,
}

impl<T: Record> Chunks<T> {
    /// Resolves `path` (file, folder or glob); files are opened during the iteration.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Chunks<T>, ReadError> {
        let paths = resolve(path)?;
        Ok(Chunks {
            files: paths.iter().map(|p| p.display().to_string()).collect(),
            paths,
            opts: opts.clone(),
            size: ChunkSize::default(),
            next: 0,
            current: None,
            finished: false,
            table: PhantomData,
        })
    }

    /// Sets the number of rows per chunk (at least 1; a chunk never spans two files).
    pub fn with_chunk_rows(mut self, rows: usize) -> Chunks<T> {
        self.size.rows = rows.max(1);
        self
    }

    /// Sets the input bytes a chunk is read from, at most ([`DEFAULT_CHUNK_BYTES`]).
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Chunks<T> {
        self.size.bytes = bytes.max(1);
        self
    }

    /// Starts the iteration at file `index` of [`Self::files`] (the rows keep their file's
    /// index).
    pub fn starting_at(mut self, index: usize) -> Chunks<T> {
        self.next = index.min(self.paths.len());
        self
    }

    /// The files of the table, in reading order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Reads everything that is left into one [`Loaded`].
    pub fn collect_all(self) -> Result<Loaded<T>, ReadError> {
        let files = self.files.clone();
        let mut loaded = Loaded {
            files,
            rows: Vec::new(),
            rejects: Vec::new(),
            read: 0,
        };
        for chunk in self {
            let mut chunk = chunk?;
            loaded.read += chunk.read;
            if loaded.rows.is_empty() {
                loaded.rows = chunk.rows;
            } else {
                loaded.rows.append(&mut chunk.rows);
            }
            loaded.rejects.append(&mut chunk.rejects);
        }
        Ok(loaded)
    }
}

impl<T: Record> Iterator for Chunks<T> {
    type Item = Result<Chunk<T>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.finished {
                return None;
            }
            if self.current.is_none() {
                let index = self.next;
                let path = self.paths.get(index)?;
                self.next += 1;
                let carried: &[String] = if T::CARRIES { &self.opts.carried } else { &[] };
                match Source::open(path, &self.files[index], T::COLUMNS, carried, self.size) {
                    Ok(source) => self.current = Some((index, source)),
                    Err(error) => {
                        self.finished = true;
                        return Some(Err(error));
                    }
                }
            }
            let (index, source) = self.current.as_mut()?;
            let index = *index;
            match source.next_chunk::<T>(index, &self.files[index], &self.opts, self.size) {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) => self.current = None,
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// What is wrong with a counters row: a value of a column, or the row itself (no column: not
/// as many fields as the header, as in a file cut short).
fn counter_problem(reason: &str, column: &str, value: &str) -> String {
    if column.is_empty() {
        format!(
            "{reason}: not as many fields as the header (value {value:?}): the file was cut or is no counters file; pass the counters.* a run wrote"
        )
    } else {
        format!("{reason} in column {column} (value {value:?})")
    }
}

/// A counters row that does not convert fails the whole read: counters are state.
pub fn bad_counter(reject: Reject) -> ReadError {
    ReadError::BadCounter {
        file: reject.file,
        row: reject.row,
        column: reject.column,
        reason: reject.reason,
        value: reject.value,
    }
}

/// The columns of the acts files at `path` outside SPEC §2, in the order they first appear
/// (file by file, then within each file's header): the columns `--keep-columns` carries
/// through to `acts.*`. A file without one of them gives empty cells.
///
/// A column without a name (a delimiter at the end of every CSV line) is not carried. A name
/// twice in one file is an error: one of the two would be lost.
pub fn carried_columns(path: &Path) -> Result<Vec<String>, ReadError> {
    let mut carried: Vec<String> = Vec::new();
    for path in resolve(path)? {
        let file = path.display().to_string();
        let source = Source::open(&path, &file, &[], &[], ChunkSize { rows: 1, bytes: 1 })?;
        let names = source.names();
        for (i, column) in names.iter().enumerate() {
            if !column.is_empty() && names[..i].contains(column) {
                return Err(ReadError::DuplicateColumn {
                    file,
                    column: column.clone(),
                });
            }
            let own = Act::COLUMNS.iter().any(|spec| spec.name == column);
            if !own && !column.is_empty() && !carried.contains(column) {
                carried.push(column.clone());
            }
        }
    }
    Ok(carried)
}

/// Fails with [`ReadError::MissingColumn`] unless every file of `path` has a column `column`
/// (an optional column a file must hold all the same, e.g. the counters' `stay_starts` when
/// the manifest beside them says the format that writes it).
pub fn require_column(path: &Path, column: &str) -> Result<(), ReadError> {
    match files_without_column(path, column)?.into_iter().next() {
        Some(file) => Err(ReadError::MissingColumn {
            file: file.display().to_string(),
            column: column.to_string(),
        }),
        None => Ok(()),
    }
}

/// The files of `path` (a file, a folder or a glob) whose header has no column `column`.
pub fn files_without_column(path: &Path, column: &str) -> Result<Vec<PathBuf>, ReadError> {
    let mut without = Vec::new();
    for path in resolve(path)? {
        let file = path.display().to_string();
        let source = Source::open(&path, &file, &[], &[], ChunkSize { rows: 1, bytes: 1 })?;
        if !source.names().iter().any(|name| name == column) {
            without.push(path);
        }
    }
    Ok(without)
}

/// Streams the acts of `path` chunk by chunk (see [`Chunks`]).
pub fn open_acts(path: &Path, opts: &ReadOptions) -> Result<Chunks<Act>, ReadError> {
    Chunks::open(path, opts)
}

/// Reads the whole acts table (SPEC §2 *acts*).
pub fn read_acts(path: &Path, opts: &ReadOptions) -> Result<Loaded<Act>, ReadError> {
    Chunks::open(path, opts)?.collect_all()
}

/// Reads the whole beneficiaries table (SPEC §2 *beneficiaries*).
pub fn read_beneficiaries(
    path: &Path,
    opts: &ReadOptions,
) -> Result<Loaded<Beneficiary>, ReadError> {
    Chunks::open(path, opts)?.collect_all()
}

/// Reads the whole rights table (SPEC §2 *rights*); a period ending before it starts is
/// rejected (`end_before_start`).
pub fn read_rights(path: &Path, opts: &ReadOptions) -> Result<Loaded<RightPeriod>, ReadError> {
    Chunks::open(path, opts)?.collect_all()
}

/// Reads opening counters, as written by an earlier run (`counters.csv` or
/// `counters.parquet`): `patient_id`, `year`, `pf_used`, `franchise_used` (required),
/// `charged_stays` (`;`-joined stay ids, returned sorted and deduplicated),
/// `pf_cap_reached_on`, `franchise_cap_reached_on`, `stay_starts` (`;`-joined
/// `stay_id=YYYY-MM-DD`, sorted by stay, the earliest of each; absent from counters format 1):
/// the text form of [`crate::model::parse_ids`] and [`crate::model::parse_dated`]. Any bad row is a
/// [`ReadError::BadCounter`]: the state must be exact.
/// Every bad row of a counters file, in row order (`validate`: a run refuses the file at its
/// first, [`read_counters`]).
pub fn counters_problems(path: &Path) -> Result<Vec<Reject>, ReadError> {
    let opts = ReadOptions {
        every_problem: true,
        ..ReadOptions::default()
    };
    Ok(Chunks::<YearCounter>::open(path, &opts)?
        .collect_all()?
        .rejects)
}

pub fn read_counters(path: &Path) -> Result<Vec<YearCounter>, ReadError> {
    let loaded = Chunks::<YearCounter>::open(path, &ReadOptions::default())?.collect_all()?;
    if let Some(reject) = loaded.rejects.into_iter().next() {
        return Err(bad_counter(reject));
    }
    Ok(loaded
        .rows
        .into_iter()
        .map(|sourced| sourced.value)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use rust_decimal::Decimal;
    use std::io::Write;

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        path
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"acts_*.csv", b"acts_2024.csv"));
        assert!(glob_match(b"acts_*.csv", b"acts_.csv"));
        assert!(!glob_match(b"acts_*.csv", b"acts_2024.csv.gz"));
        assert!(glob_match(b"*", b"x"));
        assert!(glob_match(b"a*b*c", b"aXXbYYbc"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"**", b""));
        assert!(!glob_match(b"", b"a"));
    }

    #[test]
    fn formats() {
        assert_eq!(format_of(Path::new("a/b.CSV.GZ")), Some(Format::CsvGz));
        assert_eq!(format_of(Path::new("b.csv")), Some(Format::Csv));
        assert_eq!(format_of(Path::new("b.parquet")), Some(Format::Parquet));
        assert_eq!(format_of(Path::new("b.json")), None);
        assert_eq!(format_of(Path::new("csv")), None);
    }

    #[test]
    fn chunks_span_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let header = "patient_id,birth_date,regime\n";
        write(
            dir.path(),
            "b.csv",
            format!("{header}P3,1990-01-01,\nP4,1990-13-01,\n").as_bytes(),
        );
        write(
            dir.path(),
            "a.csv",
            format!("{header}P1,1980-05-06,alsace_moselle\nP2,1981-01-01,general\n").as_bytes(),
        );
        write(dir.path(), "notes.txt", b"ignored");
        write(dir.path(), ".hidden.csv", b"ignored");
        let chunks = Chunks::<Beneficiary>::open(dir.path(), &ReadOptions::default())
            .unwrap()
            .with_chunk_rows(1);
        assert_eq!(chunks.files().len(), 2);
        assert!(chunks.files()[0].ends_with("a.csv"));
        let chunks: Vec<Chunk<Beneficiary>> = chunks.map(Result::unwrap).collect();
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            chunks.iter().map(|c| (c.file, c.read)).collect::<Vec<_>>(),
            vec![(0, 1), (0, 1), (1, 1), (1, 1)]
        );
        assert_eq!(chunks[3].rejects[0].row, 2);
        assert_eq!(chunks[3].rejects[0].reason, "bad_date");
        assert_eq!(chunks[2].rows[0].value.patient_id, "P3");
    }

    #[test]
    fn wide_csv_rows_make_chunks_of_fewer_rows() {
        let dir = tempfile::tempdir().unwrap();
        let note = "n".repeat(1_000);
        let mut text =
            String::from("act_id,patient_id,care_date,category,tariff,quantity,billed,note\n");
        for i in 0..10 {
            text.push_str(&format!(
                "A{i},P1,2024-03-01,drug_30,13.60,2,27.20,{note}\n"
            ));
        }
        let path = write(dir.path(), "acts.csv", text.as_bytes());
        let opts = ReadOptions {
            carried: Arc::from(vec!["note".to_string()]),
            ..ReadOptions::default()
        };
        let read = |chunks: Chunks<Act>| {
            let (mut sizes, mut rows) = (Vec::new(), Vec::new());
            for chunk in chunks {
                let chunk = chunk.unwrap();
                assert!(chunk.rejects.is_empty());
                sizes.push(chunk.rows.len());
                rows.extend(chunk.rows);
            }
            (sizes, rows)
        };
        // A record takes 1 032 bytes (its fields, without delimiters): three reach 2 500.
        let (sizes, rows) = read(open_acts(&path, &opts).unwrap().with_chunk_bytes(2_500));
        assert_eq!(sizes, [3, 3, 3, 1]);
        let (whole, same) = read(open_acts(&path, &opts).unwrap());
        assert_eq!(whole, [10]);
        assert_eq!(rows, same);
        assert_eq!(
            rows[9].value.carried.values(),
            [Some(crate::model::Id::from(note.as_str()))]
        );
        let (sizes, _) = read(open_acts(&path, &opts).unwrap().with_chunk_bytes(1));
        assert_eq!(sizes, [1; 10]);
    }

    #[test]
    fn counters_are_strict() {
        let dir = tempfile::tempdir().unwrap();
        let header = "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,franchise_cap_reached_on\n";
        let good = write(
            dir.path(),
            "counters.csv",
            format!("{header}P1,2024,50.00,12.5,S1;S0,2024-06-01,\n").as_bytes(),
        );
        let counters = read_counters(&good).unwrap();
        assert_eq!(
            counters,
            vec![YearCounter {
                patient_id: "P1".into(),
                year: 2024,
                pf_used: Decimal::new(5000, 2),
                franchise_used: Decimal::new(1250, 2),
                charged_stays: vec!["S0".into(), "S1".into()],
                pf_cap_reached_on: NaiveDate::from_ymd_opt(2024, 6, 1),
                franchise_cap_reached_on: None,
                // Format 1: no `stay_starts` column, no start known.
                stay_starts: vec![],
                open_stays: vec![],
            }]
        );
        // Format 2: the stays' starts, sorted by stay, one each (the earliest).
        let header2 = format!("{}stay_starts\n", header.replace('\n', ","));
        let starts = write(
            dir.path(),
            "counters2.csv",
            format!(
                "{header2}P1,2024,0,0,S\\;1;S2,,,S2=2024-02-01;a\\=b=2024-01-03;S2=2024-01-20\n"
            )
            .as_bytes(),
        );
        let day = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap();
        let read = read_counters(&starts).unwrap();
        // Ids escaped as the writer escapes them (`\;`, `\=`) read back whole.
        assert_eq!(read[0].charged_stays, ["S2", "S;1"]);
        assert_eq!(
            read[0].stay_starts,
            vec![("S2".into(), day(1, 20)), ("a=b".into(), day(1, 3))]
        );
        for cell in ["S1=2024-02-31", "S1", "=2024-01-03", "S1=2024-1-3"] {
            let path = write(
                dir.path(),
                "bad-starts.csv",
                format!("{header2}P1,2024,0,0,,,,{cell}\n").as_bytes(),
            );
            match read_counters(&path) {
                Err(ReadError::BadCounter { column, reason, .. }) => assert_eq!(
                    (column.as_str(), reason.as_str()),
                    ("stay_starts", "bad_date"),
                    "{cell}"
                ),
                other => panic!("{cell}: {other:?}"),
            }
        }
        let bad = write(
            dir.path(),
            "bad.csv",
            format!("{header}P1,2024,50.00,12.5,,,\nP2,2024,x,0,,,\n").as_bytes(),
        );
        match read_counters(&bad) {
            Err(ReadError::BadCounter {
                row,
                column,
                reason,
                ..
            }) => {
                assert_eq!(
                    (row, column.as_str(), reason.as_str()),
                    (2, "pf_used", "bad_decimal")
                );
            }
            other => panic!("{other:?}"),
        }
        // A file cut in the middle of a row: said so, not "in column " with no name (QA).
        let cut = write(
            dir.path(),
            "cut.csv",
            format!("{header}P1,2024,50.00,12.5,,,\nP2,20").as_bytes(),
        );
        let err = read_counters(&cut).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "cut.csv: row 2: bad_row: not as many fields as the header (value \"P2,20\"): the file was cut or is no counters file; pass the counters.* a run wrote"
            ),
            "{err}"
        );
    }

    #[test]
    fn unsupported_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let json = write(dir.path(), "acts.json", b"{}");
        assert!(matches!(
            read_acts(&json, &ReadOptions::default()),
            Err(ReadError::UnsupportedFormat { .. })
        ));
        assert!(matches!(
            read_acts(&dir.path().join("nope.csv"), &ReadOptions::default()),
            Err(ReadError::NotFound { .. })
        ));
        assert!(matches!(
            read_acts(&dir.path().join("nope_*.csv"), &ReadOptions::default()),
            Err(ReadError::NoFiles { .. })
        ));
        let csv = write(dir.path(), "acts.csv", b"act_id,patient_id\nA,P\n");
        let error = read_acts(&csv, &ReadOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: missing required column care_date, category, tariff",
                csv.display()
            )
        );
        assert_eq!(error.file(), csv.display().to_string());
    }
}
