//! Property tests over generated patients: the invariants of SPEC §4 hold for any history.

use chrono::{Datelike, Duration, NaiveDate};
use proptest::prelude::*;
use rust_decimal::Decimal;

use rac::engine::{PatientInput, PatientResult, compute_patient};
use rac::model::{
    Act, Beneficiary, Category, InsuranceNature, Pathway, Regime, RightKind, RightPeriod, Setting,
    YearCounter,
};
use rac::report::{PatientTotals, Summary, Totals};
use rac::rules::RuleBook;

fn day(offset: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Duration::days(offset)
}

prop_compose! {
    fn arb_act(stays: bool)(
        offset in 0i64..730,
        cat in 0usize..Category::ALL.len(),
        cents in 1i64..40_000,
        quantity in 1u32..7,
        over in prop::option::of(0i64..5_000),
        under in any::<bool>(),
        practitioner in prop::option::of(0u8..3),
        coefficient in prop::option::of(0i64..80),
        stay in prop::option::of(0u8..2),
        nature in 0u8..12,
        exo in prop::option::of(prop::sample::select(vec!["0", "3", "4", "5", "7"])),
        ald_related in any::<bool>(),
        pathway in 0u8..8,
        inpatient in any::<bool>(),
    ) -> Act {
        let mut category = Category::ALL[cat];
        if !stays && matches!(category, Category::HospitalStay | Category::DailyFee | Category::DailyFeePsy) {
            category = Category::Consultation;
        }
        let mut a = Act::new("x", "p", day(offset), category, Decimal::new(cents, 2));
        a.quantity = quantity;
        let full = a.tariff * Decimal::from(quantity);
        a.billed = match (over, under) {
            (Some(extra), false) => Some(full + Decimal::new(extra, 2)),
            (Some(_), true) => Some((full / Decimal::TWO).round_dp(2)),
            (None, _) => None,
        };
        a.practitioner_id = practitioner.map(|p| format!("d{p}").into());
        a.coefficient = coefficient.map(Decimal::from);
        if stays {
            a.stay_id = stay.map(|s| format!("s{s}").into());
            if inpatient || category == Category::HospitalStay {
                a.setting = Setting::Inpatient;
            }
        }
        a.insurance_nature = match nature {
            0 => InsuranceNature::AtMp,
            1 => InsuranceNature::Maternity,
            2 => InsuranceNature::Smg,
            _ => InsuranceNature::Sickness,
        };
        a.exo_code = exo.map(Into::into);
        a.ald_related = ald_related;
        a.pathway = match pathway {
            0 => Pathway::OutOfPathway,
            1 => Pathway::DirectAccess,
            _ => Pathway::Coordinated,
        };
        a
    }
}

prop_compose! {
    fn arb_patient(stays: bool)(
        acts in prop::collection::vec(arb_act(stays), 1..60),
        birth in 0i64..(95 * 365),
        alsace in prop::bool::weighted(0.2),
        rights in prop::collection::vec((0usize..RightKind::ALL.len(), 0i64..730, prop::option::of(0i64..400)), 0..3),
        rights_known in any::<bool>(),
    ) -> (Beneficiary, Vec<Act>, Vec<RightPeriod>, bool) {
        let ben = Beneficiary {
            patient_id: "p".into(),
            birth_date: day(-birth),
            regime: if alsace { Regime::AlsaceMoselle } else { Regime::General },
        };
        let acts = acts
            .into_iter()
            .enumerate()
            .map(|(i, mut a)| {
                a.act_id = format!("a{i:03}").into();
                a
            })
            .collect();
        let rights = rights
            .into_iter()
            .map(|(k, start, len)| RightPeriod {
                patient_id: "p".into(),
                right: RightKind::ALL[k],
                start_date: day(start),
                end_date: len.map(|l| day(start + l)),
                reference: None,
            })
            .collect();
        (ben, acts, rights, rights_known)
    }
}

fn run(
    ben: &Beneficiary,
    acts: &[Act],
    rights: &[RightPeriod],
    rights_known: bool,
    opening: &[YearCounter],
) -> PatientResult {
    let input = PatientInput {
        beneficiary: ben,
        acts,
        rights,
        rights_known,
        opening,
    };
    compute_patient(&RuleBook::builtin(), &input)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_line_balances_and_no_cap_is_exceeded((ben, acts, rights, known) in arb_patient(true)) {
        let r = run(&ben, &acts, &rights, known, &[]);
        prop_assert_eq!(r.outcomes.len() + r.rejected.len(), acts.len());
        let fifty = Decimal::from(50);
        for o in &r.outcomes {
            prop_assert_eq!(o.amo_paid + o.rac, o.billed, "{}", o.act_id);
            prop_assert_eq!(o.copayment, o.base - o.amo_gross);
            prop_assert!(o.base <= o.billed);
            prop_assert!(o.amo_gross <= o.base, "{} {} > {}", o.act_id, o.amo_gross, o.base);
            prop_assert!(o.amo_gross >= Decimal::ZERO);
            for v in [o.pf, o.franchise, o.pal, o.flat_fee, o.majoration, o.overbilling] {
                prop_assert!(v >= Decimal::ZERO);
                prop_assert_eq!(v, v.round_dp(2));
            }
            prop_assert!(o.franchise <= o.amo_gross, "a franchise never exceeds its line");
            prop_assert!(o.pal <= Decimal::from(24));
            if o.amo_paid < Decimal::ZERO {
                prop_assert!(o.flags.contains(&"deduction_exceeds_payment"));
            }
        }
        for c in &r.closing {
            prop_assert!(c.pf_used <= fifty && c.franchise_used <= fifty);
            let year = |o: &&rac::model::Outcome| o.care_date.year() == c.year;
            let pf: Decimal = r.outcomes.iter().filter(year).map(|o| o.pf).sum();
            let fr: Decimal = r.outcomes.iter().filter(year).map(|o| o.franchise).sum();
            prop_assert_eq!(pf, c.pf_used);
            prop_assert_eq!(fr, c.franchise_used);
        }
        // Totals equal the sums of the lines.
        let totals = Totals::of(&r.outcomes);
        let mut by_patient = PatientTotals::new();
        by_patient.add(&r.outcomes);
        let years = by_patient.finish(&r.closing);
        let paid: Decimal = years.iter().map(|y| y.amo_paid).sum();
        prop_assert_eq!(paid, totals.amo_paid);
        let mut summary = Summary::new();
        summary.add(&r.outcomes);
        let rows = summary.rows();
        let rac_sum: Decimal = rows.iter().map(|s| s.rac).sum();
        prop_assert_eq!(rac_sum, totals.rac);
        let acts_sum: u64 = rows.iter().map(|s| s.acts).sum();
        prop_assert_eq!(acts_sum, r.outcomes.len() as u64);
    }

    #[test]
    fn month_split_runs_equal_one_run((ben, acts, rights, known) in arb_patient(false), cut in 1u32..24) {
        let whole = run(&ben, &acts, &rights, known, &[]);
        let boundary = NaiveDate::from_ymd_opt(2024 + (cut / 12) as i32, cut % 12 + 1, 1).unwrap();
        let (a, b): (Vec<Act>, Vec<Act>) = acts.iter().cloned().partition(|x| x.care_date < boundary);
        let first = run(&ben, &a, &rights, known, &[]);
        let second = run(&ben, &b, &rights, known, &first.closing);
        let mut split = first.outcomes.clone();
        split.extend(second.outcomes.clone());
        prop_assert_eq!(split, whole.outcomes);
        prop_assert_eq!(second.closing, whole.closing);
    }

    #[test]
    fn input_order_does_not_matter((ben, mut acts, rights, known) in arb_patient(true)) {
        let sorted = run(&ben, &acts, &rights, known, &[]);
        acts.reverse();
        let reversed = run(&ben, &acts, &rights, known, &[]);
        prop_assert_eq!(sorted.outcomes, reversed.outcomes);
    }
}
