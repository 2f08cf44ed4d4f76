//! Synthetic, realistic data sets (`rac generate`, SPEC §1–§2).
//!
//! [`generate`] writes `acts`, `beneficiaries` and `rights` (CSV or Parquet) with exactly the
//! SPEC §2 columns; [`generate_in_memory`] returns the same rows as [`crate::model`] types, for
//! tests and benchmarks that want no files.
//!
//! How the data is made, and why:
//!
//! - **Deterministic.** Everything derives from the seed through a private xoshiro256**
//!   generator (no crate, no clock, no hash-map order). A patient's profile, rights and history
//!   come from a generator keyed by (seed, patient), a batch's shuffle from (seed, batch): the
//!   batches are built in parallel and the bytes do not depend on the thread count.
//! - **Bounded memory.** Acts are made in batches of at most [`BATCH_ROWS`] rows, each over a
//!   disjoint range of patients; a batch is shuffled (a real extract is not sorted) and becomes
//!   one Parquet row group (or one block of CSV). A window of a few batches per thread is
//!   built in parallel while a writer thread writes the previous one, in order.
//! - **Realistic, to exercise every rule.** Patients have an age (0–95, ~15 % minors), a regime
//!   (~3 % Alsace-Moselle) and rights (ALD ~1 in 6, CSS ~1 in 10, AME ~1 %, invalidity ~2 %, a few
//!   military pensions and AT rents, maternity windows, newborns with their birth stay). Their
//!   history is a sequence of encounters — GP visits and what they prescribe (drug boxes,
//!   biology, nurses, imaging), specialists (with overbilling, direct access, out-of-pathway
//!   visits, same-day heavy acts that reach the 24 € threshold), dentists, transport, devices,
//!   optical, hearing, emergency visits (from 2022), hospital stays (GHS lines split every 30
//!   days, inpatient acts, forfaits journaliers) — with insurance natures and exoneration codes
//!   consistent with the rights, so that the data is valid and every situation of RULES §3
//!   occurs.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use chrono::{Months, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use rust_decimal::Decimal;

use crate::model::{
    Act, Beneficiary, Category, Id, InsuranceNature, Pathway, Regime, RightKind, RightPeriod,
    Setting,
};

/// Rows per batch: one Parquet row group, the unit of parallel work and of memory.
pub const BATCH_ROWS: u64 = 262_144;

// ------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------

/// File format of a generated data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenFormat {
    Parquet,
    Csv,
}

impl GenFormat {
    /// The file extension (`parquet` or `csv`).
    pub fn extension(self) -> &'static str {
        match self {
            GenFormat::Parquet => "parquet",
            GenFormat::Csv => "csv",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Number of act lines, exactly.
    pub acts: u64,
    /// Number of beneficiaries, exactly (some may have no act).
    pub patients: u64,
    pub seed: u64,
    pub format: GenFormat,
    /// First care date.
    pub start: NaiveDate,
    /// Care dates are spread over `[start, start + months)`.
    pub months: u32,
}

impl Default for GenerateOptions {
    /// 100,000 acts of 10,000 patients over 2024, Parquet, seed 1.
    fn default() -> Self {
        GenerateOptions {
            acts: 100_000,
            patients: 10_000,
            seed: 1,
            format: GenFormat::Parquet,
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date"),
            months: 12,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateStats {
    pub acts: u64,
    pub patients: u64,
    /// Rows of the rights file.
    pub rights: u64,
    /// `acts.*`, `beneficiaries.*`, `rights.*`, in that order.
    pub files: Vec<PathBuf>,
}

/// Why a data set could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid generate options: {0}")]
    InvalidOptions(String),
    /// The output folder cannot be made (a file there, no permission).
    #[error("--out {}: cannot make the folder: {source}", path.display())]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {} as Parquet: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("cannot build the Arrow columns of {}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
}

/// A whole generated data set in memory, rows in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub acts: Vec<Act>,
    pub beneficiaries: Vec<Beneficiary>,
    pub rights: Vec<RightPeriod>,
}

/// Writes `acts.{ext}`, `beneficiaries.{ext}` and `rights.{ext}` in `out_dir` (created if
/// needed). Each file is written under a temporary name and renamed when complete. The same
/// options give the same bytes, whatever the number of threads.
pub fn generate(opts: &GenerateOptions, out_dir: &Path) -> Result<GenerateStats, GenerateError> {
    let ctx = Ctx::new(opts)?;
    fs::create_dir_all(out_dir).map_err(|source| GenerateError::OutDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let result = write_dataset(&ctx, opts, out_dir);
    if result.is_err() {
        // Best effort: leave no partial file behind.
        for name in ["acts", "beneficiaries", "rights"] {
            let _ = fs::remove_file(Output::tmp_path(out_dir, name, opts.format));
        }
    }
    result
}

fn write_dataset(
    ctx: &Ctx,
    opts: &GenerateOptions,
    out_dir: &Path,
) -> Result<GenerateStats, GenerateError> {
    let mut acts = Output::create(out_dir, "acts", opts.format, acts_schema(), ACTS_HEADER)?;
    let mut bens = Output::create(
        out_dir,
        "beneficiaries",
        opts.format,
        beneficiaries_schema(),
        BENEFICIARIES_HEADER,
    )?;
    let mut rights = Output::create(
        out_dir,
        "rights",
        opts.format,
        rights_schema(),
        RIGHTS_HEADER,
    )?;

    // Beneficiaries and rights, in patient order.
    let mut rights_rows = 0u64;
    let (bens_target, bens_sink) = (&bens.target, &mut bens.sink);
    let (rights_target, rights_sink) = (&rights.target, &mut rights.sink);
    pipeline(
        ctx.patient_batches(),
        |b| {
            let (ben, rig) = ctx.patient_batch(b);
            let n = rig.len() as u64;
            Ok((
                bens_target.encode(b, ben.as_slice())?,
                rights_target.encode(b, rig.as_slice())?,
                n,
            ))
        },
        |(ben, rig, n)| {
            bens_sink.write(&bens_target.path, ben)?;
            rights_sink.write(&rights_target.path, rig)?;
            rights_rows += n;
            Ok(())
        },
    )?;

    // Acts, batch by batch.
    let (acts_target, acts_sink) = (&acts.target, &mut acts.sink);
    pipeline(
        ctx.act_batches,
        |b| acts_target.encode(b, &ctx.act_batch(b)),
        |chunk| acts_sink.write(&acts_target.path, chunk),
    )?;

    let files = put_in_place(vec![acts.close()?, bens.close()?, rights.close()?])?;
    Ok(GenerateStats {
        acts: opts.acts,
        patients: opts.patients,
        rights: rights_rows,
        files,
    })
}

/// The rows [`generate`] would write, as model types, in file order. Meant for small data
/// sets (everything is held in memory).
pub fn generate_in_memory(opts: &GenerateOptions) -> Result<Dataset, GenerateError> {
    let ctx = Ctx::new(opts)?;
    let mut data = Dataset {
        acts: Vec::with_capacity(opts.acts as usize),
        beneficiaries: Vec::with_capacity(opts.patients as usize),
        rights: Vec::new(),
    };
    for b in 0..ctx.patient_batches() {
        let (ben, rig) = ctx.patient_batch(b);
        data.beneficiaries.extend(ben.iter().map(BenRow::to_model));
        data.rights.extend(rig.iter().map(RightRow::to_model));
    }
    let batches: Vec<ActBatch> = (0..ctx.act_batches)
        .into_par_iter()
        .map(|b| ctx.act_batch(b))
        .collect();
    for batch in &batches {
        data.acts
            .extend(batch.lines().map(|(id, row)| ActBatch::to_model(id, row)));
    }
    Ok(data)
}

// ------------------------------------------------------------------------------------------
// PRNG: splitmix64 for keys, xoshiro256** for streams
// ------------------------------------------------------------------------------------------

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed hash of two words (for keys and stable per-entity choices).
fn mix(a: u64, b: u64) -> u64 {
    let mut s = a ^ b.wrapping_mul(GOLDEN).rotate_left(17);
    splitmix(&mut s)
}

// Stream keys, so that the generators of different purposes never share a sequence.
const KEY_PATIENT: u64 = 0x5041_5449_454E_5401;
const KEY_HISTORY: u64 = 0x4849_5354_4F52_5902;
const KEY_SHUFFLE: u64 = 0x5348_5546_464C_4503;
const KEY_PRACTITIONER: u64 = 0x5052_4143_5449_4304;
const KEY_SECTOR: u64 = 0x5345_4354_4F52_3205;
const KEY_CHRONIC: u64 = 0x4348_524F_4E49_4306;
const KEY_CATALOG: u64 = 0x4341_5441_4C4F_4707;

struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Rng {
        let mut state = mix(mix(seed, stream), index);
        Rng {
            s: [
                splitmix(&mut state),
                splitmix(&mut state),
                splitmix(&mut state),
                splitmix(&mut state),
            ],
        }
    }

    /// xoshiro256** (Blackman & Vigna).
    fn next(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)` (0 when `n` is 0); Lemire's multiply-shift, bias negligible here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi]`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A value drawn with integer weights.
    fn pick<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut r = self.below(total);
        for &(item, w) in items {
            if r < u64::from(w) {
                return item;
            }
            r -= u64::from(w);
        }
        items[items.len() - 1].0
    }
}

// ------------------------------------------------------------------------------------------
// Dates as days since 1970-01-01 (Arrow Date32)
// ------------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
const fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn to_days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    days_from_civil(date.year(), date.month(), date.day())
}

fn to_date(days: i32) -> NaiveDate {
    let (y, m, d) = civil_from_days(days);
    NaiveDate::from_ymd_opt(y, m, d).expect("generated dates are in range")
}

/// Full years of age on `date`.
fn age_years(birth: i32, date: i32) -> i64 {
    let (by, bm, bd) = civil_from_days(birth);
    let (y, m, d) = civil_from_days(date);
    i64::from(y - by) - i64::from((m, d) < (bm, bd))
}

/// The day before the same day `months` later (an inclusive end of a period of whole months).
fn months_later_inclusive(start: i32, months: u32) -> i32 {
    let (y, m, d) = civil_from_days(start);
    let total = m - 1 + months;
    let (y2, m2) = (y + (total / 12) as i32, total % 12 + 1);
    // Clamp the day to the length of the target month (31 Jan + 1 month = 28/29 Feb).
    let mut d2 = d;
    while d2 > 28 && civil_from_days(days_from_civil(y2, m2, d2)).1 != m2 {
        d2 -= 1;
    }
    days_from_civil(y2, m2, d2) - 1
}

const D2017_05_01: i32 = days_from_civil(2017, 5, 1);
const D2018_01_01: i32 = days_from_civil(2018, 1, 1);
const D2020_01_01: i32 = days_from_civil(2020, 1, 1);
const D2021_01_01: i32 = days_from_civil(2021, 1, 1);
const D2022_01_01: i32 = days_from_civil(2022, 1, 1);
const D2023_12_23: i32 = days_from_civil(2023, 12, 23);
const D2024_12_22: i32 = days_from_civil(2024, 12, 22);
const D2026_03_01: i32 = days_from_civil(2026, 3, 1);

// ------------------------------------------------------------------------------------------
// Tariffs (cents) and catalogues
// ------------------------------------------------------------------------------------------

/// GP consultation `G` (RULES §1 `ngap.G`; 23 € before the 2017 value).
fn g_tariff(d: i32) -> i64 {
    if d < D2017_05_01 {
        2300
    } else if d < D2023_12_23 {
        2500
    } else if d < D2024_12_22 {
        2650
    } else {
        3000
    }
}

/// Forfait journalier (RULES §1 `fj.daily`, `fj.daily_psy`, and the 2026 values of §8).
fn fj_tariff(d: i32, psy: bool) -> i64 {
    match (d < D2018_01_01, d < D2026_03_01, psy) {
        (true, _, false) => 1800,
        (true, _, true) => 1350,
        (false, true, false) => 2000,
        (false, true, true) => 1500,
        (false, false, false) => 2300,
        (false, false, true) => 1700,
    }
}

/// Hearing aid base per ear (LPP, *100 % santé* reform).
fn hearing_base(d: i32) -> i64 {
    if d < D2020_01_01 {
        30_000
    } else if d < D2021_01_01 {
        35_000
    } else {
        40_000
    }
}

const DRUG_CATALOG: u64 = 4000;
const NABM_CATALOG: u64 = 400;
const LPP_CATALOG: u64 = 600;

/// A drug of the catalogue: its rate category, CIP13 suffix and price per box. The same CIP
/// always has the same rate and price, as in real data; the catalogue does not depend on the seed.
fn drug(idx: u64) -> (Category, u32, i64) {
    let h = mix(KEY_CATALOG, idx);
    let category = match h % 100 {
        0..60 => Category::Drug65,
        60..82 => Category::Drug30,
        82..93 => Category::Drug15,
        _ => Category::Drug100,
    };
    let r = (h >> 8) % 10_000;
    let tariff = match (h >> 24) % 100 {
        0..55 => 100 + r % 900,          // 1.00 – 9.99
        55..85 => 1000 + r % 2000,       // 10.00 – 29.99
        _ => 3000 + (r * 3001) / 10_000, // 30.00 – 60.00
    };
    let cip = ((idx * 7919 + 100_003) % 100_000_000) as u32;
    (category, cip, tariff as i64)
}

/// A biology act (NABM code, tariff).
fn nabm(idx: u64) -> (u16, i64) {
    let h = mix(KEY_CATALOG ^ 0xB10, idx);
    let code = (1000 + (idx * 37) % 9000) as u16;
    let r = (h >> 8) % 10_000;
    let tariff = match h % 100 {
        0..55 => 270 + r % 540,
        55..90 => 810 + r % 1890,
        _ => 2700 + r % 3300,
    };
    (code, tariff as i64)
}

/// A device of the LPP (code, tariff per unit).
fn lpp(idx: u64) -> (u32, i64) {
    let h = mix(KEY_CATALOG ^ 0x11BB, idx);
    let code = (1_000_000 + (idx * 7919) % 1_000_000) as u32;
    let r = (h >> 8) % 100_000;
    let tariff = match h % 100 {
        0..50 => 100 + r % 1900,
        50..85 => 2000 + r % 8000,
        _ => 10_000 + r % 20_000,
    };
    (code, tariff as i64)
}

/// Consultation and technical acts of a specialty: (code, tariff in cents, NGAP coefficient).
/// Heavy ones (≥ 120 € or coefficient ≥ 60) trigger the 24 € flat fee (RULES §4 PAL).
type ActDef = (&'static str, i64, Option<i64>);

struct Specialty {
    name: &'static str,
    /// Weight among adults' and minors' specialist visits.
    adult: u32,
    minor: u32,
    /// Accessible without the GP's referral (RULES §2 out of pathway).
    direct_access: bool,
    acts: &'static [ActDef],
}

const SPECIALTIES: &[Specialty] = &[
    Specialty {
        name: "cardiology",
        adult: 12,
        minor: 1,
        direct_access: false,
        acts: &[
            ("DEQP003", 1426, None),
            ("DZQM006", 9566, None),
            ("EQQM006", 7560, None),
        ],
    },
    Specialty {
        name: "dermatology",
        adult: 10,
        minor: 4,
        direct_access: false,
        acts: &[
            ("QZFA031", 4180, None),
            ("QZFA036", 13_020, None),
            ("QZRB001", 2880, None),
        ],
    },
    Specialty {
        name: "gynaecology",
        adult: 14,
        minor: 1,
        direct_access: true,
        acts: &[
            ("JKHD001", 1302, None),
            ("JKKD001", 3806, None),
            ("JKFE001", 12_540, None),
        ],
    },
    Specialty {
        name: "ophthalmology",
        adult: 14,
        minor: 6,
        direct_access: true,
        acts: &[
            ("BGQP002", 2827, None),
            ("BELA001", 12_540, None),
            ("BLQP010", 3540, None),
        ],
    },
    Specialty {
        name: "psychiatry",
        adult: 8,
        minor: 2,
        direct_access: true,
        acts: &[("ALQP003", 6912, None)],
    },
    Specialty {
        name: "paediatrics",
        adult: 0,
        minor: 40,
        direct_access: false,
        acts: &[("DEQP003", 1426, None), ("K", 960, Some(500))],
    },
    Specialty {
        name: "rheumatology",
        adult: 6,
        minor: 0,
        direct_access: false,
        acts: &[
            ("K", 1920, Some(1000)),
            ("K", 3840, Some(2000)),
            ("PAQK007", 3990, None),
        ],
    },
    Specialty {
        name: "gastroenterology",
        adult: 6,
        minor: 1,
        direct_access: false,
        acts: &[("HHQE005", 13_440, None), ("HEQE002", 9696, None)],
    },
    Specialty {
        name: "otorhinolaryngology",
        adult: 7,
        minor: 5,
        direct_access: false,
        acts: &[("CDQP010", 2688, None), ("GAQE001", 4580, None)],
    },
    Specialty {
        name: "pneumology",
        adult: 5,
        minor: 1,
        direct_access: false,
        acts: &[("GLQP012", 4028, None), ("GLQP008", 6720, None)],
    },
    Specialty {
        name: "endocrinology",
        adult: 5,
        minor: 1,
        direct_access: false,
        acts: &[("KCQM001", 5040, None)],
    },
    Specialty {
        name: "stomatology",
        adult: 3,
        minor: 1,
        direct_access: true,
        acts: &[("HBGD036", 3344, None), ("HBGD010", 12_160, None)],
    },
    Specialty {
        name: "surgery",
        adult: 6,
        minor: 2,
        direct_access: false,
        acts: &[
            ("QZFA031", 4180, None),
            ("K", 11_520, Some(6000)),
            ("KC", 16_720, Some(8000)),
            ("NFMC003", 48_692, None),
            ("QZFA036", 13_020, None),
        ],
    },
    Specialty {
        name: "neurology",
        adult: 4,
        minor: 1,
        direct_access: false,
        acts: &[("AAQP007", 6912, None)],
    },
];

const SPEC_GYNAECOLOGY: u32 = 2;
const SPEC_PSYCHIATRY: u32 = 4;
const SPEC_SURGERY: u32 = 12;

/// Specialist consultation: (code, tariff) at a date.
fn specialist_consultation(spec: u32, d: i32, rng: &mut Rng) -> (&'static str, i64) {
    let recent = d >= D2024_12_22;
    match spec {
        SPEC_PSYCHIATRY => ("CNPSY", if recent { 5500 } else { 4250 }),
        0 => ("CSC", 4773),
        _ if rng.chance(150) => ("APC", if recent { 5500 } else { 5000 }),
        _ => ("CS", if d < D2017_05_01 { 2800 } else { 3000 }),
    }
}

/// Inpatient technical acts (surgery, endoscopy, delivery): mostly heavy.
const INPATIENT_ACTS: &[ActDef] = &[
    ("HHQE005", 13_440, None),
    ("NFMC003", 48_692, None),
    ("BFGA004", 27_145, None),
    ("JJFC010", 37_410, None),
    ("QZFA036", 13_020, None),
    ("K", 15_360, Some(8000)),
    ("EBFA012", 22_680, None),
    ("DEQP003", 1426, None),
];

const GP_ACTS: &[ActDef] = &[
    ("DEQP003", 1426, None),
    ("QZFA031", 4180, None),
    ("K", 1920, Some(1000)),
    ("JKHD001", 1302, None),
];

const IMAGING: &[((&str, i64), u32)] = &[
    (("ZBQK002", 2128), 30),
    (("MZQK002", 1995), 10),
    (("NFQK001", 1995), 8),
    (("ZCQM001", 5670), 15),
    (("QEQK004", 6642), 8),
    (("ZCQK004", 2527), 6),
    (("ACQN001", 6900), 5),
    (("YYYY600", 13_000), 3),
    (("YYYY015", 21_500), 2),
];

const DENTAL: &[((&str, i64), u32)] = &[
    (("HBJD001", 2892), 20),
    (("HBMD049", 5060), 15),
    (("HBGD036", 3344), 8),
    (("HBQK389", 2000), 10),
    (("C", 2300), 25),
    (("HBLD038", 12_000), 7),
];

const NURSE_ACTS: &[((&str, i64), u32)] = &[
    (("AMI", 315), 20),
    (("AMI", 473), 15),
    (("AMI", 630), 15),
    (("AMI", 945), 8),
    (("AMI", 1260), 5),
    (("BSA", 1300), 10),
    (("BSB", 1820), 6),
    (("AIS", 795), 6),
];

const PHYSIO_ACTS: &[((&str, i64), u32)] = &[
    (("AMK", 1613), 30),
    (("AMK", 1720), 20),
    (("AMC", 1613), 10),
    (("AMS", 1505), 10),
];

const ALD_LISTS: &[(u8, u32)] = &[
    (8, 25),
    (30, 25),
    (13, 10),
    (5, 8),
    (23, 10),
    (15, 5),
    (3, 5),
    (9, 3),
    (16, 3),
    (25, 2),
    (19, 4),
];
const ALD_PSYCHIATRIC: u8 = 23;

// ------------------------------------------------------------------------------------------
// Practitioners
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gp,
    Specialist,
    Pharmacy,
    Lab,
    Nurse,
    Physio,
    Dentist,
    Radiology,
    Transport,
    Supplier,
    Hospital,
    Midwife,
}

const KINDS: usize = 12;
const KIND_PREFIX: [&[u8; 2]; KINDS] = [
    b"GP", b"SP", b"PH", b"LB", b"NU", b"PT", b"DE", b"RD", b"TR", b"SU", b"HO", b"MW",
];
/// Patients per professional, and the least number of professionals, by kind.
const KIND_POOL: [(u64, u64); KINDS] = [
    (1000, 3),
    (6000, 2),
    (2500, 2),
    (8000, 2),
    (1500, 2),
    (2000, 2),
    (1500, 2),
    (10_000, 2),
    (5000, 2),
    (5000, 2),
    (20_000, 1),
    (6000, 2),
];
const KIND_SPECIALTY: [Option<&str>; KINDS] = [
    Some("general_practice"),
    None, // from the specialty table
    Some("pharmacy"),
    Some("biology"),
    Some("nursing"),
    Some("physiotherapy"),
    Some("dental_surgery"),
    Some("radiology"),
    None,
    None,
    Some("emergency_medicine"),
    Some("midwifery"),
];
const PRAC_BITS: u32 = 27;

#[derive(Debug, Clone, Copy)]
struct Prac {
    id: u32,
    /// See [`specialty_name`].
    specialty: u8,
}

// ------------------------------------------------------------------------------------------
// Plan
// ------------------------------------------------------------------------------------------

struct Ctx {
    seed: u64,
    acts: u64,
    patients: u64,
    /// Care dates in `[w0, w1)`.
    w0: i32,
    w1: i32,
    act_batches: u64,
    pools: [u64; KINDS],
    /// `YYYY-MM-DD` of the days of the window, for fast CSV.
    date_texts: Vec<[u8; 10]>,
}

impl Ctx {
    fn new(opts: &GenerateOptions) -> Result<Ctx, GenerateError> {
        let invalid = |msg: &str| Err(GenerateError::InvalidOptions(msg.to_string()));
        if opts.months == 0 {
            return invalid("months must be at least 1");
        }
        if opts.acts > 0 && opts.patients == 0 {
            return invalid("acts need at least one patient");
        }
        let Some(end) = opts.start.checked_add_months(Months::new(opts.months)) else {
            return invalid("start + months is out of the date range");
        };
        let (w0, w1) = (to_days(opts.start), to_days(end));
        if civil_from_days(w0).0 < 1900 || civil_from_days(w1).0 > 9000 {
            return invalid("dates must lie between 1900 and 9000");
        }
        let act_batches = if opts.acts == 0 {
            0
        } else {
            opts.acts.div_ceil(BATCH_ROWS).min(opts.patients).max(1)
        };
        let mut pools = [0; KINDS];
        for (pool, (per, min)) in pools.iter_mut().zip(KIND_POOL) {
            *pool = (opts.patients / per).clamp(min, 1 << 22);
        }
        Ok(Ctx {
            seed: opts.seed,
            acts: opts.acts,
            patients: opts.patients,
            w0,
            w1,
            act_batches,
            pools,
            date_texts: (w0..w1.min(w0 + 100_000)).map(date_text).collect(),
        })
    }

    fn patient_batches(&self) -> u64 {
        self.patients.div_ceil(BATCH_ROWS)
    }

    /// Beneficiaries and rights of the patients of batch `b`.
    fn patient_batch(&self, b: u64) -> (Vec<BenRow>, Vec<RightRow>) {
        let lo = b * BATCH_ROWS;
        let hi = (lo + BATCH_ROWS).min(self.patients);
        let mut bens = Vec::with_capacity((hi - lo) as usize);
        let mut rights = Vec::new();
        for idx in lo..hi {
            let p = self.profile(idx);
            bens.push(BenRow {
                patient: idx,
                birth: p.birth,
                regime: p.regime,
            });
            p.rights(&mut rights);
        }
        (bens, rights)
    }

    /// The acts of batch `b`: patients `[P·b/B, P·(b+1)/B)` share acts `[A·b/B, A·(b+1)/B)` in
    /// proportion to their activity weights, then the batch is shuffled.
    fn act_batch(&self, b: u64) -> ActBatch<'_> {
        let split = |total: u64, i: u64| {
            (u128::from(total) * u128::from(i) / u128::from(self.act_batches)) as u64
        };
        let (p0, p1) = (split(self.patients, b), split(self.patients, b + 1));
        let (a0, a1) = (split(self.acts, b), split(self.acts, b + 1));
        let n = a1 - a0;
        let profiles: Vec<Profile> = (p0..p1).map(|i| self.profile(i)).collect();
        // Weights of 0 (no care) unless the whole batch would be idle.
        let any_active = profiles.iter().any(|p| p.weight > 0);
        let weight = |p: &Profile| u128::from(if any_active { p.weight } else { 1 });
        let total: u128 = profiles.iter().map(weight).sum();
        let mut rows = Vec::with_capacity(n as usize);
        let mut cumulative = 0u128;
        for p in &profiles {
            // Quotas by cumulative rounding: they sum to exactly `n`.
            let before = (u128::from(n) * cumulative / total) as usize;
            cumulative += weight(p);
            let after = (u128::from(n) * cumulative / total) as usize;
            let mut history = Gen {
                ctx: self,
                p,
                rng: Rng::new(self.seed, KEY_HISTORY, p.idx),
                limit: rows.len() + (after - before),
                rows: &mut rows,
                lo: self.w0.max(p.birth),
                hi: self.w1,
                stays: 0,
            };
            history.run();
        }
        debug_assert_eq!(rows.len() as u64, n);
        // A real extract is not sorted: the lines are written in a random order (Fisher–Yates
        // with the batch's own generator), their ids staying those of the generation order.
        // The rows are gathered once in that order, in a tight loop whose cache misses overlap,
        // so that every later pass over them is sequential.
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        let mut rng = Rng::new(self.seed, KEY_SHUFFLE, b);
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let shuffled = order.iter().map(|&k| rows[k as usize].clone()).collect();
        ActBatch {
            ctx: self,
            first_id: a0 + 1,
            rows: shuffled,
            order,
        }
    }

    fn profile(&self, idx: u64) -> Profile {
        Profile::new(self, idx)
    }
}

// ------------------------------------------------------------------------------------------
// Patients and their rights
// ------------------------------------------------------------------------------------------

/// A rights period; `end` inclusive, `None` open.
#[derive(Debug, Clone, Copy)]
struct Period {
    start: i32,
    end: Option<i32>,
}

impl Period {
    fn active(&self, d: i32) -> bool {
        self.start <= d && self.end.is_none_or(|e| d <= e)
    }
}

fn any_active(periods: &[Period], d: i32) -> bool {
    periods.iter().any(|p| p.active(d))
}

struct Profile {
    idx: u64,
    birth: i32,
    regime: Regime,
    female: bool,
    newborn: bool,
    /// Relative activity (acts are shared in proportion).
    weight: u64,
    ald: Option<(Period, u8)>,
    css: Vec<Period>,
    ame: Vec<Period>,
    invalidity: Option<Period>,
    military: Option<Period>,
    at_rent: Option<Period>,
    /// Delivery date of a pregnancy overlapping the window.
    delivery: Option<i32>,
}

impl Profile {
    fn new(ctx: &Ctx, idx: u64) -> Profile {
        let mut rng = Rng::new(ctx.seed, KEY_PATIENT, idx);
        let (w0, w1) = (ctx.w0, ctx.w1);
        let days = i64::from(w1 - w0);
        let female = rng.chance(500);
        let regime = if rng.chance(30) {
            Regime::AlsaceMoselle
        } else {
            Regime::General
        };
        // ~1.1 % of the population is born each year.
        let newborn_ppm = if days > 10 {
            (11_000 * days / 365).min(50_000) as u64
        } else {
            0
        };
        let (birth, newborn, band) = if rng.below(1_000_000) < newborn_ppm {
            (w0 + rng.below((days - 10) as u64) as i32, true, 0)
        } else {
            // 15 % minors; adults 18–39, 40–59, 60–79, 80–95 as in the French population.
            let band = rng.pick(&[(0u8, 150), (1, 272), (2, 272), (3, 238), (4, 68)]);
            let (lo, hi) = [(0, 17), (18, 39), (40, 59), (60, 79), (80, 95)][band as usize];
            let years = rng.between(lo, hi);
            let age_days = years * 365 + years / 4 + rng.below(365) as i64;
            (w0 - age_days as i32, false, band)
        };
        let age0 = age_years(birth, w0).max(0);
        let mut p = Profile {
            idx,
            birth,
            regime,
            female,
            newborn,
            weight: 0,
            ald: None,
            css: Vec::new(),
            ame: Vec::new(),
            invalidity: None,
            military: None,
            at_rent: None,
            delivery: None,
        };

        let ald_ppm = [40_000, 60_000, 140_000, 300_000, 450_000][band as usize];
        if !newborn && rng.below(1_000_000) < ald_ppm {
            let list = rng.pick(ALD_LISTS);
            p.ald = Some((long_period(&mut rng, w0, w1, birth), list));
        }
        let css_ppm = [140_000, 110_000, 110_000, 50_000, 50_000][band as usize];
        if rng.below(1_000_000) < css_ppm {
            p.css = yearly_periods(&mut rng, w0, w1, birth);
        } else if rng.chance(10) {
            p.ame = yearly_periods(&mut rng, w0, w1, birth);
        }
        let adult_since = birth + 18 * 365 + 5;
        if (20..=61).contains(&age0) && rng.chance(35) {
            p.invalidity = Some(long_period(&mut rng, w0, w1, adult_since));
        }
        if age0 >= 25 && rng.chance(4) {
            p.military = Some(long_period(&mut rng, w0, w1, adult_since));
        }
        if (25..=70).contains(&age0) && rng.chance(3) {
            p.at_rent = Some(long_period(&mut rng, w0, w1, adult_since));
        }
        // Deliveries in [w0 − 12, w1 + 121): the maternity window (6th month to 12 days after)
        // then overlaps the data; ~6.5 % of women of child-bearing age give birth each year.
        if female && (18..=44).contains(&age0) {
            let span = days + 133;
            let ppm = (65_000 * span / 365).min(600_000) as u64;
            if rng.below(1_000_000) < ppm {
                p.delivery = Some(w0 - 12 + rng.below(span as u64) as i32);
            }
        }

        // Activity: a skewed base (a few heavy users) times age and condition factors.
        let base = rng.pick(&[
            (3u64, 250),
            (6, 250),
            (10, 200),
            (15, 130),
            (25, 90),
            (40, 50),
            (80, 25),
            (150, 5),
        ]);
        let age_factor = if newborn {
            15
        } else {
            [7, 6, 10, 16, 22][band as usize]
        };
        let mut weight = base * age_factor;
        if p.ald.is_some() {
            weight = weight * 5 / 2;
        }
        if p.delivery.is_some() || p.invalidity.is_some() {
            weight = weight * 3 / 2;
        }
        if !p.css.is_empty() {
            weight = weight * 6 / 5;
        }
        // Some healthy adults claim nothing over the period.
        let idle = (1..=2).contains(&band) && p.ald.is_none() && p.delivery.is_none();
        p.weight = if idle && rng.chance(80) { 0 } else { weight };
        p
    }

    fn ald_active(&self, d: i32) -> bool {
        self.ald.is_some_and(|(p, _)| p.active(d))
    }

    fn pension_active(&self, d: i32) -> bool {
        [self.invalidity, self.military, self.at_rent]
            .iter()
            .flatten()
            .any(|p| p.active(d))
    }

    fn rights(&self, out: &mut Vec<RightRow>) {
        let mut push = |right, p: Period, reference: Option<String>| {
            out.push(RightRow {
                patient: self.idx,
                right,
                start: p.start,
                end: p.end,
                reference,
            })
        };
        if let Some((p, list)) = self.ald {
            push(RightKind::Ald, p, Some(format!("ALD{list:02}")));
        }
        for &p in &self.css {
            push(RightKind::Css, p, None);
        }
        for &p in &self.ame {
            push(RightKind::Ame, p, None);
        }
        let number = self.idx + 1;
        if let Some(p) = self.invalidity {
            let category = 1 + number % 2;
            push(
                RightKind::Invalidity,
                p,
                Some(format!("INV{category}-{number:010}")),
            );
        }
        if let Some(p) = self.military {
            push(
                RightKind::MilitaryPension,
                p,
                Some(format!("PMI-{number:010}")),
            );
        }
        if let Some(p) = self.at_rent {
            push(RightKind::AtRent66, p, Some(format!("ATR-{number:010}")));
        }
        if let Some(d) = self.delivery {
            // First day of the 6th month of pregnancy to the 12th day after delivery (SPEC §2).
            let window = Period {
                start: d - 121,
                end: Some(d + 12),
            };
            push(RightKind::Maternity, window, None);
        }
        if self.newborn {
            let first_days = Period {
                start: self.birth,
                end: Some(self.birth + 30),
            };
            push(RightKind::Newborn, first_days, None);
        }
    }
}

/// A long-lasting right (ALD, pensions): mostly started before the window, often open.
fn long_period(rng: &mut Rng, w0: i32, w1: i32, earliest: i32) -> Period {
    let start = if earliest < w0 && rng.chance(850) {
        let back = i64::from(w0 - earliest).min(3650);
        w0 - 1 - rng.below(back as u64) as i32
    } else {
        let from = earliest.max(w0);
        from + rng.below(u64::try_from(w1 - from).unwrap_or(0).max(1)) as i32
    };
    let end = match rng.below(100) {
        0..75 => None,
        75..90 => Some(w1 + rng.below(1095) as i32),
        _ => Some(start + rng.below(u64::try_from(w1 - start).unwrap_or(0).max(1)) as i32),
    };
    Period { start, end }
}

/// Rights granted for a year and renewed (CSS, AME), with an occasional gap or end.
fn yearly_periods(rng: &mut Rng, w0: i32, w1: i32, earliest: i32) -> Vec<Period> {
    let mut start = if rng.chance(800) {
        w0 - rng.below(365) as i32
    } else {
        w0 + rng.below((w1 - w0) as u64) as i32
    }
    .max(earliest);
    let mut periods = Vec::new();
    while start < w1 && periods.len() < 40 {
        let end = months_later_inclusive(start, 12);
        periods.push(Period {
            start,
            end: Some(end),
        });
        start = match rng.below(100) {
            0..85 => end + 1,
            85..95 => end + 31 + rng.below(90) as i32,
            _ => break,
        };
    }
    periods
}

// ------------------------------------------------------------------------------------------
// Acts
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Code {
    None,
    /// A short code (at most 8 ASCII bytes), inline so that rows stay small.
    Text([u8; 8]),
    /// CIP13 `34009` + 8 digits.
    Cip(u32),
    /// LPP, 7 digits.
    Lpp(u32),
    /// NABM, 4 digits.
    Nabm(u16),
    /// `GHS` + 4 digits.
    Ghs(u16),
}

impl Code {
    fn text(code: &str) -> Code {
        let mut bytes = [0; 8];
        bytes[..code.len()].copy_from_slice(code.as_bytes());
        Code::Text(bytes)
    }
}

const NO_DATE: i32 = i32::MIN;
const NO_AMOUNT: i64 = i64::MIN;
const NO_COEFFICIENT: i32 = -1;
const NO_PRACTITIONER: u32 = u32::MAX;

/// One act line, compact (64 bytes: a batch is walked several times, and in shuffled order):
/// amounts in cents, dates in days since 1970-01-01, absent values as sentinels (see the
/// accessors). The act id is not stored: it is the line's rank in generation order.
#[derive(Debug, Clone)]
struct ActRow {
    patient: u64,
    tariff: i64,
    /// [`NO_AMOUNT`]: empty (the SPEC default, billed = base).
    billed: i64,
    code: Code,
    care: i32,
    /// [`NO_DATE`] or the last day of a stay line.
    end: i32,
    /// In cents; [`NO_COEFFICIENT`] when none.
    coefficient: i32,
    practitioner: u32,
    quantity: i32,
    /// n-th stay of the patient; 0 outside a stay.
    stay: u8,
    /// See [`specialty_name`]; 0 for none.
    specialty: u8,
    /// ASCII digit of the exoneration code; 0 for none.
    exo: u8,
    ald: bool,
    category: Category,
    nature: InsuranceNature,
    pathway: Pathway,
    setting: Setting,
}

impl ActRow {
    fn end(&self) -> Option<i32> {
        (self.end != NO_DATE).then_some(self.end)
    }

    fn billed(&self) -> Option<i64> {
        (self.billed != NO_AMOUNT).then_some(self.billed)
    }

    fn coefficient(&self) -> Option<i64> {
        (self.coefficient != NO_COEFFICIENT).then_some(i64::from(self.coefficient))
    }

    fn practitioner(&self) -> Option<u32> {
        (self.practitioner != NO_PRACTITIONER).then_some(self.practitioner)
    }

    /// `(patient + 1) · 100 + n`: unique, and readable as the patient's n-th stay.
    fn stay_id(&self) -> Option<u64> {
        (self.stay != 0).then(|| (self.patient + 1) * 100 + u64::from(self.stay))
    }

    fn exo(&self) -> Option<&'static str> {
        const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        (self.exo != 0).then(|| DIGITS[usize::from(self.exo - b'0')])
    }
}

/// Specialty codes of [`ActRow::specialty`]: 1 + index in [`SPECIALTIES`], or 100 + [`Kind`].
fn specialty_name(code: u8) -> Option<&'static str> {
    match code {
        0 => None,
        100.. => KIND_SPECIALTY[usize::from(code - 100)],
        _ => Some(SPECIALTIES[usize::from(code - 1)].name),
    }
}

struct BenRow {
    patient: u64,
    birth: i32,
    regime: Regime,
}

struct RightRow {
    patient: u64,
    right: RightKind,
    start: i32,
    end: Option<i32>,
    reference: Option<String>,
}

/// The claim context of an encounter: date, age, insurance nature, exoneration.
#[derive(Debug, Clone, Copy)]
struct Enc {
    date: i32,
    age: i64,
    nature: InsuranceNature,
    exo: Option<&'static str>,
    ald: bool,
    /// False under CSS or AME, where overbilling is forbidden.
    free_billing: bool,
    pregnant: bool,
}

impl Enc {
    /// Care outside any ALD protocol (dental, optical, hearing).
    fn unrelated(mut self) -> Enc {
        if self.ald {
            self.ald = false;
            self.exo = None;
        }
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncKind {
    Gp,
    Pharmacy,
    Specialist,
    Lab,
    Nurse,
    Physio,
    Imaging,
    Dental,
    MedicalAct,
    Transport,
    Device,
    Optical,
    Hearing,
    Emergency,
    Midwife,
    Prenatal,
    Stay,
    PsyStay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StayKind {
    Medical,
    Surgical,
    Psychiatric,
    Delivery,
    Birth,
}

/// Generates one patient's lines until their quota (`limit`) is reached.
struct Gen<'a> {
    ctx: &'a Ctx,
    p: &'a Profile,
    rng: Rng,
    rows: &'a mut Vec<ActRow>,
    limit: usize,
    lo: i32,
    hi: i32,
    stays: u64,
}

impl Gen<'_> {
    fn room(&self) -> usize {
        self.limit - self.rows.len()
    }

    fn run(&mut self) {
        let p = self.p;
        if p.newborn && self.room() >= 2 {
            let e = self.context(p.birth);
            self.stay(e, StayKind::Birth, Some(p.birth));
        }
        if let Some(d) = p.delivery
            && d >= self.lo
            && d < self.hi
            && self.room() >= 3
        {
            let e = self.context(d);
            self.stay(e, StayKind::Delivery, Some(d));
        }
        while self.room() > 0 {
            let before = self.rows.len();
            self.encounter();
            if self.rows.len() == before {
                // Never loop without progress.
                let e = self.context(self.lo);
                self.pharmacy(e);
            }
        }
    }

    fn push(&mut self, row: ActRow) {
        if self.rows.len() < self.limit {
            self.rows.push(row);
        }
    }

    /// Pushes a line; `extra` is what is billed above (or, negative, below) the base.
    fn emit(&mut self, mut row: ActRow, extra: i64) {
        let base = row.tariff * i64::from(row.quantity);
        row.billed = if extra != 0 {
            (base + extra).max(1)
        } else if self.rng.chance(150) {
            NO_AMOUNT // the SPEC default: billed = base
        } else {
            base
        };
        if self.rng.chance(5) {
            row.code = Code::None; // an optional column, sometimes missing
        }
        self.push(row);
    }

    fn line(&self, e: &Enc, category: Category, tariff: i64, quantity: i64, code: Code) -> ActRow {
        ActRow {
            patient: self.p.idx,
            tariff,
            billed: NO_AMOUNT,
            code,
            care: e.date,
            end: NO_DATE,
            coefficient: NO_COEFFICIENT,
            practitioner: NO_PRACTITIONER,
            quantity: quantity as i32,
            stay: 0,
            specialty: 0,
            exo: e.exo.map_or(0, |x| x.as_bytes()[0]),
            ald: e.ald,
            category,
            nature: e.nature,
            pathway: Pathway::Coordinated,
            setting: Setting::Ambulatory,
        }
    }

    fn by(mut row: ActRow, prac: Prac) -> ActRow {
        row.practitioner = prac.id;
        row.specialty = prac.specialty;
        row
    }

    /// A later date for a follow-up, within the window.
    fn later(&mut self, d: i32, max_delay: u64) -> i32 {
        (d + self.rng.below(max_delay + 1) as i32).min(self.hi - 1)
    }

    /// The claim context on `date`: natures and exoneration codes consistent with the rights.
    fn context(&mut self, date: i32) -> Enc {
        let p = self.p;
        let age = age_years(p.birth, date);
        let free_billing = !(any_active(&p.css, date) || any_active(&p.ame, date));
        let pregnant = p
            .delivery
            .is_some_and(|dl| date >= dl - 273 && date <= dl + 12);
        let mut e = Enc {
            date,
            age,
            nature: InsuranceNature::Sickness,
            exo: None,
            ald: false,
            free_billing,
            pregnant,
        };
        if p.military.is_some_and(|m| m.active(date)) && self.rng.chance(400) {
            e.nature = InsuranceNature::Smg;
        } else if (18..65).contains(&age) && self.rng.chance(15) {
            e.nature = InsuranceNature::AtMp;
        } else if p.ald_active(date) && self.rng.chance(650) {
            e.exo = Some("4");
            e.ald = true;
        } else if p.pension_active(date) && self.rng.chance(900) {
            e.exo = Some("5");
        } else {
            e.exo = match self.rng.below(1000) {
                0..8 => Some("3"),
                8..12 => Some("7"),
                12..312 => Some("0"),
                _ => None,
            };
        }
        e
    }

    /// The same claim context at a later date (a prescription's follow-up), dropping an
    /// exoneration whose right has ended in between.
    fn follow(&self, e: &Enc, date: i32) -> Enc {
        let mut f = *e;
        f.date = date;
        f.age = age_years(self.p.birth, date);
        if f.ald && !self.p.ald_active(date) {
            f.ald = false;
            f.exo = None;
        }
        if f.exo == Some("5") && !self.p.pension_active(date) {
            f.exo = None;
        }
        f
    }

    /// A professional the patient goes to: mostly the usual one, sometimes one of two others.
    fn prac(&mut self, kind: Kind, sub: u32) -> Prac {
        let slot = self.rng.pick(&[(0u64, 80), (1, 15), (2, 5)]);
        self.prac_slot(kind, sub, slot)
    }

    fn prac_slot(&self, kind: Kind, sub: u32, slot: u64) -> Prac {
        let pool = self.ctx.pools[kind as usize];
        let key = ((kind as u64) << 40) | (u64::from(sub) << 8) | slot;
        let i = mix(mix(self.ctx.seed ^ KEY_PRACTITIONER, self.p.idx), key) % pool;
        let number = u64::from(sub) * pool + i;
        Prac {
            id: ((kind as u32) << PRAC_BITS) | number as u32,
            specialty: match kind {
                Kind::Specialist => 1 + sub as u8,
                _ => 100 + kind as u8,
            },
        }
    }

    /// What a doctor bills above the base: sector-2 doctors (`share` per cent of them, a stable
    /// property of the practitioner) usually do, never for CSS/AME patients except rare
    /// slips (audit flag `overbilling_forbidden`).
    fn overbilling(&mut self, e: &Enc, prac: Prac, share: u64, base: i64) -> i64 {
        if mix(self.ctx.seed ^ KEY_SECTOR, u64::from(prac.id)) % 100 >= share {
            return 0;
        }
        if (!e.free_billing && !self.rng.chance(20)) || self.rng.chance(200) {
            return 0;
        }
        let pct = self.rng.pick(&[
            (20i64, 25),
            (30, 20),
            (50, 25),
            (80, 12),
            (100, 10),
            (150, 6),
            (200, 2),
        ]);
        ((base * pct / 100 + 50) / 100).max(1) * 100
    }

    fn encounter(&mut self) {
        let date = self.lo + self.rng.below((self.hi - self.lo) as u64) as i32;
        let e = self.context(date);
        let p = self.p;
        let ald = p.ald_active(date);
        let (age, minor, old) = (e.age, e.age < 18, e.age >= 75);
        let scale = |w: u32, cond: bool, num: u32, den: u32| if cond { w * num / den } else { w };
        let mut pharmacy = scale(140, ald, 3, 1);
        pharmacy = scale(pharmacy, old, 3, 2);
        let lab = scale(60, ald, 2, 1);
        let nurse = scale(scale(30, ald, 3, 1), old, 3, 1);
        let transport = scale(scale(scale(10, ald, 4, 1), old, 3, 1), minor, 3, 10);
        let device = scale(scale(20, ald, 2, 1), old, 2, 1);
        let stay_ok = self.room() >= 2 && self.stays < 99;
        let stay = if stay_ok {
            scale(scale(scale(8, ald, 3, 1), old, 2, 1), minor, 1, 2)
        } else {
            0
        };
        let psy_list = p.ald.is_some_and(|(_, l)| l == ALD_PSYCHIATRIC);
        let psy_stay = if stay_ok && !minor {
            if psy_list { 20 } else { 1 }
        } else {
            0
        };
        let weights = [
            (EncKind::Gp, 240),
            (EncKind::Pharmacy, pharmacy),
            (EncKind::Specialist, 80),
            (EncKind::Lab, lab),
            (EncKind::Nurse, nurse),
            (EncKind::Physio, scale(30, minor, 3, 10)),
            (EncKind::Imaging, 30),
            (EncKind::Dental, scale(scale(50, old, 3, 5), minor, 6, 5)),
            (EncKind::MedicalAct, 20),
            (EncKind::Transport, transport),
            (EncKind::Device, device),
            (EncKind::Optical, scale(10, minor, 3, 2)),
            (
                EncKind::Hearing,
                if minor { 0 } else { scale(3, age >= 60, 4, 1) },
            ),
            (EncKind::Emergency, if date >= D2022_01_01 { 12 } else { 0 }),
            (
                EncKind::Midwife,
                if p.female && (15..=50).contains(&age) {
                    6
                } else {
                    0
                },
            ),
            (EncKind::Prenatal, if e.pregnant { 150 } else { 0 }),
            (EncKind::Stay, stay),
            (EncKind::PsyStay, psy_stay),
        ];
        match self.rng.pick(&weights) {
            EncKind::Gp => self.gp(e),
            EncKind::Pharmacy => self.pharmacy(e),
            EncKind::Specialist => self.specialist(e, None),
            EncKind::Lab => self.lab(e),
            EncKind::Nurse => self.nurse(e),
            EncKind::Physio => self.physio(e),
            EncKind::Imaging => self.imaging(e, false),
            EncKind::Dental => self.dental(e.unrelated()),
            EncKind::MedicalAct => self.medical_act(e),
            EncKind::Transport => self.transport(e),
            EncKind::Device => self.device(e),
            EncKind::Optical => self.optical(e.unrelated()),
            EncKind::Hearing => self.hearing(e.unrelated()),
            EncKind::Emergency => self.emergency(e),
            EncKind::Midwife => self.midwife(e),
            EncKind::Prenatal => self.prenatal(e),
            EncKind::Stay => {
                let kind = if self.rng.chance(450) {
                    StayKind::Surgical
                } else {
                    StayKind::Medical
                };
                self.stay(e, kind, None)
            }
            EncKind::PsyStay => self.stay(e, StayKind::Psychiatric, None),
        }
    }

    /// A GP visit and what it prescribes.
    fn gp(&mut self, e: Enc) {
        let mut pathway = Pathway::Coordinated;
        let mut slot = 0; // the *médecin traitant*
        if e.age >= 16 {
            match self.rng.below(1000) {
                // Another GP than the declared one: out of pathway (needs `ngap.G`, 2017+).
                0..35 if e.date >= D2017_05_01 => {
                    pathway = Pathway::OutOfPathway;
                    slot = 1 + self.rng.below(2);
                }
                35..45 => {
                    pathway = Pathway::Emergency;
                    slot = 1 + self.rng.below(2);
                }
                _ => {}
            }
        }
        let prac = self.prac_slot(Kind::Gp, 0, slot);
        let tariff = g_tariff(e.date);
        let extra = self.overbilling(&e, prac, 6, tariff).min(2000);
        let mut row = Self::by(
            self.line(&e, Category::Consultation, tariff, 1, Code::text("G")),
            prac,
        );
        row.pathway = pathway;
        self.emit(row, extra);
        if self.rng.chance(70) {
            // Same practitioner, same day: one PAL group (RULES §4).
            let (code, tariff, coefficient) =
                GP_ACTS[self.rng.below(GP_ACTS.len() as u64) as usize];
            let mut row = Self::by(
                self.line(&e, Category::MedicalAct, tariff, 1, Code::text(code)),
                prac,
            );
            row.coefficient = coefficient.map_or(NO_COEFFICIENT, |c| c as i32);
            row.pathway = pathway;
            self.emit(row, 0);
        }
        self.prescriptions(&e, 750, 200);
    }

    /// What a consultation leads to: drugs, biology, nursing, imaging, physiotherapy.
    fn prescriptions(&mut self, e: &Enc, drugs: u64, biology: u64) {
        if self.rng.chance(drugs) {
            let d = self.later(e.date, 2);
            self.pharmacy(self.follow(e, d));
        }
        if self.rng.chance(biology) {
            let d = self.later(e.date, 10);
            self.lab(self.follow(e, d));
        }
        if self.rng.chance(60) {
            let d = self.later(e.date, 3);
            self.nurse(self.follow(e, d));
        }
        if self.rng.chance(50) {
            let d = self.later(e.date, 20);
            self.imaging(self.follow(e, d), false);
        }
        if self.rng.chance(40) && e.age >= 6 {
            let d = self.later(e.date, 15);
            self.physio(self.follow(e, d));
        }
    }

    /// A specialist visit, sometimes with a same-day technical act.
    fn specialist(&mut self, mut e: Enc, spec: Option<u32>) {
        let spec = spec.unwrap_or_else(|| self.specialty(&e));
        let s = &SPECIALTIES[spec as usize];
        let mut pathway = Pathway::Coordinated;
        if e.age >= 16 {
            let direct = s.direct_access && (spec != SPEC_PSYCHIATRY || e.age <= 25);
            if direct && self.rng.chance(700) {
                pathway = Pathway::DirectAccess;
            } else if !direct && e.date >= D2017_05_01 && self.rng.chance(50) {
                pathway = Pathway::OutOfPathway;
            }
        }
        if spec == SPEC_PSYCHIATRY && self.p.ald.is_some_and(|(_, l)| l != ALD_PSYCHIATRIC) {
            e = e.unrelated();
        }
        let prac = self.prac(Kind::Specialist, spec);
        let (code, tariff) = specialist_consultation(spec, e.date, &mut self.rng);
        let extra = self.overbilling(&e, prac, 45, tariff);
        let mut row = Self::by(
            self.line(&e, Category::Consultation, tariff, 1, Code::text(code)),
            prac,
        );
        row.pathway = pathway;
        self.emit(row, extra);
        if self.rng.chance(250) {
            self.technical_act(&e, s, prac, pathway);
        }
        self.prescriptions(&e, 450, 100);
    }

    fn specialty(&mut self, e: &Enc) -> u32 {
        let female = self.p.female;
        let minor = e.age < 18;
        let weights: Vec<(u32, u32)> = SPECIALTIES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let w = if minor { s.minor } else { s.adult };
                let w = if i as u32 == SPEC_GYNAECOLOGY && !female {
                    0
                } else {
                    w
                };
                (i as u32, w)
            })
            .collect();
        self.rng.pick(&weights)
    }

    fn technical_act(&mut self, e: &Enc, s: &Specialty, prac: Prac, pathway: Pathway) {
        let (code, tariff, coefficient) = s.acts[self.rng.below(s.acts.len() as u64) as usize];
        let extra = self.overbilling(e, prac, 45, tariff);
        let mut row = Self::by(
            self.line(e, Category::MedicalAct, tariff, 1, Code::text(code)),
            prac,
        );
        row.coefficient = coefficient.map_or(NO_COEFFICIENT, |c| c as i32);
        row.pathway = pathway;
        self.emit(row, extra);
    }

    /// A technical act at a specialist's, half the time with the consultation.
    fn medical_act(&mut self, e: Enc) {
        let spec = self.specialty(&e);
        let s = &SPECIALTIES[spec as usize];
        let prac = self.prac(Kind::Specialist, spec);
        if self.rng.chance(500) {
            let (code, tariff) = specialist_consultation(spec, e.date, &mut self.rng);
            let row = Self::by(
                self.line(&e, Category::Consultation, tariff, 1, Code::text(code)),
                prac,
            );
            self.emit(row, 0);
        }
        self.technical_act(&e, s, prac, Pathway::Coordinated);
    }

    /// Drug boxes at the pharmacy (franchise per box).
    fn pharmacy(&mut self, e: Enc) {
        let prac = self.prac(Kind::Pharmacy, 0);
        let lines = self
            .rng
            .pick(&[(1, 35), (2, 30), (3, 20), (4, 10), (5, 3), (6, 2)]);
        let chronic = e.ald || e.age >= 60;
        for _ in 0..lines {
            let idx = if chronic && self.rng.chance(700) {
                // The same few drugs, month after month.
                mix(
                    self.ctx.seed ^ KEY_CHRONIC,
                    self.p.idx * 8 + self.rng.below(6),
                ) % DRUG_CATALOG
            } else {
                self.rng.below(DRUG_CATALOG)
            };
            let (category, cip, tariff) = drug(idx);
            let quantity = self.rng.pick(&[(1, 60), (2, 25), (3, 10), (4, 5)]);
            let row = Self::by(
                self.line(&e, category, tariff, quantity, Code::Cip(cip)),
                prac,
            );
            self.emit(row, 0);
        }
    }

    /// A laboratory visit: one line per test, several under the same laboratory and day (the
    /// PF daily limit per practitioner, RULES §4).
    fn lab(&mut self, e: Enc) {
        let prac = self.prac(Kind::Lab, 0);
        let lines = self
            .rng
            .pick(&[(1, 25), (2, 25), (3, 20), (4, 15), (5, 10), (6, 5)]);
        for _ in 0..lines {
            let (code, tariff) = nabm(self.rng.below(NABM_CATALOG));
            let row = Self::by(
                self.line(&e, Category::Biology, tariff, 1, Code::Nabm(code)),
                prac,
            );
            self.emit(row, 0);
        }
    }

    /// Nursing care: a series of daily visits, or one line for the whole series.
    fn nurse(&mut self, e: Enc) {
        let prac = self.prac(Kind::Nurse, 0);
        let sessions = self
            .rng
            .pick(&[(1i64, 40), (3, 25), (5, 15), (7, 10), (10, 10)]);
        let (code, tariff) = self.rng.pick(NURSE_ACTS);
        if sessions > 1 && self.rng.chance(400) {
            let row = Self::by(
                self.line(
                    &e,
                    Category::Paramedical,
                    tariff,
                    sessions,
                    Code::text(code),
                ),
                prac,
            );
            self.emit(row, 0);
            return;
        }
        let step = 1 + self.rng.below(2) as i32;
        for k in 0..sessions as i32 {
            let d = (e.date + k * step).min(self.hi - 1);
            let f = self.follow(&e, d);
            let quantity = self.rng.pick(&[(1, 80), (2, 20)]);
            let row = Self::by(
                self.line(
                    &f,
                    Category::Paramedical,
                    tariff,
                    quantity,
                    Code::text(code),
                ),
                prac,
            );
            self.emit(row, 0);
            if self.rng.chance(300) {
                // Travel allowance: a second paramedical line the same day (daily franchise cap).
                let row = Self::by(
                    self.line(&f, Category::Paramedical, 275, 1, Code::text("IFD")),
                    prac,
                );
                self.emit(row, 0);
            }
        }
    }

    /// Physiotherapy: one to three lines of up to 10 sessions each.
    fn physio(&mut self, e: Enc) {
        let prac = self.prac(Kind::Physio, 0);
        let lines = self.rng.between(1, 3) as i32;
        let (code, tariff) = self.rng.pick(PHYSIO_ACTS);
        for k in 0..lines {
            let d = (e.date + 7 * k).min(self.hi - 1);
            let f = self.follow(&e, d);
            let quantity = self.rng.between(1, 10);
            let row = Self::by(
                self.line(
                    &f,
                    Category::Paramedical,
                    tariff,
                    quantity,
                    Code::text(code),
                ),
                prac,
            );
            self.emit(row, 0);
        }
    }

    /// Imaging (never in a PAL group, even when heavy).
    fn imaging(&mut self, e: Enc, prenatal: bool) {
        let prac = self.prac(Kind::Radiology, 0);
        let lines = if prenatal || !self.rng.chance(200) {
            1
        } else {
            2
        };
        for _ in 0..lines {
            let (code, tariff) = if prenatal {
                ("JQQM010", 4650)
            } else {
                self.rng.pick(IMAGING)
            };
            let extra = self.overbilling(&e, prac, 10, tariff).min(4000);
            let row = Self::by(
                self.line(&e, Category::Imaging, tariff, 1, Code::text(code)),
                prac,
            );
            self.emit(row, extra);
        }
    }

    /// Dental care; crowns and orthodontics are billed far above their base.
    fn dental(&mut self, e: Enc) {
        let prac = self.prac(Kind::Dentist, 0);
        let lines = self.rng.pick(&[(1, 70), (2, 30)]);
        for _ in 0..lines {
            let (code, tariff) = if e.age < 16 && self.rng.chance(100) {
                ("TO90", 19_350)
            } else {
                self.rng.pick(DENTAL)
            };
            let extra = if !e.free_billing {
                0
            } else if tariff >= 12_000 {
                self.rng.between(300, 800) * 100
            } else if self.rng.chance(50) {
                self.rng.between(5, 40) * 100
            } else {
                0
            };
            let row = Self::by(
                self.line(&e, Category::Dental, tariff, 1, Code::text(code)),
                prac,
            );
            self.emit(row, extra);
        }
    }

    /// Patient transport: trips out and back (franchise per trip, daily cap).
    fn transport(&mut self, e: Enc) {
        let prac = self.prac(Kind::Transport, 0);
        let (code, lo, hi) = self.rng.pick(&[
            (("VSL", 2500, 9000), 40),
            (("TAXI", 2000, 15_000), 40),
            (("AMB", 6000, 25_000), 20),
        ]);
        let tariff = self.rng.between(lo, hi);
        let shape: &[i64] = self.rng.pick(&[
            (&[1, 1][..], 50),
            (&[2][..], 30),
            (&[1][..], 15),
            (&[1, 1, 1, 1][..], 5),
        ]);
        for &quantity in shape {
            let row = Self::by(
                self.line(&e, Category::Transport, tariff, quantity, Code::text(code)),
                prac,
            );
            self.emit(row, 0);
        }
    }

    /// Medical devices (LPP); sold at, below or above their tariff.
    fn device(&mut self, e: Enc) {
        let prac = self.prac(Kind::Supplier, 0);
        let lines = self.rng.pick(&[(1, 70), (2, 30)]);
        for _ in 0..lines {
            let (code, tariff) = lpp(self.rng.below(LPP_CATALOG));
            let quantity = self.rng.pick(&[(1, 60), (2, 20), (3, 10), (4, 5), (5, 5)]);
            let base = tariff * quantity;
            let extra = match self.rng.below(100) {
                // Billed below the tariff: the base is then what was billed (SPEC §3 step 1).
                0..10 => -(base * self.rng.between(1, 10) / 100).max(1),
                10..20 if e.free_billing => base * self.rng.between(10, 50) / 100,
                _ => 0,
            };
            let row = Self::by(
                self.line(&e, Category::Device, tariff, quantity, Code::Lpp(code)),
                prac,
            );
            self.emit(row, extra);
        }
    }

    /// Glasses: a frame and two lenses, *100 % santé* (class A, at the base) or free-priced
    /// (class B, a few cents of base).
    fn optical(&mut self, e: Enc) {
        let prac = self.prac(Kind::Supplier, 0);
        let class_a = !e.free_billing || self.rng.chance(400);
        let frame = 2_000_000 + self.rng.below(1000) as u32;
        let lens = 2_100_000 + self.rng.below(1000) as u32;
        let items = [(frame, 3000, 5, 6000, 25_000), (lens, 0, 5, 4000, 30_000)];
        for (k, &(code, a_tariff, b_tariff, lo, hi)) in
            [items[0], items[1], items[1]].iter().enumerate()
        {
            let (tariff, extra) = if class_a {
                let t = if k == 0 {
                    a_tariff
                } else {
                    self.rng.between(10, 90) * 100
                };
                (t, 0)
            } else {
                let t = b_tariff + self.rng.below(6) as i64;
                (t, self.rng.between(lo, hi) - t)
            };
            let row = Self::by(
                self.line(&e, Category::Optical, tariff, 1, Code::Lpp(code)),
                prac,
            );
            self.emit(row, extra);
        }
    }

    /// Hearing aids, one line per ear.
    fn hearing(&mut self, e: Enc) {
        let prac = self.prac(Kind::Supplier, 0);
        let base = hearing_base(e.date);
        let ears = self.rng.pick(&[(1, 30), (2, 70)]);
        let class_1 = !e.free_billing || self.rng.chance(400);
        let price = if class_1 {
            95_000
        } else {
            self.rng.between(1100, 2000) * 100
        };
        let code = 2_355_000 + u32::from(class_1);
        for _ in 0..ears {
            let extra = if e.free_billing { price - base } else { 0 };
            let row = Self::by(
                self.line(&e, Category::Hearing, base, 1, Code::Lpp(code)),
                prac,
            );
            self.emit(row, extra);
        }
    }

    /// An emergency visit not followed by a stay (FPU, from 2022).
    fn emergency(&mut self, e: Enc) {
        if e.date < D2022_01_01 {
            return self.gp(e);
        }
        let prac = self.prac(Kind::Hospital, 0);
        let tariff = self.rng.pick(&[
            (1500, 5),
            (2532, 40),
            (3800, 15),
            (4550, 15),
            (8900, 12),
            (16_000, 8),
            (25_000, 5),
        ]);
        let mut row = Self::by(
            self.line(&e, Category::EmergencyVisit, tariff, 1, Code::text("ATU")),
            prac,
        );
        row.pathway = Pathway::Emergency;
        self.emit(row, 0);
        if self.rng.chance(300) {
            self.pharmacy(e);
        }
    }

    fn midwife(&mut self, e: Enc) {
        let prac = self.prac(Kind::Midwife, 0);
        let tariff = if e.date < D2024_12_22 { 2500 } else { 3000 };
        let row = Self::by(
            self.line(&e, Category::Midwife, tariff, 1, Code::text("C")),
            prac,
        );
        self.emit(row, 0);
        if self.rng.chance(200) {
            let coefficient = self.rng.between(12, 15);
            let mut row = Self::by(
                self.line(
                    &e,
                    Category::Midwife,
                    280 * coefficient,
                    1,
                    Code::text("SF"),
                ),
                prac,
            );
            row.coefficient = (coefficient * 100) as i32;
            self.emit(row, 0);
        }
    }

    /// Pregnancy follow-up, under the maternity insurance.
    fn prenatal(&mut self, mut e: Enc) {
        e.nature = InsuranceNature::Maternity;
        e.exo = None;
        e.ald = false;
        match self.rng.below(100) {
            0..40 => self.midwife(e),
            40..70 => self.specialist(e, Some(SPEC_GYNAECOLOGY)),
            70..85 => self.imaging(e, true),
            _ => self.lab(e),
        }
    }

    /// A hospital stay: its GHS line(s), inpatient acts and forfaits journaliers, under one
    /// `stay_id`. Stays of 30 days or more are billed in 30-day lines, so that a line starts on
    /// the 31st day (RULES §7.5).
    fn stay(&mut self, e: Enc, kind: StayKind, admission: Option<i32>) {
        let r = &mut self.rng;
        let nights = match kind {
            StayKind::Medical if r.chance(50) => r.between(31, 70),
            StayKind::Medical => r.between(1, 10),
            StayKind::Surgical => r.between(1, 6),
            StayKind::Psychiatric if r.chance(300) => r.between(31, 120),
            StayKind::Psychiatric => r.between(7, 30),
            StayKind::Delivery => r.between(3, 5),
            StayKind::Birth => r.between(2, 5),
        } as i32;
        let (adm, nights) = match admission {
            Some(adm) => (adm, nights.min(self.hi - 1 - adm)),
            None => {
                let nights = nights.min(self.hi - 1 - self.lo);
                let adm = self.lo + self.rng.below((self.hi - self.lo - nights) as u64) as i32;
                (adm, nights)
            }
        };
        let dis = adm + nights;
        let mut e = self.follow(&e, adm);
        match kind {
            StayKind::Delivery => {
                e.nature = InsuranceNature::Maternity;
                e.exo = None;
                e.ald = false;
            }
            StayKind::Birth => {
                e.nature = InsuranceNature::Sickness;
                e.exo = None;
            }
            _ => {}
        }
        self.stays += 1;
        let stay_id = self.stays as u8;
        let hospital = self.prac(Kind::Hospital, 0);
        let ghs = 1000 + self.rng.below(9000) as u16;
        let long = nights >= 30;
        let tariff = match kind {
            StayKind::Medical => self.rng.between(800, 6000) * 100,
            StayKind::Surgical => self.rng.between(1500, 12_000) * 100,
            StayKind::Psychiatric => 0,
            StayKind::Delivery => self.rng.between(2200, 3500) * 100,
            StayKind::Birth => self.rng.between(400, 1200) * 100,
        };
        let per_day = self.rng.between(250, 600) * 100;
        let psy = kind == StayKind::Psychiatric;
        let segments: Vec<(i32, i32)> = (0..)
            .map(|k| adm + 30 * k)
            .take_while(|&s| s <= dis)
            .map(|s| (s, (s + 29).min(dis)))
            .collect();

        let stay_line = |this: &Self, category, tariff, quantity, code, start: i32, end: i32| {
            let line = this.line(&this.follow(&e, start), category, tariff, quantity, code);
            let mut row = Self::by(line, hospital);
            row.end = end;
            row.stay = stay_id;
            row.specialty = 0; // an establishment, not a professional
            row.setting = Setting::Inpatient;
            row
        };
        for &(s, end) in &segments {
            let days = i64::from(end - s + 1);
            let t = if long || psy { per_day * days } else { tariff };
            let row = stay_line(self, Category::HospitalStay, t, 1, Code::Ghs(ghs), s, end);
            self.emit(row, 0);
        }
        let acts = match kind {
            StayKind::Surgical => self.rng.between(1, 3),
            StayKind::Medical => i64::from(self.rng.chance(400)),
            StayKind::Delivery => 1,
            _ => 0,
        };
        for k in 0..acts {
            let (code, tariff, coefficient) = if kind == StayKind::Delivery {
                ("JQGD010", 31_350, None)
            } else {
                INPATIENT_ACTS[self.rng.below(INPATIENT_ACTS.len() as u64) as usize]
            };
            let spec = if kind == StayKind::Delivery {
                SPEC_GYNAECOLOGY
            } else {
                SPEC_SURGERY
            };
            let prac = self.prac(Kind::Specialist, spec);
            let d = (adm + (k as i32).min(1)).min(dis);
            let f = self.follow(&e, d);
            let extra = self.overbilling(&f, prac, 40, tariff);
            let mut row = Self::by(
                self.line(&f, Category::MedicalAct, tariff, 1, Code::text(code)),
                prac,
            );
            row.coefficient = coefficient.map_or(NO_COEFFICIENT, |c| c as i32);
            row.stay = stay_id;
            row.setting = Setting::Inpatient;
            self.emit(row, extra);
        }
        if kind != StayKind::Birth || self.rng.chance(600) {
            let category = if psy {
                Category::DailyFeePsy
            } else {
                Category::DailyFee
            };
            for &(s, end) in &segments {
                let days = i64::from(end - s + 1);
                let row = stay_line(
                    self,
                    category,
                    fj_tariff(s, psy),
                    days,
                    Code::text("FJ"),
                    s,
                    end,
                );
                self.emit(row, 0);
            }
        }
        if !matches!(kind, StayKind::Birth | StayKind::Delivery) && self.rng.chance(250) {
            let out = self.follow(&e, dis);
            self.transport(e);
            self.transport(out);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Text of the rows
// ------------------------------------------------------------------------------------------

/// Appends `n` in decimal, left-padded with zeros to `width`.
fn push_num(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let digits = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let start = buf.len();
    let mut i = start + digits.max(width);
    buf.resize(i, b'0');
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
}

fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        buf.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_num(buf, c / 100, 1);
    buf.push(b'.');
    push_num(buf, c % 100, 2);
}

/// `YYYY-MM-DD` (years 0–9999).
fn date_text(days: i32) -> [u8; 10] {
    let (y, m, d) = civil_from_days(days);
    let y = y as u32;
    let digit = |v: u32| b'0' + (v % 10) as u8;
    [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(d / 10),
        digit(d),
    ]
}

fn push_date(buf: &mut Vec<u8>, days: i32) {
    buf.extend_from_slice(&date_text(days));
}

fn push_act_id(buf: &mut Vec<u8>, id: u64) {
    buf.push(b'A');
    push_num(buf, id, 12);
}

fn push_patient_id(buf: &mut Vec<u8>, idx: u64) {
    buf.push(b'P');
    push_num(buf, idx + 1, 10);
}

fn push_stay_id(buf: &mut Vec<u8>, stay: u64) {
    buf.push(b'S');
    push_num(buf, stay, 12);
}

fn push_practitioner(buf: &mut Vec<u8>, id: u32) {
    buf.extend_from_slice(KIND_PREFIX[(id >> PRAC_BITS) as usize]);
    push_num(buf, u64::from(id & ((1 << PRAC_BITS) - 1)), 9);
}

/// Writes the code; false if there is none.
fn push_code(buf: &mut Vec<u8>, code: Code) -> bool {
    match code {
        Code::None => return false,
        Code::Text(t) => {
            let len = t.iter().position(|&b| b == 0).unwrap_or(t.len());
            buf.extend_from_slice(&t[..len]);
        }
        Code::Cip(n) => {
            buf.extend_from_slice(b"34009");
            push_num(buf, u64::from(n), 8);
        }
        Code::Lpp(n) => push_num(buf, u64::from(n), 7),
        Code::Nabm(n) => push_num(buf, u64::from(n), 4),
        Code::Ghs(n) => {
            buf.extend_from_slice(b"GHS");
            push_num(buf, u64::from(n), 4);
        }
    }
    true
}

fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut buf = Vec::with_capacity(16);
    f(&mut buf);
    String::from_utf8(buf).expect("generated text is ASCII")
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

const ACTS_HEADER: &str = "act_id,patient_id,care_date,end_date,category,tariff,quantity,billed,\
coefficient,code,practitioner_id,specialty,stay_id,insurance_nature,exo_code,ald_related,pathway,\
setting\n";
const BENEFICIARIES_HEADER: &str = "patient_id,birth_date,regime\n";
const RIGHTS_HEADER: &str = "patient_id,right,start_date,end_date,reference\n";

/// A batch of acts in file order; `order[i]` is the rank of `rows[i]` in generation order,
/// which gives its id.
struct ActBatch<'a> {
    ctx: &'a Ctx,
    first_id: u64,
    rows: Vec<ActRow>,
    order: Vec<u32>,
}

impl ActBatch<'_> {
    /// The lines in file order, with their act ids.
    fn lines(&self) -> impl Iterator<Item = (u64, &ActRow)> {
        self.order
            .iter()
            .map(|&k| self.first_id + u64::from(k))
            .zip(&self.rows)
    }

    fn push_date(&self, buf: &mut Vec<u8>, days: i32) {
        match self.ctx.date_texts.get((days - self.ctx.w0) as usize) {
            Some(text) => buf.extend_from_slice(text),
            None => push_date(buf, days),
        }
    }

    fn csv_line(&self, buf: &mut Vec<u8>, id: u64, r: &ActRow) {
        push_act_id(buf, id);
        buf.push(b',');
        push_patient_id(buf, r.patient);
        buf.push(b',');
        self.push_date(buf, r.care);
        buf.push(b',');
        if let Some(end) = r.end() {
            self.push_date(buf, end);
        }
        buf.push(b',');
        buf.extend_from_slice(r.category.as_str().as_bytes());
        buf.push(b',');
        push_cents(buf, r.tariff);
        buf.push(b',');
        push_num(buf, r.quantity as u64, 1);
        buf.push(b',');
        if let Some(billed) = r.billed() {
            push_cents(buf, billed);
        }
        buf.push(b',');
        if let Some(c) = r.coefficient() {
            push_cents(buf, c);
        }
        buf.push(b',');
        push_code(buf, r.code);
        buf.push(b',');
        if let Some(p) = r.practitioner() {
            push_practitioner(buf, p);
        }
        buf.push(b',');
        if let Some(s) = specialty_name(r.specialty) {
            buf.extend_from_slice(s.as_bytes());
        }
        buf.push(b',');
        if let Some(s) = r.stay_id() {
            push_stay_id(buf, s);
        }
        buf.push(b',');
        buf.extend_from_slice(r.nature.as_str().as_bytes());
        buf.push(b',');
        if let Some(x) = r.exo() {
            buf.extend_from_slice(x.as_bytes());
        }
        buf.push(b',');
        buf.extend_from_slice(if r.ald { b"true" } else { b"false" });
        buf.push(b',');
        buf.extend_from_slice(r.pathway.as_str().as_bytes());
        buf.push(b',');
        buf.extend_from_slice(r.setting.as_str().as_bytes());
        buf.push(b'\n');
    }

    fn to_model(id: u64, r: &ActRow) -> Act {
        let mut act = Act::new(
            &text(|b| push_act_id(b, id)),
            &text(|b| push_patient_id(b, r.patient)),
            to_date(r.care),
            r.category,
            cents(r.tariff),
        );
        act.end_date = r.end().map(to_date);
        act.quantity = u32::try_from(r.quantity).expect("generated quantities are positive");
        act.billed = r.billed().map(cents);
        act.coefficient = r.coefficient().map(cents);
        act.code = match r.code {
            Code::None => None,
            code => Some(Id::from(text(|b| {
                push_code(b, code);
            }))),
        };
        act.practitioner_id = r
            .practitioner()
            .map(|p| Id::from(text(|b| push_practitioner(b, p))));
        act.specialty = specialty_name(r.specialty).map(Id::from);
        act.stay_id = r.stay_id().map(|s| Id::from(text(|b| push_stay_id(b, s))));
        act.insurance_nature = r.nature;
        act.exo_code = r.exo().map(Id::from);
        act.ald_related = r.ald;
        act.pathway = r.pathway;
        act.setting = r.setting;
        act
    }
}

impl BenRow {
    fn csv(&self, buf: &mut Vec<u8>) {
        push_patient_id(buf, self.patient);
        buf.push(b',');
        push_date(buf, self.birth);
        buf.push(b',');
        buf.extend_from_slice(self.regime.as_str().as_bytes());
        buf.push(b'\n');
    }

    fn to_model(&self) -> Beneficiary {
        Beneficiary {
            patient_id: text(|b| push_patient_id(b, self.patient)),
            birth_date: to_date(self.birth),
            regime: self.regime,
        }
    }
}

impl RightRow {
    fn csv(&self, buf: &mut Vec<u8>) {
        push_patient_id(buf, self.patient);
        buf.push(b',');
        buf.extend_from_slice(self.right.as_str().as_bytes());
        buf.push(b',');
        push_date(buf, self.start);
        buf.push(b',');
        if let Some(end) = self.end {
            push_date(buf, end);
        }
        buf.push(b',');
        if let Some(r) = &self.reference {
            buf.extend_from_slice(r.as_bytes());
        }
        buf.push(b'\n');
    }

    fn to_model(&self) -> RightPeriod {
        RightPeriod {
            patient_id: text(|b| push_patient_id(b, self.patient)),
            right: self.right,
            start_date: to_date(self.start),
            end_date: self.end.map(to_date),
            reference: self.reference.clone(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Arrow columns
// ------------------------------------------------------------------------------------------

fn decimal_type() -> DataType {
    DataType::Decimal128(18, 2)
}

fn acts_schema() -> SchemaRef {
    let f = |name, data_type, nullable| Field::new(name, data_type, nullable);
    Arc::new(Schema::new(vec![
        f("act_id", DataType::Utf8, false),
        f("patient_id", DataType::Utf8, false),
        f("care_date", DataType::Date32, false),
        f("end_date", DataType::Date32, true),
        f("category", DataType::Utf8, false),
        f("tariff", decimal_type(), false),
        f("quantity", DataType::Int64, false),
        f("billed", decimal_type(), true),
        f("coefficient", decimal_type(), true),
        f("code", DataType::Utf8, true),
        f("practitioner_id", DataType::Utf8, true),
        f("specialty", DataType::Utf8, true),
        f("stay_id", DataType::Utf8, true),
        f("insurance_nature", DataType::Utf8, false),
        f("exo_code", DataType::Utf8, true),
        f("ald_related", DataType::Boolean, false),
        f("pathway", DataType::Utf8, false),
        f("setting", DataType::Utf8, false),
    ]))
}

fn beneficiaries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("birth_date", DataType::Date32, false),
        Field::new("regime", DataType::Utf8, false),
    ]))
}

fn rights_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("right", DataType::Utf8, false),
        Field::new("start_date", DataType::Date32, false),
        Field::new("end_date", DataType::Date32, true),
        Field::new("reference", DataType::Utf8, true),
    ]))
}

/// A Utf8 column built from raw offsets and bytes (checked once at the end, not per value).
struct StrCol {
    offsets: Vec<i32>,
    values: Vec<u8>,
    valid: Vec<bool>,
    nulls: usize,
}

impl StrCol {
    fn new(rows: usize, bytes_per_row: usize) -> StrCol {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrCol {
            offsets,
            values: Vec::with_capacity(rows * bytes_per_row),
            valid: Vec::with_capacity(rows),
            nulls: 0,
        }
    }

    fn end_value(&mut self, valid: bool) {
        self.offsets.push(self.values.len() as i32);
        self.valid.push(valid);
        self.nulls += usize::from(!valid);
    }

    /// A value written by `f`.
    fn with(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(&mut self.values);
        self.end_value(true);
    }

    /// A value written by `f`, or a null if it writes nothing and returns false.
    fn opt(&mut self, f: impl FnOnce(&mut Vec<u8>) -> bool) {
        let valid = f(&mut self.values);
        self.end_value(valid);
    }

    fn str(&mut self, s: &str) {
        self.values.extend_from_slice(s.as_bytes());
        self.end_value(true);
    }

    fn opt_str(&mut self, s: Option<&str>) {
        if let Some(s) = s {
            self.values.extend_from_slice(s.as_bytes());
        }
        self.end_value(s.is_some());
    }

    fn finish(self) -> Result<ArrayRef, ArrowError> {
        let nulls = (self.nulls > 0).then(|| NullBuffer::from(self.valid));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        Ok(Arc::new(StringArray::try_new(
            offsets,
            Buffer::from_vec(self.values),
            nulls,
        )?))
    }
}

fn decimals(values: Vec<i128>) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(18, 2)?,
    ))
}

fn optional_decimals(values: Vec<Option<i128>>) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(18, 2)?,
    ))
}

/// Rows that can be written as CSV or as Arrow columns.
trait Rows: Sync {
    fn count(&self) -> usize;
    fn csv(&self, buf: &mut Vec<u8>);
    fn columns(&self) -> Result<Vec<ArrayRef>, ArrowError>;
}

impl Rows for ActBatch<'_> {
    fn count(&self) -> usize {
        self.order.len()
    }

    fn csv(&self, buf: &mut Vec<u8>) {
        for (id, row) in self.lines() {
            self.csv_line(buf, id, row);
        }
    }

    /// All columns in one pass over the (shuffled) rows.
    fn columns(&self) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = self.count();
        let mut act_id = StrCol::new(n, 13);
        let mut patient = StrCol::new(n, 11);
        let mut care = Vec::with_capacity(n);
        let mut end = Vec::with_capacity(n);
        let mut category = StrCol::new(n, 8);
        let mut tariff = Vec::with_capacity(n);
        let mut quantity = Vec::with_capacity(n);
        let mut billed = Vec::with_capacity(n);
        let mut coefficient = Vec::with_capacity(n);
        let mut code = StrCol::new(n, 8);
        let mut practitioner = StrCol::new(n, 11);
        let mut specialty = StrCol::new(n, 10);
        let mut stay = StrCol::new(n, 1);
        let mut nature = StrCol::new(n, 7);
        let mut exo = StrCol::new(n, 1);
        let mut ald = Vec::with_capacity(n);
        let mut pathway = StrCol::new(n, 11);
        let mut setting = StrCol::new(n, 10);
        for (id, r) in self.lines() {
            act_id.with(|b| push_act_id(b, id));
            patient.with(|b| push_patient_id(b, r.patient));
            care.push(r.care);
            end.push(r.end());
            category.str(r.category.as_str());
            tariff.push(i128::from(r.tariff));
            quantity.push(i64::from(r.quantity));
            billed.push(r.billed().map(i128::from));
            coefficient.push(r.coefficient().map(i128::from));
            code.opt(|b| push_code(b, r.code));
            practitioner.opt(|b| r.practitioner().map(|p| push_practitioner(b, p)).is_some());
            specialty.opt_str(specialty_name(r.specialty));
            stay.opt(|b| r.stay_id().map(|s| push_stay_id(b, s)).is_some());
            nature.str(r.nature.as_str());
            exo.opt_str(r.exo());
            ald.push(r.ald);
            pathway.str(r.pathway.as_str());
            setting.str(r.setting.as_str());
        }
        Ok(vec![
            act_id.finish()?,
            patient.finish()?,
            Arc::new(Date32Array::from(care)),
            Arc::new(Date32Array::from(end)),
            category.finish()?,
            decimals(tariff)?,
            Arc::new(Int64Array::from(quantity)),
            optional_decimals(billed)?,
            optional_decimals(coefficient)?,
            code.finish()?,
            practitioner.finish()?,
            specialty.finish()?,
            stay.finish()?,
            nature.finish()?,
            exo.finish()?,
            Arc::new(BooleanArray::from(ald)),
            pathway.finish()?,
            setting.finish()?,
        ])
    }
}

impl Rows for [BenRow] {
    fn count(&self) -> usize {
        self.len()
    }

    fn csv(&self, buf: &mut Vec<u8>) {
        for row in self {
            row.csv(buf);
        }
    }

    fn columns(&self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut patient = StrCol::new(self.len(), 11);
        let mut regime = StrCol::new(self.len(), 7);
        for r in self {
            patient.with(|b| push_patient_id(b, r.patient));
            regime.str(r.regime.as_str());
        }
        Ok(vec![
            patient.finish()?,
            Arc::new(Date32Array::from_iter_values(self.iter().map(|r| r.birth))),
            regime.finish()?,
        ])
    }
}

impl Rows for [RightRow] {
    fn count(&self) -> usize {
        self.len()
    }

    fn csv(&self, buf: &mut Vec<u8>) {
        for row in self {
            row.csv(buf);
        }
    }

    fn columns(&self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut patient = StrCol::new(self.len(), 11);
        let mut right = StrCol::new(self.len(), 4);
        let mut reference = StrCol::new(self.len(), 8);
        for r in self {
            patient.with(|b| push_patient_id(b, r.patient));
            right.str(r.right.as_str());
            reference.opt_str(r.reference.as_deref());
        }
        Ok(vec![
            patient.finish()?,
            right.finish()?,
            Arc::new(Date32Array::from_iter_values(self.iter().map(|r| r.start))),
            Arc::new(Date32Array::from(
                self.iter().map(|r| r.end).collect::<Vec<_>>(),
            )),
            reference.finish()?,
        ])
    }
}

// ------------------------------------------------------------------------------------------
// Files
// ------------------------------------------------------------------------------------------

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parquet_error(path: &Path) -> impl FnOnce(ParquetError) -> GenerateError + '_ {
    move |source| GenerateError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds items `0..n` in parallel, a window of a few per thread at a time, and hands them in
/// order to `consume` on a writer thread, which writes one window while the next is built.
/// Memory stays bounded (about three windows) and the output order never depends on timing.
fn pipeline<T: Send>(
    n: u64,
    make: impl Fn(u64) -> Result<T, GenerateError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), GenerateError> + Send,
) -> Result<(), GenerateError> {
    // Two batches per thread keep every thread busy; the cap bounds memory on big machines
    // (a batch in the making holds about 60 MB).
    let width = (rayon::current_num_threads() as u64 * 2).clamp(2, 16);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<T>(width as usize);
        let writer = scope.spawn(move || -> Result<(), GenerateError> {
            for item in rx {
                consume(item)?;
            }
            Ok(())
        });
        let mut built = Ok(());
        'windows: for w in 0..n.div_ceil(width) {
            let window: Vec<u64> = (w * width..((w + 1) * width).min(n)).collect();
            match window
                .into_par_iter()
                .map(&make)
                .collect::<Result<Vec<T>, _>>()
            {
                Ok(items) => {
                    for item in items {
                        if tx.send(item).is_err() {
                            break 'windows; // the writer failed: its error is reported below
                        }
                    }
                }
                Err(e) => {
                    built = Err(e);
                    break;
                }
            }
        }
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        built.and(written)
    })
}

/// One encoded batch.
enum Chunk {
    Empty,
    Csv(Vec<u8>),
    Parquet(Vec<ArrowColumnChunk>),
}

/// What encoding needs (shared by the worker threads).
struct Target {
    path: PathBuf,
    tmp: PathBuf,
    /// `tmp` removed if a signal stops the process (it stayed, while the stop line said
    /// temporary files were removed), until the file is in place.
    _cleanup: crate::interrupt::Cleanup,
    schema: SchemaRef,
    /// `None` for CSV.
    factory: Option<ArrowRowGroupWriterFactory>,
}

impl Target {
    /// Encodes one batch: CSV text, or the Parquet column chunks of a row group (its columns
    /// encoded in parallel).
    fn encode<R: Rows + ?Sized>(&self, index: u64, rows: &R) -> Result<Chunk, GenerateError> {
        if rows.count() == 0 {
            return Ok(Chunk::Empty);
        }
        let Some(factory) = &self.factory else {
            let mut buf = Vec::with_capacity(rows.count() * 140);
            rows.csv(&mut buf);
            return Ok(Chunk::Csv(buf));
        };
        let columns = rows.columns().map_err(|source| GenerateError::Arrow {
            path: self.path.clone(),
            source,
        })?;
        let writers = factory
            .create_column_writers(index as usize)
            .map_err(parquet_error(&self.path))?;
        let jobs: Vec<_> = writers
            .into_iter()
            .zip(columns)
            .zip(self.schema.fields().iter())
            .collect();
        let chunks = jobs
            .into_par_iter()
            .map(|((mut writer, column), field)| {
                for leaf in compute_leaves(field, &column)? {
                    writer.write(&leaf)?;
                }
                writer.close()
            })
            .collect::<Result<Vec<_>, ParquetError>>()
            .map_err(parquet_error(&self.path))?;
        Ok(Chunk::Parquet(chunks))
    }
}

enum Sink {
    Csv(BufWriter<File>),
    Parquet(SerializedFileWriter<BufWriter<File>>),
}

impl Sink {
    fn write(&mut self, path: &Path, chunk: Chunk) -> Result<(), GenerateError> {
        match (self, chunk) {
            (_, Chunk::Empty) => Ok(()),
            (Sink::Csv(w), Chunk::Csv(buf)) => w.write_all(&buf).map_err(io_error(path)),
            (Sink::Parquet(w), Chunk::Parquet(chunks)) => {
                let mut group = w.next_row_group().map_err(parquet_error(path))?;
                for chunk in chunks {
                    chunk
                        .append_to_row_group(&mut group)
                        .map_err(parquet_error(path))?;
                }
                group.close().map_err(parquet_error(path))?;
                Ok(())
            }
            _ => unreachable!("a target encodes for its own sink"),
        }
    }
}

struct Output {
    target: Target,
    sink: Sink,
}

const NO_STATISTICS: &[&str] = &[
    "act_id",
    "category",
    "code",
    "practitioner_id",
    "specialty",
    "stay_id",
    "insurance_nature",
    "exo_code",
    "pathway",
    "setting",
    "right",
    "reference",
    "regime",
];

impl Output {
    fn create(
        dir: &Path,
        name: &str,
        format: GenFormat,
        schema: SchemaRef,
        csv_header: &str,
    ) -> Result<Output, GenerateError> {
        let path = dir.join(format!("{name}.{}", format.extension()));
        let tmp = Output::tmp_path(dir, name, format);
        // Before the file exists: a signal from its creation on removes it.
        let cleanup = crate::interrupt::Cleanup::register(&[&tmp]);
        // Created under the guard a signal's clean-up holds: a file made just after that
        // clean-up passed (`.rights.csv.tmp`, once in some hundred stopped runs) stayed.
        let file = {
            let _creating = crate::interrupt::Cleanup::hold();
            File::create(&tmp).map_err(io_error(&tmp))?
        };
        let mut file = BufWriter::with_capacity(1 << 20, file);
        let (sink, factory) = match format {
            GenFormat::Csv => {
                file.write_all(csv_header.as_bytes())
                    .map_err(io_error(&tmp))?;
                (Sink::Csv(file), None)
            }
            GenFormat::Parquet => {
                // Unique ids gain nothing from a dictionary, and min/max statistics of ids,
                // codes and enums prune nothing; they cost a comparison per value. Patient ids
                // keep theirs: each row group covers its own range of patients.
                let mut props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_column_dictionary_enabled(ColumnPath::from("act_id"), false);
                for column in NO_STATISTICS {
                    props = props.set_column_statistics_enabled(
                        ColumnPath::from(*column),
                        EnabledStatistics::None,
                    );
                }
                let props = props.build();
                let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
                    .map_err(parquet_error(&path))?;
                let (writer, factory) = writer
                    .into_serialized_writer()
                    .map_err(parquet_error(&path))?;
                (Sink::Parquet(writer), Some(factory))
            }
        };
        Ok(Output {
            target: Target {
                path,
                _cleanup: cleanup,
                tmp,
                schema,
                factory,
            },
            sink,
        })
    }

    fn tmp_path(dir: &Path, name: &str, format: GenFormat) -> PathBuf {
        dir.join(format!(".{name}.{}.tmp", format.extension()))
    }

    /// Completes the file, still under its temporary name ([`put_in_place`] moves it).
    fn close(self) -> Result<Closed, GenerateError> {
        let Target {
            path,
            tmp,
            _cleanup: cleanup,
            ..
        } = self.target;
        match self.sink {
            Sink::Csv(mut w) => w.flush().map_err(io_error(&tmp))?,
            Sink::Parquet(w) => {
                w.close().map_err(parquet_error(&path))?;
            }
        }
        Ok(Closed { path, tmp, cleanup })
    }
}

/// A file of the data set, complete under its temporary name.
struct Closed {
    path: PathBuf,
    tmp: PathBuf,
    /// `tmp` removed if a signal stops the process before the file is in place.
    cleanup: crate::interrupt::Cleanup,
}

/// Moves the data set's files to their names together: a signal waits until every one is
/// renamed (it used to land between two, leaving new acts beside the previous beneficiaries
/// while the last line said `--out` was left whole), and one after lets the command finish.
fn put_in_place(closed: Vec<Closed>) -> Result<Vec<PathBuf>, GenerateError> {
    // Dropping a `Cleanup` takes the lock the renames hold: they are dropped after.
    let (cleanups, moves): (Vec<_>, Vec<_>) = closed
        .into_iter()
        .map(|c| (c.cleanup, (c.tmp, c.path)))
        .unzip();
    let files = {
        let _renaming = crate::interrupt::Cleanup::hold();
        let mut files = Vec::with_capacity(moves.len());
        for (tmp, path) in moves {
            if let Err(e) = fs::rename(&tmp, &path) {
                return Err(io_error(&path)(e));
            }
            files.push(path);
        }
        crate::interrupt::mark_outputs_in_place();
        files
    };
    drop(cleanups);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-25_000, -1, 0, 1, 10_957, 19_723, 20_000, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let date = to_date(days);
            assert_eq!(to_days(date), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2
        );
    }

    #[test]
    fn age_and_months() {
        let b = days_from_civil(2000, 2, 29);
        assert_eq!(age_years(b, days_from_civil(2018, 2, 28)), 17);
        assert_eq!(age_years(b, days_from_civil(2018, 3, 1)), 18);
        assert_eq!(
            months_later_inclusive(days_from_civil(2024, 1, 31), 1),
            days_from_civil(2024, 2, 28)
        );
        assert_eq!(
            months_later_inclusive(days_from_civil(2024, 3, 15), 12),
            days_from_civil(2025, 3, 14)
        );
    }

    #[test]
    fn formatting() {
        let mut b = Vec::new();
        push_cents(&mut b, 2650);
        b.push(b' ');
        push_cents(&mut b, 5);
        b.push(b' ');
        push_date(&mut b, days_from_civil(2024, 12, 22));
        b.push(b' ');
        push_act_id(&mut b, 42);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "26.50 0.05 2024-12-22 A000000000042"
        );
    }

    #[test]
    fn rows_stay_small() {
        assert_eq!(std::mem::size_of::<ActRow>(), 64);
    }

    #[test]
    fn rng_is_stable_and_spread() {
        let mut a = Rng::new(7, 1, 2);
        let mut b = Rng::new(7, 1, 2);
        let xs: Vec<u64> = (0..8).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[a.below(10) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}
