//! `rac rules`: the parameters in force at a date, or one parameter's history.
//!
//! ```text
//! rac rules --date 2024-05-15            every parameter in force that day
//! rac rules --history pf.amount          every value of pf.amount, with its dates and source
//! rac rules --date 2025-01-01 --rules scenario.toml
//! ```

use std::fmt::Write as _;

use chrono::NaiveDate;
use clap::Args;

use super::{Failure, load_rules, warn_rules};
use crate::rules::{Definition, RuleBook};

/// Print the parameters in force at a date, or the history of one.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Day to show (YYYY-MM-DD); default today.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Show every value of this parameter instead (e.g. `pf.amount`); not with `--date`.
    #[arg(long, conflicts_with = "date")]
    pub history: Option<String>,
    /// A parameter file used on top of the built-in rules.
    #[arg(long)]
    pub rules: Option<std::path::PathBuf>,
}

pub fn run(args: RulesArgs) -> Result<i32, Failure> {
    let book = load_rules(args.rules.as_ref())?;
    warn_rules(&book, |message| errln!("rac: warning: {message}"));
    let text = match &args.history {
        Some(id) => history(&book, id)?,
        None => {
            let date = args
                .date
                .unwrap_or_else(|| chrono::Local::now().date_naive());
            at_date(&book, date)
        }
    };
    out!("{text}");
    Ok(0)
}

/// The table of parameters in force on `date`.
pub fn at_date(book: &RuleBook, date: NaiveDate) -> String {
    let mut out = format!(
        "rules in force on {date} (rules version {}, from {})\n",
        book.version(),
        book.sources().join(" + ")
    );
    let _ = writeln!(
        out,
        "{:<36} {:>10} {:<8} {:<10}  reference",
        "parameter", "value", "unit", "since"
    );
    for def in book.definitions() {
        match def.at(date) {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "{:<36} {:>10} {:<8} {:<10}  {}",
                    def.id,
                    v.value.to_string(),
                    def.unit.as_str(),
                    v.from.to_string(),
                    v.reference
                );
            }
            None => {
                let _ = writeln!(out, "{:<36} {:>10}", def.id, "(none)");
            }
        }
    }
    out
}

fn history(book: &RuleBook, id: &str) -> Result<String, Failure> {
    let def: &Definition = book.find(id).ok_or_else(|| {
        Failure::usage(format!(
            "unknown parameter `{id}` (see `rac rules --date` for the list)"
        ))
    })?;
    let mut out = format!("{}: {} ({})\n", def.id, def.description, def.unit);
    for v in &def.values {
        let to = v.to.map(|t| t.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} → {:<10} {:>10}  {}{}",
            v.from,
            to,
            v.value.to_string(),
            v.reference,
            v.href
                .as_deref()
                .map(|h| format!(" <{h}>"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "  (defined in {})", def.origin);
    Ok(out)
}
