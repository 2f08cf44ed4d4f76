//! `rac explain`: every step of some acts' computation, with the parameters used and their
//! sources.
//!
//! ```text
//! rac explain --act-id A123 --acts acts.csv --beneficiaries beneficiaries.csv [--rights …]
//! rac explain --act-ids out/discrepancies.csv --acts acts.csv --beneficiaries …
//! ```
//! An act is computed with all its patient's acts of the files (caps, groups and stays need
//! them) and the opening counters, exactly as `compute` does. The files are read in passes
//! that keep the explained acts' patients' rows alone: the memory used does not grow with
//! their size, and explaining a thousand acts reads them as often as explaining one. For an
//! id on several rows, the row `compute` keeps (the first) is explained, after a note naming
//! each rejected repeat. Several acts are explained in the order given, separated by an empty
//! line.
//! Exit 0 when every act is computed, 3 when one is rejected (when read or when computed), 2
//! when no row has one of the ids (the others are explained first).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args};

use super::{Failure, InputArgs, load_rules, warn_rules};
use crate::engine::{Trace, explain_patient};
use crate::io::read::{ActIdKey, Chunks, ReadOptions};
use crate::model::Act;
use crate::model::Reject;
use crate::pipeline::{Origin, PatientActs, Prepared};
use crate::rules::{Param, RuleBook};

/// Print each step of some acts' computation.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("acts_to_explain").required(true).multiple(true).args(["act_id", "act_ids"])))]
pub struct ExplainArgs {
    /// The act to explain (repeat the flag for several).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub act_id: Vec<String>,
    /// A file of acts to explain, in its order (after those of `--act-id`): CSV or Parquet
    /// with an `act_id` column, such as an audit's `discrepancies.*`, a run's `acts.*` or
    /// `rejects.csv`, or a list under an `act_id` header (or a folder or glob of such files,
    /// read in name order). Its rows without an act_id are counted, not explained.
    #[arg(long, value_name = "FILE")]
    pub act_ids: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
    /// Show the act's values in the columns `compute --keep-columns` would carry (a claim
    /// number, a caisse code…), to find the line in the caisse's own systems.
    #[arg(long)]
    pub keep_columns: bool,
}

pub fn run(args: ExplainArgs) -> Result<i32, Failure> {
    // The acts are read three times: a file changed in between is refused, as in a run.
    crate::io::unchanged::watch();
    let book = load_rules(args.input.rules.as_ref())?;
    warn_rules(&book, |message| errln!("rac: warning: {message}"));
    args.input
        .warn_skipped(|message, _| errln!("rac: warning: {message}"));
    let ids = act_ids(&args.act_id, args.act_ids.as_deref())?;
    if ids.is_empty() {
        // A clean audit's discrepancies: nothing to explain, which is no error.
        return Ok(0);
    }
    let carried = args.input.carried(args.keep_columns)?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let prepared = args.input.prepare_for_acts(Arc::clone(&carried), &ids)?;
    let found = Found::index(&prepared);
    let mut code = 0;
    let mut missing = Vec::new();
    let mut printed = false;
    for id in ids {
        let Some((text, id_code)) = explain_one(&book, &prepared, &found, &carried, id) else {
            missing.push(escape_controls(id));
            continue;
        };
        if printed {
            out!("\n");
        }
        out!("{text}");
        printed = true;
        code = code.max(id_code);
    }
    let acts = args.input.acts.display();
    match missing[..] {
        [] => Ok(code),
        [ref id] => Err(Failure::usage(format!("act_id `{id}` is not in {acts}"))),
        _ => {
            let shown = missing.iter().take(10).map(|id| format!("`{id}`"));
            let more = if missing.len() > 10 { ", …" } else { "" };
            Err(Failure::usage(format!(
                "{} act ids are not in {acts}: {}{more}",
                missing.len(),
                shown.collect::<Vec<_>>().join(", ")
            )))
        }
    }
}

/// The ids to explain: those of `--act-id`, then the file's, each once, in that order.
fn act_ids(given: &[String], file: Option<&Path>) -> Result<Vec<String>, Failure> {
    let mut ids: Vec<String> = given.to_vec();
    if let Some(path) = file {
        let chunks = Chunks::<ActIdKey>::open(path, &ReadOptions::default())
            .map_err(|e| Failure::input(format!("--act-ids: {e}")))?;
        let mut without = 0;
        for chunk in chunks {
            let chunk = chunk.map_err(|e| Failure::input(format!("--act-ids: {e}")))?;
            for r in &chunk.rejects {
                if r.reason != "missing_value" {
                    let column = match r.column.as_str() {
                        "" => String::new(),
                        column => format!(", column {column}"),
                    };
                    return Err(Failure::input(format!(
                        "--act-ids: {}: row {}{column}: {} (`{}`)",
                        r.file,
                        r.row,
                        r.reason,
                        escape_controls(&r.value)
                    )));
                }
                without += 1;
            }
            ids.extend(chunk.rows.into_iter().map(|r| r.value.act_id.to_string()));
        }
        match without {
            0 => {}
            1 => errln!(
                "rac: note: 1 row of {} has no act_id (not explained)",
                path.display()
            ),
            _ => errln!(
                "rac: note: {without} rows of {} have no act_id (not explained)",
                path.display()
            ),
        }
        if ids.is_empty() {
            errln!(
                "rac: note: no act_id in {}: nothing to explain",
                path.display()
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Ok(ids)
}

/// Where each act id is in a [`Prepared`] set: the patient and origin of its kept row, and its
/// rejects in order. Built once, so that explaining many acts does not search every patient
/// for each.
struct Found<'a> {
    kept: HashMap<&'a str, (&'a PatientActs, Origin)>,
    rejects: HashMap<&'a str, Vec<&'a Reject>>,
}

impl<'a> Found<'a> {
    fn index(prepared: &'a Prepared) -> Found<'a> {
        let mut kept = HashMap::new();
        for p in &prepared.patients {
            for (act, origin) in prepared.acts_of(p).iter().zip(prepared.origins_of(p)) {
                kept.entry(act.act_id.as_str()).or_insert((p, *origin));
            }
        }
        let mut rejects: HashMap<&str, Vec<&Reject>> = HashMap::new();
        for r in &prepared.rejects {
            rejects.entry(r.act_id.as_str()).or_default().push(r);
        }
        Found { kept, rejects }
    }
}

/// The explanation of act `id` from `prepared` and the exit code it calls for (0 computed, 3
/// rejected), or `None` when no row has the id.
fn explain_one(
    book: &RuleBook,
    prepared: &Prepared,
    found: &Found,
    carried: &[String],
    id: &str,
) -> Option<(String, i32)> {
    let mut out = String::new();
    let rejected = found.rejects.get(id).map_or(&[][..], Vec::as_slice);
    // The row kept for this id, if any: with repeated ids, the first one (the others are
    // rejected as duplicates, and said so before the explanation).
    let Some(&(patient, origin)) = found.kept.get(id) else {
        let r = rejected.first()?;
        let _ = writeln!(
            out,
            "act {} was rejected: {} (file {}, row {}, column {}, value `{}`)",
            r.act_id, r.reason, r.file, r.row, r.column, r.value
        );
        return Some((out, 3));
    };
    for r in rejected {
        let _ = writeln!(
            out,
            "note: another row of act {} was rejected: {} (file {}, row {}); the row explained is row {} of {}",
            r.act_id, r.reason, r.file, r.row, origin.row, prepared.act_files[origin.file as usize]
        );
    }
    let input = prepared.input(patient);
    let (result, trace) = explain_patient(book, &input, id);
    out.push_str(&render(book, id, input.acts, &result, &trace));
    // Rejected when computed (born after the act, no rule at its date): 3, as when read.
    let computed = result.outcomes.iter().any(|o| o.act_id == id);
    if let Some(act) = input.acts.iter().find(|a| a.act_id == id)
        && !carried.is_empty()
    {
        let _ = writeln!(out, "carried columns:");
        for (name, value) in carried.iter().zip(act.carried.values()) {
            match value {
                Some(text) => {
                    let _ = writeln!(out, "  {name} = {}", escape_controls(text));
                }
                None => {
                    let _ = writeln!(out, "  {name} = (empty)");
                }
            }
        }
    }
    Some((out, if computed { 0 } else { 3 }))
}

/// `text` with its control characters escaped (`\n`, `\t`, `\u{1b}`…): a quoted CSV cell may
/// hold a line break. Quotes, apostrophes and backslashes are left as they are.
fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
}

/// The explanation as text: steps, result, then each parameter used with its source; or why
/// the act was rejected. `acts` are the patient's, as computed (a rejection names its act by
/// its index there).
pub fn render(
    book: &RuleBook,
    act_id: &str,
    acts: &[Act],
    result: &crate::engine::PatientResult,
    trace: &Trace,
) -> String {
    let mut out = String::new();
    if let Some(rej) = result
        .rejected
        .iter()
        .find(|r| acts.get(r.index).is_some_and(|a| a.act_id == act_id))
    {
        let _ = writeln!(
            out,
            "act {act_id} is rejected: {} ({})",
            rej.reason, rej.value
        );
        return out;
    }
    let Some(o) = result.outcomes.iter().find(|o| o.act_id == act_id) else {
        let _ = writeln!(out, "act {act_id} was not computed");
        return out;
    };
    let _ = writeln!(
        out,
        "act {act_id}: {} on {}, quantity {}, situation {}",
        o.category, o.care_date, o.quantity, o.situation
    );
    for (i, step) in trace.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {step}", i + 1);
    }
    let money = crate::report::money_text;
    let _ = writeln!(
        out,
        "result: base {} billed {} rate {} % amo_gross {} majoration {} pal {} pf {} franchise {} flat_fee {} → amo_paid {} rac {}",
        money(o.base),
        money(o.billed),
        o.rate,
        money(o.amo_gross),
        money(o.majoration),
        money(o.pal),
        money(o.pf),
        money(o.franchise),
        money(o.flat_fee),
        money(o.amo_paid),
        money(o.rac)
    );
    if !o.flags.is_empty() {
        let _ = writeln!(out, "flags: {}", o.flags.join(", "));
    }
    let _ = writeln!(
        out,
        "rules applied (value on {}, unless another day is said):",
        o.care_date
    );
    // A parameter's value on the line's day, or on the day the engine took it (a flat-fee
    // group's first day).
    let parameter = |out: &mut String, id: &str, indent: &str| -> bool {
        let day = (trace.dated.iter())
            .find(|(dated, _)| *dated == id)
            .map(|&(_, day)| day);
        let Some((d, v)) = book
            .find(id)
            .and_then(|d| d.at(day.unwrap_or(o.care_date)).map(|v| (d, v)))
        else {
            return false;
        };
        let on = day.map_or(String::new(), |day| {
            format!(" (value on {day}, the first day of the line's flat-fee group)")
        });
        let _ = writeln!(
            out,
            "{indent}{id} = {} {} since {}{on} — {}",
            v.value, d.unit, v.from, v.reference
        );
        true
    };
    for id in &o.rules {
        if parameter(&mut out, id, "  ") {
            continue;
        }
        let _ = writeln!(out, "  {id} (a decision of the engine, see RULES.md)");
        for p in crate::engine::rule_ids::parameters(id) {
            parameter(&mut out, Param::from(*p).static_id(), "    using ");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_control_characters_are_escaped() {
        assert_eq!(
            super::escape_controls("CPAM d'Île \"Est\" \\ x\nsuite\t\u{1b}"),
            "CPAM d'Île \"Est\" \\ x\\nsuite\\t\\u{1b}"
        );
    }
}
