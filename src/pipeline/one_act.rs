//! The inputs of one act's patient, found by streaming over the files (`rac explain`): what
//! is held at once is one read chunk and that patient's rows, whatever the size of the inputs
//! (reading a month of 10 M acts whole to explain one of them took 7.1 GiB).
//!
//! The acts are read three times, chunk by chunk:
//! 1. the rows with the act's id: the first valid one is the row a run keeps, and names the
//!    patient; the others are rejected as duplicates;
//! 2. the patient's rows;
//! 3. the rows, of any patient, that hold one of the patient's act ids before the patient's
//!    row does: a run keeps the first row of an id, so the patient's row is then a duplicate.
//!
//! Between the first and second pass, the beneficiaries, rights and counters are read for
//! that patient alone. The patient's rows then go through the checks and the grouping of a
//! run ([`assemble`]): the patient's acts are the same, in the same order, as in a run.

use std::path::Path;

use chrono::Datelike;

use super::partitioned::{checked_counters, small_tables_error};
use super::{
    IdsChecked, Inputs, Prepared, RunError, act_reject, assemble, check_counter_years,
    group_counters, group_rights,
};
use crate::io::read::{self, Chunks, Sourced};
use crate::model::{Act, Beneficiary, Reject, RightPeriod};

/// Where a row is in the input: its file's index, then its row; compared, the reading order.
type Position = (usize, u64);

/// [`super::prepare`] restricted to the patient of the act `act_id`, read in passes that hold
/// one chunk at a time (see the module's doc). The result holds that patient alone, or no
/// patient when no valid row has the id or its patient is unknown, and these rejects: the
/// rows with id `act_id` rejected when read, then those rejected as a run would reject them
/// (unknown patient, duplicates), in reading order; other rows' rejects are not gathered.
///
/// A file that cannot be read fails as [`super::prepare`] fails, with the first error in the
/// order a run reads the files. The counters are checked as a run checks them, except that
/// two rows of one patient and year are found for this patient only.
pub fn prepare_for_act(inputs: &Inputs, act_id: &str) -> Result<Prepared, RunError> {
    let read_acts = || -> Result<Chunks<Act>, RunError> {
        read::open_acts(&inputs.acts, &inputs.read).map_err(RunError::from)
    };
    // A file-level error in the acts: the one a run meets first may be in a smaller table.
    let first_error = |error: RunError| small_tables_error(inputs).unwrap_or(error);

    // Pass 1: the rows of the act's id.
    let chunks = read_acts().map_err(first_error)?;
    let act_files = chunks.files().to_vec();
    let mut rejects: Vec<Reject> = Vec::new();
    let mut repeats: Vec<Reject> = Vec::new();
    let mut kept: Option<(Position, String)> = None;
    let mut last_year: Option<i32> = None;
    let mut read = 0;
    for chunk in chunks {
        let chunk = chunk.map_err(RunError::from).map_err(first_error)?;
        read += chunk.read;
        rejects.extend(chunk.rejects.into_iter().filter(|r| r.act_id == act_id));
        for row in &chunk.rows {
            last_year = last_year.max(Some(row.value.care_date.year()));
            if row.value.act_id.as_str() != act_id {
                continue;
            }
            match kept {
                None => kept = Some(((row.file, row.row), row.value.patient_id.to_string())),
                Some(_) => repeats.push(act_reject(
                    &act_files,
                    row,
                    "act_id",
                    "duplicate_act_id",
                    act_id,
                )),
            }
        }
    }

    let mut files: Vec<(&'static str, String)> = Vec::new();
    let patient = kept.as_ref().map(|(_, patient)| patient.as_str());
    let (beneficiary, other_rejects) =
        beneficiary_of(&inputs.beneficiaries, &inputs.read, patient, &mut files)?;
    let mut rights_of_patient = Vec::new();
    let mut other_rejects = other_rejects;
    if let Some(path) = &inputs.rights {
        let chunks = Chunks::<RightPeriod>::open(path, &inputs.read)?;
        files.extend(chunks.files().iter().map(|f| ("rights", f.clone())));
        for chunk in chunks {
            let chunk = chunk?;
            other_rejects += chunk.rejects.len() as u64;
            rights_of_patient.extend(
                (chunk.rows.into_iter())
                    .map(|r| r.value)
                    .filter(|r| Some(r.patient_id.as_str()) == patient),
            );
        }
    }
    let mut opening = Vec::new();
    if let Some(path) = &inputs.counters {
        let mut years = Vec::new();
        for values in checked_counters(path)? {
            for counter in values? {
                years.push(counter.year);
                if Some(counter.patient_id.as_str()) == patient {
                    opening.push(counter);
                }
            }
        }
        check_counter_years(path, last_year, years.into_iter())?;
        files.push(("counters", path.display().to_string()));
    }
    files.extend(act_files.iter().map(|f| ("acts", f.clone())));

    let mut base = Prepared {
        beneficiaries: beneficiary
            .into_iter()
            .map(|b| (b.patient_id.clone(), b))
            .collect(),
        rights: group_rights(rights_of_patient),
        rights_known: inputs.rights.is_some(),
        act_files: act_files.clone(),
        rejects,
        other_rejects,
        read,
        files,
        ..Prepared::default()
    };
    if let Some(path) = &inputs.counters {
        base.opening = group_counters(path, opening)?;
    }
    let Some((_, patient)) = kept else {
        return Ok(base);
    };

    // Pass 2: the patient's rows.
    let mut rows: Vec<Sourced<Act>> = Vec::new();
    for chunk in read_acts()? {
        let chunk = chunk?;
        rows.extend((chunk.rows.into_iter()).filter(|r| r.value.patient_id.as_str() == patient));
    }

    // Pass 3: the first row of each of the patient's ids, up to the patient's last row.
    let mut first: rustc_hash::FxHashMap<&str, Position> = rows
        .iter()
        .map(|r| (r.value.act_id.as_str(), (r.file, r.row)))
        .collect();
    let last = rows.iter().map(|r| (r.file, r.row)).max();
    'read: for chunk in read_acts()? {
        let chunk = chunk?;
        for row in &chunk.rows {
            if Some((row.file, row.row)) >= last {
                break 'read;
            }
            if let Some(at) = first.get_mut(row.value.act_id.as_str()) {
                *at = (*at).min((row.file, row.row));
            }
        }
    }
    // A row of the patient whose id came first on another row: a duplicate, as in a run. The
    // act's own repeats are in `repeats` already.
    let later: Vec<bool> = (rows.iter())
        .map(|r| first[r.value.act_id.as_str()] < (r.file, r.row))
        .collect();
    drop(first);
    let mut repeated: Vec<Reject> = Vec::new();
    let mut kept_rows = Vec::with_capacity(rows.len());
    for (row, later) in rows.into_iter().zip(later) {
        if !later {
            kept_rows.push(row);
        } else if row.value.act_id.as_str() != act_id {
            let id = row.value.act_id.to_string();
            repeated.push(act_reject(
                &act_files,
                &row,
                "act_id",
                "duplicate_act_id",
                &id,
            ));
        }
    }
    // No counters path: their years were checked above against every act's, not against
    // this patient's alone (counters of 2025 open a run whose patient has a late 2024 claim).
    let mut prepared = assemble(base, kept_rows, None, IdsChecked::Here)?;
    // In the order of a run's rejects for the act's id: when read, then (in row order) its
    // first valid row if its patient is unknown, then its repeats.
    prepared.rejects.extend(repeated);
    prepared.rejects.extend(repeats);
    Ok(prepared)
}

/// The first valid row of `patient` in the beneficiaries (a run keeps the first of a
/// patient's rows), with the number of rows rejected in that table; adds the files read to
/// `files`.
fn beneficiary_of(
    path: &Path,
    opts: &read::ReadOptions,
    patient: Option<&str>,
    files: &mut Vec<(&'static str, String)>,
) -> Result<(Option<Beneficiary>, u64), RunError> {
    let chunks = Chunks::<Beneficiary>::open(path, opts)?;
    files.extend(chunks.files().iter().map(|f| ("beneficiaries", f.clone())));
    let mut found = None;
    let mut rejected = 0;
    for chunk in chunks {
        let chunk = chunk?;
        rejected += chunk.rejects.len() as u64;
        if found.is_none() {
            found = (chunk.rows.into_iter())
                .map(|r| r.value)
                .find(|b| Some(b.patient_id.as_str()) == patient);
        }
    }
    Ok((found, rejected))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rust_decimal::Decimal;

    use super::*;
    use crate::io::read::ReadOptions;
    use crate::model::{Act, YearCounter};

    /// The patient of act `id` in `prepared` (the one whose acts hold it), with what the
    /// engine gets for them, and the rejects of the rows of `id`.
    type Seen = Option<(
        String,
        Vec<Act>,
        Vec<super::super::Origin>,
        Beneficiary,
        Vec<RightPeriod>,
        Vec<YearCounter>,
    )>;

    fn seen(prepared: &Prepared, id: &str) -> (Seen, Vec<Reject>) {
        let patient = prepared
            .patients
            .iter()
            .find(|p| prepared.acts_of(p).iter().any(|a| a.act_id.as_str() == id));
        let patient = patient.map(|p| {
            let input = prepared.input(p);
            (
                p.patient_id.clone(),
                input.acts.to_vec(),
                prepared.origins_of(p).to_vec(),
                input.beneficiary.clone(),
                input.rights.to_vec(),
                input.opening.to_vec(),
            )
        });
        let rejects = (prepared.rejects.iter())
            .filter(|r| r.act_id == id)
            .cloned()
            .collect();
        (patient, rejects)
    }

    /// Two acts files (a folder), with what a run rejects or keeps across them: ids repeated
    /// within and across patients and files, a row rejected when read before the valid row of
    /// its id, an unknown patient, a beneficiary given twice, rights and opening counters.
    fn inputs(dir: &Path) -> Inputs {
        let acts = dir.join("acts");
        std::fs::create_dir(&acts).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        write(
            "acts/1.csv",
            "act_id,patient_id,care_date,category,tariff\n\
             A1,P1,2025-03-01,consultation,30\n\
             B1,P2,2025-03-02,consultation,30\n\
             C1,P3,2025-13-01,consultation,30\n\
             C1,P3,2025-03-03,drug_65,12.5\n\
             B1,P1,2025-03-04,biology,20\n\
             D1,P9,2025-03-05,consultation,30\n\
             D1,P1,2025-03-05,consultation,30\n\
             E1,P1,2025-03-06,paramedical,15\n\
             A1,P2,2025-03-07,consultation,30\n\
             E1,P1,2025-03-08,paramedical,16\n\
             G1,P1,2025-03-01,consultation,25\n",
        );
        write(
            "acts/2.csv",
            "act_id,patient_id,care_date,category,tariff\n\
             F1,P1,2025-02-01,consultation,30\n\
             A1,P3,2025-03-09,consultation,30\n\
             H1,P2,2025-04-01,drug_65,8\n\
             G1,P2,2025-04-02,consultation,30\n",
        );
        Inputs {
            acts,
            beneficiaries: write(
                "beneficiaries.csv",
                "patient_id,birth_date,regime\n\
                 P1,1980-03-10,general\n\
                 P2,1955-07-01,general\n\
                 P2,1990-01-01,alsace_moselle\n\
                 P3,2010-05-05,general\n",
            ),
            rights: Some(write(
                "rights.csv",
                "patient_id,right,start_date,end_date,reference\n\
                 P2,ald,2019-01-01,,ALD 30\n\
                 P1,css,2024-07-01,2025-06-30,\n\
                 P3,maternity,2025-01-01,2025-09-30,\n",
            )),
            counters: Some(write(
                "counters.csv",
                "patient_id,year,pf_used,franchise_used\n\
                 P1,2025,4.00,2.00\n\
                 P2,2024,50.00,50.00\n",
            )),
            read: ReadOptions::default(),
        }
    }

    /// For every id of the files, the patient, acts (same order), origins, beneficiary, rights
    /// and counters, and the rejects of the id's rows, are those of the whole read.
    #[test]
    fn each_act_gets_what_the_whole_read_gives_it() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let whole = super::super::prepare(&inputs).unwrap();
        let ids = [
            "A1", "B1", "C1", "D1", "E1", "F1", "G1", "H1", "Z9", // Z9: in no row
        ];
        for id in ids {
            let one = prepare_for_act(&inputs, id).unwrap();
            assert!(one.patients.len() <= 1, "{id}: {:?}", one.patients);
            assert_eq!(seen(&one, id), seen(&whole, id), "{id}");
        }
    }

    /// What the comparison above rests on, checked on its own: the runs' decisions for the
    /// awkward ids.
    #[test]
    fn repeats_unknown_patients_and_read_rejects_are_found_across_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let file = |name: &str| inputs.acts.join(name).display().to_string();
        let reasons = |prepared: &Prepared, id: &str| -> Vec<(String, u64, String)> {
            (prepared.rejects.iter())
                .filter(|r| r.act_id == id)
                .map(|r| (r.file.clone(), r.row, r.reason.clone()))
                .collect()
        };
        // A1: P1's row is kept; P2's (same file) and P3's (second file) are repeats.
        let a1 = prepare_for_act(&inputs, "A1").unwrap();
        assert_eq!(a1.patients[0].patient_id, "P1");
        assert_eq!(
            reasons(&a1, "A1"),
            [
                (file("1.csv"), 9, "duplicate_act_id".to_string()),
                (file("2.csv"), 2, "duplicate_act_id".to_string())
            ]
        );
        // P1's acts: F1, then A1 and G1 (one day, by id), then E1 (its first row). B1 and D1
        // came first on other rows (D1 on P9's: unknown, but the first valid row of the id),
        // so P1's rows of them are repeats.
        let ids: Vec<&str> = (a1.acts_of(&a1.patients[0]).iter())
            .map(|a| a.act_id.as_str())
            .collect();
        assert_eq!(ids, ["F1", "A1", "G1", "E1"]);
        assert_eq!(a1.beneficiaries.len(), 1);
        assert_eq!(a1.opening["P1"][0].pf_used, Decimal::new(400, 2));
        // C1: the bad date first, then the valid row, kept.
        let c1 = prepare_for_act(&inputs, "C1").unwrap();
        assert_eq!(
            reasons(&c1, "C1"),
            [(file("1.csv"), 3, "bad_date".to_string())]
        );
        assert_eq!(c1.patients[0].patient_id, "P3");
        // D1: no patient; its first row's patient is unknown, the second is a repeat.
        let d1 = prepare_for_act(&inputs, "D1").unwrap();
        assert!(d1.patients.is_empty());
        assert_eq!(
            reasons(&d1, "D1"),
            [
                (file("1.csv"), 6, "unknown_patient".to_string()),
                (file("1.csv"), 7, "duplicate_act_id".to_string())
            ]
        );
        // P2, the beneficiary given twice: the first row.
        let h1 = prepare_for_act(&inputs, "H1").unwrap();
        assert_eq!(
            h1.beneficiaries["P2"].birth_date,
            chrono::NaiveDate::from_ymd_opt(1955, 7, 1).unwrap()
        );
        let ids: Vec<&str> = (h1.acts_of(&h1.patients[0]).iter())
            .map(|a| a.act_id.as_str())
            .collect();
        assert_eq!(ids, ["B1", "H1"]);
    }

    /// Counters of a year later than the patient's own acts, but not than the input's: a
    /// run accepts them (a late claim of last year, with this year's counters), so does the
    /// patient's explanation (it refused them, judging them by this patient's acts alone).
    #[test]
    fn counters_are_judged_by_every_act_not_the_patients_alone() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = super::super::csv_inputs(
            dir.path(),
            "act_id,patient_id,care_date,category,tariff\n\
             L1,P1,2024-12-20,consultation,30\n\
             N1,P2,2025-01-10,consultation,30\n",
            "patient_id,birth_date,regime\nP1,1980-03-10,general\nP2,1955-07-01,general\n",
            None,
            Some("patient_id,year,pf_used,franchise_used\nP1,2025,4.00,2.00\n"),
        );
        let whole = super::super::prepare(&inputs).unwrap();
        let one = prepare_for_act(&inputs, "L1").unwrap();
        assert_eq!(seen(&one, "L1"), seen(&whole, "L1"));
        assert_eq!(one.opening["P1"][0].year, 2025);
        // Counters later than every act are refused, as by a run.
        std::fs::write(
            inputs.counters.as_ref().unwrap(),
            "patient_id,year,pf_used,franchise_used\nP1,2026,4.00,2.00\n",
        )
        .unwrap();
        let whole = super::super::prepare(&inputs).unwrap_err().to_string();
        let one = prepare_for_act(&inputs, "L1").unwrap_err().to_string();
        assert_eq!(one, whole);
        assert!(one.contains("counters of 2026"), "{one}");
    }

    /// A file the run cannot read fails the same way, naming the first bad table a run
    /// reads: here the beneficiaries, although the acts come first in the passes.
    #[test]
    fn a_bad_file_fails_with_the_error_a_run_meets_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = inputs(dir.path());
        std::fs::write(dir.path().join("acts/2.csv"), "act_id,tariff\nX,1\n").unwrap();
        let whole = super::super::prepare(&inputs).unwrap_err().to_string();
        let one = prepare_for_act(&inputs, "A1").unwrap_err().to_string();
        assert_eq!(one, whole);
        assert!(one.contains("2.csv"), "{one}");
        let bad: PathBuf = dir.path().join("bad_beneficiaries.csv");
        std::fs::write(&bad, "patient_id\nP1\n").unwrap();
        inputs.beneficiaries = bad;
        let whole = super::super::prepare(&inputs).unwrap_err().to_string();
        let one = prepare_for_act(&inputs, "A1").unwrap_err().to_string();
        assert_eq!(one, whole);
        assert!(one.contains("bad_beneficiaries.csv"), "{one}");
    }
}
