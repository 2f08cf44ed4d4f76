//! The dated parameters of RULES.md, loaded from data.
//!
//! Every amount, rate, cap and threshold the engine uses is a [`Param`], defined in
//! `rules/params.toml` (shipped inside the binary) with one value per period and the legal
//! reference of each value, in the manner of OpenFisca's parameters. A scenario file given with
//! `--rules` replaces whole parameters by id. The [`RuleBook`] turns the definitions into a
//! timeline of [`Snapshot`]s — the values in force on each day — so that the engine's lookups
//! are one binary search and an array index. A lookup on a date with no value is an error
//! ([`RuleError::NoValue`]), never a silent zero.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::Category;

/// The built-in parameter file.
pub const BUILTIN: &str = include_str!("../../rules/params.toml");

/// Parameters that are not per category, in the order `rac rules` prints them.
const SCALARS: &[(Scalar, &str)] = &[
    (Scalar::PfAmount, "pf.amount"),
    (Scalar::PfDailyMaxCount, "pf.daily_max_count"),
    (Scalar::PfAnnualCap, "pf.annual_cap"),
    (Scalar::FranchiseDrugBox, "franchise.drug_box"),
    (Scalar::FranchiseParamedicalAct, "franchise.paramedical_act"),
    (Scalar::FranchiseTransport, "franchise.transport"),
    (
        Scalar::FranchiseParamedicalDailyCap,
        "franchise.paramedical_daily_cap",
    ),
    (
        Scalar::FranchiseTransportDailyCap,
        "franchise.transport_daily_cap",
    ),
    (Scalar::FranchiseAnnualCap, "franchise.annual_cap"),
    (Scalar::PalAmount, "pal.amount"),
    (Scalar::PalTariffThreshold, "pal.tariff_threshold"),
    (Scalar::PalCoefficientThreshold, "pal.coefficient_threshold"),
    (Scalar::PalRate, "pal.rate"),
    (Scalar::FjDaily, "fj.daily"),
    (Scalar::FjDailyPsy, "fj.daily_psy"),
    (Scalar::LongStayDay, "hospital.long_stay_day"),
    (Scalar::LongStayRate, "hospital.long_stay_rate"),
    (Scalar::NewbornMaxAgeDays, "newborn.max_age_days"),
    (Scalar::FpuAmount, "fpu.amount"),
    (Scalar::FpuReduced, "fpu.reduced"),
    (Scalar::PathwayOutRate, "pathway.out_rate"),
    (
        Scalar::PathwayMajorationCapShare,
        "pathway.majoration_cap_share",
    ),
    (Scalar::PathwayMinAge, "pathway.min_age"),
    (Scalar::MinorAge, "minor.age"),
    (Scalar::NgapG, "ngap.G"),
    (Scalar::RateExonerated, "rate.exonerated"),
];

/// A parameter that is not per category (see `rules/params.toml` for each one's meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    PfAmount,
    PfDailyMaxCount,
    PfAnnualCap,
    FranchiseDrugBox,
    FranchiseParamedicalAct,
    FranchiseTransport,
    FranchiseParamedicalDailyCap,
    FranchiseTransportDailyCap,
    FranchiseAnnualCap,
    PalAmount,
    PalTariffThreshold,
    PalCoefficientThreshold,
    PalRate,
    FjDaily,
    FjDailyPsy,
    LongStayDay,
    LongStayRate,
    NewbornMaxAgeDays,
    FpuAmount,
    FpuReduced,
    PathwayOutRate,
    PathwayMajorationCapShare,
    PathwayMinAge,
    MinorAge,
    NgapG,
    RateExonerated,
}

/// Any parameter the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    Scalar(Scalar),
    /// Rate of a category in situation `ordinary`, régime général (`rate.<category>`).
    Rate(Category),
    /// Rate of a category under the régime local d'Alsace-Moselle
    /// (`rate_alsace_moselle.<category>`).
    RateAlsaceMoselle(Category),
}

impl From<Scalar> for Param {
    fn from(s: Scalar) -> Param {
        Param::Scalar(s)
    }
}

impl Param {
    /// Every parameter, in a stable order (scalars, then rates, then Alsace-Moselle rates).
    pub fn all() -> impl Iterator<Item = Param> {
        let scalars = SCALARS.iter().map(|(s, _)| Param::Scalar(*s));
        let rates = Category::ALL.iter().map(|c| Param::Rate(*c));
        let am = Category::ALL.iter().map(|c| Param::RateAlsaceMoselle(*c));
        scalars.chain(rates).chain(am)
    }

    fn index(self) -> usize {
        let n = Category::ALL.len();
        match self {
            Param::Scalar(s) => s as usize,
            Param::Rate(c) => SCALARS.len() + c as usize,
            Param::RateAlsaceMoselle(c) => SCALARS.len() + n + c as usize,
        }
    }

    fn count() -> usize {
        SCALARS.len() + 2 * Category::ALL.len()
    }

    /// The id, as a `&'static str` for the `rules` column of every outcome.
    pub fn static_id(self) -> &'static str {
        static IDS: OnceLock<Vec<&'static str>> = OnceLock::new();
        IDS.get_or_init(|| {
            let mut ids = vec![""; Param::count()];
            for p in Param::all() {
                ids[p.index()] = Box::leak(p.id().into_boxed_str());
            }
            ids
        })[self.index()]
    }

    /// The id used in parameter files, `rac rules` and the `rules` column.
    pub fn id(self) -> String {
        match self {
            Param::Scalar(s) => SCALARS[s as usize].1.to_string(),
            Param::Rate(c) => format!("rate.{c}"),
            Param::RateAlsaceMoselle(c) => format!("rate_alsace_moselle.{c}"),
        }
    }
}

/// The unit of a parameter: how it is printed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Eur,
    /// Stored as written (70 means 70 %); see [`Snapshot::fraction`].
    Percent,
    Count,
    Days,
    Years,
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "EUR" => Unit::Eur,
            "percent" => Unit::Percent,
            "count" => Unit::Count,
            "days" => Unit::Days,
            "years" => Unit::Years,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Eur => "EUR",
            Unit::Percent => "percent",
            Unit::Count => "count",
            Unit::Days => "days",
            Unit::Years => "years",
        }
    }
}

/// One value of a parameter and the period it is in force.
#[derive(Debug, Clone, PartialEq)]
pub struct DatedValue {
    pub from: NaiveDate,
    /// Last day in force (inclusive); `None` = until the next value, or open.
    pub to: Option<NaiveDate>,
    pub value: Decimal,
    /// The legal text or source of this value.
    pub reference: String,
    pub href: Option<String>,
}

/// A parameter's definition: what it is and its values over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub param: Param,
    pub id: String,
    pub description: String,
    pub unit: Unit,
    /// Sorted by `from`, non-overlapping.
    pub values: Vec<DatedValue>,
    /// The file this definition came from (`built-in` or a `--rules` path).
    pub origin: String,
}

impl Definition {
    /// The value in force on `date`, if any.
    pub fn at(&self, date: NaiveDate) -> Option<&DatedValue> {
        let i = self.values.partition_point(|v| v.from <= date);
        let v = self.values.get(i.checked_sub(1)?)?;
        let end = self.end_of(i - 1);
        end.is_none_or(|end| date <= end).then_some(v)
    }

    /// Last day of value `i`: its own `to`, or the day before the next value starts.
    fn end_of(&self, i: usize) -> Option<NaiveDate> {
        let next = self.values.get(i + 1).and_then(|n| n.from.pred_opt());
        match (self.values[i].to, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Errors of parameter files and of lookups.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    #[error("{origin}: not a valid parameter file: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: parameter `{id}`: {message}")]
    Invalid {
        origin: String,
        id: String,
        message: String,
    },
    #[error("{origin}: unknown parameter `{id}` (see `rac rules --date` for the known ids)")]
    Unknown { origin: String, id: String },
    #[error("{origin}: parameter `{id}` is defined twice")]
    Duplicate { origin: String, id: String },
    #[error("the built-in rules lack parameter `{id}`")]
    Missing { id: String },
    #[error("parameter `{id}` has no value on {date}")]
    NoValue { id: String, date: NaiveDate },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    #[allow(dead_code)] // informative only
    meta: Option<toml::Table>,
    #[serde(default)]
    parameter: Vec<RawParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    id: String,
    #[serde(default)]
    description: String,
    unit: String,
    values: Vec<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    from: toml::Value,
    #[serde(default)]
    to: Option<toml::Value>,
    value: toml::Value,
    reference: String,
    #[serde(default)]
    href: Option<String>,
}

/// The values of every parameter on one day (a stretch of days where none changes).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Per [`Param::index`]: the value (as written) and its fraction (for percents, value/100).
    values: Vec<Option<(Decimal, Decimal)>>,
}

impl Snapshot {
    /// The value of `p` on this day, or [`RuleError::NoValue`].
    #[inline]
    pub fn get(&self, p: impl Into<Param>, date: NaiveDate) -> Result<Decimal, RuleError> {
        let p = p.into();
        match self.values[p.index()] {
            Some((v, _)) => Ok(v),
            None => Err(RuleError::NoValue { id: p.id(), date }),
        }
    }

    /// A percent parameter as a fraction (70 → 0.70).
    #[inline]
    pub fn fraction(&self, p: impl Into<Param>, date: NaiveDate) -> Result<Decimal, RuleError> {
        let p = p.into();
        match self.values[p.index()] {
            Some((_, f)) => Ok(f),
            None => Err(RuleError::NoValue { id: p.id(), date }),
        }
    }

    /// Whether `p` has a value on this day.
    pub fn has(&self, p: impl Into<Param>) -> bool {
        self.values[p.into().index()].is_some()
    }
}

/// All the parameters, and the timeline of their values.
#[derive(Debug, Clone)]
pub struct RuleBook {
    definitions: Vec<Definition>,
    /// Start day of each stretch, sorted; `starts[0]` is `NaiveDate::MIN`.
    starts: Vec<NaiveDate>,
    snapshots: Vec<Snapshot>,
    /// SHA-256 of the parameter texts used, for the manifest.
    version: String,
    /// Where the definitions came from (`built-in`, then each `--rules` file).
    sources: Vec<String>,
    /// The texts laid over the first one (scenario files), as read: their origin, SHA-256
    /// (hex) and size, for the manifest's `inputs`.
    overlays: Vec<Overlay>,
    /// Days a scenario's definition leaves without a value where the one it replaces had
    /// one ([`RuleBook::warnings`]).
    warnings: Vec<String>,
}

impl RuleBook {
    /// The built-in rules.
    pub fn builtin() -> RuleBook {
        RuleBook::load(&[("built-in", BUILTIN)]).expect("the built-in rules are valid")
    }

    /// The built-in rules with a scenario file on top: each parameter it defines replaces the
    /// built-in one whole.
    pub fn with_overlay(origin: &str, text: &str) -> Result<RuleBook, RuleError> {
        RuleBook::load(&[("built-in", BUILTIN), (origin, text)])
    }

    /// Loads parameter texts in order; later texts replace earlier definitions by id. The
    /// first text must define every known parameter.
    pub fn load(texts: &[(&str, &str)]) -> Result<RuleBook, RuleError> {
        let by_id: HashMap<String, Param> = Param::all().map(|p| (p.id(), p)).collect();
        let mut defs: Vec<Option<Definition>> = vec![None; Param::count()];
        let mut hasher = Sha256::new();
        let mut warnings = Vec::new();
        for (origin, text) in texts {
            hasher.update(text.as_bytes());
            let raw: RawFile = toml::from_str(text).map_err(|e| RuleError::Syntax {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
            let mut seen = BTreeSet::new();
            let lines = id_lines(text, raw.parameter.len());
            for (k, rp) in raw.parameter.into_iter().enumerate() {
                // Errors name the file and the line of the parameter's `id`.
                let at = match lines.get(k) {
                    Some(line) => format!("{origin}:{line}"),
                    None => origin.to_string(),
                };
                let Some(&param) = by_id.get(&rp.id) else {
                    return Err(RuleError::Unknown {
                        origin: at,
                        id: rp.id,
                    });
                };
                if !seen.insert(rp.id.clone()) {
                    return Err(RuleError::Duplicate {
                        origin: at,
                        id: rp.id,
                    });
                }
                let mut definition = parse_definition(&at, param, rp)?;
                definition.origin = origin.to_string();
                // A scenario changes values, not what they measure: `percent` where the
                // definition it replaces is in EUR would be read as euros.
                if let Some(replaced) = &defs[param.index()]
                    && replaced.unit != definition.unit
                {
                    return Err(RuleError::Invalid {
                        origin: at,
                        id: definition.id,
                        message: format!(
                            "unit `{}` where the definition it replaces ({}) is in `{}`",
                            definition.unit.as_str(),
                            replaced.origin,
                            replaced.unit.as_str()
                        ),
                    });
                }
                // A scenario that gives no description keeps the one it replaces (what the
                // parameter measures has not changed): `rules` printed an empty one.
                if let Some(replaced) = &defs[param.index()]
                    && definition.description.trim().is_empty()
                {
                    definition.description = replaced.description.clone();
                }
                if let Some(replaced) = &defs[param.index()] {
                    warnings.extend(uncovered(replaced, &definition));
                }
                defs[param.index()] = Some(definition);
            }
        }
        let definitions = Param::all()
            .map(|p| {
                defs[p.index()]
                    .take()
                    .ok_or(RuleError::Missing { id: p.id() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (starts, snapshots) = timeline(&definitions);
        let digest = hasher.finalize();
        let version = crate::io::write::hex(&digest[..8]);
        Ok(RuleBook {
            definitions,
            starts,
            snapshots,
            version,
            sources: texts.iter().map(|(o, _)| o.to_string()).collect(),
            overlays: texts
                .iter()
                .skip(1)
                .map(|(o, t)| Overlay::of(o, t))
                .collect(),
            warnings,
        })
    }

    /// What a scenario file took away without saying so: the days one of its definitions
    /// leaves without a value where the definition it replaces had one (it replaces the
    /// parameter whole, history included). Acts of those days that need the parameter are
    /// rejected (`no_rule_at_date`); the run goes on.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The values in force on `date`.
    #[inline]
    pub fn at(&self, date: NaiveDate) -> &Snapshot {
        let i = self.starts.partition_point(|s| *s <= date);
        &self.snapshots[i - 1]
    }

    /// The definition of `p`.
    pub fn definition(&self, p: impl Into<Param>) -> &Definition {
        let p = p.into();
        self.definitions
            .iter()
            .find(|d| d.param == p)
            .expect("every parameter is defined")
    }

    /// Every definition, in [`Param::all`] order.
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }

    /// The definition with this id, if any.
    pub fn find(&self, id: &str) -> Option<&Definition> {
        self.definitions.iter().find(|d| d.id == id)
    }

    /// A short hash of the parameter texts: two runs with the same version used the same rules.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The scenario files laid over the built-in rules, with the SHA-256 of the text used
    /// (read once, at the start: a file edited during the run does not change it).
    pub fn overlays(&self) -> &[Overlay] {
        &self.overlays
    }
}

/// A parameter text laid over the built-in rules (`--rules`), as the run read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Where it was read (the path given).
    pub origin: String,
    /// SHA-256 of its bytes, in hex.
    pub sha256: String,
    pub bytes: u64,
}

impl Overlay {
    fn of(origin: &str, text: &str) -> Overlay {
        let digest = Sha256::digest(text.as_bytes());
        Overlay {
            origin: origin.to_string(),
            sha256: crate::io::write::hex(&digest),
            bytes: text.len() as u64,
        }
    }

    /// Its entry in a manifest's `inputs` (`role: rules`).
    pub fn manifest_entry(&self) -> serde_json::Value {
        serde_json::json!({
            "role": "rules", "path": self.origin, "bytes": self.bytes, "sha256": self.sha256
        })
    }
}

/// The 1-based line of each parameter's `id = "…"` in a parameter file, in order, when there
/// is one such line per parameter (`[[parameter]]` tables; not inline ones): `expected` of
/// them, else none.
fn id_lines(text: &str, expected: usize) -> Vec<usize> {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            line.trim_start()
                .strip_prefix("id")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
        .collect();
    if lines.len() == expected {
        lines
    } else {
        Vec::new()
    }
}

/// The stretches of days where `replaced` has a value and `definition` (which replaces it)
/// has none, each as a warning: before its first value, between two of its values, after a
/// last value that ends.
fn uncovered(replaced: &Definition, definition: &Definition) -> Vec<String> {
    let mut holes: Vec<(Option<NaiveDate>, Option<NaiveDate>)> = Vec::new();
    let Some(first) = definition.values.first() else {
        return Vec::new();
    };
    holes.push((None, first.from.pred_opt()));
    for i in 0..definition.values.len() {
        let Some(end) = definition.end_of(i) else {
            continue;
        };
        let next = definition.values.get(i + 1).map(|v| v.from);
        let after = end.succ_opt();
        if after.is_some() && after != next {
            holes.push((after, next.and_then(|n| n.pred_opt())));
        }
    }
    holes
        .into_iter()
        .filter_map(|(from, to)| {
            // The first day of the hole the replaced definition covers, if any.
            let covered = replaced.values.iter().enumerate().find_map(|(i, v)| {
                let start = from.map_or(v.from, |f| f.max(v.from));
                let end = replaced.end_of(i);
                let inside = to.is_none_or(|t| start <= t) && end.is_none_or(|e| start <= e);
                inside.then_some(start)
            })?;
            let until = to.map_or("on".to_string(), |t| format!("until {t}"));
            Some(format!(
                "{}: parameter `{}` has no value from {covered} {until}, where the definition it replaces ({}) has one: it replaces the parameter whole, history included, and acts of those days that need it are rejected (no_rule_at_date); give its earlier values too to keep them",
                definition.origin, definition.id, replaced.origin
            ))
        })
        .collect()
}

fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_definition(origin: &str, param: Param, rp: RawParam) -> Result<Definition, RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        origin: origin.to_string(),
        id: rp.id.clone(),
        message,
    };
    let unit = Unit::parse(&rp.unit).ok_or_else(|| {
        invalid(format!(
            "unknown unit `{}` (EUR, percent, count, days, years)",
            rp.unit
        ))
    })?;
    let expected = match param {
        Param::Rate(_) | Param::RateAlsaceMoselle(_) => Some(Unit::Percent),
        _ => None,
    };
    if expected.is_some_and(|u| u != unit) {
        return Err(invalid("a rate's unit must be `percent`".to_string()));
    }
    if rp.values.is_empty() {
        return Err(invalid("no values".to_string()));
    }
    let date = |v: &toml::Value, what: &str| {
        let text = toml_text(v);
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map_err(|_| invalid(format!("`{what}` = `{text}` is not a date YYYY-MM-DD")))
    };
    let mut values = Vec::with_capacity(rp.values.len());
    for rv in &rp.values {
        let from = date(&rv.from, "from")?;
        let to = rv.to.as_ref().map(|t| date(t, "to")).transpose()?;
        let text = toml_text(&rv.value);
        let value: Decimal = text
            .parse()
            .map_err(|_| invalid(format!("value `{text}` is not a decimal number")))?;
        if value.is_sign_negative() {
            return Err(invalid(format!("value {text} is negative")));
        }
        if unit == Unit::Percent && value > Decimal::ONE_HUNDRED {
            return Err(invalid(format!("rate {text} % is above 100 %")));
        }
        if unit == Unit::Eur && value.scale() > 2 && value.round_dp(2) != value {
            return Err(invalid(format!("amount {text} has more than 2 decimals")));
        }
        // Days, years and the PF's count per day are whole: 2.5 would be used as 2. (The
        // coefficient threshold, a count too, is compared with decimal coefficients.)
        let whole = matches!(unit, Unit::Days | Unit::Years)
            || param == Param::from(Scalar::PfDailyMaxCount);
        if whole && !value.fract().is_zero() {
            return Err(invalid(format!(
                "value {text} is not a whole number (unit `{}`)",
                unit.as_str()
            )));
        }
        if to.is_some_and(|to| to < from) {
            return Err(invalid(format!("value from {from} ends before it starts")));
        }
        if rv.reference.trim().is_empty() {
            return Err(invalid(format!("value from {from} has no reference")));
        }
        if let Some(prev) = values.last() {
            let prev: &DatedValue = prev;
            if prev.from >= from {
                return Err(invalid(format!(
                    "values must be in increasing `from` order ({} then {from})",
                    prev.from
                )));
            }
            if prev.to.is_some_and(|t| t >= from) {
                return Err(invalid(format!(
                    "value from {} overlaps value from {from}",
                    prev.from
                )));
            }
        }
        values.push(DatedValue {
            from,
            to,
            value,
            reference: rv.reference.clone(),
            href: rv.href.clone(),
        });
    }
    Ok(Definition {
        param,
        id: rp.id.clone(),
        description: rp.description,
        unit,
        values,
        origin: origin.to_string(),
    })
}

/// Cuts time into stretches where no parameter changes, and resolves each stretch once.
fn timeline(defs: &[Definition]) -> (Vec<NaiveDate>, Vec<Snapshot>) {
    let mut cuts = BTreeSet::from([NaiveDate::MIN]);
    for d in defs {
        for (i, v) in d.values.iter().enumerate() {
            cuts.insert(v.from);
            if let Some(next) = d.end_of(i).and_then(|e| e.succ_opt()) {
                cuts.insert(next);
            }
        }
    }
    let starts: Vec<NaiveDate> = cuts.into_iter().collect();
    let snapshots = starts
        .iter()
        .map(|&day| {
            let mut values = vec![None; Param::count()];
            for d in defs {
                values[d.param.index()] = d.at(day).map(|v| {
                    let fraction = if d.unit == Unit::Percent {
                        v.value / Decimal::ONE_HUNDRED
                    } else {
                        v.value
                    };
                    (v.value, fraction)
                });
            }
            Snapshot { values }
        })
        .collect();
    (starts, snapshots)
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn pf_doubles_on_2024_05_15() {
        let book = RuleBook::builtin();
        let pf = Scalar::PfAmount;
        assert_eq!(
            book.at(d("2024-05-14")).get(pf, d("2024-05-14")),
            Ok(dec!(1))
        );
        assert_eq!(
            book.at(d("2024-05-15")).get(pf, d("2024-05-15")),
            Ok(dec!(2))
        );
    }

    #[test]
    fn franchises_double_on_2024_03_31() {
        let book = RuleBook::builtin();
        let at = |s: &str| book.at(d(s)).get(Scalar::FranchiseDrugBox, d(s)).unwrap();
        assert_eq!(at("2024-03-30"), dec!(0.5));
        assert_eq!(at("2024-03-31"), dec!(1));
        let tr = |s: &str| {
            book.at(d(s))
                .get(Scalar::FranchiseTransportDailyCap, d(s))
                .unwrap()
        };
        assert_eq!(tr("2024-03-30"), dec!(4));
        assert_eq!(tr("2024-03-31"), dec!(8));
    }

    #[test]
    fn dental_rate_drops_on_2023_10_15() {
        // RULES §8 supersedes the 2023-10-01 date of §2.
        let book = RuleBook::builtin();
        let p = Param::Rate(Category::Dental);
        assert_eq!(
            book.at(d("2023-10-14")).fraction(p, d("2023-10-14")),
            Ok(dec!(0.7))
        );
        assert_eq!(
            book.at(d("2023-10-15")).fraction(p, d("2023-10-15")),
            Ok(dec!(0.6))
        );
    }

    #[test]
    fn no_value_before_first_date_is_an_error() {
        let book = RuleBook::builtin();
        let day = d("2021-12-31");
        assert_eq!(
            book.at(day).get(Scalar::FpuAmount, day),
            Err(RuleError::NoValue {
                id: "fpu.amount".into(),
                date: day
            })
        );
        assert_eq!(
            book.at(d("2022-01-01")).get(Scalar::FpuAmount, day),
            Ok(dec!(19.61))
        );
    }

    #[test]
    fn overlay_replaces_a_parameter_and_keeps_the_rest() {
        let text = r#"
[[parameter]]
id = "pf.amount"
unit = "EUR"
values = [ { from = "2005-01-01", value = "3.00", reference = "scenario" } ]
"#;
        let book = RuleBook::with_overlay("scenario.toml", text).unwrap();
        let day = d("2025-01-01");
        assert_eq!(book.at(day).get(Scalar::PfAmount, day), Ok(dec!(3)));
        assert_eq!(book.at(day).get(Scalar::PfAnnualCap, day), Ok(dec!(50)));
        assert_ne!(book.version(), RuleBook::builtin().version());
        // Without a description of its own, the replaced one's is kept; with one, its own.
        let builtin = RuleBook::builtin();
        let pf = builtin.definition(Scalar::PfAmount).description.clone();
        assert!(!pf.is_empty());
        assert_eq!(book.definition(Scalar::PfAmount).description, pf);
        let described = text.replace("unit = ", "description = \"What if\"\nunit = ");
        let book = RuleBook::with_overlay("scenario.toml", &described).unwrap();
        assert_eq!(book.definition(Scalar::PfAmount).description, "What if");
    }

    #[test]
    fn a_scenario_that_leaves_days_without_a_value_is_warned_of() {
        assert!(RuleBook::builtin().warnings().is_empty());
        let overlay = |values: &str| {
            let text = format!(
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = [ {values} ]\n"
            );
            RuleBook::with_overlay("sc.toml", &text).unwrap()
        };
        // From the built-in's first day on, without a hole: nothing to say.
        let whole = overlay(r#"{ from = "2005-01-01", value = "3.00", reference = "s" }"#);
        assert!(whole.warnings().is_empty(), "{:?}", whole.warnings());
        // Starting later: the built-in's earlier days are lost (found by QA: every PF act
        // before 2025 rejected, without a word).
        let later = overlay(r#"{ from = "2025-01-01", value = "3.00", reference = "s" }"#);
        assert_eq!(later.warnings().len(), 1);
        let said = &later.warnings()[0];
        assert!(
            said.starts_with(
                "sc.toml: parameter `pf.amount` has no value from 2005-01-01 until 2024-12-31, where the definition it replaces (built-in) has one"
            ),
            "{said}"
        );
        // A hole between two values, and days after a last value that ends.
        let holes = overlay(
            r#"{ from = "2005-01-01", to = "2024-05-10", value = "1.00", reference = "s" },
               { from = "2024-05-15", to = "2030-12-31", value = "2.00", reference = "s" }"#,
        );
        let said = holes.warnings().join("\n");
        assert_eq!(holes.warnings().len(), 2, "{said}");
        assert!(said.contains("from 2024-05-11 until 2024-05-14,"), "{said}");
        assert!(said.contains("from 2031-01-01 on,"), "{said}");
        // Days the built-in has no value for either are not the scenario's doing.
        let earlier = overlay(r#"{ from = "1990-01-01", value = "3.00", reference = "s" }"#);
        assert!(earlier.warnings().is_empty(), "{:?}", earlier.warnings());
    }

    #[test]
    fn explicit_end_date_closes_a_value() {
        let text = r#"
[[parameter]]
id = "pf.amount"
unit = "EUR"
values = [ { from = "2005-01-01", to = "2005-12-31", value = "1.00", reference = "x" } ]
"#;
        let book = RuleBook::with_overlay("s.toml", text).unwrap();
        assert!(book.at(d("2005-12-31")).has(Scalar::PfAmount));
        assert!(!book.at(d("2006-01-01")).has(Scalar::PfAmount));
    }

    #[test]
    fn bad_files_are_refused_with_the_parameter_named() {
        let cases = [
            (
                "[[parameter]]\nid = \"pf.nope\"\nunit = \"EUR\"\nvalues = []",
                "unknown parameter `pf.nope`",
            ),
            (
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = [{from = \"2024-13-01\", value = \"1\", reference = \"x\"}]",
                "is not a date",
            ),
            (
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = [{from = \"2024-01-01\", value = \"abc\", reference = \"x\"}]",
                "not a decimal",
            ),
            (
                "[[parameter]]\nid = \"rate.biology\"\nunit = \"percent\"\nvalues = [{from = \"2024-01-01\", value = \"160\", reference = \"x\"}]",
                "above 100",
            ),
            (
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = [{from = \"2024-01-01\", value = \"1\", reference = \"x\"}, {from = \"2023-01-01\", value = \"2\", reference = \"x\"}]",
                "increasing",
            ),
            (
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = [{from = \"2024-01-01\", value = \"1\", reference = \"\"}]",
                "no reference",
            ),
            (
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"euros\"\nvalues = [{from = \"2024-01-01\", value = \"1\", reference = \"x\"}]",
                "unknown unit",
            ),
            (
                "[[parameter]]\nid = \"pf.daily_max_count\"\nunit = \"count\"\nvalues = [{from = \"2024-01-01\", value = \"2.5\", reference = \"x\"}]",
                "value 2.5 is not a whole number (unit `count`)",
            ),
            (
                "[[parameter]]\nid = \"pathway.min_age\"\nunit = \"years\"\nvalues = [{from = \"2024-01-01\", value = \"15.5\", reference = \"x\"}]",
                "value 15.5 is not a whole number (unit `years`)",
            ),
            ("not toml at all [", "not a valid parameter file"),
            // The PF amount in percent: 2 would have been read as 2 €.
            (
                "[[parameter]]\nid = \"pf.amount\"\nunit = \"percent\"\nvalues = [{from = \"2024-01-01\", value = \"2\", reference = \"x\"}]",
                "parameter `pf.amount`: unit `percent` where the definition it replaces (built-in) is in `EUR`",
            ),
        ];
        // The coefficient threshold is compared with decimal coefficients: 59.5 is a value.
        let half = "[[parameter]]\nid = \"pal.coefficient_threshold\"\nunit = \"count\"\nvalues = [{from = \"2011-03-01\", value = \"59.5\", reference = \"x\"}]";
        assert!(RuleBook::with_overlay("s.toml", half).is_ok());
        for (text, expected) in cases {
            let err = RuleBook::with_overlay("s.toml", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
            assert!(err.starts_with("s.toml"), "{err} should name the file");
            // ...and the line of the parameter's id (found by QA: no line number).
            if text.contains("[[parameter]]") {
                assert!(err.starts_with("s.toml:2: "), "{err} should name line 2");
            }
        }
        // The line of the second definition of a parameter defined twice.
        let twice = "[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = [{from = \"2005-01-01\", value = \"1\", reference = \"x\"}]\n\n[[parameter]]\nid = \"pf.amount\"\nunit = \"EUR\"\nvalues = []\n";
        let err = RuleBook::with_overlay("s.toml", twice).unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.toml:7: parameter `pf.amount` is defined twice"
        );
    }

    #[test]
    fn indexes_are_dense_and_ids_unique() {
        let mut seen = vec![false; Param::count()];
        for (i, (s, _)) in SCALARS.iter().enumerate() {
            assert_eq!(*s as usize, i, "SCALARS must follow the enum order");
        }
        for p in Param::all() {
            assert!(!seen[p.index()]);
            seen[p.index()] = true;
            assert_eq!(p.static_id(), p.id());
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn every_builtin_value_has_a_reference_and_rates_are_percent() {
        let book = RuleBook::builtin();
        assert_eq!(book.definitions().len(), Param::count());
        for def in book.definitions() {
            assert!(
                def.values.iter().all(|v| !v.reference.is_empty()),
                "{}",
                def.id
            );
        }
    }
}
