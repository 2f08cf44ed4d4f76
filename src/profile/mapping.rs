//! The code tables of `profiles/`: SNDS / Open DAMIR codes mapped onto the canonical model.
//!
//! Each table is a `;`-separated data file built from the official value lists (IR_NAT_V,
//! IR_EXO_V, IR_ASU_V, IR_QPS_V, the Open DAMIR lexicon) with rac's expert judgement, one row per
//! code with its label and a `source` column saying where the code and the choice come from.
//! They are compiled into the binary ([`Mapping::builtin`]).
//!
//! A code absent from a table is never dropped silently: lookups through [`Unmapped`] count it,
//! and the profiles report each unmapped code once with its count.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::engine::category::FranchiseKind;
use crate::model::{Category, InsuranceNature, Pathway, Situation};

use super::ProfileError;

/// `profiles/prs_nat.csv`: PRS_NAT / PRS_NAT_REF → category or line class.
pub const PRS_NAT_CSV: &str = include_str!("../../profiles/prs_nat.csv");
/// `profiles/exo_mtf.csv`: EXO_MTF → declared exoneration, ALD relation, candidate situations.
pub const EXO_MTF_CSV: &str = include_str!("../../profiles/exo_mtf.csv");
/// `profiles/asu_nat.csv`: ASU_NAT / RGO_ASU_NAT → insurance nature.
pub const ASU_NAT_CSV: &str = include_str!("../../profiles/asu_nat.csv");
/// `profiles/pds_qcp.csv`: PRS_PDS_QCP → care pathway.
pub const PDS_QCP_CSV: &str = include_str!("../../profiles/pds_qcp.csv");
/// `profiles/rem_typ.csv`: PRS_REM_TYP / ARO_REM_TYP → which part of the payment a line is.
pub const REM_TYP_CSV: &str = include_str!("../../profiles/rem_typ.csv");

/// What a PRS_NAT code is, for rac.
#[derive(Debug, Clone, PartialEq)]
pub enum Nature {
    /// A care act. One category, or several candidates when the code alone does not decide
    /// (pharmacy fees follow the drug's rate, travel indemnities the professional's); the
    /// first candidate is the default.
    Act(Vec<Category>),
    /// A recorded participation forfaitaire (negative line).
    Pf,
    /// A recorded franchise (negative line) of this kind.
    Franchise(FranchiseKind),
    /// A PF or franchise recovered without its reference act (1977, 1978).
    DeductionUnlinked,
    /// The out-of-pathway majoration as a line of its own (1957).
    MajorationOutOfPathway,
    /// The 24 € participation on heavy acts (PAL).
    Pal,
    /// The forfait patient urgences.
    Fpu,
    /// Not a care act rac computes; the reason (`professional_payment`, `cash_benefit`, …).
    Excluded(String),
}

/// One row of `profiles/prs_nat.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrsNat {
    pub code: u32,
    pub label: String,
    pub nature: Nature,
    pub source: String,
}

/// A situation an EXO_MTF code allows for the AMO legal part (Open DAMIR audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SituationHint {
    Situation(Situation),
    /// A heavy act of a 24 € flat-fee group: `pal.rate` (RULES §4).
    PalHeavyAct,
    /// A stay line from day 31: `hospital.long_stay_rate` (RULES §7.5).
    LongStay,
    /// Unknown (EXO_MTF 99): any situation's rate is accepted.
    Any,
}

/// One row of `profiles/exo_mtf.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExoMtf {
    pub code: u32,
    pub label: String,
    /// The canonical `exo_code` (`0`, `3`, `4`, `5`), if the code declares one.
    pub exo_code: Option<String>,
    /// The act is in the patient's ALD protocol.
    pub ald_related: bool,
    pub situations: Vec<SituationHint>,
    pub source: String,
}

/// One row of `profiles/asu_nat.csv`; `nature` is `None` for insurances that are not care
/// (death, invalidity pensions, extra-legal benefits).
#[derive(Debug, Clone, PartialEq)]
pub struct AsuNat {
    pub code: u32,
    pub label: String,
    pub nature: Option<InsuranceNature>,
    pub source: String,
}

/// One row of `profiles/pds_qcp.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PdsQcp {
    pub code: u32,
    pub label: String,
    pub pathway: Pathway,
    pub source: String,
}

/// Which part of the payment a line is (PRS_REM_TYP, ARO_REM_TYP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The AMO legal part: what rac's `amo_gross` is.
    Legal,
    /// The copayment taken over by the C2S, the AME or a particular situation: rac's `css` /
    /// `ame` situations put it into `amo_paid` (100 %).
    C2s,
    /// The régime local d'Alsace-Moselle complement: rac's `alsace_moselle` regime.
    AlsaceMoselle,
    /// Another complementary part rac has no rule for.
    Supplement,
    /// Unknown (other schemes in Open DAMIR).
    Unknown,
}

/// One row of `profiles/rem_typ.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemTyp {
    pub code: u32,
    pub label: String,
    pub part: Part,
    pub source: String,
}

/// Codes met that no table maps, counted per (column, code).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unmapped {
    counts: BTreeMap<(String, String), u64>,
}

impl Unmapped {
    /// Counts one occurrence of `code` in `column`.
    pub fn record(&mut self, column: &str, code: &str) {
        *self
            .counts
            .entry((column.to_string(), code.to_string()))
            .or_default() += 1;
    }

    /// `(column, code, count)`, sorted by column then code.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.counts
            .iter()
            .map(|((c, k), n)| (c.as_str(), k.as_str(), *n))
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Number of distinct unmapped codes.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Occurrences of one code.
    pub fn count(&self, column: &str, code: &str) -> u64 {
        self.counts
            .get(&(column.to_string(), code.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// The loaded tables.
#[derive(Debug, Clone)]
pub struct Mapping {
    prs_nat: HashMap<u32, PrsNat>,
    exo_mtf: HashMap<u32, ExoMtf>,
    asu_nat: HashMap<u32, AsuNat>,
    pds_qcp: HashMap<u32, PdsQcp>,
    rem_typ: HashMap<u32, RemTyp>,
}

/// Parses a code as written in SNDS and Open DAMIR files (`01`, `42`, ` 3512`, `42.0`).
pub fn parse_code(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_suffix(".0").unwrap_or(t);
    t.parse().ok()
}

impl Mapping {
    /// The tables shipped in `profiles/`, parsed once.
    pub fn builtin() -> &'static Mapping {
        static MAPPING: OnceLock<Mapping> = OnceLock::new();
        MAPPING.get_or_init(|| {
            Mapping::load(
                PRS_NAT_CSV,
                EXO_MTF_CSV,
                ASU_NAT_CSV,
                PDS_QCP_CSV,
                REM_TYP_CSV,
            )
            .expect("the built-in profile tables are valid")
        })
    }

    /// Parses the five tables (the texts of the files of `profiles/`).
    pub fn load(
        prs_nat: &str,
        exo_mtf: &str,
        asu_nat: &str,
        pds_qcp: &str,
        rem_typ: &str,
    ) -> Result<Mapping, ProfileError> {
        let mut m = Mapping {
            prs_nat: HashMap::new(),
            exo_mtf: HashMap::new(),
            asu_nat: HashMap::new(),
            pds_qcp: HashMap::new(),
            rem_typ: HashMap::new(),
        };
        for (line, row) in rows("prs_nat.csv", prs_nat, 4)? {
            let bad = |message: String| table_error("prs_nat.csv", line, message);
            let code = code_of(&row[0]).ok_or_else(|| bad(format!("bad code `{}`", row[0])))?;
            let nature = parse_nature(&row[2]).map_err(bad)?;
            insert(
                &mut m.prs_nat,
                "prs_nat.csv",
                line,
                code,
                PrsNat {
                    code,
                    label: row[1].clone(),
                    nature,
                    source: row[3].clone(),
                },
            )?;
        }
        for (line, row) in rows("exo_mtf.csv", exo_mtf, 6)? {
            let bad = |message: String| table_error("exo_mtf.csv", line, message);
            let code = code_of(&row[0]).ok_or_else(|| bad(format!("bad code `{}`", row[0])))?;
            let ald_related = match row[3].as_str() {
                "true" => true,
                "false" => false,
                other => return Err(bad(format!("ald_related `{other}` is not true/false"))),
            };
            let situations = row[4]
                .split('|')
                .map(|s| parse_hint(s).ok_or_else(|| bad(format!("unknown situation `{s}`"))))
                .collect::<Result<Vec<_>, _>>()?;
            let exo_code = Some(row[2].clone()).filter(|s| !s.is_empty());
            insert(
                &mut m.exo_mtf,
                "exo_mtf.csv",
                line,
                code,
                ExoMtf {
                    code,
                    label: row[1].clone(),
                    exo_code,
                    ald_related,
                    situations,
                    source: row[5].clone(),
                },
            )?;
        }
        for (line, row) in rows("asu_nat.csv", asu_nat, 4)? {
            let bad = |message: String| table_error("asu_nat.csv", line, message);
            let code = code_of(&row[0]).ok_or_else(|| bad(format!("bad code `{}`", row[0])))?;
            let nature = match row[2].as_str() {
                "excluded" => None,
                other => Some(
                    InsuranceNature::parse(other)
                        .ok_or_else(|| bad(format!("unknown insurance nature `{other}`")))?,
                ),
            };
            insert(
                &mut m.asu_nat,
                "asu_nat.csv",
                line,
                code,
                AsuNat {
                    code,
                    label: row[1].clone(),
                    nature,
                    source: row[3].clone(),
                },
            )?;
        }
        for (line, row) in rows("pds_qcp.csv", pds_qcp, 4)? {
            let bad = |message: String| table_error("pds_qcp.csv", line, message);
            let code = code_of(&row[0]).ok_or_else(|| bad(format!("bad code `{}`", row[0])))?;
            let pathway = Pathway::parse(&row[2])
                .ok_or_else(|| bad(format!("unknown pathway `{}`", row[2])))?;
            insert(
                &mut m.pds_qcp,
                "pds_qcp.csv",
                line,
                code,
                PdsQcp {
                    code,
                    label: row[1].clone(),
                    pathway,
                    source: row[3].clone(),
                },
            )?;
        }
        for (line, row) in rows("rem_typ.csv", rem_typ, 4)? {
            let bad = |message: String| table_error("rem_typ.csv", line, message);
            let code = code_of(&row[0]).ok_or_else(|| bad(format!("bad code `{}`", row[0])))?;
            let part = match row[2].as_str() {
                "legal" => Part::Legal,
                "c2s" => Part::C2s,
                "alsace_moselle" => Part::AlsaceMoselle,
                "supplement" => Part::Supplement,
                "unknown" => Part::Unknown,
                other => return Err(bad(format!("unknown part `{other}`"))),
            };
            insert(
                &mut m.rem_typ,
                "rem_typ.csv",
                line,
                code,
                RemTyp {
                    code,
                    label: row[1].clone(),
                    part,
                    source: row[3].clone(),
                },
            )?;
        }
        Ok(m)
    }

    /// The row of a PRS_NAT / PRS_NAT_REF code.
    pub fn prs_nat(&self, code: u32) -> Option<&PrsNat> {
        self.prs_nat.get(&code)
    }

    pub fn exo_mtf(&self, code: u32) -> Option<&ExoMtf> {
        self.exo_mtf.get(&code)
    }

    pub fn asu_nat(&self, code: u32) -> Option<&AsuNat> {
        self.asu_nat.get(&code)
    }

    pub fn pds_qcp(&self, code: u32) -> Option<&PdsQcp> {
        self.pds_qcp.get(&code)
    }

    pub fn rem_typ(&self, code: u32) -> Option<&RemTyp> {
        self.rem_typ.get(&code)
    }

    /// Looks a code of `column` up in its table, counting it in `unmapped` when the text is
    /// not a code or the table lacks it. Empty text is not counted (a null, for the caller to
    /// default). Columns: `PRS_NAT`, `PRS_NAT_REF`, `EXO_MTF`, `ASU_NAT`, `RGO_ASU_NAT`,
    /// `PRS_PDS_QCP`, `PRS_REM_TYP`.
    pub fn lookup<'a, T>(
        &'a self,
        column: &str,
        text: &str,
        table: impl Fn(&'a Mapping, u32) -> Option<&'a T>,
        unmapped: &mut Unmapped,
    ) -> Option<&'a T> {
        if text.trim().is_empty() {
            return None;
        }
        let found = parse_code(text).and_then(|c| table(self, c));
        if found.is_none() {
            unmapped.record(column, text.trim());
        }
        found
    }

    /// Number of PRS_NAT codes mapped.
    pub fn prs_nat_len(&self) -> usize {
        self.prs_nat.len()
    }

    /// Every PRS_NAT row, sorted by code.
    pub fn prs_nat_rows(&self) -> Vec<&PrsNat> {
        let mut v: Vec<&PrsNat> = self.prs_nat.values().collect();
        v.sort_by_key(|r| r.code);
        v
    }
}

fn table_error(origin: &str, line: usize, message: String) -> ProfileError {
    ProfileError::Table {
        origin: origin.to_string(),
        line,
        message,
    }
}

fn code_of(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

fn insert<T>(
    map: &mut HashMap<u32, T>,
    origin: &str,
    line: usize,
    code: u32,
    row: T,
) -> Result<(), ProfileError> {
    if map.insert(code, row).is_some() {
        return Err(table_error(
            origin,
            line,
            format!("code {code} is listed twice"),
        ));
    }
    Ok(())
}

/// The data rows of a table with their 1-based line numbers (the header is line 1).
fn rows(origin: &str, text: &str, width: usize) -> Result<Vec<(usize, Vec<String>)>, ProfileError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| table_error(origin, line, e.to_string()))?;
        if record.len() != width {
            return Err(table_error(
                origin,
                line,
                format!("{} fields, expected {width}", record.len()),
            ));
        }
        out.push((line, record.iter().map(|s| s.trim().to_string()).collect()));
    }
    Ok(out)
}

fn parse_nature(text: &str) -> Result<Nature, String> {
    Ok(match text {
        "pf" => Nature::Pf,
        "franchise_drug" => Nature::Franchise(FranchiseKind::DrugBox),
        "franchise_paramedical" => Nature::Franchise(FranchiseKind::Paramedical),
        "franchise_transport" => Nature::Franchise(FranchiseKind::Transport),
        "deduction_unlinked" => Nature::DeductionUnlinked,
        "majoration_out_of_pathway" => Nature::MajorationOutOfPathway,
        "pal" => Nature::Pal,
        "fpu" => Nature::Fpu,
        other => {
            if let Some(reason) = other.strip_prefix("excluded:") {
                if reason.is_empty() {
                    return Err("`excluded:` needs a reason".to_string());
                }
                Nature::Excluded(reason.to_string())
            } else {
                let cats = other
                    .split('|')
                    .map(|c| Category::parse(c).ok_or_else(|| format!("unknown category `{c}`")))
                    .collect::<Result<Vec<_>, _>>()?;
                Nature::Act(cats)
            }
        }
    })
}

fn parse_hint(text: &str) -> Option<SituationHint> {
    Some(match text {
        "pal_heavy_act" => SituationHint::PalHeavyAct,
        "long_stay" => SituationHint::LongStay,
        "any" => SituationHint::Any,
        other => SituationHint::Situation(Situation::parse(other)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_load_and_cover_the_usual_codes() {
        let m = Mapping::builtin();
        assert!(m.prs_nat_len() > 1500);
        let cat = |code| match &m.prs_nat(code).unwrap().nature {
            Nature::Act(c) => c[0],
            other => panic!("{code}: {other:?}"),
        };
        assert_eq!(cat(1110), Category::Consultation); // G
        assert_eq!(cat(1112), Category::Consultation); // CS
        assert_eq!(cat(1103), Category::Consultation); // APC
        assert_eq!(cat(1352), Category::MedicalAct); // ATM
        assert_eq!(cat(1324), Category::Imaging); // ADE
        assert_eq!(cat(3211), Category::Biology); // B
        assert_eq!(cat(3111), Category::Paramedical); // AMI
        assert_eq!(cat(3313), Category::Drug65); // PH7
        assert_eq!(cat(3312), Category::Drug30); // PH4
        assert_eq!(cat(3341), Category::Drug15); // PH2
        assert_eq!(cat(3311), Category::Drug100); // PH1
        assert_eq!(cat(1451), Category::Dental);
        assert_eq!(cat(3563), Category::Optical);
        assert_eq!(cat(3550), Category::Hearing);
        assert_eq!(cat(3512), Category::Device);
        assert_eq!(cat(4214), Category::Transport);
        assert_eq!(cat(2111), Category::HospitalStay);
        assert_eq!(cat(2251), Category::DailyFee);
        assert_eq!(m.prs_nat(1952).unwrap().nature, Nature::Pf);
        assert_eq!(
            m.prs_nat(1972).unwrap().nature,
            Nature::Franchise(FranchiseKind::DrugBox)
        );
        assert!(matches!(
            m.prs_nat(6111).unwrap().nature,
            Nature::Excluded(_)
        ));
        assert_eq!(m.exo_mtf(42).unwrap().exo_code.as_deref(), Some("4"));
        assert!(m.exo_mtf(42).unwrap().ald_related);
        assert_eq!(m.asu_nat(40).unwrap().nature, Some(InsuranceNature::AtMp));
        assert_eq!(m.pds_qcp(24).unwrap().pathway, Pathway::OutOfPathway);
        assert_eq!(m.rem_typ(5).unwrap().part, Part::C2s);
    }

    #[test]
    fn unmapped_codes_are_counted_not_dropped() {
        let m = Mapping::builtin();
        let mut u = Unmapped::default();
        assert!(
            m.lookup("PRS_NAT", "1110", Mapping::prs_nat, &mut u)
                .is_some()
        );
        assert!(
            m.lookup("PRS_NAT", "12345", Mapping::prs_nat, &mut u)
                .is_none()
        );
        assert!(
            m.lookup("PRS_NAT", "12345", Mapping::prs_nat, &mut u)
                .is_none()
        );
        assert!(m.lookup("EXO_MTF", "x", Mapping::exo_mtf, &mut u).is_none());
        assert!(m.lookup("EXO_MTF", "", Mapping::exo_mtf, &mut u).is_none());
        assert_eq!(u.count("PRS_NAT", "12345"), 2);
        assert_eq!(u.count("EXO_MTF", "x"), 1);
        assert_eq!(u.len(), 2);
    }

    #[test]
    fn a_bad_table_is_refused_with_its_line() {
        let err = Mapping::load(
            "code;label;category;source\n1;X;nope;s\n",
            EXO_MTF_CSV,
            ASU_NAT_CSV,
            PDS_QCP_CSV,
            REM_TYP_CSV,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("prs_nat.csv") && err.contains("line 2"),
            "{err}"
        );
        let dup = Mapping::load(
            "code;label;category;source\n1;X;consultation;s\n1;Y;biology;s\n",
            EXO_MTF_CSV,
            ASU_NAT_CSV,
            PDS_QCP_CSV,
            REM_TYP_CSV,
        )
        .unwrap_err()
        .to_string();
        assert!(dup.contains("twice"), "{dup}");
    }
}
