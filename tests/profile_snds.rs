//! The SNDS profile on hand-made DCIR-shaped extracts (`fixtures/snds/`, see its README): each
//! mapping, filter, regularisation and referential, then rac's engine on the mapped acts
//! against what the caisse recorded.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use rac::engine::category::FranchiseKind;
use rac::engine::{PatientInput, compute_patient};
use rac::model::{Act, Category, InsuranceNature, Pathway, Regime, RightKind, Setting, Situation};
use rac::profile::snds::{DeductionKind, SndsExtract, read_snds_acts};
use rac::rules::RuleBook;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/snds")
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A copy of the fixtures, its prestations file, and that file's text (to be changed).
fn fixtures_copy() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let prestations = tmp.path().join("ER_PRS_F.csv");
    let text = std::fs::read_to_string(&prestations).unwrap();
    (tmp, prestations, text)
}

fn extract() -> SndsExtract {
    read_snds_acts(&fixtures()).expect("the fixtures are readable")
}

/// The act of a claim (`DCT_ORD_NUM`) and line (`PRS_ORD_NUM`).
fn act(x: &SndsExtract, claim: u32, line: u32) -> &Act {
    let id = format!("2025-04-01:2025-03-28:1:751:1:01C751001:{claim}:{line}:0");
    x.acts
        .iter()
        .find(|a| a.act_id == id)
        .unwrap_or_else(|| panic!("no act {id}"))
}

#[test]
fn prestations_map_onto_canonical_acts() {
    let x = extract();
    assert_eq!(x.acts.len(), 11);
    // A G with its coordination majoration (PRS_ACT_NBR 0) folded in: one act, 30 + 5.
    let g = act(&x, 1001, 1);
    assert_eq!(g.patient_id, "AAA:1");
    assert_eq!(g.care_date, d("2025-01-15"));
    assert_eq!(g.category, Category::Consultation);
    assert_eq!((g.tariff, g.quantity), (dec!(35), 1));
    assert_eq!(g.billed, Some(dec!(35)));
    assert_eq!(g.code.as_deref(), Some("1110"));
    assert_eq!(g.practitioner_id.as_deref(), Some("PS1"));
    // Net of the recorded PF line: 21 + 3.50 − 2.
    assert_eq!(g.recorded_amo, Some(dec!(22.50)));
    // Three boxes of a 65 % drug with their dispensing fee folded in (per box 4.20 + 1.02).
    let drug = act(&x, 1002, 1);
    assert_eq!(drug.category, Category::Drug65);
    assert_eq!((drug.tariff, drug.quantity), (dec!(5.22), 3));
    assert_eq!(drug.recorded_amo, Some(dec!(7.17)));
    // Nurse, transport, out of the pathway, AT/MP.
    assert_eq!(act(&x, 1003, 1).category, Category::Paramedical);
    assert_eq!(act(&x, 1003, 1).coefficient, Some(dec!(2)));
    assert_eq!(act(&x, 1006, 1).category, Category::Transport);
    assert_eq!(act(&x, 1007, 1).pathway, Pathway::OutOfPathway);
    assert_eq!(act(&x, 1008, 1).insurance_nature, InsuranceNature::AtMp);
    // EXO_MTF 42: ALD, in the protocol.
    let bio = act(&x, 2001, 1);
    assert_eq!(bio.category, Category::Biology);
    assert_eq!(
        (bio.exo_code.as_deref(), bio.ald_related),
        (Some("4"), true)
    );
    // RGO_ASU_NAT 30, PRS_PDS_QCP 4.
    let echo = act(&x, 4001, 1);
    assert_eq!(echo.category, Category::Imaging);
    assert_eq!(echo.insurance_nature, InsuranceNature::Maternity);
    assert_eq!(echo.pathway, Pathway::DirectAccess);
    // A stay: GHS and forfait journalier, inpatient, with an end date.
    let ghs = act(&x, 5001, 1);
    assert_eq!(ghs.category, Category::HospitalStay);
    assert_eq!(ghs.stay_id.as_deref(), Some("EEE:1:2025-01-05"));
    assert_eq!(ghs.setting, Setting::Inpatient);
    assert_eq!(ghs.end_date, Some(d("2025-01-08")));
    let fj = act(&x, 5001, 2);
    assert_eq!(fj.category, Category::DailyFee);
    assert_eq!((fj.tariff, fj.quantity), (dec!(20), 3));
    assert_eq!(x.merged, 2);
}

#[test]
fn filters_regularisations_rejects_and_unmapped_codes() {
    let x = extract();
    let filtered: BTreeMap<&str, u64> = x.filtered.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        filtered,
        BTreeMap::from([
            ("CPL_MAJ_TOP=2", 1),
            ("DPN_QLF=71", 1),
            ("excluded:cash_benefit", 1),
        ])
    );
    // Claim 1005 cancels claim 1004: the G and its PF are both netted away.
    assert_eq!(x.regularised, 2);
    assert!(
        x.acts
            .iter()
            .all(|a| !a.act_id.contains(":1004:") && !a.act_id.contains(":1005:"))
    );
    let cancelled = d("2025-02-10");
    assert!(x.deductions.iter().all(|r| r.care_date != cancelled));
    let rejects: Vec<(&str, &str)> = x
        .rejects
        .iter()
        .map(|r| (r.column.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        rejects,
        vec![
            ("PRS_NAT_REF", "unmapped_code"),
            ("EXE_SOI_DTD", "missing_value"),
            ("BSE_REM_BSE", "bad_decimal"),
            ("PRS_ACT_QTE", "regularisation_without_original"),
            ("IMB_ALD_DTF", "end_before_start"),
        ]
    );
    assert_eq!(x.rejects[0].row, 31);
    assert!(x.rejects[0].file.ends_with("ER_PRS_F.csv"));
    assert_eq!(x.unmapped.count("PRS_NAT_REF", "8888"), 1);
    assert_eq!(x.unmapped.len(), 1);
}

#[test]
fn recorded_pf_and_franchises_are_set_aside_and_attached() {
    let x = extract();
    let kinds: Vec<DeductionKind> = x.deductions.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        vec![
            DeductionKind::Pf,
            DeductionKind::Franchise(FranchiseKind::DrugBox),
            DeductionKind::Franchise(FranchiseKind::Paramedical),
            DeductionKind::Franchise(FranchiseKind::Transport),
            DeductionKind::OutOfPathwayMajoration,
            DeductionKind::Pf,
            DeductionKind::Franchise(FranchiseKind::Paramedical),
            DeductionKind::Pf,
            DeductionKind::Pal,
        ]
    );
    assert!(x.deductions.iter().all(|d| d.act_id.is_some()));
    assert_eq!(x.recorded_pf(&act(&x, 1001, 1).act_id), dec!(2));
    assert_eq!(x.recorded_franchise(&act(&x, 1002, 1).act_id), dec!(3));
    assert_eq!(x.recorded_franchise(&act(&x, 1006, 1).act_id), dec!(4));
    let pal = x.deductions.last().unwrap();
    assert_eq!(
        (pal.amount, pal.act_id.as_deref()),
        (dec!(24), Some(act(&x, 5001, 1).act_id.as_str()))
    );
}

#[test]
fn beneficiaries_and_rights_from_the_referentials() {
    let x = extract();
    let born: BTreeMap<&str, (NaiveDate, Regime)> = x
        .beneficiaries
        .iter()
        .map(|b| (b.patient_id.as_str(), (b.birth_date, b.regime)))
        .collect();
    // Year and month only: the first of the month; an unknown month (99) is January.
    assert_eq!(born["AAA:1"], (d("1980-05-01"), Regime::General));
    // MTM_NAT 2 on the prestations: régime local.
    assert_eq!(born["BBB:1"], (d("1950-11-01"), Regime::AlsaceMoselle));
    assert_eq!(born["DDD:2"].0, d("2000-07-01"));
    assert_eq!(born["EEE:1"].0, d("1975-01-01"));
    // Not in IR_BEN_R: BEN_NAI_ANN of the prestations.
    assert_eq!(born["GGG:1"].0, d("1990-01-01"));
    assert_eq!(x.beneficiaries.len(), 7);
    assert_eq!(x.duplicate_beneficiaries, 1);

    assert!(x.rights_known);
    let rights: Vec<(&str, RightKind, NaiveDate, Option<NaiveDate>)> = x
        .rights
        .iter()
        .map(|r| (r.patient_id.as_str(), r.right, r.start_date, r.end_date))
        .collect();
    assert_eq!(
        rights,
        vec![
            ("BBB:1", RightKind::Ald, d("2020-01-01"), None),
            (
                "CCC:1",
                RightKind::Css,
                d("2024-06-01"),
                Some(d("2025-05-31"))
            ),
            // 6th month of a pregnancy dated 2024-06-10, to 12 days after March 2025.
            (
                "DDD:2",
                RightKind::Maternity,
                d("2024-11-10"),
                Some(d("2025-04-12"))
            ),
            // 1600-01-01 is the SNDS null date: open.
            ("FFF:1", RightKind::Invalidity, d("2015-03-01"), None),
            (
                "FFF:1",
                RightKind::MilitaryPension,
                d("2019-01-01"),
                Some(d("2029-12-31"))
            ),
        ]
    );
    assert_eq!(x.rights[0].reference.as_deref(), Some("8 E11"));
    assert_eq!(x.skipped_rights.len(), 2);
    assert!(
        x.skipped_rights
            .keys()
            .any(|k| k.starts_with("IMB_ETM_NAT=11"))
    );
    assert!(
        x.skipped_rights
            .keys()
            .any(|k| k.starts_with("BEN_CTA_TYP=91"))
    );
}

/// rac's engine on the mapped acts reproduces what the caisse recorded: the net amount, the
/// PF and the franchises, line by line; the C2S patient differs by exactly the C2S part, which
/// DCIR keeps out of the legal amount (ER_ARO_F).
#[test]
fn the_engine_reproduces_the_recorded_amounts() {
    let x = extract();
    let book = RuleBook::builtin();
    let mut checked = 0;
    for b in &x.beneficiaries {
        let acts: Vec<Act> = x
            .acts
            .iter()
            .filter(|a| a.patient_id == b.patient_id)
            .cloned()
            .collect();
        let rights: Vec<_> = x
            .rights
            .iter()
            .filter(|r| r.patient_id == b.patient_id)
            .cloned()
            .collect();
        let result = compute_patient(
            &book,
            &PatientInput {
                beneficiary: b,
                acts: &acts,
                rights: &rights,
                rights_known: x.rights_known,
                opening: &[],
            },
        );
        assert!(result.rejected.is_empty(), "{:?}", result.rejected);
        for o in &result.outcomes {
            checked += 1;
            let recorded = o.recorded_amo.unwrap();
            if o.patient_id == "CCC:1" {
                assert_eq!(o.situation, Situation::Css);
                assert_eq!(o.amo_paid, dec!(30));
                assert_eq!(o.amo_paid - recorded, dec!(9), "the C2S part of a G at 30");
                continue;
            }
            assert_eq!(o.amo_paid, recorded, "{}: {:?}", o.act_id, o);
            assert_eq!(o.pf, x.recorded_pf(&o.act_id), "{}", o.act_id);
            assert_eq!(o.franchise, x.recorded_franchise(&o.act_id), "{}", o.act_id);
        }
        let situations: Vec<Situation> = result.outcomes.iter().map(|o| o.situation).collect();
        match b.patient_id.as_str() {
            "BBB:1" => assert_eq!(situations, vec![Situation::Ald]),
            "DDD:2" => assert_eq!(situations, vec![Situation::Maternity]),
            "EEE:1" => assert_eq!(result.outcomes[0].pal, dec!(24)),
            _ => {}
        }
    }
    assert_eq!(checked, 11);
}

#[test]
fn a_comma_separated_file_with_sas_dates() {
    let file = fixtures().join("comma/ER_PRS_F_202501.csv");
    let x = read_snds_acts(&file).unwrap();
    assert_eq!(x.acts.len(), 1);
    let a = &x.acts[0];
    assert_eq!(a.patient_id, "HHH:1");
    assert_eq!(a.care_date, d("2025-01-15"));
    assert_eq!(a.recorded_amo, Some(dec!(19)));
    assert_eq!(x.deductions.len(), 1);
    assert_eq!(x.deductions[0].act_id.as_deref(), Some(a.act_id.as_str()));
    // No IR_BEN_R: born on 1 January of BEN_NAI_ANN; no IR_IMB_R: rights not known.
    assert_eq!(x.beneficiaries[0].birth_date, d("1985-01-01"));
    assert!(!x.rights_known);
}

#[test]
fn a_dcirs_extract() {
    let x = read_snds_acts(&fixtures().join("dcirs")).unwrap();
    assert_eq!(x.acts.len(), 1);
    let a = &x.acts[0];
    assert_eq!(a.act_id, "1234567");
    assert_eq!(a.patient_id, "IDT1");
    // Base and amount include the complements and majorations (CPM_*).
    assert_eq!(a.tariff, dec!(35));
    // ASS_PAF_MNT is the PF and franchises of the line.
    assert_eq!(a.recorded_amo, Some(dec!(22.50)));
    assert_eq!(x.deductions[0].kind, DeductionKind::PfAndFranchise);
    assert_eq!(x.filtered.get("DPN_QLF=71"), Some(&1));
    let total: Decimal = x.deductions.iter().map(|d| d.amount).sum();
    assert_eq!(total, dec!(2));
}

#[test]
fn a_folder_without_prestations_or_a_table_without_its_columns_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_snds_acts(dir.path()).unwrap_err().to_string();
    assert!(err.contains("ER_PRS_F"), "{err}");
    let file = dir.path().join("ER_PRS_F.csv");
    std::fs::write(&file, "BEN_NIR_PSA;PRS_NAT_REF\nA;1110\n").unwrap();
    let err = read_snds_acts(&file).unwrap_err().to_string();
    assert!(err.contains("EXE_SOI_DTD"), "{err}");
}

#[test]
fn an_amount_past_the_canonical_range_is_rejected_not_a_panic() {
    // Claim 1001's first line with its base, then its complementary base, at Decimal::MAX:
    // their sum overflowed.
    let (tmp, prestations, text) = fixtures_copy();
    let line = "AAA;1;1980;0;2025-01-15;;;1110;1;1;;30;21;0;0;";
    assert!(text.contains(line));
    let max = "79228162514264337593543950335";
    let huge = line.replace(";;30;21;0;0;", &format!(";;{max};21;{max};0;"));
    std::fs::write(&prestations, text.replacen(line, &huge, 1)).unwrap();
    let x = read_snds_acts(tmp.path()).unwrap();
    let reject = x
        .rejects
        .iter()
        .find(|r| r.row == 1)
        .expect("the line is rejected");
    assert_eq!(
        (
            reject.column.as_str(),
            reject.reason.as_str(),
            reject.value.as_str()
        ),
        ("BSE_REM_BSE", "out_of_range", max)
    );
    let first = "2025-04-01:2025-03-28:1:751:1:01C751001:1001:1:0";
    assert!(x.acts.iter().all(|a| a.act_id != first));
    assert!(extract().acts.iter().any(|a| a.act_id == first));
}

#[test]
fn a_quantity_past_the_canonical_range_is_rejected() {
    // The fixtures with claim 1001's first line (a G consultation) at 5 billion units.
    let (tmp, prestations, text) = fixtures_copy();
    let line = "AAA;1;1980;0;2025-01-15;;;1110;1;1;;30;21;";
    assert!(text.contains(line));
    let huge = line.replace(";1110;1;1;", ";1110;5000000000;1;");
    std::fs::write(&prestations, text.replacen(line, &huge, 1)).unwrap();
    let x = read_snds_acts(tmp.path()).unwrap();
    let reject = x
        .rejects
        .iter()
        .find(|r| r.reason == "out_of_range")
        .expect("an out_of_range reject");
    assert_eq!(
        (reject.column.as_str(), reject.value.as_str(), reject.row),
        ("PRS_ACT_QTE", "5000000000", 1)
    );
    let first = "2025-04-01:2025-03-28:1:751:1:01C751001:1001:1:0";
    assert!(x.acts.iter().all(|a| a.act_id != first));
    assert!(extract().acts.iter().any(|a| a.act_id == first));
}

#[test]
fn a_quote_never_closed_fails_the_table_naming_its_row_and_column() {
    // A stray quote at the start of claim 1001's first line's PRS_NAT_REF: every later line
    // of the table was read into that field, and lost.
    let (tmp, prestations, text) = fixtures_copy();
    let line = "AAA;1;1980;0;2025-01-15;;;1110;1;1;;30;21;";
    assert!(text.lines().nth(1).unwrap().starts_with(line));
    let stray = line.replace(";;;1110;", ";;;\"1110;");
    std::fs::write(&prestations, text.replacen(line, &stray, 1)).unwrap();
    let error = read_snds_acts(tmp.path()).unwrap_err().to_string();
    let expected = format!(
        "{}: row 1, column PRS_NAT_REF: a quote opens this field and is never closed",
        prestations.display()
    );
    assert!(error.starts_with(&expected), "{error}");
}

/// The referentials' rows rejected (an IR_IMB_R period ending before it starts) are other
/// rows, not acts: the run counted "16 acts read" for 15 prestation rows.
#[test]
fn rejected_referential_rows_are_told_from_the_acts() {
    let x = extract();
    let acts = x.rejects.len() - x.other_rejects as usize;
    assert_eq!((acts, x.other_rejects), (4, 1));
    assert!(
        x.rejects[..acts]
            .iter()
            .all(|r| r.file.ends_with("ER_PRS_F.csv"))
    );
    let other = &x.rejects[acts];
    assert!(other.file.ends_with("IR_IMB_R.csv"), "{other:?}");
    assert_eq!(other.reason, "end_before_start");
}
