//! What each category of care is subject to (RULES §2, columns PF, franchise, PAL group).
//!
//! These are the structure of the law, not amounts: the amounts are parameters in
//! `rules/params.toml`.

use crate::model::Category;
use crate::rules::Scalar;

/// The kind of franchise a category bears (*franchise médicale*), with its per-unit amount
/// and its daily cap, if any (RULES §1, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FranchiseKind {
    /// per box of medicine; no daily cap
    DrugBox,
    /// per paramedical act; capped per patient and day
    Paramedical,
    /// per trip; capped per patient and day
    Transport,
}

impl FranchiseKind {
    pub fn unit_param(self) -> Scalar {
        match self {
            FranchiseKind::DrugBox => Scalar::FranchiseDrugBox,
            FranchiseKind::Paramedical => Scalar::FranchiseParamedicalAct,
            FranchiseKind::Transport => Scalar::FranchiseTransport,
        }
    }

    pub fn daily_cap_param(self) -> Option<Scalar> {
        match self {
            FranchiseKind::DrugBox => None,
            FranchiseKind::Paramedical => Some(Scalar::FranchiseParamedicalDailyCap),
            FranchiseKind::Transport => Some(Scalar::FranchiseTransportDailyCap),
        }
    }
}

/// Doctor, biology and imaging acts bear the participation forfaitaire (RULES §2).
pub fn bears_pf(c: Category) -> bool {
    matches!(
        c,
        Category::Consultation | Category::MedicalAct | Category::Imaging | Category::Biology
    )
}

/// The franchise a category bears, if any (RULES §2).
pub fn franchise_kind(c: Category) -> Option<FranchiseKind> {
    match c {
        Category::Drug100 | Category::Drug65 | Category::Drug30 | Category::Drug15 => {
            Some(FranchiseKind::DrugBox)
        }
        Category::Paramedical => Some(FranchiseKind::Paramedical),
        Category::Transport => Some(FranchiseKind::Transport),
        _ => None,
    }
}

/// Categories grouped for the 24 € flat fee (RULES §2 column "PAL group"; imaging and
/// biology are exempt).
pub fn in_pal_group(c: Category) -> bool {
    matches!(
        c,
        Category::Consultation
            | Category::MedicalAct
            | Category::Dental
            | Category::Midwife
            | Category::HospitalStay
    )
}

/// The forfait journalier lines.
pub fn is_daily_fee(c: Category) -> bool {
    matches!(c, Category::DailyFee | Category::DailyFeePsy)
}

/// Consultations and medical acts lose part of their rate out of the care pathway (RULES §2).
pub fn subject_to_pathway(c: Category) -> bool {
    matches!(c, Category::Consultation | Category::MedicalAct)
}
