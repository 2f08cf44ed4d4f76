//! `rac validate`: check input files against the contract (SPEC §2) and list every problem,
//! writing nothing where the user sees it: canonical inputs go through a run (partitions
//! within `--memory-limit`) whose outputs go to a temporary folder, removed at the end.
//!
//! ```text
//! rac validate --acts acts.csv --beneficiaries beneficiaries.csv [--rights rights.csv]
//!     [--memory-limit 2G] [--temp-dir /scratch]
//! ```
//! Exit 0 when every row is valid, 3 when some rows would be rejected, 1 when a file cannot
//! be read at all or the counters have a bad row (a run refuses them; each is listed), 2 on a
//! usage error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::{Failure, InputArgs, load_rules, memory_limit, warn_rules};
use crate::io::read;
use crate::io::temp::{TempError, TempSpace};
use crate::io::write::Format;
use crate::model::Reject;
use crate::pipeline::{self, RunOptions};
use crate::profile::ProfileKind;
use crate::rules::RuleBook;

/// Check the inputs and list every problem.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Check the acts' other columns as `compute --keep-columns` would carry them (text that
    /// is UTF-8, names that `acts.*` does not have, none twice in a file).
    #[arg(long)]
    pub keep_columns: bool,
    /// Most memory the check may hold, as `compute --memory-limit` (default: half of the
    /// machine's): the inputs are checked the way a run computes them, partition by partition.
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Folder for the check's temporary files (the spill, and the outputs a run would write,
    /// from which the problems are listed), removed when it ends. Default (or empty): the
    /// system's temporary folder (`TMPDIR`, else /tmp). Canonical profile.
    #[arg(long, env = "RAC_TEMP_DIR", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub temp_dir: Option<std::ffi::OsString>,
}

/// What the check found: act rows read, computed, and problems listed.
struct Checked {
    read: u64,
    valid: u64,
    problems: u64,
}

pub fn run(args: ValidateArgs) -> Result<i32, Failure> {
    // A check reads its inputs more than once: a file changed in between is refused.
    crate::io::unchanged::watch();
    crate::interrupt::without_out();
    let book = load_rules(args.input.rules.as_ref())?;
    warn_rules(&book, |message| errln!("rac: warning: {message}"));
    args.input
        .warn_skipped(|message, _| errln!("rac: warning: {message}"));
    let carried = args.input.carried(args.keep_columns)?;
    // A bad counters row fails a run (exit 1: counters are state, never half read): each is
    // listed, then the acts are checked without the counters.
    let counter_problems = match &args.input.counters {
        Some(path) => read::counters_problems(path).map_err(|e| Failure::input(e.to_string()))?,
        None => Vec::new(),
    };
    let mut input = args.input.clone();
    if !counter_problems.is_empty() {
        input.counters = None;
    }
    let checked = if input.profile()? == ProfileKind::Canonical {
        check_partitioned(&book, &input, carried, &args, &counter_problems)?
    } else {
        check_in_memory(&book, &input, carried, &counter_problems)?
    };
    outln!(
        "{} act rows read, {} valid, {} problem(s)",
        checked.read,
        checked.valid,
        checked.problems + counter_problems.len() as u64
    );
    if let Some(path) = args
        .input
        .counters
        .as_ref()
        .filter(|_| !counter_problems.is_empty())
    {
        // A row with several problems is listed once per problem, counted once here.
        let mut rows: Vec<u64> = counter_problems.iter().map(|r| r.row).collect();
        rows.sort_unstable();
        rows.dedup();
        return Err(Failure::input(format!(
            "{}: {} bad counters row(s): a run would refuse the file (exit 1)",
            path.display(),
            rows.len()
        )));
    }
    Ok(if checked.problems == 0 { 0 } else { 3 })
}

/// One problem, as listed.
fn print_problem(r: &Reject) -> Result<(), Failure> {
    outln!(
        "{}:{}: column `{}`: {} (value `{}`{})",
        r.file,
        r.row,
        r.column,
        r.reason,
        r.value,
        if r.act_id.is_empty() {
            String::new()
        } else {
            format!(", act {}", r.act_id)
        }
    );
    Ok(())
}

/// The canonical inputs, checked by a run ([`pipeline::run`]: partitions of patients within
/// `--memory-limit`, spilled to the temporary folder) whose outputs go to that folder and are
/// removed with it: its `rejects.csv`, each problem of a row on a line of its own, is listed
/// row by row. So the memory held does not grow with the inputs, and the problems are those
/// of a run: rows that do not read, repeated ids, unknown patients, the engine's rejects.
fn check_partitioned(
    book: &RuleBook,
    input: &InputArgs,
    carried: Arc<[String]>,
    args: &ValidateArgs,
    counter_problems: &[Reject],
) -> Result<Checked, Failure> {
    let (memory, _) = memory_limit(args.memory_limit.as_deref())?;
    let mut inputs = input.inputs()?;
    inputs.read.carried = Arc::clone(&carried);
    inputs.read.every_problem = true;
    // What a run refuses before it reads: counters that already hold these acts.
    if let Some(counters) = &inputs.counters {
        pipeline::check_not_counted_twice_before(&inputs.acts, counters)?;
    }
    let scratch = scratch_space(args.temp_dir.as_deref())?;
    let out = scratch.path().join("run");
    let workers = rayon::current_num_threads();
    if pipeline::should_hand_back_freed_pages(workers, memory) {
        pipeline::hand_back_freed_pages_now();
    }
    let opts = RunOptions {
        out: out.clone(),
        format: Format::Parquet,
        command: "validate".into(),
        argv: super::argv(),
        audit: None,
        profile: serde_json::json!({"profile": "canonical"}),
        progress: false,
        log_every: None,
        carried,
        tables: false,
    };
    let limits = pipeline::Limits {
        memory,
        parts: None,
        sorted: false,
        spill_io: pipeline::SpillIo::Direct,
        // Beside the run's outputs, in the scratch folder.
        temp_dir: None,
        spill_compression: None,
    };
    let summary = pipeline::run(book, &inputs, &opts, &limits, Instant::now(), &|_, _, _| {})?;
    counter_problems.iter().try_for_each(print_problem)?;
    // Always CSV, whatever the tables' format (SPEC §4).
    let problems = print_rejects(&out.join("rejects.csv"))?;
    Ok(Checked {
        read: summary.read,
        valid: summary.computed,
        problems,
    })
}

/// The check's own folder in `--temp-dir`, or else in the system's temporary folder (`TMPDIR`,
/// else /tmp), removed when dropped.
fn scratch_space(temp_dir: Option<&std::ffi::OsStr>) -> Result<TempSpace, Failure> {
    let given = temp_dir.filter(|d| !d.is_empty()).map(PathBuf::from);
    let dir = match &given {
        Some(dir) => dir.clone(),
        None => Some(std::env::temp_dir())
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("/tmp")),
    };
    TempSpace::create(&dir).map_err(|e| match e {
        TempError::NotAFolder { .. } if given.is_none() => Failure::usage(format!(
            "the system's temporary folder {} (TMPDIR) is no folder: give --temp-dir",
            dir.display()
        )),
        TempError::NotAFolder { .. } => Failure::usage(e.to_string()),
        TempError::Io { .. } => Failure::input(e.to_string()),
    })
}

/// Lists the rejects of a run's `rejects.csv`, one row at a time; returns how many.
fn print_rejects(path: &Path) -> Result<u64, Failure> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Failure::new(1, format!("internal error: {}: {e}", path.display()))
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| unreadable(&e))?;
    let mut record = csv::ByteRecord::new();
    let mut listed = 0;
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| unreadable(&e))?
    {
        let field = |i: usize| String::from_utf8_lossy(record.get(i).unwrap_or_default());
        let row = field(1).parse().map_err(|e| unreadable(&e))?;
        print_problem(&Reject {
            file: field(0).into_owned(),
            row,
            act_id: field(2).into_owned(),
            column: field(3).into_owned(),
            reason: field(4).into_owned(),
            value: field(5).into_owned(),
        })?;
        listed += 1;
    }
    Ok(listed)
}

/// An extract's inputs, read whole and computed in memory (the profiles map them so).
fn check_in_memory(
    book: &RuleBook,
    input: &InputArgs,
    carried: Arc<[String]>,
    counter_problems: &[Reject],
) -> Result<Checked, Failure> {
    let (prepared, _) = input.prepare_carrying(carried, true)?;
    // The engine's own checks (care before birth, no parameter at the date) are part of the
    // contract; they need the patients' data but write nothing.
    let computed = pipeline::compute(book, &prepared);
    (counter_problems.iter())
        .chain(&computed.rejects)
        .try_for_each(print_problem)?;
    Ok(Checked {
        read: computed.read,
        valid: computed.outcomes.len() as u64,
        problems: computed.rejects.len() as u64,
    })
}
