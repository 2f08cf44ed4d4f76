//! The SNDS profile: DCIR extracts read as they come, mapped onto canonical acts, beneficiaries
//! and rights.
//!
//! # Tables
//!
//! Given a folder, [`read_snds_acts`] reads every file whose name starts with a table name
//! (case-insensitive, `.csv` or `.csv.gz`, `;` or `,` separated — sniffed from the header):
//!
//! | table | what rac takes |
//! |---|---|
//! | `ER_PRS_F` (DCIR) or `NS_PRS_F` (DCIRS) | the prestations: acts, and the recorded PF / franchise lines |
//! | `IR_BEN_R` | beneficiaries: birth year and month (`BEN_NAI_ANN`, `BEN_NAI_MOI`) → the first of the month |
//! | `IR_IMB_R` | rights: ALD (`IMB_ETM_NAT` 41, 43, 45), invalidity (13), military pension (21), maternity (55) |
//! | `IR_MAT_R` | rights: the maternity window, from the presumed pregnancy date to 12 days after the delivery month |
//! | `IR_ORC_R` | rights: C2S (`BEN_CTA_TYP` 89) |
//!
//! Given a file, it is read as the prestations table alone (beneficiaries then come from
//! `BEN_NAI_ANN` on the prestations, born on 1 January).
//!
//! # Mapping (tables of `profiles/`, see [`super::mapping`])
//!
//! - `act_id`: the nine DCIR join keys (`FLX_DIS_DTD`, `FLX_TRT_DTD`, `FLX_EMT_TYP`,
//!   `FLX_EMT_NUM`, `FLX_EMT_ORD`, `ORG_CLE_NUM`, `DCT_ORD_NUM`, `PRS_ORD_NUM`, `REM_TYP_AFF`)
//!   joined by `:`; in DCIRS `CLE_DCI_JNT`; else `<file>:<row>`. The claim (*décompte*) is the
//!   first seven keys.
//! - `patient_id`: `BEN_NIR_PSA:BEN_RNG_GEM` (DCIRS: `BEN_IDT_ANO`).
//! - `care_date` = `EXE_SOI_DTD`; `end_date` = `EXE_SOI_DTF` for stay and daily-fee lines.
//! - `category` from `PRS_NAT_REF` (`prs_nat.csv`); when the code allows several (pharmacy fees,
//!   travel indemnities), the one whose rate in the built-in rules is the recorded
//!   `RGO_REM_TAU`, else the first.
//! - base = `BSE_REM_BSE` + `CPL_REM_BSE` (DCIRS: `CPM_REM_BSE`); `quantity` = |`PRS_ACT_QTE`|
//!   (at least 1; past the canonical `QUANTITY_RANGE`, 1 000 000, the line is rejected
//!   `out_of_range`); `tariff` = base / quantity when that is exact to the cent, else the base as
//!   one unit; `billed` = `PRS_PAI_MNT`; `coefficient` = `PRS_ACT_CFT` or `PRS_ACT_COG`.
//! - `insurance_nature` from `RGO_ASU_NAT` (`asu_nat.csv`); `exo_code`, `ald_related` from
//!   `EXO_MTF` (`exo_mtf.csv`); `pathway` from `PRS_PDS_QCP` (`pds_qcp.csv`).
//! - `practitioner_id` = `PFS_EXE_NUM`, `specialty` = `PSE_SPE_COD`; `stay_id` =
//!   `patient:PRS_HOS_DTD` when a hospitalisation start is given, and the line is then
//!   `inpatient`.
//! - regime `alsace_moselle` for a patient with a line at `MTM_NAT` 2 or 4; `BEN_CMU_TOP` = 1
//!   gives a `css` right on that care day (merged into periods) when `IR_ORC_R` is absent.
//! - `recorded_amo` = `BSE_REM_MNT` + `CPL_REM_MNT` + the recorded PF and franchise lines
//!   attached to the act (negative): what the caisse paid net, comparable to rac's `amo_paid`.
//!
//! # SNDS specifics, and the choices made
//!
//! - **Filters**: `DPN_QLF` or `PRS_DPN_QLP` = 71 (*remboursement pour information*: lines sent
//!   for information, paid elsewhere) and `CPL_MAJ_TOP` = 2 (detail of a majoration already
//!   counted) are left out, counted in [`SndsExtract::filtered`]; so are lines whose
//!   `PRS_NAT_REF` is not care (`excluded:` in `prs_nat.csv`) or whose insurance is not care.
//! - **Recorded deductions**: PF and franchise lines (PRS_NAT 1951–1978), the out-of-pathway
//!   majoration (1957), the 24 € participation and the FPU lines are not acts: they become
//!   [`RecordedDeduction`]s, attached to the act of the same claim, patient and day that bears
//!   them (PF: doctor, biology, imaging acts; franchise: by kind), for `audit` to compare with
//!   rac's `pf` and `franchise`. In DCIRS, `ASS_PAF_MNT` on the act line is that deduction.
//! - **One care over several lines**: a line with `PRS_ACT_NBR` = 0 (a majoration or complement,
//!   not a counted act) is folded into the counted act of the same claim, patient, day,
//!   practitioner and category when that act has one unit: its base, expense and amount are
//!   added (so the PF is charged once per act, as the caisse does). Otherwise it stays an act.
//! - **Regularisations** (negative `PRS_ACT_QTE` or base): netted against the earlier line of
//!   the same patient, day, code, practitioner and unit base in the extract (its quantity,
//!   expense and amounts are reduced; a line netted to zero is dropped). One with no such line
//!   (its original is in an earlier extract) is rejected with reason
//!   `regularisation_without_original`.
//! - **Birth dates**: year and month only; the first of the month. The minors' rule uses the
//!   age on 1 January (RULES §8), which the year decides; the newborn situation (≤ 30 days)
//!   may be off by the days of the month.
//! - **Rights**: with `IR_IMB_R`, rights decide the ALD / pension situations
//!   ([`SndsExtract::rights_known`]); AT/MP periods of `IR_IMB_R` (11, 12) are not rights in
//!   rac (the act's `RGO_ASU_NAT` decides) and are counted in [`SndsExtract::skipped_rights`],
//!   as are ACS contracts. An end date of `1600-01-01` or empty is open.
//! - `ER_ARO_F` (complementary reimbursements) is not needed for the AMO amounts and not read.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::Decimal;

use crate::engine::category::{FranchiseKind, bears_pf, franchise_kind, in_pal_group};
use crate::io::read::csv_source::{QuoteScan, field_name, unclosed_quote};
use crate::io::read::{QUANTITY_RANGE, within_amount_range};
use crate::model::{
    Act, Beneficiary, Category, Id, InsuranceNature, Pathway, Regime, Reject, RightKind,
    RightPeriod, Setting,
};
use crate::rules::{Param, RuleBook};

use super::mapping::{Mapping, Nature, Unmapped, parse_code};
use super::{ProfileError, parse_amount};

/// What a recorded deduction line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeductionKind {
    /// Participation forfaitaire (1951, 1952).
    Pf,
    /// Franchise of a kind (1971–1976).
    Franchise(FranchiseKind),
    /// PF or franchise without its reference act (1977, 1978).
    Unlinked,
    /// Out-of-pathway majoration (1957).
    OutOfPathwayMajoration,
    /// 24 € participation on heavy acts.
    Pal,
    /// Forfait patient urgences.
    Fpu,
    /// DCIRS `ASS_PAF_MNT`: PF and franchises of the act together.
    PfAndFranchise,
}

/// A PF, franchise or other participation recorded by the caisse.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedDeduction {
    /// Its own line id.
    pub line_id: String,
    pub patient_id: String,
    pub care_date: NaiveDate,
    pub kind: DeductionKind,
    /// What the patient was charged, positive (the line's amount is its opposite).
    pub amount: Decimal,
    /// Units (acts, boxes, trips).
    pub quantity: i64,
    /// The act it was attached to, if one of the same claim, patient and day bears it.
    pub act_id: Option<String>,
}

/// An SNDS extract mapped onto the canonical model.
#[derive(Debug, Clone, Default)]
pub struct SndsExtract {
    /// The acts, in file order.
    pub acts: Vec<Act>,
    /// Where each act of `acts` was read: its file (in `act_files`) and data row (of an act
    /// folded from several lines, its counted line's), for the rejects the engine finds.
    pub origins: Vec<(u32, u64)>,
    /// The prestations files the acts were read from, as `origins` number them.
    pub act_files: Vec<String>,
    /// One per patient (from IR_BEN_R, else from the prestations), sorted by id.
    pub beneficiaries: Vec<Beneficiary>,
    /// Rights periods, sorted by patient, right, start.
    pub rights: Vec<RightPeriod>,
    /// `IR_IMB_R` was read: the rights decide the ALD and pension situations (pass as the
    /// engine's `rights_known`).
    pub rights_known: bool,
    /// Recorded PF, franchise and participation lines.
    pub deductions: Vec<RecordedDeduction>,
    /// Rows that could not be mapped (SPEC §4 `rejects.csv` reasons): the prestations',
    /// then the referentials' (beneficiaries, rights).
    pub rejects: Vec<Reject>,
    /// Rows of the referentials among `rejects` (the last ones): not acts.
    pub other_rejects: u64,
    /// Rows left out on purpose, by reason (`DPN_QLF=71`, `excluded:cash_benefit`…).
    pub filtered: BTreeMap<String, u64>,
    /// Rights rows not turned into rights, by reason.
    pub skipped_rights: BTreeMap<String, u64>,
    /// Regularisation lines netted against their original.
    pub regularised: u64,
    /// Majoration / complement lines folded into their act.
    pub merged: u64,
    /// Duplicate beneficiary rows (the first is kept).
    pub duplicate_beneficiaries: u64,
    /// Codes no table maps, with their counts.
    pub unmapped: Unmapped,
    /// The files read, in order.
    pub files: Vec<String>,
    /// The entries of the extract's folder not read (tables rac does not use, such as
    /// `ER_ARO_F`, other files, subfolders), sorted.
    pub not_read: Vec<String>,
}

impl SndsExtract {
    /// PF recorded for an act (sum of its attached PF lines).
    pub fn recorded_pf(&self, act_id: &str) -> Decimal {
        self.attached(act_id, |k| k == DeductionKind::Pf)
    }

    /// Franchises recorded for an act.
    pub fn recorded_franchise(&self, act_id: &str) -> Decimal {
        self.attached(act_id, |k| matches!(k, DeductionKind::Franchise(_)))
    }

    /// Every deduction attached to an act, of the kinds `keep` selects.
    pub fn attached(&self, act_id: &str, keep: impl Fn(DeductionKind) -> bool) -> Decimal {
        self.deductions
            .iter()
            .filter(|d| d.act_id.as_deref() == Some(act_id) && keep(d.kind))
            .map(|d| d.amount)
            .sum()
    }
}

/// Table names recognised in a folder.
const PRESTATIONS: &[&str] = &["ER_PRS_F", "NS_PRS_F"];
const IR_BEN_R: &str = "IR_BEN_R";
const IR_IMB_R: &str = "IR_IMB_R";
const IR_MAT_R: &str = "IR_MAT_R";
const IR_ORC_R: &str = "IR_ORC_R";

/// DCIR join keys, in order; the first seven identify the claim (*décompte*).
const JOIN_KEYS: &[&str] = &[
    "FLX_DIS_DTD",
    "FLX_TRT_DTD",
    "FLX_EMT_TYP",
    "FLX_EMT_NUM",
    "FLX_EMT_ORD",
    "ORG_CLE_NUM",
    "DCT_ORD_NUM",
    "PRS_ORD_NUM",
    "REM_TYP_AFF",
];

/// Reads an SNDS extract: a folder of DCIR / DCIRS tables, or one prestations file. See the
/// module documentation for the tables, the mapping and the choices.
///
/// Errors when a file cannot be read or a table lacks a column it cannot do without
/// (`PRS_NAT_REF`, `EXE_SOI_DTD`, a patient id); a bad row is a reject, an unmapped code is
/// counted, never dropped silently.
pub fn read_snds_acts(path: &Path) -> Result<SndsExtract, ProfileError> {
    let mut out = SndsExtract::default();
    let mut tables: BTreeMap<&'static str, Vec<PathBuf>> = BTreeMap::new();
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| !n.as_encoded_bytes().starts_with(b"."))
            })
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_uppercase())
                .unwrap_or_default();
            if !file.is_file() || !(name.ends_with(".CSV") || name.ends_with(".CSV.GZ")) {
                out.not_read.push(file.display().to_string());
                continue;
            }
            let table = PRESTATIONS
                .iter()
                .chain([IR_BEN_R, IR_IMB_R, IR_MAT_R, IR_ORC_R].iter())
                .find(|t| name.starts_with(*t));
            match table {
                Some(t) => {
                    let key = if PRESTATIONS.contains(t) {
                        "PRESTATIONS"
                    } else {
                        *t
                    };
                    tables.entry(key).or_default().push(file);
                }
                None => out.not_read.push(file.display().to_string()),
            }
        }
        if !tables.contains_key("PRESTATIONS") {
            return Err(ProfileError::Invalid {
                path: path.display().to_string(),
                message: "no ER_PRS_F or NS_PRS_F file (*.csv, *.csv.gz) in this folder".into(),
            });
        }
    } else {
        tables.insert("PRESTATIONS", vec![path.to_path_buf()]);
    }

    let mut reader = PrestationReader::new(Mapping::builtin());
    for file in &tables["PRESTATIONS"] {
        out.files.push(file.display().to_string());
        reader.read(file)?;
    }
    let births = reader.births.clone();
    let alsace = reader.alsace.clone();
    let cmu_days = std::mem::take(&mut reader.cmu_days);
    reader.finish(&mut out);
    let act_rejects = out.rejects.len();

    // Beneficiaries.
    let mut beneficiaries: BTreeMap<String, Beneficiary> = BTreeMap::new();
    if let Some(files) = tables.get(IR_BEN_R) {
        for file in files {
            out.files.push(file.display().to_string());
            read_beneficiaries(file, &mut beneficiaries, &mut out)?;
        }
    }
    for (patient, year) in births {
        if !beneficiaries.contains_key(&patient)
            && let Some(birth_date) = NaiveDate::from_ymd_opt(year, 1, 1)
        {
            beneficiaries.insert(
                patient.clone(),
                Beneficiary {
                    patient_id: patient,
                    birth_date,
                    regime: Regime::General,
                },
            );
        }
    }
    for b in beneficiaries.values_mut() {
        if alsace.contains_key(&b.patient_id) {
            b.regime = Regime::AlsaceMoselle;
        }
    }
    out.beneficiaries = beneficiaries.into_values().collect();

    // Rights.
    if let Some(files) = tables.get(IR_IMB_R) {
        out.rights_known = true;
        for file in files {
            out.files.push(file.display().to_string());
            read_imb(file, &mut out)?;
        }
    }
    if let Some(files) = tables.get(IR_MAT_R) {
        for file in files {
            out.files.push(file.display().to_string());
            read_mat(file, &mut out)?;
        }
    }
    if let Some(files) = tables.get(IR_ORC_R) {
        for file in files {
            out.files.push(file.display().to_string());
            read_orc(file, &mut out)?;
        }
    } else {
        out.rights
            .extend(periods_from_days(cmu_days, RightKind::Css));
    }
    out.rights.sort_by(|a, b| {
        (&a.patient_id, a.right, a.start_date).cmp(&(&b.patient_id, b.right, b.start_date))
    });
    out.other_rejects = (out.rejects.len() - act_rejects) as u64;
    Ok(out)
}

/// One table file, opened with its separator sniffed and its columns indexed (upper case).
struct Table {
    name: String,
    reader: csv::Reader<QuoteScan<Box<dyn Read>>>,
    index: HashMap<String, usize>,
    /// The header's names, as written.
    names: Vec<String>,
}

impl Table {
    fn open(path: &Path) -> Result<Table, ProfileError> {
        let name = path.display().to_string();
        let mut buffered = BufReader::new(super::open(path)?);
        let first = buffered.fill_buf().map_err(|source| ProfileError::Io {
            path: name.clone(),
            source,
        })?;
        let header_end = first
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(first.len());
        let header = &first[..header_end];
        let count = |c: u8| header.iter().filter(|&&b| b == c).count();
        let delimiter = if count(b';') >= count(b',') {
            b';'
        } else {
            b','
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(QuoteScan::new(
                Box::new(buffered) as Box<dyn Read>,
                delimiter,
            ));
        let headers = reader
            .headers()
            .map_err(|source| ProfileError::Csv {
                path: name.clone(),
                source,
            })?
            .clone();
        let index = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().trim_start_matches('\u{feff}').to_uppercase(), i))
            .collect();
        let names = headers.iter().map(str::to_string).collect();
        Ok(Table {
            name,
            reader,
            index,
            names,
        })
    }

    fn has(&self, column: &str) -> bool {
        self.index.contains_key(column)
    }

    fn require(&self, columns: &[&str], profile: &'static str) -> Result<(), ProfileError> {
        for c in columns {
            if !self.has(c) {
                return Err(ProfileError::MissingColumn {
                    path: self.name.clone(),
                    column: c.to_string(),
                    profile,
                });
            }
        }
        Ok(())
    }

    /// Calls `f` with each row's 1-based number and fields.
    fn for_each(
        &mut self,
        mut f: impl FnMut(u64, &Row) -> Result<(), ProfileError>,
    ) -> Result<(), ProfileError> {
        let mut record = csv::StringRecord::new();
        let (mut number, mut last_fields) = (0, 0usize);
        loop {
            let more =
                self.reader
                    .read_record(&mut record)
                    .map_err(|source| ProfileError::Csv {
                        path: self.name.clone(),
                        source,
                    })?;
            if !more {
                if self.reader.get_ref().swallowed_lines() {
                    // Open in the last field of the last row: it ran to the end.
                    let field = field_name(&self.names, last_fields.saturating_sub(1));
                    return Err(ProfileError::Invalid {
                        path: self.name.clone(),
                        message: unclosed_quote(number, &field),
                    });
                }
                return Ok(());
            }
            last_fields = record.len();
            number += 1;
            let row = Row {
                index: &self.index,
                record: &record,
            };
            f(number, &row)?;
        }
    }
}

/// The fields of one row.
struct Row<'r> {
    index: &'r HashMap<String, usize>,
    record: &'r csv::StringRecord,
}

impl<'r> Row<'r> {
    fn get(&self, column: &str) -> &'r str {
        self.index
            .get(column)
            .and_then(|&i| self.record.get(i))
            .unwrap_or("")
            .trim()
    }

    fn opt(&self, column: &str) -> Option<&'r str> {
        Some(self.get(column)).filter(|s| !s.is_empty())
    }
}

/// Parses SNDS dates: `2024-03-05`, `05/03/2024`, `20240305`, SAS `05MAR2024` (with an
/// optional `:hh:mm:ss`). `1600-01-01` (the SNDS null date) and empty are `None`.
pub fn parse_snds_date(text: &str) -> Result<Option<NaiveDate>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let t = t.split([' ', 'T']).next().unwrap_or(t);
    let sas = t.split(':').next().unwrap_or(t);
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(t, "%d/%m/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(t, "%Y%m%d"))
        .or_else(|_| NaiveDate::parse_from_str(&sas.to_lowercase(), "%d%b%Y"))
        .map_err(|_| text.to_string())?;
    if date.year() <= 1600 {
        return Ok(None);
    }
    Ok(Some(date))
}

/// A prestation line read, before regularisation and attachment.
#[derive(Debug, Clone)]
struct Line {
    act: Act,
    /// The claim key (first seven join keys), empty when absent.
    claim: String,
    prs_nat: u32,
    /// Counted act (`PRS_ACT_NBR` ≠ 0 or absent).
    counted: bool,
    /// Base of the line (signed).
    base: Decimal,
    /// Amount paid on the line (signed).
    amount: Decimal,
    /// `PRS_PAI_MNT` (signed).
    expense: Option<Decimal>,
    negative: bool,
    quantity: i64,
    file: String,
    row: u64,
    /// Dropped by a regularisation, or folded into another line.
    gone: bool,
}

struct PrestationReader<'m> {
    mapping: &'m Mapping,
    book: RuleBook,
    lines: Vec<Line>,
    /// Deductions with their claim key and whether the line was negative (a regularisation).
    deductions: Vec<Pending>,
    rejects: Vec<Reject>,
    filtered: BTreeMap<String, u64>,
    unmapped: Unmapped,
    /// Birth year per patient, from the prestations.
    births: BTreeMap<String, i32>,
    /// Patients with a line under the régime local.
    alsace: BTreeMap<String, ()>,
    /// Care days of lines with `BEN_CMU_TOP` = 1.
    cmu_days: BTreeMap<String, Vec<NaiveDate>>,
    regularised: u64,
    merged: u64,
}

impl<'m> PrestationReader<'m> {
    fn new(mapping: &'m Mapping) -> Self {
        PrestationReader {
            mapping,
            book: RuleBook::builtin(),
            lines: Vec::new(),
            deductions: Vec::new(),
            rejects: Vec::new(),
            filtered: BTreeMap::new(),
            unmapped: Unmapped::default(),
            births: BTreeMap::new(),
            alsace: BTreeMap::new(),
            cmu_days: BTreeMap::new(),
            regularised: 0,
            merged: 0,
        }
    }

    fn read(&mut self, path: &Path) -> Result<(), ProfileError> {
        let mut table = Table::open(path)?;
        let dcirs = table.has("CLE_DCI_JNT") || table.has("CPM_REM_BSE");
        let patient_cols: &[&str] = if dcirs {
            &["BEN_IDT_ANO"]
        } else {
            &["BEN_NIR_PSA"]
        };
        table.require(&["PRS_NAT_REF", "EXE_SOI_DTD"], "snds")?;
        table.require(patient_cols, "snds")?;
        let file = table.name.clone();
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        table.for_each(|number, row| {
            self.row(&file, &stem, number, row, dcirs);
            Ok(())
        })
    }

    fn reject(
        &mut self,
        file: &str,
        row: u64,
        act_id: &str,
        column: &str,
        reason: &str,
        value: &str,
    ) {
        self.rejects.push(Reject {
            file: file.to_string(),
            row,
            act_id: act_id.to_string(),
            column: column.to_string(),
            reason: reason.to_string(),
            value: value.to_string(),
        });
    }

    fn filter(&mut self, reason: impl Into<String>) {
        *self.filtered.entry(reason.into()).or_default() += 1;
    }

    fn row(&mut self, file: &str, stem: &str, number: u64, row: &Row, dcirs: bool) {
        let mapping = self.mapping;
        // Identity.
        let keys: Vec<&str> = JOIN_KEYS.iter().map(|k| row.get(k)).collect();
        let act_id = if dcirs && row.opt("CLE_DCI_JNT").is_some() {
            row.get("CLE_DCI_JNT").to_string()
        } else if keys.iter().any(|k| !k.is_empty()) {
            keys.join(":")
        } else {
            format!("{stem}:{number}")
        };
        let claim = if keys[..7].iter().any(|k| !k.is_empty()) {
            keys[..7].join(":")
        } else if dcirs {
            row.get("CLE_DCI_JNT").to_string()
        } else {
            String::new()
        };
        // Filters.
        for column in ["DPN_QLF", "PRS_DPN_QLP"] {
            if parse_code(row.get(column)) == Some(71) {
                self.filter(format!("{column}=71"));
                return;
            }
        }
        if parse_code(row.get("CPL_MAJ_TOP")) == Some(2) {
            self.filter("CPL_MAJ_TOP=2");
            return;
        }
        let patient = if dcirs {
            row.get("BEN_IDT_ANO").to_string()
        } else {
            match row.opt("BEN_RNG_GEM") {
                Some(rank) => format!("{}:{}", row.get("BEN_NIR_PSA"), rank),
                None => row.get("BEN_NIR_PSA").to_string(),
            }
        };
        if patient.is_empty() || patient.starts_with(':') {
            let col = if dcirs { "BEN_IDT_ANO" } else { "BEN_NIR_PSA" };
            self.reject(file, number, &act_id, col, "missing_value", "");
            return;
        }
        let care_date = match parse_snds_date(row.get("EXE_SOI_DTD")) {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.reject(file, number, &act_id, "EXE_SOI_DTD", "missing_value", "");
                return;
            }
            Err(v) => {
                self.reject(file, number, &act_id, "EXE_SOI_DTD", "bad_date", &v);
                return;
            }
        };
        let nat_text = row.get("PRS_NAT_REF");
        let Some(nat) = mapping.lookup(
            "PRS_NAT_REF",
            nat_text,
            Mapping::prs_nat,
            &mut self.unmapped,
        ) else {
            let reason = if nat_text.is_empty() {
                "missing_value"
            } else {
                "unmapped_code"
            };
            self.reject(file, number, &act_id, "PRS_NAT_REF", reason, nat_text);
            return;
        };
        if let Nature::Excluded(reason) = &nat.nature {
            self.filter(format!("excluded:{reason}"));
            return;
        }
        let asu_col = if row.opt("RGO_ASU_NAT").is_some() {
            "RGO_ASU_NAT"
        } else {
            "ASU_NAT"
        };
        let insurance = mapping.lookup(
            asu_col,
            row.get(asu_col),
            Mapping::asu_nat,
            &mut self.unmapped,
        );
        if let Some(a) = insurance.filter(|a| a.nature.is_none()) {
            self.filter(format!("{asu_col}={}", a.code));
            return;
        }
        // Amounts.
        let mut bad = None;
        let mut amount = |column: &str| -> Decimal {
            // As in the canonical acts, an amount past 10^12 € is no real line (and its sums
            // would not fit the outputs).
            match parse_amount(row.get(column)) {
                Ok(v) if v.is_none_or(within_amount_range) => v.unwrap_or_default(),
                found => {
                    if bad.is_none() {
                        let reason = if found.is_ok() {
                            "out_of_range"
                        } else {
                            "bad_decimal"
                        };
                        bad = Some((column.to_string(), row.get(column).to_string(), reason));
                    }
                    Decimal::ZERO
                }
            }
        };
        let cpl = if dcirs { "CPM" } else { "CPL" };
        let base = amount("BSE_REM_BSE") + amount(&format!("{cpl}_REM_BSE"));
        let paid = amount("BSE_REM_MNT") + amount(&format!("{cpl}_REM_MNT"));
        let qte = amount("PRS_ACT_QTE");
        let rate = amount("RGO_REM_TAU");
        let paf = amount("ASS_PAF_MNT");
        let coefficient = [amount("PRS_ACT_CFT"), amount("PRS_ACT_COG")]
            .into_iter()
            .find(|c| !c.is_zero());
        let expense = parse_amount(row.get("PRS_PAI_MNT")).ok().flatten();
        let nbr = parse_amount(row.get("PRS_ACT_NBR")).ok().flatten();
        if let Some((column, value, reason)) = bad {
            self.reject(file, number, &act_id, &column, reason, &value);
            return;
        }
        let negative = qte.is_sign_negative() || base.is_sign_negative();
        let quantity = i64::try_from(qte.abs().trunc()).unwrap_or(i64::MAX).max(1);
        // As in the canonical acts: more units than that is no real line.
        if quantity > QUANTITY_RANGE.1 {
            let value = qte.to_string();
            self.reject(file, number, &act_id, "PRS_ACT_QTE", "out_of_range", &value);
            return;
        }

        // Patient facts for beneficiaries and rights.
        if let Some(year) = row.opt("BEN_NAI_ANN").and_then(|y| y.parse::<i32>().ok())
            && (1880..=2100).contains(&year)
        {
            self.births.entry(patient.clone()).or_insert(year);
        }
        if matches!(parse_code(row.get("MTM_NAT")), Some(2 | 4)) {
            self.alsace.insert(patient.clone(), ());
        }
        if parse_code(row.get("BEN_CMU_TOP")) == Some(1) {
            self.cmu_days
                .entry(patient.clone())
                .or_default()
                .push(care_date);
        }

        let deduction = |kind| RecordedDeduction {
            line_id: act_id.clone(),
            patient_id: patient.clone(),
            care_date,
            kind,
            amount: -paid,
            quantity,
            act_id: None,
        };
        let categories = match &nat.nature {
            Nature::Act(c) => c.clone(),
            Nature::Pf => {
                return self.deductions.push((
                    deduction(DeductionKind::Pf),
                    claim,
                    negative,
                    file.to_string(),
                    number,
                ));
            }
            Nature::Franchise(k) => {
                return self.deductions.push((
                    deduction(DeductionKind::Franchise(*k)),
                    claim,
                    negative,
                    file.to_string(),
                    number,
                ));
            }
            Nature::DeductionUnlinked => {
                return self.deductions.push((
                    deduction(DeductionKind::Unlinked),
                    claim,
                    negative,
                    file.to_string(),
                    number,
                ));
            }
            Nature::MajorationOutOfPathway => {
                return self.deductions.push((
                    deduction(DeductionKind::OutOfPathwayMajoration),
                    claim,
                    negative,
                    file.to_string(),
                    number,
                ));
            }
            Nature::Pal => {
                let mut d = deduction(DeductionKind::Pal);
                d.amount = base.abs();
                return self
                    .deductions
                    .push((d, claim, negative, file.to_string(), number));
            }
            Nature::Fpu => {
                let mut d = deduction(DeductionKind::Fpu);
                d.amount = base.abs();
                return self
                    .deductions
                    .push((d, claim, negative, file.to_string(), number));
            }
            Nature::Excluded(_) => unreachable!("filtered above"),
        };
        let category = self.choose(&categories, rate, care_date);
        let unit = (base.abs() / Decimal::from(quantity)).round_dp(2);
        let (tariff, quantity) = if unit * Decimal::from(quantity) == base.abs() {
            (unit, quantity)
        } else {
            (base.abs(), 1)
        };
        let exo = mapping.lookup(
            "EXO_MTF",
            row.get("EXO_MTF"),
            Mapping::exo_mtf,
            &mut self.unmapped,
        );
        let pathway = mapping
            .lookup(
                "PRS_PDS_QCP",
                row.get("PRS_PDS_QCP"),
                Mapping::pds_qcp,
                &mut self.unmapped,
            )
            .map(|q| q.pathway)
            .unwrap_or(Pathway::Coordinated);
        let hospital_start = parse_snds_date(row.get("PRS_HOS_DTD")).ok().flatten();
        let stay_line = matches!(
            category,
            Category::HospitalStay | Category::DailyFee | Category::DailyFeePsy
        );
        let mut act = Act::new(&act_id, &patient, care_date, category, tariff);
        act.quantity = u32::try_from(quantity).expect("in QUANTITY_RANGE (checked above)");
        act.end_date = if stay_line {
            parse_snds_date(row.get("EXE_SOI_DTF")).ok().flatten()
        } else {
            None
        };
        act.billed = expense.map(|e| e.abs());
        act.coefficient = coefficient.map(|c| c.abs());
        act.code = Some(compact_str::ToCompactString::to_compact_string(&nat.code));
        act.practitioner_id = row.opt("PFS_EXE_NUM").map(Id::from);
        act.specialty = row.opt("PSE_SPE_COD").map(Id::from);
        if let Some(start) = hospital_start {
            act.stay_id = Some(compact_str::format_compact!("{patient}:{start}"));
            act.setting = Setting::Inpatient;
        }
        act.insurance_nature = insurance
            .and_then(|a| a.nature)
            .unwrap_or(InsuranceNature::Sickness);
        if let Some(e) = exo {
            act.exo_code = e.exo_code.as_deref().map(Id::from);
            act.ald_related = e.ald_related;
        }
        act.pathway = pathway;
        act.recorded_amo = Some(paid.abs());
        if dcirs && !paf.is_zero() {
            self.deductions.push((
                RecordedDeduction {
                    line_id: act_id.clone(),
                    patient_id: patient.clone(),
                    care_date,
                    kind: DeductionKind::PfAndFranchise,
                    amount: paf.abs(),
                    quantity,
                    act_id: Some(act_id.clone()),
                },
                claim.clone(),
                negative,
                file.to_string(),
                number,
            ));
        }
        self.lines.push(Line {
            act,
            claim,
            prs_nat: nat.code,
            counted: nbr.is_none_or(|n| !n.is_zero()),
            base,
            amount: paid,
            expense,
            negative,
            quantity,
            file: file.to_string(),
            row: number,
            gone: false,
        });
    }

    /// Of several candidate categories, the one whose ordinary rate is the recorded rate.
    fn choose(&self, categories: &[Category], rate: Decimal, date: NaiveDate) -> Category {
        if categories.len() > 1 && !rate.is_zero() {
            let snap = self.book.at(date);
            if let Some(c) = categories
                .iter()
                .find(|c| snap.get(Param::Rate(**c), date).is_ok_and(|r| r == rate))
            {
                return *c;
            }
        }
        categories[0]
    }

    /// Regularisations, folding, attachment of the deductions; moves everything into `out`.
    fn finish(mut self, out: &mut SndsExtract) {
        self.net_regularisations();
        self.fold_complements();
        let lines: Vec<Line> = self.lines.into_iter().filter(|l| !l.gone).collect();
        let mut acts: Vec<Act> = lines.iter().map(|l| l.act.clone()).collect();
        // Attach each deduction to the act of the same claim, patient and day that bears it.
        let mut by_day: HashMap<(&str, NaiveDate), Vec<usize>> = HashMap::new();
        for (i, l) in lines.iter().enumerate() {
            by_day
                .entry((l.act.patient_id.as_str(), l.act.care_date))
                .or_default()
                .push(i);
        }
        let mut deductions = Vec::with_capacity(self.deductions.len());
        let recorded = net_deductions(self.deductions, &mut self.rejects, &mut self.regularised);
        for (mut d, claim) in recorded {
            if d.act_id.is_none() {
                let bears = |c: Category, p: Pathway| match d.kind {
                    DeductionKind::Pf => bears_pf(c),
                    DeductionKind::Franchise(k) => franchise_kind(c) == Some(k),
                    DeductionKind::OutOfPathwayMajoration => p == Pathway::OutOfPathway,
                    DeductionKind::Pal => in_pal_group(c),
                    DeductionKind::Fpu => c == Category::EmergencyVisit,
                    DeductionKind::Unlinked | DeductionKind::PfAndFranchise => false,
                };
                let candidates: Vec<usize> = by_day
                    .get(&(d.patient_id.as_str(), d.care_date))
                    .map(|v| {
                        v.iter()
                            .copied()
                            .filter(|&i| {
                                let l = &lines[i];
                                (claim.is_empty() || l.claim.is_empty() || l.claim == claim)
                                    && bears(l.act.category, l.act.pathway)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let pick = candidates
                    .iter()
                    .copied()
                    .find(|&i| i64::from(lines[i].act.quantity) == d.quantity)
                    .or_else(|| candidates.first().copied());
                if let Some(i) = pick {
                    d.act_id = Some(lines[i].act.act_id.to_string());
                    // What the caisse paid net of the deduction (PAL and FPU lines carry none).
                    if matches!(
                        d.kind,
                        DeductionKind::Pf
                            | DeductionKind::Franchise(_)
                            | DeductionKind::OutOfPathwayMajoration
                    ) && let Some(r) = acts[i].recorded_amo.as_mut()
                    {
                        *r -= d.amount;
                    }
                }
            } else if let Some(i) = lines
                .iter()
                .position(|l| Some(l.act.act_id.as_str()) == d.act_id.as_deref())
                && let Some(r) = acts[i].recorded_amo.as_mut()
            {
                *r -= d.amount;
            }
            deductions.push(d);
        }
        out.acts = acts;
        out.origins = lines
            .iter()
            .map(|l| {
                // A few files, each over consecutive lines: the last one is the usual match.
                let known = out.act_files.iter().rposition(|f| *f == l.file);
                let file = known.unwrap_or_else(|| {
                    out.act_files.push(l.file.clone());
                    out.act_files.len() - 1
                });
                (file as u32, l.row)
            })
            .collect();
        out.deductions = deductions;
        out.rejects.extend(self.rejects);
        for (k, v) in self.filtered {
            *out.filtered.entry(k).or_default() += v;
        }
        for (c, k, n) in self.unmapped.entries() {
            for _ in 0..n {
                out.unmapped.record(c, k);
            }
        }
        out.regularised += self.regularised;
        out.merged += self.merged;
    }

    /// Nets each negative line against the earlier positive line of the same patient, day,
    /// code, practitioner and unit base.
    fn net_regularisations(&mut self) {
        for i in 0..self.lines.len() {
            if !self.lines[i].negative || self.lines[i].gone {
                continue;
            }
            let neg = self.lines[i].clone();
            let original = (0..self.lines.len()).find(|&j| {
                let l = &self.lines[j];
                j != i
                    && !l.gone
                    && !l.negative
                    && l.act.patient_id == neg.act.patient_id
                    && l.act.care_date == neg.act.care_date
                    && l.prs_nat == neg.prs_nat
                    && l.act.practitioner_id == neg.act.practitioner_id
                    && l.act.tariff == neg.act.tariff
                    && i64::from(l.act.quantity) >= neg.quantity
            });
            self.lines[i].gone = true;
            match original {
                Some(j) => {
                    let l = &mut self.lines[j];
                    // At most the original's quantity (above): a u32.
                    l.act.quantity -= neg.quantity as u32;
                    l.base += neg.base;
                    l.amount += neg.amount;
                    if let (Some(e), Some(n)) = (l.expense.as_mut(), neg.expense) {
                        *e += n;
                    }
                    l.act.billed = l.expense.map(|e| e.abs());
                    l.act.recorded_amo = Some(l.amount);
                    if l.act.quantity == 0 {
                        l.gone = true;
                    }
                    self.regularised += 1;
                }
                None => self.rejects.push(Reject {
                    file: neg.file.clone(),
                    row: neg.row,
                    act_id: neg.act.act_id.to_string(),
                    column: "PRS_ACT_QTE".to_string(),
                    reason: "regularisation_without_original".to_string(),
                    value: format!("-{}", neg.quantity),
                }),
            }
        }
    }

    /// Folds into their act the lines that are part of it: a line that is not a counted act
    /// (`PRS_ACT_NBR` = 0: a majoration or complement), and a pharmacy dispensing fee (paid
    /// per box with the drug, [`DISPENSING_FEES`]). The host is the counted act of the same
    /// claim, patient, day, practitioner and category, with as many units; the merged base
    /// must still split into exact cents per unit.
    fn fold_complements(&mut self) {
        for i in 0..self.lines.len() {
            let fee = DISPENSING_FEES.contains(&self.lines[i].prs_nat);
            if (self.lines[i].counted && !fee) || self.lines[i].gone || self.lines[i].negative {
                continue;
            }
            let c = self.lines[i].clone();
            let host = (0..self.lines.len()).find(|&j| {
                let l = &self.lines[j];
                let merged = l.base.abs() + c.base.abs();
                let qty = Decimal::from(l.act.quantity);
                j != i
                    && !l.gone
                    && !l.negative
                    && l.counted
                    && !DISPENSING_FEES.contains(&l.prs_nat)
                    && l.act.quantity == c.act.quantity
                    && l.claim == c.claim
                    && l.act.patient_id == c.act.patient_id
                    && l.act.care_date == c.act.care_date
                    && l.act.practitioner_id == c.act.practitioner_id
                    && l.act.category == c.act.category
                    && (merged / qty).round_dp(2) * qty == merged
            });
            if let Some(j) = host {
                let l = &mut self.lines[j];
                l.base += c.base;
                l.amount += c.amount;
                l.act.tariff = (l.base.abs() / Decimal::from(l.act.quantity)).round_dp(2);
                l.act.recorded_amo = Some(l.amount);
                l.expense = match (l.expense, c.expense) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                l.act.billed = l.expense.map(|e| e.abs());
                self.lines[i].gone = true;
                self.merged += 1;
            }
        }
    }
}

/// A deduction line read: the deduction, its claim key, whether it is negative (a
/// regularisation), its file and row.
type Pending = (RecordedDeduction, String, bool, String, u64);

/// Pharmacy dispensing fees (*honoraires de dispensation*, per box or per prescription
/// line): part of the drug act they go with, which alone bears the franchise per box.
pub const DISPENSING_FEES: &[u32] = &[
    3322, 3325, 3364, 3365, 3366, 3379, 3380, 3383, 3384, 3385, 3386, 3387, 3388, 3389, 3390,
];

/// Nets each negative deduction line against a positive one of the same patient, day, kind
/// and amount; one with no such line is rejected (`regularisation_without_original`).
fn net_deductions(
    lines: Vec<Pending>,
    rejects: &mut Vec<Reject>,
    regularised: &mut u64,
) -> Vec<(RecordedDeduction, String)> {
    let mut kept: Vec<Option<(RecordedDeduction, String)>> = Vec::new();
    let mut negatives = Vec::new();
    for (d, claim, negative, file, row) in lines {
        if negative {
            negatives.push((d, file, row));
        } else {
            kept.push(Some((d, claim)));
        }
    }
    for (neg, file, row) in negatives {
        let original = kept.iter().position(|k| {
            k.as_ref().is_some_and(|(d, _)| {
                d.patient_id == neg.patient_id
                    && d.care_date == neg.care_date
                    && d.kind == neg.kind
                    && d.amount == -neg.amount
            })
        });
        match original {
            Some(i) => {
                kept[i] = None;
                *regularised += 1;
            }
            None => rejects.push(Reject {
                file,
                row,
                act_id: neg.line_id.clone(),
                column: "PRS_ACT_QTE".to_string(),
                reason: "regularisation_without_original".to_string(),
                value: format!("-{}", neg.quantity),
            }),
        }
    }
    kept.into_iter().flatten().collect()
}

fn read_beneficiaries(
    path: &Path,
    beneficiaries: &mut BTreeMap<String, Beneficiary>,
    out: &mut SndsExtract,
) -> Result<(), ProfileError> {
    let mut table = Table::open(path)?;
    table.require(&["BEN_NIR_PSA", "BEN_NAI_ANN"], "snds")?;
    let file = table.name.clone();
    table.for_each(|number, row| {
        let patient = patient_id(row);
        let reject = |column: &str, reason: &str, value: &str| Reject {
            file: file.clone(),
            row: number,
            act_id: String::new(),
            column: column.to_string(),
            reason: reason.to_string(),
            value: value.to_string(),
        };
        let Ok(year) = row.get("BEN_NAI_ANN").parse::<i32>() else {
            out.rejects
                .push(reject("BEN_NAI_ANN", "bad_date", row.get("BEN_NAI_ANN")));
            return Ok(());
        };
        let month = birth_month(row.get("BEN_NAI_MOI"));
        let Some(birth_date) = NaiveDate::from_ymd_opt(year, month, 1) else {
            out.rejects
                .push(reject("BEN_NAI_ANN", "bad_date", row.get("BEN_NAI_ANN")));
            return Ok(());
        };
        if beneficiaries.contains_key(&patient) {
            out.duplicate_beneficiaries += 1;
            return Ok(());
        }
        beneficiaries.insert(
            patient.clone(),
            Beneficiary {
                patient_id: patient,
                birth_date,
                regime: Regime::General,
            },
        );
        Ok(())
    })
}

/// `BEN_NAI_MOI` as written: `5`, `05`, `202405`, `2024-05`, `2024-05-01`; unknown = January.
fn birth_month(text: &str) -> u32 {
    let t = text.trim();
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    let month = match digits.len() {
        1 | 2 => digits.parse().ok(),
        6 => digits[4..6].parse().ok(),
        8 => digits[4..6].parse().ok(),
        _ => None,
    };
    month.filter(|m| (1..=12).contains(m)).unwrap_or(1)
}

fn patient_id(row: &Row) -> String {
    match row.opt("BEN_RNG_GEM") {
        Some(rank) => format!("{}:{}", row.get("BEN_NIR_PSA"), rank),
        None => row.get("BEN_NIR_PSA").to_string(),
    }
}

/// A period from two date columns; `None` (with a reject) when unreadable or inverted.
fn period(
    row: &Row,
    start: &str,
    end: &str,
    file: &str,
    number: u64,
    out: &mut SndsExtract,
) -> Option<(NaiveDate, Option<NaiveDate>)> {
    let reject = |out: &mut SndsExtract, column: &str, reason: &str, value: &str| {
        out.rejects.push(Reject {
            file: file.to_string(),
            row: number,
            act_id: String::new(),
            column: column.to_string(),
            reason: reason.to_string(),
            value: value.to_string(),
        });
    };
    let s = match parse_snds_date(row.get(start)) {
        Ok(Some(d)) => d,
        Ok(None) => {
            reject(out, start, "missing_value", "");
            return None;
        }
        Err(v) => {
            reject(out, start, "bad_date", &v);
            return None;
        }
    };
    let e = match parse_snds_date(row.get(end)) {
        Ok(e) => e,
        Err(v) => {
            reject(out, end, "bad_date", &v);
            return None;
        }
    };
    if e.is_some_and(|e| e < s) {
        reject(out, end, "end_before_start", row.get(end));
        return None;
    }
    Some((s, e))
}

fn skip(out: &mut SndsExtract, reason: String) {
    *out.skipped_rights.entry(reason).or_default() += 1;
}

/// IR_IMB_R: ALD, invalidity, military pension, maternity exoneration periods.
fn read_imb(path: &Path, out: &mut SndsExtract) -> Result<(), ProfileError> {
    let mut table = Table::open(path)?;
    table.require(&["BEN_NIR_PSA", "IMB_ALD_DTD", "IMB_ETM_NAT"], "snds")?;
    let file = table.name.clone();
    table.for_each(|number, row| {
        let code = parse_code(row.get("IMB_ETM_NAT"));
        let right = match code {
            Some(41 | 43 | 45) => RightKind::Ald,
            Some(13) => RightKind::Invalidity,
            Some(21) => RightKind::MilitaryPension,
            Some(55) => RightKind::Maternity,
            Some(11 | 12) => {
                skip(
                    out,
                    format!(
                        "IMB_ETM_NAT={}: AT/MP is the act's insurance nature in rac",
                        row.get("IMB_ETM_NAT")
                    ),
                );
                return Ok(());
            }
            _ => {
                skip(
                    out,
                    format!(
                        "IMB_ETM_NAT={}: not a right rac uses",
                        row.get("IMB_ETM_NAT")
                    ),
                );
                return Ok(());
            }
        };
        let Some((start_date, end_date)) =
            period(row, "IMB_ALD_DTD", "IMB_ALD_DTF", &file, number, out)
        else {
            return Ok(());
        };
        let reference = [row.get("IMB_ALD_NUM"), row.get("MED_MTF_COD")]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        out.rights.push(RightPeriod {
            patient_id: patient_id(row),
            right,
            start_date,
            end_date,
            reference: Some(reference).filter(|r| !r.is_empty()),
        });
        Ok(())
    })
}

/// IR_MAT_R: the maternity window, from the first day of the 6th month of pregnancy (presumed
/// pregnancy date + 5 months) to 12 days after the delivery (the month's last day, as only the
/// month is known: **choice**, it may cover a few days more).
fn read_mat(path: &Path, out: &mut SndsExtract) -> Result<(), ProfileError> {
    let mut table = Table::open(path)?;
    table.require(&["BEN_NIR_PSA", "BEN_GRS_DTE"], "snds")?;
    let file = table.name.clone();
    table.for_each(|number, row| {
        let pregnancy = match parse_snds_date(row.get("BEN_GRS_DTE")) {
            Ok(Some(d)) => d,
            Ok(None) => {
                skip(out, "BEN_GRS_DTE empty".to_string());
                return Ok(());
            }
            Err(v) => {
                out.rejects.push(Reject {
                    file: file.clone(),
                    row: number,
                    act_id: String::new(),
                    column: "BEN_GRS_DTE".into(),
                    reason: "bad_date".into(),
                    value: v,
                });
                return Ok(());
            }
        };
        let start = pregnancy
            .checked_add_months(Months::new(5))
            .unwrap_or(pregnancy);
        let delivery_month_end = year_month(row.get("BEN_DRA_AME")).and_then(|(y, m)| {
            let first = NaiveDate::from_ymd_opt(y, m, 1)?;
            first.checked_add_months(Months::new(1))?.pred_opt()
        });
        let delivery =
            delivery_month_end.unwrap_or_else(|| pregnancy + chrono::Duration::days(280));
        let end = delivery + chrono::Duration::days(12);
        if end < start {
            out.rejects.push(Reject {
                file: file.clone(),
                row: number,
                act_id: String::new(),
                column: "BEN_DRA_AME".into(),
                reason: "end_before_start".into(),
                value: row.get("BEN_DRA_AME").to_string(),
            });
            return Ok(());
        }
        out.rights.push(RightPeriod {
            patient_id: patient_id(row),
            right: RightKind::Maternity,
            start_date: start,
            end_date: Some(end),
            reference: Some(format!("IR_MAT_R {pregnancy}")),
        });
        Ok(())
    })
}

/// `YYYYMM`, `YYYY-MM`.
fn year_month(text: &str) -> Option<(i32, u32)> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return None;
    }
    let y = digits[..4].parse().ok()?;
    let m = digits[4..6].parse().ok()?;
    (1..=12).contains(&m).then_some((y, m))
}

/// IR_ORC_R: C2S contracts (`BEN_CTA_TYP` 89).
fn read_orc(path: &Path, out: &mut SndsExtract) -> Result<(), ProfileError> {
    let mut table = Table::open(path)?;
    table.require(&["BEN_NIR_PSA", "BEN_CTA_TYP", "MLL_CTA_DSD"], "snds")?;
    let file = table.name.clone();
    table.for_each(|number, row| {
        if parse_code(row.get("BEN_CTA_TYP")) != Some(89) {
            skip(
                out,
                format!("BEN_CTA_TYP={}: not a C2S contract", row.get("BEN_CTA_TYP")),
            );
            return Ok(());
        }
        let Some((start_date, end_date)) =
            period(row, "MLL_CTA_DSD", "MLL_CTA_DSF", &file, number, out)
        else {
            return Ok(());
        };
        out.rights.push(RightPeriod {
            patient_id: patient_id(row),
            right: RightKind::Css,
            start_date,
            end_date,
            reference: row.opt("BEN_CMU_ORG").map(str::to_string),
        });
        Ok(())
    })
}

/// Days merged into periods (consecutive days join).
fn periods_from_days(days: BTreeMap<String, Vec<NaiveDate>>, right: RightKind) -> Vec<RightPeriod> {
    let mut out = Vec::new();
    for (patient, mut ds) in days {
        ds.sort();
        ds.dedup();
        let mut start = ds[0];
        let mut end = ds[0];
        for d in ds.into_iter().skip(1) {
            if end.succ_opt() == Some(d) {
                end = d;
            } else {
                out.push(RightPeriod {
                    patient_id: patient.clone(),
                    right,
                    start_date: start,
                    end_date: Some(end),
                    reference: Some("BEN_CMU_TOP".to_string()),
                });
                start = d;
                end = d;
            }
        }
        out.push(RightPeriod {
            patient_id: patient,
            right,
            start_date: start,
            end_date: Some(end),
            reference: Some("BEN_CMU_TOP".to_string()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn snds_dates() {
        assert_eq!(parse_snds_date("2024-03-05"), Ok(Some(d("2024-03-05"))));
        assert_eq!(parse_snds_date("05/03/2024"), Ok(Some(d("2024-03-05"))));
        assert_eq!(parse_snds_date("20240305"), Ok(Some(d("2024-03-05"))));
        assert_eq!(parse_snds_date("05MAR2024"), Ok(Some(d("2024-03-05"))));
        assert_eq!(
            parse_snds_date("05MAR2024:00:00:00"),
            Ok(Some(d("2024-03-05")))
        );
        assert_eq!(parse_snds_date("1600-01-01"), Ok(None));
        assert_eq!(parse_snds_date(""), Ok(None));
        assert!(parse_snds_date("2024-13-01").is_err());
    }

    #[test]
    fn birth_months() {
        assert_eq!(birth_month("05"), 5);
        assert_eq!(birth_month("5"), 5);
        assert_eq!(birth_month("202405"), 5);
        assert_eq!(birth_month("2024-05-01"), 5);
        assert_eq!(birth_month(""), 1);
        assert_eq!(birth_month("99"), 1);
    }

    #[test]
    fn days_merge_into_periods() {
        let days = BTreeMap::from([(
            "p".to_string(),
            vec![
                d("2024-01-03"),
                d("2024-01-02"),
                d("2024-01-10"),
                d("2024-01-02"),
            ],
        )]);
        let p = periods_from_days(days, RightKind::Css);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].start_date, p[0].end_date),
            (d("2024-01-02"), Some(d("2024-01-03")))
        );
        assert_eq!(
            (p[1].start_date, p[1].end_date),
            (d("2024-01-10"), Some(d("2024-01-10")))
        );
    }
}
