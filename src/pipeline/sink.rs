//! The outputs of a run being written: each partition's outcomes, patient-years and closing
//! counters stream into the writers as the partition finishes, and the audit's discrepancies
//! into their table; the summary, the rejects, the audit's report and the manifest are
//! written at the end, then everything is committed atomically.
//!
//! The tables are encoded on a writer thread fed through a short queue, so that encoding one
//! chunk of outcomes overlaps computing the next; the rows reach it in order, so the bytes do
//! not depend on the timing. With one worker (`--threads 1`) they are encoded in line.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::json;

use super::rejects::RejectStore;
use super::worker::{Stage, Worker};
use super::{COUNTERS_FORMAT, Prepared, RunError, RunOptions, RunSummary, State, for_each_chunk};
use crate::audit;
use crate::io::write::{self, Staging, TableWriter, WriteError};
use crate::model::{Act, Outcome, YearCounter};
use crate::report::{PatientTotals, PatientYear, Summary, Totals};
use crate::rules::{Overlay, RuleBook};

/// Messages waiting for the writer at most. The writer has stretches of work the pool does not
/// share (closing a row group into the file, a partition's patient-years); with room for
/// four chunks of outcomes rather than one, the computing goes on meanwhile instead of
/// waiting to hand its chunk over. 10 M acts, six alternated pairs: the compute phase
/// 12.7–14.5 s → 12.0–13.3 s (faster in five pairs), the cores' idle share there 12–13 % →
/// 10–11 %, the peak RSS the same (402–439 MiB both).
const WRITER_QUEUE: usize = 4;

/// What the writer is sent, in order.
enum Message {
    Outcomes(Vec<Outcome>),
    /// The partition's outcomes were all sent: its patient-years can be written, with its
    /// closing counters.
    EndPartition(Vec<YearCounter>),
}

/// The streamed tables and the aggregates of the outcomes, owned by the writer (its thread,
/// or the sink with one worker).
struct Writer {
    /// `None` for a run without tables ([`RunOptions::tables`]): only counted.
    tables: Option<Tables>,
    /// Patient-years and counters rows, counted where there are no tables.
    counted: (u64, u64),
    summary: Summary,
    partition: PatientTotals,
    /// CPU nanoseconds spent on the sums ([`Sink::totals_cpu_ms`]).
    totals_cpu: Arc<AtomicU64>,
    /// Acts handed to their file ([`Sink::acts_in_file`]).
    acts_in_file: Arc<AtomicU64>,
}

/// The streamed tables.
struct Tables {
    acts: TableWriter<Outcome>,
    patients: TableWriter<PatientYear>,
    counters: TableWriter<YearCounter>,
}

/// What the writer reports at the end.
struct Written {
    patient_years: u64,
    counters: u64,
    summary: Summary,
    totals: Totals,
}

impl Stage for Writer {
    type Item = Message;
    type Output = Written;
    type Error = RunError;

    /// Encodes one message's rows (or ends a partition).
    fn take(&mut self, message: Message) -> Result<(), RunError> {
        match message {
            Message::Outcomes(outcomes) => {
                // The sums beside the encoding, on the pool.
                let (partition, summary) = (&mut self.partition, &mut self.summary);
                let totals_cpu = &self.totals_cpu;
                let mut sums = || {
                    let started = super::cpu::thread_ns();
                    crate::report::add_to_both(partition, summary, &outcomes);
                    let spent = super::cpu::thread_ns().saturating_sub(started);
                    totals_cpu.fetch_add(spent, Ordering::Relaxed);
                };
                match &mut self.tables {
                    Some(tables) => {
                        let (written, ()) = rayon::join(|| tables.acts.write(&outcomes), sums);
                        written?;
                        self.acts_in_file
                            .store(tables.acts.rows_in_file(), Ordering::Relaxed);
                    }
                    None => {
                        sums();
                        self.acts_in_file
                            .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
                    }
                }
            }
            Message::EndPartition(closing) => {
                let years = std::mem::take(&mut self.partition).finish(&closing);
                match &mut self.tables {
                    Some(tables) => {
                        tables.patients.write(&years)?;
                        tables.counters.write(&closing)?;
                    }
                    None => {
                        self.counted.0 += years.len() as u64;
                        self.counted.1 += closing.len() as u64;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Written, RunError> {
        let (patient_years, counters) = match self.tables {
            Some(tables) => {
                tables.acts.finish()?;
                (tables.patients.finish()?, tables.counters.finish()?)
            }
            None => self.counted,
        };
        Ok(Written {
            patient_years,
            counters,
            // The summary's cells hold every act once: their sum is the run's totals.
            totals: self.summary.totals(),
            summary: self.summary,
        })
    }
}

fn stopped_early() -> RunError {
    RunError::Internal("the writer stopped early".into())
}

/// Everything written so far, and the small aggregates kept until the end.
pub(crate) struct Sink<'a> {
    book: &'a RuleBook,
    opts: &'a RunOptions,
    /// The tables being encoded, on a thread fed through a short queue, or in line with one
    /// worker. Declared before the staging folder, so that a sink dropped on an error waits
    /// for the writer's thread before the folder is removed.
    writer: Worker<Writer>,
    /// `rac audit`'s discrepancies, written as they are found (before the staging folder,
    /// as the writer).
    audit: Option<audit::DiscrepancyWriter>,
    staging: Staging,
    rejects: RejectStore,
    computed: u64,
    /// Cleared from the terminal however the sink ends (finished, or dropped on
    /// an error).
    bar: super::partitioned::Bar,
    inputs: InputHashes,
    /// CPU nanoseconds the writer spent on the per-patient and summary sums: one message
    /// after the other, on one worker at a time.
    totals_cpu: Arc<AtomicU64>,
    acts_in_file: Arc<AtomicU64>,
}

/// The input files of the run, their SHA-256 and size, for the manifest. They are hashed on a
/// thread of their own from the sink's start, beside the computing, instead of at the end
/// where the run waited for it (0.63 s at 10 M acts, a 200 MB file, per `strace`). With one
/// worker, in line at the end. A run that fails leaves the thread to finish on its own: it
/// only reads the inputs. A run without tables (`validate`'s, whose manifest nobody reads)
/// gives their sizes alone.
struct InputHashes {
    /// (role, path)
    files: Vec<(&'static str, String)>,
    thread: Option<JoinHandle<Result<Hashes, WriteError>>>,
    hashed: bool,
}

/// The SHA-256 (hex) and size in bytes of each input, in order.
type Hashes = Vec<(String, u64)>;

impl InputHashes {
    fn start(files: &[(&'static str, String)], hashed: bool) -> InputHashes {
        let files = files.to_vec();
        let thread = if super::single_threaded() || !hashed {
            None
        } else {
            let paths: Vec<String> = files.iter().map(|(_, path)| path.clone()).collect();
            // A thread that cannot start leaves the hashing to the end.
            std::thread::Builder::new()
                .name("rac-sha256".into())
                .spawn(move || hash_all(&paths))
                .ok()
        };
        InputHashes {
            files,
            thread,
            hashed,
        }
    }

    /// The manifest's `inputs`: the files read, then the scenario files (`role: rules`), whose
    /// digest is the text's the rules were built from.
    fn finish(self, overlays: &[Overlay]) -> Result<serde_json::Value, WriteError> {
        if !self.hashed {
            let inputs = (self.files.iter())
                .map(|(role, path)| {
                    let bytes = std::fs::metadata(path).map(|m| m.len()).ok();
                    json!({ "role": role, "path": path, "bytes": bytes })
                })
                .collect();
            return Ok(serde_json::Value::Array(inputs));
        }
        let hashes = match self.thread {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            None => hash_all(self.files.iter().map(|(_, path)| path))?,
        };
        let inputs = self
            .files
            .iter()
            .zip(hashes)
            .map(|((role, path), (sha256, bytes))| {
                json!({ "role": role, "path": path, "bytes": bytes, "sha256": sha256 })
            })
            .chain(overlays.iter().map(Overlay::manifest_entry))
            .collect();
        Ok(serde_json::Value::Array(inputs))
    }
}

/// The SHA-256 and size of each file, in order.
fn hash_all<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Hashes, WriteError> {
    paths
        .into_iter()
        .map(|path| write::sha256_and_size(path.as_ref()))
        .collect()
}

impl<'a> Sink<'a> {
    /// Opens the staging folder and the streamed tables; `total` acts are expected (for the
    /// progress bar); `files` (role, path) are the run's inputs, for the manifest.
    pub(crate) fn begin(
        book: &'a RuleBook,
        opts: &'a RunOptions,
        total: u64,
        files: &[(&'static str, String)],
    ) -> Result<Sink<'a>, RunError> {
        let staging = Staging::begin(&opts.out)?;
        Sink::with_staging(book, opts, staging, total, files, RejectStore::held())
    }

    pub(crate) fn with_staging(
        book: &'a RuleBook,
        opts: &'a RunOptions,
        staging: Staging,
        total: u64,
        files: &[(&'static str, String)],
        rejects: RejectStore,
    ) -> Result<Sink<'a>, RunError> {
        let dir = staging.path().to_path_buf();
        let bar = super::partitioned::progress_bar(opts.progress, total, "compute+write");
        let tables = match opts.tables {
            true => Some(Tables {
                acts: TableWriter::create_carrying(&dir, opts.format, &opts.carried)?,
                patients: TableWriter::create(&dir, opts.format)?,
                counters: TableWriter::create(&dir, opts.format)?,
            }),
            false => None,
        };
        let writer = Writer {
            tables,
            counted: (0, 0),
            summary: Summary::new(),
            partition: PatientTotals::new(),
            totals_cpu: Arc::default(),
            acts_in_file: Arc::default(),
        };
        let totals_cpu = Arc::clone(&writer.totals_cpu);
        let acts_in_file = Arc::clone(&writer.acts_in_file);
        let writer = Worker::start("rac-writer", WRITER_QUEUE, writer, stopped_early)
            .map_err(|e| RunError::Internal(format!("cannot start the writer thread: {e}")))?;
        let audit = match opts.audit {
            Some(settings) => Some(audit::DiscrepancyWriter::create(
                &dir,
                opts.format,
                settings,
            )?),
            None => None,
        };
        Ok(Sink {
            book,
            opts,
            writer,
            audit,
            staging,
            rejects,
            computed: 0,
            bar,
            inputs: InputHashes::start(files, opts.tables),
            totals_cpu,
            acts_in_file,
        })
    }

    /// The CPU time the writer has spent so far on the per-patient and summary sums, in ms:
    /// sums of one message at a time, so a floor on the computing's time however many
    /// workers.
    pub(crate) fn totals_cpu_ms(&self) -> u64 {
        self.totals_cpu.load(Ordering::Relaxed) / 1_000_000
    }

    /// About the bytes of `rejects.csv` for the rejects so far.
    pub(crate) fn rejects_csv_bytes(&self) -> u64 {
        self.rejects.csv_bytes()
    }

    /// The files the rejects held past their budget were sorted into so far.
    pub(crate) fn reject_files(&self) -> u64 {
        self.rejects.runs() as u64
    }

    /// The acts the writer has handed to `acts.*` so far: the outputs on disk are theirs
    /// (and their patients'), not yet those of the acts in its queue or in the Parquet row
    /// group it fills.
    pub(crate) fn acts_in_file(&self) -> u64 {
        self.acts_in_file.load(Ordering::Relaxed)
    }

    /// Computes one partition (patients of a range of ids, after the previous partition's)
    /// and writes its rows.
    pub(crate) fn partition(&mut self, prepared: &Prepared) -> Result<(), RunError> {
        let mut state = State::default();
        let book = self.book;
        for_each_chunk(book, prepared, |chunk, results| -> Result<(), RunError> {
            let mut outcomes = state.absorb(prepared, chunk, results);
            self.bar
                .inc(chunk.iter().map(|p| p.acts.len() as u64).sum());
            if let Some(audit) = &mut self.audit {
                let index: HashMap<&str, &Act> = chunk
                    .iter()
                    .flat_map(|p| prepared.acts_of(p))
                    .filter(|a| a.recorded_amo.is_some())
                    .map(|a| (a.act_id.as_str(), a))
                    .collect();
                audit.audit(book, &mut outcomes, &index)?;
            }
            self.writer.send(Message::Outcomes(outcomes))
        })?;
        state.finish(prepared);
        self.writer
            .send(Message::EndPartition(std::mem::take(&mut state.closing)))?;
        self.computed += state.computed;
        self.rejects
            .add(std::mem::take(&mut state.rejects), prepared.other_rejects)?;
        Ok(())
    }

    /// Writes the rest, the manifest last, and commits the folder.
    pub(crate) fn finish(self, read: u64, started: Instant) -> Result<RunSummary, RunError> {
        self.bar.finish_and_clear();
        let dir = self.staging.path().to_path_buf();
        let format = self.opts.format;
        let Written {
            patient_years,
            counters,
            summary,
            totals,
        } = self.writer.finish()?;
        // Counters are the state the next run starts from: their digest lets it tell the file
        // as written from one edited since.
        let counters_file = match self.opts.tables {
            true => {
                let (sha256, bytes) = write::sha256_of_output(&dir.join(format!(
                    "{}.{}",
                    <YearCounter as write::Row>::TABLE,
                    format.extension()
                )))?;
                json!({ "bytes": bytes, "sha256": sha256 })
            }
            false => json!(null),
        };
        let summary_rows = summary.rows();
        if self.opts.tables {
            write::write_table(&dir, format, &summary_rows)?;
        }
        let (rejected, other_rejected) = (self.rejects.len(), self.rejects.other());
        let written = self.rejects.write(&dir)?;
        debug_assert_eq!(written, rejected);
        let discrepancies = self.audit.as_ref().map(audit::DiscrepancyWriter::count);
        let audit_section = match self.audit {
            Some(report) => report.finish(totals.recorded_acts)?,
            None => json!(null),
        };

        let inputs = self.inputs.finish(self.book.overlays())?;
        super::check_not_counted_twice(&inputs)?;
        let rejected_acts = rejected - other_rejected;
        let summary = RunSummary {
            read,
            computed: self.computed,
            rejected: rejected_acts,
            other_rejected,
            discrepancies,
            totals,
            summary: summary_rows,
            out: self.opts.out.clone(),
            seconds: started.elapsed().as_secs_f64(),
        };
        // The manifest records the run, duration included (SPEC §4); every other output is
        // the same bytes for the same inputs.
        let manifest = json!({
            "tool": "rac",
            "version": env!("CARGO_PKG_VERSION"),
            "command": self.opts.command,
            "argv": self.opts.argv,
            "format": format.as_str(),
            "carried_columns": &*self.opts.carried,
            "inputs": inputs,
            "rules": { "version": self.book.version(), "sources": self.book.sources() },
            "counters_format": COUNTERS_FORMAT,
            "counters": counters_file,
            "rows": {
                "read": summary.read,
                "computed": summary.computed,
                "rejected": summary.rejected,
                "rejected_other_rows": summary.other_rejected,
                "patient_years": patient_years,
                "counters": counters,
            },
            "totals": summary.totals.to_json(),
            "audit": audit_section,
            "profile": self.opts.profile,
            "duration_seconds": (summary.seconds * 1000.0).round() / 1000.0,
        });
        write::write_manifest(&dir, &manifest)?;
        self.staging.commit()?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::{Limits, RunOptions, SpillIo, csv_inputs, run};
    use crate::io::write::Format;
    use crate::rules::RuleBook;

    /// A run without tables (`validate`'s) writes its rejects and manifest alone, and finds
    /// what the run with them finds: the same rejects, byte for byte, counts and totals.
    #[test]
    fn a_run_without_tables_writes_its_rejects_and_manifest_alone() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = csv_inputs(
            dir.path(),
            "act_id,patient_id,care_date,category,tariff\n\
             A1,P1,2025-03-01,consultation,30\n\
             A2,P1,2025-13-01,consultation,30\n\
             A3,P2,2025-03-02,drug_65,12.5\n\
             A4,P9,2025-03-02,drug_65,12.5\n",
            "patient_id,birth_date,regime\nP1,1980-03-10,general\nP2,1955-07-01,general\n",
            None,
            None,
        );
        let book = RuleBook::builtin();
        let outcome = |tables: bool| {
            let out = dir.path().join(format!("out-{tables}"));
            let opts = RunOptions {
                out: out.clone(),
                format: Format::Parquet,
                command: "test".into(),
                argv: Vec::new(),
                audit: None,
                profile: serde_json::Value::Null,
                progress: false,
                log_every: None,
                carried: Default::default(),
                tables,
            };
            let limits = Limits {
                memory: 64 << 20,
                parts: None,
                sorted: false,
                spill_io: SpillIo::Cached,
                spill_compression: None,
                temp_dir: None,
            };
            let summary = run(
                &book,
                &inputs,
                &opts,
                &limits,
                Instant::now(),
                &|_, _, _| {},
            )
            .unwrap();
            let mut files: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let rejects = std::fs::read(out.join("rejects.csv")).unwrap();
            let counts = (summary.read, summary.computed, summary.rejected);
            (files, rejects, counts, summary.totals.to_json())
        };
        let (files, rejects, counts, totals) = outcome(true);
        assert_eq!(
            files,
            [
                "acts.parquet",
                "counters.parquet",
                "manifest.json",
                "patients.parquet",
                "rejects.csv",
                "summary.parquet"
            ]
        );
        let (bare_files, bare_rejects, bare_counts, bare_totals) = outcome(false);
        assert_eq!(bare_files, ["manifest.json", "rejects.csv"]);
        // Its inputs are not hashed (`validate` reads no manifest): their sizes alone.
        let manifest = |tables: bool| -> serde_json::Value {
            let path = dir.path().join(format!("out-{tables}/manifest.json"));
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        };
        let (hashed, bare) = (manifest(true), manifest(false));
        let acts = |m: &serde_json::Value| {
            let inputs = m["inputs"].as_array().unwrap().iter();
            inputs
                .filter(|i| i["role"] == "acts")
                .cloned()
                .collect::<Vec<_>>()[0]
                .clone()
        };
        assert_eq!(acts(&hashed)["role"], "acts");
        assert_eq!(acts(&hashed)["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(acts(&bare)["role"], "acts");
        assert_eq!(acts(&bare)["sha256"], serde_json::Value::Null);
        assert_eq!(acts(&bare)["bytes"], acts(&hashed)["bytes"]);
        assert_eq!(bare_rejects, rejects);
        assert_eq!(bare_counts, counts);
        assert_eq!(counts, (4, 2, 2));
        assert_eq!(bare_totals, totals);
    }
}
