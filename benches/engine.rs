//! Engine throughput on in-memory patients (acts per second on one core), with each
//! patient's acts sorted as a run sorts them and the binary's allocator.
//!
//! `cargo bench --bench engine` — prints criterion's timings; throughput is in elements
//! (acts) per second.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rac::engine::{PatientInput, compute_patient};
use rac::model::{Act, Beneficiary, Category, Regime};
use rac::rules::RuleBook;
use rust_decimal::Decimal;

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

    // One patient with 20 000 acts on one day (a dirty extract's placeholder patient): the
    // daily PF count and franchise caps were summed again over the day's earlier lines for
    // each line, quadratic (100 000 such acts over three days took 20 s, now 0.3 s).
    let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 3).expect("a date");
    let categories = [
        Category::Consultation,
        Category::Drug65,
        Category::Paramedical,
        Category::Biology,
    ];
    let acts: Vec<Act> = (0..20_000)
        .map(|i| {
            let category = categories[i % categories.len()];
            let mut act = Act::new(
                &format!("A{i:06}"),
                "P1",
                day,
                category,
                Decimal::new(2500, 2),
            );
            act.practitioner_id = Some(format!("D{}", i % 50).into());
            act
        })
        .collect();
    let beneficiary = Beneficiary {
        patient_id: "P1".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1980, 1, 1).expect("a date"),
        regime: Regime::General,
    };
    let input = PatientInput {
        beneficiary: &beneficiary,
        acts: &acts,
        rights: &[],
        rights_known: true,
        opening: &[],
    };
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(acts.len() as u64));
    group.sample_size(10);
    group.bench_function("one_patient_20k_acts_one_day", |bench| {
        bench.iter(|| compute_patient(&book, &input).outcomes.len())
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
