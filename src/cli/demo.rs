//! `rac demo`: compute a small built-in data set and print its summary; the first command a
//! new user types.
//!
//! ```text
//! cargo run --release -- demo            writes the outputs to a temporary folder
//! rac demo --out demo-results --format csv
//! ```
//! The data set (`fixtures/demo/`, built into the binary) has a few patients covering every
//! situation: ordinary, ALD, CSS, AME, maternity, minor, newborn, Alsace-Moselle, invalidity,
//! military pension, AT/MP, SMG, exo 3 and 7, caps reached, heavy acts and stays.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rust_decimal::Decimal;

use super::{Failure, load_rules};
use crate::io::read::ReadOptions;
use crate::io::write::Format;
use crate::pipeline::{self, Inputs, RunOptions};
use crate::report::SummaryRow;

pub const DEMO_ACTS: &str = include_str!("../../fixtures/demo/acts.csv");
pub const DEMO_BENEFICIARIES: &str = include_str!("../../fixtures/demo/beneficiaries.csv");
pub const DEMO_RIGHTS: &str = include_str!("../../fixtures/demo/rights.csv");

/// Compute the built-in demo data set and print a summary.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder (default: a folder under the system's temporary directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format: parquet or csv.
    #[arg(long, default_value = "csv")]
    pub format: String,
}

pub fn run(args: DemoArgs) -> Result<i32, Failure> {
    let started = Instant::now();
    let format: Format = args
        .format
        .parse()
        .map_err(|_| Failure::usage(format!("--format {}: parquet or csv", args.format)))?;
    let base = std::env::temp_dir().join(format!("rac-demo-{}", std::process::id()));
    let input_dir = base.join("input");
    std::fs::create_dir_all(&input_dir)
        .map_err(|e| Failure::input(format!("{}: {e}", input_dir.display())))?;
    for (name, text) in [
        ("acts.csv", DEMO_ACTS),
        ("beneficiaries.csv", DEMO_BENEFICIARIES),
        ("rights.csv", DEMO_RIGHTS),
    ] {
        let p = input_dir.join(name);
        std::fs::write(&p, text).map_err(|e| Failure::input(format!("{}: {e}", p.display())))?;
    }
    let out = args.out.unwrap_or_else(|| base.join("out"));
    let inputs = Inputs {
        acts: input_dir.join("acts.csv"),
        beneficiaries: input_dir.join("beneficiaries.csv"),
        rights: Some(input_dir.join("rights.csv")),
        counters: None,
        read: ReadOptions::default(),
    };
    let book = load_rules(None)?;
    let prepared = pipeline::prepare(&inputs)?;
    let opts = RunOptions {
        out: out.clone(),
        format,
        command: "demo".into(),
        argv: super::argv(),
        audit: None,
        profile: serde_json::json!({"profile": "canonical"}),
        progress: false,
        log_every: None,
        carried: Default::default(),
        tables: true,
    };
    let summary = pipeline::execute(&book, &prepared, &opts, started)?;
    out!("{}", render(&summary.summary));
    outln!(
        "\n{} acts computed, {} rejected; outputs in {}",
        summary.computed,
        summary.rejected,
        out.display()
    );
    outln!(
        "try: rac explain --act-id A0105 --acts {} --beneficiaries {} --rights {}",
        inputs.acts.display(),
        inputs.beneficiaries.display(),
        input_dir.join("rights.csv").display()
    );
    Ok(summary.exit_code())
}

/// A short table by situation: acts, billed, paid by the AMO, left to patients.
fn render(summary: &[SummaryRow]) -> String {
    let mut rows: std::collections::BTreeMap<&str, (u64, Decimal, Decimal, Decimal)> =
        Default::default();
    for s in summary {
        let r = rows.entry(s.situation.as_str()).or_default();
        r.0 += s.acts;
        r.1 += s.billed;
        r.2 += s.amo_paid;
        r.3 += s.rac;
    }
    let mut out = String::from("rac demo — built-in data set (14 patients, every situation)\n\n");
    let _ = writeln!(
        out,
        "{:<18} {:>5} {:>12} {:>12} {:>12}",
        "situation", "acts", "billed", "amo_paid", "rac"
    );
    let mut total = (0u64, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for (s, (n, billed, paid, rac)) in &rows {
        let _ = writeln!(out, "{s:<18} {n:>5} {billed:>12} {paid:>12} {rac:>12}");
        total = (total.0 + n, total.1 + billed, total.2 + paid, total.3 + rac);
    }
    let _ = writeln!(
        out,
        "{:<18} {:>5} {:>12} {:>12} {:>12}",
        "total", total.0, total.1, total.2, total.3
    );
    out
}
