//! The pure per-patient engine (SPEC §3).
//!
//! One patient's acts, rights, birth date, regime and opening counters go in; per-act
//! [`Outcome`]s and closing counters come out. No IO, no clock, no global state: the same
//! input always gives the same output, whatever the thread that runs it.
//!
//! The passes follow SPEC §3:
//! 1. each line on its own: base, situation, rate, `amo_gross`, majoration, FPU;
//! 2. the 24 € flat fee (PAL) over groups of lines;
//! 3. the forfait journalier imputation over stays;
//! 4. in (`care_date`, `act_id`) order, the PF and the franchises against the daily limits
//!    and the annual caps carried in the counters;
//! 5. totals.

pub mod category;
pub mod situation;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::model::{
    Act, Beneficiary, Category, Outcome, Pathway, Regime, RightPeriod, RuleIds, Setting, Situation,
    StaySums, YearCounter, pay_order,
};
use crate::rules::{Param, RuleBook, RuleError, Scalar, Snapshot};

use category::{bears_pf, franchise_kind, in_pal_group, is_daily_fee};
use situation::{FpuLevel, Patient};

/// Audit flags (SPEC §5).
pub mod flags {
    /// A CSS or AME patient was billed above the base.
    pub const OVERBILLING_FORBIDDEN: &str = "overbilling_forbidden";
    /// The declared `exo_code` (or `ald_related`) is not backed by an active right.
    pub const EXO_WITHOUT_RIGHT: &str = "exo_without_right";
    /// An active right exonerates the act but the claim does not declare it.
    pub const RIGHT_NOT_DECLARED: &str = "right_not_declared";
    /// The tariff differs from the nomenclature's for that code and date.
    pub const TARIFF_MISMATCH: &str = "tariff_mismatch";
    /// PF and franchises exceed the gross amount: `amo_paid` is negative (RULES §4).
    pub const DEDUCTION_EXCEEDS_PAYMENT: &str = "deduction_exceeds_payment";
    /// `audit`: the recorded amount differs from the recomputed one.
    pub const RECORDED_DIFFERS: &str = "recorded_differs";
}

/// Ids of the rules that are decisions rather than parameters (the `rules` column also holds
/// parameter ids such as `pf.amount` or `rate.consultation`).
pub mod rule_ids {
    use crate::rules::Scalar;

    /// The base is what was billed, lower than tariff × quantity (SPEC §3.1).
    pub const BASE_LIMITED_BY_BILLED: &str = "base_limited_by_billed";
    /// The 24 € flat fee replaced the copayment of a heavy group (RULES §4).
    pub const PAL_HEAVY_GROUP: &str = "pal.heavy_group";
    /// The stay was already charged the flat fee, in an earlier run (RULES §7.1).
    pub const PAL_STAY_ALREADY_CHARGED: &str = "pal.stay_already_charged";
    /// The copayment and the forfait journalier of a stay were not both charged (RULES §7.3).
    pub const FJ_IMPUTED: &str = "fj_imputed";
    /// A franchise never exceeds the AMO amount of its own line (RULES §8, CSS D160-9).
    pub const FRANCHISE_LINE_CAP: &str = "franchise.line_cap";
    /// The out-of-pathway majoration (RULES §2, §7.2).
    pub const MAJORATION: &str = "pathway.majoration";
    /// No forfait patient urgences: the emergency visit was followed by a stay (RULES §4).
    pub const FPU_FOLLOWED_BY_STAY: &str = "fpu.followed_by_stay";

    /// The dated parameters a decision reads besides those the `rules` column names beside it:
    /// the column says *that* the majoration applied, these say how much it could be.
    /// `explain` prints their values, and a line the decision may apply to needs them
    /// (`for_required_params`, in this order: the first missing one is the reject's).
    pub fn parameters(decision: &str) -> &'static [Scalar] {
        match decision {
            MAJORATION => &[
                Scalar::PathwayOutRate,
                Scalar::PathwayMajorationCapShare,
                Scalar::PathwayMinAge,
                Scalar::NgapG,
            ],
            PAL_HEAVY_GROUP => &[Scalar::PalTariffThreshold, Scalar::PalCoefficientThreshold],
            _ => &[],
        }
    }
}

/// Rejection reasons the engine can give.
pub mod reasons {
    pub const CARE_BEFORE_BIRTH: &str = "care_before_birth";
    pub const NO_RULE_AT_DATE: &str = "no_rule_at_date";
}

/// One patient's input.
#[derive(Debug, Clone, Copy)]
pub struct PatientInput<'a> {
    pub beneficiary: &'a Beneficiary,
    /// The patient's acts, in any order (they are processed by `care_date`, then `act_id`).
    pub acts: &'a [Act],
    /// The patient's rights periods.
    pub rights: &'a [RightPeriod],
    /// Whether a rights file was given (RULES §3, "Rights versus declarations").
    pub rights_known: bool,
    /// Opening counters of the patient, any years.
    pub opening: &'a [YearCounter],
}

/// An act the engine could not compute.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Index in [`PatientInput::acts`].
    pub index: usize,
    pub column: &'static str,
    pub reason: &'static str,
    pub value: String,
}

/// One patient's result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatientResult {
    /// One per computed act, in (`care_date`, `act_id`) order.
    pub outcomes: Vec<Outcome>,
    pub rejected: Vec<Rejection>,
    /// Closing counters: the opening ones plus this run, one per year, sorted by year.
    pub closing: Vec<YearCounter>,
}

/// Computes one patient.
pub fn compute_patient(book: &RuleBook, input: &PatientInput) -> PatientResult {
    Engine::new(book, input, None).run()
}

/// Computes one patient and returns, with the result, every step of the computation of the
/// act `act_id` (for `rac explain`).
pub fn explain_patient(
    book: &RuleBook,
    input: &PatientInput,
    act_id: &str,
) -> (PatientResult, Trace) {
    let mut engine = Engine::new(book, input, Some(act_id));
    let result = engine.run_inner();
    let trace = Trace {
        steps: engine.trace,
        dated: engine.dated,
    };
    (result, trace)
}

/// How one act was computed (`rac explain`).
#[derive(Debug, Default)]
pub struct Trace {
    /// Every step, in order.
    pub steps: Vec<String>,
    /// The parameters the act's amounts took at another date than its `care_date`, with that
    /// date: the flat fee's, on the first day of the act's group (a stay begun earlier).
    pub dated: Vec<(&'static str, NaiveDate)>,
}

/// Rounds to the cent, half away from zero (SPEC §3: "only in step 3 and where RULES says").
#[inline]
pub fn round_cents(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// One line being computed.
struct Line<'a> {
    act: &'a Act,
    snap: &'a Snapshot,
    base: Decimal,
    billed: Decimal,
    overbilling: Decimal,
    /// The base is the billed amount (lower than tariff × quantity).
    limited: bool,
    situation: Situation,
    rate: Decimal,
    amo_gross: Decimal,
    majoration: Decimal,
    pal: Decimal,
    pf: Decimal,
    franchise: Decimal,
    flat_fee: Decimal,
    /// Under 18 on 1 January of the care year (RULES §8).
    minor: bool,
    /// PF units charged on this line by the daily limit (before the annual cap).
    pf_units: i64,
    rules: RuleIds,
    flags: Vec<&'static str>,
}

impl Line<'_> {
    /// The AMO amount at a rate: per unit, rounded, times quantity; or on the billed base
    /// when it is lower (RULES §5).
    fn amount_at(&self, fraction: Decimal) -> Decimal {
        if self.limited {
            round_cents(self.base * fraction)
        } else {
            round_cents(self.act.tariff * fraction) * Decimal::from(self.act.quantity)
        }
    }

    fn date(&self) -> NaiveDate {
        self.act.care_date
    }

    fn get(&self, p: impl Into<Param>) -> Result<Decimal, RuleError> {
        self.snap.get(p, self.act.care_date)
    }

    fn fraction(&self, p: impl Into<Param>) -> Result<Decimal, RuleError> {
        self.snap.fraction(p, self.act.care_date)
    }

    fn ambulatory(&self) -> bool {
        self.act.setting == Setting::Ambulatory && self.act.category != Category::HospitalStay
    }
}

/// Use of the annual caps in one calendar year.
#[derive(Debug, Clone, Default)]
struct YearState {
    pf_used: Decimal,
    franchise_used: Decimal,
    pf_cap_reached_on: Option<NaiveDate>,
    franchise_cap_reached_on: Option<NaiveDate>,
    charged_stays: BTreeSet<String>,
    /// First day of each stay begun this year (RULES §7.5), from the opening counters and
    /// this run's `hospital_stay` lines.
    stay_starts: BTreeMap<String, NaiveDate>,
    /// Stays not charged the 24 € fee, with the sums of their lines of earlier runs (opening
    /// counters), then of this run's too (closing).
    open_stays: BTreeMap<String, StaySums>,
}

struct Engine<'a> {
    book: &'a RuleBook,
    input: &'a PatientInput<'a>,
    patient: Patient<'a>,
    regime: Regime,
    years: BTreeMap<i32, YearState>,
    /// Index of the act to trace, and the trace.
    target: Option<&'a str>,
    trace: Vec<String>,
    /// [`Trace::dated`].
    dated: Vec<(&'static str, NaiveDate)>,
}

impl<'a> Engine<'a> {
    fn new(book: &'a RuleBook, input: &'a PatientInput<'a>, target: Option<&'a str>) -> Self {
        let mut years: BTreeMap<i32, YearState> = BTreeMap::new();
        for c in input.opening {
            let y = years.entry(c.year).or_default();
            y.pf_used += c.pf_used;
            y.franchise_used += c.franchise_used;
            y.pf_cap_reached_on = y.pf_cap_reached_on.or(c.pf_cap_reached_on);
            y.franchise_cap_reached_on = y.franchise_cap_reached_on.or(c.franchise_cap_reached_on);
            y.charged_stays.extend(c.charged_stays.iter().cloned());
            for (stay, sums) in &c.open_stays {
                y.open_stays.entry(stay.clone()).or_default().add(sums);
            }
        }
        for c in input.opening {
            for (stay, start) in &c.stay_starts {
                keep_stay_start(&mut years, stay, *start);
            }
        }
        Engine {
            book,
            input,
            patient: Patient {
                birth_date: input.beneficiary.birth_date,
                rights: input.rights,
                rights_known: input.rights_known,
            },
            regime: input.beneficiary.regime,
            years,
            target,
            trace: Vec::new(),
            dated: Vec::new(),
        }
    }

    fn note(&mut self, line: &Line, text: impl FnOnce() -> String) {
        if self.target == Some(line.act.act_id.as_str()) {
            self.trace.push(text());
        }
    }

    fn run(mut self) -> PatientResult {
        self.run_inner()
    }

    fn run_inner(&mut self) -> PatientResult {
        let acts = self.input.acts;
        let mut order: Vec<usize> = (0..acts.len()).collect();
        let key = |a: &'a Act| (a.care_date, a.act_id.as_str());
        if !acts.is_sorted_by(|a, b| key(a) <= key(b)) {
            order.sort_by(|&a, &b| key(&acts[a]).cmp(&key(&acts[b])));
        }
        let mut rejected = Vec::new();
        let mut kept = Vec::with_capacity(order.len());
        for i in order {
            match self.check(&acts[i]) {
                Ok(()) => kept.push(i),
                Err((column, reason, value)) => rejected.push(Rejection {
                    index: i,
                    column,
                    reason,
                    value,
                }),
            }
        }
        match self.compute(&kept) {
            Ok(outcomes) => PatientResult {
                outcomes,
                rejected,
                closing: self.closing(),
            },
            // Every parameter an act needs was checked above; should one still be missing,
            // the patient's acts are rejected rather than computed with a hole.
            Err(e) => {
                rejected.extend(kept.iter().map(|&i| Rejection {
                    index: i,
                    column: "care_date",
                    reason: reasons::NO_RULE_AT_DATE,
                    value: e.to_string(),
                }));
                rejected.sort_by_key(|r| r.index);
                PatientResult {
                    outcomes: Vec::new(),
                    rejected,
                    closing: self.closing(),
                }
            }
        }
    }

    /// RULES §7.6: an act before the birth, or on a date where a parameter it needs has no
    /// value, is rejected.
    fn check(&self, act: &Act) -> Result<(), (&'static str, &'static str, String)> {
        if act.care_date < self.patient.birth_date {
            return Err((
                "care_date",
                reasons::CARE_BEFORE_BIRTH,
                act.care_date.to_string(),
            ));
        }
        let snap = self.book.at(act.care_date);
        let mut missing = None;
        for_required_params(act, self.regime, |p| {
            if missing.is_none() && !snap.has(p) {
                missing = Some(p);
            }
        });
        match missing {
            Some(p) => Err((
                "care_date",
                reasons::NO_RULE_AT_DATE,
                format!("{} ({})", act.care_date, p.id()),
            )),
            None => Ok(()),
        }
    }

    fn compute(&mut self, kept: &[usize]) -> Result<Vec<Outcome>, RuleError> {
        let acts = self.input.acts;
        let stay_starts = self.stay_starts(kept.iter().map(|&i| &acts[i]));
        let mut lines = Vec::with_capacity(kept.len());
        for &i in kept {
            let line = self.price_line(&acts[i], &stay_starts)?;
            lines.push(line);
        }
        let heavy_stays = self.flat_fee_on_heavy_groups(&mut lines)?;
        // This run's sums of each stay, before the imputation changes its daily fees.
        let run_sums = self.stay_sums(&lines);
        self.impute_daily_fees(&mut lines, &heavy_stays, &run_sums);
        self.keep_open_stays(run_sums);
        let mut today = DayTally::default();
        for k in 0..lines.len() {
            today.start(lines[k].date());
            self.participation(&mut lines, k, &today)?;
            self.franchise(&mut lines, k, &today)?;
            today.add(&lines[k]);
        }
        // Kept for the closing counters once the lines are computed (not for rejected ones).
        for (stay, start) in stay_starts {
            keep_stay_start(&mut self.years, stay, start);
        }
        Ok(lines.iter_mut().map(|l| self.finish(l)).collect())
    }

    /// Pass 1: base, situation, rate, `amo_gross`, majoration and FPU of one line.
    fn price_line<'b>(
        &mut self,
        act: &'b Act,
        stay_starts: &BTreeMap<&str, NaiveDate>,
    ) -> Result<Line<'b>, RuleError>
    where
        'a: 'b,
    {
        let snap = self.book.at(act.care_date);
        let date = act.care_date;
        let full = act.tariff * Decimal::from(act.quantity);
        let billed = act.billed.unwrap_or(full);
        let limited = billed < full;
        let base = if limited { billed } else { full };
        let mut flags = Vec::new();
        let newborn_days = snap.get(Scalar::NewbornMaxAgeDays, date)?;
        let newborn_days = i64::try_from(newborn_days).unwrap_or(0);
        let situation = situation::decide(act, &self.patient, newborn_days, &mut flags);
        let minor_age = snap.get(Scalar::MinorAge, date)?;
        let minor = age_on(self.patient.birth_date, jan_first(date)) < minor_age;
        let mut line = Line {
            act,
            snap,
            base,
            billed,
            overbilling: (billed - base).max(Decimal::ZERO),
            limited,
            situation,
            rate: Decimal::ZERO,
            amo_gross: Decimal::ZERO,
            majoration: Decimal::ZERO,
            pal: Decimal::ZERO,
            pf: Decimal::ZERO,
            franchise: Decimal::ZERO,
            flat_fee: Decimal::ZERO,
            minor,
            pf_units: 0,
            rules: RuleIds::new(),
            flags,
        };
        self.note(&line, || {
            format!(
                "base: tariff {} × quantity {} = {full}; billed {billed} → base {base}, overbilling {} (SPEC §3.1)",
                act.tariff, act.quantity, line.overbilling
            )
        });
        if limited {
            line.rules.push(rule_ids::BASE_LIMITED_BY_BILLED);
        }
        let (rights_known, regime) = (self.patient.rights_known, self.regime);
        self.note(&line, || {
            format!(
                "situation: {situation} (RULES §3 precedence; rights file given: {rights_known}; regime {regime})"
            )
        });
        if line.overbilling > Decimal::ZERO
            && self.input.rights_known
            && self.holds_css_or_ame(date)
        {
            line.flags.push(flags::OVERBILLING_FORBIDDEN);
        }
        if let Some(nomenclature) = nomenclature_tariff(act)
            && snap.has(nomenclature)
            && snap.get(nomenclature, date)? != act.tariff
        {
            line.flags.push(flags::TARIFF_MISMATCH);
        }

        let long_stay = self.is_long_stay(act, stay_starts, snap)?;
        // Only when explaining this act: the lookup below is for the trace alone.
        if self.target == Some(act.act_id.as_str())
            && act.category == Category::HospitalStay
            && let Some(stay) = act.stay_id.as_deref()
            && let Some(&start) = stay_starts.get(stay)
        {
            // Until the lines are computed, the years hold the opening counters' starts only.
            let opened = self
                .years
                .values()
                .any(|y| y.stay_starts.get(stay) == Some(&start));
            let day = (act.care_date - start).num_days() + 1;
            self.note(&line, || {
                let whence = if opened { " (opening counters)" } else { "" };
                format!("stay {stay} began on {start}{whence}: this line starts on its day {day} (RULES §7.5)")
            });
        }
        let rate_param = self.rate_param(&line, long_stay);
        line.rate = line.get(rate_param)?;
        line.amo_gross = line.amount_at(line.fraction(rate_param)?);
        line.rules.push(rate_param.static_id());
        self.note(&line, || {
            format!(
                "rate: {} = {} % → amo_gross {} (per unit rounded half away from zero, RULES §5)",
                rate_param.id(),
                line.rate,
                line.amo_gross
            )
        });
        self.out_of_pathway(&mut line)?;
        self.emergency_fee(&mut line)?;
        Ok(line)
    }

    fn holds_css_or_ame(&self, date: NaiveDate) -> bool {
        self.input.rights.iter().any(|r| {
            matches!(
                r.right,
                crate::model::RightKind::Css | crate::model::RightKind::Ame
            ) && r.is_active(date)
        })
    }

    /// RULES §7.5: a `hospital_stay` line starting on day 31 of its stay or later.
    fn is_long_stay(
        &self,
        act: &Act,
        stay_starts: &BTreeMap<&str, NaiveDate>,
        snap: &Snapshot,
    ) -> Result<bool, RuleError> {
        if act.category != Category::HospitalStay {
            return Ok(false);
        }
        let Some(start) = act.stay_id.as_deref().and_then(|s| stay_starts.get(s)) else {
            return Ok(false);
        };
        let day = (act.care_date - *start).num_days() + 1;
        Ok(Decimal::from(day) >= snap.get(Scalar::LongStayDay, act.care_date)?)
    }

    /// The rate parameter of a line before the flat fee (RULES §2, §3).
    fn rate_param(&self, line: &Line, long_stay: bool) -> Param {
        let c = line.act.category;
        let s = line.situation;
        let alsace = self.regime == Regime::AlsaceMoselle;
        if is_daily_fee(c) {
            // RULES §4 and §7.3: the patient's, unless the situation or Alsace-Moselle
            // exempts it.
            return if alsace {
                Param::RateAlsaceMoselle(c)
            } else if situation::exempts_daily_fee(s) {
                Scalar::RateExonerated.into()
            } else {
                Param::Rate(c)
            };
        }
        if s != Situation::Ordinary {
            return if situation::keeps_drug_rate(s, c) {
                Param::Rate(c)
            } else {
                Scalar::RateExonerated.into()
            };
        }
        if long_stay {
            Scalar::LongStayRate.into()
        } else if alsace {
            Param::RateAlsaceMoselle(c)
        } else {
            Param::Rate(c)
        }
    }

    /// RULES §2 and §7.2: out of the care pathway, the majoration is 40 points of the base,
    /// capped at 40 % of the GP consultation tariff.
    fn out_of_pathway(&mut self, line: &mut Line) -> Result<(), RuleError> {
        let act = line.act;
        if !(category::subject_to_pathway(act.category)
            && act.pathway == Pathway::OutOfPathway
            && line.situation == Situation::Ordinary)
        {
            return Ok(());
        }
        let min_age = line.get(Scalar::PathwayMinAge)?;
        if age_on(self.patient.birth_date, line.date()) < min_age {
            return Ok(());
        }
        let normal = line.amount_at(line.fraction(Param::Rate(act.category))?);
        let out = line.amount_at(line.fraction(Scalar::PathwayOutRate)?);
        let cap = round_cents(
            line.fraction(Scalar::PathwayMajorationCapShare)? * line.get(Scalar::NgapG)?,
        );
        let majoration = (normal - out).min(cap).max(Decimal::ZERO);
        line.majoration = majoration;
        line.amo_gross -= majoration;
        line.rate = line.get(Scalar::PathwayOutRate)?;
        line.rules.push(rule_ids::MAJORATION);
        self.note(line, || {
            format!(
                "out of pathway: majoration = min({normal} − {out}, cap {cap}) = {majoration} → amo_gross {} (RULES §7.2)",
                line.amo_gross
            )
        });
        Ok(())
    }

    /// RULES §4 FPU: an emergency visit is at 100 % minus the forfait patient urgences, which
    /// is the fee of a visit *not followed by a stay*. A visit that belongs to a stay (a
    /// `stay_id`, or an `inpatient` line) was followed by one: no FPU, the patient's part is
    /// the stay's (its copayment or 24 € fee, its forfaits journaliers).
    fn emergency_fee(&mut self, line: &mut Line) -> Result<(), RuleError> {
        if line.act.category != Category::EmergencyVisit {
            return Ok(());
        }
        if line.act.stay_id.is_some() || line.act.setting == Setting::Inpatient {
            line.rules.push(rule_ids::FPU_FOLLOWED_BY_STAY);
            self.note(line, || {
                "FPU: none, the visit was followed by a stay (stay_id or inpatient; RULES §4)"
                    .to_string()
            });
            return Ok(());
        }
        let fee_param = match situation::fpu_level(line.situation) {
            FpuLevel::Full => Scalar::FpuAmount,
            FpuLevel::Reduced => Scalar::FpuReduced,
            FpuLevel::None => {
                self.note(line, || {
                    format!("FPU: none in situation {} (RULES §4)", line.situation)
                });
                return Ok(());
            }
        };
        line.flat_fee = line.base.min(line.get(fee_param)?);
        line.rules.push(Param::from(fee_param).static_id());
        self.note(line, || {
            format!(
                "FPU: {} = {} (RULES §4)",
                Param::from(fee_param).id(),
                line.flat_fee
            )
        });
        Ok(())
    }

    /// Pass 2 (RULES §4, §7.1): heavy groups are at 100 %, and one fee is charged per group,
    /// on its largest lines. Returns the stays whose group was heavy.
    fn flat_fee_on_heavy_groups(
        &mut self,
        lines: &mut [Line],
    ) -> Result<BTreeSet<String>, RuleError> {
        // Lines by group key, then in processing order within a group: sorted pairs rather
        // than a map of vectors (no allocation per group).
        let mut keyed: Vec<(GroupKey, usize)> = Vec::new();
        for (k, line) in lines.iter().enumerate() {
            if !in_pal_group(line.act.category) {
                continue;
            }
            let key = if line.ambulatory() {
                match &line.act.practitioner_id {
                    Some(p) => GroupKey::Day(line.date(), p.as_str()),
                    None => GroupKey::Alone(k),
                }
            } else {
                match &line.act.stay_id {
                    Some(s) => GroupKey::Stay(s.as_str()),
                    None => GroupKey::Alone(k),
                }
            };
            keyed.push((key, k));
        }
        keyed.sort_unstable();
        let mut heavy_stays = BTreeSet::new();
        let mut members: Vec<usize> = Vec::new();
        for group in keyed.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0;
            members.clear();
            members.extend(group.iter().map(|&(_, k)| k));
            let stay = match key {
                GroupKey::Stay(s) => Some(s.to_string()),
                _ => None,
            };
            let already = stay.as_deref().is_some_and(|s| self.is_charged(s));
            let mut bases: Decimal = members.iter().map(|&k| lines[k].base).sum();
            let mut coefficients: Decimal = members
                .iter()
                .filter_map(|&k| lines[k].act.coefficient)
                .sum();
            // Members are in processing order: the first is the group's earliest line, unless
            // a line of an earlier run came first. A stay's lines of earlier runs count too
            // (opening counters, SPEC §2).
            let mut date = lines[members[0]].date();
            // Cloned: the lines' notes below borrow the engine.
            let carried = stay.as_deref().and_then(|s| self.open_stay(s)).cloned();
            if let Some(carried) = &carried {
                bases += carried.bases;
                coefficients += carried.coefficients;
                date = carried.first.map_or(date, |first| first.min(date));
            }
            let snap = self.book.at(date);
            let heavy = already || reaches_pal_thresholds(snap, date, bases, coefficients)?;
            // The fee and its thresholds are those of the group's first day (explain names
            // their value there).
            if let Some(target) = self.target
                && let Some(&k) = members.iter().find(|&&k| lines[k].act.act_id == target)
                && lines[k].date() != date
            {
                let thresholds = rule_ids::parameters(rule_ids::PAL_HEAVY_GROUP);
                self.dated.extend(
                    std::iter::once(&Scalar::PalAmount)
                        .chain(thresholds)
                        .map(|&p| (Param::from(p).static_id(), date)),
                );
            }
            if !heavy {
                continue;
            }
            for &k in &members {
                let line = &mut lines[k];
                let before = (line.rate, line.amo_gross);
                line.rate = line.get(Scalar::PalRate)?;
                line.amo_gross = line.amount_at(line.fraction(Scalar::PalRate)?);
                line.majoration = Decimal::ZERO;
                // The 100 % rate replaces the out-of-pathway one: its majoration is gone, and
                // so is its rule id (`rules` names what set or changed the amounts).
                line.rules.retain(|id| *id != rule_ids::MAJORATION);
                // A line already at that rate (exonerated) is not changed by the group.
                if (line.rate, line.amo_gross) != before {
                    line.rules.push(rule_ids::PAL_HEAVY_GROUP);
                }
                let (b, c) = (bases, coefficients);
                self.note(&lines[k], || {
                    format!(
                        "flat fee group: summed bases {b}, coefficients {c} reach the thresholds → rate 100 %, amo_gross {} (RULES §4, §7.1)",
                        lines[k].amo_gross
                    )
                });
            }
            if let Some(s) = &stay {
                heavy_stays.insert(s.clone());
            }
            if already {
                for &k in &members {
                    lines[k].rules.push(rule_ids::PAL_STAY_ALREADY_CHARGED);
                    self.note(&lines[k], || {
                        "flat fee: none on this line, an earlier run charged the stay (RULES §4)"
                            .to_string()
                    });
                }
                continue;
            }
            // The fee sits on the largest base (ties: smallest act_id), spread to the next
            // lines when that base is smaller; exempt lines bear none (CSS, AME and
            // Alsace-Moselle pay it, the exonerated situations are at 100 % anyway).
            let payers: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&k| self.pays_pal(&lines[k]))
                .collect();
            // An auditor reads why a line of a heavy group bears no fee (only for `explain`).
            let explaining = self.target.is_some();
            for &k in members.iter().filter(|_| explaining) {
                if payers.contains(&k) {
                    continue;
                }
                let (situation, regime) = (lines[k].situation, self.regime);
                self.note(&lines[k], || {
                    if situation::exempts_pal(situation) {
                        format!(
                            "flat fee: none on this line, situation {} is exempt from it (RULES §4)",
                            situation.as_str()
                        )
                    } else {
                        format!(
                            "flat fee: none on this line, regime {} pays it for the patient (RULES §4)",
                            regime.as_str()
                        )
                    }
                });
            }
            // With the lines of earlier runs (opening counters): what they were charged is
            // taken off the fee; those not charged that would bear it bear their part first
            // where one run over all the stay's lines puts it, and none of that part is this
            // run's lines' to pay.
            let earlier = carried.as_ref().map_or(&[][..], |c| &c.payers[..]);
            let charged_before = carried.as_ref().map_or(Decimal::ZERO, |c| c.charged);
            let mut order: Vec<(Decimal, &str, Option<usize>)> = payers
                .iter()
                .map(|&k| (lines[k].base, lines[k].act.act_id.as_str(), Some(k)))
                .chain(earlier.iter().map(|(base, id)| (*base, id.as_str(), None)))
                .collect();
            order.sort_by(|a, b| pay_order((a.0, a.1), (b.0, b.1)));
            let amount = snap.get(Scalar::PalAmount, date)?;
            let mut remaining = carried.as_ref().map_or(amount, |c| c.rest_of(amount));
            if charged_before > Decimal::ZERO {
                for &k in &members {
                    self.note(&lines[k], || {
                        format!("flat fee: {charged_before} of {amount} charged by earlier runs on the stay's lines (RULES §4)")
                    });
                }
            }
            for (base, act_id, here) in order {
                if remaining <= Decimal::ZERO {
                    break;
                }
                let fee = remaining.min(base);
                remaining -= fee;
                let Some(k) = here else {
                    for &k in &members {
                        self.note(&lines[k], || {
                            format!("flat fee: {fee} on line {act_id} of an earlier run (RULES §4)")
                        });
                    }
                    continue;
                };
                lines[k].pal = fee;
                lines[k]
                    .rules
                    .push(Param::from(Scalar::PalAmount).static_id());
                self.note(&lines[k], || {
                    format!("flat fee: {fee} charged on this line")
                });
            }
            // Lines that could bear the fee and bear none (only for `explain`).
            for &k in payers.iter().filter(|_| explaining) {
                if lines[k].pal > Decimal::ZERO {
                    continue;
                }
                let bearers: Vec<&str> = members
                    .iter()
                    .filter(|&&m| lines[m].pal > Decimal::ZERO)
                    .map(|&m| lines[m].act.act_id.as_str())
                    .collect();
                let text = if !bearers.is_empty() {
                    format!(
                        "flat fee: none on this line, borne by {} (RULES §4)",
                        bearers.join(", ")
                    )
                } else if !earlier.is_empty() || charged_before > Decimal::ZERO {
                    "flat fee: none on this line, lines of an earlier run bore it (RULES §4)"
                        .to_string()
                } else {
                    "flat fee: none on this line, no line of the group has a base to bear it (RULES §4)"
                        .to_string()
                };
                if self.target == Some(lines[k].act.act_id.as_str()) {
                    self.trace.push(text);
                }
            }
            // Charged once the whole fee is placed. Until then (every line exempt, or bases
            // under the fee), a later line that pays it bears the rest, as in one run over
            // all the stay's lines; the counters keep the lines that bore a part.
            if let Some(s) = stay.filter(|_| remaining <= Decimal::ZERO) {
                self.years
                    .entry(date.year())
                    .or_default()
                    .charged_stays
                    .insert(s);
            }
        }
        // A stay with no line of its group in this run is heavy all the same when an earlier
        // run charged it, or found it heavy with no line to bear the fee: its daily fees are
        // then not imputed (RULES §7.3), as one run over all its lines would not.
        for line in lines.iter() {
            let Some(stay) = line.act.stay_id.as_deref() else {
                continue;
            };
            if heavy_stays.contains(stay) {
                continue;
            }
            let charged = self.is_charged(stay);
            let carried_heavy = match self.open_stay(stay) {
                Some(&StaySums {
                    first: Some(first),
                    bases,
                    coefficients,
                    ..
                }) => {
                    let snap = self.book.at(first);
                    snap.has(Scalar::PalTariffThreshold)
                        && snap.has(Scalar::PalCoefficientThreshold)
                        && reaches_pal_thresholds(snap, first, bases, coefficients)?
                }
                _ => false,
            };
            if charged || carried_heavy {
                heavy_stays.insert(stay.to_string());
            }
        }
        Ok(heavy_stays)
    }

    /// Each stay's sums over `lines` ([`StaySums`]), with the date of its first line: the
    /// bases and coefficients of its flat-fee group (its inpatient lines of the group's
    /// categories) and the line that would pay its fee, the copayment of its other lines and
    /// its daily fees.
    fn stay_sums<'l>(&self, lines: &[Line<'l>]) -> BTreeMap<&'l str, (StaySums, NaiveDate)> {
        let mut sums: BTreeMap<&str, (StaySums, NaiveDate)> = BTreeMap::new();
        for line in lines {
            let Some(stay) = line.act.stay_id.as_deref() else {
                continue;
            };
            let (s, first) = sums
                .entry(stay)
                .or_insert((StaySums::default(), line.date()));
            *first = (*first).min(line.date());
            if in_pal_group(line.act.category) && !line.ambulatory() {
                s.first = Some(s.first.map_or(line.date(), |d| d.min(line.date())));
                s.bases += line.base;
                s.coefficients += line.act.coefficient.unwrap_or_default();
                // A line charged a part of the fee (the stay heavy, its bases short of the
                // fee) is counted as charged: a later run places only the rest, and not on it.
                if line.pal > Decimal::ZERO {
                    s.charged += line.pal;
                } else if self.pays_pal(line) {
                    s.payers.push((line.base, line.act.act_id.to_string()));
                }
            }
            if is_daily_fee(line.act.category) {
                s.daily_fees += line.base - line.amo_gross;
            } else {
                s.copayment += line.base - line.amo_gross;
            }
        }
        sums
    }

    /// Whether a stay was charged the 24 € fee, in this run or an earlier one.
    fn is_charged(&self, stay: &str) -> bool {
        self.years.values().any(|y| y.charged_stays.contains(stay))
    }

    /// The sums of an open stay's lines of earlier runs (opening counters).
    fn open_stay(&self, stay: &str) -> Option<&StaySums> {
        self.years.values().find_map(|y| y.open_stays.get(stay))
    }

    /// Whether a line bears the flat fee of its group, if heavy (RULES §4): CSS, AME and
    /// Alsace-Moselle pay it for the patient, the exonerated situations are at 100 % anyway.
    fn pays_pal(&self, line: &Line) -> bool {
        !situation::exempts_pal(line.situation) && self.regime == Regime::General
    }

    /// Adds this run's sums of each stay to its open entry, under the year that holds it, else
    /// the year of the stay's start ([`keep_stay_start`]), else that of its first line in
    /// this run; a stay charged the fee is open no more.
    fn keep_open_stays(&mut self, run_sums: BTreeMap<&str, (StaySums, NaiveDate)>) {
        for (stay, (sums, first)) in run_sums {
            if self.is_charged(stay) {
                for y in self.years.values_mut() {
                    y.open_stays.remove(stay);
                }
                continue;
            }
            let year_where = |has: &dyn Fn(&YearState) -> bool| {
                self.years.iter().find(|(_, y)| has(y)).map(|(&k, _)| k)
            };
            let year = year_where(&|y| y.open_stays.contains_key(stay))
                .or_else(|| year_where(&|y| y.stay_starts.contains_key(stay)))
                .unwrap_or(first.year());
            // A stay with nothing to carry (no line of its group, no copayment, no forfait)
            // is no entry: a later run would start it from nothing all the same.
            if sums == StaySums::default() && self.open_stay(stay).is_none() {
                continue;
            }
            let kept = self
                .years
                .entry(year)
                .or_default()
                .open_stays
                .entry(stay.to_owned())
                .or_default();
            kept.add(&sums);
            // Only the lines that would bear the rest of the fee are kept (the fee of the
            // stay's first day, less what its lines were charged).
            let fee = kept.first.and_then(|first| {
                let snap = self.book.at(first);
                snap.has(Scalar::PalAmount)
                    .then(|| snap.get(Scalar::PalAmount, first).ok())
                    .flatten()
            });
            if let Some(fee) = fee {
                kept.keep_payers(kept.rest_of(fee));
            }
        }
    }

    /// Pass 3 (RULES §4, §7.3): for a stay without the flat fee, the patient pays the larger
    /// of the stay's copayment and its forfaits journaliers; the smaller is added to the AMO
    /// amount of the `daily_fee*` lines.
    fn impute_daily_fees(
        &mut self,
        lines: &mut [Line],
        heavy_stays: &BTreeSet<String>,
        run_sums: &BTreeMap<&str, (StaySums, NaiveDate)>,
    ) {
        let stays: BTreeSet<&str> = lines
            .iter()
            .filter(|l| is_daily_fee(l.act.category))
            .filter_map(|l| l.act.stay_id.as_deref())
            .filter(|s| !heavy_stays.contains(*s))
            .collect();
        for stay in stays {
            // With the stay's lines of earlier runs (opening counters): of the smaller of its
            // whole copayment and forfaits, the earlier daily fees took their part first, as
            // in one run over all its lines (SPEC §2).
            let sum = |field: fn(&StaySums) -> Decimal| {
                let carried = self.open_stay(stay).map_or(Decimal::ZERO, field);
                let here = run_sums.get(stay).map_or(Decimal::ZERO, |(s, _)| field(s));
                (carried, carried + here)
            };
            let (_, copayment) = sum(|s| s.copayment);
            let (earlier_fees, daily_fees) = sum(|s| s.daily_fees);
            let mut remaining = (copayment.min(daily_fees) - earlier_fees).max(Decimal::ZERO);
            for line in lines.iter_mut() {
                if remaining <= Decimal::ZERO {
                    break;
                }
                if !(is_daily_fee(line.act.category) && line.act.stay_id.as_deref() == Some(stay)) {
                    continue;
                }
                let add = remaining.min(line.base - line.amo_gross);
                if add > Decimal::ZERO {
                    line.amo_gross += add;
                    remaining -= add;
                    line.rules.push(rule_ids::FJ_IMPUTED);
                    self.note(line, || {
                        format!(
                            "forfait journalier: stay copayment {copayment}, forfaits {daily_fees}: {add} of the smaller taken off this line (RULES §7.3)"
                        )
                    });
                }
            }
        }
    }

    /// Pass 4a (RULES §4 PF, §7.7): units of eligible lines, at most `pf.daily_max_count` per
    /// practitioner and day, then the annual cap with a partial last amount.
    fn participation(
        &mut self,
        lines: &mut [Line],
        k: usize,
        today: &DayTally,
    ) -> Result<(), RuleError> {
        let line = &lines[k];
        if !(bears_pf(line.act.category) && line.ambulatory()) {
            return Ok(());
        }
        if situation::exempts_pf(line.situation) {
            return Ok(());
        }
        if line.minor {
            lines[k]
                .rules
                .push(Param::from(Scalar::MinorAge).static_id());
            return Ok(());
        }
        let date = line.date();
        let max = i64::try_from(line.get(Scalar::PfDailyMaxCount)?).unwrap_or(0);
        // A missing practitioner_id groups by line (RULES §4).
        let used_today: i64 = match &line.act.practitioner_id {
            Some(p) => today.pf_units.get(p.as_str()).copied().unwrap_or(0),
            None => 0,
        };
        let units = i64::from(line.act.quantity).min(max - used_today).max(0);
        let unit_amount = line.get(Scalar::PfAmount)?;
        let cap = line.get(Scalar::PfAnnualCap)?;
        let wanted = unit_amount * Decimal::from(units);
        let year = self.years.entry(date.year()).or_default();
        let pf = wanted.min(cap - year.pf_used).max(Decimal::ZERO);
        year.pf_used += pf;
        if year.pf_used >= cap && year.pf_cap_reached_on.is_none() {
            year.pf_cap_reached_on = Some(date);
        }
        let used = year.pf_used;
        let line = &mut lines[k];
        line.pf = pf;
        line.pf_units = units;
        if units < i64::from(line.act.quantity) {
            line.rules
                .push(Param::from(Scalar::PfDailyMaxCount).static_id());
        }
        if pf < wanted {
            line.rules
                .push(Param::from(Scalar::PfAnnualCap).static_id());
        }
        if pf > Decimal::ZERO {
            line.rules.push(Param::from(Scalar::PfAmount).static_id());
        }
        self.note(&lines[k], || {
            format!(
                "participation forfaitaire: {units} unit(s) × {unit_amount} (≤ {max} a day with this practitioner, {used_today} already) = {wanted}; annual cap {cap} → pf {pf}, used this year {used} (RULES §4)"
            )
        });
        Ok(())
    }

    /// Pass 4b (RULES §4 franchise, §8): per unit, then the daily cap of its kind, the annual
    /// cap, and never more than the line's own AMO amount.
    fn franchise(
        &mut self,
        lines: &mut [Line],
        k: usize,
        today: &DayTally,
    ) -> Result<(), RuleError> {
        let line = &lines[k];
        let Some(kind) = franchise_kind(line.act.category) else {
            return Ok(());
        };
        if !line.ambulatory() || situation::exempts_franchise(line.situation) {
            return Ok(());
        }
        if line.minor {
            lines[k]
                .rules
                .push(Param::from(Scalar::MinorAge).static_id());
            return Ok(());
        }
        let date = line.date();
        let unit_amount = line.get(kind.unit_param())?;
        let wanted = unit_amount * Decimal::from(line.act.quantity);
        let mut amount = wanted;
        // The caps that lowered the amount, each with its room: only those the amount ends at
        // are named (a line capped at its own AMO amount under a room of the annual cap
        // smaller than the units named the annual cap too).
        let mut lowered: smallvec::SmallVec<[(Decimal, &'static str); 3]> =
            smallvec::SmallVec::new();
        if let Some(cap_param) = kind.daily_cap_param() {
            let room = (line.get(cap_param)? - today.franchise[kind as usize]).max(Decimal::ZERO);
            if room < amount {
                amount = room;
                lowered.push((room, Param::from(cap_param).static_id()));
            }
        }
        let cap = line.get(Scalar::FranchiseAnnualCap)?;
        let year = self.years.entry(date.year()).or_default();
        let room = (cap - year.franchise_used).max(Decimal::ZERO);
        if room < amount {
            amount = room;
            lowered.push((room, Param::from(Scalar::FranchiseAnnualCap).static_id()));
        }
        let own = (line.amo_gross - line.pal - line.pf - line.flat_fee).max(Decimal::ZERO);
        if own < amount {
            amount = own;
            lowered.push((own, rule_ids::FRANCHISE_LINE_CAP));
        }
        let mut rules: RuleIds = smallvec::smallvec![Param::from(kind.unit_param()).static_id()];
        rules.extend(
            lowered
                .into_iter()
                .filter(|(room, _)| *room == amount)
                .map(|(_, id)| id),
        );
        year.franchise_used += amount;
        if year.franchise_used >= cap && year.franchise_cap_reached_on.is_none() {
            year.franchise_cap_reached_on = Some(date);
        }
        let used = year.franchise_used;
        let line = &mut lines[k];
        line.franchise = amount;
        if amount > Decimal::ZERO || rules.len() > 1 {
            line.rules.extend(rules);
        }
        self.note(&lines[k], || {
            format!(
                "franchise: {} unit(s) × {unit_amount} ({}) = {wanted}; after {}annual cap {cap} and line amount → {amount}, used this year {used} (RULES §4, §8)",
                lines[k].act.quantity,
                Param::from(kind.unit_param()).id(),
                if kind.daily_cap_param().is_some() {
                    "daily cap, "
                } else {
                    ""
                }
            )
        });
        Ok(())
    }

    /// Pass 5: totals (SPEC §3.8, RULES §5). Takes the line's rule ids and flags: the line
    /// itself is not moved (it is large).
    fn finish(&mut self, line: &mut Line) -> Outcome {
        let amo_paid = line.amo_gross - line.pal - line.pf - line.franchise - line.flat_fee;
        if amo_paid < Decimal::ZERO {
            line.flags.push(flags::DEDUCTION_EXCEEDS_PAYMENT);
        }
        let rac = line.billed - amo_paid;
        let copayment = line.base - line.amo_gross;
        self.note(line, || {
            format!(
                "totals: amo_paid = {} − pal {} − pf {} − franchise {} − flat_fee {} = {amo_paid}; rac = billed {} − amo_paid = {rac}; copayment = {copayment} (SPEC §3.8)",
                line.amo_gross, line.pal, line.pf, line.franchise, line.flat_fee, line.billed
            )
        });
        let act = line.act;
        Outcome {
            act_id: act.act_id.clone(),
            patient_id: act.patient_id.clone(),
            care_date: act.care_date,
            category: act.category,
            quantity: act.quantity,
            base: line.base,
            billed: line.billed,
            overbilling: line.overbilling,
            situation: line.situation,
            rate: line.rate,
            amo_gross: line.amo_gross,
            copayment,
            majoration: line.majoration,
            pal: line.pal,
            pf: line.pf,
            franchise: line.franchise,
            flat_fee: line.flat_fee,
            amo_paid,
            rac,
            rules: std::mem::take(&mut line.rules),
            flags: std::mem::take(&mut line.flags),
            recorded_amo: act.recorded_amo,
            carried: act.carried.clone(),
        }
    }

    /// RULES §7.5: a stay starts on the earliest `care_date` of its `hospital_stay` lines, this
    /// run's and those of earlier runs (their start is in the opening counters), so that a stay
    /// spread over two monthly runs has its day 31 where one run over both would put it.
    fn stay_starts<'b>(&self, acts: impl Iterator<Item = &'b Act>) -> BTreeMap<&'b str, NaiveDate> {
        let mut starts: BTreeMap<&str, NaiveDate> = BTreeMap::new();
        for act in acts {
            if act.category != Category::HospitalStay {
                continue;
            }
            if let Some(s) = act.stay_id.as_deref() {
                let e = starts.entry(s).or_insert(act.care_date);
                *e = (*e).min(act.care_date);
            }
        }
        for (&stay, start) in starts.iter_mut() {
            // One year holds a stay's start ([`keep_stay_start`]).
            if let Some(&opened) = self.years.values().find_map(|y| y.stay_starts.get(stay)) {
                *start = (*start).min(opened);
            }
        }
        starts
    }

    fn closing(&self) -> Vec<YearCounter> {
        self.years
            .iter()
            .map(|(&year, y)| YearCounter {
                patient_id: self.input.beneficiary.patient_id.clone(),
                year,
                pf_used: y.pf_used,
                franchise_used: y.franchise_used,
                charged_stays: y.charged_stays.iter().cloned().collect(),
                stay_starts: y
                    .stay_starts
                    .iter()
                    .map(|(stay, start)| (stay.clone(), *start))
                    .collect(),
                pf_cap_reached_on: y.pf_cap_reached_on,
                franchise_cap_reached_on: y.franchise_cap_reached_on,
                open_stays: y
                    .open_stays
                    .iter()
                    .map(|(stay, sums)| (stay.clone(), sums.clone()))
                    .collect(),
            })
            .collect()
    }
}

/// Whether a flat-fee group's summed bases or coefficients reach the thresholds (RULES §4).
fn reaches_pal_thresholds(
    snap: &Snapshot,
    date: NaiveDate,
    bases: Decimal,
    coefficients: Decimal,
) -> Result<bool, RuleError> {
    Ok(bases >= snap.get(Scalar::PalTariffThreshold, date)?
        || coefficients >= snap.get(Scalar::PalCoefficientThreshold, date)?)
}

/// Keeps `start` as `stay`'s first day unless an earlier one is known, under the year that day
/// falls in and no other (a line billed late can move a start into the year before).
fn keep_stay_start(years: &mut BTreeMap<i32, YearState>, stay: &str, start: NaiveDate) {
    let known = || years.values().filter_map(|y| y.stay_starts.get(stay));
    let first = known().fold(start, |a, &b| a.min(b));
    let in_place = years
        .get(&first.year())
        .and_then(|y| y.stay_starts.get(stay))
        == Some(&first);
    if in_place && known().count() == 1 {
        // The common case: nothing to move, nothing allocated.
        return;
    }
    for year in years.values_mut() {
        year.stay_starts.remove(stay);
    }
    let kept = years.entry(first.year()).or_default();
    kept.stay_starts.insert(stay.to_owned(), first);
}

/// What the lines of the day being priced used so far, kept as they go (lines come in date
/// order): the PF units of each practitioner (the daily count, RULES §4) and the franchise
/// of each kind (the daily caps). Each line summed its day's earlier lines again, which was
/// quadratic in a day's lines: 100 000 acts of one patient over three days took 20 s.
#[derive(Debug, Default)]
struct DayTally<'b> {
    date: Option<NaiveDate>,
    pf_units: rustc_hash::FxHashMap<&'b str, i64>,
    /// Per [`category::FranchiseKind`], as its discriminant.
    franchise: [Decimal; 3],
}

impl<'b> DayTally<'b> {
    /// Starts the day of `date`, unless it is the current one.
    fn start(&mut self, date: NaiveDate) {
        if self.date != Some(date) {
            self.date = Some(date);
            self.pf_units.clear();
            self.franchise = [Decimal::ZERO; 3];
        }
    }

    /// Adds a priced line's PF units and franchise.
    fn add(&mut self, line: &Line<'b>) {
        if let Some(p) = line.act.practitioner_id.as_deref()
            && line.pf_units != 0
        {
            *self.pf_units.entry(p).or_default() += line.pf_units;
        }
        if let Some(kind) = franchise_kind(line.act.category) {
            self.franchise[kind as usize] += line.franchise;
        }
    }
}

/// A flat-fee group (RULES §4): ambulatory lines by practitioner and day, inpatient lines by
/// stay; a line without the key is a group of its own (RULES §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey<'a> {
    Day(NaiveDate, &'a str),
    Stay(&'a str),
    Alone(usize),
}

/// Calls `f` with each parameter an act needs on its date (RULES §7.6: without one, it is
/// rejected), its category's rate first: a reject names the first missing, and an act of a
/// date before the rules names its own rate (it named `rate.exonerated`, which every act
/// needs to have its situation judged).
fn for_required_params(act: &Act, regime: Regime, mut f: impl FnMut(Param)) {
    let c = act.category;
    f(Param::Rate(c));
    if regime == Regime::AlsaceMoselle {
        f(Param::RateAlsaceMoselle(c));
    }
    let mut scalars = |ps: &[Scalar]| ps.iter().for_each(|s| f(Param::Scalar(*s)));
    scalars(&[
        Scalar::RateExonerated,
        Scalar::MinorAge,
        Scalar::NewbornMaxAgeDays,
    ]);
    if bears_pf(c) {
        scalars(&[
            Scalar::PfAmount,
            Scalar::PfDailyMaxCount,
            Scalar::PfAnnualCap,
        ]);
    }
    if let Some(kind) = franchise_kind(c) {
        scalars(&[kind.unit_param(), Scalar::FranchiseAnnualCap]);
        if let Some(cap) = kind.daily_cap_param() {
            scalars(&[cap]);
        }
    }
    if in_pal_group(c) {
        scalars(&[
            Scalar::PalAmount,
            Scalar::PalTariffThreshold,
            Scalar::PalCoefficientThreshold,
            Scalar::PalRate,
        ]);
    }
    if category::subject_to_pathway(c) && act.pathway == Pathway::OutOfPathway {
        scalars(rule_ids::parameters(rule_ids::MAJORATION));
    }
    if c == Category::HospitalStay {
        scalars(&[Scalar::LongStayDay, Scalar::LongStayRate]);
    }
    if c == Category::EmergencyVisit {
        scalars(&[Scalar::FpuAmount, Scalar::FpuReduced]);
    }
}

/// The parameter that sets the tariff of `act` where the rules have one (SPEC §5
/// `tariff_mismatch`): `ngap.G` for a consultation coded `G`, `fj.daily` and `fj.daily_psy`
/// for the forfait journalier's lines (whatever their code: the category is the item).
fn nomenclature_tariff(act: &Act) -> Option<Scalar> {
    match act.category {
        Category::Consultation if act.code.as_deref() == Some("G") => Some(Scalar::NgapG),
        Category::DailyFee => Some(Scalar::FjDaily),
        Category::DailyFeePsy => Some(Scalar::FjDailyPsy),
        _ => None,
    }
}

/// Whole years of age on `date` (0 before the first birthday).
fn age_on(birth: NaiveDate, date: NaiveDate) -> Decimal {
    Decimal::from(date.years_since(birth).unwrap_or(0))
}

fn jan_first(date: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("1 January exists")
}

#[cfg(test)]
mod tests;
