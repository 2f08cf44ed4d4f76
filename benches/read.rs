//! Input reading: 262 144 generated acts read from Parquet and CSV, decoded and converted
//! into rows (the reader's share of a `rac compute` run, before any partitioning).
//!
//! `cargo bench --bench read` — throughput is in elements (acts) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rac::generate::{GenFormat, GenerateOptions, generate};
use rac::io::read::{ReadOptions, open_acts};

/// The binary's allocator: converting a row allocates its few long ids.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACTS: u64 = 1 << 18;

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(ACTS));
    group.sample_size(10);
    for (format, name) in [(GenFormat::Parquet, "parquet"), (GenFormat::Csv, "csv")] {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = GenerateOptions {
            acts: ACTS,
            patients: ACTS / 10,
            seed: 5,
            format,
            ..GenerateOptions::default()
        };
        generate(&opts, dir.path()).expect("generate");
        let path = dir.path().join(format!("acts.{name}"));
        group.bench_function(format!("acts_{name}_256k"), |bench| {
            bench.iter(|| {
                let mut rows = 0;
                for chunk in open_acts(&path, &ReadOptions::default()).expect("open") {
                    rows += chunk.expect("chunk").rows.len();
                }
                assert_eq!(rows as u64, ACTS);
                rows
            })
        });
    }
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
