//! Input readers (SPEC §2): formats, defaults, every reject reason, file-level errors, and
//! robustness against broken files.

mod common;

use common::write_parquet;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float64Array,
    Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::Int32Type;
use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;
use rac::io::read::{
    Chunks, Loaded, ReadError, ReadOptions, open_acts, read_acts, read_beneficiaries,
    read_counters, read_rights,
};
use rac::model::{
    Act, Category, InsuranceNature, Pathway, Regime, Reject, RightKind, Setting, StaySums,
    YearCounter,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bad")
        .join(name)
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn opts() -> ReadOptions {
    ReadOptions::default()
}

/// `read == rows + rejects`, always.
fn check_counts<T>(loaded: &Loaded<T>) {
    assert_eq!(
        loaded.read,
        (loaded.rows.len() + loaded.rejects.len()) as u64
    );
}

/// (row, act_id, column, reason, value) of each reject.
fn summary(rejects: &[Reject]) -> Vec<(u64, &str, &str, &str, &str)> {
    rejects
        .iter()
        .map(|r| {
            (
                r.row,
                r.act_id.as_str(),
                r.column.as_str(),
                r.reason.as_str(),
                r.value.as_str(),
            )
        })
        .collect()
}

const FULL_HEADER: &str = "act_id,patient_id,care_date,end_date,category,tariff,quantity,billed,coefficient,code,practitioner_id,specialty,stay_id,insurance_nature,exo_code,ald_related,pathway,setting,recorded_amo,unknown_extra";

#[test]
fn csv_with_defaults_and_full_rows() {
    let dir = tempfile::tempdir().unwrap();
    let content = format!(
        "{FULL_HEADER}\n\
         A1,P1,2024-03-01,,consultation,26.5,,,,,,,,,,,,,,whatever\n\
         A2,P2,2024-03-02,2024-03-05,hospital_stay,.81,3,40.00,1.5,KE,D7,01,S9,maternite,3,1,out_of_pathway,inpatient,-1.20,x\n"
    );
    let path = write(dir.path(), "acts.csv", content.as_bytes());
    let loaded = read_acts(&path, &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(loaded.read, 2);
    assert!(loaded.rejects.is_empty(), "{:?}", loaded.rejects);
    assert_eq!(loaded.files, vec![path.display().to_string()]);
    let first = &loaded.rows[0];
    assert_eq!((first.file, first.row), (0, 1));
    assert_eq!(
        first.value,
        Act::new(
            "A1",
            "P1",
            day(2024, 3, 1),
            Category::Consultation,
            dec!(26.50)
        )
    );
    assert_eq!(first.value.tariff.to_string(), "26.50");
    let second = &loaded.rows[1];
    assert_eq!(second.row, 2);
    assert_eq!(
        second.value,
        Act {
            act_id: "A2".into(),
            patient_id: "P2".into(),
            care_date: day(2024, 3, 2),
            end_date: Some(day(2024, 3, 5)),
            category: Category::HospitalStay,
            tariff: dec!(0.81),
            quantity: 3,
            billed: Some(dec!(40.00)),
            coefficient: Some(dec!(1.5)),
            code: Some("KE".into()),
            practitioner_id: Some("D7".into()),
            specialty: Some("01".into()),
            stay_id: Some("S9".into()),
            insurance_nature: InsuranceNature::Maternity,
            exo_code: Some("3".into()),
            ald_related: true,
            pathway: Pathway::OutOfPathway,
            setting: Setting::Inpatient,
            recorded_amo: Some(dec!(-1.20)),
            carried: Default::default(),
        }
    );
}

#[test]
fn every_bad_value_has_its_reason_column_and_row() {
    let loaded = read_acts(&fixture("acts_bad_values.csv"), &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(loaded.read, 18);
    assert_eq!(
        loaded
            .rows
            .iter()
            .map(|r| (r.row, r.value.act_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "A01"), (18, "A18")]
    );
    assert_eq!(loaded.rows[0].value.recorded_amo, Some(dec!(21.00)));
    assert_eq!(loaded.rows[1].value.recorded_amo, Some(dec!(-4.50)));
    let file = fixture("acts_bad_values.csv").display().to_string();
    assert!(loaded.rejects.iter().all(|r| r.file == file));
    assert_eq!(
        summary(&loaded.rejects),
        vec![
            (2, "A02", "patient_id", "missing_value", ""),
            (3, "A03", "care_date", "bad_date", "2024-02-31"),
            (4, "A04", "tariff", "bad_decimal", "abc"),
            (5, "A05", "tariff", "too_many_decimals", "30.001"),
            (6, "A06", "tariff", "negative_amount", "-30.00"),
            (7, "A07", "category", "unknown_category", "massage"),
            (8, "A08", "setting", "unknown_value", "out_of_town"),
            (9, "A09", "quantity", "bad_integer", "two"),
            (10, "A10", "quantity", "out_of_range", "0"),
            (11, "A11", "ald_related", "bad_boolean", "yes"),
            (12, "A12", "billed", "negative_amount", "-5"),
            (
                13,
                "A13",
                "",
                "bad_row",
                "A13,P1,2024-03-01,,consultation,30.00,,,,,,,,,,,,"
            ),
            (14, "A14", "tariff", "missing_value", ""),
            (15, "A15", "quantity", "out_of_range", "1000001"),
            (16, "A16", "care_date", "bad_date", "03/01/2024"),
            (17, "A17", "insurance_nature", "unknown_value", "hopital"),
        ]
    );
}

#[test]
fn wrong_field_count_and_quoting() {
    let loaded = read_acts(&fixture("acts_wrong_field_count.csv"), &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(loaded.read, 5);
    assert_eq!(loaded.rows.len(), 1);
    assert_eq!(loaded.rows[0].value.tariff, dec!(30));
    assert_eq!(
        summary(&loaded.rejects),
        vec![
            (2, "B2", "", "bad_row", "B2,P1,2024-01-02,consultation"),
            (
                3,
                "B3",
                "",
                "bad_row",
                "B3,P1,2024-01-02,consultation,30,extra"
            ),
            (4, "B4", "", "bad_row", "B4,P1,2024-01-02,consultation,30"),
            // An unclosed quote runs to the end of the file: the field keeps its newline.
            (5, "B5", "tariff", "bad_decimal", "30\n"),
        ]
    );
}

#[test]
fn non_utf8_fields_are_bad_encoding() {
    let loaded = read_acts(&fixture("acts_non_utf8.csv"), &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(loaded.rows.len(), 1);
    assert_eq!(loaded.rows[0].value.code.as_deref(), Some("G"));
    assert_eq!(
        summary(&loaded.rejects),
        vec![
            (2, "C2", "patient_id", "bad_encoding", "P\u{fffd}"),
            (3, "C3", "code", "bad_encoding", "\u{fffd}\u{fffd}"),
        ]
    );
}

#[test]
fn bom_crlf_and_header_only() {
    let dir = tempfile::tempdir().unwrap();
    let bom = write(
        dir.path(),
        "bom.csv",
        b"\xEF\xBB\xBFact_id,patient_id,care_date,category,tariff\r\nA1,P1,2024-01-02,biology,1.5\r\nA2,P1,2024-01-03,biology,2\r\n",
    );
    let loaded = read_acts(&bom, &opts()).unwrap();
    check_counts(&loaded);
    assert!(loaded.rejects.is_empty(), "{:?}", loaded.rejects);
    assert_eq!(
        loaded
            .rows
            .iter()
            .map(|r| (r.value.act_id.as_str(), r.value.tariff))
            .collect::<Vec<_>>(),
        vec![("A1", dec!(1.50)), ("A2", dec!(2.00))]
    );
    let loaded = read_acts(&fixture("acts_header_only.csv"), &opts()).unwrap();
    assert_eq!((loaded.read, loaded.rows.len()), (0, 0));
    let bom_only = write(dir.path(), "bom_only.csv", b"\xEF\xBB\xBF");
    assert!(matches!(
        read_acts(&bom_only, &opts()),
        Err(ReadError::Empty { .. })
    ));
}

#[test]
fn empty_missing_and_unknown_files() {
    let empty = fixture("empty.csv");
    match read_acts(&empty, &opts()) {
        Err(ReadError::Empty { file }) => assert_eq!(file, empty.display().to_string()),
        other => panic!("{other:?}"),
    }
    match read_acts(&fixture("acts_missing_column.csv"), &opts()) {
        Err(error @ ReadError::MissingColumn { .. }) => {
            let message = error.to_string();
            assert!(message.contains("acts_missing_column.csv"), "{message}");
            assert!(message.contains("care_date"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match read_acts(&fixture("not_parquet.parquet"), &opts()) {
        Err(error @ ReadError::Parquet { .. }) => {
            assert!(error.to_string().contains("not_parquet.parquet"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_acts(&fixture("no_such_file.csv"), &opts()),
        Err(ReadError::NotFound { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let empty_gz = write(dir.path(), "empty.csv.gz", b"");
    assert!(matches!(
        read_acts(&empty_gz, &opts()),
        Err(ReadError::Empty { .. })
    ));
    let not_gz = write(dir.path(), "plain.csv.gz", b"act_id,patient_id\n");
    assert!(matches!(
        read_acts(&not_gz, &opts()),
        Err(ReadError::Io { .. })
    ));
    let empty_parquet = write(dir.path(), "empty.parquet", b"");
    assert!(matches!(
        read_acts(&empty_parquet, &opts()),
        Err(ReadError::Empty { .. })
    ));
}

/// A stray quote at a field's start: csv-core reads every later line into that field, to the
/// end of the file. Those rows were lost without a reject or an error (`A3`–`A5` below became
/// part of `A2`'s code, and the run said 2 acts read).
/// A gzip file named `.csv` is named as such (it failed on a "missing" column); a named pipe
/// is refused at once as not a regular file (a run reads its inputs more than once; it was
/// "an empty file", or the run waited for a writer).
#[test]
fn a_compressed_csv_and_a_pipe_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(
        b"act_id,patient_id,care_date,category,tariff\nA1,P1,2025-01-02,consultation,30\n",
    )
    .unwrap();
    let named_csv = write(dir.path(), "acts.csv", &gz.finish().unwrap());
    let message = read_acts(&named_csv, &opts()).unwrap_err().to_string();
    assert!(
        message.contains("gzip-compressed content in a file named .csv"),
        "{message}"
    );
    #[cfg(unix)]
    {
        let fifo = dir.path().join("fifo.csv");
        let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let message = read_acts(&fifo, &opts()).unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");
    }
}

/// A column of the contract named twice in a header fails the file (CSV and Parquet, any
/// table): the first was read and the second ignored, whatever it held. A column outside the
/// contract named twice is no concern without `--keep-columns`.
#[test]
fn a_column_named_twice_fails_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "acts.csv",
        b"act_id,patient_id,care_date,category,tariff,tariff\nA1,P1,2025-01-02,consultation,30,999\n",
    );
    match read_acts(&csv, &opts()) {
        Err(error @ ReadError::DuplicateColumn { .. }) => {
            assert_eq!(
                error.to_string(),
                format!(
                    "{}: column \"tariff\" appears twice in the header",
                    csv.display()
                )
            );
        }
        other => panic!("{other:?}"),
    }
    let rights = write(
        dir.path(),
        "rights.csv",
        b"patient_id,right,start_date,patient_id\nP1,css,2025-01-01,P2\n",
    );
    assert!(matches!(
        read_rights(&rights, &opts()),
        Err(ReadError::DuplicateColumn { column, .. }) if column == "patient_id"
    ));
    let parquet = dir.path().join("acts.parquet");
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    write_parquet(
        &parquet,
        vec![
            ("act_id", text("A1")),
            ("patient_id", text("P1")),
            ("care_date", text("2025-01-02")),
            ("category", text("consultation")),
            ("tariff", text("30")),
            ("care_date", text("2025-01-03")),
        ],
    );
    assert!(matches!(
        read_acts(&parquet, &opts()),
        Err(ReadError::DuplicateColumn { column, .. }) if column == "care_date"
    ));
    let other = write(
        dir.path(),
        "other.csv",
        b"act_id,patient_id,care_date,category,tariff,note,note\nA1,P1,2025-01-02,consultation,30,a,b\n",
    );
    assert_eq!(read_acts(&other, &opts()).unwrap().rows.len(), 1);
}

#[test]
fn a_quote_never_closed_fails_the_file_naming_its_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = "act_id,patient_id,care_date,category,tariff,code\n\
                A1,P1,2024-06-10,consultation,30,ab\"c\n\
                A2,P1,2024-06-10,consultation,30,\"abc\n\
                A3,P1,2024-06-10,consultation,30,x\n\
                A4,P1,2024-06-10,consultation,30,x\n";
    let plain = write(dir.path(), "stray.csv", text.as_bytes());
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    let gz = write(dir.path(), "stray.csv.gz", &encoder.finish().unwrap());
    for path in [plain, gz] {
        match read_acts(&path, &opts()) {
            Err(error @ ReadError::UnclosedQuote { .. }) => {
                let message = error.to_string();
                let expected = format!("{}: row 2, column code: a quote opens", path.display());
                assert!(message.starts_with(&expected), "{message}");
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    // The same quote closed: four acts, `A1`'s stray quote a plain byte of its code.
    let closed = text.replace("\"abc\n", "\"abc\"\n");
    let loaded = read_acts(&write(dir.path(), "closed.csv", closed.as_bytes()), &opts()).unwrap();
    check_counts(&loaded);
    let codes: Vec<_> = loaded
        .rows
        .iter()
        .map(|a| a.value.code.as_deref())
        .collect();
    assert_eq!(codes, [Some("ab\"c"), Some("abc"), Some("x"), Some("x")]);
}

#[test]
fn csv_gz_multi_member() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for part in [
        "act_id,patient_id,care_date,category,tariff\nG1,P1,2024-01-02,drug_65,3.10\n",
        "G2,P1,2024-01-03,drug_30,4\n",
    ] {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(part.as_bytes()).unwrap();
        bytes.extend(encoder.finish().unwrap());
    }
    let path = write(dir.path(), "acts.csv.gz", &bytes);
    let loaded = read_acts(&path, &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(
        loaded
            .rows
            .iter()
            .map(|r| (
                r.row,
                r.value.act_id.as_str(),
                r.value.category,
                r.value.tariff
            ))
            .collect::<Vec<_>>(),
        vec![
            (1, "G1", Category::Drug65, dec!(3.10)),
            (2, "G2", Category::Drug30, dec!(4.00))
        ]
    );
    // A gzip stream cut in the middle is a file-level error.
    let cut = write(dir.path(), "cut.csv.gz", &bytes[..bytes.len() / 3]);
    assert!(read_acts(&cut, &opts()).is_err());
}

#[test]
fn decimal_comma() {
    let dir = tempfile::tempdir().unwrap();
    let semicolons = write(
        dir.path(),
        "fr.csv",
        "act_id;patient_id;care_date;category;tariff;billed\nF1;P1;2024-01-02;consultation;26,5;30,00\nF2;P1;2024-01-02;consultation;1.5;\n".as_bytes(),
    );
    let comma = ReadOptions {
        decimal_comma: true,
        ..ReadOptions::default()
    };
    let loaded = read_acts(&semicolons, &comma).unwrap();
    assert!(loaded.rejects.is_empty(), "{:?}", loaded.rejects);
    assert_eq!(loaded.rows[0].value.tariff, dec!(26.50));
    assert_eq!(loaded.rows[0].value.billed, Some(dec!(30.00)));
    assert_eq!(loaded.rows[1].value.tariff, dec!(1.50));
    // Without the option, a comma is not a decimal separator.
    let loaded = read_acts(&semicolons, &opts()).unwrap();
    assert_eq!(
        summary(&loaded.rejects),
        vec![(1, "F1", "tariff", "bad_decimal", "26,5")]
    );
    // Comma-delimited file with quoted comma decimals.
    let quoted = write(
        dir.path(),
        "quoted.csv",
        b"act_id,patient_id,care_date,category,tariff\nQ1,P1,2024-01-02,consultation,\"0,81\"\n",
    );
    let loaded = read_acts(&quoted, &comma).unwrap();
    assert_eq!(loaded.rows[0].value.tariff, dec!(0.81));
}

#[test]
fn folder_and_glob_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let header = "act_id,patient_id,care_date,category,tariff\n";
    write(
        dir.path(),
        "acts_2.csv",
        format!("{header}X3,P1,2024-02-01,dental,10\nX4,P1,2024-02-31,dental,10\n").as_bytes(),
    );
    write(
        dir.path(),
        "acts_1.csv",
        format!("{header}X1,P1,2024-01-01,dental,10\nX2,P1,2024-01-02,dental,10\n").as_bytes(),
    );
    write(dir.path(), "README.txt", b"not data");
    let loaded = read_acts(dir.path(), &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(loaded.files.len(), 2);
    assert!(loaded.files[0].ends_with("acts_1.csv"));
    assert!(loaded.files[1].ends_with("acts_2.csv"));
    assert_eq!(
        loaded
            .rows
            .iter()
            .map(|r| (r.file, r.row, r.value.act_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, 1, "X1"), (0, 2, "X2"), (1, 1, "X3")]
    );
    assert_eq!(loaded.rejects.len(), 1);
    assert_eq!(loaded.rejects[0].file, loaded.files[1]);
    assert_eq!(loaded.rejects[0].row, 2);

    let glob = dir.path().join("acts_2*.csv");
    let loaded = read_acts(&glob, &opts()).unwrap();
    assert_eq!(loaded.files.len(), 1);
    assert_eq!(loaded.read, 2);
    assert!(matches!(
        read_acts(&dir.path().join("zzz_*.csv"), &opts()),
        Err(ReadError::NoFiles { .. })
    ));
}

#[test]
fn streaming_chunks_match_whole_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = String::from("act_id,patient_id,care_date,category,tariff,quantity\n");
    for i in 0..2500 {
        let quantity = if i % 7 == 0 { "0" } else { "2" };
        content.push_str(&format!(
            "A{i:05},P{},2024-01-{:02},paramedical,{}.{:02},{quantity}\n",
            i % 13,
            i % 28 + 1,
            i % 50,
            i % 100
        ));
    }
    let path = write(dir.path(), "acts.csv", content.as_bytes());
    let whole = read_acts(&path, &opts()).unwrap();
    check_counts(&whole);
    assert_eq!(whole.read, 2500);
    assert_eq!(whole.rejects.len(), 358);
    let chunks: Vec<_> = open_acts(&path, &opts())
        .unwrap()
        .with_chunk_rows(1000)
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        chunks.iter().map(|c| c.read).collect::<Vec<_>>(),
        vec![1000, 1000, 500]
    );
    let rows: Vec<_> = chunks.iter().flat_map(|c| c.rows.iter().cloned()).collect();
    let rejects: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.rejects.iter().cloned())
        .collect();
    assert_eq!(rows, whole.rows);
    assert_eq!(rejects, whole.rejects);
    assert_eq!(whole.rows[0].row, 2);
    assert_eq!(whole.rows[0].value.act_id, "A00001");
    assert_eq!(whole.rows[0].value.tariff, dec!(1.01));
}

fn days(date: NaiveDate) -> i32 {
    (date - day(1970, 1, 1)).num_days() as i32
}

fn decimals(values: Vec<Option<i128>>, precision: u8, scale: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values)
            .with_precision_and_scale(precision, scale)
            .unwrap(),
    )
}

/// A Parquet acts file: string and integer ids, dictionary columns, Decimal128 and Float64
/// amounts.
fn sample_parquet(path: &Path) {
    let date = days(day(2024, 5, 6));
    write_parquet(
        path,
        vec![
            (
                "act_id",
                Arc::new(StringArray::from(vec!["Q1", "Q2", "Q3", "Q4", "Q5"])) as ArrayRef,
            ),
            (
                "patient_id",
                Arc::new(Int64Array::from(vec![101, 102, 103, 104, 105])),
            ),
            (
                "care_date",
                Arc::new(Date32Array::from(vec![
                    Some(date),
                    Some(date + 1),
                    Some(date),
                    None,
                    Some(date),
                ])),
            ),
            (
                "category",
                Arc::new(DictionaryArray::<Int32Type>::from_iter([
                    "consultation",
                    "drug_65",
                    "consultation",
                    "consultation",
                    "consultation",
                ])),
            ),
            (
                "tariff",
                decimals(
                    vec![
                        Some(26_500),
                        Some(3_100),
                        Some(26_505),
                        Some(1_000),
                        Some(-1_000),
                    ],
                    12,
                    3,
                ),
            ),
            (
                "billed",
                Arc::new(Float64Array::from(vec![
                    Some(0.1),
                    None,
                    Some(2.675),
                    Some(f64::NAN),
                    Some(1.0),
                ])),
            ),
            (
                "quantity",
                Arc::new(Int32Array::from(vec![Some(1), Some(3), None, None, None])),
            ),
            (
                "practitioner_id",
                Arc::new(DictionaryArray::<Int32Type>::from_iter([
                    Some("D1"),
                    None,
                    Some("D1"),
                    Some("D2"),
                    Some(""),
                ])),
            ),
            (
                "ald_related",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    None,
                    None,
                ])),
            ),
            ("ignored", Arc::new(Int32Array::from(vec![0, 0, 0, 0, 0]))),
        ],
    );
}

#[test]
fn parquet_types_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acts.parquet");
    sample_parquet(&path);
    let loaded = read_acts(&path, &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(loaded.read, 5);
    let mut expected = Act::new(
        "Q1",
        "101",
        day(2024, 5, 6),
        Category::Consultation,
        dec!(26.50),
    );
    expected.billed = Some(dec!(0.10));
    expected.practitioner_id = Some("D1".into());
    expected.ald_related = true;
    assert_eq!(loaded.rows[0].value, expected);
    assert_eq!(loaded.rows[0].value.billed.unwrap().to_string(), "0.10");
    let second = &loaded.rows[1];
    assert_eq!(second.row, 2);
    assert_eq!(second.value.patient_id, "102");
    assert_eq!(second.value.care_date, day(2024, 5, 7));
    assert_eq!(second.value.category, Category::Drug65);
    assert_eq!(second.value.tariff, dec!(3.10));
    assert_eq!(second.value.quantity, 3);
    assert_eq!(second.value.billed, None);
    assert_eq!(second.value.practitioner_id, None);
    assert_eq!(loaded.rows.len(), 2);
    assert_eq!(
        summary(&loaded.rejects),
        vec![
            (3, "Q3", "tariff", "too_many_decimals", "26.505"),
            (4, "Q4", "care_date", "missing_value", ""),
            (5, "Q5", "tariff", "negative_amount", "-1.000"),
        ]
    );
}

#[test]
fn parquet_float_amounts_round_half_away_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acts.parquet");
    write_parquet(
        &path,
        vec![
            (
                "act_id",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            (
                "patient_id",
                Arc::new(StringArray::from(vec!["P", "P", "P"])),
            ),
            (
                "care_date",
                Arc::new(StringArray::from(vec![
                    "2024-01-01",
                    "2024-01-02",
                    "2024-13-01",
                ])),
            ),
            (
                "category",
                Arc::new(StringArray::from(vec!["drug_15", "drug_15", "drug_15"])),
            ),
            (
                "tariff",
                Arc::new(Float64Array::from(vec![2.675, 0.125, 1.0])),
            ),
            (
                "recorded_amo",
                Arc::new(Float64Array::from(vec![-0.005, 0.3 - 0.1, 1.0])),
            ),
        ],
    );
    let loaded = read_acts(&path, &opts()).unwrap();
    check_counts(&loaded);
    let values: Vec<_> = loaded
        .rows
        .iter()
        .map(|r| {
            (
                r.value.act_id.as_str(),
                r.value.tariff,
                r.value.recorded_amo,
            )
        })
        .collect();
    assert_eq!(
        values,
        vec![
            ("1", dec!(2.68), Some(dec!(-0.01))),
            ("2", dec!(0.13), Some(dec!(0.20)))
        ]
    );
    assert_eq!(
        summary(&loaded.rejects),
        vec![(3, "3", "care_date", "bad_date", "2024-13-01")]
    );
}

#[test]
fn parquet_wrong_type_names_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acts.parquet");
    write_parquet(
        &path,
        vec![
            ("act_id", Arc::new(StringArray::from(vec!["A"])) as ArrayRef),
            ("patient_id", Arc::new(StringArray::from(vec!["P"]))),
            ("care_date", Arc::new(BooleanArray::from(vec![true]))),
            ("category", Arc::new(StringArray::from(vec!["biology"]))),
            ("tariff", Arc::new(Float64Array::from(vec![1.0]))),
        ],
    );
    match read_acts(&path, &opts()) {
        Err(error @ ReadError::UnsupportedType { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("care_date"), "{message}");
            assert!(message.contains("Boolean"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A timestamp with a time zone: refused (its day depends on the zone), and said so (the
    // message offered "a timestamp" while refusing one).
    let zoned = dir.path().join("zoned.parquet");
    let instants = TimestampMillisecondArray::from(vec![1_709_251_200_000]).with_timezone("UTC");
    write_parquet(
        &zoned,
        vec![
            ("act_id", Arc::new(StringArray::from(vec!["A"])) as ArrayRef),
            ("patient_id", Arc::new(StringArray::from(vec!["P"]))),
            ("care_date", Arc::new(instants)),
            ("category", Arc::new(StringArray::from(vec!["biology"]))),
            ("tariff", Arc::new(Float64Array::from(vec![1.0]))),
        ],
    );
    let message = read_acts(&zoned, &opts()).unwrap_err().to_string();
    assert!(
        message.ends_with(
            "column care_date has unsupported type Timestamp(ms, \"UTC\") (expected Date32, Date64, a timestamp without a time zone (its day is the date) or a string)"
        ),
        "{message}"
    );
    // A required column absent from a Parquet file.
    let path = dir.path().join("short.parquet");
    write_parquet(
        &path,
        vec![("act_id", Arc::new(StringArray::from(vec!["A"])) as ArrayRef)],
    );
    match read_acts(&path, &opts()) {
        Err(ReadError::MissingColumn { column, .. }) => {
            assert_eq!(column, "patient_id, care_date, category, tariff");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_or_corrupt_parquet_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    sample_parquet(&good);
    let bytes = std::fs::read(&good).unwrap();
    let broken = dir.path().join("broken.parquet");
    // Every truncation is a file-level error.
    for len in (1..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        std::fs::write(&broken, &bytes[..len]).unwrap();
        match read_acts(&broken, &opts()) {
            Err(ReadError::Parquet { file, .. }) => {
                assert_eq!(file, broken.display().to_string())
            }
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    // Flipped bytes: an error or a read, never a panic, and the counts hold.
    for position in (4..bytes.len() - 8).step_by(5) {
        let mut corrupt = bytes.clone();
        corrupt[position] ^= 0x5A;
        std::fs::write(&broken, &corrupt).unwrap();
        if let Ok(loaded) = read_acts(&broken, &opts()) {
            check_counts(&loaded);
        }
    }
}

#[test]
fn beneficiaries_and_rights() {
    let loaded = read_beneficiaries(&fixture("beneficiaries_bad.csv"), &opts()).unwrap();
    check_counts(&loaded);
    assert_eq!(
        loaded
            .rows
            .iter()
            .map(|r| (
                r.row,
                r.value.patient_id.as_str(),
                r.value.birth_date,
                r.value.regime
            ))
            .collect::<Vec<_>>(),
        vec![
            (1, "P1", day(1980, 5, 6), Regime::General),
            (2, "P2", day(1990, 1, 1), Regime::AlsaceMoselle)
        ]
    );
    assert_eq!(
        summary(&loaded.rejects),
        vec![
            (3, "", "regime", "unknown_value", "monaco"),
            (4, "", "birth_date", "missing_value", ""),
        ]
    );

    let loaded = read_rights(&fixture("rights_bad.csv"), &opts()).unwrap();
    check_counts(&loaded);
    let rows: Vec<_> = loaded.rows.iter().map(|r| &r.value).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].right, RightKind::Css);
    assert_eq!(rows[0].end_date, Some(day(2024, 12, 31)));
    assert_eq!(rows[0].reference.as_deref(), Some("C-1"));
    assert_eq!(rows[1].right, RightKind::Maternity);
    assert_eq!(rows[1].end_date, None);
    assert_eq!(rows[1].reference, None);
    assert_eq!(
        summary(&loaded.rejects),
        vec![
            (2, "", "right", "unknown_value", "platinum"),
            (3, "", "end_date", "end_before_start", "2024-05-31"),
            (4, "", "start_date", "missing_value", ""),
        ]
    );
}

#[test]
fn counters_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![
        YearCounter {
            patient_id: "P1".into(),
            year: 2024,
            pf_used: dec!(50.00),
            franchise_used: dec!(12.50),
            charged_stays: vec!["S1".into(), "S2".into()],
            pf_cap_reached_on: Some(day(2024, 9, 3)),
            franchise_cap_reached_on: None,
            stay_starts: vec![
                ("S1".into(), day(2023, 12, 30)),
                ("S2".into(), day(2024, 8, 1)),
            ],
            open_stays: vec![(
                "S3".into(),
                StaySums {
                    first: None,
                    bases: dec!(70),
                    coefficients: dec!(1.5),
                    copayment: dec!(14),
                    daily_fees: dec!(0),
                    charged: dec!(0),
                    payers: vec![],
                },
            )],
        },
        YearCounter {
            patient_id: "P2".into(),
            year: 2023,
            pf_used: dec!(0.00),
            franchise_used: dec!(0.00),
            ..YearCounter::default()
        },
    ];
    let csv = write(
        dir.path(),
        "counters.csv",
        b"patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,franchise_cap_reached_on,stay_starts,open_stays\nP1,2024,50.00,12.50,S1;S2,2024-09-03,,S2=2024-08-01;S1=2023-12-30,S3=/70/1.5/14/0\nP2,2023,0.00,0.00,,,,,\n",
    );
    assert_eq!(read_counters(&csv).unwrap(), expected);

    let parquet = dir.path().join("counters.parquet");
    write_parquet(
        &parquet,
        vec![
            (
                "patient_id",
                Arc::new(StringArray::from(vec!["P1", "P2"])) as ArrayRef,
            ),
            ("year", Arc::new(Int32Array::from(vec![2024, 2023]))),
            ("pf_used", decimals(vec![Some(5000), Some(0)], 10, 2)),
            ("franchise_used", decimals(vec![Some(1250), Some(0)], 10, 2)),
            (
                "charged_stays",
                Arc::new(StringArray::from(vec![Some("S2;S1"), None])),
            ),
            (
                "pf_cap_reached_on",
                Arc::new(Date32Array::from(vec![Some(days(day(2024, 9, 3))), None])),
            ),
            (
                "franchise_cap_reached_on",
                Arc::new(Date32Array::from(vec![None::<i32>, None])),
            ),
        ],
    );
    // Format 1 (no `stay_starts` column): no start known.
    let mut format1 = expected.clone();
    format1[0].stay_starts.clear();
    format1[0].open_stays.clear();
    assert_eq!(read_counters(&parquet).unwrap(), format1);

    let bad = write(
        dir.path(),
        "bad_counters.csv",
        b"patient_id,year,pf_used,franchise_used\nP1,2024,50.00,12.50\nP2,2024,-1,0\n",
    );
    match read_counters(&bad) {
        Err(error @ ReadError::BadCounter { .. }) => {
            let message = error.to_string();
            assert!(message.contains("bad_counters.csv"), "{message}");
            assert!(message.contains("row 2"), "{message}");
            assert!(message.contains("pf_used"), "{message}");
            assert!(message.contains("negative_amount"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let missing = write(dir.path(), "missing.csv", b"patient_id,year,pf_used\n");
    assert!(matches!(
        read_counters(&missing),
        Err(ReadError::MissingColumn { .. })
    ));
}

#[test]
fn generic_chunks_for_other_tables() {
    let chunks = Chunks::<rac::model::RightPeriod>::open(&fixture("rights_bad.csv"), &opts())
        .unwrap()
        .with_chunk_rows(2);
    let reads: Vec<u64> = chunks.map(|c| c.unwrap().read).collect();
    assert_eq!(reads, vec![2, 2, 1]);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Arbitrary bytes after a valid header: never a panic, and the counts hold; or a
        /// quote never closed that would have swallowed later lines, refused.
        #[test]
        fn arbitrary_csv_bodies(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let dir = tempfile::tempdir().unwrap();
            let mut content = b"act_id,patient_id,care_date,category,tariff,quantity,ald_related\n".to_vec();
            content.extend(&body);
            let path = write(dir.path(), "acts.csv", &content);
            let loaded = match read_acts(&path, &ReadOptions {
                decimal_comma: true,
                ..ReadOptions::default()
            }) {
                Ok(loaded) => loaded,
                Err(ReadError::UnclosedQuote { .. }) => {
                    prop_assert!(body.contains(&b'"'));
                    return Ok(());
                }
                Err(other) => panic!("{other}"),
            };
            check_counts(&loaded);
            for reject in &loaded.rejects {
                prop_assert!(reject.value.chars().count() <= 200);
            }
        }

        /// Plausible-looking fields: each row is either a valid act or one reject.
        #[test]
        fn plausible_rows(
            rows in proptest::collection::vec(
                (
                    "[A-Z0-9]{0,3}",
                    "(2024-0[1-9]-[0-3][0-9])|x|",
                    "(consultation|drug_65|dental|bogus)?",
                    "-?[0-9]{0,3}([.,][0-9]{0,3})?",
                    "[0-9]{0,8}",
                    "(true|false|0|1|maybe)?",
                ),
                0..30,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut content = String::from("act_id,patient_id,care_date,category,tariff,quantity,ald_related\n");
            for (id, date, category, tariff, quantity, ald) in &rows {
                content.push_str(&format!("{id},P,{date},{category},{tariff},{quantity},{ald}\n"));
            }
            let path = write(dir.path(), "acts.csv", content.as_bytes());
            let loaded = read_acts(&path, &opts()).unwrap();
            check_counts(&loaded);
            prop_assert_eq!(loaded.read, rows.len() as u64);
            for row in &loaded.rows {
                prop_assert!(row.value.tariff >= Decimal::ZERO);
                prop_assert!((1..=1_000_000).contains(&row.value.quantity));
                prop_assert_eq!(row.value.tariff.scale(), 2);
            }
        }
    }
}
