//! Generated patients for the benchmarks, as a run hands them to the engine.

use std::collections::HashMap;

use rac::engine::PatientInput;
use rac::generate::{GenFormat, GenerateOptions, generate_in_memory};
use rac::model::{Act, Beneficiary, RightPeriod};

/// One patient: the beneficiary, the acts sorted by (`care_date`, `act_id`), the rights.
pub struct Patient {
    pub beneficiary: Beneficiary,
    pub acts: Vec<Act>,
    pub rights: Vec<RightPeriod>,
}

impl Patient {
    /// The engine's input (rights known, no opening counters).
    pub fn input(&self) -> PatientInput<'_> {
        PatientInput {
            beneficiary: &self.beneficiary,
            acts: &self.acts,
            rights: &self.rights,
            rights_known: true,
            opening: &[],
        }
    }
}

/// The patients with acts of a generated data set, in `patient_id` order.
pub fn patients(acts: u64, patients: u64, seed: u64) -> Vec<Patient> {
    let opts = GenerateOptions {
        acts,
        patients,
        seed,
        format: GenFormat::Parquet,
        ..GenerateOptions::default()
    };
    let data = generate_in_memory(&opts).expect("generate");
    let mut by_patient: HashMap<String, Patient> = data
        .beneficiaries
        .into_iter()
        .map(|b| {
            let patient = Patient {
                beneficiary: b.clone(),
                acts: Vec::new(),
                rights: Vec::new(),
            };
            (b.patient_id, patient)
        })
        .collect();
    for a in data.acts {
        if let Some(p) = by_patient.get_mut(a.patient_id.as_str()) {
            p.acts.push(a);
        }
    }
    for r in data.rights {
        if let Some(p) = by_patient.get_mut(r.patient_id.as_str()) {
            p.rights.push(r);
        }
    }
    let mut out: Vec<Patient> = by_patient
        .into_values()
        .filter(|p| !p.acts.is_empty())
        .collect();
    out.sort_by(|a, b| a.beneficiary.patient_id.cmp(&b.beneficiary.patient_id));
    for p in &mut out {
        p.acts
            .sort_by(|x, y| (x.care_date, &x.act_id).cmp(&(y.care_date, &y.act_id)));
    }
    out
}
