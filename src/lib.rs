//! rac recomputes, for every care act, what the French Assurance Maladie (AMO) pays and what
//! is left for the patient (*reste à charge*).
//!
//! Layout, from the inside out:
//! - [`model`]: the canonical input and output types (SPEC §2, §4);
//! - [`rules`]: the dated parameters (RULES §1–§2), loaded from data;
//! - [`engine`]: the pure per-patient computation (SPEC §3, RULES §3–§7); no IO;
//! - [`report`]: per-patient yearly totals and the summary, from the outcomes;
//! - [`audit`]: recorded versus recomputed amounts, and the cause of each difference;
//! - [`io`]: readers (CSV, CSV.gz, Parquet) and atomic writers;
//! - [`pipeline`]: read, group by patient, compute in parallel, write;
//! - [`interrupt`]: a run stopped by a signal removes its temporary files;
//! - [`generate`]: synthetic data sets for demos, tests and benchmarks;
//! - [`cli`]: one module per subcommand; `main.rs` is a thin wrapper.

pub mod audit;
pub mod cli;
pub mod engine;
pub mod generate;
pub mod interrupt;
pub mod io;
pub mod model;
pub mod pipeline;
pub mod profile;
pub mod report;
pub mod rules;
