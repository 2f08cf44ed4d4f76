//! `rac validate`: check input files against the contract (SPEC §2) without writing
//! anything; list every problem.
//!
//! ```text
//! rac validate --acts acts.csv --beneficiaries beneficiaries.csv [--rights rights.csv]
//! ```
//! Exit 0 when every row is valid, 3 when some rows would be rejected, 1 when a file cannot
//! be read at all or the counters have a bad row (a run refuses them; each is listed), 2 on a
//! usage error.

use clap::Args;

use super::{Failure, InputArgs, load_rules, warn_rules};
use crate::io::read;
use crate::pipeline;

/// Check the inputs and list every problem.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Check the acts' other columns as `compute --keep-columns` would carry them (text that
    /// is UTF-8, names that `acts.*` does not have, none twice in a file).
    #[arg(long)]
    pub keep_columns: bool,
}

pub fn run(args: ValidateArgs) -> Result<i32, Failure> {
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
    let (prepared, _) = input.prepare_carrying(carried, true)?;
    // The engine's own checks (care before birth, no parameter at the date) are part of the
    // contract; they need the patients' data but write nothing.
    let computed = pipeline::compute(&book, &prepared);
    for r in counter_problems.iter().chain(&computed.rejects) {
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
    }
    outln!(
        "{} act rows read, {} valid, {} problem(s)",
        computed.read,
        computed.outcomes.len(),
        computed.rejects.len() + counter_problems.len()
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
    Ok(if computed.rejects.is_empty() { 0 } else { 3 })
}
