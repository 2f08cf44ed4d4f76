//! End-to-end tests: the real binary on small CSV and Parquet files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rac(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(args)
        .output()
        .expect("rac runs")
}

fn demo(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(name)
        .display()
        .to_string()
}

/// `rac compute` of the demo data set into `out`, quiet, with `extra` flags.
fn compute_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "compute".into(),
        "--acts".into(),
        demo("acts.csv"),
        "--beneficiaries".into(),
        demo("beneficiaries.csv"),
        "--rights".into(),
        demo("rights.csv"),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn compute(out: &Path, extra: &[&str]) -> Output {
    let args = compute_args(out, extra);
    rac(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `rac compute` of `acts` with the demo's beneficiaries (no rights) into `out`, as CSV.
fn compute_acts(acts: &Path, out: &Path, extra: &[&str]) -> Output {
    let (acts, out) = (acts.display().to_string(), out.display().to_string());
    let bens = demo("beneficiaries.csv");
    let mut args = vec!["compute", "--acts", &acts, "--beneficiaries", &bens];
    args.extend(["--out", &out, "--format", "csv"]);
    args.extend_from_slice(extra);
    rac(&args)
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// Fails with what the run printed unless it exited 0.
fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `manifest.json` a run wrote in `out`.
fn manifest_of(out: impl AsRef<Path>) -> serde_json::Value {
    serde_json::from_str(&read(out.as_ref().join("manifest.json"))).unwrap()
}

#[test]
fn demo_data_set_matches_the_golden_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = compute(&out, &["--format", "csv"]);
    assert_ok(&o);
    for table in ["acts", "patients", "summary", "counters"] {
        assert_eq!(
            read(out.join(format!("{table}.csv"))),
            read(demo(&format!("expected_{table}.csv"))),
            "{table}.csv differs from fixtures/demo/expected_{table}.csv"
        );
    }
    assert_eq!(
        read(out.join("rejects.csv")),
        "file,row,act_id,column,reason,value\n"
    );
    let manifest: serde_json::Value = manifest_of(&out);
    assert_eq!(manifest["rows"]["read"], 49);
    assert_eq!(manifest["rows"]["computed"], 49);
    assert_eq!(manifest["rows"]["rejected"], 0);
    assert_eq!(manifest["inputs"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
}

/// The lower-case hex SHA-256 of a file, computed here independently of rac.
fn sha256_hex(path: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn manifest_names_each_input_with_its_size_and_sha256_on_every_path() {
    // In memory, partitioned, sorted; the hashes are taken on a thread of their own with two
    // workers and in line with one.
    let runs: [&[&str]; 6] = [
        &["--threads", "1"],
        &["--threads", "2"],
        &["--partitions", "3", "--threads", "1"],
        &["--partitions", "3", "--threads", "2"],
        &["--sorted", "--partitions", "3", "--threads", "2"],
        &["--sorted", "--threads", "1"],
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (i, extra) in runs.into_iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let o = compute(&out, extra);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let manifest: serde_json::Value = manifest_of(&out);
        let inputs = manifest["inputs"].as_array().unwrap();
        let expected = [
            ("beneficiaries", demo("beneficiaries.csv")),
            ("rights", demo("rights.csv")),
            ("acts", demo("acts.csv")),
        ];
        assert_eq!(inputs.len(), expected.len(), "{extra:?}");
        for (input, (role, path)) in inputs.iter().zip(&expected) {
            assert_eq!(input["role"], *role, "{extra:?}");
            assert_eq!(input["path"], *path, "{extra:?}");
            assert_eq!(
                input["bytes"],
                std::fs::metadata(path).unwrap().len(),
                "{extra:?}"
            );
            assert_eq!(input["sha256"], sha256_hex(path), "{extra:?} {role}");
        }
    }
}

#[test]
fn parquet_outputs_are_the_same_bytes_with_one_or_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_eq!(compute(&a, &["--threads", "1"]).status.code(), Some(0));
    assert_eq!(compute(&b, &["--threads", "2"]).status.code(), Some(0));
    for f in [
        "acts.parquet",
        "patients.parquet",
        "summary.parquet",
        "counters.parquet",
        "rejects.csv",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn rejected_rows_give_exit_code_3_and_are_all_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts.csv");
    let mut text = read(demo("acts.csv"));
    text.push_str("A0101,P01,2025-01-09,,consultation,30.00,1,,,,,,,,,,,,\n"); // duplicate id
    text.push_str("X1,NOBODY,2025-01-09,,consultation,30.00,1,,,,,,,,,,,,\n"); // unknown patient
    text.push_str("X2,P01,2025-02-31,,consultation,30.00,1,,,,,,,,,,,,\n"); // 31 February
    text.push_str("X3,P01,2021-06-01,,emergency_visit,25.00,1,,,,,,,,,,,,\n"); // before the FPU
    text.push_str("X4,P07,2024-01-01,,consultation,30.00,1,,,,,,,,,,,,\n"); // before birth
    std::fs::write(&acts, text).unwrap();
    let out = tmp.path().join("out");
    let o = compute_acts(&acts, &out, &["--quiet"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rejects = read(out.join("rejects.csv"));
    let reasons: Vec<&str> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "duplicate_act_id",
            "unknown_patient",
            "bad_date",
            "no_rule_at_date",
            "care_before_birth"
        ]
    );
    assert!(rejects.contains(",50,A0101,act_id,duplicate_act_id,A0101"));
    let manifest: serde_json::Value = manifest_of(&out);
    assert_eq!(manifest["rows"]["read"], 54);
    assert_eq!(manifest["rows"]["computed"], 49);
    assert_eq!(manifest["rows"]["rejected"], 5);
}

#[test]
fn unreadable_input_exits_1_and_leaves_previous_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert_eq!(compute(&out, &["--format", "csv"]).status.code(), Some(0));
    let before = read(out.join("acts.csv"));
    let o = rac(&[
        "compute",
        "--acts",
        "/nonexistent/acts.csv",
        "--beneficiaries",
        &demo("beneficiaries.csv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/acts.csv"));
    assert_eq!(read(out.join("acts.csv")), before);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_csv_with_a_quote_never_closed_exits_1_and_leaves_previous_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert_eq!(compute(&out, &["--format", "csv"]).status.code(), Some(0));
    let before = read(out.join("acts.csv"));
    // The demo's acts with a stray quote opening the fifth row's act_id: the rows after it
    // were read into that field, and the run went on without them (exit 0).
    let text = read(demo("acts.csv"));
    let mut lines: Vec<&str> = text.lines().collect();
    let stray = format!("\"{}", lines[5]);
    lines[5] = &stray;
    let acts = tmp.path().join("acts.csv");
    std::fs::write(&acts, lines.join("\n") + "\n").unwrap();
    let beneficiaries = demo("beneficiaries.csv");
    for command in ["compute", "validate"] {
        let mut args = vec![command, "--acts", acts.to_str().unwrap()];
        args.extend(["--beneficiaries", &beneficiaries]);
        if command == "compute" {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        let o = rac(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{command}: {stderr}");
        let expected = format!(
            "rac: {}: row 5, column act_id: a quote opens this field and is never closed",
            acts.display()
        );
        assert!(stderr.contains(&expected), "{command}: {stderr}");
    }
    assert_eq!(read(out.join("acts.csv")), before);
}

#[test]
fn the_last_line_on_stderr_is_the_reason_after_a_usage_or_a_file_excerpt() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let last_line = |o: &Output| {
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        stderr
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    // clap's refusal: its usage and tip first (the last line was its "For more information").
    let o = rac(&["compute", "--acts", "a.csv", "--bogus", "--out", "x"]);
    assert_eq!(last_line(&o), "rac: unexpected argument '--bogus' found");
    // A parameter file TOML cannot read: its excerpt first (the last line was empty).
    let rules = tmp.path().join("bad.toml");
    std::fs::write(&rules, "[[parameter]\nid = ").unwrap();
    let o = compute(&out, &["--rules", rules.to_str().unwrap()]);
    assert_eq!(
        last_line(&o),
        format!(
            "rac: {}: not a valid parameter file: TOML parse error at line 1, column 13",
            rules.display()
        )
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unclosed array table"));
}

#[test]
fn an_input_kept_in_the_output_folder_is_not_deleted_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert_eq!(compute(&out, &["--format", "csv"]).status.code(), Some(0));
    let before = read(out.join("acts.csv"));
    // The acts copied into the output folder, then computed from there into it: the run
    // replaced the folder and the input with it (exit 0).
    let acts = out.join("my_acts.csv");
    std::fs::copy(demo("acts.csv"), &acts).unwrap();
    let o = compute_acts(&acts, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("it holds \"my_acts.csv\", which rac did not write"),
        "{stderr}"
    );
    assert_eq!(read(&acts), read(demo("acts.csv")));
    assert_eq!(read(out.join("acts.csv")), before);
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert_eq!(compute(&out, &["--format", "xlsx"]).status.code(), Some(2));
    let bad_rules = tmp.path().join("s.toml");
    std::fs::write(
        &bad_rules,
        "[[parameter]]\nid = \"pf.nope\"\nunit = \"EUR\"\nvalues = []\n",
    )
    .unwrap();
    let o = compute(&out, &["--rules", bad_rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown parameter `pf.nope`"));
    assert!(!out.exists(), "nothing written on a usage error");
    // An output folder under a file (exit 1 before), and generate's options out of range and
    // its --out a file (all exit 1 before).
    let file = tmp.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let under = file.join("sub");
    assert_eq!(compute(&under, &[]).status.code(), Some(2));
    let file = file.to_str().unwrap();
    let gen_out = tmp.path().join("g");
    let gen_out = gen_out.to_str().unwrap();
    for args in [
        &["--patients", "0", "--out", gen_out][..],
        &["--months", "0", "--out", gen_out],
        &["--start", "9999-01-01", "--out", gen_out],
        &["--out", file],
    ] {
        let mut all = vec!["generate", "--acts", "10"];
        all.extend_from_slice(args);
        let o = rac(&all);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn rules_at_a_date_and_history() {
    let before = rac(&["rules", "--date", "2024-05-14"]);
    let after = rac(&["rules", "--date", "2024-05-15"]);
    let line = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("pf.amount "))
            .unwrap()
            .to_string()
    };
    assert!(
        line(&before).contains(" 1.00 EUR      2005-01-01  CSS art. L160-13 II"),
        "{}",
        line(&before)
    );
    assert!(
        line(&after).contains(" 2.00 EUR      2024-05-15  Décret n° 2024-114"),
        "{}",
        line(&after)
    );
    let h = rac(&["rules", "--history", "franchise.drug_box"]);
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(text.contains("2008-01-01"));
    assert!(text.contains("2024-03-31"));
    assert_eq!(rac(&["rules", "--history", "nope"]).status.code(), Some(2));
    // A history has no date: `--date` with it is refused, not silently ignored.
    let both = rac(&["rules", "--history", "fj.daily", "--date", "2025-01-01"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}

#[test]
fn scenario_file_changes_the_amounts() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("pf3.toml");
    std::fs::write(
        &scenario,
        r#"[[parameter]]
id = "pf.amount"
unit = "EUR"
values = [
  { from = "2005-01-01", value = "1.00", reference = "CSS L160-13 II" },
  { from = "2024-05-15", value = "3.00", reference = "scenario" },
]
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = compute(
        &out,
        &["--format", "csv", "--rules", scenario.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0));
    let acts = read(out.join("acts.csv"));
    let a0101 = acts.lines().find(|l| l.starts_with("A0101,")).unwrap();
    assert!(a0101.contains(",3.00,0.00,0.00,18.00,12.00,"), "{a0101}");
    // The manifest names the scenario among the inputs, with the digest of the text used:
    // the run can be told apart from one with another scenario of the same path.
    let text = std::fs::read(&scenario).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&read(out.join("manifest.json"))).unwrap();
    let rules: Vec<&serde_json::Value> = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "rules")
        .collect();
    assert_eq!(rules.len(), 1, "{manifest:#}");
    assert_eq!(rules[0]["path"], scenario.display().to_string());
    assert_eq!(rules[0]["bytes"], text.len() as u64);
    assert_eq!(rules[0]["sha256"], sha256_hex(scenario.to_str().unwrap()));
}

/// `rac explain` of one act of `acts`, with the demo beneficiaries and rights.
fn explain(act_id: &str, acts: &str) -> Output {
    rac(&[
        "explain",
        "--act-id",
        act_id,
        "--acts",
        acts,
        "--beneficiaries",
        &demo("beneficiaries.csv"),
        "--rights",
        &demo("rights.csv"),
    ])
}

#[test]
fn explain_prints_each_step_with_sources() {
    let o = explain("A0105", &demo("acts.csv"));
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("act A0105: medical_act on 2025-04-02"),
        "{text}"
    );
    assert!(
        text.contains("flat fee group: summed bases 125.40"),
        "{text}"
    );
    assert!(text.contains("amo_paid 99.40 rac 26.00"), "{text}");
    assert!(
        text.contains("pal.amount = 24.00 EUR since 2019-01-01"),
        "{text}"
    );
}

/// A stay begun before the fee went from 18 to 24 € (2019-01-01) bears the 18 € of its first
/// day: explain names that value, not the one in force on the line's own day (found by QA).
#[test]
fn explain_names_the_flat_fee_of_the_stays_first_day() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts.csv");
    std::fs::write(
        &acts,
        "act_id,patient_id,care_date,category,tariff,stay_id,setting\n\
         S1,P01,2018-12-30,hospital_stay,100.00,ST1,inpatient\n\
         S2,P01,2019-01-01,hospital_stay,150.00,ST1,inpatient\n",
    )
    .unwrap();
    let o = explain("S2", acts.to_str().unwrap());
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains(" pal 18.00 "), "{text}");
    assert!(
        text.contains(
            "pal.amount = 18.00 EUR since 2006-09-01 (value on 2018-12-30, the first day of the line's flat-fee group)"
        ),
        "{text}"
    );
    assert!(!text.contains("pal.amount = 24.00"), "{text}");
    // The thresholds that made the group heavy, on the same day.
    assert!(
        text.contains(
            "  pal.heavy_group (a decision of the engine, see RULES.md)\n    using pal.tariff_threshold = 120.00 EUR since 2011-03-01 (value on 2018-12-30, the first day of the line's flat-fee group)"
        ),
        "{text}"
    );
}

/// The `rules` column names the majoration, a decision; explain also gives the dated
/// parameters it read: the age from which it applies, the rate out of the pathway and the cap
/// (40 % of the GP consultation, 30 € on 2025-03-03: 12.00).
#[test]
fn explain_names_the_parameters_behind_the_majoration() {
    let o = explain("A0104", &demo("acts.csv"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains(" majoration 12.00 "), "{text}");
    let expected = [
        "  pathway.majoration (a decision of the engine, see RULES.md)",
        "    using pathway.out_rate = 30 percent since 2009-07-01",
        "    using pathway.majoration_cap_share = 40 percent since 2009-07-01",
        "    using pathway.min_age = 16 years since 2004-08-13",
        "    using ngap.G = 30.00 EUR since 2024-12-22",
    ];
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(expected[0]))
        .unwrap_or_else(|| panic!("{text}"));
    for (k, want) in expected.iter().enumerate() {
        assert!(lines[at + k].starts_with(want), "{text}");
    }
    // The next line is the next rule of the column, not a parameter of the decision.
    assert!(
        lines[at + expected.len()].starts_with("  pf.amount = 2.00 EUR"),
        "{text}"
    );
}

#[test]
fn explain_explains_the_kept_row_of_a_repeated_id_and_names_the_rejected_one() {
    // A0105 (row 6) repeated at the end with another tariff: the first row is kept and
    // computed, the repeat rejected (duplicate_act_id).
    let tmp = tempfile::tempdir().unwrap();
    let mut text = read(demo("acts.csv"));
    let repeat = text
        .lines()
        .find(|l| l.starts_with("A0105,"))
        .unwrap()
        .replace("125.40", "99.00");
    text.push_str(&repeat);
    text.push('\n');
    let acts = tmp.path().join("acts.csv");
    std::fs::write(&acts, &text).unwrap();
    let acts = acts.display().to_string();
    let o = explain("A0105", &acts);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "note: another row of act A0105 was rejected: duplicate_act_id (file {acts}, row 50); the row explained is row 6 of {acts}\n"
        )),
        "{text}"
    );
    // The kept row's computation, as without the repeat.
    assert!(text.contains("amo_paid 99.40 rac 26.00"), "{text}");
}

/// Two acts of one patient rejected when computed: each is explained with its own reason and
/// date (the patient's first rejection was shown for both), and exit 3, as an act rejected
/// when read (it was 0).
#[test]
fn explain_gives_a_rejected_act_its_own_reason_and_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts.csv");
    std::fs::write(
        &acts,
        "act_id,patient_id,care_date,category,tariff\n\
         F1,P01,2021-03-01,emergency_visit,30\n\
         F2,P01,2021-06-01,emergency_visit,50\n\
         F3,P01,2025-03-01,consultation,30\n",
    )
    .unwrap();
    let acts = acts.display().to_string();
    for (act, date) in [("F1", "2021-03-01"), ("F2", "2021-06-01")] {
        let o = explain(act, &acts);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(3), "{text}");
        assert_eq!(
            text,
            format!("act {act} is rejected: no_rule_at_date ({date} (rate.emergency_visit))\n")
        );
    }
    let o = explain("F3", &acts);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("act F3: consultation on 2025-03-01"),
        "{text}"
    );
    // Explained together: each as alone, and exit 3 for the run, one act being rejected.
    let alone = |id: &str| String::from_utf8(explain(id, &acts).stdout).unwrap();
    let o = rac(&[
        "explain",
        "--act-id",
        "F3",
        "--act-id",
        "F1",
        "--acts",
        &acts,
        "--beneficiaries",
        &demo("beneficiaries.csv"),
        "--rights",
        &demo("rights.csv"),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("{}\n{}", alone("F3"), alone("F1"))
    );
}

/// Several acts in one run (the files read three times, not three times an act): the
/// `--act-id`s, then the file's (an audit's `discrepancies.*`, CSV or Parquet), each once, are
/// explained as they are alone, one after the other with an empty line between; ids that no
/// row has are named at the end, after the others (exit 2).
#[test]
fn explain_explains_several_acts_and_an_audits_discrepancies_in_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = demo("acts.csv");
    let run = |ids: &[&str]| -> Output {
        let mut args = vec!["explain"];
        args.extend_from_slice(ids);
        let inputs = [
            "--acts",
            &acts,
            "--beneficiaries",
            &demo("beneficiaries.csv"),
        ];
        args.extend_from_slice(&inputs);
        let rights = demo("rights.csv");
        args.extend_from_slice(&["--rights", &rights]);
        rac(&args)
    };
    let alone = |id: &str| {
        let o = explain(id, &acts);
        assert_eq!(o.status.code(), Some(0), "{id}");
        String::from_utf8(o.stdout).unwrap()
    };
    for format in ["csv", "parquet"] {
        let out = tmp.path().join(format);
        let mut args = compute_args(&out, &["--format", format]);
        args[0] = "audit".into();
        let o = rac(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let file = out.join(format!("discrepancies.{format}"));
        let o = run(&["--act-ids", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{format}");
        // The demo's two discrepancies, in the table's order.
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            format!("{}\n{}", alone("A0103"), alone("A0202")),
            "{format}"
        );
    }
    // `--act-id`s first; an id given twice is explained once.
    let file = tmp.path().join("csv/discrepancies.csv");
    let o = run(&[
        "--act-id",
        "A0202",
        "--act-id",
        "A0105",
        "--act-ids",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("{}\n{}\n{}", alone("A0202"), alone("A0105"), alone("A0103"))
    );
    // A rejects.csv: its rows without an act_id (other tables') are counted, not explained.
    let rejects = tmp.path().join("rejects.csv");
    std::fs::write(
        &rejects,
        "file,row,act_id,column,reason,value\n\
         b.csv,3,,birth_date,bad_date,1990-13-01\n\
         a.csv,4,A0105,tariff,bad_decimal,x\n",
    )
    .unwrap();
    let o = run(&["--act-ids", rejects.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), alone("A0105"));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "rac: note: 1 row of {} has no act_id (not explained)",
            rejects.display()
        )),
        "{err}"
    );
    // Neither flag: a usage error that names both.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("<--act-id <ACT_ID>|--act-ids <FILE>>"),
        "{err}"
    );
    // A clean audit's discrepancies (a header alone): nothing to explain, exit 0.
    let clean = tmp.path().join("clean.csv");
    std::fs::write(&clean, "act_id,patient_id,recorded_amo,amo_paid\n").unwrap();
    let o = run(&["--act-ids", clean.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    // A row of the list that is not an empty id but unreadable fails, naming it (exit 1).
    for (text, problem) in [
        (
            &b"act_id\nA0103\n\xff\xfeX\n"[..],
            "row 2, column act_id: bad_encoding",
        ),
        (b"act_id,b\nA0103,1,2\n", "row 1: bad_row (`A0103,1,2`)"),
    ] {
        let list = tmp.path().join("list.csv");
        std::fs::write(&list, text).unwrap();
        let o = run(&["--act-ids", list.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        let want = format!("rac: --act-ids: {}: {problem}", list.display());
        assert!(err.starts_with(&want), "{err}");
    }
    // Ids in no row: the others are explained, then the missing ones named, exit 2.
    let o = run(&["--act-id", "NOPE", "--act-id", "A0103", "--act-id", "NOPE2"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), alone("A0103"));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(
        err.lines().last(),
        Some(format!("rac: 2 act ids are not in {acts}: `NOPE`, `NOPE2`").as_str()),
        "{err}"
    );
}

#[test]
fn counters_carry_the_caps_from_one_run_to_the_next() {
    // Split the demo acts at 2025-04-01 and chain the two runs: same rows as one run.
    let tmp = tempfile::tempdir().unwrap();
    let text = read(demo("acts.csv"));
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut first, mut second) = (vec![header], vec![header]);
    for l in lines {
        let date = l.split(',').nth(2).unwrap();
        if date < "2025-04-01" {
            first.push(l);
        } else {
            second.push(l);
        }
    }
    let (a, b) = (tmp.path().join("a.csv"), tmp.path().join("b.csv"));
    std::fs::write(&a, first.join("\n") + "\n").unwrap();
    std::fs::write(&b, second.join("\n") + "\n").unwrap();
    let run = |acts: &Path, out: &Path, counters: Option<&Path>| {
        let mut args = vec![
            "compute".to_string(),
            "--acts".into(),
            acts.display().to_string(),
            "--beneficiaries".into(),
            demo("beneficiaries.csv"),
            "--rights".into(),
            demo("rights.csv"),
            "--out".into(),
            out.display().to_string(),
            "--format".into(),
            "csv".into(),
            "--quiet".into(),
        ];
        if let Some(c) = counters {
            args.push("--counters".into());
            args.push(c.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(rac(&args).status.code(), Some(0));
    };
    let (o1, o2) = (tmp.path().join("o1"), tmp.path().join("o2"));
    run(&a, &o1, None);
    run(&b, &o2, Some(&o1.join("counters.csv")));
    let expected = read(demo("expected_acts.csv"));
    let mut got: Vec<String> = read(o1.join("acts.csv"))
        .lines()
        .map(String::from)
        .collect();
    got.extend(read(o2.join("acts.csv")).lines().skip(1).map(String::from));
    let mut want: Vec<String> = expected.lines().map(String::from).collect();
    got[1..].sort();
    want[1..].sort();
    assert_eq!(got, want);
    assert_eq!(
        read(o2.join("counters.csv")),
        read(demo("expected_counters.csv"))
    );
    // The earlier run's folder stands for its counters file (it was read as a table of acts'
    // columns, "missing required column year", after a false "no manifest.json" warning).
    let by_folder = tmp.path().join("by-folder");
    run(&b, &by_folder, Some(&o1));
    assert_eq!(read(by_folder.join("acts.csv")), read(o2.join("acts.csv")));
    assert_eq!(
        manifest_of(&by_folder)["inputs"][2]["path"],
        o1.join("counters.csv").display().to_string()
    );
    // A folder without counters, or with both formats, is refused (exit 2) naming it.
    let both = tmp.path().join("both");
    std::fs::create_dir(&both).unwrap();
    for (files, said) in [
        (&[][..], "a folder without counters.parquet or counters.csv"),
        (
            &["counters.parquet", "counters.csv"][..],
            "holds both counters.parquet and counters.csv",
        ),
    ] {
        for name in files {
            std::fs::write(both.join(name), "").unwrap();
        }
        let o = rac(&[
            "compute",
            "--acts",
            b.to_str().unwrap(),
            "--beneficiaries",
            &demo("beneficiaries.csv"),
            "--counters",
            both.to_str().unwrap(),
            "--out",
            tmp.path().join("refused").to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
    }
}

/// SPEC §2: a month's run given the previous month's closing counters computes the month as
/// one run over both: a long stay billed in January and February has its day 31 in February
/// dated from its January line, the counters written as CSV or Parquet, the second run in
/// memory or partitioned.
/// A folder's entries a run does not read (a subfolder, a `.gz` without `.csv`) are named in
/// a warning, in JSON (`"level":"warn"`) as in text, even with `--quiet`: they were left out
/// without a word.
#[test]
fn a_folder_s_entries_not_read_are_named_in_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("acts");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let acts = "act_id,patient_id,care_date,category,tariff\nA1,P1,2025-03-03,consultation,30\n";
    for name in ["a.csv", "sub/b.csv", "c.gz", ".hidden.csv"] {
        std::fs::write(folder.join(name), acts).unwrap();
    }
    let bens = tmp.path().join("b.csv");
    std::fs::write(&bens, "patient_id,birth_date\nP1,1980-05-06\n").unwrap();
    let run = |extra: &[&str]| {
        let out = tmp.path().join("out");
        let mut args = vec![
            "compute",
            "--acts",
            folder.to_str().unwrap(),
            "--beneficiaries",
            bens.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        rac(&args)
    };
    let o = run(&["--log-format", "json"]);
    assert_ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let warning: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["level"] == "warn")
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert_eq!(warning["entries_not_read"], 2);
    let message = warning["message"].as_str().unwrap();
    let (c, sub) = (folder.join("c.gz"), folder.join("sub"));
    assert!(
        message.ends_with(&format!("{}, {}", c.display(), sub.display())),
        "{message}"
    );
    let stderr = warning_of(&run(&["--quiet"]));
    assert!(stderr.contains("2 entries not read"), "{stderr}");
    // A glob names what it matches: those of its matches not read are named too; `validate`
    // warns as a run does.
    let glob = folder.join("*");
    let (glob, bens) = (glob.to_str().unwrap(), bens.to_str().unwrap());
    let out = tmp.path().join("globbed");
    let o = rac(&[
        "compute",
        "--acts",
        glob,
        "--beneficiaries",
        bens,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(warning_of(&o).contains("*: 2 entries not read"));
    let o = rac(&["validate", "--acts", glob, "--beneficiaries", bens]);
    assert!(warning_of(&o).contains("*: 2 entries not read"));
}

/// The stderr of a run that succeeded with a warning (text logs, `--quiet`).
fn warning_of(o: &Output) -> String {
    assert_ok(o);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(stderr.starts_with("rac: warning: "), "{stderr}");
    stderr
}

/// Acts the run that wrote the opening counters already read would count twice against the
/// caps: the run is refused (exit 2, nothing written, the previous outputs kept). A re-run
/// of a month with its own counters doubled every PF and franchise used, with exit 0.
#[test]
fn counters_that_already_hold_these_acts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).display().to_string();
    let header = "act_id,patient_id,care_date,category,tariff\n";
    std::fs::create_dir(tmp.path().join("months")).unwrap();
    for (name, text) in [
        (
            "months/03.csv",
            format!("{header}A1,P1,2025-03-03,consultation,30.00\n"),
        ),
        (
            "04.csv",
            format!("{header}A2,P1,2025-04-03,consultation,30.00\n"),
        ),
        ("empty_a.csv", header.to_string()),
        ("empty_b.csv", header.to_string()),
        ("b.csv", "patient_id,birth_date\nP1,1980-05-06\n".into()),
    ] {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    // `rac compute` of `acts` into `out` as CSV, with `counters`, then `extra`.
    let run_with = |acts: &str, out: &str, counters: Option<&str>, extra: &[&str]| {
        let (acts, bens, out) = (path(acts), path("b.csv"), path(out));
        let mut args = vec![
            "compute",
            "--acts",
            &acts,
            "--beneficiaries",
            &bens,
            "--out",
            &out,
            "--format",
            "csv",
        ];
        let counters = counters.map(path);
        if let Some(counters) = &counters {
            args.extend(["--counters", counters.as_str()]);
        }
        args.extend_from_slice(extra);
        rac(&args)
    };
    let run =
        |acts: &str, out: &str, counters: Option<&str>| run_with(acts, out, counters, &["--quiet"]);
    assert_ok(&run("months/03.csv", "march", None));
    let manifest = read(tmp.path().join("march/manifest.json"));
    // The same month again, with its own counters, into its own folder or another.
    for out in ["march", "again"] {
        let o = run("months/03.csv", out, Some("march/counters.csv"));
        assert_eq!(o.status.code(), Some(2), "{out}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("would count twice"), "{stderr}");
        assert!(stderr.contains("03.csv"), "{stderr}");
    }
    assert_eq!(read(tmp.path().join("march/manifest.json")), manifest);
    // Refused before anything is computed (it was at the end of the run): the JSON log has
    // no computing step, and the failure line says why.
    let o = run_with(
        "months/03.csv",
        "again",
        Some("march/counters.csv"),
        &["--log-format", "json"],
    );
    assert_eq!(o.status.code(), Some(2));
    let steps: Vec<String> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|l| l["step"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!steps.iter().any(|s| s == "compute"), "{steps:?}");
    assert_eq!(
        steps.last().map(String::as_str),
        Some("failed"),
        "{steps:?}"
    );
    assert!(!tmp.path().join("again").exists());
    // A folder that keeps March beside April: refused too.
    std::fs::copy(tmp.path().join("04.csv"), tmp.path().join("months/04.csv")).unwrap();
    let o = run("months", "april", Some("march/counters.csv"));
    assert_eq!(o.status.code(), Some(2));
    // April alone follows March: PF 2 € used twice in the year, not three times.
    assert_ok(&run("04.csv", "april", Some("march/counters.csv")));
    let counters = read(tmp.path().join("april/counters.csv"));
    assert!(counters.contains("P1,2025,4.00,"), "{counters}");
    // An empty month's file is the same bytes every month: no act counts twice; nor does a
    // standing file whose rows are all rejected when read.
    assert_ok(&run("empty_a.csv", "e1", Some("april/counters.csv")));
    assert_ok(&run("empty_b.csv", "e2", Some("e1/counters.csv")));
    std::fs::write(
        tmp.path().join("bad.csv"),
        format!("{header}X1,P1,2025-02-30,consultation,30.00\n"),
    )
    .unwrap();
    assert_eq!(
        run("bad.csv", "b1", Some("e2/counters.csv")).status.code(),
        Some(3)
    );
    assert_eq!(
        run("bad.csv", "b2", Some("b1/counters.csv")).status.code(),
        Some(3)
    );
    // Counters without their manifest are not checked: said so.
    std::fs::create_dir(tmp.path().join("kept")).unwrap();
    std::fs::copy(
        tmp.path().join("march/counters.csv"),
        tmp.path().join("kept/counters.csv"),
    )
    .unwrap();
    let stderr = warning_of(&run("04.csv", "unchecked", Some("kept/counters.csv")));
    assert!(stderr.contains("no manifest.json beside them"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&run("04.csv", "same", Some("march/counters.csv")).stderr)
            .contains("warning")
    );
    // Counters written under other rules (a scenario): run, with a warning naming both.
    let scenario = path("scenario.toml");
    std::fs::write(
        &scenario,
        "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\n\
         values = [ { from = \"2005-01-01\", value = \"3.00\", reference = \"what if\" } ]\n",
    )
    .unwrap();
    let o = run_with(
        "04.csv",
        "what-if",
        Some("march/counters.csv"),
        &["--rules", &scenario, "--quiet"],
    );
    let stderr = warning_of(&o);
    assert!(
        stderr.contains("(from built-in), this run uses"),
        "{stderr}"
    );
    assert!(stderr.contains("scenario.toml"), "{stderr}");
}

#[test]
fn a_stay_over_two_monthly_runs_has_its_day_31_where_one_run_puts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).display().to_string();
    let header = "act_id,patient_id,care_date,category,tariff,stay_id,setting,quantity\n";
    // S1: day 31. S2: 70 + 70 reach the 24 € fee's threshold (H2 at 100 %, the fee on H1).
    // S3: February's forfaits journaliers imputed against January's copayment (20).
    let january = "A1,P1,2025-01-20,hospital_stay,100.00,S1,inpatient,1\n\
                   H1,P1,2025-01-22,hospital_stay,70.00,S2,inpatient,1\n\
                   J1,P1,2025-01-25,hospital_stay,100.00,S3,inpatient,1\n";
    let february = "A2,P1,2025-02-19,hospital_stay,10.00,S1,inpatient,1\n\
                    A3,P1,2025-02-20,consultation,30.00,,ambulatory,1\n\
                    H2,P1,2025-02-05,hospital_stay,70.00,S2,inpatient,1\n\
                    J2,P1,2025-02-01,daily_fee,20.00,S3,inpatient,2\n";
    for (name, text) in [
        ("jan.csv", format!("{header}{january}")),
        ("feb.csv", format!("{header}{february}")),
        ("both.csv", format!("{header}{january}{february}")),
        (
            "b.csv",
            "patient_id,birth_date,regime\nP1,1980-05-06,general\n".into(),
        ),
    ] {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let run = |acts: &str, out: &str, extra: &[&str]| {
        let (acts, bens, out) = (path(acts), path("b.csv"), path(out));
        let args = [
            &[
                "compute",
                "--acts",
                &acts,
                "--beneficiaries",
                &bens,
                "--out",
                &out,
            ][..],
            &["--quiet"],
            extra,
        ]
        .concat();
        let o = rac(&args);
        assert_ok(&o);
    };
    let line = |out: &str, act: &str| {
        read(tmp.path().join(out).join("acts.csv"))
            .lines()
            .find(|l| l.starts_with(&format!("{act},")))
            .unwrap_or_else(|| panic!("{act} in {out}"))
            .to_string()
    };
    run("both.csv", "both", &["--format", "csv"]);
    let whole = line("both", "A2");
    for format in ["csv", "parquet"] {
        let jan = format!("jan-{format}");
        run("jan.csv", &jan, &["--format", format]);
        let counters = path(&format!("{jan}/counters.{format}"));
        for extra in [&[][..], &["--partitions", "3"]] {
            let feb = format!("feb-{format}-{}", extra.len());
            let args = [&["--counters", &counters, "--format", "csv"][..], extra].concat();
            run("feb.csv", &feb, &args);
            assert_eq!(line(&feb, "A2"), whole, "{format} {extra:?}");
            for act in ["A3", "H2", "J2"] {
                assert_eq!(
                    line(&feb, act),
                    line("both", act),
                    "{act} {format} {extra:?}"
                );
            }
        }
    }
    // The rate of the day-31 line is 100 % (80 % without its January start).
    let rate_column = read(tmp.path().join("both/acts.csv"))
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "rate")
        .unwrap();
    assert_eq!(whole.split(',').nth(rate_column), Some("100.00"));
    run("feb.csv", "feb-alone", &["--format", "csv"]);
    assert_eq!(
        line("feb-alone", "A2").split(',').nth(rate_column),
        Some("80.00")
    );
    // H2 at 100 % and J2 imputed in the whole run; alone, February could not know.
    let header_index = |name: &str| {
        let header = read(tmp.path().join("both/acts.csv"));
        let names = header.lines().next().unwrap().split(',');
        names.clone().position(|c| c == name).unwrap()
    };
    assert_eq!(
        line("both", "H2").split(',').nth(rate_column),
        Some("100.00")
    );
    assert_eq!(
        line("feb-alone", "H2").split(',').nth(rate_column),
        Some("80.00")
    );
    let amo_gross = header_index("amo_gross");
    assert_eq!(line("both", "J2").split(',').nth(amo_gross), Some("20.00"));
    assert_eq!(
        line("feb-alone", "J2").split(',').nth(amo_gross),
        Some("0.00")
    );
}

/// Writes `files` (name, text) into `dir`, then runs `rac audit` of its `acts.csv`, `b.csv`
/// and `r.csv` into `dir/out` as CSV, quietly, with `extra`; panics unless it exits 0.
fn audit_files(dir: &Path, files: &[(&str, &str)], out: &str, extra: &[&str]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let path = |name: &str| dir.join(name).display().to_string();
    let (acts, bens, rights, out) = (path("acts.csv"), path("b.csv"), path("r.csv"), path(out));
    let mut args = vec![
        "audit",
        "--acts",
        &acts,
        "--beneficiaries",
        &bens,
        "--rights",
        &rights,
        "--out",
        &out,
        "--format",
        "csv",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    assert_ok(&rac(&args));
}

/// A CSS or AME patient paid as an ordinary one, PF deducted (19.00 = 21.00 − 2 €), is
/// `exoneration_not_applied` (it was found only without the PF); the tolerance decides which
/// lines differ, not their cause (1 € named `rate_differs:65`); with `--compare gross` the
/// table holds `amo_gross`, and the report's "computed" is what was compared (it showed
/// `amo_paid`, which did not give the difference).
#[test]
fn audit_explains_an_exoneration_paid_as_ordinary_whatever_the_tolerance() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        (
            "acts.csv",
            "act_id,patient_id,care_date,category,tariff,billed,code,practitioner_id,recorded_amo\n\
             C1,P1,2025-03-10,consultation,30.00,50.00,G,D1,19.00\n\
             K1,P1,2025-03-11,consultation,30.00,,G,D1,19.00\n\
             K4,P4,2025-03-10,consultation,30.00,,G,D1,19.00\n\
             K2,P2,2025-03-10,consultation,30.00,,G,D1,21.00\n\
             K5,P2,2025-03-12,consultation,30.00,,G,D1,25.00\n",
        ),
        (
            "b.csv",
            "patient_id,birth_date\nP1,1970-01-01\nP2,1970-01-01\nP4,1970-01-01\n",
        ),
        (
            "r.csv",
            "patient_id,right,start_date\nP1,css,2025-01-01\nP4,ame,2025-01-01\n",
        ),
    ];
    let audit = |out: &str, extra: &[&str]| {
        audit_files(tmp.path(), &files, out, extra);
        (
            read(tmp.path().join(out).join("discrepancies.csv")),
            read(tmp.path().join(out).join("discrepancies.md")),
        )
    };
    let expected = "act_id,patient_id,recorded_amo,amo_paid,difference,explanation,amo_gross\n\
                    C1,P1,19.00,30.00,-11.00,exoneration_not_applied:css,30.00\n\
                    K1,P1,19.00,30.00,-11.00,exoneration_not_applied:css,30.00\n\
                    K2,P2,21.00,19.00,2.00,pf_not_deducted,21.00\n\
                    K5,P2,25.00,19.00,6.00,rate_differs:90,21.00\n\
                    K4,P4,19.00,30.00,-11.00,exoneration_not_applied:ame,30.00\n";
    for tolerance in ["0.00", "1.00"] {
        let (table, md) = audit(tolerance, &["--tolerance", tolerance]);
        assert_eq!(table, expected, "tolerance {tolerance}");
        assert!(
            md.contains("| K2 | 21.00 | 19.00 | 2.00 | pf_not_deducted |"),
            "{md}"
        );
    }
    // Compared with amo_gross: the difference is to it, and the report says so.
    let (table, md) = audit("gross", &["--compare", "gross"]);
    assert!(!table.contains("K2,"), "equal to amo_gross: {table}");
    assert!(table.contains("K5,P2,25.00,19.00,4.00,"), "{table}");
    assert!(md.contains("| K5 | 25.00 | 21.00 | 4.00 |"), "{md}");
}

/// A caisse late with a change of amount (the 1 € PF after 2024-05-15, the 0.50 € franchise
/// after 2024-03-31) is named with the amount it used (it was `unexplained`).
#[test]
fn audit_explains_a_pf_or_franchise_at_another_dated_amount() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        (
            "acts.csv",
            "act_id,patient_id,care_date,category,tariff,quantity,practitioner_id,recorded_amo\n\
             C1,P1,2024-06-10,consultation,26.50,1,D1,17.55\n\
             D1,P1,2024-06-11,drug_65,10.00,1,,6.00\n\
             C2,P1,2024-06-12,consultation,26.50,1,D1,16.55\n",
        ),
        ("b.csv", "patient_id,birth_date\nP1,1970-01-01\n"),
        ("r.csv", "patient_id,right,start_date\n"),
    ];
    audit_files(tmp.path(), &files, "o", &[]);
    assert_eq!(
        read(tmp.path().join("o/discrepancies.csv")),
        "act_id,patient_id,recorded_amo,amo_paid,difference,explanation,amo_gross\n\
         C1,P1,17.55,16.55,1.00,pf_amount_differs:1.00,18.55\n\
         D1,P1,6.00,5.50,0.50,franchise_amount_differs:0.50,6.50\n"
    );
}

/// An exonerated line of a heavy stay bears no 24 € fee and its rules do not name the group
/// (nothing of it changed); a payer that charged it the fee is still explained (it became
/// `unexplained` when the group left its rules).
#[test]
fn audit_explains_a_fee_charged_on_an_exonerated_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        (
            "acts.csv",
            "act_id,patient_id,care_date,category,tariff,stay_id,setting,recorded_amo\n\
             H1,P1,2025-03-10,hospital_stay,1200.00,S1,inpatient,1176.00\n",
        ),
        ("b.csv", "patient_id,birth_date\nP1,1970-01-01\n"),
        ("r.csv", "patient_id,right,start_date\nP1,css,2025-01-01\n"),
    ];
    audit_files(tmp.path(), &files, "o", &[]);
    assert_eq!(
        read(tmp.path().join("o/discrepancies.csv")),
        "act_id,patient_id,recorded_amo,amo_paid,difference,explanation,amo_gross\n\
         H1,P1,1176.00,1200.00,-24.00,pal_charged_twice_in_group_or_stay,1200.00\n"
    );
    let acts = read(tmp.path().join("o/acts.csv"));
    assert!(
        acts.contains(",rate.exonerated,recorded_differs,"),
        "{acts}"
    );
}

#[test]
fn audit_explains_each_discrepancy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let audit = || {
        rac(&[
            "audit",
            "--acts",
            &demo("acts.csv"),
            "--beneficiaries",
            &demo("beneficiaries.csv"),
            "--rights",
            &demo("rights.csv"),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "csv",
            "--quiet",
        ])
    };
    assert_ok(&audit());
    // Run again into the same folder: every file an audit writes is one a run may replace.
    assert_ok(&audit());
    let d = read(out.join("discrepancies.csv"));
    assert_eq!(
        d,
        "act_id,patient_id,recorded_amo,amo_paid,difference,explanation,amo_gross\n\
         A0103,P01,21.00,19.00,2.00,pf_not_deducted,21.00\n\
         A0202,P02,5.20,22.00,-16.80,exoneration_not_applied:ald,24.00\n"
    );
    let md = read(out.join("discrepancies.md"));
    assert!(md.contains("| pf_not_deducted | 1 | 2.00 |"), "{md}");
    // SPEC §5: the lines that differ are flagged `recorded_differs` in `acts.*`, and only
    // they (the other lines with a recorded amount match it).
    let acts = read(out.join("acts.csv"));
    let header: Vec<&str> = acts.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (id, flags, recorded) = (column("act_id"), column("flags"), column("recorded_amo"));
    let mut flagged = Vec::new();
    let mut recorded_lines = 0;
    for line in acts.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        recorded_lines += usize::from(!cells[recorded].is_empty());
        if cells[flags].split(';').any(|f| f == "recorded_differs") {
            flagged.push(cells[id]);
        }
    }
    assert_eq!(flagged, ["A0103", "A0202"]);
    assert!(
        recorded_lines > 2,
        "{recorded_lines} lines with a recorded amount"
    );
    // The report says how many acts were compared: those with a recorded amount.
    assert!(
        md.contains(&format!(
            "{recorded_lines} act(s) compared (with a recorded amount); 2 act(s) differ"
        )),
        "{md}"
    );
    assert_eq!(
        manifest_of(&out)["audit"]["compared"],
        recorded_lines as u64
    );
}

/// An audit of acts without a `recorded_amo` column (a misspelt header) compared nothing and
/// said "0 act(s) differ", exit 0: it is refused before anything is read (exit 2, nothing
/// written); a column without a value warns that nothing was compared; a file without the
/// column beside one with it is named in a warning.
#[test]
fn audit_of_acts_that_record_no_amount_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let bens = "patient_id,birth_date\nP1,1970-01-01\n";
    std::fs::write(tmp.path().join("b.csv"), bens).unwrap();
    let b = tmp.path().join("b.csv");
    let run = |acts: &Path, out: &str| {
        rac(&[
            "audit",
            "--acts",
            acts.to_str().unwrap(),
            "--beneficiaries",
            b.to_str().unwrap(),
            "--out",
            tmp.path().join(out).to_str().unwrap(),
            "--format",
            "csv",
            "--quiet",
        ])
    };
    let write = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    let misspelt = write(
        "misspelt.csv",
        "act_id;patient_id;care_date;category;tariff;recorded_AMO\nA1;P1;2025-03-10;consultation;30.00;21.00\n",
    );
    let o = run(&misspelt, "refused");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .contains("misspelt.csv: no recorded_amo column: an audit compares"),
        "{stderr}"
    );
    assert!(!tmp.path().join("refused").exists());

    let empty = write(
        "empty.csv",
        "act_id,patient_id,care_date,category,tariff,recorded_amo\nA1,P1,2025-03-10,consultation,30.00,\n",
    );
    let o = run(&empty, "empty");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("no act had a recorded amount (recorded_amo): nothing was compared"),
        "{stderr}"
    );
    assert!(
        read(tmp.path().join("empty/discrepancies.md"))
            .contains("0 act(s) compared (with a recorded amount); 0 act(s) differ")
    );

    write(
        "months/01.csv",
        "act_id,patient_id,care_date,category,tariff,recorded_amo\nA1,P1,2025-01-10,consultation,30.00,21.00\n",
    );
    write(
        "months/02.csv",
        "act_id,patient_id,care_date,category,tariff\nA2,P1,2025-02-10,consultation,30.00\n",
    );
    let o = run(&tmp.path().join("months"), "by-month");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "02.csv: no recorded_amo column: the acts of these files are computed, not compared"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("01.csv: no recorded_amo"), "{stderr}");
    assert!(!stderr.contains("nothing was compared"), "{stderr}");
}

#[test]
fn demo_command_prints_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = rac(&["demo", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("total                 49      4045.70      3408.21       637.49"),
        "{text}"
    );
    assert_eq!(read(out.join("acts.csv")), read(demo("expected_acts.csv")));
}

#[test]
fn a_run_killed_midway_leaves_the_previous_outputs_and_the_next_run_proceeds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let g = rac(&[
        "generate",
        "--acts",
        "60000",
        "--patients",
        "6000",
        "--seed",
        "3",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert_ok(&g);
    let out = tmp.path().join("out");
    let args = |out: &Path| {
        vec![
            "compute".to_string(),
            "--acts".into(),
            data.join("acts.parquet").display().to_string(),
            "--beneficiaries".into(),
            data.join("beneficiaries.parquet").display().to_string(),
            "--rights".into(),
            data.join("rights.parquet").display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--quiet".into(),
        ]
    };
    let first = Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(args(&out))
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0));
    let before: Vec<(String, Vec<u8>)> = ["acts.parquet", "counters.parquet", "manifest.json"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(out.join(f)).unwrap()))
        .collect();
    for delay_ms in [30, 150, 400] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rac"))
            .args(args(&out))
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = std::fs::read(out.join("acts.parquet")).unwrap();
        // Either the previous outputs or a complete new set (the same bytes): never a mix.
        assert_eq!(
            now, before[0].1,
            "acts changed after a kill at {delay_ms} ms"
        );
        assert_eq!(
            std::fs::read(out.join("counters.parquet")).unwrap(),
            before[1].1
        );
    }
    // The lock of the killed run names a dead process: the next run takes over.
    let again = Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(args(&out))
        .output()
        .unwrap();
    assert_ok(&again);
    assert_eq!(
        std::fs::read(out.join("acts.parquet")).unwrap(),
        before[0].1
    );
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A counters file written twice into one (two rows of a patient and year) would have both
/// added to the caps; one cut at a row's end reads without an error, and its missing patients
/// would start the year with nothing used; one with a value edited in place (as many rows)
/// would start it from counts no run made. All are refused (exit 1), held in memory or
/// partitioned, where they ran silently before.
#[test]
fn counters_repeated_cut_or_edited_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    // The counters of other acts than the runs below read (the demo's but its last): the
    // demo's own would count its acts twice, and are refused for that.
    let demo_acts = read(demo("acts.csv"));
    let lines: Vec<&str> = demo_acts.lines().collect();
    let part = tmp.path().join("part.csv");
    std::fs::write(&part, format!("{}\n", lines[..lines.len() - 1].join("\n"))).unwrap();
    let o = compute_acts(&part, &first, &[]);
    assert_ok(&o);
    let counters = first.join("counters.csv");
    let text = read(&counters);
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows.len() > 2, "{text}");
    // The manifest has the digest of the counters as written.
    let written = manifest_of(&first);
    assert_eq!(written["counters"]["bytes"], text.len() as u64);
    let (sha256, _) = rac::io::write::sha256_and_size(&counters).unwrap();
    assert_eq!(written["counters"]["sha256"], sha256.as_str());
    let out = tmp.path().join("out");
    // As written: accepted.
    for extra in [&[][..], &["--partitions", "3"]] {
        let args = [&["--counters", counters.to_str().unwrap()][..], extra].concat();
        let o = compute(&out, &args);
        assert_ok(&o);
    }
    // Repeated: found by the rows' count beside the manifest, and without it (a copy
    // elsewhere) by the rows themselves; cut: by the count.
    let alone = tmp.path().join("counters.csv");
    let repeated = format!("{text}{}\n", rows[1]);
    let cut = format!("{}\n", rows[..rows.len() - 1].join("\n"));
    // A count of the first row changed (`pf_used`, the third cell), the rows as they were.
    let mut cells: Vec<&str> = rows[1].split(',').collect();
    let changed = if cells[2] == "0.00" { "1.00" } else { "0.00" };
    cells[2] = changed;
    let edited_row = cells.join(",");
    let edited = text.replacen(rows[1], &edited_row, 1);
    assert_eq!(edited.lines().count(), rows.len());
    let edit = "its SHA-256 is not the one in";
    let count = "where the manifest beside it says the run that wrote it wrote";
    let cells: Vec<&str> = rows[1].split(',').collect();
    let twice = format!("two rows for patient {} and year {}", cells[0], cells[1]);
    for (counters, content, message) in [
        (&counters, &repeated, count),
        (&alone, &repeated, twice.as_str()),
        (&counters, &cut, count),
        (&counters, &edited, edit),
    ] {
        std::fs::write(counters, content).unwrap();
        for extra in [&[][..], &["--partitions", "3"]] {
            let args = [&["--counters", counters.to_str().unwrap()][..], extra].concat();
            let o = compute(&out, &args);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{extra:?}: {stderr}");
            assert!(stderr.contains(message), "{extra:?}: {stderr}");
            assert!(stderr.contains("counters.csv"), "{extra:?}: {stderr}");
        }
    }
}

#[test]
fn counters_of_a_later_year_or_another_format_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let counters = tmp.path().join("counters.csv");
    std::fs::write(
        &counters,
        "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,franchise_cap_reached_on\nP01,2026,4.00,0.00,,,\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = compute(&out, &["--counters", counters.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("counters of 2026, later than every act"));
    std::fs::write(
        &counters,
        "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,franchise_cap_reached_on\nP01,2025,4.00,0.00,,,\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("manifest.json"),
        r#"{"version": "0.0.1", "counters_format": 0}"#,
    )
    .unwrap();
    let o = compute(&out, &["--counters", counters.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("counters format"));
    // Another format's counters whose rows do not read either: refused for their format, the
    // same way held in memory or partitioned (the rows' error would exit 1).
    let good = read(&counters);
    std::fs::write(&counters, good.replace("4.00", "four")).unwrap();
    for extra in [&[][..], &["--partitions", "3"]] {
        let args = [&["--counters", counters.to_str().unwrap()][..], extra].concat();
        let o = compute(&out, &args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("counters format"), "{extra:?}: {stderr}");
    }
    std::fs::write(&counters, good).unwrap();
    // Format 1 (before `stay_starts`) still opens a run, which writes format 4.
    std::fs::write(
        tmp.path().join("manifest.json"),
        r#"{"version": "0.1.0", "counters_format": 1, "rows": {"counters": 1}}"#,
    )
    .unwrap();
    let o = compute(
        &out,
        &["--counters", counters.to_str().unwrap(), "--format", "csv"],
    );
    assert_ok(&o);
    let manifest: serde_json::Value = manifest_of(&out);
    assert_eq!(manifest["counters_format"], 4);
    // A format-2 manifest beside a file without `stay_starts`: changed since, refused (exit 1)
    // rather than read as format 1, held in memory or partitioned.
    std::fs::write(
        tmp.path().join("manifest.json"),
        r#"{"version": "0.2.0", "counters_format": 2, "rows": {"counters": 1}}"#,
    )
    .unwrap();
    for extra in [&[][..], &["--partitions", "3"]] {
        let args = [&["--counters", counters.to_str().unwrap()][..], extra].concat();
        let o = compute(&tmp.path().join("refused"), &args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains("counters.csv"), "{extra:?}: {stderr}");
        assert!(stderr.contains("stay_starts"), "{extra:?}: {stderr}");
    }
    // A format-3 manifest beside a file with `stay_starts` but without `open_stays`: the same.
    let format2 = tmp.path().join("format2").join("counters.csv");
    std::fs::create_dir(format2.parent().unwrap()).unwrap();
    std::fs::write(
        &format2,
        "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,\
         franchise_cap_reached_on,stay_starts\nP01,2025,4.00,0.00,,,,\n",
    )
    .unwrap();
    std::fs::write(
        format2.with_file_name("manifest.json"),
        r#"{"version": "0.3.0", "counters_format": 3, "rows": {"counters": 1}}"#,
    )
    .unwrap();
    let o = compute(
        &tmp.path().join("refused"),
        &["--counters", format2.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("open_stays"), "{stderr}");
    assert!(read(out.join("counters.csv")).starts_with(
        "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,\
         franchise_cap_reached_on,stay_starts,open_stays\n"
    ));
    std::fs::remove_file(tmp.path().join("manifest.json")).unwrap();
    let o = compute(
        &out,
        &["--counters", counters.to_str().unwrap(), "--format", "csv"],
    );
    assert_eq!(o.status.code(), Some(0));
    let manifest = read(out.join("manifest.json"));
    assert!(manifest.contains("\"role\": \"counters\""), "{manifest}");
    // P01 opened 2025 with 4.00 of PF used.
    let counters_out = read(out.join("counters.csv"));
    assert!(
        counters_out.contains("P01,2025,14.00,14.00,S01,,"),
        "{counters_out}"
    );
}

#[test]
fn json_logs_carry_counts_but_no_patient_data() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (acts, bens) = (demo("acts.csv"), demo("beneficiaries.csv"));
    let o = rac(&[
        "compute",
        "--acts",
        &acts,
        "--beneficiaries",
        &bens,
        "--out",
        out.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&o.stderr);
    let last: serde_json::Value = serde_json::from_str(logs.lines().last().unwrap()).unwrap();
    assert_eq!(last["computed"], 49);
    assert!(!logs.contains("P01") && !logs.contains("A0101"), "{logs}");
}

#[test]
fn audit_of_a_real_open_damir_month_through_the_cli() {
    let damir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/damir/A202501_head.csv");
    assert!(
        damir.exists(),
        "shared/reference must be beside the repository"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = rac(&[
        "audit",
        "--profile",
        "damir",
        "--acts",
        damir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_ok(&o);
    let md = read(out.join("discrepancies.md"));
    assert!(md.contains("94 lines read"), "{md}");
    assert!(md.contains("rac reproduces 83 to the cent, explains 8 more, and cannot explain 3"));
    let manifest: serde_json::Value = manifest_of(&out);
    assert_eq!(manifest["profile"], "damir");
    // compute refuses aggregated lines, with a usage error.
    let c = rac(&[
        "compute",
        "--profile",
        "damir",
        "--acts",
        damir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(c.status.code(), Some(2));
}

/// `rac compute --profile snds` of `extract` into `out` as CSV, with `log` (`--quiet`, or
/// `--log-format=json`).
fn compute_snds(extract: &Path, out: &Path, log: &str) -> Output {
    rac(&[
        "compute",
        "--profile",
        "snds",
        "--acts",
        extract.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
        log,
    ])
}

#[test]
fn snds_extract_through_the_cli() {
    let snds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snds");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = compute_snds(&snds, &out, "--quiet");
    // One prestation has a code rac does not map: it is rejected and reported, not dropped.
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("PRS_NAT_REF = 8888 not mapped (1 lines"));
    let manifest: serde_json::Value = manifest_of(&out);
    let rows = &manifest["rows"];
    assert_eq!(
        rows["read"].as_u64().unwrap(),
        rows["computed"].as_u64().unwrap() + rows["rejected"].as_u64().unwrap()
    );
    // The IR_IMB_R row rejected is another row, not an act (it was counted as a 16th act).
    assert_eq!(
        (
            &rows["read"],
            &rows["rejected"],
            &rows["rejected_other_rows"]
        ),
        (&15.into(), &4.into(), &1.into())
    );
    assert_eq!(manifest["profile"]["unmapped"][0]["code"], "8888");
    let acts = read(out.join("acts.csv"));
    assert!(acts.lines().count() > 5, "{acts}");
}

/// An SNDS act the engine rejects names its file and data row (it said `(extract)` and the
/// act's rank among those kept); the lines that are not acts are accounted for in the log, and
/// the folder's entries the profile does not read are named in a warning.
#[test]
fn snds_rejects_name_their_line_and_the_lines_that_are_not_acts_are_told() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snds");
    let tmp = tempfile::tempdir().unwrap();
    let extract = tmp.path().join("extract");
    std::fs::create_dir(&extract).unwrap();
    for name in [
        "ER_PRS_F.csv",
        "IR_BEN_R.csv",
        "IR_IMB_R.csv",
        "IR_MAT_R.csv",
        "IR_ORC_R.csv",
    ] {
        std::fs::copy(fixture.join(name), extract.join(name)).unwrap();
    }
    std::fs::write(extract.join("ER_ARO_F.csv"), "BEN_NIR_PSA\nAAA\n").unwrap();
    // CCC (data row 25 of ER_PRS_F, its only line) born after its care: the engine rejects it.
    let bens = read(extract.join("IR_BEN_R.csv")).replace("CCC;1;2012;03", "CCC;1;2030;03");
    std::fs::write(extract.join("IR_BEN_R.csv"), bens).unwrap();
    let out = tmp.path().join("out");
    let o = compute_snds(&extract, &out, "--log-format=json");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let prs = extract.join("ER_PRS_F.csv").display().to_string();
    let rejects = read(out.join("rejects.csv"));
    let before_birth: Vec<&str> = rejects
        .lines()
        .filter(|l| l.contains(",care_before_birth,"))
        .collect();
    assert_eq!(before_birth.len(), 1, "{rejects}");
    assert!(
        before_birth[0].starts_with(&format!("{prs},25,")),
        "{rejects}"
    );
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let said = |start: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with(start)))
            .unwrap_or_else(|| panic!("no line '{start}': {stderr}"))
            .clone()
    };
    let not_acts = said(
        "lines that are not acts: 3 left out by the profile's filters (CPL_MAJ_TOP=2 1, DPN_QLF=71 1, excluded:cash_benefit 1)",
    );
    assert_eq!(not_acts["recorded_deductions"], 9, "{not_acts}");
    let manifest = manifest_of(&out);
    assert_eq!(
        not_acts["recorded_deductions"],
        manifest["profile"]["recorded_deductions"]
    );
    let not_read = said(&format!("{}: 1 entries not read", extract.display()));
    assert_eq!(not_read["level"], "warn");
    assert!(
        not_read["message"]
            .as_str()
            .unwrap()
            .ends_with("ER_ARO_F.csv"),
        "{not_read}"
    );
    assert_eq!(
        manifest["profile"]["not_read"][0],
        extract.join("ER_ARO_F.csv").display().to_string()
    );
}

fn bad(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bad")
        .join(name)
        .display()
        .to_string()
}

/// Runs `compute` on a bad acts file with a one-patient beneficiaries file.
fn compute_bad(acts: &str) -> (Output, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let bens = tmp.path().join("b.csv");
    std::fs::write(
        &bens,
        "patient_id,birth_date,regime\nP1,1980-05-06,general\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = rac(&[
        "compute",
        "--acts",
        acts,
        "--beneficiaries",
        bens.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "--quiet",
    ]);
    (o, out, tmp)
}

#[test]
fn bad_rows_are_rejected_with_file_row_and_column_and_never_lost() {
    for (file, reasons) in [
        ("acts_wrong_field_count.csv", vec!["bad_row"]),
        ("acts_non_utf8.csv", vec!["bad_encoding"]),
        (
            "acts_bad_values.csv",
            vec![
                "bad_date",
                "bad_decimal",
                "too_many_decimals",
                "negative_amount",
                "unknown_category",
            ],
        ),
    ] {
        let (o, out, _tmp) = compute_bad(&bad(file));
        assert_eq!(
            o.status.code(),
            Some(3),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let manifest: serde_json::Value = manifest_of(&out);
        let rows = &manifest["rows"];
        assert_eq!(
            rows["read"].as_u64().unwrap(),
            rows["computed"].as_u64().unwrap() + rows["rejected"].as_u64().unwrap(),
            "{file}"
        );
        let rejects = read(out.join("rejects.csv"));
        for reason in reasons {
            assert!(
                rejects.contains(reason),
                "{file}: no {reason} in\n{rejects}"
            );
        }
        let mut reader = csv::Reader::from_reader(rejects.as_bytes());
        for record in reader.records() {
            let record = record.unwrap();
            assert!(
                record[0].ends_with(file),
                "{file}: reject names its file: {record:?}"
            );
            assert!(record[1].parse::<u64>().unwrap() >= 1, "{record:?}");
            assert!(
                !record[3].is_empty() || &record[4] == "bad_row",
                "{file}: reject names its column: {record:?}"
            );
        }
    }
}

#[test]
fn amounts_too_large_for_the_outputs_are_rejected_not_a_failed_run() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts.csv");
    let max = "79228162514264337593543950335";
    std::fs::write(
        &acts,
        format!(
            "act_id,patient_id,care_date,category,tariff,quantity,coefficient,practitioner_id\n\
             A1,P1,2025-03-01,consultation,30.00,1,,D1\n\
             A2,P1,2025-03-01,medical_act,999999999999.99,100000,,D1\n\
             A3,P1,2025-03-02,medical_act,10.00,1,{max},D1\n\
             A4,P1,2025-03-02,medical_act,10.00,1,{max},D1\n\
             A5,P1,2025-03-03,medical_act,1000000.00,1000000,,D1\n\
             A6,P1,2025-03-03,medical_act,10.00,1,1000000000000,D1\n"
        ),
    )
    .unwrap();
    let (o, out, _tmp) = compute_bad(acts.to_str().unwrap());
    // Exit 3, not 1 (the base did not fit the outputs) nor 101 (the coefficients' sum
    // overflowed).
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rejects: Vec<(String, String, String)> =
        csv::Reader::from_reader(read(out.join("rejects.csv")).as_bytes())
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[2].to_string(), r[3].to_string(), r[4].to_string())
            })
            .collect();
    let reject = |id: &str, column: &str| (id.into(), column.into(), "out_of_range".into());
    assert_eq!(
        rejects,
        [
            reject("A2", "tariff"),
            reject("A3", "coefficient"),
            reject("A4", "coefficient"),
        ]
    );
    // 10^12 € (1 000 000 × 1 000 000) and a coefficient of 10^12 are the largest accepted.
    let lines = read(out.join("acts.csv"));
    assert_eq!(lines.lines().count(), 1 + 3, "{lines}");
    assert!(lines.contains("A5,P1,2025-03-03,medical_act,1000000,1000000000000.00,"));
}

/// Runs rac with its standard output and error pipes whose readers are gone before it
/// writes: every write then fails (`EPIPE`).
fn rac_with_readers_gone(args: &[&str]) -> std::process::ExitStatus {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rac"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rac runs");
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().unwrap()
}

#[test]
fn a_log_or_report_reader_gone_costs_no_run() {
    let tmp = tempfile::tempdir().unwrap();
    for logs in ["text", "json"] {
        let out = tmp.path().join(logs);
        let extra = ["--log-format", logs, "--progress", "--format", "csv"];
        let args = compute_args(&out, &extra);
        // `--progress` after `--quiet`: the logs are written, to a pipe no one reads.
        let status = rac_with_readers_gone(&args.iter().map(String::as_str).collect::<Vec<_>>());
        // Exit 101 (a panic on the failed log line) before.
        assert_eq!(status.code(), Some(0), "--log-format {logs}");
        assert_eq!(
            read(out.join("acts.csv")),
            read(demo("expected_acts.csv")),
            "--log-format {logs}"
        );
    }
    let (acts, bens) = (demo("acts.csv"), demo("beneficiaries.csv"));
    // Reports on standard output: `rac rules | head -1`.
    let status = rac_with_readers_gone(&["rules", "--date", "2025-01-01"]);
    assert_eq!(status.code(), Some(0));
    let status = rac_with_readers_gone(&["validate", "--acts", &acts, "--beneficiaries", &bens]);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn unreadable_files_exit_1_with_the_file_named_and_nothing_written() {
    for (file, message) in [
        ("empty.csv", "empty.csv"),
        ("acts_missing_column.csv", "care_date"),
        ("not_parquet.parquet", "not_parquet.parquet"),
    ] {
        let (o, out, _tmp) = compute_bad(&bad(file));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains(message), "{file}: {stderr}");
        assert!(!out.exists(), "{file}: nothing written");
    }
    // A header alone is a valid, empty month.
    let (o, out, _tmp) = compute_bad(&bad("acts_header_only.csv"));
    assert_ok(&o);
    assert_eq!(read(out.join("acts.csv")).lines().count(), 1);
}

/// `validate` checks the inputs the way a run computes them, partition by partition within
/// `--memory-limit` (it read them whole: 12.1 GiB for 10 M acts): spilled over 84 partitions,
/// it lists the same problems as in one, across partitions (an id repeated on another
/// patient's row, an unknown patient, the engine's care before birth) and with every problem
/// of a row; and its temporary folder in `--temp-dir` is gone when it ends.
#[test]
fn validate_lists_the_same_problems_whatever_the_memory_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = rac(&[
        "generate",
        "--acts",
        "20000",
        "--patients",
        "2000",
        "--seed",
        "5",
        "--out",
        data.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = read(data.join("acts.csv"));
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (id, patient, date, tariff) = (
        column("act_id"),
        column("patient_id"),
        column("care_date"),
        column("tariff"),
    );
    let first_id = lines[1].split(',').nth(id).unwrap().to_string();
    for (k, line) in lines.iter_mut().enumerate().skip(1) {
        let mut fields: Vec<String> = line.split(',').map(String::from).collect();
        match k % 1000 {
            // Repeats the first row's id, on another patient's row (a run keeps the first).
            7 => fields[id] = first_id.clone(),
            11 => fields[patient] = format!("NOBODY{k}"),
            13 => fields[date] = "1900-01-01".into(),
            // Two problems in one row: both listed.
            17 => {
                fields[date] = "2024-02-31".into();
                fields[tariff] = "abc".into();
            }
            _ => continue,
        }
        *line = fields.join(",");
    }
    let acts = tmp.path().join("acts.csv");
    std::fs::write(&acts, lines.join("\n") + "\n").unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let bens = data.join("beneficiaries.csv");
    let validate = |extra: &[&str]| {
        let mut args = vec![
            "validate",
            "--acts",
            acts.to_str().unwrap(),
            "--beneficiaries",
            bens.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = rac(&args);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let whole = validate(&[]);
    let spilled = validate(&[
        "--memory-limit",
        "1M",
        "--temp-dir",
        scratch.to_str().unwrap(),
    ]);
    assert_eq!(spilled, whole);
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch left"
    );
    // 20 rows of each kind: 20 repeats, 20 unknown patients, 20 born after their care,
    // 20 rows with two problems each.
    let count = |reason: &str| whole.matches(&format!(": {reason} (")).count();
    assert_eq!(count("duplicate_act_id"), 20, "{whole}");
    assert_eq!(count("unknown_patient"), 20, "{whole}");
    assert_eq!(count("care_before_birth"), 20, "{whole}");
    assert_eq!(count("bad_date"), 20, "{whole}");
    assert_eq!(count("bad_decimal"), 20, "{whole}");
    assert!(
        whole.ends_with("20000 act rows read, 19920 valid, 100 problem(s)\n"),
        "{whole}"
    );
}

/// Without `--temp-dir`, `validate`'s folder goes to the system's temporary folder: one that
/// is no folder is named as `TMPDIR` (not as a `--temp-dir` nobody gave), an empty one is
/// /tmp, as when unset.
#[test]
fn validate_names_a_bad_tmpdir_as_such() {
    let validate = |tmpdir: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rac"));
        command.env_remove("RAC_TEMP_DIR").env_remove("TMPDIR");
        if let Some(tmpdir) = tmpdir {
            command.env("TMPDIR", tmpdir);
        }
        let acts = demo("acts.csv");
        let bens = demo("beneficiaries.csv");
        let o = command
            .args(["validate", "--acts", &acts, "--beneficiaries", &bens])
            .output()
            .expect("rac runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, listed) = validate(None);
    assert!(listed.contains("act rows read"), "{listed}");
    assert_eq!(validate(Some("")), (code, listed));
    let o = Command::new(env!("CARGO_BIN_EXE_rac"))
        .env_remove("RAC_TEMP_DIR")
        .env("TMPDIR", "/nonexistent-rac-tmp")
        .args([
            "validate",
            "--acts",
            &demo("acts.csv"),
            "--beneficiaries",
            &demo("beneficiaries.csv"),
        ])
        .output()
        .expect("rac runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "the system's temporary folder /nonexistent-rac-tmp (TMPDIR) is no folder: give --temp-dir"
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn validate_lists_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let bens = tmp.path().join("b.csv");
    std::fs::write(
        &bens,
        "patient_id,birth_date,regime\nP1,1980-05-06,general\n",
    )
    .unwrap();
    // A beneficiaries row with two problems: both listed.
    let bad_bens = tmp.path().join("bad_bens.csv");
    std::fs::write(
        &bad_bens,
        "patient_id,birth_date,regime\nP1,1980-05-06,general\nP9,1980-02-30,martian\n",
    )
    .unwrap();
    let o = rac(&[
        "validate",
        "--acts",
        &bad("acts_bad_values.csv"),
        "--beneficiaries",
        bad_bens.to_str().unwrap(),
        "--rights",
        &bad("rights_bad.csv"),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("acts_bad_values.csv:3: column `care_date`: bad_date (value `2024-02-31`"),
        "{text}"
    );
    assert!(text.contains("rights_bad.csv"), "{text}");
    assert!(text.contains("end_before_start"), "{text}");
    let bad_bens = bad_bens.to_str().unwrap();
    for (column, reason, value) in [
        ("birth_date", "bad_date", "1980-02-30"),
        ("regime", "unknown_value", "martian"),
    ] {
        let line = format!("{bad_bens}:2: column `{column}`: {reason} (value `{value}`)");
        assert!(text.contains(&line), "{line} in {text}");
    }

    // A row with several problems has each listed (only the first before); `compute` rejects
    // the row once, for its first.
    let acts = tmp.path().join("acts.csv");
    std::fs::write(
        &acts,
        "act_id,patient_id,care_date,end_date,category,tariff,quantity,ald_related\n\
         B1,P1,2024-03-10,2024-03-01,consult,abc,0,yes\n\
         B2,P1,2024-06-03,,consultation,30,1,\n",
    )
    .unwrap();
    let acts = acts.to_str().unwrap();
    let o = rac(&[
        "validate",
        "--acts",
        acts,
        "--beneficiaries",
        bens.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let problems: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    let problem = |column: &str, reason: &str, value: &str| {
        format!("{acts}:1: column `{column}`: {reason} (value `{value}`, act B1)")
    };
    assert_eq!(
        problems,
        [
            problem("ald_related", "bad_boolean", "yes"),
            problem("category", "unknown_category", "consult"),
            problem("end_date", "end_before_start", "2024-03-01"),
            problem("quantity", "out_of_range", "0"),
            problem("tariff", "bad_decimal", "abc"),
            "2 act rows read, 1 valid, 5 problem(s)".to_string(),
        ]
    );
    // Bad counters rows: each listed with the acts' problems; exit 1, as a run refuses them.
    let counters = tmp.path().join("counters.csv");
    std::fs::write(
        &counters,
        "patient_id,year,pf_used,franchise_used,charged_stays,pf_cap_reached_on,\
         franchise_cap_reached_on,stay_starts,open_stays\n\
         P1,2024,four,-1,,,,,\n\
         P2,2024,0.00,0.00,,,,,S1=1/2\n\
         P3,2024,0.00,0.00,,,,,\n",
    )
    .unwrap();
    let counters = counters.to_str().unwrap();
    let bens = bens.to_str().unwrap();
    let o = rac(&[
        "validate",
        "--acts",
        acts,
        "--beneficiaries",
        bens,
        "--counters",
        counters,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!(
            "{counters}:1: column `pf_used`: bad_decimal (value `four`)"
        )),
        "{text}"
    );
    // Each problem of a row (the first only before).
    assert!(
        text.contains(&format!(
            "{counters}:1: column `franchise_used`: negative_amount (value `-1`)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{counters}:2: column `open_stays`")),
        "{text}"
    );
    assert!(
        text.contains("2 act rows read, 1 valid, 8 problem(s)"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 bad counters row(s)"));

    let (o, out, _tmp) = compute_bad(acts);
    assert_eq!(o.status.code(), Some(3));
    let rejects = read(out.join("rejects.csv"));
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    assert!(
        rejects.contains("end_date,end_before_start,2024-03-01"),
        "{rejects}"
    );
}

/// With `--log-format json`, the line that says why a run failed is a JSON object like the
/// other log lines (it was plain text, which a log collector drops or garbles), for an input
/// error (exit 1) as for a usage error (exit 2).
#[test]
fn with_json_logs_a_failure_is_a_json_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.parquet");
    let out = tmp.path().join("out");
    let missing_acts = [
        "compute",
        "--acts",
        missing.to_str().unwrap(),
        "--beneficiaries",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--log-format",
        "json",
    ];
    let bad_limit = [&missing_acts[..], &["--memory-limit", "lots"]].concat();
    for (args, code, says) in [
        (
            &missing_acts[..],
            1,
            "missing.parquet: no such file or folder",
        ),
        (&bad_limit[..], 2, "--memory-limit"),
    ] {
        let o = rac(args);
        assert_eq!(o.status.code(), Some(code));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let line: serde_json::Value =
            serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        assert_eq!(line["level"], "error", "{line}");
        assert_eq!(line["step"], "failed", "{line}");
        assert_eq!(line["exit_code"], code, "{line}");
        assert!(line["message"].as_str().unwrap().contains(says), "{line}");
    }
    // `audit`'s own checks too.
    let audit = [&["audit"][..], &missing_acts[1..], &["--compare", "bogus"]].concat();
    let o = rac(&audit);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("--compare bogus"),
        "{line}"
    );
    // Arguments the parser refuses, however the JSON logs are asked for.
    let unknown_flag = [&missing_acts[..], &["--no-such-flag"]].concat();
    let missing_value = ["compute", "--log-format=json", "--acts"];
    for (args, says) in [
        (&unknown_flag[..], "--no-such-flag"),
        (&missing_value[..], "--acts"),
    ] {
        let o = rac(args);
        assert_eq!(o.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let line: serde_json::Value =
            serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        assert_eq!(line["exit_code"], 2, "{line}");
        assert!(line["message"].as_str().unwrap().contains(says), "{line}");
    }
    // Text logs: the message as before; for refused arguments clap's usage, then the reason.
    let o = rac(&missing_acts[..missing_acts.len() - 2]);
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("rac: "));
    let o = rac(&[&missing_acts[..missing_acts.len() - 2], &["--no-such-flag"]].concat());
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("Usage: rac compute"), "{stderr}");
    assert!(
        stderr.ends_with("\nrac: unexpected argument '--no-such-flag' found\n"),
        "{stderr}"
    );
    // A required argument left out: the reason names it (it was on a line above the reason,
    // which ended with "were not provided:").
    let o = rac(&["compute", "--beneficiaries", "b.csv", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.ends_with(
            "\nrac: the following required arguments were not provided: --acts <ACTS>\n"
        ),
        "{stderr}"
    );
}

/// A cron job that writes each month over the folder it takes the counters from would lose
/// every month's outputs but the last (found by QA): refused, exit 2, nothing replaced.
#[test]
fn counters_inside_out_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let january = tmp.path().join("january");
    assert_ok(&compute(&january, &["--format", "csv"]));
    let before = read(january.join("acts.csv"));
    let february = tmp.path().join("february.csv");
    std::fs::write(
        &february,
        "act_id,patient_id,care_date,category,tariff\nF1,P01,2026-02-03,consultation,30.00\n",
    )
    .unwrap();
    let folder = january.display().to_string();
    let file = january.join("counters.csv").display().to_string();
    // A link to the counters from outside --out is refused the same.
    let link = tmp.path().join("current.csv");
    #[cfg(unix)]
    std::os::unix::fs::symlink(january.join("counters.csv"), &link).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(january.join("counters.csv"), &link).unwrap();
    let link = link.display().to_string();
    let paths: &[&String] = if cfg!(unix) {
        &[&folder, &file, &link]
    } else {
        &[&folder, &file]
    };
    for counters in paths {
        let o = compute_acts(&february, &january, &["--counters", counters]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("is in --out"), "{stderr}");
        assert!(stderr.contains("another folder"), "{stderr}");
        assert_eq!(read(january.join("acts.csv")), before);
    }
    // Into a folder of its own: computed from January's counters.
    let o = compute_acts(
        &february,
        &tmp.path().join("february"),
        &["--counters", &folder],
    );
    assert_ok(&o);
    assert!(read(tmp.path().join("february/acts.csv")).contains("F1,P01,2026-02-03"));
}
