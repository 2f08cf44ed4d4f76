//! Helpers shared by the integration tests: running the binary, checking its exit code and
//! its JSON log, writing a Parquet file of given columns. Each test file uses some of them.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

/// Runs `rac` with `args`.
pub fn rac(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(args)
        .output()
        .expect("rac runs")
}

/// `rac generate` into `dir`: `acts` acts of `patients` patients, seed `seed`, in `format`.
pub fn generate(dir: &Path, acts: u32, patients: u32, seed: u32, format: &str) {
    let (acts, patients, seed) = (acts.to_string(), patients.to_string(), seed.to_string());
    let d = dir.display().to_string();
    let o = rac(&[
        "generate",
        "--acts",
        &acts,
        "--patients",
        &patients,
        "--seed",
        &seed,
        "--out",
        &d,
        "--format",
        format,
    ]);
    ok(&o, &[0]);
}

/// Fails (with rac's stderr) unless the exit code is one of `codes`.
pub fn ok(o: &Output, codes: &[i32]) {
    assert!(
        o.status.code().is_some_and(|c| codes.contains(&c)),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The events of a run logged with `--log-format json`, in order.
pub fn events(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The `compute` event of a run logged with `--log-format json` (partitions, spilled acts).
pub fn compute_event(o: &Output) -> serde_json::Value {
    events(o)
        .into_iter()
        .find(|v| v["step"] == "compute")
        .expect("a compute event")
}

/// Writes one row group of `columns` (nullable, of their arrays' types) to `path`.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// The arguments of `rac compute` on `acts`, with the beneficiaries and rights (if there are)
/// that `rac generate` wrote in `data` (Parquet for Parquet acts if `data` has them, else
/// CSV), into `out`, logged as JSON; then `extra`.
pub fn compute_args(acts: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let p = |path: &Path| path.display().to_string();
    let ext = match acts.extension() {
        Some(ext) if ext == "parquet" && data.join("beneficiaries.parquet").exists() => "parquet",
        _ => "csv",
    };
    let mut args = vec![
        "compute".to_string(),
        "--acts".into(),
        p(acts),
        "--beneficiaries".into(),
        p(&data.join(format!("beneficiaries.{ext}"))),
        "--out".into(),
        p(out),
        "--log-format".into(),
        "json".into(),
    ];
    let rights = data.join(format!("rights.{ext}"));
    if rights.exists() {
        args.extend(["--rights".into(), p(&rights)]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Runs `rac` with owned arguments.
pub fn rac_owned(args: &[String]) -> Output {
    rac(&args.iter().map(String::as_str).collect::<Vec<_>>())
}
