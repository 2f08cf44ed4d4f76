//! SPEC §2: the acts' columns outside the spec are ignored, or carried through to `acts.*`
//! with `--keep-columns` — after the spec's columns, as text, in the order they first appear
//! across the acts files, in memory, spilled or streamed alike.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Date32Array, DictionaryArray, Float64Array, Int32Array,
    Int64Array, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use common::{compute_event, ok, rac, rac_owned, write_parquet};

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A generated CSV data set in `dir`; returns the acts' lines (header first).
fn generated(dir: &Path, acts: &str) -> Vec<Vec<String>> {
    let o = rac(&[
        "generate",
        "--acts",
        acts,
        "--patients",
        "150",
        "--seed",
        "5",
        "--out",
        &p(dir),
        "--format",
        "csv",
    ]);
    ok(&o, &[0]);
    let text = std::fs::read_to_string(dir.join("acts.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// `compute` of `acts` against the generated beneficiaries and rights of `data`.
fn compute(data: &Path, acts: &Path, out: &Path, extra: &[&str]) -> Output {
    rac_owned(&common::compute_args(acts, data, out, extra))
}

/// `compute --keep-columns` of the Parquet `acts` against `dir/beneficiaries.csv`, into
/// `dir/out`, then `extra`.
fn compute_parquet(dir: &Path, acts: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let out = dir.join("out");
    let extra = [&["--keep-columns"], extra].concat();
    (compute(dir, acts, &out, &extra), out)
}

/// A CSV file's header and its rows by their first column.
fn csv_by_id(path: &Path) -> (Vec<String>, HashMap<String, Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(str::to_string).collect();
            (cells[0].clone(), cells)
        })
        .collect();
    (header, rows)
}

#[test]
fn csv_columns_are_carried_after_the_spec_columns_in_memory_and_spilled() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let lines = generated(&data, "3000");
    // Two columns of the caisse's own: one before the spec's, one at the end, partly empty;
    // and one row rejected (a bad date), which is in rejects, not in acts.
    let mut expected: HashMap<String, (String, String)> = HashMap::new();
    let mut text: Vec<u8> = Vec::new();
    for (i, cells) in lines.iter().enumerate() {
        let mut cells = cells.clone();
        let (claim, caisse) = if i == 0 {
            ("claim_no".to_string(), "caisse".to_string())
        } else {
            let caisse = if i % 3 == 0 {
                String::new()
            } else {
                format!("CPAM{}", i % 7)
            };
            (format!("C{i:05}"), caisse)
        };
        if i == 5 {
            cells[2] = "2024-02-30".into();
        } else if i == 8 {
            // Not UTF-8: rejected, naming the carried column.
            cells.insert(1, claim);
            text.extend(cells.join(",").as_bytes());
            text.extend(b",CPAM\xe9\n");
            continue;
        } else if i > 0 {
            expected.insert(cells[0].clone(), (claim.clone(), caisse.clone()));
        }
        cells.insert(1, claim);
        cells.push(caisse);
        text.extend(cells.join(",").as_bytes());
        text.push(b'\n');
    }
    let acts = data.join("acts_carrying.csv");
    std::fs::write(&acts, text).unwrap();

    let memory = tmp.path().join("memory");
    ok(
        &compute(
            &data,
            &acts,
            &memory,
            &["--format", "csv", "--keep-columns"],
        ),
        &[3],
    );
    let (header, rows) = csv_by_id(&memory.join("acts.csv"));
    assert_eq!(header[..3], ["act_id", "patient_id", "care_date"]);
    assert_eq!(header[21..], ["recorded_amo", "claim_no", "caisse"]);
    assert_eq!(rows.len(), expected.len());
    for (id, (claim, caisse)) in &expected {
        let row = &rows[id];
        assert_eq!((&row[22], &row[23]), (claim, caisse), "act {id}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(memory.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["carried_columns"],
        serde_json::json!(["claim_no", "caisse"])
    );
    let rejects = std::fs::read_to_string(memory.join("rejects.csv")).unwrap();
    assert!(
        rejects.contains(",5,") && rejects.contains("bad_date"),
        "{rejects}"
    );
    assert!(
        rejects.contains(",8,") && rejects.contains(",caisse,bad_encoding,"),
        "{rejects}"
    );

    // Spilled to disk in many partitions: the same bytes.
    let spilled = tmp.path().join("spilled");
    let o = compute(
        &data,
        &acts,
        &spilled,
        &["--format", "csv", "--keep-columns", "--memory-limit", "1M"],
    );
    ok(&o, &[3]);
    let event = compute_event(&o);
    assert!(event["spilled_acts"].as_u64().unwrap() > 0, "{event}");
    for table in [
        "acts.csv",
        "patients.csv",
        "summary.csv",
        "counters.csv",
        "rejects.csv",
    ] {
        let (a, b) = (memory.join(table), spilled.join(table));
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{table}"
        );
    }

    // Sorted by patient (byte order) and streamed: the same acts.
    let carrying = std::fs::read(&acts).unwrap();
    let mut sorted_lines: Vec<&[u8]> = carrying.split(|&b| b == b'\n').collect();
    sorted_lines.retain(|l| !l.is_empty());
    let header_line = sorted_lines.remove(0);
    // patient_id is the third column here (claim_no was put second).
    sorted_lines.sort_by_key(|l| l.split(|&b| b == b',').nth(2).unwrap().to_vec());
    let sorted_acts = data.join("acts_sorted.csv");
    let mut sorted_bytes = header_line.to_vec();
    for line in sorted_lines {
        sorted_bytes.push(b'\n');
        sorted_bytes.extend_from_slice(line);
    }
    sorted_bytes.push(b'\n');
    std::fs::write(&sorted_acts, sorted_bytes).unwrap();
    let streamed = tmp.path().join("streamed");
    let o = compute(
        &data,
        &sorted_acts,
        &streamed,
        &[
            "--format",
            "csv",
            "--keep-columns",
            "--sorted",
            "--memory-limit",
            "1M",
        ],
    );
    ok(&o, &[3]);
    assert_eq!(compute_event(&o)["message"], "streaming sorted acts");
    assert!(
        std::fs::read(memory.join("acts.csv")).unwrap()
            == std::fs::read(streamed.join("acts.csv")).unwrap()
    );

    // `rac <command>` of these acts with the generated beneficiaries, then `extra`: its
    // standard output, its exit code checked.
    let run = |command: &[&str], extra: &[&str], code: i32| {
        let (acts, beneficiaries) = (p(&acts), p(&data.join("beneficiaries.csv")));
        let inputs = ["--acts", &acts, "--beneficiaries", &beneficiaries];
        let o = rac(&[command, &inputs[..], extra].concat());
        ok(&o, &[code]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // `validate` checks the carried cells with the flag, and only then.
    let validate = |extra: &[&str]| run(&["validate"], extra, 3);
    let checked = validate(&["--keep-columns"]);
    assert!(
        checked.contains(":8: column `caisse`: bad_encoding"),
        "{checked}"
    );
    assert!(checked.contains(" 2 problem(s)"), "{checked}");
    let unchecked = validate(&[]);
    assert!(unchecked.contains(" 1 problem(s)"), "{unchecked}");

    // `explain --keep-columns` shows the act's carried values, to find it in the caisse's
    // systems; the first act has both, the third an empty `caisse`.
    let explain =
        |act: usize, extra: &[&str]| run(&["explain", "--act-id", &lines[act][0]], extra, 0);
    let shown = explain(1, &["--keep-columns"]);
    assert!(
        shown.ends_with("carried columns:\n  claim_no = C00001\n  caisse = CPAM1\n"),
        "{shown}"
    );
    let shown = explain(3, &["--keep-columns"]);
    assert!(
        shown.ends_with("  claim_no = C00003\n  caisse = (empty)\n"),
        "{shown}"
    );
    assert!(!explain(1, &[]).contains("carried"));

    // Without the flag the columns are ignored.
    let ignored = tmp.path().join("ignored");
    ok(&compute(&data, &acts, &ignored, &["--format", "csv"]), &[3]);
    let (header, _) = csv_by_id(&ignored.join("acts.csv"));
    assert_eq!(header.last().unwrap(), "recorded_amo");
    // The same amounts for every act: carrying changes no computation. The act whose carried
    // cell is not UTF-8 is computed when nothing is carried.
    let (_, kept) = csv_by_id(&memory.join("acts.csv"));
    let (_, without) = csv_by_id(&ignored.join("acts.csv"));
    assert_eq!(without.len(), kept.len() + 1);
    for (id, row) in &kept {
        assert_eq!(row[..22], without[id][..], "act {id}");
    }
}

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn parquet_columns_of_any_type_are_carried_as_text_across_files() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts");
    std::fs::create_dir(&acts).unwrap();
    std::fs::write(
        tmp.path().join("beneficiaries.csv"),
        "patient_id,birth_date\nP1,1980-01-01\nP2,1990-06-15\n",
    )
    .unwrap();
    // The first file: an integer, a date, a float and a dictionary of strings of their own.
    let day = |d: i32| 19_783 + d; // 2024-03-01 + d
    write_parquet(
        &acts.join("a.parquet"),
        vec![
            ("act_id", strings(&["A1", "A2"])),
            ("patient_id", strings(&["P1", "P2"])),
            (
                "care_date",
                Arc::new(Date32Array::from(vec![day(0), day(1)])),
            ),
            ("category", strings(&["consultation", "consultation"])),
            ("tariff", Arc::new(Float64Array::from(vec![30.0, 30.0]))),
            (
                "claim_no",
                Arc::new(Int64Array::from(vec![Some(1001), None])),
            ),
            (
                "paid_on",
                Arc::new(Date32Array::from(vec![day(20), day(21)])),
            ),
            ("weight", Arc::new(Float64Array::from(vec![0.5, 1.25]))),
            (
                "caisse",
                Arc::new(
                    vec!["CPAM75", "CPAM13"]
                        .into_iter()
                        .collect::<DictionaryArray<Int32Type>>(),
                ),
            ),
        ],
    );
    // The second: one of those columns missing, another one new.
    write_parquet(
        &acts.join("b.parquet"),
        vec![
            ("batch", strings(&["B7"])),
            ("act_id", strings(&["A3"])),
            ("patient_id", strings(&["P1"])),
            ("care_date", Arc::new(Date32Array::from(vec![day(2)]))),
            ("category", strings(&["consultation"])),
            ("tariff", Arc::new(Float64Array::from(vec![30.0]))),
            ("caisse", strings(&["CPAM75"])),
            ("claim_no", Arc::new(Int64Array::from(vec![1003]))),
        ],
    );
    let (o, out) = compute_parquet(tmp.path(), &acts, &[]);
    ok(&o, &[0]);
    let batch = read_parquet(&out.join("acts.parquet"));
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names[22..],
        ["claim_no", "paid_on", "weight", "caisse", "batch"]
    );
    for field in &schema.fields()[22..] {
        assert_eq!(field.data_type(), &DataType::Utf8, "{}", field.name());
        assert!(field.is_nullable());
    }
    let column = |name: &str| -> Vec<Option<String>> {
        let a = batch.column_by_name(name).unwrap().as_string::<i32>();
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
            .collect()
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(column("act_id"), [s("A1"), s("A3"), s("A2")]);
    assert_eq!(column("claim_no"), [s("1001"), s("1003"), None]);
    assert_eq!(column("paid_on"), [s("2024-03-21"), None, s("2024-03-22")]);
    assert_eq!(column("weight"), [s("0.5"), None, s("1.25")]);
    assert_eq!(column("caisse"), [s("CPAM75"), s("CPAM75"), s("CPAM13")]);
    assert_eq!(column("batch"), [None, s("B7"), None]);
    // The computation is the spec's: 30 € at 70 % less the PF, 1 € before 2024-05-15.
    let amo = batch.column_by_name("amo_paid").unwrap();
    assert_eq!(
        arrow::util::display::array_value_to_string(amo, 0).unwrap(),
        "20.00"
    );
}

#[test]
fn parquet_bytes_structs_and_zoned_timestamps_are_carried_or_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("beneficiaries.csv"),
        "patient_id,birth_date\nP1,1980-01-01\n",
    )
    .unwrap();
    let day = 19_783; // 2024-03-01
    let bytes: Vec<Option<&[u8]>> = vec![Some(b"ok"), Some(b"\xff\xfe"), None];
    let a: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
    let record = StructArray::from(vec![(Arc::new(Field::new("a", DataType::Int32, false)), a)]);
    // 2024-03-01 08:00 in Paris is 07:00 UTC.
    let instant = 1_709_276_400_000i64;
    let zoned = TimestampMillisecondArray::from(vec![instant; 3]).with_timezone("Europe/Paris");
    let acts = tmp.path().join("acts.parquet");
    write_parquet(
        &acts,
        vec![
            ("act_id", strings(&["A1", "A2", "A3"])),
            ("patient_id", strings(&["P1", "P1", "P1"])),
            ("care_date", Arc::new(Date32Array::from(vec![day; 3]))),
            ("category", strings(&["consultation"; 3])),
            ("tariff", Arc::new(Float64Array::from(vec![30.0; 3]))),
            ("note", Arc::new(BinaryArray::from(bytes))),
            ("record", Arc::new(record)),
            ("sent_at", Arc::new(zoned)),
            // A column without a name is not carried.
            ("", strings(&["x", "y", "z"])),
        ],
    );
    let (o, out) = compute_parquet(tmp.path(), &acts, &["--format", "csv"]);
    ok(&o, &[3]);
    let (header, rows) = csv_by_id(&out.join("acts.csv"));
    assert_eq!(header[21..], ["recorded_amo", "note", "record", "sent_at"]);
    assert_eq!(rows["A1"][22..], ["ok", "{a: 1}", "2024-03-01T07:00:00Z"]);
    assert_eq!(rows["A3"][22..], ["", "{a: 3}", "2024-03-01T07:00:00Z"]);
    assert!(!rows.contains_key("A2"));
    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    assert!(rejects.contains(",2,A2,note,bad_encoding,"), "{rejects}");
}

#[test]
fn a_carried_column_named_like_an_output_column_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let lines = generated(&data, "50");
    // The generated acts with `header` and `value` appended to every line, as `name`.
    let appended = |name: &str, header: &str, value: &str| {
        let mut text = String::new();
        for (i, cells) in lines.iter().enumerate() {
            let extra = if i == 0 { header } else { value };
            text.push_str(&format!("{},{extra}\n", cells.join(",")));
        }
        let path = data.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let acts = appended("acts_rac.csv", "rac", "12.00");
    let out = tmp.path().join("out");
    let o = compute(&data, &acts, &out, &["--keep-columns"]);
    ok(&o, &[2]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("`rac`"), "{stderr}");
    assert!(!out.exists());
    // Without the flag, the column is ignored.
    ok(&compute(&data, &acts, &out, &[]), &[0]);

    // A name twice in one header: one of the two would be lost.
    let twice = appended("acts_twice.csv", "x,x", "1,2");
    let o = compute(&data, &twice, &out, &["--keep-columns"]);
    ok(&o, &[2]);
    // The failure is logged as JSON (the runs here log so): its message.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let failure: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let message = failure["message"].as_str().unwrap();
    assert!(message.contains("\"x\" appears twice"), "{message}");

    // Extracts are mapped column by column, Open DAMIR lines are aggregated: nothing to carry.
    for (command, profile) in [("compute", "snds"), ("audit", "damir")] {
        let o = rac(&[
            command,
            "--profile",
            profile,
            "--acts",
            &p(&data),
            "--out",
            &p(&out),
            "--keep-columns",
        ]);
        ok(&o, &[2]);
        assert!(String::from_utf8_lossy(&o.stderr).contains("canonical"));
    }
}
