//! `rac generate`: a synthetic, realistic data set (acts, beneficiaries, rights).
//!
//! ```text
//! rac generate --acts 10000000 --patients 1000000 --seed 42 --out data/ --format parquet
//! ```
//! The same options give the same bytes. No large file is committed: tests, benchmarks and
//! demos make their data with this command.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;

use super::Failure;
use crate::generate::{GenFormat, GenerateError, GenerateOptions, generate};

/// Write a synthetic data set of a given size and seed.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of act lines.
    #[arg(long, default_value_t = 100_000)]
    pub acts: u64,
    /// Number of beneficiaries (default: acts / 10).
    #[arg(long)]
    pub patients: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// parquet or csv.
    #[arg(long, default_value = "parquet")]
    pub format: String,
    /// First care date.
    #[arg(long, default_value = "2024-01-01")]
    pub start: NaiveDate,
    /// Number of months the care dates span.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
}

pub fn run(args: GenerateArgs) -> Result<i32, Failure> {
    let format = match args.format.as_str() {
        "parquet" => GenFormat::Parquet,
        "csv" => GenFormat::Csv,
        other => return Err(Failure::usage(format!("--format {other}: parquet or csv"))),
    };
    let opts = GenerateOptions {
        acts: args.acts,
        patients: args.patients.unwrap_or((args.acts / 10).max(1)),
        seed: args.seed,
        format,
        start: args.start,
        months: args.months,
    };
    let started = std::time::Instant::now();
    // Options out of range and an --out that cannot be a folder (a file there, no
    // permission) are the caller's to fix: 2. A disk that fails is not: 1.
    let stats = generate(&opts, &args.out).map_err(|e| {
        use std::io::ErrorKind::{AlreadyExists, NotADirectory};
        let usage = match &e {
            GenerateError::InvalidOptions(_) => true,
            GenerateError::OutDir { source, .. } => {
                matches!(source.kind(), AlreadyExists | NotADirectory)
                    || crate::io::is_denied(source)
            }
            _ => false,
        };
        if usage {
            Failure::usage(e.to_string())
        } else {
            Failure::input(e.to_string())
        }
    })?;
    errln!(
        "rac: generated {} acts, {} patients, {} rights in {} ({:.1} s)",
        stats.acts,
        stats.patients,
        stats.rights,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
