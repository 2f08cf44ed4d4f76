//! `rac explain`: every step of one act's computation, with the parameters used and their
//! sources.
//!
//! ```text
//! rac explain --act-id A123 --acts acts.csv --beneficiaries beneficiaries.csv [--rights …]
//! ```
//! The act is computed with all the patient's acts of the file (caps, groups and stays need
//! them) and the opening counters, exactly as `compute` does. The files are read in passes
//! that keep that patient's rows alone: the memory used does not grow with their size. For an
//! id on several rows, the row `compute` keeps (the first) is explained, after a note naming
//! each rejected repeat.
//! Exit 0 when the act is computed, 3 when it is rejected (when read or when computed), 2
//! when no row has its id.

use std::fmt::Write as _;
use std::sync::Arc;

use clap::Args;

use super::{Failure, InputArgs, load_rules, warn_rules};
use crate::engine::{Trace, explain_patient};
use crate::model::Act;
use crate::rules::{Param, RuleBook};

/// Print each step of one act's computation.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The act to explain.
    #[arg(long)]
    pub act_id: String,
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
    let carried = args.input.carried(args.keep_columns)?;
    let prepared = args
        .input
        .prepare_for_act(Arc::clone(&carried), &args.act_id)?;
    let rejected = prepared.rejects.iter().filter(|r| r.act_id == args.act_id);
    // The row kept for this id, if any: with repeated ids, the first one (the others are
    // rejected as duplicates, and said so before the explanation).
    let kept = prepared.patients.iter().find_map(|p| {
        let i = prepared
            .acts_of(p)
            .iter()
            .position(|a| a.act_id == args.act_id)?;
        Some((p, prepared.origins_of(p)[i]))
    });
    let Some((patient, origin)) = kept else {
        if let Some(r) = rejected.clone().next() {
            outln!(
                "act {} was rejected: {} (file {}, row {}, column {}, value `{}`)",
                r.act_id,
                r.reason,
                r.file,
                r.row,
                r.column,
                r.value
            );
            return Ok(3);
        }
        return Err(Failure::usage(format!(
            "act_id `{}` is not in {}",
            args.act_id,
            args.input.acts.display()
        )));
    };
    for r in rejected {
        outln!(
            "note: another row of act {} was rejected: {} (file {}, row {}); the row explained is row {} of {}",
            r.act_id,
            r.reason,
            r.file,
            r.row,
            origin.row,
            prepared.act_files[origin.file as usize]
        );
    }
    let input = prepared.input(patient);
    let (result, trace) = explain_patient(&book, &input, &args.act_id);
    out!(
        "{}",
        render(&book, &args.act_id, input.acts, &result, &trace)
    );
    // Rejected when computed (born after the act, no rule at its date): 3, as when read.
    let computed = result.outcomes.iter().any(|o| o.act_id == args.act_id);
    if let Some(act) = input.acts.iter().find(|a| a.act_id == args.act_id)
        && !carried.is_empty()
    {
        outln!("carried columns:");
        for (name, value) in carried.iter().zip(act.carried.values()) {
            match value {
                Some(text) => outln!("  {name} = {}", escape_controls(text)),
                None => outln!("  {name} = (empty)"),
            }
        }
    }
    Ok(if computed { 0 } else { 3 })
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
