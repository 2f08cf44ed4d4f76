//! The Open DAMIR profile on real lines: `../shared/reference/damir/A202501_head.csv`, the
//! first 94 lines of the January 2025 Open DAMIR sample (see its SOURCE.md).
//!
//! Every act line's rate and amount is either reproduced to the cent by rac's rules or
//! explained; the counts below are what rac finds on these lines, and each line it does not
//! reproduce is listed with the reason.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use rac::model::Category;
use rac::profile::damir::{
    DamirReport, LineClass, RateCheck, Verdict, audit_damir, audit_damir_reader,
};
use rac::rules::RuleBook;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn sample() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference/damir/A202501_head.csv");
    assert!(
        path.exists(),
        "the real Open DAMIR sample {} is missing: these tests need the shared reference data beside the repository (../shared/reference)",
        path.display()
    );
    path
}

fn report() -> DamirReport {
    audit_damir(&sample(), &RuleBook::builtin()).expect("the sample is readable")
}

#[test]
fn counts_per_class_on_the_real_lines() {
    let r = report();
    assert_eq!(r.lines.len(), 94);
    let counts: BTreeMap<&str, (u64, u64, u64, u64)> = r
        .classes()
        .into_iter()
        .map(|(c, n)| {
            (
                c.as_str(),
                (n.lines, n.reproduced, n.explained, n.unexplained),
            )
        })
        .collect();
    let expected: BTreeMap<&str, (u64, u64, u64, u64)> = [
        ("act", (71, 63, 5, 3)),
        ("complementary_part", (7, 6, 1, 0)),
        ("pf", (4, 4, 0, 0)),
        ("franchise", (10, 8, 2, 0)),
        ("out_of_pathway_majoration", (1, 1, 0, 0)),
        ("pal", (1, 1, 0, 0)),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected, "\n{}", r.render_markdown());
    let t = r.totals();
    assert_eq!(
        (t.lines, t.reproduced, t.explained, t.unexplained),
        (94, 83, 8, 3)
    );
    assert!(r.unmapped.is_empty(), "every code of the sample is mapped");
}

#[test]
fn every_line_not_reproduced_is_explained_as_expected() {
    let r = report();
    let not_reproduced: BTreeMap<u64, (LineClass, Verdict)> = r
        .lines
        .iter()
        .filter(|l| l.verdict != Verdict::Reproduced)
        .map(|l| (l.number, (l.class, l.verdict)))
        .collect();
    use LineClass::*;
    use Verdict::*;
    let expected: BTreeMap<u64, (LineClass, Verdict)> = [
        // echography out of the pathway: the caisse applies the majoration to imaging and caps
        // it at 40 % of G 26.50 in January 2025
        (12, (Act, Explained)),
        // aggregated lines: prestations with different bases, each rounded
        (13, (Act, Explained)),
        (50, (Act, Explained)),
        (77, (Act, Explained)),
        (80, (Act, Explained)),
        // C2S part of two out-of-pathway G: cap 10.60, not 12.00
        (51, (ComplementaryPart, Explained)),
        // franchises cut by a cap that needs the patient's other lines
        (58, (Franchise, Explained)),
        (78, (Franchise, Explained)),
        // what rac cannot tell from Open DAMIR's dimensions
        (24, (Act, Unexplained)), // G of another scheme at "100 %" paying 15 % of the base
        (86, (Act, Unexplained)), // dental repair at 0 %
        (88, (Act, Unexplained)), // mountain IK at 100 % for an act unrelated to the ALD
    ]
    .into_iter()
    .collect();
    assert_eq!(not_reproduced, expected, "\n{}", r.render_markdown());
    for l in r.lines.iter().filter(|l| l.verdict != Verdict::Reproduced) {
        assert!(
            l.explanation.len() > 40,
            "line {} needs a real explanation",
            l.number
        );
    }
    let line = |n| r.line(n).unwrap();
    for n in [13, 50, 77, 80] {
        assert!(
            line(n).explanation.contains("aggregated line"),
            "{}",
            line(n).explanation
        );
    }
    assert!(line(12).explanation.contains("10.60"));
    assert!(line(12).explanation.contains("imaging"));
    assert!(line(51).explanation.contains("10.60"));
    for n in [58, 78] {
        assert!(line(n).explanation.contains("annual cap"));
    }
    assert!(line(24).explanation.contains("15.00 % of the base"));
}

#[test]
fn the_rate_of_every_applicable_act_line_is_rac_s() {
    let r = report();
    let acts: Vec<_> = r
        .lines
        .iter()
        .filter(|l| l.class == LineClass::Act)
        .collect();
    let differs: Vec<u64> = acts
        .iter()
        .filter(|l| l.rate_check == RateCheck::Differs)
        .map(|l| l.number)
        .collect();
    // 12: out of the pathway, the recorded 39.69 % is amount / base; 86 and 88: see above.
    assert_eq!(differs, vec![12, 86, 88]);
    for l in &acts {
        if l.verdict == Verdict::Reproduced {
            assert_eq!(l.rate_check, RateCheck::Matches, "line {}", l.number);
            assert_eq!(l.rac_rate, l.recorded_rate, "line {}", l.number);
            assert_eq!(l.rac_amount, l.recorded_amount, "line {}", l.number);
        }
    }
}

#[test]
fn reproduced_lines_spot_checks() {
    let r = report();
    let line = |n| r.line(n).unwrap();
    let amount = |n| line(n).rac_amount.unwrap();
    // APC, 4 prestations of 60.00 at 70 %.
    assert_eq!(line(3).category, Some(Category::Consultation));
    assert_eq!(amount(3), dec!(168.00));
    // 2 prestations of 1.58 at 65 %: 2 × 1.03 = 2.06 (round(3.16 × 0.65) would be 2.05).
    assert_eq!(amount(67), dec!(2.06));
    // One prestation of 5 boxes of 1.02 at 15 %: 0.77 (5 × round(0.153) would be 0.75).
    assert_eq!(amount(45), dec!(0.77));
    assert_eq!(line(45).category, Some(Category::Drug15));
    // Biology: 15 prestations of 3.10 at 60 %.
    assert_eq!(amount(25), dec!(27.90));
    // Dental at 60 % since 2023-10-15.
    assert_eq!(amount(72), dec!(687.66));
    // Military pension (EXO_MTF 21): biology at 100 %.
    assert_eq!(line(54).situation.as_deref(), Some("military_pension"));
    // ALD in the protocol (EXO_MTF 42): 100 %.
    assert_eq!(line(29).situation.as_deref(), Some("ald"));
    // PF: -2 EUR per act from 2024-05-15.
    assert_eq!(amount(48), dec!(-12.00));
    // Franchise on paramedical acts: -0.50 per act in 2023 (before 2024-03-31).
    assert_eq!(amount(46), dec!(-3.00));
    assert!(line(46).explanation.contains("0.50"));
    // Out-of-pathway majoration line: the cap 40 % × 26.50 in 2024-09.
    assert_eq!(amount(23), dec!(-10.60));
    // The 24 EUR participation (3 × 24 on the base, nothing paid by the AMO).
    assert_eq!(line(87).class, LineClass::Pal);
    // C2S part of biology: 139.00 − 60 % = 55.60; its recorded rate 40 = 100 − 60.
    assert_eq!(line(81).class, LineClass::ComplementaryPart);
    assert_eq!(amount(81), dec!(55.60));
    assert_eq!(line(81).rate_check, RateCheck::Matches);
    // Alsace-Moselle part of a 65 % drug fee: 90 % − 65 % of 0.61 = 0.55 − 0.40.
    assert_eq!(amount(33), dec!(0.15));
    assert_eq!(line(33).situation.as_deref(), Some("alsace_moselle"));
    // The C2S pays the forfait journalier: 30 days of 15.00.
    assert_eq!(amount(15), dec!(450.00));
    // Another scheme pays the 24 EUR participation for the patient.
    assert_eq!(amount(57), dec!(24.00));
}

#[test]
fn findings_on_the_rules_name_their_lines() {
    let r = report();
    let by_rule: BTreeMap<&str, &Vec<u64>> = r
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), &f.lines))
        .collect();
    assert_eq!(
        by_rule.get("pathway.majoration_cap_share × ngap.G"),
        Some(&&vec![12, 51])
    );
    assert_eq!(by_rule.get("RULES §2 (out of pathway)"), Some(&&vec![12]));
    assert_eq!(by_rule.get("RULES §5"), Some(&&vec![19, 45]));
}

#[test]
fn markdown_and_json_reports() {
    let r = report();
    let md = r.render_markdown();
    assert!(md.contains("| act | 71 | 63 | 5 | 3 |"), "{md}");
    assert!(md.contains("| **total** | 94 | 83 | 8 | 3 |"), "{md}");
    for n in [12, 13, 24, 50, 51, 58, 77, 78, 80, 86, 88] {
        assert!(
            md.contains(&format!("\n| {n} | ")),
            "line {n} missing\n{md}"
        );
    }
    assert!(md.contains("What cannot be checked on Open DAMIR"));
    assert!(md.contains("annual caps"));

    let json = r.to_json();
    let text = serde_json::to_string_pretty(&json).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["lines"].as_array().unwrap().len(), 94);
    assert_eq!(back["totals"]["reproduced"], 83);
    assert_eq!(back["lines"][12]["line"], 13);
    assert_eq!(back["lines"][12]["recorded_amount"], "528.10");
    assert_eq!(back["lines"][12]["verdict"], "explained");
    let classes = back["classes"].as_array().unwrap();
    assert_eq!(classes[0]["class"], "act");
    assert_eq!(classes[0]["lines"], 71);
}

/// Hand-made lines in the Open DAMIR format: trailing `;`, `.81` decimals, empty fields, the
/// parameter changes of 2024, regularisations, unmapped codes.
#[test]
fn format_and_dated_amounts() {
    let header = std::fs::read_to_string(sample())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let columns: Vec<&str> = header.split(';').collect();
    let line = |values: &[(&str, &str)]| {
        let map: BTreeMap<&str, &str> = values.iter().copied().collect();
        let mut s: String = columns
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| map.get(c).copied().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(";");
        s.push(';');
        s
    };
    let common = |nat: &'static str, year: &'static str, month: &'static str| {
        vec![
            ("PRS_NAT", nat),
            ("SOI_ANN", year),
            ("SOI_MOI", month),
            ("ASU_NAT", "10"),
            ("EXO_MTF", "0"),
            ("PRS_REM_TYP", "0"),
            ("PRS_PDS_QCP", "31"),
        ]
    };
    let rows = [
        // 1. PF at 1.00 before 2024-05-15.
        [
            common("1952", "2024", "04"),
            vec![
                ("PRS_ACT_QTE", "3"),
                ("PRS_REM_MNT", "-3"),
                ("PRS_REM_TAU", "100"),
            ],
        ]
        .concat(),
        // 2. May 2024: 1.00 until the 14th, 2.00 from the 15th: 2 acts = 1 + 2.
        [
            common("1951", "2024", "05"),
            vec![
                ("PRS_ACT_QTE", "2"),
                ("PRS_REM_MNT", "-3"),
                ("PRS_REM_TAU", "100"),
            ],
        ]
        .concat(),
        // 3. Transport franchise 2.00 per trip in 2023.
        [
            common("1974", "2023", "06"),
            vec![
                ("PRS_ACT_QTE", "2"),
                ("PRS_REM_MNT", "-4"),
                ("PRS_REM_TAU", "100"),
            ],
        ]
        .concat(),
        // 4. `.81`-style decimals: AMK 1.35 at 60 %.
        [
            common("3116", "2024", "12"),
            vec![
                ("PRS_ACT_QTE", "1"),
                ("PRS_ACT_NBR", "1"),
                ("PRS_REM_BSE", "1.35"),
                ("PRS_REM_MNT", ".81"),
                ("PRS_REM_TAU", "60"),
            ],
        ]
        .concat(),
        // 5. A regularisation: minus one G of 26.50 at 70 % in 2024-06.
        [
            common("1110", "2024", "06"),
            vec![
                ("PRS_ACT_QTE", "-1"),
                ("PRS_ACT_NBR", "-1"),
                ("PRS_REM_BSE", "-26.5"),
                ("PRS_REM_MNT", "-18.55"),
                ("PRS_REM_TAU", "70"),
            ],
        ]
        .concat(),
        // 6. A code rac does not know.
        [
            common("8888", "2024", "12"),
            vec![
                ("PRS_ACT_QTE", "1"),
                ("PRS_REM_MNT", "1"),
                ("PRS_REM_TAU", "100"),
            ],
        ]
        .concat(),
        // 7. Not care: a daily allowance (IJ).
        [
            common("6111", "2024", "12"),
            vec![
                ("PRS_ACT_QTE", "1"),
                ("PRS_REM_MNT", "40"),
                ("PRS_REM_TAU", "100"),
            ],
        ]
        .concat(),
        // 8. Maternity insurance: 100 % whatever the category.
        [
            vec![
                ("PRS_NAT", "1111"),
                ("SOI_ANN", "2024"),
                ("SOI_MOI", "12"),
                ("ASU_NAT", "30"),
                ("EXO_MTF", "0"),
                ("PRS_REM_TYP", "0"),
                ("PRS_PDS_QCP", "31"),
            ],
            vec![
                ("PRS_ACT_QTE", "1"),
                ("PRS_REM_BSE", "26.5"),
                ("PRS_REM_MNT", "26.5"),
                ("PRS_REM_TAU", "100"),
            ],
        ]
        .concat(),
        // 9. Unreadable amount.
        [
            common("1110", "2024", "12"),
            vec![
                ("PRS_ACT_QTE", "1"),
                ("PRS_REM_BSE", "2x"),
                ("PRS_REM_MNT", "1"),
                ("PRS_REM_TAU", "70"),
            ],
        ]
        .concat(),
    ];
    let mut text = format!("{header}\n");
    for r in &rows {
        text.push_str(&line(r));
        text.push('\n');
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let r = audit_damir(file.path(), &RuleBook::builtin()).unwrap();
    let v = |n: u64| r.line(n).unwrap();
    assert_eq!(v(1).verdict, Verdict::Reproduced, "{}", v(1).explanation);
    assert!(v(1).explanation.contains("pf.amount 1.00"));
    assert_eq!(v(2).verdict, Verdict::Reproduced, "{}", v(2).explanation);
    assert!(v(2).explanation.contains("changes within the month"));
    assert_eq!(v(3).verdict, Verdict::Reproduced, "{}", v(3).explanation);
    assert_eq!(v(4).verdict, Verdict::Reproduced, "{}", v(4).explanation);
    assert_eq!(v(4).recorded_amount, Some(dec!(0.81)));
    assert_eq!(v(5).verdict, Verdict::Reproduced, "{}", v(5).explanation);
    assert_eq!(v(5).rac_amount, Some(dec!(-18.55)));
    assert_eq!(v(6).class, LineClass::Unmapped);
    assert_eq!(r.unmapped.count("PRS_NAT", "8888"), 1);
    assert_eq!(v(7).class, LineClass::Excluded);
    assert!(v(7).explanation.contains("cash_benefit"));
    assert_eq!(v(8).verdict, Verdict::Reproduced, "{}", v(8).explanation);
    assert_eq!(v(8).situation.as_deref(), Some("maternity"));
    assert_eq!(v(9).class, LineClass::Unreadable);
    assert!(v(9).explanation.contains("PRS_REM_BSE"));
    assert!(r.render_markdown().contains("| PRS_NAT | 8888 | 1 |"));
}

#[test]
fn gzip_files_are_read_and_a_file_without_the_columns_is_refused() {
    let text = std::fs::read(sample()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("A202501.csv.gz");
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let r = audit_damir(&path, &RuleBook::builtin()).unwrap();
    assert_eq!(r.totals(), report().totals());

    let err = audit_damir_reader(
        "bad.csv",
        "PRS_NAT;PRS_ACT_QTE;PRS_REM_MNT;\n1110;1;21;\n".as_bytes(),
        &RuleBook::builtin(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bad.csv") && err.contains("PRS_REM_BSE"),
        "{err}"
    );
    assert!(audit_damir(&dir.path().join("absent.csv"), &RuleBook::builtin()).is_err());
}

#[test]
fn a_quote_never_closed_fails_the_file_naming_its_row_and_column() {
    // The sample with a stray quote at the start of its third line's first field: every later
    // line was read into that field, and left out of the report.
    let text = std::fs::read_to_string(sample()).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(';').collect();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines.len() > 10);
    lines[3].insert(0, '"');
    let broken = lines.join("\n") + "\n";
    let error = audit_damir_reader("broken.csv", broken.as_bytes(), &RuleBook::builtin())
        .unwrap_err()
        .to_string();
    let expected = format!(
        "broken.csv: row 3, column {}: a quote opens this field and is never closed",
        header[0]
    );
    assert!(error.starts_with(&expected), "{error}");
    // Closed after the field, the same lines give the same report.
    let original = text.lines().nth(3).unwrap();
    let (first, rest) = original.split_once(';').unwrap();
    lines[3] = format!("\"{first}\";{rest}");
    let closed = lines.join("\n") + "\n";
    let closed = audit_damir_reader("closed.csv", closed.as_bytes(), &RuleBook::builtin()).unwrap();
    assert_eq!(closed.totals(), report().totals());
}

#[test]
fn the_totals_add_up() {
    let r = report();
    let t = r.totals();
    assert_eq!(t.lines, t.reproduced + t.explained + t.unexplained);
    let sum: Decimal = r.lines.iter().filter_map(|l| l.recorded_amount).sum();
    assert!(sum > Decimal::ZERO);
}

#[test]
fn a_full_month_can_keep_only_the_lines_not_reproduced() {
    use rac::profile::damir::{AuditOptions, audit_damir_with};
    let r = audit_damir_with(
        &sample(),
        &RuleBook::builtin(),
        AuditOptions {
            keep_reproduced: false,
        },
    )
    .unwrap();
    assert_eq!(r.totals(), report().totals());
    assert_eq!(r.lines.len(), 11);
    assert_eq!(r.act_rates, (68, 71));
    assert_eq!(r.render_markdown(), report().render_markdown());
}
