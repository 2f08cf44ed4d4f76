//! Audit on a generated month with known errors injected: every injected error is found and
//! explained with the right cause, and no clean line is reported.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use rac::audit::{self, Compare};
use rac::engine::round_cents;
use rac::generate::{GenFormat, GenerateOptions, generate_in_memory};
use rac::model::{Act, Category, Situation};
use rac::pipeline::{self, Origin, PatientActs, Prepared};
use rac::rules::RuleBook;

fn prepared_month() -> Prepared {
    let data = generate_in_memory(&GenerateOptions {
        acts: 30_000,
        patients: 3_000,
        seed: 11,
        format: GenFormat::Csv,
        start: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        months: 1,
    })
    .unwrap();
    let mut acts = data.acts;
    acts.sort_by(|a, b| {
        (&a.patient_id, a.care_date, &a.act_id).cmp(&(&b.patient_id, b.care_date, &b.act_id))
    });
    let mut patients: Vec<PatientActs> = Vec::new();
    for (i, act) in acts.iter().enumerate() {
        match patients.last_mut() {
            Some(p) if p.patient_id == act.patient_id => p.acts.end = i + 1,
            _ => patients.push(PatientActs {
                patient_id: act.patient_id.to_string(),
                acts: i..i + 1,
            }),
        }
    }
    let origins = (0..acts.len())
        .map(|i| Origin {
            file: 0,
            row: i as u64 + 1,
        })
        .collect();
    let mut rights = rac::pipeline::ByPatient::<Vec<_>>::default();
    for r in data.rights {
        rights.entry(r.patient_id.clone()).or_default().push(r);
    }
    Prepared {
        patients,
        acts,
        origins,
        beneficiaries: data
            .beneficiaries
            .into_iter()
            .map(|b| (b.patient_id.clone(), b))
            .collect(),
        rights,
        rights_known: true,
        act_files: vec!["acts.csv".into()],
        read: 30_000,
        ..Prepared::default()
    }
}

#[test]
fn injected_errors_are_found_and_explained() {
    let book = RuleBook::builtin();
    let mut prepared = prepared_month();
    let outcomes = pipeline::compute(&book, &prepared).outcomes;
    let by_id: HashMap<&str, &rac::model::Outcome> =
        outcomes.iter().map(|o| (o.act_id.as_str(), o)).collect();

    // Every line recorded as rac computes it, then four kinds of errors on chosen lines.
    let mut expected: HashMap<String, &str> = HashMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut eligible = 0usize;
    for act in &mut prepared.acts {
        let o = by_id[act.act_id.as_str()];
        let mut recorded = o.amo_paid;
        let unit_rate = |a: &Act, pct: i64| {
            round_cents(a.tariff * Decimal::new(pct, 2)) * Decimal::from(a.quantity)
        };
        let plain = o.billed == o.base && o.majoration.is_zero() && o.flat_fee.is_zero();
        let cause = if o.category == Category::Consultation
            && o.situation == Situation::Ordinary
            && o.pf > Decimal::ZERO
            && plain
            && o.pal.is_zero()
        {
            eligible += 1;
            match eligible {
                n if n % 3 == 0 && counts.get("rate").copied().unwrap_or(0) < 25 => {
                    // Wrong rate: paid at 60 % instead of 70 %.
                    recorded = unit_rate(act, 60) - o.pf;
                    Some(("rate", "rate_differs:60"))
                }
                n if n % 3 == 1 && counts.get("pf").copied().unwrap_or(0) < 25 => {
                    // PF not deducted.
                    recorded = o.amo_paid + o.pf;
                    Some(("pf", "pf_not_deducted"))
                }
                _ => None,
            }
        } else if o.rules.contains(&"pal.heavy_group")
            && o.pal.is_zero()
            && o.situation == Situation::Ordinary
            && counts.get("pal").copied().unwrap_or(0) < 25
        {
            // The flat fee charged a second time in the same group or stay.
            recorded = o.amo_paid - Decimal::from(24);
            Some(("pal", "pal_charged_twice_in_group_or_stay"))
        } else if o.situation == Situation::Ordinary
            && matches!(o.category, Category::Drug65 | Category::Paramedical)
            && o.billed == o.base
            && counts.get("exo").copied().unwrap_or(0) < 25
        {
            // Exonerated at 100 % without a right.
            recorded = unit_rate(act, 100) - o.pf - o.franchise;
            Some(("exo", "exoneration_without_right"))
        } else {
            None
        };
        if let Some((kind, why)) = cause {
            *counts.entry(kind).or_default() += 1;
            expected.insert(act.act_id.to_string(), why);
        }
        act.recorded_amo = Some(recorded);
    }
    for kind in ["rate", "pf", "pal", "exo"] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) >= 5,
            "too few {kind} errors injected: {counts:?}"
        );
    }

    let outcomes = pipeline::compute(&book, &prepared).outcomes;
    let index: HashMap<&str, &Act> = prepared
        .acts
        .iter()
        .map(|a| (a.act_id.as_str(), a))
        .collect();
    let found = audit::discrepancies(&book, &outcomes, &index, Compare::Paid, Decimal::ZERO);
    let got: HashMap<String, String> = found
        .iter()
        .map(|d| (d.act_id.clone(), d.explanation.clone()))
        .collect();
    assert_eq!(got.len(), expected.len(), "no clean line is reported");
    for (act, why) in &expected {
        assert_eq!(got.get(act).map(String::as_str), Some(*why), "act {act}");
    }
    let causes = audit::by_cause(&found);
    assert_eq!(causes["pf_not_deducted"].0, counts["pf"] as u64);
}
