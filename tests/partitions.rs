//! Issue 3: a run cut into partitions and spilled to disk under a tiny `--memory-limit` writes
//! the same bytes as a run held in memory, whatever the number of partitions and threads;
//! duplicates across partitions, unknown patients and bad rows are found all the same.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{compute_event, events, ok, rac, rac_owned};

/// A generated data set (CSV), with rows added that only a whole-input view can judge: an
/// `act_id` reused for another patient (likely in another partition), an act of an unknown
/// patient, an unreadable row, and a second row for a beneficiary.
fn data_set(dir: &Path) {
    let d = dir.display().to_string();
    let o = rac(&[
        "generate",
        "--acts",
        "6000",
        "--patients",
        "700",
        "--seed",
        "11",
        "--out",
        &d,
        "--format",
        "csv",
    ]);
    ok(&o, &[0]);
    let acts_path = dir.join("acts.csv");
    let acts = std::fs::read_to_string(&acts_path).unwrap();
    let lines: Vec<&str> = acts.lines().collect();
    let first: Vec<&str> = lines[1].split(',').collect();
    let last: Vec<&str> = lines[lines.len() - 1].split(',').collect();
    assert_ne!(first[1], last[1], "two different patients");
    // The first act's id, for the last act's patient: a duplicate, rejected.
    let mut dup = last.clone();
    dup[0] = first[0];
    let mut unknown = last.clone();
    unknown[0] = "AUNKNOWN";
    unknown[1] = "PNOBODY";
    let mut bad = last.clone();
    bad[0] = "ABAD";
    bad[2] = "2024-13-45";
    let mut text = acts.clone();
    for row in [dup, unknown, bad] {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(&acts_path, text).unwrap();
    let bens_path = dir.join("beneficiaries.csv");
    let bens = std::fs::read_to_string(&bens_path).unwrap();
    let second = bens.lines().nth(1).unwrap().to_string();
    // A repeated beneficiary, and one whose birth date is not a date (rejected, but its id is
    // among those sampled to place the boundaries).
    let refused = "P0000000350x,1980-02-30,general";
    std::fs::write(&bens_path, format!("{bens}{second}\n{refused}\n")).unwrap();
}

fn compute(data: &Path, out: &Path, counters: Option<&Path>, extra: &[&str]) -> Output {
    rac_owned(&compute_args(data, out, counters, extra))
}

/// A first run whose closing counters open the runs under test: on a copy of the acts of
/// `data` with a blank line at the end (the same rows, other bytes), since counters that
/// already hold the very acts a run reads are refused (they would count twice).
fn first_run(data: &Path, first: &Path) -> Output {
    let copy = data.with_file_name("first_acts.csv");
    let mut bytes = std::fs::read(data.join("acts.csv")).unwrap();
    bytes.push(b'\n');
    std::fs::write(&copy, bytes).unwrap();
    rac_owned(&common::compute_args(&copy, data, first, &[]))
}

/// The arguments of a `compute` run on the CSV data set in `data`, with JSON logs.
fn compute_args(data: &Path, out: &Path, counters: Option<&Path>, extra: &[&str]) -> Vec<String> {
    let mut args = common::compute_args(&data.join("acts.csv"), data, out, extra);
    if let Some(c) = counters {
        args.extend(["--counters".into(), c.display().to_string()]);
    }
    args
}

const TABLES: [&str; 5] = [
    "acts.parquet",
    "patients.parquet",
    "summary.parquet",
    "counters.parquet",
    "rejects.csv",
];

/// Every table of `others` is the same bytes as `reference`'s (and not empty).
fn same_tables(reference: &Path, others: &[&Path]) {
    for table in TABLES {
        let expected = std::fs::read(reference.join(table)).unwrap();
        assert!(!expected.is_empty());
        for other in others {
            assert!(
                std::fs::read(other.join(table)).unwrap() == expected,
                "{table} differs in {}",
                other.display()
            );
        }
    }
}

/// The rows of [`data_set`] that only a whole-input view can judge are rejected, each once,
/// and the manifest's counts add up.
fn special_rows_rejected_once(out: &Path) {
    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    for reason in [
        "duplicate_act_id",
        "unknown_patient",
        "care_date,bad_date",
        "duplicate_patient_id",
        "birth_date,bad_date",
    ] {
        assert_eq!(rejects.matches(reason).count(), 1, "{reason} in\n{rejects}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"]["read"], 6003);
    assert_eq!(manifest["rows"]["computed"], 6000);
    assert_eq!(manifest["rows"]["rejected"], 3);
    assert_eq!(manifest["rows"]["rejected_other_rows"], 2);
}

#[test]
fn a_spilled_run_writes_the_bytes_of_an_in_memory_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    // Counters of a first run open the second: they are partitioned too.
    let first = tmp.path().join("first");
    ok(&first_run(&data, &first), &[3]);
    let counters = first.join("counters.parquet");

    let memory = tmp.path().join("memory");
    let o = compute(&data, &memory, Some(&counters), &[]);
    ok(&o, &[3]);
    assert_eq!(compute_event(&o)["partitions"], serde_json::Value::Null);

    // Spilled; through the page cache instead of around it; compressed.
    let spilled = tmp.path().join("spilled");
    let cached = tmp.path().join("cached");
    let lz4 = tmp.path().join("lz4");
    let zstd = tmp.path().join("zstd");
    let mut spilled_bytes = Vec::new();
    for (out, io, compression) in [
        (&spilled, "direct", "none"),
        (&cached, "cached", "none"),
        (&lz4, "direct", "lz4"),
        (&zstd, "cached", "zstd"),
    ] {
        let args = [
            "--memory-limit",
            "1M",
            "--threads",
            "2",
            "--spill-io",
            io,
            "--spill-compression",
            compression,
        ];
        let o = compute(&data, out, Some(&counters), &args);
        ok(&o, &[3]);
        let event = compute_event(&o);
        assert!(event["partitions"].as_u64().unwrap() > 4, "{event}");
        assert!(event["spilled_acts"].as_u64().unwrap() > 0, "{event}");
        spilled_bytes.push(event["spilled_bytes"].as_u64().unwrap());
        // The spill folder is gone.
        let names = names_in(out);
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
    // The bytes of the acts' spill files, logged: the same through the cache or around it,
    // fewer compressed (the batches are small here: LZ4 saves less than on large inputs).
    let [direct, cached_bytes, lz4_bytes, zstd_bytes] = spilled_bytes[..] else {
        unreachable!()
    };
    assert_eq!(direct, cached_bytes);
    assert!(lz4_bytes * 3 < direct * 2, "lz4 {lz4_bytes}, none {direct}");
    assert!(zstd_bytes < lz4_bytes, "zstd {zstd_bytes}, lz4 {lz4_bytes}");

    let seven = tmp.path().join("seven");
    let o = compute(
        &data,
        &seven,
        Some(&counters),
        &["--partitions", "7", "--threads", "1"],
    );
    ok(&o, &[3]);
    assert_eq!(compute_event(&o)["partitions"], 7);

    // Eight workers: two threads load the partitions (and search the id buckets), each its
    // own, handed to the computing in order.
    let two_loaders = tmp.path().join("two-loaders");
    let args = ["--memory-limit", "1M", "--threads", "8"];
    let o = compute(&data, &two_loaders, Some(&counters), &args);
    ok(&o, &[3]);
    let event = compute_event(&o);
    assert_eq!(event["loaders"], 2, "{event}");
    assert!(event["partitions"].as_u64().unwrap() > 4, "{event}");
    let computed = events(&o)
        .into_iter()
        .find(|e| e["message"] == "partitions computed")
        .expect("the computing's end is logged");
    assert_eq!(computed["loaders"], 2, "{computed}");
    // The loaders' CPU time is part of the process's over the phase (to the millisecond).
    let ms = |event: &serde_json::Value, field: &str| event[field].as_u64().expect(field);
    assert!(ms(&computed, "compute_ms") > 0, "{computed}");
    assert!(ms(&computed, "cpu_ms") > 0, "{computed}");
    // So are the thread's that hands the partitions out, and the writer's sums.
    for part in ["dispatch_cpu_ms", "totals_cpu_ms"] {
        assert!(
            ms(&computed, part) <= ms(&computed, "cpu_ms") + 1,
            "{computed}"
        );
    }
    assert!(
        ms(&computed, "loading_cpu_ms") <= ms(&computed, "cpu_ms") + 1,
        "{computed}"
    );
    // The reading's, the same way: the routing thread's CPU time within the process's.
    let read = events(&o)
        .into_iter()
        .find(|e| e["message"] == "acts partitioned")
        .expect("the reading's end is logged");
    assert!(ms(&read, "read_ms") > 0, "{read}");
    assert!(ms(&read, "cpu_ms") > 0, "{read}");
    assert!(
        ms(&read, "routing_cpu_ms") <= ms(&read, "cpu_ms") + 1,
        "{read}"
    );

    // About 6 000 acts (6.6 MB at 1 100 bytes an act) fit in a quarter of 32 MiB but not in
    // a sixth (two loaders' share): a run held in memory has no loader beside it, so eight
    // workers hold it in memory too.
    let held = tmp.path().join("held");
    let args = ["--memory-limit", "32M", "--threads", "8"];
    let o = compute(&data, &held, Some(&counters), &args);
    ok(&o, &[3]);
    assert_eq!(compute_event(&o)["partitions"], serde_json::Value::Null);

    same_tables(
        &memory,
        &[&spilled, &seven, &cached, &lz4, &zstd, &two_loaders, &held],
    );
    special_rows_rejected_once(&spilled);
}

/// A run may reject most of its acts (here, a beneficiaries file that lacks most patients):
/// the rejects held past their share of the memory limit are sorted into files, merged at the
/// end, and `rejects.csv` is the same bytes as in a run that holds them all.
#[test]
fn rejects_past_their_budget_are_sorted_in_files_and_merged_into_the_bytes_of_a_held_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    // Two beneficiaries in 50 (the first kept, repeated at the end, and the refused row): most
    // acts' patients unknown.
    let bens_path = data.join("beneficiaries.csv");
    let bens = std::fs::read_to_string(&bens_path).unwrap();
    let lines: Vec<&str> = bens.lines().collect();
    let kept: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 50 < 2 || *i + 2 >= lines.len())
        .map(|(_, l)| *l)
        .collect();
    std::fs::write(&bens_path, kept.join("\n") + "\n").unwrap();

    let held = tmp.path().join("held");
    let o = compute(&data, &held, None, &[]);
    ok(&o, &[3]);
    assert_eq!(compute_event(&o)["partitions"], serde_json::Value::Null);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(held.join("manifest.json")).unwrap())
            .unwrap();
    let rejected = manifest["rows"]["rejected"].as_u64().unwrap();
    assert!(rejected > 5_000, "{manifest}");
    assert_eq!(
        manifest["rows"]["computed"].as_u64().unwrap() + rejected,
        6003
    );
    assert_eq!(manifest["rows"]["rejected_other_rows"], 2);
    let text = std::fs::read_to_string(held.join("rejects.csv")).unwrap();
    assert_eq!(text.lines().count() as u64, rejected + 2 + 1);
    for reason in [
        "duplicate_act_id",
        "care_date,bad_date",
        "duplicate_patient_id",
        "birth_date,bad_date",
    ] {
        assert_eq!(text.matches(reason).count(), 1, "{reason}");
    }

    // A 1 MiB budget (the least) under `--memory-limit 1M`: about 5 900 rejects of some 200
    // bytes each are more.
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = tmp.path().join(format!("spilled-{threads}"));
        let args = ["--memory-limit", "1M", "--threads", threads];
        let o = compute(&data, &out, None, &args);
        ok(&o, &[3]);
        let computed = events(&o)
            .into_iter()
            .find(|e| e["message"] == "partitions computed")
            .expect("the computing's end is logged");
        assert!(
            computed["reject_files"].as_u64().unwrap() >= 1,
            "{computed}"
        );
        let names = names_in(&out);
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        outs.push(out);
    }
    same_tables(&held, &outs.iter().map(|o| o.as_path()).collect::<Vec<_>>());
    assert_eq!(
        names_in(tmp.path()),
        ["data", "held", "spilled-1", "spilled-2"]
    );
}

/// Beneficiaries that are not the acts' patients (here none: a header alone) place no
/// boundary among them: the acts' own patients do, in either order of the acts. Before, every
/// act went to one partition, whatever the memory limit.
#[test]
fn acts_of_patients_missing_from_the_beneficiaries_are_spread_over_the_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let bens_path = data.join("beneficiaries.csv");
    let bens = std::fs::read_to_string(&bens_path).unwrap();
    std::fs::write(&bens_path, bens.lines().next().unwrap().to_string() + "\n").unwrap();
    for sorted in [false, true] {
        if sorted {
            sort_acts(&data);
        }
        let held = tmp.path().join(format!("held-{sorted}"));
        ok(&compute(&data, &held, None, &[]), &[3]);
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(held.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["rows"]["rejected"], 6003);
        let out = tmp.path().join(format!("tiny-{sorted}"));
        let o = compute(
            &data,
            &out,
            None,
            &["--memory-limit", "1M", "--threads", "2"],
        );
        ok(&o, &[3]);
        let event = compute_event(&o);
        let streamed = event["message"] == "streaming sorted acts";
        assert_eq!(streamed, sorted, "{event}");
        // In no order, the first acts tell: none of their patients is a beneficiary (the
        // acts' patients are then read again for the boundaries). Sorted, the first pass saw
        // every act's patient.
        let sampled = events(&o).into_iter().find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("placed by the acts' patients")
        });
        match sampled {
            Some(e) => {
                assert!(!sorted);
                assert!(e["acts_judged"].as_u64().unwrap() > 5_000, "{e}");
                assert_eq!(e["patients_missing"], e["acts_judged"], "{e}");
            }
            None => assert!(sorted),
        }
        let parts = event["partitions"].as_u64().unwrap();
        assert!(parts > 4, "{event}");
        let computed = events(&o)
            .into_iter()
            .find(|e| e["message"] == "partitions computed")
            .expect("the computing's end is logged");
        // About 6 000 acts over the partitions: none holds twice its share.
        let largest = computed["largest_partition_acts"].as_u64().unwrap();
        assert!(
            largest * parts < 2 * 6_003,
            "{parts} partitions: {computed}"
        );
        same_tables(&held, &[&out]);
    }
}

/// `rac generate` of 70 000 acts of 7 000 patients as CSV into `data`, with `seed`.
fn generated_70k(data: &Path, seed: &str) -> PathBuf {
    let d = data.display().to_string();
    let args = [
        "generate",
        "--acts",
        "70000",
        "--patients",
        "7000",
        "--seed",
        seed,
        "--out",
        &d,
        "--format",
        "csv",
    ];
    ok(&rac(&args), &[0]);
    data.to_path_buf()
}

/// In `dir`: the 70 000 generated acts in one file `acts/a.csv`, followed by `tail` acts of
/// other ids and patients ("X…" ids, "XX…" past 70 000; "ZP…" patients, after every
/// beneficiary's "P…": rejected, and all in the last partition), and a held run of them in
/// `held`. Returns (data, acts folder, held).
fn crowded_last_partition(dir: &Path, tail: usize) -> (PathBuf, PathBuf, PathBuf) {
    let data = generated_70k(&dir.join("data"), "5");
    let mut acts = std::fs::read_to_string(data.join("acts.csv")).unwrap();
    let others: String = acts
        .lines()
        .skip(1)
        .cycle()
        .take(tail)
        .enumerate()
        .map(|(i, line)| {
            let (act, rest) = line.split_once(',').unwrap();
            format!("{}{act},Z{rest}\n", "X".repeat(1 + i / 70_000))
        })
        .collect();
    acts.push_str(&others);
    let folder = dir.join("acts");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), &acts).unwrap();

    let held = dir.join("held");
    ok(
        &rac_owned(&common::compute_args(&folder, &data, &held, &[])),
        &[3],
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(held.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["rows"]["read"], 70_000 + tail);
    assert_eq!(manifest["rows"]["rejected"], tail);
    (data, folder, held)
}

/// A folder of two acts files, the second of patients not among the beneficiaries (ids past
/// theirs): the first acts of each file are judged, not only the first file's 65 536, so the
/// acts' patients place the boundaries and the second file's acts are spread over the
/// partitions instead of filling the last one.
#[test]
fn a_later_acts_file_of_unknown_patients_is_spread_over_the_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = generated_70k(&tmp.path().join("data"), "5");
    let acts = std::fs::read_to_string(data.join("acts.csv")).unwrap();
    let folder = tmp.path().join("acts");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), &acts).unwrap();
    // 10 000 acts of other ids and patients ("ZP…", after every beneficiary's "P…").
    let mut other = acts.lines().next().unwrap().to_string() + "\n";
    for line in acts.lines().skip(1).take(10_000) {
        let (act, rest) = line.split_once(',').unwrap();
        other.push_str(&format!("X{act},Z{rest}\n"));
    }
    std::fs::write(folder.join("b.csv"), other).unwrap();

    let held = tmp.path().join("held");
    ok(
        &rac_owned(&common::compute_args(&folder, &data, &held, &[])),
        &[3],
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(held.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["rows"]["read"], 80_000);
    assert_eq!(manifest["rows"]["rejected"], 10_000);

    let out = tmp.path().join("tiny");
    let extra = ["--memory-limit", "1M", "--threads", "2"];
    let o = rac_owned(&common::compute_args(&folder, &data, &out, &extra));
    ok(&o, &[3]);
    let placed = events(&o)
        .into_iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("placed by the acts' patients")
        })
        .expect("the second file's first acts are judged");
    // Half the 65 536 judged acts from each file (the second has 10 000), the second's
    // patients all missing.
    assert_eq!(placed["acts_judged"], 32_768 + 10_000, "{placed}");
    assert_eq!(placed["patients_missing"], 10_000, "{placed}");
    let parts = compute_event(&o)["partitions"].as_u64().unwrap();
    assert!(parts > 8, "{parts}");
    let computed = events(&o)
        .into_iter()
        .find(|e| e["message"] == "partitions computed")
        .expect("the computing's end is logged");
    // Before, the 10 000 acts of the second file were all in the last partition. Now about
    // 800 at most (the first file alone: 627 at most over 294 partitions, patients' acts
    // being unevenly many).
    let largest = computed["largest_partition_acts"].as_u64().unwrap();
    assert!(largest < 2_500, "{parts} partitions: {computed}");
    same_tables(&held, &[&out]);
}

/// One acts file whose later rows are of patients not among the beneficiaries (ids past
/// theirs): its first acts are all of known patients, so the beneficiaries place the
/// boundaries and the later acts all fall in the last partition. That partition, far fuller
/// than planned, is cut by its acts' patients before it is loaded, instead of being held whole.
#[test]
fn a_partition_far_fuller_than_planned_is_cut_before_it_is_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, folder, held) = crowded_last_partition(tmp.path(), 10_000);

    let out = tmp.path().join("tiny");
    let extra = ["--memory-limit", "1M", "--threads", "2"];
    let o = rac_owned(&common::compute_args(&folder, &data, &out, &extra));
    ok(&o, &[3]);
    let logged = events(&o);
    // The first 65 536 acts are all of known patients: the beneficiaries place the boundaries.
    assert!(
        !logged.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("placed by the acts' patients")),
        "the acts judged are all of known patients"
    );
    let cuts: Vec<_> = logged
        .iter()
        .filter(|e| {
            e["message"] == "a partition holds more acts than planned: cut by its acts' patients"
        })
        .collect();
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    let cut = cuts[0];
    let planned = cut["acts_planned"].as_u64().unwrap();
    let cut_acts = cut["acts"].as_u64().unwrap();
    // The last partition: its share of the first 70 000 acts and the 10 000 others.
    assert!(
        cut_acts > 10_000 && cut_acts < 10_000 + 2 * planned,
        "{cut}"
    );
    assert_eq!(cut["pieces"], cut_acts.div_ceil(planned), "{cut}");
    let parts = compute_event(&o)["partitions"].as_u64().unwrap();
    let computed = logged
        .iter()
        .find(|e| e["message"] == "partitions computed")
        .expect("the computing's end is logged");
    // Before, the last partition was loaded whole (10 000 acts and more).
    let largest = computed["largest_partition_acts"].as_u64().unwrap();
    assert!(largest < 4 * planned, "{parts} partitions: {computed}");
    same_tables(&held, &[&out]);
}

/// One acts file whose later rows are more acts of the patients with the highest ids (known
/// ones), with opening counters: the partitions of those ids, far fuller than planned, are
/// cut into pieces of about as many acts, and every table (counters included) is the bytes of
/// a held run.
#[test]
fn partitions_crowded_with_known_patients_are_cut_into_the_bytes_of_a_held_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = generated_70k(&tmp.path().join("data"), "6");
    let mut acts = std::fs::read_to_string(data.join("acts.csv")).unwrap();
    let mut patients: Vec<&str> = acts
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(1).unwrap())
        .collect();
    patients.sort_unstable();
    patients.dedup();
    // The last 5 % of the patients by id: their acts five times more, under other ids.
    let last = patients[patients.len() * 19 / 20].to_string();
    let mut tail = String::new();
    for copy in 0..5 {
        for line in acts.lines().skip(1) {
            let (act, rest) = line.split_once(',').unwrap();
            if rest.split(',').next().unwrap() >= last.as_str() {
                tail.push_str(&format!("X{copy}{act},{rest}\n"));
            }
        }
    }
    let added = tail.lines().count() as u64;
    assert!(added > 10_000, "{added}");
    acts.push_str(&tail);
    let folder = tmp.path().join("acts");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), &acts).unwrap();

    // Opening counters: those a first run of the generated acts closed with.
    let first = tmp.path().join("first");
    ok(
        &rac_owned(&common::compute_args(
            &data.join("acts.csv"),
            &data,
            &first,
            &["--format", "csv"],
        )),
        &[0, 3],
    );
    let counters = first.join("counters.csv").display().to_string();

    let held = tmp.path().join("held");
    let extra = ["--counters", counters.as_str()];
    ok(
        &rac_owned(&common::compute_args(&folder, &data, &held, &extra)),
        &[0, 3],
    );
    let out = tmp.path().join("tiny");
    let extra = [
        "--counters",
        counters.as_str(),
        "--memory-limit",
        "1M",
        "--threads",
        "2",
    ];
    let o = rac_owned(&common::compute_args(&folder, &data, &out, &extra));
    ok(&o, &[0, 3]);
    let logged = events(&o);
    let cuts: Vec<_> = logged
        .iter()
        .filter(|e| {
            e["message"] == "a partition holds more acts than planned: cut by its acts' patients"
        })
        .collect();
    assert!(cuts.len() >= 2, "{cuts:?}");
    let planned = cuts[0]["acts_planned"].as_u64().unwrap();
    for cut in &cuts {
        assert!(cut["pieces"].as_u64().unwrap() >= 2, "{cut}");
    }
    let computed = logged
        .iter()
        .find(|e| e["message"] == "partitions computed")
        .expect("the computing's end is logged");
    // Without the cut, 1 872. Now no more than a partition too small to cut (under 1 024
    // acts), two shares, or the acts of the heaviest patient (not cut).
    let mut per_patient: std::collections::HashMap<&str, u64> = Default::default();
    for line in acts.lines().skip(1) {
        *per_patient
            .entry(line.split(',').nth(1).unwrap())
            .or_default() += 1;
    }
    let heaviest = per_patient.values().copied().max().unwrap();
    let largest = computed["largest_partition_acts"].as_u64().unwrap();
    let bound = heaviest.max(1023).max(2 * planned);
    assert!(
        largest <= bound,
        "{planned} planned, heaviest patient {heaviest}: {computed}"
    );
    assert_eq!(
        compute_event(&o)["partitions_cut"].as_u64().unwrap(),
        cuts.len() as u64
    );
    same_tables(&held, &[&out]);
    assert_eq!(
        std::fs::read(held.join("counters.parquet")).unwrap(),
        std::fs::read(out.join("counters.parquet")).unwrap()
    );
}

/// A folder holding the same acts file twice (a copy left beside the month's file): every row
/// of the second copy is a duplicate, rejected, and the tables are those of one copy, spilled
/// or not.
#[test]
fn the_same_acts_read_twice_compute_as_one_copy_with_the_second_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let folder = tmp.path().join("acts");
    std::fs::create_dir(&folder).unwrap();
    for name in ["a.csv", "b.csv"] {
        std::fs::copy(data.join("acts.csv"), folder.join(name)).unwrap();
    }
    let once = tmp.path().join("once");
    ok(&compute(&data, &once, None, &[]), &[3]);
    for (name, extra) in [
        ("held", &[][..]),
        ("spilled", &["--memory-limit", "1M", "--threads", "2"][..]),
    ] {
        let out = tmp.path().join(name);
        let o = rac_owned(&common::compute_args(&folder, &data, &out, extra));
        ok(&o, &[3]);
        let parts = compute_event(&o)["partitions"].as_u64();
        assert_eq!(parts.is_some_and(|p| p > 4), name == "spilled", "{parts:?}");
        for table in TABLES.iter().filter(|t| **t != "rejects.csv") {
            assert!(
                std::fs::read(out.join(table)).unwrap() == std::fs::read(once.join(table)).unwrap(),
                "{name}: {table}"
            );
        }
        let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
        let second = rejects.lines().filter(|l| l.contains("b.csv,")).count();
        // Each row of b.csv: 6 002 duplicates (the bad-date row is rejected as such again).
        assert_eq!(second, 6_003, "{name}");
        assert_eq!(
            rejects
                .lines()
                .filter(|l| l.contains("b.csv,") && l.contains("duplicate_act_id"))
                .count(),
            6_002,
            "{name}"
        );
    }
}

#[test]
fn a_bad_memory_limit_or_spill_compression_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value) in [("--memory-limit", "lots"), ("--spill-compression", "gzip")] {
        let o = compute(tmp.path(), &tmp.path().join("out"), None, &[flag, value]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains(flag));
    }
    // Too small to be a limit (it was refused for the open files its partitions would need,
    // more partitions than acts), or too large to be a number of bytes (it was taken).
    for (value, says) in [
        ("1", "--memory-limit 1: at least 1M (1 MiB)"),
        ("1023K", "--memory-limit 1023K: at least 1M (1 MiB)"),
        ("100000000000T", "--memory-limit 100000000000T: too large"),
    ] {
        let o = compute(
            tmp.path(),
            &tmp.path().join("out"),
            None,
            &["--memory-limit", value],
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    // The values it takes, named; `auto` first.
    let o = compute(
        tmp.path(),
        &tmp.path().join("out"),
        None,
        &["--spill-compression", "gzip"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("[possible values: auto, none, lz4, zstd]"),
        "{stderr}"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn with_the_acts_and_the_beneficiaries_both_unreadable_every_path_names_the_beneficiaries() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let edit = |file: &str, from: &str, to: &str| {
        let path = data.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    // The beneficiaries lose `birth_date`: a run held in memory reads them first, and so must
    // partitioned, streamed and carrying runs, whose acts' first pass (and the carried sample)
    // read the acts before the beneficiaries are routed.
    edit("beneficiaries.csv", ",birth_date,", ",born,");
    let names_the_beneficiaries = |extra: &[&str]| {
        let o = compute(&data, &tmp.path().join("out"), None, extra);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("beneficiaries.csv: missing required column birth_date"),
            "{extra:?}: {stderr}"
        );
    };
    // Acts declared sorted that are not: the first pass fails on their order.
    names_the_beneficiaries(&["--sorted"]);
    // Acts without `patient_id`: the first pass fails on its header.
    edit("acts.csv", ",patient_id,", ",pid,");
    for extra in [
        &[][..],
        &["--memory-limit", "1M"][..],
        &["--sorted"][..],
        &["--keep-columns"][..],
        &["--keep-columns", "--memory-limit", "1M"][..],
    ] {
        names_the_beneficiaries(extra);
    }
}

#[test]
fn a_partitioned_run_that_fails_leaves_the_previous_outputs_and_no_spill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let out = tmp.path().join("out");
    ok(&compute(&data, &out, None, &["--partitions", "3"]), &[3]);
    let before = std::fs::read(out.join("acts.parquet")).unwrap();
    // The acts file loses a required column: found while reading, after the beneficiaries
    // were already routed (and the staging folder made).
    let acts = data.join("acts.csv");
    let text = std::fs::read_to_string(&acts).unwrap();
    let broken: String = text
        .lines()
        .map(|l| l.split_once(',').map_or(l, |(_, rest)| rest).to_string() + "\n")
        .collect();
    std::fs::write(&acts, broken).unwrap();
    let o = compute(&data, &out, None, &["--partitions", "3"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("act_id"));
    assert_eq!(std::fs::read(out.join("acts.parquet")).unwrap(), before);
    assert_eq!(names_in(tmp.path()), ["data", "out"]);
}

/// The data set's acts rewritten in `patient_id` order (a stable sort: a patient's rows keep
/// their file order).
fn sort_acts(data: &Path) {
    let path = data.join("acts.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut rows: Vec<&str> = lines.collect();
    rows.sort_by_key(|l| l.split(',').nth(1).unwrap().to_string());
    std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
}

#[test]
fn sorted_acts_are_streamed_without_spill_and_write_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    sort_acts(&data);
    let first = tmp.path().join("first");
    ok(&first_run(&data, &first), &[3]);
    let counters = first.join("counters.parquet");

    let memory = tmp.path().join("memory");
    ok(&compute(&data, &memory, Some(&counters), &[]), &[3]);
    let mut runs = Vec::new();
    for (name, extra) in [
        ("one", &["--sorted"][..]),
        ("tiny", &["--sorted", "--memory-limit", "1M"][..]),
        (
            "seven",
            &["--sorted", "--partitions", "7", "--threads", "1"][..],
        ),
        // Not declared: the first pass finds the order.
        ("found", &["--partitions", "7"][..]),
        ("found-tiny", &["--memory-limit", "1M"][..]),
    ] {
        let out = tmp.path().join(name);
        let o = compute(&data, &out, Some(&counters), extra);
        ok(&o, &[3]);
        let event = compute_event(&o);
        assert_eq!(event["message"], "streaming sorted acts", "{event}");
        let detected = !extra.contains(&"--sorted");
        assert_eq!(event["order_detected"], u64::from(detected), "{event}");
        // One id occurs twice (the duplicate row); nothing is spilled.
        assert_eq!(event["repeated_ids"], 1, "{event}");
        assert_eq!(event["spilled_acts"], serde_json::Value::Null, "{event}");
        if name.ends_with("tiny") {
            assert!(event["partitions"].as_u64().unwrap() > 4, "{event}");
        }
        runs.push(out);
    }
    let others: Vec<&Path> = runs.iter().map(|r| r.as_path()).collect();
    same_tables(&memory, &others);
    special_rows_rejected_once(&runs[1]);
}

#[test]
fn sorted_acts_are_found_with_their_id_hashes_spilled_in_several_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.display().to_string();
    let args = ["--acts", "30000", "--patients", "3000", "--seed", "5"];
    ok(
        &rac(&[&["generate"][..], &args, &["--out", &d, "--format", "csv"]].concat()),
        &[0],
    );
    sort_acts(&data);
    // Appended, so last: a row without patient_id (out of order if it were judged; it is
    // rejected, in both passes) and the first act's id again for the last patient (in order,
    // a duplicate two partitions apart).
    let path = data.join("acts.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut nobody: Vec<&str> = lines[lines.len() - 1].split(',').collect();
    nobody[0] = "ANOBODY";
    nobody[1] = "";
    let mut dup: Vec<&str> = lines[lines.len() - 1].split(',').collect();
    dup[0] = lines[1].split(',').next().unwrap();
    std::fs::write(
        &path,
        format!("{text}{}\n{}\n", nobody.join(","), dup.join(",")),
    )
    .unwrap();

    let memory = tmp.path().join("memory");
    ok(&compute(&data, &memory, None, &[]), &[3]);
    let rejects = std::fs::read_to_string(memory.join("rejects.csv")).unwrap();
    assert_eq!(rejects.lines().count(), 3, "{rejects}");
    assert_eq!(rejects.matches("duplicate_act_id").count(), 1, "{rejects}");
    // 130 partitions: three buckets of hashes; 30 000 hashes (240 KB) spill under the
    // 1 MiB limit's 170 KB read buffer.
    let found = tmp.path().join("found");
    let o = compute(
        &data,
        &found,
        None,
        &["--memory-limit", "1M", "--partitions", "130"],
    );
    ok(&o, &[3]);
    let event = compute_event(&o);
    assert_eq!(event["message"], "streaming sorted acts", "{event}");
    assert_eq!(event["order_detected"], 1, "{event}");
    assert_eq!(event["repeated_ids"], 1, "{event}");
    assert!(event["partitions"].as_u64().unwrap() > 64, "{event}");
    same_tables(&memory, &[&found]);
    assert!(!found.join(".spill").exists());

    // Streamed, the acts are cut in partitions of 16 MiB (30 000 acts at 1 100 bytes: two),
    // where spilled ones would make one of 64 MiB (held in memory).
    let declared = tmp.path().join("declared");
    let o = compute(&data, &declared, None, &["--sorted"]);
    ok(&o, &[3]);
    let event = compute_event(&o);
    assert_eq!(event["message"], "streaming sorted acts", "{event}");
    assert_eq!(event["partitions"], 2, "{event}");
    same_tables(&memory, &[&declared]);

    // Where the open-file limit cannot take the smaller partitions' spill files (two
    // partitions need 67, one 66), the planned one is kept, and said so.
    #[cfg(unix)]
    {
        let kept = tmp.path().join("kept");
        let o = rac_with_open_files(&compute_args(&data, &kept, None, &["--sorted"]), 66, 66);
        ok(&o, &[3]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let fallback: serde_json::Value = stderr
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|e: &serde_json::Value| {
                e["message"]
                    == "too few open files allowed for smaller partitions: keeping the planned ones"
            })
            .unwrap_or_else(|| panic!("no fallback logged: {stderr}"));
        assert_eq!(fallback["files_needed"], 67, "{fallback}");
        assert_eq!(fallback["open_file_limit"], 66, "{fallback}");
        let event = compute_event(&o);
        assert_eq!(event["message"], "streaming sorted acts", "{event}");
        assert_eq!(event["partitions"], 1, "{event}");
        same_tables(&memory, &[&kept]);
    }
}

#[test]
fn acts_sorted_but_for_their_last_row_are_partitioned_and_write_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    sort_acts(&data);
    // The first row moved to the end: the first pass reads the whole file before it sees a
    // row out of order, and gives up.
    let path = data.join("acts.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let first = lines.remove(1);
    assert_ne!(
        first.split(',').nth(1),
        lines.last().unwrap().split(',').nth(1),
        "the moved row is now out of order"
    );
    lines.push(first);
    std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();

    let memory = tmp.path().join("memory");
    ok(&compute(&data, &memory, None, &[]), &[3]);
    let parted = tmp.path().join("parted");
    for extra in [&["--partitions", "5"][..], &["--memory-limit", "1M"][..]] {
        let o = compute(&data, &parted, None, extra);
        ok(&o, &[3]);
        let event = compute_event(&o);
        assert_eq!(event["message"], "computing and writing", "{event}");
        assert!(event["partitions"].as_u64().unwrap() >= 5, "{event}");
        same_tables(&memory, &[&parted]);
    }
    // Nothing of the first pass is left beside the outputs.
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["data", "memory", "parted"]);
}

#[test]
fn acts_declared_sorted_that_are_not_fail_and_leave_the_previous_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let out = tmp.path().join("out");
    ok(&compute(&data, &out, None, &[]), &[3]);
    let before = std::fs::read(out.join("acts.parquet")).unwrap();
    // The generated file is in no particular order.
    let o = compute(&data, &out, None, &["--sorted", "--partitions", "3"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("acts.csv: row ") && stderr.contains("--sorted"),
        "{stderr}"
    );
    // Found by the first pass: the computation never started.
    assert!(!stderr.contains(r#""step":"compute""#), "{stderr}");
    assert_eq!(std::fs::read(out.join("acts.parquet")).unwrap(), before);
    assert_eq!(names_in(tmp.path()), ["data", "out"]);
}

/// The threads of a running process, sampled until it exits: the most alive at once, and
/// every name seen. Fails if it runs past two minutes (a deadlock) or does not exit with 0 or 3.
#[cfg(target_os = "linux")]
fn threads_while_running(args: &[&str], log: &Path) -> (usize, std::collections::BTreeSet<String>) {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("rac runs");
    let task = format!("/proc/{}/task", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut most, mut names) = (0, std::collections::BTreeSet::new());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                matches!(status.code(), Some(0 | 3)),
                "{status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return (most, names);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("rac {args:?} still running after two minutes");
        }
        if let Ok(entries) = std::fs::read_dir(&task) {
            let tids: Vec<_> = entries.filter_map(Result::ok).collect();
            most = most.max(tids.len());
            for tid in tids {
                if let Ok(name) = std::fs::read_to_string(tid.path().join("comm")) {
                    names.insert(name.trim().to_string());
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn one_thread_runs_the_reading_loading_and_writing_in_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let run = |out: &str, threads: &str| {
        let log = tmp.path().join(format!("{out}.log"));
        let extra = [
            "--partitions",
            "7",
            "--memory-limit",
            "1M",
            "--threads",
            threads,
        ];
        let args = compute_args(&data, &tmp.path().join(out), None, &extra);
        threads_while_running(&args.iter().map(String::as_str).collect::<Vec<_>>(), &log)
    };
    // Two workers: the loader and the writer have threads of their own beside the pool for
    // the whole computation (which shows the sampling sees them; the reader's and the spill
    // files' live only while the acts are read: the limit makes them spill).
    let (most, names) = run("two", "2");
    assert!(names.contains("rac-loader"), "{names:?}");
    assert!(names.contains("rac-writer"), "{names:?}");
    assert!(names.contains("rac-spill"), "{names:?}");
    assert!(most > 3, "{most} threads at most");
    // Eight workers: two loaders, each with a thread of its own.
    let (_, names) = run("eight", "8");
    for loader in ["rac-loader-0", "rac-loader-1"] {
        assert!(names.contains(loader), "{names:?}");
    }
    assert!(!names.contains("rac-loader"), "{names:?}");
    // One worker: the main thread and the pool's one thread, never more (beside the thread
    // that waits for a stopping signal, and never works otherwise).
    let (most, names) = run("one", "1");
    assert!((1..=3).contains(&most), "{most} threads at most: {names:?}");
    assert!(names.contains("rac-signals"), "{names:?}");
    for stage in [
        "rac-reader",
        "rac-loader",
        "rac-ids",
        "rac-writer",
        "rac-spill",
    ] {
        assert!(!names.iter().any(|n| n.starts_with(stage)), "{names:?}");
    }
    same_tables(
        &tmp.path().join("two"),
        &[&tmp.path().join("one"), &tmp.path().join("eight")],
    );
}

/// Runs `rac` with `setup` run in the child process just before it starts rac (to set
/// its resource limits).
#[cfg(unix)]
fn rac_set_up(
    args: &[String],
    setup: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_rac"));
    command.args(args);
    // SAFETY: the callers' `setup` only make async-signal-safe calls (signal, setrlimit).
    unsafe {
        command.pre_exec(setup);
    }
    command.output().expect("rac runs")
}

/// The last OS error if `status` is not 0.
#[cfg(unix)]
fn checked(status: libc::c_int) -> std::io::Result<()> {
    match status {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Runs `rac` with every file it writes capped at `limit` bytes (`RLIMIT_FSIZE`; `SIGXFSZ` is
/// ignored, so a write past the cap fails with "File too large" instead of killing the
/// process): a disk that fills up in the middle of a run, as the process sees it.
#[cfg(unix)]
fn rac_with_file_cap(args: &[String], limit: u64) -> Output {
    rac_set_up(args, move || {
        let cap = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: limit as libc::rlim_t,
        };
        // SAFETY: plain system calls on values owned here.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            checked(libc::setrlimit(libc::RLIMIT_FSIZE, &cap))
        }
    })
}

/// Runs `rac` with at most `soft` open files, and `hard` as the most it may raise that to
/// (`RLIMIT_NOFILE`; many systems start processes at 1 024 whatever the hard limit).
#[cfg(unix)]
fn rac_with_open_files(args: &[String], soft: u64, hard: u64) -> Output {
    rac_set_up(args, move || {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: a plain system call on a value owned here.
        unsafe { checked(libc::setrlimit(libc::RLIMIT_NOFILE, &limit)) }
    })
}

#[cfg(unix)]
#[test]
fn partitions_past_the_open_file_limit_raise_it_or_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    // 300 partitions, every one spilled: 300 acts' spill files open at once, beside those of
    // the ids, over a limit of 128.
    let many = [
        "--memory-limit",
        "1M",
        "--partitions",
        "300",
        "--threads",
        "2",
    ];
    let reference = tmp.path().join("reference");
    ok(&compute(&data, &reference, None, &many), &[3]);
    // The soft limit is raised as far as the run needs (402), the hard one allowing it.
    let raised = tmp.path().join("raised");
    let o = rac_with_open_files(&compute_args(&data, &raised, None, &many), 128, 1024);
    ok(&o, &[3]);
    same_tables(&reference, &[&raised]);
    // A hard limit under that: a configuration error, nothing written.
    let refused = tmp.path().join("refused");
    let o = rac_with_open_files(&compute_args(&data, &refused, None, &many), 128, 256);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("300 partitions need 402 open files") && stderr.contains("limit of 256"),
        "{stderr}"
    );
    assert_eq!(names_in(tmp.path()), ["data", "raised", "reference"]);
}

/// The temporary folders and files (`.<out>.tmp-<pid>`, `.<out>.lock`) left in `dir`.
fn temporary_in(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.contains(".tmp") || n.ends_with(".lock"))
        .collect()
}

/// The names left in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
#[test]
fn a_disk_that_fills_up_while_spilling_or_writing_fails_the_run_and_leaves_the_previous_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let out = tmp.path().join("out");
    let spilled = ["--memory-limit", "1M", "--partitions", "7"];
    ok(&compute(&data, &out, None, &spilled), &[3]);
    let before: Vec<(String, Vec<u8>)> = names_in(&out)
        .into_iter()
        .map(|name| (name.clone(), std::fs::read(out.join(&name)).unwrap()))
        .collect();
    let acts_size = std::fs::metadata(out.join("acts.parquet")).unwrap().len();
    // Two runs: one spilled, with a cap that the first spill files already pass (the read
    // phase fails, on the spill thread); one held in memory, with a cap that only the acts
    // table passes (the writer fails writing it: this small run holds less than a row group,
    // so that is when the writer finishes its tables, after the last partition).
    let in_memory = ["--partitions", "7"];
    for (extra, cap, failing) in [
        (&spilled[..], 4096, ".spill/"),
        (&in_memory[..], acts_size - 1, "acts.parquet"),
    ] {
        let args = compute_args(&data, &out, None, &[extra, &["--threads", "2"]].concat());
        let o = rac_with_file_cap(&args, cap);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "cap {cap}: {stderr}");
        assert!(
            stderr.contains(failing) && stderr.contains("File too large"),
            "cap {cap}: {stderr}"
        );
        for (name, bytes) in &before {
            assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
        }
        assert_eq!(names_in(&out).len(), before.len());
        assert_eq!(names_in(tmp.path()), ["data", "out"], "cap {cap}: {stderr}");
    }
}

/// Waits until the running `child` has a spill folder in its staging folder `staging`; fails
/// if it ends first, or after a minute.
#[cfg(unix)]
fn wait_for_spill(child: &mut std::process::Child, staging: &Path) {
    wait_for(child, &staging.join(".spill"));
}

/// Waits until `path` exists while `child` runs; fails if it ends first, or after a minute.
#[cfg(unix)]
fn wait_for(child: &mut std::process::Child, path: &Path) {
    let started = std::time::Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it spilled"
        );
        assert!(started.elapsed().as_secs() < 60, "no spill folder");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A Parquet data set of `acts` acts generated into `data`.
fn generate_parquet(data: &Path, acts: usize) {
    let (d, n, p) = (
        data.display().to_string(),
        acts.to_string(),
        (acts / 10).to_string(),
    );
    let args = [
        "generate",
        "--acts",
        &n,
        "--patients",
        &p,
        "--seed",
        "3",
        "--out",
        &d,
    ];
    ok(&rac(&[&args[..], &["--format", "parquet"]].concat()), &[0]);
}

/// `rac compute` on the Parquet data set in `data`, into `out`, quiet; then `extra`.
fn parquet_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["compute".to_string()];
    for (flag, file) in [
        ("--acts", "acts"),
        ("--beneficiaries", "beneficiaries"),
        ("--rights", "rights"),
    ] {
        args.push(flag.to_string());
        args.push(data.join(format!("{file}.parquet")).display().to_string());
    }
    args.extend([
        "--out".to_string(),
        out.display().to_string(),
        "--quiet".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `rac`, with the three stopping signals at their default action whatever the test runner
/// inherited (`nohup` ignores SIGHUP, and an ignored signal stays ignored in rac).
#[cfg(unix)]
fn rac_with_default_signals() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rac"));
    // SAFETY: plain system calls, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    command
}

/// `rac generate` stopped by a signal removes its temporary files, as its last line says (they
/// stayed: `.acts.csv.tmp` and the others, until the next `generate` into that folder).
#[cfg(unix)]
#[test]
fn a_generate_stopped_by_a_signal_removes_its_temporary_files() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("data");
    let mut child = rac_with_default_signals()
        .args(["generate", "--acts", "5000000", "--format", "csv", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, &out.join(".acts.csv.tmp"));
    // SAFETY: a plain system call on our child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGTERM));
    let left: Vec<String> = names_in(&out)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stopped by SIGTERM: temporary files removed"),
        "{stderr}"
    );
}

/// `rac validate` stopped by a signal while its run spills removes its folder in
/// `--temp-dir`, and its last line names no `--out` (it has none).
#[cfg(unix)]
#[test]
fn a_validate_stopped_by_a_signal_removes_its_folder_and_names_no_out() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate_parquet(&data, 300_000);
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut child = rac_with_default_signals()
        .args(["validate", "--acts"])
        .arg(data.join("acts.parquet"))
        .arg("--beneficiaries")
        .arg(data.join("beneficiaries.parquet"))
        .args(["--memory-limit", "1M", "--temp-dir"])
        .arg(&scratch)
        .env("RAYON_NUM_THREADS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let staging = scratch.join(format!("rac-spill-{pid}-0/.run.tmp-{pid}"));
    wait_for_spill(&mut child, &staging);
    // SAFETY: a plain system call on our child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGTERM));
    assert!(names_in(&scratch).is_empty(), "{:?}", names_in(&scratch));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some("rac: stopped by SIGTERM: temporary files removed"),
        "{stderr}"
    );
}

/// A `SIGTERM` sent as the outputs are swapped into `--out` (a scheduler's timeout at the end
/// of a run): the exit code and the last line tell the truth about `--out`. Found by QA: the
/// run ended by the signal (143) saying "--out left whole (not replaced)" when it held the new
/// outputs, 4 times in 4. Now the run finishes (exit 0, a warning saying it had the signal).
/// Each attempt sends the signal the moment the new manifest shows.
#[cfg(unix)]
#[test]
fn a_signal_as_the_outputs_are_swapped_in_lets_the_run_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate_parquet(&data, 200_000);
    let out = tmp.path().join("out");
    let args = |extra: &[&str]| parquet_args(&data, &out, extra);
    ok(&rac_owned(&args(&["--format", "csv"])), &[0]);
    let mut warned = 0;
    for attempt in 0..4 {
        let before = std::fs::read_to_string(out.join("manifest.json")).unwrap();
        // Another format each time: the outputs of each run differ from the previous ones.
        let format = ["parquet", "csv"][attempt % 2];
        let mut child = rac_with_default_signals()
            .args(args(&["--format", format]))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let ended = loop {
            let swapped =
                std::fs::read_to_string(out.join("manifest.json")).is_ok_and(|now| now != before);
            if swapped {
                break false;
            }
            // Reaped: no signal for a pid that may be another process's now.
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            assert!(started.elapsed().as_secs() < 120, "the run did not end");
            std::thread::yield_now();
        };
        if !ended {
            // SAFETY: a plain system call on our child's pid, not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert_eq!(manifest["format"], format, "{stderr}");
        assert!(!stderr.contains("not replaced"), "{stderr}");
        if stderr.contains("SIGTERM") {
            assert_eq!(
                last,
                "rac: warning: SIGTERM came once the outputs were in place: the run finished, --out holds its outputs"
            );
            warned += 1;
        }
        let left = temporary_in(tmp.path());
        assert!(left.is_empty(), "{left:?}");
        if format == "parquet" {
            // The next attempt starts from CSV outputs.
            ok(&rac_owned(&args(&["--format", "csv"])), &[0]);
        }
    }
    // The signal lands while the run removes the previous outputs: it is let go and said.
    assert!(warned > 0, "no run had the signal");
}

/// A run stopped by `SIGTERM`, `SIGINT` or `SIGHUP` while it spills (`timeout`, `systemctl
/// stop`, Ctrl-C) removes its temporary folder, spill files included, and its lock, ends by
/// that signal, and leaves the previous outputs as they were. Before, they stayed beside
/// `--out` (hundreds of MB for a large run) until a later run on the same `--out`.
#[cfg(unix)]
#[test]
fn a_run_stopped_by_a_signal_removes_its_temporary_files_and_leaves_the_previous_outputs() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate_parquet(&data, 300_000);
    let results = tmp.path().join("results");
    let out = results.join("2024-01");
    let args = |extra: &[&str]| parquet_args(&data, &out, extra);
    ok(&rac_owned(&args(&[])), &[0]);
    let before = std::fs::read(out.join("acts.parquet")).unwrap();
    for (signal, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        // JSON logs, one run in three: the line that says why the run stopped is JSON too.
        let json = signal == libc::SIGTERM;
        let logs: &[&str] = if json { &["--log-format", "json"] } else { &[] };
        let mut child = rac_with_default_signals()
            .args(args(
                &[&["--memory-limit", "1M", "--threads", "1"], logs].concat(),
            ))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Stopped while it spills.
        let staging = results.join(format!(".2024-01.tmp-{}", child.id()));
        wait_for_spill(&mut child, &staging);
        // SAFETY: a plain system call on our child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let output = child.wait_with_output().unwrap();
        let status = output.status;
        assert_eq!(status.signal(), Some(signal), "{status:?}");
        assert_eq!(names_in(&results), ["2024-01"], "signal {signal}");
        assert_eq!(std::fs::read(out.join("acts.parquet")).unwrap(), before);
        // The log's last line says so (the log ended on a progress line).
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let message =
            format!("stopped by {name}: temporary files removed, --out left whole (not replaced)");
        if json {
            let line: serde_json::Value = serde_json::from_str(last).unwrap();
            assert_eq!(line["level"], "error");
            assert_eq!(line["message"], message.as_str());
            assert_eq!(line["signal"], signal);
            assert_eq!(line["outputs_replaced"], false);
        } else {
            assert_eq!(last, format!("rac: {message}"));
        }
    }
    // Spilling into a `--temp-dir`: its folder there is removed too.
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let scratch_arg = scratch.display().to_string();
    let mut child = rac_with_default_signals()
        .args(args(&[
            "--memory-limit",
            "1M",
            "--threads",
            "1",
            "--temp-dir",
            &scratch_arg,
        ]))
        .spawn()
        .unwrap();
    let spill = scratch.join(format!("rac-spill-{}-0/spill", child.id()));
    wait_for(&mut child, &spill);
    // SAFETY: a plain system call on our child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(names_in(&scratch).is_empty(), "{:?}", names_in(&scratch));
    assert_eq!(names_in(&results), ["2024-01"]);
    assert_eq!(std::fs::read(out.join("acts.parquet")).unwrap(), before);
    // A signal the caller set to be ignored (`nohup` for SIGHUP) stays ignored: the run goes
    // on to the end.
    let mut command = Command::new(env!("CARGO_BIN_EXE_rac"));
    command.args(args(&["--memory-limit", "1M", "--threads", "1"]));
    // SAFETY: a plain system call, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let staging = results.join(format!(".2024-01.tmp-{}", child.id()));
    wait_for_spill(&mut child, &staging);
    // SAFETY: a plain system call on our child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(names_in(&results), ["2024-01"]);
}

/// An input replaced while the run reads it (a new extract moved into place over the old one)
/// fails the run (exit 1, naming the file), where the manifest recorded the digest and size of
/// the new file beside outputs computed from the old one; nothing is written.
#[cfg(unix)]
#[test]
fn an_input_replaced_during_the_run_fails_it_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate_parquet(&data, 300_000);
    let acts = data.join("acts.parquet");
    let out = tmp.path().join("out");
    for threads in ["1", "2"] {
        let original = std::fs::read(&acts).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rac"))
            .args(parquet_args(
                &data,
                &out,
                &["--memory-limit", "1M", "--threads", threads],
            ))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let staging = tmp.path().join(format!(".out.tmp-{}", child.id()));
        wait_for_spill(&mut child, &staging);
        // A new version moved into place while the acts are read.
        let new = data.join("new.parquet");
        std::fs::write(&new, &original[..original.len() / 2]).unwrap();
        std::fs::rename(&new, &acts).unwrap();
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("acts.parquet: changed during the run"),
            "{stderr}"
        );
        assert!(!out.exists());
        std::fs::write(&acts, original).unwrap();
    }
}

/// `--temp-dir` (or `RAC_TEMP_DIR`): the spill files go to a folder of the run's own there (a
/// scratch disk), removed when the run ends; what a killed run left there is removed by the
/// next; the tables are the same bytes. A missing one is refused before anything is written.
#[test]
fn spill_files_go_to_the_temp_dir_and_nothing_is_left_there() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    // What a run killed with -9 leaves: its folder, and its lock file, which nobody holds.
    let leave_a_killed_run = || {
        let dead = scratch.join("rac-spill-999999-0");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("acts-1.arrow"), "spilled").unwrap();
        std::fs::write(scratch.join("rac-spill-999999-0.lock"), "999999\n").unwrap();
    };
    leave_a_killed_run();
    let spill = ["--memory-limit", "1M"];
    let reference = tmp.path().join("reference");
    ok(&compute(&data, &reference, None, &spill), &[3]);
    let scratch_arg = scratch.display().to_string();
    let out = tmp.path().join("out");
    let o = compute(
        &data,
        &out,
        None,
        &[&spill[..], &["--temp-dir", &scratch_arg]].concat(),
    );
    ok(&o, &[3]);
    same_tables(&reference, &[&out]);
    // The log says where the spill went, and the room there.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let spilled_in = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spill files in "))
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        spilled_in["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("spill files in {scratch_arg}/rac-spill-")),
        "{spilled_in}"
    );
    assert!(
        spilled_in["free_bytes"].as_u64().unwrap() > 0,
        "{spilled_in}"
    );
    assert!(names_in(&scratch).is_empty(), "{:?}", names_in(&scratch));
    // The same through the environment.
    let by_env = tmp.path().join("by-env");
    let o = Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(compute_args(&data, &by_env, None, &spill))
        .env("RAC_TEMP_DIR", &scratch)
        .output()
        .unwrap();
    ok(&o, &[3]);
    same_tables(&reference, &[&by_env]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("spill files in {scratch_arg}/")));
    assert!(names_in(&scratch).is_empty());
    // A run small enough to be held in memory makes no folder there, and removes what a
    // killed run left all the same (it left it to the next run that spilled).
    leave_a_killed_run();
    let in_memory = tmp.path().join("in-memory");
    let o = compute(
        &data,
        &in_memory,
        None,
        &["--memory-limit", "1G", "--temp-dir", &scratch_arg],
    );
    ok(&o, &[3]);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("spill files in"),
        "held in memory"
    );
    assert!(names_in(&scratch).is_empty(), "{:?}", names_in(&scratch));
    same_tables(&reference, &[&in_memory]);
    std::fs::remove_dir_all(&in_memory).unwrap();
    // A folder that does not exist: a configuration error, whatever the run's size.
    let missing = tmp.path().join("no-scratch").display().to_string();
    for limit in ["1M", "1G"] {
        let o = compute(
            &data,
            &tmp.path().join("never"),
            None,
            &["--memory-limit", limit, "--temp-dir", &missing],
        );
        assert_eq!(o.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&o.stderr)
                .contains(&format!("--temp-dir {missing}: no such folder"))
        );
    }
    assert_eq!(
        names_in(tmp.path()),
        ["by-env", "data", "out", "reference", "scratch"]
    );
    // `--out` itself (its commit would find the spill folder in it), a folder inside it (which
    // the commit would delete), or another run's outputs (which its next commit replaces):
    // refused before anything is done.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let inside = out.join("scratch");
    std::fs::create_dir(&inside).unwrap();
    for (out, temp, says) in [
        (&empty, &empty, "is --out or inside it"),
        (&out, &inside, "is --out or inside it"),
        (&by_env, &out, "holds a rac run's outputs"),
    ] {
        let o = compute(
            &data,
            out,
            None,
            &[&spill[..], &["--temp-dir", temp.to_str().unwrap()]].concat(),
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert!(names_in(&empty).is_empty());
    assert_eq!(names_in(&inside).len(), 0);
    same_tables(&reference, &[&out, &by_env]);
    // An empty variable is no folder given: the spill goes beside --out as by default.
    let o = Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(compute_args(&data, &empty, None, &spill))
        .env("RAC_TEMP_DIR", "")
        .output()
        .unwrap();
    ok(&o, &[3]);
    same_tables(&reference, &[&empty]);
}

/// The run's first log line is its memory limit and where it came from: given, or half of the
/// memory the run may use (the machine's, or its control group's when lower; the choice is
/// tested in `pipeline::partition`).
#[test]
fn the_memory_limit_and_its_source_are_logged_first() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    for (extra, says) in [
        (
            &["--memory-limit", "1M"][..],
            "memory limit 1 MiB: --memory-limit",
        ),
        (&[][..], "memory limit "),
    ] {
        let o = compute(&data, &tmp.path().join("out"), None, extra);
        ok(&o, &[3]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let first: serde_json::Value =
            serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
        let message = first["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{first}");
        let bytes = first["memory_limit_bytes"].as_u64().unwrap();
        if extra.is_empty() {
            assert!(message.contains(": half of the "), "{first}");
            assert!(bytes >= 1 << 20, "{first}");
        } else {
            assert_eq!(bytes, 1 << 20);
        }
    }
}

/// `--log-every SECONDS`: a partitioned run logs how far its reading and computing are (for a
/// run without a terminal); with 0, after every read chunk and every partition.
#[test]
fn progress_lines_say_how_far_the_reading_and_the_computing_are() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_set(&data);
    let events = |o: &Output, message: &str| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["message"] == message)
            .collect()
    };
    let spill = ["--memory-limit", "1M"];
    let o = compute(
        &data,
        &tmp.path().join("out"),
        None,
        &[&spill[..], &["--log-every", "0"]].concat(),
    );
    ok(&o, &[3]);
    let done = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["step"] == "done")
        .unwrap();
    let parts = compute_event(&o)["partitions"].as_u64().unwrap();
    assert!(parts > 1);
    // Reading: one line per chunk read (one here), the count growing to every row read.
    let reading = events(&o, "reading acts");
    let read: Vec<u64> = reading
        .iter()
        .map(|e| e["acts_read"].as_u64().unwrap())
        .collect();
    assert!(
        !read.is_empty() && read.windows(2).all(|w| w[0] < w[1]),
        "{read:?}"
    );
    assert_eq!(read.last(), done["read"].as_u64().as_ref());
    assert!(
        reading
            .iter()
            .all(|e| e["acts_expected"].as_u64().unwrap() > 0)
    );
    // Computing: one line per partition, up to every partition and every computed act.
    let computing = events(&o, "computing");
    let parts_done: Vec<u64> = computing
        .iter()
        .map(|e| e["partitions_done"].as_u64().unwrap())
        .collect();
    assert_eq!(parts_done, (1..=parts).collect::<Vec<_>>());
    let last = computing.last().unwrap();
    assert_eq!(last["acts_computed"], done["computed"]);
    assert_eq!(last["partitions"].as_u64(), Some(parts));
    assert!(last["per_second"].as_u64().is_some());
    // Looking for repeated ids: one line per bucket of ids (it said nothing, a minute long
    // on a loaded machine with a tiny limit).
    let ids = events(&o, "looking for repeated act ids");
    let buckets = ids[0]["id_buckets"].as_u64().unwrap();
    let beats: Vec<&serde_json::Value> = ids.iter().filter(|e| e["ids_checked"].is_u64()).collect();
    let buckets_done: Vec<u64> = beats
        .iter()
        .map(|e| e["id_buckets_done"].as_u64().unwrap())
        .collect();
    assert_eq!(buckets_done, (1..=buckets).collect::<Vec<_>>());
    let checked = beats.last().unwrap()["ids_checked"].as_u64().unwrap();
    assert!(checked > 0 && checked <= done["read"].as_u64().unwrap());
    // By default (every 10 s), a run this short says nothing more than its steps.
    let o = compute(&data, &tmp.path().join("out"), None, &spill);
    ok(&o, &[3]);
    assert!(events(&o, "reading acts").is_empty() && events(&o, "computing").is_empty());
    assert_eq!(events(&o, "looking for repeated act ids").len(), 1);
    // A bad value is a usage error.
    let o = compute(&data, &tmp.path().join("out"), None, &["--log-every", "-1"]);
    assert_eq!(o.status.code(), Some(2));
    // Acts in no order: their first pass ends in its first chunk, and says nothing.
    let unsorted = compute(
        &data,
        &tmp.path().join("out"),
        None,
        &[&spill[..], &["--log-every", "0"]].concat(),
    );
    assert!(events(&unsorted, "first pass over the acts").is_empty());
    // Sorted acts: their first pass reads them all, and their stream computes partition by
    // partition.
    sort_acts(&data);
    let o = compute(
        &data,
        &tmp.path().join("sorted"),
        None,
        &[&spill[..], &["--log-every", "0"]].concat(),
    );
    ok(&o, &[3]);
    let read = done["read"].as_u64().unwrap();
    let first_pass = events(&o, "first pass over the acts");
    assert_eq!(first_pass.last().unwrap()["acts_read"], read);
    let streamed = compute_event(&o);
    assert_eq!(streamed["message"], "streaming sorted acts");
    let computing = events(&o, "computing");
    assert_eq!(
        computing.last().unwrap()["partitions_done"],
        streamed["partitions"]
    );
    assert_eq!(computing.last().unwrap()["acts_computed"], done["computed"]);
}

/// A tmpfs mounted on `dir` with `options` (`size=512k`, `ro`) while it lives: a small or
/// read-only disk. Only root may mount: `None` for another user (the test says it did not
/// run); as root, a mount that fails fails the test (it would otherwise check nothing).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, options: &str) -> Option<SmallDisk> {
        // SAFETY: a plain system call without arguments.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not run: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            o.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A partition far fuller than planned whose second copy would not fit on the spill disk is
/// loaded whole rather than cut (logged, with the bytes needed and free): the same tables as a
/// held run. 100 000 acts of unknown patients after the 70 000 make that partition about
/// 16 MB uncompressed. On a disk of 47 MiB the spill fits (from 43 MiB), and cutting the
/// partition would fill it midway (exit 1 without the check, up to 49 MiB). The pieces held in
/// memory until the cut ends are not written beside the partition, so the check, which counts
/// the whole copy and an eighth, also declines cuts that would have fit (from 50 to 55 MiB
/// here; cut from 56). Needs a small disk: tmpfs, mounted as root.
#[test]
fn a_crowded_partition_is_loaded_whole_when_the_spill_disk_has_no_room_to_cut_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, folder, held) = crowded_last_partition(tmp.path(), 100_000);
    let Some(disk) = SmallDisk::mount(&tmp.path().join("disk"), "size=47m") else {
        return;
    };
    let out = tmp.path().join("tiny");
    let disk_arg = disk.0.display().to_string();
    let extra = [
        "--memory-limit",
        "1M",
        "--threads",
        "2",
        "--temp-dir",
        &disk_arg,
        "--spill-compression",
        "none",
    ];
    let o = rac_owned(&common::compute_args(&folder, &data, &out, &extra));
    ok(&o, &[3]);
    let logged = events(&o);
    let whole: Vec<_> = logged
        .iter()
        .filter(|e| {
            e["message"]
                == "a partition holds more acts than planned, but the spill disk has no room to cut it: loaded whole"
        })
        .collect();
    assert_eq!(whole.len(), 1, "{logged:?}");
    let (needed, free) = (
        whole[0]["bytes_needed"].as_u64().unwrap(),
        whole[0]["free_bytes"].as_u64().unwrap(),
    );
    assert!(free < needed, "{}", whole[0]);
    assert!(whole[0]["acts"].as_u64().unwrap() > 100_000, "{}", whole[0]);
    let compute = compute_event(&o);
    assert_eq!(compute["partitions_cut"], 0, "{compute}");
    same_tables(&held, &[&out]);
    assert!(names_in(&disk.0).is_empty(), "{:?}", names_in(&disk.0));
}

/// A spill disk too small for the acts' spill files stops the run once a 32nd of the acts is
/// written there: exit 2 (its `--temp-dir` is to change), the room needed and what to do, and
/// nothing written, rather than exit 1 when the disk is full, after most of the work. The
/// disks hold the first two read chunks of acts (65 536 each) and their ids, not the 400 000
/// acts: about 270 bytes an act as encoded and 156 with LZ4 (in 1 MiB of memory, 500
/// partitions of small batches). Needs small disks: tmpfs, mounted as root.
#[test]
fn a_spill_disk_too_small_stops_the_run_before_it_fills() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate(&data, 400_000, 40_000, 11, "parquet");
    let out = tmp.path().join("out");
    for (compression, size, advice) in [
        ("none", "size=48m", "--spill-compression lz4"),
        ("lz4", "size=32m", "--spill-compression zstd"),
    ] {
        let Some(disk) = SmallDisk::mount(&tmp.path().join(compression), size) else {
            return;
        };
        let disk_arg = disk.0.display().to_string();
        let file = |name: &str| data.join(name).display().to_string();
        let o = rac_owned(
            &[
                "compute",
                "--acts",
                &file("acts.parquet"),
                "--beneficiaries",
                &file("beneficiaries.parquet"),
                "--rights",
                &file("rights.parquet"),
                "--out",
                &out.display().to_string(),
                "--memory-limit",
                "1M",
                "--temp-dir",
                &disk_arg,
                "--spill-compression",
                compression,
            ]
            .map(String::from),
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{compression}: {stderr}");
        assert!(stderr.contains("the spill files need about "), "{stderr}");
        assert!(
            stderr.contains(&format!("MiB more in {disk_arg} (")),
            "{stderr}"
        );
        assert!(stderr.contains("400000 acts expected"), "{stderr}");
        assert!(stderr.contains("give --temp-dir a larger disk"), "{stderr}");
        assert!(stderr.contains(advice), "{stderr}");
        assert!(!out.exists());
        assert!(names_in(&disk.0).is_empty(), "{:?}", names_in(&disk.0));
    }
    // Without --temp-dir the spill goes beside --out: here a bare name, in the small disk.
    let Some(disk) = SmallDisk::mount(&tmp.path().join("beside"), "size=48m") else {
        return;
    };
    let file = |name: &str| data.join(name).display().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_rac"))
        .current_dir(&disk.0)
        .args(["compute", "--acts", &file("acts.parquet")])
        .args(["--beneficiaries", &file("beneficiaries.parquet")])
        .args([
            "--out",
            "out",
            "--memory-limit",
            "1M",
            "--spill-compression",
            "none",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(" MiB more in . ("), "{stderr}");
    assert!(names_in(&disk.0).is_empty(), "{:?}", names_in(&disk.0));
}

/// `--spill-compression auto` (the default) on a spill disk too small for the spill files as
/// they are: the least compression that fits, said in the log, and the outputs the bytes of a
/// run on a large disk. 200 000 acts take about 42 MB as they are, 15 with LZ4 and 9 with zstd
/// (projected at 125 %: 52, 18 and 12). Needs small disks: tmpfs, mounted as root.
#[test]
fn auto_compression_fits_the_spill_files_on_a_disk_too_small_for_them_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate(&data, 200_000, 20_000, 12, "parquet");
    let acts = data.join("acts.parquet");
    let run =
        |out: &Path, extra: &[&str]| rac_owned(&common::compute_args(&acts, &data, out, extra));
    let large = tmp.path().join("large");
    let o = run(&large, &[]);
    ok(&o, &[0]);
    // A large disk: nothing projected, nothing said.
    let said = |o: &Output| {
        events(o)
            .into_iter()
            .filter_map(|e| e["message"].as_str().map(String::from))
            .filter(|m| m.starts_with("spill files projected at about "))
            .collect::<Vec<_>>()
    };
    assert!(said(&o).is_empty(), "{:?}", said(&o));
    for (size, chosen) in [("size=24m", "lz4"), ("size=16m", "zstd")] {
        let Some(disk) = SmallDisk::mount(&tmp.path().join(chosen), size) else {
            return;
        };
        let out = tmp.path().join(format!("out-{chosen}"));
        let o = run(&out, &["--temp-dir", &disk.0.display().to_string()]);
        ok(&o, &[0]);
        let said = said(&o);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains(&format!(
                ": compressed with {chosen} (--spill-compression auto)"
            )),
            "{said:?}"
        );
        assert!(said[0].contains("200000 acts expected), "), "{said:?}");
        let spilled = compute_event(&o)["spilled_bytes"].as_u64().unwrap();
        assert!(spilled > 0, "{spilled}");
        same_tables(&large, &[&out]);
        assert!(names_in(&disk.0).is_empty(), "{:?}", names_in(&disk.0));
    }
}

/// An `--out` or a `--temp-dir` this run may not write (a read-only file system here;
/// permissions alike) is a configuration error: exit 2, the folder named, nothing written.
/// Needs a read-only disk: a tmpfs, mounted as root (whom permissions do not stop).
#[test]
fn a_folder_the_run_may_not_write_is_a_configuration_error() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("ro"), "ro,size=1m") else {
        return;
    };
    let data = tmp.path().join("data");
    data_set(&data);
    let ro = disk.0.display().to_string();
    // Held in memory, or partitioned: the output folder is made before or after reading.
    for limit in ["1G", "1M"] {
        let out = disk.0.join("out");
        let o = compute(&data, &out, None, &["--memory-limit", limit]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot write the output folder {ro}/out: ")),
            "{stderr}"
        );
        assert!(stderr.contains("Read-only file system"), "{stderr}");
    }
    let out = tmp.path().join("out");
    let o = compute(
        &data,
        &out,
        None,
        &["--memory-limit", "1M", "--temp-dir", &ro],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--temp-dir: cannot write {ro}")),
        "{stderr}"
    );
    assert!(!out.exists());
    assert!(names_in(&disk.0).is_empty());
    assert_eq!(names_in(tmp.path()), ["data", "ro"]);
}

/// Many threads under a small memory limit: each thread kept its freed pages (about 30 MiB
/// a thread), and QA's 1 GiB container was killed for memory from 32 threads with the default
/// limit. Such a run now hands freed pages back at once and says so; the outputs are the
/// bytes of a run with two threads, which keeps them.
#[test]
fn many_threads_under_a_small_limit_hand_back_freed_memory_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate_parquet(&data, 20_000);
    let said = |o: &Output| {
        events(o).into_iter().any(|e| {
            e["step"] == "read"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("freed memory handed back"))
        })
    };
    let run = |name: &str, threads: &str| {
        let out = tmp.path().join(name);
        // Not quiet: the line is an `info` one.
        let args: Vec<String> = parquet_args(
            &data,
            &out,
            &[
                "--threads",
                threads,
                "--memory-limit",
                "64M",
                "--log-format",
                "json",
            ],
        )
        .into_iter()
        .filter(|a| a != "--quiet")
        .collect();
        let o = rac_owned(&args);
        ok(&o, &[0]);
        (o, out)
    };
    let (two, two_out) = run("two", "2");
    assert!(!said(&two), "{}", String::from_utf8_lossy(&two.stderr));
    let (many, many_out) = run("many", "16");
    assert!(said(&many), "{}", String::from_utf8_lossy(&many.stderr));
    for table in ["acts", "patients", "summary", "counters"] {
        let file = format!("{table}.parquet");
        assert!(
            std::fs::read(two_out.join(&file)).unwrap()
                == std::fs::read(many_out.join(&file)).unwrap(),
            "{file}"
        );
    }
}

/// A run that stalls once its outputs are in place (here the DAMIR audit's report, written to
/// a pipe nobody reads): a first `SIGTERM` is let go, so that the run may finish, but a second
/// one, or the grace (`interrupt::GRACE`) without the run ending, ends it by the signal, its
/// last line saying `--out` holds the new outputs (the review of the first fix: one signal
/// no longer ended such a run at all).
#[cfg(target_os = "linux")]
#[test]
fn a_run_stalled_after_its_outputs_are_in_place_still_ends_by_a_signal() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference/damir/A202501_head.csv")
        .display()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    for signals in [2, 1] {
        let out = tmp.path().join(format!("out{signals}"));
        // A pipe of one page, never read: the report (7 KB) stalls the run once it is written.
        let mut fds = [0; 2];
        // SAFETY: plain system calls on fds this test owns.
        let (read_end, write_end) = unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            assert!(libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) > 0);
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let mut child = rac_with_default_signals()
            .args(["audit", "--profile", "damir", "--acts", &sample, "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::from(write_end))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !out.join("manifest.json").exists() {
            assert!(started.elapsed().as_secs() < 60, "no outputs");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The run is now stalled on its report (it ends only by a signal).
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "the run did not stall");
        for _ in 0..signals {
            // SAFETY: a plain system call on our child's pid, not reaped.
            assert_eq!(
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
                0
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let output = child.wait_with_output().unwrap();
        drop(read_end);
        assert_eq!(output.status.signal(), Some(libc::SIGTERM), "{signals}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.lines().last().unwrap_or_default(),
            "rac: stopped by SIGTERM once its outputs were in place: --out holds this run's outputs, whole",
            "{signals}"
        );
        assert!(out.join("discrepancies.md").exists());
        let left = temporary_in(tmp.path());
        assert!(left.is_empty(), "{left:?}");
    }
}
