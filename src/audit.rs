//! `rac audit`: compare the recomputed AMO amount of each act with the recorded one, and
//! explain each difference by the one step that, changed, gives the recorded amount.
//!
//! The explanations are tried in a fixed order, each a variant of the act's computation with
//! one step changed (the PF or franchise not deducted or deducted twice, the flat fee missing
//! or charged twice, the exoneration not applied or applied without a right, another rate);
//! the first variant that reproduces the recorded amount within the tolerance names the cause.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use rust_decimal::Decimal;

use crate::engine::round_cents;
use crate::io::write::{Column, Format, Get, Row, WriteError, write_table};
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
            let recorded = o.recorded_amo?;
            let ours = match compare {
                Compare::Paid => o.amo_paid,
                Compare::Gross => o.amo_gross,
            };
            let difference = recorded - ours;
            if difference.abs() <= tolerance {
                return None;
            }
            let explanation = match acts.get(o.act_id.as_str()) {
                Some(act) => explain(book, act, o, recorded, compare, tolerance),
                None => "unexplained".to_string(),
            };
            Some(Discrepancy {
                act_id: o.act_id.to_string(),
                patient_id: o.patient_id.to_string(),
                recorded_amo: recorded,
                amo_paid: o.amo_paid,
                difference,
                explanation,
            })
        })
        .collect()
}

/// The first single-step variant of the computation that gives `recorded`.
fn explain(
    book: &RuleBook,
    act: &Act,
    o: &Outcome,
    recorded: Decimal,
    compare: Compare,
    tolerance: Decimal,
) -> String {
    let snap = book.at(o.care_date);
    let date = o.care_date;
    let deductions = match compare {
        Compare::Paid => o.pal + o.pf + o.franchise + o.flat_fee,
        Compare::Gross => Decimal::ZERO,
    };
    let ours = o.amo_gross - deductions;
    let matches = |candidate: Decimal| (candidate - recorded).abs() <= tolerance;
    let at_rate = |fraction: Decimal| -> Decimal {
        if o.base < act.tariff * Decimal::from(act.quantity) {
            round_cents(o.base * fraction)
        } else {
            round_cents(act.tariff * fraction) * Decimal::from(act.quantity)
        }
    };
    let param = |s: Scalar| snap.get(s, date).unwrap_or(Decimal::ZERO);
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
        if let Some(kind) = crate::engine::category::franchise_kind(o.category) {
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
        } else if o.rules.contains(&crate::engine::rule_ids::PAL_HEAVY_GROUP) {
            candidates.push((
                ours - param(Scalar::PalAmount),
                "pal_charged_twice_in_group_or_stay".into(),
            ));
        }
    }
    // The rate: the exoneration not applied, applied without a right, or another rate.
    let ordinary = snap
        .fraction(Param::Rate(o.category), date)
        .unwrap_or(Decimal::ZERO);
    if o.situation != Situation::Ordinary {
        candidates.push((
            at_rate(ordinary) - deductions,
            format!("exoneration_not_applied:{}", o.situation),
        ));
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
];

impl Row for Discrepancy {
    const TABLE: &'static str = "discrepancies";

    fn columns() -> &'static [Column<Discrepancy>] {
        DISCREPANCY_COLUMNS
    }

    fn key(&self) -> &str {
        &self.act_id
    }
}

/// Count and total difference by explanation (the cause is the part before `:`).
pub fn by_cause(found: &[Discrepancy]) -> BTreeMap<String, (u64, Decimal)> {
    let mut causes: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
    for d in found {
        let e = causes.entry(d.explanation.clone()).or_default();
        e.0 += 1;
        e.1 += d.difference;
    }
    causes
}

/// The human-readable report: causes by count, then the first lines.
pub fn markdown(found: &[Discrepancy]) -> String {
    let mut out = String::from("# rac audit: discrepancies\n\n");
    let total: Decimal = found.iter().map(|d| d.difference).sum();
    let _ = writeln!(
        out,
        "{} act(s) differ from the recorded amount; total difference {total} €.\n",
        found.len()
    );
    let mut causes: Vec<(String, (u64, Decimal))> = by_cause(found).into_iter().collect();
    causes.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    out.push_str("| explanation | acts | total difference (€) |\n|---|---:|---:|\n");
    for (cause, (n, sum)) in &causes {
        let _ = writeln!(out, "| {cause} | {n} | {sum} |");
    }
    out.push_str("\n## First lines\n\n| act_id | recorded | computed | difference | explanation |\n|---|---:|---:|---:|---|\n");
    for d in found.iter().take(50) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            d.act_id, d.recorded_amo, d.amo_paid, d.difference, d.explanation
        );
    }
    out
}

/// Writes `discrepancies.*` and `discrepancies.md`; returns the manifest's audit section.
pub fn write(
    dir: &Path,
    format: Format,
    found: &[Discrepancy],
) -> Result<serde_json::Value, WriteError> {
    write_table(dir, format, found)?;
    let md = dir.join("discrepancies.md");
    std::fs::write(&md, markdown(found)).map_err(|source| WriteError::Io {
        action: "cannot write",
        path: md.clone(),
        source,
    })?;
    let causes: serde_json::Map<String, serde_json::Value> = by_cause(found)
        .into_iter()
        .map(|(k, (n, sum))| {
            (
                k,
                serde_json::json!({"acts": n, "difference": sum.to_string()}),
            )
        })
        .collect();
    Ok(serde_json::json!({"discrepancies": found.len(), "by_explanation": causes}))
}
