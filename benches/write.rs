//! Output encoding: 65 536 computed acts (one chunk) turned into an Arrow batch, and into a
//! Parquet row group, on all cores — the writer's share of a `rac compute` run.
//!
//! `cargo bench --bench write` — throughput is in elements (acts) per second.

use std::collections::HashMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rac::engine::{PatientInput, compute_patient};
use rac::generate::{GenFormat, GenerateOptions, generate_in_memory};
use rac::io::write::{Format, TableWriter, to_batch};
use rac::model::{Act, Outcome, RightPeriod};
use rac::rules::RuleBook;

const ROWS: usize = 1 << 16;

/// Outcomes of generated acts, sorted like a run's (patients in id order, acts by date).
fn outcomes() -> Vec<Outcome> {
    let opts = GenerateOptions {
        acts: ROWS as u64 + ROWS as u64 / 4,
        patients: 8_000,
        seed: 11,
        format: GenFormat::Parquet,
        ..GenerateOptions::default()
    };
    let data = generate_in_memory(&opts).expect("generate");
    let mut acts: HashMap<&str, Vec<Act>> = HashMap::new();
    for a in &data.acts {
        acts.entry(a.patient_id.as_str())
            .or_default()
            .push(a.clone());
    }
    let mut rights: HashMap<&str, Vec<RightPeriod>> = HashMap::new();
    for r in &data.rights {
        rights
            .entry(r.patient_id.as_str())
            .or_default()
            .push(r.clone());
    }
    let book = RuleBook::builtin();
    let mut bens: Vec<_> = data.beneficiaries.iter().collect();
    bens.sort_by(|a, b| a.patient_id.cmp(&b.patient_id));
    let mut out = Vec::new();
    for b in bens {
        let Some(a) = acts.get(b.patient_id.as_str()) else {
            continue;
        };
        let input = PatientInput {
            beneficiary: b,
            acts: a,
            rights: rights
                .get(b.patient_id.as_str())
                .map_or(&[], |r| r.as_slice()),
            rights_known: true,
            opening: &[],
        };
        out.extend(compute_patient(&book, &input).outcomes);
    }
    assert!(out.len() >= ROWS, "{} outcomes", out.len());
    out.truncate(ROWS);
    out
}

fn write(c: &mut Criterion) {
    let rows = outcomes();
    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    group.bench_function("acts_to_arrow_64k", |bench| {
        bench.iter(|| to_batch(&rows).expect("encode").num_rows())
    });
    let dir = tempfile::tempdir().expect("temp dir");
    group.bench_function("acts_to_parquet_64k", |bench| {
        bench.iter(|| {
            let mut writer =
                TableWriter::<Outcome>::create(dir.path(), Format::Parquet).expect("create");
            writer.write(&rows).expect("write");
            writer.finish().expect("finish")
        })
    });
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
