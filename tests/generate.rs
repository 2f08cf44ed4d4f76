//! `rac generate`: determinism, counts, readability of both formats, and realism of the data.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Date32Type};
use chrono::{Datelike, NaiveDate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rac::generate::{Dataset, GenFormat, GenerateOptions, generate, generate_in_memory};
use rac::model::{Category, InsuranceNature, Pathway, Regime, RightKind, Setting};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const ACT_COLUMNS: [&str; 18] = [
    "act_id",
    "patient_id",
    "care_date",
    "end_date",
    "category",
    "tariff",
    "quantity",
    "billed",
    "coefficient",
    "code",
    "practitioner_id",
    "specialty",
    "stay_id",
    "insurance_nature",
    "exo_code",
    "ald_related",
    "pathway",
    "setting",
];
const BENEFICIARY_COLUMNS: [&str; 3] = ["patient_id", "birth_date", "regime"];
const RIGHT_COLUMNS: [&str; 5] = ["patient_id", "right", "start_date", "end_date", "reference"];

fn opts(acts: u64, patients: u64, seed: u64, format: GenFormat) -> GenerateOptions {
    GenerateOptions {
        acts,
        patients,
        seed,
        format,
        start: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        months: 24,
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    builder
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn parquet_rows(path: &Path) -> usize {
    read_parquet(path).iter().map(RecordBatch::num_rows).sum()
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    for format in [GenFormat::Parquet, GenFormat::Csv] {
        // More than one batch, so that batches really are built in parallel.
        let o = opts(300_000, 20_000, 7, format);
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = generate(&o, a.path()).unwrap();
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let sb = one_thread.install(|| generate(&o, b.path())).unwrap();
        assert_eq!(sa.rights, sb.rights);
        for (fa, fb) in sa.files.iter().zip(&sb.files) {
            assert_eq!(fa.file_name(), fb.file_name());
            assert!(read(fa) == read(fb), "{} differs", fa.display());
        }
        // No temporary file left behind.
        let names: BTreeSet<String> = std::fs::read_dir(a.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let ext = format.extension();
        let expected: BTreeSet<String> = ["acts", "beneficiaries", "rights"]
            .iter()
            .map(|n| format!("{n}.{ext}"))
            .collect();
        assert_eq!(names, expected);
    }
}

#[test]
fn different_seed_different_data() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = generate(&opts(5_000, 500, 1, GenFormat::Csv), a.path()).unwrap();
    let sb = generate(&opts(5_000, 500, 2, GenFormat::Csv), b.path()).unwrap();
    assert_ne!(read(&sa.files[0]), read(&sb.files[0]));
    assert_ne!(read(&sa.files[1]), read(&sb.files[1]));
}

#[test]
fn counts_match_the_options() {
    for (acts, patients) in [
        (0, 0),
        (0, 10),
        (1, 1),
        (17, 3),
        (10_000, 20_000),
        (300_000, 1_000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let stats = generate(&opts(acts, patients, 3, GenFormat::Parquet), dir.path()).unwrap();
        assert_eq!((stats.acts, stats.patients), (acts, patients));
        assert_eq!(
            parquet_rows(&stats.files[0]) as u64,
            acts,
            "acts of {acts}/{patients}"
        );
        assert_eq!(parquet_rows(&stats.files[1]) as u64, patients);
        assert_eq!(parquet_rows(&stats.files[2]) as u64, stats.rights);
    }
    let err = generate(
        &opts(10, 0, 1, GenFormat::Csv),
        tempfile::tempdir().unwrap().path(),
    );
    assert!(err.is_err(), "acts without patients must be refused");
}

#[test]
fn invalid_options_are_refused() {
    let no_months = GenerateOptions {
        months: 0,
        ..opts(10, 10, 1, GenFormat::Csv)
    };
    assert!(generate_in_memory(&no_months).is_err());
    let dir = tempfile::tempdir().unwrap();
    assert!(generate(&no_months, dir.path()).is_err());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn dates_follow_the_rules_calendar() {
    // A window across 2022-01-01 (first FPU) and 2023-12-23 / 2024-12-22 (G tariffs).
    let o = GenerateOptions {
        start: NaiveDate::from_ymd_opt(2021, 7, 1).unwrap(),
        months: 48,
        ..opts(50_000, 5_000, 8, GenFormat::Csv)
    };
    let data = generate_in_memory(&o).unwrap();
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let emergencies: Vec<_> = data
        .acts
        .iter()
        .filter(|a| a.category == Category::EmergencyVisit)
        .collect();
    assert!(!emergencies.is_empty());
    assert!(emergencies.iter().all(|a| a.care_date >= date(2022, 1, 1)));
    let mut g_tariffs = BTreeSet::new();
    for a in data.acts.iter().filter(|a| a.code.as_deref() == Some("G")) {
        let expected = if a.care_date < date(2023, 12, 23) {
            dec!(25.00)
        } else if a.care_date < date(2024, 12, 22) {
            dec!(26.50)
        } else {
            dec!(30.00)
        };
        assert_eq!(a.tariff, expected, "{a:?}");
        g_tariffs.insert(a.tariff);
    }
    assert_eq!(g_tariffs.len(), 3);
    assert!(data.acts.iter().all(|a| a.care_date < date(2025, 7, 1)));
}

#[test]
fn parquet_columns_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let stats = generate(&opts(20_000, 2_000, 11, GenFormat::Parquet), dir.path()).unwrap();
    let batches = read_parquet(&stats.files[0]);
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ACT_COLUMNS);
    for field in schema.fields() {
        let expected = match field.name().as_str() {
            "care_date" | "end_date" => DataType::Date32,
            "tariff" | "billed" | "coefficient" => DataType::Decimal128(18, 2),
            "quantity" => DataType::Int64,
            "ald_related" => DataType::Boolean,
            _ => DataType::Utf8,
        };
        assert_eq!(field.data_type(), &expected, "{}", field.name());
    }
    // Values round-trip to what the in-memory generator gives.
    let data = generate_in_memory(&opts(20_000, 2_000, 11, GenFormat::Parquet)).unwrap();
    let mut row = 0;
    for batch in &batches {
        let col = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
        let ids = col("act_id");
        let ids = ids.as_string::<i32>();
        let tariffs = col("tariff");
        let tariffs = tariffs.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let billed = col("billed");
        let billed = billed.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let dates = col("care_date");
        let dates = dates.as_any().downcast_ref::<Date32Array>().unwrap();
        let quantity = col("quantity");
        let quantity = quantity.as_any().downcast_ref::<Int64Array>().unwrap();
        let ald = col("ald_related");
        let ald = ald.as_any().downcast_ref::<BooleanArray>().unwrap();
        let stays = col("stay_id");
        let stays = stays.as_string::<i32>();
        for i in 0..batch.num_rows() {
            let act = &data.acts[row];
            assert_eq!(ids.value(i), act.act_id);
            assert_eq!(Decimal::new(tariffs.value(i) as i64, 2), act.tariff);
            assert_eq!(
                billed
                    .is_valid(i)
                    .then(|| Decimal::new(billed.value(i) as i64, 2)),
                act.billed
            );
            assert_eq!(dates.value_as_date(i).unwrap(), act.care_date);
            assert_eq!(quantity.value(i), i64::from(act.quantity));
            assert_eq!(ald.value(i), act.ald_related);
            assert_eq!(
                stays.is_valid(i).then(|| stays.value(i)),
                act.stay_id.as_deref()
            );
            row += 1;
        }
    }
    assert_eq!(row, data.acts.len());

    let bens = read_parquet(&stats.files[1]);
    let schema = bens[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, BENEFICIARY_COLUMNS);
    assert_eq!(schema.field(1).data_type(), &DataType::Date32);
    let births = bens[0].column(1).as_primitive::<Date32Type>();
    assert_eq!(
        births.value_as_date(0).unwrap(),
        data.beneficiaries[0].birth_date
    );

    let rights = read_parquet(&stats.files[2]);
    let schema = rights[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, RIGHT_COLUMNS);
    assert_eq!(schema.field(2).data_type(), &DataType::Date32);
    assert_eq!(schema.field(3).data_type(), &DataType::Date32);
}

fn parse_date(s: &str) -> NaiveDate {
    assert_eq!(s.len(), 10, "ISO date expected: {s:?}");
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn parse_amount(s: &str) -> Decimal {
    let (_, cents) = s
        .split_once('.')
        .unwrap_or_else(|| panic!("2 decimals: {s:?}"));
    assert_eq!(cents.len(), 2, "2 decimals: {s:?}");
    s.parse().unwrap()
}

fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[test]
fn csv_is_readable_and_equals_the_model() {
    let o = opts(20_000, 2_000, 5, GenFormat::Csv);
    let dir = tempfile::tempdir().unwrap();
    let stats = generate(&o, dir.path()).unwrap();
    let data = generate_in_memory(&o).unwrap();

    let mut reader = csv::Reader::from_path(&stats.files[0]).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ACT_COLUMNS
    );
    let mut n = 0;
    for (record, act) in reader.records().zip(&data.acts) {
        let r = record.unwrap();
        assert_eq!(&r[0], act.act_id);
        assert_eq!(&r[1], act.patient_id);
        assert_eq!(parse_date(&r[2]), act.care_date);
        assert_eq!(opt(&r[3]).map(parse_date), act.end_date);
        assert_eq!(Category::parse(&r[4]), Some(act.category));
        assert_eq!(parse_amount(&r[5]), act.tariff);
        assert_eq!(r[6].parse::<u32>().unwrap(), act.quantity);
        assert_eq!(opt(&r[7]).map(parse_amount), act.billed);
        assert_eq!(opt(&r[8]).map(parse_amount), act.coefficient);
        assert_eq!(opt(&r[9]), act.code.as_deref());
        assert_eq!(opt(&r[10]), act.practitioner_id.as_deref());
        assert_eq!(opt(&r[11]), act.specialty.as_deref());
        assert_eq!(opt(&r[12]), act.stay_id.as_deref());
        assert_eq!(InsuranceNature::parse(&r[13]), Some(act.insurance_nature));
        assert_eq!(opt(&r[14]), act.exo_code.as_deref());
        assert!(["true", "false"].contains(&&r[15]));
        assert_eq!(&r[15] == "true", act.ald_related);
        assert_eq!(Pathway::parse(&r[16]), Some(act.pathway));
        assert_eq!(Setting::parse(&r[17]), Some(act.setting));
        n += 1;
    }
    assert_eq!(n, 20_000);

    let mut reader = csv::Reader::from_path(&stats.files[1]).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        BENEFICIARY_COLUMNS
    );
    let rows: Vec<_> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2_000);
    for (r, b) in rows.iter().zip(&data.beneficiaries) {
        assert_eq!(&r[0], b.patient_id);
        assert_eq!(parse_date(&r[1]), b.birth_date);
        assert_eq!(Regime::parse(&r[2]), Some(b.regime));
    }

    let mut reader = csv::Reader::from_path(&stats.files[2]).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        RIGHT_COLUMNS
    );
    let rows: Vec<_> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, stats.rights);
    assert_eq!(rows.len(), data.rights.len());
    for (r, p) in rows.iter().zip(&data.rights) {
        assert_eq!(&r[0], p.patient_id);
        assert_eq!(RightKind::parse(&r[1]), Some(p.right));
        assert_eq!(parse_date(&r[2]), p.start_date);
        assert_eq!(opt(&r[3]).map(parse_date), p.end_date);
        assert_eq!(opt(&r[4]), p.reference.as_deref());
    }
}

fn dataset(acts: u64, patients: u64, seed: u64) -> Dataset {
    generate_in_memory(&opts(acts, patients, seed, GenFormat::Parquet)).unwrap()
}

#[test]
fn every_category_and_code_value_appears() {
    let data = dataset(20_000, 2_000, 1);
    let seen: BTreeSet<Category> = data.acts.iter().map(|a| a.category).collect();
    for c in Category::ALL {
        assert!(seen.contains(c), "no {c} in 20k acts");
    }
    let natures: BTreeSet<_> = data.acts.iter().map(|a| a.insurance_nature).collect();
    assert_eq!(natures.len(), InsuranceNature::ALL.len(), "{natures:?}");
    let pathways: BTreeSet<_> = data.acts.iter().map(|a| a.pathway).collect();
    assert_eq!(pathways.len(), Pathway::ALL.len(), "{pathways:?}");
    let exo: BTreeSet<_> = data
        .acts
        .iter()
        .filter_map(|a| a.exo_code.as_deref())
        .collect();
    for code in ["0", "3", "4", "5", "7"] {
        assert!(exo.contains(code), "exo_code {code} missing: {exo:?}");
    }
    let regimes: BTreeSet<_> = data.beneficiaries.iter().map(|b| b.regime).collect();
    assert_eq!(regimes.len(), 2);
    let rights: BTreeSet<_> = dataset(20_000, 20_000, 1)
        .rights
        .iter()
        .map(|r| r.right)
        .collect();
    assert_eq!(rights.len(), RightKind::ALL.len(), "{rights:?}");
}

#[test]
fn realistic_mix() {
    let data = dataset(200_000, 20_000, 3);
    let n = data.acts.len() as f64;
    let share =
        |f: &dyn Fn(&rac::model::Act) -> bool| data.acts.iter().filter(|a| f(a)).count() as f64 / n;
    let drugs = share(&|a| {
        matches!(
            a.category,
            Category::Drug65 | Category::Drug30 | Category::Drug15 | Category::Drug100
        )
    });
    let drug65 = share(&|a| a.category == Category::Drug65);
    let consultations = share(&|a| a.category == Category::Consultation);
    let stays = share(&|a| a.category == Category::HospitalStay);
    assert!((0.25..0.55).contains(&drugs), "drugs {drugs}");
    assert!(
        drug65 > share(&|a| a.category == Category::Drug30),
        "drug_65 first"
    );
    assert!(
        (0.10..0.30).contains(&consultations),
        "consultations {consultations}"
    );
    assert!(stays > 0.0 && stays < 0.02, "stays {stays}");
    let out = share(&|a| a.pathway == Pathway::OutOfPathway);
    assert!(out > 0.002 && out < 0.05, "out of pathway {out}");
    let maladie = share(&|a| a.insurance_nature == InsuranceNature::Sickness);
    assert!(maladie > 0.9, "maladie {maladie}");

    // GP consultations at the G tariff of their date.
    for a in data.acts.iter().filter(|a| a.code.as_deref() == Some("G")) {
        let g = if a.care_date < NaiveDate::from_ymd_opt(2024, 12, 22).unwrap() {
            dec!(26.50)
        } else {
            dec!(30.00)
        };
        assert_eq!(a.tariff, g);
    }
    // Overbilling, billed below base, heavy acts (24 € fee) by amount and by coefficient.
    assert!(data.acts.iter().any(|a| a.category == Category::Consultation
        && a.billed.is_some_and(|b| b > a.tariff)));
    assert!(data.acts.iter().any(|a| {
        a.billed
            .is_some_and(|b| b < a.tariff * Decimal::from(a.quantity))
    }));
    assert!(
        data.acts
            .iter()
            .any(|a| a.category == Category::MedicalAct && a.tariff >= dec!(120))
    );
    assert!(data.acts.iter().any(|a| a.category == Category::MedicalAct
        && a.tariff < dec!(120)
        && a.coefficient.is_some_and(|c| c >= dec!(60))));
    // Same practitioner, same day, several lines.
    let mut groups: BTreeMap<(&str, &str, NaiveDate), u32> = BTreeMap::new();
    for a in data
        .acts
        .iter()
        .filter(|a| a.category == Category::Consultation || a.category == Category::MedicalAct)
    {
        if let Some(p) = &a.practitioner_id {
            *groups.entry((&a.patient_id, p, a.care_date)).or_default() += 1;
        }
    }
    assert!(groups.values().any(|&c| c >= 2));
    // Long stays: a hospital_stay line starting on the 31st day of its stay.
    let mut first: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for a in data
        .acts
        .iter()
        .filter(|a| a.category == Category::HospitalStay)
    {
        let e = first
            .entry(a.stay_id.as_deref().unwrap())
            .or_insert(a.care_date);
        *e = (*e).min(a.care_date);
    }
    assert!(
        data.acts
            .iter()
            .any(|a| a.category == Category::HospitalStay
                && (a.care_date - first[a.stay_id.as_deref().unwrap()]).num_days() >= 30)
    );
    // Skewed activity: the busiest 10 % of patients with acts have a good share of them.
    let mut per_patient: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &data.acts {
        *per_patient.entry(&a.patient_id).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_patient.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = counts[..counts.len() / 10].iter().sum();
    assert!(top as f64 / n > 0.25, "top decile {}", top as f64 / n);
    // Not sorted like a real extract.
    assert!(
        data.acts
            .windows(2)
            .any(|w| w[0].patient_id > w[1].patient_id)
    );
    assert!(
        data.acts
            .windows(2)
            .any(|w| w[0].care_date > w[1].care_date)
    );
}

#[test]
fn rights_prevalence() {
    let data = dataset(100_000, 30_000, 9);
    let p = data.beneficiaries.len() as f64;
    let with = |kind: RightKind| {
        data.rights
            .iter()
            .filter(|r| r.right == kind)
            .map(|r| r.patient_id.as_str())
            .collect::<BTreeSet<_>>()
            .len() as f64
            / p
    };
    let check = |kind: RightKind, lo: f64, hi: f64| {
        let v = with(kind);
        assert!((lo..hi).contains(&v), "{kind}: {v}");
    };
    check(RightKind::Ald, 0.13, 0.20);
    check(RightKind::Css, 0.07, 0.13);
    check(RightKind::Ame, 0.005, 0.02);
    check(RightKind::Invalidity, 0.01, 0.03);
    check(RightKind::MilitaryPension, 0.0005, 0.006);
    check(RightKind::AtRent66, 0.0005, 0.006);
    check(RightKind::Maternity, 0.01, 0.06);
    check(RightKind::Newborn, 0.005, 0.04);
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let minors = data
        .beneficiaries
        .iter()
        .filter(|b| start.years_since(b.birth_date).is_none_or(|y| y < 18))
        .count() as f64
        / p;
    assert!((0.12..0.20).contains(&minors), "minors {minors}");
    let am = data
        .beneficiaries
        .iter()
        .filter(|b| b.regime == Regime::AlsaceMoselle)
        .count() as f64
        / p;
    assert!((0.02..0.04).contains(&am), "alsace-moselle {am}");
    let oldest = data
        .beneficiaries
        .iter()
        .map(|b| b.birth_date)
        .min()
        .unwrap();
    assert!(start.years_since(oldest).unwrap() <= 96);
}

#[test]
fn valid_rows() {
    let o = opts(100_000, 10_000, 4, GenFormat::Parquet);
    let data = generate_in_memory(&o).unwrap();
    let window_end = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let births: BTreeMap<&str, NaiveDate> = data
        .beneficiaries
        .iter()
        .map(|b| (b.patient_id.as_str(), b.birth_date))
        .collect();
    assert_eq!(births.len(), data.beneficiaries.len(), "unique patients");
    let mut rights: BTreeMap<&str, Vec<&rac::model::RightPeriod>> = BTreeMap::new();
    for r in &data.rights {
        assert!(births.contains_key(r.patient_id.as_str()));
        assert!(r.end_date.is_none_or(|e| e >= r.start_date), "{r:?}");
        rights.entry(&r.patient_id).or_default().push(r);
    }
    let active = |patient: &str, kinds: &[RightKind], d: NaiveDate| {
        rights.get(patient).is_some_and(|rs| {
            rs.iter()
                .any(|r| kinds.contains(&r.right) && r.is_active(d))
        })
    };
    let mut ids = BTreeSet::new();
    let mut stays: BTreeMap<&str, (&str, bool)> = BTreeMap::new();
    let fpu_start = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
    for a in &data.acts {
        assert!(ids.insert(a.act_id.as_str()), "duplicate {}", a.act_id);
        let birth = births[a.patient_id.as_str()];
        assert!(
            a.care_date >= birth && a.care_date >= o.start && a.care_date < window_end,
            "{a:?}"
        );
        assert!(
            a.end_date
                .is_none_or(|e| e >= a.care_date && e < window_end),
            "{a:?}"
        );
        assert!(a.quantity >= 1 && a.tariff > Decimal::ZERO, "{a:?}");
        assert!(a.billed.is_none_or(|b| b > Decimal::ZERO), "{a:?}");
        assert_eq!(a.tariff.scale(), 2);
        if a.category == Category::EmergencyVisit {
            assert!(a.care_date >= fpu_start);
        }
        if a.ald_related || a.exo_code.as_deref() == Some("4") {
            assert!(a.ald_related && a.exo_code.as_deref() == Some("4"), "{a:?}");
            assert!(
                active(&a.patient_id, &[RightKind::Ald], a.care_date),
                "ALD act without ALD: {a:?}"
            );
        }
        if a.exo_code.as_deref() == Some("5") {
            let pensions = [
                RightKind::Invalidity,
                RightKind::MilitaryPension,
                RightKind::AtRent66,
            ];
            assert!(active(&a.patient_id, &pensions, a.care_date), "{a:?}");
        }
        match a.category {
            Category::HospitalStay | Category::DailyFee | Category::DailyFeePsy => {
                assert_eq!(a.setting, Setting::Inpatient);
                let end = a.end_date.expect("stay lines have an end date");
                if a.category != Category::HospitalStay {
                    assert_eq!(
                        i64::from(a.quantity),
                        (end - a.care_date).num_days() + 1,
                        "{a:?}"
                    );
                }
            }
            _ => assert!(a.end_date.is_none()),
        }
        if let Some(stay) = &a.stay_id {
            assert_eq!(a.setting, Setting::Inpatient);
            let e = stays.entry(stay).or_insert((&a.patient_id, false));
            assert_eq!(e.0, a.patient_id, "a stay belongs to one patient");
            e.1 |= a.category == Category::HospitalStay;
        } else {
            assert_eq!(a.setting, Setting::Ambulatory);
            assert!(
                a.practitioner_id.is_some(),
                "ambulatory lines have a practitioner: {a:?}"
            );
        }
    }
    assert!(!stays.is_empty());
    assert!(
        stays.values().all(|&(_, has_stay_line)| has_stay_line),
        "every stay has its hospital_stay line"
    );
    // Newborns have their birth stay.
    let newborns: BTreeSet<&str> = data
        .rights
        .iter()
        .filter(|r| r.right == RightKind::Newborn)
        .map(|r| r.patient_id.as_str())
        .collect();
    let born_in_hospital = data
        .acts
        .iter()
        .filter(|a| {
            a.category == Category::HospitalStay && a.care_date == births[a.patient_id.as_str()]
        })
        .count();
    assert!(!newborns.is_empty() && born_in_hospital > 0);
    // Care dates cover the whole window.
    let years: BTreeSet<i32> = data.acts.iter().map(|a| a.care_date.year()).collect();
    assert_eq!(years, BTreeSet::from([2024, 2025]));
}
