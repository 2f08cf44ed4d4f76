//! The Open DAMIR profile: recompute, per aggregated line, what rac's rules say the caisse paid.
//!
//! An Open DAMIR monthly file (`A2025MM.csv.gz` on data.gouv.fr) has one line per combination
//! of 55 dimensions and a processing month, with summed amounts: no patient, no day, no
//! practitioner. What *can* be recomputed per line is:
//!
//! - **act lines** (PRS_NAT mapped to a category, AMO legal part): the rate rac's rules give for
//!   the category and the situation read from ASU_NAT / ATT_NAT / EXO_MTF at the care month
//!   (SOI_ANN, SOI_MOI), compared with PRS_REM_TAU; then the amount, base × rate rounded half
//!   away from zero per prestation (PRS_ACT_NBR prestations of equal base), compared with
//!   PRS_REM_MNT; out of the care pathway (PRS_PDS_QCP), the capped majoration of RULES §2;
//! - **complementary parts** (PRS_REM_TYP 5 C2S, 4 Alsace-Moselle, or a line of another scheme
//!   without base): what rac's `css` situation or `alsace_moselle` regime pays on top of the
//!   legal part, or the 24 € participation they pay for the patient;
//! - **PF and franchise lines** (PRS_NAT 1951–1978, negative): units × the unit amount in force
//!   in the care month (`pf.amount`, `franchise.*`);
//! - the **out-of-pathway majoration** line (1957): the cap 40 % × G of the care month;
//! - the **24 € participation** (PAL) and **FPU** lines: their unit amount.
//!
//! What cannot be checked on aggregated lines is said in [`DamirReport::limits`]: annual caps,
//! daily limits, the grouping of heavy acts, per-stay rules, the minors' exemption.
//!
//! The C2S and the régime local appear in Open DAMIR as lines of their own (PRS_REM_TYP 5, 4)
//! beside the legal part (PRS_REM_TYP 0), which is at the ordinary rate: so the legal part is
//! checked in the situation EXO_MTF gives, *without* the C2S (BEN_CMU_TOP) or Alsace-Moselle
//! (MTM_NAT), and the complementary line is checked as rac's `css` / `alsace_moselle` amount
//! minus the legal part.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::engine::category::{is_daily_fee, subject_to_pathway};
use crate::engine::round_cents;
use crate::engine::situation::{exempts_daily_fee, keeps_drug_rate};
use crate::io::read::csv_source::{QuoteScan, field_name, unclosed_quote};
use crate::io::read::within_amount_range;
use crate::model::{Category, InsuranceNature, Pathway, Situation};
use crate::rules::{Param, RuleBook, Scalar, Snapshot};

use super::mapping::{Mapping, Nature, Part, SituationHint, Unmapped};
use super::{ProfileError, parse_amount};

/// Columns the audit cannot do without.
pub const REQUIRED_COLUMNS: &[&str] = &[
    "PRS_NAT",
    "PRS_ACT_QTE",
    "PRS_REM_BSE",
    "PRS_REM_MNT",
    "PRS_REM_TAU",
    "SOI_ANN",
    "SOI_MOI",
];

/// PRS_NAT of the GP consultation G, whose base must equal `ngap.G` on the care day.
const PRS_NAT_G: u32 = 1110;

/// The class of an Open DAMIR line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineClass {
    /// A care act, AMO legal part.
    Act,
    /// A complementary part (C2S, AME, Alsace-Moselle, another scheme's supplement).
    ComplementaryPart,
    /// A recorded participation forfaitaire.
    Pf,
    /// A recorded franchise.
    Franchise,
    /// The out-of-pathway majoration as a line of its own.
    OutOfPathwayMajoration,
    /// The 24 € participation on heavy acts.
    Pal,
    /// The forfait patient urgences.
    Fpu,
    /// Not a care act rac computes (professional payments, cash benefits, thermal cures…).
    Excluded,
    /// A PRS_NAT code absent from `profiles/prs_nat.csv`.
    Unmapped,
    /// A line whose amounts or care month cannot be read.
    Unreadable,
}

impl LineClass {
    pub const ALL: &'static [LineClass] = &[
        LineClass::Act,
        LineClass::ComplementaryPart,
        LineClass::Pf,
        LineClass::Franchise,
        LineClass::OutOfPathwayMajoration,
        LineClass::Pal,
        LineClass::Fpu,
        LineClass::Excluded,
        LineClass::Unmapped,
        LineClass::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LineClass::Act => "act",
            LineClass::ComplementaryPart => "complementary_part",
            LineClass::Pf => "pf",
            LineClass::Franchise => "franchise",
            LineClass::OutOfPathwayMajoration => "out_of_pathway_majoration",
            LineClass::Pal => "pal",
            LineClass::Fpu => "fpu",
            LineClass::Excluded => "excluded",
            LineClass::Unmapped => "unmapped",
            LineClass::Unreadable => "unreadable",
        }
    }
}

/// What rac makes of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// rac's rules give the recorded amount to the cent.
    Reproduced,
    /// Not reproduced to the cent, for a reason the explanation states and the data confirm:
    /// an aggregated line's per-prestation roundings, a partial deduction (annual cap), a line
    /// that is not an act, a parameter value the caisse used that differs from rac's.
    Explained,
    /// rac cannot tell why the recorded amount differs; the explanation says what differs.
    Unexplained,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Explained => "explained",
            Verdict::Unexplained => "unexplained",
        }
    }
}

/// The recorded rate (PRS_REM_TAU) against rac's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateCheck {
    /// The recorded rate is the one rac's rules give.
    Matches,
    /// rac's rules give another rate.
    Differs,
    /// Not an act line, or no recorded rate.
    NotApplicable,
}

impl RateCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            RateCheck::Matches => "matches",
            RateCheck::Differs => "differs",
            RateCheck::NotApplicable => "not_applicable",
        }
    }
}

/// One audited line.
#[derive(Debug, Clone, PartialEq)]
pub struct DamirLine {
    /// 1-based data line number (the header is line 0).
    pub number: u64,
    pub prs_nat: String,
    pub label: String,
    pub class: LineClass,
    pub verdict: Verdict,
    pub rate_check: RateCheck,
    /// The category rac used, if any.
    pub category: Option<Category>,
    /// The situation rac used (`ordinary`, `ald`, `css`…, `pal_heavy_act`, `long_stay`).
    pub situation: Option<String>,
    /// `YYYY-MM`.
    pub care_month: Option<String>,
    pub recorded_rate: Option<Decimal>,
    pub rac_rate: Option<Decimal>,
    pub recorded_amount: Option<Decimal>,
    pub rac_amount: Option<Decimal>,
    /// How rac got its amount (reproduced) or why it does not match (explained, unexplained).
    pub explanation: String,
}

/// Per-class counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassCounts {
    pub lines: u64,
    pub reproduced: u64,
    pub explained: u64,
    pub unexplained: u64,
}

impl ClassCounts {
    /// Lines not reproduced to the cent (explained or not).
    pub fn not_reproduced(&self) -> u64 {
        self.explained + self.unexplained
    }
}

/// A finding on the rules themselves, backed by the lines that show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule or parameter concerned (`RULES §5`, `pathway.majoration_cap_share`…).
    pub rule: String,
    pub text: String,
    /// The first [`FINDING_LINES`] lines that show it.
    pub lines: Vec<u64>,
    /// How many lines show it.
    pub count: u64,
}

/// How many line numbers a [`Finding`] keeps.
pub const FINDING_LINES: usize = 50;

/// Options of [`audit_damir_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// Keep the reproduced lines in [`DamirReport::lines`] (counts are always kept). A full
    /// Open DAMIR month has ~38 million lines: keep only the others there.
    pub keep_reproduced: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            keep_reproduced: true,
        }
    }
}

/// The result of [`audit_damir`].
#[derive(Debug, Clone, PartialEq)]
pub struct DamirReport {
    /// The file, as given.
    pub file: String,
    /// [`RuleBook::version`] of the rules used.
    pub rules_version: String,
    /// The audited lines, in file order: every line, or only those not reproduced (see
    /// [`AuditOptions::keep_reproduced`]).
    pub lines: Vec<DamirLine>,
    /// Counts per class, over every line read.
    pub counts: BTreeMap<LineClass, ClassCounts>,
    /// Act lines whose recorded rate is one rac's rules give, and act lines with a recorded
    /// rate.
    pub act_rates: (u64, u64),
    /// Codes met that no table of `profiles/` maps, each once with its count.
    pub unmapped: Unmapped,
    /// Findings on rac's rules, from the lines.
    pub findings: Vec<Finding>,
    /// What cannot be checked on Open DAMIR lines.
    pub limits: Vec<String>,
}

/// What Open DAMIR's aggregation hides from any recomputation.
pub const LIMITS: &[&str] = &[
    "Open DAMIR lines are aggregated over patients, days and practitioners: the annual caps of the PF and of the franchises (50 EUR each), the PF limit of 4 per practitioner and day, the daily caps of paramedical and transport franchises, and the line cap of a franchise (CSS D160-9) cannot be checked; a deduction line below units × unit amount is explained by them, not verified.",
    "The 24 EUR participation (PAL) groups acts by practitioner and day or by stay: which acts were heavy cannot be rebuilt; the PAL and FPU lines are checked on their unit amount only.",
    "Per-stay rules (100 % from day 31, forfait journalier imputation, one PAL per stay) cannot be checked: there is no stay.",
    "Ages are 10-year bands (AGE_BEN_SNDS): the minors' exemption from PF and franchises, the newborn situation and the age limit of the care pathway cannot be checked.",
    "The situation comes from EXO_MTF / ASU_NAT / ATT_NAT only; EXO_MTF 99 (other schemes) accepts any situation's rate. The C2S (BEN_CMU_TOP) and Alsace-Moselle (MTM_NAT) parts are separate lines (PRS_REM_TYP 5, 4), checked as rac's css / alsace_moselle amount minus the legal part.",
    "A line sums PRS_ACT_NBR prestations: when their bases differ, rac cannot round each one; the recorded amount is then checked to lie within the half-cents that these roundings allow (explained, not reproduced).",
];

/// Reads an Open DAMIR file (`.csv` or `.csv.gz`, `;`-separated, trailing `;`, `.81`-style
/// decimals, empty = null) and audits every line against `book`.
///
/// Errors only when the file cannot be read or lacks a column of [`REQUIRED_COLUMNS`]; a bad
/// line is reported as class `unreadable`.
pub fn audit_damir(path: &Path, book: &RuleBook) -> Result<DamirReport, ProfileError> {
    audit_damir_with(path, book, AuditOptions::default())
}

/// [`audit_damir`] with options (for full monthly files, keep only the lines not reproduced).
pub fn audit_damir_with(
    path: &Path,
    book: &RuleBook,
    options: AuditOptions,
) -> Result<DamirReport, ProfileError> {
    let reader = super::open(path)?;
    audit_damir_reader_with(&path.display().to_string(), reader, book, options)
}

/// [`audit_damir`] on any reader; `name` is used in the report and the errors.
pub fn audit_damir_reader(
    name: &str,
    reader: impl Read,
    book: &RuleBook,
) -> Result<DamirReport, ProfileError> {
    audit_damir_reader_with(name, reader, book, AuditOptions::default())
}

/// [`audit_damir_with`] on any reader.
pub fn audit_damir_reader_with(
    name: &str,
    reader: impl Read,
    book: &RuleBook,
    options: AuditOptions,
) -> Result<DamirReport, ProfileError> {
    let mapping = Mapping::builtin();
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(true)
        .flexible(true)
        .from_reader(QuoteScan::new(reader, b';'));
    let csv_err = |source| ProfileError::Csv {
        path: name.to_string(),
        source,
    };
    let headers = csv.headers().map_err(csv_err)?.clone();
    let index: BTreeMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_string(), i))
        .collect();
    for column in REQUIRED_COLUMNS {
        if !index.contains_key(*column) {
            return Err(ProfileError::MissingColumn {
                path: name.to_string(),
                column: column.to_string(),
                profile: "damir",
            });
        }
    }
    let mut auditor = Auditor {
        book,
        mapping,
        unmapped: Unmapped::default(),
        findings: BTreeMap::new(),
        months: RefCell::new(HashMap::new()),
    };
    let mut lines = Vec::new();
    let mut counts: BTreeMap<LineClass, ClassCounts> = BTreeMap::new();
    let mut act_rates = (0u64, 0u64);
    let mut record = csv::StringRecord::new();
    let mut number = 0u64;
    let mut last_fields = 0;
    while csv.read_record(&mut record).map_err(csv_err)? {
        number += 1;
        last_fields = record.len();
        let fields = Fields {
            index: &index,
            record: &record,
        };
        let line = auditor.line(number, &fields);
        let c = counts.entry(line.class).or_default();
        c.lines += 1;
        match line.verdict {
            Verdict::Reproduced => c.reproduced += 1,
            Verdict::Explained => c.explained += 1,
            Verdict::Unexplained => c.unexplained += 1,
        }
        if line.class == LineClass::Act && line.rate_check != RateCheck::NotApplicable {
            act_rates.1 += 1;
            if line.rate_check == RateCheck::Matches {
                act_rates.0 += 1;
            }
        }
        if options.keep_reproduced || line.verdict != Verdict::Reproduced {
            lines.push(line);
        }
    }
    if csv.get_ref().swallowed_lines() {
        // Open in the last field of the last line: it ran to the end.
        let names: Vec<&str> = headers.iter().collect();
        let field = field_name(&names, last_fields.saturating_sub(1));
        return Err(ProfileError::Invalid {
            path: name.to_string(),
            message: unclosed_quote(number, &field),
        });
    }
    let findings = auditor
        .findings
        .into_values()
        .filter(|f| !f.lines.is_empty())
        .collect();
    Ok(DamirReport {
        file: name.to_string(),
        rules_version: book.version().to_string(),
        lines,
        counts,
        act_rates,
        unmapped: auditor.unmapped,
        findings,
        limits: LIMITS.iter().map(|s| s.to_string()).collect(),
    })
}

impl DamirReport {
    /// Counts for one class.
    pub fn class_counts(&self, class: LineClass) -> ClassCounts {
        self.counts.get(&class).copied().unwrap_or_default()
    }

    /// Counts per class, in [`LineClass::ALL`] order, classes without lines left out.
    pub fn classes(&self) -> Vec<(LineClass, ClassCounts)> {
        LineClass::ALL
            .iter()
            .map(|&c| (c, self.class_counts(c)))
            .filter(|(_, n)| n.lines > 0)
            .collect()
    }

    /// Counts over every line.
    pub fn totals(&self) -> ClassCounts {
        let mut t = ClassCounts::default();
        for (_, c) in self.classes() {
            t.lines += c.lines;
            t.reproduced += c.reproduced;
            t.explained += c.explained;
            t.unexplained += c.unexplained;
        }
        t
    }

    /// The line with this number.
    pub fn line(&self, number: u64) -> Option<&DamirLine> {
        self.lines.iter().find(|l| l.number == number)
    }

    /// A Markdown report: counts per class, findings on the rules, every line not reproduced
    /// with its explanation, unmapped codes and what cannot be checked.
    pub fn render_markdown(&self) -> String {
        let mut md = String::new();
        let t = self.totals();
        let _ = writeln!(md, "# Open DAMIR audit — {}\n", self.file);
        let _ = writeln!(
            md,
            "{} lines read; rules version {}. rac reproduces {} to the cent, explains {} more, and cannot explain {}.\n",
            t.lines, self.rules_version, t.reproduced, t.explained, t.unexplained
        );
        md.push_str("## Per line class\n\n");
        md.push_str("| class | lines | reproduced to the cent | explained | unexplained |\n");
        md.push_str("|---|---:|---:|---:|---:|\n");
        for (class, c) in self.classes() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                class.as_str(),
                c.lines,
                c.reproduced,
                c.explained,
                c.unexplained
            );
        }
        let _ = writeln!(
            md,
            "| **total** | {} | {} | {} | {} |\n",
            t.lines, t.reproduced, t.explained, t.unexplained
        );
        if self.act_rates.1 > 0 {
            let _ = writeln!(
                md,
                "The recorded rate (PRS_REM_TAU) is a rate rac's rules give on {} of the {} act lines.\n",
                self.act_rates.0, self.act_rates.1
            );
        }
        if !self.findings.is_empty() {
            md.push_str("## Findings on the rules\n\n");
            for f in &self.findings {
                let lines: Vec<String> = f.lines.iter().map(u64::to_string).collect();
                let more = if f.count > f.lines.len() as u64 {
                    format!(" and {} more", f.count - f.lines.len() as u64)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    md,
                    "- **{}** — {} (lines {}{more})",
                    f.rule,
                    f.text,
                    lines.join(", ")
                );
            }
            md.push('\n');
        }
        md.push_str("## Lines not reproduced to the cent\n\n");
        md.push_str("| line | PRS_NAT | class | verdict | recorded | rac | explanation |\n");
        md.push_str("|---:|---|---|---|---:|---:|---|\n");
        for l in self
            .lines
            .iter()
            .filter(|l| l.verdict != Verdict::Reproduced)
        {
            let _ = writeln!(
                md,
                "| {} | {} {} | {} | {} | {} | {} | {} |",
                l.number,
                l.prs_nat,
                l.label,
                l.class.as_str(),
                l.verdict.as_str(),
                opt(l.recorded_amount),
                opt(l.rac_amount),
                l.explanation.replace('|', "\\|")
            );
        }
        md.push('\n');
        md.push_str("## Unmapped codes\n\n");
        if self.unmapped.is_empty() {
            md.push_str("None: every code met is in `profiles/`.\n\n");
        } else {
            md.push_str("| column | code | lines |\n|---|---|---:|\n");
            for (column, code, n) in self.unmapped.entries() {
                let _ = writeln!(md, "| {column} | {code} | {n} |");
            }
            md.push('\n');
        }
        md.push_str("## What cannot be checked on Open DAMIR\n\n");
        for l in &self.limits {
            let _ = writeln!(md, "- {l}");
        }
        md
    }

    /// The whole report as JSON: `file`, `rules_version`, `totals`, `classes` (counts per
    /// class), `lines` (every line with its verdict and explanation), `unmapped`, `findings`,
    /// `limits`. Amounts are strings (`"528.10"`), to keep them exact.
    pub fn to_json(&self) -> Value {
        let counts = |c: ClassCounts| {
            json!({
                "lines": c.lines,
                "reproduced": c.reproduced,
                "explained": c.explained,
                "unexplained": c.unexplained,
            })
        };
        let dec = |d: Option<Decimal>| d.map(|d| Value::String(d.to_string()));
        json!({
            "file": self.file,
            "rules_version": self.rules_version,
            "totals": counts(self.totals()),
            "act_rates": { "matching": self.act_rates.0, "recorded": self.act_rates.1 },
            "classes": self.classes().into_iter().map(|(class, c)| {
                let mut v = counts(c);
                v["class"] = json!(class.as_str());
                v
            }).collect::<Vec<_>>(),
            "lines": self.lines.iter().map(|l| json!({
                "line": l.number,
                "prs_nat": l.prs_nat,
                "label": l.label,
                "class": l.class.as_str(),
                "verdict": l.verdict.as_str(),
                "rate_check": l.rate_check.as_str(),
                "category": l.category.map(|c| c.as_str()),
                "situation": l.situation,
                "care_month": l.care_month,
                "recorded_rate": dec(l.recorded_rate),
                "rac_rate": dec(l.rac_rate),
                "recorded_amount": dec(l.recorded_amount),
                "rac_amount": dec(l.rac_amount),
                "explanation": l.explanation,
            })).collect::<Vec<_>>(),
            "unmapped": self.unmapped.entries().map(|(column, code, n)| json!({
                "column": column, "code": code, "lines": n,
            })).collect::<Vec<_>>(),
            "findings": self.findings.iter().map(|f| json!({
                "rule": f.rule, "text": f.text, "lines": f.lines, "count": f.count,
            })).collect::<Vec<_>>(),
            "limits": self.limits,
        })
    }
}

/// An amount with exactly two decimals (`4.4` → `4.40`).
fn cents(d: Decimal) -> Decimal {
    let mut d = d.round_dp(2);
    d.rescale(2);
    d
}

fn opt(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// The fields of one record, by column name.
struct Fields<'r> {
    index: &'r BTreeMap<String, usize>,
    record: &'r csv::StringRecord,
}

impl<'r> Fields<'r> {
    /// The trimmed text of a column; empty when the column or the field is absent.
    fn get(&self, column: &str) -> &'r str {
        self.index
            .get(column)
            .and_then(|&i| self.record.get(i))
            .unwrap_or("")
            .trim()
    }
}

/// A raw line, read.
struct Row {
    number: u64,
    prs_nat: String,
    qte: Decimal,
    nbr: Option<Decimal>,
    base: Decimal,
    rem: Decimal,
    rate: Option<Decimal>,
    paid: Option<Decimal>,
    dep: Option<Decimal>,
    year: i32,
    month: u32,
}

/// A situation for the legal part, as the audit resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sit {
    S(Situation),
    /// Some exonerated situation, motive unknown (EXO_MTF 99): `rate.exonerated`.
    Exonerated,
    PalHeavyAct,
    LongStay,
}

impl Sit {
    fn name(self) -> String {
        match self {
            Sit::S(s) => s.as_str().to_string(),
            Sit::Exonerated => "exonerated (motive unknown)".to_string(),
            Sit::PalHeavyAct => "pal_heavy_act".to_string(),
            Sit::LongStay => "long_stay".to_string(),
        }
    }
}

/// A pricing rac's rules allow for a line: category, situation, the rules of one stretch of
/// the care month.
struct Pricing<'a> {
    category: Category,
    sit: Sit,
    snap: &'a Snapshot,
    day: NaiveDate,
    param: Param,
    /// Rate shown (percent): the out-of-pathway rate when the majoration applies.
    rate: Decimal,
    /// Out of the care pathway: (ordinary rate, out rate, majoration cap), as fractions / EUR.
    pathway: Option<(Decimal, Decimal, Decimal)>,
}

impl Pricing<'_> {
    /// The AMO amount of one prestation of base `b` (RULES §5, §7.2).
    fn one(&self, b: Decimal) -> Decimal {
        match self.pathway {
            Some((full, out, cap)) => one_out_of_pathway(b, full, out, cap),
            None => round_cents(b * self.rate / Decimal::ONE_HUNDRED),
        }
    }

    fn describe(&self) -> String {
        match self.pathway {
            Some((_, _, cap)) => format!(
                "{}, situation {}, out of the care pathway: {} at {} % less the majoration capped at {} (RULES §2, §7.2), rate shown {} %",
                self.category,
                self.sit.name(),
                Param::Rate(self.category).id(),
                self.snap
                    .get(Param::Rate(self.category), self.day)
                    .unwrap_or_default(),
                cap,
                self.rate
            ),
            None => format!(
                "{}, situation {}: {} = {} %",
                self.category,
                self.sit.name(),
                self.param.id(),
                self.rate
            ),
        }
    }
}

fn one_out_of_pathway(b: Decimal, full: Decimal, out: Decimal, cap: Decimal) -> Decimal {
    let at_full = round_cents(b * full);
    let at_out = round_cents(b * out);
    at_full - (at_full - at_out).min(cap)
}

/// What an act line's codes say, for pricing it.
#[derive(Clone, Copy)]
struct ActCodes<'c> {
    prs_nat: u32,
    categories: &'c [Category],
    sits: &'c [Sit],
    /// The codes that decided the situations, for the explanations.
    why: &'c str,
    pathway: Pathway,
    part: Part,
}

/// How an amount was rounded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rounding {
    /// `n` prestations of equal base, each rounded.
    PerPrestation(Decimal),
    /// The line's base rounded once.
    WholeLine,
}

impl Rounding {
    fn describe(self, base: Decimal) -> String {
        match self {
            Rounding::PerPrestation(n) => format!(
                "{n} prestations of {} each, rounded each (RULES §5)",
                (base.abs() / n).round_dp(2)
            ),
            Rounding::WholeLine => format!("base {base} rounded once"),
        }
    }
}

/// `n` prestations of equal base when the base splits into exact cents, else the whole line.
fn split(base: Decimal, n: Option<Decimal>) -> (Decimal, Decimal, Rounding) {
    let b = base.abs();
    if let Some(n) = n
        .map(|n| n.abs())
        .filter(|n| n.fract().is_zero() && *n >= Decimal::TWO)
    {
        let unit = (b / n).round_dp(2);
        if unit * n == b {
            return (unit, n, Rounding::PerPrestation(n));
        }
    }
    (b, Decimal::ONE, Rounding::WholeLine)
}

/// Applies `one` per prestation and restores the sign of the line (regularisations are
/// negative).
fn per_prestation(
    base: Decimal,
    qte: Decimal,
    n: Option<Decimal>,
    one: impl Fn(Decimal) -> Decimal,
) -> (Decimal, Rounding) {
    let (unit, count, how) = split(base, n);
    let sign = if base.is_sign_negative() || (base.is_zero() && qte.is_sign_negative()) {
        Decimal::NEGATIVE_ONE
    } else {
        Decimal::ONE
    };
    (sign * count * one(unit), how)
}

/// The rule stretches of a month: each one's first day and its values.
type Stretches<'a> = Vec<(NaiveDate, &'a Snapshot)>;

struct Auditor<'a> {
    book: &'a RuleBook,
    mapping: &'a Mapping,
    unmapped: Unmapped,
    /// Findings by key.
    findings: BTreeMap<&'static str, Finding>,
    /// The rule stretches of each care month met.
    months: RefCell<HashMap<(i32, u32), Stretches<'a>>>,
}

/// The outcome of one line before it is dressed as a [`DamirLine`].
struct Judged {
    class: LineClass,
    verdict: Verdict,
    rate_check: RateCheck,
    category: Option<Category>,
    situation: Option<String>,
    rac_rate: Option<Decimal>,
    rac_amount: Option<Decimal>,
    explanation: String,
}

impl Judged {
    fn new(class: LineClass, verdict: Verdict, explanation: String) -> Judged {
        Judged {
            class,
            verdict,
            rate_check: RateCheck::NotApplicable,
            category: None,
            situation: None,
            rac_rate: None,
            rac_amount: None,
            explanation,
        }
    }

    fn amount(mut self, amount: Decimal) -> Judged {
        self.rac_amount = Some(amount);
        self
    }
}

impl<'a> Auditor<'a> {
    fn finding(&mut self, key: &'static str, rule: &str, text: String, line: u64) {
        let f = self.findings.entry(key).or_insert_with(|| Finding {
            rule: rule.to_string(),
            text,
            lines: Vec::new(),
            count: 0,
        });
        f.count += 1;
        if f.lines.len() < FINDING_LINES {
            f.lines.push(line);
        }
    }

    fn line(&mut self, number: u64, f: &Fields) -> DamirLine {
        let prs_nat = f.get("PRS_NAT").to_string();
        let label = super::mapping::parse_code(&prs_nat)
            .and_then(|c| self.mapping.prs_nat(c))
            .map(|r| r.label.clone())
            .unwrap_or_default();
        let (care_month, recorded_rate, recorded_amount, judged) = match read_row(number, f) {
            Ok(row) => {
                let month = format!("{:04}-{:02}", row.year, row.month);
                let judged = self.judge(&row, f);
                (Some(month), row.rate, Some(row.rem), judged)
            }
            Err(message) => (
                None,
                None,
                None,
                Judged::new(LineClass::Unreadable, Verdict::Unexplained, message),
            ),
        };
        DamirLine {
            number,
            prs_nat,
            label,
            class: judged.class,
            verdict: judged.verdict,
            rate_check: judged.rate_check,
            category: judged.category,
            situation: judged.situation,
            care_month,
            recorded_rate,
            rac_rate: judged.rac_rate,
            recorded_amount: recorded_amount.map(cents),
            rac_amount: judged.rac_amount.map(cents),
            explanation: judged.explanation,
        }
    }

    /// The distinct rule stretches of the care month, with their first day.
    fn month(&self, row: &Row) -> Vec<(NaiveDate, &'a Snapshot)> {
        if let Some(m) = self.months.borrow().get(&(row.year, row.month)) {
            return m.clone();
        }
        let m = self.compute_month(row);
        self.months
            .borrow_mut()
            .insert((row.year, row.month), m.clone());
        m
    }

    fn compute_month(&self, row: &Row) -> Vec<(NaiveDate, &'a Snapshot)> {
        let mut out: Vec<(NaiveDate, &'a Snapshot)> = Vec::new();
        let Some(mut day) = NaiveDate::from_ymd_opt(row.year, row.month, 1) else {
            return out;
        };
        while day.month() == row.month {
            let snap = self.book.at(day);
            if !out.iter().any(|(_, s)| std::ptr::eq(*s, snap)) {
                out.push((day, snap));
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        out
    }

    /// The stretches of the care month; for a G, only those where `ngap.G` is the line's unit
    /// base (when some are): the base of a G is the G tariff of its day.
    fn stretches(&self, row: &Row, prs_nat: u32, base: Decimal) -> Vec<(NaiveDate, &'a Snapshot)> {
        let month = self.month(row);
        if prs_nat != PRS_NAT_G || base.is_zero() {
            return month;
        }
        let (unit, _, _) = split(base, row.nbr.or(Some(row.qte)));
        let days: Vec<(NaiveDate, &'a Snapshot)> = month
            .iter()
            .copied()
            .filter(|(d, s)| s.get(Scalar::NgapG, *d) == Ok(unit))
            .collect();
        if days.is_empty() { month } else { days }
    }

    fn judge(&mut self, row: &Row, f: &Fields) -> Judged {
        let mapping = self.mapping;
        let Some(nat) = mapping.lookup(
            "PRS_NAT",
            &row.prs_nat,
            Mapping::prs_nat,
            &mut self.unmapped,
        ) else {
            return Judged::new(
                LineClass::Unmapped,
                Verdict::Unexplained,
                format!(
                    "PRS_NAT {} is not in profiles/prs_nat.csv: not computed",
                    row.prs_nat
                ),
            );
        };
        let asu = mapping.lookup(
            "ASU_NAT",
            f.get("ASU_NAT"),
            Mapping::asu_nat,
            &mut self.unmapped,
        );
        if let Some(asu) = asu.filter(|a| a.nature.is_none()) {
            return Judged::new(
                LineClass::Excluded,
                Verdict::Explained,
                format!(
                    "ASU_NAT {} ({}): not care, outside rac's rules",
                    asu.code, asu.label
                ),
            );
        }
        match &nat.nature {
            Nature::Excluded(reason) => Judged::new(
                LineClass::Excluded,
                Verdict::Explained,
                format!("{}: not a care act rac computes ({reason})", nat.label),
            ),
            Nature::Pf => self.deduction(row, LineClass::Pf, &[Scalar::PfAmount]),
            Nature::Franchise(kind) => {
                self.deduction(row, LineClass::Franchise, &[kind.unit_param()])
            }
            Nature::DeductionUnlinked => self.deduction(
                row,
                LineClass::Franchise,
                &[
                    Scalar::PfAmount,
                    Scalar::FranchiseDrugBox,
                    Scalar::FranchiseParamedicalAct,
                    Scalar::FranchiseTransport,
                ],
            ),
            Nature::MajorationOutOfPathway => self.majoration(row),
            Nature::Pal => self.flat(row, LineClass::Pal, &[Scalar::PalAmount]),
            Nature::Fpu => self.flat(
                row,
                LineClass::Fpu,
                &[Scalar::FpuAmount, Scalar::FpuReduced],
            ),
            Nature::Act(categories) => {
                let categories = categories.clone();
                self.act(row, &categories, f)
            }
        }
    }

    /// The situations the legal part may be in (ASU_NAT, ATT_NAT, EXO_MTF).
    fn situations(&mut self, f: &Fields) -> (Vec<Sit>, String) {
        let mapping = self.mapping;
        let asu = mapping.lookup(
            "ASU_NAT",
            f.get("ASU_NAT"),
            Mapping::asu_nat,
            &mut Unmapped::default(),
        );
        let att = super::mapping::parse_code(f.get("ATT_NAT")).unwrap_or(0);
        let nature = match asu.and_then(|a| a.nature) {
            _ if (1..=3).contains(&att) => InsuranceNature::AtMp,
            Some(n) => n,
            None => InsuranceNature::Sickness,
        };
        let forced = match nature {
            InsuranceNature::Smg => Some(Situation::Smg),
            InsuranceNature::AtMp => Some(Situation::AtMp),
            InsuranceNature::Maternity => Some(Situation::Maternity),
            InsuranceNature::Sickness => None,
        };
        if let Some(s) = forced {
            return (vec![Sit::S(s)], format!("insurance nature {nature}"));
        }
        let exo = mapping.lookup(
            "EXO_MTF",
            f.get("EXO_MTF"),
            Mapping::exo_mtf,
            &mut self.unmapped,
        );
        let hints = exo
            .map(|e| e.situations.clone())
            .unwrap_or_else(|| vec![SituationHint::Any]);
        let why = match exo {
            Some(e) => format!("EXO_MTF {} ({})", e.code, e.label),
            None => "EXO_MTF unknown".to_string(),
        };
        let mut sits = Vec::new();
        for h in hints {
            let add: &[Sit] = match h {
                SituationHint::Situation(s) => &[Sit::S(s)],
                SituationHint::PalHeavyAct => &[Sit::PalHeavyAct],
                SituationHint::LongStay => &[Sit::LongStay],
                SituationHint::Any => &[Sit::S(Situation::Ordinary), Sit::Exonerated],
            };
            for s in add {
                if !sits.contains(s) {
                    sits.push(*s);
                }
            }
        }
        (sits, why)
    }

    fn pathway(&mut self, f: &Fields) -> Pathway {
        self.mapping
            .lookup(
                "PRS_PDS_QCP",
                f.get("PRS_PDS_QCP"),
                Mapping::pds_qcp,
                &mut self.unmapped,
            )
            .map(|q| q.pathway)
            .unwrap_or(Pathway::Coordinated)
    }

    /// Every pricing rac's rules allow for the line (categories × situations × stretches).
    fn pricings(
        &self,
        row: &Row,
        prs_nat: u32,
        categories: &[Category],
        sits: &[Sit],
        pathway: Pathway,
    ) -> Vec<Pricing<'a>> {
        let mut out = Vec::new();
        for (day, snap) in self.stretches(row, prs_nat, row.base) {
            for &category in categories {
                for &sit in sits {
                    let param = rate_param(category, sit);
                    let Ok(rate) = snap.get(param, day) else {
                        continue;
                    };
                    let mut p = Pricing {
                        category,
                        sit,
                        snap,
                        day,
                        param,
                        rate,
                        pathway: None,
                    };
                    if pathway == Pathway::OutOfPathway
                        && subject_to_pathway(category)
                        && sit == Sit::S(Situation::Ordinary)
                    {
                        let (Ok(full), Ok(out_rate), Ok(share), Ok(g)) = (
                            snap.fraction(Param::Rate(category), day),
                            snap.get(Scalar::PathwayOutRate, day),
                            snap.fraction(Scalar::PathwayMajorationCapShare, day),
                            snap.get(Scalar::NgapG, day),
                        ) else {
                            continue;
                        };
                        p.rate = out_rate;
                        p.param = Scalar::PathwayOutRate.into();
                        p.pathway = Some((
                            full,
                            out_rate / Decimal::ONE_HUNDRED,
                            round_cents(share * g),
                        ));
                    }
                    out.push(p);
                }
            }
        }
        out
    }

    /// An act line: the legal part, or a complementary part by PRS_REM_TYP.
    fn act(&mut self, row: &Row, categories: &[Category], f: &Fields) -> Judged {
        let part = self
            .mapping
            .lookup(
                "PRS_REM_TYP",
                f.get("PRS_REM_TYP"),
                Mapping::rem_typ,
                &mut self.unmapped,
            )
            .map(|r| r.part)
            .unwrap_or(Part::Unknown);
        let (sits, why) = self.situations(f);
        let pathway = self.pathway(f);
        let prs_nat = super::mapping::parse_code(&row.prs_nat).unwrap_or(0);
        let codes = ActCodes {
            prs_nat,
            categories,
            sits: &sits,
            why: &why,
            pathway,
            part,
        };
        match part {
            Part::Legal => self.legal(row, &codes),
            Part::Unknown if !row.base.is_zero() => self.legal(row, &codes),
            Part::Unknown if row.rem.is_zero() => Judged::new(
                LineClass::ComplementaryPart,
                Verdict::Explained,
                "no base and nothing paid: nothing to recompute".to_string(),
            ),
            Part::Unknown => self.complementary(
                row,
                categories,
                &sits,
                pathway,
                &[Part::C2s, Part::AlsaceMoselle],
            ),
            Part::C2s | Part::AlsaceMoselle => {
                self.complementary(row, categories, &sits, pathway, &[part])
            }
            Part::Supplement => {
                let mut j = self.complementary(row, categories, &sits, pathway, &[]);
                if j.verdict != Verdict::Reproduced {
                    j.verdict = Verdict::Explained;
                    j.explanation = format!(
                        "a complementary part of a specific scheme (PRS_REM_TYP {}): outside rac's rules",
                        f.get("PRS_REM_TYP")
                    );
                }
                j
            }
        }
    }

    /// The AMO legal part of an act line.
    fn legal(&mut self, row: &Row, codes: &ActCodes) -> Judged {
        let ActCodes {
            prs_nat,
            categories,
            sits,
            why,
            pathway,
            part,
        } = *codes;
        let pricings = self.pricings(row, prs_nat, categories, sits, pathway);
        let Some(first) = pricings.first() else {
            return Judged::new(
                LineClass::Act,
                Verdict::Unexplained,
                format!(
                    "no rate in rac's rules for {} in {}-{:02}",
                    categories[0], row.year, row.month
                ),
            );
        };
        let mut judged = Judged {
            class: LineClass::Act,
            verdict: Verdict::Unexplained,
            rate_check: RateCheck::NotApplicable,
            category: Some(first.category),
            situation: Some(first.sit.name()),
            rac_rate: Some(first.rate),
            rac_amount: None,
            explanation: String::new(),
        };
        let matching: Vec<&Pricing> = match row.rate {
            Some(r) => pricings.iter().filter(|p| p.rate == r).collect(),
            None => pricings.iter().collect(),
        };
        if row.rate.is_some() {
            judged.rate_check = if matching.is_empty() {
                RateCheck::Differs
            } else {
                RateCheck::Matches
            };
        }
        let n = row.nbr;
        // 1. A pricing with the recorded rate that gives the recorded amount.
        for p in &matching {
            let (amount, how) = per_prestation(row.base, row.qte, n, |b| p.one(b));
            if amount == row.rem {
                judged.verdict = Verdict::Reproduced;
                judged.category = Some(p.category);
                judged.situation = Some(p.sit.name());
                judged.rac_rate = Some(p.rate);
                judged.rac_amount = Some(amount);
                judged.explanation = format!(
                    "{} ({why}); {} → {amount}",
                    p.describe(),
                    how.describe(row.base)
                );
                self.check_unit_rounding(row, p, amount);
                return judged;
            }
        }
        if let Some(p) = matching.first() {
            let (amount, _) = per_prestation(row.base, row.qte, n, |b| p.one(b));
            judged.category = Some(p.category);
            judged.situation = Some(p.sit.name());
            judged.rac_rate = Some(p.rate);
            judged.rac_amount = Some(amount);
            // 2. An aggregated line of prestations with different bases: each rounding moves
            // the sum by at most half a cent. Out of the pathway, only when no prestation can
            // reach the cap (the amount is then base × the out rate).
            let exact = match p.pathway {
                None => Some(row.base * p.rate / Decimal::ONE_HUNDRED),
                Some((full, out, cap)) if (row.base.abs() * (full - out)) <= cap => {
                    Some(row.base * out)
                }
                Some(_) => None,
            };
            if let Some(exact) = exact {
                let count = n
                    .map(|n| n.abs())
                    .filter(|n| *n >= Decimal::ONE)
                    .unwrap_or(row.qte.abs())
                    .max(Decimal::ONE);
                let slack = count * Decimal::new(5, 3);
                if (row.rem - exact).abs() <= slack {
                    judged.verdict = Verdict::Explained;
                    judged.explanation = format!(
                        "{} ({why}), the recorded rate; an aggregated line of {count} prestations whose bases differ: base × rate = {}, which rac rounds once to {amount}; the recorded {} lies within the ±{} that {count} roundings to the cent allow",
                        p.describe(),
                        exact.normalize(),
                        row.rem,
                        slack.normalize()
                    );
                    return judged;
                }
            }
        }
        // 3. Out of the pathway: the majoration the caisse applied.
        if let Some(j) = self.pathway_alternative(row, categories, sits, pathway, false) {
            return Judged {
                rate_check: judged.rate_check,
                ..j
            };
        }
        // 4. Another scheme's line (PRS_REM_TYP unknown) may be a complementary part.
        if part == Part::Unknown {
            let j = self.complementary(
                row,
                categories,
                sits,
                pathway,
                &[Part::C2s, Part::AlsaceMoselle],
            );
            if j.verdict == Verdict::Reproduced {
                return j;
            }
        }
        // 5. Nothing rac knows: say what differs.
        let rac_rates: Vec<String> = dedup(
            pricings
                .iter()
                .map(|p| format!("{} % ({}, {})", p.rate, p.category, p.sit.name())),
        );
        let ratio = if row.base.is_zero() {
            String::from("there is no base")
        } else {
            format!(
                "it is {} % of the base {}",
                (row.rem / row.base * Decimal::ONE_HUNDRED).round_dp(2),
                row.base
            )
        };
        match (row.rate, matching.first()) {
            (Some(r), None) => {
                let at_recorded = per_prestation(row.base, row.qte, n, |b| {
                    round_cents(b * r / Decimal::ONE_HUNDRED)
                })
                .0;
                judged.rac_amount = Some(per_prestation(row.base, row.qte, n, |b| first.one(b)).0);
                judged.explanation = if at_recorded == row.rem {
                    format!(
                        "the caisse applied {r} % where rac's rules give {} for {why}; the amount {} is base × {r} %: the reason for that rate is not among Open DAMIR's dimensions",
                        rac_rates.join(" or "),
                        row.rem
                    )
                } else {
                    format!(
                        "recorded rate {r} %, recorded amount {}: {ratio}; rac's rules give {} for {why}",
                        row.rem,
                        rac_rates.join(" or ")
                    )
                };
            }
            (_, Some(p)) => {
                judged.explanation = format!(
                    "{} ({why}) gives {}, but the recorded amount is {}: {ratio}, which neither the rate nor rounding explains (nor a C2S or Alsace-Moselle part)",
                    p.describe(),
                    judged.rac_amount.unwrap_or_default(),
                    row.rem
                );
            }
            (None, None) => {
                judged.explanation = format!(
                    "{} ({why}) gives {}, recorded {}: {ratio}",
                    first.describe(),
                    judged.rac_amount.unwrap_or_default(),
                    row.rem
                );
            }
        }
        judged
    }

    /// Notes a line the engine's per-unit rounding (RULES §5, units = PRS_ACT_QTE) would miss.
    fn check_unit_rounding(&mut self, row: &Row, p: &Pricing, amount: Decimal) {
        if p.pathway.is_some() {
            return;
        }
        let qte = row.qte.abs();
        if qte < Decimal::TWO || !qte.fract().is_zero() {
            return;
        }
        let unit = (row.base.abs() / qte).round_dp(2);
        if unit * qte != row.base.abs() {
            return;
        }
        let per_unit = qte
            * p.one(unit)
            * if row.base.is_sign_negative() {
                Decimal::NEGATIVE_ONE
            } else {
                Decimal::ONE
            };
        if per_unit != amount {
            self.finding(
                "rounding_per_unit",
                "RULES §5",
                "RULES §5 rounds per unit of quantity; on these lines of one prestation of several units (PRS_ACT_NBR 1 or empty, PRS_ACT_QTE ≥ 2) the caisse rounds once per prestation (e.g. 5 units of 1.02 at 15 %: 0.77, not 5 × 0.15 = 0.75). The data agree with rounding per prestation, which equals RULES §5 when a prestation is one unit".to_string(),
                row.number,
            );
        }
    }

    /// Out of the pathway, the majoration the caisse applied when rac's cap or scope differs:
    /// the caps of earlier G values, and imaging acts made subject to it.
    fn pathway_alternative(
        &mut self,
        row: &Row,
        categories: &[Category],
        sits: &[Sit],
        pathway: Pathway,
        complementary: bool,
    ) -> Option<Judged> {
        if pathway != Pathway::OutOfPathway || !sits.contains(&Sit::S(Situation::Ordinary)) {
            return None;
        }
        let book = self.book;
        let g_history = &book.definition(Scalar::NgapG).values;
        let prs_nat = super::mapping::parse_code(&row.prs_nat).unwrap_or(0);
        let g_base = if complementary {
            complementary_base(row)
        } else {
            row.base
        };
        for (day, snap) in self.stretches(row, prs_nat, g_base) {
            let (Ok(out_rate), Ok(share)) = (
                snap.fraction(Scalar::PathwayOutRate, day),
                snap.fraction(Scalar::PathwayMajorationCapShare, day),
            ) else {
                continue;
            };
            let rac_cap = snap
                .get(Scalar::NgapG, day)
                .map(|g| round_cents(share * g))
                .ok();
            for &category in categories {
                if !matches!(
                    category,
                    Category::Consultation | Category::MedicalAct | Category::Imaging
                ) {
                    continue;
                }
                let Ok(full) = snap.fraction(Param::Rate(category), day) else {
                    continue;
                };
                for g in g_history.iter().rev() {
                    let cap = round_cents(share * g.value);
                    let scope_differs = !subject_to_pathway(category);
                    if Some(cap) == rac_cap && !scope_differs {
                        continue;
                    }
                    let (base, amount) = if complementary {
                        let base = complementary_base(row);
                        let amount = per_prestation(base, row.qte, row.nbr, |b| {
                            b - one_out_of_pathway(b, full, out_rate, cap)
                        })
                        .0;
                        (base, amount)
                    } else {
                        let amount = per_prestation(row.base, row.qte, row.nbr, |b| {
                            one_out_of_pathway(b, full, out_rate, cap)
                        })
                        .0;
                        (row.base, amount)
                    };
                    if amount != row.rem {
                        continue;
                    }
                    let mut why = Vec::new();
                    if scope_differs {
                        why.push(format!(
                            "the caisse applied the out-of-pathway majoration to an act of category {category}, rac applies it to consultation and medical_act only (RULES §2)"
                        ));
                        self.finding(
                            "pathway_scope",
                            "RULES §2 (out of pathway)",
                            "the caisse applies the out-of-pathway majoration to imaging acts of a specialist consulted out of the pathway; rac's rules limit it to consultation and medical_act".to_string(),
                            row.number,
                        );
                    }
                    if Some(cap) != rac_cap {
                        why.push(format!(
                            "it capped the majoration at {cap} = {} % × G {} (the G from {}), where rac's rules cap it at {} on this care month",
                            (share * Decimal::ONE_HUNDRED).normalize(),
                            g.value,
                            g.from,
                            rac_cap.map(|c| c.to_string()).unwrap_or_default()
                        ));
                        self.finding(
                            "pathway_cap",
                            "pathway.majoration_cap_share × ngap.G",
                            format!(
                                "the caisse capped the out-of-pathway majoration at {cap} (40 % of G {}, the G from {}) on care where rac's rules cap it at {} (40 % of the G in force): in the data, the cap did not follow the G's last change (ngap.G is marked verify in RULES §1)",
                                g.value,
                                g.from,
                                rac_cap.map(|c| c.to_string()).unwrap_or_default()
                            ),
                            row.number,
                        );
                    }
                    let what = if complementary {
                        format!(
                            "the complementary part is base {base} less the legal part out of the pathway"
                        )
                    } else {
                        format!("{category} out of the care pathway")
                    };
                    let mut j = Judged::new(
                        if complementary {
                            LineClass::ComplementaryPart
                        } else {
                            LineClass::Act
                        },
                        Verdict::Explained,
                        format!(
                            "{what}: {}; with that, {amount} is reproduced",
                            why.join("; ")
                        ),
                    );
                    j.category = Some(category);
                    j.situation = Some("ordinary".to_string());
                    j.rac_amount = per_prestation(base, row.qte, row.nbr, |b| {
                        let legal = match rac_cap {
                            Some(c) if subject_to_pathway(category) => {
                                one_out_of_pathway(b, full, out_rate, c)
                            }
                            _ => round_cents(b * full),
                        };
                        if complementary { b - legal } else { legal }
                    })
                    .0
                    .into();
                    return Some(j);
                }
            }
        }
        None
    }

    /// A complementary part: rac's `css` / `alsace_moselle` amount less the legal part, or the
    /// 24 € participation paid for the patient.
    fn complementary(
        &mut self,
        row: &Row,
        categories: &[Category],
        sits: &[Sit],
        pathway: Pathway,
        kinds: &[Part],
    ) -> Judged {
        let base = complementary_base(row);
        let prs_nat = super::mapping::parse_code(&row.prs_nat).unwrap_or(0);
        let mut first: Option<(Category, Decimal)> = None;
        for (day, snap) in self.stretches(row, prs_nat, base) {
            for &category in categories {
                for &sit in sits {
                    let legal_param = rate_param(category, sit);
                    let Ok(legal_rate) = snap.fraction(legal_param, day) else {
                        continue;
                    };
                    let out = (pathway == Pathway::OutOfPathway
                        && subject_to_pathway(category)
                        && sit == Sit::S(Situation::Ordinary))
                    .then(|| {
                        Some((
                            snap.fraction(Scalar::PathwayOutRate, day).ok()?,
                            round_cents(
                                snap.fraction(Scalar::PathwayMajorationCapShare, day).ok()?
                                    * snap.get(Scalar::NgapG, day).ok()?,
                            ),
                        ))
                    })
                    .flatten();
                    let legal = |b: Decimal| match out {
                        Some((out_rate, cap)) => one_out_of_pathway(b, legal_rate, out_rate, cap),
                        None => round_cents(b * legal_rate),
                    };
                    for &kind in kinds {
                        let full_param = match kind {
                            Part::C2s => Param::from(Scalar::RateExonerated),
                            Part::AlsaceMoselle if sit == Sit::S(Situation::Ordinary) => {
                                Param::RateAlsaceMoselle(category)
                            }
                            Part::AlsaceMoselle => legal_param,
                            _ => continue,
                        };
                        let Ok(full_rate) = snap.fraction(full_param, day) else {
                            continue;
                        };
                        let (amount, how) = per_prestation(base, row.qte, row.nbr, |b| {
                            round_cents(b * full_rate) - legal(b)
                        });
                        if first.is_none() {
                            first = Some((category, amount));
                        }
                        if amount == row.rem {
                            let (who, situation) = match kind {
                                Part::C2s => ("the C2S / AME (rac's situation css pays", "css"),
                                _ => (
                                    "the régime local (rac's regime alsace_moselle pays",
                                    "alsace_moselle",
                                ),
                            };
                            let mut j = Judged::new(
                                LineClass::ComplementaryPart,
                                Verdict::Reproduced,
                                format!(
                                    "{category}: {who} {} % = {}), less the AMO legal part {} ({}{}); {} → {amount}",
                                    full_rate * Decimal::ONE_HUNDRED,
                                    full_param.id(),
                                    if out.is_some() {
                                        "out of the pathway".to_string()
                                    } else {
                                        format!("{} %", legal_rate * Decimal::ONE_HUNDRED)
                                    },
                                    legal_param.id(),
                                    if sit == Sit::S(Situation::Ordinary) {
                                        String::new()
                                    } else {
                                        format!(", situation {}", sit.name())
                                    },
                                    how.describe(base)
                                ),
                            )
                            .amount(amount);
                            j.category = Some(category);
                            j.situation = Some(situation.to_string());
                            if out.is_none() {
                                let share = (full_rate - legal_rate) * Decimal::ONE_HUNDRED;
                                j.rac_rate = Some(share.normalize());
                                if row.rate == Some(share) {
                                    j.rate_check = RateCheck::Matches;
                                }
                            }
                            return j;
                        }
                    }
                }
            }
        }
        if let Some(j) = self.pathway_alternative(row, categories, sits, pathway, true) {
            return j;
        }
        // The 24 € participation, paid for the patient by the C2S, the AME or the régime local.
        let units = unit_count(row);
        for (day, snap) in self.month(row) {
            if let Ok(pal) = snap.get(Scalar::PalAmount, day) {
                for k in 1..=units {
                    if row.rem.abs() == pal * Decimal::from(k) {
                        return Judged::new(
                            LineClass::ComplementaryPart,
                            Verdict::Reproduced,
                            format!(
                                "{k} × pal.amount {pal}: the 24 EUR participation paid for the patient (C2S, AME and Alsace-Moselle pay it, RULES §4); recorded rate {} is amount / expense",
                                row.rate.map(|r| r.to_string()).unwrap_or_default()
                            ),
                        )
                        .amount(pal * Decimal::from(k));
                    }
                }
            }
        }
        let mut j = Judged::new(
            LineClass::ComplementaryPart,
            Verdict::Unexplained,
            format!(
                "a complementary part (base {base}, recorded {}): neither rac's css nor its alsace_moselle amount less the legal part, nor a 24 EUR participation, gives it",
                row.rem
            ),
        );
        if let Some((category, amount)) = first {
            j.category = Some(category);
            j.rac_amount = Some(amount);
        }
        j
    }

    /// A PF or franchise line: units × the unit amount in force in the care month.
    fn deduction(&mut self, row: &Row, class: LineClass, params: &[Scalar]) -> Judged {
        let units = unit_count(row);
        let sign = if row.qte.is_sign_negative() {
            Decimal::ONE
        } else {
            Decimal::NEGATIVE_ONE
        };
        let mut values: Vec<(Scalar, Decimal)> = Vec::new();
        for (day, snap) in self.month(row) {
            for &p in params {
                if let Ok(v) = snap.get(p, day)
                    && !values.contains(&(p, v))
                {
                    values.push((p, v));
                }
            }
        }
        if values.is_empty() {
            return Judged::new(
                class,
                Verdict::Unexplained,
                format!(
                    "no value of {} in {}-{:02}",
                    Param::from(params[0]).id(),
                    row.year,
                    row.month
                ),
            );
        }
        let units_i = Decimal::from(units);
        // Every unit at one value, or the month's two values shared out between the units.
        for (i, &(p, v)) in values.iter().enumerate() {
            for &(q, w) in values.iter().skip(i) {
                if p != q {
                    continue;
                }
                for k in 0..=units {
                    let k = Decimal::from(k);
                    let expected = sign * (k * v + (units_i - k) * w);
                    if expected == row.rem {
                        let id = Param::from(p).id();
                        let how = if v == w || k == units_i {
                            format!("{units} × {id} {v}")
                        } else if k.is_zero() {
                            format!("{units} × {id} {w}")
                        } else {
                            format!(
                                "{k} × {v} + {} × {w} ({id} changes within the month)",
                                units_i - k
                            )
                        };
                        return Judged::new(
                            class,
                            Verdict::Reproduced,
                            format!("{how} = {expected}"),
                        )
                        .amount(expected);
                    }
                }
            }
        }
        let (p, v) = values[values.len() - 1];
        let full = sign * units_i * v;
        let partial = row.rem.is_sign_negative() == full.is_sign_negative()
            && !row.rem.is_zero()
            && row.rem.abs() < full.abs();
        let id = Param::from(p).id();
        let j = if partial {
            let caps = match class {
                LineClass::Pf => {
                    "the PF annual cap (pf.annual_cap 50 EUR) reached on one of these acts, which leaves a partial last amount (RULES §4)"
                }
                _ => {
                    "the franchise annual cap (50 EUR), a daily cap (paramedical, transport) or the line cap (a franchise never exceeds its line's AMO amount, CSS D160-9), each of which leaves a partial amount (RULES §4, §8)"
                }
            };
            Judged::new(
                class,
                Verdict::Explained,
                format!(
                    "{} is less than {units} × {id} {v} = {full}: {caps}; it needs the patient's other lines, which Open DAMIR does not have",
                    row.rem
                ),
            )
        } else {
            Judged::new(
                class,
                Verdict::Unexplained,
                format!(
                    "{} is not {units} × {id} {v} = {full}, nor a partial amount of it",
                    row.rem
                ),
            )
        };
        j.amount(full)
    }

    /// The out-of-pathway majoration line: at most the cap 40 % × G of the care month.
    fn majoration(&mut self, row: &Row) -> Judged {
        let units = unit_count(row);
        let mut caps = Vec::new();
        for (day, snap) in self.month(row) {
            if let (Ok(share), Ok(g)) = (
                snap.fraction(Scalar::PathwayMajorationCapShare, day),
                snap.get(Scalar::NgapG, day),
            ) {
                let cap = round_cents(share * g);
                if !caps.contains(&(cap, g)) {
                    caps.push((cap, g));
                }
            }
        }
        let units_i = Decimal::from(units);
        for &(cap, g) in &caps {
            if row.rem.abs() == cap * units_i {
                return Judged::new(
                    LineClass::OutOfPathwayMajoration,
                    Verdict::Reproduced,
                    format!(
                        "{units} × the capped majoration {cap} = pathway.majoration_cap_share × ngap.G {g} (RULES §2, §7.2): the acts' 40 points exceeded the cap"
                    ),
                )
                .amount(-cap * units_i);
            }
        }
        let Some(&(cap, g)) = caps.last() else {
            return Judged::new(
                LineClass::OutOfPathwayMajoration,
                Verdict::Unexplained,
                format!(
                    "no majoration cap in rac's rules in {}-{:02}",
                    row.year, row.month
                ),
            );
        };
        if row.rem.abs() < cap * units_i {
            Judged::new(
                LineClass::OutOfPathwayMajoration,
                Verdict::Explained,
                format!(
                    "{} is below {units} × the cap {cap} (40 % × G {g}): the majoration is 40 points of the act's base, which is not on this line",
                    row.rem
                ),
            )
        } else {
            Judged::new(
                LineClass::OutOfPathwayMajoration,
                Verdict::Unexplained,
                format!(
                    "{} exceeds {units} × the cap {cap} (40 % × G {g}) of RULES §7.2",
                    row.rem
                ),
            )
        }
        .amount(-cap * units_i)
    }

    /// PAL and FPU lines: the unit amount, on the base or on the amount.
    fn flat(&mut self, row: &Row, class: LineClass, params: &[Scalar]) -> Judged {
        let units = Decimal::from(unit_count(row));
        let mut seen = Vec::new();
        for (day, snap) in self.month(row) {
            for &p in params {
                let Ok(v) = snap.get(p, day) else { continue };
                seen.push(format!("{} {v}", Param::from(p).id()));
                let total = v * units;
                if row.base.abs() == total {
                    let paid = if row.rem.is_zero() {
                        "the AMO pays none of it: it is the patient's (or paid by the C2S / régime local on their own line)".to_string()
                    } else {
                        format!("recorded amount {}", row.rem)
                    };
                    return Judged::new(
                        class,
                        Verdict::Reproduced,
                        format!(
                            "base {} = {units} × {} {v}; {paid}",
                            row.base,
                            Param::from(p).id()
                        ),
                    )
                    .amount(row.rem);
                }
                if row.rem.abs() == total {
                    return Judged::new(
                        class,
                        Verdict::Reproduced,
                        format!("{} = {units} × {} {v}", row.rem, Param::from(p).id()),
                    )
                    .amount(row.rem);
                }
            }
        }
        Judged::new(
            class,
            Verdict::Unexplained,
            format!(
                "base {} and amount {} are not {units} × {}",
                row.base,
                row.rem,
                seen.join(" or ")
            ),
        )
    }
}

/// The base a complementary part applies to: the line's base, or the expense less the
/// overbilling when the base is on the legal line.
fn complementary_base(row: &Row) -> Decimal {
    if !row.base.is_zero() {
        return row.base;
    }
    let paid = row.paid.unwrap_or_default();
    let dep = row.dep.unwrap_or_default();
    if paid - dep > Decimal::ZERO {
        paid - dep
    } else {
        paid
    }
}

/// Units of a deduction or flat-fee line: PRS_ACT_QTE, at least 1.
fn unit_count(row: &Row) -> i64 {
    let q = row.qte.abs().trunc();
    i64::try_from(q).unwrap_or(1).clamp(1, 100_000)
}

/// The rate parameter of a category in a situation (RULES §2–§3), as the engine decides it.
fn rate_param(c: Category, sit: Sit) -> Param {
    match sit {
        Sit::PalHeavyAct => Scalar::PalRate.into(),
        Sit::Exonerated => Scalar::RateExonerated.into(),
        Sit::LongStay => Scalar::LongStayRate.into(),
        Sit::S(s) => {
            if is_daily_fee(c) {
                if exempts_daily_fee(s) {
                    Scalar::RateExonerated.into()
                } else {
                    Param::Rate(c)
                }
            } else if s == Situation::Ordinary || keeps_drug_rate(s, c) {
                Param::Rate(c)
            } else {
                Scalar::RateExonerated.into()
            }
        }
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn read_row(number: u64, f: &Fields) -> Result<Row, String> {
    // Amounts and counts past 10^12 are no real line, and their products would overflow.
    let amount = |c: &str| match parse_amount(f.get(c)) {
        Ok(v) if v.is_none_or(within_amount_range) => Ok(v),
        Ok(_) => Err(format!("column {c}: `{}` is out of range", f.get(c))),
        Err(v) => Err(format!("column {c}: `{v}` is not a number")),
    };
    let required = |c: &str| -> Result<Decimal, String> {
        amount(c)?.ok_or_else(|| format!("column {c} is empty"))
    };
    let year: i32 = f
        .get("SOI_ANN")
        .parse()
        .map_err(|_| format!("column SOI_ANN: `{}` is not a year", f.get("SOI_ANN")))?;
    let month: u32 = f
        .get("SOI_MOI")
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| format!("column SOI_MOI: `{}` is not a month", f.get("SOI_MOI")))?;
    if NaiveDate::from_ymd_opt(year, month, 1).is_none() {
        return Err(format!("care month {year}-{month:02} is not a date"));
    }
    Ok(Row {
        number,
        prs_nat: f.get("PRS_NAT").to_string(),
        qte: required("PRS_ACT_QTE")?,
        nbr: amount("PRS_ACT_NBR")?,
        base: amount("PRS_REM_BSE")?.unwrap_or_default(),
        rem: required("PRS_REM_MNT")?,
        rate: amount("PRS_REM_TAU")?,
        paid: amount("PRS_PAI_MNT")?,
        dep: amount("PRS_DEP_MNT")?,
        year,
        month,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const HEADER: &str = "FLX_ANN_MOI;PRS_NAT;PRS_ACT_QTE;PRS_ACT_NBR;PRS_PAI_MNT;PRS_DEP_MNT;PRS_REM_BSE;PRS_REM_MNT;PRS_REM_TAU;PRS_REM_TYP;SOI_ANN;SOI_MOI;ASU_NAT;ATT_NAT;EXO_MTF;BEN_CMU_TOP;MTM_NAT;PRS_PDS_QCP;\n";

    fn audit(lines: &str) -> DamirReport {
        let text = format!("{HEADER}{lines}");
        audit_damir_reader("t.csv", text.as_bytes(), &RuleBook::builtin()).unwrap()
    }

    #[test]
    fn per_prestation_rounding() {
        // 2 prestations of 1.58 at 65 %: 2 × 1.03 = 2.06 (not round(3.16 × 0.65) = 2.05).
        let r = audit("202501;3365;2;2;3.16;0;3.16;2.06;65;0;2025;01;10;0;0;0;0;31;\n");
        let l = &r.lines[0];
        assert_eq!(l.verdict, Verdict::Reproduced, "{}", l.explanation);
        assert_eq!(l.rate_check, RateCheck::Matches);
        assert_eq!(l.category, Some(Category::Drug65));
        assert_eq!(l.rac_amount, Some(dec!(2.06)));
    }

    #[test]
    fn regularisation_lines_are_negative() {
        let r = audit("202501;1110;-1;-1;-30;0;-30;-21;70;0;2025;01;10;0;0;0;0;1;\n");
        assert_eq!(
            r.lines[0].verdict,
            Verdict::Reproduced,
            "{}",
            r.lines[0].explanation
        );
        assert_eq!(r.lines[0].rac_amount, Some(dec!(-21)));
        let r = audit("202501;1952;-1;-1;0;0;0;2;100;0;2025;01;10;0;0;0;0;1;\n");
        assert_eq!(
            r.lines[0].verdict,
            Verdict::Reproduced,
            "{}",
            r.lines[0].explanation
        );
    }

    #[test]
    fn a_franchise_month_that_straddles_the_change() {
        // March 2024: 0.50 until the 30th, 1.00 on the 31st; 3 boxes = 0.50 + 0.50 + 1.00.
        let r = audit("202404;1972;3;3;0;0;0;-2;100;0;2024;03;10;0;0;0;0;31;\n");
        assert_eq!(
            r.lines[0].verdict,
            Verdict::Reproduced,
            "{}",
            r.lines[0].explanation
        );
        assert!(r.lines[0].explanation.contains("changes within the month"));
    }

    #[test]
    fn unmapped_and_unreadable_lines_are_reported() {
        let r = audit(
            "202501;12345;1;1;1;0;1;1;100;0;2025;01;10;0;0;0;0;31;\n\
             202501;1110;1;1;x;0;30;21;70;0;2025;13;10;0;0;0;0;1;\n",
        );
        assert_eq!(r.lines[0].class, LineClass::Unmapped);
        assert_eq!(r.unmapped.count("PRS_NAT", "12345"), 1);
        assert_eq!(r.lines[1].class, LineClass::Unreadable);
        assert!(
            r.lines[1].explanation.contains("SOI_MOI"),
            "{}",
            r.lines[1].explanation
        );
    }

    #[test]
    fn amounts_past_the_range_make_a_line_unreadable_not_a_panic() {
        let max = "79228162514264337593543950335";
        // A base of Decimal::MAX, then a quantity of Decimal::MAX: both overflowed a product.
        let r = audit(&format!(
            "202501;1110;1;1;30;0;{max};21;70;0;2025;01;10;0;0;0;0;1;\n\
             202501;1110;{max};1;30;0;30;21;70;0;2025;01;10;0;0;0;0;1;\n\
             202501;1110;1;1;30;0;30;21;70;0;2025;01;10;0;0;0;0;1;\n"
        ));
        for (line, column) in [(0, "PRS_REM_BSE"), (1, "PRS_ACT_QTE")] {
            assert_eq!(r.lines[line].class, LineClass::Unreadable);
            assert_eq!(
                r.lines[line].explanation,
                format!("column {column}: `{max}` is out of range")
            );
        }
        assert_eq!(r.lines[2].verdict, Verdict::Reproduced);
    }

    #[test]
    fn missing_column_is_an_error() {
        let err = audit_damir_reader(
            "t.csv",
            "PRS_NAT;PRS_ACT_QTE;\n1110;1;\n".as_bytes(),
            &RuleBook::builtin(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("PRS_REM_BSE"), "{err}");
    }
}
