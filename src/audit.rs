//! `rac audit`: compare the recomputed AMO amount of each act with the recorded one, and
//! explain each difference by the one step that, changed, gives the recorded amount.
//!
//! The explanations are tried in a fixed order, each a variant of the act's computation with
//! one step changed (the PF or franchise not deducted or deducted twice, the flat fee missing
//! or charged twice, the exoneration not applied or applied without a right, another rate);
//! the first variant that reproduces the recorded amount to the cent names the cause (the
//! tolerance only decides which lines are discrepancies).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;

use crate::engine::{flags, round_cents};
use crate::io::write::{Column, Format, Get, Row, TableWriter, WriteError};
use crate::model::{Act, Outcome, Situation};
use crate::rules::{Param, RuleBook, Scalar};

/// What the recorded amount is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// `amo_paid`: the extract records the net payment.
    Paid,
    /// `amo_gross`: the extract records the PF and franchises as separate lines.
    Gross,
}

/// One audited act whose recorded amount differs (SPEC §4, `discrepancies.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Discrepancy {
    pub act_id: String,
    pub patient_id: String,
    pub recorded_amo: Decimal,
    pub amo_paid: Decimal,
    /// `recorded_amo − amo_paid` (or `− amo_gross` with `--compare gross`).
    pub difference: Decimal,
    /// The cause found: `pf_not_deducted`, `rate_differs:65`, … or `unexplained`.
    pub explanation: String,
    /// Before the PAL, PF, franchise and flat fee: what `--compare gross` compares with (the
    /// table showed `amo_paid` alone, which then did not give the difference).
    pub amo_gross: Decimal,
}

impl Discrepancy {
    /// The recomputed amount the recorded one was compared with (`amo_paid`, or `amo_gross`
    /// with `--compare gross`): `recorded_amo − difference`.
    pub fn computed(&self) -> Decimal {
        self.recorded_amo - self.difference
    }
}

/// The audited acts by id (those with a `recorded_amo`), for the variants.
pub type ActIndex<'a> = HashMap<&'a str, &'a Act>;

/// The discrepancies among `outcomes`, in outcome order.
pub fn discrepancies(
    book: &RuleBook,
    outcomes: &[Outcome],
    acts: &ActIndex,
    compare: Compare,
    tolerance: Decimal,
) -> Vec<Discrepancy> {
    outcomes
        .iter()
        .filter_map(|o| {
            let (recorded, difference) = difference(o, compare, tolerance)?;
            let explanation = match acts.get(o.act_id.as_str()) {
                Some(act) => explain(book, act, o, recorded, compare),
                None => "unexplained".to_string(),
            };
            Some(Discrepancy {
                act_id: o.act_id.to_string(),
                patient_id: o.patient_id.to_string(),
                recorded_amo: recorded,
                amo_paid: o.amo_paid,
                difference,
                explanation,
                amo_gross: o.amo_gross,
            })
        })
        .collect()
}

/// The recorded amount of `o` and what it differs by from the recomputed one, if more than
/// `tolerance`.
fn difference(o: &Outcome, compare: Compare, tolerance: Decimal) -> Option<(Decimal, Decimal)> {
    let recorded = o.recorded_amo?;
    let ours = match compare {
        Compare::Paid => o.amo_paid,
        Compare::Gross => o.amo_gross,
    };
    let difference = recorded - ours;
    (difference.abs() > tolerance).then_some((recorded, difference))
}

/// Flags `recorded_differs` (SPEC §5) on the lines of `outcomes` whose recorded amount
/// differs from the recomputed one by more than `tolerance`: those of [`discrepancies`].
pub fn flag_differing(outcomes: &mut [Outcome], compare: Compare, tolerance: Decimal) {
    for o in outcomes {
        if difference(o, compare, tolerance).is_some() {
            o.flags.push(flags::RECORDED_DIFFERS);
        }
    }
}

/// The first single-step variant of the computation that gives `recorded`.
fn explain(book: &RuleBook, act: &Act, o: &Outcome, recorded: Decimal, compare: Compare) -> String {
    let snap = book.at(o.care_date);
    let date = o.care_date;
    let deductions = match compare {
        Compare::Paid => o.pal + o.pf + o.franchise + o.flat_fee,
        Compare::Gross => Decimal::ZERO,
    };
    let ours = o.amo_gross - deductions;
    // To the cent: the tolerance decides whether a line is a discrepancy, not its cause (a
    // tolerance of 1 € named `rate_differs:65` for a PF deducted).
    let matches = |candidate: Decimal| candidate == recorded;
    let at_rate = |fraction: Decimal| -> Decimal {
        if o.base < act.tariff * Decimal::from(act.quantity) {
            round_cents(o.base * fraction)
        } else {
            round_cents(act.tariff * fraction) * Decimal::from(act.quantity)
        }
    };
    let param = |s: Scalar| snap.get(s, date).unwrap_or(Decimal::ZERO);
    // The PF and franchise an ordinary patient's line would bear where this one bears none.
    let ordinary_pf = if o.pf.is_zero() && crate::engine::category::bears_pf(o.category) {
        let daily_max = i64::try_from(param(Scalar::PfDailyMaxCount)).unwrap_or(0);
        param(Scalar::PfAmount) * Decimal::from(i64::from(o.quantity).min(daily_max))
    } else {
        Decimal::ZERO
    };
    let franchise_kind = crate::engine::category::franchise_kind(o.category);
    let ordinary_franchise = match franchise_kind {
        Some(kind) if o.franchise.is_zero() => param(kind.unit_param()) * Decimal::from(o.quantity),
        _ => Decimal::ZERO,
    };
    let mut candidates: Vec<(Decimal, String)> = Vec::new();
    if compare == Compare::Paid {
        if o.pf > Decimal::ZERO {
            candidates.push((ours + o.pf, "pf_not_deducted".into()));
            candidates.push((ours - o.pf, "pf_deducted_twice".into()));
        } else if crate::engine::category::bears_pf(o.category) {
            let daily_max = i64::try_from(param(Scalar::PfDailyMaxCount)).unwrap_or(0);
            candidates.push((
                ours - param(Scalar::PfAmount)
                    * Decimal::from(i64::from(o.quantity).min(daily_max)),
                "pf_deducted_despite_cap_or_exemption".into(),
            ));
        }
        if o.franchise > Decimal::ZERO {
            candidates.push((ours + o.franchise, "franchise_not_deducted".into()));
        }
        if let Some(kind) = franchise_kind {
            let unit = param(kind.unit_param()) * Decimal::from(o.quantity);
            let cut = unit - o.franchise;
            if cut > Decimal::ZERO {
                let cause = if o.rules.iter().any(|r| r.ends_with("daily_cap")) {
                    "franchise_daily_cap_not_applied"
                } else {
                    "franchise_cap_not_applied"
                };
                candidates.push((ours - cut, cause.into()));
            }
        }
        if o.pal > Decimal::ZERO {
            candidates.push((ours + o.pal, "pal_missing".into()));
        } else if o.rules.contains(&crate::engine::rule_ids::PAL_HEAVY_GROUP)
            // An exonerated line of a heavy group: at 100 % already, the group is not named
            // in its rules, and it bears no fee; a payer may have charged it one.
            || (o.situation != Situation::Ordinary
                && o.rate == Decimal::ONE_HUNDRED
                && crate::engine::category::in_pal_group(o.category))
        {
            candidates.push((
                ours - param(Scalar::PalAmount),
                "pal_charged_twice_in_group_or_stay".into(),
            ));
        }
        // The PF or franchise at another of its dated amounts (the 1 € PF after 2024-05-15,
        // the 0.50 € franchise after 2024-03-31: a caisse late with a change), after the causes
        // above; only for a charge of whole units at the day's amount (one cut by a cap is not).
        let mut other_amount = |charged: Decimal, unit: Scalar, cause: &str| {
            let now = param(unit);
            if charged.is_zero() || now.is_zero() || !(charged / now).fract().is_zero() {
                return;
            }
            let units = charged / now;
            let mut amounts: Vec<Decimal> = book
                .definition(unit)
                .values
                .iter()
                .map(|v| v.value)
                .filter(|v| *v != now)
                .collect();
            amounts.sort_unstable();
            amounts.dedup();
            for amount in amounts {
                candidates.push((
                    ours + charged - units * amount,
                    format!("{cause}:{}", crate::report::money_text(amount)),
                ));
            }
        };
        other_amount(o.pf, Scalar::PfAmount, "pf_amount_differs");
        if let Some(kind) = franchise_kind {
            other_amount(o.franchise, kind.unit_param(), "franchise_amount_differs");
        }
    }
    // The rate: the exoneration not applied, applied without a right, or another rate.
    let ordinary = snap
        .fraction(Param::Rate(o.category), date)
        .unwrap_or(Decimal::ZERO);
    if o.situation != Situation::Ordinary {
        let not_applied = format!("exoneration_not_applied:{}", o.situation);
        candidates.push((at_rate(ordinary) - deductions, not_applied.clone()));
        // Computed as an ordinary patient's, the PF and franchise this situation lifts
        // deducted too (a CSS or AME consultation paid 19.00 = 21.00 − 2 € PF).
        if compare == Compare::Paid {
            candidates.push((
                at_rate(ordinary) - deductions - ordinary_pf - ordinary_franchise,
                not_applied,
            ));
        }
    } else {
        candidates.push((
            at_rate(Decimal::ONE) - deductions,
            "exoneration_without_right".into(),
        ));
        if o.majoration > Decimal::ZERO {
            candidates.push((
                ours + o.majoration,
                "out_of_pathway_majoration_not_applied".into(),
            ));
        }
    }
    // Every rate the rules know on that day, highest first.
    let mut rates: Vec<Decimal> = crate::model::Category::ALL
        .iter()
        .flat_map(|c| [Param::Rate(*c), Param::RateAlsaceMoselle(*c)])
        .chain([Scalar::RateExonerated.into(), Scalar::PathwayOutRate.into()])
        .filter_map(|p| snap.get(p, date).ok())
        .collect();
    rates.sort_unstable_by(|a, b| b.cmp(a));
    rates.dedup();
    for pct in rates {
        let fraction = pct / Decimal::ONE_HUNDRED;
        candidates.push((
            at_rate(fraction) - deductions,
            format!("rate_differs:{}", pct.normalize()),
        ));
    }
    candidates
        .into_iter()
        .find(|(c, _)| matches(*c))
        .map(|(_, why)| why)
        .unwrap_or_else(|| "unexplained".into())
}

static DISCREPANCY_COLUMNS: &[Column<Discrepancy>] = &[
    Column {
        name: "act_id",
        get: Get::Str(|d| d.act_id.as_str()),
    },
    Column {
        name: "patient_id",
        get: Get::Str(|d| d.patient_id.as_str()),
    },
    Column {
        name: "recorded_amo",
        get: Get::Money(|d| d.recorded_amo),
    },
    Column {
        name: "amo_paid",
        get: Get::Money(|d| d.amo_paid),
    },
    Column {
        name: "difference",
        get: Get::Money(|d| d.difference),
    },
    Column {
        name: "explanation",
        get: Get::Str(|d| d.explanation.as_str()),
    },
    Column {
        name: "amo_gross",
        get: Get::Money(|d| d.amo_gross),
    },
];

impl Row for Discrepancy {
    const TABLE: &'static str = "discrepancies";
    /// In the order of the acts: by patient.
    const SORTED_BY: &'static str = "patient_id";

    fn columns() -> &'static [Column<Discrepancy>] {
        DISCREPANCY_COLUMNS
    }

    fn key(&self) -> &str {
        &self.act_id
    }
}

/// Lines of the report's "First lines" table.
const FIRST_LINES: usize = 50;

/// Discrepancies held, at most, before they are encoded into their table (which then holds
/// up to a row group's encoded rows): a run keeps no more, however many it finds (every
/// act's, when every recorded amount is off).
pub const HELD_ROWS: usize = 1 << 16;

/// What the report and the manifest say of the discrepancies: how many, their total
/// difference, count and total by explanation, and the first lines. Its size does not grow
/// with the number of discrepancies (but for the explanations' kinds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Acts compared: those with a recorded amount (`recorded_amo`).
    pub compared: u64,
    pub count: u64,
    pub total: Decimal,
    /// Count and total difference by explanation.
    pub causes: BTreeMap<String, (u64, Decimal)>,
    /// The first [`FIRST_LINES`] discrepancies, in the order found.
    pub first: Vec<Discrepancy>,
}

impl Tally {
    /// The tally of `found`.
    pub fn of(found: &[Discrepancy]) -> Tally {
        let mut tally = Tally::default();
        found.iter().for_each(|d| tally.add(d));
        tally
    }

    /// Counts one more discrepancy.
    pub fn add(&mut self, d: &Discrepancy) {
        self.count += 1;
        self.total += d.difference;
        match self.causes.get_mut(d.explanation.as_str()) {
            Some(cause) => {
                cause.0 += 1;
                cause.1 += d.difference;
            }
            None => {
                self.causes.insert(d.explanation.clone(), (1, d.difference));
            }
        }
        if self.first.len() < FIRST_LINES {
            self.first.push(d.clone());
        }
    }

    /// The human-readable report: causes by count, then the first lines.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# rac audit: discrepancies\n\n");
        let money = crate::report::money_text;
        let _ = writeln!(
            out,
            "{} act(s) compared (with a recorded amount); {} act(s) differ from the recorded amount; total difference {} €.\n",
            self.compared,
            self.count,
            money(self.total)
        );
        let mut causes: Vec<(&String, &(u64, Decimal))> = self.causes.iter().collect();
        causes.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
        out.push_str("| explanation | acts | total difference (€) |\n|---|---:|---:|\n");
        for (cause, (n, sum)) in causes {
            let _ = writeln!(out, "| {cause} | {n} | {} |", money(*sum));
        }
        out.push_str("\n## First lines\n\n| act_id | recorded | computed | difference | explanation |\n|---|---:|---:|---:|---|\n");
        for d in &self.first {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                d.act_id,
                money(d.recorded_amo),
                money(d.computed()),
                money(d.difference),
                d.explanation
            );
        }
        out
    }

    /// The manifest's audit section.
    fn section(&self) -> serde_json::Value {
        let causes: serde_json::Map<String, serde_json::Value> = self
            .causes
            .iter()
            .map(|(k, (n, sum))| {
                (
                    k.clone(),
                    serde_json::json!({"acts": n, "difference": sum.to_string()}),
                )
            })
            .collect();
        serde_json::json!({"compared": self.compared, "discrepancies": self.count, "by_explanation": causes})
    }
}

/// Count and total difference by explanation.
pub fn by_cause(found: &[Discrepancy]) -> BTreeMap<String, (u64, Decimal)> {
    Tally::of(found).causes
}

/// `rac audit`'s outputs: `discrepancies.*`, written as the discrepancies are found (in
/// outcome order, fewer than [`HELD_ROWS`] held before they are encoded), and
/// `discrepancies.md` at the end. The table is the same bytes as the one
/// [`crate::io::write::write_table`] writes of them all.
pub struct DiscrepancyWriter {
    compare: Compare,
    tolerance: Decimal,
    table: TableWriter<Discrepancy>,
    held: Vec<Discrepancy>,
    tally: Tally,
    md: PathBuf,
}

impl DiscrepancyWriter {
    /// Creates `<dir>/discrepancies.<ext>` for an audit comparing `compare` within
    /// `tolerance`; `discrepancies.md` is written by [`Self::finish`].
    pub fn create(
        dir: &Path,
        format: Format,
        (compare, tolerance): (Compare, Decimal),
    ) -> Result<DiscrepancyWriter, WriteError> {
        Ok(DiscrepancyWriter {
            compare,
            tolerance,
            table: TableWriter::create(dir, format)?,
            held: Vec::new(),
            tally: Tally::default(),
            md: dir.join(crate::io::write::DISCREPANCIES_REPORT_FILE),
        })
    }

    /// Audits `outcomes` (after the previous ones; `acts` their acts with a recorded amount),
    /// and flags those that differ `recorded_differs`.
    pub fn audit(
        &mut self,
        book: &RuleBook,
        outcomes: &mut [Outcome],
        acts: &ActIndex,
    ) -> Result<(), WriteError> {
        let found = discrepancies(book, outcomes, acts, self.compare, self.tolerance);
        flag_differing(outcomes, self.compare, self.tolerance);
        self.extend(found)
    }

    /// Adds discrepancies found after the previous ones.
    pub fn extend(&mut self, found: Vec<Discrepancy>) -> Result<(), WriteError> {
        found.iter().for_each(|d| self.tally.add(d));
        if self.held.len() + found.len() < HELD_ROWS {
            self.held.extend(found);
            return Ok(());
        }
        // The bytes do not depend on where the rows are cut.
        self.table.write(&self.held)?;
        self.held.clear();
        self.table.write(&found)
    }

    /// Discrepancies found so far.
    pub fn count(&self) -> u64 {
        self.tally.count
    }

    /// Discrepancies held, not yet encoded.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Writes the rest and `discrepancies.md`; returns the manifest's audit section.
    /// `compared` is the run's count of acts with a recorded amount (its totals'
    /// `recorded_acts`).
    pub fn finish(mut self, compared: u64) -> Result<serde_json::Value, WriteError> {
        self.tally.compared = compared;
        self.table.write(&self.held)?;
        self.table.finish()?;
        std::fs::write(&self.md, self.tally.markdown()).map_err(|source| WriteError::Io {
            action: "cannot write",
            path: self.md.clone(),
            source,
        })?;
        Ok(self.tally.section())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::write::write_table;

    /// The report as written before the discrepancies were streamed (all of them held),
    /// kept as the reference: its table, `discrepancies.md` and the manifest's section.
    fn write_held(dir: &Path, format: Format, found: &[Discrepancy]) -> serde_json::Value {
        write_table(dir, format, found).unwrap();
        let mut causes: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
        for d in found {
            let e = causes.entry(d.explanation.clone()).or_default();
            e.0 += 1;
            e.1 += d.difference;
        }
        let mut md = String::from("# rac audit: discrepancies\n\n");
        let total: Decimal = found.iter().map(|d| d.difference).sum();
        let money = crate::report::money_text;
        // The streamed writer below is finished with 0 acts compared.
        let _ = writeln!(
            md,
            "0 act(s) compared (with a recorded amount); {} act(s) differ from the recorded amount; total difference {} €.\n",
            found.len(),
            money(total)
        );
        let mut sorted: Vec<(&String, &(u64, Decimal))> = causes.iter().collect();
        sorted.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
        md.push_str("| explanation | acts | total difference (€) |\n|---|---:|---:|\n");
        for (cause, (n, sum)) in sorted {
            let _ = writeln!(md, "| {cause} | {n} | {} |", money(*sum));
        }
        md.push_str("\n## First lines\n\n| act_id | recorded | computed | difference | explanation |\n|---|---:|---:|---:|---|\n");
        for d in found.iter().take(50) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                d.act_id,
                money(d.recorded_amo),
                money(d.recorded_amo - d.difference),
                money(d.difference),
                d.explanation
            );
        }
        std::fs::write(dir.join("discrepancies.md"), md).unwrap();
        let causes: serde_json::Map<String, serde_json::Value> = causes
            .into_iter()
            .map(|(k, (n, sum))| {
                (
                    k,
                    serde_json::json!({"acts": n, "difference": sum.to_string()}),
                )
            })
            .collect();
        serde_json::json!({"compared": 0, "discrepancies": found.len(), "by_explanation": causes})
    }

    /// `n` discrepancies of five explanations, their differences of scales 0 to 2, some
    /// negative (a xorshift from `seed`).
    fn random(n: usize, seed: u64) -> Vec<Discrepancy> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let sign = if next() % 3 == 0 { -1 } else { 1 };
                let difference =
                    Decimal::new(sign * (next() % 100_000 + 1) as i64, (next() % 3) as u32);
                let recorded_amo = Decimal::new((next() % 100_000) as i64, (next() % 3) as u32);
                let explanation = [
                    "pf_not_deducted",
                    "rate_differs:60",
                    "rate_differs:65",
                    "flat_fee_missing",
                    "unexplained",
                ];
                Discrepancy {
                    act_id: format!("A{i:07}"),
                    patient_id: format!("P{:05}", i / 3),
                    recorded_amo,
                    amo_paid: recorded_amo - difference,
                    difference,
                    explanation: explanation[(next() % 5) as usize].to_string(),
                    amo_gross: recorded_amo - difference,
                }
            })
            .collect()
    }

    #[test]
    fn a_report_streamed_in_any_chunks_holds_less_than_a_chunk_and_writes_the_bytes_of_a_held_one()
    {
        let read =
            |dir: &tempfile::TempDir, name: &str| std::fs::read(dir.path().join(name)).unwrap();
        for (n, seed) in [
            (0, 1),
            (1, 2),
            (50, 3),
            (51, 4),
            (1_000, 5),
            (2 * HELD_ROWS + 3, 6),
        ] {
            let all = random(n, seed);
            for format in [Format::Csv, Format::Parquet] {
                let held = tempfile::tempdir().unwrap();
                let expected = write_held(held.path(), format, &all);
                let table = format!("discrepancies.{}", format.extension());
                // Whole; small and large chunks ending on a part of one; a chunk of exactly
                // the rows held first.
                for chunks in [
                    vec![n.max(1)],
                    vec![1, 17, 5_000, HELD_ROWS + 9],
                    vec![HELD_ROWS, 3],
                ] {
                    let streamed = tempfile::tempdir().unwrap();
                    let settings = (Compare::Paid, Decimal::ZERO);
                    let mut writer =
                        DiscrepancyWriter::create(streamed.path(), format, settings).unwrap();
                    let mut rest = &all[..];
                    for &size in chunks.iter().cycle() {
                        if rest.is_empty() {
                            break;
                        }
                        let (chunk, after) = rest.split_at(size.min(rest.len()));
                        writer.extend(chunk.to_vec()).unwrap();
                        assert!(writer.held() < HELD_ROWS, "{} held", writer.held());
                        rest = after;
                    }
                    assert_eq!(writer.count(), n as u64);
                    let section = writer.finish(0).unwrap();
                    let case = format!("{n} rows, {format}, chunks {chunks:?}");
                    assert_eq!(section.to_string(), expected.to_string(), "{case}");
                    for name in [&table, "discrepancies.md"] {
                        assert!(read(&streamed, name) == read(&held, name), "{name}: {case}");
                    }
                }
            }
        }
    }

    /// `n` discrepancies of three explanations cycling by `i % 7 % 3`.
    fn cycling(n: usize) -> Vec<Discrepancy> {
        (0..n)
            .map(|i| Discrepancy {
                act_id: format!("A{i:07}"),
                patient_id: format!("P{:05}", i / 7),
                recorded_amo: Decimal::new(2_000 + i as i64 % 900, 2),
                amo_paid: Decimal::new(1_800, 2),
                difference: Decimal::new(200 + i as i64 % 900, 2),
                explanation: ["pf_not_deducted", "unexplained", "rate_differs:60"][i % 7 % 3]
                    .to_string(),
                amo_gross: Decimal::new(1_800, 2),
            })
            .collect()
    }

    #[test]
    fn a_tally_counts_and_sums_by_explanation_and_keeps_the_first_fifty_lines() {
        let all = cycling(1_000);
        let tally = Tally::of(&all);
        let of = |cause: &str| {
            let matching: Vec<&Discrepancy> =
                all.iter().filter(|d| d.explanation == cause).collect();
            (
                matching.len() as u64,
                matching.iter().map(|d| d.difference).sum::<Decimal>(),
            )
        };
        // i % 7 in {0, 3, 6}: 143 + 143 + 142; in {1, 4} and in {2, 5}: 143 + 143 each.
        assert_eq!(tally.causes.len(), 3);
        for (cause, n) in [
            ("pf_not_deducted", 428),
            ("unexplained", 286),
            ("rate_differs:60", 286),
        ] {
            assert_eq!(tally.causes[cause], (n, of(cause).1), "{cause}");
        }
        assert_eq!(tally.count, 1_000);
        // 200 + i % 900 cents for i in 0..1000: 1000 × 2 € + (0..900 + 0..100) cents.
        assert_eq!(tally.total, Decimal::new(200_000 + 404_550 + 4_950, 2));
        assert_eq!(tally.first, all[..50]);
        let md = tally.markdown();
        assert!(
            md.contains("1000 act(s) differ from the recorded amount; total difference 6095.00 €."),
            "{md}"
        );
        assert_eq!(md.lines().filter(|l| l.starts_with("| A")).count(), 50);
        // By count, then by name where two have as many.
        let causes: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| pf") || l.starts_with("| rate") || l.starts_with("| unex"))
            .collect();
        let line = |cause: &str| format!("| {cause} | {} | {} |", of(cause).0, of(cause).1);
        assert_eq!(
            causes,
            [
                line("pf_not_deducted"),
                line("rate_differs:60"),
                line("unexplained")
            ]
        );
        let section = tally.section();
        assert_eq!(section["discrepancies"], 1_000);
        assert_eq!(section["by_explanation"]["unexplained"]["acts"], 286);
        assert_eq!(
            section["by_explanation"]["unexplained"]["difference"],
            of("unexplained").1.to_string()
        );
    }
}
