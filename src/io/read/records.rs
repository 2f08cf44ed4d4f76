//! The four input tables (SPEC §2): their columns, and how one row becomes a model value.
//!
//! A row is seen through [`Row`], which gives one [`Cell`] per column of the table (in the
//! table's own column order), whatever the file format. Conversions check the columns in that
//! order and stop at the first problem, which becomes the row's single reject.

use super::ReadOptions;
use super::values::{self, Cell, RejectReason};
use crate::model::{
    Act, Beneficiary, Carried, Category, Id, InsuranceNature, Pathway, Regime, RightKind,
    RightPeriod, Setting, YearCounter, parse_dated, parse_ids, parse_stay_sums,
};
use chrono::NaiveDate;
use compact_str::ToCompactString;
use rust_decimal::Decimal;

/// What a column holds; decides the accepted Parquet types and the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text or id: strings, or integers written as text.
    Text,
    /// One of a closed set of codes: strings only.
    Code,
    /// A calendar day.
    Date,
    /// Euros, a whole number of cents.
    Amount,
    /// Any decimal (a coefficient).
    Decimal,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
}

/// One column of an input table.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    /// Exact (case-sensitive) column name.
    pub name: &'static str,
    pub kind: Kind,
    /// A file without this column is refused.
    pub required: bool,
}

const fn col(name: &'static str, kind: Kind, required: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        required,
    }
}

/// Access to the cells of one row, by the index of the column in the table's spec.
pub trait Row {
    /// The cell of column `slot`; `Cell::Null` when the file lacks the column.
    fn cell(&self, slot: usize) -> Cell<'_>;
}

/// The first problem of a row: which column, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad {
    pub slot: usize,
    pub reason: RejectReason,
}

type Conv<T> = Result<T, Bad>;

/// Implemented by the model types that an input table yields.
pub trait Table: Sized + Send {
    /// The table's columns, in the order their problems are reported.
    const COLUMNS: &'static [ColumnSpec];
    /// Slot of `act_id`, copied into rejects.
    const ACT_ID: Option<usize>;
    /// Whether the table carries columns through (`--keep-columns`): the readers then give the
    /// cells of [`ReadOptions::carried`] at the slots after [`Table::COLUMNS`].
    const CARRIES: bool = false;
    /// Converts one row; the error names the first bad column.
    fn from_row<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Conv<Self>;

    /// Every problem of a row that [`Table::from_row`] refuses, the first one first
    /// (`validate`, SPEC §1: "lists every problem"). By default, the first alone.
    fn problems<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Vec<Bad> {
        Self::from_row(row, opts).err().into_iter().collect()
    }
}

/// Where a row's conversion puts the problems it meets: [`FirstBad`] stops at the first (a
/// run), [`EveryBad`] keeps them all and goes on (`validate`).
trait Problems {
    /// The value, or `None` after keeping the problem; `Err` stops the conversion.
    fn take<T>(&mut self, converted: Conv<T>) -> Conv<Option<T>>;
}

struct FirstBad;

impl Problems for FirstBad {
    fn take<T>(&mut self, converted: Conv<T>) -> Conv<Option<T>> {
        converted.map(Some)
    }
}

struct EveryBad(Vec<Bad>);

impl Problems for EveryBad {
    fn take<T>(&mut self, converted: Conv<T>) -> Conv<Option<T>> {
        match converted {
            Ok(value) => Ok(Some(value)),
            Err(bad) => {
                self.0.push(bad);
                Ok(None)
            }
        }
    }
}

/// A row's value, or its first problem: `convert` with [`FirstBad`].
fn first_problem<T>(convert: impl FnOnce(&mut FirstBad) -> Conv<Option<T>>) -> Conv<T> {
    // `FirstBad` stops at the first problem: `None` never comes.
    Ok(convert(&mut FirstBad)?.expect("FirstBad stops at a problem"))
}

/// Every problem of a row, the first first: `convert` with [`EveryBad`].
fn every_problem<T>(convert: impl FnOnce(&mut EveryBad) -> Conv<Option<T>>) -> Vec<Bad> {
    let mut every = EveryBad(Vec::new());
    // `EveryBad` keeps the problems and never stops.
    let _ = convert(&mut every);
    every.0
}

fn bad(slot: usize, reason: RejectReason) -> Bad {
    Bad { slot, reason }
}

/// The reason to report for unparseable bytes: `bad_encoding` when they are not UTF-8, so
/// that a mis-encoded file is named as such, else `reason`.
fn text_reason(bytes: &[u8], reason: RejectReason) -> RejectReason {
    if std::str::from_utf8(bytes).is_err() {
        RejectReason::BadEncoding
    } else {
        reason
    }
}

/// An id or short code, stored inline (no allocation for the usual lengths).
fn opt_id<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<Option<Id>> {
    match row.cell(slot) {
        Cell::Null => Ok(None),
        Cell::Str(text) => Ok(Some(Id::from(text))),
        Cell::Text(bytes) => std::str::from_utf8(bytes)
            .map(|s| Some(Id::from(s)))
            .map_err(|_| bad(slot, RejectReason::BadEncoding)),
        // Written inline: an integer id is no allocation either.
        Cell::Int(v) => Ok(Some(v.to_compact_string())),
        _ => Ok(opt_string(row, slot)?.map(Id::from)),
    }
}

fn req_id<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<Id> {
    opt_id(row, slot)?.ok_or(bad(slot, RejectReason::MissingValue))
}

fn opt_string<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<Option<String>> {
    match row.cell(slot) {
        Cell::Null => Ok(None),
        Cell::Str(text) => Ok(Some(text.to_owned())),
        Cell::Text(bytes) => std::str::from_utf8(bytes)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| bad(slot, RejectReason::BadEncoding)),
        Cell::Int(v) => Ok(Some(v.to_string())),
        Cell::Bool(v) => Ok(Some(v.to_string())),
        other => Ok(Some(other.render())),
    }
}

fn req_string<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<String> {
    opt_string(row, slot)?.ok_or(bad(slot, RejectReason::MissingValue))
}

fn opt_date<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<Option<NaiveDate>> {
    match row.cell(slot).raw() {
        Cell::Null => Ok(None),
        Cell::Text(bytes) => values::parse_date(bytes)
            .map(Some)
            .ok_or_else(|| bad(slot, text_reason(bytes, RejectReason::BadDate))),
        Cell::Days(days) => values::days_to_date(days)
            .map(Some)
            .ok_or(bad(slot, RejectReason::BadDate)),
        _ => Err(bad(slot, RejectReason::BadDate)),
    }
}

fn req_date<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<NaiveDate> {
    opt_date(row, slot)?.ok_or(bad(slot, RejectReason::MissingValue))
}

/// An amount in cents as a scale-2 `Decimal`; negative values refused unless `signed`.
fn opt_amount<R: Row + ?Sized>(
    row: &R,
    slot: usize,
    opts: &ReadOptions,
    signed: bool,
) -> Conv<Option<Decimal>> {
    let cents = match row.cell(slot).raw() {
        Cell::Null => return Ok(None),
        Cell::Text(bytes) => values::parse_cents(bytes, opts.decimal_comma)
            .map_err(|reason| text_reason(bytes, reason)),
        Cell::Decimal(value, scale) => values::decimal_to_cents(value, scale),
        Cell::Float(value) => values::float_to_cents(value),
        Cell::Int(value) => values::int_to_cents(value),
        _ => Err(RejectReason::BadDecimal),
    }
    .map_err(|reason| bad(slot, reason))?;
    if cents < 0 && !signed {
        return Err(bad(slot, RejectReason::NegativeAmount));
    }
    Ok(Some(values::cents_decimal(cents)))
}

fn req_amount<R: Row + ?Sized>(
    row: &R,
    slot: usize,
    opts: &ReadOptions,
    signed: bool,
) -> Conv<Decimal> {
    opt_amount(row, slot, opts, signed)?.ok_or(bad(slot, RejectReason::MissingValue))
}

/// A non-negative decimal of any scale (a coefficient).
fn opt_decimal<R: Row + ?Sized>(row: &R, slot: usize, opts: &ReadOptions) -> Conv<Option<Decimal>> {
    let value = match row.cell(slot).raw() {
        Cell::Null => return Ok(None),
        Cell::Text(bytes) => values::parse_decimal(bytes, opts.decimal_comma)
            .map_err(|reason| text_reason(bytes, reason)),
        Cell::Decimal(value, scale) => values::decimal_to_decimal(value, scale),
        Cell::Float(value) => values::float_to_decimal(value),
        Cell::Int(value) => Ok(Decimal::from(value)),
        _ => Err(RejectReason::BadDecimal),
    }
    .map_err(|reason| bad(slot, reason))?;
    if (value.is_sign_negative() && !value.is_zero())
        || value > Decimal::from(values::MAX_COEFFICIENT)
    {
        return Err(bad(slot, RejectReason::OutOfRange));
    }
    Ok(Some(value))
}

/// An integer in `min..=max`.
fn opt_int<R: Row + ?Sized>(row: &R, slot: usize, min: i64, max: i64) -> Conv<Option<i64>> {
    let value = match row.cell(slot).raw() {
        Cell::Null => return Ok(None),
        Cell::Text(bytes) => values::parse_int(bytes).map_err(|reason| text_reason(bytes, reason)),
        Cell::Int(value) => Ok(value),
        Cell::Float(value) => values::float_to_int(value),
        _ => Err(RejectReason::BadInteger),
    }
    .map_err(|reason| bad(slot, reason))?;
    if !(min..=max).contains(&value) {
        return Err(bad(slot, RejectReason::OutOfRange));
    }
    Ok(Some(value))
}

fn opt_bool<R: Row + ?Sized>(row: &R, slot: usize) -> Conv<Option<bool>> {
    match row.cell(slot).raw() {
        Cell::Null => Ok(None),
        Cell::Text(bytes) => values::parse_bool(bytes)
            .map(Some)
            .ok_or_else(|| bad(slot, text_reason(bytes, RejectReason::BadBoolean))),
        Cell::Bool(value) => Ok(Some(value)),
        Cell::Int(0) => Ok(Some(false)),
        Cell::Int(1) => Ok(Some(true)),
        _ => Err(bad(slot, RejectReason::BadBoolean)),
    }
}

/// A code parsed with the model's `parse`; `unknown` is the reason for a value not in the set.
fn opt_code<R: Row + ?Sized, E>(
    row: &R,
    slot: usize,
    parse: fn(&str) -> Option<E>,
    unknown: RejectReason,
) -> Conv<Option<E>> {
    match row.cell(slot) {
        Cell::Null => Ok(None),
        Cell::Str(text) => parse(text).map(Some).ok_or(bad(slot, unknown)),
        Cell::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => parse(text).map(Some).ok_or(bad(slot, unknown)),
            Err(_) => Err(bad(slot, RejectReason::BadEncoding)),
        },
        // Typed Parquet cells never reach a code column (refused by type at open).
        _ => Err(bad(slot, unknown)),
    }
}

fn req_code<R: Row + ?Sized, E>(
    row: &R,
    slot: usize,
    parse: fn(&str) -> Option<E>,
    unknown: RejectReason,
) -> Conv<E> {
    opt_code(row, slot, parse, unknown)?.ok_or(bad(slot, RejectReason::MissingValue))
}

/// Smallest and largest `quantity`.
pub const QUANTITY_RANGE: (i64, i64) = (1, 1_000_000);
// A quantity in the range is a `u32` (`Act::quantity`).
const _: () = assert!(QUANTITY_RANGE.0 >= 0 && QUANTITY_RANGE.1 <= u32::MAX as i64);

mod act_slots {
    pub const ACT_ID: usize = 0;
    pub const PATIENT_ID: usize = 1;
    pub const CARE_DATE: usize = 2;
    pub const END_DATE: usize = 3;
    pub const CATEGORY: usize = 4;
    pub const TARIFF: usize = 5;
    pub const QUANTITY: usize = 6;
    pub const BILLED: usize = 7;
    pub const COEFFICIENT: usize = 8;
    pub const CODE: usize = 9;
    pub const PRACTITIONER_ID: usize = 10;
    pub const SPECIALTY: usize = 11;
    pub const STAY_ID: usize = 12;
    pub const INSURANCE_NATURE: usize = 13;
    pub const EXO_CODE: usize = 14;
    pub const ALD_RELATED: usize = 15;
    pub const PATHWAY: usize = 16;
    pub const SETTING: usize = 17;
    pub const RECORDED_AMO: usize = 18;
}

impl Table for Act {
    const COLUMNS: &'static [ColumnSpec] = &[
        col("act_id", Kind::Text, true),
        col("patient_id", Kind::Text, true),
        col("care_date", Kind::Date, true),
        col("end_date", Kind::Date, false),
        col("category", Kind::Code, true),
        col("tariff", Kind::Amount, true),
        col("quantity", Kind::Int, false),
        col("billed", Kind::Amount, false),
        col("coefficient", Kind::Decimal, false),
        col("code", Kind::Text, false),
        col("practitioner_id", Kind::Text, false),
        col("specialty", Kind::Text, false),
        col("stay_id", Kind::Text, false),
        col("insurance_nature", Kind::Code, false),
        col("exo_code", Kind::Text, false),
        col("ald_related", Kind::Bool, false),
        col("pathway", Kind::Code, false),
        col("setting", Kind::Code, false),
        col("recorded_amo", Kind::Amount, false),
    ];
    const ACT_ID: Option<usize> = Some(act_slots::ACT_ID);
    const CARRIES: bool = true;

    fn from_row<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Conv<Act> {
        first_problem(|p| act_from_row(row, opts, p))
    }

    fn problems<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Vec<Bad> {
        every_problem(|p| act_from_row(row, opts, p))
    }
}

/// An act from a row, its problems handed to `problems` in the order of its columns: a
/// column that depends on another (`end_date` after `care_date`, the base `tariff ×
/// quantity`) is judged only when that one is good. `None` when a problem was kept.
fn act_from_row<R: Row + ?Sized, P: Problems>(
    row: &R,
    opts: &ReadOptions,
    p: &mut P,
) -> Conv<Option<Act>> {
    use act_slots::*;
    let unknown = RejectReason::UnknownValue;
    let act_id = p.take(req_id(row, ACT_ID))?;
    let patient_id = p.take(req_id(row, PATIENT_ID))?;
    let care_date = p.take(req_date(row, CARE_DATE))?;
    let mut end_date = p.take(opt_date(row, END_DATE))?;
    if let (Some(care), Some(Some(end))) = (care_date, end_date)
        && end < care
    {
        end_date = p.take(Err(bad(END_DATE, RejectReason::EndBeforeStart)))?;
    }
    let category = p.take(req_code(
        row,
        CATEGORY,
        Category::parse,
        RejectReason::UnknownCategory,
    ))?;
    let mut tariff = p.take(req_amount(row, TARIFF, opts, false))?;
    // In QUANTITY_RANGE: a u32.
    let quantity = p.take(opt_int(row, QUANTITY, QUANTITY_RANGE.0, QUANTITY_RANGE.1))?;
    let quantity = quantity.map(|q| q.map_or(1, |q| q as u32));
    // Each is in range, their product (the base) must be too: the outputs hold it.
    if let (Some(t), Some(q)) = (tariff, quantity)
        && !values::within_amount_range(t * Decimal::from(q))
    {
        tariff = p.take(Err(bad(TARIFF, RejectReason::OutOfRange)))?;
    }
    let billed = p.take(opt_amount(row, BILLED, opts, false))?;
    let coefficient = p.take(opt_decimal(row, COEFFICIENT, opts))?;
    let code = p.take(opt_id(row, CODE))?;
    let practitioner_id = p.take(opt_id(row, PRACTITIONER_ID))?;
    let specialty = p.take(opt_id(row, SPECIALTY))?;
    let stay_id = p.take(opt_id(row, STAY_ID))?;
    let insurance_nature = p.take(opt_code(
        row,
        INSURANCE_NATURE,
        InsuranceNature::parse,
        unknown,
    ))?;
    let exo_code = p.take(opt_id(row, EXO_CODE))?;
    let ald_related = p.take(opt_bool(row, ALD_RELATED))?;
    let pathway = p.take(opt_code(row, PATHWAY, Pathway::parse, unknown))?;
    let setting = p.take(opt_code(row, SETTING, Setting::parse, unknown))?;
    let recorded_amo = p.take(opt_amount(row, RECORDED_AMO, opts, true))?;
    let carried = p.take(carried(row, Act::COLUMNS.len(), opts.carried.len()))?;
    // No act if a value had a problem (kept above).
    let act = || {
        Some(Act {
            act_id: act_id?,
            patient_id: patient_id?,
            care_date: care_date?,
            end_date: end_date?,
            category: category?,
            tariff: tariff?,
            quantity: quantity?,
            billed: billed?,
            coefficient: coefficient?,
            code: code?,
            practitioner_id: practitioner_id?,
            specialty: specialty?,
            stay_id: stay_id?,
            insurance_nature: insurance_nature?.unwrap_or(InsuranceNature::Sickness),
            exo_code: exo_code?,
            ald_related: ald_related?.unwrap_or(false),
            pathway: pathway?.unwrap_or(Pathway::Coordinated),
            setting: setting?.unwrap_or(Setting::Ambulatory),
            recorded_amo: recorded_amo?,
            carried: carried?,
        })
    };
    Ok(act())
}

/// The `count` carried cells from slot `first` on, as text (a typed cell written out).
fn carried<R: Row + ?Sized>(row: &R, first: usize, count: usize) -> Conv<Carried> {
    if count == 0 {
        return Ok(Carried::default());
    }
    (first..first + count)
        .map(|slot| opt_id(row, slot))
        .collect()
}

/// Only the `act_id` and `patient_id` of an acts row, for a first pass over acts that are
/// streamed later (`compute` on acts sorted by patient): the other columns are not read
/// (Parquet) or not converted (CSV). Every row valid as an [`Act`] is valid here, with the
/// same two ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActKey {
    pub act_id: Id,
    pub patient_id: Id,
}

impl Table for ActKey {
    const COLUMNS: &'static [ColumnSpec] = &[
        col("act_id", Kind::Text, true),
        col("patient_id", Kind::Text, true),
    ];
    const ACT_ID: Option<usize> = Some(0);

    fn from_row<R: Row + ?Sized>(row: &R, _opts: &ReadOptions) -> Conv<ActKey> {
        Ok(ActKey {
            act_id: req_id(row, 0)?,
            patient_id: req_id(row, 1)?,
        })
    }
}

/// Only the `act_id` of a row, from any table that has the column: the list of acts to
/// explain (`explain --act-ids`: an audit's `discrepancies.*`, a run's `acts.*` or
/// `rejects.csv`, or a list under an `act_id` header). The other columns are not read
/// (Parquet) or not converted (CSV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActIdKey {
    pub act_id: Id,
}

impl Table for ActIdKey {
    const COLUMNS: &'static [ColumnSpec] = &[col("act_id", Kind::Text, true)];
    const ACT_ID: Option<usize> = Some(0);

    fn from_row<R: Row + ?Sized>(row: &R, _opts: &ReadOptions) -> Conv<ActIdKey> {
        Ok(ActIdKey {
            act_id: req_id(row, 0)?,
        })
    }
}

/// Only the `patient_id` of a beneficiaries row, for the pass that samples the ids to place
/// the partitions' boundaries: the other columns are not read (Parquet) or not converted
/// (CSV). A row refused as a [`Beneficiary`] may be sampled: it moves a boundary, which
/// changes no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientKey {
    pub patient_id: Id,
}

impl Table for PatientKey {
    const COLUMNS: &'static [ColumnSpec] = &[col("patient_id", Kind::Text, true)];
    const ACT_ID: Option<usize> = None;

    fn from_row<R: Row + ?Sized>(row: &R, _opts: &ReadOptions) -> Conv<PatientKey> {
        Ok(PatientKey {
            patient_id: req_id(row, 0)?,
        })
    }
}

impl Table for Beneficiary {
    const COLUMNS: &'static [ColumnSpec] = &[
        col("patient_id", Kind::Text, true),
        col("birth_date", Kind::Date, true),
        col("regime", Kind::Code, false),
    ];
    const ACT_ID: Option<usize> = None;

    fn from_row<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Conv<Beneficiary> {
        first_problem(|p| beneficiary_from_row(row, opts, p))
    }

    fn problems<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Vec<Bad> {
        every_problem(|p| beneficiary_from_row(row, opts, p))
    }
}

/// A beneficiary from a row, its problems handed to `p` in the order of its columns.
fn beneficiary_from_row<R: Row + ?Sized, P: Problems>(
    row: &R,
    _opts: &ReadOptions,
    p: &mut P,
) -> Conv<Option<Beneficiary>> {
    let patient_id = p.take(req_string(row, 0))?;
    let birth_date = p.take(req_date(row, 1))?;
    let regime = p.take(opt_code(row, 2, Regime::parse, RejectReason::UnknownValue))?;
    Ok((|| {
        Some(Beneficiary {
            patient_id: patient_id?,
            birth_date: birth_date?,
            regime: regime?.unwrap_or(Regime::General),
        })
    })())
}

impl Table for RightPeriod {
    const COLUMNS: &'static [ColumnSpec] = &[
        col("patient_id", Kind::Text, true),
        col("right", Kind::Code, true),
        col("start_date", Kind::Date, true),
        col("end_date", Kind::Date, false),
        col("reference", Kind::Text, false),
    ];
    const ACT_ID: Option<usize> = None;

    fn from_row<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Conv<RightPeriod> {
        first_problem(|p| right_from_row(row, opts, p))
    }

    fn problems<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Vec<Bad> {
        every_problem(|p| right_from_row(row, opts, p))
    }
}

/// A rights period from a row, its problems handed to `p` in the order of its columns
/// (`end_date` before `start_date` is judged only when both read).
fn right_from_row<R: Row + ?Sized, P: Problems>(
    row: &R,
    _opts: &ReadOptions,
    p: &mut P,
) -> Conv<Option<RightPeriod>> {
    let patient_id = p.take(req_string(row, 0))?;
    let right = p.take(req_code(
        row,
        1,
        RightKind::parse,
        RejectReason::UnknownValue,
    ))?;
    let start_date = p.take(req_date(row, 2))?;
    let mut end_date = p.take(opt_date(row, 3))?;
    if let (Some(start), Some(Some(end))) = (start_date, end_date)
        && end < start
    {
        end_date = p.take(Err(bad(3, RejectReason::EndBeforeStart)))?;
    }
    let reference = p.take(opt_string(row, 4))?;
    Ok((|| {
        Some(RightPeriod {
            patient_id: patient_id?,
            right: right?,
            start_date: start_date?,
            end_date: end_date?,
            reference: reference?,
        })
    })())
}

impl Table for YearCounter {
    const COLUMNS: &'static [ColumnSpec] = &[
        col("patient_id", Kind::Text, true),
        col("year", Kind::Int, true),
        col("pf_used", Kind::Amount, true),
        col("franchise_used", Kind::Amount, true),
        col("charged_stays", Kind::Text, false),
        col("pf_cap_reached_on", Kind::Date, false),
        col("franchise_cap_reached_on", Kind::Date, false),
        // Since counters format 2; absent from format 1 (no stay's start known).
        col("stay_starts", Kind::Text, false),
        // Since counters format 3; absent from formats 1 and 2 (no stay's sums known).
        col("open_stays", Kind::Text, false),
    ];
    const ACT_ID: Option<usize> = None;

    fn from_row<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Conv<YearCounter> {
        first_problem(|p| counter_from_row(row, opts, p))
    }

    fn problems<R: Row + ?Sized>(row: &R, opts: &ReadOptions) -> Vec<Bad> {
        every_problem(|p| counter_from_row(row, opts, p))
    }
}

/// A year's counters from a row, their problems handed to `p` in the order of its columns.
fn counter_from_row<R: Row + ?Sized, P: Problems>(
    row: &R,
    opts: &ReadOptions,
    p: &mut P,
) -> Conv<Option<YearCounter>> {
    let patient_id = p.take(req_string(row, 0))?;
    let year = p.take(opt_int(row, 1, 1, 9999).and_then(|year| {
        year.map(|y| y as i32)
            .ok_or(bad(1, RejectReason::MissingValue))
    }))?;
    let pf_used = p.take(req_amount(row, 2, opts, false))?;
    let franchise_used = p.take(req_amount(row, 3, opts, false))?;
    let charged_stays = p.take(opt_string(row, 4).and_then(|joined| match joined {
        Some(joined) => {
            let mut ids = parse_ids(&joined).ok_or(bad(4, RejectReason::UnknownValue))?;
            ids.sort_unstable();
            ids.dedup();
            Ok(ids)
        }
        None => Ok(Vec::new()),
    }))?;
    let pf_cap_reached_on = p.take(opt_date(row, 5))?;
    let franchise_cap_reached_on = p.take(opt_date(row, 6))?;
    let stay_starts = p.take(opt_string(row, 7).and_then(|joined| match joined {
        Some(joined) => {
            let mut starts = parse_dated(&joined).ok_or(bad(7, RejectReason::BadDate))?;
            // One start per stay, the earliest (a stay written twice in one row keeps its
            // first day).
            starts.sort_unstable();
            starts.dedup_by(|later, first| later.0 == first.0);
            Ok(starts)
        }
        None => Ok(Vec::new()),
    }))?;
    let open_stays = p.take(opt_string(row, 8).and_then(|joined| match joined {
        Some(joined) => {
            let mut sums = parse_stay_sums(&joined).ok_or(bad(8, RejectReason::BadDecimal))?;
            // One entry per stay (a stay written twice in one row keeps its first sums).
            sums.sort_by(|a, b| a.0.cmp(&b.0));
            sums.dedup_by(|later, first| later.0 == first.0);
            Ok(sums)
        }
        None => Ok(Vec::new()),
    }))?;
    Ok((|| {
        Some(YearCounter {
            patient_id: patient_id?,
            year: year?,
            pf_used: pf_used?,
            franchise_used: franchise_used?,
            charged_stays: charged_stays?,
            pf_cap_reached_on: pf_cap_reached_on?,
            franchise_cap_reached_on: franchise_cap_reached_on?,
            stay_starts: stay_starts?,
            open_stays: open_stays?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of text cells, as CSV gives them.
    struct TextRow(Vec<&'static [u8]>);

    impl Row for TextRow {
        fn cell(&self, slot: usize) -> Cell<'_> {
            match self.0.get(slot) {
                Some(bytes) if !bytes.is_empty() => Cell::Text(bytes),
                _ => Cell::Null,
            }
        }
    }

    fn act_row(changes: &[(usize, &'static [u8])]) -> TextRow {
        let mut cells: Vec<&'static [u8]> = vec![b""; Act::COLUMNS.len()];
        cells[0] = b"A1";
        cells[1] = b"P1";
        cells[2] = b"2024-03-01";
        cells[4] = b"consultation";
        cells[5] = b"26.50";
        for &(slot, value) in changes {
            cells[slot] = value;
        }
        TextRow(cells)
    }

    /// The care date of [`act_row`].
    fn act_row_date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
    }

    fn act_err(changes: &[(usize, &'static [u8])]) -> (&'static str, RejectReason) {
        let err = Act::from_row(&act_row(changes), &ReadOptions::default()).unwrap_err();
        (Act::COLUMNS[err.slot].name, err.reason)
    }

    #[test]
    fn act_defaults() {
        let act = Act::from_row(&act_row(&[]), &ReadOptions::default()).unwrap();
        let expected = Act::new(
            "A1",
            "P1",
            NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            Category::Consultation,
            Decimal::new(2650, 2),
        );
        assert_eq!(act, expected);
    }

    #[test]
    fn act_problems_are_every_problem_in_column_order() {
        use RejectReason::*;
        use act_slots::*;
        let opts = ReadOptions::default();
        let row = act_row(&[
            (PATIENT_ID, b""),
            (END_DATE, b"2024-02-01"),
            (TARIFF, b"999999999999.99"),
            (QUANTITY, b"2"),
            (COEFFICIENT, b"-1"),
            (PATHWAY, b"hors"),
        ]);
        let problems: Vec<(&str, RejectReason)> = Act::problems(&row, &opts)
            .iter()
            .map(|b| (Act::COLUMNS[b.slot].name, b.reason))
            .collect();
        assert_eq!(
            problems,
            [
                ("patient_id", MissingValue),
                ("end_date", EndBeforeStart),
                ("tariff", OutOfRange),
                ("coefficient", OutOfRange),
                ("pathway", UnknownValue),
            ]
        );
        let first = Act::from_row(&row, &opts).unwrap_err();
        assert_eq!((first.slot, first.reason), (PATIENT_ID, MissingValue));
        // A column that depends on a bad one is not judged: no product of a bad tariff.
        let row = act_row(&[(TARIFF, b"x"), (QUANTITY, b"2")]);
        assert_eq!(Act::problems(&row, &opts).len(), 1);
        assert!(Act::problems(&act_row(&[]), &opts).is_empty());
    }

    #[test]
    fn act_first_problem_wins() {
        use RejectReason::*;
        use act_slots::*;
        assert_eq!(act_err(&[(ACT_ID, b"")]), ("act_id", MissingValue));
        assert_eq!(
            act_err(&[(CARE_DATE, b"2024-02-31"), (TARIFF, b"x")]),
            ("care_date", BadDate)
        );
        assert_eq!(
            act_err(&[(CATEGORY, b"massage")]),
            ("category", UnknownCategory)
        );
        assert_eq!(act_err(&[(TARIFF, b"-1")]), ("tariff", NegativeAmount));
        assert_eq!(act_err(&[(TARIFF, b"1.234")]), ("tariff", TooManyDecimals));
        assert_eq!(act_err(&[(QUANTITY, b"0")]), ("quantity", OutOfRange));
        assert_eq!(act_err(&[(QUANTITY, b"1000001")]), ("quantity", OutOfRange));
        assert_eq!(act_err(&[(QUANTITY, b"1.5")]), ("quantity", BadInteger));
        assert_eq!(act_err(&[(BILLED, b"-0.01")]), ("billed", NegativeAmount));
        assert_eq!(
            act_err(&[(COEFFICIENT, b"-1")]),
            ("coefficient", OutOfRange)
        );
        assert_eq!(act_err(&[(CODE, b"\xe9")]), ("code", BadEncoding));
        assert_eq!(act_err(&[(TARIFF, b"\xe9")]), ("tariff", BadEncoding));
        assert_eq!(act_err(&[(PATHWAY, b"hors")]), ("pathway", UnknownValue));
        assert_eq!(act_err(&[(SETTING, b"home")]), ("setting", UnknownValue));
        assert_eq!(
            act_err(&[(INSURANCE_NATURE, b"Maladie")]),
            ("insurance_nature", UnknownValue)
        );
        assert_eq!(
            act_err(&[(ALD_RELATED, b"yes")]),
            ("ald_related", BadBoolean)
        );
        // An act ending before it begins, like a right (it was computed).
        assert_eq!(
            act_err(&[(END_DATE, b"2024-02-29")]),
            ("end_date", EndBeforeStart)
        );
        // The first bad column is the one named.
        assert_eq!(
            act_err(&[(END_DATE, b"2024-02-29"), (TARIFF, b"x")]),
            ("end_date", EndBeforeStart)
        );
        let act = Act::from_row(
            &act_row(&[(END_DATE, b"2024-03-01")]),
            &ReadOptions::default(),
        );
        assert_eq!(act.unwrap().end_date, Some(act_row_date()));
        let act = Act::from_row(
            &act_row(&[(RECORDED_AMO, b"-3.10"), (QUANTITY, b"1000000")]),
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(act.recorded_amo, Some(Decimal::new(-310, 2)));
        assert_eq!(act.quantity, 1_000_000);
    }

    #[test]
    fn rights_end_before_start() {
        let row = TextRow(vec![b"P1", b"css", b"2024-03-01", b"2024-02-29"]);
        let err = RightPeriod::from_row(&row, &ReadOptions::default()).unwrap_err();
        assert_eq!(err, bad(3, RejectReason::EndBeforeStart));
        let row = TextRow(vec![b"P1", b"css", b"2024-03-01", b"2024-03-01", b"R-7"]);
        let right = RightPeriod::from_row(&row, &ReadOptions::default()).unwrap();
        assert_eq!(right.reference.as_deref(), Some("R-7"));
        assert!(right.is_active(NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()));
    }

    #[test]
    fn counters_stays_sorted() {
        let row = TextRow(vec![b"P1", b"2024", b"12", b"3.5", b"S2;S1;;S2", b"", b""]);
        let counter = YearCounter::from_row(&row, &ReadOptions::default()).unwrap();
        assert_eq!(counter.charged_stays, vec!["S1", "S2"]);
        assert_eq!(counter.franchise_used, Decimal::new(350, 2));
        let row = TextRow(vec![b"P1", b"0", b"12", b"3.5"]);
        let err = YearCounter::from_row(&row, &ReadOptions::default()).unwrap_err();
        assert_eq!(err, bad(1, RejectReason::OutOfRange));
    }

    /// The problems of a row of table `T`, as (column, reason), in the order reported.
    fn problems_of<T: Table>(cells: Vec<&'static [u8]>) -> Vec<(&'static str, RejectReason)> {
        T::problems(&TextRow(cells), &ReadOptions::default())
            .iter()
            .map(|b| (T::COLUMNS[b.slot].name, b.reason))
            .collect()
    }

    #[test]
    fn beneficiaries_rights_and_counters_give_every_problem_in_column_order() {
        use RejectReason::*;
        assert_eq!(
            problems_of::<Beneficiary>(vec![b"", b"2024-02-30", b"martian"]),
            [
                ("patient_id", MissingValue),
                ("birth_date", BadDate),
                ("regime", UnknownValue)
            ]
        );
        assert!(problems_of::<Beneficiary>(vec![b"P1", b"1980-01-01"]).is_empty());
        assert_eq!(
            problems_of::<RightPeriod>(vec![b"P1", b"gold", b"2024-03-01", b"2024-02-01"]),
            [("right", UnknownValue), ("end_date", EndBeforeStart)]
        );
        // The end is judged against the start only when the start reads.
        assert_eq!(
            problems_of::<RightPeriod>(vec![b"", b"css", b"x", b"2024-02-01"]),
            [("patient_id", MissingValue), ("start_date", BadDate)]
        );
        assert_eq!(
            problems_of::<YearCounter>(vec![
                b"P1",
                b"0",
                b"-1",
                b"x",
                b"",
                b"2024-13-01",
                b"",
                b"S1=nope",
                b"S2=bad"
            ]),
            [
                ("year", OutOfRange),
                ("pf_used", NegativeAmount),
                ("franchise_used", BadDecimal),
                ("pf_cap_reached_on", BadDate),
                ("stay_starts", BadDate),
                ("open_stays", BadDecimal),
            ]
        );
        // A run stops at the first, in the same order.
        let row = TextRow(vec![
            b"P1",
            b"2024",
            b"1",
            b"1",
            b"",
            b"",
            b"2024-13-01",
            b"S1=x",
        ]);
        let first = YearCounter::from_row(&row, &ReadOptions::default()).unwrap_err();
        assert_eq!(first, bad(6, BadDate));
    }
}
