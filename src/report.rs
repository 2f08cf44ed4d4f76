//! Per-patient yearly totals and the month × category × situation summary (SPEC §4).
//!
//! Pure aggregation over [`Outcome`]s; no IO. Every accumulator here ([`Totals`],
//! [`PatientTotals`], [`Summary`]) can be fed outcome slices in any order and partition and
//! merged: the sums are exact decimals and the results are kept in sorted maps, so the rows
//! come out the same whatever the number of threads.
//!
//! Invariant (SPEC §4): the per-patient, summary and manifest totals equal the sums of the act
//! lines; the tests below check it on real values.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::model::{Category, Outcome, Situation, YearCounter};

/// The sums of every amount column of `acts.*` over a set of acts, and their count.
///
/// Used for the manifest totals and as the cell of the other accumulators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub acts: u64,
    pub base: Decimal,
    pub billed: Decimal,
    pub overbilling: Decimal,
    pub amo_gross: Decimal,
    pub copayment: Decimal,
    pub majoration: Decimal,
    pub pal: Decimal,
    pub pf: Decimal,
    pub franchise: Decimal,
    pub flat_fee: Decimal,
    pub amo_paid: Decimal,
    pub rac: Decimal,
    /// Sum of `recorded_amo` over the acts that have one.
    pub recorded_amo: Decimal,
    /// Number of acts with a `recorded_amo`.
    pub recorded_acts: u64,
}

impl Totals {
    /// Adds one act.
    pub fn add(&mut self, o: &Outcome) {
        self.acts += 1;
        self.base += o.base;
        self.billed += o.billed;
        self.overbilling += o.overbilling;
        self.amo_gross += o.amo_gross;
        self.copayment += o.copayment;
        self.majoration += o.majoration;
        self.pal += o.pal;
        self.pf += o.pf;
        self.franchise += o.franchise;
        self.flat_fee += o.flat_fee;
        self.amo_paid += o.amo_paid;
        self.rac += o.rac;
        if let Some(recorded) = o.recorded_amo {
            self.recorded_amo += recorded;
            self.recorded_acts += 1;
        }
    }

    /// Adds every act of `outcomes`.
    pub fn add_all(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            self.add(o);
        }
    }

    /// The totals of `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Totals {
        let mut totals = Totals::default();
        totals.add_all(outcomes);
        totals
    }

    /// Adds the totals of another set of acts (order does not matter: sums are exact).
    pub fn merge(&mut self, other: &Totals) {
        self.acts += other.acts;
        self.base += other.base;
        self.billed += other.billed;
        self.overbilling += other.overbilling;
        self.amo_gross += other.amo_gross;
        self.copayment += other.copayment;
        self.majoration += other.majoration;
        self.pal += other.pal;
        self.pf += other.pf;
        self.franchise += other.franchise;
        self.flat_fee += other.flat_fee;
        self.amo_paid += other.amo_paid;
        self.rac += other.rac;
        self.recorded_amo += other.recorded_amo;
        self.recorded_acts += other.recorded_acts;
    }

    /// The totals for `manifest.json`: counts as JSON integers, amounts as strings with exactly
    /// two decimals (`"1234.50"`), so that no amount goes through a binary float.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "acts": self.acts,
            "base": money_text(self.base),
            "billed": money_text(self.billed),
            "overbilling": money_text(self.overbilling),
            "amo_gross": money_text(self.amo_gross),
            "copayment": money_text(self.copayment),
            "majoration": money_text(self.majoration),
            "pal": money_text(self.pal),
            "pf": money_text(self.pf),
            "franchise": money_text(self.franchise),
            "flat_fee": money_text(self.flat_fee),
            "amo_paid": money_text(self.amo_paid),
            "rac": money_text(self.rac),
            "recorded_amo": money_text(self.recorded_amo),
            "recorded_acts": self.recorded_acts,
        })
    }
}

/// [`Totals`] while adding: the amounts as integer cents (output amounts have at most two
/// decimals, and every act is added twice, to its patient-year and to its summary cell:
/// integers add several times faster than `Decimal`s), an act with a finer amount (none should
/// exist) summed exactly beside. The result is the same [`Totals`].
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    acts: u64,
    /// The twelve amount columns in [`Totals`] order, then `recorded_amo`.
    cents: [i128; 13],
    recorded_acts: u64,
    finer: Totals,
}

/// An act's amounts in cents, in [`Sums`] order: `None` when one has more than two decimals.
/// Computed once per act for both of its sums (patient-year and summary cell).
type ActCents = Option<[i128; 13]>;

fn act_cents(o: &Outcome) -> ActCents {
    let amounts = [
        o.base,
        o.billed,
        o.overbilling,
        o.amo_gross,
        o.copayment,
        o.majoration,
        o.pal,
        o.pf,
        o.franchise,
        o.flat_fee,
        o.amo_paid,
        o.rac,
        o.recorded_amo.unwrap_or_default(),
    ];
    let mut cents = [0i128; 13];
    for (c, amount) in cents.iter_mut().zip(amounts) {
        *c = to_cents(amount)?;
    }
    Some(cents)
}

impl Sums {
    /// Adds act `o`, whose amounts in cents are `cents` ([`act_cents`]).
    fn add(&mut self, o: &Outcome, cents: &ActCents) {
        let Some(cents) = cents else {
            self.finer.add(o);
            return;
        };
        self.acts += 1;
        self.recorded_acts += u64::from(o.recorded_amo.is_some());
        for (sum, c) in self.cents.iter_mut().zip(cents) {
            *sum += c;
        }
    }

    fn merge(&mut self, other: &Sums) {
        self.acts += other.acts;
        self.recorded_acts += other.recorded_acts;
        for (sum, c) in self.cents.iter_mut().zip(other.cents) {
            *sum += c;
        }
        self.finer.merge(&other.finer);
    }

    fn totals(&self) -> Totals {
        let money = |i: usize| {
            // 10^9 acts of 10^16 cents stay far below the 96 bits of a `Decimal`.
            Decimal::try_from_i128_with_scale(self.cents[i], 2)
                .expect("a sum of amounts within Decimal's range")
        };
        let mut totals = Totals {
            acts: self.acts,
            base: money(0),
            billed: money(1),
            overbilling: money(2),
            amo_gross: money(3),
            copayment: money(4),
            majoration: money(5),
            pal: money(6),
            pf: money(7),
            franchise: money(8),
            flat_fee: money(9),
            amo_paid: money(10),
            rac: money(11),
            recorded_amo: money(12),
            recorded_acts: self.recorded_acts,
        };
        totals.merge(&self.finer);
        totals
    }
}

/// `amount` in cents, if it has at most two decimals.
fn to_cents(amount: Decimal) -> Option<i128> {
    let m = amount.mantissa();
    match amount.scale() {
        0 => Some(m * 100),
        1 => Some(m * 10),
        2 => Some(m),
        _ => None,
    }
}

/// `12.5` → `"12.50"`, `0` → `"0.00"`; amounts with more than two decimals keep them (they
/// should not exist). The text of an amount wherever rac prints one.
pub fn money_text(amount: Decimal) -> String {
    let mut amount = amount;
    if amount.scale() < 2 {
        amount.rescale(2);
    }
    amount.to_string()
}

/// One row of `patients.*`: a patient's acts of one calendar year (of `care_date`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatientYear {
    pub patient_id: String,
    pub year: i32,
    pub acts: u64,
    pub billed: Decimal,
    pub base: Decimal,
    pub amo_paid: Decimal,
    pub rac: Decimal,
    pub pf: Decimal,
    pub franchise: Decimal,
    pub pal: Decimal,
    pub flat_fee: Decimal,
    pub overbilling: Decimal,
    /// From the closing counter of (`patient_id`, `year`).
    pub pf_cap_reached_on: Option<NaiveDate>,
    /// From the closing counter of (`patient_id`, `year`).
    pub franchise_cap_reached_on: Option<NaiveDate>,
}

/// The sums of consecutive acts of one patient and year, not yet in the map.
type Run<'o> = (&'o str, i32, Sums);

/// Adds acts to their patient-years and to their summary cells, converting each act's amounts
/// to cents once for both (what [`PatientTotals::add`] then [`Summary::add`] would do).
pub fn add_to_both(patients: &mut PatientTotals, summary: &mut Summary, outcomes: &[Outcome]) {
    let mut run = None;
    for o in outcomes {
        let cents = act_cents(o);
        patients.add_one(&mut run, o, &cents);
        summary.add_one(o, &cents);
    }
    patients.end_run(run);
}

/// Accumulates per (patient, year of `care_date`) totals; feed it outcomes in any order and
/// partition, merge the partial ones, then [`PatientTotals::finish`].
#[derive(Debug, Clone, Default)]
pub struct PatientTotals {
    years: BTreeMap<(String, i32), Totals>,
}

impl PatientTotals {
    pub fn new() -> PatientTotals {
        PatientTotals::default()
    }

    /// Adds acts (of one or many patients). Consecutive acts of the same patient and year,
    /// the usual case, cost one map look-up per run.
    pub fn add(&mut self, outcomes: &[Outcome]) {
        let mut run = None;
        for o in outcomes {
            self.add_one(&mut run, o, &act_cents(o));
        }
        self.end_run(run);
    }

    /// Adds act `o` to `run` (the sums of the last acts, all of one patient and year), after
    /// adding the run to the map if `o` starts another.
    fn add_one<'o>(&mut self, run: &mut Option<Run<'o>>, o: &'o Outcome, cents: &ActCents) {
        let year = o.care_date.year();
        match run {
            Some((patient, run_year, sums))
                if *patient == o.patient_id.as_str() && *run_year == year =>
            {
                sums.add(o, cents);
            }
            _ => {
                self.end_run(run.take());
                let mut sums = Sums::default();
                sums.add(o, cents);
                *run = Some((o.patient_id.as_str(), year, sums));
            }
        }
    }

    fn end_run(&mut self, run: Option<Run<'_>>) {
        if let Some((patient, year, sums)) = run {
            self.add_totals(patient, year, &sums.totals());
        }
    }

    fn add_totals(&mut self, patient_id: &str, year: i32, totals: &Totals) {
        self.years
            .entry((patient_id.to_string(), year))
            .or_default()
            .merge(totals);
    }

    /// Adds another partial accumulation.
    pub fn merge(&mut self, other: PatientTotals) {
        if self.years.is_empty() {
            self.years = other.years;
            return;
        }
        for ((patient_id, year), totals) in other.years {
            self.years
                .entry((patient_id, year))
                .or_default()
                .merge(&totals);
        }
    }

    /// Number of (patient, year) rows so far.
    pub fn len(&self) -> usize {
        self.years.len()
    }

    pub fn is_empty(&self) -> bool {
        self.years.is_empty()
    }

    /// The rows, sorted by `patient_id` then `year`, with the cap dates of the closing counter
    /// of the same (patient, year) when there is one. Counters of years without acts give no
    /// row (they are in `counters.*`).
    pub fn finish(self, closing: &[YearCounter]) -> Vec<PatientYear> {
        let counters: HashMap<(&str, i32), &YearCounter> = closing
            .iter()
            .map(|c| ((c.patient_id.as_str(), c.year), c))
            .collect();
        self.years
            .into_iter()
            .map(|((patient_id, year), t)| {
                let counter = counters.get(&(patient_id.as_str(), year));
                PatientYear {
                    year,
                    acts: t.acts,
                    billed: t.billed,
                    base: t.base,
                    amo_paid: t.amo_paid,
                    rac: t.rac,
                    pf: t.pf,
                    franchise: t.franchise,
                    pal: t.pal,
                    flat_fee: t.flat_fee,
                    overbilling: t.overbilling,
                    pf_cap_reached_on: counter.and_then(|c| c.pf_cap_reached_on),
                    franchise_cap_reached_on: counter.and_then(|c| c.franchise_cap_reached_on),
                    patient_id,
                }
            })
            .collect()
    }
}

/// The `patients.*` rows of `outcomes` (one or many patients), sorted by patient then year,
/// with the cap dates joined from the `closing` counters.
pub fn patient_years(outcomes: &[Outcome], closing: &[YearCounter]) -> Vec<PatientYear> {
    let mut totals = PatientTotals::new();
    totals.add(outcomes);
    totals.finish(closing)
}

/// One row of `summary.*`: the acts of one month (of `care_date`), category and situation.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// `YYYY-MM` of `care_date`.
    pub month: String,
    pub category: Category,
    pub situation: Situation,
    pub acts: u64,
    pub billed: Decimal,
    pub base: Decimal,
    pub amo_paid: Decimal,
    pub rac: Decimal,
    pub pf: Decimal,
    pub franchise: Decimal,
    pub pal: Decimal,
    pub flat_fee: Decimal,
    pub overbilling: Decimal,
}

/// (year, month, category, situation): sorts like (`"YYYY-MM"`, category, situation) for
/// four-digit years, with enums in declaration order.
type SummaryKey = (i32, u32, Category, Situation);

/// Accumulates the summary; feed it outcome slices in any order and partition, merge the
/// partial ones, then take the [`Summary::rows`]. It also yields the grand [`Totals`].
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Hashed while adding (one lookup per act), sorted in [`Summary::rows`].
    cells: FxHashMap<SummaryKey, Sums>,
}

impl Summary {
    pub fn new() -> Summary {
        Summary::default()
    }

    /// Adds acts.
    pub fn add(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            self.add_one(o, &act_cents(o));
        }
    }

    fn add_one(&mut self, o: &Outcome, cents: &ActCents) {
        let key = (
            o.care_date.year(),
            o.care_date.month(),
            o.category,
            o.situation,
        );
        self.cells.entry(key).or_default().add(o, cents);
    }

    /// Adds another partial summary.
    pub fn merge(&mut self, other: Summary) {
        if self.cells.is_empty() {
            self.cells = other.cells;
            return;
        }
        for (key, sums) in other.cells {
            self.cells.entry(key).or_default().merge(&sums);
        }
    }

    /// The totals over every act added (for the manifest).
    pub fn totals(&self) -> Totals {
        let mut all = Sums::default();
        for sums in self.cells.values() {
            all.merge(sums);
        }
        all.totals()
    }

    /// Number of rows so far.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The rows, sorted by month, category, situation (enums in declaration order).
    pub fn rows(self) -> Vec<SummaryRow> {
        let mut cells: Vec<(SummaryKey, Totals)> = self
            .cells
            .into_iter()
            .map(|(key, sums)| (key, sums.totals()))
            .collect();
        cells.sort_unstable_by_key(|(key, _)| *key);
        cells
            .into_iter()
            .map(|((year, month, category, situation), t)| SummaryRow {
                month: format!("{year:04}-{month:02}"),
                category,
                situation,
                acts: t.acts,
                billed: t.billed,
                base: t.base,
                amo_paid: t.amo_paid,
                rac: t.rac,
                pf: t.pf,
                franchise: t.franchise,
                pal: t.pal,
                flat_fee: t.flat_fee,
                overbilling: t.overbilling,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A consultation at 30 €, billed `billed`, 70 % minus 2 € of PF: the usual line.
    fn act(
        id: &str,
        patient: &str,
        day: NaiveDate,
        category: Category,
        situation: Situation,
        billed: Decimal,
    ) -> Outcome {
        let base = dec!(30.00);
        let overbilling = (billed - base).max(Decimal::ZERO);
        let amo_gross = dec!(21.00);
        let pf = dec!(2.00);
        let amo_paid = amo_gross - pf;
        Outcome {
            act_id: id.into(),
            patient_id: patient.into(),
            care_date: day,
            category,
            quantity: 1,
            base,
            billed,
            overbilling,
            situation,
            rate: dec!(70.00),
            amo_gross,
            copayment: base - amo_gross,
            majoration: Decimal::ZERO,
            pal: Decimal::ZERO,
            pf,
            franchise: Decimal::ZERO,
            flat_fee: Decimal::ZERO,
            amo_paid,
            rac: billed - amo_paid,
            rules: vec!["pf"].into(),
            flags: vec![],
            recorded_amo: None,
            carried: Default::default(),
        }
    }

    fn sample() -> Vec<Outcome> {
        use Category::*;
        use Situation::*;
        let mut v = vec![
            act(
                "a1",
                "p1",
                date(2024, 1, 5),
                Consultation,
                Ordinary,
                dec!(30.00),
            ),
            act(
                "a2",
                "p1",
                date(2024, 1, 20),
                Consultation,
                Ordinary,
                dec!(50.00),
            ),
            act(
                "a3",
                "p1",
                date(2025, 1, 2),
                Consultation,
                Ordinary,
                dec!(30.00),
            ),
            act("a4", "p2", date(2024, 1, 7), Consultation, Ald, dec!(30.00)),
            act("a5", "p2", date(2024, 2, 1), Biology, Ordinary, dec!(30.00)),
        ];
        // a franchise-bearing drug line and an ALD 100 % line, for variety
        v[4].franchise = dec!(0.50);
        v[4].amo_paid -= dec!(0.50);
        v[4].rac += dec!(0.50);
        v[3].rate = dec!(100.00);
        v[3].amo_gross = dec!(30.00);
        v[3].copayment = dec!(0.00);
        v[3].amo_paid = dec!(28.00);
        v[3].rac = dec!(2.00);
        v[3].recorded_amo = Some(dec!(27.00));
        v
    }

    #[test]
    fn totals_are_the_sums_of_the_lines() {
        let outcomes = sample();
        let t = Totals::of(&outcomes);
        assert_eq!(t.acts, 5);
        assert_eq!(t.billed, dec!(170.00));
        assert_eq!(t.base, dec!(150.00));
        assert_eq!(t.overbilling, dec!(20.00));
        assert_eq!(t.amo_gross, dec!(114.00));
        assert_eq!(t.pf, dec!(10.00));
        assert_eq!(t.franchise, dec!(0.50));
        // 3 × 19.00 + 28.00 + 18.50
        assert_eq!(t.amo_paid, dec!(103.50));
        assert_eq!(t.rac, dec!(66.50));
        assert_eq!(t.amo_paid + t.rac, t.billed);
        assert_eq!(t.recorded_amo, dec!(27.00));
        assert_eq!(t.recorded_acts, 1);
        let json = t.to_json();
        assert_eq!(json["acts"], 5);
        assert_eq!(json["amo_paid"], "103.50");
        assert_eq!(json["majoration"], "0.00");
        assert_eq!(money_text(dec!(12.5)), "12.50");
        assert_eq!(money_text(dec!(-1)), "-1.00");
    }

    #[test]
    fn sums_in_cents_equal_exact_decimal_sums_whatever_the_scales() {
        let mut outcomes = sample();
        // Amounts written with 0, 1 and 2 decimals, negative ones, and one act with a finer
        // amount (summed exactly beside the cents).
        outcomes[0].majoration = dec!(3);
        outcomes[1].majoration = dec!(-1.5);
        outcomes[2].recorded_amo = Some(dec!(0.10));
        outcomes[4].pal = dec!(0.125);
        let exact = Totals::of(&outcomes);
        assert_eq!(exact.majoration, dec!(1.5));
        assert_eq!(exact.pal, dec!(0.125));
        let mut summary = Summary::new();
        summary.add(&outcomes[..2]);
        let mut rest = Summary::new();
        rest.add(&outcomes[2..]);
        summary.merge(rest);
        assert_eq!(summary.totals(), exact);
        let years = patient_years(&outcomes, &[]);
        let pal: Decimal = years.iter().map(|y| y.pal).sum();
        assert_eq!(pal, dec!(0.125));
        let billed: Decimal = years.iter().map(|y| y.billed).sum();
        assert_eq!(billed, exact.billed);
        assert_eq!(to_cents(dec!(12.5)), Some(1250));
        assert_eq!(to_cents(dec!(-7)), Some(-700));
        assert_eq!(to_cents(dec!(0.001)), None);
    }

    #[test]
    fn adding_to_both_at_once_equals_adding_to_each() {
        // Two patients, several years, and an act with a finer amount (no cents for it).
        let mut outcomes = sample();
        outcomes[1].majoration = dec!(-1.5);
        outcomes[4].pal = dec!(0.125);
        let (mut patients, mut summary) = (PatientTotals::new(), Summary::new());
        patients.add(&outcomes);
        summary.add(&outcomes);
        let (mut both_patients, mut both_summary) = (PatientTotals::new(), Summary::new());
        add_to_both(&mut both_patients, &mut both_summary, &outcomes[..3]);
        add_to_both(&mut both_patients, &mut both_summary, &outcomes[3..]);
        assert_eq!(both_summary.totals(), Totals::of(&outcomes));
        assert_eq!(both_summary.rows(), summary.rows());
        let years = both_patients.finish(&[]);
        assert_eq!(years, patients.finish(&[]));
        let pal: Decimal = years.iter().map(|y| y.pal).sum();
        assert_eq!(pal, dec!(0.125));
    }

    #[test]
    fn each_amount_column_sums_into_its_own_total() {
        // Every amount column a different value (not a consistent act: only the sums
        // matter), so that a column summed into another's cents would show.
        let mut o = sample().remove(0);
        let columns: [&mut Decimal; 12] = [
            &mut o.base,
            &mut o.billed,
            &mut o.overbilling,
            &mut o.amo_gross,
            &mut o.copayment,
            &mut o.majoration,
            &mut o.pal,
            &mut o.pf,
            &mut o.franchise,
            &mut o.flat_fee,
            &mut o.amo_paid,
            &mut o.rac,
        ];
        for (i, amount) in columns.into_iter().enumerate() {
            *amount = Decimal::new(101 * (i as i64 + 1), 2);
        }
        o.recorded_amo = Some(dec!(13.13));
        let outcomes = vec![o.clone(), o];
        let mut summary = Summary::new();
        summary.add(&outcomes);
        let totals = summary.totals();
        assert_eq!(totals, Totals::of(&outcomes));
        assert_eq!(
            (
                totals.base,
                totals.overbilling,
                totals.majoration,
                totals.flat_fee
            ),
            (dec!(2.02), dec!(6.06), dec!(12.12), dec!(20.20))
        );
        assert_eq!(
            (totals.rac, totals.recorded_amo),
            (dec!(24.24), dec!(26.26))
        );
        let year = &patient_years(&outcomes, &[])[0];
        assert_eq!(
            (year.billed, year.base, year.amo_paid, year.rac, year.pf),
            (
                dec!(4.04),
                dec!(2.02),
                dec!(22.22),
                dec!(24.24),
                dec!(16.16)
            )
        );
        assert_eq!(
            (year.franchise, year.pal, year.flat_fee, year.overbilling),
            (dec!(18.18), dec!(14.14), dec!(20.20), dec!(6.06))
        );
    }

    #[test]
    fn patient_years_group_by_patient_and_year_with_cap_dates() {
        let outcomes = sample();
        let closing = vec![
            YearCounter {
                patient_id: "p1".into(),
                year: 2024,
                pf_used: dec!(50),
                franchise_used: dec!(0),
                charged_stays: vec![],
                pf_cap_reached_on: Some(date(2024, 1, 20)),
                franchise_cap_reached_on: None,
                stay_starts: vec![],
                open_stays: vec![],
            },
            YearCounter {
                patient_id: "p9".into(),
                year: 2024,
                ..YearCounter::default()
            },
        ];
        let rows = patient_years(&outcomes, &closing);
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.patient_id.as_str(), r.year))
            .collect();
        assert_eq!(keys, [("p1", 2024), ("p1", 2025), ("p2", 2024)]);

        let p1 = &rows[0];
        assert_eq!(p1.acts, 2);
        assert_eq!(p1.billed, dec!(80.00));
        assert_eq!(p1.base, dec!(60.00));
        assert_eq!(p1.overbilling, dec!(20.00));
        assert_eq!(p1.amo_paid, dec!(38.00));
        assert_eq!(p1.rac, dec!(42.00));
        assert_eq!(p1.pf, dec!(4.00));
        assert_eq!(p1.pf_cap_reached_on, Some(date(2024, 1, 20)));
        assert_eq!(p1.franchise_cap_reached_on, None);
        assert_eq!(rows[1].acts, 1);
        assert_eq!(rows[1].pf_cap_reached_on, None);
        let p2 = &rows[2];
        assert_eq!(p2.acts, 2);
        assert_eq!(p2.amo_paid, dec!(46.50));
        assert_eq!(p2.franchise, dec!(0.50));
        assert_eq!(p2.rac, dec!(13.50));

        // totals equal the sums of the lines
        let all = Totals::of(&outcomes);
        let sum = |f: fn(&PatientYear) -> Decimal| rows.iter().map(f).sum::<Decimal>();
        assert_eq!(rows.iter().map(|r| r.acts).sum::<u64>(), all.acts);
        assert_eq!(sum(|r| r.billed), all.billed);
        assert_eq!(sum(|r| r.amo_paid), all.amo_paid);
        assert_eq!(sum(|r| r.rac), all.rac);
        assert_eq!(sum(|r| r.pf), all.pf);
        assert_eq!(sum(|r| r.franchise), all.franchise);
    }

    #[test]
    fn patient_totals_do_not_depend_on_order_or_partition() {
        let outcomes = sample();
        let whole = patient_years(&outcomes, &[]);

        // unsorted input, interleaved patients, split in three partitions merged backwards
        let mut shuffled = outcomes.clone();
        shuffled.swap(0, 4);
        shuffled.swap(1, 3);
        let mut parts: Vec<PatientTotals> = shuffled
            .chunks(2)
            .map(|chunk| {
                let mut t = PatientTotals::new();
                t.add(chunk);
                t
            })
            .collect();
        let mut merged = parts.pop().unwrap();
        while let Some(part) = parts.pop() {
            merged.merge(part);
        }
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.finish(&[]), whole);
    }

    #[test]
    fn summary_rows_are_sorted_and_sum_to_the_totals() {
        let outcomes = sample();
        let mut summary = Summary::new();
        summary.add(&outcomes);
        assert_eq!(summary.totals(), Totals::of(&outcomes));
        let rows = summary.rows();
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.month.as_str(), r.category, r.situation))
            .collect();
        assert_eq!(
            keys,
            [
                ("2024-01", Category::Consultation, Situation::Ald),
                ("2024-01", Category::Consultation, Situation::Ordinary),
                ("2024-02", Category::Biology, Situation::Ordinary),
                ("2025-01", Category::Consultation, Situation::Ordinary),
            ]
        );
        let jan = &rows[1];
        assert_eq!(jan.acts, 2);
        assert_eq!(jan.billed, dec!(80.00));
        assert_eq!(jan.base, dec!(60.00));
        assert_eq!(jan.overbilling, dec!(20.00));
        assert_eq!(jan.amo_paid, dec!(38.00));
        assert_eq!(jan.rac, dec!(42.00));
        assert_eq!(jan.pf, dec!(4.00));
        assert_eq!(rows[0].amo_paid, dec!(28.00));
        assert_eq!(rows[2].franchise, dec!(0.50));

        let all = Totals::of(&outcomes);
        assert_eq!(rows.iter().map(|r| r.acts).sum::<u64>(), all.acts);
        assert_eq!(rows.iter().map(|r| r.rac).sum::<Decimal>(), all.rac);
        assert_eq!(rows.iter().map(|r| r.pal).sum::<Decimal>(), all.pal);
        assert_eq!(
            rows.iter().map(|r| r.flat_fee).sum::<Decimal>(),
            all.flat_fee
        );
    }

    #[test]
    fn summary_merge_equals_single_pass() {
        let outcomes = sample();
        let mut whole = Summary::new();
        whole.add(&outcomes);

        let mut left = Summary::new();
        left.add(&outcomes[3..]);
        let mut right = Summary::new();
        right.add(&outcomes[..3]);
        let mut empty = Summary::new();
        empty.merge(left);
        empty.merge(right);
        assert_eq!(empty.len(), 4);
        assert_eq!(empty.rows(), whole.rows());
        assert!(Summary::new().rows().is_empty());
    }
}
