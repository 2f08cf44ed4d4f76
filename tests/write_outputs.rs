//! The writers of SPEC §4 end to end: tables written to CSV and Parquet and read back, bytes
//! stable across runs and chunkings, and the atomic output folder of SPEC §1.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Int32Type, Int64Type};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use rac::io::write::{
    CHUNK_ROWS, Format, Row, Staging, TableWriter, WriteError, column_names, encode,
    sha256_and_size, sha256_file, write_manifest, write_rejects_csv, write_table,
};
use rac::model::{Category, Outcome, Reject, Situation, StaySums, YearCounter};
use rac::report::{Summary, patient_years};
use rayon::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A consultation at 30 €, 70 %, 2 € of PF: amo_paid 19.00, rac 11.00 (+ overbilling).
fn consultation(id: &str, patient: &str, day: NaiveDate, billed: Decimal) -> Outcome {
    Outcome {
        act_id: id.into(),
        patient_id: patient.into(),
        care_date: day,
        category: Category::Consultation,
        quantity: 1,
        base: dec!(30.00),
        billed,
        overbilling: billed - dec!(30.00),
        situation: Situation::Ordinary,
        rate: dec!(70),
        amo_gross: dec!(21.00),
        copayment: dec!(9.00),
        majoration: dec!(0),
        pal: dec!(0),
        pf: dec!(2.00),
        franchise: dec!(0),
        flat_fee: dec!(0),
        amo_paid: dec!(19.00),
        rac: billed - dec!(19.00),
        rules: vec!["pf.adult"].into(),
        flags: vec![],
        recorded_amo: None,
        carried: Default::default(),
    }
}

fn sample() -> Vec<Outcome> {
    let a1 = consultation("A1", "P1", date(2024, 1, 5), dec!(30.00));
    let mut a2 = consultation("A2", "P1", date(2024, 2, 29), dec!(47.5));
    a2.flags = vec!["overbilling_forbidden", "exo_without_right"];
    a2.recorded_amo = Some(dec!(20.00));
    // a line whose deductions exceed the gross amount: negative AMO amount, rac above billed
    let mut a3 = consultation("A3", "P2", date(2025, 12, 31), dec!(1.00));
    a3.category = Category::Drug65;
    a3.situation = Situation::Ald;
    a3.quantity = 2;
    a3.base = dec!(1.00);
    a3.overbilling = dec!(0);
    a3.rate = dec!(100);
    a3.amo_gross = dec!(1.00);
    a3.copayment = dec!(0);
    a3.pf = dec!(0);
    a3.franchise = dec!(2.00);
    a3.amo_paid = dec!(-1.00);
    a3.rac = dec!(2.00);
    a3.rules.clear();
    vec![a1, a2, a3]
}

fn read_parquet(path: &Path) -> (Vec<RecordBatch>, parquet::file::metadata::ParquetMetaData) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let metadata = builder.metadata().as_ref().clone();
    let batches = builder
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (batches, metadata)
}

fn money(batch: &RecordBatch, column: &str) -> Vec<Option<i128>> {
    let array = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Decimal128Type>();
    array.iter().collect()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    array.iter().map(|s| s.unwrap().to_string()).collect()
}

const ACTS_CSV: &str = "\
act_id,patient_id,care_date,category,quantity,base,billed,overbilling,situation,rate,amo_gross,\
copayment,majoration,pal,pf,franchise,flat_fee,amo_paid,rac,rules,flags,recorded_amo
A1,P1,2024-01-05,consultation,1,30.00,30.00,0.00,ordinary,70.00,21.00,9.00,0.00,0.00,2.00,0.00,\
0.00,19.00,11.00,pf.adult,,
A2,P1,2024-02-29,consultation,1,30.00,47.50,17.50,ordinary,70.00,21.00,9.00,0.00,0.00,2.00,\
0.00,0.00,19.00,28.50,pf.adult,overbilling_forbidden;exo_without_right,20.00
A3,P2,2025-12-31,drug_65,2,1.00,1.00,0.00,ald,100.00,1.00,0.00,0.00,0.00,0.00,2.00,0.00,-1.00,\
2.00,,,
";

#[test]
fn acts_csv_has_the_spec_columns_and_two_decimals() {
    let dir = tempfile::tempdir().unwrap();
    let outcomes = sample();
    let mut writer = TableWriter::<Outcome>::create(dir.path(), Format::Csv).unwrap();
    writer.write(&outcomes[..1]).unwrap();
    writer.write(&[]).unwrap();
    writer.write(&outcomes[1..]).unwrap();
    assert_eq!(writer.path(), dir.path().join("acts.csv"));
    assert_eq!(writer.finish().unwrap(), 3);
    let text = fs::read_to_string(dir.path().join("acts.csv")).unwrap();
    assert_eq!(text, ACTS_CSV);
    assert!(!text.contains('\r'));
}

#[test]
fn acts_parquet_reads_back_with_the_spec_types_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let outcomes = sample();
    assert_eq!(
        write_table(dir.path(), Format::Parquet, &outcomes).unwrap(),
        3
    );
    let (batches, metadata) = read_parquet(&dir.path().join("acts.parquet"));
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 3);

    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, column_names::<Outcome>());
    assert_eq!(names[0], "act_id");
    assert_eq!(names[21], "recorded_amo");
    let type_of = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(type_of("act_id"), DataType::Utf8);
    assert_eq!(type_of("care_date"), DataType::Date32);
    assert_eq!(type_of("quantity"), DataType::Int64);
    assert_eq!(type_of("billed"), DataType::Decimal128(18, 2));
    assert_eq!(type_of("rac"), DataType::Decimal128(18, 2));
    assert_eq!(type_of("rate"), DataType::Decimal128(7, 2));
    assert_eq!(type_of("recorded_amo"), DataType::Decimal128(18, 2));
    assert_eq!(type_of("rules"), DataType::Utf8);

    assert_eq!(strings(batch, "act_id"), ["A1", "A2", "A3"]);
    assert_eq!(
        strings(batch, "category"),
        ["consultation", "consultation", "drug_65"]
    );
    assert_eq!(strings(batch, "situation"), ["ordinary", "ordinary", "ald"]);
    assert_eq!(strings(batch, "rules"), ["pf.adult", "pf.adult", ""]);
    assert_eq!(
        strings(batch, "flags"),
        ["", "overbilling_forbidden;exo_without_right", ""]
    );
    let dates = batch
        .column_by_name("care_date")
        .unwrap()
        .as_primitive::<Date32Type>();
    let dates: Vec<NaiveDate> = (0..3).map(|i| dates.value_as_date(i).unwrap()).collect();
    assert_eq!(
        dates,
        [date(2024, 1, 5), date(2024, 2, 29), date(2025, 12, 31)]
    );
    let quantity = batch
        .column_by_name("quantity")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(quantity.values().to_vec(), [1, 1, 2]);
    assert_eq!(money(batch, "billed"), [Some(3000), Some(4750), Some(100)]);
    assert_eq!(money(batch, "overbilling"), [Some(0), Some(1750), Some(0)]);
    assert_eq!(money(batch, "rate"), [Some(7000), Some(7000), Some(10000)]);
    assert_eq!(
        money(batch, "amo_paid"),
        [Some(1900), Some(1900), Some(-100)]
    );
    assert_eq!(money(batch, "rac"), [Some(1100), Some(2850), Some(200)]);
    assert_eq!(money(batch, "recorded_amo"), [None, Some(2000), None]);
    // amo_paid + rac = billed, read back from the file
    let billed = money(batch, "billed");
    for (i, (paid, rac)) in money(batch, "amo_paid")
        .into_iter()
        .zip(money(batch, "rac"))
        .enumerate()
    {
        assert_eq!(paid.unwrap() + rac.unwrap(), billed[i].unwrap());
    }

    assert_eq!(metadata.num_row_groups(), 1);
    let column = metadata.row_group(0).column(0);
    assert!(matches!(column.compression(), Compression::SNAPPY));
    let created_by = metadata.file_metadata().created_by().unwrap_or_default();
    assert!(created_by.starts_with("parquet-rs"), "{created_by}");
}

#[test]
fn empty_tables_are_valid_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        write_table::<Outcome>(dir.path(), Format::Parquet, &[]).unwrap(),
        0
    );
    let (batches, metadata) = read_parquet(&dir.path().join("acts.parquet"));
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    assert_eq!(metadata.file_metadata().num_rows(), 0);
    assert_eq!(write_rejects_csv(dir.path(), &[]).unwrap(), 0);
    assert_eq!(
        fs::read_to_string(dir.path().join("rejects.csv")).unwrap(),
        "file,row,act_id,column,reason,value\n"
    );
}

/// `n` distinct outcomes over many patients and days.
fn many(n: usize) -> Vec<Outcome> {
    (0..n)
        .map(|i| {
            let day = date(2024, 1, 1) + chrono::Days::new((i % 366) as u64);
            let billed = Decimal::new(3000 + (i % 500) as i64, 2);
            let mut o = consultation(&format!("A{i:07}"), &format!("P{:05}", i / 7), day, billed);
            if i % 3 == 0 {
                o.recorded_amo = Some(dec!(19.00));
            }
            o
        })
        .collect()
}

#[test]
fn same_bytes_twice_and_whatever_the_chunking() {
    let rows = many(2 * CHUNK_ROWS + 1234);
    for format in Format::ALL.iter().copied() {
        let write_with = |name: &str, cut: usize, parallel: bool| {
            let dir = tempfile::tempdir().unwrap();
            let mut writer =
                TableWriter::<Outcome>::create_named(dir.path(), name, format).unwrap();
            if parallel {
                let encoded: Vec<_> = rows
                    .par_chunks(cut)
                    .map(|chunk| encode(format, chunk).unwrap())
                    .collect();
                for chunk in encoded {
                    writer.write_encoded(chunk).unwrap();
                }
            } else {
                for chunk in rows.chunks(cut) {
                    writer.write(chunk).unwrap();
                }
            }
            assert_eq!(writer.finish().unwrap(), rows.len() as u64);
            fs::read(dir.path().join(format!("{name}.{}", format.extension()))).unwrap()
        };
        let first = write_with("acts", rows.len(), false);
        assert_eq!(first, write_with("acts", rows.len(), false), "{format}");
        assert_eq!(first, write_with("acts", 7_777, false), "{format}");
        // Cuts either side of the writer's blocks (2048 rows): each call's rows then end
        // inside a block, which is joined from two calls' batches.
        assert_eq!(first, write_with("acts", 2_047, false), "{format}");
        assert_eq!(first, write_with("acts", 2_049, false), "{format}");
        assert_eq!(first, write_with("acts", 10_000, true), "{format}");
        assert_eq!(first, write_with("acts", 100_000, true), "{format}");
    }

    // and the Parquet file holds every row, in order, in row groups of one chunk (the
    // acts table's, half the other tables')
    let dir = tempfile::tempdir().unwrap();
    write_table(dir.path(), Format::Parquet, &rows).unwrap();
    let (batches, metadata) = read_parquet(&dir.path().join("acts.parquet"));
    let groups: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(groups, [CHUNK_ROWS as i64, CHUNK_ROWS as i64, 1234]);
    let ids: Vec<String> = batches.iter().flat_map(|b| strings(b, "act_id")).collect();
    assert_eq!(ids.len(), rows.len());
    assert!(ids.iter().zip(&rows).all(|(id, row)| *id == row.act_id));
}

#[test]
fn encoded_chunks_of_the_wrong_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = TableWriter::<Outcome>::create(dir.path(), Format::Parquet).unwrap();
    let chunk = encode(Format::Csv, &sample()).unwrap();
    let err = writer.write_encoded(chunk).unwrap_err();
    assert!(err.to_string().contains("acts.parquet"), "{err}");
}

#[test]
fn patients_summary_and_counters_tables() {
    let outcomes = sample();
    let counters = vec![
        YearCounter {
            patient_id: "P1".into(),
            year: 2024,
            pf_used: dec!(50.00),
            franchise_used: dec!(0),
            charged_stays: vec![],
            pf_cap_reached_on: Some(date(2024, 2, 29)),
            franchise_cap_reached_on: None,
            stay_starts: vec![],
            open_stays: vec![],
        },
        YearCounter {
            patient_id: "P2".into(),
            year: 2025,
            pf_used: dec!(0),
            franchise_used: dec!(2),
            charged_stays: vec!["S1".into(), "S2".into()],
            pf_cap_reached_on: None,
            franchise_cap_reached_on: None,
            stay_starts: vec![
                ("S1".into(), date(2024, 12, 28)),
                ("S;3".into(), date(2025, 1, 5)),
            ],
            open_stays: vec![(
                "S;3".into(),
                StaySums {
                    first: Some(date(2025, 1, 5)),
                    bases: dec!(70.00),
                    coefficients: dec!(0),
                    copayment: dec!(14.00),
                    daily_fees: dec!(20.00),
                    charged: dec!(0),
                    payers: vec![(dec!(70.00), "H1".into())],
                },
            )],
        },
    ];
    let patients = patient_years(&outcomes, &counters);
    let mut summary = Summary::new();
    summary.add(&outcomes);
    let summary = summary.rows();

    let dir = tempfile::tempdir().unwrap();
    write_table(dir.path(), Format::Csv, &patients).unwrap();
    write_table(dir.path(), Format::Csv, &summary).unwrap();
    write_table(dir.path(), Format::Csv, &counters).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("patients.csv")).unwrap(),
        "patient_id,year,acts,billed,base,amo_paid,rac,pf,franchise,pal,flat_fee,overbilling,\
         pf_cap_reached_on,franchise_cap_reached_on\n\
         P1,2024,2,77.50,60.00,38.00,39.50,4.00,0.00,0.00,0.00,17.50,2024-02-29,\n\
         P2,2025,1,1.00,1.00,-1.00,2.00,0.00,2.00,0.00,0.00,0.00,,\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("summary.csv")).unwrap(),
        "month,category,situation,acts,billed,base,amo_paid,rac,pf,franchise,pal,flat_fee,\
         overbilling\n\
         2024-01,consultation,ordinary,1,30.00,30.00,19.00,11.00,2.00,0.00,0.00,0.00,0.00\n\
         2024-02,consultation,ordinary,1,47.50,30.00,19.00,28.50,2.00,0.00,0.00,0.00,17.50\n\
         2025-12,drug_65,ald,1,1.00,1.00,-1.00,2.00,0.00,2.00,0.00,0.00,0.00\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("counters.csv")).unwrap(),
        "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,\
         franchise_cap_reached_on,stay_starts,open_stays\n\
         P1,2024,50.00,0.00,,2024-02-29,,,\n\
         P2,2025,0.00,2.00,S1;S2,,,S1=2024-12-28;S\\;3=2025-01-05,S\\;3=2025-01-05/70/0/14/20/0/70/H1\n"
    );

    write_table(dir.path(), Format::Parquet, &patients).unwrap();
    write_table(dir.path(), Format::Parquet, &summary).unwrap();
    write_table(dir.path(), Format::Parquet, &counters).unwrap();

    let (batches, _) = read_parquet(&dir.path().join("patients.parquet"));
    let batch = &batches[0];
    assert_eq!(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        column_names::<rac::report::PatientYear>()
    );
    let year = batch.column_by_name("year").unwrap();
    assert_eq!(year.data_type(), &DataType::Int32);
    assert_eq!(
        year.as_primitive::<Int32Type>().values().to_vec(),
        [2024, 2025]
    );
    let acts = batch.column_by_name("acts").unwrap();
    assert_eq!(acts.as_primitive::<Int64Type>().values().to_vec(), [2, 1]);
    assert_eq!(money(batch, "rac"), [Some(3950), Some(200)]);
    let cap = batch
        .column_by_name("pf_cap_reached_on")
        .unwrap()
        .as_primitive::<Date32Type>();
    assert_eq!(cap.value_as_date(0), Some(date(2024, 2, 29)));
    assert!(cap.is_null(1));

    let (batches, _) = read_parquet(&dir.path().join("summary.parquet"));
    assert_eq!(
        strings(&batches[0], "month"),
        ["2024-01", "2024-02", "2025-12"]
    );
    assert_eq!(
        money(&batches[0], "amo_paid"),
        [Some(1900), Some(1900), Some(-100)]
    );

    let (batches, _) = read_parquet(&dir.path().join("counters.parquet"));
    assert_eq!(strings(&batches[0], "charged_stays"), ["", "S1;S2"]);
    assert_eq!(
        strings(&batches[0], "stay_starts"),
        ["", "S1=2024-12-28;S\\;3=2025-01-05"]
    );
    assert_eq!(money(&batches[0], "pf_used"), [Some(5000), Some(0)]);
}

#[test]
fn rejects_manifest_and_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = vec![
        Reject {
            file: "acts.csv".into(),
            row: 12,
            act_id: "A12".into(),
            column: "care_date".into(),
            reason: "bad_date".into(),
            value: "2024-02-30".into(),
        },
        Reject {
            file: "acts.csv".into(),
            row: 13,
            act_id: "A13".into(),
            column: "billed".into(),
            reason: "bad_decimal".into(),
            value: "12,5 \"EUR\"".into(),
        },
    ];
    assert_eq!(write_rejects_csv(dir.path(), &rejects).unwrap(), 2);
    assert_eq!(
        fs::read_to_string(dir.path().join("rejects.csv")).unwrap(),
        "file,row,act_id,column,reason,value\n\
         acts.csv,12,A12,care_date,bad_date,2024-02-30\n\
         acts.csv,13,A13,billed,bad_decimal,\"12,5 \"\"EUR\"\"\"\n"
    );
    assert_eq!(Reject::TABLE, "rejects");

    let manifest = serde_json::json!({"version": "0.1.0", "rows": {"read": 3}});
    write_manifest(dir.path(), &manifest).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("manifest.json")).unwrap(),
        "{\n  \"rows\": {\n    \"read\": 3\n  },\n  \"version\": \"0.1.0\"\n}\n"
    );

    fs::write(dir.path().join("abc.txt"), "abc").unwrap();
    assert_eq!(
        sha256_file(&dir.path().join("abc.txt")).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // The size of the same read, past one 64 KiB buffer.
    let big = vec![b'x'; (1 << 16) + 3];
    fs::write(dir.path().join("big.txt"), &big).unwrap();
    let (hex, size) = sha256_and_size(&dir.path().join("big.txt")).unwrap();
    assert_eq!(size, (1 << 16) + 3);
    assert_eq!(hex, sha256_file(&dir.path().join("big.txt")).unwrap());
    assert_ne!(hex, sha256_file(&dir.path().join("abc.txt")).unwrap());
    let err = sha256_file(&dir.path().join("missing.csv")).unwrap_err();
    assert!(err.to_string().contains("missing.csv"), "{err}");
}

// --- Staging -----------------------------------------------------------------------------------

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A previous run's outputs in `out`.
fn previous_outputs(out: &Path) {
    fs::create_dir_all(out).unwrap();
    fs::write(out.join("manifest.json"), "{}\n").unwrap();
    fs::write(out.join("acts.csv"), "old\n").unwrap();
    fs::write(out.join("summary.parquet"), "old").unwrap();
}

/// `--out` a symbolic link to the folder of the outputs (`latest -> data/2024-01`): the folder
/// it points to gets the new outputs, staged beside it, and the link stays a link. Before, the
/// link was replaced by a folder and its target kept the old outputs.
#[cfg(unix)]
#[test]
fn an_out_that_is_a_link_replaces_the_folder_it_points_to() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let month = data.join("2024-01");
    previous_outputs(&month);
    let links = root.path().join("links");
    fs::create_dir(&links).unwrap();
    let latest = links.join("latest");
    std::os::unix::fs::symlink(&month, &latest).unwrap();
    // And a link to a folder not written yet.
    let next = links.join("next");
    std::os::unix::fs::symlink("../data/2024-02", &next).unwrap();
    // `latest/`: a slash at the end, as a shell completes a folder.
    let slashed = PathBuf::from(format!("{}/", latest.display()));
    for (link, target) in [
        (&latest, &month),
        (&next, &data.join("2024-02")),
        (&slashed, &month),
    ] {
        let staging = Staging::begin(link).unwrap();
        assert!(
            staging.path().starts_with(&data),
            "{}",
            staging.path().display()
        );
        write_table(staging.path(), Format::Csv, &sample()).unwrap();
        write_manifest(staging.path(), &serde_json::json!({"run": 2})).unwrap();
        staging.commit().unwrap();
        for link in [&latest, &next] {
            assert!(fs::symlink_metadata(link).unwrap().file_type().is_symlink());
        }
        assert_eq!(fs::read_to_string(link.join("acts.csv")).unwrap(), ACTS_CSV);
        assert_eq!(listing(target), ["acts.csv", "manifest.json"]);
    }
    assert_eq!(listing(&links), ["latest", "next"]);
    assert_eq!(listing(&data), ["2024-01", "2024-02"]);
}

#[test]
fn commit_replaces_the_previous_folder_entirely() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    previous_outputs(&out);

    let staging = Staging::begin(&out).unwrap();
    assert!(staging.path().starts_with(root.path()));
    let pid = std::process::id();
    assert_eq!(
        listing(root.path()),
        [
            ".results.lock".to_string(),
            format!(".results.tmp-{pid}"),
            "results".to_string()
        ]
    );
    write_table(staging.path(), Format::Csv, &sample()).unwrap();
    write_manifest(staging.path(), &serde_json::json!({"run": 2})).unwrap();
    // nothing visible in `out` before the commit
    assert_eq!(
        listing(&out),
        ["acts.csv", "manifest.json", "summary.parquet"]
    );
    assert_eq!(fs::read_to_string(out.join("acts.csv")).unwrap(), "old\n");
    staging.commit().unwrap();

    assert_eq!(listing(root.path()), ["results"]);
    assert_eq!(listing(&out), ["acts.csv", "manifest.json"]);
    assert_eq!(fs::read_to_string(out.join("acts.csv")).unwrap(), ACTS_CSV);

    // a first run into a folder that does not exist yet, under a missing parent
    let fresh = root.path().join("a/b/fresh");
    let staging = Staging::begin(&fresh).unwrap();
    write_manifest(staging.path(), &serde_json::json!({})).unwrap();
    staging.commit().unwrap();
    assert_eq!(listing(&fresh), ["manifest.json"]);
    assert_eq!(listing(&root.path().join("a/b")), ["fresh"]);

    // an existing empty folder is replaced too
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let staging = Staging::begin(&empty).unwrap();
    write_manifest(staging.path(), &serde_json::json!({})).unwrap();
    staging.commit().unwrap();
    assert_eq!(listing(&empty), ["manifest.json"]);
}

/// The folder that replaces `out` keeps its permission bits and group (a folder of health
/// data restricted to a group became world-readable, with the umask's bits, after each run).
#[cfg(unix)]
#[test]
fn commit_keeps_the_folder_s_permissions_and_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    previous_outputs(&out);
    fs::set_permissions(&out, fs::Permissions::from_mode(0o2750)).unwrap();
    let group = fs::metadata(&out).unwrap().gid();
    let staging = Staging::begin(&out).unwrap();
    write_manifest(staging.path(), &serde_json::json!({"run": 2})).unwrap();
    assert_ne!(
        fs::metadata(staging.path()).unwrap().mode() & 0o7777,
        0o2750,
        "the umask's bits before the commit"
    );
    staging.commit().unwrap();
    let meta = fs::metadata(&out).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o2750);
    assert_eq!(meta.gid(), group);
    assert_eq!(listing(&out), ["manifest.json"]);
    assert_eq!(listing(root.path()), ["results"]);
    // The files take the folder's group too, where the user may give it (root here: a group
    // of its own, gid 1; elsewhere the user's own group, which proves nothing more).
    if std::os::unix::fs::chown(&out, None, Some(1)).is_ok() {
        let staging = Staging::begin(&out).unwrap();
        write_manifest(staging.path(), &serde_json::json!({"run": 3})).unwrap();
        staging.commit().unwrap();
        assert_eq!(fs::metadata(&out).unwrap().gid(), 1);
        assert_eq!(fs::metadata(out.join("manifest.json")).unwrap().gid(), 1);
    }
}

#[test]
fn dropping_without_commit_leaves_the_previous_folder() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    previous_outputs(&out);
    {
        let staging = Staging::begin(&out).unwrap();
        write_table(staging.path(), Format::Csv, &sample()).unwrap();
        // the run fails here
    }
    assert_eq!(listing(root.path()), ["results"]);
    assert_eq!(
        listing(&out),
        ["acts.csv", "manifest.json", "summary.parquet"]
    );
    assert_eq!(fs::read_to_string(out.join("acts.csv")).unwrap(), "old\n");
}

#[test]
fn a_second_run_on_the_same_out_is_locked_out() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    let first = Staging::begin(&out).unwrap();
    let err = Staging::begin(&out).unwrap_err();
    assert!(matches!(err, WriteError::Locked { .. }));
    assert!(err.is_usage());
    let lock = root.path().join(".results.lock");
    assert_eq!(
        err.to_string(),
        format!(
            "another run is writing {} (it holds the lock on {}; on a file system without locks, a run killed midway leaves that file: remove it if no run is active)",
            out.display(),
            lock.display()
        )
    );
    // the failed attempt did not disturb the active one
    assert!(first.path().is_dir());
    assert_eq!(
        fs::read_to_string(&lock).unwrap().lines().next().unwrap(),
        std::process::id().to_string()
    );
    write_manifest(first.path(), &serde_json::json!({})).unwrap();
    first.commit().unwrap();
    assert!(!lock.exists());
    // once released, the next run goes
    drop(Staging::begin(&out).unwrap());
    assert_eq!(listing(root.path()), ["results"]);
}

/// A lock file that no running process holds does not block, whatever it says: left by a run
/// killed with -9, by the OOM killer, or by a container's pid 1; empty (killed while writing
/// it); naming this very pid (a container's runs are all pid 1), or a live process's pid (pids
/// are used again after a reboot). Judged by its pid, each of these blocked every later run.
#[cfg(target_os = "linux")]
#[test]
fn a_lock_file_that_no_live_run_holds_does_not_block_and_pid_files_of_dead_runs_are_removed() {
    use std::process::Command;
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    let lock = root.path().join(".results.lock");
    let me = std::process::id();
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    for text in [String::new(), format!("{me}\n"), format!("{}\n", live.id())] {
        fs::write(&lock, &text).unwrap();
        let staging = Staging::begin(&out).unwrap();
        // The lock now names this run.
        assert_eq!(fs::read_to_string(&lock).unwrap(), format!("{me}\n"));
        drop(staging);
        assert!(!lock.exists(), "{text:?}");
    }
    // Pid files of runs of rac 0.1 killed before they linked them as the lock: the dead one's
    // removed, a live process's left.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    for pid in [dead, live.id()] {
        fs::write(
            root.path().join(format!(".results.lockpid-{pid}")),
            format!("{pid}\n"),
        )
        .unwrap();
    }
    let staging = Staging::begin(&out).unwrap();
    let mut expected = vec![
        ".results.lock".to_string(),
        format!(".results.lockpid-{}", live.id()),
        format!(".results.tmp-{me}"),
    ];
    expected.sort();
    assert_eq!(listing(root.path()), expected);
    live.kill().unwrap();
    live.wait().unwrap();
    drop(staging);
}

#[test]
fn a_folder_that_is_not_a_rac_output_is_never_replaced() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("thesis");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("chapter1.tex"), "precious").unwrap();
    let err = Staging::begin(&out).unwrap_err();
    assert!(matches!(err, WriteError::NotRacOutput { .. }), "{err}");
    assert!(err.is_usage());
    assert!(err.to_string().contains("thesis"), "{err}");
    assert_eq!(listing(root.path()), ["thesis"]);
    assert_eq!(listing(&out), ["chapter1.tex"]);

    let file = root.path().join("file.txt");
    fs::write(&file, "x").unwrap();
    let err = Staging::begin(&file).unwrap_err();
    assert!(matches!(err, WriteError::NotAFolder { .. }), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
    assert_eq!(listing(root.path()), ["file.txt", "thesis"]);
}

/// A run replaces the whole of `--out`: files put in a previous run's output folder (notes, a
/// copy of the inputs, a `.git`) were deleted with it. They are now refused, before anything
/// is computed, and again at the commit (a file put there during the run).
#[test]
fn a_rac_output_folder_holding_other_files_is_never_replaced() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    previous_outputs(&out);
    // Every name a run of any command writes, in either format.
    for name in [
        "acts.parquet",
        "patients.csv",
        "patients.parquet",
        "summary.csv",
        "counters.csv",
        "counters.parquet",
        "rejects.csv",
        "discrepancies.csv",
        "discrepancies.parquet",
        "discrepancies.md",
        "damir_report.json",
    ] {
        fs::write(out.join(name), "old").unwrap();
    }
    let staging = Staging::begin(&out).unwrap();
    fs::write(out.join("my acts.csv"), "precious").unwrap();
    fs::create_dir(out.join(".git")).unwrap();
    let err = staging.commit().unwrap_err();
    assert!(matches!(err, WriteError::ForeignFiles { .. }), "{err}");
    assert!(err.is_usage());
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "refusing to replace {}: besides a rac run's outputs it holds \".git\", \"my acts.csv\", which rac did not write",
            out.display()
        )),
        "{message}"
    );
    assert_eq!(
        fs::read_to_string(out.join("my acts.csv")).unwrap(),
        "precious"
    );
    assert_eq!(listing(root.path()), ["results"]);

    let err = Staging::begin(&out).unwrap_err();
    assert!(matches!(err, WriteError::ForeignFiles { .. }), "{err}");
    for i in 0..5 {
        fs::write(out.join(format!("note{i}.txt")), "").unwrap();
    }
    let message = Staging::begin(&out).unwrap_err().to_string();
    assert!(
        message.contains(
            "it holds \".git\", \"my acts.csv\", \"note0.txt\", \"note1.txt\", \"note2.txt\" and 2 more,"
        ),
        "{message}"
    );
    assert!(out.join(".git").is_dir());
}

#[test]
fn a_commit_interrupted_between_its_renames_is_undone_by_the_next_run() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("results");
    // a run killed after renaming `out` away, before renaming its new folder in
    previous_outputs(&root.path().join(".results.old-4242"));
    fs::create_dir(root.path().join(".results.tmp-4242")).unwrap();
    fs::write(root.path().join(".results.tmp-4242/acts.csv"), "partial").unwrap();
    // and an unrelated user folder that looks a bit alike
    fs::create_dir(root.path().join(".results.tmp-keep")).unwrap();

    let staging = Staging::begin(&out).unwrap();
    assert_eq!(
        listing(&out),
        ["acts.csv", "manifest.json", "summary.parquet"]
    );
    drop(staging);
    assert_eq!(listing(root.path()), [".results.tmp-keep", "results"]);
    assert_eq!(fs::read_to_string(out.join("acts.csv")).unwrap(), "old\n");

    // a run killed after its second rename: the old folder is only cleaned up
    previous_outputs(&root.path().join(".results.old-4343"));
    let staging = Staging::begin(&out).unwrap();
    drop(staging);
    assert_eq!(listing(root.path()), [".results.tmp-keep", "results"]);
    assert_eq!(fs::read_to_string(out.join("acts.csv")).unwrap(), "old\n");
}
