//! One test per rule and situation, with amounts checked by hand (RULES §6 examples first).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::model::{InsuranceNature, RightKind};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn adult() -> Beneficiary {
    Beneficiary {
        patient_id: "p1".into(),
        birth_date: d("1980-06-15"),
        regime: Regime::General,
    }
}

fn act(id: &str, date: &str, category: Category, tariff: Decimal) -> Act {
    Act::new(id, "p1", d(date), category, tariff)
}

fn right(kind: RightKind, start: &str) -> RightPeriod {
    RightPeriod {
        patient_id: "p1".into(),
        right: kind,
        start_date: d(start),
        end_date: None,
        reference: None,
    }
}

struct Case {
    beneficiary: Beneficiary,
    rights: Vec<RightPeriod>,
    rights_known: bool,
    opening: Vec<YearCounter>,
}

impl Case {
    fn new() -> Case {
        Case {
            beneficiary: adult(),
            rights: vec![],
            rights_known: false,
            opening: vec![],
        }
    }
    fn rights(mut self, rights: Vec<RightPeriod>) -> Case {
        self.rights = rights;
        self.rights_known = true;
        self
    }
    fn born(mut self, date: &str) -> Case {
        self.beneficiary.birth_date = d(date);
        self
    }
    fn alsace(mut self) -> Case {
        self.beneficiary.regime = Regime::AlsaceMoselle;
        self
    }
    fn opening(mut self, year: i32, pf: Decimal, franchise: Decimal, stays: &[&str]) -> Case {
        self.opening.push(YearCounter {
            patient_id: "p1".into(),
            year,
            pf_used: pf,
            franchise_used: franchise,
            charged_stays: stays.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        self
    }
    fn result(&self, acts: &[Act]) -> PatientResult {
        let input = PatientInput {
            beneficiary: &self.beneficiary,
            acts,
            rights: &self.rights,
            rights_known: self.rights_known,
            opening: &self.opening,
        };
        let r = compute_patient(&RuleBook::builtin(), &input);
        for o in &r.outcomes {
            assert_eq!(o.amo_paid + o.rac, o.billed, "invariant on {}", o.act_id);
            assert_eq!(o.copayment, o.base - o.amo_gross);
        }
        r
    }
    fn run(&self, acts: &[Act]) -> Vec<Outcome> {
        let r = self.result(acts);
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        r.outcomes
    }
    fn one(&self, a: Act) -> Outcome {
        self.run(&[a]).remove(0)
    }
}

/// (amo_gross, pf, franchise, pal, flat_fee, amo_paid, rac)
fn amounts(o: &Outcome) -> [Decimal; 7] {
    [
        o.amo_gross,
        o.pf,
        o.franchise,
        o.pal,
        o.flat_fee,
        o.amo_paid,
        o.rac,
    ]
}

fn z() -> Decimal {
    Decimal::ZERO
}

// ---------------------------------------------------------------- RULES §6 worked examples

#[test]
fn gp_consultation_2024_with_pf_1() {
    let o = Case::new().one(act("a", "2024-03-01", Category::Consultation, dec!(25)));
    assert_eq!(o.rate, dec!(70));
    assert_eq!(
        amounts(&o),
        [dec!(17.50), dec!(1), z(), z(), z(), dec!(16.50), dec!(8.50)]
    );
    assert_eq!(o.situation, Situation::Ordinary);
    assert_eq!(o.rules.as_slice(), ["rate.consultation", "pf.amount"]);
}

#[test]
fn specialist_sector_2_overbilling() {
    let mut a = act("a", "2024-03-01", Category::Consultation, dec!(23));
    a.billed = Some(dec!(80));
    let o = Case::new().one(a);
    assert_eq!(o.overbilling, dec!(57));
    assert_eq!(o.amo_paid, dec!(15.10));
    assert_eq!(o.rac, dec!(64.90));
}

#[test]
fn out_of_pathway_2024_pf_1() {
    let mut a = act("a", "2024-03-01", Category::Consultation, dec!(25));
    a.pathway = Pathway::OutOfPathway;
    let o = Case::new().one(a);
    assert_eq!(o.rate, dec!(30));
    assert_eq!(o.majoration, dec!(10.00));
    assert_eq!(
        amounts(&o),
        [dec!(7.50), dec!(1), z(), z(), z(), dec!(6.50), dec!(18.50)]
    );
}

#[test]
fn optam_specialist() {
    let mut a = act("a", "2024-03-01", Category::Consultation, dec!(30));
    a.billed = Some(dec!(45));
    assert_eq!(Case::new().one(a).amo_paid, dec!(20.00));
}

#[test]
fn out_of_pathway_majoration_is_capped_at_40_percent_of_g() {
    let mut a = act("a", "2024-09-10", Category::Consultation, dec!(26.50));
    a.pathway = Pathway::OutOfPathway;
    let mut b = act("b", "2024-09-11", Category::MedicalAct, dec!(44));
    b.pathway = Pathway::OutOfPathway;
    let out = Case::new().run(&[a, b]);
    assert_eq!(
        (out[0].amo_gross, out[0].majoration),
        (dec!(7.95), dec!(10.60))
    );
    assert_eq!(
        (out[1].amo_gross, out[1].majoration),
        (dec!(20.20), dec!(10.60))
    );
    assert_eq!(out[1].pf, dec!(2));
}

/// A heavy act out of the pathway is at 100 % (RULES §4): no majoration, and its rule is not
/// named in `rules` (it was, with a majoration of 0).
#[test]
fn a_heavy_act_out_of_pathway_names_no_majoration() {
    let mut a = act("a", "2025-03-10", Category::MedicalAct, dec!(150));
    a.pathway = Pathway::OutOfPathway;
    let o = Case::new().one(a);
    assert_eq!((o.rate, o.majoration, o.pal), (dec!(100), z(), dec!(24)));
    assert!(!o.rules.contains(&rule_ids::MAJORATION), "{:?}", o.rules);
    assert!(o.rules.contains(&rule_ids::PAL_HEAVY_GROUP));
    // Exonerated (maternity): already at 100 %, no fee; the group changes nothing, and is
    // not named (it was).
    let mut m = act("m", "2025-03-10", Category::MedicalAct, dec!(150));
    m.insurance_nature = InsuranceNature::Maternity;
    let o = Case::new().one(m);
    assert_eq!((o.rate, o.pal, o.amo_gross), (dec!(100), z(), dec!(150)));
    assert_eq!(o.rules.as_slice(), ["rate.exonerated"]);
}

#[test]
fn photocoagulation_heavy_act_2025() {
    let mut a = act("a", "2025-04-02", Category::MedicalAct, dec!(125.40));
    a.practitioner_id = Some("oph".into());
    let o = Case::new().one(a);
    assert_eq!(o.rate, dec!(100));
    assert_eq!(
        amounts(&o),
        [
            dec!(125.40),
            dec!(2),
            z(),
            dec!(24),
            z(),
            dec!(99.40),
            dec!(26.00)
        ]
    );
    assert_eq!(o.copayment, z());
}

// ---------------------------------------------------------------- dated changes

#[test]
fn pf_goes_from_1_to_2_on_2024_05_15() {
    let out = Case::new().run(&[
        act("a", "2024-05-14", Category::Consultation, dec!(26.50)),
        act("b", "2024-05-15", Category::Consultation, dec!(26.50)),
    ]);
    assert_eq!((out[0].pf, out[1].pf), (dec!(1), dec!(2)));
}

#[test]
fn franchises_double_on_2024_03_31() {
    let mut out = vec![];
    for (id, date) in [("a", "2024-03-30"), ("b", "2024-03-31")] {
        let mut drug = act(id, date, Category::Drug65, dec!(10));
        drug.quantity = 2;
        let mut trip = act(&format!("{id}t"), date, Category::Transport, dec!(50));
        trip.quantity = 1;
        out.extend(Case::new().run(&[drug, trip]));
    }
    assert_eq!(out[0].amo_gross, dec!(13.00));
    assert_eq!(out[0].franchise, dec!(1.00));
    assert_eq!(out[1].franchise, dec!(2.00));
    assert_eq!(out[2].franchise, dec!(2.00));
    assert_eq!(out[3].franchise, dec!(4.00));
}

#[test]
fn dental_rate_drops_to_60_on_2023_10_15() {
    let out = Case::new().run(&[
        act("a", "2023-10-14", Category::Dental, dec!(23)),
        act("b", "2023-10-15", Category::Dental, dec!(23)),
    ]);
    assert_eq!((out[0].rate, out[0].amo_gross), (dec!(70), dec!(16.10)));
    assert_eq!((out[1].rate, out[1].amo_gross), (dec!(60), dec!(13.80)));
}

// ---------------------------------------------------------------- rounding (RULES §5)

#[test]
fn rounding_is_half_away_from_zero_at_the_cent() {
    let o = Case::new().one(act("a", "2025-02-01", Category::MedicalAct, dec!(80.15)));
    assert_eq!(o.amo_gross, dec!(56.11));
}

#[test]
fn rate_applies_per_unit_then_times_quantity() {
    let mut a = act("a", "2025-02-01", Category::Drug65, dec!(0.61));
    a.quantity = 52;
    let o = Case::new().born("2015-01-01").one(a);
    assert_eq!(o.amo_gross, dec!(20.80));
    assert_eq!(o.franchise, z(), "minors pay no franchise");
}

#[test]
fn billed_below_tariff_is_the_base() {
    let mut a = act("a", "2025-02-01", Category::Drug65, dec!(3.33));
    a.quantity = 3;
    a.billed = Some(dec!(9.00));
    let o = Case::new().born("2015-01-01").one(a);
    assert_eq!(o.base, dec!(9.00));
    assert_eq!(o.amo_gross, dec!(5.85));
    assert!(o.rules.contains(&rule_ids::BASE_LIMITED_BY_BILLED));
}

// ---------------------------------------------------------------- PF

#[test]
fn pf_at_most_four_units_per_practitioner_and_day() {
    let mut acts = vec![];
    for i in 0..5 {
        let mut a = act(&format!("a{i}"), "2025-03-03", Category::Biology, dec!(5));
        a.practitioner_id = Some("lab".into());
        acts.push(a);
    }
    let mut other = act("b", "2025-03-03", Category::Consultation, dec!(30));
    other.practitioner_id = Some("gp".into());
    acts.push(other);
    let out = Case::new().run(&acts);
    let pfs: Vec<Decimal> = out.iter().map(|o| o.pf).collect();
    assert_eq!(
        pfs,
        vec![dec!(2), dec!(2), dec!(2), dec!(2), z(), dec!(2)],
        "the fifth lab act bears none; another practitioner counts apart"
    );
    assert!(out[4].rules.contains(&"pf.daily_max_count"));
}

#[test]
fn pf_quantity_counts_units_and_a_missing_practitioner_groups_by_line() {
    let mut a = act("a", "2025-03-03", Category::Biology, dec!(5));
    a.quantity = 6;
    let b = act("b", "2025-03-03", Category::Biology, dec!(5));
    let out = Case::new().run(&[a, b]);
    assert_eq!((out[0].pf, out[1].pf), (dec!(8), dec!(2)));
}

#[test]
fn pf_annual_cap_allows_a_partial_last_amount() {
    let case = Case::new().opening(2025, dec!(49), z(), &[]);
    let r = case.result(&[
        act("a", "2025-06-01", Category::Consultation, dec!(30)),
        act("b", "2025-06-02", Category::Consultation, dec!(30)),
        act("c", "2026-01-05", Category::Consultation, dec!(30)),
    ]);
    let pfs: Vec<Decimal> = r.outcomes.iter().map(|o| o.pf).collect();
    assert_eq!(pfs, vec![dec!(1), z(), dec!(2)], "new year, new cap");
    assert!(r.outcomes[0].rules.contains(&"pf.annual_cap"));
    assert_eq!(r.closing[0].pf_used, dec!(50));
    assert_eq!(r.closing[0].pf_cap_reached_on, Some(d("2025-06-01")));
    assert_eq!(r.closing[1].year, 2026);
    assert_eq!(r.closing[1].pf_used, dec!(2));
}

#[test]
fn no_pf_on_inpatient_lines_nor_for_minors() {
    let mut a = act("a", "2025-03-01", Category::Consultation, dec!(30));
    a.setting = Setting::Inpatient;
    assert_eq!(Case::new().one(a).pf, z());
    // 18 on the care date but 17 on 1 January (RULES §8): still a minor.
    let b = act("b", "2025-07-01", Category::Consultation, dec!(30));
    assert_eq!(Case::new().born("2007-06-01").one(b.clone()).pf, z());
    assert_eq!(Case::new().born("2007-01-01").one(b).pf, dec!(2));
}

// ---------------------------------------------------------------- franchises

#[test]
fn paramedical_and_transport_daily_caps() {
    let mut acts = vec![];
    for i in 0..5 {
        acts.push(act(
            &format!("n{i}"),
            "2025-03-03",
            Category::Paramedical,
            dec!(10),
        ));
    }
    for i in 0..3 {
        acts.push(act(
            &format!("t{i}"),
            "2025-03-03",
            Category::Transport,
            dec!(40),
        ));
    }
    acts.push(act("x", "2025-03-04", Category::Paramedical, dec!(10)));
    let out = Case::new().run(&acts);
    let f: Vec<Decimal> = out.iter().map(|o| o.franchise).collect();
    assert_eq!(
        f,
        vec![
            dec!(1),
            dec!(1),
            dec!(1),
            dec!(1),
            z(),
            dec!(4),
            dec!(4),
            z(),
            dec!(1)
        ]
    );
    assert!(out[4].rules.contains(&"franchise.paramedical_daily_cap"));
}

#[test]
fn franchise_annual_cap_partial_and_line_cap() {
    let case = Case::new().opening(2025, z(), dec!(49.50), &[]);
    let mut a = act("a", "2025-05-01", Category::Drug65, dec!(10));
    a.quantity = 2;
    let r = case.result(&[a]);
    assert_eq!(r.outcomes[0].franchise, dec!(0.50));
    assert_eq!(r.closing[0].franchise_used, dec!(50));
    assert_eq!(r.closing[0].franchise_cap_reached_on, Some(d("2025-05-01")));
    // RULES §8 (CSS D160-9): never more than the line's own AMO amount.
    let o = Case::new().one(act("b", "2025-05-01", Category::Drug15, dec!(2)));
    assert_eq!((o.amo_gross, o.franchise), (dec!(0.30), dec!(0.30)));
    assert_eq!(o.amo_paid, z());
    assert!(o.rules.contains(&rule_ids::FRANCHISE_LINE_CAP));
    // 52 boxes: the annual cap's 50 € room lowers the 52 €, the line's own 20.80 € ends it:
    // only the line cap is named.
    let mut many = act("c", "2025-05-01", Category::Drug65, dec!(0.61));
    many.quantity = 52;
    let o = Case::new().one(many);
    assert_eq!((o.amo_gross, o.franchise), (dec!(20.80), dec!(20.80)));
    assert_eq!(
        o.rules.as_slice(),
        [
            "rate.drug_65",
            "franchise.drug_box",
            rule_ids::FRANCHISE_LINE_CAP
        ]
    );
}

#[test]
fn deductions_larger_than_the_payment_give_a_negative_amo_paid() {
    let o = Case::new().one(act("a", "2025-05-01", Category::Biology, dec!(1.00)));
    assert_eq!(
        (o.amo_gross, o.pf, o.amo_paid),
        (dec!(0.60), dec!(2), dec!(-1.40))
    );
    assert_eq!(o.rac, dec!(2.40));
    assert_eq!(o.flags, vec![flags::DEDUCTION_EXCEEDS_PAYMENT]);
}

// ---------------------------------------------------------------- situations

#[test]
fn ald_with_rights_only_for_related_acts() {
    let case = Case::new().rights(vec![right(RightKind::Ald, "2020-01-01")]);
    let mut related = act("a", "2025-01-10", Category::Consultation, dec!(30));
    related.ald_related = true;
    related.exo_code = Some("4".into());
    let unrelated = act("b", "2025-01-11", Category::Consultation, dec!(30));
    let out = case.run(&[related, unrelated]);
    assert_eq!(out[0].situation, Situation::Ald);
    assert_eq!(
        amounts(&out[0]),
        [dec!(30), dec!(2), z(), z(), z(), dec!(28), dec!(2)]
    );
    assert!(out[0].flags.is_empty());
    assert_eq!(out[1].situation, Situation::Ordinary);
    assert_eq!(out[1].amo_gross, dec!(21));
}

#[test]
fn declarations_are_checked_against_rights() {
    let case = Case::new().rights(vec![right(RightKind::Ald, "2020-01-01")]);
    let mut undeclared = act("a", "2025-01-10", Category::Consultation, dec!(30));
    undeclared.ald_related = true;
    let o = case.one(undeclared);
    assert_eq!(o.situation, Situation::Ald);
    assert_eq!(o.flags, vec![flags::RIGHT_NOT_DECLARED]);

    let mut no_right = act("b", "2025-01-10", Category::Consultation, dec!(30));
    no_right.exo_code = Some("5".into());
    let o = Case::new().rights(vec![]).one(no_right.clone());
    assert_eq!(o.situation, Situation::Ordinary);
    assert_eq!(o.flags, vec![flags::EXO_WITHOUT_RIGHT]);
    // Without a rights file, the declaration decides.
    let o = Case::new().one(no_right);
    assert_eq!((o.situation, o.rate), (Situation::Invalidity, dec!(100)));
}

#[test]
fn css_and_ame_pay_everything_and_forbid_overbilling() {
    for kind in [RightKind::Css, RightKind::Ame] {
        let case = Case::new().rights(vec![right(kind, "2024-01-01")]);
        let mut a = act("a", "2025-01-10", Category::Consultation, dec!(30));
        a.billed = Some(dec!(50));
        let o = case.one(a);
        assert_eq!(o.rate, dec!(100));
        assert_eq!(
            amounts(&o),
            [dec!(30), z(), z(), z(), z(), dec!(30), dec!(20)]
        );
        assert_eq!(o.flags, vec![flags::OVERBILLING_FORBIDDEN]);
        let mut drug = act("d", "2025-01-10", Category::Drug15, dec!(10));
        drug.quantity = 3;
        let o = case.one(drug);
        assert_eq!(
            (o.amo_gross, o.franchise),
            (dec!(30), z()),
            "every drug rate"
        );
    }
}

#[test]
fn precedence_nature_before_rights() {
    let case = Case::new().rights(vec![
        right(RightKind::Css, "2024-01-01"),
        right(RightKind::Maternity, "2025-01-01"),
    ]);
    let mut smg = act("a", "2025-02-01", Category::Consultation, dec!(30));
    smg.insurance_nature = InsuranceNature::Smg;
    let mut atmp = act("b", "2025-02-01", Category::Drug65, dec!(10));
    atmp.insurance_nature = InsuranceNature::AtMp;
    let plain = act("c", "2025-02-01", Category::Consultation, dec!(30));
    let before = act("e", "2024-12-31", Category::Consultation, dec!(30));
    let out = case.run(&[smg, atmp, plain, before]);
    let s: Vec<Situation> = out.iter().map(|o| o.situation).collect();
    assert_eq!(
        s,
        vec![
            Situation::Css,
            Situation::Smg,
            Situation::AtMp,
            Situation::Maternity
        ]
    );
    // AT/MP: 100 % but the franchise stays (RULES §3, verify).
    assert_eq!((out[2].amo_gross, out[2].franchise), (dec!(10), dec!(1)));
    assert_eq!(out[1].pf, z());
    assert_eq!(out[3].pf, z());
}

#[test]
fn pension_rights_keep_the_low_drug_rates_and_military_pays_no_daily_fee() {
    let inval = Case::new().rights(vec![right(RightKind::Invalidity, "2020-01-01")]);
    let military = Case::new().rights(vec![right(RightKind::MilitaryPension, "2020-01-01")]);
    let drug = act("a", "2025-02-01", Category::Drug30, dec!(10));
    let o = inval.one(drug.clone());
    assert_eq!(
        (o.situation, o.rate, o.amo_gross),
        (Situation::Invalidity, dec!(30), dec!(3))
    );
    assert_eq!(o.flags, vec![flags::RIGHT_NOT_DECLARED]);
    let mut fj = act("f", "2025-02-01", Category::DailyFee, dec!(20));
    fj.quantity = 2;
    assert_eq!(inval.one(fj.clone()).amo_paid, z());
    assert_eq!(military.one(fj).amo_paid, dec!(40));
}

#[test]
fn exo3_and_exo7_declared_without_rights_file() {
    let mut a = act("a", "2025-02-01", Category::Consultation, dec!(30));
    a.exo_code = Some("3".into());
    let o = Case::new().one(a);
    assert_eq!(
        (o.situation, o.amo_gross, o.pf),
        (Situation::Exo3, dec!(30), dec!(2))
    );
    let mut e = act("e", "2025-02-01", Category::EmergencyVisit, dec!(25));
    e.exo_code = Some("7".into());
    let o = Case::new().one(e.clone());
    assert_eq!((o.situation, o.flat_fee), (Situation::Exo7, dec!(19.61)));
    e.exo_code = Some("3".into());
    assert_eq!(Case::new().one(e).flat_fee, z());
}

#[test]
fn newborn_hospital_stay_is_free() {
    let mut stay = act("a", "2025-03-02", Category::HospitalStay, dec!(900));
    stay.stay_id = Some("s1".into());
    stay.setting = Setting::Inpatient;
    let o = Case::new().born("2025-03-01").one(stay);
    assert_eq!(o.situation, Situation::Newborn);
    assert_eq!((o.amo_paid, o.pal, o.rac), (dec!(900), z(), z()));
    // An ambulatory consultation is not a newborn situation.
    let c = act("c", "2025-03-05", Category::Consultation, dec!(30));
    assert_eq!(
        Case::new().born("2025-03-01").one(c).situation,
        Situation::Ordinary
    );
}

// ---------------------------------------------------------------- Alsace-Moselle

#[test]
fn alsace_moselle_rates_and_flat_fee_paid() {
    let case = Case::new().alsace();
    let out = case.run(&[
        act("a", "2025-02-01", Category::Consultation, dec!(30)),
        act("b", "2025-02-01", Category::Drug15, dec!(10)),
        act("c", "2025-02-01", Category::Drug30, dec!(10)),
    ]);
    assert_eq!(out[0].amo_gross, dec!(27));
    assert_eq!(out[0].pf, dec!(2));
    assert_eq!(out[1].amo_gross, dec!(1.50));
    assert_eq!(out[2].amo_gross, dec!(8));
    let mut heavy = act("h", "2025-02-02", Category::MedicalAct, dec!(150));
    heavy.practitioner_id = Some("x".into());
    let o = case.one(heavy);
    assert_eq!((o.rate, o.pal, o.amo_gross), (dec!(100), z(), dec!(150)));
}

// ---------------------------------------------------------------- flat fee (PAL)

#[test]
fn flat_fee_group_by_practitioner_and_day_with_spread() {
    // Heavy by coefficients (40 + 30 ≥ 60) although bases are small: the fee goes on the
    // largest base, then spreads.
    let mut a = act("a", "2025-02-03", Category::MedicalAct, dec!(15));
    a.coefficient = Some(dec!(40));
    a.practitioner_id = Some("x".into());
    let mut b = act("b", "2025-02-03", Category::MedicalAct, dec!(10));
    b.coefficient = Some(dec!(30));
    b.practitioner_id = Some("x".into());
    let mut c = act("c", "2025-02-03", Category::MedicalAct, dec!(10));
    c.practitioner_id = Some("y".into());
    let out = Case::new().run(&[a, b, c]);
    assert_eq!(
        (out[0].pal, out[1].pal, out[2].pal),
        (dec!(15), dec!(9), z())
    );
    assert_eq!((out[0].rate, out[2].rate), (dec!(100), dec!(70)));
}

#[test]
fn hospital_stay_flat_fee_once_per_stay_and_long_stay() {
    let mut s1 = act("a", "2025-01-01", Category::HospitalStay, dec!(1000));
    s1.stay_id = Some("s".into());
    s1.setting = Setting::Inpatient;
    let mut s2 = act("b", "2025-01-31", Category::HospitalStay, dec!(500));
    s2.stay_id = Some("s".into());
    s2.setting = Setting::Inpatient;
    let r = Case::new().result(&[s1.clone(), s2.clone()]);
    assert_eq!((r.outcomes[0].pal, r.outcomes[1].pal), (dec!(24), z()));
    assert_eq!(r.closing[0].charged_stays, vec!["s".to_string()]);
    // Charged in an earlier run: heavy, no new fee.
    let r2 = Case::new()
        .opening(2025, z(), z(), &["s"])
        .result(&[s2.clone()]);
    assert_eq!((r2.outcomes[0].pal, r2.outcomes[0].rate), (z(), dec!(100)));
    // A light stay: 80 %, and from day 31 at 100 %.
    s1.tariff = dec!(100);
    s2.tariff = dec!(10);
    s1.stay_id = Some("t".into());
    s2.stay_id = Some("t".into());
    let mut s3 = s2.clone();
    s3.act_id = "c".into();
    s3.care_date = d("2025-01-30");
    s3.stay_id = Some("u".into());
    let r3 = Case::new().run(&[s1, s2, s3]);
    assert_eq!(r3[0].rate, dec!(80));
    assert_eq!(r3[2].rate, dec!(100), "day 31 of stay t");
}

/// March computed with February's closing counters, and the same March lines of one run over
/// both months (SPEC §2): they must be equal.
fn march_chained_and_whole(case: &Case, february: &[Act], march: &[Act]) -> [Vec<Outcome>; 2] {
    last_chained_and_whole(case, &[february, march])
}

/// The last of `runs` computed with the closing counters of the runs before it, each given
/// the closing counters of the one before; and the same lines of one run over all of them.
fn last_chained_and_whole(case: &Case, runs: &[&[Act]]) -> [Vec<Outcome>; 2] {
    let all: Vec<Act> = runs.concat();
    let whole = case.run(&all);
    let mut chained = Case {
        beneficiary: case.beneficiary.clone(),
        rights: case.rights.clone(),
        rights_known: case.rights_known,
        opening: case.opening.clone(),
    };
    let (last, before) = runs.split_last().unwrap();
    for run in before {
        chained.opening = chained.result(run).closing;
    }
    let second = chained.run(last);
    let whole_last = whole
        .into_iter()
        .filter(|o| last.iter().any(|a| a.act_id == o.act_id))
        .collect();
    [second, whole_last]
}

/// SPEC §2 (counters): a stay whose lines fall in two monthly runs is judged on all of them.
/// The counters carry its sums while it is not charged the 24 € fee (format 3), and the part
/// of the fee its lines were charged (format 4).
#[test]
fn a_stay_over_two_runs_is_judged_on_all_its_lines() {
    let stay_line = |id: &str, date: &str, category, tariff, stay: &str| {
        let mut a = act(id, date, category, tariff);
        a.stay_id = Some(stay.into());
        a.setting = Setting::Inpatient;
        a
    };
    let case = Case::new();
    // Heaviness: 70 + 70 reach the 120 € threshold. One run puts the fee on H1 (equal bases:
    // the smaller act_id), in February: March's H2 is at 100 % and bears none.
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[stay_line(
            "h1",
            "2025-02-20",
            Category::HospitalStay,
            dec!(70),
            "s1",
        )],
        &[stay_line(
            "h2",
            "2025-03-05",
            Category::HospitalStay,
            dec!(70),
            "s1",
        )],
    );
    assert_eq!(chained, whole);
    assert_eq!(
        (whole[0].rate, whole[0].pal, whole[0].rac),
        (dec!(100), z(), z())
    );
    // Before: rate 80, rac 14 (March's 70 alone is light).

    // The forfait journalier imputed against February's copayment (100 at 80 %: 20).
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[stay_line(
            "j1",
            "2025-02-20",
            Category::HospitalStay,
            dec!(100),
            "s2",
        )],
        &[{
            let mut fj = stay_line("j2", "2025-03-01", Category::DailyFee, dec!(20), "s2");
            fj.quantity = 2;
            fj
        }],
    );
    assert_eq!(chained, whole);
    assert_eq!((whole[0].amo_gross, whole[0].rac), (dec!(20), dec!(20)));
    assert!(whole[0].rules.contains(&rule_ids::FJ_IMPUTED));

    // A stay charged in February: March's forfaits are not imputed (under a PAL both are due).
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[stay_line(
            "k1",
            "2025-02-20",
            Category::HospitalStay,
            dec!(500),
            "s3",
        )],
        &[{
            let mut fj = stay_line("k2", "2025-03-01", Category::DailyFee, dec!(20), "s3");
            fj.quantity = 2;
            fj
        }],
    );
    assert_eq!(chained, whole);
    assert_eq!((whole[0].amo_gross, whole[0].rac), (z(), dec!(40)));

    // February's line exempt from the fee (CSS until 28 February), March's not: one run puts
    // the fee on March's line; February did not charge the stay. Before: March bore none.
    let mut css = right(RightKind::Css, "2024-01-01");
    css.end_date = Some(d("2025-02-28"));
    let with_css = Case::new().rights(vec![css]);
    let [chained, whole] = march_chained_and_whole(
        &with_css,
        &[stay_line(
            "c1",
            "2025-02-20",
            Category::HospitalStay,
            dec!(500),
            "s4",
        )],
        &[stay_line(
            "c2",
            "2025-03-05",
            Category::HospitalStay,
            dec!(300),
            "s4",
        )],
    );
    assert_eq!(chained, whole);
    assert_eq!((whole[0].pal, whole[0].rac), (dec!(24), dec!(24)));
    let february = with_css.result(&[stay_line(
        "c1",
        "2025-02-20",
        Category::HospitalStay,
        dec!(500),
        "s4",
    )]);
    let open = &february.closing[0];
    assert!(open.charged_stays.is_empty());
    assert_eq!(open.open_stays[0].0, "s4");
    assert_eq!(open.open_stays[0].1.bases, dec!(500));
    assert!(
        open.open_stays[0].1.payers.is_empty(),
        "an exempt line pays no fee"
    );

    // The fee spread over lines under 24 €, heavy by coefficients: one run puts 10 and 9 on
    // January's lines, the last 5 on B1.
    let coefficient = |mut a: Act, c| {
        a.coefficient = Some(c);
        a
    };
    let act_line = |id: &str, date: &str, tariff, stay: &str| {
        stay_line(id, date, Category::MedicalAct, tariff, stay)
    };
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[
            coefficient(act_line("a1", "2025-01-10", dec!(10), "s6"), dec!(20)),
            coefficient(act_line("a2", "2025-01-11", dec!(9), "s6"), dec!(20)),
        ],
        &[coefficient(
            act_line("b1", "2025-02-05", dec!(8), "s6"),
            dec!(20),
        )],
    );
    assert_eq!(chained, whole);
    assert_eq!(whole[0].pal, dec!(5));
    // The fee partly placed in January (10 of 24): February's line bears the rest.
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[coefficient(
            act_line("a1", "2025-01-10", dec!(10), "s7"),
            dec!(60),
        )],
        &[act_line("b1", "2025-02-05", dec!(5), "s7")],
    );
    assert_eq!(chained, whole);
    assert_eq!(whole[0].pal, dec!(5));
    // The same with a larger line in February: one run puts the whole fee on it; run apart,
    // January charged 10 of it, and February charges the other 14, not 24 again (found by
    // QA: the stay cost 34 €). The same total, other lines (README, Known limits).
    let january = [coefficient(
        act_line("a1", "2025-01-10", dec!(10), "s10"),
        dec!(60),
    )];
    let february = [act_line("b1", "2025-02-05", dec!(50), "s10")];
    let [chained, whole] = march_chained_and_whole(&case, &january, &february);
    assert_eq!((whole[0].pal, chained[0].pal), (dec!(24), dec!(14)));
    assert_eq!((chained[0].amo_paid, chained[0].rac), (dec!(36), dec!(14)));
    let opened = case.result(&january);
    assert_eq!(opened.outcomes[0].pal, dec!(10));
    let open = &opened.closing[0].open_stays[0].1;
    assert_eq!((open.charged, open.payers.len()), (dec!(10), 0));
    let whole_stay: Decimal = case
        .run(&[january[0].clone(), february[0].clone()])
        .iter()
        .map(|o| o.pal)
        .sum();
    assert_eq!(opened.outcomes[0].pal + chained[0].pal, whole_stay);
    // Three runs: light in January (its line not charged, its part of the fee lost as one
    // run would put it there), heavy in February (its line charged 5), March's line the rest
    // of what one run leaves: 24 − 5, on the largest line.
    let [chained, whole] = last_chained_and_whole(
        &case,
        &[
            &[act_line("m1", "2025-01-10", dec!(5), "s11")],
            &[coefficient(
                act_line("m2", "2025-02-10", dec!(5), "s11"),
                dec!(60),
            )],
            &[act_line("m3", "2025-03-10", dec!(50), "s11")],
        ],
    );
    assert_eq!((whole[0].pal, chained[0].pal), (dec!(24), dec!(19)));
    // Three runs, heavy in the third: the fee sits on the first run's line (equal bases).
    let [chained, whole] = last_chained_and_whole(
        &case,
        &[
            &[stay_line(
                "t1",
                "2025-01-10",
                Category::HospitalStay,
                dec!(50),
                "s8",
            )],
            &[stay_line(
                "t2",
                "2025-02-10",
                Category::HospitalStay,
                dec!(50),
                "s8",
            )],
            &[stay_line(
                "t3",
                "2025-03-10",
                Category::HospitalStay,
                dec!(50),
                "s8",
            )],
        ],
    );
    assert_eq!(chained, whole);
    assert_eq!((whole[0].rate, whole[0].pal), (dec!(100), z()));
    // Across a year whose fee changed: the fee of the stay's first day (18 € in 2018).
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[stay_line(
            "y1",
            "2018-12-28",
            Category::HospitalStay,
            dec!(70),
            "s9",
        )],
        &[stay_line(
            "y2",
            "2019-01-03",
            Category::HospitalStay,
            dec!(80),
            "s9",
        )],
    );
    assert_eq!(chained, whole);
    assert_eq!(whole[0].pal, dec!(18));

    // What counters cannot mend: a stay charged in February on its line then, where one run
    // puts the fee on March's larger line (README, Known limits).
    let [chained, whole] = march_chained_and_whole(
        &case,
        &[stay_line(
            "l1",
            "2025-02-10",
            Category::HospitalStay,
            dec!(500),
            "s5",
        )],
        &[stay_line(
            "l2",
            "2025-03-10",
            Category::HospitalStay,
            dec!(800),
            "s5",
        )],
    );
    assert_eq!((whole[0].pal, chained[0].pal), (dec!(24), z()));
}

/// SPEC §2 (counters): a run given the previous month's closing counters computes its lines
/// as one run over both months would. A long stay's day 31 is dated from its first line, which
/// may be in an earlier run: the counters carry each stay's start.
#[test]
fn a_stay_over_two_runs_has_its_day_31_where_one_run_puts_it() {
    let line = |id: &str, date: &str, tariff| {
        let mut a = act(id, date, Category::HospitalStay, tariff);
        a.stay_id = Some("s".into());
        a.setting = Setting::Inpatient;
        a
    };
    // Light (110 € < the flat fee's threshold): 80 %, and 100 % from day 31 (2025-02-19).
    let (january, february) = (
        line("a", "2025-01-20", dec!(100)),
        line("b", "2025-02-19", dec!(10)),
    );
    let whole = Case::new().run(&[january.clone(), february.clone()]);
    assert_eq!((whole[0].rate, whole[1].rate), (dec!(80), dec!(100)));

    let first = Case::new().result(std::slice::from_ref(&january));
    assert_eq!(
        first.closing[0].stay_starts,
        vec![("s".into(), d("2025-01-20"))]
    );
    let mut chained = Case::new();
    chained.opening = first.closing.clone();
    let second = chained.result(std::slice::from_ref(&february));
    assert_eq!(
        second.outcomes,
        whole[1..],
        "February as in one run over both months"
    );
    let input = PatientInput {
        beneficiary: &chained.beneficiary,
        acts: std::slice::from_ref(&february),
        rights: &[],
        rights_known: false,
        opening: &chained.opening,
    };
    let trace = explain_patient(&RuleBook::builtin(), &input, "b").1.steps;
    let said = "stay s began on 2025-01-20 (opening counters): this line starts on its day 31";
    assert!(trace.iter().any(|t| t.starts_with(said)), "{trace:?}");
    assert_eq!(second.closing[0].stay_starts, first.closing[0].stay_starts);
    // Without the start (counters of format 1, or none): the stay seems to start in February.
    assert_eq!(Case::new().one(february.clone()).rate, dec!(80));

    // Begun in December: the previous year's counter carries it into January's run.
    let mut december = chained.opening[0].clone();
    december.year = 2024;
    december.stay_starts = vec![("s".into(), d("2024-12-20"))];
    // Its start alone: no line of it was billed in December.
    december.open_stays.clear();
    chained.opening = vec![december];
    let january = chained.result(std::slice::from_ref(&january));
    assert_eq!(
        january.outcomes[0].rate,
        dec!(100),
        "day 32 of a stay begun on 2024-12-20"
    );
    assert_eq!(
        january
            .closing
            .iter()
            .map(|c| (c.year, c.stay_starts.clone()))
            .collect::<Vec<_>>(),
        vec![(2024, vec![("s".into(), d("2024-12-20"))])],
        "kept under the year it falls in, once"
    );

    // A line billed late, before the carried start, moves the start back.
    chained.opening = first.closing;
    let late = chained.result(&[line("c", "2025-01-10", dec!(10)), february.clone()]);
    assert_eq!(
        late.outcomes[1].rate,
        dec!(100),
        "day 41 of a stay begun on 2025-01-10"
    );
    assert_eq!(
        late.closing[0].stay_starts,
        vec![("s".into(), d("2025-01-10"))]
    );
    // Billed late into the year before: the start moves to that year's counter, and out of
    // the later one.
    let previous = chained.result(&[line("d", "2024-12-28", dec!(10)), february]);
    assert_eq!(
        previous.outcomes[1].rate,
        dec!(100),
        "day 54 of a stay begun on 2024-12-28"
    );
    let starts = |r: &PatientResult| {
        r.closing
            .iter()
            .map(|c| (c.year, c.stay_starts.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        starts(&previous),
        vec![(2024, vec![("s".into(), d("2024-12-28"))]), (2025, vec![])]
    );
    // And a run opening with those counters leaves them so.
    chained.opening = previous.closing.clone();
    assert_eq!(starts(&chained.result(&[])), starts(&previous));
}

#[test]
fn forfait_journalier_imputed_on_a_stay_without_flat_fee() {
    let mut stay = act("a", "2025-01-10", Category::HospitalStay, dec!(100));
    stay.stay_id = Some("s".into());
    stay.setting = Setting::Inpatient;
    let mut fj = act("b", "2025-01-10", Category::DailyFee, dec!(20));
    fj.quantity = 3;
    fj.stay_id = Some("s".into());
    fj.setting = Setting::Inpatient;
    let out = Case::new().run(&[stay, fj]);
    assert_eq!(out[0].rac, dec!(20));
    assert_eq!(
        (out[1].rate, out[1].amo_gross, out[1].rac),
        (dec!(0), dec!(20), dec!(40))
    );
    assert!(out[1].rules.contains(&rule_ids::FJ_IMPUTED));
    assert_eq!(out[0].rac + out[1].rac, dec!(60), "the larger of 20 and 60");
}

// ---------------------------------------------------------------- FPU and rejections

#[test]
fn emergency_visit_fpu_full_reduced_none_and_before_2022() {
    let e = act("e", "2025-02-01", Category::EmergencyVisit, dec!(25));
    let o = Case::new().one(e.clone());
    assert_eq!(
        amounts(&o),
        [
            dec!(25),
            z(),
            z(),
            z(),
            dec!(19.61),
            dec!(5.39),
            dec!(19.61)
        ]
    );
    let mut ald = e.clone();
    ald.exo_code = Some("4".into());
    assert_eq!(Case::new().one(ald).flat_fee, dec!(8.49));
    let mut mat = e.clone();
    mat.insurance_nature = InsuranceNature::Maternity;
    assert_eq!(Case::new().one(mat).flat_fee, z());
    let mut old = e;
    old.care_date = d("2021-12-31");
    let r = Case::new().result(&[old]);
    assert!(r.outcomes.is_empty());
    assert_eq!(r.rejected[0].reason, reasons::NO_RULE_AT_DATE);
    assert!(r.rejected[0].value.starts_with("2021-12-31 ("));
}

#[test]
fn emergency_visit_followed_by_a_stay_bears_no_fpu() {
    let mut visit = act("u1", "2025-03-01", Category::EmergencyVisit, dec!(50));
    visit.stay_id = Some("s1".into());
    let stay = {
        let mut s = act("u2", "2025-03-01", Category::HospitalStay, dec!(300));
        s.stay_id = Some("s1".into());
        s.setting = Setting::Inpatient;
        s
    };
    let out = Case::new().run(&[visit.clone(), stay]);
    assert_eq!(out[0].flat_fee, z());
    assert_eq!((out[0].amo_paid, out[0].rac), (dec!(50), z()));
    assert_eq!(
        out[0].rules.as_slice(),
        ["rate.emergency_visit", rule_ids::FPU_FOLLOWED_BY_STAY]
    );
    assert_eq!(out[1].pal, dec!(24), "the stay bears its own fee");
    // An inpatient line without a stay id was followed by a stay too.
    let mut inpatient = visit.clone();
    inpatient.stay_id = None;
    inpatient.setting = Setting::Inpatient;
    assert_eq!(Case::new().one(inpatient).flat_fee, z());
    // The control: the same visit, ambulatory and in no stay, bears the FPU.
    let mut alone = visit;
    alone.stay_id = None;
    assert_eq!(Case::new().one(alone).flat_fee, dec!(19.61));
}

#[test]
fn care_before_birth_is_rejected_and_the_rest_computed() {
    let r = Case::new().born("2025-01-01").result(&[
        act("a", "2024-12-31", Category::Consultation, dec!(30)),
        act("b", "2025-01-02", Category::Consultation, dec!(30)),
    ]);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].reason, reasons::CARE_BEFORE_BIRTH);
    assert_eq!(r.outcomes.len(), 1);
}

#[test]
fn tariff_mismatch_against_ngap_g() {
    let mut a = act("a", "2025-02-01", Category::Consultation, dec!(26.50));
    a.code = Some("G".into());
    assert_eq!(
        Case::new().one(a.clone()).flags,
        vec![flags::TARIFF_MISMATCH]
    );
    a.tariff = dec!(30);
    assert!(Case::new().one(a).flags.is_empty());
}

/// The forfait journalier's lines are checked against `fj.daily` / `fj.daily_psy` at their
/// date (20 € and 15 € in 2025, 23 € and 17 € from 2026-03-01); the amounts stay the billed
/// tariff's (RULES §4: base = tariff × days).
#[test]
fn tariff_mismatch_against_the_forfait_journalier() {
    let fee = |date: &str, category, tariff| {
        let mut a = act("f", date, category, tariff);
        a.stay_id = Some("S1".into());
        a.setting = Setting::Inpatient;
        Case::new().one(a)
    };
    for (date, category, tariff, mismatch) in [
        ("2025-06-01", Category::DailyFee, dec!(20), false),
        ("2025-06-01", Category::DailyFee, dec!(23), true),
        ("2026-03-01", Category::DailyFee, dec!(23), false),
        ("2026-03-01", Category::DailyFee, dec!(20), true),
        ("2025-06-01", Category::DailyFeePsy, dec!(15), false),
        ("2026-03-01", Category::DailyFeePsy, dec!(15), true),
        ("2026-03-01", Category::DailyFeePsy, dec!(17), false),
    ] {
        let line = fee(date, category, tariff);
        let expected: &[&str] = if mismatch {
            &[flags::TARIFF_MISMATCH]
        } else {
            &[]
        };
        assert_eq!(line.flags, expected, "{date} {category:?} {tariff}");
        assert_eq!(line.base, tariff, "{date} {category:?}");
        assert_eq!(line.rac, tariff, "{date} {category:?}: the patient's");
    }
}

/// An act dated before the rules names its own category's rate, the first parameter it
/// lacks (it named `rate.exonerated`).
#[test]
fn an_act_before_the_rules_names_its_rate() {
    let r = Case::new().result(&[act("a", "2004-05-01", Category::Consultation, dec!(30))]);
    assert_eq!(r.rejected[0].reason, reasons::NO_RULE_AT_DATE);
    assert_eq!(r.rejected[0].value, "2004-05-01 (rate.consultation)");
}

#[test]
fn explain_traces_each_step_of_one_act() {
    let beneficiary = adult();
    let acts = [act("a", "2025-02-01", Category::Consultation, dec!(30))];
    let input = PatientInput {
        beneficiary: &beneficiary,
        acts: &acts,
        rights: &[],
        rights_known: false,
        opening: &[],
    };
    let trace = explain_patient(&RuleBook::builtin(), &input, "a").1.steps;
    assert!(trace[0].starts_with("base: tariff 30 × quantity 1"));
    assert!(trace.iter().any(|t| t.contains("rate.consultation = 70 %")));
    assert!(
        trace
            .last()
            .unwrap()
            .contains("amo_paid = 21.00 − pal 0 − pf 2")
    );
}

#[test]
fn month_split_with_counters_equals_one_run() {
    let mut acts = vec![];
    for m in 1..=4 {
        for i in 0..9 {
            let date = format!("2025-0{m}-{:02}", 1 + i * 3);
            let mut a = act(&format!("c{m}{i}"), &date, Category::Consultation, dec!(30));
            a.practitioner_id = Some("gp".into());
            acts.push(a);
            let mut b = act(&format!("d{m}{i}"), &date, Category::Drug65, dec!(4));
            b.quantity = 3;
            acts.push(b);
        }
    }
    let case = Case::new();
    let whole = case.result(&acts);
    let mut opening: Vec<YearCounter> = vec![];
    let mut split = vec![];
    for m in 1..=4 {
        let month: Vec<Act> = acts
            .iter()
            .filter(|a| a.care_date.month() == m)
            .cloned()
            .collect();
        let c = Case {
            opening: opening.clone(),
            ..Case::new()
        };
        let r = c.result(&month);
        opening = r.closing.clone();
        split.extend(r.outcomes);
    }
    assert_eq!(split, whole.outcomes);
    assert_eq!(opening, whole.closing);
    assert_eq!(whole.closing[0].pf_used, dec!(50));
    assert_eq!(whole.closing[0].franchise_used, dec!(50));
}

/// A heavy group's lines that bear no fee say why: the regime pays it, the situation exempts
/// it, or another line of the group bore it (an auditor reading a pal of 0.00 on a heavy act).
#[test]
fn explain_says_why_a_heavy_line_bears_no_fee() {
    let trace_of = |case: &Case, acts: &[Act], id: &str| {
        let input = PatientInput {
            beneficiary: &case.beneficiary,
            acts,
            rights: &case.rights,
            rights_known: case.rights_known,
            opening: &case.opening,
        };
        explain_patient(&RuleBook::builtin(), &input, id).1.steps
    };
    let heavy = |id: &str, tariff: Decimal| {
        let mut a = act(id, "2024-06-10", Category::MedicalAct, tariff);
        a.practitioner_id = Some("d2".into());
        a
    };
    let acts = [heavy("a", dec!(150)), heavy("b", dec!(40))];
    let has = |trace: &[String], said: &str| trace.iter().any(|t| t == said);

    let alsace = Case::new().alsace();
    assert_eq!(alsace.run(&acts)[0].pal, dec!(0));
    let trace = trace_of(&alsace, &acts, "a");
    assert!(
        has(
            &trace,
            "flat fee: none on this line, regime alsace_moselle pays it for the patient (RULES §4)"
        ),
        "{trace:?}"
    );
    let css = Case::new().rights(vec![right(RightKind::Css, "2024-01-01")]);
    assert_eq!(css.run(&acts)[0].pal, dec!(0));
    let trace = trace_of(&css, &acts, "a");
    assert!(
        has(
            &trace,
            "flat fee: none on this line, situation css is exempt from it (RULES §4)"
        ),
        "{trace:?}"
    );
    // Ordinary: the largest base bears the 24 €, the other line says which did.
    let ordinary = Case::new();
    let outcomes = ordinary.run(&acts);
    assert_eq!((outcomes[0].pal, outcomes[1].pal), (dec!(24), dec!(0)));
    let trace = trace_of(&ordinary, &acts, "b");
    assert!(
        has(&trace, "flat fee: none on this line, borne by a (RULES §4)"),
        "{trace:?}"
    );
    assert!(has(
        &trace_of(&ordinary, &acts, "a"),
        "flat fee: 24.00 charged on this line"
    ));
    // A stay an earlier run charged (opening counters): none on this run's lines.
    let mut stay = act("h", "2024-06-10", Category::HospitalStay, dec!(150));
    stay.stay_id = Some("s1".into());
    stay.setting = Setting::Inpatient;
    let charged = Case::new().opening(2024, dec!(0), dec!(0), &["s1"]);
    assert_eq!(charged.run(std::slice::from_ref(&stay))[0].pal, dec!(0));
    let trace = trace_of(&charged, std::slice::from_ref(&stay), "h");
    assert!(
        has(
            &trace,
            "flat fee: none on this line, an earlier run charged the stay (RULES §4)"
        ),
        "{trace:?}"
    );
}
