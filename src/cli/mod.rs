//! The command line: one file per subcommand, each starting with what `--help` prints.

/// `print!` for a command's report on standard output, in a function that returns
/// `Result<_, Failure>`: see [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!($($arg)*))? };
}

/// `println!` for a command's report on standard output: see [`write_out`].
macro_rules! outln {
    ($($arg:tt)*) => { out!("{}\n", format_args!($($arg)*)) };
}

/// `eprintln!` for the logs: see [`write_err`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::write_err(format_args!($($arg)*)) };
}

pub mod compute;
pub mod demo;
pub mod explain;
pub mod generate;
pub mod rules;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use crate::io::read::{ReadError, ReadOptions};
use crate::pipeline::{self, Inputs, Prepared};
use crate::profile::ProfileKind;
use crate::rules::RuleBook;

/// rac recomputes, for every care act, what the French Assurance Maladie (AMO) pays and what is
/// left for the patient (reste à charge).
#[derive(Debug, Parser)]
#[command(name = "rac", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Compute(compute::ComputeArgs),
    Audit(compute::AuditArgs),
    Explain(explain::ExplainArgs),
    Rules(rules::RulesArgs),
    Validate(validate::ValidateArgs),
    Generate(generate::GenerateArgs),
    Demo(demo::DemoArgs),
}

/// `--counters`: a file, or a folder holding the one `counters.*` a run wrote there (the
/// earlier month's `--out`, as a cron passes it), which stands for that file.
fn counters_path(path: PathBuf) -> Result<PathBuf, String> {
    if !path.is_dir() {
        return Ok(path);
    }
    let table = <crate::model::YearCounter as crate::io::write::Row>::TABLE;
    let names: Vec<String> = crate::io::write::Format::ALL
        .iter()
        .map(|format| format!("{table}.{}", format.extension()))
        .collect();
    let found: Vec<PathBuf> = names
        .iter()
        .map(|name| path.join(name))
        .filter(|file| file.is_file())
        .collect();
    let value = path.display();
    match found.as_slice() {
        [file] => Ok(file.clone()),
        [] => Err(format!(
            "{value}: a folder without {}; pass the counters file an earlier run wrote",
            names.join(" or ")
        )),
        _ => Err(format!(
            "{value}: holds both {}; pass the one to read",
            names.join(" and ")
        )),
    }
}

/// The input flags shared by `compute`, `audit`, `explain` and `validate`.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Acts file (.csv, .csv.gz, .parquet), or a folder or glob of such files.
    #[arg(long)]
    pub acts: PathBuf,
    /// Beneficiaries file (canonical profile; an SNDS extract brings its own).
    #[arg(long)]
    pub beneficiaries: Option<PathBuf>,
    /// Rights periods file (optional; without it, the acts' own declarations decide).
    #[arg(long)]
    pub rights: Option<PathBuf>,
    /// Opening counters written by an earlier run (`counters.*`, or the earlier run's output
    /// folder, which holds them).
    #[arg(long, value_parser = clap::builder::PathBufValueParser::new().try_map(counters_path))]
    pub counters: Option<PathBuf>,
    /// Accept a comma as decimal separator in CSV amounts.
    #[arg(long)]
    pub decimal_comma: bool,
    /// A parameter file used on top of the built-in rules (a scenario).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// What the inputs are: canonical (SPEC §2), snds (a DCIR/DCIRS extract: a folder with
    /// ER_PRS_F, IR_BEN_R, IR_IMB_R, IR_MAT_R, IR_ORC_R, or one prestations file) or damir
    /// (an Open DAMIR month; `audit` only).
    #[arg(long, default_value = "canonical")]
    pub profile: String,
}

impl InputArgs {
    /// Calls `warn` with a message and a count for each input path (acts, beneficiaries,
    /// rights) of which a run leaves entries unread ([`crate::io::read::skipped_entries`]);
    /// canonical profile only.
    pub fn warn_skipped(&self, mut warn: impl FnMut(&str, u64)) {
        // An extract's folder is read by its own table names (profiles), not as this list.
        if !matches!(self.profile(), Ok(ProfileKind::Canonical)) {
            return;
        }
        let paths = [
            Some(&self.acts),
            self.beneficiaries.as_ref(),
            self.rights.as_ref(),
        ];
        for path in paths.into_iter().flatten() {
            let skipped = crate::io::read::skipped_entries(path);
            if skipped.is_empty() {
                continue;
            }
            let names: Vec<String> = skipped.iter().map(|p| p.display().to_string()).collect();
            warn(
                &format!(
                    "{}: {} entries not read (subfolders, and what is not a regular .csv, .csv.gz or .parquet file): {}",
                    path.display(),
                    skipped.len(),
                    names.join(", ")
                ),
                skipped.len() as u64,
            );
        }
    }

    pub fn profile(&self) -> Result<ProfileKind, Failure> {
        ProfileKind::parse(&self.profile).ok_or_else(|| {
            Failure::usage(format!(
                "--profile {}: canonical, snds or damir",
                self.profile
            ))
        })
    }

    pub fn inputs(&self) -> Result<Inputs, Failure> {
        let beneficiaries = self.beneficiaries.clone().ok_or_else(|| {
            Failure::usage("--beneficiaries is required with the canonical profile")
        })?;
        Ok(Inputs {
            acts: self.acts.clone(),
            beneficiaries,
            rights: self.rights.clone(),
            counters: self.counters.clone(),
            read: ReadOptions {
                decimal_comma: self.decimal_comma,
                ..ReadOptions::default()
            },
        })
    }

    /// The columns `--keep-columns` carries (none without `keep`). A name that `acts.*`
    /// already has, or a name twice in one file, is a configuration error: the columns could
    /// not be told apart.
    pub fn carried(&self, keep: bool) -> Result<Arc<[String]>, Failure> {
        if !keep {
            return Ok(Arc::from([]));
        }
        if self.profile()? != ProfileKind::Canonical {
            return Err(Failure::usage(
                "--keep-columns applies to the canonical profile (an extract's columns are mapped, not carried)",
            ));
        }
        let carried = crate::io::read::carried_columns(&self.acts).map_err(|e| match e {
            // Readable without the flag: it is the flag that cannot be honoured.
            ReadError::DuplicateColumn { .. } => Failure::usage(format!("--keep-columns: {e}")),
            _ => Failure::input(e.to_string()),
        })?;
        let own = crate::io::write::column_names::<crate::model::Outcome>();
        if let Some(clash) = carried.iter().find(|c| own.contains(&c.as_str())) {
            return Err(Failure::usage(format!(
                "--keep-columns: the acts' column `{clash}` has the name of a column of acts.*; rename it in the input"
            )));
        }
        Ok(carried.into())
    }

    /// The inputs of the patients of the acts `act_ids` alone (`explain`), with the rejects
    /// of the rows of those ids: for the canonical profile, read in passes that hold one chunk
    /// and those patients' rows ([`pipeline::prepare_for_acts`]), whatever the size of the
    /// files; an extract is read whole ([`InputArgs::prepare_carrying`]).
    pub fn prepare_for_acts(
        &self,
        carried: Arc<[String]>,
        act_ids: &[&str],
    ) -> Result<Prepared, Failure> {
        if self.profile()? != ProfileKind::Canonical {
            return Ok(self.prepare_carrying(carried, false)?.0);
        }
        let mut inputs = self.inputs()?;
        inputs.read.carried = carried;
        Ok(pipeline::prepare_for_acts(&inputs, act_ids)?)
    }

    /// Reads and checks the inputs of the chosen profile. Returns, with them, what the
    /// profile has to say (unmapped codes, filtered lines) for the manifest.
    pub fn prepare(&self) -> Result<(Prepared, serde_json::Value), Failure> {
        self.prepare_carrying(Arc::from([]), false)
    }

    /// [`InputArgs::prepare`], reading the `carried` columns of the acts too (canonical
    /// profile, [`InputArgs::carried`]).
    /// With `every_problem`, a rejected acts row gives a reject per problem
    /// ([`ReadOptions::every_problem`], `validate`).
    pub fn prepare_carrying(
        &self,
        carried: Arc<[String]>,
        every_problem: bool,
    ) -> Result<(Prepared, serde_json::Value), Failure> {
        match self.profile()? {
            ProfileKind::Canonical => {
                let mut inputs = self.inputs()?;
                inputs.read.carried = carried;
                inputs.read.every_problem = every_problem;
                Ok((
                    pipeline::prepare(&inputs)?,
                    serde_json::json!({"profile": "canonical"}),
                ))
            }
            ProfileKind::Snds => {
                let extract = crate::profile::read_snds_acts(&self.acts)
                    .map_err(|e| Failure::input(e.to_string()))?;
                let unmapped: Vec<serde_json::Value> = extract
                    .unmapped
                    .entries()
                    .map(|(column, code, n)| serde_json::json!({"column": column, "code": code, "lines": n}))
                    .collect();
                for (column, code, n) in extract.unmapped.entries() {
                    errln!("rac: snds: {column} = {code} not mapped ({n} lines, rejected)");
                }
                let info = serde_json::json!({
                    "profile": "snds",
                    "unmapped": unmapped,
                    "filtered": extract.filtered,
                    "regularised": extract.regularised,
                    "merged": extract.merged,
                    "recorded_deductions": extract.deductions.len(),
                    "not_read": extract.not_read,
                });
                let files = extract.files.iter().map(|f| ("snds", f.clone())).collect();
                let prepared = pipeline::from_parts(
                    extract.acts,
                    (extract.origins, extract.act_files),
                    extract.beneficiaries,
                    extract.rights,
                    extract.rights_known,
                    (extract.rejects, extract.other_rejects),
                    files,
                )?;
                Ok((prepared, info))
            }
            ProfileKind::Damir => Err(Failure::usage(
                "Open DAMIR lines are aggregated (no patient, no day): use `rac audit --profile damir`",
            )),
        }
    }
}

/// Whether command-line arguments ask for JSON logs (`--log-format json` or
/// `--log-format=json`), read before they are parsed: so that arguments the parser refuses
/// are reported the way the run would have logged.
pub fn asks_for_json_logs(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut previous_was_flag = false;
    for arg in args {
        if arg == "--" {
            return false;
        }
        if arg == "--log-format=json" || (previous_was_flag && arg == "json") {
            return true;
        }
        previous_was_flag = arg == "--log-format";
    }
    false
}

/// A failure with its exit code (SPEC §1): 2 usage or configuration, 1 input or internal.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    /// Reported as a JSON log line (`--log-format json`), not as text.
    pub json: bool,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            json: false,
        }
    }
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(2, message)
    }
    pub fn input(message: impl Into<String>) -> Failure {
        Failure::new(1, message)
    }

    /// The same failure, reported as a JSON log line if `json` (`--log-format json`).
    pub fn logged_as_json(self, json: bool) -> Failure {
        Failure { json, ..self }
    }

    /// The line that reports it on stderr: `rac: <message>`, or with `--log-format json` an
    /// object like the run's other log lines (`level` `error`, `step` `failed`, the exit
    /// code), so that a log collector keeps the one line that says why a run failed.
    pub fn line(&self) -> String {
        if self.json {
            serde_json::json!({
                "level": "error",
                "step": "failed",
                "message": self.message,
                "exit_code": self.code,
            })
            .to_string()
        } else {
            text_line(&self.message)
        }
    }
}

/// Writes a command's report to standard output. A reader that went away (`rac rules | head
/// -3`) is no failure: the rest is dropped, as a filter's output is, and the command ends with
/// its own exit code. Any other error (a full disk behind `>`) fails it, exit 1: a report cut
/// short must not pass for a whole one.
pub(crate) fn write_out(text: std::fmt::Arguments) -> Result<(), Failure> {
    use std::io::Write;
    match std::io::stdout().lock().write_fmt(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::input(format!(
            "cannot write to standard output: {e}"
        ))),
        _ => Ok(()),
    }
}

/// Writes a log line to standard error. A log reader that went away (`2>&1 | head`, a
/// collector restarting) or a full log disk loses the line, never the run: without this a
/// run died on its next line (exit 101, `failed printing to stderr`), outputs unwritten.
pub fn write_err(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}

/// `rac: <message>` as the last line, whatever the message: the lines after a message's first
/// (a parser's excerpt of a file, a usage) come before it, so that the last line on stderr
/// is always the reason.
fn text_line(message: &str) -> String {
    let message = message.trim();
    match message.split_once('\n') {
        None => format!("rac: {message}"),
        Some((first, details)) => format!("{}\nrac: {}", details.trim_end(), first.trim_end()),
    }
}

impl From<crate::pipeline::RunError> for Failure {
    fn from(e: crate::pipeline::RunError) -> Failure {
        Failure::new(e.exit_code(), e.to_string())
    }
}

/// The command line as given, for the manifest: an argument that is not UTF-8 (a file name)
/// with its bad bytes replaced, where `std::env::args` would panic.
pub fn argv() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// `--memory-limit` (`compute`, `audit`, `validate`): the bytes, and what sized them (the flag,
/// or the machine for the default, [`pipeline::default_memory_limit`]).
pub fn memory_limit(text: Option<&str>) -> Result<(u64, &'static str), Failure> {
    let Some(text) = text else {
        return Ok(pipeline::default_memory_limit());
    };
    let bytes = pipeline::parse_size(text)
        .and_then(|bytes| {
            // Below it a run would need a partition, and an open file, per few acts: refused
            // for what it is rather than for the files it would need.
            if bytes < 1 << 20 {
                Err(format!("{text}: at least 1M (1 MiB)"))
            } else {
                Ok(bytes)
            }
        })
        .map_err(|e| Failure::usage(format!("--memory-limit {e}")))?;
    Ok((bytes, "--memory-limit"))
}

/// The built-in rules, with `--rules FILE` on top when given.
pub fn load_rules(path: Option<&PathBuf>) -> Result<RuleBook, Failure> {
    match path {
        None => Ok(RuleBook::builtin()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::usage(format!("{}: cannot read rules: {e}", p.display())))?;
            RuleBook::with_overlay(&p.display().to_string(), &text)
                .map_err(|e| Failure::usage(e.to_string()))
        }
    }
}

/// Hands `warn` what the rules warn of ([`RuleBook::warnings`]: days a scenario leaves
/// without a value).
pub fn warn_rules(book: &RuleBook, mut warn: impl FnMut(&str)) {
    for warning in book.warnings() {
        warn(warning);
    }
}

/// Runs the command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Compute(a) => compute::run(a),
        Command::Audit(a) => compute::run_audit(a),
        Command::Explain(a) => explain::run(a),
        Command::Rules(a) => rules::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Demo(a) => demo::run(a),
    }
}
