//! `rac compute` and `rac audit`: recompute every act; the audit then compares with what
//! was recorded.
//!
//! ```text
//! rac compute --acts acts.parquet --beneficiaries beneficiaries.parquet \
//!             [--rights rights.parquet] [--counters last-month/counters.parquet] \
//!             --out results/ [--format parquet|csv] [--threads N] [--rules scenario.toml]
//! rac audit   (the same flags) [--compare paid|gross] [--tolerance 0.01]
//! ```
//! Writes `acts`, `patients`, `summary`, `counters` (`.parquet` or `.csv`), `rejects.csv`
//! and `manifest.json` into `--out`, atomically (`audit` adds `discrepancies.*` and
//! `discrepancies.md`). Exit codes: 0 all rows computed, 3 some rows rejected, 2 usage or
//! configuration error, 1 unreadable input or internal error (nothing written).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use rust_decimal::Decimal;

use super::{Failure, InputArgs, load_rules, memory_limit, warn_rules};
use crate::audit::Compare;
use crate::io::temp::TempError;
use crate::io::write::Format;
use crate::pipeline::{self, RunOptions, RunSummary};
use crate::profile::ProfileKind;

/// Recompute every act of a claims file.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output folder (created; existing outputs are replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Output format: parquet or csv.
    #[arg(long, default_value = "parquet")]
    pub format: String,
    /// Worker threads (default, or 0: all cores). With N > 1 the reading, the writing of
    /// spill files, the writing of outputs and the hashing of the inputs each have a thread
    /// beside the N workers, and the reading back of act ids and partitions one per four
    /// workers (a run can use a little more than N cores); with 1 they run in line: one core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Show progress even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Most memory the run may hold, e.g. 512M or 4G, at least 1M (default: half of the machine's, or of its
    /// control group's limit when lower: a container's). Larger inputs are cut into
    /// partitions of patients, spilled to disk and computed one at a time; the outputs are the
    /// same bytes.
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// How spill files reach the disk: `direct` bypasses the page cache (O_DIRECT, Linux,
    /// where the file system takes it; the files are written once and read once, and going
    /// through the cache only costs CPU); `cached` goes through it, for a disk much slower
    /// than memory copies (a network file system, a spinning disk).
    #[arg(long, default_value = "direct", value_parser = ["direct", "cached"])]
    pub spill_io: String,
    /// Compress the spill files: `lz4` makes them about a third of their size, `zstd` about a
    /// fifth, for more CPU (100 M acts: 6 % and 14 % more time; 10 M: 10 % and 20 %). `auto`:
    /// as they are (about 190 bytes an act; a billion acts: 190 GB) where the spill disk has
    /// room for them, else the least compression that fits (projected from the first acts,
    /// and logged). On a slow spill disk, `lz4` writes and reads fewer bytes.
    #[arg(long, default_value = "auto", value_parser = pipeline::SpillCompression::CHOICES)]
    pub spill_compression: String,
    /// Folder for the spill files (a local scratch disk, when --out is on a slow or small
    /// one): the run makes a folder of its own there, removed when it ends, and removes those
    /// of killed runs. Not --out nor a folder in it. Default (or empty): the temporary output
    /// folder beside --out. Canonical profile (extracts are mapped in memory, not spilled).
    #[arg(long, env = "RAC_TEMP_DIR", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub temp_dir: Option<std::ffi::OsString>,
    /// Number of partitions, instead of what --memory-limit asks for (tuning, tests).
    #[arg(long, hide = true)]
    pub partitions: Option<usize>,
    /// The acts are sorted by patient_id (byte order, across the files in the order they are
    /// read): they are streamed partition by partition instead of spilled to disk. A row out
    /// of order fails the run (exit 1). Without it, a first pass finds whether they are
    /// (and gives up at the first row out of order). Canonical profile only.
    #[arg(long)]
    pub sorted: bool,
    /// Log lines as JSON objects (for log collectors).
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Seconds between the log lines that say how far a long step of a partitioned run is
    /// (acts read, partitions computed; JSON logs): a run without a terminal (cron, a
    /// scheduler) shows it is alive. 0: after every chunk and partition.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub log_every: f64,
    /// Carry the acts' columns that SPEC §2 does not define (a claim number, a caisse code…)
    /// through to `acts.*`, after its own columns, as text: the columns of every acts file, in
    /// the order they first appear; empty where a file lacks one. Canonical profile only.
    #[arg(long)]
    pub keep_columns: bool,
}

/// `--spill-compression`: `None` for `auto` (decided by the run), else the one named.
fn spill_compression(name: &str) -> Result<Option<pipeline::SpillCompression>, Failure> {
    if name == "auto" {
        return Ok(None);
    }
    pipeline::SpillCompression::parse(name)
        .map(Some)
        .ok_or_else(|| {
            Failure::usage(format!(
                "--spill-compression {name}: auto, none, lz4 or zstd"
            ))
        })
}

/// `--temp-dir` (or `RAC_TEMP_DIR`), checked: an existing folder that is not `--out`, nor in
/// it (the commit replaces `--out` whole), nor another run's outputs. Empty means not given
/// (an environment that sets the variable to nothing).
fn temp_dir(args: &ComputeArgs) -> Result<Option<PathBuf>, Failure> {
    let Some(dir) = args.temp_dir.as_ref().filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    let refuse = |why: &str| Failure::usage(format!("--temp-dir {}: {why}", dir.display()));
    let real = match std::fs::canonicalize(&dir) {
        Ok(real) if real.is_dir() => real,
        _ => return Err(Failure::usage(TempError::not_a_folder(&dir).to_string())),
    };
    if real_out(&args.out).is_some_and(|out| real.starts_with(out)) {
        return Err(refuse(&format!(
            "is --out or inside it ({}), which the run replaces: give another folder",
            args.out.display()
        )));
    }
    if real.join(crate::io::write::MANIFEST_FILE).exists() {
        return Err(refuse(
            "holds a rac run's outputs (manifest.json), which a run replaces: give another folder",
        ));
    }
    Ok(Some(dir))
}

/// `--out` as it will be: the folder itself if it exists, else its parent's real path joined
/// with its name.
fn real_out(out: &Path) -> Option<PathBuf> {
    let out: PathBuf = out.components().collect();
    std::fs::canonicalize(&out).ok().or_else(|| {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(out.file_name()?))
    })
}

/// `--counters` inside `--out`: the run would replace the earlier run's outputs, the counters
/// it opens with among them, by its own (a cron job writing each month over the last one
/// loses every month but the last). Refused (exit 2): each run gets its own folder.
fn check_counters_not_in_out(args: &ComputeArgs) -> Result<(), Failure> {
    let Some(counters) = &args.input.counters else {
        return Ok(());
    };
    // The file's own real path (a link into --out is in it), else its folder's.
    let real_parent = std::fs::canonicalize(counters)
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf));
    let Some(folder) = real_parent.or_else(|| {
        let p = counters.parent()?;
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        std::fs::canonicalize(p).ok()
    }) else {
        return Ok(());
    };
    match real_out(&args.out) {
        Some(out) if folder.starts_with(&out) => Err(Failure::usage(format!(
            "--counters {} is in --out {}, which this run replaces with its own outputs: the earlier run's outputs would be lost; write this run to another folder (one per period, e.g. out/2025-02)",
            counters.display(),
            args.out.display()
        ))),
        _ => Ok(()),
    }
}

/// A number of seconds, 0 or more.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=1e9).contains(&s) => Ok(s),
        _ => Err(format!("{text}: a number of seconds, 0 or more")),
    }
}

/// Recompute every act, then compare with the recorded AMO amounts.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Compare `recorded_amo` with `amo_paid` (paid) or `amo_gross` (gross, for extracts
    /// that record the PF and franchises as separate lines).
    #[arg(long, default_value = "paid")]
    pub compare: String,
    /// Largest difference, in euros, that is not a discrepancy.
    #[arg(long, default_value = "0.00", allow_negative_numbers = true)]
    pub tolerance: Decimal,
}

pub fn run(args: ComputeArgs) -> Result<i32, Failure> {
    execute("compute", &args, None)
}

pub fn run_audit(args: AuditArgs) -> Result<i32, Failure> {
    let json_logs = args.compute.log_format == "json";
    audit(args).map_err(|failure| failure.logged_as_json(json_logs))
}

fn audit(args: AuditArgs) -> Result<i32, Failure> {
    let compare = match args.compare.as_str() {
        "paid" => Compare::Paid,
        "gross" => Compare::Gross,
        other => return Err(Failure::usage(format!("--compare {other}: paid or gross"))),
    };
    if args.tolerance.is_sign_negative() {
        return Err(Failure::usage("--tolerance must be zero or more"));
    }
    if args.compute.input.profile()? == ProfileKind::Damir {
        // Refuses --keep-columns (canonical profile only) before anything is read.
        args.compute.input.carried(args.compute.keep_columns)?;
        return audit_damir(&args.compute);
    }
    execute("audit", &args.compute, Some((compare, args.tolerance)))
}

/// Open DAMIR lines are aggregated: each is recomputed on its own (rate and amount per unit,
/// PF and franchise unit amounts), and the report says which lines rac reproduces.
fn audit_damir(args: &ComputeArgs) -> Result<i32, Failure> {
    let book = load_rules(args.input.rules.as_ref())?;
    warn_rules(&book, |message| errln!("rac: warning: {message}"));
    let report = crate::profile::audit_damir(&args.input.acts, &book)
        .map_err(|e| Failure::input(e.to_string()))?;
    let staging = crate::io::write::Staging::begin(&args.out)
        .map_err(|e| Failure::new(if e.is_usage() { 2 } else { 1 }, e.to_string()))?;
    let write = |name: &str, text: String| {
        let path = staging.path().join(name);
        std::fs::write(&path, text).map_err(|e| Failure::input(format!("{}: {e}", path.display())))
    };
    let markdown = report.render_markdown();
    write(
        crate::io::write::DISCREPANCIES_REPORT_FILE,
        markdown.clone(),
    )?;
    let json = report.to_json();
    write(crate::io::write::DAMIR_REPORT_FILE, format!("{json:#}\n"))?;
    let manifest = serde_json::json!({
        "tool": "rac",
        "version": env!("CARGO_PKG_VERSION"),
        "command": "audit",
        "argv": super::argv(),
        "profile": "damir",
        "rules": { "version": book.version(), "sources": book.sources() },
        "inputs": std::iter::once(serde_json::json!({
            "role": "damir",
            "path": args.input.acts.display().to_string(),
            "sha256": crate::io::write::sha256_file(&args.input.acts).map_err(|e| Failure::input(e.to_string()))?,
        }))
        .chain(book.overlays().iter().map(crate::rules::Overlay::manifest_entry))
        .collect::<Vec<_>>(),
        "report": json,
    });
    crate::io::write::write_manifest(staging.path(), &manifest)
        .map_err(|e| Failure::input(e.to_string()))?;
    staging
        .commit()
        .map_err(|e| Failure::input(e.to_string()))?;
    if !args.quiet {
        out!("{markdown}");
    }
    Ok(0)
}

fn execute(
    command: &str,
    args: &ComputeArgs,
    audit_opts: Option<(Compare, Decimal)>,
) -> Result<i32, Failure> {
    let started = Instant::now();
    let format: Format = args
        .format
        .parse()
        .map_err(|_| Failure::usage(format!("--format {}: parquet or csv", args.format)))?;
    let json_logs = match args.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(Failure::usage(format!(
                "--log-format {other}: text or json"
            )));
        }
    };
    crate::interrupt::set_json_logs(json_logs);
    execute_logged(command, args, audit_opts, started, format, json_logs)
        .map_err(|failure| failure.logged_as_json(json_logs))
}

/// [`execute`], once the log format is known.
fn execute_logged(
    command: &str,
    args: &ComputeArgs,
    audit_opts: Option<(Compare, Decimal)>,
    started: Instant,
    format: Format,
    json_logs: bool,
) -> Result<i32, Failure> {
    // The process's one run: its inputs must not change under it.
    crate::io::unchanged::watch();
    let book = load_rules(args.input.rules.as_ref())?;
    let log = Logger {
        started,
        json: json_logs,
        quiet: args.quiet,
        progress: args.progress || (!args.quiet && std::io::stderr().is_terminal()),
    };
    // The global pool: the writer's encoding runs on it too, so --threads bounds every
    // worker (with 1, the stages around the pool run in line too: one core). A process
    // computes one run, so it is set once.
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| Failure::usage(format!("--threads: {e}")))?;
    }
    let (memory, sized_by) = memory_limit(args.memory_limit.as_deref())?;
    log.event(
        "read",
        &format!("memory limit {} MiB: {sized_by}", memory >> 20),
        &[("memory_limit_bytes", memory)],
    );
    let workers = rayon::current_num_threads();
    if pipeline::should_hand_back_freed_pages(workers, memory)
        && pipeline::hand_back_freed_pages_now()
    {
        log.event(
            "read",
            &format!(
                "{workers} threads: freed memory handed back to the system at once, to stay near the memory limit (slower; fewer --threads or a larger --memory-limit keep it)"
            ),
            &[("threads", workers as u64)],
        );
    }
    warn_rules(&book, |message| log.warn("read", message, &[]));
    // Counters that already hold these acts: refused now, not after the whole run.
    if let Some(counters) = &args.input.counters
        && args.input.profile()? == ProfileKind::Canonical
    {
        pipeline::check_not_counted_twice_before(&args.input.acts, counters)?;
    }
    check_counters_not_in_out(args)?;
    if let Some(counters) = &args.input.counters
        && counters.is_file()
        && !counters
            .with_file_name(crate::io::write::MANIFEST_FILE)
            .exists()
    {
        log.warn(
            "read",
            &format!(
                "{}: no manifest.json beside them: their format, rows and whether they already hold these acts are not checked",
                counters.display()
            ),
            &[],
        );
    }
    if let Some(counters) = &args.input.counters
        && let Some((version, sources)) = counters_rules(counters)
        && version != book.version()
    {
        log.warn(
            "read",
            &format!(
                "{}: written with rules version {version} (from {sources}), this run uses {} (from {}): the caps used so far were counted under other rules",
                counters.display(),
                book.version(),
                book.sources().join(" + ")
            ),
            &[],
        );
    }
    if audit_opts.is_some() && args.input.profile()? == ProfileKind::Canonical {
        check_recorded_column(&args.input.acts, &log)?;
    }
    args.input
        .warn_skipped(|message, count| log.warn("read", message, &[("entries_not_read", count)]));
    let temp_dir = temp_dir(args)?;
    let carried = args.input.carried(args.keep_columns)?;
    let run_opts = |profile| RunOptions {
        out: args.out.clone(),
        format,
        command: command.to_string(),
        argv: super::argv(),
        audit: audit_opts,
        profile,
        progress: log.progress && !log.json,
        // A terminal shows the progress bars instead (and text lines would cut through them).
        log_every: log
            .json
            .then(|| std::time::Duration::from_secs_f64(args.log_every)),
        carried: Arc::clone(&carried),
        tables: true,
    };
    let summary: RunSummary = (|| -> Result<RunSummary, Failure> {
        if args.input.profile()? == ProfileKind::Canonical {
            let limits = pipeline::Limits {
                memory,
                parts: args.partitions,
                sorted: args.sorted,
                spill_io: match args.spill_io.as_str() {
                    "cached" => pipeline::SpillIo::Cached,
                    _ => pipeline::SpillIo::Direct,
                },
                temp_dir: temp_dir.clone(),
                spill_compression: spill_compression(&args.spill_compression)?,
            };
            let opts = run_opts(serde_json::json!({"profile": "canonical"}));
            let event = |step: &str, message: &str, counts: &[(&str, u64)]| {
                log.event(step, message, counts)
            };
            let mut inputs = args.input.inputs()?;
            inputs.read.carried = Arc::clone(&carried);
            return Ok(pipeline::run(
                &book, &inputs, &opts, &limits, started, &event,
            )?);
        }
        if args.sorted {
            return Err(Failure::usage(
                "--sorted applies to the canonical profile (extracts are mapped in memory)",
            ));
        }
        log.event("read", "reading inputs", &[]);
        let (prepared, profile) = args.input.prepare()?;
        log_extract(&log, &args.input.acts, &profile);
        log.event(
            "compute",
            "computing and writing",
            &[("patients", prepared.patients.len() as u64)],
        );
        let opts = run_opts(profile);
        let summary = pipeline::execute(&book, &prepared, &opts, started)?;
        // The process ends right after: freeing millions of small strings one by one would
        // only delay the exit (ripgrep does the same with its allocations).
        std::mem::forget(prepared);
        Ok(summary)
    })()?;
    if audit_opts.is_some() && summary.totals.recorded_acts == 0 {
        log.warn(
            "done",
            &format!(
                "no act had a recorded amount ({RECORDED}): nothing was compared, and no discrepancy is no finding"
            ),
            &[],
        );
    }
    log.event(
        "done",
        &format!(
            "{} acts read, {} computed, {} rejected (+{} other rows) → {} in {:.2} s",
            summary.read,
            summary.computed,
            summary.rejected,
            summary.other_rejected,
            summary.out.display(),
            summary.seconds
        ),
        &[
            ("read", summary.read),
            ("computed", summary.computed),
            ("rejected", summary.rejected),
        ],
    );
    Ok(summary.exit_code())
}

/// What an extract's profile did with the lines that are not acts, and the folder's entries
/// it did not read: a line is an act, a reject, or one of these, counted in the manifest's
/// `profile` (`filtered`, `recorded_deductions`, `merged`, `regularised`).
fn log_extract(log: &Logger, acts: &std::path::Path, profile: &serde_json::Value) {
    let count = |key: &str| profile[key].as_u64().unwrap_or(0);
    let filtered: Vec<(String, u64)> = profile["filtered"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let left_out: u64 = filtered.iter().map(|(_, n)| n).sum();
    let (deductions, merged, regularised) = (
        count("recorded_deductions"),
        count("merged"),
        count("regularised"),
    );
    if left_out + deductions + merged + regularised > 0 {
        let reasons: Vec<String> = filtered.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        log.event(
            "read",
            &format!(
                "lines that are not acts: {left_out} left out by the profile's filters{reasons}, {deductions} recorded deductions attached to their act, {merged} complement lines folded into their act, {regularised} regularisations netted (manifest: profile)"
            ),
            &[
                ("lines_filtered", left_out),
                ("recorded_deductions", deductions),
                ("lines_merged", merged),
                ("lines_regularised", regularised),
            ],
        );
    }
    let not_read: Vec<&str> = profile["not_read"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !not_read.is_empty() {
        log.warn(
            "read",
            &format!(
                "{}: {} entries not read (tables this profile does not use, other files, subfolders): {}",
                acts.display(),
                not_read.len(),
                not_read.join(", ")
            ),
            &[("entries_not_read", not_read.len() as u64)],
        );
    }
}

/// The acts' column of the amounts an audit compares with (SPEC §2).
const RECORDED: &str = "recorded_amo";

/// An audit compares the amounts the acts record: acts files none of which has the column
/// (a header misspelt, the caisse's extract without it) would compare nothing and report no
/// discrepancy, as if every amount matched. Refused before anything is read (exit 2); files
/// without it among others that have it are named in a warning. Files that do not open are
/// left to the run, which reports them in their place.
fn check_recorded_column(acts: &std::path::Path, log: &Logger) -> Result<(), Failure> {
    let Ok(files) = crate::io::read::resolve(acts) else {
        return Ok(());
    };
    // File by file: one that does not open (the run reports it) does not hide the others.
    let without: Vec<std::path::PathBuf> = files
        .iter()
        .filter(|file| {
            crate::io::read::files_without_column(file, RECORDED)
                .is_ok_and(|without| !without.is_empty())
        })
        .cloned()
        .collect();
    let names = |files: &[std::path::PathBuf]| {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !files.is_empty() && without.len() == files.len() {
        return Err(Failure::usage(format!(
            "{}: no {RECORDED} column: an audit compares the amounts the acts record, and would compare nothing (nothing written); add the amounts paid as {RECORDED} (SPEC §2), or run `rac compute`",
            names(&without)
        )));
    }
    if !without.is_empty() {
        log.warn(
            "read",
            &format!(
                "{}: no {RECORDED} column: the acts of these files are computed, not compared",
                names(&without)
            ),
            &[("files_without_recorded_amounts", without.len() as u64)],
        );
    }
    Ok(())
}

/// The rules version and sources of the run that wrote `counters`, from the manifest beside
/// them (`None` without one; a manifest that does not read is refused by the run itself).
fn counters_rules(counters: &std::path::Path) -> Option<(String, String)> {
    let (_, value) = pipeline::manifest_beside(counters)?;
    let version = value["rules"]["version"].as_str()?.to_string();
    let sources: Vec<&str> = value["rules"]["sources"]
        .as_array()
        .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    Some((version, sources.join(" + ")))
}

/// Log lines on stderr. They never contain a patient id or a single patient's amounts.
struct Logger {
    started: Instant,
    json: bool,
    quiet: bool,
    progress: bool,
}

impl Logger {
    fn event(&self, step: &str, message: &str, counts: &[(&str, u64)]) {
        if self.quiet && step != "done" {
            return;
        }
        self.line("info", step, message, counts);
    }

    /// A line a user must see, even with `--quiet` and without a terminal (text: `rac:
    /// warning: …`; JSON: `"level":"warn"`).
    fn warn(&self, step: &str, message: &str, counts: &[(&str, u64)]) {
        if self.json {
            self.line("warn", step, message, counts);
        } else {
            errln!("rac: warning: {message}");
        }
    }

    fn line(&self, level: &str, step: &str, message: &str, counts: &[(&str, u64)]) {
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level.into());
            obj.insert("step".into(), step.into());
            obj.insert("message".into(), message.into());
            obj.insert(
                "elapsed_s".into(),
                // To the millisecond: the float's last digits are noise (5.5901929070000005).
                serde_json::json!((self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
            );
            for (k, v) in counts {
                obj.insert((*k).into(), (*v).into());
            }
            errln!("{}", serde_json::Value::Object(obj));
        } else if self.progress || step == "done" {
            let t = self.started.elapsed().as_secs_f64();
            errln!("rac: [{t:7.2}s] {message}");
        }
    }
}
