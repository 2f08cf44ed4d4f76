//! Engine throughput on in-memory patients (acts per second on one core), with each
//! patient's acts sorted as a run sorts them and the binary's allocator.
//!
//! `cargo bench --bench engine` — prints criterion's timings; throughput is in elements
//! (acts) per second.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rac::engine::compute_patient;
use rac::rules::RuleBook;

/// The binary's allocator: the engine allocates a little per act and per patient.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn engine(c: &mut Criterion) {
    let patients = common::patients(200_000, 20_000, 7);
    let acts: usize = patients.iter().map(|p| p.acts.len()).sum();
    let book = RuleBook::builtin();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(acts as u64));
    group.sample_size(10);
    group.bench_function("one_core_200k_acts", |bench| {
        bench.iter(|| {
            patients
                .iter()
                .map(|p| compute_patient(&book, &p.input()).outcomes.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
