//! The command line: one file per subcommand, each starting with what `--help` prints.

pub mod compute;
pub mod demo;
pub mod explain;
pub mod generate;
pub mod rules;
pub mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::io::read::ReadOptions;
use crate::pipeline::Inputs;
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

/// The input flags shared by `compute`, `audit`, `explain` and `validate`.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Acts file (.csv, .csv.gz, .parquet), or a folder or glob of such files.
    #[arg(long)]
    pub acts: PathBuf,
    /// Beneficiaries file.
    #[arg(long)]
    pub beneficiaries: PathBuf,
    /// Rights periods file (optional; without it, the acts' own declarations decide).
    #[arg(long)]
    pub rights: Option<PathBuf>,
    /// Opening counters written by an earlier run (`counters.*`).
    #[arg(long)]
    pub counters: Option<PathBuf>,
    /// Accept a comma as decimal separator in CSV amounts.
    #[arg(long)]
    pub decimal_comma: bool,
    /// A parameter file used on top of the built-in rules (a scenario).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

impl InputArgs {
    pub fn inputs(&self) -> Inputs {
        Inputs {
            acts: self.acts.clone(),
            beneficiaries: self.beneficiaries.clone(),
            rights: self.rights.clone(),
            counters: self.counters.clone(),
            read: ReadOptions {
                decimal_comma: self.decimal_comma,
            },
        }
    }
}

/// A failure with its exit code (SPEC §1): 2 usage or configuration, 1 input or internal.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    pub fn input(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<crate::pipeline::RunError> for Failure {
    fn from(e: crate::pipeline::RunError) -> Failure {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
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
