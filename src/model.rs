//! The canonical data model of SPEC §2 (inputs) and §4 (per-act outcomes).
//!
//! Readers turn files into these types, the engine turns them into [`Outcome`]s, writers turn
//! outcomes into files. Nothing here does IO.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::sync::Arc;

/// An identifier or short code (act, patient, practitioner, stay, CCAM code): stored inline
/// up to 24 bytes, so that reading a row allocates nothing.
pub type Id = compact_str::CompactString;

/// The ids of the rules that changed a line's amount, in the order they applied: held inline
/// up to four (most lines have one to three), so that most lines allocate nothing for them.
pub type RuleIds = smallvec::SmallVec<[&'static str; 4]>;

/// Declares a closed set of codes with their canonical spelling (SPEC §2), with `parse`,
/// `as_str` and `ALL`. One place for each enum's names, used by readers, writers and rules.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical (input and output) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the canonical spelling; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum! {
    /// Category of care: decides the base rate and which participations apply (RULES §2).
    Category {
        Consultation => "consultation",
        MedicalAct => "medical_act",
        Imaging => "imaging",
        Biology => "biology",
        Dental => "dental",
        Midwife => "midwife",
        Paramedical => "paramedical",
        Drug100 => "drug_100",
        Drug65 => "drug_65",
        Drug30 => "drug_30",
        Drug15 => "drug_15",
        Device => "device",
        Optical => "optical",
        Hearing => "hearing",
        Transport => "transport",
        EmergencyVisit => "emergency_visit",
        HospitalStay => "hospital_stay",
        DailyFee => "daily_fee",
        DailyFeePsy => "daily_fee_psy",
    }
}

code_enum! {
    /// Nature of insurance of the claim (*nature d'assurance*).
    InsuranceNature {
        Sickness => "maladie",
        Maternity => "maternite",
        AtMp => "at_mp",
        Smg => "smg",
    }
}

code_enum! {
    /// Care pathway (*parcours de soins coordonnés*).
    Pathway {
        Coordinated => "coordinated",
        /// *hors parcours de soins*
        OutOfPathway => "out_of_pathway",
        DirectAccess => "direct_access",
        Emergency => "emergency",
    }
}

code_enum! {
    /// Where the care took place.
    Setting {
        /// *ville*, or a hospital's outpatient consultation
        Ambulatory => "ambulatory",
        /// during a hospital stay
        Inpatient => "inpatient",
    }
}

code_enum! {
    /// Insurance scheme of the beneficiary.
    Regime {
        General => "general",
        /// *régime local d'Alsace-Moselle*
        AlsaceMoselle => "alsace_moselle",
    }
}

code_enum! {
    /// A right held over a period (rights file, SPEC §2).
    RightKind {
        /// *complémentaire santé solidaire*
        Css => "css",
        /// *aide médicale de l'État*
        Ame => "ame",
        /// *affection de longue durée*
        Ald => "ald",
        Invalidity => "invalidity",
        MilitaryPension => "military_pension",
        /// accident-at-work rent for an incapacity of 66.66 % or more
        AtRent66 => "at_rent_66",
        Maternity => "maternity",
        Newborn => "newborn",
    }
}

code_enum! {
    /// The coverage situation that decided an act's rate and participations (RULES §3), in
    /// order of precedence.
    Situation {
        /// *soins médicaux gratuits* (military)
        Smg => "smg",
        AtMp => "at_mp",
        Maternity => "maternity",
        Css => "css",
        Ame => "ame",
        Newborn => "newborn",
        Ald => "ald",
        Invalidity => "invalidity",
        MilitaryPension => "military_pension",
        AtRent66 => "at_rent_66",
        Exo3 => "exo3",
        Exo7 => "exo7",
        Ordinary => "ordinary",
    }
}

/// One billed line of the acts file (SPEC §2), with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub act_id: Id,
    pub patient_id: Id,
    /// *date des soins*; for a stay line, the admission date.
    pub care_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub category: Category,
    /// Unit base of reimbursement (*tarif de convention*, *BRSS*).
    pub tariff: Decimal,
    /// Units: boxes, acts, trips, days (≥ 1, at most [`crate::io::read::QUANTITY_RANGE`]'s
    /// end): 4 bytes, so that an act keeps its size with [`Act::carried`].
    pub quantity: u32,
    /// What was billed for the whole line; `None` means "equal to the base".
    pub billed: Option<Decimal>,
    pub coefficient: Option<Decimal>,
    pub code: Option<Id>,
    pub practitioner_id: Option<Id>,
    pub specialty: Option<Id>,
    pub stay_id: Option<Id>,
    pub insurance_nature: InsuranceNature,
    pub exo_code: Option<Id>,
    pub ald_related: bool,
    pub pathway: Pathway,
    pub setting: Setting,
    /// What the AMO actually paid (for `audit`).
    pub recorded_amo: Option<Decimal>,
    /// The values of the input's own columns carried through to `acts.*` (`--keep-columns`),
    /// in the order of [`crate::io::read::ReadOptions::carried`]; empty without the flag.
    pub carried: Carried,
}

/// Values of columns carried from an input row to its output row, unchanged (`--keep-columns`,
/// SPEC §2): one per carried column, `None` for an empty cell. One pointer wide, and nothing
/// allocated when nothing is carried: acts and outcomes are moved several times per run (a
/// boxed slice, 16 bytes, cost about 4 % more user CPU on 10 M acts, three alternated pairs;
/// this pointer 1–4 %, until `quantity` went from 8 bytes to 4 and both types were back to
/// their size before it). Shared, not copied, by an act and its outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Carried(Option<Arc<Box<[Option<Id>]>>>);

impl Carried {
    /// The values, in the order of the carried columns.
    pub fn values(&self) -> &[Option<Id>] {
        self.0.as_deref().map_or(&[], |values| values)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes held on the heap (shared with the act's outcome, counted once).
    pub fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |values| {
            let long: usize = values
                .iter()
                .flatten()
                .map(|v| v.len())
                .filter(|&n| n > 24)
                .sum();
            // The shared block (two counts and the slice's pointer), the slice, long values.
            2 * std::mem::size_of::<usize>()
                + std::mem::size_of::<Box<[Option<Id>]>>()
                + std::mem::size_of_val::<[Option<Id>]>(values)
                + long
        })
    }
}

impl FromIterator<Option<Id>> for Carried {
    fn from_iter<I: IntoIterator<Item = Option<Id>>>(values: I) -> Carried {
        let values: Box<[Option<Id>]> = values.into_iter().collect();
        Carried((!values.is_empty()).then(|| Arc::new(values)))
    }
}

impl Act {
    /// A line with every optional column at its SPEC §2 default; for tests and generators.
    pub fn new(
        act_id: &str,
        patient_id: &str,
        care_date: NaiveDate,
        category: Category,
        tariff: Decimal,
    ) -> Act {
        Act {
            act_id: Id::from(act_id),
            patient_id: Id::from(patient_id),
            care_date,
            end_date: None,
            category,
            tariff,
            quantity: 1,
            billed: None,
            coefficient: None,
            code: None,
            practitioner_id: None,
            specialty: None,
            stay_id: None,
            insurance_nature: InsuranceNature::Sickness,
            exo_code: None,
            ald_related: false,
            pathway: Pathway::Coordinated,
            setting: Setting::Ambulatory,
            recorded_amo: None,
            carried: Carried::default(),
        }
    }
}

/// One row of the beneficiaries file.
#[derive(Debug, Clone, PartialEq)]
pub struct Beneficiary {
    pub patient_id: String,
    pub birth_date: NaiveDate,
    pub regime: Regime,
}

/// One rights period; `end_date` is inclusive, `None` means open.
#[derive(Debug, Clone, PartialEq)]
pub struct RightPeriod {
    pub patient_id: String,
    pub right: RightKind,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub reference: Option<String>,
}

impl RightPeriod {
    pub fn is_active(&self, date: NaiveDate) -> bool {
        self.start_date <= date && self.end_date.is_none_or(|end| date <= end)
    }
}

/// What a patient has used of the annual caps in one calendar year (opening or closing state).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct YearCounter {
    pub patient_id: String,
    pub year: i32,
    /// Participation forfaitaire already charged this year.
    pub pf_used: Decimal,
    /// Franchises already charged this year.
    pub franchise_used: Decimal,
    /// Stays already charged the 24 € flat fee (*participation forfaitaire de 24 €*), sorted.
    pub charged_stays: Vec<String>,
    /// Hospital stays begun this year and their first day (RULES §7.5: the earliest
    /// `care_date` of the stay's `hospital_stay` lines), sorted by stay id: a later run dates
    /// the day-31 rate of a stay's later lines from it (SPEC §2, counters).
    pub stay_starts: Vec<(String, NaiveDate)>,
    /// Day the PF annual cap was reached, if it was.
    pub pf_cap_reached_on: Option<NaiveDate>,
    /// Day the franchise annual cap was reached, if it was.
    pub franchise_cap_reached_on: Option<NaiveDate>,
    /// Stays begun this year and not charged the 24 € fee, with their lines' sums so far,
    /// sorted by stay id: a later run judges the stay on all its lines (SPEC §2, counters;
    /// format 3).
    pub open_stays: Vec<(String, StaySums)>,
}

/// What a later run needs of a stay's lines of earlier runs, while the stay is not charged
/// the whole 24 € fee (RULES §4, §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaySums {
    /// Day of the first line of the stay's flat-fee group (its inpatient lines of the group's
    /// categories): the fee's thresholds and amount are those of that day.
    pub first: Option<NaiveDate>,
    /// Summed bases of those lines, against the fee's tariff threshold.
    pub bases: Decimal,
    /// Summed coefficients of those lines, against the coefficient threshold.
    pub coefficients: Decimal,
    /// The stay's copayment: `base − amo_gross` of its lines other than `daily_fee*`.
    pub copayment: Decimal,
    /// Its forfaits journaliers: `base − amo_gross` of its `daily_fee*` lines, before the
    /// imputation.
    pub daily_fees: Decimal,
    /// The part of the fee its lines were charged (`pal`): a run that finds the stay heavy
    /// while the bases of its lines do not reach the fee charges each its whole base, and a
    /// later run charges only the rest (counters format 4; 0 in earlier formats).
    pub charged: Decimal,
    /// The group's lines not charged a part of the fee that would bear it first, in that
    /// order ([`pay_order`]), as far as their bases reach the rest of the fee: each line's
    /// base and `act_id`.
    pub payers: Vec<(Decimal, String)>,
}

impl StaySums {
    /// Adds `other`'s lines (the payers of both, in [`pay_order`]; [`StaySums::keep_payers`]
    /// trims them).
    pub fn add(&mut self, other: &StaySums) {
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.bases += other.bases;
        self.coefficients += other.coefficients;
        self.copayment += other.copayment;
        self.daily_fees += other.daily_fees;
        self.charged += other.charged;
        self.payers.extend(other.payers.iter().cloned());
        self.payers
            .sort_by(|a, b| pay_order((a.0, &a.1), (b.0, &b.1)));
    }

    /// What is left to place of a stay's `fee` once the part its lines were charged is taken
    /// off (never below zero).
    pub fn rest_of(&self, fee: Decimal) -> Decimal {
        (fee - self.charged).max(Decimal::ZERO)
    }

    /// Keeps the first payers whose bases reach `amount` (the [`StaySums::rest_of`] the fee):
    /// the later ones would bear none of it.
    pub fn keep_payers(&mut self, amount: Decimal) {
        let mut before = Decimal::ZERO;
        let kept = self
            .payers
            .iter()
            .take_while(|(base, _)| {
                let needed = before < amount;
                before += *base;
                needed
            })
            .count();
        self.payers.truncate(kept);
    }
}

/// The order in which a group's lines bear its flat fee: the larger base first, ties to the
/// smaller `act_id` (RULES §4).
pub fn pay_order(line: (Decimal, &str), other: (Decimal, &str)) -> std::cmp::Ordering {
    other.0.cmp(&line.0).then_with(|| line.1.cmp(other.1))
}

// ---------------------------------------------------------------------------------------------
// A counter's lists as text (`counters.*`, and the spill files)
//
// Entries are joined by `;`; a stay's start is written `id=YYYY-MM-DD`. Inside an id, `\`, `;`
// and `=` are escaped with `\`, so that any id reads back as written (counters format 2;
// format 1 wrote ids as they were, which read back the same unless they held one of the three).

/// Appends `id` to `out`, its `\`, `;` and `=` escaped.
fn write_escaped(out: &mut String, id: &str) {
    for c in id.chars() {
        if matches!(c, '\\' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends `ids` to `out` as a counter's `charged_stays` is written: escaped, joined by `;`.
pub fn write_ids<'a>(out: &mut String, ids: impl IntoIterator<Item = &'a str>) {
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        write_escaped(out, id);
    }
}

/// Appends `dated` to `out` as a counter's [`YearCounter::stay_starts`] is written:
/// `id=YYYY-MM-DD`, the id escaped, joined by `;`.
pub fn write_dated(out: &mut String, dated: &[(String, NaiveDate)]) {
    use std::fmt::Write as _;
    for (i, (id, date)) in dated.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        write_escaped(out, id);
        let _ = write!(out, "={}", date.format("%Y-%m-%d"));
    }
}

/// Appends `stays` to `out` as a counter's [`YearCounter::open_stays`] is written:
/// `id=first/bases/coefficients/copayment/daily_fees/charged`, then `/base/act_id` for each payer
/// (`first` a date `YYYY-MM-DD` or empty), the ids escaped, joined by `;`; in a payer's
/// `act_id`, `%` and `/` are written `%25` and `%2F`.
pub fn write_stay_sums(out: &mut String, stays: &[(String, StaySums)]) {
    use std::fmt::Write as _;
    for (i, (id, s)) in stays.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        write_escaped(out, id);
        out.push('=');
        if let Some(first) = s.first {
            let _ = write!(out, "{}", first.format("%Y-%m-%d"));
        }
        let _ = write!(
            out,
            "/{}/{}/{}/{}/{}",
            s.bases.normalize(),
            s.coefficients.normalize(),
            s.copayment.normalize(),
            s.daily_fees.normalize(),
            s.charged.normalize()
        );
        for (base, act_id) in &s.payers {
            let _ = write!(out, "/{}/", base.normalize());
            write_escaped(out, &act_id.replace('%', "%25").replace('/', "%2F"));
        }
    }
}

/// The largest sum a counter holds: the outputs' 16 integer digits (10 000 lines of 10^12 €).
const MAX_SUM: Decimal = Decimal::from_parts(1_874_919_424, 2_328_306, 0, false, 0);

/// Reads what [`write_stay_sums`] writes; `None` if an entry has no id, no `first` date or
/// empty text before its first `/`, or not five non-negative decimals (at most 10^16) then
/// pairs of a base and a non-empty `act_id`. Counters of format 3 have four decimals (no
/// `charged`): an entry's fields after its date are then even in number, where format 4's are
/// odd, and `charged` reads as 0.
pub fn parse_stay_sums(text: &str) -> Option<Vec<(String, StaySums)>> {
    let decimal = |text: &str| {
        let value = text.parse::<Decimal>().ok()?;
        (!value.is_sign_negative() && value <= MAX_SUM).then_some(value)
    };
    entries(text, true)?
        .into_iter()
        .map(|(id, sums)| {
            let sums = sums?;
            let mut fields = sums.split('/');
            let first = match fields.next()? {
                "" => None,
                date if date.len() == "YYYY-MM-DD".len() => {
                    Some(NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?)
                }
                _ => return None,
            };
            let with_charged = fields.clone().count() % 2 == 1;
            let mut next = || decimal(fields.next()?);
            let mut parsed = StaySums {
                first,
                bases: next()?,
                coefficients: next()?,
                copayment: next()?,
                daily_fees: next()?,
                charged: if with_charged { next()? } else { Decimal::ZERO },
                payers: Vec::new(),
            };
            while let Some(base) = fields.next() {
                let act_id = fields.next().filter(|a| !a.is_empty())?;
                let act_id = act_id.replace("%2F", "/").replace("%25", "%");
                parsed.payers.push((decimal(base)?, act_id));
            }
            (!id.is_empty()).then_some((id, parsed))
        })
        .collect()
}

/// The entries of `text`, split at its unescaped `;` (empty entries skipped) and unescaped:
/// each entry's text before its first unescaped `=` and, if `dated`, the text after it (`=`
/// is then no separator). `None` if `text` ends in a lone `\`.
fn entries(text: &str, dated: bool) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let (mut id, mut after) = (String::new(), None::<String>);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' => chars.next()?,
            ';' => {
                if !id.is_empty() || after.is_some() {
                    out.push((std::mem::take(&mut id), after.take()));
                }
                continue;
            }
            '=' if dated && after.is_none() => {
                after = Some(String::new());
                continue;
            }
            c => c,
        };
        after.as_mut().unwrap_or(&mut id).push(c);
    }
    if !id.is_empty() || after.is_some() {
        out.push((id, after));
    }
    Some(out)
}

/// Reads what [`write_ids`] writes; `None` if it ends in a lone `\`.
pub fn parse_ids(text: &str) -> Option<Vec<String>> {
    Some(
        entries(text, false)?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    )
}

/// Reads what [`write_dated`] writes; `None` if an entry has no id, or no `YYYY-MM-DD` date
/// after its `=`.
pub fn parse_dated(text: &str) -> Option<Vec<(String, NaiveDate)>> {
    entries(text, true)?
        .into_iter()
        .map(|(id, date)| {
            let date = date?;
            // chrono alone would take `2024-1-3` too.
            if id.is_empty() || date.len() != "YYYY-MM-DD".len() {
                return None;
            }
            Some((id, NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok()?))
        })
        .collect()
}

/// The computed amounts of one act (SPEC §4, `acts.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub act_id: Id,
    pub patient_id: Id,
    pub care_date: NaiveDate,
    pub category: Category,
    pub quantity: u32,
    /// *base de remboursement*
    pub base: Decimal,
    pub billed: Decimal,
    /// *dépassement d'honoraires*
    pub overbilling: Decimal,
    pub situation: Situation,
    /// Rate in percent (70 means 70 %).
    pub rate: Decimal,
    pub amo_gross: Decimal,
    /// *ticket modérateur*
    pub copayment: Decimal,
    /// Out-of-pathway reduction (*majoration hors parcours*).
    pub majoration: Decimal,
    /// 24 € flat fee on heavy acts (*participation forfaitaire de 24 €*, PAL).
    pub pal: Decimal,
    /// *participation forfaitaire*
    pub pf: Decimal,
    /// *franchise médicale*
    pub franchise: Decimal,
    /// *forfait patient urgences* (FPU).
    pub flat_fee: Decimal,
    pub amo_paid: Decimal,
    /// *reste à charge*
    pub rac: Decimal,
    /// Ids of the rules that changed the amount, in the order they applied.
    pub rules: RuleIds,
    /// Audit findings (SPEC §5).
    pub flags: Vec<&'static str>,
    pub recorded_amo: Option<Decimal>,
    /// The act's carried columns (`--keep-columns`), written after the columns above.
    pub carried: Carried,
}

/// An input row that was not computed, and why (SPEC §4, `rejects.csv`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reject {
    /// The input file, as given on the command line.
    pub file: String,
    /// 1-based data row number (the header is row 0).
    pub row: u64,
    pub act_id: String,
    pub column: String,
    /// A stable machine-readable reason: `missing_value`, `bad_date`, `bad_decimal`,
    /// `unknown_category`, `duplicate_act_id`, `unknown_patient`, `out_of_range`,
    /// `care_before_birth`, `no_rule_at_date`, …
    pub reason: String,
    pub value: String,
}

impl Reject {
    /// The order of `rejects.csv`: by file, row, then column.
    pub fn order(&self, other: &Reject) -> std::cmp::Ordering {
        (&self.file, self.row, &self.column).cmp(&(&other.file, other.row, &other.column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn counter_lists_read_back_as_written_whatever_the_ids() {
        let ids = ["S1", "a;b", "x=y", "back\\slash", "\\;=", "é"];
        let mut text = String::new();
        write_ids(&mut text, ids);
        assert_eq!(text, "S1;a\\;b;x\\=y;back\\\\slash;\\\\\\;\\=;é");
        assert_eq!(parse_ids(&text).unwrap(), ids);

        let dated: Vec<(String, NaiveDate)> = (1..)
            .zip(ids)
            .map(|(d, id)| (id.to_string(), day(2024, 1, d)))
            .collect();
        text.clear();
        write_dated(&mut text, &dated);
        assert!(
            text.starts_with("S1=2024-01-01;a\\;b=2024-01-02;x\\=y=2024-01-03;"),
            "{text}"
        );
        assert_eq!(parse_dated(&text).unwrap(), dated);

        // As format 1 wrote them: ids unescaped (an `=` in a charged stay is no separator),
        // empty entries skipped.
        assert_eq!(parse_ids("S2;;x=y").unwrap(), ["S2", "x=y"]);
        assert_eq!(parse_ids("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_ids("S1\\"), None);
        for bad in [
            "S1",
            "=2024-01-01",
            "S1=2024-1-1",
            "S1=2024-02-30",
            "S1=2024-01-01\\",
        ] {
            assert_eq!(parse_dated(bad), None, "{bad}");
        }
    }

    #[test]
    fn open_stays_read_back_as_written_whatever_the_ids() {
        use rust_decimal_macros::dec;
        let sums = |first: Option<NaiveDate>, payers: &[(Decimal, &str)]| StaySums {
            first,
            bases: dec!(70.00),
            coefficients: dec!(12.5),
            copayment: dec!(14.00),
            daily_fees: dec!(0),
            charged: dec!(10.00),
            payers: payers.iter().map(|(b, a)| (*b, a.to_string())).collect(),
        };
        let stays = vec![
            ("S1".to_string(), sums(None, &[])),
            (
                "a;b=c".to_string(),
                sums(
                    Some(day(2024, 12, 30)),
                    &[(dec!(10), "A/1;=\\%2F%"), (dec!(9.5), "B")],
                ),
            ),
        ];
        let mut text = String::new();
        write_stay_sums(&mut text, &stays);
        assert_eq!(
            text,
            "S1=/70/12.5/14/0/10;a\\;b\\=c=2024-12-30/70/12.5/14/0/10/10/A%2F1\\;\\=\\\\%252F%25/9.5/B"
        );
        assert_eq!(parse_stay_sums(&text).unwrap(), stays);
        // Format 3 (no `charged`): read as nothing charged.
        let format_3 = parse_stay_sums("S1=2024-12-30/70/12.5/14/0/10/A/9.5/B").unwrap();
        assert_eq!(format_3[0].1.charged, dec!(0));
        assert_eq!(
            format_3[0].1.payers,
            [(dec!(10), "A".to_string()), (dec!(9.5), "B".to_string())]
        );
        assert_eq!(
            parse_stay_sums("S1=/1/2/3/4").unwrap()[0].1.charged,
            dec!(0)
        );
        assert_eq!(
            parse_stay_sums("S1=/1/2/3/4/5").unwrap()[0].1.charged,
            dec!(5)
        );
        for bad in [
            "S1",
            "=/1/2/3/4",
            "S1=/1/2/3",
            "S1=/1/2/3/x",
            "S1=/1/-2/3/4",
            "S1=/1/2/3/4/-5",
            "S1=/1/2/3/4/5/",
            "S1=/1/2/3/4/5/6/",
            "S1=2024-1-1/1/2/3/4",
            "S1=/79228162514264337593543950335/0/0/0",
        ] {
            assert_eq!(parse_stay_sums(bad), None, "{bad}");
        }
    }
}
