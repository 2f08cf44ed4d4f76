//! The coverage situation of an act and what it lifts (RULES §3).

use chrono::NaiveDate;

use crate::model::{Act, Category, InsuranceNature, RightKind, RightPeriod, Setting, Situation};

use super::category::is_daily_fee;
use super::flags;

/// What the engine knows of a patient when it decides a situation.
pub struct Patient<'a> {
    pub birth_date: NaiveDate,
    pub rights: &'a [RightPeriod],
    /// A rights file was given: rights decide situations 4, 5, 7 and 8 and the declared
    /// `exo_code` is only checked (RULES §3, "Rights versus declarations").
    pub rights_known: bool,
}

impl Patient<'_> {
    fn has(&self, right: RightKind, date: NaiveDate) -> bool {
        self.rights
            .iter()
            .any(|r| r.right == right && r.is_active(date))
    }
}

/// The situation of `act` and the audit flags found while deciding it. The first situation
/// of RULES §3's table that holds on `care_date` wins.
pub fn decide(
    act: &Act,
    patient: &Patient,
    newborn_max_days: i64,
    flags: &mut Vec<&'static str>,
) -> Situation {
    let exo = act.exo_code.as_deref().unwrap_or("");
    let situation = precedence(act, patient, exo, newborn_max_days);
    if patient.rights_known {
        check_declarations(act, patient, exo, situation, flags);
    }
    situation
}

fn precedence(act: &Act, patient: &Patient, exo: &str, newborn_max_days: i64) -> Situation {
    let date = act.care_date;
    match act.insurance_nature {
        InsuranceNature::Smg => return Situation::Smg,
        InsuranceNature::AtMp => return Situation::AtMp,
        InsuranceNature::Maternity => return Situation::Maternity,
        InsuranceNature::Sickness => {}
    }
    if patient.has(RightKind::Maternity, date) {
        return Situation::Maternity;
    }
    if patient.rights_known {
        if patient.has(RightKind::Css, date) {
            return Situation::Css;
        }
        if patient.has(RightKind::Ame, date) {
            return Situation::Ame;
        }
    }
    // RULES §7.4: newborn is decided from the birth date alone, on inpatient lines.
    let inpatient_line = act.setting == Setting::Inpatient
        || act.category == Category::HospitalStay
        || is_daily_fee(act.category);
    let age_days = (date - patient.birth_date).num_days();
    if inpatient_line && (0..=newborn_max_days).contains(&age_days) {
        return Situation::Newborn;
    }
    if patient.rights_known {
        if act.ald_related && patient.has(RightKind::Ald, date) {
            return Situation::Ald;
        }
        // RULES §7.4: of several pension rights, the first in this order wins.
        for (right, situation) in PENSIONS {
            if patient.has(right, date) {
                return situation;
            }
        }
    } else {
        if exo == "4" || act.ald_related {
            return Situation::Ald;
        }
        if exo == "5" {
            return Situation::Invalidity;
        }
    }
    match exo {
        "3" => Situation::Exo3,
        "7" => Situation::Exo7,
        _ => Situation::Ordinary,
    }
}

const PENSIONS: [(RightKind, Situation); 3] = [
    (RightKind::Invalidity, Situation::Invalidity),
    (RightKind::MilitaryPension, Situation::MilitaryPension),
    (RightKind::AtRent66, Situation::AtRent66),
];

/// SPEC §5: an exoneration declared without the right (`exo_without_right`), or a right that
/// decided the situation but that the claim does not declare (`right_not_declared`).
fn check_declarations(
    act: &Act,
    patient: &Patient,
    exo: &str,
    situation: Situation,
    flags: &mut Vec<&'static str>,
) {
    let date = act.care_date;
    let ald = patient.has(RightKind::Ald, date);
    let pension = PENSIONS.iter().any(|(r, _)| patient.has(*r, date));
    if ((exo == "4" || act.ald_related) && !ald) || (exo == "5" && !pension) {
        flags.push(flags::EXO_WITHOUT_RIGHT);
    }
    let undeclared = match situation {
        Situation::Ald => exo != "4",
        Situation::Invalidity | Situation::MilitaryPension | Situation::AtRent66 => exo != "5",
        _ => false,
    };
    if undeclared {
        flags.push(flags::RIGHT_NOT_DECLARED);
    }
}

/// Does the situation lift the participation forfaitaire? (RULES §3, column PF)
pub fn exempts_pf(s: Situation) -> bool {
    matches!(
        s,
        Situation::Smg
            | Situation::Maternity
            | Situation::Css
            | Situation::Ame
            | Situation::Newborn
    )
}

/// Does the situation lift the franchises? (RULES §3, column franchise)
pub fn exempts_franchise(s: Situation) -> bool {
    exempts_pf(s)
}

/// Does the situation lift (or pay for the patient) the 24 € flat fee? Only `ordinary` bears
/// it (RULES §3, column PAL).
pub fn exempts_pal(s: Situation) -> bool {
    s != Situation::Ordinary
}

/// Does the situation lift the forfait journalier? (RULES §3, column FJ: only the military
/// pension among the pension rights.)
pub fn exempts_daily_fee(s: Situation) -> bool {
    matches!(
        s,
        Situation::Smg
            | Situation::AtMp
            | Situation::Maternity
            | Situation::Css
            | Situation::Ame
            | Situation::Newborn
            | Situation::MilitaryPension
    )
}

/// Which emergency flat fee (FPU) the situation leaves the patient (RULES §3 column FPU, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpuLevel {
    Full,
    Reduced,
    None,
}

pub fn fpu_level(s: Situation) -> FpuLevel {
    match s {
        Situation::Ald | Situation::AtMp => FpuLevel::Reduced,
        Situation::Exo7 | Situation::Ordinary => FpuLevel::Full,
        _ => FpuLevel::None,
    }
}

/// The situations whose acts are all at 100 % (RULES §3), except the drug rates that the
/// pension rights keep.
pub fn keeps_drug_rate(s: Situation, c: Category) -> bool {
    matches!(
        s,
        Situation::Invalidity | Situation::MilitaryPension | Situation::AtRent66
    ) && matches!(c, Category::Drug30 | Category::Drug15)
}
