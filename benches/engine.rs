//! Engine throughput on in-memory patients (acts per second on one core), with each
//! patient's acts sorted as a run sorts them and the binary's allocator.
//!
//! `cargo bench --bench engine` — prints criterion's timings; throughput is in elements
//! (acts) per second.

use std::collections::HashMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rac::engine::{PatientInput, compute_patient};
use rac::generate::{GenFormat, GenerateOptions, generate_in_memory};
use rac::model::{Act, RightPeriod};
use rac::rules::RuleBook;

/// The binary's allocator: the engine allocates a little per act and per patient.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn engine(c: &mut Criterion) {
    let opts = GenerateOptions {
        acts: 200_000,
        patients: 20_000,
        seed: 7,
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
    // Each patient's acts in the order a run hands them to the engine.
    for a in acts.values_mut() {
        a.sort_by(|x, y| (x.care_date, &x.act_id).cmp(&(y.care_date, &y.act_id)));
    }
    let book = RuleBook::builtin();
    let patients: Vec<_> = data
        .beneficiaries
        .iter()
        .filter_map(|b| acts.get(b.patient_id.as_str()).map(|a| (b, a)))
        .collect();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(data.acts.len() as u64));
    group.sample_size(10);
    group.bench_function("one_core_200k_acts", |bench| {
        bench.iter(|| {
            let mut n = 0;
            for (b, a) in &patients {
                let input = PatientInput {
                    beneficiary: b,
                    acts: a,
                    rights: rights
                        .get(b.patient_id.as_str())
                        .map_or(&[], |r| r.as_slice()),
                    rights_known: true,
                    opening: &[],
                };
                n += compute_patient(&book, &input).outcomes.len();
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
