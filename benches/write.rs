//! Output encoding: 65 536 computed acts (one chunk) turned into an Arrow batch, and into a
//! Parquet row group, on all cores — the writer's share of a `rac compute` run.
//!
//! `cargo bench --bench write` — throughput is in elements (acts) per second.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rac::engine::compute_patient;
use rac::io::write::{Format, TableWriter, to_batch};
use rac::model::Outcome;
use rac::rules::RuleBook;

const ROWS: usize = 1 << 16;

/// Outcomes of generated acts, in a run's order (patients by id, acts by date).
fn outcomes() -> Vec<Outcome> {
    let book = RuleBook::builtin();
    let mut out: Vec<Outcome> = common::patients(ROWS as u64 + ROWS as u64 / 4, 8_000, 11)
        .iter()
        .flat_map(|p| compute_patient(&book, &p.input()).outcomes)
        .collect();
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
