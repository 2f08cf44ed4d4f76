//! The batch around the engine: read the inputs, reject what cannot be computed, group acts
//! by patient, run the engine on every patient in parallel, aggregate, and write every output
//! atomically.
//!
//! Determinism: patients are processed in `patient_id` order and each patient's acts in
//! (`care_date`, `act_id`) order; rayon's ordered `collect` keeps that order whatever the
//! thread count, so the outputs are the same bytes with 1 or 32 threads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde_json::json;

use crate::engine::{self, PatientInput, PatientResult};
use crate::io::read::{self, ReadError, ReadOptions, Sourced};
use crate::io::write::{self, Format, Staging, TableWriter, WriteError};
use crate::model::{Act, Beneficiary, Outcome, Reject, RightPeriod, YearCounter};
use crate::report::{PatientTotals, Summary, Totals};
use crate::rules::RuleBook;

/// The input files of a run.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub acts: PathBuf,
    pub beneficiaries: PathBuf,
    pub rights: Option<PathBuf>,
    pub counters: Option<PathBuf>,
    pub read: ReadOptions,
}

/// Everything read and checked, ready for the engine.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Acts that passed the checks, grouped by patient (sorted by `patient_id`), each group
    /// sorted by (`care_date`, `act_id`).
    pub patients: Vec<PatientActs>,
    pub beneficiaries: HashMap<String, Beneficiary>,
    pub rights: HashMap<String, Vec<RightPeriod>>,
    pub rights_known: bool,
    pub opening: HashMap<String, Vec<YearCounter>>,
    /// Where each act came from, to name file and row in rejects found by the engine.
    pub origins: HashMap<String, (String, u64)>,
    pub rejects: Vec<Reject>,
    /// Rejected rows of the beneficiaries and rights files (the others are act rows).
    pub other_rejects: u64,
    /// Act rows read.
    pub read: u64,
    /// The files read, for the manifest: (role, path).
    pub files: Vec<(&'static str, String)>,
}

/// The acts of one patient.
#[derive(Debug)]
pub struct PatientActs {
    pub patient_id: String,
    pub acts: Vec<Act>,
}

/// Why a run failed (exit codes of SPEC §1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{0}")]
    Usage(String),
}

impl RunError {
    /// SPEC §1: 2 for usage or configuration, 1 for unreadable input or internal errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Usage(_) => 2,
            RunError::Write(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

/// Reads and checks the inputs: duplicate `act_id`s and acts of unknown patients are
/// rejected here (RULES §7.6, SPEC §2).
pub fn prepare(inputs: &Inputs) -> Result<Prepared, RunError> {
    let bens = read::read_beneficiaries(&inputs.beneficiaries, &inputs.read)?;
    let mut rejects = bens.rejects;
    let mut files: Vec<(&'static str, String)> = bens
        .files
        .iter()
        .map(|f| ("beneficiaries", f.clone()))
        .collect();
    let mut beneficiaries: HashMap<String, Beneficiary> = HashMap::new();
    for Sourced { file, row, value } in bens.rows {
        if beneficiaries.contains_key(&value.patient_id) {
            rejects.push(Reject {
                file: bens.files[file].clone(),
                row,
                act_id: String::new(),
                column: "patient_id".into(),
                reason: "duplicate_patient_id".into(),
                value: value.patient_id,
            });
            continue;
        }
        beneficiaries.insert(value.patient_id.clone(), value);
    }

    let mut rights: HashMap<String, Vec<RightPeriod>> = HashMap::new();
    if let Some(path) = &inputs.rights {
        let loaded = read::read_rights(path, &inputs.read)?;
        files.extend(loaded.files.iter().map(|f| ("rights", f.clone())));
        rejects.extend(loaded.rejects);
        for r in loaded.rows {
            rights
                .entry(r.value.patient_id.clone())
                .or_default()
                .push(r.value);
        }
    }

    let mut opening: HashMap<String, Vec<YearCounter>> = HashMap::new();
    if let Some(path) = &inputs.counters {
        for c in read::read_counters(path)? {
            opening.entry(c.patient_id.clone()).or_default().push(c);
        }
        files.push(("counters", path.display().to_string()));
    }

    let other_rejects = rejects.len() as u64;
    let acts = read::read_acts(&inputs.acts, &inputs.read)?;
    files.extend(acts.files.iter().map(|f| ("acts", f.clone())));
    rejects.extend(acts.rejects);
    let read = acts.read;
    let mut seen: HashSet<String> = HashSet::with_capacity(acts.rows.len());
    let mut origins = HashMap::with_capacity(acts.rows.len());
    let mut kept: Vec<Act> = Vec::with_capacity(acts.rows.len());
    for Sourced { file, row, value } in acts.rows {
        let file_name = &acts.files[file];
        let reject = |column: &str, reason: &str, v: &str| Reject {
            file: file_name.clone(),
            row,
            act_id: value.act_id.clone(),
            column: column.into(),
            reason: reason.into(),
            value: v.into(),
        };
        if !seen.insert(value.act_id.clone()) {
            rejects.push(reject("act_id", "duplicate_act_id", &value.act_id));
            continue;
        }
        if !beneficiaries.contains_key(&value.patient_id) {
            rejects.push(reject("patient_id", "unknown_patient", &value.patient_id));
            continue;
        }
        origins.insert(value.act_id.clone(), (file_name.clone(), row));
        kept.push(value);
    }
    kept.par_sort_unstable_by(|a, b| {
        (&a.patient_id, a.care_date, &a.act_id).cmp(&(&b.patient_id, b.care_date, &b.act_id))
    });
    let mut patients: Vec<PatientActs> = Vec::new();
    for act in kept {
        match patients.last_mut() {
            Some(p) if p.patient_id == act.patient_id => p.acts.push(act),
            _ => patients.push(PatientActs {
                patient_id: act.patient_id.clone(),
                acts: vec![act],
            }),
        }
    }
    Ok(Prepared {
        patients,
        beneficiaries,
        rights,
        rights_known: inputs.rights.is_some(),
        opening,
        origins,
        rejects,
        other_rejects,
        read,
        files,
    })
}

/// The results of the engine over every patient.
#[derive(Debug, Default)]
pub struct Computed {
    /// Outcomes, by patient then (`care_date`, `act_id`).
    pub outcomes: Vec<Outcome>,
    /// Closing counters of every patient seen (acts or opening counters), sorted.
    pub closing: Vec<YearCounter>,
    /// Input rejects plus the engine's.
    pub rejects: Vec<Reject>,
    /// How many of `rejects` are beneficiaries or rights rows.
    pub other_rejects: u64,
    /// Act rows read: always `outcomes.len()` + act rows in `rejects`.
    pub read: u64,
}

/// Runs the engine on every patient, in parallel, in a deterministic order.
pub fn compute(book: &RuleBook, prepared: Prepared) -> Computed {
    let Prepared {
        patients,
        beneficiaries,
        rights,
        rights_known,
        opening,
        origins,
        mut rejects,
        other_rejects,
        read,
        ..
    } = prepared;
    let none_rights: Vec<RightPeriod> = Vec::new();
    let none_counters: Vec<YearCounter> = Vec::new();
    let results: Vec<(usize, PatientResult)> = patients
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let input = PatientInput {
                beneficiary: &beneficiaries[&p.patient_id],
                acts: &p.acts,
                rights: rights.get(&p.patient_id).unwrap_or(&none_rights),
                rights_known,
                opening: opening.get(&p.patient_id).unwrap_or(&none_counters),
            };
            (i, engine::compute_patient(book, &input))
        })
        .collect();

    let mut outcomes = Vec::with_capacity(patients.iter().map(|p| p.acts.len()).sum());
    let mut closing = Vec::new();
    let mut with_acts: HashSet<&str> = HashSet::new();
    for (i, r) in results {
        let p = &patients[i];
        with_acts.insert(&p.patient_id);
        for rej in r.rejected {
            let act = &p.acts[rej.index];
            let (file, row) = origins.get(&act.act_id).cloned().unwrap_or_default();
            rejects.push(Reject {
                file,
                row,
                act_id: act.act_id.clone(),
                column: rej.column.into(),
                reason: rej.reason.into(),
                value: rej.value,
            });
        }
        outcomes.extend(r.outcomes);
        closing.extend(r.closing);
    }
    // Patients without acts this run keep their opening state for the next run.
    for (patient, counters) in &opening {
        if !with_acts.contains(patient.as_str()) {
            closing.extend(counters.iter().cloned());
        }
    }
    closing.sort_by(|a, b| (&a.patient_id, a.year).cmp(&(&b.patient_id, b.year)));
    rejects.sort_by(|a, b| (&a.file, a.row).cmp(&(&b.file, b.row)));
    Computed {
        outcomes,
        closing,
        rejects,
        other_rejects,
        read,
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub read: u64,
    pub computed: u64,
    /// Act rows rejected.
    pub rejected: u64,
    /// Beneficiaries and rights rows rejected.
    pub other_rejected: u64,
    pub totals: Totals,
    pub out: PathBuf,
    pub seconds: f64,
}

impl RunSummary {
    /// SPEC §1: 0 when every row was computed, 3 when some were rejected.
    pub fn exit_code(&self) -> i32 {
        if self.rejected + self.other_rejected > 0 {
            3
        } else {
            0
        }
    }
}

/// Everything a run writes, beside the three tables every run has.
pub struct Extra<'a> {
    pub command: &'a str,
    pub argv: Vec<String>,
    /// Writes more tables into the staging folder (e.g. the audit's discrepancies) and
    /// returns their names and row counts for the manifest.
    #[allow(clippy::type_complexity)]
    pub write_more: Option<Box<dyn FnOnce(&Path) -> Result<serde_json::Value, WriteError> + 'a>>,
}

/// Writes every output of SPEC §4 into `out`, atomically.
pub fn write_outputs(
    out: &Path,
    format: Format,
    book: &RuleBook,
    files: &[(&'static str, String)],
    computed: &Computed,
    extra: Extra,
    started: Instant,
) -> Result<RunSummary, RunError> {
    let staging = Staging::begin(out)?;
    let dir = staging.path().to_path_buf();

    let mut acts = TableWriter::<Outcome>::create(&dir, format)?;
    for chunk in computed.outcomes.chunks(1 << 20) {
        acts.write(chunk)?;
    }
    acts.finish()?;

    let mut patients = PatientTotals::new();
    patients.add(&computed.outcomes);
    let patient_years = patients.finish(&computed.closing);
    write::write_table(&dir, format, &patient_years)?;

    let mut summary = Summary::new();
    summary.add(&computed.outcomes);
    write::write_table(&dir, format, &summary.rows())?;
    write::write_table(&dir, format, &computed.closing)?;
    write::write_rejects_csv(&dir, &computed.rejects)?;
    let more = match extra.write_more {
        Some(f) => f(&dir)?,
        None => json!({}),
    };

    let totals = Totals::of(&computed.outcomes);
    let mut inputs = Vec::new();
    for (role, path) in files {
        let p = Path::new(path);
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        inputs.push(json!({
            "role": role,
            "path": path,
            "bytes": size,
            "sha256": write::sha256_file(p)?,
        }));
    }
    let summary = RunSummary {
        read: computed.read,
        computed: computed.outcomes.len() as u64,
        rejected: computed.rejects.len() as u64 - computed.other_rejects,
        other_rejected: computed.other_rejects,
        totals,
        out: out.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
    };
    // The manifest records the run, duration included (SPEC §4); every other output is the
    // same bytes for the same inputs.
    let manifest = json!({
        "tool": "rac",
        "version": env!("CARGO_PKG_VERSION"),
        "command": extra.command,
        "argv": extra.argv,
        "format": format.as_str(),
        "inputs": inputs,
        "rules": { "version": book.version(), "sources": book.sources() },
        "rows": {
            "read": summary.read,
            "computed": summary.computed,
            "rejected": summary.rejected,
            "rejected_other_rows": summary.other_rejected,
            "patients_years": patient_years.len(),
            "counters": computed.closing.len(),
        },
        "totals": totals.to_json(),
        "extra": more,
        "duration_seconds": (summary.seconds * 1000.0).round() / 1000.0,
    });
    write::write_manifest(&dir, &manifest)?;
    staging.commit()?;
    Ok(summary)
}
