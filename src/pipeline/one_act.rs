//! The inputs of some acts' patients, found by streaming over the files (`rac explain`): what
//! is held at once is one read chunk and those patients' rows, whatever the size of the
//! inputs (reading a month of 10 M acts whole to explain one of them took 7.1 GiB).
//!
//! The acts are read three times, chunk by chunk:
//! 1. the rows with one of the acts' ids: the first valid row of an id is the row a run
//!    keeps, and names its patient; the others are rejected as duplicates;
//! 2. those patients' rows;
//! 3. the rows, of any patient, that hold one of those patients' act ids before their own
//!    row does: a run keeps the first row of an id, so their row is then a duplicate.
//!
//! Between the first and second pass, the beneficiaries, rights and counters are read for
//! those patients alone. Their rows then go through the checks and the grouping of a run
//! ([`assemble`]): each patient's acts are the same, in the same order, as in a run. The
//! passes are the same for one act or a thousand: explaining a month's discrepancies reads
//! the files three times, not three times per act.

use std::path::Path;

use chrono::Datelike;
use rustc_hash::{FxHashMap, FxHashSet};

use super::partitioned::{checked_counters, small_tables_error};
use super::{
    IdsChecked, Inputs, Prepared, RunError, act_reject, assemble, check_counter_years,
    group_counters, group_rights,
};
use crate::io::read::{self, Chunks, Sourced};
use crate::model::{Act, Beneficiary, Reject, RightPeriod};

/// Where a row is in the input: its file's index, then its row; compared, the reading order.
type Position = (usize, u64);

/// [`super::prepare`] restricted to the patients of the acts `act_ids`, read in passes that
/// hold one chunk at a time (see the module's doc). The result holds those patients alone
/// (none for an id that no valid row has, or whose patient is unknown), and these rejects: the
/// rows of the ids rejected when read, then those rejected as a run would reject them
/// (unknown patient, duplicates); an id's rejects are in the order of a run's. Other rows'
/// rejects are not all gathered.
///
/// A file that cannot be read fails as [`super::prepare`] fails, with the first error in the
/// order a run reads the files. The counters are checked as a run checks them, except that
/// two rows of one patient and year are found for these patients only.
pub fn prepare_for_acts(inputs: &Inputs, act_ids: &[&str]) -> Result<Prepared, RunError> {
    let read_acts = || -> Result<Chunks<Act>, RunError> {
        read::open_acts(&inputs.acts, &inputs.read).map_err(RunError::from)
    };
    // A file-level error in the acts: the one a run meets first may be in a smaller table.
    let first_error = |error: RunError| small_tables_error(inputs).unwrap_or(error);
    let wanted: FxHashSet<&str> = act_ids.iter().copied().collect();

    // Pass 1: the rows of the acts' ids.
    let chunks = read_acts().map_err(first_error)?;
    let act_files = chunks.files().to_vec();
    let mut rejects: Vec<Reject> = Vec::new();
    let mut repeats: Vec<Reject> = Vec::new();
    // The patient of each id's kept row.
    let mut kept: FxHashMap<String, String> = FxHashMap::default();
    let mut last_year: Option<i32> = None;
    let mut read = 0;
    for chunk in chunks {
        let chunk = chunk.map_err(RunError::from).map_err(first_error)?;
        read += chunk.read;
        rejects.extend((chunk.rejects.into_iter()).filter(|r| wanted.contains(r.act_id.as_str())));
        for row in &chunk.rows {
            last_year = last_year.max(Some(row.value.care_date.year()));
            let id = row.value.act_id.as_str();
            if !wanted.contains(id) {
                continue;
            }
            if kept.contains_key(id) {
                repeats.push(act_reject(
                    &act_files,
                    row,
                    "act_id",
                    "duplicate_act_id",
                    id,
                ));
            } else {
                kept.insert(id.to_string(), row.value.patient_id.to_string());
            }
        }
    }

    let mut files: Vec<(&'static str, String)> = Vec::new();
    let patients: FxHashSet<&str> = kept.values().map(String::as_str).collect();
    let (beneficiaries, other_rejects) =
        beneficiaries_of(&inputs.beneficiaries, &inputs.read, &patients, &mut files)?;
    let mut rights_of_patients = Vec::new();
    let mut other_rejects = other_rejects;
    if let Some(path) = &inputs.rights {
        let chunks = Chunks::<RightPeriod>::open(path, &inputs.read)?;
        files.extend(chunks.files().iter().map(|f| ("rights", f.clone())));
        for chunk in chunks {
            let chunk = chunk?;
            other_rejects += chunk.rejects.len() as u64;
            rights_of_patients.extend(
                (chunk.rows.into_iter())
                    .map(|r| r.value)
                    .filter(|r| patients.contains(r.patient_id.as_str())),
            );
        }
    }
    let mut opening = Vec::new();
    if let Some(path) = &inputs.counters {
        let mut years = Vec::new();
        for values in checked_counters(path)? {
            for counter in values? {
                years.push(counter.year);
                if patients.contains(counter.patient_id.as_str()) {
                    opening.push(counter);
                }
            }
        }
        check_counter_years(path, last_year, years.into_iter())?;
        files.push(("counters", path.display().to_string()));
    }
    files.extend(act_files.iter().map(|f| ("acts", f.clone())));

    let mut base = Prepared {
        beneficiaries: (beneficiaries.into_iter())
            .map(|b| (b.patient_id.clone(), b))
            .collect(),
        rights: group_rights(rights_of_patients),
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
    if patients.is_empty() {
        return Ok(base);
    }

    // Pass 2: the patients' rows.
    let mut rows: Vec<Sourced<Act>> = Vec::new();
    for chunk in read_acts()? {
        let chunk = chunk?;
        rows.extend(
            (chunk.rows.into_iter()).filter(|r| patients.contains(r.value.patient_id.as_str())),
        );
    }

    // Pass 3: the first row of each of the patients' ids, up to their last row.
    let mut first: FxHashMap<&str, Position> = FxHashMap::default();
    for r in &rows {
        first
            .entry(r.value.act_id.as_str())
            .or_insert((r.file, r.row));
    }
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
    // A row of the patients whose id came first on another row: a duplicate, as in a run.
    // The repeats of the acts' own ids are in `repeats` already.
    let later: Vec<bool> = (rows.iter())
        .map(|r| first[r.value.act_id.as_str()] < (r.file, r.row))
        .collect();
    drop(first);
    let mut repeated: Vec<Reject> = Vec::new();
    let mut kept_rows = Vec::with_capacity(rows.len());
    for (row, later) in rows.into_iter().zip(later) {
        if !later {
            kept_rows.push(row);
        } else if !wanted.contains(row.value.act_id.as_str()) {
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
    drop(patients);
    // No counters path: their years were checked above against every act's, not against
    // these patients' alone (counters of 2025 open a run whose patient has a late 2024 claim).
    let mut prepared = assemble(base, kept_rows, None, IdsChecked::Here)?;
    // In the order of a run's rejects for an id: when read, then (in row order) its first
    // valid row if its patient is unknown, then its repeats.
    prepared.rejects.extend(repeated);
    prepared.rejects.extend(repeats);
    Ok(prepared)
}

/// The first valid row of each of `patients` in the beneficiaries (a run keeps the first of a
/// patient's rows), with the number of rows rejected in that table; adds the files read to
/// `files`.
fn beneficiaries_of(
    path: &Path,
    opts: &read::ReadOptions,
    patients: &FxHashSet<&str>,
    files: &mut Vec<(&'static str, String)>,
) -> Result<(Vec<Beneficiary>, u64), RunError> {
    let chunks = Chunks::<Beneficiary>::open(path, opts)?;
    files.extend(chunks.files().iter().map(|f| ("beneficiaries", f.clone())));
    let mut found: FxHashMap<String, Beneficiary> = FxHashMap::default();
    let mut rejected = 0;
    for chunk in chunks {
        let chunk = chunk?;
        rejected += chunk.rejects.len() as u64;
        for b in chunk.rows.into_iter().map(|r| r.value) {
            if patients.contains(b.patient_id.as_str()) && !found.contains_key(&b.patient_id) {
                found.insert(b.patient_id.clone(), b);
            }
        }
    }
    Ok((found.into_values().collect(), rejected))
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
            let one = prepare_for_acts(&inputs, &[id]).unwrap();
            assert!(one.patients.len() <= 1, "{id}: {:?}", one.patients);
            assert_eq!(seen(&one, id), seen(&whole, id), "{id}");
        }
    }

    /// Every id at once, in any order and some twice: each gets what the whole read gives
    /// it, and the patients are those of the ids' kept rows, each once.
    #[test]
    fn several_acts_get_what_the_whole_read_gives_each() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let whole = super::super::prepare(&inputs).unwrap();
        let ids = ["H1", "A1", "Z9", "D1", "C1", "A1", "G1", "B1", "E1", "F1"];
        let all = prepare_for_acts(&inputs, &ids).unwrap();
        for id in ids {
            assert_eq!(seen(&all, id), seen(&whole, id), "{id}");
        }
        let patients: Vec<&str> = (all.patients.iter())
            .map(|p| p.patient_id.as_str())
            .collect();
        assert_eq!(patients, ["P1", "P2", "P3"]);
        assert_eq!(all.beneficiaries.len(), 3);
        // P2's rows once, though both its ids (B1 and H1) were asked for.
        let p2: Vec<&str> = (all.acts_of(&all.patients[1]).iter())
            .map(|a| a.act_id.as_str())
            .collect();
        assert_eq!(p2, ["B1", "H1"]);
        // Each repeat is rejected once: A1's two, B1's and D1's one each, E1's one.
        let duplicates = |id: &str| {
            (all.rejects.iter())
                .filter(|r| r.act_id == id && r.reason == "duplicate_act_id")
                .count()
        };
        let counts: Vec<usize> = ["A1", "B1", "D1", "E1", "G1"].map(duplicates).to_vec();
        assert_eq!(counts, [2, 1, 1, 1, 1]);
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
        let a1 = prepare_for_acts(&inputs, &["A1"]).unwrap();
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
        let c1 = prepare_for_acts(&inputs, &["C1"]).unwrap();
        assert_eq!(
            reasons(&c1, "C1"),
            [(file("1.csv"), 3, "bad_date".to_string())]
        );
        assert_eq!(c1.patients[0].patient_id, "P3");
        // D1: no patient; its first row's patient is unknown, the second is a repeat.
        let d1 = prepare_for_acts(&inputs, &["D1"]).unwrap();
        assert!(d1.patients.is_empty());
        assert_eq!(
            reasons(&d1, "D1"),
            [
                (file("1.csv"), 6, "unknown_patient".to_string()),
                (file("1.csv"), 7, "duplicate_act_id".to_string())
            ]
        );
        // P2, the beneficiary given twice: the first row.
        let h1 = prepare_for_acts(&inputs, &["H1"]).unwrap();
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
        let one = prepare_for_acts(&inputs, &["L1"]).unwrap();
        assert_eq!(seen(&one, "L1"), seen(&whole, "L1"));
        assert_eq!(one.opening["P1"][0].year, 2025);
        // Counters later than every act are refused, as by a run.
        std::fs::write(
            inputs.counters.as_ref().unwrap(),
            "patient_id,year,pf_used,franchise_used\nP1,2026,4.00,2.00\n",
        )
        .unwrap();
        let whole = super::super::prepare(&inputs).unwrap_err().to_string();
        let one = prepare_for_acts(&inputs, &["L1"]).unwrap_err().to_string();
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
        let one = prepare_for_acts(&inputs, &["A1"]).unwrap_err().to_string();
        assert_eq!(one, whole);
        assert!(one.contains("2.csv"), "{one}");
        let bad: PathBuf = dir.path().join("bad_beneficiaries.csv");
        std::fs::write(&bad, "patient_id\nP1\n").unwrap();
        inputs.beneficiaries = bad;
        let whole = super::super::prepare(&inputs).unwrap_err().to_string();
        let one = prepare_for_acts(&inputs, &["A1"]).unwrap_err().to_string();
        assert_eq!(one, whole);
        assert!(one.contains("bad_beneficiaries.csv"), "{one}");
    }
}
