//! Readers of acts, beneficiaries, rights and counters (CSV, CSV.gz, Parquet).
